// onair — sequence number and timestamp arithmetic with wrap-around (RFC 3550 A.1).
#pragma once

#include <cstdint>
#include <optional>

namespace onair::rtp {

/// True when 16-bit sequence number a comes after b (modulo 2^16).
constexpr bool seq_newer(std::uint16_t a, std::uint16_t b) noexcept {
    return a != b && static_cast<std::uint16_t>(a - b) < 0x8000;
}
/// True when 32-bit timestamp a comes after b (modulo 2^32).
constexpr bool ts_newer(std::uint32_t a, std::uint32_t b) noexcept {
    return a != b && static_cast<std::uint32_t>(a - b) < 0x8000'0000u;
}

/// Extends wrapping N-bit counters to 64 bits, taking each value as the one closest to the
/// last value seen (so reordered packets keep their place across a wrap).
template <class T>
class unwrapper {
    static_assert(sizeof(T) == 2 || sizeof(T) == 4, "16- or 32-bit counters");
    static constexpr std::int64_t range = std::int64_t{1} << (8 * sizeof(T));

public:
    std::int64_t unwrap(T v) noexcept {
        const std::int64_t r = peek(v);
        if (!has_ || r > last_) last_ = r;
        has_ = true;
        return r;
    }
    /// Like unwrap() but does not move the reference point.
    std::int64_t peek(T v) const noexcept {
        if (!has_) return static_cast<std::int64_t>(v);
        const std::int64_t low = last_ & (range - 1);
        std::int64_t diff = static_cast<std::int64_t>(v) - low;
        if (diff > range / 2) diff -= range;
        else if (diff < -range / 2) diff += range;
        return last_ + diff;
    }
    std::optional<std::int64_t> last() const noexcept { return has_ ? std::optional(last_) : std::nullopt; }
    void reset() noexcept { has_ = false; last_ = 0; }

private:
    // Not std::optional: GCC 12 misreports it as maybe-uninitialized when inlined.
    std::int64_t last_ = 0;
    bool has_ = false;
};

using seq_unwrapper = unwrapper<std::uint16_t>;
using timestamp_unwrapper = unwrapper<std::uint32_t>;

} // namespace onair::rtp
