#include "onair/qos/red.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <ostream>
#include <random>
#include <vector>

using namespace onair;
using namespace onair::qos;
using bytes = std::vector<std::uint8_t>;

namespace {

bytes payload(std::size_t n, std::uint8_t seed) {
    bytes b(n);
    for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(seed + i * 7);
    return b;
}

bytes encode(red_encoder& enc, std::uint8_t pt, std::uint32_t ts, const bytes& primary, std::size_t capacity = 1200) {
    bytes out(capacity);
    out.resize(enc.encode(pt, ts, primary, out));
    return out;
}

bytes as_bytes(rtp::bytes_view v) { return bytes(v.begin(), v.end()); }

bool inside(rtp::bytes_view part, rtp::bytes_view whole) {
    return part.empty() || (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

} // namespace

TEST_SUITE_BEGIN("qos.red");

TEST_CASE("RFC 2198 §3 example: an LPC block (PT 7) in front of DVI4 (PT 5), bit by bit") {
    const bytes lpc = payload(14, 0x10);
    const bytes dvi = payload(44, 0x40);
    red_encoder enc(1);
    CHECK(encode(enc, 7, 1000, lpc).size() == 1 + 14); // first packet: nothing to repeat yet
    enc.reset();
    // The LPC frame of timestamp 1000 is repeated beside a DVI4 frame of timestamp 1160;
    // a real sender repeats the same audio in another codec, here the bytes stand for it.
    REQUIRE(encode(enc, 7, 1000, lpc).size() == 15);
    const bytes red = encode(enc, 5, 1160, dvi);
    REQUIRE(red.size() == 4 + 1 + 14 + 44);
    // F=1 | PT 7                 -> 1000 0111 = 0x87
    // offset 160 (14 bits)       -> 00 0000 1010 0000
    // length 14 (10 bits)        -> 00 0000 1110
    // offset << 10 | length      -> 0000 0010 1000 0000 0000 1110 = 0x02 0x80 0x0e
    // F=0 | PT 5                 -> 0000 0101 = 0x05
    const bytes head{0x87, 0x02, 0x80, 0x0e, 0x05};
    CHECK(bytes(red.begin(), red.begin() + 5) == head);
    CHECK(bytes(red.begin() + 5, red.begin() + 19) == lpc);
    CHECK(bytes(red.begin() + 19, red.end()) == dvi);

    red_payload p;
    REQUIRE(parse_red(red, 1160, p) == red_status::ok);
    REQUIRE(p.redundant().size() == 1);
    CHECK(p.redundant()[0].payload_type == 7);
    CHECK(p.redundant()[0].timestamp == 1000);
    CHECK(as_bytes(p.redundant()[0].data) == lpc);
    CHECK(p.primary.payload_type == 5);
    CHECK(p.primary.timestamp == 1160);
    CHECK(as_bytes(p.primary.data) == dvi);
}

TEST_CASE("Opus with two redundant blocks, bit by bit") {
    red_encoder enc(2);
    const bytes a{0xa1, 0xa2, 0xa3}, b{0xb1, 0xb2, 0xb3, 0xb4}, c{0xc1, 0xc2};
    encode(enc, 111, 0xfffffc40, a); // 20 ms frames at 48 kHz; the timestamp wraps on the way
    encode(enc, 111, 0x00000000, b);
    const bytes red = encode(enc, 111, 0x000003c0, c);
    const bytes expect{
        0xef,             // F=1 PT 111
        0x1e, 0x00, 0x03, // offset 1920 = 00 0111 1000 0000, length 3 = 00 0000 0011
                          //   -> 0001 1110 0000 0000 0000 0011
        0xef,             // F=1 PT 111
        0x0f, 0x00, 0x04, // offset 960 = 00 0011 1100 0000, length 4 = 00 0000 0100
                          //   -> 0000 1111 0000 0000 0000 0100
        0x6f,             // F=0 PT 111
        0xa1, 0xa2, 0xa3, // oldest redundant
        0xb1, 0xb2, 0xb3, 0xb4,
        0xc1, 0xc2, // primary
    };
    CHECK(red == expect);
    red_payload p;
    REQUIRE(parse_red(red, 0x3c0, p) == red_status::ok);
    REQUIRE(p.redundant_count == 2);
    CHECK(p.redundant()[0].timestamp == 0xfffffc40);
    CHECK(p.redundant()[1].timestamp == 0);
    CHECK(as_bytes(p.primary.data) == c);
}

TEST_CASE("round trips with 0, 1 and 2 redundant blocks") {
    for (std::size_t level = 0; level <= 2; ++level) {
        CAPTURE(level);
        red_encoder enc(level);
        std::vector<bytes> sent;
        for (std::uint32_t i = 0; i < 10; ++i) {
            sent.push_back(payload(1 + i * 37, static_cast<std::uint8_t>(i)));
            const std::uint32_t ts = 5000 + i * 960;
            const bytes red = encode(enc, 111, ts, sent.back());
            red_payload p;
            REQUIRE(parse_red(red, ts, p) == red_status::ok);
            CHECK(p.redundant_count == std::min<std::size_t>(level, i));
            for (std::size_t k = 0; k < p.redundant_count; ++k) {
                const std::size_t back = p.redundant_count - k; // packets before this one
                CHECK(p.redundant()[k].timestamp == ts - back * 960);
                CHECK(as_bytes(p.redundant()[k].data) == sent[i - back]);
            }
            CHECK(p.primary.timestamp == ts);
            CHECK(as_bytes(p.primary.data) == sent.back());
        }
    }
    red_encoder enc(5);
    CHECK(enc.redundancy() == 2);
}

TEST_CASE("losses of 1 and 2 consecutive packets are filled from the next packet") {
    // Packets 65533.. (the sequence number wraps); each carries its own index as payload.
    struct receiver {
        sequence_history history;
        std::vector<std::pair<std::uint16_t, bytes>> played;
        void on(std::uint16_t seq, const bytes& red, std::uint32_t ts) {
            red_payload p;
            red_decoder dec;
            REQUIRE_FALSE(dec.parse(red, ts, p));
            std::array<red_recovery, red_max_redundancy> gaps;
            const std::size_t n = red_gaps(p, seq, history, gaps);
            for (std::size_t i = 0; i < n; ++i) {
                played.emplace_back(gaps[i].sequence, as_bytes(gaps[i].block.data));
                history.insert(gaps[i].sequence);
            }
            played.emplace_back(seq, as_bytes(p.primary.data));
            history.insert(seq);
        }
    };
    auto run = [](std::size_t level, std::vector<std::uint16_t> lost) {
        red_encoder enc(level);
        receiver r;
        for (std::uint16_t i = 0; i < 8; ++i) {
            const auto seq = static_cast<std::uint16_t>(65533 + i);
            const bytes red = encode(enc, 111, i * 960u, bytes{static_cast<std::uint8_t>(i)});
            if (std::find(lost.begin(), lost.end(), seq) == lost.end()) r.on(seq, red, i * 960u);
        }
        return r.played;
    };
    using played = std::vector<std::pair<std::uint16_t, bytes>>;
    // One loss (65535) with one redundant block: packet 0 brings it back, in order.
    CHECK(run(1, {65535}) == played{{65533, {0}}, {65534, {1}}, {65535, {2}}, {0, {3}}, {1, {4}}, {2, {5}}, {3, {6}}, {4, {7}}});
    // Two in a row (65535, 0) with two redundant blocks: packet 1 brings both.
    CHECK(run(2, {65535, 0}) == played{{65533, {0}}, {65534, {1}}, {65535, {2}}, {0, {3}}, {1, {4}}, {2, {5}}, {3, {6}}, {4, {7}}});
    // Two in a row with one redundant block: only the second comes back.
    CHECK(run(1, {65535, 0}) == played{{65533, {0}}, {65534, {1}}, {0, {3}}, {1, {4}}, {2, {5}}, {3, {6}}, {4, {7}}});
    // Nothing lost: redundancy is never played twice.
    CHECK(run(2, {}).size() == 8);
    // The first packet lost: what came before the stream is not filled in.
    CHECK(run(2, {65533}).front().first == 65534);
}

TEST_CASE("encoder limits: block length, timestamp offset, buffer space") {
    red_encoder enc(2);
    const bytes small = payload(10, 1);
    SUBCASE("a payload of 1024 bytes cannot be repeated, nor anything older than it") {
        encode(enc, 111, 0, small);
        encode(enc, 111, 960, payload(1024, 2));
        const bytes red = encode(enc, 111, 1920, small);
        CHECK(red.size() == 1 + small.size());
        encode(enc, 111, 2880, payload(1023, 3));
        red_payload p;
        REQUIRE(parse_red(encode(enc, 111, 3840, small), 3840, p) == red_status::ok);
        CHECK(p.redundant_count == 2); // 1920 and the 1023-byte one
        CHECK(p.redundant()[1].data.size() == 1023);
    }
    SUBCASE("timestamp offsets must stay below 2^14") {
        encode(enc, 111, 0, small);
        red_payload p;
        REQUIRE(parse_red(encode(enc, 111, 16383, small), 16383, p) == red_status::ok);
        CHECK(p.redundant_count == 1);
        CHECK(p.redundant()[0].timestamp == 0);
        REQUIRE(parse_red(encode(enc, 111, 16383 + 16384, small), 16383 + 16384, p) == red_status::ok);
        CHECK(p.redundant_count == 0);
        REQUIRE(parse_red(encode(enc, 111, 16383 + 16384, small), 16383 + 16384, p) == red_status::ok);
        CHECK(p.redundant_count == 0); // same timestamp: offset 0 is not a previous packet
    }
    SUBCASE("a short buffer drops the oldest block first, then refuses") {
        encode(enc, 111, 0, small);
        encode(enc, 111, 960, small);
        CHECK(encode(enc, 111, 1920, small, 1 + 10 + 2 * 14).size() == 39);
        CHECK(encode(enc, 111, 2880, small, 38).size() == 25);
        CHECK(encode(enc, 111, 3840, small, 24).size() == 11);
        CHECK(encode(enc, 111, 4800, small, 10).empty());
        red_payload p; // the refused payload was not kept: the next repeats 3840 and 2880
        REQUIRE(parse_red(encode(enc, 111, 5760, small), 5760, p) == red_status::ok);
        REQUIRE(p.redundant_count == 2);
        CHECK(p.redundant()[0].timestamp == 2880);
    }
}

TEST_CASE("malformed RED payloads are counted and dropped") {
    red_decoder dec;
    red_payload p;
    CHECK(dec.parse(bytes{}, 0, p) == errc::truncated);
    CHECK(dec.stats().empty == 1);
    // F=1 with fewer than 4 header bytes.
    CHECK(dec.parse(bytes{0xef, 0x07, 0x80}, 0, p) == errc::truncated);
    // A complete redundant header and then nothing: the primary's header is missing.
    CHECK(dec.parse(bytes{0xef, 0x07, 0x80, 0x03}, 0, p) == errc::truncated);
    CHECK(dec.stats().truncated == 2);
    // Length 3 announced, 2 bytes there.
    CHECK(dec.parse(bytes{0xef, 0x07, 0x80, 0x03, 0x6f, 0xa1, 0xa2}, 0, p) == errc::bad_payload);
    // Length 1023 announced.
    CHECK(dec.parse(bytes{0xef, 0x07, 0x83, 0xff, 0x6f, 0xa1, 0xa2, 0xa3, 0xa4}, 0, p) == errc::bad_payload);
    CHECK(dec.stats().length_overflow == 2);
    // Headers only: the primary is empty.
    CHECK(dec.parse(bytes{0x6f}, 0, p) == errc::bad_payload);
    CHECK(dec.parse(bytes{0xef, 0x07, 0x80, 0x03, 0x6f, 0xa1, 0xa2, 0xa3}, 0, p) == errc::bad_payload);
    CHECK(dec.stats().empty_primary == 2);
    // Eight redundant headers: one too many.
    bytes many;
    for (int i = 0; i < 8; ++i) many.insert(many.end(), {0xef, 0x00, 0x04, 0x00}); // offset 1, length 0
    many.insert(many.end(), {0x6f, 0x01});
    CHECK(dec.parse(many, 100, p) == errc::bad_payload);
    CHECK(dec.stats().too_many_blocks == 1);
    // Seven are fine, and zero-length redundant blocks are legal but never fill a gap.
    many.erase(many.begin(), many.begin() + 4);
    REQUIRE_FALSE(dec.parse(many, 100, p));
    CHECK(p.redundant_count == 7);
    CHECK(p.redundant()[6].timestamp == 99);
    std::array<red_recovery, 8> gaps;
    CHECK(red_gaps(p, 50, [](std::uint16_t) { return false; }, gaps) == 0);

    const auto& st = dec.stats();
    CHECK(st.malformed == 8);
    CHECK(st.malformed == st.empty + st.truncated + st.length_overflow + st.empty_primary + st.too_many_blocks);
    CHECK(st.packets == 1);
}

TEST_CASE("a RED payload cut at every length") {
    red_encoder enc(2);
    encode(enc, 111, 0, payload(30, 1));
    encode(enc, 111, 960, payload(40, 2));
    const bytes red = encode(enc, 111, 1920, payload(50, 3));
    red_decoder dec;
    std::size_t ok = 0;
    for (std::size_t n = 0; n <= red.size(); ++n) {
        const bytes cut(red.begin(), red.begin() + static_cast<std::ptrdiff_t>(n));
        red_payload p;
        if (dec.parse(cut, 1920, p)) continue;
        ++ok;
        for (const auto& b : p.redundant()) CHECK(inside(b.data, cut));
        CHECK(inside(p.primary.data, cut));
        CHECK_FALSE(p.primary.data.empty());
    }
    CHECK(ok == 50); // the primary can lose bytes and still parse: 1..50 of them left
    CHECK(dec.stats().malformed == red.size() + 1 - 50);
}

TEST_CASE("fuzz: random RED payloads stay inside their bytes") {
    std::mt19937 rng(7);
    red_decoder dec;
    bytes d;
    for (int it = 0; it < 100'000; ++it) {
        d.resize(rng() % 64);
        for (auto& b : d) b = static_cast<std::uint8_t>(rng() % 4 ? rng() : (rng() & 0x80) | 111);
        red_payload p;
        if (dec.parse(d, static_cast<std::uint32_t>(rng()), p)) continue;
        std::size_t total = 0;
        for (const auto& b : p.redundant()) {
            REQUIRE(inside(b.data, d));
            total += b.data.size() + 4;
        }
        REQUIRE(inside(p.primary.data, d));
        REQUIRE(total + 1 + p.primary.data.size() == d.size());
    }
    const auto& st = dec.stats();
    CHECK(st.packets + st.malformed == 100'000);
    CHECK(st.packets > 0);
    CHECK(st.too_many_blocks + st.length_overflow + st.truncated > 0);
}

TEST_CASE("sequence_history across the wrap") {
    sequence_history h;
    CHECK(h.received(5)); // nothing yet: nothing to fill
    h.insert(65534);
    h.insert(1); // 65535 and 0 missing
    CHECK(h.received(65534));
    CHECK_FALSE(h.received(65535));
    CHECK_FALSE(h.received(0));
    CHECK(h.received(1));
    CHECK_FALSE(h.received(2)); // not yet
    CHECK(h.received(65533));   // before the first packet
    h.insert(0);
    CHECK(h.received(0));
    h.insert(100); // far ahead: 65535 is now out of the window
    CHECK(h.received(65535));
    CHECK_FALSE(h.received(99));
}

TEST_SUITE_END();
