#include "onair/rtp/transport_feedback.hpp"

#include "onair/rtp/rtcp.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

using namespace onair;
using namespace onair::rtp;
using twcc::feedback_builder;
using twcc::feedback_header;
using twcc::parse_status;
using bytes = std::vector<std::uint8_t>;

namespace {

struct status {
    std::uint16_t seq = 0;
    bool received = false;
    std::int64_t arrival_us = 0;

    friend bool operator==(const status&, const status&) = default;
};

struct decoded {
    parse_status result = parse_status::ok;
    feedback_header header;
    std::vector<status> statuses;
};

decoded decode(bytes_view fci) {
    decoded d;
    d.result = twcc::parse(fci, d.header, [&](std::uint16_t seq, bool received, std::int64_t arrival_us) {
        d.statuses.push_back({seq, received, received ? arrival_us : 0});
    });
    return d;
}

bytes fci_of(const feedback_builder& b) {
    bytes out(b.size() + 16, 0xee);
    const std::size_t n = b.write(out);
    REQUIRE(n == b.size());
    out.resize(n);
    return out;
}

/// The chunk words of a well-formed FCI (as many as its status count needs).
std::vector<std::uint16_t> chunk_words(const bytes& fci) {
    std::vector<std::uint16_t> words;
    std::uint32_t left = load_be16(&fci[2]);
    for (std::size_t pos = twcc::header_size; left > 0 && pos + 2 <= fci.size(); pos += 2) {
        const std::uint16_t c = load_be16(&fci[pos]);
        words.push_back(c);
        const std::uint32_t n = (c & 0x8000) == 0 ? (c & 0x1fffu) : (c & 0x4000) ? 7u : 14u;
        left -= std::min(n, left);
    }
    return words;
}

/// All received at the given times, for sequences first, first + 1, ...
std::vector<status> all_received(std::uint16_t first, const std::vector<std::int64_t>& times) {
    std::vector<status> v;
    for (std::size_t i = 0; i < times.size(); ++i) v.push_back({static_cast<std::uint16_t>(first + i), true, times[i]});
    return v;
}

/// |a - b|
std::int64_t gap_us(std::int64_t d) { return d < 0 ? -d : d; }

constexpr std::int64_t t0 = 10 * 64'000; // a multiple of 64 ms: the first delta is 0

} // namespace

TEST_SUITE_BEGIN("rtp.transport_feedback");

TEST_CASE("round trip: a run of received packets with small deltas is one run length chunk") {
    // 20 packets 1 ms apart (4 ticks each): one chunk 0 01 0000000010100 = 0x2014, 20 one-byte
    // deltas; 8 + 2 + 20 = 30 bytes, padded to 32.
    feedback_builder b;
    b.reset(1000, t0, 3);
    std::vector<std::int64_t> times;
    for (int i = 0; i < 20; ++i) {
        times.push_back(t0 + 1000 * i);
        REQUIRE(b.add(static_cast<std::uint16_t>(1000 + i), times.back()));
    }
    const bytes fci = fci_of(b);
    CHECK(fci.size() == 32);
    CHECK(chunk_words(fci) == std::vector<std::uint16_t>{0x2014});
    const decoded d = decode(fci);
    REQUIRE(d.result == parse_status::ok);
    CHECK(d.header == feedback_header{1000, 20, 10, 3});
    CHECK(d.statuses == all_received(1000, times));
}

TEST_CASE("round trip: a long run of lost packets is a run length chunk of symbol 00") {
    // Statuses: seq 0 received, 1..199 lost, 200 received. The first 14 (1 then 13 lost) fill
    // a one-bit vector 1 0 | 1 0000000000000 = 0xA000; the remaining 186 lost are one run
    // (0x00BA); the last packet is a run of one small delta (0x2001).
    feedback_builder b;
    b.reset(0, t0, 0);
    REQUIRE(b.add(0, t0 + 250));
    REQUIRE(b.add(200, t0 + 2250));
    const bytes fci = fci_of(b);
    CHECK(chunk_words(fci) == std::vector<std::uint16_t>{0xA000, 0x00BA, 0x2001});
    CHECK(fci.size() == 8 + 6 + 2 + 0); // 16: two deltas, no padding needed
    const decoded d = decode(fci);
    REQUIRE(d.result == parse_status::ok);
    REQUIRE(d.statuses.size() == 201);
    CHECK(d.statuses.front() == status{0, true, t0 + 250});
    for (std::uint16_t s = 1; s < 200; ++s) CHECK_FALSE(d.statuses[s].received);
    CHECK(d.statuses.back() == status{200, true, t0 + 2250});
}

TEST_CASE("round trip: alternate losses fill one-bit status vectors") {
    // Every even sequence number of 0..26 arrives: 27 statuses 1 0 1 0 ... 1. Each 14 go in a
    // one-bit vector 1 0 | 10101010101010 = 0xAAAA; the last 13 also give 0xAAAA (the unused
    // 14th symbol is 0, beyond the status count).
    feedback_builder b;
    b.reset(0, t0, 0);
    std::vector<status> expected;
    for (int i = 0; i <= 26; ++i) {
        const auto seq = static_cast<std::uint16_t>(i);
        if (i % 2 == 0) {
            REQUIRE(b.add(seq, t0 + 1000 * i));
            expected.push_back({seq, true, t0 + 1000 * i});
        } else {
            expected.push_back({seq, false, 0});
        }
    }
    const bytes fci = fci_of(b);
    CHECK(chunk_words(fci) == std::vector<std::uint16_t>{0xAAAA, 0xAAAA});
    const decoded d = decode(fci);
    REQUIRE(d.result == parse_status::ok);
    CHECK(d.header.status_count == 27);
    CHECK(d.statuses == expected);
}

TEST_CASE("round trip: large and negative deltas use a two-bit status vector") {
    // Deltas from the previous reported time, in 250 µs ticks: 0 (small), 4 (small), 396
    // (> 255: large), -4 (negative: large), 1 (small), -1 (large), 0 (small). Symbols
    // 01 01 10 10 01 10 01 after 1 1 give 1101 0110 1001 1001 = 0xD699.
    const std::vector<std::int64_t> times{t0, t0 + 1000, t0 + 100'000, t0 + 99'000, t0 + 99'250, t0 + 99'000, t0 + 99'000};
    feedback_builder b;
    b.reset(40, t0, 9);
    for (std::size_t i = 0; i < times.size(); ++i) REQUIRE(b.add(static_cast<std::uint16_t>(40 + i), times[i]));
    const bytes fci = fci_of(b);
    CHECK(chunk_words(fci) == std::vector<std::uint16_t>{0xD699});
    CHECK(fci.size() == 8 + 2 + 4 * 1 + 3 * 2); // 20
    const decoded d = decode(fci);
    REQUIRE(d.result == parse_status::ok);
    CHECK(d.statuses == all_received(40, times));
}

TEST_CASE("round trip: mixed losses, reorder-like negative deltas and long runs in one message") {
    // A seeded random stream: gaps of 0..40 lost, arrival steps of -3..+90 ms. Whatever chunks
    // the builder picks, the decoded statuses are exactly what was added, each time within
    // 125 µs of the truth.
    std::mt19937 rng(7);
    for (int round = 0; round < 200; ++round) {
        feedback_builder b;
        const std::int64_t start = 1'000'000 + static_cast<std::int64_t>(rng() % 10'000'000);
        const auto base = static_cast<std::uint16_t>(rng());
        b.reset(base, start, static_cast<std::uint8_t>(round));
        std::vector<status> expected;
        auto seq = base;
        std::int64_t t = start;
        bool first = true;
        for (;;) {
            const auto gap = static_cast<std::uint32_t>(rng() % 4 == 0 ? rng() % 41 : 0);
            const auto next = static_cast<std::uint16_t>(seq + (first ? 0 : 1) + gap);
            const std::int64_t next_t = t + static_cast<std::int64_t>(rng() % 93'000) - 3000;
            if (!b.add(next, next_t)) break;
            for (auto s = static_cast<std::uint16_t>(first ? base : seq + 1); s != next; ++s) expected.push_back({s, false, 0});
            expected.push_back({next, true, next_t});
            seq = next;
            t = next_t;
            first = false;
        }
        REQUIRE(b.size() <= 1200);
        const decoded d = decode(fci_of(b));
        REQUIRE(d.result == parse_status::ok);
        REQUIRE(d.statuses.size() == expected.size());
        for (std::size_t i = 0; i < expected.size(); ++i) {
            CHECK(d.statuses[i].seq == expected[i].seq);
            CHECK(d.statuses[i].received == expected[i].received);
            if (expected[i].received) CHECK(gap_us(d.statuses[i].arrival_us - expected[i].arrival_us) <= 125);
        }
    }
}

TEST_CASE("sequence numbers wrap from 65535 to 0 within a message") {
    feedback_builder b;
    b.reset(65530, t0, 0);
    std::vector<std::int64_t> times;
    for (int i = 0; i < 12; ++i) { // 65530 .. 65535, 0 .. 5
        times.push_back(t0 + 2000 * i);
        REQUIRE(b.add(static_cast<std::uint16_t>(65530 + i), times.back()));
    }
    const decoded d = decode(fci_of(b));
    REQUIRE(d.result == parse_status::ok);
    CHECK(d.header.base_sequence == 65530);
    CHECK(d.statuses == all_received(65530, times));
    CHECK(d.statuses[5].seq == 65535);
    CHECK(d.statuses[6].seq == 0);
}

TEST_CASE("reference time: floor of 64 ms units, signed 24 bits, and no drift over 1000 packets") {
    // 1'000'123'456 µs / 64'000 = 15626.9...: reference 15626 (1'000'064'000 µs), so the
    // first delta is 59'456 µs = 237.8 ticks, rounded to 238. Packets then come every 1337 µs
    // (5.348 ticks): rounding each step on its own would drift by ~0.35 tick a packet (87 ms
    // after 1000); rounding against the reconstructed time keeps every one within 125 µs.
    feedback_builder b;
    const std::int64_t first = 1'000'123'456;
    b.reset(7, first, 0);
    CHECK(b.reference_time() == 15626);
    std::vector<std::int64_t> times;
    for (int i = 0; i < 1000; ++i) {
        times.push_back(first + 1337 * i);
        REQUIRE(b.add(static_cast<std::uint16_t>(7 + i), times.back()));
    }
    CHECK(b.size() == (8 + 2 + 1000 + 3) / 4 * 4); // one run length chunk, 1000 small deltas
    const decoded d = decode(fci_of(b));
    REQUIRE(d.result == parse_status::ok);
    CHECK(d.header.reference_time == 15626);
    REQUIRE(d.statuses.size() == 1000);
    std::int64_t worst = 0;
    for (std::size_t i = 0; i < 1000; ++i) worst = std::max(worst, gap_us(d.statuses[i].arrival_us - times[i]));
    CHECK(worst <= 125);
    CHECK(gap_us(d.statuses.back().arrival_us - times.back()) <= 125);

    // Negative times floor downwards: -1 µs is in the 64 ms unit -1.
    b.reset(0, -1, 0);
    CHECK(b.reference_time() == -1);
    REQUIRE(b.add(0, -1));
    const decoded n = decode(fci_of(b));
    REQUIRE(n.result == parse_status::ok);
    CHECK(n.header.reference_time == -1);
    CHECK(gap_us(n.statuses[0].arrival_us - -1) <= 125);

    // Beyond 24 bits the reference time wraps (the receiver only compares differences).
    b.reset(0, (std::int64_t{1} << 23) * 64'000, 0);
    CHECK(b.reference_time() == -(1 << 23));
    b.reset(0, ((std::int64_t{1} << 24) + 5) * 64'000 + 10, 0);
    CHECK(b.reference_time() == 5);
    REQUIRE(b.add(0, ((std::int64_t{1} << 24) + 5) * 64'000 + 10));
    CHECK(decode(fci_of(b)).statuses[0].arrival_us == 5 * 64'000); // 10 µs rounds to 0 ticks
}

TEST_CASE("the builder refuses deltas outside 16 bits and sequences not ahead, changing nothing") {
    feedback_builder b;
    b.reset(0, t0, 0);
    REQUIRE(b.add(0, t0));
    CHECK(b.add(1, t0 + 8'191'750));                     // +32767 ticks: the largest delta
    CHECK_FALSE(b.add(2, t0 + 8'191'750 + 8'192'000));   // +32768 ticks
    CHECK(b.add(2, t0 + 8'191'750 - 8'192'000));         // -32768 ticks: the most negative
    CHECK_FALSE(b.add(3, t0 + 8'191'750 - 2 * 8'192'000 - 250)); // -32769 ticks
    CHECK_FALSE(b.add(2, t0));                           // not ahead: same sequence
    CHECK_FALSE(b.add(1, t0));                           // behind
    CHECK_FALSE(b.add(static_cast<std::uint16_t>(2 + 0x8000), t0)); // 2^15 ahead reads as behind
    CHECK(b.received() == 3);
    CHECK(b.status_count() == 3);
    const decoded d = decode(fci_of(b));
    REQUIRE(d.result == parse_status::ok);
    CHECK(d.statuses == all_received(0, {t0, t0 + 8'191'750, t0 + 8'191'750 - 8'192'000}));

    // The first packet may come after the base (leading losses) but not before it.
    feedback_builder c;
    c.reset(100, t0, 0);
    CHECK_FALSE(c.add(99, t0));
    CHECK(c.empty());
    CHECK(c.write(std::span<std::uint8_t>{}) == 0);
    bytes out(64);
    CHECK(c.write(out) == 0); // nothing to report: no message
    CHECK(c.add(103, t0));
    const decoded e = decode(fci_of(c));
    REQUIRE(e.result == parse_status::ok);
    CHECK(e.statuses == std::vector<status>{{100, false, 0}, {101, false, 0}, {102, false, 0}, {103, true, t0}});
}

TEST_CASE("the builder refuses packets past its size limit and the 65535 status count") {
    // 32 bytes: 8 header + 2 (one run chunk) + 22 one-byte deltas.
    feedback_builder b(32);
    b.reset(0, t0, 0);
    std::vector<std::int64_t> times;
    std::uint16_t seq = 0;
    while (b.add(seq, t0 + 1000 * seq)) times.push_back(t0 + 1000 * seq++);
    CHECK(b.received() == 22);
    CHECK(b.size() == 32);
    CHECK_FALSE(b.add(seq, t0 + 1000 * seq)); // still refused
    bytes small(31);
    CHECK(b.write(small) == 0); // too small an output buffer
    const decoded d = decode(fci_of(b));
    REQUIRE(d.result == parse_status::ok);
    CHECK(d.statuses == all_received(0, times));

    // A large delta costs two bytes: it no longer fits once only one byte is left.
    feedback_builder c(12); // 8 header + 2 chunk + 2 bytes of deltas
    c.reset(0, t0, 0);
    CHECK(c.add(0, t0));
    CHECK_FALSE(c.add(1, t0 + 100'000)); // 400 ticks: two bytes, 13 > 12
    CHECK(c.add(1, t0 + 1000));          // one byte: 12
    CHECK_FALSE(c.add(2, t0 + 2000));    // 13 → 16 after padding
    CHECK(c.size() == 12);

    // Status count: 0, then 32767 ahead, then 32767 ahead again reach 65535 statuses.
    feedback_builder e;
    e.reset(0, t0, 0);
    CHECK(e.add(0, t0));
    CHECK(e.add(32767, t0));
    CHECK(e.add(65534, t0));
    CHECK(e.status_count() == 65535);
    CHECK_FALSE(e.add(65535, t0));
    const decoded f = decode(fci_of(e));
    REQUIRE(f.result == parse_status::ok);
    REQUIRE(f.statuses.size() == 65535);
    CHECK(f.statuses[32767] == status{32767, true, t0});
    CHECK(f.statuses.back() == status{65534, true, t0});
    int received = 0;
    for (const auto& s : f.statuses) received += s.received;
    CHECK(received == 3);
}

TEST_CASE("write_rtcp: a complete RTPFB FMT=15 packet that parse_compound frames") {
    feedback_builder b;
    b.reset(5, t0, 42);
    REQUIRE(b.add(5, t0 + 500));
    REQUIRE(b.add(8, t0 + 3000));
    bytes out(1500);
    const std::size_t n = b.write_rtcp(0x1111, 0x2222, out);
    REQUIRE(n == 12 + b.size());
    out.resize(n);
    CHECK(out[0] == (0x80 | twcc::fmt));
    CHECK(out[1] == rtcp::type_rtpfb);
    int seen = 0;
    const auto ec = rtcp::parse_compound(out, [&](const rtcp::feedback& f) {
        ++seen;
        CHECK(f.fmt == twcc::fmt);
        CHECK(f.sender_ssrc == 0x1111);
        CHECK(f.media_ssrc == 0x2222);
        const decoded d = decode(f.fci);
        REQUIRE(d.result == parse_status::ok);
        CHECK(d.header.feedback_count == 42);
        CHECK(d.statuses == std::vector<status>{{5, true, t0 + 500}, {6, false, 0}, {7, false, 0}, {8, true, t0 + 3000}});
    });
    CHECK_FALSE(ec);
    CHECK(seen == 1);
    bytes tiny(12 + b.size() - 1);
    CHECK(b.write_rtcp(1, 2, tiny) == 0);
}

TEST_CASE("a hand-built message: two-bit vector, run length chunk, wrap, large negative delta") {
    const bytes fci{
        0xFF, 0xFE,       // base sequence 65534
        0x00, 0x09,       // packet status count 9: 65534, 65535, 0, 1, ..., 6
        0x00, 0x00, 0x02, // reference time 2 x 64 ms = 128'000 µs
        0x07,             // feedback packet count 7
        0xD2, 0x41,       // 1 1 | 01 00 10 01 00 00 01: two-bit vector of 7 statuses:
                          //   65534 small, 65535 lost, 0 large, 1 small, 2 lost, 3 lost, 4 small
        0x20, 0x02,       // 0 | 01 | 0000000000010: run of 2 small: 5, 6
        0x04,             // 65534: +4 ticks  = +1 ms     -> 129'000
        0xFF, 0xF8,       // 0:     -8 ticks  = -2 ms     -> 127'000 (signed, two bytes)
        0x10,             // 1:     +16 ticks = +4 ms     -> 131'000
        0x00,             // 4:     +0                    -> 131'000
        0xFF,             // 5:     +255 ticks = 63.75 ms -> 194'750
        0x01,             // 6:     +1 tick = 0.25 ms     -> 195'000
        0x00,             // zero padding to 20 bytes
    };
    const decoded d = decode(fci);
    REQUIRE(d.result == parse_status::ok);
    CHECK(d.header == feedback_header{65534, 9, 2, 7});
    CHECK(d.statuses == std::vector<status>{
                            {65534, true, 129'000},
                            {65535, false, 0},
                            {0, true, 127'000},
                            {1, true, 131'000},
                            {2, false, 0},
                            {3, false, 0},
                            {4, true, 131'000},
                            {5, true, 194'750},
                            {6, true, 195'000},
                        });
}

TEST_CASE("a hand-built message with the draft's chunk examples and a negative reference time") {
    const bytes fci{
        0x00, 0x64,       // base sequence 100
        0x00, 0xEB,       // 235 statuses: 100 .. 334
        0xFF, 0xFF, 0xFF, // reference time -1: -64'000 µs
        0x00,             // feedback packet count 0
        0x00, 0xDD,       // 0 | 00 | 0000011011101: run of 221 not received (100 .. 320)
        0x9F, 0x1C,       // 1 0 | 0 11111 000 111 00: one-bit vector: 321 lost, 322 .. 326
                          //   received, 327 .. 329 lost, 330 .. 332 received, 333, 334 lost
        0x00, 0x04, 0x04, 0x04, 0x04, // 322 .. 326: -64, -63, -62, -61, -60 ms
        0xC8,                         // 330: +200 ticks = +50 ms -> -10 ms
        0x04, 0x04,                   // 331, 332: -9, -8 ms
    };                                // 20 bytes: no padding
    const decoded d = decode(fci);
    REQUIRE(d.result == parse_status::ok);
    CHECK(d.header == feedback_header{100, 235, -1, 0});
    REQUIRE(d.statuses.size() == 235);
    std::vector<status> got_received;
    for (std::size_t i = 0; i < d.statuses.size(); ++i) {
        CHECK(d.statuses[i].seq == 100 + i);
        if (d.statuses[i].received) got_received.push_back(d.statuses[i]);
    }
    CHECK(got_received == std::vector<status>{{322, true, -64'000}, {323, true, -63'000}, {324, true, -62'000},
                                              {325, true, -61'000}, {326, true, -60'000}, {330, true, -10'000},
                                              {331, true, -9'000},  {332, true, -8'000}});
}

TEST_CASE("malformed: every truncation of a valid message reports nothing") {
    // A message using every chunk kind and both delta sizes.
    feedback_builder b;
    b.reset(300, t0, 1);
    std::int64_t t = t0;
    for (std::uint16_t s = 300; s < 330; ++s) REQUIRE(b.add(s, t += 1000));       // run of small
    REQUIRE(b.add(400, t += 1000));                                                 // lost run
    for (std::uint16_t s = 402; s < 420; s = static_cast<std::uint16_t>(s + 2)) REQUIRE(b.add(s, t += 500)); // one-bit
    REQUIRE(b.add(421, t += 200'000));                                              // large
    REQUIRE(b.add(422, t -= 3000));                                                 // negative
    REQUIRE(b.add(424, t += 1000));
    const bytes fci = fci_of(b);
    const decoded whole = decode(fci);
    REQUIRE(whole.result == parse_status::ok);
    // The bytes the message needs: header, chunks and deltas (small ones 1 byte, others 2);
    // the rest is zero padding.
    std::size_t needed = twcc::header_size + 2 * chunk_words(fci).size();
    std::int64_t previous = std::int64_t{whole.header.reference_time} * 64'000;
    for (const status& st : whole.statuses) {
        if (!st.received) continue;
        const std::int64_t ticks = (st.arrival_us - previous) / 250;
        needed += ticks >= 0 && ticks <= 255 ? 1 : 2;
        previous = st.arrival_us;
    }
    CHECK(needed < fci.size()); // this message has padding
    CHECK(fci.size() - needed <= 3);
    for (std::size_t len = 0; len < fci.size(); ++len) {
        const decoded d = decode(bytes_view{fci.data(), len});
        CAPTURE(len);
        if (len < needed) {
            CHECK(d.result != parse_status::ok);
            CHECK(d.statuses.empty());
        } else { // only padding was cut: still the same message
            CHECK(d.result == parse_status::ok);
            CHECK(d.statuses == whole.statuses);
        }
    }
    CHECK(decode(bytes_view{fci.data(), 7}).result == parse_status::truncated);
}

TEST_CASE("malformed: counts, reserved symbols, missing deltas, trailing bytes") {
    int calls = 0;
    auto count = [&](const bytes& fci) {
        feedback_header h;
        return twcc::parse(fci, h, [&](std::uint16_t, bool, std::int64_t) { ++calls; });
    };
    // Status count 0.
    CHECK(count({0, 1, 0, 0, 0, 0, 0, 0}) == parse_status::bad_count);
    // Status count 20, one run chunk of 14 lost and nothing more: chunks describe too few.
    CHECK(count({0, 1, 0, 20, 0, 0, 0, 0, 0x00, 0x0E}) == parse_status::bad_count);
    // Status count 20 but the chunk is a one-bit vector of 14 received followed by its 14
    // deltas: the deltas read as chunks (0x0101 = run of 257 lost covers the rest), and then
    // the deltas the vector implies are missing.
    CHECK(count({0, 1, 0, 20, 0, 0, 0, 0, 0xBF, 0xFF, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}) ==
          parse_status::truncated);
    // The same vector with status count 14 is fine.
    CHECK(count({0, 1, 0, 14, 0, 0, 0, 0, 0xBF, 0xFF, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0}) == parse_status::ok);
    CHECK(calls == 14);
    calls = 0;
    // Reserved symbol 11 in a run length chunk (0 11 ...) and in a two-bit vector.
    CHECK(count({0, 1, 0, 3, 0, 0, 0, 0, 0x60, 0x03}) == parse_status::bad_chunk);
    CHECK(count({0, 1, 0, 3, 0, 0, 0, 0, 0xDB, 0x00, 1, 0}) == parse_status::bad_chunk); // 11 | 01 10 11 00 ..
    // ... but a reserved symbol beyond the status count is ignored, like other unused symbols:
    // two statuses (small: 1 byte, large: 2 bytes), then one byte of padding.
    CHECK(count({0, 1, 0, 2, 0, 0, 0, 0, 0xDB, 0x00, 1, 0, 0, 0}) == parse_status::ok);
    CHECK(calls == 2);
    calls = 0;
    // A run of length 0 describes nothing.
    CHECK(count({0, 1, 0, 3, 0, 0, 0, 0, 0x20, 0x00, 0x20, 0x03, 1, 1, 1, 0}) == parse_status::bad_chunk);
    // Missing deltas: three small-delta statuses, two delta bytes.
    CHECK(count({0, 1, 0, 3, 0, 0, 0, 0, 0x20, 0x03, 1, 1}) == parse_status::truncated);
    // A large delta with only its first byte.
    CHECK(count({0, 1, 0, 1, 0, 0, 0, 0, 0x40, 0x01, 0xFF}) == parse_status::truncated);
    // More than 3 bytes after the deltas.
    CHECK(count({0, 1, 0, 1, 0, 0, 0, 0, 0x20, 0x01, 4, 0, 0, 0, 0}) == parse_status::trailing);
    CHECK(count({0, 1, 0, 1, 0, 0, 0, 0, 0x20, 0x01, 4, 0, 0, 0}) == parse_status::ok);
    CHECK(calls == 1);
    calls = 0;
    // A lost-only message needs no deltas at all.
    CHECK(count({0, 1, 0, 5, 0, 0, 0, 0, 0x00, 0x05, 0, 0}) == parse_status::ok);
    CHECK(calls == 5);
}

TEST_CASE("fuzz: random and mutated buffers never crash, and ok reports status_count statuses") {
    std::mt19937 rng(20'240'611);
    feedback_builder b;
    b.reset(0, t0, 0);
    for (std::uint16_t s = 0; s < 60; s = static_cast<std::uint16_t>(s + 1 + rng() % 3))
        REQUIRE(b.add(s, t0 + 1000 * s + (rng() % 5 == 0 ? 100'000 : 0)));
    const bytes valid = fci_of(b);
    int oks = 0;
    for (int i = 0; i < 20'000; ++i) {
        bytes buf;
        switch (i % 3) {
        case 0: // random bytes
            buf.resize(rng() % 64);
            for (auto& x : buf) x = static_cast<std::uint8_t>(rng());
            break;
        case 1: // random bytes with a small status count, so some parse
            buf.resize(8 + rng() % 48);
            for (auto& x : buf) x = static_cast<std::uint8_t>(rng());
            buf[2] = 0;
            buf[3] = static_cast<std::uint8_t>(1 + rng() % 30);
            break;
        default: // a valid message with a few bytes changed and maybe cut or extended
            buf = valid;
            for (std::size_t k = 0, m = 1 + rng() % 3; k < m; ++k) buf[rng() % buf.size()] = static_cast<std::uint8_t>(rng());
            if (rng() % 4 == 0) buf.resize(rng() % (buf.size() + 8));
        }
        // Parse a heap copy of exactly the buffer's length, so reading past it is caught.
        const std::unique_ptr<std::uint8_t[]> exact(new std::uint8_t[buf.size()]);
        std::copy(buf.begin(), buf.end(), exact.get());
        feedback_header h;
        std::size_t calls = 0;
        std::uint16_t expect_seq = 0;
        bool in_order = true;
        const parse_status st = twcc::parse(bytes_view{exact.get(), buf.size()}, h, [&](std::uint16_t seq, bool, std::int64_t) {
            if (calls == 0) expect_seq = h.base_sequence;
            in_order = in_order && seq == expect_seq;
            expect_seq = static_cast<std::uint16_t>(expect_seq + 1);
            ++calls;
        });
        if (st == parse_status::ok) {
            ++oks;
            CHECK(calls == h.status_count);
            CHECK(in_order);
        } else {
            CHECK(calls == 0);
        }
    }
    CHECK(oks > 100); // the loop did exercise the reporting path
}

TEST_SUITE_END();
