// onair — raw and encoded media frames: the vocabulary between sources, codecs and sinks.
#pragma once

#include "onair/core/time.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace onair {

enum class media_kind : std::uint8_t { audio, video };

/// An I420 (YUV 4:2:0 planar) picture. Planes are tightly packed: Y is width x height,
/// U and V are ceil(width/2) x ceil(height/2), stored one after the other in `data`.
struct video_frame {
    int width = 0;
    int height = 0;
    timestamp capture_time{};
    std::vector<std::uint8_t> data;

    video_frame() = default;
    video_frame(int w, int h) : width(w), height(h), data(size_for(w, h)) {}

    static constexpr std::size_t size_for(int w, int h) noexcept {
        const auto cw = static_cast<std::size_t>((w + 1) / 2);
        const auto ch = static_cast<std::size_t>((h + 1) / 2);
        return static_cast<std::size_t>(w) * static_cast<std::size_t>(h) + 2 * cw * ch;
    }
    int chroma_width() const noexcept { return (width + 1) / 2; }
    int chroma_height() const noexcept { return (height + 1) / 2; }
    std::uint8_t* y() noexcept { return data.data(); }
    std::uint8_t* u() noexcept { return y() + static_cast<std::size_t>(width) * height; }
    std::uint8_t* v() noexcept { return u() + static_cast<std::size_t>(chroma_width()) * chroma_height(); }
    const std::uint8_t* y() const noexcept { return data.data(); }
    const std::uint8_t* u() const noexcept { return y() + static_cast<std::size_t>(width) * height; }
    const std::uint8_t* v() const noexcept { return u() + static_cast<std::size_t>(chroma_width()) * chroma_height(); }
    bool valid() const noexcept { return width > 0 && height > 0 && data.size() == size_for(width, height); }
};

/// Interleaved signed 16-bit PCM at 48 kHz. A 20 ms frame holds 960 samples per channel.
struct audio_frame {
    static constexpr int sample_rate = 48'000;
    int channels = 1;
    timestamp capture_time{};
    std::vector<std::int16_t> samples;

    std::size_t samples_per_channel() const noexcept {
        return channels > 0 ? samples.size() / static_cast<std::size_t>(channels) : 0;
    }
};

/// How a video frame relates to the frames before it, as its RTP payload descriptor says
/// (VP8 RFC 7741, VP9 RFC 9628 non-flexible mode): what a frame buffer needs to tell
/// decodable frames from ones whose references are missing.
struct frame_dependency {
    bool has_picture_id = false;
    std::uint16_t picture_id = 0; ///< 15-bit (7-bit ids are widened as they are)
    bool has_tl0picidx = false;   ///< false: each frame references the previous picture
    std::uint8_t tl0picidx = 0;
    bool layer_sync = false;      ///< VP8 Y / VP9 U: references the base layer only
    friend bool operator==(const frame_dependency&, const frame_dependency&) = default;
};

/// One encoded access unit (a whole VP8/VP9 frame or one Opus packet).
struct encoded_frame {
    media_kind kind = media_kind::video;
    bool keyframe = false;
    std::uint8_t temporal_layer = 0;
    bool layer_sync = false;    ///< encoder output: an upper-layer frame that references TL0 frames only
    bool non_reference = false; ///< encoder output: no later frame references this one
    std::uint32_t rtp_timestamp = 0;
    timestamp capture_time{};
    int width = 0;  ///< video only, 0 when unknown
    int height = 0; ///< video only, 0 when unknown
    frame_dependency dependency{}; ///< video received over RTP: from the first packet's descriptor
    // VP9 spatial layers (encoder output): a picture of a stream with several spatial layers
    // is one encoded_frame per layer, lowest first, all with the picture's timestamp.
    std::uint8_t spatial_layer = 0;  ///< SID, 0 = lowest
    std::uint8_t spatial_layers = 1; ///< the stream's spatial layers (N_S + 1)
    bool inter_layer = false;        ///< predicted from the layer below in the same picture (VP9 D)
    bool end_of_picture = true;      ///< the picture's last layer frame (its last packet carries the RTP marker)
    /// Every spatial layer's size, lowest first (layered key frames: the scalability
    /// structure carries them); 0 when unknown.
    std::array<std::uint16_t, 3> layer_width{};
    std::array<std::uint16_t, 3> layer_height{};
    std::vector<std::uint8_t> data;

    std::span<const std::uint8_t> bytes() const noexcept { return data; }
};

} // namespace onair
