// onair — sender-side pacer: outgoing RTP released in small bursts at the pacing rate.
//
// A host (and a relay, once per subscriber) hands every outgoing packet to the pacer instead
// of the socket. Every `burst_interval` (5 ms) `process()` sends what a leaky-bucket media
// budget allows, highest priority class first and in arrival order within a class:
//
//     audio > retransmission > video > fec > padding (queued padding packets)
//
// Budget. The budget is refilled at the effective rate for the time since the last process
// call and capped at one burst interval's worth, so a pacer that was idle (or called late)
// never sends more than one interval's budget plus one packet at once. Packets are sent while
// the budget is >= 0 and each debits its size, so the budget ends at most one packet below
// zero and the debt is repaid before the next burst. Budgets are kept in exact integer units
// (1e-6 bit: bit/s times microseconds), so no rounding accumulates over a long run.
//
// Queue time. The effective rate is max(pacing rate, queued bits / time left), where time
// left is `max_queue_time` minus the age of the oldest queued packet (at least one burst
// interval): a backlog larger than the pacing rate can drain in `max_queue_time` is sent
// faster, so it drains linearly and no packet waits much longer than `max_queue_time`.
// Process calls that ran above the pacing rate are counted (`queue_time_boosts`).
//
// Queue size. Slots for `max_packets` packets are allocated at construction; per-class FIFOs
// are linked through slot indices, so enqueue/send allocate nothing. When the queue is full,
// the oldest packet of the lowest non-empty class below audio is dropped (or the incoming one,
// when its class is lower still). Audio is never dropped for another packet; only an audio
// packet arriving at a queue full of audio is refused. Drops are counted.
//
// Audio. By default audio is paced (it is always sent first). With `pace_audio = false` it
// bypasses the budget: every queued audio packet goes out on the next process call (and
// next_process_time() asks for one at once); it still debits the budget, so media makes room.
//
// Padding. When the queue is empty and padding_bps > 0, the pacer asks the caller for padding
// (`pad(bytes, info) -> bytes sent`). A second budget at padding_bps is debited by media and
// padding alike (its debt kept to 500 ms worth), so padding tops the total up to padding_bps
// rather than adding to it; padding is also limited by the media budget.
//
// Probing. `add_probe_cluster()` queues a cluster (at most `max_probe_clusters` pending).
// While one is active the pacer sends at the cluster's rate instead of the pacing rate,
// queued media first, then padding, tagging every packet with the cluster id, until the
// cluster has sent at least min_bytes and its packets span at least min_duration (first to
// last packet, as the receiver sees it); the call that reaches both still sends its whole
// budget, and the cluster ends at the next call, so its last burst is a full one. Probe padding is asked for in pieces of at least one
// interval's worth at the cluster rate (at most one datagram).
// Probe traffic does not debit the media budget; when a cluster ends the media budget starts
// again from zero, so the end of a probe is not followed by an extra burst. A cluster starts
// on the first process call after the previous one ended.
//
// Callbacks are template parameters (no std::function, no virtual call):
//   send(packet_ref&&, const pacer_send_info&)
//   pad(std::size_t bytes, const pacer_send_info&) -> std::size_t   (bytes sent, 0: none)
// They may call enqueue() (the pacer's state is consistent before each call) but not
// process(). Time is any steady_clock time_point, so tests drive it by hand.
#pragma once

#include "onair/core/packet_buffer.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

namespace onair::qos {

/// Priority classes, highest first.
enum class pacer_priority : std::uint8_t { audio, retransmission, video, fec, padding };

inline constexpr std::size_t pacer_priority_count = 5;

/// What the send and pad callbacks are told about each packet.
struct pacer_send_info {
    std::int32_t probe_cluster_id = -1; ///< -1: not part of a probe cluster
    pacer_priority priority = pacer_priority::video;
};

struct pacer_config {
    std::chrono::microseconds burst_interval{5000};   ///< process period; also the budget cap
    std::chrono::microseconds max_queue_time{2'000'000};
    std::size_t max_packets = 2048;                   ///< queue slots, allocated up front
    bool pace_audio = true;                           ///< false: audio bypasses the budget
};

struct pacer_stats {
    std::uint64_t enqueued = 0;
    std::uint64_t sent_packets = 0;   ///< queued packets sent (probe-tagged ones included)
    std::uint64_t sent_bytes = 0;
    std::array<std::uint64_t, pacer_priority_count> sent_by_priority{};
    std::uint64_t padding_packets = 0; ///< generated by the pad callback (probe padding included)
    std::uint64_t padding_bytes = 0;
    std::uint64_t dropped_packets = 0; ///< queue-limit drops: evicted or refused packets
    std::uint64_t dropped_bytes = 0;
    std::array<std::uint64_t, pacer_priority_count> dropped_by_priority{};
    std::uint64_t queue_time_boosts = 0; ///< process calls that ran above the pacing rate
    std::int64_t max_effective_bps = 0;  ///< highest effective rate used so far
    std::uint64_t probe_clusters_started = 0;
    std::uint64_t probe_clusters_completed = 0;
    std::uint64_t probe_packets = 0;    ///< media and padding sent for probe clusters
    std::uint64_t probe_bytes = 0;
};

/// Thread safety: none; one pacer per outgoing path, used on the network thread.
class pacer {
public:
    using clock = std::chrono::steady_clock;
    using time_point = clock::time_point;

    static constexpr std::size_t max_probe_clusters = 8;

    explicit pacer(const pacer_config& cfg = {})
        : cfg_(sanitize(cfg)), slots_(cfg_.max_packets) {
        for (std::size_t i = 0; i < slots_.size(); ++i)
            slots_[i].next = i + 1 < slots_.size() ? static_cast<std::int32_t>(i + 1) : -1;
        free_ = 0;
        heads_.fill(-1);
        tails_.fill(-1);
    }

    /// Pacing rate (typically 2.5x the target bitrate) and padding rate, bits per second.
    void set_rates(std::int64_t pacing_bps, std::int64_t padding_bps) noexcept {
        pacing_bps_ = std::max<std::int64_t>(pacing_bps, 0);
        padding_bps_ = std::max<std::int64_t>(padding_bps, 0);
        // A debt run up at a higher rate is not repaid at a lower one for longer than one
        // interval (plus a datagram): a rate cut must not stall the queue.
        const std::int64_t datagram = static_cast<std::int64_t>(max_datagram_size) * unit_per_byte;
        media_budget_ = std::max(media_budget_, -(pacing_bps_ * cfg_.burst_interval.count() + datagram));
    }

    /// Queues `p` (its size() is what the budget is charged). Returns false when it was
    /// refused (an empty ref, or a full queue with nothing of lower priority to drop); an
    /// evicted older packet is counted but still returns true.
    bool enqueue(packet_ref p, pacer_priority prio, time_point now) {
        if (!p) return false;
        const auto cls = static_cast<std::size_t>(prio);
        if (free_ < 0) {
            const int victim = victim_class();
            if (victim < 0 || static_cast<std::size_t>(victim) < cls) {
                count_drop(cls, p.size());
                return false;
            }
            slot& s = slots_[static_cast<std::size_t>(pop(static_cast<std::size_t>(victim)))];
            count_drop(static_cast<std::size_t>(victim), s.size);
            release(s);
        }
        const std::int32_t i = free_;
        slot& s = slots_[static_cast<std::size_t>(i)];
        free_ = s.next;
        s.size = p.size();
        s.packet = std::move(p);
        s.enqueued = now;
        s.next = -1;
        if (tails_[cls] >= 0) slots_[static_cast<std::size_t>(tails_[cls])].next = i;
        else heads_[cls] = i;
        tails_[cls] = i;
        ++count_;
        queued_bytes_ += s.size;
        ++stats_.enqueued;
        return true;
    }

    /// Queues a probe cluster. Returns false when `max_probe_clusters` are already pending
    /// or the cluster is empty (no rate, or neither bytes nor duration asked for).
    bool add_probe_cluster(std::int32_t id, std::int64_t bitrate_bps, std::size_t min_bytes,
                           std::chrono::microseconds min_duration) noexcept {
        if (probe_count_ == max_probe_clusters || bitrate_bps <= 0 ||
            (min_bytes == 0 && min_duration.count() <= 0))
            return false;
        probe_cluster& c = probes_[(probe_head_ + probe_count_) % max_probe_clusters];
        c = probe_cluster{};
        c.id = id;
        c.bitrate_bps = bitrate_bps;
        c.min_bytes = min_bytes;
        c.min_duration = min_duration;
        ++probe_count_;
        return true;
    }

    /// Sends what the budget allows at `now`. See the header comment for the callbacks.
    template <class Send, class Pad>
    void process(time_point now, Send&& send, Pad&& pad) {
        const std::int64_t burst_us = cfg_.burst_interval.count();
        std::int64_t elapsed_us = burst_us; // the first call starts with a full budget
        if (processed_) elapsed_us = std::clamp<std::int64_t>(micros(now - last_process_), 0, max_elapsed_us);
        processed_ = true;
        last_process_ = now;

        effective_bps_ = effective_rate(now);
        if (effective_bps_ > pacing_bps_) ++stats_.queue_time_boosts;
        stats_.max_effective_bps = std::max(stats_.max_effective_bps, effective_bps_);
        refill(media_budget_, effective_bps_, elapsed_us);
        refill(padding_budget_, padding_bps_, elapsed_us);

        if (!cfg_.pace_audio) {
            while (heads_[audio_class] >= 0) send_queued(audio_class, -1, send);
        }

        if (probe_count_ > 0 && run_probe(now, elapsed_us, send, pad)) return;

        while (count_ > 0 && media_budget_ >= 0) send_queued(highest_class(), -1, send);

        if (count_ == 0 && padding_bps_ > 0) {
            while (count_ == 0 && media_budget_ > 0 && padding_budget_ > 0) { // pad may enqueue
                const auto want = static_cast<std::size_t>(std::min(media_budget_, padding_budget_) / unit_per_byte);
                if (want == 0) break;
                const std::size_t n = pad(std::min(want, max_datagram_size),
                                          pacer_send_info{-1, pacer_priority::padding});
                if (n == 0) break;
                ++stats_.padding_packets;
                stats_.padding_bytes += n;
                debit(n);
            }
        }
    }

    /// When process() should next be called (never before `now`); time_point::max() when
    /// there is nothing to do until the next enqueue, set_rates or add_probe_cluster.
    time_point next_process_time(time_point now) const noexcept {
        const bool padding = padding_bps_ > 0 && pacing_bps_ > 0;
        if (count_ == 0 && probe_count_ == 0 && !padding) return time_point::max();
        if (!processed_) return now;
        if (!cfg_.pace_audio && heads_[audio_class] >= 0) return now;
        time_point t = last_process_ + cfg_.burst_interval;
        if (probe_count_ == 0 && count_ > 0 && media_budget_ < 0 && effective_bps_ > 0) {
            // Repaying a debt larger than one interval's refill: no point waking before.
            const std::int64_t us = (-media_budget_ + effective_bps_ - 1) / effective_bps_;
            t = std::max(t, last_process_ + std::chrono::microseconds(us));
        }
        return std::max(t, now);
    }

    /// Age of the oldest queued packet (zero when the queue is empty).
    std::chrono::microseconds queue_delay(time_point now) const noexcept {
        if (count_ == 0) return std::chrono::microseconds{0};
        time_point oldest = time_point::max();
        for (const std::int32_t h : heads_)
            if (h >= 0) oldest = std::min(oldest, slots_[static_cast<std::size_t>(h)].enqueued);
        return std::max(std::chrono::duration_cast<std::chrono::microseconds>(now - oldest),
                        std::chrono::microseconds{0});
    }

    std::size_t queued_packets() const noexcept { return count_; }
    std::size_t queued_bytes() const noexcept { return queued_bytes_; }
    /// Packets queued in one class (walks that class's list: for tests and diagnostics).
    std::size_t queued_packets(pacer_priority prio) const noexcept {
        std::size_t n = 0;
        for (std::int32_t i = heads_[static_cast<std::size_t>(prio)]; i >= 0; i = slots_[static_cast<std::size_t>(i)].next) ++n;
        return n;
    }
    /// The rate the last process call ran at (pacing rate, or higher to honour max_queue_time).
    std::int64_t effective_bps() const noexcept { return effective_bps_; }
    std::int64_t pacing_bps() const noexcept { return pacing_bps_; }
    std::int64_t padding_bps() const noexcept { return padding_bps_; }
    /// True while a probe cluster is pending or running.
    bool probing() const noexcept { return probe_count_ > 0; }
    const pacer_config& config() const noexcept { return cfg_; }
    const pacer_stats& stats() const noexcept { return stats_; }
    /// Bytes this pacer takes: the object and its queue slots (not the packets queued: they
    /// are pooled buffers).
    std::size_t memory_bytes() const noexcept { return sizeof(*this) + slots_.capacity() * sizeof(slot); }

private:
    // Budgets are in 1e-6 bit: refilling rate_bps for elapsed_us adds rate_bps * elapsed_us.
    static constexpr std::int64_t unit_per_byte = 8'000'000;
    static constexpr std::size_t audio_class = static_cast<std::size_t>(pacer_priority::audio);
    // Debt kept at most (media: beyond one datagram): unpaced audio above the pacing rate must
    // not starve media for longer than this, nor a burst of media hold padding back longer.
    static constexpr std::int64_t max_debt_us = 500'000;
    // Longest gap refilled at once (the budget cap applies anyway; this only bounds the product).
    static constexpr std::int64_t max_elapsed_us = 10'000'000;

    struct slot {
        packet_ref packet;
        time_point enqueued{};
        std::size_t size = 0;
        std::int32_t next = -1;
    };

    struct probe_cluster {
        std::int32_t id = -1;
        bool started = false;
        std::int64_t bitrate_bps = 0;
        std::size_t min_bytes = 0;
        std::chrono::microseconds min_duration{0};
        time_point start{}; ///< first packet
        time_point last{};  ///< latest packet
        std::size_t bytes = 0;
        std::int64_t budget = 0; ///< 1e-6 bit, refilled at bitrate_bps, capped like the media budget
    };

    static pacer_config sanitize(pacer_config c) noexcept {
        if (c.burst_interval.count() <= 0) c.burst_interval = std::chrono::microseconds{1000};
        if (c.max_queue_time < c.burst_interval) c.max_queue_time = c.burst_interval;
        if (c.max_packets == 0) c.max_packets = 1;
        c.max_packets = std::min<std::size_t>(c.max_packets, std::numeric_limits<std::int32_t>::max());
        return c;
    }

    static std::int64_t micros(clock::duration d) noexcept {
        return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
    }

    void refill(std::int64_t& budget, std::int64_t rate_bps, std::int64_t elapsed_us) const noexcept {
        const std::int64_t cap = rate_bps * cfg_.burst_interval.count();
        budget = std::min(budget + rate_bps * elapsed_us, cap);
    }

    void debit(std::size_t bytes) noexcept {
        const std::int64_t d = static_cast<std::int64_t>(bytes) * unit_per_byte;
        const std::int64_t datagram = static_cast<std::int64_t>(max_datagram_size) * unit_per_byte;
        media_budget_ = std::max(media_budget_ - d, -(effective_bps_ * max_debt_us + datagram));
        padding_budget_ = std::max(padding_budget_ - d, -(padding_bps_ * max_debt_us));
    }

    std::int64_t effective_rate(time_point now) const noexcept {
        if (count_ == 0) return pacing_bps_;
        const std::int64_t left_us = std::max(micros(cfg_.max_queue_time - queue_delay(now)),
                                              static_cast<std::int64_t>(cfg_.burst_interval.count()));
        const auto bits_x1e6 = static_cast<std::int64_t>(queued_bytes_) * unit_per_byte;
        const std::int64_t needed = (bits_x1e6 + left_us - 1) / left_us;
        return std::max(pacing_bps_, needed);
    }

    std::size_t highest_class() const noexcept {
        std::size_t c = 0;
        while (heads_[c] < 0) ++c; // only called with count_ > 0
        return c;
    }

    /// The lowest non-empty class other than audio, or -1.
    int victim_class() const noexcept {
        for (std::size_t c = pacer_priority_count; c-- > 1;)
            if (heads_[c] >= 0) return static_cast<int>(c);
        return -1;
    }

    std::int32_t pop(std::size_t cls) noexcept {
        const std::int32_t i = heads_[cls];
        slot& s = slots_[static_cast<std::size_t>(i)];
        heads_[cls] = s.next;
        if (heads_[cls] < 0) tails_[cls] = -1;
        --count_;
        queued_bytes_ -= s.size;
        return i;
    }

    void release(slot& s) noexcept {
        s.packet.reset();
        s.next = free_;
        free_ = static_cast<std::int32_t>(&s - slots_.data());
    }

    void count_drop(std::size_t cls, std::size_t bytes) noexcept {
        ++stats_.dropped_packets;
        stats_.dropped_bytes += bytes;
        ++stats_.dropped_by_priority[cls];
    }

    /// Pops the head of `cls` and sends it; returns its size. The media budget is debited
    /// unless the packet is part of a probe cluster.
    template <class Send>
    std::size_t send_queued(std::size_t cls, std::int32_t probe_id, Send& send) {
        slot& s = slots_[static_cast<std::size_t>(pop(cls))];
        const std::size_t size = s.size;
        packet_ref p = std::move(s.packet);
        release(s);
        ++stats_.sent_packets;
        stats_.sent_bytes += size;
        ++stats_.sent_by_priority[cls];
        if (probe_id < 0) debit(size);
        send(std::move(p), pacer_send_info{probe_id, static_cast<pacer_priority>(cls)});
        return size;
    }

    /// Runs the active cluster; returns true while it is still active after this call.
    /// Its budget starts at zero with its first packet and is refilled at the cluster rate,
    /// capped at the time since the last call (at least one burst interval, at most four), so
    /// a cluster that could not send for a while (no media, no padding) does not burst when
    /// it can again, and one whose calls come late still sends at its rate.
    template <class Send, class Pad>
    bool run_probe(time_point now, std::int64_t elapsed_us, Send& send, Pad& pad) {
        probe_cluster& c = probes_[probe_head_];
        // A cluster ends at the first call after it reached min_bytes and min_duration, not
        // within the call that reached them: that call sends its whole budget, so the last
        // burst is as full as the others and the cluster's rate (bytes over its span) is the
        // rate it was asked for, not less by a partly used last interval.
        if (c.started && c.bytes >= c.min_bytes && c.last - c.start >= c.min_duration) {
            ++stats_.probe_clusters_completed;
            probe_head_ = (probe_head_ + 1) % max_probe_clusters;
            --probe_count_;
            media_budget_ = std::min<std::int64_t>(media_budget_, 0);
            return false;
        }
        if (!c.started) {
            c.started = true;
            c.start = now;
            c.last = now;
            ++stats_.probe_clusters_started;
        } else {
            // Capped at the time since the last call (up to four intervals), not at one
            // interval: a timer that fires a little late every time would otherwise probe
            // below the cluster's rate (13 ms ticks of a 10 ms interval: at 77 % of it) and
            // the estimate would learn less than the path carries.
            const std::int64_t span = std::clamp(elapsed_us, cfg_.burst_interval.count(), 4 * cfg_.burst_interval.count());
            c.budget = std::min(c.budget + c.bitrate_bps * elapsed_us, c.bitrate_bps * span);
        }
        for (;;) {
            if (c.budget < 0) return true;
            std::size_t n = 0;
            if (count_ > 0) {
                n = send_queued(highest_class(), c.id, send);
            } else {
                // At least one interval's worth at the cluster rate: a budget that ran down to
                // zero asks for a useful packet, not a 1-byte one; the debt is repaid next time.
                const auto interval = static_cast<std::size_t>(c.bitrate_bps * cfg_.burst_interval.count() / unit_per_byte);
                const auto want = std::min(std::max({static_cast<std::size_t>(c.budget / unit_per_byte), interval,
                                                     std::size_t{1}}),
                                           max_datagram_size);
                n = pad(want, pacer_send_info{c.id, pacer_priority::padding});
                if (n == 0) return true; // nothing to probe with now; try again next call
                ++stats_.padding_packets;
                stats_.padding_bytes += n;
            }
            c.bytes += n;
            c.last = now;
            c.budget -= static_cast<std::int64_t>(n) * unit_per_byte;
            ++stats_.probe_packets;
            stats_.probe_bytes += n;
        }
    }

    pacer_config cfg_;
    std::vector<slot> slots_;
    std::array<std::int32_t, pacer_priority_count> heads_{};
    std::array<std::int32_t, pacer_priority_count> tails_{};
    std::int32_t free_ = -1;
    std::size_t count_ = 0;
    std::size_t queued_bytes_ = 0;

    std::int64_t pacing_bps_ = 0;
    std::int64_t padding_bps_ = 0;
    std::int64_t effective_bps_ = 0;
    std::int64_t media_budget_ = 0;
    std::int64_t padding_budget_ = 0;
    bool processed_ = false;
    time_point last_process_{};

    std::array<probe_cluster, max_probe_clusters> probes_{};
    std::size_t probe_head_ = 0;
    std::size_t probe_count_ = 0;

    pacer_stats stats_;
};

} // namespace onair::qos
