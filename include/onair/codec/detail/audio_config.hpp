// onair — settings of the simple audio policies (passthrough, null).
#pragma once

namespace onair::codec {

/// Audio settings for policies without real encoder knobs.
struct audio_config {
    int channels = 1;     ///< 1 or 2
    int bitrate_kbps = 0; ///< ignored
};

} // namespace onair::codec
