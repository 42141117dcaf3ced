#include "onair/rtp/generic.hpp"

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
encoded_frame frame(bool key, std::uint32_t ts, std::size_t size, std::uint32_t seed, std::uint8_t tid = 0) {
    encoded_frame f;
    f.keyframe = key;
    f.rtp_timestamp = ts;
    f.temporal_layer = tid;
    f.data = random_bytes(size, seed);
    return f;
}
} // namespace

TEST_SUITE_BEGIN("rtp.generic");

TEST_CASE("descriptor byte, bit by bit") {
    generic_payload::packetizer pk;
    sender s;
    const auto pkts = s.packetize(pk, frame(true, 0, 2500, 1, 5));
    REQUIRE(pkts.size() == 3);
    CHECK(payload_of(pkts[0])[0] == 0xa5); // 101 00 101: S=1 E=0 K=1, TID=5
    CHECK(payload_of(pkts[1])[0] == 0x25); // 001 00 101: middle
    CHECK(payload_of(pkts[2])[0] == 0x65); // 011 00 101: E=1
    const auto one = s.packetize(pk, frame(false, 0, 10, 2));
    REQUIRE(one.size() == 1);
    CHECK(payload_of(one[0])[0] == 0xc0); // 110 00 000: S=1 E=1, inter frame, TID 0

    generic_descriptor d;
    REQUIRE_FALSE(parse_generic_descriptor(bytes{0xa5}, d));
    CHECK(d.start);
    CHECK_FALSE(d.end);
    CHECK(d.keyframe);
    CHECK(d.tid == 5);
    CHECK(parse_generic_descriptor(bytes{0x88}, d) == errc::bad_payload); // reserved bit set
    CHECK(parse_generic_descriptor(bytes{}, d) == errc::truncated);
}

TEST_CASE("frames of any size, even empty, round trip") {
    generic_payload::packetizer pk;
    generic_payload::depacketizer dp;
    sender s;
    s.seq = 65520;
    std::vector<encoded_frame> sent;
    std::vector<datagram> wire;
    const std::size_t sizes[] = {0, 1, 1199, 1200, 5000, 100'000, 3};
    std::uint32_t ts = 0;
    for (std::size_t size : sizes) {
        sent.push_back(frame(size % 2 == 0, ts += 3000, size, static_cast<std::uint32_t>(size), static_cast<std::uint8_t>(size % 3)));
        append(wire, s.packetize(pk, sent.back()));
    }
    const auto frames = push_all(dp, wire);
    REQUIRE(frames.size() == sent.size());
    for (std::size_t i = 0; i < sent.size(); ++i) {
        CHECK(frames[i].data == sent[i].data);
        CHECK(frames[i].keyframe == sent[i].keyframe);
        CHECK(frames[i].temporal_layer == sent[i].temporal_layer);
        CHECK(frames[i].rtp_timestamp == sent[i].rtp_timestamp);
    }
}

TEST_CASE("50 KB frame shuffled; one lost packet drops only its frame") {
    generic_payload::packetizer pk;
    sender s;
    s.seq = 65530;
    const auto big = frame(true, 1000, 50'000, 5);
    auto pkts = s.packetize(pk, big);
    std::mt19937 rng(2024);
    std::shuffle(pkts.begin(), pkts.end(), rng);
    {
        generic_payload::depacketizer dp;
        const auto frames = push_all(dp, pkts);
        REQUIRE(frames.size() == 1);
        CHECK(frames[0].data == big.data);
    }
    generic_payload::depacketizer dp;
    pkts.erase(pkts.begin() + 17);
    append(pkts, s.packetize(pk, frame(false, 2000, 3000, 6)));
    const auto frames = push_all(dp, pkts);
    REQUIRE(frames.size() == 1);
    CHECK(frames[0].rtp_timestamp == 2000);
    CHECK(dp.stats().incomplete == 1);
}

TEST_CASE("small max_payload: two bytes per packet still work; one does not") {
    generic_payload::packetizer pk;
    sender s;
    s.max_payload = 2;
    const auto f = frame(false, 0, 300, 8);
    const auto pkts = s.packetize(pk, f);
    CHECK(pkts.size() == 300);
    generic_payload::depacketizer dp;
    const auto frames = push_all(dp, pkts);
    REQUIRE(frames.size() == 1);
    CHECK(frames[0].data == f.data);
    CHECK(pk.packetize(f, 1, [](bytes_view, bytes_view, bool) {}) == errc::oversized);
}

TEST_CASE("start and end come from S and E, not from the marker bit") {
    generic_payload::depacketizer dp;
    header h;
    h.marker = true; // marker without E: not the end
    h.timestamp = 5;
    bytes w1(14), w2(14);
    const bytes first{0x80, 0x01}; // S=1, E=0
    const bytes last{0x40, 0x02};  // E=1
    REQUIRE(serialize(h, first, w1) == 14);
    h.marker = false; // E without marker: the end
    h.sequence = 1;
    REQUIRE(serialize(h, last, w2) == 14);
    const auto frames = push_all(dp, {w1, w2});
    REQUIRE(frames.size() == 1);
    CHECK(frames[0].data == bytes{0x01, 0x02});
}

TEST_SUITE_END();
