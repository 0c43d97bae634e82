// expect: cannot convert .*actor_base.* to .*ref_counted
// An actor is reached through plain pointers by its pool's registry, so its
// count must never be released by ref_counted's shortcut for objects that
// only counted references reach: the two kinds share no base, and treating
// an actor as the other kind does not compile.
#include <courier.hpp>

struct nothing {
  void handle(int) {}
};

int main() {
  courier::thread_pool pool{1};
  auto a = courier::spawn<nothing, int>(pool);
  courier::detail::actor_base* actor = nullptr;
  courier::detail::ref_counted* plain = actor;
  plain->release();
}
