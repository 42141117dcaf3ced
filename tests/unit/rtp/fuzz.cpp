// Random and mutated bytes through every RTP/RTCP parser and depacketizer, with fixed seeds.
// Passing means no crash, no hang, no sanitizer report (run under the asan preset), and the
// parsers' answers stay inside their input.
#include "onair/rtp/frame_assembler.hpp"
#include "onair/rtp/generic.hpp"
#include "onair/rtp/opus.hpp"
#include "onair/rtp/packet.hpp"
#include "onair/rtp/rtcp.hpp"
#include "onair/rtp/vp8.hpp"
#include "onair/rtp/vp9.hpp"

#include "helpers.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <vector>

using namespace onair;
using namespace onair::rtp;
using namespace onair::rtp::test;

namespace {

constexpr int iterations = 100'000;

/// Bytes lie inside [base, base + size).
bool inside(bytes_view part, bytes_view whole) {
    return part.empty() || (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

void fill(std::vector<std::uint8_t>& v, std::mt19937& rng, std::size_t max_len) {
    v.resize(rng() % (max_len + 1));
    for (auto& b : v) b = static_cast<std::uint8_t>(rng());
}

/// Every parser on one buffer; checks that what they report stays inside it.
void parse_everything(bytes_view d) {
    packet_view p;
    if (!parse(d, p)) {
        REQUIRE(inside(p.payload, d));
        REQUIRE(inside(p.extension_data, d));
        (void)p.transport_sequence();
        (void)p.abs_capture_time();
        for (std::uint8_t id = 0; id < 16; ++id)
            if (auto e = p.extension(id)) REQUIRE(inside(*e, d));
    }
    vp8_descriptor v8;
    if (!parse_vp8_descriptor(d, v8)) REQUIRE(v8.size <= d.size());
    vp9_descriptor v9;
    if (!parse_vp9_descriptor(d, v9)) REQUIRE(v9.size <= d.size());
    generic_descriptor g;
    if (!parse_generic_descriptor(d, g)) REQUIRE(g.size <= d.size());
    (void)vp8_keyframe_start(d);
    (void)vp9_keyframe_start(d);
    (void)parse_vp8_frame_header(d);
    std::size_t visited = 0;
    (void)rtcp::parse_compound(d, [&](const auto& packet) {
        ++visited;
        using T = std::decay_t<decltype(packet)>;
        if constexpr (std::is_same_v<T, rtcp::nack>) {
            REQUIRE(inside(packet.fci, d));
            packet.for_each([](std::uint16_t) {});
        } else if constexpr (std::is_same_v<T, rtcp::app>) {
            REQUIRE(inside(packet.data, d));
        } else if constexpr (std::is_same_v<T, rtcp::sdes>) {
            for (const auto& c : packet.chunks)
                REQUIRE(inside(bytes_view{reinterpret_cast<const std::uint8_t*>(c.cname.data()), c.cname.size()}, d));
        }
    });
    REQUIRE(visited <= d.size() / 4);
}

/// One depacketizer of each format, fed the same packets.
struct all_depacketizers {
    assembler_limits limits{64 * 1024, 256 * 1024, 512, 8};
    vp8_payload::depacketizer vp8{limits};
    vp9_payload::depacketizer vp9{limits};
    opus_payload::depacketizer opus{limits};
    generic_payload::depacketizer generic{limits};
    std::size_t frames = 0;

    void push(bytes_view d) {
        packet_view p;
        if (parse(d, p)) return;
        auto emit = [&](encoded_frame&& f) {
            REQUIRE(f.data.size() <= limits.max_frame_bytes);
            ++frames;
        };
        vp8.push(p, media_kind::video, emit);
        vp9.push(p, media_kind::video, emit);
        opus.push(p, media_kind::audio, emit);
        generic.push(p, media_kind::video, emit);
        for (frame_assembler* a : {&vp8.assembler(), &vp9.assembler(), &opus.assembler(), &generic.assembler()}) {
            REQUIRE(a->buffered_packets() <= limits.max_packets);
            REQUIRE(a->buffered_bytes() <= limits.max_buffered_bytes);
        }
    }
};

} // namespace

TEST_SUITE_BEGIN("rtp.fuzz");

TEST_CASE("random bytes through every parser") {
    std::mt19937 rng(0x0a1a);
    std::vector<std::uint8_t> buf;
    for (int i = 0; i < iterations; ++i) {
        fill(buf, rng, i % 10 == 0 ? 1500 : 64);
        // Bias the first byte toward version 2 so the deeper paths are reached.
        if (!buf.empty() && rng() % 2) buf[0] = static_cast<std::uint8_t>(0x80 | (buf[0] & 0x3f));
        parse_everything(buf);
    }
}

TEST_CASE("valid RTP headers with random payloads through every depacketizer") {
    std::mt19937 rng(0x0b2b);
    all_depacketizers dp;
    std::vector<std::uint8_t> payload, wire(1600);
    std::uint16_t seq = 65000;
    for (int i = 0; i < iterations; ++i) {
        header h;
        // Mostly nearby sequence numbers and a few timestamps, so frames do assemble.
        h.sequence = rng() % 8 == 0 ? static_cast<std::uint16_t>(rng()) : seq++;
        h.timestamp = static_cast<std::uint32_t>(rng() % 16) * 3000;
        h.marker = rng() % 3 == 0;
        if (rng() % 4 == 0) h.abs_capture_time = (std::uint64_t{rng()} << 32) | rng();
        if (rng() % 4 == 0) h.transport_sequence = static_cast<std::uint16_t>(rng());
        fill(payload, rng, rng() % 4 == 0 ? 1400 : 24);
        if (!payload.empty() && rng() % 2) payload[0] = static_cast<std::uint8_t>(payload[0] & 0xe7); // valid generic
        const std::size_t n = serialize(h, payload, wire);
        REQUIRE(n > 0);
        dp.push(bytes_view{wire.data(), n});
    }
    CHECK(dp.frames > 0); // the loop reached the emit path
}

TEST_CASE("mutated packet streams through the depacketizers") {
    std::mt19937 rng(0x0c3c);
    all_depacketizers dp;
    sender s;
    vp8_payload::packetizer p8;
    vp9_payload::packetizer p9;
    generic_payload::packetizer pg;
    int done = 0;
    for (std::uint32_t frame = 0; done < iterations; ++frame) {
        auto f = vp8_like_frame(frame % 5 == 0, frame * 3000, 200 + rng() % 6000, frame);
        f.temporal_layer = static_cast<std::uint8_t>(rng() % 4);
        std::vector<datagram> pkts;
        switch (frame % 3) {
        case 0: pkts = s.packetize(p8, f); break;
        case 1: pkts = s.packetize(p9, f); break;
        default: pkts = s.packetize(pg, f); break;
        }
        for (auto& d : pkts) {
            ++done;
            switch (rng() % 6) {
            case 0: d[rng() % d.size()] ^= static_cast<std::uint8_t>(1u << (rng() % 8)); break; // bit flip
            case 1: d.resize(rng() % d.size()); break;                                              // truncate
            case 2: d[12 + rng() % (d.size() - 12)] = static_cast<std::uint8_t>(rng()); break;      // payload byte
            case 3: if (rng() % 4 == 0) continue; break;                                            // drop
            default: break;
            }
            parse_everything(d);
            dp.push(d);
        }
    }
    CHECK(dp.frames > 0);
}

TEST_CASE("mutated RTCP compounds") {
    std::mt19937 rng(0x0d4d);
    const std::array<rtcp::report_block, 2> blocks{};
    const std::array<std::uint16_t, 3> lost{1, 5, 100};
    const std::array<std::uint32_t, 2> ssrcs{1, 2};
    const std::vector<std::uint8_t> app_data{1, 2, 3, 4, 5, 6, 7, 8};
    std::vector<std::uint8_t> good(600);
    std::span<std::uint8_t> out{good};
    std::size_t n = 0;
    n += rtcp::write_sender_report({1, 2, 3, 4, 5, blocks}, out.subspan(n));
    n += rtcp::write_receiver_report({1, blocks}, out.subspan(n));
    n += rtcp::write_sdes_cname(1, "fuzz@onair", out.subspan(n));
    n += rtcp::write_app({3, 1, rtcp::onair_app_name, app_data}, out.subspan(n));
    n += rtcp::write_pli(1, 2, out.subspan(n));
    n += rtcp::write_nack(1, 2, lost, out.subspan(n));
    n += rtcp::write_bye(ssrcs, "bye", out.subspan(n));
    good.resize(n);
    REQUIRE_FALSE(rtcp::parse_compound(good, [](const auto&) {}));
    std::vector<std::uint8_t> d;
    for (int i = 0; i < iterations; ++i) {
        d = good;
        const int flips = 1 + static_cast<int>(rng() % 4);
        for (int k = 0; k < flips; ++k) d[rng() % d.size()] = static_cast<std::uint8_t>(rng());
        if (rng() % 4 == 0) d.resize(rng() % d.size());
        parse_everything(d);
    }
}

TEST_SUITE_END();
