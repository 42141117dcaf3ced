// A host sends no media until the relay acknowledged its publish hello, and the first video
// frame after the acknowledgement is a key frame: media that overtook the hello would be
// dropped as an unknown stream, and a key frame without its first packets starts nobody.
#include <onair/codec/opus.hpp>
#include <onair/codec/vp8.hpp>
#include <onair/host.hpp>
#include <onair/rtp/keyframe.hpp>
#include <onair/rtp/packet.hpp>
#include <onair/rtp/session_message.hpp>
#include <onair/source/test_pattern.hpp>
#include <onair/source/tone.hpp>
#include <onair/transport/memory.hpp>

#include <doctest/doctest.h>

#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include <array>
#include <atomic>
#include <future>
#include <thread>

using namespace onair;
using namespace std::chrono_literals;

TEST_CASE("a host holds media back until the publish is acknowledged, then starts with a key frame") {
    asio::io_context io(1);
    transport::memory_network net;
    transport::memory relay(io, net); // a fake relay that answers late

    using host_type = basic_host<codec::av<codec::vp8, codec::opus>, transport::memory>;
    host_type::config hc;
    hc.relay = relay.local_endpoint();
    hc.stream = "cam";
    hc.video.width = 320;
    hc.video.height = 180;
    hc.video.keyframe_interval_s = 0; // key frames: the first one and requested ones only
    host_type host(hc, sink::null{}, io, net);

    // The relay ignores the first three hellos (about 200 ms at the host's 100 ms retry),
    // then acknowledges; it records what came before and after.
    std::atomic<int> hellos{0};
    std::atomic<int> media_before_ack{0};
    std::atomic<int> video_after_ack{0};
    std::atomic<bool> acked{false};
    std::atomic<bool> first_video_is_key{false};
    std::array<std::uint8_t, 2048> rx{};
    transport::endpoint from;
    std::function<void()> receive = [&] {
        relay.async_receive_from(asio::buffer(rx), from, [&](std::error_code ec, std::size_t n) {
            if (ec) return;
            const rtp::bytes_view d(rx.data(), n);
            rtp::session_message m;
            if (rtp::is_session_message(d) && !rtp::parse_session_message(d, m) && m.type == rtp::session_type::publish) {
                if (++hellos == 4) {
                    rtp::session_message ack;
                    ack.type = rtp::session_type::ack;
                    ack.stream = m.stream;
                    std::array<std::uint8_t, 1024> out;
                    const auto len = rtp::write_session_message(ack, out);
                    acked = true;
                    relay.send_to(asio::buffer(out.data(), len), from);
                }
            } else if (!rtp::is_rtcp(d)) {
                rtp::packet_view p;
                REQUIRE_FALSE(rtp::parse(d, p));
                if (!acked) {
                    ++media_before_ack;
                } else if (p.ssrc == host.description().video_ssrc && video_after_ack++ == 0) {
                    first_video_is_key = rtp::starts_keyframe(rtp::video_format::vp8, p.payload);
                }
            }
            receive();
        });
    };
    receive();
    REQUIRE_FALSE(host.start());
    std::thread io_thread([&] { io.run(); });

    source::test_pattern pattern(320, 180, 30);
    source::tone tone;
    auto next = std::chrono::steady_clock::now();
    for (int i = 0; i < 30; ++i) { // 1 s
        host.push_video(pattern.next(now()));
        for (int a = (i * 5) / 3; a < ((i + 1) * 5) / 3; ++a) host.push_audio(tone.next(now()));
        next += 33ms;
        std::this_thread::sleep_until(next);
    }
    std::promise<void> stopped;
    asio::post(io, [&] {
        host.stop();
        asio::post(io, [&] {
            relay.close();
            stopped.set_value();
        });
    });
    stopped.get_future().wait();
    io_thread.join();

    const auto s = host.stats();
    MESSAGE("hellos " << hellos.load() << ", video frames held back " << s.video_frames_before_publish << ", audio "
                      << s.audio_frames_before_publish << ", video packets after the ack " << video_after_ack.load());
    REQUIRE(acked);
    CHECK(media_before_ack == 0);
    CHECK(s.video_frames_before_publish >= 3); // about 200 ms of frames waited
    CHECK(s.audio_frames_before_publish >= 5);
    CHECK(video_after_ack > 0);
    CHECK(first_video_is_key);
    CHECK(s.keyframes >= 2); // the first frame (held back) and the one after the ack
}
