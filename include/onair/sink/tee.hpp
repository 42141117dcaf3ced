// onair — a sink that forwards every frame to several sinks, in order.
//
//   sink::tee<sink::y4m_writer, sink::wav_writer> rec{sink::y4m_writer{"a.y4m"}, sink::wav_writer{"a.wav"}};
//   sink::tee<my_sink&, sink::null> t{existing, {}};   // reference members forward to outside sinks
#pragma once

#include "onair/core/media_frame.hpp"
#include "onair/sink/concepts.hpp"

#include <cstddef>
#include <tuple>
#include <type_traits>
#include <utility>

namespace onair::sink {

/// @tparam S sinks (or references to sinks), each a model of media_sink.
/// Thread safety: that of the weakest member sink.
template <class... S>
class tee {
    static_assert((media_sink<std::remove_reference_t<S>> && ...),
                  "sink::tee<S...>: every S must model sink::media_sink (on_video/on_audio)");

public:
    tee() = default;
    explicit tee(S... sinks)
        requires(sizeof...(S) > 0)
        : sinks_(std::forward<S>(sinks)...) {}

    void on_video(const video_frame& f) {
        std::apply([&](auto&... s) { (s.on_video(f), ...); }, sinks_);
    }
    void on_audio(const audio_frame& f) {
        std::apply([&](auto&... s) { (s.on_audio(f), ...); }, sinks_);
    }

    /// Encoded frames go to the members that take them.
    void on_encoded(const encoded_frame& f) {
        std::apply([&](auto&... s) { (encoded(s, f), ...); }, sinks_);
    }

    /// The I-th sink.
    template <std::size_t I>
    auto& get() noexcept {
        return std::get<I>(sinks_);
    }
    template <std::size_t I>
    const auto& get() const noexcept {
        return std::get<I>(sinks_);
    }

private:
    template <class T>
    static void encoded(T& s, const encoded_frame& f) {
        if constexpr (encoded_sink<T>) s.on_encoded(f);
    }
    std::tuple<S...> sinks_;
};

template <class... S>
tee(S...) -> tee<S...>;

} // namespace onair::sink
