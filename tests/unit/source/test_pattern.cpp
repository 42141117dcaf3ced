#include "onair/source/test_pattern.hpp"

#include "onair/core/psnr.hpp"

#include <doctest/doctest.h>

#include <chrono>

using onair::timestamp;
using onair::video_frame;
using onair::source::test_pattern;

namespace {
const timestamp epoch{std::chrono::seconds{1'700'000'000}};
}

TEST_SUITE("source.test_pattern") {
    TEST_CASE("frames are numbered and timed") {
        test_pattern tp(640, 360, 30, epoch);
        CHECK(tp.frame_interval() == std::chrono::microseconds{33'333});
        for (std::uint32_t i = 0; i < 40; ++i) {
            CHECK(tp.frame_number() == i);
            const auto f = tp.next();
            REQUIRE(f.valid());
            CHECK(f.width == 640);
            CHECK(f.height == 360);
            const auto expect = epoch + std::chrono::microseconds{static_cast<std::int64_t>(i) * 1'000'000 / 30};
            CHECK(f.capture_time == expect);
            CHECK(tp.capture_time_of(i) == expect);
            const auto bc = onair::source::read_barcode(f);
            REQUIRE(bc);
            CHECK(bc->frame_number == i);
            CHECK(bc->capture_time == expect);
        }
        // 30 frames take exactly one second.
        CHECK(tp.capture_time_of(30) == epoch + std::chrono::seconds{1});
    }

    TEST_CASE("explicit capture time and storage reuse") {
        test_pattern tp(160, 120);
        const timestamp t = epoch + std::chrono::milliseconds{1234};
        const auto f = tp.next(t);
        CHECK(f.capture_time == t);
        video_frame g;
        tp.next(t + std::chrono::milliseconds{5}, g);
        REQUIRE(g.valid());
        const auto bc = onair::source::read_barcode(g);
        REQUIRE(bc);
        CHECK(bc->frame_number == 1);
        CHECK(bc->capture_time == t + std::chrono::milliseconds{5});
    }

    TEST_CASE("render reproduces next exactly") {
        test_pattern a(320, 180, 30, epoch), b(320, 180, 30, epoch);
        for (std::uint32_t i = 0; i < 10; ++i) {
            const auto f = a.next();
            CHECK(b.render(i, f.capture_time).data == f.data);
        }
    }

    TEST_CASE("content moves, so an encoder has work") {
        test_pattern tp(640, 360, 30, epoch);
        const auto f0 = tp.render(0, epoch), f1 = tp.render(1, epoch), f30 = tp.render(30, epoch);
        // Same barcode (same number and time) isolates the content.
        const auto p1 = onair::psnr(f0, f1), p30 = onair::psnr(f0, f30);
        CHECK(p1.y < 40.0);  // consecutive frames differ
        CHECK(p30.y < p1.y); // and drift further apart
        // Luma spans a wide range; chroma is not flat.
        int lo = 255, hi = 0;
        for (int i = 0; i < 640 * 360; ++i) {
            lo = std::min<int>(lo, f0.y()[i]);
            hi = std::max<int>(hi, f0.y()[i]);
        }
        CHECK(hi - lo > 150);
        CHECK(f0.u()[static_cast<std::size_t>(320 * 120)] != f0.u()[static_cast<std::size_t>(320 * 120 + 300)]);
    }

    TEST_CASE("odd and tiny sizes are valid frames") {
        for (auto [w, h] : {std::pair{1, 1}, std::pair{3, 5}, std::pair{33, 17}, std::pair{641, 361}}) {
            test_pattern tp(w, h);
            const auto f = tp.next();
            CHECK(f.valid());
            CHECK(f.width == w);
            CHECK(f.height == h);
        }
    }
}
