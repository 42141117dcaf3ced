// Test and benchmark support: one host, a relay and three viewers behind their own
// downlinks (memory transport + emulated_link, real time), for per-subscriber layer
// selection. The host sends VP8 (or VP9) with temporal layers, simulcast encodings or VP9
// spatial layers; each viewer's link may have a bottleneck with a 300 ms drop-tail queue,
// and counts the sizes of the pictures it renders.
#pragma once

#include "support/on_io.hpp"

#include <onair/codec/opus.hpp>
#include <onair/codec/vp8.hpp>
#include <onair/codec/vp9.hpp>
#include <onair/host.hpp>
#include <onair/relay_node.hpp>
#include <onair/source/test_pattern.hpp>
#include <onair/source/tone.hpp>
#include <onair/transport/emulated_link.hpp>
#include <onair/transport/memory.hpp>
#include <onair/sink/callback.hpp>
#include <onair/viewer.hpp>

#include <asio/io_context.hpp>

#include <array>
#include <atomic>
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

/// The widths a viewer renders: 160, 320, 640 and anything else (counted on its codec thread).
struct rendered_sizes {
    std::shared_ptr<std::array<std::atomic<std::uint64_t>, 4>> counts = std::make_shared<std::array<std::atomic<std::uint64_t>, 4>>();
    void operator()(const video_frame& f) const {
        const std::size_t i = f.width == 160 ? 0 : f.width == 320 ? 1 : f.width == 640 ? 2 : 3;
        (*counts)[i].fetch_add(1, std::memory_order_relaxed);
    }
    std::array<std::uint64_t, 4> snapshot() const {
        std::array<std::uint64_t, 4> a{};
        for (std::size_t i = 0; i < a.size(); ++i) a[i] = (*counts)[i].load(std::memory_order_relaxed);
        return a;
    }
};

/// What the host sends, and each viewer's downlink (kbps, 0: no bottleneck).
struct setup {
    int simulcast = 1;
    int spatial_layers = 1; ///< VP9 spatial layers (run_fanout<codec::vp9>)
    int temporal_layers = 3;
    int kbps = 1000;
    std::array<int, 3> downlink_kbps{0, 1000, 600};
    std::array<double, 3> downlink_loss_percent{}; ///< random loss on each viewer's downlink
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
    std::array<int, 4> half_on_svc{}; ///< on spatial layer 0, 1, 2, all (VP9 SVC)
    int half_samples = 0;
    /// Pictures rendered 160, 320, 640 wide (and other), in all and before the second half.
    std::array<std::uint64_t, 4> rendered{};
    std::array<std::uint64_t, 4> rendered_at_half{};
    /// The share of the second half's rendered pictures that were `width` wide (160, 320, 640).
    double second_half_width_share(int width) const {
        const std::size_t i = width == 160 ? 0 : width == 320 ? 1 : 2;
        std::uint64_t all = 0;
        for (std::size_t k = 0; k < 4; ++k) all += rendered[k] - rendered_at_half[k];
        return all ? double(rendered[i] - rendered_at_half[i]) / double(all) : 0.0;
    }
    /// Frames the viewer had played when the second half began.
    std::uint64_t frames_at_half = 0;
    /// The share of the frames sent in the second half that this viewer played.
    double second_half_frame_share(std::uint64_t sent_at_half, std::uint64_t sent) const {
        return sent > sent_at_half ? double(viewer.video_frames - frames_at_half) / double(sent - sent_at_half) : 0.0;
    }
    /// The share of the second half spent on encoding `e` / temporal layer `t`.
    double share_on_spatial(int e) const { return half_samples ? double(half_on_spatial[std::size_t(e)]) / half_samples : 0.0; }
    double share_on_temporal(int t) const { return half_samples ? double(half_on_temporal[std::size_t(t)]) / half_samples : 0.0; }
    double share_on_svc(int s) const { return half_samples ? double(half_on_svc[std::size_t(s)]) / half_samples : 0.0; }
};
struct outcome {
    std::array<leg_outcome, 3> legs;
    host_stats host;
    relay::relay_stats relay;
    std::uint64_t frames_sent = 0;
    std::uint64_t frames_sent_at_half = 0;
    std::array<std::int64_t, 3> layer_bps{}; ///< what the relay measured: TL0, TL0-1, TL0-2 (of the top encoding)
    std::array<std::int64_t, 3> encoding_bps{}; ///< each encoding, all its layers (simulcast); each spatial layer (SVC)
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
                ++leg.half_on_svc[std::min<std::size_t>(sub.selector->svc_layer(), 3)];
            }
        return 0;
    });
}

/// Runs the scenario in real time for `seconds` with `Video` (codec::vp8 or codec::vp9);
/// throws std::runtime_error when a role cannot start.
template <class Video = codec::vp8>
outcome run_fanout(const setup& su, bool select_layers, double seconds = 10.0) {
    using media = codec::av<Video, codec::opus>;
    using host_type = basic_host<media, link>;
    using viewer = basic_viewer<media, link, sink::callback<rendered_sizes>>;
    const auto& downlink_kbps = su.downlink_kbps;
    asio::io_context io(1);
    transport::memory_network net;
    transport::direction_config clean;
    clean.delay = 20ms;

    relay::sfu_config rc;
    rc.select_layers = select_layers;
    basic_relay_node<link> relay(relay::sfu{rc}, sink::null_packets{}, relay_node_config{}, transport::link_config{}, io, net);
    relay.start();
    typename host_type::config hc;
    hc.relay = relay.local_endpoint();
    hc.stream = "cam";
    hc.video.width = 640;
    hc.video.height = 360;
    hc.video.fps = 30;
    hc.video.bitrate_kbps = su.kbps;
    hc.video.temporal_layers = su.temporal_layers;
    hc.video.spatial_layers = su.spatial_layers;
    hc.simulcast = su.simulcast;
    hc.max_pending_video = 1000;
    hc.congestion_control = false; // a clean uplink: the host sends its 1 Mbps throughout
    host_type host(hc, sink::null{}, transport::link_config{clean, clean, 3}, io, net);

    std::vector<std::unique_ptr<viewer>> viewers;
    std::vector<rendered_sizes> sizes(downlink_kbps.size());
    for (std::size_t i = 0; i < downlink_kbps.size(); ++i) {
        typename viewer::config vc;
        vc.relay = relay.local_endpoint();
        vc.stream = "cam";
        transport::direction_config down = clean;
        if (downlink_kbps[i]) {
            down.rate_kbps = downlink_kbps[i];
            down.queue = 300ms;
        }
        down.loss_percent = su.downlink_loss_percent[i];
        viewers.push_back(std::make_unique<viewer>(vc, sink::callback<rendered_sizes>{sizes[i]},
                                                   transport::link_config{clean, down, 10 + unsigned(i)}, io, net));
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
                    for (std::size_t i = 0; i < viewers.size(); ++i) {
                        o.legs[i].frames_at_half = viewers[i]->stats().video_frames;
                        o.legs[i].rendered_at_half = sizes[i].snapshot();
                    }
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
            leg.rendered = sizes[i].snapshot();
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
