// onair — relay::downlink: the relay's sending end of one subscriber leg.
//
// A relay forwards one publisher's packets to many subscribers over links of their own.
// Each subscriber leg is its own congestion-controlled hop: every datagram the relay sends
// it (media, retransmissions, FEC, probes) carries the leg's own transport-wide sequence
// number, and the subscriber's transport-wide feedback drives a send-side estimator
// (qos::send_side_bwe) for that leg alone. The estimate chooses which layers the subscriber
// gets (relay::sfu); the relay does not queue media per subscriber, it forwards at once and
// sends less when the leg carries less.
//
// The forwarded packet is shared by all subscribers (one pooled buffer, also held by the
// caches), so it is never written to: the leg copies the packet's first bytes (RTP header
// with its extensions, plus whatever the caller rewrites there), writes its own sequence
// number into the copy and sends the copy and the untouched rest as one datagram (a
// two-buffer send).
//
// Probing. Media alone never shows that a leg could carry more than it is sent, so the
// estimator's probe clusters (at start, doubling while they succeed, after a large drop)
// are sent as padding-only packets on the stream's RTX SSRC through a qos::pacer used for
// probes only, at the cluster's rate in bursts of the node's tick. Subscribers drop them.
//
// Not thread-safe: owned by the relay policy, on the node's thread. Allocates nothing per
// packet.
#pragma once

#include "onair/qos/pacer.hpp"
#include "onair/qos/send_side_bwe.hpp"
#include "onair/rtp/packet.hpp"

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace onair::relay {

struct downlink_config {
    /// The leg's estimator. Its send history and throughput window are 512 packets (4 and
    /// 3 KB; feedback comes every 50 ms, about 50 packets at 8 Mbps), not the host's 8192 and
    /// 4096: a relay has one per subscriber. Probe clusters are at least 2.4 KB, not 6:
    /// padding-only packets are small; their results wait for the whole cluster.
    qos::send_side_bwe_config bwe = [] {
        qos::send_side_bwe_config c;
        c.history = 512;
        c.throughput_packets = 512;
        c.probe_min_bytes = 2'400; // about nine padding-only packets
        c.probe_whole_cluster = true;
        c.periodic_probe = std::chrono::microseconds{0}; // a leg probes for the next layer instead (request_probe)
        // A leg forwards key frames as they come (unpaced): a queue on it is often a key
        // frame's, not congestion, and the deeper cut over a long queue would take the leg
        // below the layer it just switched to.
        c.standing_beta_per_s = 0;
        return c;
    }();
    /// How often process() runs (the node's tick): the probe pacer's burst interval.
    std::chrono::microseconds tick{10'000};
};

/// The largest packet head a leg rewrites: an RTP header with CSRCs and extensions plus a
/// payload descriptor. A packet whose header is longer is sent unmeasured.
inline constexpr std::size_t max_rewritten_head = 160;

class downlink {
public:
    using clock = std::chrono::steady_clock;
    using time_point = clock::time_point;

    downlink() : downlink(downlink_config{}) {}
    explicit downlink(const downlink_config& c) : bwe_(c.bwe), prober_(prober_config(c)) {
        // Only probe clusters go through the pacer: its own rate never sends anything.
        prober_.set_rates(1, 0);
    }

    /// Sends `head` followed by `tail` as one datagram: send(bytes_view head, bytes_view tail).
    /// When `tseq_offset` is not 0 (where the transport-wide sequence element's value lies
    /// in `head`, as rtp::transport_sequence_offset reports it), the leg's next number is
    /// written there and the datagram is recorded for the estimator.
    template <class Send>
    void send(Send&& send, std::span<std::uint8_t> head, rtp::bytes_view tail, std::size_t tseq_offset, time_point now) {
        const std::size_t size = head.size() + tail.size();
        if (tseq_offset != 0 && tseq_offset + 2 <= head.size()) {
            const std::uint16_t seq = next_sequence_++;
            rtp::store_be16(head.data() + tseq_offset, seq);
            bwe_.on_sent(seq, size, now);
        } else {
            ++unmeasured_;
        }
        ++packets_;
        bytes_ += size;
        send(rtp::bytes_view(head.data(), head.size()), tail);
    }

    /// Sends a whole packet unchanged but for the leg's transport-wide sequence number.
    template <class Send>
    void send_packet(Send&& send, rtp::bytes_view packet, time_point now) {
        send_packet(send, packet, rtp::transport_sequence_offset(packet), now);
    }
    /// The same when the caller knows where the number is (0: nowhere), e.g. once for all
    /// the subscribers of a forwarded packet.
    template <class Send>
    void send_packet(Send&& send, rtp::bytes_view packet, std::size_t off, time_point now) {
        std::array<std::uint8_t, max_rewritten_head> head;
        const std::size_t n = off ? off + 2 : 0; // up to the end of the number is enough
        if (n == 0 || n > head.size()) {
            ++unmeasured_;
            ++packets_;
            bytes_ += packet.size();
            send(packet, rtp::bytes_view{});
            return;
        }
        std::memcpy(head.data(), packet.data(), n);
        this->send(send, std::span<std::uint8_t>(head.data(), n), packet.subspan(n), off, now);
    }

    /// The subscriber's transport-wide feedback (the FCI of an RTPFB FMT=15 message).
    /// Malformed, repeated or absurd messages are counted by the estimator and move nothing.
    bool on_feedback(rtp::bytes_view fci, time_point now) { return bwe_.on_transport_feedback(fci, now); }
    void set_rtt(std::chrono::microseconds rtt) noexcept { bwe_.set_rtt(rtt); }
    /// One probe cluster at `bps` on this leg, sent by the next process() (see
    /// qos::send_side_bwe::request_probe; false when refused).
    bool request_probe(std::int64_t bps) { return bwe_.request_probe(bps); }

    /// Runs the probe pacer: pad(std::size_t bytes, std::uint16_t transport_sequence) -> bytes
    /// sends one padding-only packet of about that size carrying that number (0: none sent).
    template <class Pad>
    void process(time_point now, Pad&& pad) {
        if (auto probe = bwe_.next_probe(now))
            prober_.add_probe_cluster(probe->id, probe->bitrate_bps, probe->min_bytes, probe->min_duration);
        if (!prober_.probing()) return;
        prober_.process(
            now, [](packet_ref&&, const qos::pacer_send_info&) {},
            [&](std::size_t want, const qos::pacer_send_info& info) -> std::size_t {
                const std::uint16_t seq = next_sequence_;
                const std::size_t n = pad(want, seq);
                if (n == 0) return 0;
                ++next_sequence_;
                ++padding_;
                ++packets_;
                bytes_ += n;
                bwe_.on_sent(seq, n, now, info.probe_cluster_id);
                return n;
            });
    }

    std::int64_t target_bps() const noexcept { return bwe_.target_bps(); }
    const qos::send_side_bwe& estimator() const noexcept { return bwe_; }
    std::uint64_t packets() const noexcept { return packets_; }
    std::uint64_t bytes() const noexcept { return bytes_; }
    std::uint64_t padding_packets() const noexcept { return padding_; }
    /// Datagrams sent without a transport-wide number (the estimator cannot see them).
    std::uint64_t unmeasured() const noexcept { return unmeasured_; }
    /// Bytes this leg takes: the object, its estimator's history and window, the probe
    /// pacer's slot (see downlink_config for the sizes).
    std::size_t memory_bytes() const noexcept {
        return sizeof(*this) + (bwe_.memory_bytes() - sizeof(bwe_)) + (prober_.memory_bytes() - sizeof(prober_));
    }

private:
    static qos::pacer_config prober_config(const downlink_config& c) noexcept {
        qos::pacer_config p;
        p.burst_interval = c.tick;
        p.max_packets = 1; // nothing is ever queued
        return p;
    }

    qos::send_side_bwe bwe_;
    qos::pacer prober_;
    std::uint16_t next_sequence_ = 0;
    std::uint64_t packets_ = 0;
    std::uint64_t bytes_ = 0;
    std::uint64_t padding_ = 0;
    std::uint64_t unmeasured_ = 0;
};

} // namespace onair::relay
