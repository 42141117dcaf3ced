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

TEST_CASE("a picture that ends on the lower of two spatial layers reports that layer's resolution") {
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
    // The marker on layer 0: the picture holds that layer only (a relay kept no more).
    CHECK(frames[0].width == 320);
    CHECK(frames[0].height == 180);
    CHECK(frames[0].data == bytes{0x77});
}

namespace {
/// One picture of `layers` spatial layers (sizes 160x90 doubling up), as the encoder gives it.
std::vector<encoded_frame> svc_picture(bool key, std::uint32_t ts, std::uint8_t tid, int layers, std::uint32_t seed) {
    std::vector<encoded_frame> out;
    for (int s = 0; s < layers; ++s) {
        auto f = vp9_frame(key, ts, 1500 + 1000 * static_cast<std::size_t>(s), seed * 10 + static_cast<std::uint32_t>(s),
                           160 << s, 90 << s);
        f.temporal_layer = key ? 0 : tid;
        f.spatial_layer = static_cast<std::uint8_t>(s);
        f.spatial_layers = static_cast<std::uint8_t>(layers);
        f.inter_layer = key && s > 0;
        f.end_of_picture = s + 1 == layers;
        for (int k = 0; k < layers; ++k) {
            f.layer_width[static_cast<std::size_t>(k)] = static_cast<std::uint16_t>(160 << k);
            f.layer_height[static_cast<std::size_t>(k)] = static_cast<std::uint16_t>(90 << k);
        }
        out.push_back(std::move(f));
    }
    return out;
}
bytes concat(const std::vector<encoded_frame>& layers, int up_to) {
    bytes b;
    for (const auto& l : layers)
        if (l.spatial_layer <= up_to) b.insert(b.end(), l.data.begin(), l.data.end());
    return b;
}
} // namespace

TEST_CASE("three spatial layers: SID, D, B/E per layer frame, marker at the picture's end, SS with every size") {
    vp9_payload::packetizer pk(0x1234, 7);
    sender s;
    std::vector<datagram> wire;
    std::vector<std::vector<encoded_frame>> pics;
    static constexpr std::uint8_t tids[] = {0, 2, 1, 2, 0};
    for (std::uint32_t i = 0; i < 5; ++i) {
        pics.push_back(svc_picture(i == 0, 1000 + i * 3000, tids[i], 3, i));
        for (const auto& f : pics.back()) append(wire, s.packetize(pk, f));
    }
    // Every packet's descriptor against the layer frame it came from.
    std::size_t k = 0;
    for (std::uint32_t i = 0; i < 5; ++i) {
        for (const auto& f : pics[i]) {
            INFO("picture " << i << " layer " << int(f.spatial_layer));
            const bool key = i == 0;
            std::size_t data = 0;
            bool first = true;
            while (data < f.data.size()) {
                REQUIRE(k < wire.size());
                packet_view pv;
                REQUIRE_FALSE(parse(wire[k++], pv));
                vp9_descriptor d;
                REQUIRE_FALSE(parse_vp9_descriptor(pv.payload, d));
                data += pv.payload.size() - d.size;
                const bool last = data == f.data.size();
                CHECK(d.begin == first);
                CHECK(d.end == last);
                CHECK(d.sid == f.spatial_layer);
                CHECK(d.inter_layer == (key && f.spatial_layer > 0));
                CHECK(d.inter_picture == !key);
                CHECK(d.tid == tids[i]);
                CHECK(d.picture_id == 0x1234 + i); // one id for every layer of a picture
                CHECK(d.tl0picidx == static_cast<std::uint8_t>(7 + (i >= 4 ? 1 : 0)));
                CHECK(pv.timestamp == 1000 + i * 3000);
                CHECK(pv.marker == (last && f.spatial_layer == 2));
                CHECK(d.has_ss == (first && key && f.spatial_layer == 0));
                CHECK(d.starts_frame() == (first && f.spatial_layer == 0));
                if (d.has_ss) {
                    CHECK(d.spatial_layers == 3);
                    REQUIRE(d.has_resolution);
                    CHECK(d.width[0] == 160);
                    CHECK(d.height[0] == 90);
                    CHECK(d.width[1] == 320);
                    CHECK(d.height[1] == 180);
                    CHECK(d.width[2] == 640);
                    CHECK(d.height[2] == 360);
                    CHECK(d.size == vp9_payload::descriptor_size + 1 + 12);
                    CHECK(vp9_keyframe_start(pv.payload));
                }
                first = false;
            }
        }
    }
    CHECK(k == wire.size());
    CHECK(pk.next_picture_id() == 0x1234 + 5);

    SUBCASE("the whole stream: one frame per picture, its layers in order, the top size on the key picture") {
        vp9_payload::depacketizer dp;
        const auto frames = push_all(dp, wire);
        REQUIRE(frames.size() == 5);
        for (std::size_t i = 0; i < 5; ++i) {
            CHECK(frames[i].data == concat(pics[i], 2));
            CHECK(frames[i].keyframe == (i == 0));
            CHECK(frames[i].temporal_layer == tids[i]);
            CHECK(frames[i].dependency.picture_id == 0x1234 + i);
        }
        CHECK(frames[0].width == 640);
        CHECK(frames[0].height == 360);
    }
    SUBCASE("cut to the lower layers as a relay forwards them: the marker on the kept layer's end") {
        for (const int top : {0, 1}) {
            INFO("up to layer " << top);
            std::vector<datagram> cut;
            for (const auto& dg : wire) {
                packet_view pv;
                REQUIRE_FALSE(parse(dg, pv));
                vp9_descriptor d;
                REQUIRE_FALSE(parse_vp9_descriptor(pv.payload, d));
                if (d.sid > top) continue;
                datagram c = dg;
                if (d.sid == top && d.end) c[1] = static_cast<std::uint8_t>(c[1] | 0x80);
                cut.push_back(c);
            }
            vp9_payload::depacketizer dp;
            const auto frames = push_all(dp, cut);
            REQUIRE(frames.size() == 5);
            for (std::size_t i = 0; i < 5; ++i) CHECK(frames[i].data == concat(pics[i], top));
            CHECK(frames[0].width == 160 << top);
            CHECK(frames[0].height == 90 << top);
        }
    }
    SUBCASE("without the marker packet a picture is incomplete") {
        auto lossy = wire;
        std::size_t last_of_first = 0;
        for (std::size_t j = 0; j < lossy.size(); ++j) {
            packet_view pv;
            REQUIRE_FALSE(parse(lossy[j], pv));
            if (pv.timestamp == 1000 && pv.marker) last_of_first = j;
        }
        lossy.erase(lossy.begin() + static_cast<std::ptrdiff_t>(last_of_first));
        vp9_payload::depacketizer dp;
        const auto frames = push_all(dp, lossy);
        REQUIRE(frames.size() == 4);
        CHECK(frames[0].rtp_timestamp == 4000);
    }
}

TEST_CASE("spatial layer fields out of range are refused") {
    vp9_payload::packetizer pk;
    int packets = 0;
    const auto count = [&](bytes_view, bytes_view, bool) { ++packets; };
    auto f = vp9_frame(true, 0, 100, 1);
    f.spatial_layers = 4;
    CHECK(pk.packetize(f, max_payload_size, count) == errc::bad_frame);
    f.spatial_layers = 2;
    f.spatial_layer = 2;
    CHECK(pk.packetize(f, max_payload_size, count) == errc::bad_frame);
    CHECK(packets == 0);
    f.spatial_layer = 1;
    CHECK_FALSE(pk.packetize(f, max_payload_size, count));
    CHECK(packets == 1);
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
