// onair — the codec policy family.
//
// A codec policy is a type (never instantiated by roles) that names an encoder, a decoder
// and an RTP payload format for one medium. Roles hold codec objects as members and call
// them directly: no virtual functions, no type erasure.
//
// Requirements on a codec policy C (see docs/concepts/Codec.md):
//   C::kind              static constexpr media_kind
//   C::encoding_name     static constexpr std::string_view, as in SDP a=rtpmap ("VP8", "opus")
//   C::clock_rate        static constexpr std::uint32_t RTP clock (90000 video, 48000 Opus)
//   C::channels          static constexpr int (SDP channel count; 1 for video)
//   C::raw_type          video_frame or audio_frame
//   C::config            aggregate with the encoder settings
//   C::encoder           default constructible;
//                        open(const config&) -> std::error_code
//                        encode(const raw_type&, Emit&& emit) -> std::error_code, where
//                          emit(encoded_frame&&) is called for every produced frame
//                        set_bitrate(int kbps); request_keyframe()
//   C::decoder           default constructible; open() -> std::error_code;
//                        decode(const encoded_frame&, raw_type& out) -> std::error_code
//   C::payload_format    an rtp payload format (see rtp::payload_format)
#pragma once

#include "onair/core/media_frame.hpp"
#include "onair/rtp/payload_concepts.hpp"

#include <concepts>
#include <cstdint>
#include <string_view>
#include <system_error>

namespace onair::codec {

namespace detail {
/// Stand-in for the callable an encoder hands its output to.
struct encoded_frame_sink_archetype {
    void operator()(encoded_frame&&) const noexcept {}
};
} // namespace detail

template <class C>
concept codec = requires {
    { C::kind } -> std::convertible_to<media_kind>;
    { C::encoding_name } -> std::convertible_to<std::string_view>;
    { C::clock_rate } -> std::convertible_to<std::uint32_t>;
    { C::channels } -> std::convertible_to<int>;
    typename C::raw_type;
    typename C::config;
    typename C::encoder;
    typename C::decoder;
    typename C::payload_format;
} && std::default_initializable<typename C::encoder> && std::default_initializable<typename C::decoder>
  && rtp::payload_format<typename C::payload_format>
  && requires(typename C::encoder& enc, typename C::decoder& dec, const typename C::config& cfg,
              const typename C::raw_type& raw, typename C::raw_type& out, const encoded_frame& ef,
              detail::encoded_frame_sink_archetype emit, int kbps) {
    { enc.open(cfg) } -> std::same_as<std::error_code>;
    { enc.encode(raw, emit) } -> std::same_as<std::error_code>;
    enc.set_bitrate(kbps);
    enc.request_keyframe();
    { dec.open() } -> std::same_as<std::error_code>;
    { dec.decode(ef, out) } -> std::same_as<std::error_code>;
};

template <class C>
concept video_codec = codec<C> && std::same_as<typename C::raw_type, video_frame> && (C::kind == media_kind::video);

template <class C>
concept audio_codec = codec<C> && std::same_as<typename C::raw_type, audio_frame> && (C::kind == media_kind::audio);

} // namespace onair::codec
