// A subscriber that joins a running stream, a viewer or a plain-RTP forward, gets a
// keyframe within 0.5 s: the relay asks the host for one.
#include "support/on_io.hpp"

#include <onair/codec/opus.hpp>
#include <onair/codec/vp8.hpp>
#include <onair/host.hpp>
#include <onair/relay_node.hpp>
#include <onair/rtp/keyframe.hpp>
#include <onair/sink/callback.hpp>
#include <onair/source/test_pattern.hpp>
#include <onair/transport/memory.hpp>
#include <onair/viewer.hpp>

#include <doctest/doctest.h>

#include <asio/io_context.hpp>

#include <atomic>
#include <future>
#include <optional>
#include <thread>

using namespace onair;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

using codec_type = codec::av<codec::vp8, codec::opus>;
using node_type = basic_relay_node<transport::memory>;
using host_type = basic_host<codec_type, transport::memory>;

/// A relay and a host publishing the test pattern with keyframes only on request.
struct live_stream {
    asio::io_context io{1};
    transport::memory_network net;
    node_type relay{relay::sfu{}, sink::null_packets{}, relay_node_config{}, io, net};
    std::unique_ptr<host_type> host;
    std::thread io_thread;
    std::thread feeder;
    std::atomic<bool> stop{false};

    live_stream() {
        relay.start();
        host_type::config hc;
        hc.relay = relay.local_endpoint();
        hc.stream = "cam";
        hc.video.width = 320;
        hc.video.height = 180;
        hc.video.keyframe_interval_s = 0; // only the first frame and requested ones
        hc.send_audio = false;
        host = std::make_unique<host_type>(hc, sink::null{}, io, net);
        REQUIRE_FALSE(host->start());
        io_thread = std::thread([this] { io.run(); });
        feeder = std::thread([this] {
            source::test_pattern pattern(320, 180, 30);
            auto next = clock_type::now();
            while (!stop) {
                host->push_video(pattern.next(now()));
                next += 33ms;
                std::this_thread::sleep_until(next);
            }
        });
    }
    ~live_stream() {
        stop = true;
        feeder.join();
        std::promise<void> done;
        asio::post(io, [&] {
            host->stop();
            relay.stop();
            done.set_value();
        });
        done.get_future().wait();
        io.stop();
        io_thread.join();
    }
    template <class F>
    auto on_io(F&& f) {
        return onair_test::on_io(io, std::forward<F>(f));
    }
};

} // namespace

TEST_CASE("a viewer joining a running stream renders its first picture within 0.5 s") {
    live_stream s;
    std::this_thread::sleep_for(2s); // the stream's only keyframe so far is long gone
    // The stream's first key frame, and one more when frames encoded before the relay's
    // publish acknowledgement were held back (the first frame sent after it is a key frame).
    const auto keyframes_before = s.host->stats().keyframes;
    REQUIRE(keyframes_before >= 1);
    REQUIRE(keyframes_before <= 1 + (s.host->stats().video_frames_before_publish > 0 ? 1u : 0u));

    std::promise<clock_type::time_point> first;
    std::atomic<bool> got{false};
    auto on_frame = [&](const video_frame&) {
        if (!got.exchange(true)) first.set_value(clock_type::now());
    };
    using viewer_type = basic_viewer<codec_type, transport::memory, sink::callback<decltype(on_frame)>>;
    viewer_type::config vc;
    vc.relay = s.relay.local_endpoint();
    vc.stream = "cam";
    viewer_type viewer(vc, sink::callback{on_frame}, s.io, s.net);
    const auto joined = clock_type::now();
    s.on_io([&] { REQUIRE_FALSE(viewer.start()); });
    auto fut = first.get_future();
    REQUIRE(fut.wait_for(5s) == std::future_status::ready);
    const auto delay = fut.get() - joined;
    MESSAGE("first picture after " << std::chrono::duration<double, std::milli>(delay).count() << " ms");
    CHECK(delay <= 500ms);
    CHECK(s.host->stats().keyframes >= keyframes_before + 1);
    CHECK(s.host->stats().keyframe_requests >= 1);
    std::this_thread::sleep_for(300ms);
    s.on_io([&] { viewer.stop(); });
    CHECK(viewer.stats().decode_errors == 0);
}

TEST_CASE("an RTP forward added to a running stream starts with a keyframe within 0.5 s") {
    live_stream s;
    std::this_thread::sleep_for(1500ms);
    transport::memory target(s.io, s.net);
    std::array<std::uint8_t, 2048> buf;
    transport::endpoint from;
    std::optional<clock_type::time_point> first_video;
    bool first_was_keyframe = false;
    std::uint32_t video_ssrc = s.host->description().video_ssrc;
    std::function<void()> receive = [&] {
        target.async_receive_from(asio::buffer(buf), from, [&](std::error_code ec, std::size_t n) {
            if (ec) return;
            rtp::packet_view p;
            if (!rtp::parse(rtp::bytes_view(buf.data(), n), p) && p.ssrc == video_ssrc && !first_video) {
                first_video = clock_type::now();
                first_was_keyframe = rtp::starts_keyframe(rtp::video_format::vp8, p.payload);
            }
            receive();
        });
    };
    const auto added = clock_type::now();
    s.on_io([&] {
        receive();
        s.relay.relay().add_forward("cam", target.local_endpoint(), target.local_endpoint());
    });
    for (int i = 0; i < 250 && !s.on_io([&] { return first_video.has_value(); }); ++i) std::this_thread::sleep_for(20ms);
    const auto result = s.on_io([&] { return first_video; });
    REQUIRE(result.has_value());
    MESSAGE("first forwarded packet after " << std::chrono::duration<double, std::milli>(*result - added).count() << " ms");
    CHECK(*result - added <= 500ms);
    CHECK(first_was_keyframe);
    s.on_io([&] { target.close(); });
}
