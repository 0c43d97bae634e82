// Destroying a thread_pool from one of its own workers cannot wait for that
// worker to finish: the destructor says so on stderr and terminates. Run by
// ctest, which expects that message and the abort.
#include <asio/post.hpp>
#include <chrono>
#include <courier.hpp>
#include <memory>
#include <thread>

int main() {
  auto pool = std::make_unique<courier::thread_pool>(1);
  courier::thread_pool* raw = pool.get();
  asio::post(raw->get_executor(), [&pool] { pool.reset(); });
  std::this_thread::sleep_for(std::chrono::seconds(30));
  return 0;  // not reached: the worker's destructor call terminates first
}
