#include "onair/source/tone.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <numbers>

using onair::timestamp;
using onair::source::tone;
using onair::source::tone_level;

namespace {
const timestamp epoch{std::chrono::seconds{1'700'000'000}};
}

TEST_SUITE("source.tone") {
    TEST_CASE("20 ms frames with capture times") {
        for (int ch : {1, 2}) {
            tone t({1000.0, ch, 0.5, epoch});
            for (int i = 0; i < 5; ++i) {
                const auto f = t.next();
                CHECK(f.channels == ch);
                CHECK(f.samples_per_channel() == 960);
                CHECK(f.capture_time == epoch + std::chrono::milliseconds{20 * i});
                CHECK(tone_level(f, 1000.0, 0) == doctest::Approx(0.5).epsilon(0.02));
                CHECK(tone_level(f, 1000.0, ch - 1) == doctest::Approx(0.5).epsilon(0.02));
                CHECK(tone_level(f, 2500.0) < 0.01);
            }
        }
        tone t;
        CHECK(t.next(epoch + std::chrono::seconds{9}).capture_time == epoch + std::chrono::seconds{9});
        CHECK(t.frame_index() == 1);
    }

    TEST_CASE("phase is continuous across frames") {
        tone t({440.0, 1, 0.8, epoch}); // not a whole number of periods per frame
        std::vector<std::int16_t> all;
        for (int i = 0; i < 10; ++i) {
            const auto f = t.next();
            all.insert(all.end(), f.samples.begin(), f.samples.end());
        }
        for (std::size_t i = 0; i < all.size(); ++i) {
            const double expect = 0.8 * 32767.0 * std::sin(2.0 * std::numbers::pi * 440.0 * static_cast<double>(i) / 48000.0);
            REQUIRE(std::abs(all[i] - expect) < 2.0);
        }
    }

    TEST_CASE("tone_level finds the tone and misses silence") {
        onair::audio_frame silent;
        silent.channels = 1;
        silent.samples.assign(960, 0);
        CHECK(tone_level(silent, 1000.0) == 0.0);
        CHECK(onair::source::rms(silent) == 0.0);
        CHECK(tone_level(onair::audio_frame{}, 1000.0) == 0.0);
        tone t({440.0, 2, 0.25, epoch});
        const auto f = t.next();
        CHECK(tone_level(f, 440.0, 1) == doctest::Approx(0.25).epsilon(0.05));
        CHECK(tone_level(f, 440.0, 2) == 0.0); // no such channel
        CHECK(onair::source::rms(f) == doctest::Approx(0.25 / std::sqrt(2.0)).epsilon(0.02));
    }
}
