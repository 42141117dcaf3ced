// onair — clock policies: real time (steady_clock + Asio timers) and simulated time.
//
// Code that waits for instants (the emulated link's delay line, later pacers) takes a
// Clock policy instead of calling std::chrono::steady_clock directly, so the same code runs
// in real time in production and in virtual time in tests, where a test moves the clock
// by hand and hours of network behaviour run in milliseconds, deterministically.
//
// Requirements on a clock policy C for executor E (concept clock_policy<C, E>):
//   C::time_point                  std::chrono::steady_clock::time_point (real or virtual)
//   c.now() -> time_point
//   C::timer<E>                    c.make_timer(ex) -> C::timer<E>; the timer offers
//                                  expires_at(time_point), async_wait(void(error_code)), cancel()
//                                  with Asio's semantics (handlers run on E; a cancelled or
//                                  re-armed wait completes with operation_aborted).
// A stateless clock (real_clock) is held by value; a stateful one (sim_clock) by reference.
#pragma once

#include "onair/core/timer.hpp"

#include <asio/error.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <system_error>
#include <utility>
#include <vector>

namespace onair {

/// The production clock policy: std::chrono::steady_clock and Asio's steady timer.
struct real_clock {
    using duration = std::chrono::steady_clock::duration;
    using time_point = std::chrono::steady_clock::time_point;
    template <class Executor>
    using timer = steady_timer_for<Executor>;

    time_point now() const noexcept { return std::chrono::steady_clock::now(); }
    template <class Executor>
    timer<Executor> make_timer(const Executor& ex) const {
        return timer<Executor>(ex);
    }
};

template <class Executor>
class sim_timer;

namespace detail {
struct sim_timer_base;
struct sim_wait {
    sim_timer_base* owner;
    std::function<void(std::error_code)> complete; // posts the waiting handler to its executor
};
using sim_key = std::pair<std::chrono::steady_clock::time_point, std::uint64_t>;
struct sim_timer_base {
    std::vector<sim_key> waits; // this timer's entries in the clock's agenda
};
} // namespace detail

/// A virtual clock that only moves when a test moves it.
///
/// Timers made from it (sim_timer) wait on its agenda. run_until(io, t) alternates between
/// running the io_context's ready handlers and moving the clock to the next due timer, whose
/// handler is then posted to its executor with the clock reading exactly its expiry; so every
/// handler observes now() == the instant it was due, and events at equal instants complete in
/// the order they were scheduled. Nothing depends on wall time: runs are reproducible.
///
/// Thread safety: none; use it, its timers and the io_context from one thread.
class sim_clock {
public:
    using duration = std::chrono::steady_clock::duration;
    using time_point = std::chrono::steady_clock::time_point;
    template <class Executor>
    using timer = sim_timer<Executor>;

    /// Starts at `start` (an arbitrary instant well away from the epoch by default).
    explicit sim_clock(time_point start = time_point{} + std::chrono::hours(1)) : now_(start) {}
    sim_clock(const sim_clock&) = delete;
    sim_clock& operator=(const sim_clock&) = delete;

    time_point now() const noexcept { return now_; }

    template <class Executor>
    sim_timer<Executor> make_timer(const Executor& ex);

    /// Runs ready handlers and due timers, in time order, until the clock reads `t` and
    /// nothing more is ready. Returns the number of handlers run. Never moves time back.
    std::size_t run_until(asio::io_context& io, time_point t) {
        std::size_t n = 0;
        for (;;) {
            n += poll(io);
            if (agenda_.empty() || agenda_.begin()->first.first > t) break;
            auto it = agenda_.begin();
            now_ = std::max(now_, it->first.first);
            fire(it, std::error_code{});
        }
        now_ = std::max(now_, t);
        return n + poll(io);
    }
    std::size_t run_for(asio::io_context& io, duration d) { return run_until(io, now_ + d); }

    /// Runs until no timer is pending (or `limit` is reached); returns the handlers run.
    std::size_t run_all(asio::io_context& io, time_point limit = time_point::max()) {
        std::size_t n = poll(io);
        while (!agenda_.empty() && agenda_.begin()->first.first <= limit)
            n += run_until(io, agenda_.begin()->first.first);
        return n;
    }

    /// Timers waiting on the agenda.
    std::size_t pending() const noexcept { return agenda_.size(); }

private:
    template <class Executor>
    friend class sim_timer;
    using agenda_type = std::map<detail::sim_key, detail::sim_wait>;

    static std::size_t poll(asio::io_context& io) {
        if (io.stopped()) io.restart();
        return io.poll();
    }
    detail::sim_key schedule(time_point t, detail::sim_wait w) {
        const detail::sim_key k{t, next_id_++};
        agenda_.emplace(k, std::move(w));
        return k;
    }
    void fire(agenda_type::iterator it, std::error_code ec) {
        detail::sim_wait w = std::move(it->second);
        const detail::sim_key k = it->first;
        agenda_.erase(it);
        std::erase(w.owner->waits, k);
        w.complete(ec);
    }
    /// Completes (ec set) or forgets (ec unset: no handler runs) every wait of `owner`.
    std::size_t drop(detail::sim_timer_base& owner, std::error_code ec, bool complete) {
        std::size_t n = 0;
        while (!owner.waits.empty()) {
            auto it = agenda_.find(owner.waits.front());
            if (it == agenda_.end()) { // cannot happen; keep the invariant anyway
                owner.waits.erase(owner.waits.begin());
                continue;
            }
            if (complete) fire(it, ec);
            else {
                agenda_.erase(it);
                owner.waits.erase(owner.waits.begin());
            }
            ++n;
        }
        return n;
    }

    time_point now_;
    std::uint64_t next_id_ = 0;
    agenda_type agenda_;
};

/// A timer on a sim_clock's agenda, with the subset of asio::basic_waitable_timer's interface
/// that clock policies use. Handlers run on `Executor` (posted), never inside the call that
/// started the wait. Destroying the timer forgets its waits without running their handlers.
template <class Executor>
class sim_timer : private detail::sim_timer_base {
public:
    using executor_type = Executor;
    using time_point = sim_clock::time_point;
    using duration = sim_clock::duration;

    sim_timer(sim_clock& clock, const Executor& ex) : clock_(&clock), ex_(ex), expiry_(clock.now()) {}
    sim_timer(const sim_timer&) = delete;
    sim_timer& operator=(const sim_timer&) = delete;
    ~sim_timer() { clock_->drop(*this, {}, false); }

    executor_type get_executor() const noexcept { return ex_; }
    time_point expiry() const noexcept { return expiry_; }

    /// Cancels pending waits (they complete with operation_aborted) and sets the expiry.
    std::size_t expires_at(time_point t) {
        const std::size_t n = cancel();
        expiry_ = t;
        return n;
    }
    std::size_t expires_after(duration d) { return expires_at(clock_->now() + d); }

    template <class Handler>
    void async_wait(Handler&& h) {
        auto shared = std::make_shared<std::decay_t<Handler>>(std::forward<Handler>(h));
        waits.push_back(clock_->schedule(expiry_, detail::sim_wait{this, [ex = ex_, shared](std::error_code ec) {
            asio::post(ex, [shared, ec] { (*shared)(ec); });
        }}));
    }

    std::size_t cancel() { return clock_->drop(*this, asio::error::operation_aborted, true); }

private:
    sim_clock* clock_;
    Executor ex_;
    time_point expiry_;
};

template <class Executor>
sim_timer<Executor> sim_clock::make_timer(const Executor& ex) {
    return sim_timer<Executor>(*this, ex);
}

namespace detail {
struct wait_handler_archetype {
    void operator()(std::error_code) const noexcept {}
};
} // namespace detail

/// A clock policy usable with handlers on `Executor` (see the header comment).
template <class C, class Executor>
concept clock_policy = requires(C& c, const Executor& ex, typename C::time_point t,
                                typename C::template timer<Executor>& tm) {
    requires std::same_as<typename C::time_point, std::chrono::steady_clock::time_point>;
    { c.now() } -> std::same_as<typename C::time_point>;
    { c.make_timer(ex) } -> std::same_as<typename C::template timer<Executor>>;
    tm.expires_at(t);
    tm.async_wait(detail::wait_handler_archetype{});
    tm.cancel();
};

} // namespace onair
