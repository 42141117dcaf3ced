#include "onair/qos/lip_sync.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>

using namespace onair;
using namespace std::chrono_literals;
using qos::lip_sync;
using qos::rtp_to_ntp;
using qos::sync_delays;

namespace {

using time_point = std::chrono::steady_clock::time_point;
using us = std::chrono::microseconds;

const timestamp T0{std::chrono::seconds{1'700'000'000}}; // sender wall clock at t = 0
const time_point L0{std::chrono::seconds{5'000}};       // receiver steady clock at t = 0

/// A sender's media clock: rtp0 + rate * (1 + drift) * t, wrapping at 2^32.
struct media_clock {
    std::uint32_t ssrc = 0;
    std::uint32_t rate = 90'000;
    std::uint32_t rtp0 = 0;
    double drift_ppm = 0;

    std::uint32_t at(us t) const {
        const double ticks = static_cast<double>(rate) * (1 + drift_ppm * 1e-6) * static_cast<double>(t.count()) / 1e6;
        return static_cast<std::uint32_t>(static_cast<std::uint64_t>(rtp0) + static_cast<std::uint64_t>(std::llround(ticks)));
    }
    rtp::rtcp::sender_report sr(us t) const {
        rtp::rtcp::sender_report r;
        r.ssrc = ssrc;
        r.ntp_timestamp = to_ntp(T0 + t);
        r.rtp_timestamp = at(t);
        return r;
    }
};

us error(const std::optional<timestamp>& got, timestamp want) {
    REQUIRE(got);
    const auto d = (*got - want).count();
    return us{d < 0 ? -d : d};
}

/// Deterministic uniform jitter in [0, max_ms] ms.
struct lcg {
    std::uint32_t s = 4242;
    us next(int max_ms) {
        s = s * 1664525u + 1013904223u;
        return us{static_cast<std::int64_t>((s >> 8) % static_cast<std::uint32_t>(max_ms * 1000 + 1))};
    }
};

/// Audio every 20 ms and video every 40 ms, each with its own earliest transit and jitter,
/// sender reports every second; the buffers' delays are fixed "base" delays plus the extra
/// delay lip sync asks for.
struct av_scenario {
    media_clock audio{0xa, 48'000, 1'000, 0};
    media_clock video{0xb, 90'000, 0xfff0'0000u, 0};
    us audio_transit = 40ms, audio_jitter = 20ms;
    us video_transit = 90ms, video_jitter = 40ms;
    us audio_base = 30ms, video_base = 50ms;
    lip_sync sync{0xa, 0xb};
    lcg rnd;
    us t{0};

    /// Runs to `until`, calling update() once per second; returns the last result.
    sync_delays run(us until) {
        for (; t < until; t += 20ms) {
            if (t.count() % 1'000'000 == 0) {
                sync.on_sender_report(audio.sr(t));
                sync.on_sender_report(video.sr(t));
            }
            sync.on_packet(media_kind::audio, audio.at(t),
                           L0 + t + audio_transit + rnd.next(static_cast<int>(audio_jitter.count() / 1000)));
            if (t.count() % 40'000 == 0)
                sync.on_packet(media_kind::video, video.at(t),
                               L0 + t + video_transit + rnd.next(static_cast<int>(video_jitter.count() / 1000)));
            if (t.count() % 1'000'000 == 500'000) {
                const auto& d = sync.delays();
                sync.update(audio_base + d.audio, video_base + d.video);
            }
        }
        return sync.delays();
    }
    /// The A/V offset a capture instant gets when each stream plays at earliest arrival +
    /// its delay (what the buffers do in steady state).
    us offset_at(us capture) const {
        const auto& d = sync.delays();
        const time_point audio_played = L0 + capture + audio_transit + audio_base + d.audio;
        const time_point video_shown = L0 + capture + video_transit + video_base + d.video;
        return *sync.av_offset(audio.at(capture), audio_played, video.at(capture), video_shown);
    }
};

} // namespace

TEST_SUITE_BEGIN("qos.lip_sync");

TEST_CASE("rtp_to_ntp: one report maps at the nominal rate, across the timestamp wrap") {
    rtp_to_ntp m(90'000);
    CHECK_FALSE(m.capture_time(0));
    // The report says RTP 0xffff'ff00 is T0; 65 536 ticks later the counter reads 0x0000'ff00.
    CHECK(m.update(to_ntp(T0), 0xffff'ff00u));
    CHECK(error(m.capture_time(0xffff'ff00u), T0) <= 1us);
    CHECK(error(m.capture_time(0xffff'ff00u + 90'000u), T0 + 1s) <= 1us);
    CHECK(error(m.capture_time(0x0000'ff00u), T0 + us{65'536'000'000 / 90'000}) <= 1us);
    CHECK(error(m.capture_time(0xffff'ff00u - 45'000u), T0 - 500ms) <= 1us); // before the report
    CHECK_FALSE(m.update(to_ntp(T0), 0xffff'ff00u));                          // a repeat
}

TEST_CASE("rtp_to_ntp follows a media clock that drifts from the wall clock") {
    // The camera clock runs 1000 ppm fast: 90 090 ticks per wall-clock second. Reports every
    // second for 7 s, then a timestamp 13 s after the last report.
    media_clock v{1, 90'000, 123'456, 1'000};
    rtp_to_ntp fitted(90'000), single(90'000);
    for (int s = 0; s < 8; ++s) fitted.update(v.sr(us{s * 1'000'000}).ntp_timestamp, v.at(us{s * 1'000'000}));
    single.update(v.sr(7s).ntp_timestamp, v.at(7s));
    CHECK(std::abs(fitted.clock_rate() - 90'090) < 1);
    CHECK(error(fitted.capture_time(v.at(20s)), T0 + 20s) <= 50us);
    CHECK(error(single.capture_time(v.at(20s)), T0 + 20s) >= 12ms); // nominal rate: 13 s * 0.1 %
}

TEST_CASE("rtp_to_ntp starts over when the sender restarts its clock") {
    rtp_to_ntp m(48'000);
    m.update(to_ntp(T0), 500'000);
    m.update(to_ntp(T0 + 1s), 548'000);
    CHECK(m.reports() == 2);
    CHECK(m.update(to_ntp(T0 + 2s), 7)); // RTP went backwards: a new timeline
    CHECK(m.reports() == 1);
    CHECK(error(m.capture_time(7u + 48'000u), T0 + 3s) <= 1us);
}

TEST_CASE("no sync before both streams have a sender report and media") {
    lip_sync s(0xa, 0xb);
    CHECK_FALSE(s.update(30ms, 50ms));
    media_clock a{0xa, 48'000, 0, 0};
    CHECK_FALSE(s.on_sender_report(media_clock{0xc, 48'000, 0, 0}.sr(0ms))); // not ours
    CHECK(s.on_sender_report(a.sr(0ms)));
    s.on_packet(media_kind::audio, a.at(0ms), L0 + 40ms);
    CHECK_FALSE(s.update(30ms, 50ms)); // no video yet
    CHECK_FALSE(s.capture_time(media_kind::video, 0));
}

TEST_CASE("audio is delayed to meet late video, within the deadband, with drifting clocks") {
    // Audio arrives after 40..60 ms and plays 30 ms after its earliest arrival; video after
    // 90..130 ms and 50 ms: a capture instant is heard at +70 ms and seen at +140 ms, so
    // audio needs 70 ms more. The audio clock runs 200 ppm fast, the video one 300 ppm slow.
    av_scenario sc;
    sc.audio.drift_ppm = 200;
    sc.video.drift_ppm = -300;
    const auto first = sc.run(600ms); // one update, at 0.5 s
    CHECK(first.video == 0us);
    CHECK(first.audio >= 50ms);
    CHECK(first.audio <= 90ms);
    const auto settled = sc.run(20s);
    CHECK(settled.video == 0us);
    CHECK(std::abs((settled.audio - 70ms).count()) <= 20'000);
    CHECK(std::abs(sc.offset_at(19s).count()) <= 20'000); // well inside +-40 ms
    // It stays put: no oscillation once inside the deadband.
    const auto later = sc.run(40s);
    CHECK(later == settled);
    CHECK(std::abs(sc.offset_at(39s).count()) <= 20'000);
}

TEST_CASE("video is delayed when audio is late; changes are limited to max_step per update") {
    // Audio arrives 300 ms after video's earliest arrival: video must wait 300 ms more, in
    // steps of at most 80 ms per update.
    av_scenario sc;
    sc.audio_transit = 400ms;
    sc.video_transit = 100ms;
    sc.audio_base = sc.video_base = 40ms;
    sc.audio_jitter = sc.video_jitter = 0ms;
    sc.run(600ms);
    CHECK(sc.sync.delays().video == 80ms);
    sc.run(1'600ms);
    CHECK(sc.sync.delays().video == 160ms);
    sc.run(6'600ms);
    CHECK(sc.sync.delays().audio == 0us);
    CHECK(std::abs((sc.sync.delays().video - 300ms).count()) <= 20'000);
    CHECK(std::abs(sc.offset_at(6s).count()) <= 20'000);
}

TEST_CASE("extra delay comes off the late stream before it goes on the other") {
    // Settle with audio +70 ms, then the audio buffer's own delay grows by 100 ms (jitter):
    // audio is now late by 100 ms. Its 70 ms of extra delay go first, then 10 ms on video
    // (the step is 80 ms), leaving -20 ms: inside the deadband.
    av_scenario sc;
    sc.audio_jitter = sc.video_jitter = 0ms;
    sc.run(5s);
    CHECK(sc.sync.delays().audio == 70ms);
    sc.audio_base = 130ms;
    sc.run(10s);
    CHECK(sc.sync.delays().audio == 0us);
    CHECK(sc.sync.delays().video == 10ms);
    CHECK(std::abs(sc.offset_at(9s).count()) <= 20'000);
}

TEST_SUITE_END();
