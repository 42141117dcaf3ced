// onair — libvpx encoder/decoder shared by the VP8 and VP9 codec policies.
//
// Real-time settings as WebRTC uses them: no lag, CBR, VPX_DL_REALTIME, error resilient,
// keyframes on request plus a long periodic interval. Traits select the interface and the
// codec-specific controls.
//
// Temporal layers (video_config::temporal_layers 2 or 3) use libvpx's temporal scalability
// (ts_* rate control per layer) with the layer id and reference flags set per frame:
//
//     layers  frame  TL  references    updates   layer_sync  non_reference
//     2       0      0   LAST          LAST      no          no
//             1      1   LAST          -         yes         yes
//     3       0      0   LAST          LAST      no          no
//             1      2   LAST          -         yes         yes
//             2      1   LAST          GOLDEN    yes         no
//             3      2   LAST, GOLDEN  -         no          yes
//
// LAST always holds the latest TL0 frame and GOLDEN the latest TL1 frame; ALTREF is written by
// keyframes only and never read. Frames above TL0 leave the entropy context alone, so what
// survives dropping every layer above k (k = 0, 1) decodes exactly as the encoder expects.
// Keyframes, requested or periodic, restart the pattern at frame 0.
//
// Spatial layers (video_config::spatial_layers 2 or 3; VP9) are libvpx's one-pass SVC: the
// picture at 1/4, 1/2 and full size (1/2 and full for two), one rate controller per
// (spatial, temporal) layer, and libvpx's own temporal patterns (0,1 and 0,2,1,2: the same
// layers as above, which BYPASS cannot give several spatial layers without a reference
// configuration of our own per frame). Inter-layer prediction is on for key pictures only
// (VP9E_SET_SVC_INTER_LAYER_PRED 2, "k-SVC"): a key picture's upper layers are predicted from
// the layer below, every later layer frame from earlier frames of its own layer only. So the
// lower layers never depend on the upper ones (a relay may drop them at any picture), an
// upper layer costs only its own delta bits, not a correction of the layer below at every
// frame, and a layer can be joined only at a key picture. Full inter-layer prediction would
// save some bits on the upper layers at the price of making them depend on every lower
// layer frame, so one lost base layer packet would break every layer above it too. A
// picture is dropped whole or not at all (FULL_SUPERFRAME_DROP), so every picture has every
// layer and the top layer's last packet ends it. libvpx 1.12 hands each picture out as one
// superframe (its layer frames and an index); the encoder splits it at the index and emits
// one encoded_frame per layer frame, lowest first, with its spatial id and size. Every layer
// frame is a shown frame: a decoder fed the layer frames up to k renders layer k. The layer
// sync (U), inter-layer (D) and non-reference flags are derived from the buffers each layer
// frame reads and refreshes (VP9E_GET_SVC_REF_FRAME_CONFIG), not assumed from the pattern.
#pragma once

#include "onair/codec/detail/video_config.hpp"
#include "onair/core/error.hpp"
#include "onair/core/media_frame.hpp"
#include "onair/core/time.hpp"

#include <vpx/vp8cx.h>
#include <vpx/vp8dx.h>
#include <vpx/vpx_decoder.h>
#include <vpx/vpx_encoder.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <system_error>
#include <utility>

namespace onair::codec {

namespace detail {

struct vpx_ctx_deleter {
    void operator()(vpx_codec_ctx_t* c) const noexcept {
        vpx_codec_destroy(c);
        delete c;
    }
};
/// Heap-held so moving the owner never moves a context libvpx may point into.
using vpx_ctx_ptr = std::unique_ptr<vpx_codec_ctx_t, vpx_ctx_deleter>;

/// 90 kHz RTP timestamp of a capture instant (wraps modulo 2^32).
inline std::uint32_t rtp_timestamp_90k(timestamp t) noexcept {
    const auto us = static_cast<std::uint64_t>(t.time_since_epoch().count());
    return static_cast<std::uint32_t>(us * 9u / 100u);
}

/// One frame of a temporal layer pattern.
struct temporal_step {
    std::uint8_t layer;
    vpx_enc_frame_flags_t flags; ///< VP8_EFLAG_NO_REF_* / NO_UPD_*: the buffers it reads and writes
    bool layer_sync;             ///< above TL0, and reads TL0 frames only
    bool non_reference;          ///< writes no reference buffer
};

inline constexpr vpx_enc_frame_flags_t ref_last = VP8_EFLAG_NO_REF_GF | VP8_EFLAG_NO_REF_ARF;
inline constexpr vpx_enc_frame_flags_t ref_last_golden = VP8_EFLAG_NO_REF_ARF;
inline constexpr vpx_enc_frame_flags_t update_last = VP8_EFLAG_NO_UPD_GF | VP8_EFLAG_NO_UPD_ARF;
inline constexpr vpx_enc_frame_flags_t update_golden =
    VP8_EFLAG_NO_UPD_LAST | VP8_EFLAG_NO_UPD_ARF | VP8_EFLAG_NO_UPD_ENTROPY;
inline constexpr vpx_enc_frame_flags_t update_none =
    VP8_EFLAG_NO_UPD_LAST | VP8_EFLAG_NO_UPD_GF | VP8_EFLAG_NO_UPD_ARF | VP8_EFLAG_NO_UPD_ENTROPY;

inline constexpr temporal_step two_layer_pattern[] = {
    {0, ref_last | update_last, false, false},
    {1, ref_last | update_none, true, true},
};
inline constexpr temporal_step three_layer_pattern[] = {
    {0, ref_last | update_last, false, false},
    {2, ref_last | update_none, true, true},
    {1, ref_last | update_golden, true, false},
    {2, ref_last_golden | update_none, false, true},
};
/// Cumulative share of the bitrate up to each layer, percent (WebRTC's allocation).
inline constexpr unsigned two_layer_share[] = {60, 100};
inline constexpr unsigned three_layer_share[] = {40, 60, 100};

inline std::span<const temporal_step> temporal_pattern(int layers) noexcept {
    if (layers == 2) return two_layer_pattern;
    if (layers == 3) return three_layer_pattern;
    return {};
}

/// Sets libvpx's cumulative per-layer targets (kbps) for `kbps` in total: ts_target_bitrate
/// (VP8) and layer_target_bitrate (VP9, one spatial layer). libvpx wants them strictly
/// increasing, which the smallest rates need a nudge for.
inline void set_layer_bitrates(vpx_codec_enc_cfg_t& cfg, int layers, unsigned kbps) noexcept {
    const std::span<const unsigned> share =
        layers == 3 ? std::span<const unsigned>{three_layer_share} : std::span<const unsigned>{two_layer_share};
    unsigned prev = 0;
    for (std::size_t tl = 0; tl < share.size(); ++tl) {
        const auto target = static_cast<unsigned>(static_cast<std::uint64_t>(kbps) * share[tl] / 100u);
        prev = std::max(target, prev + 1);
        cfg.ts_target_bitrate[tl] = prev;
        cfg.layer_target_bitrate[tl] = prev;
    }
}

/// Cumulative share of the bitrate up to each spatial layer, percent (the top layer has 4x
/// the pixels of the one below and gets most of the rate; the lowest is small but has the
/// most bits per pixel).
inline constexpr unsigned two_spatial_share[] = {30, 100};
inline constexpr unsigned three_spatial_share[] = {10, 35, 100};

/// Sets libvpx's SVC targets (kbps) for `kbps` in total: layer_target_bitrate[s * T + t] is
/// spatial layer s with its temporal layers up to t (cumulative over t, not over s), each
/// spatial layer's temporal split as in set_layer_bitrates.
inline void set_svc_bitrates(vpx_codec_enc_cfg_t& cfg, int spatial, int temporal, unsigned kbps) noexcept {
    const std::span<const unsigned> sshare = spatial == 3 ? std::span<const unsigned>{three_spatial_share}
                                                          : std::span<const unsigned>{two_spatial_share};
    const std::span<const unsigned> tshare = temporal == 3   ? std::span<const unsigned>{three_layer_share}
                                             : temporal == 2 ? std::span<const unsigned>{two_layer_share}
                                                             : std::span<const unsigned>{};
    unsigned below = 0, total = 0;
    for (std::size_t sl = 0; sl < sshare.size(); ++sl) {
        const auto upto = static_cast<unsigned>(static_cast<std::uint64_t>(kbps) * sshare[sl] / 100u);
        const unsigned layer = std::max(upto - std::min(upto, below), static_cast<unsigned>(temporal) + 1u);
        below = upto;
        unsigned prev = 0;
        for (int tl = 0; tl < temporal; ++tl) {
            const unsigned target =
                tshare.empty() ? layer : static_cast<unsigned>(static_cast<std::uint64_t>(layer) * tshare[static_cast<std::size_t>(tl)] / 100u);
            prev = std::max(target, prev + 1);
            cfg.layer_target_bitrate[sl * static_cast<std::size_t>(temporal) + static_cast<std::size_t>(tl)] = prev;
        }
        total += prev;
    }
    cfg.rc_target_bitrate = total;
}

/// The layer frames of a VP9 superframe (the index at its end, VP9 bitstream spec annex B),
/// without the index; one frame when there is no index. Returns how many, 0 when the index
/// does not describe `data`.
inline std::size_t split_superframe(std::span<const std::uint8_t> data,
                                    std::array<std::span<const std::uint8_t>, 8>& frames) noexcept {
    if (data.empty()) return 0;
    const std::uint8_t marker = data.back();
    if ((marker & 0xe0) != 0xc0) {
        frames[0] = data;
        return 1;
    }
    const std::size_t count = (marker & 0x07u) + 1u;
    const std::size_t mag = ((marker >> 3) & 0x03u) + 1u;
    const std::size_t index = 2 + mag * count;
    if (data.size() < index || data[data.size() - index] != marker) {
        frames[0] = data; // an index's marker byte ends a frame by chance
        return 1;
    }
    const std::size_t payload = data.size() - index;
    const std::uint8_t* q = data.data() + payload + 1;
    std::size_t pos = 0;
    for (std::size_t i = 0; i < count; ++i) {
        std::size_t size = 0;
        for (std::size_t b = 0; b < mag; ++b) size |= std::size_t{q[b]} << (8 * b);
        q += mag;
        if (size == 0 || size > payload - pos) return 0;
        frames[i] = data.subspan(pos, size);
        pos += size;
    }
    return pos == payload ? count : 0;
}

/// @tparam Traits supplies `iface()`, `dx_iface()`, `default_speed`, `undershoot_pct`, `overshoot_pct`,
///   `apply_controls(ctx, config) -> bool`, and for temporal layers
///   `enable_temporal_layers(ctx, cfg) -> bool` (once after init) and
///   `set_temporal_layer(ctx, layer) -> bool` (before each frame); `max_spatial_layers`, and
///   when it is above 1 `enable_spatial_layers(ctx, cfg, config) -> bool` (once after init)
///   and `svc_layers(ctx, layer_id, ref_config) -> bool` (after each frame).
/// Thread safety: encode() and open() from one thread; set_bitrate() and request_keyframe()
/// may be called from any thread (they take effect on the next encode()).
template <class Traits>
class vpx_encoder {
public:
    vpx_encoder() = default;
    vpx_encoder(const vpx_encoder&) = delete;
    vpx_encoder& operator=(const vpx_encoder&) = delete;
    vpx_encoder(vpx_encoder&& o) noexcept { move_from(o); }
    vpx_encoder& operator=(vpx_encoder&& o) noexcept {
        if (this != &o) move_from(o);
        return *this;
    }
    ~vpx_encoder() = default;

    std::error_code open(const video_config& c) {
        ctx_.reset();
        if (c.width <= 0 || c.height <= 0 || c.width > 16384 || c.height > 16384 || c.fps <= 0 ||
            c.bitrate_kbps <= 0 || c.threads < 1 || c.max_quantizer < c.min_quantizer || c.temporal_layers < 1 ||
            c.temporal_layers > 3 || c.spatial_layers < 1 || c.spatial_layers > Traits::max_spatial_layers)
            return errc::codec_init_failed;
        // The lowest layer must keep a picture libvpx can code (at least 16x16).
        if (c.spatial_layers > 1 && (std::min(c.width, c.height) >> (c.spatial_layers - 1)) < 16)
            return errc::codec_init_failed;
        config_ = c;
        if (vpx_codec_enc_config_default(Traits::iface(), &cfg_, 0) != VPX_CODEC_OK) return errc::codec_init_failed;
        cfg_.g_w = static_cast<unsigned>(c.width);
        cfg_.g_h = static_cast<unsigned>(c.height);
        cfg_.g_timebase = {1, 90'000};
        cfg_.g_threads = static_cast<unsigned>(c.threads);
        cfg_.g_lag_in_frames = 0;
        cfg_.g_error_resilient = VPX_ERROR_RESILIENT_DEFAULT;
        cfg_.g_pass = VPX_RC_ONE_PASS;
        cfg_.rc_end_usage = VPX_CBR;
        cfg_.rc_target_bitrate = static_cast<unsigned>(c.bitrate_kbps);
        cfg_.rc_min_quantizer = static_cast<unsigned>(std::clamp(c.min_quantizer, 0, 63));
        cfg_.rc_max_quantizer = static_cast<unsigned>(std::clamp(c.max_quantizer, 0, 63));
        cfg_.rc_dropframe_thresh = static_cast<unsigned>(std::max(c.drop_frame_threshold, 0));
        cfg_.rc_resize_allowed = c.resize_allowed ? 1 : 0;
        cfg_.rc_undershoot_pct = Traits::undershoot_pct;
        cfg_.rc_overshoot_pct = Traits::overshoot_pct;
        cfg_.rc_buf_initial_sz = 500;
        cfg_.rc_buf_optimal_sz = 600;
        cfg_.rc_buf_sz = 1000;
        if (c.keyframe_interval_s > 0) {
            cfg_.kf_mode = VPX_KF_AUTO;
            cfg_.kf_min_dist = 0;
            cfg_.kf_max_dist = static_cast<unsigned>(c.keyframe_interval_s) * static_cast<unsigned>(c.fps);
        } else {
            cfg_.kf_mode = VPX_KF_DISABLED; // the first frame is still a keyframe
        }
        pattern_ = c.spatial_layers > 1 ? std::span<const temporal_step>{} : temporal_pattern(c.temporal_layers);
        keyframe_every_ = 0;
        svc_ = c.spatial_layers > 1;
        if (svc_) {
            // libvpx's temporal patterns (it restarts them at key frames, periodic ones
            // included) and its periodic key frames.
            static constexpr unsigned ids2[] = {0, 1};
            static constexpr unsigned ids3[] = {0, 2, 1, 2};
            cfg_.ss_number_layers = static_cast<unsigned>(c.spatial_layers);
            cfg_.ts_number_layers = static_cast<unsigned>(c.temporal_layers);
            cfg_.temporal_layering_mode = c.temporal_layers == 3   ? VP9E_TEMPORAL_LAYERING_MODE_0212
                                          : c.temporal_layers == 2 ? VP9E_TEMPORAL_LAYERING_MODE_0101
                                                                   : VP9E_TEMPORAL_LAYERING_MODE_NOLAYERING;
            const std::span<const unsigned> ids = c.temporal_layers == 3   ? std::span<const unsigned>{ids3}
                                                  : c.temporal_layers == 2 ? std::span<const unsigned>{ids2}
                                                                           : std::span<const unsigned>{};
            cfg_.ts_periodicity = static_cast<unsigned>(std::max<std::size_t>(ids.size(), 1));
            for (std::size_t i = 0; i < ids.size(); ++i) cfg_.ts_layer_id[i] = ids[i];
            for (int tl = 0; tl < c.temporal_layers; ++tl)
                cfg_.ts_rate_decimator[tl] = 1u << (c.temporal_layers - 1 - tl);
            cfg_.rc_resize_allowed = 0; // each layer has its fixed size
            set_svc_bitrates(cfg_, c.spatial_layers, c.temporal_layers, cfg_.rc_target_bitrate);
            writers_.fill(buffer_writer{});
            picture_ = 0;
        }
        if (!pattern_.empty()) {
            cfg_.ts_number_layers = static_cast<unsigned>(c.temporal_layers);
            cfg_.ts_periodicity = static_cast<unsigned>(pattern_.size());
            for (std::size_t i = 0; i < pattern_.size(); ++i) cfg_.ts_layer_id[i] = pattern_[i].layer;
            for (int tl = 0; tl < c.temporal_layers; ++tl)
                cfg_.ts_rate_decimator[tl] = 1u << (c.temporal_layers - 1 - tl); // 2,1 or 4,2,1
            set_layer_bitrates(cfg_, c.temporal_layers, cfg_.rc_target_bitrate);
            // VP9: the layer ids and references come from us, per frame.
            cfg_.temporal_layering_mode = VP9E_TEMPORAL_LAYERING_MODE_BYPASS;
            // libvpx would place periodic keyframes on whatever layer the frame has; placing
            // them ourselves keeps every keyframe on TL0 at the start of the pattern.
            keyframe_every_ = cfg_.kf_mode == VPX_KF_AUTO ? cfg_.kf_max_dist : 0;
            cfg_.kf_mode = VPX_KF_DISABLED;
        }
        vpx_ctx_ptr ctx{new vpx_codec_ctx_t{}};
        if (vpx_codec_enc_init(ctx.get(), Traits::iface(), &cfg_, 0) != VPX_CODEC_OK) {
            delete ctx.release(); // init failed: nothing to destroy
            return errc::codec_init_failed;
        }
        const int speed = c.speed.value_or(Traits::default_speed);
        if (vpx_codec_control(ctx.get(), VP8E_SET_CPUUSED, speed) != VPX_CODEC_OK) return errc::codec_init_failed;
        if (!Traits::apply_controls(ctx.get(), c)) return errc::codec_init_failed;
        if (!pattern_.empty() && !Traits::enable_temporal_layers(ctx.get(), cfg_)) return errc::codec_init_failed;
        if constexpr (Traits::max_spatial_layers > 1)
            if (svc_ && !Traits::enable_spatial_layers(ctx.get(), cfg_, c)) return errc::codec_init_failed;
        ctx_ = std::move(ctx);
        pending_kbps_.store(0, std::memory_order_relaxed);
        force_kf_.store(false, std::memory_order_relaxed);
        next_pts_ = 0;
        first_us_ = 0;
        started_ = false;
        step_ = 0;
        since_keyframe_ = 0;
        return {};
    }

    bool is_open() const noexcept { return ctx_ != nullptr; }
    const video_config& config() const noexcept { return config_; }
    int bitrate_kbps() const noexcept { return static_cast<int>(cfg_.rc_target_bitrate); }

    /// Target bitrate for the following frames (kbps, > 0).
    void set_bitrate(int kbps) noexcept {
        if (kbps > 0) pending_kbps_.store(kbps, std::memory_order_relaxed);
    }
    /// The next encoded frame is a keyframe.
    void request_keyframe() noexcept { force_kf_.store(true, std::memory_order_relaxed); }

    /// Encodes one I420 frame of the configured size; calls emit(encoded_frame&&) per output frame
    /// (none when rate control drops the frame).
    template <class Emit>
    std::error_code encode(const video_frame& f, Emit&& emit) {
        if (!ctx_) return errc::codec_failed;
        if (!f.valid() || f.width != config_.width || f.height != config_.height) return errc::bad_frame;
        if (const int kbps = pending_kbps_.exchange(0, std::memory_order_relaxed); kbps > 0) {
            cfg_.rc_target_bitrate = static_cast<unsigned>(kbps);
            if (!pattern_.empty()) set_layer_bitrates(cfg_, config_.temporal_layers, cfg_.rc_target_bitrate);
            if (svc_) set_svc_bitrates(cfg_, config_.spatial_layers, config_.temporal_layers, cfg_.rc_target_bitrate);
            if (vpx_codec_enc_config_set(ctx_.get(), &cfg_) != VPX_CODEC_OK) return errc::codec_failed;
        }
        vpx_image_t img;
        auto* base = const_cast<std::uint8_t*>(f.data.data()); // libvpx only reads its input
        if (!vpx_img_wrap(&img, VPX_IMG_FMT_I420, static_cast<unsigned>(f.width), static_cast<unsigned>(f.height), 1,
                          base))
            return errc::bad_frame;
        // Our chroma planes are ceil(w/2) wide: set planes and strides explicitly.
        img.planes[VPX_PLANE_Y] = base;
        img.planes[VPX_PLANE_U] = base + (f.u() - f.y());
        img.planes[VPX_PLANE_V] = base + (f.v() - f.y());
        img.stride[VPX_PLANE_Y] = f.width;
        img.stride[VPX_PLANE_U] = f.chroma_width();
        img.stride[VPX_PLANE_V] = f.chroma_width();

        // pts in the 90 kHz timebase from capture time, forced strictly increasing.
        const std::int64_t us = f.capture_time.time_since_epoch().count();
        if (!started_) { first_us_ = us; started_ = true; }
        vpx_codec_pts_t pts = (us - first_us_) * 9 / 100;
        if (pts < next_pts_) pts = next_pts_;
        const unsigned long duration = static_cast<unsigned long>(90'000 / config_.fps);
        next_pts_ = pts + 1;

        bool kf = force_kf_.exchange(false, std::memory_order_relaxed);
        vpx_enc_frame_flags_t flags = 0;
        temporal_step step{0, 0, false, false};
        if (!pattern_.empty()) {
            if (keyframe_every_ > 0 && since_keyframe_ >= keyframe_every_) kf = true;
            if (kf) step_ = 0; // a keyframe starts the pattern over
            step = pattern_[step_];
            flags = step.flags;
            if (!Traits::set_temporal_layer(ctx_.get(), step.layer)) {
                if (kf) force_kf_.store(true, std::memory_order_relaxed);
                return errc::codec_failed;
            }
        }
        if (kf) flags |= VPX_EFLAG_FORCE_KF;
        if (vpx_codec_encode(ctx_.get(), &img, pts, duration, flags, VPX_DL_REALTIME) != VPX_CODEC_OK) {
            if (kf) force_kf_.store(true, std::memory_order_relaxed);
            return errc::codec_failed;
        }
        if (!pattern_.empty()) {
            step_ = (step_ + 1) % pattern_.size(); // a frame rate control drops still takes its slot
            ++since_keyframe_;
        }
        if constexpr (Traits::max_spatial_layers > 1)
            if (svc_) return emit_layers(f, std::forward<Emit>(emit));
        vpx_codec_iter_t iter = nullptr;
        while (const vpx_codec_cx_pkt_t* pkt = vpx_codec_get_cx_data(ctx_.get(), &iter)) {
            if (pkt->kind != VPX_CODEC_CX_FRAME_PKT) continue;
            encoded_frame out;
            out.kind = media_kind::video;
            out.keyframe = (pkt->data.frame.flags & VPX_FRAME_IS_KEY) != 0;
            if (out.keyframe) {
                // Also a keyframe libvpx made on its own (a resize): it refreshes every buffer,
                // so it is a base layer frame and the pattern goes on after it.
                if (!pattern_.empty()) {
                    step_ = 1 % pattern_.size();
                    since_keyframe_ = 1;
                }
            } else {
                out.temporal_layer = step.layer;
                out.layer_sync = step.layer_sync;
                out.non_reference = step.non_reference;
            }
            out.rtp_timestamp = rtp_timestamp_90k(f.capture_time);
            out.capture_time = f.capture_time;
            out.width = f.width;
            out.height = f.height;
            const auto* p = static_cast<const std::uint8_t*>(pkt->data.frame.buf);
            out.data.assign(p, p + pkt->data.frame.sz);
            emit(std::move(out));
        }
        return {};
    }

private:
    /// Which layer frame last refreshed a reference buffer (spatial -1: none yet).
    struct buffer_writer {
        int spatial = -1;
        int temporal = 0;
        std::uint64_t picture = 0;
    };

    /// SVC: splits the picture libvpx made into its layer frames and emits each, lowest first.
    template <class Emit>
    std::error_code emit_layers(const video_frame& f, Emit&& emit) {
        vpx_codec_iter_t iter = nullptr;
        while (const vpx_codec_cx_pkt_t* pkt = vpx_codec_get_cx_data(ctx_.get(), &iter)) {
            if (pkt->kind != VPX_CODEC_CX_FRAME_PKT) continue;
            vpx_svc_layer_id_t id{};
            vpx_svc_ref_frame_config_t refs{};
            if (!Traits::svc_layers(ctx_.get(), id, refs)) return errc::codec_failed;
            const auto* p = static_cast<const std::uint8_t*>(pkt->data.frame.buf);
            std::array<std::span<const std::uint8_t>, 8> parts;
            const std::size_t count = split_superframe({p, pkt->data.frame.sz}, parts);
            const auto layers = static_cast<std::size_t>(config_.spatial_layers);
            std::array<int, 3> sid{};
            std::size_t encoded = 0;
            for (std::size_t sl = 0; sl < layers; ++sl)
                if (pkt->data.frame.spatial_layer_encoded[sl] && encoded < sid.size()) sid[encoded++] = static_cast<int>(sl);
            if (count == 0 || count != encoded) return errc::codec_failed; // not the layers libvpx said it made
            const bool key = (pkt->data.frame.flags & VPX_FRAME_IS_KEY) != 0;
            const int tid = std::clamp(id.temporal_layer_id, 0, 7);
            ++picture_;
            if (key) writers_.fill(buffer_writer{0, 0, picture_}); // a key frame refreshes every buffer
            for (std::size_t i = 0; i < count; ++i) {
                const int s = sid[i];
                encoded_frame out;
                out.kind = media_kind::video;
                out.keyframe = key;
                out.spatial_layer = static_cast<std::uint8_t>(s);
                out.spatial_layers = static_cast<std::uint8_t>(layers);
                out.end_of_picture = i + 1 == count;
                // The buffers this layer frame reads: frames of this picture (inter-layer
                // prediction) or of earlier pictures (temporal prediction).
                const int read[] = {refs.reference_last[s] ? refs.lst_fb_idx[s] : -1,
                                    refs.reference_golden[s] ? refs.gld_fb_idx[s] : -1,
                                    refs.reference_alt_ref[s] ? refs.alt_fb_idx[s] : -1};
                bool inter_layer = false, from_lower_tl = true;
                for (const int b : read) {
                    if (b < 0 || b >= static_cast<int>(writers_.size())) continue;
                    const buffer_writer& w = writers_[static_cast<std::size_t>(b)];
                    if (w.picture == picture_ && w.spatial < s) inter_layer = true;
                    else if (w.temporal >= tid) from_lower_tl = false;
                }
                const unsigned updates = static_cast<unsigned>(refs.update_buffer_slot[s]) & 0xffu;
                if (!(key && s == 0)) {
                    out.temporal_layer = static_cast<std::uint8_t>(tid);
                    out.inter_layer = inter_layer;
                    out.layer_sync = tid > 0 && from_lower_tl;
                    out.non_reference = updates == 0;
                }
                for (std::size_t b = 0; b < writers_.size(); ++b)
                    if (updates & (1u << b)) writers_[b] = buffer_writer{s, tid, picture_};
                out.rtp_timestamp = rtp_timestamp_90k(f.capture_time);
                out.capture_time = f.capture_time;
                out.width = static_cast<int>(pkt->data.frame.width[s]);
                out.height = static_cast<int>(pkt->data.frame.height[s]);
                for (std::size_t sl = 0; sl < layers; ++sl) {
                    out.layer_width[sl] = static_cast<std::uint16_t>(std::min(pkt->data.frame.width[sl], 0xffffu));
                    out.layer_height[sl] = static_cast<std::uint16_t>(std::min(pkt->data.frame.height[sl], 0xffffu));
                }
                out.data.assign(parts[i].begin(), parts[i].end());
                emit(std::move(out));
            }
        }
        return {};
    }

    void move_from(vpx_encoder& o) noexcept {
        ctx_ = std::move(o.ctx_);
        config_ = o.config_;
        cfg_ = o.cfg_;
        pending_kbps_.store(o.pending_kbps_.load(std::memory_order_relaxed), std::memory_order_relaxed);
        force_kf_.store(o.force_kf_.load(std::memory_order_relaxed), std::memory_order_relaxed);
        next_pts_ = o.next_pts_;
        first_us_ = o.first_us_;
        started_ = o.started_;
        pattern_ = o.pattern_;
        keyframe_every_ = o.keyframe_every_;
        step_ = o.step_;
        since_keyframe_ = o.since_keyframe_;
        svc_ = o.svc_;
        writers_ = o.writers_;
        picture_ = o.picture_;
    }

    vpx_ctx_ptr ctx_;
    video_config config_{};
    vpx_codec_enc_cfg_t cfg_{};
    std::atomic<int> pending_kbps_{0};
    std::atomic<bool> force_kf_{false};
    vpx_codec_pts_t next_pts_ = 0;
    std::int64_t first_us_ = 0;
    bool started_ = false;
    std::span<const temporal_step> pattern_; ///< empty: one layer
    unsigned keyframe_every_ = 0;            ///< frames between periodic keyframes when layered; 0 = none
    std::size_t step_ = 0;                   ///< pattern_ index of the next frame
    unsigned since_keyframe_ = 0;            ///< frames encoded since the last keyframe (layered)
    bool svc_ = false;                       ///< spatial layers (libvpx's SVC patterns)
    std::array<buffer_writer, 8> writers_{}; ///< SVC: the writer of each reference buffer
    std::uint64_t picture_ = 0;              ///< SVC: pictures encoded
};

/// Decodes VP8/VP9 into tightly packed I420 frames.
/// Until a keyframe has been decoded (and again after a decode error) it answers
/// errc::not_keyframe to inter frames instead of producing a corrupt picture.
/// Thread safety: none; one thread per decoder.
template <class Traits>
class vpx_decoder {
public:
    vpx_decoder() = default;
    vpx_decoder(const vpx_decoder&) = delete;
    vpx_decoder& operator=(const vpx_decoder&) = delete;
    vpx_decoder(vpx_decoder&&) noexcept = default;
    vpx_decoder& operator=(vpx_decoder&&) noexcept = default;
    ~vpx_decoder() = default;

    std::error_code open(int threads = 1) {
        ctx_.reset();
        vpx_codec_dec_cfg_t cfg{};
        cfg.threads = static_cast<unsigned>(std::max(threads, 1));
        vpx_ctx_ptr ctx{new vpx_codec_ctx_t{}};
        if (vpx_codec_dec_init(ctx.get(), Traits::dx_iface(), &cfg, 0) != VPX_CODEC_OK) {
            delete ctx.release();
            return errc::codec_init_failed;
        }
        ctx_ = std::move(ctx);
        need_keyframe_ = true;
        return {};
    }

    bool is_open() const noexcept { return ctx_ != nullptr; }
    /// True while inter frames are refused (no keyframe yet, or the last decode failed).
    bool waiting_for_keyframe() const noexcept { return need_keyframe_; }

    std::error_code decode(const encoded_frame& in, video_frame& out) {
        if (!ctx_) return errc::codec_failed;
        if (in.data.empty() || in.data.size() > (1u << 30)) return errc::codec_failed;
        const auto size = static_cast<unsigned>(in.data.size());
        if (need_keyframe_) {
            vpx_codec_stream_info_t si{};
            si.sz = sizeof(si);
            // libvpx's VP8 peek fails on inter frames; is_kf is set before it validates a keyframe.
            const bool ok = vpx_codec_peek_stream_info(Traits::dx_iface(), in.data.data(), size, &si) == VPX_CODEC_OK;
            if (!si.is_kf) return errc::not_keyframe;
            if (!ok) return errc::codec_failed; // looks like a keyframe but is not a valid one
        }
        if (vpx_codec_decode(ctx_.get(), in.data.data(), size, nullptr, 0) != VPX_CODEC_OK) {
            need_keyframe_ = true;
            return errc::codec_failed;
        }
        const vpx_image_t* img = nullptr;
        vpx_codec_iter_t iter = nullptr;
        while (const vpx_image_t* i = vpx_codec_get_frame(ctx_.get(), &iter)) img = i;
        if (!img) return errc::codec_failed; // nothing displayable in this input
        if (img->fmt != VPX_IMG_FMT_I420 || img->d_w == 0 || img->d_h == 0) return errc::unsupported;
        need_keyframe_ = false;

        const int w = static_cast<int>(img->d_w);
        const int h = static_cast<int>(img->d_h);
        out.width = w;
        out.height = h;
        out.capture_time = in.capture_time;
        out.data.resize(video_frame::size_for(w, h));
        copy_plane(img->planes[VPX_PLANE_Y], img->stride[VPX_PLANE_Y], out.y(), w, h);
        copy_plane(img->planes[VPX_PLANE_U], img->stride[VPX_PLANE_U], out.u(), out.chroma_width(), out.chroma_height());
        copy_plane(img->planes[VPX_PLANE_V], img->stride[VPX_PLANE_V], out.v(), out.chroma_width(), out.chroma_height());
        return {};
    }

private:
    static void copy_plane(const std::uint8_t* src, int stride, std::uint8_t* dst, int w, int h) noexcept {
        for (int r = 0; r < h; ++r)
            std::memcpy(dst + static_cast<std::size_t>(r) * w, src + static_cast<std::ptrdiff_t>(r) * stride,
                        static_cast<std::size_t>(w));
    }

    vpx_ctx_ptr ctx_;
    bool need_keyframe_ = true;
};

} // namespace detail
} // namespace onair::codec
