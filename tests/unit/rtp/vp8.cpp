#include "onair/rtp/vp8.hpp"

#include "helpers.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <random>
#include <vector>

using namespace onair;
using namespace onair::rtp;
using namespace onair::rtp::test;
using bytes = std::vector<std::uint8_t>;

static_assert(payload_format<vp8_payload>);

TEST_SUITE_BEGIN("rtp.vp8");

TEST_CASE("descriptor written by the packetizer, bit by bit") {
    vp8_payload::packetizer pk(0x1234, 7);
    sender s;
    const auto f = vp8_like_frame(true, 90000, 2000, 1);
    const auto pkts = s.packetize(pk, f);
    REQUIRE(pkts.size() == 2);
    const bytes_view first = payload_of(pkts[0]);
    const bytes want_first{
        0x90, // 1001 0000: X=1 R=0 N=0 S=1 R=0 PID=0
        0xe0, // 1110 0000: I=1 L=1 T=1 K=0
        0x92, // 1 0010010: M=1, picture id high 7 bits 0x12
        0x34, //            picture id low 8 bits: 0x1234
        0x07, // TL0PICIDX 7 (the first base-layer frame takes the initial value)
        0x00, // 00 0 00000: TID=0 Y=0 KEYIDX=0
    };
    CHECK(bytes(first.begin(), first.begin() + 6) == want_first);
    CHECK(first[6] == f.data[0]); // VP8 payload follows
    const bytes_view second = payload_of(pkts[1]);
    CHECK(second[0] == 0x80); // X=1, S=0: continuation
    CHECK(bytes(second.begin() + 1, second.begin() + 6) == bytes(want_first.begin() + 1, want_first.end()));

    packet_view p0, p1;
    REQUIRE_FALSE(parse(pkts[0], p0));
    REQUIRE_FALSE(parse(pkts[1], p1));
    CHECK_FALSE(p0.marker);
    CHECK(p1.marker);
    CHECK(p0.timestamp == 90000);
    CHECK(p1.timestamp == 90000);
}

TEST_CASE("picture id increments per frame and wraps at 15 bits; TL0PICIDX follows base frames") {
    vp8_payload::packetizer pk(0x7ffe, 0xfe);
    sender s;
    std::vector<vp8_descriptor> seen;
    const std::uint8_t tids[] = {0, 1, 0, 2};
    for (std::uint8_t tid : tids) {
        auto f = vp8_like_frame(false, 0, 100, tid);
        f.temporal_layer = tid;
        const auto pkts = s.packetize(pk, f);
        REQUIRE(pkts.size() == 1);
        vp8_descriptor d;
        REQUIRE_FALSE(parse_vp8_descriptor(payload_of(pkts[0]), d));
        seen.push_back(d);
    }
    CHECK(seen[0].picture_id == 0x7ffe);
    CHECK(seen[1].picture_id == 0x7fff);
    CHECK(seen[2].picture_id == 0x0000);
    CHECK(seen[3].picture_id == 0x0001);
    CHECK(pk.next_picture_id() == 2);
    CHECK(seen[0].tl0picidx == 0xfe);
    CHECK(seen[1].tl0picidx == 0xfe); // TID 1 carries the last base frame's index
    CHECK(seen[2].tl0picidx == 0xff);
    CHECK(seen[3].tl0picidx == 0xff);
    CHECK(seen[1].tid == 1);
    CHECK(seen[3].tid == 2);
    for (const auto& d : seen) {
        CHECK(d.has_picture_id);
        CHECK(d.long_picture_id);
        CHECK(d.has_tl0picidx);
        CHECK(d.has_tid);
        CHECK_FALSE(d.layer_sync);
        CHECK_FALSE(d.has_keyidx);
        CHECK(d.size == 6);
        CHECK(d.picture_id_offset == 2);
        CHECK(d.tl0picidx_offset == 4);
    }
}

TEST_CASE("parse_vp8_descriptor reads every RFC 7741 form") {
    vp8_descriptor d;
    SUBCASE("minimal: one byte, X=0") {
        const bytes b{0x10, 0x9d}; // S=1 PID=0, then payload
        REQUIRE_FALSE(parse_vp8_descriptor(b, d));
        CHECK(d.size == 1);
        CHECK(d.starts_frame());
        CHECK_FALSE(d.has_picture_id);
    }
    SUBCASE("7-bit picture id, N bit, partition 3") {
        const bytes b{
            0xa3, // 1010 0011: X=1 N=1 S=0 PID=3
            0x80, // I=1
            0x45, // M=0, picture id 0x45
        };
        REQUIRE_FALSE(parse_vp8_descriptor(b, d));
        CHECK(d.non_reference);
        CHECK_FALSE(d.start);
        CHECK(d.partition_id == 3);
        CHECK_FALSE(d.starts_frame());
        CHECK(d.picture_id == 0x45);
        CHECK_FALSE(d.long_picture_id);
        CHECK(d.size == 3);
    }
    SUBCASE("K without T: the TID/Y/KEYIDX byte carries KEYIDX only") {
        const bytes b{
            0x90, // X=1 S=1
            0x10, // K=1
            0xf5, // 11 1 10101: TID bits ignored (T=0), KEYIDX=21
        };
        REQUIRE_FALSE(parse_vp8_descriptor(b, d));
        CHECK(d.has_keyidx);
        CHECK(d.keyidx == 21);
        CHECK_FALSE(d.has_tid);
        CHECK(d.tid == 0);
        CHECK(d.size == 3);
    }
    SUBCASE("T with Y") {
        const bytes b{0x80, 0x20, 0xa0}; // T=1; 10 1 00000: TID=2 Y=1
        REQUIRE_FALSE(parse_vp8_descriptor(b, d));
        CHECK(d.tid == 2);
        CHECK(d.layer_sync);
    }
    SUBCASE("every truncation is reported") {
        const bytes full{0x90, 0xf0, 0x81, 0x02, 0x03, 0x40};
        REQUIRE_FALSE(parse_vp8_descriptor(full, d));
        CHECK(d.size == 6);
        for (std::size_t n = 0; n < full.size(); ++n)
            CHECK(parse_vp8_descriptor(bytes_view{full.data(), n}, d) == errc::truncated);
    }
}

TEST_CASE("keyframe start: S=1, PID=0 and P=0 in the VP8 payload header") {
    CHECK(vp8_keyframe_start(bytes{0x90, 0xe0, 0x80, 0x00, 0x00, 0x00, 0x10})); // P=0
    CHECK_FALSE(vp8_keyframe_start(bytes{0x90, 0xe0, 0x80, 0x00, 0x00, 0x00, 0x11})); // P=1
    CHECK_FALSE(vp8_keyframe_start(bytes{0x80, 0xe0, 0x80, 0x00, 0x00, 0x00, 0x10})); // S=0
    CHECK_FALSE(vp8_keyframe_start(bytes{0x91, 0xe0, 0x80, 0x00, 0x00, 0x00, 0x10})); // PID=1
    CHECK_FALSE(vp8_keyframe_start(bytes{0x90, 0xe0, 0x80, 0x00, 0x00, 0x00}));       // no payload
    CHECK_FALSE(vp8_keyframe_start(bytes{0x90, 0xe0}));                               // truncated
    CHECK(vp8_keyframe_start(bytes{0x10, 0x00}));                                     // minimal descriptor
}

TEST_CASE("key frame header gives the 14-bit size; scaling bits are masked") {
    // 3-byte frame tag (P=0), start code 9d 01 2a, width 0x4500 | 1280, height 0xc000 | 720
    const bytes kf{0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x00, 0x45, 0xd0, 0xc2};
    const auto info = parse_vp8_frame_header(kf);
    CHECK(info.keyframe);
    CHECK(info.width == 1280);
    CHECK(info.height == 720);
    bytes bad_code = kf;
    bad_code[4] = 0x02;
    CHECK(parse_vp8_frame_header(bad_code).keyframe);
    CHECK(parse_vp8_frame_header(bad_code).width == 0);
    CHECK(parse_vp8_frame_header(bytes(kf.begin(), kf.begin() + 9)).width == 0); // too short
    CHECK_FALSE(parse_vp8_frame_header(bytes{0x51}).keyframe);
    CHECK_FALSE(parse_vp8_frame_header(bytes{}).keyframe);
}

TEST_CASE("packets are roughly equal and within max_payload") {
    vp8_payload::packetizer pk;
    for (std::size_t size : {1u, 100u, 1194u, 1195u, 5000u, 30'000u}) {
        sender s;
        const auto pkts = s.packetize(pk, vp8_like_frame(false, 0, size, 2));
        std::size_t lo = SIZE_MAX, hi = 0;
        for (const auto& d : pkts) {
            const std::size_t n = payload_of(d).size();
            CHECK(n <= max_payload_size);
            lo = std::min(lo, n);
            hi = std::max(hi, n);
        }
        CHECK(hi - lo <= 1);
        CHECK(pkts.size() == (size + 1193) / 1194);
    }
}

TEST_CASE("packetize refuses empty frames and a max_payload without room") {
    vp8_payload::packetizer pk;
    int calls = 0;
    auto count = [&](bytes_view, bytes_view, bool) { ++calls; };
    CHECK(pk.packetize(encoded_frame{}, 1200, count) == errc::bad_frame);
    CHECK(pk.packetize(vp8_like_frame(false, 0, 10, 1), 6, count) == errc::oversized);
    CHECK(calls == 0);
    CHECK(pk.next_picture_id() == 0); // failed frames take no picture id
    CHECK_FALSE(pk.packetize(vp8_like_frame(false, 0, 10, 1), 7, count)); // one byte per packet
    CHECK(calls == 10);
}

TEST_CASE("50 KB key frame: shuffled with a fixed seed, reassembled byte for byte") {
    const auto f = vp8_like_frame(true, 123456, 50'000, 42, 1920, 1080);
    sender s;
    s.seq = 65530; // crosses the wrap
    s.capture_ntp = to_ntp(timestamp{std::chrono::microseconds{1'700'000'000'000'001}});
    vp8_payload::packetizer pk;
    auto pkts = s.packetize(pk, f);
    REQUIRE(pkts.size() == 42);
    std::mt19937 rng(7);
    std::shuffle(pkts.begin(), pkts.end(), rng);
    vp8_payload::depacketizer dp;
    const auto frames = push_all(dp, pkts);
    REQUIRE(frames.size() == 1);
    const auto& out = frames[0];
    CHECK(out.data == f.data);
    CHECK(out.keyframe);
    CHECK(out.width == 1920);
    CHECK(out.height == 1080);
    CHECK(out.rtp_timestamp == 123456);
    CHECK(out.kind == media_kind::video);
    CHECK(out.temporal_layer == 0);
    CHECK(out.capture_time == timestamp{std::chrono::microseconds{1'700'000'000'000'001}});
    CHECK(dp.dropped() == 0);
}

TEST_CASE("a stream of frames: loss of one packet drops only that frame") {
    vp8_payload::packetizer pk;
    vp8_payload::depacketizer dp;
    sender s;
    s.seq = 65500;
    std::vector<encoded_frame> sent;
    std::vector<datagram> wire;
    for (std::uint32_t i = 0; i < 30; ++i) {
        auto f = vp8_like_frame(i % 10 == 0, i * 3000, 2000 + 700 * i, i);
        f.temporal_layer = static_cast<std::uint8_t>(i % 2);
        sent.push_back(f);
        append(wire, s.packetize(pk, f));
    }
    // Lose the second packet of frame 5 (5500 bytes: five packets).
    std::size_t first_of_5 = wire.size();
    for (std::size_t i = 0; i < wire.size() && first_of_5 == wire.size(); ++i) {
        packet_view pv;
        REQUIRE_FALSE(parse(wire[i], pv));
        if (pv.timestamp == 5 * 3000) first_of_5 = i;
    }
    REQUIRE(first_of_5 + 1 < wire.size());
    wire.erase(wire.begin() + static_cast<std::ptrdiff_t>(first_of_5 + 1));
    const auto frames = push_all(dp, wire);
    REQUIRE(frames.size() == 29);
    std::size_t k = 0;
    for (std::uint32_t i = 0; i < 30; ++i) {
        if (i == 5) continue;
        CHECK(frames[k].rtp_timestamp == i * 3000);
        CHECK(frames[k].data == sent[i].data);
        CHECK(frames[k].keyframe == sent[i].keyframe);
        CHECK(frames[k].temporal_layer == sent[i].temporal_layer);
        ++k;
    }
    CHECK(dp.stats().incomplete == 1);
    CHECK(dp.dropped() == 1);
}

TEST_CASE("duplicated packets make no duplicate frames") {
    vp8_payload::packetizer pk;
    vp8_payload::depacketizer dp;
    sender s;
    auto pkts = s.packetize(pk, vp8_like_frame(true, 0, 5000, 3));
    std::vector<datagram> doubled;
    for (const auto& d : pkts) {
        doubled.push_back(d);
        doubled.push_back(d);
    }
    const auto frames = push_all(dp, doubled);
    CHECK(frames.size() == 1);
    CHECK(dp.stats().duplicates + dp.stats().late == pkts.size());
}

TEST_CASE("malformed payloads are counted and dropped") {
    vp8_payload::depacketizer dp;
    header h;
    h.marker = true;
    auto push_payload = [&](const bytes& payload) {
        bytes wire(12 + payload.size());
        REQUIRE(serialize(h, payload, wire) == wire.size());
        packet_view pv;
        REQUIRE_FALSE(parse(wire, pv));
        int frames = 0;
        dp.push(pv, media_kind::video, [&](encoded_frame&&) { ++frames; });
        ++h.sequence;
        return frames;
    };
    CHECK(push_payload(bytes{}) == 0);                 // nothing at all
    CHECK(push_payload(bytes{0x90, 0xe0, 0x80}) == 0); // truncated descriptor
    CHECK(push_payload(bytes{0x90, 0xe0, 0x80, 0x01, 0x02, 0x03}) == 0); // descriptor only
    CHECK(dp.stats().malformed == 3);
    CHECK(dp.dropped() == 3);
    CHECK(push_payload(bytes{0x10, 0x11}) == 1); // minimal but valid
}

TEST_SUITE_END();
