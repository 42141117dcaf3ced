// onair — VP8 codec policy (libvpx, real-time CBR) with the RFC 7741 payload format.
#pragma once

#include "onair/codec/concepts.hpp"
#include "onair/codec/detail/vpx.hpp"
#include "onair/rtp/vp8.hpp"

#include <cstdint>
#include <string_view>

namespace onair::codec {

namespace detail {
struct vp8_traits {
    static vpx_codec_iface_t* iface() noexcept { return vpx_codec_vp8_cx(); }
    static vpx_codec_iface_t* dx_iface() noexcept { return vpx_codec_vp8_dx(); }
    static constexpr int default_speed = 8; ///< fixed speed 8 of -16..16: fast, still good at 1 Mbps 360p
    static constexpr unsigned undershoot_pct = 100;
    static constexpr unsigned overshoot_pct = 15;

    static bool apply_controls(vpx_codec_ctx_t* ctx, const video_config& c) noexcept {
        // Keyframes may take this share of the per-frame budget (WebRTC's 0.5 * buffer * fps / 10).
        const auto max_intra_pct = static_cast<unsigned>(std::max(300, 30 * c.fps));
        return vpx_codec_control(ctx, VP8E_SET_STATIC_THRESHOLD, 1u) == VPX_CODEC_OK &&
               vpx_codec_control(ctx, VP8E_SET_NOISE_SENSITIVITY, 0u) == VPX_CODEC_OK &&
               vpx_codec_control(ctx, VP8E_SET_TOKEN_PARTITIONS,
                                 static_cast<int>(c.threads > 1 ? VP8_TWO_TOKENPARTITION : VP8_ONE_TOKENPARTITION)) ==
                   VPX_CODEC_OK &&
               vpx_codec_control(ctx, VP8E_SET_MAX_INTRA_BITRATE_PCT, max_intra_pct) == VPX_CODEC_OK;
    }
    static constexpr int max_spatial_layers = 1; ///< VP8 has no spatial scalability
    /// The ts_* settings of the encoder configuration are all VP8 needs.
    static bool enable_temporal_layers(vpx_codec_ctx_t*, const vpx_codec_enc_cfg_t&) noexcept { return true; }
    static bool set_temporal_layer(vpx_codec_ctx_t* ctx, int layer) noexcept {
        return vpx_codec_control(ctx, VP8E_SET_TEMPORAL_LAYER_ID, layer) == VPX_CODEC_OK;
    }
};
} // namespace detail

/// VP8 policy: `vp8::encoder` (libvpx, real-time CBR) and `vp8::decoder`, payload RFC 7741.
/// Encoder input: tightly packed I420 frames of exactly config.width x config.height.
/// Output: one encoded_frame per input frame (unless rate control drops one), rtp_timestamp
/// = capture time on the 90 kHz clock; with config.temporal_layers > 1, temporal_layer,
/// layer_sync and non_reference describe the frame's place in the layer pattern.
/// Thread safety: see detail::vpx_encoder / vpx_decoder (set_bitrate, request_keyframe are
/// safe to call from another thread; everything else is single-threaded).
struct vp8 {
    static constexpr media_kind kind = media_kind::video;
    static constexpr std::string_view encoding_name = "VP8";
    static constexpr std::uint32_t clock_rate = 90'000;
    static constexpr int channels = 1;
    using raw_type = video_frame;
    using config = video_config;
    using encoder = detail::vpx_encoder<detail::vp8_traits>;
    using decoder = detail::vpx_decoder<detail::vp8_traits>;
    using payload_format = rtp::vp8_payload;
};

static_assert(video_codec<vp8>);

} // namespace onair::codec
