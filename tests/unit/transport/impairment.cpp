// The impairment model of one emulated-link direction, driven directly over many datagrams:
// measured loss, burst lengths, delay distributions, bottleneck throughput and queueing,
// capacity schedules and duplication against the configured values; determinism by seed.
#include <onair/transport/detail/impairment.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

using namespace std::chrono_literals;
using onair::transport::direction_config;
using onair::transport::jitter_distribution;
using onair::transport::detail::impairment;
using onair::transport::detail::verdict;
using time_point = impairment::time_point;

namespace {

const time_point t0 = time_point{} + 1h;

double ms(impairment::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

struct trace {
    std::vector<bool> lost;               // per offered datagram
    std::vector<verdict> verdicts;        // per offered datagram
    std::vector<time_point> offered_at;
};

/// Offers `n` datagrams of `bytes`, one every `gap`.
trace run(impairment& m, std::size_t n, impairment::duration gap, std::size_t bytes = 1000) {
    trace t;
    t.lost.reserve(n);
    t.verdicts.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
        const time_point now = t0 + gap * static_cast<long>(i);
        const verdict v = m.offer(now, bytes);
        t.lost.push_back(v.copies == 0);
        t.verdicts.push_back(v);
        t.offered_at.push_back(now);
    }
    return t;
}

double share(const std::vector<bool>& v) {
    return static_cast<double>(std::count(v.begin(), v.end(), true)) / static_cast<double>(v.size());
}

double mean_burst(const std::vector<bool>& lost) {
    std::size_t bursts = 0, in_bursts = 0;
    for (std::size_t i = 0; i < lost.size(); ++i) {
        if (!lost[i]) continue;
        ++in_bursts;
        if (i == 0 || !lost[i - 1]) ++bursts;
    }
    return bursts ? static_cast<double>(in_bursts) / static_cast<double>(bursts) : 0;
}

struct moments {
    double mean = 0, sd = 0, min = 1e300, max = -1e300;
};
moments describe(const std::vector<double>& xs) {
    moments m;
    for (double x : xs) {
        m.mean += x;
        m.min = std::min(m.min, x);
        m.max = std::max(m.max, x);
    }
    m.mean /= static_cast<double>(xs.size());
    for (double x : xs) m.sd += (x - m.mean) * (x - m.mean);
    m.sd = std::sqrt(m.sd / static_cast<double>(xs.size() - 1));
    return m;
}

} // namespace

TEST_CASE("impairment: nothing configured, nothing happens") {
    impairment m({}, 1, t0);
    const trace t = run(m, 1000, 1ms);
    for (std::size_t i = 0; i < t.verdicts.size(); ++i) {
        REQUIRE(t.verdicts[i].copies == 1);
        CHECK(t.verdicts[i].release[0] == t.offered_at[i]);
    }
    const auto s = m.stats(t0 + 1s);
    CHECK(s.sent == 1000);
    CHECK(s.dropped_loss + s.dropped_queue + s.duplicated == 0);
}

TEST_CASE("impairment: random loss matches the configured rate over 100k datagrams") {
    for (double pct : {1.0, 5.0, 20.0, 50.0}) {
        CAPTURE(pct);
        direction_config c;
        c.loss_percent = pct;
        impairment m(c, 7, t0);
        const trace t = run(m, 100'000, 1ms);
        const double measured = share(t.lost) * 100;
        CHECK(std::abs(measured - pct) < std::max(0.15, pct * 0.03));
        // Independent losses: bursts are geometric with mean 1 / (1 - p).
        CHECK(std::abs(mean_burst(t.lost) - 1 / (1 - pct / 100)) < 0.05 / (1 - pct / 100));
        CHECK(m.stats(t0).dropped_loss == std::count(t.lost.begin(), t.lost.end(), true));
    }
    direction_config all;
    all.loss_percent = 100;
    impairment m(all, 7, t0);
    CHECK(share(run(m, 1000, 1ms).lost) == 1.0);
}

TEST_CASE("impairment: Gilbert-Elliott bursts have the configured loss rate and mean length") {
    struct cse {
        double loss, burst;
    };
    for (const cse k : {cse{10, 4}, cse{2, 3}, cse{30, 2}, cse{5, 10}}) {
        CAPTURE(k.loss);
        CAPTURE(k.burst);
        direction_config c;
        c.loss_percent = k.loss;
        c.mean_burst = k.burst;
        impairment m(c, 11, t0);
        const trace t = run(m, 200'000, 1ms);
        const double measured = share(t.lost) * 100;
        const double burst = mean_burst(t.lost);
        MESSAGE("GE loss ", k.loss, "% burst ", k.burst, ": measured ", measured, "% burst ", burst);
        CHECK(std::abs(measured - k.loss) < k.loss * 0.08);
        CHECK(std::abs(burst - k.burst) < k.burst * 0.08);
    }
}

TEST_CASE("impairment: uniform jitter stays within delay +- jitter with the right spread") {
    direction_config c;
    c.delay = 40ms;
    c.jitter = 10ms;
    c.reorder = true;
    impairment m(c, 3, t0);
    const trace t = run(m, 50'000, 1ms);
    std::vector<double> d;
    std::size_t reordered = 0;
    for (std::size_t i = 0; i < t.verdicts.size(); ++i) {
        d.push_back(ms(t.verdicts[i].release[0] - t.offered_at[i]));
        if (i && t.verdicts[i].release[0] < t.verdicts[i - 1].release[0]) ++reordered;
    }
    const moments mo = describe(d);
    MESSAGE("uniform 40+-10 ms: mean ", mo.mean, " sd ", mo.sd, " min ", mo.min, " max ", mo.max, " reordered ", reordered);
    CHECK(mo.min >= 30.0);
    CHECK(mo.max <= 50.0);
    CHECK(mo.mean == doctest::Approx(40).epsilon(0.005));
    CHECK(mo.sd == doctest::Approx(10 / std::sqrt(3.0)).epsilon(0.03));
    CHECK(reordered > 1000); // 1 ms apart with +-10 ms of jitter: plenty
}

TEST_CASE("impairment: normal jitter has sigma = jitter, truncated at 3 sigma; delay never negative") {
    direction_config c;
    c.delay = 40ms;
    c.jitter = 5ms;
    c.distribution = jitter_distribution::normal;
    c.reorder = true;
    impairment m(c, 5, t0);
    const trace t = run(m, 50'000, 1ms);
    std::vector<double> d;
    for (std::size_t i = 0; i < t.verdicts.size(); ++i) d.push_back(ms(t.verdicts[i].release[0] - t.offered_at[i]));
    const moments mo = describe(d);
    MESSAGE("normal 40, sigma 5 ms: mean ", mo.mean, " sd ", mo.sd, " min ", mo.min, " max ", mo.max);
    CHECK(mo.min >= 25.0);
    CHECK(mo.max <= 55.0);
    CHECK(mo.mean == doctest::Approx(40).epsilon(0.005));
    CHECK(mo.sd == doctest::Approx(5 * 0.9866).epsilon(0.03)); // sd of N(0,1) truncated at +-3

    direction_config wide;
    wide.delay = 2ms;
    wide.jitter = 10ms;
    wide.reorder = true;
    impairment w(wide, 5, t0);
    const trace tw = run(w, 10'000, 1ms);
    for (std::size_t i = 0; i < tw.verdicts.size(); ++i) REQUIRE(tw.verdicts[i].release[0] >= tw.offered_at[i]);
}

TEST_CASE("impairment: without reordering nothing overtakes, and delay stays within bounds") {
    direction_config c;
    c.delay = 40ms;
    c.jitter = 10ms;
    c.reorder = false;
    impairment m(c, 3, t0);
    const trace t = run(m, 50'000, 1ms);
    std::vector<double> d;
    for (std::size_t i = 0; i < t.verdicts.size(); ++i) {
        if (i) REQUIRE(t.verdicts[i].release[0] >= t.verdicts[i - 1].release[0]);
        d.push_back(ms(t.verdicts[i].release[0] - t.offered_at[i]));
    }
    const moments mo = describe(d);
    MESSAGE("in-order 40+-10 ms: mean ", mo.mean, " min ", mo.min, " max ", mo.max);
    CHECK(mo.min >= 30.0);
    CHECK(mo.max <= 50.0); // waiting behind an earlier datagram never exceeds its bound
    CHECK(mo.mean > 40.0); // holding back shifts the mean up
}

TEST_CASE("impairment: bottleneck throughput, drop-tail and the queue delay bound") {
    direction_config c;
    c.rate_kbps = 1000; // 125 datagrams of 1000 bytes per second
    c.queue = 100ms;
    SUBCASE("offered twice the rate") {
        impairment m(c, 1, t0);
        const trace t = run(m, 5000, 4ms); // 2000 kbit/s for 20 s
        std::size_t passed = 0;
        double max_wait = 0;
        time_point last_departure = t0;
        for (std::size_t i = 0; i < t.verdicts.size(); ++i) {
            if (!t.verdicts[i].copies) continue;
            ++passed;
            max_wait = std::max(max_wait, ms(t.verdicts[i].depart[0] - t.offered_at[i]));
            last_departure = t.verdicts[i].depart[0];
        }
        const double seconds = std::chrono::duration<double>(last_departure - t0).count();
        const double kbps = static_cast<double>(passed - 1) * 8.0 / seconds; // bytes*8/1000 per s
        const auto s = m.stats(t.offered_at.back());
        MESSAGE("1000 kbit/s bottleneck at 2x load: ", kbps, " kbit/s, queue drops ", s.dropped_queue, ", max queue delay ",
                max_wait, " ms");
        CHECK(kbps == doctest::Approx(1000).epsilon(0.01));
        CHECK(s.dropped_queue == 5000 - passed);
        CHECK(s.dropped_queue > 2400);
        CHECK(s.dropped_queue < 2600);
        CHECK(max_wait <= 100.0);
        CHECK(max_wait > 90.0); // the queue did fill
        CHECK(ms(s.max_queue_delay) == doctest::Approx(max_wait).epsilon(0.01));
        CHECK(ms(s.queue_delay) > 90.0); // still backlogged at the end
        CHECK(m.stats(t.offered_at.back() + 1s).queue_delay == 0us);
    }
    SUBCASE("offered below the rate: no drops, queue delay is the serialisation time") {
        impairment m(c, 1, t0);
        const trace t = run(m, 1000, 10ms); // 800 kbit/s
        for (std::size_t i = 0; i < t.verdicts.size(); ++i) {
            REQUIRE(t.verdicts[i].copies == 1);
            CHECK(t.verdicts[i].depart[0] - t.offered_at[i] == 8ms);
        }
    }
    SUBCASE("a token bucket lets a burst of its depth through at once") {
        c.bucket_bytes = 10'000;
        impairment m(c, 1, t0);
        for (int i = 0; i < 10; ++i) CHECK(m.offer(t0 + 1s, 1000).depart[0] == t0 + 1s);
        CHECK(m.offer(t0 + 1s, 1000).depart[0] == t0 + 1s + 8ms); // bucket empty: one serialisation
        CHECK(m.offer(t0 + 1s, 1000).depart[0] == t0 + 1s + 16ms);
    }
}

TEST_CASE("impairment: a capacity schedule changes the rate at its offsets") {
    direction_config c;
    c.rate_kbps = 2000;
    c.queue = 50ms;
    c.schedule = {{2s, 500}, {4s, 1000}, {6s, 0}};
    impairment m(c, 1, t0);
    const trace t = run(m, 4000, 2ms); // 4000 kbit/s offered, 8 s
    // Departures per window, away from the steps so queued datagrams do not blur them.
    auto kbps_between = [&](double from_s, double to_s) {
        std::size_t n = 0;
        for (const verdict& v : t.verdicts) {
            if (!v.copies) continue;
            const double at = std::chrono::duration<double>(v.depart[0] - t0).count();
            if (at >= from_s && at < to_s) ++n;
        }
        return static_cast<double>(n) * 8.0 / (to_s - from_s);
    };
    const double a = kbps_between(0.2, 2.0), b = kbps_between(2.2, 4.0), d = kbps_between(4.2, 6.0),
                 e = kbps_between(6.2, 8.0);
    MESSAGE("schedule 2000 -> 500 -> 1000 -> unlimited kbit/s: measured ", a, ", ", b, ", ", d, ", ", e);
    CHECK(a == doctest::Approx(2000).epsilon(0.02));
    CHECK(b == doctest::Approx(500).epsilon(0.02));
    CHECK(d == doctest::Approx(1000).epsilon(0.02));
    CHECK(e == doctest::Approx(4000).epsilon(0.02));
    impairment fresh(c, 1, t0); // rate_at looks forward from the last datagram offered
    CHECK(fresh.rate_at(t0 + 1s) == 2000);
    CHECK(fresh.rate_at(t0 + 3s) == 500);
    CHECK(fresh.stats(t0 + 5s).rate_kbps == 1000);
    CHECK(fresh.stats(t0 + 9s).rate_kbps == 0);
}

TEST_CASE("impairment: duplication matches the configured share; each copy is delayed on its own") {
    direction_config c;
    c.duplicate_percent = 10;
    c.delay = 20ms;
    c.jitter = 5ms;
    c.reorder = true;
    impairment m(c, 9, t0);
    const trace t = run(m, 100'000, 1ms);
    std::size_t copies = 0, differ = 0;
    for (const verdict& v : t.verdicts) {
        copies += v.copies;
        if (v.copies == 2 && v.release[0] != v.release[1]) ++differ;
    }
    const auto s = m.stats(t0);
    MESSAGE("duplicate 10%: measured ", static_cast<double>(s.duplicated) / 1000.0, "%");
    CHECK(std::abs(static_cast<double>(s.duplicated) / 1000.0 - 10.0) < 0.3);
    CHECK(copies == s.sent + s.duplicated);
    CHECK(differ > s.duplicated * 9 / 10);
}

TEST_CASE("impairment: same seed, same fate; loss does not depend on the other settings") {
    direction_config c;
    c.loss_percent = 10;
    c.mean_burst = 3;
    c.duplicate_percent = 5;
    c.delay = 30ms;
    c.jitter = 10ms;
    c.reorder = true;
    c.rate_kbps = 20'000; // above the offered 8000 kbit/s: no queue drops
    impairment a(c, 1234, t0), b(c, 1234, t0), other(c, 4321, t0);
    const trace ta = run(a, 20'000, 1ms), tb = run(b, 20'000, 1ms), to = run(other, 20'000, 1ms);
    CHECK(ta.lost == tb.lost);
    bool same_releases = true;
    for (std::size_t i = 0; i < ta.verdicts.size(); ++i)
        same_releases = same_releases && ta.verdicts[i].copies == tb.verdicts[i].copies &&
                        ta.verdicts[i].release == tb.verdicts[i].release;
    CHECK(same_releases);
    CHECK(ta.lost != to.lost);

    direction_config loss_only;
    loss_only.loss_percent = 10;
    loss_only.mean_burst = 3;
    impairment plain(loss_only, 1234, t0);
    CHECK(run(plain, 20'000, 1ms).lost == ta.lost);
}

TEST_CASE("impairment: counters add up with every impairment on") {
    direction_config c;
    c.loss_percent = 5;
    c.duplicate_percent = 5;
    c.rate_kbps = 500;
    c.queue = 20ms;
    c.delay = 10ms;
    c.jitter = 3ms;
    impairment m(c, 2, t0);
    const trace t = run(m, 10'000, 10ms);
    std::uint64_t out = 0;
    for (const verdict& v : t.verdicts) out += v.copies;
    const auto s = m.stats(t0);
    CHECK(s.sent == 10'000);
    CHECK(s.dropped_queue > 0);
    CHECK(s.sent + s.duplicated == s.dropped_loss + s.dropped_queue + out);
}

TEST_CASE("impairment: impossible settings are refused") {
    auto bad = [](auto edit) {
        direction_config c;
        edit(c);
        CHECK_THROWS_AS(impairment(c, 1, t0), std::invalid_argument);
    };
    bad([](direction_config& c) { c.loss_percent = 101; });
    bad([](direction_config& c) { c.loss_percent = -1; });
    bad([](direction_config& c) { c.loss_percent = std::nan(""); });
    bad([](direction_config& c) { c.duplicate_percent = 200; });
    bad([](direction_config& c) { c.mean_burst = 0.5; });
    bad([](direction_config& c) {
        c.loss_percent = 60; // needs a mean burst >= 1.5
        c.mean_burst = 1.2;
    });
    bad([](direction_config& c) { c.delay = -1ms; });
    bad([](direction_config& c) { c.rate_kbps = -5; });
    bad([](direction_config& c) { c.schedule = {{2s, 100}, {1s, 200}}; });
    direction_config ok;
    ok.loss_percent = 60;
    ok.mean_burst = 1.5;
    CHECK_NOTHROW(impairment(ok, 1, t0));
}
