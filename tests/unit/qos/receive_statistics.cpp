#include "onair/qos/receive_statistics.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <vector>

using namespace onair;
using namespace std::chrono_literals;
using qos::receive_statistics;
using qos::rtt_estimator;
using qos::stream_statistics;

namespace {

using time_point = std::chrono::steady_clock::time_point;
using us = std::chrono::microseconds;
const time_point t0{std::chrono::seconds{100}};

/// Feeds an audio stream: packet k of `seqs` has sequence seqs[k], timestamp 960 * its
/// sequence offset from seqs[0], and arrives at 20 ms * k.
void feed(stream_statistics& s, const std::vector<int>& seqs, std::uint16_t seq0 = 0) {
    for (std::size_t k = 0; k < seqs.size(); ++k) {
        const auto seq = static_cast<std::uint16_t>(seq0 + seqs[k]);
        s.on_packet(seq, 960u * static_cast<std::uint32_t>(seqs[k]), t0 + us{20'000} * static_cast<std::int64_t>(k));
    }
}

std::vector<int> seq_range(int from, int to, std::vector<int> except = {}) {
    std::vector<int> v;
    for (int i = from; i < to; ++i)
        if (std::find(except.begin(), except.end(), i) == except.end()) v.push_back(i);
    return v;
}

} // namespace

TEST_SUITE_BEGIN("qos.receive_statistics");

TEST_CASE("an in-order, evenly paced stream: nothing lost, no jitter") {
    stream_statistics s(0x1234, 48'000);
    feed(s, seq_range(0, 100), 5'000);
    const auto b = s.report_block(t0 + 2s);
    CHECK(b.ssrc == 0x1234);
    CHECK(b.extended_highest_seq == 5'099);
    CHECK(s.expected() == 100);
    CHECK(s.received() == 100);
    CHECK(b.cumulative_lost == 0);
    CHECK(b.fraction_lost == 0);
    CHECK(b.jitter == 0);
    CHECK(b.last_sr == 0); // no SR received: LSR and DLSR stay 0
    CHECK(b.delay_since_last_sr == 0);
}

TEST_CASE("losses: cumulative count and fraction per report interval (A.3)") {
    stream_statistics s(1, 48'000);
    feed(s, seq_range(0, 10, {3, 4})); // 10 expected, 8 received
    auto b = s.report_block(t0 + 1s);
    CHECK(b.cumulative_lost == 2);
    CHECK(b.fraction_lost == 2 * 256 / 10); // 51
    std::vector<int> more = seq_range(10, 20);
    for (std::size_t k = 0; k < more.size(); ++k)
        s.on_packet(static_cast<std::uint16_t>(more[k]), 960u * static_cast<std::uint32_t>(more[k]), t0 + 1s);
    b = s.report_block(t0 + 2s);
    CHECK(b.cumulative_lost == 2);
    CHECK(b.fraction_lost == 0); // nothing lost in this interval
    for (int q : seq_range(20, 30, {21, 23, 25, 27, 29}))
        s.on_packet(static_cast<std::uint16_t>(q), 960u * static_cast<std::uint32_t>(q), t0 + 2s);
    b = s.report_block(t0 + 3s);
    CHECK(b.extended_highest_seq == 28); // 29 never came
    CHECK(b.cumulative_lost == 2 + 4);   // 21 23 25 27 (up to the highest seen)
    CHECK(b.fraction_lost == 4 * 256 / 9);
}

TEST_CASE("the sequence number wraps: the extended highest counts cycles (A.1)") {
    stream_statistics s(1, 48'000);
    feed(s, seq_range(0, 20), 65'530); // 65530 .. 65535, 0 .. 13
    const auto b = s.report_block(t0 + 1s);
    CHECK(b.extended_highest_seq == 0x1'0000 + 13);
    CHECK(s.expected() == 20);
    CHECK(b.cumulative_lost == 0);
    // A packet from before the wrap, arriving late, is reordering: not a new cycle.
    s.on_packet(65'534, 0, t0 + 1s);
    CHECK(s.extended_highest_seq() == 0x1'0000 + 13);
    CHECK(s.duplicates() == 1);
}

TEST_CASE("reordering and duplicates: duplicates count as received, so loss can go negative") {
    // 0 1 3 2 4 4 5: six sequence numbers expected, seven packets received.
    stream_statistics s(1, 48'000);
    feed(s, {0, 1, 3, 2, 4, 4, 5});
    const auto b = s.report_block(t0 + 1s);
    CHECK(s.expected() == 6);
    CHECK(s.received() == 7);
    CHECK(b.cumulative_lost == -1);
    CHECK(b.fraction_lost == 0); // a gain, not a loss
    CHECK(s.duplicates() == 1);  // 4 twice (2 was only late)
}

TEST_CASE("interarrival jitter follows A.8; packets of one frame give one sample") {
    // Audio: packet k is 10 ms late when k is odd. |D| = 10 ms = 480 ticks after the first,
    // J += (|D| - J) / 16, compared with the RFC's floating-point formula.
    stream_statistics s(1, 48'000);
    double j = 0;
    for (int k = 0; k < 200; ++k) {
        const us late = k % 2 ? 10ms : 0ms;
        s.on_packet(static_cast<std::uint16_t>(k), 960u * static_cast<std::uint32_t>(k), t0 + us{20'000} * k + late);
        if (k > 0) j += (480.0 - j) / 16.0;
    }
    CHECK(std::abs(static_cast<double>(s.jitter()) - j) <= 1.0);
    CHECK(s.jitter() >= 470);
    // Video: three packets per frame, 1 ms apart, frames perfectly paced: without the
    // same-timestamp rule the 1 ms spreads would read as ~90 ticks of jitter.
    stream_statistics v(2, 90'000);
    for (int f = 0; f < 100; ++f)
        for (int p = 0; p < 3; ++p)
            v.on_packet(static_cast<std::uint16_t>(3 * f + p), 3'000u * static_cast<std::uint32_t>(f),
                        t0 + us{33'333} * f + us{1'000} * p);
    CHECK(v.jitter() <= 1);
    // Retransmissions give no sample either.
    stream_statistics r(3, 48'000);
    for (int k = 0; k < 50; ++k)
        r.on_packet(static_cast<std::uint16_t>(k), 960u * static_cast<std::uint32_t>(k), t0 + us{20'000} * k);
    r.on_packet(60, 960u * 60, t0 + 5s, true); // very late, but a retransmission
    CHECK(r.jitter() == 0);
}

TEST_CASE("probation (MIN_SEQUENTIAL = 2) and a restart after a large jump (A.1)") {
    qos::receive_statistics_config c;
    c.min_sequential = 2;
    stream_statistics s(1, 48'000, c);
    CHECK_FALSE(s.on_packet(10, 0, t0));      // on probation
    CHECK_FALSE(s.on_packet(12, 0, t0));      // not in sequence: probation again
    CHECK(s.on_packet(13, 0, t0));            // 12, 13 in sequence: valid, counted from 13
    CHECK(s.expected() == 1);
    CHECK(s.received() == 1);
    feed(s, seq_range(14, 20));
    CHECK(s.expected() == 7);
    // One stray packet far ahead is ignored...
    CHECK_FALSE(s.on_packet(40'000, 0, t0 + 1s));
    CHECK(s.on_packet(20, 0, t0 + 1s));
    CHECK(s.extended_highest_seq() == 20);
    // ...two in sequence mean the sender restarted: counters start over from the second.
    CHECK_FALSE(s.on_packet(50'000, 0, t0 + 2s));
    CHECK(s.on_packet(50'001, 0, t0 + 2s));
    CHECK(s.extended_highest_seq() == 50'001);
    CHECK(s.expected() == 1);
    CHECK(s.received() == 1);
}

TEST_CASE("LSR/DLSR in the report block give the sender its round-trip time") {
    // The sender stamps an SR at wall time W; it reaches the receiver (steady time A) 25 ms
    // later; the receiver reports 250 ms after that; the report takes 15 ms back.
    const timestamp w{std::chrono::seconds{1'700'000'000}};
    rtp::rtcp::sender_report sr;
    sr.ssrc = 7;
    sr.ntp_timestamp = to_ntp(w);
    receive_statistics rs;
    rs.add_stream(7, 90'000);
    CHECK(rs.on_sender_report(sr, t0));
    rtp::packet_view p;
    p.ssrc = 7;
    p.sequence = 1;
    p.timestamp = 0;
    CHECK(rs.on_packet(p, t0 + 10ms));
    std::array<rtp::rtcp::report_block, 31> blocks;
    REQUIRE(rs.report_blocks(t0 + 250ms, blocks) == 1);
    const auto& b = blocks[0];
    CHECK(b.last_sr == rtp::rtcp::compact_ntp(sr.ntp_timestamp));
    CHECK(b.delay_since_last_sr == 65'536 / 4); // 250 ms in 1/65536 s
    rtt_estimator rtt;
    const auto r = rtt.on_report_block(b, w + 25ms + 250ms + 15ms);
    REQUIRE(r);
    CHECK(std::abs((*r - 40ms).count()) <= 30); // 1/65536 s resolution
    CHECK(rtt.valid());
    rtp::rtcp::report_block later = b;
    CHECK(rtt.on_report_block(later, w + 25ms + 250ms + 95ms)); // a slower one: 120 ms
    CHECK(std::abs((rtt.min() - 40ms).count()) <= 30);
    CHECK(std::abs((rtt.last() - 120ms).count()) <= 30);
    CHECK(std::abs((rtt.smoothed() - 50ms).count()) <= 30); // 40 + (120 - 40) / 8
    rtp::rtcp::report_block none;
    CHECK_FALSE(rtt.on_report_block(none, w));
}

TEST_CASE("report blocks cover the streams heard since the previous report") {
    receive_statistics rs;
    rs.add_stream(0xa, 48'000);
    rs.add_stream(0xb, 90'000);
    CHECK(&rs.add_stream(0xa, 48'000) == rs.find(0xa)); // found, not added twice
    CHECK(rs.size() == 2);
    rtp::packet_view p;
    p.ssrc = 0xa;
    for (std::uint16_t q = 0; q < 5; ++q) {
        p.sequence = q;
        rs.on_packet(p, t0);
    }
    p.ssrc = 0xb;
    p.sequence = 0;
    rs.on_packet(p, t0);
    p.ssrc = 0xc; // unknown
    CHECK_FALSE(rs.on_packet(p, t0));
    std::array<rtp::rtcp::report_block, 31> blocks;
    CHECK(rs.report_blocks(t0 + 1s, blocks) == 2);
    p.ssrc = 0xb;
    p.sequence = 10;
    rs.on_packet(p, t0 + 1s);
    REQUIRE(rs.report_blocks(t0 + 2s, blocks) == 1);
    CHECK(blocks[0].ssrc == 0xb);
    CHECK(blocks[0].cumulative_lost == 9); // 0 .. 10 expected, 0 and 10 received
    CHECK(blocks[0].fraction_lost == 9 * 256 / 10);
}

TEST_SUITE_END();
