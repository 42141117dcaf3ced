// Bad input never crashes a node: truncated and garbage RTP/RTCP, wrong extension lengths,
// CSRC overflow, unknown streams, spoofed sources and oversized datagrams are counted and
// dropped, and the streams already flowing are not disturbed.
#include "support/on_io.hpp"

#include "support/rtp_builders.hpp"

#include <onair/codec/opus.hpp>
#include <onair/codec/vp8.hpp>
#include <onair/host.hpp>
#include <onair/relay_node.hpp>
#include <onair/rtp/rtcp.hpp>
#include <onair/rtp/vp8.hpp>
#include <onair/source/test_pattern.hpp>
#include <onair/source/tone.hpp>
#include <onair/transport/memory.hpp>
#include <onair/transport/udp.hpp>
#include <onair/viewer.hpp>

#include <doctest/doctest.h>

#include <asio/io_context.hpp>

#include <future>
#include <random>
#include <thread>

using namespace onair;
using namespace std::chrono_literals;
using bytes = std::vector<std::uint8_t>;

namespace {

using codec_type = codec::av<codec::vp8, codec::opus>;

using onair_test::on_io;

bytes rtp_header(std::uint32_t ssrc, std::uint16_t seq = 1) {
    rtp::header h;
    h.payload_type = 96;
    h.sequence = seq;
    h.ssrc = ssrc;
    bytes b(rtp::fixed_header_size);
    rtp::write_header(h, b);
    return b;
}

/// Each is malformed in its own way; the comment says how.
std::vector<bytes> malformed_datagrams() {
    std::vector<bytes> v;
    v.push_back({0x80, 0x60, 0x00});                                  // 3 bytes: shorter than an RTP header
    v.push_back({});                                                  // empty datagram
    { auto b = rtp_header(7); b[0] = 0x40; v.push_back(b); }          // version 1
    { auto b = rtp_header(7); b[0] = 0x8f; b.resize(20); v.push_back(b); } // CC=15: 60 CSRC bytes promised, 8 present
    { auto b = rtp_header(7); b[0] |= 0x10;                           // X=1, extension length 100 words, 4 present
      b.insert(b.end(), {0xbe, 0xde, 0x00, 0x64, 0x10, 0xff, 0x00, 0x00}); v.push_back(b); }
    { auto b = rtp_header(7); b[0] |= 0x10;                           // one element claims 16 bytes in a 4-byte block
      b.insert(b.end(), {0xbe, 0xde, 0x00, 0x01, 0x1f, 0x00, 0x00, 0x00}); v.push_back(b); }
    { auto b = rtp_header(7); b[0] |= 0x20; b.resize(20, 0); b.back() = 255; v.push_back(b); } // padding 255 > size
    { auto b = rtp_header(7); b[0] |= 0x20; b.resize(20, 0); b.back() = 0; v.push_back(b); }   // padding count 0
    v.push_back({0x80, 200, 0x00, 0x64, 0, 0, 0, 1, 0, 0, 0, 0});    // SR whose length says 404 bytes
    v.push_back({0x81, 205, 0x00, 0x02, 0, 0, 0, 1, 0, 0, 0, 2});    // NACK without FCI
    { bytes b{0x81, 204, 0x00, 0x08, 0, 0, 0, 1, 'O', 'N', 'A', 'R'}; // session hello, length beyond datagram
      b.resize(16, 0); v.push_back(b); }
    { bytes b{0x81, 204, 0x00, 0x04, 0, 0, 0, 1, 'O', 'N', 'A', 'R', 1, 0, 0, 0, 200, 'x', 'y', 'z'}; // name longer than packet
      v.push_back(b); }
    return v;
}

} // namespace

TEST_CASE("a relay node counts and drops hostile datagrams while a stream flows through it") {
    asio::io_context io(1);
    const transport::endpoint loopback(asio::ip::make_address_v4("127.0.0.1"), 0);
    relay_node relay(relay::sfu{}, {}, {}, io, loopback);
    relay.start();

    using host_type = basic_host<codec_type>;
    host_type::config hc;
    hc.relay = relay.local_endpoint();
    hc.stream = "cam";
    hc.video.width = 320;
    hc.video.height = 180;
    hc.max_pending_video = 1000;
    host_type host(hc, {}, io, loopback);
    using viewer_type = basic_viewer<codec_type>;
    viewer_type::config vc;
    vc.relay = relay.local_endpoint();
    vc.stream = "cam";
    viewer_type viewer(vc, {}, io, loopback);
    REQUIRE_FALSE(viewer.start());
    std::thread net([&] { io.run(); });
    for (int i = 0; i < 500 && !on_io(io, [&] { return relay.relay().find("cam") != nullptr; }); ++i)
        std::this_thread::sleep_for(10ms);
    REQUIRE_FALSE(on_io(io, [&] { return host.start(); }));

    // The attacker: a socket of its own on loopback.
    asio::io_context attacker_io;
    asio::ip::udp::socket attacker(attacker_io, loopback);
    auto hit = [&](const bytes& b) { attacker.send_to(asio::buffer(b), relay.local_endpoint()); };

    source::test_pattern pattern(320, 180, 30);
    source::tone tone;
    const auto bad = malformed_datagrams();
    std::mt19937 rng(1234);
    std::uint64_t random_sent = 0;
    const int frames = 90;
    auto next = std::chrono::steady_clock::now();
    for (int i = 0; i < frames; ++i) {
        host.push_video(pattern.next(now()));
        // Audio in real time: 50 frames a second against video's 30 (5 per 3 video frames).
        for (int a = (i * 5) / 3; a < ((i + 1) * 5) / 3; ++a) host.push_audio(tone.next(now()));
        // Between frames: every malformed kind, random garbage, and the specials below.
        for (const auto& b : bad) hit(b);
        for (int k = 0; k < 30; ++k) {
            bytes g(std::uniform_int_distribution<std::size_t>(0, 1400)(rng));
            for (auto& x : g) x = static_cast<std::uint8_t>(rng());
            hit(g);
            ++random_sent;
        }
        next += 33ms;
        std::this_thread::sleep_until(next);
    }
    // Valid RTP for a stream nobody published.
    hit(rtp_header(0xdeadbeef));
    // The host's own SSRC from the attacker's address: spoofing.
    hit(rtp_header(host.description().video_ssrc, 5));
    // A datagram too big for any onair packet.
    hit(bytes(9000, 0x80));
    std::this_thread::sleep_for(500ms);

    const auto node_stats = on_io(io, [&] { return relay.stats(); });
    const auto sfu_stats = on_io(io, [&] { return relay.relay().stats(); });
    CHECK(node_stats.malformed >= 8 * static_cast<std::uint64_t>(frames)); // the RTP-level kinds, every round
    CHECK(sfu_stats.malformed_rtcp >= 2 * static_cast<std::uint64_t>(frames));
    CHECK(sfu_stats.unknown_stream >= 1);
    CHECK(sfu_stats.unauthorized >= 1);
    CHECK(node_stats.oversized == 1);
    CHECK(node_stats.datagrams >= random_sent);

    // The real stream was not disturbed.
    on_io(io, [&] { host.stop(); });
    std::this_thread::sleep_for(500ms);
    const auto hs = host.stats();
    const auto vs = viewer.stats();
    MESSAGE("frames before the publish ack " << hs.video_frames_before_publish << ", audio " << hs.audio_frames_before_publish
                                              << "; viewer video " << vs.video_frames << ", skipped " << vs.video_frames_skipped
                                              << ", packets missing " << vs.video_packets_missing << ", lost " << vs.video_packets_lost);
    CHECK(hs.video_frames_encoded == static_cast<std::uint64_t>(frames));
    // Every frame sent was played: the host sends nothing before the relay acknowledged the
    // publish (a frame or two encoded in that round trip stay home), then a key frame.
    CHECK(hs.video_frames_before_publish <= 2);
    CHECK(vs.video_frames == hs.video_frames_encoded - hs.video_frames_before_publish);
    // Every audio frame played, but for the odd one dropped to take start-up delay off.
    CHECK(vs.audio_frames + vs.audio_skipped == hs.audio_frames_encoded - hs.audio_frames_before_publish);
    CHECK(vs.audio_skipped <= 2);
    CHECK(vs.decode_errors == 0);
    CHECK(vs.unknown_packets == 0);
    on_io(io, [&] {
        viewer.stop();
        relay.stop();
    });
    net.join();
}

TEST_CASE("a viewer fed garbage by its relay counts it, survives, and plays the real frames after it") {
    asio::io_context io(1);
    transport::memory_network net;
    transport::memory fake_relay(io, net);
    using viewer_type = basic_viewer<codec_type, transport::memory>;
    viewer_type::config vc;
    vc.relay = fake_relay.local_endpoint();
    vc.stream = "cam";
    viewer_type viewer(vc, {}, io, net);

    // The fake relay answers the first play hello with a description, as a relay would.
    std::array<std::uint8_t, 2048> rx;
    transport::endpoint viewer_ep;
    std::promise<void> greeted;
    fake_relay.async_receive_from(asio::buffer(rx), viewer_ep, [&](std::error_code ec, std::size_t) {
        REQUIRE_FALSE(ec);
        rtp::session_message ack;
        ack.type = rtp::session_type::ack;
        ack.stream.name = "cam";
        ack.stream.video_ssrc = 1;
        ack.stream.audio_ssrc = 2;
        ack.stream.video_codec = "VP8";
        ack.stream.audio_codec = "opus";
        ack.stream.audio_red_pt = 63; // RED audio announced: garbage RED comes below
        ack.stream.video_fec_ssrc = 3; // and FlexFEC and audio RTX: garbage of both too
        ack.stream.audio_rtx_ssrc = 4;
        std::array<std::uint8_t, 512> out;
        const auto n = rtp::write_session_message(ack, out);
        fake_relay.send_to(asio::buffer(out.data(), n), viewer_ep);
        greeted.set_value();
    });
    REQUIRE_FALSE(viewer.start());
    std::thread t([&] { io.run(); });
    REQUIRE(greeted.get_future().wait_for(5s) == std::future_status::ready);
    std::this_thread::sleep_for(50ms);

    auto send = [&](const bytes& b) { on_io(io, [&] { fake_relay.send_to(asio::buffer(b), viewer_ep); }); };
    std::mt19937 rng(99);
    std::uint16_t seq = 100;
    // Garbage with the right SSRC and payload type: random VP8 descriptors and payloads.
    for (int i = 0; i < 2000; ++i) {
        auto b = rtp_header(1, seq++);
        b[1] = static_cast<std::uint8_t>((rng() & 1 ? 0x80 : 0) | 96); // random marker
        rtp::store_be32(&b[4], static_cast<std::uint32_t>(i / 4) * 3000);
        b.resize(b.size() + std::uniform_int_distribution<std::size_t>(0, 1200)(rng));
        for (std::size_t k = rtp::fixed_header_size; k < b.size(); ++k) b[k] = static_cast<std::uint8_t>(rng());
        send(b);
    }
    // A frame that never ends: 4000 packets of one timestamp without a marker (> 4 MB).
    for (int i = 0; i < 4000; ++i) {
        auto b = rtp_header(1, seq++);
        rtp::store_be32(&b[4], 9'000'000);
        b.push_back(i == 0 ? 0x10 : 0x00); // VP8 descriptor: S on the first packet only
        b.resize(b.size() + 1180, 0x42);
        send(b);
    }
    for (const auto& b : malformed_datagrams()) send(b);
    // Audio garbage.
    for (int i = 0; i < 200; ++i) {
        auto b = rtp_header(2, static_cast<std::uint16_t>(i));
        b[1] = 0x80 | 111;
        b.resize(b.size() + std::uniform_int_distribution<std::size_t>(0, 400)(rng));
        for (std::size_t k = rtp::fixed_header_size; k < b.size(); ++k) b[k] = static_cast<std::uint8_t>(rng());
        send(b);
    }

    // Malformed RED (RFC 2198) on the audio SSRC: block headers past the end, lengths past
    // the payload, an empty primary, more blocks than allowed.
    const std::vector<bytes> bad_red{
        {0x80 | 111},                                     // a redundant block header cut short
        {0x80 | 111, 0x00, 0x04, 0x10, 111, 1, 2},        // block length 16, 2 bytes follow
        {0x80 | 111, 0x00, 0x04, 0x01, 111, 9},           // 1 redundant byte, nothing left for the primary
        {0xef, 0, 0, 0, 0xef, 0, 0, 0, 0xef, 0, 0, 0, 0xef, 0, 0, 0, 0xef, 0, 0, 0,
         0xef, 0, 0, 0, 0xef, 0, 0, 0, 0xef, 0, 0, 0, 111, 1}, // 9 blocks
    };
    for (int i = 0; i < 3; ++i) on_io(io, [] {}); // everything sent before is counted by now
    const auto malformed_before_red = viewer.stats().malformed;
    for (std::size_t i = 0; i < bad_red.size(); ++i) {
        auto b = rtp_header(2, static_cast<std::uint16_t>(300 + i));
        b[1] = 63;
        b.insert(b.end(), bad_red[i].begin(), bad_red[i].end());
        send(b);
    }
    // Each one counted, none played.
    for (int i = 0; i < 100 && viewer.stats().malformed < malformed_before_red + bad_red.size(); ++i)
        std::this_thread::sleep_for(5ms);
    CHECK(viewer.stats().malformed == malformed_before_red + bad_red.size());
    CHECK(viewer.stats().audio_red_recovered == 0);

    // Malformed FlexFEC (RFC 8627) on the FEC SSRC, and audio RTX without an OSN.
    auto fec_packet = [&](std::uint16_t sn, bool csrc, const bytes& fec_header) {
        auto b = rtp_header(3, sn);
        b[1] = 118;
        if (csrc) {
            b[0] |= 1; // CC = 1: the protected SSRC
            const bytes protected_ssrc{0, 0, 0, 1};
            b.insert(b.end(), protected_ssrc.begin(), protected_ssrc.end());
        }
        b.insert(b.end(), fec_header.begin(), fec_header.end());
        return b;
    };
    const std::vector<bytes> bad_fec{
        fec_packet(1, true, {}),                                           // no FEC header at all
        fec_packet(2, false, {0, 0, 0, 4, 0, 0, 0, 0, 0, 16, 0x80, 1, 9, 9, 9, 9}), // CC = 0
        fec_packet(3, true, {0, 0, 0, 4, 0, 0}),                           // header cut short
        fec_packet(4, true, {0, 0, 0, 4, 0, 0, 0, 0, 0, 16, 0x80, 0, 9, 9, 9, 9}),  // k = 1, empty mask
    };
    const auto malformed_before_fec = viewer.stats().malformed;
    for (const auto& b : bad_fec) send(b);
    auto rtx = rtp_header(4, 7);
    rtx[1] = 98;
    rtx.push_back(0x01); // one byte: no room for the original sequence number
    send(rtx);
    const auto expected = malformed_before_fec + bad_fec.size() + 1;
    for (int i = 0; i < 100 && viewer.stats().malformed < expected; ++i) std::this_thread::sleep_for(5ms);
    CHECK(viewer.stats().malformed == expected);
    CHECK(viewer.stats().fec_packets == bad_fec.size());
    CHECK(viewer.stats().video_fec_recovered == 0);
    CHECK(viewer.stats().audio_retransmissions == 0);

    // Then 30 real frames, starting with a keyframe.
    codec::vp8::encoder enc;
    codec::video_config cfg;
    cfg.width = 320;
    cfg.height = 180;
    REQUIRE_FALSE(enc.open(cfg));
    source::test_pattern pattern(320, 180, 30);
    seq = static_cast<std::uint16_t>(seq + 100);
    rtp::vp8_payload::packetizer pk;
    for (int i = 0; i < 30; ++i) {
        REQUIRE_FALSE(enc.encode(pattern.next(now()), [&](encoded_frame&& f) {
            f.rtp_timestamp = 20'000'000 + static_cast<std::uint32_t>(i) * 3000;
            for (auto& p : onair_test::packetize<rtp::vp8_payload>(pk, f, 1, seq)) send(p);
        }));
    }
    // They arrive in a burst and play at their media times: 30 frames take a second.
    for (int i = 0; i < 300 && viewer.stats().video_frames < 29; ++i) std::this_thread::sleep_for(10ms);
    const auto s = viewer.stats();
    MESSAGE("malformed " << s.malformed << ", depacketizer dropped " << s.depacketizer_dropped << ", decode errors "
                         << s.decode_errors << ", frames " << s.video_frames);
    CHECK(s.malformed >= 4);
    CHECK(s.depacketizer_dropped > 0);
    CHECK(s.video_frames >= 29); // the real frames decode (the first may follow a bogus reference)
    on_io(io, [&] {
        viewer.stop();
        fake_relay.close();
    });
    t.join();
}
