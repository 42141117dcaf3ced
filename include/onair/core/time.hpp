// onair — capture and wall-clock times shared by all roles.
#pragma once

#include <chrono>
#include <cstdint>

namespace onair {

/// Wall clock used for capture times. All processes on one machine share it, so a
/// receiver can subtract a sender's capture time from its own render time.
using wall_clock = std::chrono::system_clock;

/// A capture or render instant, microseconds since the Unix epoch.
using timestamp = std::chrono::time_point<wall_clock, std::chrono::microseconds>;

inline timestamp now() noexcept {
    return std::chrono::time_point_cast<std::chrono::microseconds>(wall_clock::now());
}

/// Seconds between 1900-01-01 (NTP era 0) and 1970-01-01 (Unix epoch).
inline constexpr std::uint64_t ntp_unix_offset_s = 2'208'988'800ULL;

/// 64-bit NTP timestamp (32.32 fixed point seconds since 1900) of a wall-clock instant.
inline std::uint64_t to_ntp(timestamp t) noexcept {
    const auto us = static_cast<std::uint64_t>(t.time_since_epoch().count());
    const std::uint64_t secs = us / 1'000'000 + ntp_unix_offset_s;
    const std::uint64_t frac = ((us % 1'000'000) << 32) / 1'000'000;
    return (secs << 32) | frac;
}

/// Inverse of to_ntp (rounded to the microsecond).
inline timestamp from_ntp(std::uint64_t ntp) noexcept {
    const std::uint64_t secs = (ntp >> 32) - ntp_unix_offset_s;
    const std::uint64_t frac = ntp & 0xffff'ffffULL;
    const std::uint64_t us = secs * 1'000'000 + ((frac * 1'000'000 + (1ULL << 31)) >> 32);
    return timestamp{std::chrono::microseconds{static_cast<std::int64_t>(us)}};
}

} // namespace onair
