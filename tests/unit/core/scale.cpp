// Picture size steps: the 2x2 box filter and the ladder's switch points with hysteresis.
#include "onair/core/scale.hpp"

#include <doctest/doctest.h>

#include <chrono>

using namespace onair;
using namespace std::chrono_literals;

TEST_CASE("downscale_half: each output pixel is the rounded mean of its 2x2 block; odd edges repeat") {
    video_frame in(5, 3); // odd both ways: output 3x2, chroma 3x2 -> 2x1
    for (int i = 0; i < in.width * in.height; ++i) in.y()[i] = static_cast<std::uint8_t>(i * 10);
    for (int i = 0; i < in.chroma_width() * in.chroma_height(); ++i) {
        in.u()[i] = static_cast<std::uint8_t>(100 + i);
        in.v()[i] = static_cast<std::uint8_t>(200 - i);
    }
    in.capture_time = timestamp{std::chrono::microseconds{42}};
    video_frame out;
    downscale_half(in, out);
    REQUIRE(out.valid());
    CHECK(out.width == 3);
    CHECK(out.height == 2);
    CHECK(out.capture_time == in.capture_time);
    // Row 0/1, columns 0/1: 0, 10, 50, 60 -> 30.
    CHECK(out.y()[0] == 30);
    // Column 2 of the output covers input columns 4 and 4 (the edge repeats): rows 0/1 -> 40, 90 -> 65.
    CHECK(out.y()[2] == 65);
    // Output row 1 covers input row 2 twice: columns 0/1 -> 100, 110 -> 105.
    CHECK(out.y()[3] == 105);
    // Chroma 3x2 -> 2x1: u 100, 101, 103, 104 -> 102 (rounded).
    CHECK(out.u()[0] == 102);
    CHECK(out.v()[0] == 198);
}

TEST_CASE("resolution_ladder: halves under 0.05 bpp, doubles back over 0.09 at the larger size, once per hold") {
    resolution_ladder l;
    const auto t0 = std::chrono::steady_clock::time_point{} + 1h;
    // 640x360@30 = 6.9 Mpixel/s: 0.05 bpp is 346 kbps, 0.09 at full size is 622 kbps.
    CHECK(l.update(640, 360, 30, 1000, t0) == 1);
    CHECK(l.update(640, 360, 30, 400, t0) == 1);     // 0.058 bpp: stays
    CHECK(l.update(640, 360, 30, 300, t0) == 2);     // 0.043: halves
    CHECK(l.update(640, 360, 30, 60, t0 + 1s) == 2); // within the hold: no second step yet
    CHECK(l.update(640, 360, 30, 60, t0 + 2s) == 4); // 0.035 bpp at 320x180: quarter
    CHECK(l.update(640, 360, 30, 20, t0 + 5s) == 4); // 160x90 is the floor
    // Back up only when the larger size gets 0.09 bpp: 320x180 needs 156 kbps.
    CHECK(l.update(640, 360, 30, 150, t0 + 8s) == 4);
    CHECK(l.update(640, 360, 30, 160, t0 + 8s) == 2);
    // Between the thresholds at 320x180 (0.05 at 320x180 = 86 kbps, 0.09 at 640x360 = 622 kbps): holds.
    CHECK(l.update(640, 360, 30, 400, t0 + 11s) == 2);
    CHECK(l.update(640, 360, 30, 630, t0 + 14s) == 1);
}
