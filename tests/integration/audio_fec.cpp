// Opus in-band FEC is counted only when there was FEC to decode: a viewer that loses one
// packet rebuilds it from its successor's LBRR when the stream is in SILK/hybrid mode
// (`audio_fec`), and conceals it (`audio_concealed`) when the stream is CELT-only (those
// packets carry no LBRR, and decoding their "FEC" would be PLC under another name).
#include "support/on_io.hpp"

#include <onair/codec/opus.hpp>
#include <onair/codec/vp8.hpp>
#include <onair/rtp/packet.hpp>
#include <onair/source/tone.hpp>
#include <onair/transport/memory.hpp>
#include <onair/viewer.hpp>

#include <doctest/doctest.h>

#include <asio/io_context.hpp>

#include <algorithm>
#include <future>
#include <thread>

using namespace onair;
using namespace std::chrono_literals;

namespace {

using codec_type = codec::av<codec::vp8, codec::opus>;

using onair_test::on_io;

/// Plays 1.5 s of tone encoded with `app` through a fake relay, packet 20 missing; returns
/// the viewer's stats and the TOC config of the packet after the hole.
std::pair<viewer_stats, int> play_with_one_loss(codec::opus_application app) {
    asio::io_context io(1);
    transport::memory_network net;
    transport::memory fake_relay(io, net);
    using viewer_type = basic_viewer<codec_type, transport::memory>;
    viewer_type::config vc;
    vc.relay = fake_relay.local_endpoint();
    vc.stream = "cam";
    // Packets come at exactly their pace: with no delay, the lost frame would be due before
    // its successor arrives and nothing could rebuild it. 60 ms of buffer holds the successor.
    vc.audio_buffer.min_delay = 60ms;
    viewer_type viewer(vc, {}, io, net);

    std::array<std::uint8_t, 2048> rx;
    transport::endpoint viewer_ep;
    std::promise<void> greeted;
    fake_relay.async_receive_from(asio::buffer(rx), viewer_ep, [&](std::error_code ec, std::size_t) {
        REQUIRE_FALSE(ec);
        rtp::session_message ack;
        ack.type = rtp::session_type::ack;
        ack.stream.name = "cam";
        ack.stream.audio_ssrc = 2;
        ack.stream.audio_codec = "opus";
        std::array<std::uint8_t, 512> out;
        const auto n = rtp::write_session_message(ack, out);
        fake_relay.send_to(asio::buffer(out.data(), n), viewer_ep);
        greeted.set_value();
    });
    REQUIRE_FALSE(viewer.start());
    std::thread t([&] { io.run(); });
    REQUIRE(greeted.get_future().wait_for(5s) == std::future_status::ready);

    codec::opus::encoder enc;
    codec::opus_config c;
    c.application = app;
    c.fec = true;
    c.expected_loss_pct = 20;
    REQUIRE_FALSE(enc.open(c));
    source::tone tone;
    int toc_after_hole = -1;
    std::uint16_t seq = 0;
    auto next = std::chrono::steady_clock::now();
    for (int i = 0; i < 75; ++i) {
        REQUIRE_FALSE(enc.encode(tone.next(now()), [&](encoded_frame&& f) {
            const std::uint16_t q = seq++;
            if (q == 21) toc_after_hole = f.data[0] >> 3;
            if (q == 20) return; // lost
            rtp::header h;
            h.payload_type = 111;
            h.marker = true;
            h.sequence = q;
            h.timestamp = static_cast<std::uint32_t>(q) * 960;
            h.ssrc = 2;
            std::vector<std::uint8_t> b(rtp::fixed_header_size + f.data.size());
            rtp::write_header(h, b);
            std::copy(f.data.begin(), f.data.end(), b.begin() + static_cast<std::ptrdiff_t>(rtp::fixed_header_size));
            on_io(io, [&] { fake_relay.send_to(asio::buffer(b), viewer_ep); });
        }));
        next += 20ms;
        std::this_thread::sleep_until(next);
    }
    std::this_thread::sleep_for(300ms);
    const auto s = viewer.stats();
    on_io(io, [&] {
        viewer.stop();
        fake_relay.close();
    });
    t.join();
    return {s, toc_after_hole};
}

} // namespace

TEST_CASE("one lost Opus packet: rebuilt from LBRR in hybrid mode, concealed in CELT-only mode") {
    const auto [voip, voip_toc] = play_with_one_loss(codec::opus_application::voip);
    MESSAGE("voip: toc config " << voip_toc << ", fec " << voip.audio_fec << ", concealed " << voip.audio_concealed);
    REQUIRE(voip_toc < 16); // SILK or hybrid: carries LBRR
    // Rebuilt from FEC; or, when the sender's pacing left playout a frame behind its target,
    // skipped to catch up (the jitter buffer's free skip). Never concealed.
    CHECK(voip.audio_fec + voip.audio_skipped >= 1);
    CHECK(voip.audio_fec <= 1);
    CHECK(voip.audio_concealed == 0);

    const auto [celt, celt_toc] = play_with_one_loss(codec::opus_application::restricted_lowdelay);
    MESSAGE("restricted_lowdelay: toc config " << celt_toc << ", fec " << celt.audio_fec << ", concealed " << celt.audio_concealed << ", decoded " << celt.audio_frames << ", skipped " << celt.audio_skipped << ", late " << celt.audio_late);
    REQUIRE(celt_toc >= 16); // CELT only: no LBRR
    CHECK(celt.audio_fec == 0); // there was no FEC to decode
    CHECK(celt.audio_concealed + celt.audio_skipped >= 1);
    CHECK(celt.audio_concealed <= 1);
}
