// onair — HLS packaging of one live stream: fMP4 segments (VP9 + Opus) in a sliding window.
//
// Segments start at video key frames: a segment is cut at the first key frame at least
// 90 % of `target` (1 s) after the segment's start, so 1 s segments need a publisher key frame at
// least every second (onair-host --keyframe-interval); with longer GOPs segments are as
// long as the GOP. An audio-only stream is cut every `target`. The playlist (RFC 8216,
// version 7 for EXT-X-MAP) lists the last `window` segments; two more are kept so a client
// that read an older playlist can still fetch what it lists. Media sequence numbers are
// the segment numbers, and URIs are relative ("N.m4s", "init.mp4") so the playlist works
// behind any proxy path.
#pragma once

#include "onair/core/error.hpp"
#include "onair/media/mp4_muxer.hpp"
#include "onair/media/tracks.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

namespace onair::cdn {

struct hls_config {
    std::chrono::microseconds target{1'000'000}; ///< segment duration aimed at
    std::size_t window = 6;                      ///< segments listed in the playlist
    std::size_t keep_extra = 2;                  ///< older segments still served
};

struct hls_segment {
    std::uint64_t sequence = 0;
    double duration_s = 0;
    std::int64_t start_us = 0;
    std::shared_ptr<const std::vector<std::uint8_t>> bytes;
};

struct hls_stats {
    std::uint64_t segments = 0;
    std::uint64_t samples = 0;
    std::uint64_t dropped = 0; ///< samples the muxer refused
};

/// Thread safety: none; used from the relay's network thread.
class hls_packager {
public:
    explicit hls_packager(hls_config c = {}) : cfg_(c) {}

    /// Starts a stream of these tracks; VP8 video: errc::unsupported (fMP4 carries VP9 only).
    std::error_code start(const media::tracks& t) {
        if (t.video && t.video->format != media::video_format::vp9) return errc::unsupported;
        mux_.emplace(t);
        if (const auto ec = mux_->error()) {
            mux_.reset();
            return ec;
        }
        auto init = std::make_shared<std::vector<std::uint8_t>>();
        mux_->write_init(*init);
        init_ = std::move(init);
        video_ = t.video.has_value();
        segments_.clear();
        next_sequence_ = 0;
        segment_start_.reset();
        return {};
    }

    bool started() const noexcept { return mux_.has_value(); }

    void push(const media::sample& s) {
        if (!mux_) return;
        const bool boundary = video_ ? (s.kind == media_kind::video && s.keyframe) : true;
        if (!segment_start_) {
            if (!boundary) return; // the first segment starts at a key frame
            segment_start_ = s.pts_us;
        } else if (boundary && s.pts_us - *segment_start_ >= cfg_.target.count() * 9 / 10) {
            // 90 %: key frames a GOP apart measure a little under the target on capture
            // clocks; waiting for the next one would double the segment.
            cut(s.pts_us);
        }
        if (mux_->add(s)) ++stats_.dropped;
        else ++stats_.samples;
    }

    /// The media playlist; empty until the first segment is complete.
    std::string playlist() const {
        if (segments_.empty()) return {};
        const std::size_t n = std::min(cfg_.window, segments_.size());
        const auto first = segments_.end() - static_cast<std::ptrdiff_t>(n);
        double longest = 0;
        for (auto it = first; it != segments_.end(); ++it) longest = std::max(longest, it->duration_s);
        std::string p = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n";
        p += "#EXT-X-TARGETDURATION:" + std::to_string(static_cast<long>(std::ceil(longest - 1e-3))) + "\n";
        p += "#EXT-X-MEDIA-SEQUENCE:" + std::to_string(first->sequence) + "\n";
        p += "#EXT-X-MAP:URI=\"init.mp4\"\n";
        for (auto it = first; it != segments_.end(); ++it) {
            char d[32];
            std::snprintf(d, sizeof d, "%.3f", it->duration_s);
            p += "#EXTINF:" + std::string(d) + ",\n" + std::to_string(it->sequence) + ".m4s\n";
        }
        return p;
    }

    std::shared_ptr<const std::vector<std::uint8_t>> init() const { return init_; }

    /// A segment still kept, or null.
    std::shared_ptr<const std::vector<std::uint8_t>> segment(std::uint64_t sequence) const {
        for (const auto& s : segments_)
            if (s.sequence == sequence) return s.bytes;
        return nullptr;
    }

    const std::deque<hls_segment>& segments() const noexcept { return segments_; }
    const hls_stats& stats() const noexcept { return stats_; }

private:
    void cut(std::int64_t end_us) {
        auto bytes = std::make_shared<std::vector<std::uint8_t>>();
        if (mux_->write_fragment(*bytes, end_us, true) == 0) return;
        hls_segment seg;
        seg.sequence = next_sequence_++;
        seg.start_us = *segment_start_;
        seg.duration_s = static_cast<double>(end_us - *segment_start_) / 1e6;
        seg.bytes = std::move(bytes);
        segments_.push_back(std::move(seg));
        while (segments_.size() > cfg_.window + cfg_.keep_extra) segments_.pop_front();
        segment_start_ = end_us;
        ++stats_.segments;
    }

    hls_config cfg_;
    std::optional<media::mp4_muxer> mux_;
    std::shared_ptr<const std::vector<std::uint8_t>> init_;
    bool video_ = false;
    std::deque<hls_segment> segments_;
    std::uint64_t next_sequence_ = 0;
    std::optional<std::int64_t> segment_start_;
    hls_stats stats_;
};

} // namespace onair::cdn
