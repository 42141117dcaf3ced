// onair — the relay policy family: the forwarding decision of a relay node.
//
// basic_relay_node owns the socket, the packet pool and the timers; it parses what arrives
// and hands typed events to its relay policy, together with a context the policy uses to
// act. The context type is a template parameter of each hook, so every call is resolved at
// compile time.
//
// Context `ctx` offered by the node:
//   ctx.send(const endpoint&, bytes_view)                   one datagram
//   ctx.send(const endpoint&, bytes_view head, bytes_view tail)  one datagram of two parts
//   ctx.send_session(const endpoint&, const rtp::session_message&)
//   ctx.request_keyframe(const endpoint& publisher, std::uint32_t media_ssrc)  sends a PLI
//   ctx.deliver(const rtp::stream_description&, media_kind, const rtp::packet_view&)  to the node's sink
//   ctx.now() -> std::chrono::steady_clock::time_point
//   ctx.acquire() -> packet_ref                              a pooled buffer (e.g. for a restored RTX)
//
// Requirements on a relay policy R (see docs/concepts/Relay.md):
//   r.on_session(ctx, const rtp::session_message&, const endpoint& from)
//   r.on_rtp(ctx, const packet_ref&, const rtp::packet_view&, const endpoint& from)
//   r.on_rtcp(ctx, bytes_view compound, const endpoint& from)
//   r.on_timer(ctx)                                         every node tick (~20 ms)
//   r.stats() -> const relay_stats&
#pragma once

#include "onair/core/media_frame.hpp"
#include "onair/core/packet_buffer.hpp"
#include "onair/rtp/packet.hpp"
#include "onair/rtp/session_message.hpp"
#include "onair/transport/concepts.hpp"

#include <chrono>
#include <concepts>
#include <cstdint>

namespace onair::relay {

using transport::endpoint;

/// Counters every relay policy keeps; the node reports them.
struct relay_stats {
    std::uint64_t rtp_forwarded = 0;       ///< datagrams sent to subscribers
    std::uint64_t bytes_forwarded = 0;
    std::uint64_t unknown_stream = 0;      ///< RTP whose SSRC no publisher announced
    std::uint64_t unauthorized = 0;        ///< RTP for a known SSRC from another address
    std::uint64_t keyframe_requests = 0;   ///< PLIs sent to publishers
    std::uint64_t keyframe_requests_suppressed = 0; ///< asked for, but within 300 ms of the last
    std::uint64_t refused_sessions = 0;
    std::uint64_t unticketed_sessions = 0; ///< hellos refused: no ticket, or one the room service did not grant
    std::uint64_t malformed_rtcp = 0;
    std::uint64_t malformed_rtx = 0;        ///< RTX without an original sequence number
    std::uint64_t unsolicited_rtx = 0;      ///< RTX for a packet the relay was not missing (dropped)
    std::uint64_t duplicates = 0;           ///< media packets already received (dropped)
    std::uint64_t nack_requests = 0;        ///< sequence numbers subscribers asked for
    std::uint64_t retransmissions = 0;      ///< RTX packets sent to subscribers from the cache
    std::uint64_t retransmission_bytes = 0; ///< their datagram bytes
    std::uint64_t upstream_nacks = 0;       ///< sequence numbers asked of publishers
    std::uint64_t upstream_recovered = 0;   ///< holes of the publisher leg filled by RTX
    std::uint64_t fec_recovered = 0;        ///< packets of the publisher leg rebuilt from its FlexFEC
    std::uint64_t fec_sent = 0;             ///< FlexFEC packets sent to subscribers
    std::uint64_t leg_fec_sent = 0;         ///< of fec_sent, a renumbered leg's own (computed over its numbers)
    std::uint64_t fec_bytes = 0;            ///< their datagram bytes
    std::uint64_t malformed_fec = 0;        ///< FlexFEC packets from publishers that failed to parse (dropped)
    std::uint64_t receiver_reports = 0;     ///< RRs sent to publishers
    std::uint64_t red_rebuilt = 0;          ///< audio packets of the publisher leg rebuilt from RED redundancy
    std::uint64_t malformed_red = 0;        ///< RED audio packets whose blocks failed to parse (forwarded as they are)
    std::uint64_t transport_feedback_sent = 0; ///< transport-wide feedback messages sent to publishers
    std::uint64_t padding_received = 0;     ///< padding-only packets from publishers (probes; dropped)
    std::uint64_t subscriber_feedback = 0;  ///< transport-wide feedback messages from subscribers
    std::uint64_t padding_sent = 0;         ///< padding-only probe packets sent to subscribers
    std::uint64_t layer_dropped = 0;        ///< video packets a subscriber's layer selection withheld
    std::uint64_t layer_fills = 0;          ///< padding-only packets sent in the place of a late withheld packet
    std::uint64_t layer_unparsed = 0;       ///< video packets without a readable descriptor (not sent to selecting subscribers)
    std::uint64_t retransmissions_limited = 0; ///< subscriber NACKs not answered: over the leg's repair budget
    std::uint64_t layer_changes = 0;        ///< subscriber layer targets changed by the leg's estimate
    std::uint64_t layer_probes = 0;         ///< probes a leg sent at the rate of the next layer up
    std::uint64_t retransmissions_suppressed = 0; ///< subscriber NACKed numbers not answered: a copy of a NACK just answered
};

namespace detail {
/// The smallest context a relay policy may be given; used to check models.
struct context_archetype {
    void send(const endpoint&, rtp::bytes_view) {}
    void send(const endpoint&, rtp::bytes_view, rtp::bytes_view) {}
    void send_session(const endpoint&, const rtp::session_message&) {}
    void request_keyframe(const endpoint&, std::uint32_t) {}
    void deliver(const rtp::stream_description&, media_kind, const rtp::packet_view&) {}
    std::chrono::steady_clock::time_point now() const { return {}; }
    packet_ref acquire() { return {}; }
};
} // namespace detail

template <class R>
concept relay_policy = requires(R& r, const R& cr, detail::context_archetype& ctx, const rtp::session_message& m,
                                const endpoint& from, const packet_ref& pkt, const rtp::packet_view& pv,
                                rtp::bytes_view compound) {
    r.on_session(ctx, m, from);
    r.on_rtp(ctx, pkt, pv, from);
    r.on_rtcp(ctx, compound, from);
    r.on_timer(ctx);
    { cr.stats() } -> std::convertible_to<const relay_stats&>;
};

/// The do-nothing relay: accepts every event and forwards nothing.
class null {
public:
    template <class Ctx> void on_session(Ctx&, const rtp::session_message&, const endpoint&) {}
    template <class Ctx> void on_rtp(Ctx&, const packet_ref&, const rtp::packet_view&, const endpoint&) {}
    template <class Ctx> void on_rtcp(Ctx&, rtp::bytes_view, const endpoint&) {}
    template <class Ctx> void on_timer(Ctx&) {}
    const relay_stats& stats() const noexcept { return stats_; }

private:
    relay_stats stats_;
};

} // namespace onair::relay
