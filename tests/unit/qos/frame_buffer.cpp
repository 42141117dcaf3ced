#include "onair/qos/frame_buffer.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <set>
#include <vector>

using namespace onair;
using namespace std::chrono_literals;
using qos::frame_buffer;
using qos::frame_buffer_config;

namespace {

using time_point = std::chrono::steady_clock::time_point;
using us = std::chrono::microseconds;
const time_point t0{std::chrono::seconds{1000}};

/// A 25 fps stream (40 ms, 3600 ticks per frame) in simulated time. Frame n has picture id
/// pid0 + n, temporal layer pattern[n % size], and TL0PICIDX counting its base-layer frames
/// from tl0_first. Released frames are collected with their render and release times.
struct video_sim {
    frame_buffer fb;
    std::uint16_t pid0 = 100;
    std::uint8_t tl0_first = 10;
    std::uint32_t ts0 = 5'000;
    std::vector<std::uint8_t> pattern{0};
    bool layered = false; ///< sends TL0PICIDX
    std::set<int> keyframes{0};
    std::set<int> layer_sync;

    struct arrival {
        int n;
        us at;
        bool retransmitted;
    };
    struct release {
        int n;
        us render;
        us at;
        std::uint32_t skipped;
    };
    std::vector<arrival> net;
    std::size_t next = 0;
    std::vector<release> out;
    us clock{0};
    qos::released_frame r;

    explicit video_sim(frame_buffer_config c = {}) : fb(c) {}

    std::uint8_t layer(int n) const { return pattern[static_cast<std::size_t>(n) % pattern.size()]; }
    std::uint8_t tl0(int n) const {
        int base = -1;
        for (int i = 0; i <= n; ++i)
            if (layer(i) == 0) ++base;
        return static_cast<std::uint8_t>(tl0_first + base);
    }
    /// Frame n, captured at 40 ms * n, arrives `delay` later.
    void send(int n, us delay, bool retransmitted = false) { net.push_back({n, us{40'000} * n + delay, retransmitted}); }

    void deliver(const arrival& a) {
        encoded_frame f;
        f.kind = media_kind::video;
        f.keyframe = keyframes.count(a.n) > 0;
        f.temporal_layer = layer(a.n);
        f.rtp_timestamp = ts0 + 3'600u * static_cast<std::uint32_t>(a.n);
        f.data = {static_cast<std::uint8_t>(a.n >> 8), static_cast<std::uint8_t>(a.n)};
        qos::frame_info i;
        i.picture_id = static_cast<std::uint16_t>((pid0 + a.n) & 0x7fff);
        i.has_tl0picidx = layered;
        i.tl0picidx = tl0(a.n);
        i.layer_sync = layer_sync.count(a.n) > 0;
        i.retransmitted = a.retransmitted;
        fb.insert(std::move(f), i, t0 + a.at);
    }

    /// Steps 1 ms at a time until `until`, delivering arrivals and releasing what is due.
    void run(us until) {
        std::stable_sort(net.begin() + static_cast<std::ptrdiff_t>(next), net.end(),
                         [](const arrival& a, const arrival& b) { return a.at < b.at; });
        for (; clock <= until; clock += 1ms) {
            while (next < net.size() && net[next].at <= clock) deliver(net[next++]);
            while (fb.release(t0 + clock, r)) {
                const int n = (r.frame.data[0] << 8) | r.frame.data[1];
                out.push_back({n, std::chrono::duration_cast<us>(r.render_time - t0), clock, r.skipped});
            }
        }
    }

    std::vector<int> released() const {
        std::vector<int> v;
        for (const auto& x : out) v.push_back(x.n);
        return v;
    }
    const release* find(int n) const {
        for (const auto& x : out)
            if (x.n == n) return &x;
        return nullptr;
    }
};

std::vector<int> range(int from, int to, std::set<int> except = {}) {
    std::vector<int> v;
    for (int i = from; i < to; ++i)
        if (!except.count(i)) v.push_back(i);
    return v;
}

struct lcg {
    std::uint32_t s = 777;
    us next(int max_ms) {
        s = s * 1664525u + 1013904223u;
        return us{static_cast<std::int64_t>((s >> 8) % static_cast<std::uint32_t>(max_ms * 1000 + 1))};
    }
};

} // namespace

TEST_SUITE_BEGIN("qos.frame_buffer");

TEST_CASE("a key frame and its deltas leave in order, each at its render time") {
    // 20 ms network delay, no jitter: the target is one 5 ms bucket, render = arrival + 5 ms.
    video_sim s;
    for (int n = 0; n < 50; ++n) s.send(n, 20ms);
    s.run(2'000ms);
    CHECK(s.released() == range(0, 50));
    for (std::size_t i = 0; i < s.out.size(); ++i) {
        const auto& x = s.out[i];
        CHECK(x.at == x.render); // released exactly when due (1 ms steps, whole-ms times)
        CHECK(x.render >= us{40'000} * x.n + 20ms);
        CHECK(x.render <= us{40'000} * x.n + 25ms);
        if (i > 0) CHECK(x.render - s.out[i - 1].render == 40ms);
    }
    CHECK(s.fb.stats().target_delay == 5ms);
    CHECK_FALSE(s.fb.keyframe_needed());
}

TEST_CASE("out-of-order insertion is released in picture order") {
    // Frames arrive as 0 2 1 4 3 6 5 ... (odd ones 30 ms late); a 40 ms minimum delay covers it.
    frame_buffer_config c;
    c.min_delay = 40ms;
    video_sim s(c);
    for (int n = 0; n < 40; ++n) s.send(n, n % 2 ? 50ms : 10ms);
    s.run(2'000ms);
    CHECK(s.released() == range(0, 40));
    CHECK(s.fb.stats().skipped == 0);
}

TEST_CASE("two temporal layers: losing a TL1 frame does not stall") {
    // Pattern TL0 TL1 TL0 TL1...; frame 5 (TL1) is lost. Frame 6 (TL0) needs only frame 4.
    video_sim s;
    s.layered = true;
    s.pattern = {0, 1};
    for (int n = 0; n < 30; ++n)
        if (n != 5) s.send(n, 20ms);
    s.run(1'500ms);
    CHECK(s.released() == range(0, 30, {5}));
    const auto* six = s.find(6);
    REQUIRE(six);
    CHECK(six->render <= us{40'000} * 6 + 25ms); // on time: nothing waited for frame 5
    CHECK(s.fb.stats().keyframe_requests == 0);
}

TEST_CASE("three temporal layers (0 2 1 2): a lost TL2 or TL1 frame costs only frames above it") {
    // Group k is frames 4k..4k+3 with layers 0 2 1 2.
    // Lost frame 1 (TL2): frame 2 (TL1) needs only TL0 -> decoded. Frame 3 (TL2) follows an
    // unseen frame of unknown layer (taken as TL1) -> skipped. Frame 4 (TL0) on time.
    // Lost frame 10 (TL1): frame 11 (TL2) needs it -> skipped; frame 12 (TL0) on time.
    video_sim s;
    s.layered = true;
    s.pattern = {0, 2, 1, 2};
    for (int n = 0; n < 24; ++n)
        if (n != 1 && n != 10) s.send(n, 20ms);
    s.run(1'200ms);
    CHECK(s.released() == range(0, 24, {1, 3, 10, 11}));
    CHECK(s.fb.stats().skipped == 2); // 3 and 11 were held, then dropped
    CHECK(s.find(4)->render <= us{40'000} * 4 + 25ms);
    CHECK(s.find(12)->render <= us{40'000} * 12 + 25ms);
    CHECK(s.fb.stats().keyframe_requests == 0);
}

TEST_CASE("a layer-sync frame needs only its base layer") {
    // As above with frame 1 (TL2) lost, but frame 3 carries the layer-sync bit.
    video_sim s;
    s.layered = true;
    s.pattern = {0, 2, 1, 2};
    s.layer_sync = {3};
    for (int n = 0; n < 8; ++n)
        if (n != 1) s.send(n, 20ms);
    s.run(600ms);
    CHECK(s.released() == range(0, 8, {1}));
}

TEST_CASE("losing a TL0 frame stalls until its retransmission arrives") {
    // Pattern 0 1: frame 4 (TL0) is lost and comes back by NACK 150 ms later (before the key
    // frame timeout). Frames 5.. wait for it, then everything leaves in order, nothing skipped.
    video_sim s;
    s.layered = true;
    s.pattern = {0, 1};
    for (int n = 0; n < 30; ++n)
        if (n != 4) s.send(n, 20ms);
    s.send(4, 170ms, true);
    s.run(300ms);
    CHECK(s.released() == range(0, 4)); // stalled behind frame 4
    s.run(1'500ms);
    CHECK(s.released() == range(0, 30));
    CHECK(s.find(4)->at == 4 * 40ms + 170ms); // released as soon as it arrived (overdue)
    CHECK(s.find(5)->at == 4 * 40ms + 170ms); // and those waiting behind it with it
    CHECK(s.fb.stats().skipped == 0);
    CHECK(s.fb.stats().keyframe_requests == 0);
    // Render times stay monotonic through the catch-up.
    for (std::size_t i = 1; i < s.out.size(); ++i) CHECK(s.out[i].render >= s.out[i - 1].render);
}

TEST_CASE("single layer: a lost frame stalls; a key frame request after the timeout; the key frame resumes") {
    frame_buffer_config c;
    c.keyframe_timeout = 300ms;
    video_sim s(c);
    s.keyframes = {0, 20};
    for (int n = 0; n < 40; ++n)
        if (n != 10) s.send(n, 20ms);
    // Frame 11 is due at 11 * 40 + 25 = 465 ms: from then on the buffer is stalled.
    s.run(465ms + 299ms);
    CHECK(s.released() == range(0, 10));
    CHECK_FALSE(s.fb.keyframe_needed());
    s.run(465ms + 300ms);
    CHECK(s.fb.keyframe_needed());
    CHECK(s.fb.stats().keyframe_requests == 1);
    s.run(20 * 40ms + 20ms); // the key frame (20) arrives at 820 ms
    CHECK_FALSE(s.fb.keyframe_needed());
    s.run(1'800ms);
    CHECK(s.released() == range(0, 40, {10, 11, 12, 13, 14, 15, 16, 17, 18, 19}));
    CHECK(s.find(20)->skipped == 9); // 11..19 dropped
    CHECK(s.fb.stats().keyframe_requests == 1);
}

TEST_CASE("joining mid-stream (no key frame yet) asks for one") {
    video_sim s;
    s.keyframes = {12};
    for (int n = 0; n < 30; ++n) s.send(n, 20ms);
    s.run(25ms + 299ms);
    CHECK_FALSE(s.fb.keyframe_needed());
    s.run(25ms + 300ms);
    CHECK(s.fb.keyframe_needed());
    s.run(1'300ms);
    CHECK(s.released() == range(12, 30));
}

TEST_CASE("picture id and TL0PICIDX wrap") {
    // Picture ids 32 760 .. 32 767, 0 .. ; TL0PICIDX 250 .. 255, 0 ..
    video_sim s;
    s.pid0 = 32'760;
    s.tl0_first = 250;
    s.layered = true;
    s.pattern = {0, 1};
    for (int n = 0; n < 40; ++n)
        if (n != 9 && n != 17) s.send(n, n == 12 ? 60ms : 20ms); // two TL1 losses, one reorder
    s.run(2'000ms);
    CHECK(s.released() == range(0, 40, {9, 17}));
    CHECK(s.fb.stats().keyframe_requests == 0);
}

TEST_CASE("late and duplicate frames") {
    video_sim s;
    for (int n = 0; n < 10; ++n) s.send(n, 20ms);
    s.send(3, 25ms); // a duplicate while frame 3 is still held
    s.run(500ms);
    CHECK(s.fb.stats().duplicates == 1);
    s.net.push_back({4, 501ms, false}); // frame 4 again, long after it left
    s.run(520ms);
    CHECK(s.fb.stats().late == 1);
    CHECK(s.released() == range(0, 10));
}

TEST_CASE("render times are monotonic; the delay follows jitter up at once and down smoothly") {
    // 4 s calm, 10 s of 0..100 ms uniform jitter (frames reorder), 30 s calm.
    video_sim s;
    lcg rnd;
    for (int n = 0; n < 100; ++n) s.send(n, 20ms);
    for (int n = 100; n < 350; ++n) s.send(n, 20ms + rnd.next(100));
    for (int n = 350; n < 1'100; ++n) s.send(n, 20ms);
    s.run(4'000ms);
    CHECK(s.fb.stats().target_delay <= 10ms);
    s.run(14'000ms);
    const auto jittery = s.fb.stats();
    CHECK(jittery.target_delay >= 80ms);
    CHECK(jittery.current_delay >= 80ms);
    s.run(44'000ms);
    const auto end = s.fb.stats();
    CHECK(end.target_delay <= 10ms);
    CHECK(end.current_delay <= 10ms);
    CHECK(s.released().size() == 1'100);
    CHECK(end.skipped == 0);
    // Render times strictly increase, and never by much less than 40 ms: the delay falls at
    // most 10 % of the time elapsed between arrivals (4-5 ms per frame).
    us min_step = 1h, max_step{0};
    for (std::size_t i = 1; i < s.out.size(); ++i) {
        const us step = s.out[i].render - s.out[i - 1].render;
        min_step = std::min(min_step, step);
        max_step = std::max(max_step, step);
    }
    CHECK(min_step >= 34ms);
    CHECK(max_step > 40ms); // it did rise
}

TEST_CASE("extra delay (lip sync) postpones render times") {
    video_sim s;
    for (int n = 0; n < 60; ++n) s.send(n, 20ms);
    s.run(1'000ms);
    s.fb.set_extra_delay(100ms);
    s.run(2'400ms);
    CHECK(s.fb.stats().target_delay == 105ms);
    const auto* late = s.find(50);
    REQUIRE(late);
    CHECK(late->render == us{40'000} * 50 + 20ms + 105ms);
}

TEST_CASE("capacity bounds a long stall; a far older key frame restarts the stream") {
    frame_buffer_config c;
    c.capacity = 16;
    video_sim s(c);
    for (int n = 0; n < 100; ++n)
        if (n != 5) s.send(n, 20ms);
    s.run(4'000ms);
    CHECK(s.fb.size() <= 16);
    CHECK(s.fb.stats().overflow > 0);
    CHECK(s.fb.keyframe_needed());
    // The sender restarts with new picture ids that look 1000 pictures old.
    video_sim& t = s;
    t.pid0 = static_cast<std::uint16_t>(100 - 1'000 - 100 + 0x8000);
    t.ts0 += 90'000 * 10;
    t.keyframes = {100};
    for (int n = 100; n < 110; ++n) t.send(n, 20ms);
    t.run(4'500ms);
    CHECK(t.fb.stats().restarts == 1);
    CHECK(t.find(109) != nullptr);
}

TEST_CASE("an RTP timestamp jump beyond restart_span restarts the buffer, even with a lower picture id") {
    // Frames 0..9 (picture ids 100..109) arrive 20 ms after capture and are released. Then
    // the sender restarts: frame 10 (a key frame, arriving at 420 ms as scheduled) has an RTP
    // timestamp 20 s (1 800 000 ticks) away from frame 9's and picture id 50, lower than the
    // 109 already released and within max_reorder (100) of it. The timestamp check comes
    // first: the buffer restarts, so frame 10 is not late, and its render time is taken
    // afresh from its own arrival (420 ms + the 5 ms target), not 20 s off.
    video_sim s;
    s.keyframes = {0, 10};
    for (int n = 0; n < 20; ++n) s.send(n, 20ms);
    s.run(399ms); // frame 9 arrived at 380 ms, released at 385 ms
    REQUIRE(s.released() == range(0, 10));
    s.pid0 = 40; // frame 10 -> picture id 50
    SUBCASE("forward") { s.ts0 += 90'000u * 20; }
    SUBCASE("backward") { s.ts0 -= 90'000u * 20; }
    s.run(1'000ms);
    CHECK(s.fb.stats().restarts == 1);
    CHECK(s.fb.stats().late == 0);
    CHECK(s.released() == range(0, 20));
    const auto* ten = s.find(10);
    REQUIRE(ten);
    CHECK(ten->render >= 10 * 40ms + 20ms); // not before it arrived
    CHECK(ten->render <= 10 * 40ms + 25ms); // and at arrival + target, as before the jump
    CHECK(ten->at == ten->render);
    for (int n = 11; n < 20; ++n) {
        const auto* f = s.find(n);
        REQUIRE(f);
        CHECK(f->render - s.find(n - 1)->render == 40ms);
    }
}

TEST_CASE("an RTP timestamp jump within restart_span (a paused sender) does not restart") {
    // Frames 0..9, then the sender pauses 9 s: the next frame is frame 235 (timestamp
    // 226 x 3600 = 813 600 ticks after frame 9's, under the 900 000 of the 10 s span),
    // arriving 9 s later too, with the next picture id (110). No restart: it is decoded
    // on top of frame 9, at its arrival + the 5 ms target.
    video_sim s;
    for (int n = 0; n < 10; ++n) s.send(n, 20ms);
    s.run(399ms);
    REQUIRE(s.released() == range(0, 10));
    s.pid0 = static_cast<std::uint16_t>(110 - 235 + 0x8000); // frame 235 -> picture id 110
    for (int n = 235; n < 245; ++n) s.send(n, 20ms);
    s.run(235 * 40ms + 500ms);
    CHECK(s.fb.stats().restarts == 0);
    CHECK(s.fb.stats().late == 0);
    std::vector<int> want = range(0, 10);
    for (int n = 235; n < 245; ++n) want.push_back(n);
    CHECK(s.released() == want);
    const auto* first = s.find(235);
    REQUIRE(first);
    CHECK(first->skipped == 0);
    CHECK(first->render >= 235 * 40ms + 20ms);
    CHECK(first->render <= 235 * 40ms + 25ms);

    // The same jump with a 5 s restart_span is a restart (and the chain starts again from
    // a key frame).
    frame_buffer_config c;
    c.restart_span = 5s;
    video_sim t(c);
    t.keyframes = {0, 235};
    for (int n = 0; n < 10; ++n) t.send(n, 20ms);
    t.run(399ms);
    t.pid0 = s.pid0;
    for (int n = 235; n < 245; ++n) t.send(n, 20ms);
    t.run(235 * 40ms + 500ms);
    CHECK(t.fb.stats().restarts == 1);
    CHECK(t.released() == want);
}

TEST_SUITE_END();
