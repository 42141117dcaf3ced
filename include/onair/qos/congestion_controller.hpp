// onair — the sending end of one congestion-controlled hop: pacer + bandwidth estimator +
// transport-wide sequence numbers.
//
// Every packet of the hop (media, retransmissions, FEC, padding) goes in through enqueue()
// and leaves through process() in pacing order. On the way out it is stamped with the next
// transport-wide sequence number (in place, in its RFC 8285 element) and recorded with its
// size, send time and probe cluster in the estimator's history; transport-wide feedback
// from the far end (on_feedback) then moves the target bitrate. The pacer runs at
// pacing_factor (2.5) x the target, so a frame's packets leave in a few milliseconds but
// never as one line-rate burst; probe clusters the estimator asks for are handed to the
// pacer, which sends them at their own rate with queued media or padding.
//
// split_bitrate() divides a target among audio (fixed: what its encoder produces, RED
// included), FEC (its share of video at the current protection) and video (the rest, within
// the encoder's bounds).
//
// Not thread-safe: one per hop, on the network thread. Allocates nothing per packet.
#pragma once

#include "onair/core/packet_buffer.hpp"
#include "onair/qos/pacer.hpp"
#include "onair/qos/send_side_bwe.hpp"
#include "onair/rtp/packet.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace onair::qos {

struct congestion_controller_config {
    send_side_bwe_config bwe{};
    pacer_config pacer{};
    double pacing_factor = 2.5;
};

class congestion_controller {
public:
    using clock = std::chrono::steady_clock;
    using time_point = clock::time_point;

    congestion_controller() : congestion_controller(congestion_controller_config{}) {}
    explicit congestion_controller(const congestion_controller_config& c)
        : cfg_(c), bwe_(c.bwe), pacer_(c.pacer) {
        apply_rates();
    }

    /// Queues a packet (it must carry a transport-wide sequence element to be measured).
    bool enqueue(packet_ref p, pacer_priority prio, time_point now) { return pacer_.enqueue(std::move(p), prio, now); }

    /// Sends what the pacer releases now. send(std::span<const std::uint8_t>) puts a datagram
    /// on the wire; pad(std::size_t bytes) -> packet_ref builds a padding packet of about
    /// that size (with a transport-wide sequence element), or an empty ref for none.
    template <class Send, class Pad>
    void process(time_point now, Send&& send, Pad&& pad) {
        if (auto probe = bwe_.next_probe(now)) pacer_.add_probe_cluster(probe->id, probe->bitrate_bps, probe->min_bytes, probe->min_duration);
        pacer_.process(
            now, [&](packet_ref&& p, const pacer_send_info& info) { transmit(p, info, now, send); },
            [&](std::size_t want, const pacer_send_info& info) -> std::size_t {
                packet_ref p = pad(want);
                if (!p) return 0;
                const std::size_t n = p.size();
                ++padding_;
                transmit(p, info, now, send);
                return n;
            });
    }

    time_point next_process_time(time_point now) const noexcept { return pacer_.next_process_time(now); }

    /// A transport-wide feedback message's FCI from the far end of the hop.
    bool on_feedback(rtp::bytes_view fci, time_point now) {
        const bool taken = bwe_.on_transport_feedback(fci, now);
        if (taken) apply_rates();
        return taken;
    }
    void set_rtt(std::chrono::microseconds rtt) noexcept { bwe_.set_rtt(rtt); }
    void set_bounds(std::int64_t min_bps, std::int64_t max_bps) noexcept {
        bwe_.set_bounds(min_bps, max_bps);
        apply_rates();
    }

    std::int64_t target_bps() const noexcept { return bwe_.target_bps(); }
    const send_side_bwe& estimator() const noexcept { return bwe_; }
    const pacer& pacing() const noexcept { return pacer_; }
    std::uint64_t unstamped() const noexcept { return unstamped_; }
    std::uint64_t padding_packets() const noexcept { return padding_; }

private:
    template <class Send>
    void transmit(packet_ref& p, const pacer_send_info& info, time_point now, Send& send) {
        const std::uint16_t seq = next_sequence_;
        if (rtp::set_transport_sequence(p.bytes(), seq)) {
            ++next_sequence_;
            bwe_.on_sent(seq, p.size(), now, info.probe_cluster_id);
        } else {
            ++unstamped_; // sent, but the estimator cannot see it
        }
        send(std::span<const std::uint8_t>(p.bytes().data(), p.size()));
    }

    void apply_rates() noexcept {
        const auto target = static_cast<double>(bwe_.target_bps());
        pacer_.set_rates(static_cast<std::int64_t>(target * cfg_.pacing_factor), 0);
    }

    congestion_controller_config cfg_;
    send_side_bwe bwe_;
    pacer pacer_;
    std::uint16_t next_sequence_ = 0;
    std::uint64_t unstamped_ = 0;
    std::uint64_t padding_ = 0;
};

/// How a hop's target bitrate is shared (bits per second).
struct bitrate_split {
    std::int64_t audio_bps = 0;
    std::int64_t video_bps = 0;
    std::int64_t fec_bps = 0;
};

/// Audio takes what it needs (it is small and the most sensitive), FEC takes
/// `fec_fraction` of video on top of it, video the rest within [min_video, max_video].
inline bitrate_split split_bitrate(std::int64_t target_bps, std::int64_t audio_bps, double fec_fraction, std::int64_t min_video_bps,
                                   std::int64_t max_video_bps) noexcept {
    bitrate_split s;
    s.audio_bps = std::max<std::int64_t>(audio_bps, 0);
    const double rest = static_cast<double>(std::max<std::int64_t>(target_bps - s.audio_bps, 0));
    const double video = rest / (1.0 + std::max(fec_fraction, 0.0));
    s.video_bps = std::clamp(static_cast<std::int64_t>(video), min_video_bps, std::max(max_video_bps, min_video_bps));
    s.fec_bps = static_cast<std::int64_t>(static_cast<double>(s.video_bps) * std::max(fec_fraction, 0.0));
    return s;
}

} // namespace onair::qos
