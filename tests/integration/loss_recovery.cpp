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
    // Audio without RED: about a third of its packets are lost on the two links; NACK/RTX
    // brings back those whose repair comes before their playout time and the rest are
    // concealed, so every 20 ms of the stream is played, decoded or concealed.
    const auto audio_sent = r.host.audio_frames_encoded - r.host.audio_frames_before_publish;
    MESSAGE("audio decoded " << v.audio_frames << ", concealed " << v.audio_concealed << " of " << audio_sent);
    CHECK(v.audio_retransmissions > 10);
    CHECK(v.audio_concealed > 0);
    // Only runs lost at the very start or end escape: nothing around them reveals the gap.
    CHECK(v.audio_frames + v.audio_concealed + 10 >= audio_sent);
    CHECK(v.audio_frames <= audio_sent);
    // The retransmission round trip crosses the viewer's link twice: about 40 ms.
    CHECK(v.rtt_ms > 30);
}

TEST_CASE("20 % loss on both links with FlexFEC and RED: each leg's FEC and the relay's RED rebuild repair without a round trip") {
    // The same links as above; audio now carries two RED blocks and Opus in-band FEC. The
    // host starts unprotected (no loss reported yet) and must raise its FEC once the
    // relay's receiver reports show the loss; the relay protects its own leg for the
    // viewer's reports.
    emulated_env env;
    onair::transport::direction_config bad;
    bad.loss_percent = 20;
    bad.delay = 20ms;
    bad.jitter = 5ms;
    env.links = {onair::transport::link_config{}, onair::transport::link_config{bad, bad, 3},
                 onair::transport::link_config{bad, bad, 5}};
    const auto r = run_forwarding<onair::codec::vp8>(env, 320, 180, 30, 500, 4.0, 1, 2);
    const auto& v = r.viewers.at(0);
    MESSAGE("host: fec " << r.host.fec_packets << " (reported loss " << r.host.reported_loss << ", " << r.host.fec_delta_per_10
                         << "/10 delta); relay: rebuilt " << r.relay.fec_recovered << " from FEC, " << r.relay.red_rebuilt
                         << " from RED, sent " << r.relay.fec_sent << " FEC; viewer: " << v.video_fec_recovered
                         << " from FEC, missing " << v.video_packets_missing << ", lost " << v.video_packets_lost
                         << "; audio decoded " << v.audio_frames << ", RED " << v.audio_red_recovered << ", concealed "
                         << v.audio_concealed << " (" << v.audio_expanded << " of them added delay)");
    REQUIRE(r.host.video_frames_encoded == r.frames_pushed);
    // Protection followed the reported loss: 20 % asks for 4 or 5 repair packets per 10.
    CHECK(r.host.reported_loss > 0.10);
    CHECK(r.host.fec_delta_per_10 >= 4);
    CHECK(r.host.fec_packets > 50);
    CHECK(r.relay.fec_sent > 20); // from the viewer's first report on (about 1 s in)
    // Both legs rebuilt lost packets from repair packets, not only from retransmissions.
    CHECK(r.relay.fec_recovered > 10);
    CHECK(v.video_fec_recovered > 5);
    CHECK(v.video_packets_lost == 0);
    // The relay rebuilt host-leg audio losses from the RED blocks that followed them.
    CHECK(r.relay.red_rebuilt > 10);
    CHECK(v.audio_red_recovered > 10);
    // With RED per leg, far fewer frames are lost for good than the third lost on the way:
    // under 5 %. Concealment that only added delay (the jitter buffer stretching while a
    // busy machine delivers late) is a matter of timing, not of repair; it is bounded on
    // its own so that neither can hide in the other.
    const auto audio_sent = r.host.audio_frames_encoded - r.host.audio_frames_before_publish;
    REQUIRE(v.audio_expanded <= v.audio_concealed);
    CHECK((v.audio_concealed - v.audio_expanded) * 20 < audio_sent);
    CHECK(v.audio_expanded * 20 < audio_sent);
    const auto frames_sent = r.host.video_frames_encoded - r.host.video_frames_before_publish;
    CHECK(v.video_frames + 3 >= frames_sent);
    CHECK(v.decode_errors == 0);
}
