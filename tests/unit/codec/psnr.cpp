#include "onair/core/psnr.hpp"

#include <doctest/doctest.h>

#include <cmath>

using onair::psnr;
using onair::video_frame;

TEST_SUITE("core.psnr") {
    TEST_CASE("identical frames reach the cap") {
        video_frame a(64, 48);
        for (std::size_t i = 0; i < a.data.size(); ++i) a.data[i] = static_cast<std::uint8_t>(i * 7);
        const auto r = psnr(a, a);
        CHECK(r.valid);
        CHECK(r.y == onair::psnr_max_db);
        CHECK(r.all == onair::psnr_max_db);
        CHECK(onair::psnr_y(a, a) == onair::psnr_max_db);
    }

    TEST_CASE("known error gives known PSNR") {
        video_frame a(64, 48), b(64, 48);
        // Y differs by 5 everywhere: MSE 25; chroma identical.
        for (std::size_t i = 0; i < 64 * 48; ++i) b.data[i] = 5;
        const auto r = psnr(a, b);
        const double expect_y = 10.0 * std::log10(255.0 * 255.0 / 25.0);
        CHECK(r.y == doctest::Approx(expect_y));
        CHECK(r.u == onair::psnr_max_db);
        // Pooled: sse 25 * 3072 over 3072 + 2 * 768 samples.
        const double mse_all = 25.0 * 3072.0 / (3072.0 + 1536.0);
        CHECK(r.all == doctest::Approx(10.0 * std::log10(255.0 * 255.0 / mse_all)));
        // Chroma error is seen in u/v and the pooled value only.
        video_frame c = a;
        c.u()[0] = 255;
        const auto rc = psnr(a, c);
        CHECK(rc.y == onair::psnr_max_db);
        CHECK(rc.u < 60.0);
        CHECK(rc.v == onair::psnr_max_db);
        CHECK(rc.all < onair::psnr_max_db);
    }

    TEST_CASE("mismatched frames are not comparable") {
        CHECK_FALSE(psnr(video_frame(64, 48), video_frame(48, 64)).valid);
        CHECK_FALSE(psnr(video_frame(), video_frame()).valid);
        video_frame broken(64, 48);
        broken.data.resize(5);
        CHECK_FALSE(psnr(broken, video_frame(64, 48)).valid);
        CHECK(onair::psnr_y(video_frame(8, 8), video_frame(4, 4)) == 0.0);
    }
}
