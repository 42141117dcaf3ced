// onair — synthetic audio source: a continuous sine tone in 20 ms frames, and a detector for it.
//
// A receiver checks every 20 ms frame for the tone with tone_level(): a lost or concealed
// frame shows up as a drop in level, and capture times (start + index * 20 ms) show gaps.
#pragma once

#include "onair/core/media_frame.hpp"
#include "onair/core/time.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numbers>

namespace onair::source {

struct tone_config {
    double frequency_hz = 1000.0; ///< 1 kHz: exactly 20 periods per 20 ms frame
    int channels = 1;             ///< 1 or 2; every channel carries the same tone
    double amplitude = 0.5;       ///< of full scale, 0..1
    timestamp start{};            ///< capture time of frame 0 when next() is called without a time
};

/// Sine generator with a continuous phase across frames.
/// Thread safety: none; one thread per object.
class tone {
public:
    static constexpr int frame_samples = 960; ///< per channel: 20 ms at 48 kHz

    tone() : tone(tone_config{}) {}
    explicit tone(const tone_config& c) : config_(c) {
        config_.channels = std::clamp(config_.channels, 1, 2);
        config_.amplitude = std::clamp(config_.amplitude, 0.0, 1.0);
    }

    const tone_config& config() const noexcept { return config_; }
    /// Index of the frame next() produces.
    std::uint64_t frame_index() const noexcept { return index_; }
    timestamp capture_time_of(std::uint64_t i) const noexcept {
        return config_.start + std::chrono::microseconds{static_cast<std::int64_t>(i) * 20'000};
    }

    /// Next 20 ms frame at its nominal capture time.
    audio_frame next() { return next(capture_time_of(index_)); }
    /// Next 20 ms frame captured at `t`.
    audio_frame next(timestamp t) {
        audio_frame f;
        f.channels = config_.channels;
        f.capture_time = t;
        f.samples.resize(static_cast<std::size_t>(frame_samples * config_.channels));
        const double step = 2.0 * std::numbers::pi * config_.frequency_hz / audio_frame::sample_rate;
        const double scale = config_.amplitude * 32767.0;
        for (int i = 0; i < frame_samples; ++i) {
            const auto s = static_cast<std::int16_t>(std::lround(scale * std::sin(phase_)));
            phase_ += step;
            for (int c = 0; c < config_.channels; ++c)
                f.samples[static_cast<std::size_t>(i * config_.channels + c)] = s;
        }
        phase_ = std::fmod(phase_, 2.0 * std::numbers::pi);
        ++index_;
        return f;
    }

private:
    tone_config config_;
    double phase_ = 0.0;
    std::uint64_t index_ = 0;
};

/// Amplitude (fraction of full scale) of the `frequency_hz` component in `channel` of `f`:
/// Hann-windowed Goertzel, so a tone of amplitude A reads about A whatever its phase.
inline double tone_level(const audio_frame& f, double frequency_hz, int channel = 0) noexcept {
    const std::size_t n = f.samples_per_channel();
    if (n < 2 || channel < 0 || channel >= f.channels) return 0.0;
    const double w = 2.0 * std::numbers::pi * frequency_hz / audio_frame::sample_rate;
    const double coeff = 2.0 * std::cos(w);
    double s1 = 0, s2 = 0, wsum = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const double win = 0.5 - 0.5 * std::cos(2.0 * std::numbers::pi * static_cast<double>(i) / static_cast<double>(n - 1));
        wsum += win;
        const double x = win * f.samples[i * static_cast<std::size_t>(f.channels) + static_cast<std::size_t>(channel)] / 32768.0;
        const double s0 = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    const double re = s1 - s2 * std::cos(w);
    const double im = s2 * std::sin(w);
    return 2.0 * std::sqrt(re * re + im * im) / wsum;
}

/// Root mean square of all samples, as a fraction of full scale.
inline double rms(const audio_frame& f) noexcept {
    if (f.samples.empty()) return 0.0;
    double s = 0;
    for (const std::int16_t v : f.samples) s += static_cast<double>(v) * v;
    return std::sqrt(s / static_cast<double>(f.samples.size())) / 32768.0;
}

} // namespace onair::source
