#include <onair/qos/nack_generator.hpp>
#include <onair/qos/retransmission_cache.hpp>
#include <onair/qos/rtx.hpp>

#include <doctest/doctest.h>

#include <array>
#include <vector>

using namespace onair;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

const clock_type::time_point t0 = clock_type::time_point{} + 1h;

std::vector<std::uint16_t> collect(qos::nack_generator& g, clock_type::time_point now, clock_type::duration rtt = 100ms) {
    std::vector<std::uint16_t> out;
    g.collect(now, rtt, out);
    return out;
}

} // namespace

TEST_CASE("rtx: the RTX packet carries the original sequence number first, then the original payload") {
    // Original: V=2 X=1 CC=0, M=1 PT=96, seq 0x1234, ts 0x01020304, SSRC 0xAABBCCDD,
    // one-byte extension block with transport seq 0x0007, payload "hi", padding 2 bytes.
    const std::vector<std::uint8_t> original{
        0xB0, 0xE0, 0x12, 0x34, 0x01, 0x02, 0x03, 0x04, 0xAA, 0xBB, 0xCC, 0xDD, // P=1 X=1, M=1 PT=96
        0xBE, 0xDE, 0x00, 0x01, 0x11, 0x00, 0x07, 0x00,                         // ext id 1 len 2: 0x0007
        'h', 'i', 0x00, 0x02};                                                  // payload + 2 padding bytes
    rtp::packet_view p;
    REQUIRE_FALSE(rtp::parse(original, p));
    REQUIRE(p.payload.size() == 2);
    std::array<std::uint8_t, 64> rtx{};
    const auto n = qos::write_rtx(p, 0x11223344, 97, 0x0500, rtx);
    REQUIRE(n == 20 + 2 + 2);
    const std::vector<std::uint8_t> expected{
        0x90, 0xE1, 0x05, 0x00, 0x01, 0x02, 0x03, 0x04, 0x11, 0x22, 0x33, 0x44, // P cleared, M kept, PT=97, RTX seq, RTX SSRC
        0xBE, 0xDE, 0x00, 0x01, 0x11, 0x00, 0x07, 0x00,                         // extensions copied
        0x12, 0x34, 'h', 'i'};                                                  // OSN, original payload
    CHECK(std::vector<std::uint8_t>(rtx.begin(), rtx.begin() + static_cast<std::ptrdiff_t>(n)) == expected);

    rtp::packet_view r;
    REQUIRE_FALSE(rtp::parse(std::span(rtx.data(), n), r));
    std::array<std::uint8_t, 64> back{};
    std::size_t size = 0;
    REQUIRE_FALSE(qos::restore_rtx(r, 0xAABBCCDD, 96, back, size));
    rtp::packet_view q;
    REQUIRE_FALSE(rtp::parse(std::span(back.data(), size), q));
    CHECK(q.sequence == 0x1234);
    CHECK(q.ssrc == 0xAABBCCDD);
    CHECK(q.payload_type == 96);
    CHECK(q.marker);
    CHECK(q.timestamp == 0x01020304);
    CHECK(q.transport_sequence() == 7);
    CHECK(std::string(q.payload.begin(), q.payload.end()) == "hi");
}

TEST_CASE("rtx: an RTX payload without an OSN, or a buffer too small, is refused") {
    const std::vector<std::uint8_t> bad{0x80, 0x61, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9, 0x12}; // 1-byte payload
    rtp::packet_view r;
    REQUIRE_FALSE(rtp::parse(bad, r));
    std::array<std::uint8_t, 64> out{};
    std::size_t size = 0;
    CHECK(qos::restore_rtx(r, 1, 96, out, size) == errc::truncated);
    const std::vector<std::uint8_t> ok{0x80, 0x61, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9, 0x12, 0x34, 1, 2, 3};
    REQUIRE_FALSE(rtp::parse(ok, r));
    CHECK(qos::restore_rtx(r, 1, 96, std::span(out.data(), 8), size) == errc::oversized);
    CHECK(qos::write_rtx(r, 1, 97, 1, std::span(out.data(), 8)) == 0);
}

TEST_CASE("retransmission cache: holds the last N packets, never answers with a stale slot") {
    packet_pool pool;
    qos::retransmission_cache cache(8);
    auto make = [&](std::uint16_t seq) {
        auto p = pool.acquire();
        p.resize(12);
        p.bytes()[2] = static_cast<std::uint8_t>(seq >> 8);
        p.bytes()[3] = static_cast<std::uint8_t>(seq);
        return p;
    };
    for (std::uint16_t s = 100; s < 108; ++s) CHECK(cache.store(s, make(s), t0));
    CHECK_FALSE(cache.store(103, make(103), t0)); // duplicate
    CHECK(cache.stats().duplicates == 1);
    auto hit = cache.take_for_resend(103, t0);
    REQUIRE(hit);
    CHECK(hit.bytes()[3] == 103);
    // 111 lands in 103's slot (111 % 8 == 103 % 8): 103 is gone, not confused with 111.
    cache.store(111, make(111), t0);
    CHECK_FALSE(cache.take_for_resend(103, t0 + 1s));
    CHECK(cache.stats().misses == 1);
    // Asked twice within 10 ms: sent once.
    CHECK(cache.take_for_resend(104, t0));
    CHECK_FALSE(cache.take_for_resend(104, t0 + 5ms));
    CHECK(cache.take_for_resend(104, t0 + 15ms));
    CHECK(cache.stats().resend_suppressed == 1);
    // Packets stay alive through the cache only: released when overwritten.
    const auto in_use = pool.in_use();
    for (std::uint16_t s = 200; s < 216; ++s) cache.store(s, make(s), t0);
    CHECK(pool.in_use() <= in_use);
}

TEST_CASE("nack: a hole is requested at once, retried after an RTT, and forgotten when it arrives") {
    qos::nack_generator g;
    for (int s : {1, 2, 3, 6, 7}) g.on_packet(static_cast<std::uint16_t>(s), t0); // 4 and 5 missing
    CHECK(collect(g, t0) == std::vector<std::uint16_t>{4, 5});
    CHECK(g.is_missing(4));
    CHECK_FALSE(g.is_missing(3)); // received
    CHECK_FALSE(g.is_missing(8)); // not sent yet
    CHECK(collect(g, t0 + 50ms).empty());  // within 1.25 x 100 ms RTT
    CHECK(collect(g, t0 + 130ms) == std::vector<std::uint16_t>{4, 5});
    CHECK(g.on_packet(4, t0 + 170ms, true) == qos::nack_generator::arrival::recovered);
    CHECK(collect(g, t0 + 300ms) == std::vector<std::uint16_t>{5});
    CHECK(g.stats().recovered == 1);
    CHECK(g.stats().requests == 5);
    // The recovery 40 ms after the last request is an RTT sample: 100 -> (7*100 + 40)/8 = 92.5 ms.
    CHECK(g.rtt_estimate() == std::chrono::microseconds(92500));
    CHECK(g.on_packet(4, t0 + 310ms) == qos::nack_generator::arrival::duplicate);
    // A late original (not a retransmission) fills its hole but is no RTT sample.
    CHECK(g.on_packet(5, t0 + 320ms) == qos::nack_generator::arrival::recovered);
    CHECK(g.rtt_estimate() == std::chrono::microseconds(92500));
    CHECK_FALSE(g.take_keyframe_request());
}

TEST_CASE("nack: a hole waits for the reordering seen on the stream before its first request") {
    qos::nack_generator g;
    // 1 2 4 at t0: 3 is missing. Nothing reordered yet, so it is due at once, but the
    // caller collects only 8 ms later, by when 3 came by itself (reordered, never requested).
    for (int s : {1, 2, 4}) g.on_packet(static_cast<std::uint16_t>(s), t0);
    CHECK(g.reorder_wait() == 0ms);
    CHECK(g.on_packet(3, t0 + 8ms) == qos::nack_generator::arrival::reordered);
    // 8 ms is now the stream's reordering (less 1/1024 per later packet).
    CHECK(g.reorder_wait() == 8ms);
    // 5 7 at t1: 6 missing. At t1 + 5 ms it may still be reordered: not requested yet.
    const auto t1 = t0 + 100ms;
    g.on_packet(5, t1);
    g.on_packet(7, t1);
    const auto wait = g.reorder_wait();
    CHECK(wait < 8ms);
    CHECK(wait > 7900us); // two packets forgot 2/1024 of it
    CHECK(collect(g, t1 + 5ms).empty());
    CHECK(collect(g, t1 + wait) == std::vector<std::uint16_t>{6}); // due once it waited that long
    // Retries are paced by the RTT, not by the reordering wait.
    CHECK(collect(g, t1 + wait + 10ms).empty());
    CHECK(collect(g, t1 + wait + 130ms) == std::vector<std::uint16_t>{6});
    // A hole filled by a very late original (never requested) raises the wait only to the cap.
    g.on_packet(9, t1 + 200ms);
    CHECK(g.on_packet(8, t1 + 400ms) == qos::nack_generator::arrival::reordered);
    CHECK(g.reorder_wait() == 30ms);
    // Without reordering the wait is forgotten: after ~7000 in-order packets it is below 1 ms.
    for (int s = 10; s < 7010; ++s) g.on_packet(static_cast<std::uint16_t>(s), t1 + 500ms);
    CHECK(g.reorder_wait() < 1ms);

    // max_reorder_wait = 0: every hole is requested at once, whatever came reordered.
    qos::nack_generator::config c;
    c.max_reorder_wait = 0ms;
    qos::nack_generator eager(c);
    for (int s : {1, 3}) eager.on_packet(static_cast<std::uint16_t>(s), t0);
    eager.on_packet(2, t0 + 20ms);
    eager.on_packet(5, t0 + 30ms);
    CHECK(eager.reorder_wait() == 0ms);
    CHECK(collect(eager, t0 + 30ms) == std::vector<std::uint16_t>{4});
}

TEST_CASE("nack: gives up at the deadline or after max_retries and then wants a keyframe") {
    qos::nack_generator::config c;
    c.give_up_after = 500ms;
    c.max_retries = 3;
    qos::nack_generator g(c);
    g.on_packet(10, t0);
    g.on_packet(12, t0);
    int requests = 0;
    for (auto t = t0; t < t0 + 1s; t += 10ms) requests += static_cast<int>(collect(g, t, 50ms).size());
    CHECK(requests == 3);
    CHECK(g.missing_count() == 0);
    CHECK(g.stats().given_up == 1);
    CHECK(g.take_keyframe_request());
    CHECK_FALSE(g.take_keyframe_request());

    qos::nack_generator late(c);
    late.on_packet(1, t0);
    late.on_packet(3, t0);
    CHECK(collect(late, t0, 1s).size() == 1);
    CHECK(collect(late, t0 + 600ms, 1s).empty()); // past the 500 ms deadline: abandoned
    CHECK(late.stats().given_up == 1);
}

TEST_CASE("nack: sequence wrap-around, reordering and restarts") {
    qos::nack_generator g;
    for (int s : {65533, 65534, 1, 2}) g.on_packet(static_cast<std::uint16_t>(s), t0); // 65535 and 0 missing
    CHECK(collect(g, t0) == std::vector<std::uint16_t>{65535, 0});
    CHECK(g.on_packet(0, t0 + 1ms) == qos::nack_generator::arrival::recovered); // requested at t0, then came: recovered
    CHECK(g.on_packet(65000, t0 + 2ms) == qos::nack_generator::arrival::duplicate); // far in the past
    // A jump of 5000 is a new start, not 5000 losses.
    CHECK(g.on_packet(5002, t0 + 3ms) == qos::nack_generator::arrival::restart);
    CHECK(g.missing_count() == 0);
    CHECK(g.take_keyframe_request());
    CHECK(collect(g, t0 + 1s).empty());
}

TEST_CASE("nack: extend_back declares the packets before the first one missing") {
    // A receiver joined mid-frame: the first packet it sees is 100, so 92..99 (the frame's
    // start) were lost before anything revealed them. extend_back(8) makes them holes.
    qos::nack_generator g;
    g.on_packet(100, t0);
    CHECK(g.lowest() == 100);
    const auto before = g.stats().missing;
    CHECK(g.extend_back(8, t0) == 8);
    CHECK(g.stats().missing == before + 8);
    CHECK(g.missing_count() == 8);
    CHECK(g.lowest() == 92);
    CHECK(g.is_missing(92));
    CHECK(g.is_missing(99));
    CHECK_FALSE(g.is_missing(91)); // not declared
    CHECK_FALSE(g.is_missing(100)); // received
    CHECK(collect(g, t0) == std::vector<std::uint16_t>{92, 93, 94, 95, 96, 97, 98, 99});
    // They are ordinary holes: 101 and 103 arriving add 102 after them, a retransmission of
    // 95 fills its hole.
    g.on_packet(101, t0 + 1ms);
    g.on_packet(103, t0 + 2ms);
    CHECK(g.stats().missing == before + 9);
    CHECK(g.on_packet(95, t0 + 3ms, true) == qos::nack_generator::arrival::recovered);
    CHECK(collect(g, t0 + 130ms) == std::vector<std::uint16_t>{92, 93, 94, 96, 97, 98, 99, 102});
    CHECK(g.lowest() == 92);
    // extend_back goes on from the lowest: 90 and 91 next.
    CHECK(g.extend_back(2, t0 + 140ms) == 2);
    CHECK(g.lowest() == 90);
    CHECK(collect(g, t0 + 140ms) == std::vector<std::uint16_t>{90, 91});
}

TEST_CASE("nack: withdraw_before takes back declared holes without giving them up") {
    // First packet 100, extend_back(8): 92..99 missing. Then the stream turns out to start
    // at 96 (the frame's first packet arrived): 92..95 never existed.
    qos::nack_generator g;
    g.on_packet(100, t0);
    g.extend_back(8, t0);
    CHECK(collect(g, t0).size() == 8);
    const auto missing = g.stats().missing;
    g.withdraw_before(96);
    CHECK(g.stats().missing == missing - 4);
    CHECK(g.stats().given_up == 0);
    CHECK_FALSE(g.take_keyframe_request()); // withdrawn is not abandoned
    CHECK(g.missing_count() == 4);
    CHECK(g.lowest() == 96);
    CHECK_FALSE(g.is_missing(92));
    CHECK_FALSE(g.is_missing(95));
    CHECK(g.is_missing(96));
    // The retry (after 1.25 x 100 ms) asks only for what is left.
    CHECK(collect(g, t0 + 130ms) == std::vector<std::uint16_t>{96, 97, 98, 99});
    // A withdrawn number arriving after all is no recovery.
    CHECK(g.on_packet(94, t0 + 140ms) == qos::nack_generator::arrival::duplicate);
    CHECK(g.stats().recovered == 0);
    CHECK(g.on_packet(96, t0 + 150ms, true) == qos::nack_generator::arrival::recovered);
    CHECK(g.stats().recovered == 1);
    // Withdrawing below every hole changes nothing.
    g.withdraw_before(90);
    CHECK(g.missing_count() == 3);
    CHECK(g.lowest() == 96);
}

TEST_CASE("nack: extend_back and withdraw_before across the sequence wrap") {
    // First packet 3: extend_back(8) declares 65531 65532 65533 65534 65535 0 1 2.
    qos::nack_generator g;
    g.on_packet(3, t0);
    CHECK(g.extend_back(8, t0) == 8);
    CHECK(g.lowest() == 65531);
    CHECK(g.is_missing(65531));
    CHECK(g.is_missing(0));
    CHECK_FALSE(g.is_missing(65530));
    CHECK(collect(g, t0) == std::vector<std::uint16_t>{65531, 65532, 65533, 65534, 65535, 0, 1, 2});
    // The stream starts at 65534: 65531..65533 are withdrawn, 65534..2 stay.
    const auto missing = g.stats().missing;
    g.withdraw_before(65534);
    CHECK(g.stats().missing == missing - 3);
    CHECK(g.stats().given_up == 0);
    CHECK(g.lowest() == 65534);
    CHECK(collect(g, t0 + 130ms) == std::vector<std::uint16_t>{65534, 65535, 0, 1, 2});
    // Withdrawing before 1 (after the wrap) takes 65534, 65535 and 0 as well.
    g.withdraw_before(1);
    CHECK(g.lowest() == 1);
    CHECK(g.stats().missing == missing - 6);
    CHECK(collect(g, t0 + 260ms) == std::vector<std::uint16_t>{1, 2});
    CHECK(g.on_packet(2, t0 + 270ms, true) == qos::nack_generator::arrival::recovered);
}

TEST_CASE("nack: extend_back before any packet, or of nothing, adds nothing; it stays within max_missing") {
    qos::nack_generator g;
    CHECK(g.extend_back(8, t0) == 0);
    CHECK(g.missing_count() == 0);
    CHECK(g.stats().missing == 0);
    CHECK(collect(g, t0).empty());
    g.withdraw_before(50); // before any packet: nothing to withdraw, no effect on what follows
    // The first packet still starts the stream where it is.
    g.on_packet(50, t0);
    CHECK(g.lowest() == 50);
    CHECK(g.extend_back(0, t0) == 0);
    CHECK(g.lowest() == 50);
    CHECK(g.missing_count() == 0);
    CHECK(collect(g, t0).empty());

    // max_missing 10: packets 1 and 5 leave 3 holes (2 3 4), so extend_back(20) adds 7
    // (1 - 7 = -6 .. 0, i.e. 65530..0).
    qos::nack_generator::config c;
    c.max_missing = 10;
    qos::nack_generator h(c);
    h.on_packet(1, t0);
    h.on_packet(5, t0);
    CHECK(h.extend_back(20, t0) == 7);
    CHECK(h.missing_count() == 10);
    CHECK(h.stats().missing == 10);
    CHECK(h.lowest() == 65530);
    CHECK(h.extend_back(1, t0) == 0); // full
}
