// onair — a sink that hands frames to a user callable.
//
//   auto s = sink::callback{[&](const video_frame& f) { ... }};        // video only
//   auto s = sink::callback{[&](const auto& f) { ... }};               // both kinds
#pragma once

#include "onair/core/media_frame.hpp"
#include "onair/sink/concepts.hpp"

#include <concepts>
#include <utility>

namespace onair::sink {

/// Calls `F` with each frame it accepts; frames of a kind F cannot take are dropped.
/// @tparam F callable with `const video_frame&` and/or `const audio_frame&`.
/// Thread safety: whatever F provides.
template <class F>
class callback {
    static_assert(std::invocable<F&, const video_frame&> || std::invocable<F&, const audio_frame&>,
                  "sink::callback<F>: F must be callable with const video_frame& or const audio_frame& (or both)");

public:
    callback()
        requires std::default_initializable<F>
    = default;
    explicit callback(F f) : f_(std::move(f)) {}

    void on_video(const video_frame& v) {
        if constexpr (std::invocable<F&, const video_frame&>) f_(v);
    }
    void on_audio(const audio_frame& a) {
        if constexpr (std::invocable<F&, const audio_frame&>) f_(a);
    }

    F& function() noexcept { return f_; }
    const F& function() const noexcept { return f_; }

private:
    F f_;
};

template <class F>
callback(F) -> callback<F>;

} // namespace onair::sink
