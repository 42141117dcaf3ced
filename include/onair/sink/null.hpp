// onair — the do-nothing media sink (the default Sink of every role).
#pragma once

#include "onair/core/media_frame.hpp"

namespace onair::sink {

/// Discards everything. Thread safety: stateless.
struct null {
    void on_video(const video_frame&) noexcept {}
    void on_audio(const audio_frame&) noexcept {}
};

} // namespace onair::sink
