#include "onair/source/barcode.hpp"

#include "onair/codec/vp8.hpp"
#include "onair/codec/vp9.hpp"
#include "onair/source/test_pattern.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <vector>

using onair::timestamp;
using onair::video_frame;
using onair::source::barcode_info;
using onair::source::read_barcode;
using onair::source::stamp_barcode;

namespace {

const timestamp epoch{std::chrono::seconds{1'700'000'000}};

/// Box-filter downscale by an integer factor (what a simulcast layer would see).
video_frame downscale(const video_frame& f, int k) {
    video_frame out(f.width / k, f.height / k);
    auto plane = [&](const std::uint8_t* src, int sw, std::uint8_t* dst, int dw, int dh) {
        for (int y = 0; y < dh; ++y)
            for (int x = 0; x < dw; ++x) {
                int s = 0;
                for (int j = 0; j < k; ++j)
                    for (int i = 0; i < k; ++i) s += src[static_cast<std::size_t>(y * k + j) * sw + x * k + i];
                dst[static_cast<std::size_t>(y) * dw + x] = static_cast<std::uint8_t>(s / (k * k));
            }
    };
    plane(f.y(), f.width, out.y(), out.width, out.height);
    plane(f.u(), f.chroma_width(), out.u(), out.chroma_width(), out.chroma_height());
    plane(f.v(), f.chroma_width(), out.v(), out.chroma_width(), out.chroma_height());
    return out;
}

template <class C>
int unreadable_after_coding(int w, int h, int kbps, int frames) {
    typename C::encoder enc;
    typename C::decoder dec;
    onair::codec::video_config cfg;
    cfg.width = w;
    cfg.height = h;
    cfg.bitrate_kbps = kbps;
    REQUIRE_FALSE(enc.open(cfg));
    REQUIRE_FALSE(dec.open());
    onair::source::test_pattern tp(w, h, 30, epoch);
    int bad = 0;
    for (int i = 0; i < frames; ++i) {
        const auto src = tp.next();
        REQUIRE_FALSE(enc.encode(src, [&](onair::encoded_frame&& e) {
            video_frame out;
            REQUIRE_FALSE(dec.decode(e, out));
            const auto bc = read_barcode(out);
            if (!bc || bc->frame_number != static_cast<std::uint32_t>(i) || bc->capture_time != src.capture_time) ++bad;
        }));
    }
    return bad;
}

} // namespace

TEST_SUITE("source.barcode") {
    TEST_CASE("stamp and read back at many sizes") {
        const std::pair<int, int> sizes[] = {{640, 360}, {160, 120}, {1280, 720}, {320, 240}, {176, 144},
                                             {641, 361}, {100, 20},  {64, 8},     {1920, 1080}};
        for (auto [w, h] : sizes) {
            CAPTURE(w);
            CAPTURE(h);
            video_frame f(w, h);
            std::fill(f.data.begin(), f.data.end(), std::uint8_t{77});
            const barcode_info info{0xdead'beefu, timestamp{std::chrono::microseconds{0x0123'4567'89ab'cdefLL}}};
            REQUIRE(stamp_barcode(f, info));
            const auto r = read_barcode(f);
            REQUIRE(r);
            CHECK(*r == info);
            // Band height and neutral chroma under it.
            const int band = onair::source::barcode_height(w, h);
            CHECK(band == 4 * std::max(2, w / 32));
            CHECK(f.u()[0] == 128);
            CHECK(f.v()[static_cast<std::size_t>(f.chroma_width() - 1)] == 128);
            // Content below the band is untouched.
            if (band < h) CHECK(f.y()[static_cast<std::size_t>(band) * w] == 77);
        }
    }

    TEST_CASE("every bit matters: values round trip") {
        video_frame f(160, 120);
        for (std::uint32_t n : {0u, 1u, 0x8000'0000u, 0xffff'ffffu, 12345u}) {
            for (std::int64_t us : {0LL, 1LL, 1'700'000'000'123'456LL, 0x7fff'ffff'ffff'ffffLL}) {
                const barcode_info info{n, timestamp{std::chrono::microseconds{us}}};
                REQUIRE(stamp_barcode(f, info));
                const auto r = read_barcode(f);
                REQUIRE(r);
                CHECK(*r == info);
            }
        }
    }

    TEST_CASE("frames without a valid code are rejected") {
        video_frame flat(320, 180);
        std::fill(flat.data.begin(), flat.data.end(), std::uint8_t{128});
        CHECK_FALSE(read_barcode(flat));
        std::fill(flat.data.begin(), flat.data.end(), std::uint8_t{0});
        CHECK_FALSE(read_barcode(flat));
        CHECK_FALSE(read_barcode(video_frame{}));

        // A test pattern frame with one block inverted fails the checksum.
        onair::source::test_pattern tp(320, 180, 30, epoch);
        auto f = tp.next();
        REQUIRE(read_barcode(f));
        const int bw = 320 / 32;
        for (int bit : {0, 37, 100, 127}) {
            auto g = f;
            const int x0 = (bit % 32) * bw, y0 = (bit / 32) * bw;
            for (int y = y0; y < y0 + bw; ++y)
                for (int x = x0; x < x0 + bw; ++x) {
                    auto& p = g.y()[static_cast<std::size_t>(y) * 320 + x];
                    p = static_cast<std::uint8_t>(p > 128 ? 16 : 235);
                }
            CHECK_FALSE(read_barcode(g));
        }
    }

    TEST_CASE("too small frames are left alone") {
        video_frame tiny(63, 100);
        std::fill(tiny.data.begin(), tiny.data.end(), std::uint8_t{50});
        CHECK_FALSE(stamp_barcode(tiny, {1, epoch}));
        CHECK(tiny.y()[0] == 50);
        video_frame flat(320, 39); // needs 4 rows of 10
        CHECK(onair::source::barcode_height(320, 39) == 0);
        CHECK_FALSE(stamp_barcode(flat, {1, epoch}));
        CHECK_FALSE(read_barcode(flat));
    }

    TEST_CASE("code reads in proportionally downscaled pictures") {
        onair::source::test_pattern tp(1280, 720, 30, epoch);
        const auto f = tp.render(4242, epoch + std::chrono::seconds{3});
        for (int k : {2, 4, 8}) {
            CAPTURE(k);
            const auto r = read_barcode(downscale(f, k));
            REQUIRE(r);
            CHECK(r->frame_number == 4242);
            CHECK(r->capture_time == epoch + std::chrono::seconds{3});
        }
    }

    TEST_CASE("code survives VP8 and VP9 at small sizes and low rates") {
        CHECK(unreadable_after_coding<onair::codec::vp8>(160, 120, 150, 45) == 0);
        CHECK(unreadable_after_coding<onair::codec::vp9>(160, 120, 150, 45) == 0);
        CHECK(unreadable_after_coding<onair::codec::vp8>(320, 180, 250, 45) == 0);
        CHECK(unreadable_after_coding<onair::codec::vp8>(640, 360, 300, 45) == 0);
    }
}
