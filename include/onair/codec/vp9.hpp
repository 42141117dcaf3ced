// onair — VP9 codec policy (libvpx, real-time CBR, row-mt, cyclic-refresh AQ), RFC 9628 payload.
#pragma once

#include "onair/codec/concepts.hpp"
#include "onair/codec/detail/vpx.hpp"
#include "onair/rtp/vp9.hpp"

#include <cstdint>
#include <string_view>

namespace onair::codec {

namespace detail {
struct vp9_traits {
    static vpx_codec_iface_t* iface() noexcept { return vpx_codec_vp9_cx(); }
    static vpx_codec_iface_t* dx_iface() noexcept { return vpx_codec_vp9_dx(); }
    static constexpr int default_speed = 8; ///< of -9..9 (5..9 real-time); 8 ~ speed 7 quality, 20% faster
    static constexpr unsigned undershoot_pct = 50;
    static constexpr unsigned overshoot_pct = 50;

    static bool apply_controls(vpx_codec_ctx_t* ctx, const video_config& c) noexcept {
        const int tile_columns_log2 = c.threads >= 4 ? 2 : (c.threads >= 2 ? 1 : 0);
        const auto max_intra_pct = static_cast<unsigned>(std::max(300, 30 * c.fps));
        return vpx_codec_control(ctx, VP9E_SET_ROW_MT, 1u) == VPX_CODEC_OK &&
               vpx_codec_control(ctx, VP9E_SET_TILE_COLUMNS, tile_columns_log2) == VPX_CODEC_OK &&
               vpx_codec_control(ctx, VP9E_SET_AQ_MODE, 3u) == VPX_CODEC_OK && // cyclic refresh
               vpx_codec_control(ctx, VP9E_SET_FRAME_PARALLEL_DECODING, 0u) == VPX_CODEC_OK &&
               vpx_codec_control(ctx, VP9E_SET_NOISE_SENSITIVITY, 0u) == VPX_CODEC_OK &&
               vpx_codec_control(ctx, VP8E_SET_STATIC_THRESHOLD, 1u) == VPX_CODEC_OK &&
               vpx_codec_control(ctx, VP8E_SET_MAX_INTRA_BITRATE_PCT, max_intra_pct) == VPX_CODEC_OK;
    }
    /// Temporal layers are libvpx's one-pass SVC with one spatial layer at full size; each
    /// layer keeps the configured quantizer range.
    static bool enable_temporal_layers(vpx_codec_ctx_t* ctx, const vpx_codec_enc_cfg_t& cfg) noexcept {
        if (vpx_codec_control(ctx, VP9E_SET_SVC, 1) != VPX_CODEC_OK) return false;
        vpx_svc_extra_cfg_t svc{};
        for (unsigned tl = 0; tl < cfg.ts_number_layers; ++tl) {
            svc.max_quantizers[tl] = static_cast<int>(cfg.rc_max_quantizer);
            svc.min_quantizers[tl] = static_cast<int>(cfg.rc_min_quantizer);
        }
        svc.scaling_factor_num[0] = 1;
        svc.scaling_factor_den[0] = 1;
        return vpx_codec_control(ctx, VP9E_SET_SVC_PARAMETERS, &svc) == VPX_CODEC_OK;
    }
    static constexpr int max_spatial_layers = 3;
    /// Spatial layers: libvpx's SVC with each layer half the size of the one above, every
    /// (spatial, temporal) layer with the configured quantizer range, inter-layer prediction
    /// on key pictures only and pictures dropped whole (see vpx.hpp).
    static bool enable_spatial_layers(vpx_codec_ctx_t* ctx, const vpx_codec_enc_cfg_t& cfg, const video_config& c) noexcept {
        if (vpx_codec_control(ctx, VP9E_SET_SVC, 1) != VPX_CODEC_OK) return false;
        vpx_svc_extra_cfg_t svc{};
        for (unsigned i = 0; i < cfg.ss_number_layers * cfg.ts_number_layers; ++i) {
            svc.max_quantizers[i] = static_cast<int>(cfg.rc_max_quantizer);
            svc.min_quantizers[i] = static_cast<int>(cfg.rc_min_quantizer);
        }
        for (unsigned sl = 0; sl < cfg.ss_number_layers; ++sl) {
            svc.scaling_factor_num[sl] = 1;
            svc.scaling_factor_den[sl] = 1 << (cfg.ss_number_layers - 1 - sl);
        }
        if (vpx_codec_control(ctx, VP9E_SET_SVC_PARAMETERS, &svc) != VPX_CODEC_OK) return false;
        if (vpx_codec_control(ctx, VP9E_SET_SVC_INTER_LAYER_PRED, 2u) != VPX_CODEC_OK) return false; // key pictures only
        vpx_svc_frame_drop_t drop{};
        drop.framedrop_mode = FULL_SUPERFRAME_DROP;
        for (unsigned sl = 0; sl < cfg.ss_number_layers; ++sl) drop.framedrop_thresh[sl] = std::max(c.drop_frame_threshold, 0);
        drop.max_consec_drop = std::max(c.fps / 2, 1); // at most half a second dropped in a row
        return vpx_codec_control(ctx, VP9E_SET_SVC_FRAME_DROP_LAYER, &drop) == VPX_CODEC_OK;
    }
    /// The picture just encoded: its temporal layer and each layer frame's references.
    static bool svc_layers(vpx_codec_ctx_t* ctx, vpx_svc_layer_id_t& id, vpx_svc_ref_frame_config_t& refs) noexcept {
        return vpx_codec_control(ctx, VP9E_GET_SVC_LAYER_ID, &id) == VPX_CODEC_OK &&
               vpx_codec_control(ctx, VP9E_GET_SVC_REF_FRAME_CONFIG, &refs) == VPX_CODEC_OK;
    }
    static bool set_temporal_layer(vpx_codec_ctx_t* ctx, int layer) noexcept {
        vpx_svc_layer_id_t id{};
        id.spatial_layer_id = 0;
        id.temporal_layer_id = layer;
        id.temporal_layer_id_per_spatial[0] = layer;
        return vpx_codec_control(ctx, VP9E_SET_SVC_LAYER_ID, &id) == VPX_CODEC_OK;
    }
};
} // namespace detail

/// VP9 policy (profile 0, 8-bit 4:2:0): `vp9::encoder` and `vp9::decoder`, payload RFC 9628.
/// Same contract as `vp8`, temporal layers included; with config.spatial_layers > 1 (up to 3)
/// each picture is one encoded_frame per spatial layer, lowest first (spatial_layer,
/// inter_layer, end_of_picture; key frames carry every layer's size).
/// Thread safety: as `vp8`.
struct vp9 {
    static constexpr media_kind kind = media_kind::video;
    static constexpr std::string_view encoding_name = "VP9";
    static constexpr std::uint32_t clock_rate = 90'000;
    static constexpr int channels = 1;
    using raw_type = video_frame;
    using config = video_config;
    using encoder = detail::vpx_encoder<detail::vp9_traits>;
    using decoder = detail::vpx_decoder<detail::vp9_traits>;
    using payload_format = rtp::vp9_payload;
};

static_assert(video_codec<vp9>);

} // namespace onair::codec
