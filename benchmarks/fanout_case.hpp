// onair-bench-cc's fan-out case: one publisher, three viewers behind 300 kbps, 1 Mbps and 4 Mbps.
//
// The host sends three simulcast encodings of 640x360@30 VP8 (1.5 Mbps, 450 kbps at 320x180,
// 135 kbps at 160x90) through a relay; each viewer's downlink has its bottleneck with a
// 300 ms drop-tail queue (transport::emulated_link over the memory transport, real time,
// the production host, relay and viewer code). With per-subscriber selection the relay
// estimates each leg from that viewer's transport-wide feedback and forwards the encoding
// it carries; the same run without selection (every viewer gets the top encoding, as a
// forwarding relay without layers does) is printed beside it as the baseline. A third run
// has the 4 Mbps viewer alone, to show the weak viewers do not affect it. A fourth sends the
// same picture as one VP9 stream with three spatial layers (SVC, 1.5 Mbps in one SSRC), of
// which the relay forwards each viewer the spatial layers its link carries.
#pragma once

#include "support/fanout_scenario.hpp"

#include <cstdio>

namespace onair_bench {

inline void print_fanout(const char* mode, const onair_test::setup& su, const onair_test::outcome& o, std::size_t legs) {
    for (std::size_t i = 0; i < legs; ++i) {
        const auto& l = o.legs[i];
        const double sent = static_cast<double>(o.frames_sent);
        const double drops = l.downlink.sent ? 100.0 * static_cast<double>(l.downlink.dropped_queue) / static_cast<double>(l.downlink.sent) : 0;
        char layer[32] = "all (top)";
        if (l.spatial >= 0) std::snprintf(layer, sizeof layer, "%d", l.spatial);
        std::printf("| %s | %d kbps | %s | %.0f %% | %.2f %% | %.0f ms | %.1f %% | %lld kbps |\n", mode, su.downlink_kbps[i], layer,
                    100.0 * static_cast<double>(l.viewer.video_frames) / sent, 100.0 * l.viewer.freeze_ratio(),
                    l.viewer.latency_ms.count() ? l.viewer.latency_ms.percentile(95) : 0.0, drops,
                    static_cast<long long>(l.estimate_bps / 1000));
    }
}

/// Runs the case (three runs of `seconds` each, real time) and prints its table.
inline void run_fanout_case(double seconds) {
    onair_test::setup su;
    su.simulcast = 3;
    su.temporal_layers = 1;
    su.kbps = 1500;
    su.downlink_kbps = {4000, 1000, 300};
    std::printf("\nfan-out: 3 simulcast encodings (1500 / 450 / 135 kbps), %.0f s per run, real time\n\n", seconds);
    std::printf("| relay | viewer link | encoding | frames shown | freeze ratio | p95 latency | queue drops | leg estimate |\n");
    std::printf("|---|---|---|---|---|---|---|---|\n");
    const auto on = onair_test::run_fanout(su, true, seconds);
    print_fanout("selection", su, on, 3);
    const auto off = onair_test::run_fanout(su, false, seconds);
    print_fanout("no selection", su, off, 3);
    onair_test::setup alone = su;
    alone.downlink_kbps = {4000, 4000, 4000};
    const auto solo = onair_test::run_fanout(alone, true, seconds);
    print_fanout("selection, all at 4 Mbps", alone, solo, 1);
    std::printf("\nencodings as sent: %lld / %lld / %lld kbps; audio %lld kbps\n", static_cast<long long>(on.encoding_bps[0] / 1000),
                static_cast<long long>(on.encoding_bps[1] / 1000), static_cast<long long>(on.encoding_bps[2] / 1000),
                static_cast<long long>(on.audio_bps / 1000));

    onair_test::setup svc = su;
    svc.simulcast = 1;
    svc.spatial_layers = 3;
    auto layered = onair_test::run_fanout<onair::codec::vp9>(svc, true, seconds);
    std::printf("\nVP9 SVC, 3 spatial layers in one SSRC (the \"encoding\" column: the spatial layer forwarded)\n\n");
    std::printf("| relay | viewer link | encoding | frames shown | freeze ratio | p95 latency | queue drops | leg estimate |\n");
    std::printf("|---|---|---|---|---|---|---|---|\n");
    for (auto& l : layered.legs) {
        int top = -1; // the spatial layer it was on for most of the second half
        for (int k = 0; k < 3; ++k)
            if (top < 0 || l.half_on_svc[static_cast<std::size_t>(k)] > l.half_on_svc[static_cast<std::size_t>(top)]) top = k;
        l.spatial = top;
    }
    print_fanout("selection (SVC)", svc, layered, 3);
    std::printf("\nspatial layers as sent: %lld / %lld / %lld kbps; rendered widths per viewer (160/320/640):",
                static_cast<long long>(layered.encoding_bps[0] / 1000), static_cast<long long>(layered.encoding_bps[1] / 1000),
                static_cast<long long>(layered.encoding_bps[2] / 1000));
    for (const auto& l : layered.legs)
        std::printf(" %llu/%llu/%llu", static_cast<unsigned long long>(l.rendered[0]), static_cast<unsigned long long>(l.rendered[1]),
                    static_cast<unsigned long long>(l.rendered[2]));
    std::printf("\n");
}

} // namespace onair_bench
