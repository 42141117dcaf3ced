// Recovery through emulated bad links: the host's and the viewer's links each lose 20 % of
// all datagrams in both directions (media, RTCP and retransmissions alike) with 20 ms +-5 ms
// one-way delay. NACK + RTX must bring back every lost video packet; without recovery a
// fifth of them would be missing and the checks below fail.
#include "support/forwarding_scenario.hpp"

#include <onair/codec/vp8.hpp>

#include <doctest/doctest.h>

using namespace onair_test;
using namespace std::chrono_literals;

TEST_CASE("20 % loss on the host's and the viewer's links: every lost video packet is recovered by NACK/RTX") {
    emulated_env env;
    onair::transport::direction_config bad;
    bad.loss_percent = 20;
    bad.delay = 20ms;
    bad.jitter = 5ms;
    onair::transport::link_config relay_link;                   // the relay's own link is clean
    onair::transport::link_config host_link{bad, bad, 7};       // both directions, seed 7
    onair::transport::link_config viewer_link{bad, bad, 11};
    env.links = {relay_link, host_link, viewer_link};
    const auto r = run_forwarding<onair::codec::vp8>(env, 320, 180, 30, 500, 4.0, 1);
    const auto& v = r.viewers.at(0);
    MESSAGE("viewer saw " << v.video_packets_missing << " holes, recovered " << v.video_packets_recovered
                          << ", gave up " << v.video_packets_lost << "; relay recovered " << r.relay.upstream_recovered
                          << " upstream, sent " << r.relay.retransmissions << " RTX; host sent " << r.host.retransmissions
                          << " RTX; frames " << v.video_frames << "/" << r.frames_pushed << " (skipped "
                          << v.video_frames_skipped << ", depacketizer dropped " << v.depacketizer_dropped
                          << ", keyframe requests " << v.keyframe_requests << ", decode errors " << v.decode_errors
                          << "); rtt " << v.rtt_ms << " ms");
    REQUIRE(r.host.video_frames_encoded == r.frames_pushed);
    // Both legs lost packets and both repaired them.
    CHECK(r.relay.upstream_recovered > 20);
    CHECK(r.host.retransmissions >= r.relay.upstream_recovered);
    CHECK(v.video_packets_missing > 20);
    CHECK(r.relay.retransmissions > 20);
    // Nothing was given up: every hole was filled, by the relay's retransmissions or by
    // originals the relay recovered from the host and forwarded late.
    CHECK(v.video_packets_lost == 0);
    CHECK(v.video_packets_recovered == v.video_packets_missing);
    CHECK(v.retransmissions > 20);
    // And every frame the host sent, from the viewer's first key frame on, was decoded and
    // rendered. The host sends nothing until the relay acknowledged the publish (the hello
    // or its answer may be lost here), and the relay starts a subscriber at a key frame: the
    // first one or two frames sent may come before it. Without repair, four in five frames
    // would have a hole and the frame buffer would hold back everything after each one
    // until the next key frame.
    const auto frames_sent = r.host.video_frames_encoded - r.host.video_frames_before_publish;
    MESSAGE("frames sent " << frames_sent << " (" << r.host.video_frames_before_publish << " before the publish ack)");
    CHECK(v.video_frames + 3 >= frames_sent);
    CHECK(v.decode_errors == 0);
    CHECK(v.video_frames_skipped <= 1);
    // Audio has no retransmission: about a third of its frames are lost on the two links and
    // concealed, so every 20 ms of the stream is played, decoded or concealed.
    const auto audio_sent = r.host.audio_frames_encoded - r.host.audio_frames_before_publish;
    MESSAGE("audio decoded " << v.audio_frames << ", concealed " << v.audio_concealed << " of " << audio_sent);
    CHECK(v.audio_concealed > 10);
    // Only runs lost at the very start or end escape: nothing around them reveals the gap.
    CHECK(v.audio_frames + v.audio_concealed + 10 >= audio_sent);
    CHECK(v.audio_frames <= audio_sent);
    // The retransmission round trip crosses the viewer's link twice: about 40 ms.
    CHECK(v.rtt_ms > 30);
}
