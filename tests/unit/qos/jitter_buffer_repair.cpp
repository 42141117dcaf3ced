// The audio jitter buffer and repairs: retransmitted packets do not raise the peak at once,
// and lost frames are skipped instead of concealed while playout is behind its target.
#include "onair/qos/jitter_buffer.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <vector>

using namespace onair;
using namespace std::chrono_literals;
using qos::audio_action;
using qos::audio_jitter_buffer;
using qos::audio_jitter_config;

namespace {

using time_point = std::chrono::steady_clock::time_point;
using us = std::chrono::microseconds;
const time_point t0 = std::chrono::steady_clock::time_point{} + std::chrono::seconds{1000};

/// Packet i of a 20 ms stream: sequence seq0 + i, timestamp ts0 + 960 i, payload names i.
struct packet {
    int index = 0;
    us at{0};              ///< arrival, after t0
    bool repaired = false; ///< came by retransmission
};

/// What a pull produced; `index` is the packet decoded (or whose FEC was used), else -1.
struct outcome {
    audio_action action = audio_action::buffering;
    int index = -1;
    std::uint32_t rtp_timestamp = 0;
    us at{0};
};

int index_of(const encoded_frame& f) { return f.data.size() >= 2 ? (f.data[0] << 8) | f.data[1] : -1; }

/// Drives a buffer in simulated time (as in jitter_buffer.cpp): packets arrive at their
/// times, the playout side pulls every 20 ms starting 5 ms after t0.
struct sim {
    audio_jitter_buffer jb;
    std::uint32_t ts0 = 12'345;
    std::uint16_t seq0 = 1'000;
    std::vector<packet> net; ///< sorted by arrival before run()
    std::size_t next = 0;
    us clock{5'000};
    encoded_frame out;
    std::vector<outcome> played;

    explicit sim(audio_jitter_config c = {}) : jb(c) {}

    void send(int index, us at, bool repaired = false) { net.push_back({index, at, repaired}); }
    /// Packet i sent at 20 ms * i and delayed by `delay`.
    void send_at_delay(int index, us delay, bool repaired = false) { send(index, us{20'000} * index + delay, repaired); }

    void deliver(const packet& p) {
        std::array<std::uint8_t, 40> payload{};
        payload[0] = static_cast<std::uint8_t>(p.index >> 8);
        payload[1] = static_cast<std::uint8_t>(p.index);
        jb.insert(payload, static_cast<std::uint32_t>(ts0 + 960u * static_cast<std::uint32_t>(p.index)),
                  static_cast<std::uint16_t>(seq0 + p.index), t0 + p.at, {}, p.repaired);
    }

    /// Pulls until `until` (after t0), delivering packets due before each pull.
    void run(us until) {
        std::stable_sort(net.begin() + static_cast<std::ptrdiff_t>(next), net.end(),
                         [](const packet& a, const packet& b) { return a.at < b.at; });
        while (clock <= until) {
            while (next < net.size() && net[next].at <= clock) deliver(net[next++]);
            const auto r = jb.pull(t0 + clock, out);
            outcome o{r.action, -1, r.rtp_timestamp, clock};
            if (r.action == audio_action::decode || r.action == audio_action::decode_fec) o.index = index_of(out);
            played.push_back(o);
            clock += 20ms;
        }
    }
    /// One pull.
    const outcome& step() {
        run(clock);
        return played.back();
    }
    /// Pulls until frame `index` has been decoded.
    void play_through(int index) {
        while (played.empty() || played.back().action != audio_action::decode || played.back().index < index) {
            REQUIRE(clock < 60'000ms);
            step();
        }
        REQUIRE(played.back().index == index);
    }
};

/// Deterministic uniform jitter in [0, max_ms] ms.
struct lcg {
    std::uint32_t s = 12345;
    us next(int max_ms) {
        s = s * 1664525u + 1013904223u;
        return us{static_cast<std::int64_t>((s >> 8) % static_cast<std::uint32_t>(max_ms * 1000 + 1))};
    }
};

/// Packets [0, n) on a 20 ms path with 0..5 ms of jitter; packet `late` instead arrives
/// 200 ms later than the path's delay, marked `repaired` or not.
void late_stream(sim& s, int n, int late, bool repaired) {
    lcg rnd;
    for (int i = 0; i < n; ++i) {
        const us jitter = rnd.next(5);
        if (i == late) s.send_at_delay(i, 220ms, repaired);
        else s.send_at_delay(i, 20ms + jitter);
    }
}

/// A stream [0, n) on a steady 20 ms path, without the frames in `lost`.
void steady_stream(sim& s, int n, const std::vector<int>& lost) {
    for (int i = 0; i < n; ++i)
        if (std::find(lost.begin(), lost.end(), i) == lost.end()) s.send_at_delay(i, 20ms);
}

} // namespace

TEST_SUITE_BEGIN("qos.jitter_buffer");

TEST_CASE("jitter buffer repair: a repaired late packet does not raise the target at once") {
    // Two buffers get the same stream: 20 ms path, 0..5 ms jitter, packet 100 (sent at
    // 2 000 ms) arriving at 2 220 ms, 200 ms late (a retransmission a round trip after the
    // loss). In `repaired` it is marked as such; in `plain` it is not. Before it both
    // targets are the same small value. Once it is in, plain's target jumps to the packet's
    // delay (the peak) and holds for peak_hold; repaired's stays where it was (one sample in
    // a histogram of hundreds does not move the 95th percentile).
    sim repaired, plain;
    late_stream(repaired, 300, 100, true);
    late_stream(plain, 300, 100, false);

    repaired.run(2'205ms); // the last pull before 2 220 ms
    plain.run(2'205ms);
    const us before = repaired.jb.stats().target_delay;
    REQUIRE(before <= 20ms);
    REQUIRE(plain.jb.stats().target_delay == before);
    CHECK(repaired.jb.target_delay(t0 + 2'219ms) == before);
    CHECK(plain.jb.target_delay(t0 + 2'219ms) == before);

    repaired.run(2'225ms); // packet 100 delivered at 2 220 ms, then one pull
    plain.run(2'225ms);
    CHECK(repaired.jb.stats().late == 1); // both took it as late (its frame had played)
    CHECK(plain.jb.stats().late == 1);
    CHECK(plain.jb.stats().target_delay >= 180ms); // raised at once to ~200 ms
    CHECK(repaired.jb.stats().target_delay == before);
    CHECK(repaired.jb.target_delay(t0 + 2'225ms) == before);

    // Still within peak_hold (2 s) of the late arrival: plain holds its peak, repaired
    // never had one.
    repaired.run(4'000ms);
    plain.run(4'000ms);
    CHECK(plain.jb.stats().target_delay >= 180ms);
    CHECK(repaired.jb.stats().target_delay <= 20ms);
    CHECK(repaired.jb.stats().current_delay <= 50ms); // and playout did not move back for it
}

TEST_CASE("jitter buffer repair: repaired packets still count in the delay histogram") {
    // 20 ms path; from packet 100 on, every 10th packet (105, 115, ...) comes 200 ms late
    // by retransmission: 10 % of the samples, more than the 5 % above the 95th percentile.
    // None of them sets the peak, so the first one (one sample among ~100) leaves the
    // target alone; but their delays go into the histogram, so once they make up more than
    // 5 % of its (forgetting) mass the target follows them up to ~200 ms.
    sim s;
    for (int i = 0; i < 500; ++i) {
        const bool late = i >= 100 && i % 10 == 5;
        s.send_at_delay(i, late ? 220ms : 20ms, late);
    }
    s.run(2'305ms); // packet 105 (sent at 2 100 ms) arrives at 2 320 ms: not yet
    CHECK(s.jb.stats().target_delay <= 20ms);
    s.run(2'325ms); // packet 105 in
    CHECK(s.jb.stats().late == 1);
    CHECK(s.jb.stats().target_delay <= 20ms);
    s.run(9'000ms);
    CHECK(s.jb.stats().target_delay >= 180ms);
}

TEST_CASE("jitter buffer repair: a lost frame is skipped, not concealed, while playout is behind target") {
    // Steady 20 ms path. At 2 s lip sync asks for 100 ms extra delay; by 5 s it has been
    // realised (PLC frames inserted one per stretch_hold), so playout is ~100 ms behind the
    // reference plus the ~10 ms base target. Then, in `behind`, the extra delay goes back to
    // 0 at 5 s: the target drops to ~10 ms while playout is still ~110 ms behind, and frame
    // acceleration would take the excess off one frame per 400 ms. In `at_target` it stays.
    // Frames 260..262 (sent at 5.2 s, due ~5.33 s) never arrive in either.
    // - behind: at 260's turn the three missing frames are left out (5 frames of excess
    //   >= 3): no PLC, accelerated grows by 3, concealed and fec do not, 263 decodes at once.
    // - at_target: playout is not behind, so the missing frames are concealed as before
    //   (playout runs ~5 ms short of the target here, so each hole is first waited for
    //   with PLC, which then stands in for it), and nothing is skipped.
    // Then, on a 60 ms minimum delay with no extra delay, playout runs 5 ms past the
    // target (within a frame of it): a hole whose turn comes is overdue at once but
    // there is no excess to skip, so it is rebuilt from its successor's in-band FEC (one
    // frame) or concealed then rebuilt (two frames).
    const std::vector<int> lost{260, 261, 262};
    sim behind, at_target;
    for (sim* s : {&behind, &at_target}) {
        steady_stream(*s, 600, lost);
        s->run(2'000ms);
        s->jb.set_extra_delay(100ms);
        s->run(5'000ms);
        REQUIRE(s->jb.stats().current_delay >= 90ms); // premise: the extra delay is realised
        REQUIRE(s->jb.stats().concealed == s->jb.stats().expanded); // nothing lost so far
    }
    behind.jb.set_extra_delay(0ms);

    SUBCASE("behind the target: skipped") {
        behind.play_through(259);
        const auto before = behind.jb.stats();
        REQUIRE(before.current_delay - before.target_delay >= 60ms); // premise: 3+ frames behind
        const outcome o = behind.step(); // 260's turn
        const auto after = behind.jb.stats();
        CHECK(o.action == audio_action::decode);
        CHECK(o.index == 263);
        CHECK(after.accelerated == before.accelerated + 3);
        CHECK(after.concealed == before.concealed);
        CHECK(after.expanded == before.expanded);
        CHECK(after.fec == before.fec);
        CHECK(after.current_delay == before.current_delay - 60ms); // the skipped time is gone
        CHECK(behind.step().index == 264);
        CHECK(behind.step().index == 265);
        CHECK(behind.jb.stats().concealed == before.concealed);
    }
    SUBCASE("at the target: concealed as before") {
        at_target.play_through(259);
        const auto before = at_target.jb.stats();
        REQUIRE(before.current_delay < before.target_delay + 20ms); // premise: not behind
        at_target.play_through(263);
        const auto after = at_target.jb.stats();
        CHECK(after.accelerated == before.accelerated);
        // One conceal or decode_fec per lost frame.
        CHECK(after.concealed + after.fec == before.concealed + before.fec + 3);
        CHECK(after.expanded == before.expanded); // none of it added delay
        // Between 259 and 263 nothing was decoded: three pulls stood in for 260..262.
        const auto it = std::find_if(at_target.played.rbegin(), at_target.played.rend(),
                                     [](const outcome& o) { return o.index == 259; });
        REQUIRE(it != at_target.played.rend());
        CHECK(it - at_target.played.rbegin() >= 4);
    }
    SUBCASE("just past the target: rebuilt from FEC, not skipped") {
        audio_jitter_config c;
        c.min_delay = 60ms;
        sim s(c);
        steady_stream(s, 300, {100, 200, 201});
        s.play_through(99);
        const auto before = s.jb.stats();
        REQUIRE(before.current_delay >= before.target_delay); // premise: overdue at its turn...
        REQUIRE(before.current_delay < before.target_delay + 20ms); // ...but not a frame behind
        const outcome o = s.step(); // 100's turn
        CHECK(o.action == audio_action::decode_fec);
        CHECK(o.index == 101);
        CHECK(o.rtp_timestamp == s.ts0 + 960u * 100);
        CHECK(s.step().index == 101);
        s.play_through(199);
        const auto mid = s.jb.stats();
        CHECK(s.step().action == audio_action::conceal); // 200: 201 is lost too
        const outcome o2 = s.step();                    // 201 from 202's FEC
        CHECK(o2.action == audio_action::decode_fec);
        CHECK(o2.index == 202);
        s.play_through(202);
        const auto after = s.jb.stats();
        CHECK(after.accelerated == before.accelerated);
        CHECK(after.fec == before.fec + 2);
        CHECK(after.concealed == mid.concealed + 1);
        CHECK(mid.concealed == before.concealed);
    }
}

TEST_CASE("jitter buffer repair: no more lost frames are skipped than playout is behind") {
    // As above with a 60 ms minimum delay (so a longer hole still has its successor
    // buffered at its turn): 100 ms extra delay realised by 5 s, then dropped, and frames
    // 260..266 never arrive. At 260's turn playout is ~100 ms (5 frames) behind a 60 ms
    // target: that many of the 7 missing frames are left out, the rest are concealed
    // (the last from 267's in-band FEC), then 267 plays; the delay ends at the target,
    // not below it.
    audio_jitter_config c;
    c.min_delay = 60ms;
    sim s(c);
    steady_stream(s, 600, {260, 261, 262, 263, 264, 265, 266});
    s.run(2'000ms);
    s.jb.set_extra_delay(100ms);
    s.run(5'000ms);
    s.jb.set_extra_delay(0ms);
    s.play_through(259);
    const auto before = s.jb.stats();
    const auto behind_frames = (before.current_delay - before.target_delay) / 20ms;
    REQUIRE(behind_frames >= 3); // premise
    REQUIRE(behind_frames < 7);
    s.step(); // 260's turn
    const auto at_turn = s.jb.stats();
    const auto skipped = static_cast<std::int64_t>(at_turn.accelerated - before.accelerated);
    CHECK(skipped == behind_frames);
    s.play_through(267);
    const auto after = s.jb.stats();
    CHECK(after.accelerated == at_turn.accelerated);
    CHECK(static_cast<std::int64_t>((after.concealed - before.concealed) + (after.fec - before.fec)) == 7 - skipped);
    CHECK(after.fec == before.fec + 1);
    CHECK(after.current_delay >= after.target_delay);
    CHECK(after.current_delay < after.target_delay + 20ms);
}

TEST_SUITE_END();
