// A mailbox node for the single-threaded cases of the tests of the
// structures that carry nodes.
#pragma once

#include "courier/detail/future/continuation_home.hpp"

namespace detail_test {

// Says which node it is and counts its abandons. The tests own the nodes:
// neither run() nor abandon() deletes one, and run() is never called.
struct test_node final : courier::detail::mailbox_node {
  explicit test_node(int i = 0) : id(i) {}
  void run(courier::detail::continuation_home&) noexcept override {}
  void abandon() noexcept override { ++abandons; }
  int id;
  int abandons = 0;
};

}  // namespace detail_test
