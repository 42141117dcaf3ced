// onair tests — checks shared by the VP8 and VP9 policy tests.
#pragma once

#include "onair/codec/concepts.hpp"
#include "onair/core/error.hpp"
#include "onair/core/psnr.hpp"
#include "onair/source/barcode.hpp"
#include "onair/source/test_pattern.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <random>
#include <utility>
#include <vector>

namespace onair::test {

inline const timestamp test_epoch{std::chrono::seconds{1'700'000'000}};

inline codec::video_config config_640(int kbps = 1000) {
    codec::video_config c;
    c.width = 640;
    c.height = 360;
    c.fps = 30;
    c.bitrate_kbps = kbps;
    return c;
}

/// Encodes `n` test-pattern frames; returns the encoded frames (one per input).
template <class C>
std::vector<encoded_frame> encode_pattern(typename C::encoder& enc, source::test_pattern& tp, int n) {
    std::vector<encoded_frame> out;
    for (int i = 0; i < n; ++i) {
        const auto f = tp.next();
        REQUIRE_FALSE(enc.encode(f, [&](encoded_frame&& e) { out.push_back(std::move(e)); }));
    }
    return out;
}

/// 2 s of 640x360@30 at 1 Mbps: PSNR >= 32 dB and a readable barcode on every decoded frame.
template <class C>
void check_quality_and_barcode(const char* name) {
    typename C::encoder enc;
    typename C::decoder dec;
    REQUIRE_FALSE(enc.open(config_640(1000)));
    REQUIRE_FALSE(dec.open());
    source::test_pattern tp(640, 360, 30, test_epoch);
    const int n = 60;
    double min_psnr = 1e9, sum_psnr = 0, min_psnr_y = 1e9;
    std::size_t bytes = 0;
    int decoded = 0;
    for (int i = 0; i < n; ++i) {
        const auto src = tp.next();
        std::vector<encoded_frame> out;
        REQUIRE_FALSE(enc.encode(src, [&](encoded_frame&& e) { out.push_back(std::move(e)); }));
        REQUIRE(out.size() == 1); // no lag, no drops at this rate
        const auto& e = out.front();
        CHECK(e.kind == media_kind::video);
        CHECK(e.keyframe == (i == 0));
        CHECK(e.temporal_layer == 0);
        CHECK(e.width == 640);
        CHECK(e.height == 360);
        CHECK(e.capture_time == src.capture_time);
        const auto us = static_cast<std::uint64_t>(src.capture_time.time_since_epoch().count());
        CHECK(e.rtp_timestamp == static_cast<std::uint32_t>(us * 90 / 1000));
        bytes += e.data.size();

        video_frame dst;
        REQUIRE_FALSE(dec.decode(e, dst));
        REQUIRE(dst.valid());
        REQUIRE(dst.width == 640);
        REQUIRE(dst.height == 360);
        CHECK(dst.capture_time == src.capture_time);
        const auto p = psnr(src, dst);
        REQUIRE(p.valid);
        min_psnr = std::min(min_psnr, p.all);
        min_psnr_y = std::min(min_psnr_y, p.y);
        sum_psnr += p.all;
        const auto bc = source::read_barcode(dst);
        REQUIRE(bc.has_value());
        CHECK(bc->frame_number == static_cast<std::uint32_t>(i));
        CHECK(bc->capture_time == src.capture_time);
        ++decoded;
    }
    const double kbps = static_cast<double>(bytes) * 8.0 / 2.0 / 1000.0;
    std::printf("[%s] 640x360@30 1 Mbps, 2 s: PSNR min %.2f mean %.2f dB (Y min %.2f), %.0f kbps\n", name, min_psnr,
                sum_psnr / decoded, min_psnr_y, kbps);
    CHECK(decoded == n);
    CHECK(min_psnr >= 32.0);
    CHECK(kbps > 300.0);  // rate control uses the budget...
    CHECK(kbps < 1500.0); // ...and stays near it
}

template <class C>
void check_keyframe_request() {
    typename C::encoder enc;
    REQUIRE_FALSE(enc.open(config_640()));
    source::test_pattern tp(640, 360, 30, test_epoch);
    auto first = encode_pattern<C>(enc, tp, 10);
    REQUIRE(first.size() == 10);
    CHECK(first[0].keyframe);
    for (std::size_t i = 1; i < first.size(); ++i) CHECK_FALSE(first[i].keyframe);
    enc.request_keyframe();
    auto next = encode_pattern<C>(enc, tp, 3);
    REQUIRE(next.size() == 3);
    CHECK(next[0].keyframe);
    CHECK_FALSE(next[1].keyframe); // the request is one-shot
    CHECK_FALSE(next[2].keyframe);
    // The forced keyframe starts a stream on its own.
    typename C::decoder dec;
    REQUIRE_FALSE(dec.open());
    video_frame out;
    REQUIRE_FALSE(dec.decode(next[0], out));
    CHECK_FALSE(dec.decode(next[1], out));
    const auto bc = source::read_barcode(out);
    REQUIRE(bc);
    CHECK(bc->frame_number == 11);
}

template <class C>
void check_periodic_keyframes() {
    typename C::encoder enc;
    auto cfg = config_640();
    cfg.width = 320;
    cfg.height = 180;
    cfg.fps = 10;
    cfg.keyframe_interval_s = 1; // at most 10 frames apart
    REQUIRE_FALSE(enc.open(cfg));
    source::test_pattern tp(320, 180, 10, test_epoch);
    auto frames = encode_pattern<C>(enc, tp, 31);
    int last_key = -1, keys = 0;
    for (int i = 0; i < static_cast<int>(frames.size()); ++i) {
        if (frames[static_cast<std::size_t>(i)].keyframe) {
            if (last_key >= 0) CHECK(i - last_key <= 10);
            last_key = i;
            ++keys;
        }
    }
    CHECK(keys >= 3);
    CHECK(keys <= 5);
}

template <class C>
void check_set_bitrate() {
    typename C::encoder enc;
    REQUIRE_FALSE(enc.open(config_640(1500)));
    source::test_pattern tp(640, 360, 30, test_epoch);
    auto high = encode_pattern<C>(enc, tp, 60);
    enc.set_bitrate(200);
    auto low = encode_pattern<C>(enc, tp, 60);
    auto tail_bytes = [](const std::vector<encoded_frame>& v) {
        std::size_t b = 0;
        for (std::size_t i = v.size() / 2; i < v.size(); ++i) b += v[i].data.size();
        return b;
    };
    const auto hb = tail_bytes(high), lb = tail_bytes(low);
    MESSAGE("1500 kbps: " << hb << " B/s, 200 kbps: " << lb << " B/s (last second)");
    CHECK(lb * 3 < hb);
    CHECK(static_cast<double>(lb) * 8.0 < 400'000.0); // near the new 200 kbps target
}

template <class C>
void check_decoder_needs_keyframe() {
    typename C::encoder enc;
    REQUIRE_FALSE(enc.open(config_640()));
    source::test_pattern tp(640, 360, 30, test_epoch);
    auto frames = encode_pattern<C>(enc, tp, 3);
    REQUIRE(frames.size() == 3);
    typename C::decoder dec;
    video_frame out;
    CHECK(dec.decode(frames[0], out) == errc::codec_failed); // not open
    REQUIRE_FALSE(dec.open());
    CHECK(dec.decode(frames[1], out) == errc::not_keyframe);
    CHECK(dec.decode(frames[2], out) == errc::not_keyframe);
    CHECK_FALSE(dec.decode(frames[0], out));
    CHECK_FALSE(dec.decode(frames[1], out));
    CHECK_FALSE(dec.decode(frames[2], out));
    const auto bc = source::read_barcode(out);
    REQUIRE(bc);
    CHECK(bc->frame_number == 2);
}

template <class C>
void check_garbage_input() {
    typename C::encoder enc;
    REQUIRE_FALSE(enc.open(config_640()));
    source::test_pattern tp(640, 360, 30, test_epoch);
    auto frames = encode_pattern<C>(enc, tp, 5);
    std::mt19937 rng(1234);
    std::uniform_int_distribution<int> byte(0, 255);
    auto random_frame = [&](std::size_t n) {
        encoded_frame e;
        e.data.resize(n);
        for (auto& b : e.data) b = static_cast<std::uint8_t>(byte(rng));
        return e;
    };
    typename C::decoder dec;
    REQUIRE_FALSE(dec.open());
    video_frame out;
    // Fresh decoder: random bytes are refused, never decoded into a picture.
    for (std::size_t n : {0u, 1u, 2u, 3u, 7u, 10u, 100u, 1000u, 20000u}) {
        const auto ec = dec.decode(random_frame(n), out);
        CHECK(ec);
    }
    int failures = 0, tries = 0;
    for (int round = 0; round < 200; ++round) {
        // A valid keyframe, then garbage in the middle of a stream.
        REQUIRE_FALSE(dec.decode(frames[0], out));
        for (int k = 0; k < 3; ++k) {
            const auto ec = dec.decode(random_frame(static_cast<std::size_t>(1 + byte(rng) * 20)), out);
            ++tries;
            if (ec) {
                ++failures;
                CHECK((ec == errc::codec_failed || ec == errc::not_keyframe || ec == errc::unsupported));
            }
        }
        // Truncated and bit-flipped real frames.
        auto cut = frames[1];
        cut.data.resize(cut.data.size() / 2 + 1);
        (void)dec.decode(cut, out);
        auto flipped = frames[0];
        for (int k = 0; k < 20; ++k)
            flipped.data[static_cast<std::size_t>(byte(rng)) % flipped.data.size()] ^= static_cast<std::uint8_t>(1 << (k % 8));
        (void)dec.decode(flipped, out);
    }
    CHECK(failures > 0);
    // The decoder still works afterwards.
    REQUIRE_FALSE(dec.decode(frames[0], out));
    const auto bc = source::read_barcode(out);
    REQUIRE(bc);
    CHECK(bc->frame_number == 0);
    MESSAGE(failures << " of " << tries << " random inputs rejected");
}

template <class C>
void check_errors_and_moves() {
    typename C::encoder enc;
    video_frame f(640, 360);
    CHECK(enc.encode(f, [](encoded_frame&&) {}) == errc::codec_failed); // not open
    auto bad = config_640();
    bad.width = 0;
    CHECK(enc.open(bad) == errc::codec_init_failed);
    bad = config_640();
    bad.bitrate_kbps = -5;
    CHECK(enc.open(bad) == errc::codec_init_failed);
    REQUIRE_FALSE(enc.open(config_640()));
    CHECK(enc.encode(video_frame(320, 180), [](encoded_frame&&) {}) == errc::bad_frame);
    video_frame broken(640, 360);
    broken.data.resize(10);
    CHECK(enc.encode(broken, [](encoded_frame&&) {}) == errc::bad_frame);

    source::test_pattern tp(640, 360, 30, test_epoch);
    (void)encode_pattern<C>(enc, tp, 2);
    typename C::encoder moved = std::move(enc);
    auto more = encode_pattern<C>(moved, tp, 2);
    REQUIRE(more.size() == 2);
    CHECK_FALSE(more[0].keyframe); // same stream continues
    typename C::decoder dec;
    REQUIRE_FALSE(dec.open());
    typename C::decoder dec2 = std::move(dec);
    video_frame out;
    CHECK(dec2.decode(more[0], out) == errc::not_keyframe);
}

/// Odd sizes: chroma planes are ceil(w/2) wide; the round trip must keep them aligned.
template <class C>
void check_odd_size() {
    typename C::encoder enc;
    typename C::decoder dec;
    auto cfg = config_640(800);
    cfg.width = 321;
    cfg.height = 181;
    REQUIRE_FALSE(enc.open(cfg));
    REQUIRE_FALSE(dec.open());
    source::test_pattern tp(321, 181, 30, test_epoch);
    for (int i = 0; i < 5; ++i) {
        const auto src = tp.next();
        std::vector<encoded_frame> out;
        REQUIRE_FALSE(enc.encode(src, [&](encoded_frame&& e) { out.push_back(std::move(e)); }));
        REQUIRE(out.size() == 1);
        video_frame dst;
        REQUIRE_FALSE(dec.decode(out[0], dst));
        REQUIRE(dst.width == 321);
        REQUIRE(dst.height == 181);
        const auto p = psnr(src, dst);
        CHECK(p.u > 30.0);
        CHECK(p.v > 30.0);
        CHECK(p.y > 30.0);
    }
}

} // namespace onair::test
