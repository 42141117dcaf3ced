// onair — frame reassembly shared by every RTP depacketizer.
//
// A depacketizer parses its payload descriptor into a fragment_info and hands it here. The
// assembler groups packets by RTP timestamp, orders them by (unwrapped) sequence number,
// and emits a frame once it holds a gap-free run from a start packet to an end packet.
// By default frames leave in sequence order, which for onair's codecs (no B-frames) is
// timestamp order: when a newer frame completes, older incomplete frames are given up, and
// packets that arrive for them afterwards are late. With keep_incomplete (for a receiver
// that repairs loss, with a frame buffer after the assembler that orders frames and checks
// their references) older incomplete frames keep waiting for retransmissions when a newer
// frame completes, so frames may leave out of order; a key frame still gives up everything
// before it, and a packet of a frame already emitted (one of the last 64) is late.
//
// A sequence discontinuity (a sender that restarts its numbering, or one stray packet far
// ahead that got a frame emitted) would make every later packet look late. As in RFC 3550
// A.1, packets more than max_dropout behind the last emitted frame are watched: once
// resync_packets of them arrive in sequence, the assembler starts over from them.
//
// Memory is bounded: a frame may hold max_frame_bytes, all incomplete frames together
// max_packets packets and max_buffered_bytes bytes, and at most max_frames frames wait at
// once; the oldest frame goes first when a bound is hit. Packet and byte storage is kept
// between frames, so steady-state reassembly allocates only each emitted frame's data.
#pragma once

#include "onair/core/media_frame.hpp"
#include "onair/core/time.hpp"
#include "onair/rtp/packet.hpp"
#include "onair/rtp/sequence.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

namespace onair::rtp {

/// What a payload format learned from one packet's descriptor.
struct fragment_info {
    bytes_view data;                ///< codec bytes: the payload without its descriptor
    bool start = false;             ///< first packet of a frame
    bool end = false;               ///< last packet of a frame
    bool keyframe = false;          ///< read from the start packet only
    std::optional<std::uint8_t> temporal_layer; ///< read from the start packet only
    frame_dependency dependency{};  ///< read from the start packet only
    /// Resolution carried by the start packet, 0 when none; one carried by the end packet
    /// takes precedence (a VP9 picture of which only the lower spatial layers arrived
    /// decodes at its last layer's size).
    int width = 0;
    int height = 0;
};

struct assembler_limits {
    std::size_t max_frame_bytes = std::size_t{4} << 20;    ///< one frame's data
    std::size_t max_buffered_bytes = std::size_t{8} << 20; ///< all incomplete frames' data
    std::size_t max_packets = 4096;                        ///< all incomplete frames' packets
    std::size_t max_frames = 16;                           ///< incomplete frames at once
    std::size_t max_dropout = 3000;    ///< packets this far behind are not retransmissions
    std::size_t resync_packets = 4;    ///< consecutive such packets that restart the numbering
    bool keep_incomplete = false;      ///< older incomplete frames wait when a newer one completes
};

/// Counters; frames and packets as named.
struct assembler_stats {
    std::uint64_t packets = 0;    ///< packets accepted into a frame
    std::uint64_t frames = 0;     ///< frames emitted
    std::uint64_t malformed = 0;  ///< packets whose descriptor did not parse (counted by depacketizers)
    std::uint64_t duplicates = 0; ///< packets already held by an incomplete frame
    std::uint64_t late = 0;       ///< packets of frames already emitted or given up
    std::uint64_t incomplete = 0; ///< frames given up because a newer frame completed
    std::uint64_t evicted = 0;    ///< frames given up to stay within max_frames/packets/bytes
    std::uint64_t oversized = 0;  ///< frames given up for exceeding max_frame_bytes
    std::uint64_t resyncs = 0;    ///< times the sequence numbering was taken up afresh

    /// Packets and frames discarded (duplicates are not: they lose nothing).
    std::uint64_t dropped() const noexcept { return malformed + late + incomplete + evicted + oversized; }
};

/// Thread safety: none; one assembler per stream, used from one thread.
class frame_assembler {
public:
    frame_assembler() : frame_assembler(assembler_limits{}) {}
    explicit frame_assembler(assembler_limits limits) : limits_(limits) {
        if (limits_.max_frames == 0) limits_.max_frames = 1;
        if (limits_.max_packets == 0) limits_.max_packets = 1;
        frames_.resize(limits_.max_frames);
    }

    /// Adds one packet. `emit(encoded_frame&&)` runs for a frame this packet completes; the
    /// assembler's state is consistent by then, so emit may push more packets.
    template <class Emit>
    void push(const packet_view& p, media_kind kind, const fragment_info& fi, Emit&& emit) {
        std::int64_t seq = unwrap_.unwrap(p.sequence);
        pending* f = nullptr;
        if (last_emitted_ && seq <= *last_emitted_) {
            if (far_behind(p.sequence, seq)) {
                resync();
                seq = unwrap_.unwrap(p.sequence);
            } else if (!limits_.keep_incomplete || seq <= floor_ || was_emitted(p.timestamp) ||
                       *last_emitted_ - seq > static_cast<std::int64_t>(limits_.max_dropout)) {
                ++stats_.late;
                return;
            } else {
                f = find(p.timestamp); // a frame still waiting for repair, or one not seen yet
            }
        } else {
            resync_run_ = 0;
        }
        if (!f) f = find(p.timestamp);
        if (!f) f = open(p.timestamp, seq);
        if (f->discarded) {
            ++stats_.late;
            return;
        }
        const auto it = std::lower_bound(f->packets.begin(), f->packets.end(), seq,
                                         [](const slot& s, std::int64_t v) { return s.seq < v; });
        if (it != f->packets.end() && it->seq == seq) {
            ++stats_.duplicates;
            return;
        }
        const std::size_t size = fi.data.size();
        if (f->bytes.size() + size > limits_.max_frame_bytes || f->packets.size() >= limits_.max_packets) {
            ++stats_.oversized;
            discard(*f);
            return;
        }
        while (held_packets_ + 1 > limits_.max_packets || held_bytes_ + size > limits_.max_buffered_bytes) {
            pending* victim = oldest_active();
            ++stats_.evicted;
            discard(*victim);
            if (victim == f) return;
        }
        const std::size_t index = static_cast<std::size_t>(it - f->packets.begin());
        f->packets.insert(it, slot{seq, static_cast<std::uint32_t>(f->bytes.size()), static_cast<std::uint32_t>(size),
                                   fi.start, fi.end});
        if (size) f->bytes.insert(f->bytes.end(), fi.data.begin(), fi.data.end());
        held_packets_ += 1;
        held_bytes_ += size;
        ++stats_.packets;
        if (index == 0) f->first_seq = seq;
        if (fi.start) {
            f->keyframe = fi.keyframe;
            f->temporal_layer = fi.temporal_layer;
            f->dependency = fi.dependency;
            if (!f->size_from_end) {
                f->width = fi.width;
                f->height = fi.height;
            }
        }
        if (fi.end && !fi.start && fi.width > 0 && fi.height > 0) {
            f->width = fi.width;
            f->height = fi.height;
            f->size_from_end = true;
        }
        if (fi.start || !f->capture_ntp) {
            if (auto t = p.abs_capture_time()) f->capture_ntp = t;
        }
        f->kind = kind;
        if (complete(*f)) finish(*f, std::forward<Emit>(emit));
    }

    /// Counts a packet its depacketizer could not parse.
    void count_malformed() noexcept { ++stats_.malformed; }

    const assembler_stats& stats() const noexcept { return stats_; }
    std::uint64_t dropped() const noexcept { return stats_.dropped(); }
    const assembler_limits& limits() const noexcept { return limits_; }
    /// Packets held by incomplete frames.
    std::size_t buffered_packets() const noexcept { return held_packets_; }
    std::size_t buffered_bytes() const noexcept { return held_bytes_; }

    /// Forgets every frame and the sequence history (for a stream that restarts its
    /// numbering); counters and buffer capacity stay.
    void reset() noexcept {
        for (auto& f : frames_) release(f);
        unwrap_.reset();
        last_emitted_.reset();
        floor_ = std::numeric_limits<std::int64_t>::min();
        emitted_ = {};
        emitted_count_ = 0;
        resync_run_ = 0;
    }

private:
    struct slot {
        std::int64_t seq;
        std::uint32_t offset;
        std::uint32_t size;
        bool start;
        bool end;
    };
    struct pending {
        bool active = false;
        bool discarded = false; ///< given up: a tombstone that drops its late packets
        std::uint32_t rtp_timestamp = 0;
        std::int64_t first_seq = 0;
        media_kind kind = media_kind::video;
        bool keyframe = false;
        std::optional<std::uint8_t> temporal_layer;
        frame_dependency dependency{};
        int width = 0;
        int height = 0;
        bool size_from_end = false;
        std::optional<std::uint64_t> capture_ntp;
        std::vector<slot> packets; ///< sorted by seq
        std::vector<std::uint8_t> bytes; ///< data in arrival order
    };

    /// Capacity kept in a recycled frame; a bigger (key)frame's buffer is freed.
    static constexpr std::size_t retained_bytes = std::size_t{1} << 20;

    /// True when this late packet completes a run of resync_packets consecutive packets far
    /// behind the last emitted frame (the caller then starts over).
    bool far_behind(std::uint16_t raw, std::int64_t seq) noexcept {
        if (*last_emitted_ - seq <= static_cast<std::int64_t>(limits_.max_dropout)) {
            resync_run_ = 0;
            return false;
        }
        resync_run_ = (resync_run_ > 0 && raw == resync_next_) ? resync_run_ + 1 : 1;
        resync_next_ = static_cast<std::uint16_t>(raw + 1);
        return resync_run_ >= limits_.resync_packets;
    }

    void remember_emitted(std::uint32_t ts) noexcept {
        emitted_[emitted_count_++ % emitted_.size()] = ts;
    }
    bool was_emitted(std::uint32_t ts) const noexcept {
        const std::size_t n = std::min(emitted_count_, emitted_.size());
        for (std::size_t i = 0; i < n; ++i)
            if (emitted_[i] == ts) return true;
        return false;
    }

    void resync() noexcept {
        for (auto& f : frames_)
            if (f.active && !f.discarded) ++stats_.incomplete;
        reset();
        ++stats_.resyncs;
    }

    pending* find(std::uint32_t ts) noexcept {
        for (auto& f : frames_)
            if (f.active && f.rtp_timestamp == ts) return &f;
        return nullptr;
    }

    pending* open(std::uint32_t ts, std::int64_t seq) {
        pending* slot_for = nullptr;
        for (auto& f : frames_)
            if (!f.active) { slot_for = &f; break; }
        if (!slot_for) slot_for = oldest(true); // a tombstone costs nothing to forget
        if (!slot_for) {
            slot_for = oldest_active();
            ++stats_.evicted;
        }
        release(*slot_for);
        slot_for->active = true;
        slot_for->rtp_timestamp = ts;
        slot_for->first_seq = seq;
        return slot_for;
    }

    pending* oldest(bool tombstones) noexcept {
        pending* o = nullptr;
        for (auto& f : frames_)
            if (f.active && f.discarded == tombstones && (!o || f.first_seq < o->first_seq)) o = &f;
        return o;
    }
    pending* oldest_active() noexcept { return oldest(false); }

    void clear_data(pending& f) noexcept {
        held_packets_ -= f.packets.size();
        held_bytes_ -= f.bytes.size();
        f.packets.clear();
        f.bytes.clear();
        if (f.bytes.capacity() > retained_bytes) std::vector<std::uint8_t>{}.swap(f.bytes);
        if (f.packets.capacity() > retained_bytes / sizeof(slot)) std::vector<slot>{}.swap(f.packets);
    }
    void discard(pending& f) noexcept {
        clear_data(f);
        f.discarded = true;
    }
    void release(pending& f) noexcept {
        clear_data(f);
        f.active = false;
        f.discarded = false;
        f.keyframe = false;
        f.temporal_layer.reset();
        f.dependency = {};
        f.width = f.height = 0;
        f.size_from_end = false;
        f.capture_ntp.reset();
    }

    static bool complete(const pending& f) noexcept {
        // Duplicates never enter, so a run as long as its sequence span has no gap.
        return !f.packets.empty() && f.packets.front().start && f.packets.back().end &&
               f.packets.back().seq - f.packets.front().seq + 1 == static_cast<std::int64_t>(f.packets.size());
    }

    template <class Emit>
    void finish(pending& f, Emit&& emit) {
        encoded_frame out;
        out.kind = f.kind;
        out.keyframe = f.keyframe;
        out.temporal_layer = f.temporal_layer.value_or(0);
        out.dependency = f.dependency;
        out.rtp_timestamp = f.rtp_timestamp;
        if (f.capture_ntp) out.capture_time = from_ntp(*f.capture_ntp);
        out.width = f.width;
        out.height = f.height;
        out.data.resize(f.bytes.size());
        std::uint8_t* w = out.data.data();
        for (const slot& s : f.packets) {
            if (s.size) std::memcpy(w, f.bytes.data() + s.offset, s.size);
            w += s.size;
        }
        last_emitted_ = std::max(last_emitted_.value_or(f.packets.back().seq), f.packets.back().seq);
        const std::int64_t first = f.first_seq;
        remember_emitted(f.rtp_timestamp);
        if (!limits_.keep_incomplete || f.keyframe) {
            for (auto& o : frames_) {
                if (!o.active || &o == &f || o.first_seq >= first) continue;
                if (!o.discarded) ++stats_.incomplete;
                release(o);
            }
            if (limits_.keep_incomplete) floor_ = std::max(floor_, first - 1);
        }
        release(f);
        ++stats_.frames;
        emit(std::move(out));
    }

    assembler_limits limits_;
    std::vector<pending> frames_;
    seq_unwrapper unwrap_;
    std::optional<std::int64_t> last_emitted_;
    std::int64_t floor_ = std::numeric_limits<std::int64_t>::min(); ///< keep_incomplete: older packets are late
    std::array<std::uint32_t, 64> emitted_{}; ///< keep_incomplete: timestamps of recent frames
    std::size_t emitted_count_ = 0;
    std::size_t resync_run_ = 0;
    std::uint16_t resync_next_ = 0;
    std::size_t held_packets_ = 0;
    std::size_t held_bytes_ = 0;
    assembler_stats stats_;
};

} // namespace onair::rtp
