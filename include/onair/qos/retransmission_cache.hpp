// onair — retransmission cache: the last N packets of a stream, by sequence number.
//
// Holds pooled packet buffers (packet_ref), so keeping a packet for retransmission costs a
// reference count, not a copy. A slot is addressed by sequence number modulo the capacity;
// a lookup checks the stored sequence number so a stale slot is never mistaken for the
// requested packet.
#pragma once

#include "onair/core/packet_buffer.hpp"
#include "onair/rtp/packet.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace onair::qos {

/// Thread safety: none; one cache per stream, used on the network thread.
class retransmission_cache {
public:
    using clock = std::chrono::steady_clock;

    struct stats_type {
        std::uint64_t stored = 0;
        std::uint64_t hits = 0;
        std::uint64_t misses = 0;          ///< requested packets no longer (or never) held
        std::uint64_t duplicates = 0;      ///< store() of a sequence number already held
        std::uint64_t resend_suppressed = 0; ///< requested again within min_resend_interval
    };

    /// @param capacity number of packets kept (a power of two is not required)
    explicit retransmission_cache(std::size_t capacity = 1024) : slots_(capacity ? capacity : 1) {}

    /// Keeps `pkt` (an RTP datagram whose sequence number is `seq`). Returns false when the
    /// same sequence number is already held (a duplicate), which the caller may drop.
    bool store(std::uint16_t seq, packet_ref pkt, clock::time_point now) {
        slot& s = slots_[seq % slots_.size()];
        if (s.packet && s.seq == seq) {
            ++stats_.duplicates;
            return false;
        }
        s.packet = std::move(pkt);
        s.seq = seq;
        s.stored_at = now;
        s.last_resend = {};
        ++stats_.stored;
        return true;
    }

    /// True when `seq` is held.
    bool contains(std::uint16_t seq) const noexcept {
        const slot& s = slots_[seq % slots_.size()];
        return s.packet && s.seq == seq;
    }

    /// The packet with `seq` when held (no resend bookkeeping), else nullptr.
    const packet_ref* find(std::uint16_t seq) const noexcept {
        const slot& s = slots_[seq % slots_.size()];
        return s.packet && s.seq == seq ? &s.packet : nullptr;
    }

    /// The packet with `seq` for a retransmission, or an empty ref when it is not held or was
    /// resent less than `min_resend_interval` ago (a burst of NACKs for one loss sends it once).
    packet_ref take_for_resend(std::uint16_t seq, clock::time_point now,
                               clock::duration min_resend_interval = std::chrono::milliseconds(10)) {
        slot& s = slots_[seq % slots_.size()];
        if (!s.packet || s.seq != seq) {
            ++stats_.misses;
            return {};
        }
        if (s.last_resend != clock::time_point{} && now - s.last_resend < min_resend_interval) {
            ++stats_.resend_suppressed;
            return {};
        }
        s.last_resend = now;
        ++stats_.hits;
        return s.packet;
    }

    void clear() {
        for (auto& s : slots_) s = slot{};
    }
    std::size_t capacity() const noexcept { return slots_.size(); }
    const stats_type& stats() const noexcept { return stats_; }
    /// Bytes this cache takes: the object and its slots. The packets it holds are pooled
    /// buffers, not counted here (held() of them).
    std::size_t memory_bytes() const noexcept { return sizeof(*this) + slots_.capacity() * sizeof(slot); }
    /// Packets held (walks the slots: for diagnostics).
    std::size_t held() const noexcept {
        std::size_t n = 0;
        for (const auto& s : slots_) n += s.packet ? 1 : 0;
        return n;
    }

private:
    struct slot {
        packet_ref packet;
        std::uint16_t seq = 0;
        clock::time_point stored_at{};
        clock::time_point last_resend{};
    };
    std::vector<slot> slots_;
    stats_type stats_;
};

} // namespace onair::qos
