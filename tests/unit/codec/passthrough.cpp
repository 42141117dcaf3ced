#include "onair/codec/passthrough.hpp"

#include "onair/source/test_pattern.hpp"
#include "onair/source/tone.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <vector>

using onair::audio_frame;
using onair::encoded_frame;
using onair::errc;
using onair::video_frame;
using onair::codec::passthrough_audio;
using onair::codec::passthrough_video;

TEST_SUITE("codec.passthrough") {
    TEST_CASE("passthrough video round trip is exact") {
        static_assert(onair::codec::video_codec<passthrough_video>);
        passthrough_video::encoder enc;
        passthrough_video::decoder dec;
        REQUIRE_FALSE(enc.open({}));
        REQUIRE_FALSE(dec.open());
        const onair::timestamp t0{std::chrono::seconds{1'700'000'000}};
        for (auto [w, h] : {std::pair{160, 120}, std::pair{33, 17}, std::pair{1, 1}}) {
            onair::source::test_pattern tp(w, h, 30, t0);
            for (int i = 0; i < 3; ++i) {
                const auto src = tp.next();
                std::vector<encoded_frame> out;
                REQUIRE_FALSE(enc.encode(src, [&](encoded_frame&& e) { out.push_back(std::move(e)); }));
                REQUIRE(out.size() == 1);
                CHECK(out[0].keyframe);
                CHECK(out[0].width == w);
                CHECK(out[0].height == h);
                CHECK(out[0].data.size() == 4 + src.data.size());
                const auto us = static_cast<std::uint64_t>(src.capture_time.time_since_epoch().count());
                CHECK(out[0].rtp_timestamp == static_cast<std::uint32_t>(us * 90 / 1000));
                video_frame dst;
                REQUIRE_FALSE(dec.decode(out[0], dst));
                CHECK(dst.width == w);
                CHECK(dst.height == h);
                CHECK(dst.data == src.data);
                CHECK(dst.capture_time == src.capture_time);
            }
        }
    }

    TEST_CASE("passthrough video rejects malformed input") {
        passthrough_video::encoder enc;
        video_frame bad(16, 16);
        CHECK(enc.encode(bad, [](encoded_frame&&) {}) == errc::codec_failed); // not open
        REQUIRE_FALSE(enc.open({}));
        bad.data.pop_back();
        CHECK(enc.encode(bad, [](encoded_frame&&) {}) == errc::bad_frame);
        passthrough_video::decoder dec;
        REQUIRE_FALSE(dec.open());
        video_frame out;
        encoded_frame e;
        CHECK(dec.decode(e, out) == errc::codec_failed);
        e.data = {0, 16, 0, 16, 1, 2, 3}; // claims 16x16 but carries 3 bytes
        CHECK(dec.decode(e, out) == errc::codec_failed);
        e.data.assign(4 + video_frame::size_for(16, 16), 0);
        e.data[1] = 16;
        e.data[3] = 16;
        CHECK_FALSE(dec.decode(e, out));
        e.data[1] = 0; // zero width
        CHECK(dec.decode(e, out) == errc::codec_failed);
    }

    TEST_CASE("passthrough audio round trip is exact") {
        static_assert(onair::codec::audio_codec<passthrough_audio>);
        for (int ch : {1, 2}) {
            passthrough_audio::encoder enc;
            passthrough_audio::decoder dec;
            REQUIRE_FALSE(enc.open({.channels = ch}));
            REQUIRE_FALSE(dec.open());
            onair::source::tone t({440.0, ch, 1.0, {}});
            for (std::uint32_t i = 0; i < 3; ++i) {
                auto src = t.next();
                src.samples[0] = -32768; // extremes survive
                std::vector<encoded_frame> out;
                REQUIRE_FALSE(enc.encode(src, [&](encoded_frame&& e) { out.push_back(std::move(e)); }));
                REQUIRE(out.size() == 1);
                CHECK(out[0].rtp_timestamp == 960 * i);
                audio_frame dst;
                REQUIRE_FALSE(dec.decode(out[0], dst));
                CHECK(dst.channels == ch);
                CHECK(dst.samples == src.samples);
                CHECK(dst.capture_time == src.capture_time);
            }
        }
    }

    TEST_CASE("passthrough audio rejects malformed input") {
        passthrough_audio::encoder enc;
        CHECK(enc.open({.channels = 0}) == errc::codec_init_failed);
        REQUIRE_FALSE(enc.open({.channels = 2}));
        audio_frame f;
        f.channels = 1;
        f.samples.assign(960, 0);
        CHECK(enc.encode(f, [](encoded_frame&&) {}) == errc::bad_frame);
        passthrough_audio::decoder dec;
        REQUIRE_FALSE(dec.open());
        encoded_frame e;
        audio_frame out;
        CHECK(dec.decode(e, out) == errc::codec_failed);
        e.data = {2, 0, 0, 0}; // stereo needs 4-byte sample pairs
        CHECK(dec.decode(e, out) == errc::codec_failed);
        e.data = {3, 0, 0, 0, 0, 0, 0};
        CHECK(dec.decode(e, out) == errc::codec_failed);
        e.data = {2, 1, 0, 0xff, 0xff};
        REQUIRE_FALSE(dec.decode(e, out));
        CHECK(out.samples == std::vector<std::int16_t>{1, -1});
    }
}
