// onair — transport-wide feedback generator: the receiver side of one hop's transport-wide
// congestion control (draft-holmer-rmcat-transport-wide-cc-extensions-01).
//
// Every packet on the hop carries a transport-wide sequence number (RTP header extension
// rtp::ext::transport_sequence); the receiver records when each arrived and, every
// `interval`, tells the sender in RTPFB FMT=15 messages. The sender compares those arrival
// times with its send times to estimate the path's queueing delay and available rate.
//
// Arrival times live in a ring indexed by the unwrapped sequence number, `history` entries
// long, preallocated: on_packet() does not allocate. Everything from the first sequence
// number not yet reported up to the newest one received is pending; build() reports all of
// it, in as many messages as the per-message limits need (each one starting where the
// previous one stopped, with the next feedback packet count), and the next report starts
// after the newest packet. So each sequence number is reported once: received, or lost if
// it had not arrived by then.
//
// - A packet that arrives after its sequence number was reported lost is late: counted, and
//   reported again, received, in a message of its own at the next build (messages may
//   cover a sequence number twice: lost, then received), so reordering across a report is
//   not taken for loss. A second copy of it is a duplicate.
// - A second copy of a packet still in the ring is a duplicate: ignored, counted.
// - A reordered packet within the pending range simply takes its place.
// - A 16-bit sequence number cannot itself show a jump of more than 2^15 (unwrapping takes
//   the nearest value), so a "huge" jump is one the ring cannot hold: a packet `history` or
//   more ahead of the first unreported one, or 16 packets in a row `history` or more behind
//   the newest one (a single one that far behind is a stray: late). That is a restart (the
//   sender reset its numbering, or feedback was not built for far too long): what was
//   pending is dropped and reporting starts again at that packet.
#pragma once

#include "onair/rtp/packet.hpp"
#include "onair/rtp/sequence.hpp"
#include "onair/rtp/transport_feedback.hpp"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

namespace onair::qos {

/// Thread safety: none; one generator per receiving hop, used on the network thread.
class transport_feedback_generator {
public:
    using clock = std::chrono::steady_clock;

    struct config {
        /// How often feedback is due while packets arrive.
        clock::duration interval = std::chrono::milliseconds(50);
        /// Statuses (lost ones included) in one message from its first received packet on; a
        /// longer pending range is split. The run of lost statuses a message may start with
        /// (cheap: run length chunks) does not count, so every message holds a packet.
        std::size_t max_packets_per_feedback = 500;
        /// Sequence numbers remembered: the most that can be pending, and how far back a
        /// duplicate is told from a late packet. At most 32768.
        std::size_t history = 4096;
        /// Largest FCI of one message; the RTCP packet is 12 bytes more.
        std::size_t max_fci_bytes = 1200;
    };

    struct stats_type {
        std::uint64_t packets = 0;       ///< on_packet calls
        std::uint64_t duplicates = 0;    ///< copies of a packet already received
        std::uint64_t late = 0;          ///< arrived after its sequence number was reported (lost)
        std::uint64_t late_reported = 0; ///< messages reporting such packets again, received
        std::uint64_t feedback_sent = 0; ///< RTCP messages handed to send
        std::uint64_t restarts = 0;      ///< jumps the ring could not hold
    };

    transport_feedback_generator() : transport_feedback_generator(config{}) {}
    explicit transport_feedback_generator(config c)
        : cfg_(sanitized(c)), ring_(cfg_.history, none), late_(), builder_(cfg_.max_fci_bytes),
          out_(cfg_.max_fci_bytes + rtp::rtcp::header_size + 8) {
        late_.reserve(max_late);
    }

    /// Records the arrival of the packet numbered `transport_sequence`.
    void on_packet(std::uint16_t transport_sequence, clock::time_point arrival) {
        ++stats_.packets;
        const std::int64_t us = std::chrono::duration_cast<std::chrono::microseconds>(arrival.time_since_epoch()).count();
        if (!started_) {
            started_ = true;
            last_build_ = arrival;
            start(transport_sequence, us);
            return;
        }
        const auto h = static_cast<std::int64_t>(cfg_.history);
        const std::int64_t s = unwrap_.peek(transport_sequence);
        if (s > newest_) {
            far_behind_ = 0;
            if (s - next_report_ >= h) return restart(transport_sequence, us);
            unwrap_.unwrap(transport_sequence);
            for (std::int64_t x = newest_ + 1; x < s; ++x) slot(x) = none;
            slot(s) = us;
            newest_ = s;
            return;
        }
        if (newest_ - s >= h) {
            // Far behind: a stray old packet is late; a run of them is a sender that
            // started its numbering again lower down.
            if (++far_behind_ < restart_after_behind) {
                ++stats_.late;
                return;
            }
            return restart(transport_sequence, us);
        }
        far_behind_ = 0;
        if (slot(s) != none) {
            ++stats_.duplicates;
        } else if (s < next_report_) {
            // Reported lost already, then came after all (reordered across a report): the
            // next build reports it again, received, so the sender does not count it lost.
            ++stats_.late;
            slot(s) = us;
            if (late_.size() < late_.capacity()) late_.push_back(s);
        } else {
            slot(s) = us; // reordered, still pending
        }
    }

    /// True when something is pending and `interval` passed since the last build (or since
    /// the first packet).
    bool due(clock::time_point now) const noexcept {
        return started_ && newest_ >= next_report_ && now - last_build_ >= cfg_.interval;
    }

    /// Sequence numbers awaiting a report (received or not).
    std::size_t pending() const noexcept {
        return started_ && newest_ >= next_report_ ? static_cast<std::size_t>(newest_ - next_report_ + 1) : 0;
    }

    /// The feedback packet count the next message will carry.
    std::uint8_t feedback_count() const noexcept { return feedback_count_; }

    /// Reports everything pending: calls send(rtp::bytes_view) with each complete RTCP
    /// RTPFB packet (valid during the call only), oldest sequence numbers first.
    template <class Send>
    void build(clock::time_point now, std::uint32_t sender_ssrc, std::uint32_t media_ssrc, Send&& send) {
        last_build_ = now;
        if (!started_) return;
        const auto max_statuses = static_cast<std::int64_t>(cfg_.max_packets_per_feedback);
        while (next_report_ <= newest_) {
            std::int64_t first = next_report_;
            while (slot(first) == none) ++first; // stops at newest_ at the latest: it was received
            builder_.reset(static_cast<std::uint16_t>(next_report_), slot(first), feedback_count_);
            std::int64_t last_added = first - 1;
            for (std::int64_t x = first; x <= newest_; ++x) {
                if (slot(x) == none) continue;
                if (x - first + 1 > max_statuses) break;
                if (!builder_.add(static_cast<std::uint16_t>(x), slot(x))) break;
                last_added = x;
            }
            if (last_added < first) { // not even one packet fits (max_fci_bytes too small)
                next_report_ = first + 1;
                continue;
            }
            const std::size_t n = builder_.write_rtcp(sender_ssrc, media_ssrc, out_);
            if (n > 0) {
                send(rtp::bytes_view{out_.data(), n});
                ++stats_.feedback_sent;
                feedback_count_ = static_cast<std::uint8_t>(feedback_count_ + 1);
            }
            next_report_ = last_added + 1;
        }
        // Late arrivals, one message per run of consecutive sequence numbers (a gap inside a
        // message would report the packets between as lost a second time).
        std::sort(late_.begin(), late_.end());
        for (std::size_t i = 0; i < late_.size();) {
            std::size_t j = i;
            if (slot(late_[i]) == none) { // overwritten since (a restart): nothing to say
                ++i;
                continue;
            }
            builder_.reset(static_cast<std::uint16_t>(late_[i]), slot(late_[i]), feedback_count_);
            while (j < late_.size() && (j == i || late_[j] == late_[j - 1] + 1) && slot(late_[j]) != none &&
                   builder_.add(static_cast<std::uint16_t>(late_[j]), slot(late_[j])))
                ++j;
            if (j == i) j = i + 1; // could not add even one: skip it
            else if (const std::size_t n = builder_.write_rtcp(sender_ssrc, media_ssrc, out_); n > 0) {
                send(rtp::bytes_view{out_.data(), n});
                ++stats_.feedback_sent;
                ++stats_.late_reported;
                feedback_count_ = static_cast<std::uint8_t>(feedback_count_ + 1);
            }
            i = j;
        }
        late_.clear();
    }

    const stats_type& stats() const noexcept { return stats_; }
    const config& settings() const noexcept { return cfg_; }
    /// Bytes this generator takes: the object, its arrival ring (8 bytes a number of
    /// `history`), the late list and the message buffers, all sized at construction.
    std::size_t memory_bytes() const noexcept {
        return sizeof(*this) + ring_.capacity() * sizeof(std::int64_t) + late_.capacity() * sizeof(std::int64_t) +
               out_.capacity() + (builder_.memory_bytes() - sizeof(builder_));
    }

private:
    static constexpr std::int64_t none = std::numeric_limits<std::int64_t>::min();

    static config sanitized(config c) noexcept {
        c.history = std::clamp<std::size_t>(c.history, 1, 32768);
        c.max_packets_per_feedback = std::clamp<std::size_t>(c.max_packets_per_feedback, 1, 0xffff);
        return c;
    }

    std::int64_t& slot(std::int64_t s) noexcept {
        const auto h = static_cast<std::int64_t>(cfg_.history);
        return ring_[static_cast<std::size_t>(((s % h) + h) % h)];
    }

    void start(std::uint16_t seq, std::int64_t us) {
        late_.clear();
        unwrap_.reset();
        const std::int64_t s = unwrap_.unwrap(seq);
        std::fill(ring_.begin(), ring_.end(), none);
        next_report_ = newest_ = s;
        slot(s) = us;
    }

    static constexpr int restart_after_behind = 16;
    static constexpr std::size_t max_late = 256; ///< per build; more are counted, not reported again

    void restart(std::uint16_t seq, std::int64_t us) {
        ++stats_.restarts;
        far_behind_ = 0;
        start(seq, us);
    }

    config cfg_;
    std::vector<std::int64_t> ring_; ///< arrival µs by unwrapped sequence, `none` if not received
    std::vector<std::int64_t> late_; ///< arrived after being reported lost, to report again (capacity fixed)
    rtp::twcc::feedback_builder builder_;
    std::vector<std::uint8_t> out_;
    rtp::seq_unwrapper unwrap_;
    std::int64_t next_report_ = 0; ///< first sequence number not yet reported
    std::int64_t newest_ = 0;      ///< highest sequence number received
    clock::time_point last_build_{};
    stats_type stats_;
    std::uint8_t feedback_count_ = 0;
    bool started_ = false;
    int far_behind_ = 0; ///< packets in a row far behind the newest
};

} // namespace onair::qos
