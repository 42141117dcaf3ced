// VP9 spatial SVC end to end: one host encodes 640x360@30 VP9 with three spatial layers
// (160x90, 320x180, 640x360 in one SSRC; 1.5 Mbps: about 150 / 375 / 975 kbps by layer),
// a relay forwards it to three viewers behind 4 Mbps, 1 Mbps and 300 kbps links. The relay
// measures each spatial layer's rate, estimates each leg from its viewer's transport-wide
// feedback and forwards the spatial layers that fit, renumbered as one stream with the
// marker on the last layer kept; each viewer renders the resolution its link carries,
// without freezing and without overrunning its link.
#include "support/fanout_scenario.hpp"

#include <doctest/doctest.h>

using namespace onair_test;

TEST_CASE("VP9 spatial SVC: each viewer renders the spatial layer its link carries (4 Mbps, 1 Mbps, 300 kbps)") {
    setup su;
    su.spatial_layers = 3;
    su.temporal_layers = 1;
    su.kbps = 1500;
    su.downlink_kbps = {4000, 1000, 300};
    const outcome o = run_fanout<onair::codec::vp9>(su, true, 10.0);
    MESSAGE("frames sent " << o.frames_sent << "; spatial layers as the relay measured them " << o.encoding_bps[0] / 1000 << " / "
                           << o.encoding_bps[1] / 1000 << " / " << o.encoding_bps[2] / 1000 << " kbps, audio " << o.audio_bps / 1000
                           << " kbps; relay withheld " << o.relay.layer_dropped << ", fills " << o.relay.layer_fills << ", layer changes "
                           << o.relay.layer_changes << ", key frame requests " << o.relay.keyframe_requests);
    static constexpr int widths[] = {160, 320, 640};
    for (std::size_t i = 0; i < o.legs.size(); ++i) {
        const auto& l = o.legs[i];
        MESSAGE("viewer behind " << su.downlink_kbps[i] << " kbps: frames " << l.viewer.video_frames << ", freeze ratio "
                                 << l.viewer.freeze_ratio() * 100 << " %, decode errors " << l.viewer.decode_errors << "; rendered 160/320/640/other: "
                                 << l.rendered[0] << "/" << l.rendered[1] << "/" << l.rendered[2] << "/" << l.rendered[3]
                                 << "; second half on layers 0/1/2/all " << l.half_on_svc[0] << "/" << l.half_on_svc[1] << "/"
                                 << l.half_on_svc[2] << "/" << l.half_on_svc[3] << " of " << l.half_samples << "; queue drops "
                                 << l.downlink.dropped_queue << " of " << l.downlink.sent << "; estimate " << l.estimate_bps / 1000 << " kbps");
    }
    REQUIRE(o.frames_sent > 250);
    // The relay saw three spatial layers on the one SSRC, each larger than the one below.
    CHECK(o.encoding_bps[0] > 50'000);
    CHECK(o.encoding_bps[1] > o.encoding_bps[0]);
    CHECK(o.encoding_bps[2] > o.encoding_bps[1]);
    for (std::size_t i = 0; i < o.legs.size(); ++i) {
        INFO("viewer " << i);
        const auto& l = o.legs[i];
        CHECK(l.viewer.decode_errors == 0);
        CHECK(l.viewer.freeze_ratio() <= 0.01);
        // Every picture (spatial layers all have every frame), the first second's start aside.
        CHECK(l.viewer.video_frames * 100 >= o.frames_sent * 85);
        CHECK(l.rendered[3] == 0);
        // What it renders in the second half is its link's layer (4 Mbps: the top, 1 Mbps:
        // 320x180, 300 kbps: 160x90), and its selector is on that layer.
        CHECK(l.second_half_width_share(widths[2 - i]) >= 0.75);
        CHECK(l.share_on_svc(static_cast<int>(2 - i)) >= 0.75);
        // The links were not overrun (a key picture at a switch up may overflow a queue once).
        CHECK(l.downlink.dropped_queue * 20 <= l.downlink.sent);
    }
    CHECK(o.relay.layer_dropped > 0);
    CHECK(o.relay.layer_changes >= 2);
}
