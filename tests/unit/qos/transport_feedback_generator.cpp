#include "onair/qos/transport_feedback_generator.hpp"

#include "onair/rtp/rtcp.hpp"
#include "onair/rtp/transport_feedback.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <vector>

using namespace onair;
using namespace std::chrono_literals;
using qos::transport_feedback_generator;

namespace {

using clock_type = std::chrono::steady_clock;
const clock_type::time_point t0{std::chrono::seconds{100}};
constexpr std::int64_t t0_us = 100'000'000;

struct status {
    std::uint16_t seq = 0;
    bool received = false;
    std::int64_t arrival_us = 0; ///< 0 when not received

    friend bool operator==(const status&, const status&) = default;
};

/// Everything the generator sent: each message parsed back.
struct collector {
    struct message {
        rtp::twcc::feedback_header header;
        std::vector<status> statuses;
    };
    std::vector<message> messages;

    void operator()(rtp::bytes_view d) {
        int seen = 0;
        const auto ec = rtp::rtcp::parse_compound(d, [&](const rtp::rtcp::feedback& f) {
            ++seen;
            CHECK(f.type == rtp::rtcp::type_rtpfb);
            CHECK(f.fmt == rtp::twcc::fmt);
            CHECK(f.sender_ssrc == 0xAAAA);
            CHECK(f.media_ssrc == 0xBBBB);
            message m;
            const auto st = rtp::twcc::parse(f.fci, m.header, [&](std::uint16_t seq, bool received, std::int64_t t) {
                m.statuses.push_back({seq, received, received ? t : 0});
            });
            REQUIRE(st == rtp::twcc::parse_status::ok);
            messages.push_back(m);
        });
        CHECK_FALSE(ec);
        CHECK(seen == 1);
    }
    /// All statuses of all messages, in order.
    std::vector<status> statuses() const {
        std::vector<status> v;
        for (const auto& m : messages) v.insert(v.end(), m.statuses.begin(), m.statuses.end());
        return v;
    }
    void clear() { messages.clear(); }
};

void build(transport_feedback_generator& g, clock_type::time_point now, collector& c) {
    g.build(now, 0xAAAA, 0xBBBB, [&](rtp::bytes_view d) { c(d); });
}

clock_type::time_point at_ms(std::int64_t ms) { return t0 + std::chrono::milliseconds(ms); }
std::int64_t us_at_ms(std::int64_t ms) { return t0_us + ms * 1000; }

} // namespace

TEST_SUITE_BEGIN("qos.transport_feedback_generator");

TEST_CASE("feedback covers every sequence number once: received with its time, or lost") {
    // 100 packets 1 ms apart, numbered 500.., with 510, 511 and 560 lost; feedback every 50 ms.
    transport_feedback_generator g;
    collector c;
    std::vector<status> expected;
    for (int i = 0; i < 100; ++i) {
        const auto seq = static_cast<std::uint16_t>(500 + i);
        const bool lost = i == 10 || i == 11 || i == 60;
        if (!lost) g.on_packet(seq, at_ms(i));
        expected.push_back({seq, !lost, lost ? 0 : us_at_ms(i)});
        if (g.due(at_ms(i))) build(g, at_ms(i), c);
    }
    build(g, at_ms(100), c);
    CHECK(c.statuses() == expected);
    CHECK(c.messages.size() == 2); // at 50 ms (500 .. 550), then 551 .. 599 at 100 ms
    CHECK(g.stats().packets == 97);
    CHECK(g.stats().feedback_sent == c.messages.size());
    CHECK(g.stats().duplicates == 0);
    CHECK(g.stats().late == 0);
    CHECK(g.pending() == 0);
}

TEST_CASE("due: only with something pending, once the interval passed") {
    transport_feedback_generator g;
    CHECK_FALSE(g.due(at_ms(1000)));
    g.on_packet(1, at_ms(0));
    CHECK_FALSE(g.due(at_ms(49)));
    CHECK(g.due(at_ms(50)));
    collector c;
    build(g, at_ms(50), c);
    CHECK(c.messages.size() == 1);
    CHECK_FALSE(g.due(at_ms(200))); // nothing new
    g.on_packet(2, at_ms(60));
    CHECK_FALSE(g.due(at_ms(99)));
    CHECK(g.due(at_ms(100)));
    // A build with nothing pending sends nothing.
    build(g, at_ms(100), c);
    build(g, at_ms(150), c);
    CHECK(c.messages.size() == 2);
}

TEST_CASE("reordered packets take their place; the late one's delta is negative") {
    // Arrival order 0, 1, 3, 2, 4: packet 2 arrives 1 ms after 3.
    transport_feedback_generator g;
    g.on_packet(0, at_ms(0));
    g.on_packet(1, at_ms(1));
    g.on_packet(3, at_ms(2));
    g.on_packet(2, at_ms(3));
    g.on_packet(4, at_ms(4));
    collector c;
    build(g, at_ms(50), c);
    REQUIRE(c.messages.size() == 1);
    CHECK(c.statuses() == std::vector<status>{{0, true, us_at_ms(0)},
                                              {1, true, us_at_ms(1)},
                                              {2, true, us_at_ms(3)},
                                              {3, true, us_at_ms(2)},
                                              {4, true, us_at_ms(4)}});
    CHECK(g.stats().late == 0);
    CHECK(g.stats().duplicates == 0);
}

TEST_CASE("duplicates are counted and ignored, before and after being reported") {
    transport_feedback_generator g;
    g.on_packet(10, at_ms(0));
    g.on_packet(11, at_ms(1));
    g.on_packet(11, at_ms(5)); // a second copy: the first arrival time stays
    g.on_packet(12, at_ms(2));
    CHECK(g.stats().duplicates == 1);
    collector c;
    build(g, at_ms(50), c);
    CHECK(c.statuses() == std::vector<status>{{10, true, us_at_ms(0)}, {11, true, us_at_ms(1)}, {12, true, us_at_ms(2)}});
    g.on_packet(10, at_ms(60)); // already reported as received: still a duplicate, not late
    CHECK(g.stats().duplicates == 2);
    CHECK(g.stats().late == 0);
    CHECK(g.pending() == 0);
}

TEST_CASE("a packet arriving after its number was reported lost is late, and reported again as received") {
    transport_feedback_generator g;
    g.on_packet(0, at_ms(0));
    g.on_packet(1, at_ms(1));
    g.on_packet(3, at_ms(2));
    collector c;
    build(g, at_ms(50), c);
    CHECK(c.statuses() == std::vector<status>{{0, true, us_at_ms(0)}, {1, true, us_at_ms(1)}, {2, false, 0}, {3, true, us_at_ms(2)}});
    g.on_packet(2, at_ms(55)); // after 2 was reported lost: reordered across the report
    CHECK(g.stats().late == 1);
    CHECK(g.pending() == 0);
    g.on_packet(2, at_ms(56)); // a second copy of it is a duplicate
    CHECK(g.stats().duplicates == 1);
    c.clear();
    g.on_packet(4, at_ms(60));
    build(g, at_ms(100), c);
    // The regular report starts after what was reported; then 2 again, on its own, received.
    REQUIRE(c.messages.size() == 2);
    CHECK(c.messages[0].header.base_sequence == 4);
    CHECK(c.messages[1].header.base_sequence == 2);
    CHECK(c.messages[1].header.status_count == 1);
    CHECK(c.messages[1].header.feedback_count == static_cast<std::uint8_t>(c.messages[0].header.feedback_count + 1));
    CHECK(c.statuses() == std::vector<status>{{4, true, us_at_ms(60)}, {2, true, us_at_ms(55)}});
    CHECK(g.stats().late_reported == 1);
    // Consecutive late ones share a message; separate ones do not (a gap would report the
    // numbers between as lost twice).
    g.on_packet(10, at_ms(110));
    c.clear();
    build(g, at_ms(150), c); // 5..9 reported lost
    g.on_packet(5, at_ms(151));
    g.on_packet(6, at_ms(152));
    g.on_packet(8, at_ms(153));
    c.clear();
    build(g, at_ms(200), c);
    REQUIRE(c.messages.size() == 2);
    CHECK(c.statuses() == std::vector<status>{{5, true, us_at_ms(151)}, {6, true, us_at_ms(152)}, {8, true, us_at_ms(153)}});
}

TEST_CASE("a long pending range is split by the status limit, with incrementing feedback counts") {
    // 175 packets, at most 50 statuses a message: 50 + 50 + 50 + 25, bases 0, 50, 100, 150.
    transport_feedback_generator::config cfg;
    cfg.max_packets_per_feedback = 50;
    transport_feedback_generator g(cfg);
    std::vector<status> expected;
    for (int i = 0; i < 175; ++i) {
        g.on_packet(static_cast<std::uint16_t>(i), at_ms(0) + std::chrono::microseconds(500 * i));
        expected.push_back({static_cast<std::uint16_t>(i), true, t0_us + 500 * i});
    }
    collector c;
    build(g, at_ms(100), c);
    REQUIRE(c.messages.size() == 4);
    for (std::size_t m = 0; m < 4; ++m) {
        CHECK(c.messages[m].header.feedback_count == m);
        CHECK(c.messages[m].header.base_sequence == 50 * m);
        CHECK(c.messages[m].header.status_count == (m < 3 ? 50 : 25));
    }
    CHECK(c.statuses() == expected);
    CHECK(g.feedback_count() == 4);
    CHECK(g.stats().feedback_sent == 4);

    // The next build goes on counting.
    c.clear();
    g.on_packet(175, at_ms(120));
    build(g, at_ms(150), c);
    REQUIRE(c.messages.size() == 1);
    CHECK(c.messages[0].header.feedback_count == 4);
}

TEST_CASE("splitting by size and by a delta too large for 16 bits") {
    // 64-byte FCIs hold 8 + 2 (one run chunk) + 54 small deltas: 200 packets need 4 messages.
    transport_feedback_generator::config cfg;
    cfg.max_fci_bytes = 64;
    transport_feedback_generator g(cfg);
    for (int i = 0; i < 200; ++i) g.on_packet(static_cast<std::uint16_t>(i), at_ms(i));
    collector c;
    build(g, at_ms(250), c);
    CHECK(c.messages.size() == 4);
    const auto all = c.statuses();
    REQUIRE(all.size() == 200);
    for (int i = 0; i < 200; ++i) CHECK(all[static_cast<std::size_t>(i)] == status{static_cast<std::uint16_t>(i), true, us_at_ms(i)});

    // Two packets 10 s apart (delta > 8191.75 ms) cannot share a message: each gets its own,
    // with its own reference time.
    transport_feedback_generator h;
    h.on_packet(7, at_ms(0));
    h.on_packet(8, at_ms(10'000));
    c.clear();
    build(h, at_ms(10'050), c);
    REQUIRE(c.messages.size() == 2);
    CHECK(c.messages[0].statuses == std::vector<status>{{7, true, us_at_ms(0)}});
    CHECK(c.messages[1].statuses == std::vector<status>{{8, true, us_at_ms(10'000)}});
    CHECK(c.messages[1].header.reference_time == us_at_ms(10'000) / 64'000);
}

TEST_CASE("a long run of losses is reported in one message even past the status limit") {
    // 3000 lost between 1 and 3002: the message with 3002 starts at 2 with 3000 lost statuses
    // (a few run length chunks) although the limit is 500; 3003 joins it.
    transport_feedback_generator g;
    g.on_packet(0, at_ms(0));
    g.on_packet(1, at_ms(1));
    g.on_packet(3002, at_ms(2));
    g.on_packet(3003, at_ms(3));
    collector c;
    build(g, at_ms(50), c);
    const auto all = c.statuses();
    REQUIRE(all.size() == 3004);
    for (std::size_t i = 2; i < 3002; ++i) CHECK_FALSE(all[i].received);
    CHECK(all[3002] == status{3002, true, us_at_ms(2)});
    CHECK(all[3003] == status{3003, true, us_at_ms(3)});
    REQUIRE(c.messages.size() == 2); // 0, 1 and the losses would pass 500 together
    CHECK(c.messages[1].header.base_sequence == 2);
    CHECK(c.messages[1].header.status_count == 3002);
}

TEST_CASE("transport sequence numbers wrap from 65535 to 0 across messages") {
    transport_feedback_generator g;
    collector c;
    std::vector<status> expected;
    for (int i = 0; i < 12; ++i) { // 65530 .. 65535, 0 .. 5
        const auto seq = static_cast<std::uint16_t>(65530 + i);
        g.on_packet(seq, at_ms(10 * i));
        expected.push_back({seq, true, us_at_ms(10 * i)});
        if (g.due(at_ms(10 * i))) build(g, at_ms(10 * i), c);
    }
    build(g, at_ms(200), c);
    CHECK(c.messages.size() == 3);
    CHECK(c.statuses() == expected);
    CHECK(g.stats().restarts == 0);
}

TEST_CASE("a jump the history cannot hold restarts reporting at that packet") {
    transport_feedback_generator g; // history 4096
    collector c;
    for (int i = 0; i < 10; ++i) g.on_packet(static_cast<std::uint16_t>(i), at_ms(i));
    build(g, at_ms(50), c);
    CHECK(c.messages.size() == 1);
    // Ahead by 30'000 (more than 4096): the sender's numbering jumped.
    g.on_packet(30'000, at_ms(60));
    g.on_packet(30'001, at_ms(61));
    CHECK(g.stats().restarts == 1);
    CHECK(g.pending() == 2);
    c.clear();
    build(g, at_ms(100), c);
    REQUIRE(c.messages.size() == 1);
    CHECK(c.messages[0].header.feedback_count == 1); // the count goes on
    CHECK(c.statuses() == std::vector<status>{{30'000, true, us_at_ms(60)}, {30'001, true, us_at_ms(61)}});

    // One packet behind by 20'000 (more than 4096 back) is a stray: late, nothing dropped.
    g.on_packet(30'002, at_ms(110));
    g.on_packet(10'000, at_ms(111));
    CHECK(g.stats().restarts == 1);
    CHECK(g.stats().late == 1);
    CHECK(g.pending() == 1);
    // Sixteen in a row that far behind: the sender numbers from there now. Restart, dropping
    // what was pending; the run's last packet is where reporting starts again.
    for (int i = 1; i <= 15; ++i) g.on_packet(static_cast<std::uint16_t>(10'000 + i), at_ms(111 + i));
    CHECK(g.stats().restarts == 2);
    CHECK(g.stats().late == 15);
    g.on_packet(10'016, at_ms(127));
    c.clear();
    build(g, at_ms(150), c);
    CHECK(c.statuses() == std::vector<status>{{10'015, true, us_at_ms(126)}, {10'016, true, us_at_ms(127)}});
    // A few behind (within the history) after the restart is merely late.
    g.on_packet(9'990, at_ms(160));
    CHECK(g.stats().late == 16);
    CHECK(g.stats().restarts == 2);

    // Not building for too long overflows the history: a restart as well.
    transport_feedback_generator::config cfg;
    cfg.history = 64;
    transport_feedback_generator small(cfg);
    for (int i = 0; i < 64; ++i) small.on_packet(static_cast<std::uint16_t>(i), at_ms(i));
    CHECK(small.stats().restarts == 0);
    CHECK(small.pending() == 64);
    small.on_packet(64, at_ms(64));
    CHECK(small.stats().restarts == 1);
    CHECK(small.pending() == 1);
}

TEST_CASE("the feedback packet count wraps at 256") {
    transport_feedback_generator g;
    collector c;
    for (int i = 0; i < 260; ++i) {
        g.on_packet(static_cast<std::uint16_t>(i), at_ms(50 * i));
        build(g, at_ms(50 * i + 1), c);
    }
    REQUIRE(c.messages.size() == 260);
    for (std::size_t i = 0; i < 260; ++i) CHECK(c.messages[i].header.feedback_count == static_cast<std::uint8_t>(i));
}

TEST_CASE("a reordering, lossy, duplicating stream: every number reported, received at most once") {
    // Seeded: packets 0..1999 1 ms apart, 5 % lost, 5 % duplicated, 10 % delayed by 1..30 ms;
    // feedback every 50 ms. Each sequence number appears once over all messages; those
    // reported received carry their (first) arrival time; late arrivals were counted.
    transport_feedback_generator g;
    collector c;
    std::uint32_t x = 12345;
    auto rnd = [&](std::uint32_t n) {
        x = x * 1'103'515'245u + 12'345u;
        return (x >> 8) % n;
    };
    std::multimap<std::int64_t, std::uint16_t> arrivals; // µs after t0 -> sequence
    for (int i = 0; i < 2000; ++i) {
        if (rnd(100) < 5) continue;
        std::int64_t t = 1000 * i + (rnd(100) < 10 ? 1000 * (1 + rnd(30)) : 0);
        arrivals.emplace(t, static_cast<std::uint16_t>(i));
        if (rnd(100) < 5) arrivals.emplace(t + 2000, static_cast<std::uint16_t>(i));
    }
    std::map<std::uint16_t, std::int64_t> first_arrival;
    std::int64_t next_tick = 50'000;
    for (const auto& [t, seq] : arrivals) {
        while (t >= next_tick) {
            if (g.due(t0 + std::chrono::microseconds(next_tick))) build(g, t0 + std::chrono::microseconds(next_tick), c);
            next_tick += 50'000;
        }
        g.on_packet(seq, t0 + std::chrono::microseconds(t));
        first_arrival.emplace(seq, t0_us + t);
    }
    build(g, t0 + std::chrono::microseconds(next_tick), c);
    const auto all = c.statuses();
    std::map<std::uint16_t, int> times_reported;
    std::uint64_t received_reported = 0;
    for (const auto& s : all) {
        ++times_reported[s.seq];
        if (s.received) {
            ++received_reported;
            REQUIRE(first_arrival.count(s.seq) == 1);
            CHECK(s.arrival_us == first_arrival[s.seq]);
        }
    }
    // Once, or twice when the first report said lost and the packet came after all.
    std::map<std::uint16_t, bool> reported_received;
    for (const auto& s : all) {
        if (s.received) {
            CHECK_FALSE(reported_received[s.seq]); // received at most once
            reported_received[s.seq] = true;
        }
    }
    std::uint64_t twice = 0;
    for (const auto& [seq, n] : times_reported) {
        CHECK(n <= 2);
        if (n == 2) {
            ++twice;
            CHECK(reported_received[seq]);
        }
    }
    CHECK(twice == g.stats().late);
    // No number skipped between the first reported and the last.
    CHECK(times_reported.size() == std::size_t{times_reported.rbegin()->first} - times_reported.begin()->first + 1);
    std::uint16_t highest = 0;
    for (const auto& a : arrivals) highest = std::max(highest, a.second);
    CHECK(times_reported.rbegin()->first == highest); // up to the newest received
    // Every arrival is reported received once, or is a duplicate.
    CHECK(received_reported + g.stats().duplicates == arrivals.size());
    CHECK(g.stats().late > 0);
    CHECK(g.stats().duplicates > 0);
    CHECK(g.stats().restarts == 0);
    // The regular messages follow each other without gaps or overlaps (the re-reports of
    // late packets go back); feedback counts always increment.
    std::optional<rtp::twcc::feedback_header> prev_regular;
    for (std::size_t m = 0; m < c.messages.size(); ++m) {
        const auto& h = c.messages[m].header;
        if (m > 0) CHECK(h.feedback_count == static_cast<std::uint8_t>(c.messages[m - 1].header.feedback_count + 1));
        if (prev_regular && static_cast<std::int16_t>(h.base_sequence - prev_regular->base_sequence) < 0) continue; // a re-report
        if (prev_regular) CHECK(h.base_sequence == static_cast<std::uint16_t>(prev_regular->base_sequence + prev_regular->status_count));
        prev_regular = h;
    }
}

TEST_SUITE_END();
