// onair — picture size steps for senders whose bitrate falls too low for their picture.
//
// downscale_half() halves an I420 frame with a 2x2 box filter (odd edges keep their last
// row/column); resolution_ladder decides, from the bitrate the encoder is given, by how
// much the captured picture is divided (1, 2 or 4): it steps down when the bits per pixel
// per frame at the current size fall under `down_bpp` and back up when the next larger size
// would get at least `up_bpp` (hysteresis: up_bpp > down_bpp), at most once per `hold`,
// never below `min_width` x `min_height`. Each step is a new encoder size (a key frame), so
// the hold keeps a bitrate that hovers at a threshold from costing one every frame.
#pragma once

#include "onair/core/media_frame.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace onair {

/// `out` = `in` at half its width and height (rounded up), 2x2 box filter.
inline void downscale_half(const video_frame& in, video_frame& out) {
    const int w = (in.width + 1) / 2, h = (in.height + 1) / 2;
    if (out.width != w || out.height != h || !out.valid()) {
        out.width = w;
        out.height = h;
        out.data.resize(video_frame::size_for(w, h));
    }
    out.capture_time = in.capture_time;
    auto plane = [](const std::uint8_t* src, int sw, int sh, std::uint8_t* dst, int dw, int dh) {
        for (int y = 0; y < dh; ++y) {
            const int y0 = std::min(2 * y, sh - 1), y1 = std::min(2 * y + 1, sh - 1);
            for (int x = 0; x < dw; ++x) {
                const int x0 = std::min(2 * x, sw - 1), x1 = std::min(2 * x + 1, sw - 1);
                const unsigned sum = src[y0 * sw + x0] + src[y0 * sw + x1] + src[y1 * sw + x0] + src[y1 * sw + x1];
                dst[y * dw + x] = static_cast<std::uint8_t>((sum + 2) / 4);
            }
        }
    };
    plane(in.y(), in.width, in.height, out.y(), w, h);
    plane(in.u(), in.chroma_width(), in.chroma_height(), out.u(), out.chroma_width(), out.chroma_height());
    plane(in.v(), in.chroma_width(), in.chroma_height(), out.v(), out.chroma_width(), out.chroma_height());
}

/// Chooses the picture divisor from the encoder's bitrate. Thread safety: none.
class resolution_ladder {
public:
    struct config {
        double down_bpp = 0.05; ///< bits per pixel per frame under which the picture halves
        double up_bpp = 0.09;   ///< at the doubled size, at least this to double again
        int max_divisor = 4;
        int min_width = 160, min_height = 90;
        std::chrono::milliseconds hold{2000};
    };

    resolution_ladder() : resolution_ladder(config{}) {}
    explicit resolution_ladder(const config& c) noexcept : cfg_(c) {}

    /// The divisor for a `width` x `height` at `fps` source given `kbps`; changes at most
    /// once per hold (`now` is any monotonic time).
    int update(int width, int height, int fps, int kbps, std::chrono::steady_clock::time_point now) noexcept {
        if (changed_ != std::chrono::steady_clock::time_point{} && now - changed_ < cfg_.hold) return divisor_;
        const auto bpp = [&](int d) {
            const double px = static_cast<double>(width / d) * static_cast<double>(height / d) * std::max(fps, 1);
            return px > 0 ? static_cast<double>(kbps) * 1000.0 / px : 0.0;
        };
        int next = divisor_;
        if (bpp(divisor_) < cfg_.down_bpp && divisor_ * 2 <= cfg_.max_divisor && width / (divisor_ * 2) >= cfg_.min_width &&
            height / (divisor_ * 2) >= cfg_.min_height)
            next = divisor_ * 2;
        else if (divisor_ > 1 && bpp(divisor_ / 2) >= cfg_.up_bpp)
            next = divisor_ / 2;
        if (next != divisor_) {
            divisor_ = next;
            changed_ = now;
        }
        return divisor_;
    }
    int divisor() const noexcept { return divisor_; }

private:
    config cfg_;
    int divisor_ = 1;
    std::chrono::steady_clock::time_point changed_{};
};

} // namespace onair
