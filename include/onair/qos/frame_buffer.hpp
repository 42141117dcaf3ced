// onair — video frame buffer: holds complete encoded frames until they are decodable and
// due, and says when only a key frame can get the decoder going again.
//
// Decodability model (non-flexible VP8 RFC 7741 / VP9 RFC 9628 temporal scalability, as
// libvpx and WebRTC build their temporal patterns):
// - a key frame needs nothing;
// - a base-layer (TL0) frame with TL0PICIDX t needs the TL0 frame with TL0PICIDX t - 1;
// - a TLn frame (n >= 1) with TL0PICIDX t needs the TL0 frame t and every frame of a lower
//   layer 1..n-1 that came between that TL0 frame and it; never frames of its own layer
//   or above. A layer-sync frame (VP8 Y, VP9 U) needs the TL0 frame t only;
// - a frame that never arrived between two frames of group t is of layer >= 1 (TL0 frames
//   move t), but its layer is unknown: it is taken to be layer 1, so it blocks TL2+ frames
//   of its group and nothing else;
// - without TL0PICIDX (single layer, error resilient) every frame needs the previous picture.
// Frames leave in picture-id order, one decoded frame after another; a frame released
// drops every older frame still held (they can no longer be decoded: the decoder's
// references moved on). Picture ids are the 15-bit ones onair sends (M=1).
//
// Release rule: the first decodable frame (in picture-id order) is released once
// now >= its render time. Undecodable frames before it are skipped then, so a frame whose
// reference is missing waits as long as a later decodable frame is not due: a lost TL1+
// frame costs nothing, a retransmission that comes before that point is used. When nothing
// held is decodable and the oldest held frame's render time is keyframe_timeout past, the
// buffer raises keyframe_needed() (the viewer sends PLI); it clears when a key frame comes
// in or a frame is released.
//
// Render time = RTP time (90 kHz, unwrapped) mapped to local time by the earliest-arrival
// reference (min of arrival - media time over 2 s, as the audio jitter buffer) + delay.
// The delay target is the 95th percentile of frame relative delays (histogram with
// forgetting) clamped to [min_delay, max_delay], plus extra delay (lip sync). The delay
// actually applied rises to the target at once and falls toward it at max_decrease_rate
// (10 % of elapsed time by default), so render times are monotonic and smooth.
#pragma once

#include "onair/core/media_frame.hpp"
#include "onair/qos/detail/playout_delay.hpp"
#include "onair/rtp/sequence.hpp"
#include "onair/rtp/vp8.hpp"
#include "onair/rtp/vp9.hpp"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

namespace onair::qos {

/// What the buffer needs from a frame's payload descriptor (its first packet's).
struct frame_info {
    std::uint16_t picture_id = 0; ///< 15-bit
    bool has_tl0picidx = false;   ///< false: every frame references the previous picture
    std::uint8_t tl0picidx = 0;
    bool layer_sync = false;      ///< VP8 Y / VP9 U: references the base layer only
    bool retransmitted = false;   ///< completed by a retransmission: not a jitter sample
};

inline frame_info frame_info_from(const frame_dependency& d) noexcept {
    frame_info i;
    i.picture_id = d.picture_id;
    i.has_tl0picidx = d.has_tl0picidx;
    i.tl0picidx = d.tl0picidx;
    i.layer_sync = d.layer_sync;
    return i;
}
inline frame_info frame_info_from(const rtp::vp8_descriptor& d) noexcept { return frame_info_from(rtp::dependency_of(d)); }
inline frame_info frame_info_from(const rtp::vp9_descriptor& d) noexcept { return frame_info_from(rtp::dependency_of(d)); }

struct frame_buffer_config {
    std::uint32_t clock_rate = 90'000;
    std::size_t capacity = 64;                     ///< frames held at most
    std::chrono::microseconds min_delay{0};
    std::chrono::microseconds max_delay{500'000};
    double quantile = 0.95;
    double forget_factor = 0.99;                   ///< per frame
    std::chrono::microseconds bucket{5'000};
    std::chrono::microseconds reference_window{2'000'000};
    double max_decrease_rate = 0.1;                ///< delay decrease per unit of time
    std::chrono::microseconds keyframe_timeout{300'000};
    std::uint32_t max_reorder = 100;               ///< a key frame this many pictures "old" restarts the stream
    std::chrono::microseconds restart_span{10'000'000}; ///< an RTP timestamp jump this large restarts the stream
};

struct frame_buffer_stats {
    std::chrono::microseconds target_delay{0};  ///< extra delay included
    std::chrono::microseconds current_delay{0}; ///< applied (smoothed) delay after the earliest-arrival reference
    std::chrono::microseconds render_delay{0};  ///< last frame released: render time - arrival
    std::size_t buffered = 0;
    std::uint64_t inserted = 0;
    std::uint64_t released = 0;
    std::uint64_t skipped = 0;           ///< held frames dropped as undecodable
    std::uint64_t late = 0;              ///< arrived after a newer frame was released
    std::uint64_t duplicates = 0;
    std::uint64_t overflow = 0;          ///< dropped because the buffer was full
    std::uint64_t keyframe_requests = 0; ///< times keyframe_needed() went up
    std::uint64_t restarts = 0;
};

/// A frame the decoder may take now.
struct released_frame {
    encoded_frame frame;
    frame_info info;
    std::chrono::steady_clock::time_point render_time;
    std::uint32_t skipped = 0; ///< undecodable frames dropped just before it
};

/// Thread safety: none; one buffer per video stream, used from one thread (or under a lock).
class frame_buffer {
public:
    using clock = std::chrono::steady_clock;
    using time_point = clock::time_point;

    enum class insert_result : std::uint8_t { inserted, duplicate, late, overflow };

    frame_buffer() : frame_buffer(frame_buffer_config{}) {}
    explicit frame_buffer(const frame_buffer_config& c)
        : cfg_(sanitize(c)), ref_(cfg_.reference_window.count()),
          hist_(cfg_.bucket.count(), static_cast<std::size_t>(cfg_.max_delay / cfg_.bucket) + 1, cfg_.forget_factor),
          slots_(cfg_.capacity) {
        order_.reserve(cfg_.capacity);
        free_.reserve(cfg_.capacity);
        for (std::size_t i = cfg_.capacity; i-- > 0;) free_.push_back(static_cast<std::uint32_t>(i));
    }

    /// Adds a complete frame (moved in: no copy of its data).
    insert_result insert(encoded_frame&& f, const frame_info& info, time_point arrival) {
        const std::int64_t now = us(arrival);
        std::int64_t ts = ts_unwrap_.unwrap(f.rtp_timestamp);
        // A timestamp jump this large is a new stream (or garbage): its render times would
        // be off by the jump, so start over from this frame.
        const std::int64_t span = cfg_.restart_span.count() * cfg_.clock_rate / 1'000'000;
        if (last_ts_valid_ && (ts - last_ts_ > span || last_ts_ - ts > span)) {
            restart();
            ++stats_.restarts;
            ts = ts_unwrap_.unwrap(f.rtp_timestamp);
        }
        std::int64_t pid = pid_unwrap_.unwrap(info.picture_id);
        if (chain_.valid && pid <= chain_.last_pid) {
            if (!(f.keyframe && chain_.last_pid - pid > cfg_.max_reorder)) {
                ++stats_.late;
                return insert_result::late;
            }
            restart();
            ++stats_.restarts;
            pid = pid_unwrap_.unwrap(info.picture_id);
            ts = ts_unwrap_.unwrap(f.rtp_timestamp);
        }
        last_ts_ = ts;
        last_ts_valid_ = true;
        const auto pos = lower(pid);
        if (pos != order_.end() && slots_[*pos].pid == pid) {
            ++stats_.duplicates;
            return insert_result::duplicate;
        }
        if (!info.retransmitted || !ref_.valid()) observe(now, ts);
        if (free_.empty()) {
            ++stats_.overflow;
            if (pos == order_.begin()) return insert_result::overflow; // older than all held
            drop_front();
        }
        const std::uint32_t idx = free_.back();
        free_.pop_back();
        slot& s = slots_[idx];
        s.pid = pid;
        s.tl0 = info.has_tl0picidx ? tl0_unwrap_.unwrap(info.tl0picidx) : pid;
        s.layer = info.has_tl0picidx ? f.temporal_layer : 0;
        s.key = f.keyframe;
        s.ts = ts;
        s.arrival = now;
        s.info = info;
        s.frame = std::move(f);
        order_.insert(lower(pid), idx);
        ++stats_.inserted;
        if (s.key && keyframe_needed_) keyframe_needed_ = false;
        stats_.buffered = order_.size();
        return insert_result::inserted;
    }

    /// Moves the next decodable frame into `out` when its render time has come; returns
    /// whether it did. Call until it returns false. Also updates keyframe_needed().
    bool release(time_point now_tp, released_frame& out) {
        const std::int64_t now = us(now_tp);
        chain c;
        const std::size_t k = candidate(c);
        if (k == order_.size()) {
            watch_stall(now);
            return false;
        }
        const std::int64_t due = render_us(slots_[order_[k]]);
        if (due > now) {
            stall_since_ = -1;
            return false;
        }
        out.skipped = static_cast<std::uint32_t>(k);
        for (std::size_t i = 0; i < k; ++i) drop_front();
        stats_.skipped += k;
        slot& s = slots_[order_.front()];
        take(c, s);
        chain_ = c;
        last_render_ = due;
        stats_.render_delay = std::chrono::microseconds{due - s.arrival};
        out.frame = std::move(s.frame);
        out.info = s.info;
        out.render_time = time_point{std::chrono::duration_cast<clock::duration>(std::chrono::microseconds{due})};
        free_.push_back(order_.front());
        order_.erase(order_.begin());
        ++stats_.released;
        stats_.buffered = order_.size();
        stall_since_ = -1;
        keyframe_needed_ = false;
        return true;
    }

    /// Render time of the next frame release() will give (possibly past), or nullopt when
    /// nothing held is decodable: when to call release() next.
    std::optional<time_point> next_release_time() const {
        chain c;
        const std::size_t k = candidate(c);
        if (k == order_.size()) return std::nullopt;
        return time_point{std::chrono::duration_cast<clock::duration>(std::chrono::microseconds{render_us(slots_[order_[k]])})};
    }

    /// True when the decoder cannot go on without a key frame (send PLI; rate-limit it).
    bool keyframe_needed() const noexcept { return keyframe_needed_; }

    /// Extra delay added to the target (lip sync), >= 0.
    void set_extra_delay(std::chrono::microseconds d) noexcept {
        extra_ = std::max<std::int64_t>(d.count(), 0);
        target_ = std::clamp(q_, cfg_.min_delay.count(), cfg_.max_delay.count()) + extra_;
        stats_.target_delay = std::chrono::microseconds{target_};
    }
    std::chrono::microseconds extra_delay() const noexcept { return std::chrono::microseconds{extra_}; }

    const frame_buffer_stats& stats() const noexcept { return stats_; }
    const frame_buffer_config& config() const noexcept { return cfg_; }
    std::size_t size() const noexcept { return order_.size(); }

    /// Forgets frames, decoder state and delay history (a new stream); counters stay.
    void reset() noexcept {
        restart();
        hist_.reset();
        q_ = 0;
    }

private:
    struct slot {
        encoded_frame frame;
        frame_info info;
        std::int64_t pid = 0;
        std::int64_t tl0 = 0; ///< unwrapped TL0PICIDX, or pid for single-layer streams
        std::int64_t ts = 0;
        std::int64_t arrival = 0;
        std::uint8_t layer = 0;
        bool key = false;
    };
    /// What the decoder has: the state a candidate frame is checked against.
    struct chain {
        bool valid = false;       ///< a key frame was released
        std::int64_t last_pid = 0;
        std::int64_t base_tl0 = 0; ///< of the last base-layer frame released
        std::uint8_t floor = 0xff; ///< lowest layer skipped since that base-layer frame
    };

    static frame_buffer_config sanitize(frame_buffer_config c) noexcept {
        if (c.clock_rate == 0) c.clock_rate = 90'000;
        if (c.capacity < 2) c.capacity = 2;
        if (c.bucket.count() <= 0) c.bucket = std::chrono::microseconds{5'000};
        if (c.max_delay < c.min_delay) c.max_delay = c.min_delay;
        c.forget_factor = std::clamp(c.forget_factor, 0.0, 0.99999);
        c.quantile = std::clamp(c.quantile, 0.0, 1.0);
        c.max_decrease_rate = std::clamp(c.max_decrease_rate, 0.0, 0.9);
        return c;
    }
    static std::int64_t us(time_point t) noexcept {
        return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
    }

    std::vector<std::uint32_t>::iterator lower(std::int64_t pid) {
        return std::lower_bound(order_.begin(), order_.end(), pid,
                                [this](std::uint32_t i, std::int64_t v) { return slots_[i].pid < v; });
    }

    void observe(std::int64_t now, std::int64_t ts) {
        hist_.add(ref_.update(now, detail::playout_media_us(ts, cfg_.clock_rate)));
        q_ = hist_.quantile(cfg_.quantile);
        target_ = std::clamp(q_, cfg_.min_delay.count(), cfg_.max_delay.count()) + extra_;
        const std::int64_t want = ref_.offset() + target_;
        if (!offset_valid_ || want > offset_) {
            offset_ = want;
        } else {
            const auto step = static_cast<std::int64_t>(cfg_.max_decrease_rate * static_cast<double>(now - offset_at_));
            offset_ = std::max(want, offset_ - step);
        }
        offset_valid_ = true;
        offset_at_ = now;
        stats_.target_delay = std::chrono::microseconds{target_};
        stats_.current_delay = std::chrono::microseconds{offset_ - ref_.offset()};
    }

    std::int64_t render_us(const slot& s) const noexcept {
        return std::max(detail::playout_media_us(s.ts, cfg_.clock_rate) + offset_, last_render_);
    }

    static bool decodable(const slot& s, const chain& c) noexcept {
        if (s.key) return true;
        if (!c.valid) return false;
        if (s.layer == 0) return s.tl0 == c.base_tl0 + 1;
        return s.tl0 == c.base_tl0 && (s.info.layer_sync || s.layer <= c.floor);
    }
    /// The decoder state after taking `s`.
    static void take(chain& c, const slot& s) noexcept {
        if (s.key || s.layer == 0) {
            c.valid = true;
            c.base_tl0 = s.tl0;
            c.floor = 0xff;
        }
        c.last_pid = s.pid;
    }

    /// Index in order_ of the first decodable frame (order_.size() when none); `c` gets the
    /// decoder state as it would be just before it (frames before it skipped).
    std::size_t candidate(chain& c) const noexcept {
        c = chain_;
        for (std::size_t i = 0; i < order_.size(); ++i) {
            const slot& s = slots_[order_[i]];
            const bool same_group = c.valid && !s.key && s.layer > 0 && s.tl0 == c.base_tl0;
            if (same_group && s.pid > c.last_pid + 1) c.floor = std::min<std::uint8_t>(c.floor, 1); // unseen frames
            if (decodable(s, c)) return i;
            if (same_group) c.floor = std::min(c.floor, s.layer);
            if (c.valid) c.last_pid = s.pid;
        }
        return order_.size();
    }

    void watch_stall(std::int64_t now) {
        if (order_.empty()) {
            stall_since_ = -1;
            return;
        }
        const std::int64_t due = render_us(slots_[order_.front()]);
        if (due > now) return;
        if (stall_since_ < 0) stall_since_ = due;
        if (!keyframe_needed_ && now - stall_since_ >= cfg_.keyframe_timeout.count()) {
            keyframe_needed_ = true;
            ++stats_.keyframe_requests;
        }
    }

    void drop_front() noexcept {
        slot& s = slots_[order_.front()];
        s.frame = encoded_frame{}; // frees the data now rather than at reuse
        free_.push_back(order_.front());
        order_.erase(order_.begin());
    }

    void restart() noexcept {
        while (!order_.empty()) drop_front();
        pid_unwrap_.reset();
        tl0_unwrap_.reset();
        ts_unwrap_.reset();
        ref_.reset();
        chain_ = chain{};
        offset_valid_ = false;
        last_render_ = std::numeric_limits<std::int64_t>::min();
        stall_since_ = -1;
        keyframe_needed_ = false;
        last_ts_valid_ = false;
        stats_.buffered = 0;
    }

    frame_buffer_config cfg_;
    detail::playout_arrival_reference ref_;
    detail::playout_delay_histogram hist_;
    std::vector<slot> slots_;
    std::vector<std::uint32_t> order_; ///< held slots by picture id
    std::vector<std::uint32_t> free_;
    detail::playout_unwrapper<15> pid_unwrap_;
    detail::playout_unwrapper<8> tl0_unwrap_;
    rtp::timestamp_unwrapper ts_unwrap_;
    chain chain_;
    std::int64_t q_ = 0;
    std::int64_t extra_ = 0;
    std::int64_t target_ = 0;
    std::int64_t offset_ = 0; ///< applied media-to-local offset (reference + smoothed delay)
    std::int64_t offset_at_ = 0;
    bool offset_valid_ = false;
    std::int64_t last_render_ = std::numeric_limits<std::int64_t>::min();
    std::int64_t stall_since_ = -1;
    bool keyframe_needed_ = false;
    std::int64_t last_ts_ = 0; ///< unwrapped timestamp of the last frame inserted
    bool last_ts_valid_ = false;
    frame_buffer_stats stats_;
};

} // namespace onair::qos
