// What every courier executor shares: a counted reference to what it runs on,
// the blocking and outstanding-work properties as two bits, and Asio's
// query/require interface over them.
#pragma once

#include "courier/detail/asio_config.hpp"

#include <asio/execution.hpp>
#include <asio/execution_context.hpp>
#include <cstdint>
#include <utility>

#include "courier/detail/ref_counted.hpp"

namespace courier::detail {

// `Derived` is the executor type (what require() returns), which says how a
// function runs with a static member
//   template <class F>
//   static void submit(Target&, bool possibly, std::uint32_t label, F&& f);
// and is constructible from (ref_ptr<Target>, bool possibly, bool tracked,
// std::uint32_t label) by this base. The label is the executor's own: a
// number it carries along through copies and require() and that tells two
// executors apart (an actor's coroutine turn; 0 where the executor has none). `Target` is what it
// submits to, a reference-counted type with
//   asio::execution_context& context() const noexcept;
//   void work_started() noexcept;  void work_finished() noexcept;
//   bool running_in_this_thread() const noexcept;
//
// A tracked executor counts as outstanding work on its target while it
// exists, as an io_context's does; copies of it count again.
template <class Derived, class Target>
class basic_executor {
 public:
  basic_executor(const basic_executor& o) noexcept
      : target_(o.target_), label_(o.label_), possibly_(o.possibly_), tracked_(o.tracked_) {
    if (tracked_) target_->work_started();
  }
  basic_executor(basic_executor&& o) noexcept
      : target_(std::move(o.target_)),
        label_(o.label_),
        possibly_(o.possibly_),
        tracked_(std::exchange(o.tracked_, false)) {}
  basic_executor& operator=(basic_executor o) noexcept {
    std::swap(target_, o.target_);
    std::swap(label_, o.label_);
    std::swap(possibly_, o.possibly_);
    std::swap(tracked_, o.tracked_);
    return *this;
  }
  ~basic_executor() {
    if (tracked_) target_->work_finished();
  }

  template <class F>
  void execute(F&& f) const {
    Derived::submit(*target_, possibly_, label_, std::forward<F>(f));
  }

  asio::execution_context& query(asio::execution::context_t) const noexcept {
    return target_->context();
  }
  asio::execution::blocking_t query(asio::execution::blocking_t) const noexcept {
    return possibly_ ? asio::execution::blocking_t(asio::execution::blocking.possibly)
                     : asio::execution::blocking_t(asio::execution::blocking.never);
  }
  asio::execution::outstanding_work_t query(asio::execution::outstanding_work_t) const noexcept {
    return tracked_
               ? asio::execution::outstanding_work_t(asio::execution::outstanding_work.tracked)
               : asio::execution::outstanding_work_t(asio::execution::outstanding_work.untracked);
  }
  static constexpr asio::execution::relationship_t query(asio::execution::relationship_t) noexcept {
    return asio::execution::relationship.fork;
  }

  Derived require(asio::execution::blocking_t::never_t) const noexcept {
    return with(false, tracked_);
  }
  Derived require(asio::execution::blocking_t::possibly_t) const noexcept {
    return with(true, tracked_);
  }
  Derived require(asio::execution::outstanding_work_t::tracked_t) const noexcept {
    return with(possibly_, true);
  }
  Derived require(asio::execution::outstanding_work_t::untracked_t) const noexcept {
    return with(possibly_, false);
  }
  Derived require(asio::execution::relationship_t::fork_t) const noexcept {
    return with(possibly_, tracked_);
  }

  // The pre-standard work counting some Asio components call.
  void on_work_started() const noexcept { target_->work_started(); }
  void on_work_finished() const noexcept { target_->work_finished(); }

  bool running_in_this_thread() const noexcept { return target_->running_in_this_thread(); }

  friend bool operator==(const Derived& a, const Derived& b) noexcept {
    return a.target_ == b.target_ && a.label_ == b.label_ && a.possibly_ == b.possibly_ &&
           a.tracked_ == b.tracked_;
  }
  friend bool operator!=(const Derived& a, const Derived& b) noexcept { return !(a == b); }

 protected:
  basic_executor(ref_ptr<Target> target, bool possibly, bool tracked,
                 std::uint32_t label = 0) noexcept
      : target_(std::move(target)), label_(label), possibly_(possibly), tracked_(tracked) {
    if (tracked_) target_->work_started();
  }

  Target& target() const noexcept { return *target_; }
  std::uint32_t label() const noexcept { return label_; }

 private:
  Derived with(bool possibly, bool tracked) const noexcept {
    return Derived(target_, possibly, tracked, label_);
  }

  ref_ptr<Target> target_;
  std::uint32_t label_;
  bool possibly_;
  bool tracked_;
};

}  // namespace courier::detail
