// onair — an audio/video codec pair: the Codec parameter of hosts and viewers.
//
//   using my_codec = codec::av<codec::vp8, codec::opus>;
//   static_assert(codec::av_codec<my_codec>);
#pragma once

#include "onair/codec/concepts.hpp"

namespace onair::codec {

/// Names one video and one audio codec policy for a role.
/// @tparam Video a model of codec::video_codec (vp8, vp9, passthrough_video, null_video)
/// @tparam Audio a model of codec::audio_codec (opus, passthrough_audio, null_audio)
template <class Video, class Audio>
struct av {
    static_assert(codec<Video>,
                  "codec::av<Video, Audio>: Video is not a codec policy; it needs kind, encoding_name, clock_rate, "
                  "channels, raw_type, config, encoder, decoder and payload_format (see onair/codec/concepts.hpp)");
    static_assert(!codec<Video> || video_codec<Video>,
                  "codec::av<Video, Audio>: Video is an audio codec (raw_type must be video_frame, kind "
                  "media_kind::video); did you swap the arguments? Write codec::av<codec::vp8, codec::opus>");
    static_assert(codec<Audio>,
                  "codec::av<Video, Audio>: Audio is not a codec policy; it needs kind, encoding_name, clock_rate, "
                  "channels, raw_type, config, encoder, decoder and payload_format (see onair/codec/concepts.hpp)");
    static_assert(!codec<Audio> || audio_codec<Audio>,
                  "codec::av<Video, Audio>: Audio is a video codec (raw_type must be audio_frame, kind "
                  "media_kind::audio); did you swap the arguments? Write codec::av<codec::vp8, codec::opus>");

    using video = Video;
    using audio = Audio;
};

/// A type naming a video codec policy `C::video` and an audio codec policy `C::audio`.
template <class C>
concept av_codec = requires {
    typename C::video;
    typename C::audio;
} && video_codec<typename C::video> && audio_codec<typename C::audio>;

/// For roles: `static_assert(codec::check_av_codec<Codec>())` reports which part is wrong.
template <class C>
consteval bool check_av_codec() {
    constexpr bool has_members = requires {
        typename C::video;
        typename C::audio;
    };
    static_assert(has_members,
                  "Codec must name a video and an audio codec policy: use codec::av<Video, Audio>, "
                  "e.g. codec::av<codec::vp8, codec::opus>");
    if constexpr (has_members) {
        static_assert(video_codec<typename C::video>,
                      "Codec::video does not model codec::video_codec (see onair/codec/concepts.hpp)");
        static_assert(audio_codec<typename C::audio>,
                      "Codec::audio does not model codec::audio_codec (see onair/codec/concepts.hpp)");
    }
    return true;
}

} // namespace onair::codec
