// onair — basic_relay_node: a media server composed from a transport, a relay policy and a sink.
#pragma once

#include "onair/core/packet_buffer.hpp"
#include "onair/core/timer.hpp"
#include "onair/relay/concepts.hpp"
#include "onair/relay/sfu.hpp"
#include "onair/rtp/packet.hpp"
#include "onair/rtp/rtcp.hpp"
#include "onair/rtp/session_message.hpp"
#include "onair/sink/packet_sink.hpp"
#include "onair/transport/concepts.hpp"
#include "onair/transport/udp.hpp"

#include <asio/io_context.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <concepts>
#include <span>
#include <utility>

namespace onair {

/// Counters of what a relay node received and refused.
struct relay_node_stats {
    std::uint64_t datagrams = 0;
    std::uint64_t rtp = 0;
    std::uint64_t rtcp = 0;
    std::uint64_t session_messages = 0;
    std::uint64_t malformed = 0; ///< dropped: not RTP/RTCP, or failed to parse
    std::uint64_t oversized = 0; ///< dropped: a datagram filling the whole buffer was cut short
};

/// The send workers a relay node starts unless told otherwise: ONAIR_RELAY_WORKERS from the
/// environment (read once; 1 to 16), else 1.
inline std::size_t relay_workers_wanted() noexcept {
    static const std::size_t n = [] {
        const char* v = std::getenv("ONAIR_RELAY_WORKERS");
        const long w = v ? std::strtol(v, nullptr, 10) : 1;
        return static_cast<std::size_t>(std::clamp<long>(w, 1, static_cast<long>(transport::udp_max_send_workers)));
    }();
    return n;
}

struct relay_node_config {
    /// Period of the relay policy's housekeeping (timeouts, deferred keyframe requests).
    std::chrono::milliseconds tick{10};
    /// Threads that send what the node forwards, the node's own included (transport::udp:
    /// set_send_workers). Forwarding decisions stay on the node's thread; each flush of a
    /// batch's sends is shared out by destination.
    std::size_t workers = relay_workers_wanted();
};

namespace detail {
/// A transport with batched I/O (transport::udp): the node receives with receive_many and
/// sends through queue_send / flush_sends, once per batch.
template <class T>
concept batched_transport = requires(T& t, std::span<packet_ref> bufs, std::span<transport::endpoint> from, const transport::endpoint& to,
                                     std::span<const std::uint8_t> bytes) {
    { t.receive_many(bufs, from) } -> std::same_as<std::size_t>;
    t.queue_send(to, bytes, bytes, true);
    t.flush_sends();
    t.set_send_workers(std::size_t{1});
    t.async_wait_readable([](std::error_code) {});
};
} // namespace detail

/// A relay node (media server): receives publishers' RTP and RTCP on one transport and lets
/// its relay policy forward them to subscribers; attached sinks see every accepted packet.
///
/// @tparam Transport a transport::transport (udp in production, memory in tests)
/// @tparam Relay     a relay::relay_policy (sfu)
/// @tparam Sink      a sink::packet_sink fed with every accepted RTP packet
///
/// Thread safety: all members run on the io_context the transport was made with; call
/// start()/stop() from that thread or before it runs. stats() may be read on that thread.
template <class Transport, class Relay = relay::sfu, class Sink = sink::null_packets>
class basic_relay_node {
    static_assert(transport::transport<Transport>, "Transport type requirements not met (see onair/transport/concepts.hpp)");
    static_assert(relay::relay_policy<Relay>, "Relay type requirements not met (see onair/relay/concepts.hpp)");
    static_assert(sink::packet_sink<Sink>, "Sink type requirements not met (see onair/sink/packet_sink.hpp)");

public:
    using clock = std::chrono::steady_clock;

    /// Constructs the transport in place from `args` (e.g. io_context and bind endpoint).
    template <class... Args>
    basic_relay_node(Relay relay, Sink sink, relay_node_config cfg, Args&&... args)
        : transport_(std::forward<Args>(args)...), relay_(std::move(relay)), sink_(std::forward<Sink>(sink)),
          cfg_(cfg), timer_(transport_.get_executor()) {}

    template <class... Args>
    explicit basic_relay_node(std::in_place_t, Args&&... args)
        : basic_relay_node(Relay{}, Sink{}, relay_node_config{}, std::forward<Args>(args)...) {}

    basic_relay_node(const basic_relay_node&) = delete;
    basic_relay_node& operator=(const basic_relay_node&) = delete;

    /// Starts the send workers (cfg.workers), receiving and the housekeeping timer.
    void start() {
        if constexpr (batched) transport_.set_send_workers(cfg_.workers);
        running_ = true;
        receive();
        arm_timer();
    }
    /// Stops receiving; pending handlers complete with operation_aborted.
    void stop() {
        running_ = false;
        timer_.cancel();
        transport_.close();
    }

    transport::endpoint local_endpoint() const { return transport_.local_endpoint(); }
    Transport& transport() noexcept { return transport_; }
    Relay& relay() noexcept { return relay_; }
    const Relay& relay() const noexcept { return relay_; }
    Sink& sink() noexcept { return sink_; }
    const relay_node_stats& stats() const noexcept { return stats_; }

private:
    // The context handed to the relay policy: the node's send and clock facilities.
    struct context {
        basic_relay_node& n;
        void send(const transport::endpoint& to, rtp::bytes_view b) {
            if constexpr (batched) n.transport_.queue_send(to, b, {}, false);
            else n.transport_.send_to(asio::buffer(b.data(), b.size()), to);
        }
        void send(const transport::endpoint& to, rtp::bytes_view head, rtp::bytes_view tail) {
            if constexpr (batched) {
                // A tail inside the packet being dispatched (forwarding: the shared payload) is
                // not copied: the batch holds that buffer, unchanged, until the flush.
                const bool stays = !n.current_.empty() && tail.data() >= n.current_.data() &&
                                   tail.data() + tail.size() <= n.current_.data() + n.current_.size();
                n.transport_.queue_send(to, head, tail, stays);
            } else {
                const std::array<asio::const_buffer, 2> parts{asio::buffer(head.data(), head.size()), asio::buffer(tail.data(), tail.size())};
                n.transport_.send_to(parts, to);
            }
        }
        void send_session(const transport::endpoint& to, const rtp::session_message& m) {
            std::array<std::uint8_t, 1024> buf;
            if (const std::size_t len = rtp::write_session_message(m, buf)) send(to, {buf.data(), len});
        }
        void request_keyframe(const transport::endpoint& publisher, std::uint32_t media_ssrc) {
            std::array<std::uint8_t, 64> buf;
            if (const std::size_t len = rtp::rtcp::write_pli(relay_ssrc, media_ssrc, buf)) send(publisher, {buf.data(), len});
        }
        void deliver(const rtp::stream_description& d, media_kind k, const rtp::packet_view& p) {
            n.sink_.on_packet(d, k, p);
        }
        clock::time_point now() const { return clock::now(); }
        packet_ref acquire() { return n.pool_.acquire(); }
    };
    static constexpr std::uint32_t relay_ssrc = 0x6f6e6169;

    static constexpr bool batched = detail::batched_transport<Transport>;

    void receive() {
        if constexpr (batched) {
            transport_.async_wait_readable([this](std::error_code ec) { on_readable(ec); });
            return;
        }
        if (!buf_ || buf_.use_count() > 1) buf_ = pool_.acquire();
        auto cap = buf_.capacity();
        transport_.async_receive_from(asio::buffer(cap.data(), cap.size()), from_,
                                      [this](std::error_code ec, std::size_t n) { on_receive(ec, n); });
    }

    /// Batched: up to four batches of transport::udp_batch datagrams per wake-up (then the
    /// timer and other handlers get their turn), each dispatched in order and its sends
    /// flushed together. A buffer the policy kept (a cache holds it) is replaced from the pool.
    void on_readable(std::error_code ec) {
        if (!running_ || ec == asio::error::operation_aborted) return;
        if constexpr (batched) {
            for (int round = 0; round < 4; ++round) {
                for (auto& b : batch_)
                    if (!b || b.use_count() > 1) b = pool_.acquire();
                const std::size_t got = transport_.receive_many(batch_, batch_from_);
                for (std::size_t i = 0; i < got; ++i) {
                    if (batch_[i].size() >= max_datagram_size) { // the kernel truncated a bigger one
                        ++stats_.datagrams;
                        ++stats_.oversized;
                        continue;
                    }
                    current_ = batch_[i].bytes();
                    dispatch(batch_[i], batch_from_[i]);
                }
                current_ = {};
                transport_.flush_sends();
                if (got < batch_.size()) break;
            }
        }
        receive();
    }

    void on_receive(std::error_code ec, std::size_t n) {
        if (!running_ || ec == asio::error::operation_aborted) return;
        if (!ec) {
            if (n >= max_datagram_size) {
                // onair never sends datagrams this large: the kernel truncated a bigger one.
                ++stats_.datagrams;
                ++stats_.oversized;
            } else {
                buf_.resize(n);
                dispatch(buf_, from_);
            }
        }
        receive();
    }

    void dispatch(packet_ref& buf, const transport::endpoint& from) {
        ++stats_.datagrams;
        context ctx{*this};
        const rtp::bytes_view d = buf.bytes();
        if (rtp::is_rtcp(d)) {
            ++stats_.rtcp;
            if (rtp::is_session_message(d)) {
                rtp::session_message m;
                if (rtp::parse_session_message(d, m)) {
                    ++stats_.malformed;
                    return;
                }
                ++stats_.session_messages;
                relay_.on_session(ctx, m, from);
                return;
            }
            relay_.on_rtcp(ctx, d, from);
            return;
        }
        rtp::packet_view p;
        if (rtp::parse(d, p)) {
            ++stats_.malformed;
            return;
        }
        ++stats_.rtp;
        relay_.on_rtp(ctx, buf, p, from);
    }

    void arm_timer() {
        timer_.expires_after(cfg_.tick);
        timer_.async_wait([this](std::error_code ec) {
            if (ec || !running_) return;
            context ctx{*this};
            relay_.on_timer(ctx);
            if constexpr (batched) transport_.flush_sends();
            arm_timer();
        });
    }

    Transport transport_;
    packet_pool pool_; // before relay_: the policy may keep packets until it is destroyed
    [[no_unique_address]] Relay relay_;
    [[no_unique_address]] Sink sink_;
    relay_node_config cfg_;
    steady_timer_for<typename Transport::executor_type> timer_;
    packet_ref buf_;
    transport::endpoint from_;
    // Batched receive: the buffers and sources of one batch, and the datagram being
    // dispatched (sends whose tail lies in it are not copied).
    std::array<packet_ref, transport::udp_batch> batch_{};
    std::array<transport::endpoint, transport::udp_batch> batch_from_{};
    rtp::bytes_view current_{};
    relay_node_stats stats_;
    bool running_ = false;
};

/// A relay node on UDP forwarding with the sfu policy.
using relay_node = basic_relay_node<transport::udp, relay::sfu>;

} // namespace onair
