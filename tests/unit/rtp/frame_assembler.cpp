#include "onair/rtp/frame_assembler.hpp"

#include "onair/core/time.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <random>
#include <vector>

using namespace onair;
using namespace onair::rtp;

namespace {

/// One packet as a test describes it: the assembler only needs seq, timestamp, flags, data.
struct pkt {
    std::uint16_t seq;
    std::uint32_t ts;
    bool start;
    bool end;
    std::vector<std::uint8_t> data;
    std::optional<std::uint64_t> capture_ntp{};
    bool keyframe = false;
    std::optional<std::uint8_t> tid{};
    int width = 0;
    int height = 0;
    frame_dependency dep{};
};

class harness {
public:
    explicit harness(assembler_limits l = {}) : a(l) {}

    void push(const pkt& p) {
        header h;
        h.sequence = p.seq;
        h.timestamp = p.ts;
        h.marker = p.end;
        h.abs_capture_time = p.capture_ntp;
        wire.assign(header_size(h) + p.data.size(), 0);
        REQUIRE(serialize(h, p.data, wire) == wire.size());
        packet_view pv;
        REQUIRE_FALSE(parse(wire, pv));
        fragment_info fi;
        fi.data = pv.payload;
        fi.start = p.start;
        fi.end = p.end;
        fi.keyframe = p.keyframe;
        fi.temporal_layer = p.tid;
        fi.width = p.width;
        fi.height = p.height;
        fi.dependency = p.dep;
        a.push(pv, media_kind::video, fi, [this](encoded_frame&& f) { frames.push_back(std::move(f)); });
    }
    void push_all(const std::vector<pkt>& ps) {
        for (const auto& p : ps) push(p);
    }

    frame_assembler a;
    std::vector<encoded_frame> frames;
    std::vector<std::uint8_t> wire;
};

/// A frame of `n` packets starting at `seq`, each carrying `per` bytes (value = index).
std::vector<pkt> frame(std::uint16_t seq, std::uint32_t ts, std::size_t n, std::size_t per = 10) {
    std::vector<pkt> v;
    std::uint8_t value = 0;
    for (std::size_t i = 0; i < n; ++i) {
        pkt p{static_cast<std::uint16_t>(seq + i), ts, i == 0, i + 1 == n, {}, {}};
        for (std::size_t k = 0; k < per; ++k) p.data.push_back(value++);
        v.push_back(std::move(p));
    }
    return v;
}

std::vector<std::uint8_t> concat(const std::vector<pkt>& ps) {
    std::vector<std::uint8_t> out;
    for (const auto& p : ps) out.insert(out.end(), p.data.begin(), p.data.end());
    return out;
}

} // namespace

TEST_SUITE_BEGIN("rtp.frame_assembler");

TEST_CASE("in-order packets make one frame with the data concatenated") {
    harness h;
    const auto f = frame(100, 9000, 3);
    h.push(f[0]);
    h.push(f[1]);
    CHECK(h.frames.empty());
    CHECK(h.a.buffered_packets() == 2);
    h.push(f[2]);
    REQUIRE(h.frames.size() == 1);
    CHECK(h.frames[0].data == concat(f));
    CHECK(h.frames[0].rtp_timestamp == 9000);
    CHECK(h.frames[0].kind == media_kind::video);
    CHECK(h.a.buffered_packets() == 0);
    CHECK(h.a.buffered_bytes() == 0);
    CHECK(h.a.stats().frames == 1);
    CHECK(h.a.stats().packets == 3);
    CHECK(h.a.dropped() == 0);
}

TEST_CASE("a single packet flagged start and end is a frame") {
    harness h;
    h.push(pkt{7, 1, true, true, {1, 2, 3}, {}});
    REQUIRE(h.frames.size() == 1);
    CHECK(h.frames[0].data == std::vector<std::uint8_t>{1, 2, 3});
}

TEST_CASE("any order, across the sequence wrap") {
    for (std::uint32_t seed = 1; seed <= 20; ++seed) {
        harness h;
        auto f = frame(65530, 3000, 12); // 65530..65535, 0..5
        auto shuffled = f;
        std::mt19937 rng(seed);
        std::shuffle(shuffled.begin(), shuffled.end(), rng);
        h.push_all(shuffled);
        REQUIRE(h.frames.size() == 1);
        CHECK(h.frames[0].data == concat(f));
        CHECK(h.a.dropped() == 0);
    }
}

TEST_CASE("a lost packet: that frame is never emitted, the next one is, the loss is counted") {
    harness h;
    auto a = frame(10, 1000, 4);
    auto b = frame(14, 2000, 3);
    h.push(a[0]);
    h.push(a[1]);
    h.push(a[3]); // a[2] lost
    CHECK(h.frames.empty());
    h.push_all(b);
    REQUIRE(h.frames.size() == 1);
    CHECK(h.frames[0].rtp_timestamp == 2000);
    CHECK(h.a.stats().incomplete == 1);
    CHECK(h.a.dropped() == 1);
    CHECK(h.a.buffered_packets() == 0); // a's packets were let go
    // The lost packet turns up after all: too late, dropped and counted.
    h.push(a[2]);
    CHECK(h.frames.size() == 1);
    CHECK(h.a.stats().late == 1);
    CHECK(h.a.dropped() == 2);
}

TEST_CASE("a newer frame completing first gives up the older incomplete one") {
    harness h;
    auto a = frame(0, 100, 3);
    auto b = frame(3, 200, 2);
    h.push(a[0]);
    h.push(a[2]);
    h.push_all(b); // b completes while a waits for a[1]
    REQUIRE(h.frames.size() == 1);
    CHECK(h.frames[0].rtp_timestamp == 200);
    h.push(a[1]);
    CHECK(h.frames.size() == 1);
    CHECK(h.a.stats().incomplete == 1);
    CHECK(h.a.stats().late == 1);
}

TEST_CASE("interleaved frames completing in order all come out, in order") {
    harness h;
    auto a = frame(0, 100, 3);
    auto b = frame(3, 200, 3);
    auto c = frame(6, 300, 3);
    // b and c packets arrive before a finishes; a completes first.
    h.push(a[0]);
    h.push(b[1]);
    h.push(a[1]);
    h.push(c[2]);
    h.push(b[0]);
    h.push(a[2]); // a done
    h.push(c[0]);
    h.push(b[2]); // b done
    h.push(c[1]); // c done
    REQUIRE(h.frames.size() == 3);
    CHECK(h.frames[0].rtp_timestamp == 100);
    CHECK(h.frames[1].rtp_timestamp == 200);
    CHECK(h.frames[2].rtp_timestamp == 300);
    CHECK(h.a.dropped() == 0);
}

TEST_CASE("duplicates are ignored, before and after the frame completes") {
    harness h;
    auto a = frame(500, 100, 3);
    h.push(a[0]);
    h.push(a[0]);
    h.push(a[1]);
    h.push(a[1]);
    CHECK(h.a.stats().duplicates == 2);
    CHECK(h.a.buffered_packets() == 2);
    h.push(a[2]);
    REQUIRE(h.frames.size() == 1);
    CHECK(h.frames[0].data == concat(a));
    h.push_all(a); // retransmissions of an emitted frame
    CHECK(h.frames.size() == 1);
    CHECK(h.a.stats().late == 3);
    CHECK(h.a.dropped() == 3);
}

TEST_CASE("packets from before the last emitted frame are dropped, even across the wrap") {
    harness h;
    h.push_all(frame(65534, 100, 4)); // 65534, 65535, 0, 1
    REQUIRE(h.frames.size() == 1);
    h.push(pkt{65000, 50, true, true, {1}, {}}); // far older
    h.push(pkt{65535, 100, true, true, {1}, {}}); // a copy from inside the frame
    CHECK(h.frames.size() == 1);
    CHECK(h.a.stats().late == 2);
    h.push(pkt{2, 200, true, true, {9}, {}});
    CHECK(h.frames.size() == 2);
}

TEST_CASE("frame metadata comes from the start packet, capture time from abs-capture-time") {
    const timestamp t{std::chrono::microseconds{1'700'000'000'250'000}};
    harness h;
    auto f = frame(40, 777, 3);
    f[0].keyframe = true;
    f[0].tid = 2;
    f[0].width = 1280;
    f[0].height = 720;
    f[0].capture_ntp = to_ntp(t);
    f[2].capture_ntp = to_ntp(t + std::chrono::seconds{5}); // not the first packet's: ignored
    SUBCASE("start packet in the middle") {
        h.push(f[1]);
        h.push(f[0]);
        h.push(f[2]);
    }
    SUBCASE("start packet last") {
        h.push(f[2]);
        h.push(f[1]);
        h.push(f[0]);
    }
    REQUIRE(h.frames.size() == 1);
    const auto& out = h.frames[0];
    CHECK(out.keyframe);
    CHECK(out.temporal_layer == 2);
    CHECK(out.width == 1280);
    CHECK(out.height == 720);
    CHECK(out.capture_time == t);
}

TEST_CASE("no extension and no metadata: capture time unset, defaults elsewhere") {
    harness g;
    g.push_all(frame(1, 1, 2));
    REQUIRE(g.frames.size() == 1);
    CHECK(g.frames[0].capture_time == timestamp{});
    CHECK_FALSE(g.frames[0].keyframe);
    CHECK(g.frames[0].temporal_layer == 0);
    CHECK(g.frames[0].width == 0);
}

TEST_CASE("a frame over max_frame_bytes is dropped whole, the next frame still comes") {
    assembler_limits l;
    l.max_frame_bytes = 100;
    harness h(l);
    auto big = frame(0, 100, 20, 10); // 200 bytes
    h.push_all(big);
    CHECK(h.frames.empty());
    CHECK(h.a.stats().oversized == 1);
    CHECK(h.a.stats().late == 9); // the packets after the 10th go to the dropped frame
    CHECK(h.a.buffered_packets() == 0);
    h.push_all(frame(20, 200, 5, 10)); // 50 bytes
    REQUIRE(h.frames.size() == 1);
    CHECK(h.frames[0].rtp_timestamp == 200);
}

TEST_CASE("a frame that never ends stops at max_packets") {
    assembler_limits l;
    l.max_packets = 64;
    harness h(l);
    for (std::uint16_t s = 0; s < 1000; ++s) {
        h.push(pkt{s, 100, s == 0, false, {1, 2, 3}, {}});
        REQUIRE(h.a.buffered_packets() <= 64);
    }
    CHECK(h.a.stats().oversized == 1);
    CHECK(h.frames.empty());
}

TEST_CASE("incomplete frames are bounded by max_frames; the oldest goes first") {
    assembler_limits l;
    l.max_frames = 4;
    harness h(l);
    // 10 frames, each missing its last packet.
    for (std::uint32_t i = 0; i < 10; ++i) {
        auto f = frame(static_cast<std::uint16_t>(i * 3), 1000 * i, 3);
        h.push(f[0]);
        h.push(f[1]);
    }
    CHECK(h.a.stats().evicted == 6);
    CHECK(h.a.buffered_packets() == 8);
    // The newest frame can still complete; the oldest survivors are given up.
    h.push(frame(27, 9000, 3)[2]);
    REQUIRE(h.frames.size() == 1);
    CHECK(h.frames[0].rtp_timestamp == 9000);
    CHECK(h.a.stats().incomplete == 3);
}

TEST_CASE("buffered bytes stay within max_buffered_bytes") {
    assembler_limits l;
    l.max_buffered_bytes = 1000;
    l.max_frame_bytes = 600;
    harness h(l);
    for (std::uint32_t i = 0; i < 50; ++i) {
        auto f = frame(static_cast<std::uint16_t>(i * 10), 100 * i, 10, 50); // 500 bytes each, never ends
        for (std::size_t k = 0; k + 1 < f.size(); ++k) {
            h.push(f[k]);
            REQUIRE(h.a.buffered_bytes() <= 1000);
        }
    }
    CHECK(h.a.stats().evicted > 0);
}

TEST_CASE("random streams never exceed the bounds") {
    assembler_limits l;
    l.max_packets = 256;
    l.max_frames = 8;
    l.max_buffered_bytes = 64 * 1024;
    l.max_frame_bytes = 32 * 1024;
    harness h(l);
    std::mt19937 rng(1234);
    for (int i = 0; i < 50'000; ++i) {
        pkt p{static_cast<std::uint16_t>(rng()), static_cast<std::uint32_t>(rng() % 64), rng() % 4 == 0, rng() % 4 == 0,
              std::vector<std::uint8_t>(rng() % 1200, 0xab), {}};
        h.push(p);
        REQUIRE(h.a.buffered_packets() <= 256);
        REQUIRE(h.a.buffered_bytes() <= 64 * 1024);
    }
    const auto& s = h.a.stats();
    CHECK(s.packets + s.late + s.duplicates + s.oversized + s.evicted >= 1); // it did something
}

TEST_CASE("one stray packet far ahead does not silence the stream") {
    harness h;
    h.push_all(frame(100, 1000, 3));
    h.push(pkt{20'000, 5, true, true, {1}, {}}); // emitted: it looked like a frame
    REQUIRE(h.frames.size() == 2);
    // The real stream goes on at 103: far behind the stray packet. The first
    // resync_packets - 1 are dropped, then the assembler follows the stream again.
    for (std::uint16_t s = 103; s < 113; ++s) h.push(pkt{s, 1000u + s, true, true, {2}, {}});
    CHECK(h.a.stats().resyncs == 1);
    CHECK(h.a.stats().late == 3);
    REQUIRE(h.frames.size() == 2 + 7);
    CHECK(h.frames.back().rtp_timestamp == 1112);
}

TEST_CASE("a sender that restarts its numbering further back is followed after a few packets") {
    harness h;
    auto a = frame(50'000, 1, 3);
    h.push_all(a);
    auto b = frame(50'003, 2, 3);
    h.push(b[0]); // incomplete when the restart comes
    for (std::uint16_t s = 40'000; s < 40'010; ++s) h.push(pkt{s, 3u + s, true, true, {3}, {}});
    CHECK(h.a.stats().resyncs == 1);
    CHECK(h.a.stats().incomplete == 1); // b
    CHECK(h.frames.size() == 1 + 7);
}

TEST_CASE("late packets within max_dropout never resync, however many") {
    harness h;
    h.push_all(frame(1000, 1, 200));
    REQUIRE(h.frames.size() == 1);
    for (std::uint16_t s = 1000; s < 1200; ++s) h.push(pkt{s, 1, s == 1000, s == 1199, {1}, {}});
    CHECK(h.a.stats().resyncs == 0);
    CHECK(h.a.stats().late == 200);
    CHECK(h.frames.size() == 1);
    // Far behind but not in sequence: no resync either.
    for (std::uint16_t s = 60'000; s < 60'040; s = static_cast<std::uint16_t>(s + 2))
        h.push(pkt{s, 9, true, true, {1}, {}}); // 60000 unwraps to -5536: 6735 behind 1199
    CHECK(h.a.stats().late == 220);
    CHECK(h.a.stats().resyncs == 0);
}

TEST_CASE("reset forgets sequence history") {
    harness h;
    h.push_all(frame(1000, 100, 2));
    REQUIRE(h.frames.size() == 1);
    h.push(pkt{5, 200, true, true, {1}, {}});
    CHECK(h.frames.size() == 1); // older than the last emitted frame
    h.a.reset();
    h.push(pkt{5, 200, true, true, {1}, {}});
    CHECK(h.frames.size() == 2);
}

TEST_CASE("emit may push more packets: state is consistent when it runs") {
    frame_assembler a;
    std::vector<std::uint8_t> w1, w2;
    auto make = [](std::vector<std::uint8_t>& w, std::uint16_t seq, std::uint32_t ts) {
        header hd;
        hd.sequence = seq;
        hd.timestamp = ts;
        w.assign(13, 0);
        serialize(hd, std::vector<std::uint8_t>{0x42}, w);
        packet_view pv;
        REQUIRE_FALSE(parse(w, pv));
        return pv;
    };
    const packet_view p1 = make(w1, 1, 10);
    const packet_view p2 = make(w2, 2, 20);
    fragment_info fi;
    fi.start = fi.end = true;
    fi.data = p1.payload;
    int frames = 0;
    a.push(p1, media_kind::video, fi, [&](encoded_frame&&) {
        ++frames;
        fragment_info inner = fi;
        inner.data = p2.payload;
        a.push(p2, media_kind::video, inner, [&](encoded_frame&&) { ++frames; });
    });
    CHECK(frames == 2);
    CHECK(a.buffered_packets() == 0);
}

// keep_incomplete: a receiver that repairs loss (NACK/RTX) lets older incomplete frames wait
// for their retransmissions while newer frames complete; the frame buffer reorders them.

namespace {

assembler_limits keeping() {
    assembler_limits l;
    l.keep_incomplete = true;
    return l;
}

} // namespace

TEST_CASE("default mode: a newer frame completing gives the older incomplete one up for good") {
    // A = ts 1000, seq 10 11 12; B = ts 2000, seq 13 14. Seq 11 is held up in the network.
    // Arrival: 10 12 | 13 14 (B complete) | 11 (A's hole, too late).
    harness h;
    const auto a = frame(10, 1000, 3);
    const auto b = frame(13, 2000, 2);
    h.push(a[0]);
    h.push(a[2]);
    h.push_all(b);
    REQUIRE(h.frames.size() == 1);
    CHECK(h.frames[0].rtp_timestamp == 2000);
    CHECK(h.a.stats().incomplete == 1); // A given up when B completed
    CHECK(h.a.buffered_packets() == 0);
    h.push(a[1]);
    CHECK(h.frames.size() == 1); // A never comes out
    CHECK(h.a.stats().late == 1);
    CHECK(h.a.stats().incomplete == 1);
}

TEST_CASE("keep_incomplete: an older frame waits for its retransmission and leaves after a newer one") {
    // The same arrival as above: 10 12 | 13 14 (B complete) | 11 (A's hole, retransmitted).
    // B comes out first; A stays buffered (2 packets), then 11 completes it: A comes out
    // second, whole, and nothing is counted incomplete or late.
    harness h(keeping());
    const auto a = frame(10, 1000, 3);
    const auto b = frame(13, 2000, 2);
    h.push(a[0]);
    h.push(a[2]);
    h.push_all(b);
    REQUIRE(h.frames.size() == 1);
    CHECK(h.frames[0].rtp_timestamp == 2000);
    CHECK(h.frames[0].data == concat(b));
    CHECK(h.a.buffered_packets() == 2); // A's 10 and 12 still wait
    CHECK(h.a.stats().incomplete == 0);
    h.push(a[1]);
    REQUIRE(h.frames.size() == 2);
    CHECK(h.frames[1].rtp_timestamp == 1000); // out of order: A after B
    CHECK(h.frames[1].data == concat(a));
    CHECK(h.a.buffered_packets() == 0);
    CHECK(h.a.stats().frames == 2);
    CHECK(h.a.stats().incomplete == 0);
    CHECK(h.a.stats().late == 0);
    CHECK(h.a.dropped() == 0);
    // A newer frame still goes on normally afterwards.
    h.push_all(frame(15, 3000, 2));
    REQUIRE(h.frames.size() == 3);
    CHECK(h.frames[2].rtp_timestamp == 3000);
}

TEST_CASE("keep_incomplete: a complete key frame gives up everything older; later packets before it are late") {
    // A = ts 1000, seq 10 11 12, 11 missing. K = ts 2000, seq 13 14, a key frame (flag on 13).
    // C = ts 3000, seq 15 16: 16 arrives before K completes, 15 after.
    // Arrival: 10 12 16 | 13 14 (K complete: A given up, C newer than K keeps waiting)
    //        | 11 (A's hole: before the key frame, late) | 9 (an unseen frame before A: late)
    //        | 15 (completes C).
    harness h(keeping());
    const auto a = frame(10, 1000, 3);
    auto k = frame(13, 2000, 2);
    k[0].keyframe = true;
    const auto c = frame(15, 3000, 2);
    h.push(a[0]);
    h.push(a[2]);
    h.push(c[1]);
    h.push_all(k);
    REQUIRE(h.frames.size() == 1);
    CHECK(h.frames[0].rtp_timestamp == 2000);
    CHECK(h.frames[0].keyframe);
    CHECK(h.a.stats().incomplete == 1); // A
    CHECK(h.a.buffered_packets() == 1); // only C's 16
    h.push(a[1]);
    CHECK(h.a.stats().late == 1);
    h.push(pkt{9, 500, true, true, {7}, {}}); // a whole frame, but older than the key frame
    CHECK(h.a.stats().late == 2);
    CHECK(h.frames.size() == 1);
    h.push(c[0]);
    REQUIRE(h.frames.size() == 2);
    CHECK(h.frames[1].rtp_timestamp == 3000);
    CHECK(h.frames[1].data == concat(c));
    CHECK(h.a.stats().incomplete == 1);
}

TEST_CASE("keep_incomplete: packets of a frame already emitted are late, never a second frame") {
    // A = ts 1000, seq 10 11 12; B = ts 2000, seq 13 14. A completes late (after B), then
    // retransmissions of both arrive again (the sender answered a NACK twice). Each copy is
    // late; without the record of emitted frames, A's three copies would make A again.
    harness h(keeping());
    const auto a = frame(10, 1000, 3);
    const auto b = frame(13, 2000, 2);
    h.push(a[0]);
    h.push(a[2]);
    h.push_all(b);
    h.push(a[1]);
    REQUIRE(h.frames.size() == 2); // B, then A
    h.push_all(a); // 10 11 12 again: a complete frame's worth
    h.push(b[0]);  // 13 again
    h.push(pkt{11, 1000, false, false, {1}, {}});
    CHECK(h.frames.size() == 2);
    CHECK(h.a.stats().late == 5);
    CHECK(h.a.stats().duplicates == 0); // not held by an incomplete frame: late, not duplicate
    CHECK(h.a.stats().frames == 2);
    CHECK(h.a.buffered_packets() == 0);
    // A single-packet frame, emitted in order, then repeated.
    h.push(pkt{15, 3000, true, true, {5}, {}});
    REQUIRE(h.frames.size() == 3);
    h.push(pkt{15, 3000, true, true, {5}, {}});
    CHECK(h.frames.size() == 3);
    CHECK(h.a.stats().late == 6);
}

TEST_CASE("the frame dependency of the start packet comes out with the frame") {
    // Frame ts 777, seq 40 41 42: the start packet (40) carries picture id 0x1234,
    // TL0PICIDX 200 and the layer-sync bit; a later packet (41) carries something else,
    // which is ignored (only the start packet's descriptor counts), in either arrival order.
    frame_dependency dep;
    dep.has_picture_id = true;
    dep.picture_id = 0x1234;
    dep.has_tl0picidx = true;
    dep.tl0picidx = 200;
    dep.layer_sync = true;
    frame_dependency other;
    other.has_picture_id = true;
    other.picture_id = 7;
    auto f = frame(40, 777, 3);
    f[0].dep = dep;
    f[1].dep = other;
    harness h(keeping());
    SUBCASE("start packet first") { h.push_all(f); }
    SUBCASE("start packet last") {
        h.push(f[2]);
        h.push(f[1]);
        h.push(f[0]);
    }
    REQUIRE(h.frames.size() == 1);
    CHECK(h.frames[0].dependency == dep);
    CHECK(h.frames[0].dependency.picture_id == 0x1234);
    CHECK(h.frames[0].dependency.tl0picidx == 200);
    CHECK(h.frames[0].dependency.layer_sync);
    // The next frame's start packet carries no dependency fields: nothing is carried over
    // from the previous frame.
    h.push_all(frame(43, 888, 2));
    REQUIRE(h.frames.size() == 2);
    CHECK(h.frames[1].dependency == frame_dependency{});
}

TEST_SUITE_END();
