// onair — presentation times for a recording or live container, from capture times.
//
// Capture times come from the wall clock where a frame was captured, and a capture loop
// that stalls hands several frames over at nearly one instant. Containers and players want
// more: audio is one continuous signal (a frame that starts before the previous one ended
// makes players drop or overlap samples), and two video frames need distinct times (WebM
// counts milliseconds). So, on the time line of the first frame (0):
//   - an audio frame that would start before the previous one ends is moved to that end
//     (a stall's bunched frames are spread out again; a real gap, later than the end, is
//     kept as a gap); one more than `max_overlap` behind it is a duplicate and refused;
//   - a video frame is at least 1 ms after the previous one.
#pragma once

#include "onair/core/media_frame.hpp"
#include "onair/media/tracks.hpp"

#include <chrono>
#include <cstdint>
#include <optional>

namespace onair::media {

/// Thread safety: none.
class timeline {
public:
    explicit timeline(std::chrono::microseconds max_overlap = std::chrono::milliseconds(500)) : max_overlap_(max_overlap.count()) {}

    /// Sets the capture time of pts 0.
    void start(timestamp origin) noexcept {
        origin_ = origin;
        audio_end_.reset();
        video_last_.reset();
    }

    /// The pts of `f` in microseconds, or nullopt when it is before the start or a duplicate.
    std::optional<std::int64_t> place(const encoded_frame& f) noexcept {
        if (f.capture_time < origin_) return std::nullopt;
        std::int64_t pts = std::chrono::duration_cast<std::chrono::microseconds>(f.capture_time - origin_).count();
        if (f.kind == media_kind::audio) {
            if (audio_end_ && pts < *audio_end_) {
                if (*audio_end_ - pts > max_overlap_) return std::nullopt;
                pts = *audio_end_;
            }
            const int samples = opus_packet_samples(f.bytes());
            audio_end_ = pts + (samples > 0 ? samples : 960) * std::int64_t{1'000'000} / 48'000;
            return pts;
        }
        if (video_last_ && pts < *video_last_ + 1000) pts = *video_last_ + 1000;
        video_last_ = pts;
        return pts;
    }

private:
    std::int64_t max_overlap_;
    timestamp origin_{};
    std::optional<std::int64_t> audio_end_;
    std::optional<std::int64_t> video_last_;
};

} // namespace onair::media
