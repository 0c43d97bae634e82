// caf_workloads.hpp: every workload of courier_bench written for CAF 0.17
// (the C++ Actor Framework, Debian's libcaf-dev), the actor library courier is
// most often weighed against. Built only when CMake finds CAF; the definitions
// live in caf_workloads.cpp so that no other translation unit pays for CAF's
// headers.
#pragma once

#include <cstddef>
#include <string>

#include "bench_common.hpp"

namespace bench::caf_impl {

/// W1 and W1-hot: account actors, and one actor per client that requests a
/// withdrawal from the source and then a deposit to the target, awaiting each
/// reply before the next transfer.
measurement w1(const workload_sizes& s, std::size_t accounts, std::size_t threads);
/// W2: pairs of actors that send the ball to each other.
measurement w2(const workload_sizes& s, std::size_t pairs, std::size_t threads);
/// W3: sender actors send increments to one counter, `fan_in_chunk` at a time
/// before sending themselves the next go; CAF's mailboxes are unbounded.
measurement w3(const workload_sizes& s, std::size_t threads);
/// W4: a million idle account actors, one deposit each, one balance read.
measurement w4(const workload_sizes& s, std::size_t threads);

/// "CAF 0.17.6", from the headers the benchmark was built with.
std::string version();

}  // namespace bench::caf_impl
