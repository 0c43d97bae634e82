// Helpers shared by the test files.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <exception>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <utility>

namespace test_support {

// Whether `e` holds an exception of type E (or derived from it).
template <class E>
bool holds(const std::exception_ptr& e) {
  try {
    if (e) std::rethrow_exception(e);
  } catch (const E&) {
    return true;
  } catch (...) {
  }
  return false;
}

// Waits until `done()` is true, checking every 200 microseconds. False if it
// is still false after `limit`, so that a test fails instead of hanging.
template <class Done>
bool wait_until(Done done, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  const auto give_up = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

// The scheduling state of thread `tid` of this process, from
// /proc/self/task/<tid>/stat: 'R' running, 'S' asleep in the kernel (as a
// thread blocked on a condition variable, a mutex or a join is), and so on;
// '\0' once the thread has exited.
inline char thread_state(pid_t tid) {
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::stringstream text;
  text << in.rdbuf();
  // "<tid> (<name>) <state> ...": the name may hold spaces and parentheses.
  const std::string stat = text.str();
  const std::size_t end_of_name = stat.rfind(')');
  if (end_of_name == std::string::npos || end_of_name + 2 >= stat.size()) return '\0';
  return stat[end_of_name + 2];
}

// A thread of the test's own whose kernel id is known, so that the test can
// wait until the call it makes blocks: start it with that call, then
// wait_until_asleep(). Join it before it is destroyed.
class watched_thread {
 public:
  template <class F>
  explicit watched_thread(F f)
      : thread_([this, f = std::move(f)]() mutable {
          tid_.store(gettid());
          tid_.notify_one();
          f();
        }) {
    tid_.wait(0);
  }

  // Waits until the thread sleeps in the kernel: false if it exits first or
  // is still awake after `limit`. Nothing the thread does between starting
  // and its call sleeps, so a sleep seen here is that call blocking (or, if
  // it does not block, whatever the thread blocks on next).
  bool wait_until_asleep(std::chrono::milliseconds limit = std::chrono::seconds(10)) const {
    const pid_t tid = tid_.load();
    char state = '\0';
    return wait_until(
               [&] {
                 state = thread_state(tid);
                 return state == 'S' || state == '\0';
               },
               limit) &&
           state == 'S';
  }

  void join() { thread_.join(); }

 private:
  std::atomic<pid_t> tid_{0};
  std::thread thread_;
};

}  // namespace test_support
