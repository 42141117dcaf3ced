// onair — PSNR between two I420 frames, for tests and quality reports.
#pragma once

#include "onair/core/media_frame.hpp"

#include <cmath>
#include <cstddef>
#include <cstdint>

namespace onair {

/// PSNR reported for identical planes (MSE 0), as libvpx and most tools cap it.
inline constexpr double psnr_max_db = 100.0;

/// PSNR in dB per plane and over all samples (Y, U and V pooled, as ffmpeg's "average").
/// `valid` is false (and every value 0) when the frames differ in size or are malformed.
struct psnr_result {
    bool valid = false;
    double y = 0;
    double u = 0;
    double v = 0;
    double all = 0;
};

namespace detail {
inline std::uint64_t sse(const std::uint8_t* a, const std::uint8_t* b, std::size_t n) noexcept {
    std::uint64_t s = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const int d = int{a[i]} - int{b[i]};
        s += static_cast<std::uint64_t>(d * d);
    }
    return s;
}
inline double psnr_from_sse(std::uint64_t sse, std::size_t n) noexcept {
    if (n == 0) return 0.0;
    if (sse == 0) return psnr_max_db;
    const double mse = static_cast<double>(sse) / static_cast<double>(n);
    const double db = 10.0 * std::log10(255.0 * 255.0 / mse);
    return db > psnr_max_db ? psnr_max_db : db;
}
} // namespace detail

/// PSNR of `b` against reference `a`.
inline psnr_result psnr(const video_frame& a, const video_frame& b) noexcept {
    psnr_result r;
    if (!a.valid() || !b.valid() || a.width != b.width || a.height != b.height) return r;
    const std::size_t ny = static_cast<std::size_t>(a.width) * static_cast<std::size_t>(a.height);
    const std::size_t nc = static_cast<std::size_t>(a.chroma_width()) * static_cast<std::size_t>(a.chroma_height());
    const std::uint64_t sy = detail::sse(a.y(), b.y(), ny);
    const std::uint64_t su = detail::sse(a.u(), b.u(), nc);
    const std::uint64_t sv = detail::sse(a.v(), b.v(), nc);
    r.valid = true;
    r.y = detail::psnr_from_sse(sy, ny);
    r.u = detail::psnr_from_sse(su, nc);
    r.v = detail::psnr_from_sse(sv, nc);
    r.all = detail::psnr_from_sse(sy + su + sv, ny + 2 * nc);
    return r;
}

/// Luma PSNR of `b` against `a`; 0 when the frames are not comparable.
inline double psnr_y(const video_frame& a, const video_frame& b) noexcept { return psnr(a, b).y; }

} // namespace onair
