// onair — NACK generator (receiver side of RFC 4585 generic NACK).
//
// Watches the sequence numbers that arrive on one SSRC, remembers the holes, and tells the
// caller which to request now: a hole is requested as soon as it is seen, then again every
// max(min_retry, rtt * retry_rtt_factor) until it arrives, max_retries requests went out, or
// it is older than give_up_after — then it is abandoned and a keyframe is wanted (the
// decoder cannot use what follows a hole that will never be filled). The time from a request
// to the arrival of a retransmission of the packet it asked for is an RTT sample; the
// smoothed estimate paces later retries when the caller has no better one.
#pragma once

#include "onair/rtp/sequence.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <utility>
#include <vector>

namespace onair::qos {

/// Thread safety: none; one generator per received SSRC, used on the network thread.
class nack_generator {
public:
    using clock = std::chrono::steady_clock;

    struct config {
        clock::duration min_retry = std::chrono::milliseconds(20);
        double retry_rtt_factor = 1.25;
        /// Enough that give_up_after, not the count, ends the requests: while the relay is
        /// itself repairing its upstream leg, early requests find nothing to resend.
        int max_retries = 30;
        clock::duration give_up_after = std::chrono::milliseconds(1000);
        /// A jump forward larger than this is a restart, not loss: no NACKs, ask for a keyframe.
        std::int64_t max_gap = 1000;
        std::size_t max_missing = 1000;
        clock::duration initial_rtt = std::chrono::milliseconds(100);
        /// A hole is first requested once it has been missing for the reordering seen on
        /// the stream (the longest a hole waited for its original before any request,
        /// forgotten by 1/1024 per packet), at most this long: jitter that reorders packets
        /// then costs no spurious retransmissions. Zero requests every hole at once.
        clock::duration max_reorder_wait = std::chrono::milliseconds(30);
    };

    struct stats_type {
        std::uint64_t packets = 0;
        std::uint64_t missing = 0;     ///< holes seen
        std::uint64_t requests = 0;    ///< sequence numbers put in NACKs (retries included)
        std::uint64_t recovered = 0;   ///< holes filled after being seen
        std::uint64_t given_up = 0;    ///< holes abandoned
        std::uint64_t duplicates = 0;  ///< packets already received (or too old to matter)
        std::uint64_t restarts = 0;    ///< jumps larger than max_gap
    };

    /// recovered: filled a hole that was requested (or came as a retransmission);
    /// reordered: filled a hole before any request went out (late, not lost). Both count
    /// in stats().recovered.
    enum class arrival { in_order, recovered, reordered, duplicate, restart };

    nack_generator() : nack_generator(config{}) {}
    explicit nack_generator(config c) : cfg_(c), srtt_(c.initial_rtt) {}

    /// Records the arrival of `seq` (an original packet or one rebuilt from RTX or FEC).
    /// `retransmission`: it came as an answer to a request, so request-to-arrival time is
    /// an RTT sample (a late original says nothing about the round trip).
    arrival on_packet(std::uint16_t seq, clock::time_point now, bool retransmission = false) {
        ++stats_.packets;
        reorder_ -= reorder_ / 1024; // forgets old reordering over about a thousand packets
        const std::int64_t s = unwrap_.unwrap(seq);
        if (!started_) {
            started_ = true;
            highest_ = lowest_ = s;
            return arrival::in_order;
        }
        if (s > highest_) {
            const std::int64_t gap = s - highest_ - 1;
            if (gap > cfg_.max_gap) {
                ++stats_.restarts;
                missing_.clear();
                keyframe_wanted_ = true;
                highest_ = lowest_ = s;
                return arrival::restart;
            }
            for (std::int64_t m = highest_ + 1; m < s; ++m) {
                if (missing_.size() >= cfg_.max_missing) { // too many holes: drop the oldest
                    missing_.erase(missing_.begin());
                    ++stats_.given_up;
                    keyframe_wanted_ = true;
                }
                missing_.push_back(hole{m, now, {}, 0});
                ++stats_.missing;
            }
            highest_ = s;
            return arrival::in_order;
        }
        auto it = std::lower_bound(missing_.begin(), missing_.end(), s,
                                   [](const hole& h, std::int64_t v) { return h.seq < v; });
        if (it == missing_.end() || it->seq != s) {
            ++stats_.duplicates;
            return arrival::duplicate;
        }
        if (retransmission && it->requests > 0) {
            const auto sample = now - it->last_request;
            srtt_ = (srtt_ * 7 + sample) / 8;
        }
        const bool reordered = !retransmission && it->requests == 0;
        if (reordered) reorder_ = std::max(reorder_, std::min(now - it->seen, cfg_.max_reorder_wait));
        missing_.erase(it);
        ++stats_.recovered;
        return reordered ? arrival::reordered : arrival::recovered;
    }

    /// Appends to `out` the sequence numbers to request now. `rtt` paces retries; pass
    /// rtt_estimate() when nothing better is known.
    void collect(clock::time_point now, clock::duration rtt, std::vector<std::uint16_t>& out) {
        const auto retry = std::max(cfg_.min_retry, std::chrono::duration_cast<clock::duration>(rtt * cfg_.retry_rtt_factor));
        std::size_t keep = 0;
        for (std::size_t i = 0; i < missing_.size(); ++i) {
            hole& h = missing_[i];
            if (now - h.seen > cfg_.give_up_after || h.requests >= cfg_.max_retries) {
                ++stats_.given_up;
                keyframe_wanted_ = true;
                continue;
            }
            if (h.requests == 0 ? now - h.seen >= reorder_ : now - h.last_request >= retry) {
                out.push_back(static_cast<std::uint16_t>(h.seq));
                h.last_request = now;
                ++h.requests;
                ++stats_.requests;
            }
            missing_[keep++] = h;
        }
        missing_.resize(keep);
    }

    /// Declares the `count` packets just before the oldest one seen so far missing (a
    /// receiver that joined mid-frame: the frame's first packets were lost before anything
    /// revealed them). Returns how many were added; 0 before the first packet.
    std::size_t extend_back(std::size_t count, clock::time_point now) {
        if (!started_ || count == 0) return 0;
        count = std::min(count, cfg_.max_missing - std::min(cfg_.max_missing, missing_.size()));
        missing_.insert(missing_.begin(), count, hole{0, now, {}, 0});
        for (std::size_t i = 0; i < count; ++i) missing_[i].seq = lowest_ - static_cast<std::int64_t>(count - i);
        lowest_ -= static_cast<std::int64_t>(count);
        stats_.missing += count;
        return count;
    }
    /// Takes back the holes before `seq` that extend_back declared and that turned out not
    /// to exist (the stream starts at `seq`): they are neither requested nor counted.
    void withdraw_before(std::uint16_t seq) {
        if (!started_) return;
        const std::int64_t v = unwrap_.peek(seq);
        const auto end = std::lower_bound(missing_.begin(), missing_.end(), v,
                                          [](const hole& h, std::int64_t x) { return h.seq < x; });
        stats_.missing -= static_cast<std::uint64_t>(end - missing_.begin());
        missing_.erase(missing_.begin(), end);
        lowest_ = std::max(lowest_, v);
    }
    /// The oldest sequence number seen or declared missing (unwrapped as 16 bits).
    std::uint16_t lowest() const noexcept { return static_cast<std::uint16_t>(lowest_); }

    /// True when `seq` is a hole still waiting (what a retransmission may legitimately fill).
    bool is_missing(std::uint16_t seq) const noexcept {
        if (!started_) return false;
        const std::int64_t v = unwrap_.peek(seq);
        return std::binary_search(missing_.begin(), missing_.end(), v,
                                  [](const auto& a, const auto& b) { return key(a) < key(b); });
    }

    /// True once after holes were abandoned or the stream jumped: the caller should ask
    /// for a keyframe.
    bool take_keyframe_request() noexcept { return std::exchange(keyframe_wanted_, false); }

    clock::duration rtt_estimate() const noexcept { return srtt_; }
    /// Current wait before a hole's first request (see config::max_reorder_wait).
    clock::duration reorder_wait() const noexcept { return reorder_; }
    std::size_t missing_count() const noexcept { return missing_.size(); }
    const stats_type& stats() const noexcept { return stats_; }
    /// Bytes this generator takes: the object and its list of holes (which grows with the
    /// holes seen, up to max_missing, and keeps its storage).
    std::size_t memory_bytes() const noexcept { return sizeof(*this) + missing_.capacity() * sizeof(hole); }
    void reset() {
        missing_.clear();
        unwrap_.reset();
        started_ = false;
        keyframe_wanted_ = false;
    }

private:
    struct hole {
        std::int64_t seq;
        clock::time_point seen;
        clock::time_point last_request;
        int requests;
    };
    static std::int64_t key(const hole& h) noexcept { return h.seq; }
    static std::int64_t key(std::int64_t v) noexcept { return v; }

    config cfg_;
    rtp::seq_unwrapper unwrap_;
    std::int64_t highest_ = 0;
    std::int64_t lowest_ = 0;
    bool started_ = false;
    bool keyframe_wanted_ = false;
    std::vector<hole> missing_; // ascending seq
    clock::duration srtt_;
    clock::duration reorder_{0}; ///< how long a hole waits before its first request
    stats_type stats_;
};

} // namespace onair::qos
