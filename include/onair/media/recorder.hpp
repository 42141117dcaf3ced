// onair — records one stream's encoded frames to a WebM or fragmented-MP4 file.
//
// A recorder takes encoded frames as they are produced (a host's encoders), received (a
// viewer's frame buffer, a relay's rtp_frames) or anything else, and writes them without
// decoding. The file starts at the first video key frame (its resolution and codec, read
// from the bitstream, make the header; audio captured before it is left out, so both
// tracks start within one audio frame of each other); an audio-only recording starts at
// its first frame. Timestamps are capture times, relative to that start (media::timeline
// keeps audio continuous and video times distinct). Frames go through an interleaver so
// blocks are in capture order across tracks.
//
// Files are playable after a crash: the writers put out whole clusters/fragments (one per
// key frame, at most 1 s) and flush each. close() finalises (WebM: cues, duration and
// sizes; MP4: the last fragment).
//
// Also a media sink (on_encoded; on_video/on_audio ignore decoded frames), so it can be a
// host's or viewer's Sink, alone or inside sink::tee.
#pragma once

#include "onair/core/error.hpp"
#include "onair/core/media_frame.hpp"
#include "onair/media/interleaver.hpp"
#include "onair/media/mp4_muxer.hpp"
#include "onair/media/timeline.hpp"
#include "onair/media/tracks.hpp"
#include "onair/media/webm_muxer.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string_view>
#include <system_error>
#include <utility>

namespace onair::media {

enum class container : std::uint8_t { webm, mp4 };

inline std::optional<container> container_of(std::string_view name) noexcept {
    if (name == "webm") return container::webm;
    if (name == "mp4") return container::mp4;
    return std::nullopt;
}
inline const char* extension_of(container c) noexcept { return c == container::webm ? ".webm" : ".mp4"; }

/// VP8 or VP9, from a key frame's first bytes: a VP8 key frame has the start code 9d 01 2a
/// after its 3-byte frame tag (RFC 6386 9.1); a VP9 frame starts with frame_marker 0b10.
inline std::optional<video_format> detect_video_format(std::span<const std::uint8_t> key) noexcept {
    if (key.size() >= 6 && (key[0] & 1) == 0 && key[3] == 0x9d && key[4] == 0x01 && key[5] == 0x2a) return video_format::vp8;
    if (!key.empty() && (key[0] >> 6) == 2) return video_format::vp9;
    return std::nullopt;
}

struct recording_options {
    std::filesystem::path path;
    container format = container::webm;
    bool video = true; ///< the stream has video: the recording starts at its first key frame
    bool audio = true;
    std::optional<video_format> video_codec; ///< known in advance: lets open() refuse VP8 in MP4
};

struct recorder_stats {
    std::uint64_t video_frames = 0; ///< written
    std::uint64_t audio_frames = 0;
    std::uint64_t waiting = 0;      ///< frames before the first key frame, not written
    std::uint64_t late = 0;         ///< out of capture order, not written
    std::uint64_t refused = 0;      ///< refused by the writer (e.g. a codec the file cannot hold)
    double duration_s = 0;          ///< capture time covered so far
};

/// Thread safety: none; one thread at a time.
class recorder {
public:
    recorder() = default;
    recorder(const recorder&) = delete;
    recorder& operator=(const recorder&) = delete;
    ~recorder() { close(); }

    /// Prepares a recording; the file is created with the first frame it can start with.
    std::error_code open(recording_options o) {
        close();
        if (!o.video && !o.audio) return errc::unsupported;
        if (o.format == container::mp4 && o.video && o.video_codec == video_format::vp8)
            return errc::unsupported; // MP4 has no standard mapping for VP8
        opts_ = std::move(o);
        il_ = interleaver(opts_.video, opts_.audio);
        stats_ = {};
        started_ = false;
        open_ = true;
        error_ = {};
        return {};
    }

    bool is_open() const noexcept { return open_; }
    /// Whether the file was created (the first key frame came).
    bool started() const noexcept { return started_; }
    const recording_options& options() const noexcept { return opts_; }
    const recorder_stats& stats() const noexcept { return stats_; }
    /// The first error the file gave (creation, writes), if any.
    std::error_code error() const noexcept { return error_; }

    void write(const encoded_frame& f) {
        if (!open_) return;
        encoded_frame copy = f;
        write(std::move(copy));
    }
    void write(encoded_frame&& f) {
        if (!open_) return;
        il_.push(std::move(f), [this](encoded_frame&& g) { put(g); });
        stats_.late = il_.late();
    }

    /// Writes what is held and finalises the file.
    std::error_code close() {
        if (!open_) return error_;
        il_.flush([this](encoded_frame&& g) { put(g); });
        std::error_code ec;
        if (started_) ec = opts_.format == container::webm ? webm_.close() : mp4_.close();
        if (ec && !error_) error_ = ec;
        open_ = false;
        started_ = false;
        return error_;
    }

    // media sink
    void on_video(const video_frame&) noexcept {}
    void on_audio(const audio_frame&) noexcept {}
    void on_encoded(const encoded_frame& f) { write(f); }

private:
    void put(const encoded_frame& f) {
        const bool video = f.kind == media_kind::video;
        if (!video && !f.data.empty()) audio_channels_ = (f.data[0] & 0x04) ? 2 : 1; // Opus TOC stereo flag
        if (!started_ && !start(f)) {
            ++stats_.waiting;
            return;
        }
        const auto pts = timeline_.place(f);
        if (!pts) {
            ++stats_.waiting;
            return;
        }
        sample s;
        s.kind = f.kind;
        s.keyframe = video ? f.keyframe : true;
        s.pts_us = *pts;
        s.data = f.bytes();
        const std::error_code ec = opts_.format == container::webm ? webm_.write(s) : mp4_.write(s);
        if (ec) {
            ++stats_.refused;
            if (!error_ && ec != errc::bad_frame) error_ = ec;
            return;
        }
        ++(video ? stats_.video_frames : stats_.audio_frames);
        stats_.duration_s = std::max(stats_.duration_s, static_cast<double>(s.pts_us) / 1e6);
    }

    /// Creates the file at the first frame a recording can start with.
    bool start(const encoded_frame& f) {
        const bool video = f.kind == media_kind::video;
        if (opts_.video && (!video || !f.keyframe)) return false;
        tracks t;
        if (opts_.video) {
            const auto fmt = detect_video_format(f.bytes());
            if (!fmt || f.width <= 0 || f.height <= 0) return false;
            t.video = video_track{*fmt, f.width, f.height};
        }
        if (opts_.audio) {
            audio_track a;
            a.channels = audio_channels_;
            t.audio = a;
        }
        std::error_code ec = opts_.format == container::webm ? webm_.open(opts_.path, t) : mp4_.open(opts_.path, t);
        if (ec) {
            error_ = ec;
            open_ = false; // nothing will ever be written
            return false;
        }
        timeline_.start(f.capture_time);
        started_ = true;
        return true;
    }

    recording_options opts_;
    interleaver il_;
    webm_file_writer webm_;
    mp4_file_writer mp4_;
    recorder_stats stats_;
    timeline timeline_;
    int audio_channels_ = 2;
    bool open_ = false;
    bool started_ = false;
    std::error_code error_;
};

} // namespace onair::media
