// Test support: host -> relay -> two viewers, with everything each side sent and rendered
// recorded for the checks of tests/integration/forwarding_*.cpp.
#pragma once

#include "support/tap.hpp"

#include <onair/codec/opus.hpp>
#include <onair/core/psnr.hpp>
#include <onair/host.hpp>
#include <onair/relay_node.hpp>
#include <onair/rtp/packet.hpp>
#include <onair/sink/callback.hpp>
#include <onair/source/barcode.hpp>
#include <onair/source/test_pattern.hpp>
#include <onair/source/tone.hpp>
#include <onair/transport/emulated_link.hpp>
#include <onair/transport/memory.hpp>
#include <onair/transport/udp.hpp>
#include <onair/viewer.hpp>

#include <asio/io_context.hpp>

#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace onair_test {

/// What one viewer rendered.
struct rendered {
    std::mutex mu;
    std::vector<std::uint32_t> frame_numbers; ///< barcodes read, in render order
    std::uint64_t unreadable = 0;
    double min_psnr = 1e9;
    std::uint64_t psnr_checked = 0;
    std::vector<onair::timestamp> audio_capture_times;
    std::uint64_t audio_samples = 0;
    bool audio_sizes_ok = true;
};

/// Frames the host encoded, by barcode number.
struct sent_frames {
    std::mutex mu;
    std::map<std::uint32_t, onair::video_frame> frames;
};

struct scenario_result {
    onair::host_stats host;
    std::vector<onair::viewer_stats> viewers;
    tap_log host_log;
    std::vector<std::unique_ptr<tap_log>> viewer_logs;
    std::vector<std::unique_ptr<rendered>> views;
    std::uint64_t frames_pushed = 0;
    std::uint64_t audio_pushed = 0;
    onair::relay::relay_stats relay;
    onair::rtp::stream_description description; ///< as the host announced it
};

/// Transport environments: each makes the arguments a tap<...> transport is built from.
struct udp_env {
    using transport = tap<onair::transport::udp>;
    asio::ip::udp::endpoint local{asio::ip::make_address_v4("127.0.0.1"), 0};
    template <class Role, class... A>
    std::unique_ptr<Role> make(asio::io_context& io, tap_log& log, A&&... a) {
        return std::make_unique<Role>(std::forward<A>(a)..., log, io, local);
    }
};
struct memory_env {
    using transport = tap<onair::transport::memory>;
    onair::transport::memory_network net;
    template <class Role, class... A>
    std::unique_ptr<Role> make(asio::io_context& io, tap_log& log, A&&... a) {
        return std::make_unique<Role>(std::forward<A>(a)..., log, io, net);
    }
};

/// Every role behind its own emulated link (over the memory transport). run_forwarding makes
/// the relay, then the host, then the viewers: they get links[0], links[1], links[2]... (the
/// last one repeats), so a test can impair each leg.
struct emulated_env {
    using transport = tap<onair::transport::emulated_link<onair::transport::memory>>;
    onair::transport::memory_network net;
    std::vector<onair::transport::link_config> links{onair::transport::link_config{}};
    std::size_t made = 0;
    template <class Role, class... A>
    std::unique_ptr<Role> make(asio::io_context& io, tap_log& log, A&&... a) {
        const auto& link = links[std::min(made++, links.size() - 1)];
        return std::make_unique<Role>(std::forward<A>(a)..., log, link, io, net);
    }
};

/// Publishes `seconds` of test pattern + tone in real time and plays it on `viewers` viewers.
template <class Video, class Env>
scenario_result run_forwarding(Env& env, int width, int height, int fps, int kbps, double seconds, int viewers,
                               std::size_t audio_redundancy = 0) {
    using namespace onair;
    using codec_type = codec::av<Video, codec::opus>;
    using T = typename Env::transport;
    scenario_result r;
    sent_frames sent;
    asio::io_context io(1);

    tap_log relay_log;
    auto relay = env.template make<basic_relay_node<T>>(io, relay_log, relay::sfu{}, sink::null_packets{}, relay_node_config{});
    relay->start();

    auto on_sent = [&sent](const video_frame& f) {
        if (auto code = source::read_barcode(f)) {
            std::lock_guard lock(sent.mu);
            sent.frames.emplace(code->frame_number, f);
        }
    };
    using host_type = basic_host<codec_type, T, sink::callback<decltype(on_sent)>>;
    typename host_type::config hc;
    hc.relay = relay->local_endpoint();
    hc.stream = "cam";
    hc.video.width = width;
    hc.video.height = height;
    hc.video.fps = fps;
    hc.video.bitrate_kbps = kbps;
    hc.max_pending_video = 1000; // a loaded test machine may stall the encoder; never drop
    hc.audio_redundancy = audio_redundancy;
    // A fixed-rate sender: these scenarios check what is forwarded packet for packet and the
    // quality at the configured bitrate (congestion control would start lower and add
    // padding probes); tests/integration/congestion.cpp covers the adaptive sender.
    hc.congestion_control = false;
    if (audio_redundancy) {
        hc.audio.fec = true;
        hc.audio.expected_loss_pct = 20;
    }
    auto host = env.template make<host_type>(io, r.host_log, hc, sink::callback{on_sent});

    auto make_view_sink = [&sent](rendered* v) {
        return sink::callback{[&sent, v](const auto& f) {
            if constexpr (std::is_same_v<std::decay_t<decltype(f)>, video_frame>) {
                auto code = source::read_barcode(f);
                std::lock_guard lock(v->mu);
                if (!code) {
                    ++v->unreadable;
                    return;
                }
                v->frame_numbers.push_back(code->frame_number);
                std::lock_guard lock2(sent.mu);
                if (auto it = sent.frames.find(code->frame_number); it != sent.frames.end()) {
                    v->min_psnr = std::min(v->min_psnr, psnr(it->second, f).y);
                    ++v->psnr_checked;
                }
            } else {
                std::lock_guard lock(v->mu);
                v->audio_capture_times.push_back(f.capture_time);
                v->audio_samples += f.samples_per_channel();
                v->audio_sizes_ok = v->audio_sizes_ok && f.samples_per_channel() == 960;
            }
        }};
    };
    using view_sink = decltype(make_view_sink(nullptr));
    using viewer_type = basic_viewer<codec_type, T, view_sink>;
    std::vector<std::unique_ptr<viewer_type>> vs;
    for (int i = 0; i < viewers; ++i) {
        r.viewer_logs.push_back(std::make_unique<tap_log>());
        r.views.push_back(std::make_unique<rendered>());
        typename viewer_type::config vc;
        vc.relay = relay->local_endpoint();
        vc.stream = "cam";
        vs.push_back(env.template make<viewer_type>(io, *r.viewer_logs.back(), vc, make_view_sink(r.views.back().get())));
        if (vs.back()->start()) throw std::runtime_error("viewer start failed");
    }
    std::thread net([&] { io.run(); });
    // Viewers subscribe before the host publishes, so every frame is theirs to get.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
        std::promise<std::size_t> subs;
        auto fut = subs.get_future();
        asio::post(io, [&] {
            const auto* s = relay->relay().find("cam");
            subs.set_value(s ? s->subscribers.size() : 0);
        });
        if (fut.get() == static_cast<std::size_t>(viewers)) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (host->start()) throw std::runtime_error("host start failed");

    source::test_pattern pattern(width, height, fps);
    source::tone tone;
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    const int frames = static_cast<int>(seconds * fps);
    const int audio_frames = static_cast<int>(seconds * 50);
    int v = 0, a = 0;
    while (v < frames || a < audio_frames) {
        const auto tv = start + std::chrono::microseconds(static_cast<std::int64_t>(v) * 1'000'000 / fps);
        const auto ta = start + std::chrono::microseconds(static_cast<std::int64_t>(a) * 20'000);
        if (v < frames && (a >= audio_frames || tv <= ta)) {
            std::this_thread::sleep_until(tv);
            host->push_video(pattern.next(now()));
            ++v;
        } else {
            std::this_thread::sleep_until(ta);
            host->push_audio(tone.next(now()));
            ++a;
        }
    }
    r.frames_pushed = static_cast<std::uint64_t>(v);
    r.audio_pushed = static_cast<std::uint64_t>(a);

    // Drain: wait until every viewer rendered all encoded frames (or a generous timeout).
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    asio::post(io, [&] { host->stop(); });
    // Stop when everything arrived, or nothing more arrived for 2 s (frames lost for good).
    const auto drain_deadline = clock::now() + std::chrono::seconds(20);
    std::uint64_t last_total = 0;
    auto last_progress = clock::now();
    for (;;) {
        const auto hs = host->stats();
        bool done = true;
        std::uint64_t total = 0;
        for (auto& viewer : vs) {
            const auto st = viewer->stats();
            done = done && st.video_frames >= hs.video_frames_encoded && st.audio_frames >= hs.audio_frames_encoded;
            total += st.video_frames + st.audio_frames;
        }
        if (total != last_total) {
            last_total = total;
            last_progress = clock::now();
        }
        if (done || clock::now() > drain_deadline || clock::now() - last_progress > std::chrono::seconds(2)) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::promise<void> stopped;
    asio::post(io, [&] {
        for (auto& viewer : vs) viewer->stop();
        r.relay = relay->relay().stats();
        relay->stop();
        stopped.set_value();
    });
    stopped.get_future().wait();
    net.join();
    r.host = host->stats();
    r.description = host->description();
    for (auto& viewer : vs) r.viewers.push_back(viewer->stats());
    return r;
}

/// RTP datagrams (not RTCP) in `log`.
inline std::vector<std::vector<std::uint8_t>> rtp_only(const std::vector<std::vector<std::uint8_t>>& log) {
    std::vector<std::vector<std::uint8_t>> out;
    for (const auto& d : log)
        if (!onair::rtp::is_rtcp(d)) out.push_back(d);
    return out;
}

} // namespace onair_test
