#include <courier.hpp>

int main() {
  courier::thread_pool pool{1};
  return 0;
}
