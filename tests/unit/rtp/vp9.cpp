#include "onair/rtp/vp9.hpp"

#include "helpers.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <random>
#include <vector>

using namespace onair;
using namespace onair::rtp;
using namespace onair::rtp::test;
using bytes = std::vector<std::uint8_t>;

namespace {
encoded_frame vp9_frame(bool key, std::uint32_t ts, std::size_t size, std::uint32_t seed, int w = 0, int h = 0) {
    encoded_frame f;
    f.keyframe = key;
    f.rtp_timestamp = ts;
    f.width = w;
    f.height = h;
    f.data = random_bytes(size, seed);
    return f;
}
} // namespace

TEST_SUITE_BEGIN("rtp.vp9");

TEST_CASE("key frame descriptors, bit by bit") {
    vp9_payload::packetizer pk(0x0102, 9);
    sender s;
    const auto pkts = s.packetize(pk, vp9_frame(true, 0, 3000, 1, 1280, 720));
    REQUIRE(pkts.size() == 3);
    const bytes_view first = payload_of(pkts[0]);
    const bytes want_first{
        0xaa, // 1010 1010: I=1 P=0 L=1 F=0 B=1 E=0 V=1 Z=0
        0x81, // 1 0000001: M=1, picture id high bits
        0x02, //            picture id 0x0102
        0x00, // 000 0 000 0: TID=0 U=0 SID=0 D=0
        0x09, // TL0PICIDX 9
        0x10, // 000 1 0 000: N_S=0 (one layer) Y=1 G=0
        0x05, 0x00, // width 1280
        0x02, 0xd0, // height 720
    };
    CHECK(bytes(first.begin(), first.begin() + 10) == want_first);
    const bytes_view mid = payload_of(pkts[1]);
    CHECK(mid[0] == 0xa0); // I=1 L=1, neither B nor E nor V
    CHECK(bytes(mid.begin() + 1, mid.begin() + 5) == bytes{0x81, 0x02, 0x00, 0x09});
    const bytes_view last = payload_of(pkts[2]);
    CHECK(last[0] == 0xa4); // I=1 L=1 E=1
    packet_view p2;
    REQUIRE_FALSE(parse(pkts[2], p2));
    CHECK(p2.marker);
    // Sizes on the wire are even despite the bigger first descriptor.
    CHECK(first.size() <= max_payload_size);
    CHECK(std::max({first.size(), mid.size(), last.size()}) - std::min({first.size(), mid.size(), last.size()}) <= 1);
}

TEST_CASE("inter frames: P=1, no scalability structure, B and E on a single packet") {
    vp9_payload::packetizer pk;
    sender s;
    auto f = vp9_frame(false, 0, 500, 2);
    f.temporal_layer = 3;
    const auto pkts = s.packetize(pk, f);
    REQUIRE(pkts.size() == 1);
    const bytes_view p = payload_of(pkts[0]);
    CHECK(p[0] == 0xec); // 1110 1100: I=1 P=1 L=1 F=0 B=1 E=1 V=0 Z=0
    CHECK(p[3] == 0x60); // 011 0 000 0: TID=3
    vp9_descriptor d;
    REQUIRE_FALSE(parse_vp9_descriptor(p, d));
    CHECK(d.size == 5);
    CHECK(d.inter_picture);
    CHECK_FALSE(d.keyframe());
    CHECK(d.tid == 3);
    CHECK(d.tl0picidx == 0xff); // no base-layer frame yet: the one before the first
    CHECK_FALSE(vp9_keyframe_start(p));
}

TEST_CASE("key frame of unknown size: SS without resolution") {
    vp9_payload::packetizer pk;
    sender s;
    const auto pkts = s.packetize(pk, vp9_frame(true, 0, 100, 3));
    const bytes_view p = payload_of(pkts[0]);
    vp9_descriptor d;
    REQUIRE_FALSE(parse_vp9_descriptor(p, d));
    CHECK(d.has_ss);
    CHECK(d.spatial_layers == 1);
    CHECK_FALSE(d.has_resolution);
    CHECK(d.size == 6);
    CHECK(vp9_keyframe_start(p));
}

TEST_CASE("parse_vp9_descriptor: flexible mode, spatial layers, picture group") {
    vp9_descriptor d;
    SUBCASE("flexible mode with two reference indices") {
        const bytes b{
            0xd8, // 1101 1000: I=1 P=1 L=0 F=1 B=1
            0x05, // M=0 picture id 5
            0x03, // P_DIFF=1 N=1
            0x04, // P_DIFF=2 N=0
            0xee,
        };
        REQUIRE_FALSE(parse_vp9_descriptor(b, d));
        CHECK(d.flexible);
        CHECK(d.picture_id == 5);
        CHECK(d.reference_count == 2);
        CHECK(d.p_diff[0] == 1);
        CHECK(d.p_diff[1] == 2);
        CHECK(d.size == 4);
    }
    SUBCASE("flexible mode: a fourth reference index is malformed") {
        const bytes b{0xd0, 0x05, 0x03, 0x03, 0x03, 0x02, 0xee};
        CHECK(parse_vp9_descriptor(b, d) == errc::bad_payload);
    }
    SUBCASE("flexible mode with L: no TL0PICIDX") {
        const bytes b{0xb8, 0x05, 0x45, 0xee}; // I L F B; TID=2 U=0 SID=2 D=1
        REQUIRE_FALSE(parse_vp9_descriptor(b, d));
        CHECK(d.tid == 2);
        CHECK(d.sid == 2);
        CHECK(d.inter_layer);
        CHECK(d.size == 3);
        CHECK_FALSE(d.starts_frame()); // B on spatial layer 2 is not a picture start
    }
    SUBCASE("three spatial layers with resolutions and a picture group") {
        const bytes b{
            0x0a,             // B=1 V=1 (no picture id, no layer indices)
            0x58,             // 010 1 1 000: N_S=2 (3 layers) Y=1 G=1
            0x01, 0x40, 0x00, 0xb4, // 320 x 180
            0x02, 0x80, 0x01, 0x68, // 640 x 360
            0x05, 0x00, 0x02, 0xd0, // 1280 x 720
            0x02,             // N_G=2
            0x04, 0x01,       // TID=0 U=0 R=1, P_DIFF 1
            0x28, 0x01, 0x02, // TID=1 U=0 R=2, P_DIFF 1 and 2
            0xee,
        };
        REQUIRE_FALSE(parse_vp9_descriptor(b, d));
        CHECK(d.spatial_layers == 3);
        CHECK(d.width[0] == 320);
        CHECK(d.height[0] == 180);
        CHECK(d.width[2] == 1280);
        CHECK(d.height[2] == 720);
        CHECK(d.picture_group_size == 2);
        CHECK(d.size == b.size() - 1);
        for (std::size_t n = 0; n + 1 < b.size(); ++n)
            CHECK(parse_vp9_descriptor(bytes_view{b.data(), n}, d) == errc::truncated);
    }
}

TEST_CASE("50 KB key frame round trip: shuffled, across the wrap, resolution from SS") {
    const timestamp t{std::chrono::microseconds{1'600'000'000'000'000}};
    auto f = vp9_frame(true, 777, 50'000, 9, 1920, 1080);
    sender s;
    s.seq = 65530;
    s.capture_ntp = to_ntp(t);
    s.capture_on_first_only = true;
    vp9_payload::packetizer pk;
    auto pkts = s.packetize(pk, f);
    std::mt19937 rng(99);
    std::shuffle(pkts.begin(), pkts.end(), rng);
    vp9_payload::depacketizer dp;
    const auto frames = push_all(dp, pkts);
    REQUIRE(frames.size() == 1);
    CHECK(frames[0].data == f.data);
    CHECK(frames[0].keyframe);
    CHECK(frames[0].width == 1920);
    CHECK(frames[0].height == 1080);
    CHECK(frames[0].rtp_timestamp == 777);
    CHECK(frames[0].capture_time == t);
}

TEST_CASE("stream with a lost packet and duplicates") {
    vp9_payload::packetizer pk;
    vp9_payload::depacketizer dp;
    sender s;
    s.seq = 65000;
    std::vector<datagram> wire;
    std::vector<encoded_frame> sent;
    for (std::uint32_t i = 0; i < 20; ++i) {
        auto f = vp9_frame(i == 0, i * 3000, 3000 + 100 * i, i, 640, 360);
        f.temporal_layer = static_cast<std::uint8_t>(i % 3);
        sent.push_back(f);
        auto pkts = s.packetize(pk, f);
        if (i == 7) pkts.erase(pkts.begin() + 1); // lost
        if (i == 9) pkts.push_back(pkts.front()); // duplicate, after the frame completed
        if (i == 11) pkts.insert(pkts.begin(), pkts[1]); // duplicate, before
        append(wire, pkts);
    }
    const auto frames = push_all(dp, wire);
    REQUIRE(frames.size() == 19);
    std::size_t k = 0;
    for (std::uint32_t i = 0; i < 20; ++i) {
        if (i == 7) continue;
        CHECK(frames[k].data == sent[i].data);
        CHECK(frames[k].keyframe == (i == 0));
        CHECK(frames[k].temporal_layer == i % 3);
        CHECK(frames[k].width == (i == 0 ? 640 : 0));
        ++k;
    }
    CHECK(dp.stats().incomplete == 1);
    CHECK(dp.stats().duplicates == 1);
    CHECK(dp.stats().late == 1);
}

TEST_CASE("a picture with two spatial layers reports the top layer's resolution") {
    const bytes payload{
        0x2e,                   // 0010 1110: L=1 B=1 E=1 V=1 (P=0: key frame)
        0x00, 0x00,             // TID=0 SID=0, TL0PICIDX 0
        0x30,                   // 001 1 0 000: N_S=1 (two layers) Y=1 G=0
        0x01, 0x40, 0x00, 0xb4, // layer 0: 320 x 180
        0x02, 0x80, 0x01, 0x68, // layer 1: 640 x 360
        0x77,                   // VP9 data
    };
    header h;
    h.marker = true;
    bytes wire(12 + payload.size());
    REQUIRE(serialize(h, payload, wire) == wire.size());
    vp9_payload::depacketizer dp;
    const auto frames = push_all(dp, {wire});
    REQUIRE(frames.size() == 1);
    CHECK(frames[0].keyframe);
    CHECK(frames[0].width == 640);
    CHECK(frames[0].height == 360);
    CHECK(frames[0].data == bytes{0x77});
}

TEST_CASE("malformed descriptors are counted and dropped") {
    vp9_payload::depacketizer dp;
    header h;
    h.marker = true;
    int frames = 0;
    for (const bytes& payload : {bytes{}, bytes{0x80}, bytes{0xa8, 0x81}, bytes{0x0a, 0x10, 0x01}, bytes{0x0c}}) {
        bytes wire(12 + payload.size());
        REQUIRE(serialize(h, payload, wire) == wire.size());
        packet_view pv;
        REQUIRE_FALSE(parse(wire, pv));
        dp.push(pv, media_kind::video, [&](encoded_frame&&) { ++frames; });
        ++h.sequence;
    }
    CHECK(frames == 0);
    CHECK(dp.stats().malformed == 5);
}

TEST_SUITE_END();
