// Recovery through a lossy network: 20 % of all datagrams dropped on every leg (media,
// RTCP, retransmissions alike). NACK + RTX must bring back every lost video packet; without
// recovery about a fifth of them would be missing.
#include "support/forwarding_scenario.hpp"

#include <onair/codec/vp8.hpp>

#include <doctest/doctest.h>

#include <random>

using namespace onair_test;

TEST_CASE("20 % loss on both legs: every lost video packet is recovered by NACK/RTX") {
    memory_env env;
    std::mt19937 rng(2026);
    std::uint64_t dropped = 0;
    env.net.set_filter([&](const onair::transport::endpoint&, const onair::transport::endpoint&,
                           std::span<const std::uint8_t> d) {
        if (onair::rtp::is_session_message(d)) return true; // sessions are not the subject here
        if (std::uniform_real_distribution<>(0, 1)(rng) < 0.2) {
            ++dropped;
            return false;
        }
        return true;
    });
    const auto r = run_forwarding<onair::codec::vp8>(env, 320, 180, 30, 500, 4.0, 1);
    const auto& v = r.viewers.at(0);
    MESSAGE("dropped " << dropped << " datagrams; viewer saw " << v.video_packets_missing << " holes, recovered "
                       << v.video_packets_recovered << ", gave up " << v.video_packets_lost << "; relay recovered "
                       << r.relay.upstream_recovered << " upstream, sent " << r.relay.retransmissions
                       << " RTX; frames " << v.video_frames << "/" << r.frames_pushed);
    REQUIRE(r.host.video_frames_encoded == r.frames_pushed);
    CHECK(dropped > 200);
    // Both legs lost packets and both repaired them.
    CHECK(r.relay.upstream_recovered > 20);
    CHECK(r.host.retransmissions >= r.relay.upstream_recovered);
    CHECK(v.video_packets_missing > 20);
    CHECK(r.relay.retransmissions > 20);
    // Nothing was given up: every hole was filled.
    CHECK(v.video_packets_lost == 0);
    CHECK(v.video_packets_recovered == v.video_packets_missing);
    // Holes are filled by the relay's retransmissions, or by originals the relay itself
    // recovered from the host and forwarded late.
    CHECK(v.retransmissions > 20);
}
