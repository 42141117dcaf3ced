// onair — send-side bandwidth estimation: one hop's target bitrate from transport-wide
// feedback.
//
// The sender stamps every packet with a transport-wide sequence number and records it here
// when it leaves the pacer (on_sent: size, send time, probe cluster). The receiving end of
// the hop reports arrival times (transport-wide feedback, rtp/transport_feedback.hpp); each
// report goes through on_feedback as a list of (sequence, received, arrival) and drives:
// - the delay-based estimate (delay_based_bwe.hpp: groups -> trendline -> AIMD), fed with
//   the acknowledged throughput (bytes received over the last 500 ms of arrival time). At
//   an over-use with a standing queue (the newest packet's one-way delay more than 60 ms
//   over the least of the last 5-10 s) the decrease starts from the last 150 ms of
//   arrivals instead: a queued path delivers at its own rate, which the longer window,
//   still holding the faster sending from before, overstates (after a capacity drop it
//   took three or four decreases, with the queue full meanwhile, to get down);
// - the loss-based estimate: per at least 20 reported packets, loss under 2 % lets it grow
//   8 % a second, loss over 10 % cuts it by half the loss fraction (at most once per
//   300 ms + RTT), in between it holds; it never goes above the delay-based one plus
//   headroom, so it only ever lowers the target;
// - probing: a probe cluster is a burst at a chosen rate (the pacer sends it, padding if
//   need be); its result = min(send rate, receive rate) of the cluster's packets, or 95 %
//   of the receive rate when the receiver got clearly less than was sent. A valid result
//   above the estimate sets it at once: that is the fast ramp-up. The probe controller
//   probes at 3x and 6x the start bitrate, then doubles while each probe comes back at
//   least 70 % of what it asked, and after a large drop probes once back towards the rate
//   before it. A sender may also ask for one probe at a rate it would use
//   (request_probe): a relay leg whose next layer does not fit the estimate. Such a probe
//   that saturates the path also brings an estimate that grew past what got through back
//   down to it (an application-limited sender's estimate grows unchecked). Periodic probes
//   (send_side_bwe_config::periodic_probe) look for capacity that grew: taken only when the
//   path carried them as sent, so a full path, shared or not, is left as it is.
// target = clamp(min(delay-based, loss-based), min_bps, max_bps).
//
// Feedback is untrusted: entries for sequence numbers never sent (or too old to be held)
// are counted `unknown`, packets already acknowledged `duplicates`, and a message whose
// arrival times run backwards by more than a second or span more than 10 s of time for
// 500 ms of sending is `absurd` and ignored whole. None of them move the estimate.
//
// Memory: the send history (8 bytes a packet) and the throughput window (6 bytes an
// arrival), allocated at construction (a relay keeps an estimator per subscriber: 512 of
// each, 7 KB). A feedback message is read where it lies (parsed once to check it, once to
// take it), not copied.
#pragma once

#include "onair/qos/delay_based_bwe.hpp"
#include "onair/rtp/sequence.hpp"
#include "onair/rtp/transport_feedback.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

namespace onair::qos {

struct send_side_bwe_config {
    std::int64_t start_bps = 300'000;
    std::int64_t min_bps = 30'000;
    std::int64_t max_bps = 10'000'000;
    /// Sent packets remembered (a power of two, 64 to 65536: feedback names them by 16-bit
    /// numbers). Send times are kept to 32 bits of microseconds, so a packet is also
    /// forgotten 18 to 36 minutes after it was sent (feedback comes within seconds).
    std::size_t history = 8192;
    /// Of arrival time, for the acknowledged rate (at most 60 s).
    std::chrono::microseconds throughput_window{500'000};
    /// Arrivals the throughput window holds at most (beyond that it spans less time).
    std::size_t throughput_packets = 4096;
    bool probing = true;
    /// The smallest probe cluster: enough packets for a result (five at least) of the sizes
    /// the sender probes with. A host probes with media and 1200-byte padding; a relay leg
    /// with padding-only packets of under 300 bytes, and on a slow link every byte of a
    /// probe is queue the viewer's video waits behind.
    std::size_t probe_min_bytes = 6'000;
    /// A probe's result waits until feedback has covered the whole cluster. A result from
    /// its first packets sets their bytes against bursts not all reported yet: on a relay
    /// leg, whose probe padding goes out in 10 ms bursts, that read 70-80 % of the rate sent.
    /// Off for the host (5 ms bursts of media and padding): there the earlier result is
    /// close enough and comes sooner, and waiting let a large probe overfill the queue on
    /// the RFC 8867 ramp (docs/benchmarks.md).
    bool probe_whole_cluster = false;
    /// While no over-use was seen for this long (and no probe for as long), a periodic probe
    /// checks for capacity the additive increase near the learned capacity would take many
    /// seconds to find (0 = off). It asks for the target times periodic_probe_gain and is
    /// taken only if the path carried it as sent (arrivals at least 95 % of the rate sent):
    /// a probe into a full path, shared or not, changes nothing, so it takes no share from
    /// other flows. While probes are carried, the next asks for gain times more; the first
    /// that is not ends the chain at 90 % of what got through (the path had room, and that
    /// reading is its rate). See docs/benchmarks.md, "Congestion control".
    std::chrono::microseconds periodic_probe{2'000'000};
    double periodic_probe_gain = 1.5;
    /// How long a periodic probe lasts at least: longer than a start-up probe's 15 ms, to
    /// read over the other flows' frame bursts (30 fps: 33 ms apart).
    std::chrono::microseconds periodic_probe_duration{45'000};
    /// An over-use seen with more queuing delay than this (the newest acknowledged packet's
    /// one-way delay over the least of the last 5-10 s) is a standing queue: the decrease
    /// then starts from the rate of the last 150 ms of arrivals, the path's own, and cuts
    /// deeper the longer the queue (below), and is not held back by the one-decrease-per-
    /// round-trip rule.
    std::chrono::microseconds standing_queue{60'000};
    /// Over a standing queue the decrease factor is 0.85 less this much per second of queue
    /// beyond standing_queue, down to standing_beta_min: a 300 ms queue then drains in about
    /// a second instead of two (0.85 of the path's rate empties it at 15 % a second).
    double standing_beta_per_s = 3.0;
    double standing_beta_min = 0.5;
};

struct send_side_bwe_stats {
    std::int64_t target_bps = 0;
    std::int64_t delay_based_bps = 0;
    std::int64_t loss_based_bps = 0;
    std::int64_t acked_bps = 0;
    double loss = 0;                 ///< fraction lost over the last loss window
    double trend = 0;                ///< modified trend (ms) and the detector threshold
    double threshold = 0;
    bandwidth_usage usage = bandwidth_usage::normal;
    std::uint64_t feedbacks = 0;     ///< feedback messages taken
    std::uint64_t acked = 0;         ///< packets reported received
    std::uint64_t lost = 0;          ///< packets reported not received (and not received since)
    std::uint64_t late = 0;          ///< reported lost, then received (reordering across a report)
    std::uint64_t unknown = 0;       ///< entries for packets not in the send history
    std::uint64_t duplicates = 0;    ///< entries for packets already acknowledged
    std::uint64_t absurd = 0;        ///< whole messages ignored for impossible times
    std::uint64_t malformed = 0;     ///< messages that did not parse
    std::uint64_t repeated = 0;      ///< a message received twice (same count and base)
    std::uint64_t overuses = 0;      ///< decreases of the delay-based estimate
    std::uint64_t probes_started = 0;
    std::uint64_t probe_results = 0; ///< clusters that produced a valid estimate
    std::uint64_t probes_requested = 0; ///< of probes_started, asked for by request_probe
    std::uint64_t probe_lowered = 0;    ///< requested probes that showed the estimate above the path
    std::uint64_t probes_saturated = 0; ///< periodic probes that found no spare capacity (left unused)
    std::uint64_t standing_decreases = 0; ///< of overuses, those cut from the recent rate (a standing queue)
    std::int64_t queue_delay_us = 0;    ///< one-way delay of the newest acknowledged packet over the least seen
};

/// A burst the pacer should send: at `bitrate_bps` until both `min_bytes` and `min_duration`.
struct probe_request {
    std::int32_t id = 0;
    std::int64_t bitrate_bps = 0;
    std::size_t min_bytes = 0;
    std::chrono::microseconds min_duration{15'000};
    std::size_t min_packets = 5;
};

/// Thread safety: none; one estimator per outgoing hop, used on the network thread.
class send_side_bwe {
public:
    using clock = std::chrono::steady_clock;
    using time_point = clock::time_point;

    send_side_bwe() : send_side_bwe(send_side_bwe_config{}) {}
    explicit send_side_bwe(const send_side_bwe_config& c) : cfg_(sanitize(c)), aimd_(aimd_config(cfg_)) {
        history_.resize(cfg_.history);
        window_at_.resize(std::max<std::size_t>(cfg_.throughput_packets, 2));
        window_bytes_.resize(window_at_.size());
        loss_based_ = cfg_.start_bps;
        target_ = cfg_.start_bps;
    }

    // ---- sending side ----

    /// A packet left the pacer with this transport-wide sequence number (`bytes`: its size,
    /// at most 4095 counted; datagrams are at most 1500).
    void on_sent(std::uint16_t transport_sequence, std::size_t bytes, time_point t, std::int32_t probe_cluster = -1) {
        const std::int64_t seq = send_unwrap_.unwrap(transport_sequence);
        const std::int64_t t_us = us(t);
        expire(t_us);
        // Numbers skipped since the newest: their slots may hold packets a whole number of
        // 65536 older, which the 16-bit numbers kept could not tell from them.
        if (newest_sent_ >= 0 && seq > newest_sent_ + 1)
            for (std::int64_t x = std::max(newest_sent_ + 1, seq - static_cast<std::int64_t>(history_.size()) + 1); x < seq; ++x)
                slot(x).valid = false;
        const bool probe = probe_cluster >= 0 && probe_cluster == cluster_.id;
        if (probe && cluster_.first_seq < 0) cluster_.first_seq = seq;
        sent& s = slot(seq);
        s = sent{};
        s.send_us = static_cast<std::uint32_t>(t_us);
        s.seq = transport_sequence;
        s.bytes = std::min<std::size_t>(bytes, max_sent_bytes) & max_sent_bytes;
        s.probe = probe;
        s.valid = true;
        if (probe && !cluster_.complete) {
            if (cluster_.sent_bytes == 0) cluster_.sent_first = t_us;
            cluster_.sent_bytes += bytes;
            cluster_.sent_last = t_us;
            cluster_.last_seq = seq;
            cluster_.complete = cluster_.sent_bytes >= cluster_.min_bytes && cluster_.sent_last - cluster_.sent_first >= cluster_.min_duration;
        }
        if (!started_) start(t_us);
        newest_sent_ = seq;
        newest_send_us_ = std::max(newest_send_us_, t_us);
    }

    /// Probe clusters due now, for the pacer (call after on_sent/on_feedback; each is
    /// returned once).
    std::optional<probe_request> next_probe(time_point now) {
        if (!cfg_.probing || !started_) return std::nullopt;
        const std::int64_t t = us(now);
        if (pending_probes_ == 0 && probe_in_flight_ < 0 && cfg_.periodic_probe.count() > 0 && target_ < cfg_.max_bps &&
            t - std::max(last_overuse_us_, probe_sent_us_) >= cfg_.periodic_probe.count()) {
            probe_rates_[0] = std::min(static_cast<std::int64_t>(static_cast<double>(target_) * cfg_.periodic_probe_gain), cfg_.max_bps);
            pending_probes_ = 1;
            checking_probe_ = true;
            chain_steps_ = 0;
        }
        if (pending_probes_ == 0) return std::nullopt;
        if (probe_in_flight_ >= 0 && t - probe_sent_us_ < 1'000'000) return std::nullopt; // one at a time
        probe_request r;
        r.id = next_probe_id_++;
        r.bitrate_bps = std::min(probe_rates_[0], cfg_.max_bps);
        // 15 ms worth at that rate, and enough for the packets a result needs.
        r.min_bytes = std::max<std::size_t>(static_cast<std::size_t>(r.bitrate_bps * 15 / 8'000), cfg_.probe_min_bytes);
        if (checking_probe_) r.min_duration = cfg_.periodic_probe_duration;
        std::copy(probe_rates_.begin() + 1, probe_rates_.end(), probe_rates_.begin());
        --pending_probes_;
        probe_in_flight_ = r.id;
        probe_asked_bps_ = r.bitrate_bps;
        probe_sent_us_ = t;
        cluster_ = {};
        cluster_.id = r.id;
        cluster_.min_bytes = r.min_bytes;
        cluster_.min_duration = r.min_duration.count();
        ++stats_.probes_started;
        return r;
    }

    /// Asks for one probe cluster at `bps`: for a sender that would use more if the path
    /// carried it (a relay leg whose next layer does not fit the estimate). Refused (false)
    /// before the first packet, with probing off, while another probe is pending or in
    /// flight, or when `bps` is not above the target. Its result raises the estimate as any
    /// probe's does, but starts no doubling: the caller asked for a rate, not for the ceiling.
    bool request_probe(std::int64_t bps) {
        if (!cfg_.probing || !started_ || pending_probes_ != 0 || probe_in_flight_ >= 0) return false;
        bps = std::min(bps, cfg_.max_bps);
        if (bps <= target_) return false;
        probe_rates_[0] = bps;
        pending_probes_ = 1;
        requested_probe_ = true;
        ++stats_.probes_requested;
        return true;
    }

    // ---- feedback ----

    /// One entry of transport-wide feedback, in the order of the message.
    struct feedback_entry {
        std::uint16_t sequence = 0;
        bool received = false;
        std::int64_t arrival_us = 0; ///< receiver's clock (only differences matter)
    };

    /// Takes one feedback message; returns false when it was ignored as absurd.
    template <class Entries>
    bool on_feedback(const Entries& entries, time_point now) {
        feedback_check c;
        for (const feedback_entry& e : entries) c.add(*this, e);
        if (!c.sane()) {
            ++stats_.absurd;
            return false;
        }
        take([&](auto&& f) {
            for (const feedback_entry& e : entries) f(e);
        }, us(now));
        return true;
    }

    /// Takes one RTCP transport-wide feedback message (its FCI, as rtp::rtcp::feedback
    /// holds it). A malformed message is counted and ignored; false when it was not taken.
    bool on_transport_feedback(rtp::bytes_view fci, time_point now) {
        rtp::twcc::feedback_header h;
        feedback_check c;
        const auto st = rtp::twcc::parse(fci, h, [&](std::uint16_t seq, bool received, std::int64_t arrival_us) {
            c.add(*this, feedback_entry{seq, received, arrival_us});
        });
        if (st != rtp::twcc::parse_status::ok) {
            ++stats_.malformed;
            return false;
        }
        if (have_feedback_count_ && h.feedback_count == last_feedback_count_ && h.base_sequence == last_base_) {
            ++stats_.repeated; // the same message twice (a duplicated datagram)
            return false;
        }
        have_feedback_count_ = true;
        last_feedback_count_ = h.feedback_count;
        last_base_ = h.base_sequence;
        if (!c.sane()) {
            ++stats_.absurd;
            return false;
        }
        take([&](auto&& f) {
            rtp::twcc::feedback_header again;
            (void)rtp::twcc::parse(fci, again, [&](std::uint16_t seq, bool received, std::int64_t arrival_us) {
                f(feedback_entry{seq, received, arrival_us});
            });
        }, us(now));
        return true;
    }

    /// Round-trip time of this hop (from RTCP or NACK timing).
    void set_rtt(std::chrono::microseconds rtt) noexcept {
        rtt_us_ = std::max<std::int64_t>(rtt.count(), 0);
        aimd_.set_rtt(rtt_us_);
    }

    /// The application's limits may change (e.g. the encoder's maximum).
    void set_bounds(std::int64_t min_bps, std::int64_t max_bps) noexcept {
        cfg_.min_bps = std::max<std::int64_t>(min_bps, 1'000);
        cfg_.max_bps = std::max(max_bps, cfg_.min_bps);
        target_ = std::clamp(target_, cfg_.min_bps, cfg_.max_bps);
    }

    std::int64_t target_bps() const noexcept { return target_; }
    const send_side_bwe_stats& stats() const noexcept { return stats_; }
    std::int64_t acked_bps() const noexcept { return acked_bps_; }

    /// Bytes this estimator takes: the object and its send history and throughput window.
    std::size_t memory_bytes() const noexcept {
        return sizeof(*this) + history_.capacity() * sizeof(sent) + window_at_.capacity() * sizeof(std::uint32_t) +
               window_bytes_.capacity() * sizeof(std::uint16_t);
    }

private:
    /// One sent packet. The send time is kept as its low 32 bits of microseconds and read
    /// back against the newest send time (send_time()); the number as its 16 bits.
    struct sent {
        std::uint32_t send_us = 0;
        std::uint16_t seq = 0;
        std::uint16_t bytes : 12 = 0;
        std::uint16_t valid : 1 = 0;
        std::uint16_t acked : 1 = 0;
        std::uint16_t reported_lost : 1 = 0;
        std::uint16_t probe : 1 = 0; ///< sent for the probe cluster current then
    };
    static_assert(sizeof(sent) == 8);
    static constexpr std::size_t max_sent_bytes = 0xfff;
    /// Packets sent this long before the newest are forgotten at the next sweep (one per
    /// span of sending, expire()), so that every send time kept is less than 2^32 us old.
    static constexpr std::int64_t send_time_span = std::int64_t{1} << 30; // about 18 minutes

    /// Absurd arrival times (see the header comment), entry by entry in message order.
    struct feedback_check {
        std::int64_t first_arrival = 0, last_arrival = 0, first_send = 0, last_send = 0;
        bool any = false;
        bool backwards = false;
        void add(const send_side_bwe& b, const feedback_entry& e) noexcept {
            if (backwards || !e.received) return;
            std::int64_t seq = 0;
            const sent* s = b.find(e.sequence, seq);
            if (!any) {
                first_arrival = last_arrival = e.arrival_us;
                any = true;
            }
            if (e.arrival_us < last_arrival - 1'000'000) { // a second backwards
                backwards = true;
                return;
            }
            last_arrival = std::max(last_arrival, e.arrival_us);
            if (s) {
                const std::int64_t send = b.send_time(*s);
                if (first_send == 0) first_send = send;
                first_send = std::min(first_send, send);
                last_send = std::max(last_send, send);
            }
        }
        bool sane() const noexcept {
            if (backwards) return false;
            if (!any) return true;
            return !(last_arrival - first_arrival > 10'000'000 && last_send - first_send < 500'000);
        }
    };

    /// Takes a checked message: for_each(f) calls f(const feedback_entry&) for each entry.
    template <class ForEach>
    void take(ForEach&& for_each, std::int64_t t) {
        ++stats_.feedbacks;
        std::uint64_t lost = 0, received = 0, late = 0;
        for_each([&](const feedback_entry& e) {
            std::int64_t seq = 0;
            sent* s = find(e.sequence, seq);
            if (!s) {
                ++stats_.unknown;
                return;
            }
            newest_reported_ = std::max(newest_reported_, seq);
            if (!e.received) {
                if (!s->acked && !s->reported_lost) {
                    s->reported_lost = true;
                    ++lost;
                }
                return;
            }
            if (s->acked) {
                ++stats_.duplicates;
                return;
            }
            s->acked = true;
            if (s->reported_lost) { // reordered across a report: not lost after all
                s->reported_lost = false;
                ++late;
            }
            ++received;
            on_acked(*s, seq, e.arrival_us);
        });
        stats_.acked += received;
        stats_.lost = stats_.lost + lost - std::min(stats_.lost + lost, late);
        stats_.late += late;
        // A late one was counted in a loss window as lost: take it back out (from the
        // current window; the past one was already acted on).
        loss_packets_ += received + lost - std::min(received, late);
        loss_lost_ -= std::min(loss_lost_, late);
        loss_lost_ += lost;
        update_loss_based(t);
        finish_probe(t);
        update_target(t);
    }

    struct cluster_state {
        std::int32_t id = -1;
        std::int64_t first_send = 0, last_send = 0, first_arrival = 0, last_arrival = 0;
        std::uint64_t bytes = 0;
        /// The sending side: what left the pacer under this id, and whether that is all of
        /// it (min_bytes and min_duration reached, the pacer's end rule) at `last_seq`.
        std::uint64_t sent_bytes = 0;
        std::int64_t sent_first = 0, sent_last = 0, last_seq = -1;
        /// The first packet sent under this id: a packet marked as a probe's belongs to this
        /// cluster when it is not older (numbers follow the sending order).
        std::int64_t first_seq = -1;
        std::size_t min_bytes = 0;
        std::int64_t min_duration = 0;
        bool complete = false;
        std::uint32_t first_bytes = 0, last_bytes = 0;
        std::size_t packets = 0;
    };

    static send_side_bwe_config sanitize(send_side_bwe_config c) noexcept {
        std::size_t h = 64;
        while (h < c.history && h < (1u << 16)) h <<= 1;
        c.history = h;
        c.min_bps = std::max<std::int64_t>(c.min_bps, 1'000);
        c.max_bps = std::max(c.max_bps, c.min_bps);
        c.start_bps = std::clamp(c.start_bps, c.min_bps, c.max_bps);
        if (c.throughput_window.count() <= 0) c.throughput_window = std::chrono::microseconds{500'000};
        c.throughput_window = std::min(c.throughput_window, std::chrono::microseconds{60'000'000});
        return c;
    }
    static aimd_rate_control::config aimd_config(const send_side_bwe_config& c) noexcept {
        aimd_rate_control::config a;
        a.min_bps = c.min_bps;
        a.max_bps = c.max_bps;
        return a;
    }
    static std::int64_t us(time_point t) noexcept {
        return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
    }

    void start(std::int64_t t) {
        started_ = true;
        aimd_.set_estimate(cfg_.start_bps, t);
        last_loss_increase_us_ = t;
        if (cfg_.probing) {
            probe_rates_ = {3 * cfg_.start_bps, 6 * cfg_.start_bps, 0};
            pending_probes_ = 2;
        }
    }

    sent& slot(std::int64_t seq) noexcept { return history_[static_cast<std::size_t>(seq) & (history_.size() - 1)]; }

    /// The sent packet a feedback sequence number stands for (nearest to the newest sent);
    /// `seq` gets its unwrapped number. Every slot of the last `history` numbers holds the
    /// packet of its number or is invalid (on_sent clears the slots of skipped numbers), so
    /// the 16-bit number tells it.
    const sent* find(std::uint16_t seq16, std::int64_t& seq) const noexcept {
        if (newest_sent_ < 0) return nullptr;
        const auto back = static_cast<std::uint16_t>(static_cast<std::uint16_t>(newest_sent_) - seq16);
        seq = newest_sent_ - static_cast<std::int64_t>(back);
        if (back >= history_.size() || seq < 0) return nullptr;
        const sent& s = history_[static_cast<std::size_t>(seq) & (history_.size() - 1)];
        return s.valid && s.seq == seq16 ? &s : nullptr;
    }
    sent* find(std::uint16_t seq16, std::int64_t& seq) noexcept {
        return const_cast<sent*>(std::as_const(*this).find(seq16, seq));
    }

    /// A kept packet's send time (microseconds): exact, as every one kept is less than 2^32
    /// microseconds older than the newest (expire()).
    std::int64_t send_time(const sent& s) const noexcept {
        return newest_send_us_ - static_cast<std::int64_t>(static_cast<std::uint32_t>(static_cast<std::uint32_t>(newest_send_us_) - s.send_us));
    }

    /// Before recording a packet sent at `t`: forgets every packet sent send_time_span or more
    /// before it, all of them after a pause that long, else in a sweep once per span. Between
    /// sweeps every packet kept was sent less than 3 spans (< 2^32 us) before the newest.
    void expire(std::int64_t t) noexcept {
        if (newest_send_us_ == INT64_MIN) {
            swept_us_ = t;
            return;
        }
        if (t - newest_send_us_ >= send_time_span || newest_send_us_ - t >= send_time_span) {
            for (sent& s : history_) s.valid = false;
            newest_send_us_ = t; // a clock gone back starts the reading over too
            swept_us_ = t;
            return;
        }
        if (t - swept_us_ < send_time_span) return;
        for (sent& s : history_)
            if (s.valid && send_time(s) < t - send_time_span) s.valid = false;
        swept_us_ = t;
    }

    /// Arrival `i` of the throughput window, read back against the newest arrival.
    std::int64_t arrival_time(std::size_t i) const noexcept {
        return last_arrival_us_ -
               static_cast<std::int64_t>(static_cast<std::uint32_t>(static_cast<std::uint32_t>(last_arrival_us_) - window_at_[i]));
    }

    void on_acked(const sent& s, std::int64_t seq, std::int64_t arrival_us) {
        const std::int64_t send_us = send_time(s);
        const auto bytes = static_cast<std::uint16_t>(s.bytes);
        // Acknowledged throughput over the last window of arrival time.
        if (last_arrival_us_ != INT64_MIN &&
            (arrival_us < last_arrival_us_ - 1'000'000 || arrival_us - last_arrival_us_ > cfg_.throughput_window.count())) {
            // The receiver's clock went back: start the window over. Or every arrival held
            // falls out of the window at this one: the same as popping them all.
            win_head_ = win_size_ = 0;
            win_bytes_ = 0;
        }
        last_arrival_us_ = std::max(last_arrival_us_, arrival_us);
        if (win_size_ == window_at_.size()) pop_window();
        const std::size_t tail = (win_head_ + win_size_) % window_at_.size();
        window_at_[tail] = static_cast<std::uint32_t>(arrival_us);
        window_bytes_[tail] = bytes;
        ++win_size_;
        win_bytes_ += bytes;
        while (win_size_ > 1 && arrival_time(win_head_) < last_arrival_us_ - cfg_.throughput_window.count()) pop_window();
        if (win_size_ > 1) {
            const std::int64_t span = std::max<std::int64_t>(last_arrival_us_ - arrival_time(win_head_), 150'000);
            acked_bps_ = static_cast<std::int64_t>(static_cast<double>(win_bytes_) * 8e6 / static_cast<double>(span));
        }
        // Probe cluster accounting.
        if (s.probe && cluster_.first_seq >= 0 && seq >= cluster_.first_seq) {
            if (cluster_.packets == 0) {
                cluster_.first_send = cluster_.last_send = send_us;
                cluster_.first_arrival = cluster_.last_arrival = arrival_us;
                cluster_.first_bytes = bytes;
            }
            cluster_.first_send = std::min(cluster_.first_send, send_us);
            cluster_.last_send = std::max(cluster_.last_send, send_us);
            cluster_.first_arrival = std::min(cluster_.first_arrival, arrival_us);
            if (arrival_us >= cluster_.last_arrival) {
                cluster_.last_arrival = arrival_us;
                cluster_.last_bytes = bytes;
            }
            cluster_.bytes += bytes;
            ++cluster_.packets;
        }
        track_queue(send_us, arrival_us);
        // Delay-based detector.
        if (const auto d = groups_.add(send_us, arrival_us)) {
            const auto usage = trend_.update(d->send_delta_us, d->arrival_delta_us, d->arrival_us);
            const std::int64_t before = aimd_.estimate();
            // With a standing queue the path delivers at its own rate whatever was sent: the
            // arrivals of the last 150 ms measure it, where the 500 ms window still holds the
            // faster sending from before the queue built (after a capacity drop, 2-4 times
            // the path's rate: as many decreases, and the queue full meanwhile). Within a
            // second of a probe that raised the estimate, the 500 ms window still holds the
            // slower sending from before it; the recent rate, if higher, is what the path
            // carried since.
            std::int64_t acked = acked_bps_;
            bool standing = false;
            if (usage == bandwidth_usage::overusing)
                if (const std::int64_t recent = recent_rate_bps(150'000); recent > 0) {
                    if (queue_us_ > cfg_.standing_queue.count()) {
                        acked = recent;
                        standing = true;
                    } else if (send_us - probe_raised_us_ < 1'000'000) {
                        acked = std::max(acked, recent);
                    }
                }
            // AIMD runs on the sender's clock: the newest acknowledged packet's send time
            // stands for "now" (feedback comes about one RTT later for every packet).
            const double beta =
                standing ? std::max(cfg_.standing_beta_min,
                                    0.85 - cfg_.standing_beta_per_s * static_cast<double>(queue_us_ - cfg_.standing_queue.count()) / 1e6)
                         : 0.0;
            aimd_.update(usage, acked, send_us, standing, beta);
            if (usage == bandwidth_usage::overusing) last_overuse_us_ = send_us;
            if (aimd_.estimate() < before && usage == bandwidth_usage::overusing) {
                ++stats_.overuses;
                if (standing) ++stats_.standing_decreases;
                note_drop(before, aimd_.estimate(), send_us);
            }
            stats_.usage = usage;
            stats_.trend = trend_.modified_trend();
            stats_.threshold = trend_.threshold_ms();
        }
    }

    /// The least one-way delay (arrival on the receiver's clock minus send time) of the last
    /// 5 to 10 s stands for an empty queue; the newest packet's excess over it is the queue.
    void track_queue(std::int64_t send_us, std::int64_t arrival_us) noexcept {
        const std::int64_t offset = arrival_us - send_us;
        if (send_us - base_bucket_us_ >= 5'000'000 || base_now_ == INT64_MAX) {
            base_prev_ = base_now_;
            base_now_ = offset;
            base_bucket_us_ = send_us;
        }
        base_now_ = std::min(base_now_, offset);
        queue_us_ = std::max<std::int64_t>(offset - std::min(base_now_, base_prev_), 0);
        stats_.queue_delay_us = queue_us_;
    }

    /// Bytes acknowledged over the last `window_us` of arrival time (0: fewer than 50 ms of
    /// arrivals held).
    std::int64_t recent_rate_bps(std::int64_t window_us) const noexcept {
        if (win_size_ < 2) return 0;
        std::uint64_t bytes = 0;
        std::int64_t oldest = last_arrival_us_;
        for (std::size_t k = win_size_; k-- > 0;) {
            const std::size_t i = (win_head_ + k) % window_at_.size();
            const std::int64_t a = arrival_time(i);
            if (a < last_arrival_us_ - window_us) break;
            oldest = a;
            bytes += window_bytes_[i];
        }
        const std::int64_t span = last_arrival_us_ - oldest;
        if (span < 50'000) return 0;
        return static_cast<std::int64_t>(static_cast<double>(bytes) * 8e6 / static_cast<double>(span));
    }

    void pop_window() noexcept {
        win_bytes_ -= window_bytes_[win_head_];
        win_head_ = (win_head_ + 1) % window_at_.size();
        --win_size_;
    }

    void note_drop(std::int64_t before, std::int64_t after, std::int64_t t) noexcept {
        if (after < before * 2 / 3) { // a large drop: remember where it came from
            rate_before_drop_ = before;
            drop_us_ = t;
        }
    }

    void finish_probe(std::int64_t t) {
        if (probe_in_flight_ < 0) return;
        const bool timed_out = t - probe_sent_us_ > 1'000'000;
        // With probe_whole_cluster, and for a periodic probe (whose one reading decides),
        // only once feedback has covered the whole cluster.
        const bool whole = cluster_.complete && newest_reported_ >= cluster_.last_seq;
        if ((cfg_.probe_whole_cluster || checking_probe_) && !timed_out && !whole) return;
        if (cluster_.packets >= 5 && cluster_.bytes > 0) {
            const std::int64_t send_span = cluster_.last_send - cluster_.first_send;
            const std::int64_t recv_span = cluster_.last_arrival - cluster_.first_arrival;
            if (send_span > 0 && recv_span > 0 && send_span < 1'000'000 && recv_span < 1'000'000) {
                const double send_bps = static_cast<double>(cluster_.bytes - cluster_.last_bytes) * 8e6 / static_cast<double>(send_span);
                const double recv_bps = static_cast<double>(cluster_.bytes - cluster_.first_bytes) * 8e6 / static_cast<double>(recv_span);
                // Arriving faster than sent is a measurement artefact: the cluster's first
                // packets waited in a queue the later ones found emptier. A periodic probe
                // allows less of that: it is taken only when the path carried it as sent.
                if (checking_probe_ && recv_bps > 1.2 * send_bps) {
                    end_probe(); // an artefact: no reading
                    return;
                }
                if (checking_probe_ && recv_bps < 0.95 * send_bps) {
                    // Not carried as sent. After a step of the same chain was, the path has
                    // room and this reading is what it carries.
                    probe_result(chain_steps_ > 0 ? static_cast<std::int64_t>(0.9 * recv_bps) : 0, true, t);
                    return;
                }
                if (recv_bps <= 2 * send_bps) {
                    double result = std::min(send_bps, recv_bps);
                    const bool saturated = recv_bps < 0.9 * send_bps;
                    if (saturated) result = 0.95 * recv_bps; // the link was saturated
                    probe_result(static_cast<std::int64_t>(result), saturated, t);
                    return;
                }
            }
        }
        if (timed_out) end_probe();
    }

    /// Ends the flying probe without a result.
    void end_probe() noexcept {
        probe_in_flight_ = -1;
        requested_probe_ = false;
        checking_probe_ = false;
        chain_steps_ = 0;
    }

    void probe_result(std::int64_t bps, bool saturated, std::int64_t t) {
        ++stats_.probe_results;
        probe_in_flight_ = -1;
        const bool requested = std::exchange(requested_probe_, false);
        const bool checking = std::exchange(checking_probe_, false);
        if (checking && saturated) { // the path carries no more than is sent
            ++stats_.probes_saturated;
            if (bps > aimd_.estimate()) { // the end of a chain that found room: up to what got through
                aimd_.set_estimate(bps, t);
                probe_raised_us_ = t;
                loss_based_ = std::max(loss_based_, std::min(bps, cfg_.max_bps));
            }
            chain_steps_ = 0;
            return;
        }
        if (bps > aimd_.estimate()) {
            aimd_.set_estimate(bps, t);
            probe_raised_us_ = t;
            aimd_.forget_capacity(); // the path carries more than was learned at the last over-use
        } else if (requested && saturated) {
            // The rate asked for did not get through: what did is what the path carries. An
            // application-limited sender's estimate may have grown past it unseen (nothing
            // it sent filled the path); it comes back down, never below what is acknowledged.
            const std::int64_t carried = std::max(bps, acked_bps_);
            if (carried < aimd_.estimate()) {
                aimd_.set_estimate(carried, t);
                ++stats_.probe_lowered;
            }
        }
        loss_based_ = std::max(loss_based_, std::min(bps, cfg_.max_bps));
        // Exponential probing while probes come back close to what they asked.
        if (!requested && bps >= probe_asked_bps_ * 7 / 10 && probe_asked_bps_ < cfg_.max_bps && pending_probes_ == 0) {
            probe_rates_[0] = std::min(checking ? static_cast<std::int64_t>(static_cast<double>(bps) * cfg_.periodic_probe_gain) : 2 * bps,
                                       cfg_.max_bps);
            pending_probes_ = 1;
            checking_probe_ = checking;
            chain_steps_ = checking ? chain_steps_ + 1 : 0;
        }
    }

    void update_loss_based(std::int64_t t) {
        if (loss_packets_ < 20) return;
        const double loss = static_cast<double>(loss_lost_) / static_cast<double>(loss_packets_);
        stats_.loss = loss;
        loss_packets_ = loss_lost_ = 0;
        if (loss < 0.02) {
            const double dt = std::min(static_cast<double>(t - last_loss_increase_us_) / 1e6, 1.0);
            loss_based_ = static_cast<std::int64_t>(static_cast<double>(loss_based_) * std::pow(1.08, std::max(dt, 0.0)) + 1000.0 * dt);
            last_loss_increase_us_ = t;
        } else if (loss > 0.10) {
            if (t - last_loss_decrease_us_ >= 300'000 + rtt_us_) {
                loss_based_ = static_cast<std::int64_t>(static_cast<double>(loss_based_) * (1.0 - 0.5 * loss));
                last_loss_decrease_us_ = t;
            }
            last_loss_increase_us_ = t;
        } else {
            last_loss_increase_us_ = t;
        }
    }

    void update_target(std::int64_t t) {
        const std::int64_t delay_based = aimd_.estimate();
        // The loss-based estimate only ever lowers the target: it may not run ahead of the
        // delay-based one (else a long loss-free spell would leave it far above the path).
        loss_based_ = std::clamp(loss_based_, cfg_.min_bps, std::max(delay_based, cfg_.min_bps));
        target_ = std::clamp(std::min(delay_based, loss_based_), cfg_.min_bps, cfg_.max_bps);
        // After a large drop, one probe back towards the rate before it, once the drop has
        // settled, finds out whether the capacity came back.
        if (cfg_.probing && rate_before_drop_ > 0 && pending_probes_ == 0 && probe_in_flight_ < 0 && t - drop_us_ > 3'000'000 &&
            t - drop_us_ < 10'000'000 && target_ < rate_before_drop_ * 2 / 3) {
            probe_rates_[0] = rate_before_drop_ * 85 / 100;
            pending_probes_ = 1;
            checking_probe_ = true;
            chain_steps_ = 0;
            rate_before_drop_ = 0;
        }
        stats_.target_bps = target_;
        stats_.delay_based_bps = delay_based;
        stats_.loss_based_bps = loss_based_;
        stats_.acked_bps = acked_bps_;
    }

    send_side_bwe_config cfg_;
    std::vector<sent> history_;
    bool have_feedback_count_ = false;
    std::uint8_t last_feedback_count_ = 0;
    std::uint16_t last_base_ = 0;
    rtp::seq_unwrapper send_unwrap_;
    std::int64_t newest_sent_ = -1;
    std::int64_t newest_send_us_ = INT64_MIN; ///< latest send time recorded
    std::int64_t swept_us_ = 0;               ///< when expire() last swept the history
    std::int64_t newest_reported_ = -1; ///< highest sequence feedback has covered (received or lost)
    bool started_ = false;

    inter_arrival groups_;
    trendline_estimator trend_;
    aimd_rate_control aimd_;

    // The throughput window, a ring of acknowledged packets: arrival times as their low 32
    // bits of microseconds, read back against the newest arrival (every one held arrived
    // less than two windows and a second before it: an arrival a whole window after the
    // newest empties the window, one a second before it starts it over), and sizes.
    std::vector<std::uint32_t> window_at_;
    std::vector<std::uint16_t> window_bytes_;
    std::size_t win_head_ = 0, win_size_ = 0;
    std::uint64_t win_bytes_ = 0;
    std::int64_t last_arrival_us_ = INT64_MIN;
    std::int64_t acked_bps_ = 0;

    std::int64_t loss_based_ = 0;
    std::uint64_t loss_packets_ = 0, loss_lost_ = 0;
    std::int64_t last_loss_increase_us_ = 0;
    std::int64_t last_loss_decrease_us_ = INT64_MIN / 2;
    std::int64_t rtt_us_ = 100'000;

    std::array<std::int64_t, 3> probe_rates_{};
    int pending_probes_ = 0;
    std::int32_t next_probe_id_ = 1;
    std::int32_t probe_in_flight_ = -1;
    std::int64_t probe_asked_bps_ = 0;
    bool requested_probe_ = false; ///< the pending or flying probe came from request_probe
    bool checking_probe_ = false;  ///< the pending or flying probe is periodic: taken only unsaturated
    int chain_steps_ = 0;          ///< periodic probes of the current chain the path carried
    std::int64_t probe_sent_us_ = 0;
    std::int64_t probe_raised_us_ = INT64_MIN / 2; ///< when a probe's result last raised the estimate
    cluster_state cluster_;
    std::int64_t rate_before_drop_ = 0;
    std::int64_t last_overuse_us_ = 0;
    std::int64_t drop_us_ = 0;

    // Queuing delay (track_queue): the least one-way delay offset of this and the last 5 s bucket.
    std::int64_t base_now_ = INT64_MAX, base_prev_ = INT64_MAX, base_bucket_us_ = 0;
    std::int64_t queue_us_ = 0;

    std::int64_t target_ = 0;
    send_side_bwe_stats stats_;
};

} // namespace onair::qos
