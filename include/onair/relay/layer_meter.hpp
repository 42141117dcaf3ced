// onair — relay::layer_meter: the bitrate of each layer of a forwarded stream.
//
// A relay chooses a subscriber's layers by comparing that leg's estimate with what each
// choice costs: the rate of a simulcast encoding with its temporal layers up to some TID.
// The meter counts the bytes of every packet by (spatial, temporal) in fixed buckets and
// reports each layer's rate over the last `window` (the newest, partly filled bucket
// included in proportion). A layer that stops (the publisher dropped an encoding) falls to
// zero within the window.
//
// Not thread-safe; allocation-free.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace onair::relay {

inline constexpr std::size_t max_spatial_layers = 3;
inline constexpr std::size_t max_temporal_layers = 4; ///< TIDs 0..3 (VP8 has two bits)

class layer_meter {
public:
    using clock = std::chrono::steady_clock;
    static constexpr std::size_t buckets = 8;
    static constexpr std::chrono::milliseconds bucket{125}; ///< 8 buckets: a 1 s window

    /// Counts one packet of `bytes` of a layer.
    void add(std::size_t spatial, std::size_t temporal, std::size_t bytes, clock::time_point now) noexcept {
        if (spatial >= max_spatial_layers) return;
        temporal = std::min(temporal, max_temporal_layers - 1);
        advance(now);
        counts_[current_][spatial][temporal] += bytes;
        seen_[spatial] = std::max<std::uint8_t>(seen_[spatial], static_cast<std::uint8_t>(temporal + 1));
    }

    /// Bits per second of encoding `spatial` with temporal layers 0..`temporal` over the window.
    std::int64_t rate_bps(std::size_t spatial, std::size_t temporal, clock::time_point now) noexcept {
        if (spatial >= max_spatial_layers) return 0;
        advance(now);
        temporal = std::min(temporal, max_temporal_layers - 1);
        std::uint64_t total = 0;
        for (std::size_t b = 0; b < buckets; ++b)
            for (std::size_t t = 0; t <= temporal; ++t) total += counts_[b][spatial][t];
        // The window is the full buckets behind the current one plus the current one's elapsed part.
        const auto in_current = std::clamp<std::int64_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(now - bucket_start_).count(), 0, bucket_us);
        const std::int64_t span_us = std::max<std::int64_t>(filled_ * bucket_us + in_current, bucket_us);
        return static_cast<std::int64_t>(total * 8'000'000 / static_cast<std::uint64_t>(span_us));
    }

    /// Temporal layers seen on an encoding (0: none yet).
    std::size_t temporal_layers(std::size_t spatial) const noexcept {
        return spatial < max_spatial_layers ? seen_[spatial] : 0;
    }

    void reset() noexcept { *this = layer_meter{}; }

private:
    static constexpr std::int64_t bucket_us = std::chrono::duration_cast<std::chrono::microseconds>(bucket).count();

    void advance(clock::time_point now) noexcept {
        if (!started_) {
            started_ = true;
            bucket_start_ = now;
            return;
        }
        if (now - bucket_start_ < bucket) return;
        const auto steps = static_cast<std::size_t>((now - bucket_start_) / bucket);
        for (std::size_t i = 0; i < std::min(steps, buckets); ++i) {
            current_ = (current_ + 1) % buckets;
            counts_[current_] = {};
        }
        filled_ = std::min<std::int64_t>(filled_ + static_cast<std::int64_t>(steps), buckets - 1);
        bucket_start_ += bucket * static_cast<std::int64_t>(steps);
    }

    using layer_bytes = std::array<std::array<std::uint64_t, max_temporal_layers>, max_spatial_layers>;
    std::array<layer_bytes, buckets> counts_{};
    std::array<std::uint8_t, max_spatial_layers> seen_{};
    std::size_t current_ = 0;
    std::int64_t filled_ = 0; ///< full buckets behind the current one (at most buckets - 1)
    bool started_ = false;
    clock::time_point bucket_start_{};
};

} // namespace onair::relay
