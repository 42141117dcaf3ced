// onair — the media sink concept: where decoded media ends up.
//
// Requirements on a sink S (an lvalue s of type S):
//   s.on_video(const video_frame&)   called once per decoded (or received raw) picture
//   s.on_audio(const audio_frame&)   called once per decoded audio frame (20 ms for Opus)
// Return values are ignored. A sink that cannot keep up must not block the caller for long:
// roles call it from their decode thread. Models: null, y4m_writer, wav_writer, callback<F>,
// tee<S...>. A sink may also model encoded_sink.
#pragma once

#include "onair/core/media_frame.hpp"
#include "onair/sink/null.hpp"

namespace onair::sink {

template <class S>
concept media_sink = requires(S& s, const video_frame& v, const audio_frame& a) {
    s.on_video(v);
    s.on_audio(a);
};

static_assert(media_sink<null>);

/// A sink that also takes encoded frames: s.on_encoded(const encoded_frame&). Hosts call it
/// with every frame their encoders produce (top encoding and audio, on the codec thread);
/// viewers with every frame they hand to their decoders (on the codec thread). Recorders
/// (media::recorder) are such sinks: they write without decoding.
template <class S>
concept encoded_sink = media_sink<S> && requires(S& s, const encoded_frame& f) { s.on_encoded(f); };

} // namespace onair::sink
