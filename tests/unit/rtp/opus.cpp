#include "onair/rtp/opus.hpp"

#include "helpers.hpp"

#include <doctest/doctest.h>

#include <vector>

using namespace onair;
using namespace onair::rtp;
using namespace onair::rtp::test;
using bytes = std::vector<std::uint8_t>;

namespace {
encoded_frame opus_packet(std::uint32_t ts, std::size_t size, std::uint32_t seed) {
    encoded_frame f;
    f.kind = media_kind::audio;
    f.rtp_timestamp = ts;
    f.data = random_bytes(size, seed);
    return f;
}
} // namespace

TEST_SUITE_BEGIN("rtp.opus");

TEST_CASE("one Opus packet per RTP packet, no descriptor, marker on the first only") {
    opus_payload::packetizer pk;
    sender s;
    const auto f = opus_packet(960, 80, 1);
    const auto a = s.packetize(pk, f);
    REQUIRE(a.size() == 1);
    const bytes_view p = payload_of(a[0]);
    CHECK(bytes(p.begin(), p.end()) == f.data); // the payload is the Opus packet itself
    packet_view pv;
    REQUIRE_FALSE(parse(a[0], pv));
    CHECK(pv.marker); // talkspurt start
    const auto b = s.packetize(pk, opus_packet(1920, 80, 2));
    REQUIRE_FALSE(parse(b[0], pv));
    CHECK_FALSE(pv.marker);
    pk.start_talkspurt();
    const auto c = s.packetize(pk, opus_packet(2880, 80, 3));
    REQUIRE_FALSE(parse(c[0], pv));
    CHECK(pv.marker);
}

TEST_CASE("packets that cannot be sent whole are refused") {
    opus_payload::packetizer pk;
    int calls = 0;
    auto count = [&](bytes_view, bytes_view, bool) { ++calls; };
    CHECK(pk.packetize(opus_packet(0, 1201, 1), 1200, count) == errc::oversized);
    CHECK(pk.packetize(encoded_frame{}, 1200, count) == errc::bad_frame);
    CHECK(calls == 0);
    CHECK_FALSE(pk.packetize(opus_packet(0, 1200, 1), 1200, count));
    CHECK(calls == 1);
}

TEST_CASE("each packet becomes an audio frame with timestamp and capture time") {
    const timestamp t0{std::chrono::microseconds{1'700'000'000'000'000}};
    opus_payload::packetizer pk;
    opus_payload::depacketizer dp;
    sender s;
    s.seq = 65534;
    std::vector<datagram> wire;
    std::vector<encoded_frame> sent;
    for (std::uint32_t i = 0; i < 6; ++i) {
        s.capture_ntp = to_ntp(t0 + std::chrono::milliseconds{20 * i});
        sent.push_back(opus_packet(i * 960, 60 + i, i));
        append(wire, s.packetize(pk, sent.back()));
    }
    s.capture_ntp.reset();
    sent.push_back(opus_packet(6 * 960, 10, 6));
    append(wire, s.packetize(pk, sent.back()));
    const auto frames = push_all(dp, wire, media_kind::video); // kind is audio regardless
    REQUIRE(frames.size() == 7);
    for (std::size_t i = 0; i < 7; ++i) {
        CHECK(frames[i].kind == media_kind::audio);
        CHECK(frames[i].rtp_timestamp == i * 960);
        CHECK(frames[i].data == sent[i].data);
    }
    CHECK(frames[3].capture_time == t0 + std::chrono::milliseconds{60});
    CHECK(frames[6].capture_time == timestamp{});
    CHECK(dp.dropped() == 0);
}

TEST_CASE("reordered, duplicated and empty packets") {
    opus_payload::packetizer pk;
    opus_payload::depacketizer dp;
    sender s;
    std::vector<datagram> wire;
    for (std::uint32_t i = 0; i < 4; ++i) append(wire, s.packetize(pk, opus_packet(i * 960, 40, i)));
    // 0, 2, 1 (late: 2 was already handed on), 2 again, 3
    const auto frames = push_all(dp, {wire[0], wire[2], wire[1], wire[2], wire[3]}, media_kind::audio);
    REQUIRE(frames.size() == 3);
    CHECK(frames[0].rtp_timestamp == 0);
    CHECK(frames[1].rtp_timestamp == 2 * 960);
    CHECK(frames[2].rtp_timestamp == 3 * 960);
    CHECK(dp.stats().late == 2);

    header h;
    h.sequence = 100;
    bytes empty(12);
    REQUIRE(serialize(h, bytes_view{}, empty) == 12);
    packet_view pv;
    REQUIRE_FALSE(parse(empty, pv));
    int n = 0;
    dp.push(pv, media_kind::audio, [&](encoded_frame&&) { ++n; });
    CHECK(n == 0);
    CHECK(dp.stats().malformed == 1);
}

TEST_SUITE_END();
