// onair — a frame-number + capture-time barcode drawn in the luma plane, and its reader.
//
// The code is a band of 32 x 4 black/white blocks across the top of the picture: 128 bits =
// frame number (32) + capture time in microseconds (64) + CRC-32 of those 12 bytes. Block
// geometry depends only on the frame width (block width = width / 32, square blocks), so a
// receiver needs no side information, and a proportionally scaled picture still reads.
// Reading samples the centre of each block against a threshold halfway between the darkest
// and brightest block, which survives VP8/VP9 coding at ordinary bitrates; the CRC rejects
// frames that do not carry a code or were damaged.
#pragma once

#include "onair/core/media_frame.hpp"
#include "onair/core/time.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>

namespace onair::source {

/// What a barcode carries.
struct barcode_info {
    std::uint32_t frame_number = 0;
    timestamp capture_time{};
    friend bool operator==(const barcode_info&, const barcode_info&) = default;
};

inline constexpr int barcode_columns = 32;
inline constexpr int barcode_rows = 4;
inline constexpr std::uint8_t barcode_black = 16;  ///< video-range black
inline constexpr std::uint8_t barcode_white = 235; ///< video-range white

/// Height (luma rows) of a block for a frame `width` pixels wide.
inline constexpr int barcode_block_height(int width) noexcept { return std::max(2, width / barcode_columns); }

/// Luma rows the barcode band covers; 0 when a `width` x `height` frame cannot hold one.
inline constexpr int barcode_height(int width, int height) noexcept {
    if (width < 2 * barcode_columns) return 0;
    const int h = barcode_rows * barcode_block_height(width);
    return h <= height ? h : 0;
}

namespace detail {
inline std::uint32_t crc32(const std::uint8_t* p, std::size_t n) noexcept {
    std::uint32_t c = 0xffff'ffffu;
    for (std::size_t i = 0; i < n; ++i) {
        c ^= p[i];
        for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb8'8320u & (0u - (c & 1u)));
    }
    return ~c;
}

inline constexpr int barcode_bits = barcode_columns * barcode_rows;
static_assert(barcode_bits == 128, "layout holds 16 bytes: 4 frame number + 8 time + 4 CRC");

inline std::array<std::uint8_t, 16> barcode_bytes(const barcode_info& b) noexcept {
    std::array<std::uint8_t, 16> out{};
    const auto us = static_cast<std::uint64_t>(b.capture_time.time_since_epoch().count());
    for (int i = 0; i < 4; ++i) out[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(b.frame_number >> (24 - 8 * i));
    for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(4 + i)] = static_cast<std::uint8_t>(us >> (56 - 8 * i));
    const std::uint32_t crc = crc32(out.data(), 12);
    for (int i = 0; i < 4; ++i) out[static_cast<std::size_t>(12 + i)] = static_cast<std::uint8_t>(crc >> (24 - 8 * i));
    return out;
}

struct block_rect {
    int x0, x1, y0, y1;
};
/// Block of bit `i` (row-major, MSB of byte 0 first).
inline block_rect barcode_block(int width, int i) noexcept {
    const int col = i % barcode_columns;
    const int row = i / barcode_columns;
    const int bh = barcode_block_height(width);
    return {col * width / barcode_columns, (col + 1) * width / barcode_columns, row * bh, (row + 1) * bh};
}
} // namespace detail

/// Draws the barcode for `info` over the top of `f` (luma blocks, neutral chroma).
/// Returns false, leaving `f` untouched, when the frame is too small (see barcode_height).
inline bool stamp_barcode(video_frame& f, const barcode_info& info) noexcept {
    if (!f.valid()) return false;
    const int band = barcode_height(f.width, f.height);
    if (band == 0) return false;
    const auto bytes = detail::barcode_bytes(info);
    for (int i = 0; i < detail::barcode_bits; ++i) {
        const bool bit = (bytes[static_cast<std::size_t>(i / 8)] >> (7 - i % 8)) & 1u;
        const auto r = detail::barcode_block(f.width, i);
        for (int y = r.y0; y < r.y1; ++y)
            std::memset(f.y() + static_cast<std::size_t>(y) * f.width + r.x0, bit ? barcode_white : barcode_black,
                        static_cast<std::size_t>(r.x1 - r.x0));
    }
    const int chroma_rows = std::min((band + 1) / 2, f.chroma_height());
    const std::size_t n = static_cast<std::size_t>(chroma_rows) * static_cast<std::size_t>(f.chroma_width());
    std::memset(f.u(), 128, n);
    std::memset(f.v(), 128, n);
    return true;
}

/// Reads the barcode of `f`; nullopt when there is none or its checksum fails.
inline std::optional<barcode_info> read_barcode(const video_frame& f) noexcept {
    if (!f.valid() || barcode_height(f.width, f.height) == 0) return std::nullopt;
    std::array<int, detail::barcode_bits> level{};
    int lo = 255, hi = 0;
    for (int i = 0; i < detail::barcode_bits; ++i) {
        const auto r = detail::barcode_block(f.width, i);
        // Sample the centre half of the block: edges blur under lossy coding.
        const int mx = (r.x1 - r.x0) / 4, my = (r.y1 - r.y0) / 4;
        int sum = 0, count = 0;
        for (int y = r.y0 + my; y < r.y1 - my; ++y)
            for (int x = r.x0 + mx; x < r.x1 - mx; ++x) {
                sum += f.y()[static_cast<std::size_t>(y) * f.width + x];
                ++count;
            }
        const int v = count ? sum / count : 0;
        level[static_cast<std::size_t>(i)] = v;
        lo = std::min(lo, v);
        hi = std::max(hi, v);
    }
    if (hi - lo < 64) return std::nullopt; // flat: no code here
    const int threshold = (lo + hi) / 2;
    std::array<std::uint8_t, 16> bytes{};
    for (int i = 0; i < detail::barcode_bits; ++i)
        if (level[static_cast<std::size_t>(i)] > threshold)
            bytes[static_cast<std::size_t>(i / 8)] |= static_cast<std::uint8_t>(1u << (7 - i % 8));
    const std::uint32_t crc = (std::uint32_t{bytes[12]} << 24) | (std::uint32_t{bytes[13]} << 16) |
                              (std::uint32_t{bytes[14]} << 8) | bytes[15];
    if (detail::crc32(bytes.data(), 12) != crc) return std::nullopt;
    barcode_info out;
    for (int i = 0; i < 4; ++i) out.frame_number = (out.frame_number << 8) | bytes[static_cast<std::size_t>(i)];
    std::uint64_t us = 0;
    for (int i = 0; i < 8; ++i) us = (us << 8) | bytes[static_cast<std::size_t>(4 + i)];
    out.capture_time = timestamp{std::chrono::microseconds{static_cast<std::int64_t>(us)}};
    return out;
}

} // namespace onair::source
