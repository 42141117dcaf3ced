// onair — token buckets for the control plane's per-user and per-room rate limits.
#pragma once

#include <algorithm>
#include <cstdint>

namespace onair::control {

/// A sustained rate and the burst allowed on top of it.
struct rate {
    double per_second = 10;
    double burst = 20;
};

/// A token bucket in integer milliseconds of the caller's clock (real or simulated).
class token_bucket {
public:
    token_bucket() = default;
    token_bucket(rate r, std::int64_t now_ms) : rate_(r), tokens_(r.burst), last_ms_(now_ms) {}

    /// Takes `n` tokens if they are there.
    bool take(std::int64_t now_ms, double n = 1) noexcept {
        refill(now_ms);
        if (tokens_ < n) return false;
        tokens_ -= n;
        return true;
    }
    /// Returns tokens taken for something refused later (never above the burst).
    void give_back(double n = 1) noexcept { tokens_ = std::min(rate_.burst, tokens_ + n); }
    /// Milliseconds until `n` tokens will be there (0 when they are).
    std::int64_t wait_ms(std::int64_t now_ms, double n = 1) noexcept {
        refill(now_ms);
        if (tokens_ >= n || rate_.per_second <= 0) return tokens_ >= n ? 0 : 1000;
        return static_cast<std::int64_t>((n - tokens_) * 1000.0 / rate_.per_second) + 1;
    }

private:
    void refill(std::int64_t now_ms) noexcept {
        if (now_ms > last_ms_) {
            tokens_ = std::min(rate_.burst, tokens_ + static_cast<double>(now_ms - last_ms_) * rate_.per_second / 1000.0);
            last_ms_ = now_ms;
        }
    }
    rate rate_{};
    double tokens_ = 0;
    std::int64_t last_ms_ = 0;
};

} // namespace onair::control
