// onair — RTP receiver statistics (RFC 3550 A.1, A.3, A.8) for RTCP receiver reports, and
// the round-trip time a sender reads from the report blocks it gets back (RFC 3550 §6.4.1).
//
// stream_statistics follows the RFC's algorithms:
// - A.1: a source is valid after min_sequential packets in sequence (1 by default: the first
//   packet counts); the highest sequence number is extended by a cycle count on wrap;
//   a jump of max_dropout or more is ignored unless the next packet follows it, which
//   restarts the numbering (counters included); packets up to max_misorder behind are
//   reordered or duplicate packets.
// - A.3: expected = extended highest - base + 1; cumulative lost = expected - received
//   (duplicates count as received, so it can go negative); fraction lost over the interval
//   since the previous report, 0 when packets were gained.
// - A.8: interarrival jitter in RTP units, J += (|D| - J) / 16, kept as 16 * J in an integer.
//   Like WebRTC, retransmissions and packets with the previous packet's RTP timestamp (the
//   rest of a video frame) give no jitter sample: their transit says nothing about jitter.
// Duplicates of the last 64 sequence numbers are also counted on their own.
#pragma once

#include "onair/core/time.hpp"
#include "onair/rtp/packet.hpp"
#include "onair/rtp/rtcp.hpp"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace onair::qos {

struct receive_statistics_config {
    int min_sequential = 1;           ///< MIN_SEQUENTIAL
    std::uint16_t max_dropout = 3000; ///< MAX_DROPOUT
    std::uint16_t max_misorder = 100; ///< MAX_MISORDER
};

/// One SSRC's reception. Thread safety: none.
class stream_statistics {
public:
    using clock = std::chrono::steady_clock;
    using time_point = clock::time_point;

    stream_statistics(std::uint32_t ssrc, std::uint32_t clock_rate, receive_statistics_config c = {})
        : cfg_(c), ssrc_(ssrc), rate_(clock_rate ? clock_rate : 90'000) {
        if (cfg_.min_sequential < 1) cfg_.min_sequential = 1;
    }

    /// Accounts one RTP packet. Returns false when it was not counted (source on probation,
    /// or a large jump waiting for confirmation).
    bool on_packet(std::uint16_t seq, std::uint32_t rtp_ts, time_point arrival, bool retransmitted = false) {
        if (!seen_) {
            seen_ = true;
            init_seq(seq);
            max_seq_ = static_cast<std::uint16_t>(seq - 1);
            probation_ = cfg_.min_sequential;
        }
        if (!update_seq(seq)) return false;
        ++since_report_;
        if (!retransmitted) jitter_sample(rtp_ts, arrival);
        return true;
    }
    bool on_packet(const rtp::packet_view& p, time_point arrival, bool retransmitted = false) {
        return on_packet(p.sequence, p.timestamp, arrival, retransmitted);
    }

    /// Remembers a sender report of this SSRC for the LSR/DLSR fields.
    void on_sender_report(const rtp::rtcp::sender_report& sr, time_point arrival) noexcept {
        last_sr_ = rtp::rtcp::compact_ntp(sr.ntp_timestamp);
        last_sr_arrival_ = arrival;
    }

    /// The report block for an RR/SR sent at `now`; starts a new fraction-lost interval.
    rtp::rtcp::report_block report_block(time_point now) noexcept {
        rtp::rtcp::report_block b;
        b.ssrc = ssrc_;
        const std::int64_t expected = this->expected();
        const std::int64_t expected_interval = expected - expected_prior_;
        const std::int64_t received_interval = static_cast<std::int64_t>(received_ - received_prior_);
        expected_prior_ = expected;
        received_prior_ = received_;
        const std::int64_t lost_interval = expected_interval - received_interval;
        if (expected_interval > 0 && lost_interval > 0)
            b.fraction_lost = static_cast<std::uint8_t>((lost_interval << 8) / expected_interval);
        b.cumulative_lost = static_cast<std::int32_t>(std::clamp<std::int64_t>(cumulative_lost(), -0x800000, 0x7fffff));
        b.extended_highest_seq = extended_highest_seq();
        b.jitter = jitter();
        if (last_sr_) {
            b.last_sr = last_sr_;
            const auto d = std::max(now - last_sr_arrival_, clock::duration::zero());
            b.delay_since_last_sr = static_cast<std::uint32_t>(
                std::chrono::duration_cast<std::chrono::microseconds>(d).count() * 65'536 / 1'000'000);
        }
        since_report_ = 0;
        return b;
    }

    std::uint32_t ssrc() const noexcept { return ssrc_; }
    bool valid() const noexcept { return seen_ && probation_ == 0; }
    std::uint32_t extended_highest_seq() const noexcept { return cycles_ + max_seq_; }
    std::int64_t expected() const noexcept {
        return valid() ? static_cast<std::int64_t>(extended_highest_seq()) - base_seq_ + 1 : 0;
    }
    std::uint64_t received() const noexcept { return received_; }
    std::int64_t cumulative_lost() const noexcept { return expected() - static_cast<std::int64_t>(received_); }
    /// Interarrival jitter in RTP timestamp units.
    std::uint32_t jitter() const noexcept { return jitter_q4_ >> 4; }
    std::uint64_t duplicates() const noexcept { return duplicates_; }
    /// Packets counted since the last report_block().
    std::uint64_t packets_since_report() const noexcept { return since_report_; }

private:
    void init_seq(std::uint16_t seq) noexcept {
        base_seq_ = seq;
        max_seq_ = seq;
        bad_seq_ = 0x1'0000 + 1; // so seq == bad_seq_ is false
        cycles_ = 0;
        received_ = 0;
        received_prior_ = 0;
        expected_prior_ = 0;
        recent_ = 1; // seq itself
        has_transit_ = false;
    }

    bool update_seq(std::uint16_t seq) noexcept {
        const auto udelta = static_cast<std::uint16_t>(seq - max_seq_);
        if (probation_) {
            if (seq == static_cast<std::uint16_t>(max_seq_ + 1)) {
                --probation_;
                max_seq_ = seq;
                if (probation_ == 0) {
                    init_seq(seq);
                    ++received_;
                    return true;
                }
            } else {
                probation_ = cfg_.min_sequential - 1;
                max_seq_ = seq;
            }
            return false;
        }
        if (udelta == 0) {
            ++duplicates_;
        } else if (udelta < cfg_.max_dropout) {
            if (seq < max_seq_) cycles_ += 0x1'0000; // wrapped
            max_seq_ = seq;
            recent_ = udelta >= 64 ? 1 : (recent_ << udelta) | 1;
        } else if (udelta <= 0x1'0000 - cfg_.max_misorder) {
            if (seq != bad_seq_) { // a very large jump: wait for the next packet to confirm
                bad_seq_ = (seq + 1u) & 0xffffu;
                return false;
            }
            init_seq(seq); // two sequential packets: the sender restarted its numbering
        } else {
            // A reordered or duplicate packet, up to max_misorder behind.
            const auto back = static_cast<std::uint16_t>(max_seq_ - seq);
            if (back < 64) {
                if ((recent_ >> back) & 1u) ++duplicates_;
                recent_ |= std::uint64_t{1} << back;
            }
        }
        ++received_;
        return true;
    }

    void jitter_sample(std::uint32_t rtp_ts, time_point arrival) noexcept {
        if (has_transit_ && rtp_ts == last_ts_) return; // same frame: no new sample
        if (!has_base_) {
            base_time_ = arrival;
            has_base_ = true;
        }
        // Arrival in RTP units since the first packet; only differences of transit matter.
        const std::int64_t ticks =
            std::chrono::duration_cast<std::chrono::microseconds>(arrival - base_time_).count() * rate_ / 1'000'000;
        const auto transit = static_cast<std::int32_t>(static_cast<std::uint32_t>(ticks) - rtp_ts);
        if (has_transit_) {
            std::int64_t d = static_cast<std::int32_t>(static_cast<std::uint32_t>(transit) - static_cast<std::uint32_t>(transit_));
            if (d < 0) d = -d;
            jitter_q4_ = static_cast<std::uint32_t>(jitter_q4_ + d - ((jitter_q4_ + 8) >> 4));
        }
        transit_ = transit;
        has_transit_ = true;
        last_ts_ = rtp_ts;
    }

    receive_statistics_config cfg_;
    std::uint32_t ssrc_;
    std::uint32_t rate_;
    bool seen_ = false;
    int probation_ = 0;
    std::uint16_t max_seq_ = 0;
    std::uint32_t cycles_ = 0;
    std::uint32_t base_seq_ = 0;
    std::uint32_t bad_seq_ = 0x1'0000 + 1;
    std::uint64_t received_ = 0;
    std::uint64_t received_prior_ = 0;
    std::int64_t expected_prior_ = 0;
    std::uint64_t recent_ = 0; ///< bit i: max_seq_ - i was received
    std::uint64_t duplicates_ = 0;
    std::uint64_t since_report_ = 0;
    time_point base_time_{};
    bool has_base_ = false;
    std::int32_t transit_ = 0;
    bool has_transit_ = false;
    std::uint32_t last_ts_ = 0;
    std::uint32_t jitter_q4_ = 0;
    std::uint32_t last_sr_ = 0;
    time_point last_sr_arrival_{};
};

/// Receiver statistics for every SSRC a receiver reports on. Thread safety: none.
class receive_statistics {
public:
    using time_point = stream_statistics::time_point;

    /// The statistics of `ssrc`, created on first use.
    stream_statistics& add_stream(std::uint32_t ssrc, std::uint32_t clock_rate, receive_statistics_config c = {}) {
        if (auto* s = find(ssrc)) return *s;
        return streams_.emplace_back(ssrc, clock_rate, c);
    }
    stream_statistics* find(std::uint32_t ssrc) noexcept {
        for (auto& s : streams_)
            if (s.ssrc() == ssrc) return &s;
        return nullptr;
    }
    const stream_statistics* find(std::uint32_t ssrc) const noexcept {
        for (const auto& s : streams_)
            if (s.ssrc() == ssrc) return &s;
        return nullptr;
    }

    /// Accounts a packet of a stream added before; false for other SSRCs or uncounted packets.
    bool on_packet(const rtp::packet_view& p, time_point arrival, bool retransmitted = false) {
        auto* s = find(p.ssrc);
        return s && s->on_packet(p, arrival, retransmitted);
    }
    bool on_sender_report(const rtp::rtcp::sender_report& sr, time_point arrival) noexcept {
        auto* s = find(sr.ssrc);
        if (s) s->on_sender_report(sr, arrival);
        return s != nullptr;
    }

    /// Fills `out` with a block for each stream heard from since its last report (at most
    /// out.size(), 31 for one RR); returns how many.
    std::size_t report_blocks(time_point now, std::span<rtp::rtcp::report_block> out) noexcept {
        std::size_t n = 0;
        for (auto& s : streams_) {
            if (n == out.size()) break;
            if (s.valid() && s.packets_since_report() > 0) out[n++] = s.report_block(now);
        }
        return n;
    }

    std::size_t size() const noexcept { return streams_.size(); }
    /// Bytes this object takes: itself and its streams' statistics.
    std::size_t memory_bytes() const noexcept { return sizeof(*this) + streams_.capacity() * sizeof(stream_statistics); }

private:
    std::vector<stream_statistics> streams_;
};

/// Round-trip time from the report blocks a sender receives about its own stream.
/// Thread safety: none.
class rtt_estimator {
public:
    using microseconds = std::chrono::microseconds;

    /// `arrival` is the wall-clock time the report arrived (the clock the SRs were stamped
    /// with). Returns this block's RTT, or nullopt when it reports no SR.
    std::optional<microseconds> on_report_block(const rtp::rtcp::report_block& b, timestamp arrival) noexcept {
        const auto rtt = rtp::rtcp::round_trip_time(b, rtp::rtcp::compact_ntp(to_ntp(arrival)));
        if (!rtt) return std::nullopt;
        last_ = *rtt;
        min_ = count_ ? std::min(min_, *rtt) : *rtt;
        smoothed_ = count_ ? smoothed_ + (*rtt - smoothed_) / 8 : *rtt; // RFC 6298's SRTT gain
        ++count_;
        return rtt;
    }

    bool valid() const noexcept { return count_ > 0; }
    microseconds last() const noexcept { return last_; }
    microseconds min() const noexcept { return min_; }
    microseconds smoothed() const noexcept { return smoothed_; }
    std::uint64_t samples() const noexcept { return count_; }

private:
    microseconds last_{0};
    microseconds min_{0};
    microseconds smoothed_{0};
    std::uint64_t count_ = 0;
};

} // namespace onair::qos
