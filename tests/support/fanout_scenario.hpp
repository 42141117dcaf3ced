// Test and benchmark support: one host, a relay and three viewers behind their own
// downlinks (memory transport + emulated_link, real time), for per-subscriber layer
// selection. The host sends VP8 with temporal layers and/or simulcast encodings; each
// viewer's link may have a bottleneck with a 300 ms drop-tail queue.
#pragma once

#include "support/on_io.hpp"

#include <onair/codec/opus.hpp>
#include <onair/codec/vp8.hpp>
#include <onair/host.hpp>
#include <onair/relay_node.hpp>
#include <onair/source/test_pattern.hpp>
#include <onair/source/tone.hpp>
#include <onair/transport/emulated_link.hpp>
#include <onair/transport/memory.hpp>
#include <onair/viewer.hpp>

#include <asio/io_context.hpp>

#include <array>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

namespace onair_test {

using namespace onair;
using namespace std::chrono_literals;

namespace fanout_detail {
using link = transport::emulated_link<transport::memory>;
using av = codec::av<codec::vp8, codec::opus>;
} // namespace fanout_detail
using fanout_detail::av;
using fanout_detail::link;

/// What the host sends, and each viewer's downlink (kbps, 0: no bottleneck).
struct setup {
    int simulcast = 1;
    int temporal_layers = 3;
    int kbps = 1000;
    std::array<int, 3> downlink_kbps{0, 1000, 600};
};

struct leg_outcome {
    viewer_stats viewer;
    transport::direction_stats downlink;
    std::int64_t estimate_bps = 0;
    int temporal = -1; ///< at the end
    int spatial = -1;
    /// Over the second half of the run, sampled every 100 ms: how often the selector was on
    /// each encoding and on each temporal layer (what it was forwarding, not its target).
    std::array<int, 3> half_on_spatial{};
    std::array<int, 4> half_on_temporal{};
    int half_samples = 0;
    /// Frames the viewer had played when the second half began.
    std::uint64_t frames_at_half = 0;
    /// The share of the frames sent in the second half that this viewer played.
    double second_half_frame_share(std::uint64_t sent_at_half, std::uint64_t sent) const {
        return sent > sent_at_half ? double(viewer.video_frames - frames_at_half) / double(sent - sent_at_half) : 0.0;
    }
    /// The share of the second half spent on encoding `e` / temporal layer `t`.
    double share_on_spatial(int e) const { return half_samples ? double(half_on_spatial[std::size_t(e)]) / half_samples : 0.0; }
    double share_on_temporal(int t) const { return half_samples ? double(half_on_temporal[std::size_t(t)]) / half_samples : 0.0; }
};
struct outcome {
    std::array<leg_outcome, 3> legs;
    host_stats host;
    relay::relay_stats relay;
    std::uint64_t frames_sent = 0;
    std::uint64_t frames_sent_at_half = 0;
    std::array<std::int64_t, 3> layer_bps{}; ///< what the relay measured: TL0, TL0-1, TL0-2 (of the top encoding)
    std::array<std::int64_t, 3> encoding_bps{}; ///< each encoding, all its layers (simulcast)
    std::int64_t audio_bps = 0;
};

/// Which encoding and temporal layer each viewer's selector forwards now (on the relay's thread).
template <class Relay, class Viewers>
void sample_layers(asio::io_context& io, Relay& relay, Viewers& viewers, outcome& o) {
    on_io(io, [&] {
        const auto* s = relay.relay().find("cam");
        if (!s) return 0;
        for (std::size_t i = 0; i < viewers.size(); ++i)
            for (const auto& sub : s->subscribers) {
                if (sub.video_to != viewers[i]->transport().local_endpoint() || !sub.selector) continue;
                auto& leg = o.legs[i];
                ++leg.half_samples;
                if (sub.selector->spatial() < leg.half_on_spatial.size()) ++leg.half_on_spatial[sub.selector->spatial()];
                if (sub.selector->temporal() < leg.half_on_temporal.size()) ++leg.half_on_temporal[sub.selector->temporal()];
            }
        return 0;
    });
}

/// Runs the scenario in real time for `seconds`; throws std::runtime_error when a role
/// cannot start.
inline outcome run_fanout(const setup& su, bool select_layers, double seconds = 10.0) {
    const auto& downlink_kbps = su.downlink_kbps;
    asio::io_context io(1);
    transport::memory_network net;
    transport::direction_config clean;
    clean.delay = 20ms;

    relay::sfu_config rc;
    rc.select_layers = select_layers;
    basic_relay_node<link> relay(relay::sfu{rc}, sink::null_packets{}, relay_node_config{}, transport::link_config{}, io, net);
    relay.start();
    basic_host<av, link>::config hc;
    hc.relay = relay.local_endpoint();
    hc.stream = "cam";
    hc.video.width = 640;
    hc.video.height = 360;
    hc.video.fps = 30;
    hc.video.bitrate_kbps = su.kbps;
    hc.video.temporal_layers = su.temporal_layers;
    hc.simulcast = su.simulcast;
    hc.max_pending_video = 1000;
    hc.congestion_control = false; // a clean uplink: the host sends its 1 Mbps throughout
    basic_host<av, link> host(hc, sink::null{}, transport::link_config{clean, clean, 3}, io, net);

    std::vector<std::unique_ptr<basic_viewer<av, link>>> viewers;
    for (std::size_t i = 0; i < downlink_kbps.size(); ++i) {
        basic_viewer<av, link>::config vc;
        vc.relay = relay.local_endpoint();
        vc.stream = "cam";
        transport::direction_config down = clean;
        if (downlink_kbps[i]) {
            down.rate_kbps = downlink_kbps[i];
            down.queue = 300ms;
        }
        viewers.push_back(std::make_unique<basic_viewer<av, link>>(vc, sink::null{}, transport::link_config{clean, down, 10 + unsigned(i)},
                                                                   io, net));
        if (viewers.back()->start()) throw std::runtime_error("viewer did not start");
    }
    std::thread net_thread([&] { io.run(); });
    for (int i = 0; i < 500 && !on_io(io, [&] {
             const auto* s = relay.relay().find("cam");
             return s && s->subscribers.size() == viewers.size();
         }); ++i)
        std::this_thread::sleep_for(10ms);
    if (on_io(io, [&] { return host.start(); })) throw std::runtime_error("host did not start");

    outcome o;
    source::test_pattern pattern(640, 360, 30);
    source::tone tone;
    const auto start = std::chrono::steady_clock::now();
    const int frames = static_cast<int>(seconds * 30), audio = static_cast<int>(seconds * 50);
    for (int v = 0, a = 0; v < frames || a < audio;) {
        const auto tv = start + std::chrono::microseconds(std::int64_t{v} * 1'000'000 / 30);
        const auto ta = start + std::chrono::microseconds(std::int64_t{a} * 20'000);
        if (v < frames && (a >= audio || tv <= ta)) {
            std::this_thread::sleep_until(tv);
            host.push_video(pattern.next(now()));
            ++v;
            if (v == frames / 2) {
                const auto h = host.stats(); // atomic counters
                o.frames_sent_at_half = h.video_frames_encoded - h.video_frames_before_publish;
                on_io(io, [&] {
                    for (std::size_t i = 0; i < viewers.size(); ++i) o.legs[i].frames_at_half = viewers[i]->stats().video_frames;
                    return 0;
                });
            }
            if (v % 3 == 0 && v >= frames / 2) sample_layers(io, relay, viewers, o);
        } else {
            std::this_thread::sleep_until(ta);
            host.push_audio(tone.next(now()));
            ++a;
        }
    }
    on_io(io, [&] { // the layers' rates over the last second, as the relay measured them
        auto* s = const_cast<relay::sfu::stream*>(relay.relay().find("cam"));
        const auto t = std::chrono::steady_clock::now();
        for (std::size_t l = 0; l < 3; ++l) o.layer_bps[l] = s->layers.rate_bps(std::size_t(su.simulcast - 1), l, t);
        for (std::size_t e = 0; e < 3; ++e) o.encoding_bps[e] = s->layers.rate_bps(e, 3, t);
        o.audio_bps = s->audio_rate.rate_bps(0, 0, t);
        return 0;
    });
    std::this_thread::sleep_for(1000ms);
    on_io(io, [&] {
        const auto* s = relay.relay().find("cam");
        for (std::size_t i = 0; i < viewers.size(); ++i) {
            auto& leg = o.legs[i];
            leg.viewer = viewers[i]->stats();
            leg.downlink = viewers[i]->transport().receive_stats();
            for (const auto& sub : s->subscribers) {
                if (sub.video_to != viewers[i]->transport().local_endpoint()) continue;
                leg.estimate_bps = sub.leg.target_bps();
                if (sub.selector) {
                    leg.temporal = sub.selector->temporal();
                    leg.spatial = sub.selector->spatial();
                }
            }
        }
        o.relay = relay.relay().stats();

        for (auto& v : viewers) v->stop();
        host.stop();
        relay.stop();
        return 0;
    });
    io.stop();
    net_thread.join();
    o.host = host.stats();
    o.frames_sent = o.host.video_frames_encoded - o.host.video_frames_before_publish;
    return o;
}

} // namespace onair_test
