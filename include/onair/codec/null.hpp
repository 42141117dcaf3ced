// onair — do-nothing codec policies: the minimal models of video_codec and audio_codec.
//
// A role built with them compiles and runs but carries no media: encode() emits nothing and
// decode() answers errc::unsupported. Useful for control-plane tests and as concept exemplars.
#pragma once

#include "onair/codec/concepts.hpp"
#include "onair/codec/detail/audio_config.hpp"
#include "onair/codec/detail/video_config.hpp"
#include "onair/core/error.hpp"
#include "onair/core/media_frame.hpp"
#include "onair/rtp/generic.hpp"

#include <cstdint>
#include <string_view>
#include <system_error>

namespace onair::codec {

namespace detail {
/// Encoder/decoder pair that does nothing. @tparam Raw video_frame or audio_frame.
/// @tparam Config the policy's config type.
template <class Raw, class Config>
struct null_codec_impl {
    struct encoder {
        std::error_code open(const Config&) noexcept { return {}; }
        template <class Emit>
        std::error_code encode(const Raw&, Emit&&) noexcept {
            return {};
        }
        void set_bitrate(int) noexcept {}
        void request_keyframe() noexcept {}
    };
    struct decoder {
        std::error_code open() noexcept { return {}; }
        std::error_code decode(const encoded_frame&, Raw&) noexcept { return errc::unsupported; }
    };
};
} // namespace detail

/// Video policy that encodes to nothing. Thread safety: stateless.
struct null_video {
    static constexpr media_kind kind = media_kind::video;
    static constexpr std::string_view encoding_name = "x-onair-null";
    static constexpr std::uint32_t clock_rate = 90'000;
    static constexpr int channels = 1;
    using raw_type = video_frame;
    using config = video_config;
    using encoder = detail::null_codec_impl<video_frame, video_config>::encoder;
    using decoder = detail::null_codec_impl<video_frame, video_config>::decoder;
    using payload_format = rtp::generic_payload;
};

/// Audio policy that encodes to nothing. Thread safety: stateless.
struct null_audio {
    static constexpr media_kind kind = media_kind::audio;
    static constexpr std::string_view encoding_name = "x-onair-null";
    static constexpr std::uint32_t clock_rate = 48'000;
    static constexpr int channels = 1;
    using raw_type = audio_frame;
    using config = audio_config;
    using encoder = detail::null_codec_impl<audio_frame, audio_config>::encoder;
    using decoder = detail::null_codec_impl<audio_frame, audio_config>::decoder;
    using payload_format = rtp::generic_payload;
};

static_assert(video_codec<null_video>);
static_assert(audio_codec<null_audio>);

} // namespace onair::codec
