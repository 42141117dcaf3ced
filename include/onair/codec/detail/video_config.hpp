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
};

} // namespace onair::codec
