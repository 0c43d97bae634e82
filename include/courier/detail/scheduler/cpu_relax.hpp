// A hint to the CPU that the calling thread is spinning.
#pragma once

#include <atomic>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace courier::detail {

// PAUSE on x86 and YIELD on ARM: the spinning thread gives its core's
// resources to the other hardware thread and backs off the cache line it
// polls, without a system call.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__) || defined(__arm__)
  asm volatile("yield" ::: "memory");
#else
  std::atomic_signal_fence(std::memory_order_seq_cst);
#endif
}

}  // namespace courier::detail
