// onair — pieces shared by the playout buffers: wrap-around unwrapping of narrow counters,
// the earliest-arrival reference, and the forgetting delay histogram.
//
// All times are microseconds as plain integers (the public classes convert from
// std::chrono); nothing here reads a clock.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace onair::qos::detail {

/// Extends a wrapping Bits-bit counter (VP8/VP9 picture ids: 15, TL0PICIDX: 8) to 64 bits,
/// taking each value as the one closest to the newest seen so far.
template <unsigned Bits>
class playout_unwrapper {
    static_assert(Bits >= 2 && Bits <= 32);
    static constexpr std::int64_t range = std::int64_t{1} << Bits;

public:
    std::int64_t unwrap(std::uint32_t v) noexcept {
        const std::int64_t r = peek(v);
        if (!has_ || r > last_) last_ = r;
        has_ = true;
        return r;
    }
    std::int64_t peek(std::uint32_t v) const noexcept {
        const std::int64_t x = static_cast<std::int64_t>(v) & (range - 1);
        if (!has_) return x;
        std::int64_t diff = x - (last_ & (range - 1));
        if (diff >= range / 2) diff -= range;
        else if (diff < -range / 2) diff += range;
        return last_ + diff;
    }
    void reset() noexcept { has_ = false; last_ = 0; }

private:
    std::int64_t last_ = 0;
    bool has_ = false;
};

/// The earliest-arrival reference: the smallest `arrival - media_time` seen over a sliding
/// window of arrival time. A packet's relative delay is how much later than that it came.
/// The window (kept as `blocks` minima of window/blocks each) lets the reference follow a
/// change of path delay or a drift between the sender's and the receiver's clocks.
class playout_arrival_reference {
    static constexpr std::size_t blocks = 8;

public:
    explicit playout_arrival_reference(std::int64_t window_us = 2'000'000) noexcept
        : block_us_(std::max<std::int64_t>(window_us / static_cast<std::int64_t>(blocks), 1)) {}

    /// Adds a sample; returns its relative delay (>= 0) against the updated reference.
    std::int64_t update(std::int64_t arrival_us, std::int64_t media_us) noexcept {
        if (valid_ && arrival_us < last_arrival_) arrival_us = last_arrival_; // never step back
        last_arrival_ = arrival_us;
        const std::int64_t v = arrival_us - media_us;
        if (!valid_ || arrival_us >= block_[head_].start + block_us_) {
            head_ = (head_ + 1) % blocks;
            block_[head_] = {arrival_us, v, true};
        } else {
            block_[head_].min = std::min(block_[head_].min, v);
        }
        valid_ = true;
        offset_ = block_[head_].min;
        const std::int64_t oldest = arrival_us - block_us_ * static_cast<std::int64_t>(blocks);
        for (const block& b : block_)
            if (b.used && b.start > oldest) offset_ = std::min(offset_, b.min);
        return v - offset_;
    }

    bool valid() const noexcept { return valid_; }
    /// min(arrival - media time) over the window: where a media instant lands at the earliest.
    std::int64_t offset() const noexcept { return offset_; }
    void reset() noexcept {
        block_ = {};
        head_ = 0;
        valid_ = false;
        offset_ = 0;
    }

private:
    struct block {
        std::int64_t start = 0;
        std::int64_t min = 0;
        bool used = false;
    };
    std::int64_t block_us_;
    std::array<block, blocks> block_{};
    std::size_t head_ = 0;
    bool valid_ = false;
    std::int64_t last_arrival_ = 0;
    std::int64_t offset_ = 0;
};

/// Histogram of relative delays with exponential forgetting (as NetEq's delay manager): each
/// sample scales every bucket by `forget` and adds 1 - forget to its own bucket, so recent
/// samples dominate and old ones fade with a time constant of 1 / (1 - forget) samples.
/// Quantiles are taken over the mass present, so the first samples count fully.
class playout_delay_histogram {
public:
    playout_delay_histogram(std::int64_t bucket_us, std::size_t buckets, double forget)
        : bucket_us_(std::max<std::int64_t>(bucket_us, 1)), forget_(forget), h_(std::max<std::size_t>(buckets, 1)) {}

    void add(std::int64_t delay_us) noexcept {
        const std::size_t b = std::min(static_cast<std::size_t>(std::max<std::int64_t>(delay_us, 0) / bucket_us_),
                                       h_.size() - 1);
        for (double& x : h_) x *= forget_;
        h_[b] += 1.0 - forget_;
        mass_ = mass_ * forget_ + (1.0 - forget_);
    }

    /// Upper edge of the bucket where the cumulative mass reaches q (0..1); 0 when empty.
    std::int64_t quantile(double q) const noexcept {
        if (mass_ <= 0) return 0;
        const double want = q * mass_;
        double sum = 0;
        for (std::size_t b = 0; b < h_.size(); ++b) {
            sum += h_[b];
            if (sum >= want) return static_cast<std::int64_t>(b + 1) * bucket_us_;
        }
        return static_cast<std::int64_t>(h_.size()) * bucket_us_;
    }

    void reset() noexcept {
        std::fill(h_.begin(), h_.end(), 0.0);
        mass_ = 0;
    }

private:
    std::int64_t bucket_us_;
    double forget_;
    std::vector<double> h_;
    double mass_ = 0;
};

/// Media time in microseconds of an unwrapped RTP timestamp.
constexpr std::int64_t playout_media_us(std::int64_t ts, std::uint32_t clock_rate) noexcept {
    return ts * 1'000'000 / static_cast<std::int64_t>(clock_rate);
}

} // namespace onair::qos::detail
