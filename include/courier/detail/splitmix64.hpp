// splitmix64: a small, fast, seedable pseudo-random generator.
#pragma once

#include <cstdint>

namespace courier::detail {

// Sebastiano Vigna's splitmix64: every seed gives a full-period sequence, and
// the same seed the same sequence on every platform, which is what a replay
// by seed needs.
class splitmix64 {
 public:
  explicit constexpr splitmix64(std::uint64_t seed) noexcept : state_(seed) {}

  constexpr std::uint64_t operator()() noexcept {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

 private:
  std::uint64_t state_;
};

}  // namespace courier::detail
