// FlexFEC on renumbered legs: a viewer that gets a lower simulcast encoding receives it
// under its own leg's numbers, so the stream's FEC (computed over the publisher's numbers)
// is not for it; the relay protects such a leg with FEC of its own once the viewer reports
// loss. Three viewers of three simulcast encodings: one unconstrained and clean (the top
// encoding as published), one behind 1 Mbps with 10 % random loss on its downlink (encoding
// 0 or 1, renumbered, lossy), one behind 1 Mbps without loss (encoding 1, renumbered, clean;
// a 300 kbps bottleneck would drop some of the start's probes and key frames, which is loss
// its viewer reports, and rightly gets FEC for).
#include "support/fanout_scenario.hpp"

#include <doctest/doctest.h>

using namespace onair_test;

TEST_CASE("a renumbered viewer on a lossy link gets FEC over its own numbers; clean viewers get none") {
    setup su;
    su.simulcast = 3;
    su.temporal_layers = 1;
    su.kbps = 1500;
    su.downlink_kbps = {0, 1000, 1000};
    su.downlink_loss_percent = {0, 10, 0};
    const outcome o = run_fanout(su, true);
    MESSAGE("relay: FEC sent " << o.relay.fec_sent << " (" << o.relay.leg_fec_sent << " of renumbered legs), retransmissions "
                               << o.relay.retransmissions);
    for (std::size_t i = 0; i < o.legs.size(); ++i) {
        const auto& l = o.legs[i];
        MESSAGE("  viewer " << i << ": encoding " << l.spatial << ", frames " << l.viewer.video_frames << " of " << o.frames_sent
                            << ", FEC packets " << l.viewer.fec_packets << ", rebuilt " << l.viewer.video_fec_recovered << ", missing "
                            << l.viewer.video_packets_missing << ", lost " << l.viewer.video_packets_lost << ", freeze ratio "
                            << l.viewer.freeze_ratio() * 100 << " %, downlink losses " << l.downlink.dropped_loss);
    }
    REQUIRE(o.frames_sent > 250);
    const auto& lossy = o.legs[1];
    CHECK(lossy.spatial < 2);                    // a lower encoding: renumbered
    CHECK(lossy.downlink.dropped_loss > 50);     // the link did lose
    CHECK(o.relay.leg_fec_sent > 20);            // the relay protected that leg
    CHECK(lossy.viewer.fec_packets > 10);        // which got its repair packets
    CHECK(lossy.viewer.video_fec_recovered > 5); // and rebuilt packets from them, without a round trip
    CHECK(lossy.viewer.decode_errors == 0);
    CHECK(lossy.viewer.freeze_ratio() <= 0.01);
    // The clean legs, renumbered or not, are sent no FEC: the stream's follows the loss of
    // the legs it is for (the publisher's numbers), each renumbered leg's its own.
    CHECK(o.legs[0].viewer.fec_packets == 0);
    CHECK(o.legs[2].spatial < 2);
    CHECK(o.legs[2].downlink.dropped_queue == 0);
    CHECK(o.legs[2].viewer.fec_packets == 0);
}
