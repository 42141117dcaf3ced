// onair — what a container file or live container stream holds: the vocabulary shared by
// the WebM and fragmented-MP4 muxers, the recorders and the CDN egress.
//
// Timestamps handed to muxers are microseconds on the recording's own time line (0 = its
// first frame); muxers round them to their own time scales.
#pragma once

#include "onair/core/media_frame.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace onair::media {

enum class video_format : std::uint8_t { vp8, vp9 };

struct video_track {
    video_format format = video_format::vp8;
    int width = 0;  ///< of the first key frame
    int height = 0;
};

struct audio_track {
    int channels = 2;            ///< Opus channel count (1 or 2)
    int sample_rate = 48'000;    ///< input sample rate recorded in OpusHead
    std::uint16_t pre_skip = 312; ///< samples at 48 kHz the decoder drops at the start
};

/// The tracks of one recording or live stream: video, audio or both.
struct tracks {
    std::optional<video_track> video;
    std::optional<audio_track> audio;
};

/// One access unit given to a muxer.
struct sample {
    media_kind kind = media_kind::video;
    bool keyframe = false;         ///< video: a key frame (audio samples are all sync samples)
    std::int64_t pts_us = 0;       ///< presentation time on the recording's time line
    std::span<const std::uint8_t> data;
};

/// SDP encoding name ("VP8", "VP9", any case) to a video_format; nullopt for others.
inline std::optional<video_format> video_format_of(std::string_view encoding) noexcept {
    auto eq = [](std::string_view a, std::string_view b) {
        if (a.size() != b.size()) return false;
        for (std::size_t i = 0; i < a.size(); ++i)
            if ((a[i] | 0x20) != (b[i] | 0x20)) return false;
        return true;
    };
    if (eq(encoding, "vp8")) return video_format::vp8;
    if (eq(encoding, "vp9")) return video_format::vp9;
    return std::nullopt;
}

/// Duration in 48 kHz samples of one Opus packet, from its TOC byte and frame count
/// (RFC 6716 section 3.1); 0 when the packet is malformed.
inline int opus_packet_samples(std::span<const std::uint8_t> p) noexcept {
    if (p.empty()) return 0;
    const unsigned config = p[0] >> 3;
    int frame = 0; // samples at 48 kHz
    if (config < 12) frame = 480 << (config & 3);            // SILK: 10, 20, 40, 60 ms
    else if (config < 16) frame = 480 << (config & 1);       // hybrid: 10, 20 ms
    else frame = 120 << (config & 3);                        // CELT: 2.5, 5, 10, 20 ms
    int count = 0;
    switch (p[0] & 3) {
    case 0: count = 1; break;
    case 1:
    case 2: count = 2; break;
    default:
        if (p.size() < 2) return 0;
        count = p[1] & 0x3f;
        break;
    }
    const int total = frame * count;
    return total > 5760 ? 0 : total; // at most 120 ms per packet
}

} // namespace onair::media
