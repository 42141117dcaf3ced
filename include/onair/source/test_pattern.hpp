// onair — synthetic video source: moving I420 content stamped with a frame-number/time barcode.
//
// The picture is a function of the frame number only (plus the barcode), so a receiver that
// reads the barcode of a decoded frame can re-render the exact source frame and measure PSNR.
// Content gives an encoder real work without noise: a scrolling diagonal gradient, a panning
// soft checkerboard, a drifting zone plate, and a bouncing striped box with its own colour.
#pragma once

#include "onair/core/media_frame.hpp"
#include "onair/core/time.hpp"
#include "onair/source/barcode.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numbers>

namespace onair::source {

struct test_pattern_config {
    int width = 640;
    int height = 360;
    int fps = 30;
    timestamp start{}; ///< capture time of frame 0 when next() is called without a time
};

/// Generates numbered test frames.
/// Thread safety: none; one thread per object (render() is const and may run concurrently).
class test_pattern {
public:
    test_pattern() : test_pattern(test_pattern_config{}) {}
    explicit test_pattern(const test_pattern_config& c) : config_(c) {
        config_.width = std::max(config_.width, 1);
        config_.height = std::max(config_.height, 1);
        config_.fps = std::max(config_.fps, 1);
    }
    test_pattern(int width, int height, int fps = 30, timestamp start = {})
        : test_pattern(test_pattern_config{width, height, fps, start}) {}

    const test_pattern_config& config() const noexcept { return config_; }
    int width() const noexcept { return config_.width; }
    int height() const noexcept { return config_.height; }
    /// Number of the frame next() produces.
    std::uint32_t frame_number() const noexcept { return next_; }
    std::chrono::microseconds frame_interval() const noexcept {
        return std::chrono::microseconds{1'000'000 / config_.fps};
    }
    /// Nominal capture time of frame `n`: start + n / fps.
    timestamp capture_time_of(std::uint32_t n) const noexcept {
        return config_.start + std::chrono::microseconds{static_cast<std::int64_t>(n) * 1'000'000 / config_.fps};
    }

    /// Next frame, captured at its nominal time.
    video_frame next() { return next(capture_time_of(next_)); }
    /// Next frame, captured at `t` (a live source passes onair::now()).
    video_frame next(timestamp t) {
        video_frame f;
        render(next_++, t, f);
        return f;
    }
    /// Next frame into `out`, reusing its storage.
    void next(timestamp t, video_frame& out) { render(next_++, t, out); }

    /// Draws frame `n` captured at `t` into `out` (resized as needed).
    void render(std::uint32_t n, timestamp t, video_frame& out) const {
        const int w = config_.width, h = config_.height;
        if (out.width != w || out.height != h || out.data.size() != video_frame::size_for(w, h)) out = video_frame(w, h);
        out.capture_time = t;
        draw_content(n, out);
        stamp_barcode(out, barcode_info{n, t});
    }

    /// Frame `n` as next() made it when given capture time `t`.
    video_frame render(std::uint32_t n, timestamp t) const {
        video_frame f;
        render(n, t, f);
        return f;
    }

private:
    /// Triangle wave over [0, period) -> [0, period/2].
    static int tri(int v, int period) noexcept {
        v %= period;
        return v < period / 2 ? v : period - v;
    }

    /// cos(2 pi phase / 256) * 256, from a table built once.
    static int cosine(int phase) noexcept {
        static const auto table = [] {
            std::array<std::int16_t, 256> t{};
            for (int i = 0; i < 256; ++i)
                t[static_cast<std::size_t>(i)] = static_cast<std::int16_t>(std::lround(256.0 * std::cos(i * std::numbers::pi / 128.0)));
            return t;
        }();
        return table[static_cast<std::size_t>(phase & 255)];
    }

    void draw_content(std::uint32_t n, video_frame& f) const {
        const int w = f.width, h = f.height;
        const int t = static_cast<int>(n % 100'000u);
        const int band = barcode_height(w, h);
        // Bouncing box: a fifth of the width, a quarter of the height.
        const int bw = std::max(w / 5, 2), bh = std::max(h / 4, 2);
        const int top = band, room_y = std::max(h - top - bh, 1), room_x = std::max(w - bw, 1);
        const int bx = tri(t * 5, 2 * room_x);
        const int by = top + tri(t * 3, 2 * room_y);
        const int cell = std::max(w / 20, 4); // checkerboard cell, scaled to the picture

        std::uint8_t* yp = f.y();
        for (int y = 0; y < h; ++y) {
            std::uint8_t* row = yp + static_cast<std::size_t>(y) * w;
            const bool box_row = y >= by && y < by + bh;
            for (int x = 0; x < w; ++x) {
                int v;
                if (box_row && x >= bx && x < bx + bw) {
                    // Diagonal stripes with a soft (ramped) profile.
                    v = 60 + tri((x - bx) + (y - by), 32) * 9;
                } else if (y >= h / 2 && x >= w / 2) {
                    // Zone plate (rings of rising frequency) drifting with the frame number.
                    const int dx = x - w * 3 / 4 - tri(t * 2, w / 2 + 1) / 4, dy = y - h * 3 / 4;
                    const int r2 = (dx * dx + dy * dy) * 256 / (w * 8 + 1);
                    v = 128 + cosine(r2 + t * 8) * 70 / 256;
                } else if (y >= h / 2 && x < w / 2) {
                    // Soft checkerboard panning right one pixel per frame.
                    const int cx = (x + t) / cell, cy = y / cell;
                    const int shade = tri(x + t, 2 * cell) * 60 / cell;
                    v = ((cx + cy) & 1) ? 150 + shade / 2 : 80 + shade / 2;
                } else {
                    // Diagonal gradient scrolling left.
                    v = 40 + tri(x * 2 + y + t * 4, 1024) * 170 / 512;
                }
                row[x] = static_cast<std::uint8_t>(std::clamp(v, 16, 235));
            }
        }
        const int cw = f.chroma_width(), ch = f.chroma_height();
        std::uint8_t* up = f.u();
        std::uint8_t* vp = f.v();
        for (int y = 0; y < ch; ++y) {
            for (int x = 0; x < cw; ++x) {
                const std::size_t i = static_cast<std::size_t>(y) * cw + x;
                const int lx = 2 * x, ly = 2 * y;
                if (ly >= by && ly < by + bh && lx >= bx && lx < bx + bw) {
                    up[i] = 90;
                    vp[i] = 200;
                } else {
                    up[i] = static_cast<std::uint8_t>(96 + x * 64 / std::max(cw, 1));
                    vp[i] = static_cast<std::uint8_t>(160 - y * 64 / std::max(ch, 1));
                }
            }
        }
    }

    test_pattern_config config_;
    std::uint32_t next_ = 0;
};

} // namespace onair::source
