// onair — codec-independent keyframe detection for relays, which forward without decoding.
//
// A relay learns a stream's video encoding by name when it is published and resolves it
// once to a video_format; per packet it is a switch over a closed set, not a dispatch.
#pragma once

#include "onair/codec/passthrough.hpp"
#include "onair/rtp/generic.hpp"
#include "onair/rtp/packet.hpp"
#include "onair/rtp/vp8.hpp"
#include "onair/rtp/vp9.hpp"

#include <cstdint>
#include <string_view>

namespace onair::rtp {

enum class video_format : std::uint8_t { unknown, vp8, vp9, generic };

/// SDP encoding name (case-insensitive per RFC 8866) to format.
inline video_format video_format_of(std::string_view name) noexcept {
    auto eq = [](std::string_view a, std::string_view b) {
        if (a.size() != b.size()) return false;
        for (std::size_t i = 0; i < a.size(); ++i)
            if ((a[i] | 0x20) != (b[i] | 0x20)) return false;
        return true;
    };
    if (eq(name, "VP8")) return video_format::vp8;
    if (eq(name, "VP9")) return video_format::vp9;
    if (eq(name, codec::passthrough_video::encoding_name)) return video_format::generic;
    return video_format::unknown;
}

/// True when the RTP payload is the first packet of a keyframe. Unknown formats report
/// every packet as a start, so a relay never withholds a stream it cannot inspect.
inline bool starts_keyframe(video_format f, bytes_view payload) noexcept {
    switch (f) {
    case video_format::vp8: return vp8_keyframe_start(payload);
    case video_format::vp9: return vp9_keyframe_start(payload);
    case video_format::generic: {
        generic_descriptor d;
        return !parse_generic_descriptor(payload, d) && d.start && d.keyframe;
    }
    case video_format::unknown: return true;
    }
    return true;
}

} // namespace onair::rtp
