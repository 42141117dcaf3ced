// onair-bench-resilience — how well a stream plays through loss, in real time.
//
// One publisher -> relay -> viewer, 640x360@30 VP8 at 1 Mbps plus Opus (RED with two
// redundant frames, in-band FEC), every role behind its own emulated_link over the in-process
// memory transport. The host's and the viewer's links each add 50 ms one-way delay +-10 ms
// jitter and the point's loss in both directions (media, RTCP and retransmissions alike),
// so a packet crosses two lossy legs and the relay repairs each hop (NACK/RTX). Each point
// runs the production host, relay and viewer code for --seconds of real time.
//
// Printed per point: residual video packet loss (given up after recovery / sent), freeze
// ratio (gaps > 500 ms between rendered frames / playback time), audio concealment ratio
// (PLC frames / frames played), end-to-end video latency p50/p95 (render time - capture
// time), A/V offset p50, and the recovery overhead: retransmitted bytes on both legs plus
// RED redundancy, over the media bytes the host sent.
#include "common/cli.hpp"

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
#include <asio/post.hpp>

#include <chrono>
#include <cstdio>
#include <future>
#include <string>
#include <thread>
#include <vector>

using namespace onair;
using namespace std::chrono_literals;

namespace {

using link = transport::emulated_link<transport::memory>;
using av = codec::av<codec::vp8, codec::opus>;

struct point {
    std::string name;
    double loss = 0;
    double burst = 0; ///< 0: random loss; else Gilbert-Elliott mean burst length
};

struct outcome {
    double residual = 0;
    double freeze = 0;
    double concealment = 0;
    double p50 = 0, p95 = 0, p99 = 0;
    double av_p50 = 0;
    double overhead = 0;
    std::uint64_t frames = 0, frames_sent = 0, freezes = 0;
    double audio_delay = 0, video_delay = 0;
    double media_kbps = 0;
    viewer_stats vs;
    host_stats hs;
    relay::relay_stats rs;
};

template <class F>
auto on_io(asio::io_context& io, F&& f) {
    std::packaged_task<decltype(f())()> task(std::forward<F>(f));
    auto fut = task.get_future();
    asio::post(io, [&task] { task(); });
    return fut.get();
}

outcome run(const point& pt, double seconds, std::uint64_t seed, int delay_ms, int jitter_ms, bool host_leg_loss, bool cc) {
    asio::io_context io(1);
    transport::memory_network net;
    transport::direction_config leg;
    leg.loss_percent = pt.loss;
    leg.mean_burst = pt.burst;
    leg.delay = std::chrono::milliseconds(delay_ms);
    leg.jitter = std::chrono::milliseconds(jitter_ms);
    leg.reorder = true;
    transport::direction_config host_leg = leg;
    if (!host_leg_loss) host_leg.loss_percent = host_leg.mean_burst = 0;
    const transport::link_config host_link{host_leg, host_leg, seed};
    const transport::link_config viewer_link{leg, leg, seed + 1000};

    basic_relay_node<link> relay(relay::sfu{}, sink::null_packets{}, relay_node_config{}, transport::link_config{}, io, net);
    relay.start();

    basic_host<av, link>::config hc;
    hc.relay = relay.local_endpoint();
    hc.stream = "cam";
    hc.video.width = 640;
    hc.video.height = 360;
    hc.video.fps = 30;
    hc.video.bitrate_kbps = 1000;
    hc.audio.fec = true;
    hc.audio.expected_loss_pct = 20;
    hc.audio_redundancy = 2;
    hc.max_pending_video = 1000;
    // A fixed-rate sender: this benchmark measures recovery at 1 Mbps, and random loss
    // would have the congestion controller's loss-based part lower the rate (see
    // onair-bench-cc for that side).
    hc.congestion_control = cc;
    basic_host<av, link> host(hc, sink::null{}, host_link, io, net);

    basic_viewer<av, link>::config vc;
    vc.relay = relay.local_endpoint();
    vc.stream = "cam";
    basic_viewer<av, link> viewer(vc, sink::null{}, viewer_link, io, net);
    if (viewer.start()) throw std::runtime_error("viewer start failed");
    std::thread net_thread([&] { io.run(); });
    for (int i = 0; i < 500 && !on_io(io, [&] {
             const auto* s = relay.relay().find("cam");
             return s && !s->subscribers.empty();
         }); ++i)
        std::this_thread::sleep_for(10ms);
    if (on_io(io, [&] { return host.start(); })) throw std::runtime_error("host start failed");

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
        } else {
            std::this_thread::sleep_until(ta);
            host.push_audio(tone.next(now()));
            ++a;
        }
    }
    std::this_thread::sleep_for(1500ms); // the last frames' repair and playout
    const auto vs = viewer.stats();
    const auto hs = host.stats();
    const auto rs = on_io(io, [&] { return relay.relay().stats(); });
    on_io(io, [&] {
        viewer.stop();
        host.stop();
        relay.stop();
        return 0;
    });
    io.stop();
    net_thread.join();

    outcome o;
    o.residual = hs.video_packets_sent ? static_cast<double>(vs.video_packets_lost) / static_cast<double>(hs.video_packets_sent) : 0;
    o.freeze = vs.freeze_ratio();
    o.freezes = vs.freezes;
    o.concealment = vs.concealment_ratio();
    o.p50 = vs.latency_ms.percentile(50);
    o.p95 = vs.latency_ms.percentile(95);
    o.p99 = vs.latency_ms.percentile(99);
    o.av_p50 = vs.av_offset_ms.percentile(50);
    // Recovery costs: retransmissions, RED blocks and FEC on the host leg; retransmissions
    // and FEC on the viewer leg.
    const double extra = static_cast<double>(hs.retransmission_bytes + hs.redundancy_bytes + hs.fec_bytes +
                                             rs.retransmission_bytes + rs.fec_bytes);
    const double media = static_cast<double>(hs.bytes_sent - hs.retransmission_bytes - hs.redundancy_bytes - hs.fec_bytes);
    o.overhead = media > 0 ? extra / media : 0;
    o.frames = vs.video_frames;
    o.frames_sent = hs.video_frames_encoded - hs.video_frames_before_publish; // the first ~RTT waits for the publish ack
    o.audio_delay = vs.audio_target_delay_ms;
    o.media_kbps = media * 8 / 1000 / seconds;
    o.video_delay = vs.video_target_delay_ms;
    o.vs = vs;
    o.hs = hs;
    o.rs = rs;
    return o;
}

} // namespace

int main(int argc, char** argv) {
    onair_examples::command_line cli(
        "onair-bench-resilience", "loss sweep: host -> relay -> viewer through emulated lossy links, in real time",
        {{"seconds", "N", "seconds per point (default 30)"},
         {"only", "NAME", "run only the point named NAME (e.g. 20%, ge20%)"},
         {"delay", "MS", "one-way delay per leg (default 50)"},
         {"jitter", "MS", "jitter per leg (default 10)"},
         {"seed", "N", "first seed (default 1)"},
         {"legs", "both|viewer", "which legs lose packets: both (default) or only relay <-> viewer"},
         {"verbose", "", "after each row, how each repair mechanism did"},
         {"cc", "", "congestion control on (the host paces and follows its bandwidth estimate)"}});
    return onair_examples::guarded_main(cli, argc, argv, [&]() -> int {
        const double seconds = cli.number<double>("seconds", 30, 1, 3600);
        const int delay = cli.number<int>("delay", 50, 0, 1000);
        const int jitter = cli.number<int>("jitter", 10, 0, 1000);
        const auto seed = cli.number<std::uint64_t>("seed", 1, 0, ~std::uint64_t{0});
        const std::string only = cli.get("only");
        const std::string legs = cli.get("legs", "both");
        if (legs != "both" && legs != "viewer") throw onair_examples::usage_error("--legs: expected both or viewer");
        const std::vector<point> points{{"0%", 0, 0},   {"5%", 5, 0},   {"10%", 10, 0},    {"20%", 20, 0},   {"30%", 30, 0},
                                        {"40%", 40, 0}, {"50%", 50, 0}, {"ge10%", 10, 3}, {"ge20%", 20, 3}};
        std::printf("onair-bench-resilience: 640x360@30 VP8 1 Mbps + Opus (RED x2, FEC), %.0f s per point, "
                    "%d ms +-%d ms one-way on each of two legs, loss both ways on %s\n\n",
                    seconds, delay, jitter, legs == "both" ? "both legs" : "the relay <-> viewer leg only");
        std::printf("| loss per leg | residual video loss | freeze ratio | freezes | audio concealment | latency p50 | latency p95 | "
                    "latency p99 | A/V offset p50 | recovery overhead | media | frames | audio/video target delay |\n");
        std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        std::fflush(stdout);
        bool any = false;
        for (std::size_t i = 0; i < points.size(); ++i) {
            const auto& p = points[i];
            if (!only.empty() && only != p.name) continue;
            any = true;
            const outcome o = run(p, seconds, seed + i, delay, jitter, legs == "both", cli.has("cc"));
            std::printf("| %s%s | %.3f %% | %.2f %% | %llu | %.2f %% | %.0f ms | %.0f ms | %.0f ms | %+.0f ms | %.1f %% | %.0f kbps | %llu/%llu | "
                        "%.0f/%.0f ms |\n",
                        p.burst > 0 ? "GE burst 3, " : "", p.name.c_str() + (p.burst > 0 ? 2 : 0), o.residual * 100,
                        o.freeze * 100, static_cast<unsigned long long>(o.freezes), o.concealment * 100, o.p50, o.p95,
                        o.p99, o.av_p50, o.overhead * 100, o.media_kbps, static_cast<unsigned long long>(o.frames),
                        static_cast<unsigned long long>(o.frames_sent), o.audio_delay, o.video_delay);
            if (cli.has("verbose")) {
                const auto& v = o.vs;
                const auto& h = o.hs;
                const auto& r = o.rs;
                if (cli.has("cc"))
                    std::printf("  cc: target %lld kbps, acked %lld kbps, video %d kbps, overuses %llu, probes %llu, padding %llu, "
                                "feedback %llu (malformed %llu), pacer queue %.0f ms, pacer dropped %llu\n",
                                static_cast<long long>(h.target_bps / 1000), static_cast<long long>(h.acked_bps / 1000), h.video_target_kbps,
                                static_cast<unsigned long long>(h.overuses), static_cast<unsigned long long>(h.probes),
                                static_cast<unsigned long long>(h.padding_packets), static_cast<unsigned long long>(h.transport_feedback),
                                static_cast<unsigned long long>(h.malformed_feedback), h.pacer_queue_ms,
                                static_cast<unsigned long long>(h.pacer_dropped));
                std::printf("  host: fec %llu pkts (loss %.1f %%, %u/%u per 10), rtx %llu (audio %llu), keyframes %llu (%llu asked)\n"
                            "  relay: fec in %llu recovered, red %llu rebuilt, rtx in %llu, fec out %llu, rtx out %llu, upstream nacks %llu\n"
                            "  viewer: video missing %llu, fec %llu, recovered %llu, lost %llu, skipped frames %llu, key requests %llu, "
                            "freezes %llu, rtt %.0f ms; audio decoded %llu, fec %llu, red %llu, concealed %llu (expand %llu), late %llu, missing %llu, "
                            "nacks %llu, rtx %llu, comfort %llu, skipped %llu; audio delay %.0f (target %.0f), sync extra audio %.0f video %.0f, "
                            "audio latency p50 %.0f\n",
                            static_cast<unsigned long long>(h.fec_packets), h.reported_loss * 100, h.fec_delta_per_10,
                            h.fec_key_per_10, static_cast<unsigned long long>(h.retransmissions),
                            static_cast<unsigned long long>(h.audio_retransmissions), static_cast<unsigned long long>(h.keyframes),
                            static_cast<unsigned long long>(h.keyframe_requests), static_cast<unsigned long long>(r.fec_recovered),
                            static_cast<unsigned long long>(r.red_rebuilt), static_cast<unsigned long long>(r.upstream_recovered),
                            static_cast<unsigned long long>(r.fec_sent), static_cast<unsigned long long>(r.retransmissions),
                            static_cast<unsigned long long>(r.upstream_nacks), static_cast<unsigned long long>(v.video_packets_missing),
                            static_cast<unsigned long long>(v.video_fec_recovered), static_cast<unsigned long long>(v.video_packets_recovered),
                            static_cast<unsigned long long>(v.video_packets_lost), static_cast<unsigned long long>(v.video_frames_skipped),
                            static_cast<unsigned long long>(v.keyframe_requests), static_cast<unsigned long long>(v.freezes), v.rtt_ms,
                            static_cast<unsigned long long>(v.audio_frames), static_cast<unsigned long long>(v.audio_fec),
                            static_cast<unsigned long long>(v.audio_red_recovered), static_cast<unsigned long long>(v.audio_concealed), static_cast<unsigned long long>(v.audio_expanded),
                            static_cast<unsigned long long>(v.audio_late), static_cast<unsigned long long>(v.audio_packets_missing),
                            static_cast<unsigned long long>(v.audio_nack_requests), static_cast<unsigned long long>(v.audio_retransmissions),
                            static_cast<unsigned long long>(v.comfort_noise), static_cast<unsigned long long>(v.audio_skipped),
                            v.audio_current_delay_ms, v.audio_target_delay_ms, v.audio_sync_delay_ms, v.video_sync_delay_ms,
                            v.audio_latency_ms.percentile(50));
            }
            std::fflush(stdout);
        }
        if (!any) throw onair_examples::usage_error("--only: no point named '" + only + "'");
        return 0;
    });
}
