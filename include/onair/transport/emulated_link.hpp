// onair — transport::emulated_link<Next, Clock>: a transport layer that behaves like a bad
// network. It wraps any transport (udp, memory, ...) the way Beast's streams wrap their
// NextLayer, and impairs datagrams in both directions with independent settings:
//
//   send     what the owner sends is impaired before it reaches Next::send_to
//   receive  what arrives from Next is impaired before the owner's receive handler sees it
//
// Per direction, in this order (docs/concepts/Transport.md has the full model):
//   1. loss       independent (Bernoulli) with probability L, or Gilbert-Elliott bursts:
//                 a two-state Markov chain, Good (delivers) and Bad (loses), stepped once per
//                 datagram. From loss rate L and mean burst length B (datagrams):
//                     r = P(Bad -> Good) = 1 / B
//                     p = P(Good -> Bad) = r * L / (1 - L)
//                 so the stationary loss rate p / (p + r) is L and bursts are geometric with
//                 mean 1 / r = B (which requires p <= 1, i.e. B >= L / (1 - L)). The chain
//                 starts in its stationary distribution. (This is Gilbert's special case of
//                 Gilbert-Elliott: loss probability 0 in Good and 1 in Bad.)
//   2. duplication  with probability D a second copy follows the first through 3-5.
//   3. bottleneck   a token bucket (rate R kbit/s, depth bucket_bytes) drains a FIFO; a
//                 datagram that would wait longer than `queue` is dropped (drop-tail; an
//                 empty queue always takes one). The queue is thus R * queue bytes, in time at
//                 the current rate. A capacity schedule replaces R at given offsets from the
//                 link's construction; queued datagrams keep the departure already computed.
//   4. delay      release = departure + max(0, delay + J), J ~ U(-jitter, +jitter) or
//                 N(0, jitter^2) truncated at +-3 jitter.
//   5. order      unless `reorder`, release = max(release, previous release): a datagram never
//                 overtakes one that entered before it.
// All randomness comes from the seed (separate streams for loss, duplication and jitter), so
// the same seed and the same traffic give the same drops, delays and copies.
//
// Held datagrams sit in pooled buffers (packet_pool) in a delay line; one timer per direction,
// made by the Clock policy on Next's executor, wakes up at the earliest release. Nothing
// blocks, and once the pool and the delay line have grown to the largest backlog, nothing
// allocates per datagram. With Clock = sim_clock the identical code runs in virtual time.
#pragma once

#include "onair/core/packet_buffer.hpp"
#include "onair/core/sim_clock.hpp"
#include "onair/transport/concepts.hpp"
#include "onair/transport/detail/delay_line.hpp"
#include "onair/transport/detail/impairment.hpp"
#include "onair/transport/detail/small_handler.hpp"

#include <asio/buffer.hpp>
#include <asio/error.hpp>
#include <asio/post.hpp>

#include <optional>
#include <type_traits>
#include <utility>

namespace onair::transport {

namespace detail {
/// Holds a stateless clock policy by value and a stateful one (sim_clock) by reference.
template <class Clock, bool = std::is_empty_v<Clock>>
struct clock_holder {
    explicit clock_holder(Clock&) noexcept {}
    clock_holder() = default;
    Clock& get() noexcept { return c; }
    const Clock& get() const noexcept { return c; }
    [[no_unique_address]] Clock c;
};
template <class Clock>
struct clock_holder<Clock, false> {
    explicit clock_holder(Clock& clock) noexcept : c(&clock) {}
    Clock& get() noexcept { return *c; }
    const Clock& get() const noexcept { return *c; }
    Clock* c;
};
} // namespace detail

/// A transport that impairs the datagrams of the transport `Next` it wraps.
///
/// @tparam Next  a transport::transport, constructed in place from trailing arguments
/// @tparam Clock a clock_policy: real_clock (default) or sim_clock for virtual time
///
/// Thread safety: use from the thread running Next's executor only. Destroy it only when none
/// of its handlers can run any more (the io_context stopped or drained after close()), as any
/// Asio I/O object; a receive still pending at destruction is dropped without being called.
template <class Next, class Clock = real_clock>
class emulated_link {
    static_assert(transport<Next>, "Next layer type requirements not met (see onair/transport/concepts.hpp)");
    static_assert(clock_policy<Clock, typename Next::executor_type>,
                  "Clock type requirements not met (see onair/core/sim_clock.hpp)");

public:
    using next_layer_type = Next;
    using executor_type = typename Next::executor_type;
    using clock_type = Clock;
    using time_point = typename Clock::time_point;

    /// Real-time (stateless clock) link: `cfg`, then Next's constructor arguments.
    /// Throws std::invalid_argument for impossible settings.
    template <class... Args>
        requires std::is_empty_v<Clock> && std::default_initializable<Clock>
    explicit emulated_link(const link_config& cfg, Args&&... next_args)
        : emulated_link(holder{}, cfg, std::forward<Args>(next_args)...) {}

    /// Link on `clock` (which must outlive it), e.g. a sim_clock a test advances.
    template <class... Args>
    emulated_link(Clock& clock, const link_config& cfg, Args&&... next_args)
        : emulated_link(holder{clock}, cfg, std::forward<Args>(next_args)...) {}

    emulated_link(const emulated_link&) = delete;
    emulated_link& operator=(const emulated_link&) = delete;

    Next& next_layer() noexcept { return next_; }
    const Next& next_layer() const noexcept { return next_; }
    Clock& clock() noexcept { return clock_.get(); }
    const link_config& config() const noexcept { return cfg_; }

    executor_type get_executor() noexcept { return next_.get_executor(); }
    endpoint local_endpoint() const { return next_.local_endpoint(); }

    /// Hands the datagram to the send direction. Returns an error only when Next refused a
    /// datagram sent at once; lost or queued datagrams report success, as on a real network.
    template <class Buffers>
    std::error_code send_to(const Buffers& buffers, const endpoint& to) {
        if (closed_) return asio::error::bad_descriptor;
        const std::size_t size = asio::buffer_size(buffers);
        ++stats_.datagrams_sent;
        stats_.bytes_sent += size;
        const time_point now = clock().now();
        const detail::verdict v = tx_.engine.offer(now, size);
        std::error_code result;
        packet_ref held;
        for (std::size_t i = 0; i < v.copies; ++i) {
            if (v.release[i] <= now && tx_.line.empty()) {
                if (const std::error_code ec = next_.send_to(buffers, to)) {
                    ++stats_.send_dropped;
                    result = ec;
                }
                tx_.engine.count_delivered(size);
                continue;
            }
            if (size > max_datagram_size || tx_.line.size() >= tx_.engine.config().max_held) {
                tx_.engine.count_overflow();
                continue;
            }
            if (!held) {
                held = pool_.acquire();
                asio::buffer_copy(asio::buffer(held.capacity().data(), size), buffers);
                held.resize(size);
            }
            tx_.line.push(v.release[i], held, to);
        }
        if (!tx_.line.empty()) arm(tx_);
        return result;
    }

    /// One receive at a time; the handler gets datagrams that survived the receive direction,
    /// when they are due. Runs on the executor, never inside this call.
    template <class Handler>
    void async_receive_from(asio::mutable_buffer into, endpoint& from, Handler&& h) {
        if (closed_) {
            asio::post(get_executor(), [h = std::forward<Handler>(h)]() mutable { h(asio::error::bad_descriptor, 0); });
            return;
        }
        if (!pumping_) pump();
        if (!delivering_) {
            if (rx_error_) {
                asio::post(get_executor(), [h = std::forward<Handler>(h), ec = std::exchange(rx_error_, {})]() mutable {
                    h(ec, 0);
                });
                return;
            }
            if (!rx_.line.empty() && rx_.line.top().release <= clock().now()) {
                const std::size_t n = take_due(into, from);
                asio::post(get_executor(), [h = std::forward<Handler>(h), n]() mutable { h(std::error_code{}, n); });
                return;
            }
        }
        user_buf_ = into;
        user_from_ = &from;
        user_handler_.emplace(std::forward<Handler>(h));
        if (!delivering_ && !rx_.line.empty()) arm(rx_);
    }

    /// Closes Next; held datagrams are discarded, a pending receive completes with
    /// operation_aborted.
    void close() {
        if (closed_) return;
        closed_ = true;
        for (direction* d : {&tx_, &rx_}) {
            d->timer.cancel();
            d->armed.reset();
            while (!d->line.empty()) {
                d->line.pop();
                d->engine.count_overflow(); // lost with the link
            }
        }
        next_.close();
        if (user_handler_) {
            asio::post(get_executor(), [h = std::move(user_handler_)]() mutable {
                h.take_and_call(asio::error::operation_aborted, 0);
            });
        }
    }

    /// What the owner sent / received through the link (before / after impairment), and
    /// send errors of Next for released datagrams. Next's own: next_layer().stats().
    const transport_stats& stats() const noexcept { return stats_; }

    /// Counters of the send and receive directions as of now.
    direction_stats send_stats() const { return dir_stats(tx_); }
    direction_stats receive_stats() const { return dir_stats(rx_); }

private:
    using holder = detail::clock_holder<Clock>;
    using timer_type = typename Clock::template timer<executor_type>;

    struct direction {
        direction(const direction_config& c, std::uint64_t seed, time_point start, Clock& clk, const executor_type& ex,
                  const char* name)
            : engine(c, seed, start, name), timer(clk.make_timer(ex)) {}
        detail::impairment engine;
        detail::delay_line line;
        timer_type timer;
        std::optional<time_point> armed; // expiry of the outstanding wait
    };

    static std::uint64_t direction_seed(std::uint64_t seed, std::uint64_t which) {
        std::uint64_t x = seed + which;
        return detail::splitmix64(x);
    }

    template <class... Args>
    emulated_link(holder h, const link_config& cfg, Args&&... next_args)
        : next_(std::forward<Args>(next_args)...), clock_(h), cfg_(cfg),
          tx_(cfg.send, direction_seed(cfg.seed, 1), clock_.get().now(), clock_.get(), next_.get_executor(), "send"),
          rx_(cfg.receive, direction_seed(cfg.seed, 2), clock_.get().now(), clock_.get(), next_.get_executor(),
              "receive") {}

    direction_stats dir_stats(const direction& d) const {
        direction_stats s = d.engine.stats(clock_.get().now());
        s.in_flight = d.line.size();
        return s;
    }

    /// Makes sure the direction's timer fires no later than its earliest release.
    void arm(direction& d) {
        const time_point t = d.line.top().release;
        if (d.armed && *d.armed <= t) return;
        d.armed = t;
        d.timer.expires_at(t);
        d.timer.async_wait([this, &d](std::error_code ec) {
            if (ec == asio::error::operation_aborted) return; // re-armed, closed or destroyed
            d.armed.reset();
            if (&d == &tx_) release_sends();
            else deliver_receives();
        });
    }

    void release_sends() {
        if (closed_) return;
        const time_point now = clock().now();
        while (!tx_.line.empty() && tx_.line.top().release <= now) {
            detail::held_datagram d = tx_.line.pop();
            if (next_.send_to(asio::buffer(d.data.bytes().data(), d.data.size()), d.peer)) ++stats_.send_dropped;
            tx_.engine.count_delivered(d.data.size());
        }
        if (!tx_.line.empty()) arm(tx_);
    }

    // ---- receive side: a pump keeps one receive outstanding on Next; what arrives enters
    // the receive direction's delay line; due datagrams go to the owner's pending receive.

    void pump() {
        pumping_ = true;
        if (!rx_buf_) rx_buf_ = pool_.acquire();
        const auto cap = rx_buf_.capacity();
        next_.async_receive_from(asio::buffer(cap.data(), cap.size()), rx_from_, [this](std::error_code ec, std::size_t n) {
            if (ec == asio::error::operation_aborted) return; // closed or destroyed
            on_pumped(ec, n);
        });
    }

    void on_pumped(std::error_code ec, std::size_t n) {
        pumping_ = false;
        if (closed_) return;
        if (ec) { // hand the error on; the next async_receive_from restarts the pump
            if (user_handler_) user_handler_.take_and_call(ec, 0);
            else rx_error_ = ec;
            return;
        }
        rx_buf_.resize(n);
        const detail::verdict v = rx_.engine.offer(clock().now(), n);
        for (std::size_t i = 0; i < v.copies; ++i) {
            if (rx_.line.size() >= rx_.engine.config().max_held) rx_.engine.count_overflow();
            else rx_.line.push(v.release[i], rx_buf_, rx_from_);
        }
        if (rx_buf_.use_count() > 1) rx_buf_.reset(); // the line keeps it; take a fresh one
        pump();
        deliver_receives();
    }

    void deliver_receives() {
        if (closed_) return;
        const time_point now = clock().now();
        delivering_ = true; // a receive started by the handler below is served by this loop
        while (user_handler_ && !rx_.line.empty() && rx_.line.top().release <= now) {
            const std::size_t n = take_due(user_buf_, *user_from_);
            user_handler_.take_and_call(std::error_code{}, n);
        }
        delivering_ = false;
        if (user_handler_ && !rx_.line.empty()) arm(rx_);
    }

    std::size_t take_due(asio::mutable_buffer into, endpoint& from) {
        detail::held_datagram d = rx_.line.pop();
        const std::size_t n = asio::buffer_copy(into, asio::buffer(d.data.bytes().data(), d.data.size()));
        from = d.peer;
        rx_.engine.count_delivered(d.data.size());
        ++stats_.datagrams_received;
        stats_.bytes_received += n;
        return n;
    }

    Next next_;
    [[no_unique_address]] holder clock_;
    link_config cfg_;
    packet_pool pool_{64};
    direction tx_, rx_;
    packet_ref rx_buf_;
    endpoint rx_from_;
    asio::mutable_buffer user_buf_;
    endpoint* user_from_ = nullptr;
    detail::small_handler<void(std::error_code, std::size_t)> user_handler_;
    std::error_code rx_error_;
    transport_stats stats_;
    bool pumping_ = false;
    bool delivering_ = false;
    bool closed_ = false;
};

} // namespace onair::transport
