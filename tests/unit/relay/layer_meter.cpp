// relay::layer_meter: per-layer rates over a sliding window.
#include <onair/relay/layer_meter.hpp>

#include <doctest/doctest.h>

using namespace std::chrono_literals;
using onair::relay::layer_meter;

TEST_CASE("layer_meter: cumulative temporal rates per encoding, and a stopped layer falls to zero") {
    layer_meter m;
    auto t = std::chrono::steady_clock::time_point{} + 1h;
    // 2 s of 100 kbit/s on TL0 and 50 kbit/s on TL1 of encoding 0, 400 kbit/s on encoding 1 TL0:
    // one packet each per 10 ms.
    for (int i = 0; i < 200; ++i, t += 10ms) {
        m.add(0, 0, 125, t);
        m.add(0, 1, 62, t);
        m.add(1, 0, 500, t);
    }
    CHECK(m.rate_bps(0, 0, t) == doctest::Approx(100'000).epsilon(0.05));
    CHECK(m.rate_bps(0, 1, t) == doctest::Approx(149'600).epsilon(0.05));
    CHECK(m.rate_bps(0, 3, t) == m.rate_bps(0, 1, t));
    CHECK(m.rate_bps(1, 0, t) == doctest::Approx(400'000).epsilon(0.05));
    CHECK(m.rate_bps(2, 2, t) == 0);
    CHECK(m.temporal_layers(0) == 2);
    CHECK(m.temporal_layers(1) == 1);
    CHECK(m.temporal_layers(2) == 0);
    // Encoding 1 stops; encoding 0 goes on.
    for (int i = 0; i < 150; ++i, t += 10ms) {
        m.add(0, 0, 125, t);
        m.add(0, 1, 62, t);
    }
    CHECK(m.rate_bps(1, 0, t) == 0);
    CHECK(m.rate_bps(0, 1, t) == doctest::Approx(149'600).epsilon(0.05));
    // Out-of-range layers are ignored, not a crash.
    m.add(7, 9, 1000, t);
    CHECK(m.rate_bps(7, 0, t) == 0);
    // A long silence empties every bucket.
    t += 10s;
    CHECK(m.rate_bps(0, 3, t) == 0);
}

TEST_CASE("layer_meter: the first half second is measured over what elapsed, not the whole window") {
    layer_meter m;
    auto t = std::chrono::steady_clock::time_point{} + 1h;
    for (int i = 0; i < 50; ++i, t += 10ms) m.add(0, 0, 250, t); // 200 kbit/s for 0.5 s
    CHECK(m.rate_bps(0, 0, t) == doctest::Approx(200'000).epsilon(0.1));
}
