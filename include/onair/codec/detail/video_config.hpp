// onair — the encoder settings every video codec policy takes (VP8, VP9, passthrough, null).
#pragma once

#include <optional>

namespace onair::codec {

/// Video encoder settings. One type for all video policies, so a role can fill it the
/// same way whatever its Codec; a policy ignores the fields that mean nothing to it.
struct video_config {
    int width = 640;
    int height = 360;
    int fps = 30;
    int bitrate_kbps = 1000;
    int threads = 1;
    int keyframe_interval_s = 10; ///< periodic keyframe distance; 0 = only on request
    std::optional<int> speed;     ///< VP8E_SET_CPUUSED (VP8 -16..16, VP9 -9..9); empty = codec default
    int min_quantizer = 2;
    int max_quantizer = 56;       ///< 0..63
    int drop_frame_threshold = 0; ///< rc_dropframe_thresh in percent (0 = never drop frames)
    /// Let the encoder scale the picture down (and back up) when the bitrate is too low for
    /// its size (libvpx spatial resampling, rc_resize_allowed; a resized frame is a keyframe).
    bool resize_allowed = false;
    /// Temporal layers (1..3; VP8 and VP9; 1 = no layering). With 2 the frames' layers run
    /// 0,1,0,1, with 3 they run 0,2,1,2; a TL0 frame references TL0 only and a TL1/TL2 frame
    /// lower layers only, so a relay may drop every frame above a layer and the rest still
    /// decodes. The bitrate is split 60/40 (2 layers) or 40/20/40 (3 layers) by layer.
    int temporal_layers = 1;
    /// Spatial layers (1..3; VP9 only): one stream of the picture at 1/4, 1/2 and full size
    /// (2 layers: 1/2 and full), each layer frame its own encoded_frame. Inter-layer
    /// prediction on key pictures only, so a relay may drop every layer above a given one
    /// (and the layer's temporal layers above a TID) and the rest still decodes. The bitrate
    /// is split 30/70 (2 layers) or 10/25/65 (3 layers) by spatial layer, each spatial
    /// layer's share by temporal layer as above.
    int spatial_layers = 1;
};

} // namespace onair::codec
