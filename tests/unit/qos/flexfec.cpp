#include "onair/qos/flexfec.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <ostream>
#include <map>
#include <random>
#include <vector>

using namespace onair;
using namespace onair::qos;
using bytes = std::vector<std::uint8_t>;
namespace fd = onair::qos::detail;

namespace {

constexpr std::uint32_t media_ssrc = 0x11223344;
constexpr std::uint32_t fec_ssrc = 0x55667788;

/// A media datagram whose shape depends on `seq`: payload 1..1100 bytes, and by turns a
/// marker, CSRCs, a one-byte header extension and RTP padding, so recovery has to restore
/// every header field and every length.
bytes media_packet(std::uint16_t seq, std::uint32_t seed = 1) {
    std::mt19937 rng(seq * 7919u + seed);
    const bool marker = seq % 3 == 0;
    const std::size_t csrcs = seq % 5 == 1 ? 2 : 0;
    const bool ext = seq % 4 != 2;
    const std::size_t pad = seq % 7 == 3 ? 1 + rng() % 8 : 0;
    const std::size_t payload = 1 + rng() % 1100;
    bytes d;
    d.push_back(static_cast<std::uint8_t>(0x80 | (pad ? 0x20 : 0) | (ext ? 0x10 : 0) | csrcs));
    d.push_back(static_cast<std::uint8_t>((marker ? 0x80 : 0) | 96));
    d.resize(12);
    rtp::store_be16(&d[2], seq);
    rtp::store_be32(&d[4], 90000u + seq / 3 * 3000u);
    rtp::store_be32(&d[8], media_ssrc);
    for (std::size_t i = 0; i < csrcs; ++i) {
        d.resize(d.size() + 4);
        rtp::store_be32(&d[d.size() - 4], 0xc0000000u + static_cast<std::uint32_t>(i));
    }
    if (ext) {
        const std::uint8_t e[8] = {0xBE, 0xDE, 0x00, 0x01, 0x11, static_cast<std::uint8_t>(seq >> 8),
                                   static_cast<std::uint8_t>(seq), 0x00};
        d.insert(d.end(), e, e + 8);
    }
    for (std::size_t i = 0; i < payload; ++i) d.push_back(static_cast<std::uint8_t>(rng()));
    for (std::size_t i = 0; i + 1 < pad; ++i) d.push_back(0);
    if (pad) d.push_back(static_cast<std::uint8_t>(pad));
    rtp::packet_view p;
    REQUIRE_FALSE(rtp::parse(d, p));
    return d;
}

struct sent {
    std::map<std::uint16_t, bytes> media;
    std::vector<bytes> fec;
};

/// Runs `count` media packets from `first` through an encoder with `params`, then flushes.
sent encode(fec_params params, std::uint16_t first, std::size_t count, bool keyframe = false) {
    flexfec_encoder::config c;
    c.media_ssrc = media_ssrc;
    c.fec_ssrc = fec_ssrc;
    c.first_sequence = 500;
    c.protection = {params, params};
    flexfec_encoder enc(c);
    sent s;
    auto emit = [&](rtp::bytes_view d) { s.fec.emplace_back(d.begin(), d.end()); };
    for (std::size_t i = 0; i < count; ++i) {
        const auto seq = static_cast<std::uint16_t>(first + i);
        bytes m = media_packet(seq);
        REQUIRE_FALSE(enc.add(m, keyframe, emit));
        s.media.emplace(seq, std::move(m));
    }
    enc.flush(emit);
    return s;
}

struct receiver {
    flexfec_decoder dec;
    std::map<std::uint16_t, bytes> recovered;
    explicit receiver(std::size_t window = 64, std::size_t max_fec = 32)
        : dec(flexfec_decoder::config{media_ssrc, fec_ssrc, window, max_fec}) {}
    auto sink() {
        return [this](rtp::bytes_view d) {
            rtp::packet_view p;
            REQUIRE_FALSE(rtp::parse(d, p));
            CHECK(recovered.count(p.sequence) == 0);
            recovered[p.sequence] = bytes(d.begin(), d.end());
        };
    }
    void media(const bytes& d) { dec.add_media(d, sink()); }
    void fec(const bytes& d) { dec.add_fec(d, sink()); }
};

/// Delivers everything but the `lost` media packets, media first, and checks that exactly
/// the expected ones come back, byte for byte.
void check_recovery(const sent& s, const std::vector<std::uint16_t>& lost, const std::vector<std::uint16_t>& expect) {
    receiver r;
    for (const auto& [seq, d] : s.media)
        if (std::find(lost.begin(), lost.end(), seq) == lost.end()) r.media(d);
    for (const auto& f : s.fec) r.fec(f);
    REQUIRE(r.recovered.size() == expect.size());
    for (auto seq : expect) {
        REQUIRE(r.recovered.count(seq) == 1);
        CHECK(r.recovered[seq] == s.media.at(seq));
    }
    CHECK(r.dec.stats().malformed == 0);
}

fec_params flexible(std::uint8_t k, std::uint8_t m) {
    fec_params p;
    p.scheme = fec_scheme::flexible;
    p.group_size = k;
    p.fec_packets = m;
    p.max_frames = 0;
    return p;
}
fec_params fixed(fec_scheme scheme, std::uint8_t l, std::uint8_t d = 2) {
    fec_params p;
    p.scheme = scheme;
    p.group_size = l;
    p.rows = d;
    p.max_frames = 0;
    return p;
}

} // namespace

TEST_SUITE_BEGIN("qos.flexfec");

TEST_CASE("a repair packet for two media packets, byte by byte") {
    const bytes a{
        0x80, 0x60, 0x00, 0x0a, // V=2, PT=96, seq 10
        0x00, 0x00, 0x00, 0x64, // ts 100
        0x11, 0x22, 0x33, 0x44, // SSRC
        0xaa, 0xbb,             // payload (2 bytes: length - 12 = 2)
    };
    const bytes b{
        0x80, 0xe0, 0x00, 0x0b, // M=1, PT=96, seq 11
        0x00, 0x00, 0x00, 0xc8, // ts 200
        0x11, 0x22, 0x33, 0x44,
        0x01, 0x02, 0x03, // payload (3 bytes)
    };
    flexfec_encoder::config c;
    c.media_ssrc = media_ssrc;
    c.fec_ssrc = fec_ssrc;
    c.first_sequence = 0x0100;
    c.protection = {flexible(2, 1), flexible(2, 1)};
    flexfec_encoder enc(c);
    std::vector<bytes> out;
    auto emit = [&](rtp::bytes_view d) { out.emplace_back(d.begin(), d.end()); };
    REQUIRE_FALSE(enc.add(a, emit));
    CHECK(out.empty());
    REQUIRE_FALSE(enc.add(b, emit)); // the group of 2 is full
    REQUIRE(out.size() == 1);
    const bytes expect{
        0x81,                   // V=2 P=0 X=0 CC=1
        0x76,                   // M=0 PT=118
        0x01, 0x00,             // FEC stream sequence number
        0x00, 0x00, 0x00, 0xc8, // timestamp of the last protected packet
        0x55, 0x66, 0x77, 0x88, // FEC SSRC
        0x11, 0x22, 0x33, 0x44, // CSRC: the protected SSRC
        0x00,                   // R=0 F=0, P X CC recovery = (0x80 ^ 0x80) & 0x3f
        0x80,                   // M PT recovery = 0x60 ^ 0xe0
        0x00, 0x01,             // length recovery = 2 ^ 3
        0x00, 0x00, 0x00, 0xac, // TS recovery = 100 ^ 200
        0x00, 0x0a,             // SN base 10
        0xe0, 0x00,             // k=1 (mask ends), mask bits 0 and 1 (seq 10, 11)
        0xab, 0xb9, 0x03,       // aa^01 bb^02 00^03
    };
    CHECK(out[0] == expect);

    receiver r;
    r.media(b);
    r.fec(out[0]);
    REQUIRE(r.recovered.count(10) == 1);
    CHECK(r.recovered[10] == a);
    CHECK(r.dec.stats().recovered == 1);
}

TEST_CASE("flexible mask: 15, 46 and 110 bits round trip") {
    for (std::size_t count = 1; count <= flexfec_max_mask_bits; ++count) {
        fd::fec_accumulator acc;
        acc.cover.base = 65500;
        for (std::size_t i = 0; i < count; ++i)
            if (i % 3 != 1 || i + 1 == count) acc.cover.set(i);
        std::array<std::uint8_t, 1500> buf{};
        fd::fec_rtp_fields h{118, 1, 2, fec_ssrc, media_ssrc, false};
        const std::size_t n = fd::write_fec_packet(h, acc, fd::fec_layout::flexible, 0, buf);
        const std::size_t header = count <= 15 ? 12 : count <= 46 ? 16 : 24;
        REQUIRE(n == 16 + header);
        rtp::packet_view p;
        REQUIRE_FALSE(rtp::parse(rtp::bytes_view{buf.data(), n}, p));
        fd::fec_packet_view f;
        REQUIRE(fd::parse_fec_packet(p, f) == fd::fec_parse_status::ok);
        CHECK(f.cover.base == 65500);
        CHECK(f.cover.count == count);
        CHECK(f.cover.bits == acc.cover.bits);
        CHECK(f.repair.empty());
    }
}

TEST_CASE("flexible: every single loss in groups of 1..16, 20, 46, 47, 48 is recovered exactly") {
    std::vector<std::uint8_t> sizes;
    for (std::uint8_t k = 1; k <= 16; ++k) sizes.push_back(k);
    for (std::uint8_t k : std::array<std::uint8_t, 4>{20, 46, 47, 48}) sizes.push_back(k);
    for (std::uint8_t k : sizes)
        for (std::uint8_t m : std::array<std::uint8_t, 3>{1, 2, 3}) {
            if (m > k) continue;
            CAPTURE(k);
            CAPTURE(m);
            const sent s = encode(flexible(k, m), 1000, k);
            REQUIRE(s.fec.size() == m);
            for (std::uint16_t i = 0; i < k; ++i) check_recovery(s, {static_cast<std::uint16_t>(1000 + i)}, {static_cast<std::uint16_t>(1000 + i)});
        }
}

TEST_CASE("flexible with m repair packets recovers any burst of up to m losses") {
    const sent s = encode(flexible(12, 3), 2000, 12);
    REQUIRE(s.fec.size() == 3);
    for (std::uint16_t first = 2000; first + 3 <= 2012; ++first) {
        std::vector<std::uint16_t> burst{first, static_cast<std::uint16_t>(first + 1), static_cast<std::uint16_t>(first + 2)};
        check_recovery(s, burst, burst);
    }
    // Two losses in one residue class (0 and 3 modulo 3) exceed that repair packet.
    check_recovery(s, {2000, 2003}, {});
}

TEST_CASE("row (1-D non-interleaved): every single loss in rows of 1..16") {
    for (std::uint8_t l = 1; l <= 16; ++l) {
        CAPTURE(l);
        const sent s = encode(fixed(fec_scheme::row, l), 300, l * 2u);
        REQUIRE(s.fec.size() == 2);
        rtp::packet_view p;
        REQUIRE_FALSE(rtp::parse(s.fec[0], p));
        CHECK((p.payload[0] >> 6) == 1); // R=0 F=1
        CHECK(p.payload[10] == l);     // L
        CHECK(p.payload[11] == 0);     // D=0: 1-D row
        for (std::uint16_t i = 0; i < l * 2; ++i)
            check_recovery(s, {static_cast<std::uint16_t>(300 + i)}, {static_cast<std::uint16_t>(300 + i)});
        if (l >= 2) check_recovery(s, {300, 301}, {}); // two in one row
    }
}

TEST_CASE("column (1-D interleaved): every single loss, and bursts up to L") {
    for (std::uint8_t l = 1; l <= 6; ++l)
        for (std::uint8_t d = 2; d <= 5; ++d) {
            CAPTURE(l);
            CAPTURE(d);
            const std::size_t n = std::size_t{l} * d;
            const sent s = encode(fixed(fec_scheme::column, l, d), 65530, n); // crosses the wrap
            REQUIRE(s.fec.size() == l);
            for (std::uint16_t i = 0; i < n; ++i)
                check_recovery(s, {static_cast<std::uint16_t>(65530 + i)}, {static_cast<std::uint16_t>(65530 + i)});
            std::vector<std::uint16_t> burst;
            for (std::uint16_t i = 0; i < l; ++i) burst.push_back(static_cast<std::uint16_t>(65531 + i));
            check_recovery(s, burst, burst);
        }
}

TEST_CASE("row_column (2-D): a double loss in a row is recovered through the columns") {
    // 4 columns x 3 rows, packets 100..111:   row 0: 100 101 102 103
    //                                         row 1: 104 105 106 107
    //                                         row 2: 108 109 110 111
    const sent s = encode(fixed(fec_scheme::row_column, 4, 3), 100, 12);
    REQUIRE(s.fec.size() == 3 + 4);
    rtp::packet_view row;
    REQUIRE_FALSE(rtp::parse(s.fec[0], row));
    CHECK(row.payload[11] == 1); // D=1: a row with columns to follow
    for (std::uint16_t i = 0; i < 12; ++i)
        check_recovery(s, {static_cast<std::uint16_t>(100 + i)}, {static_cast<std::uint16_t>(100 + i)});
    check_recovery(s, {100, 101}, {100, 101});            // row 0 twice: columns 0 and 1 each once
    check_recovery(s, {100, 104, 105}, {100, 104, 105});  // column 0 twice: rows 0 and 1
    check_recovery(s, {100, 101, 104, 105}, {});          // a 2x2 square defeats 2-D parity

    // Losses 100, 101, 105, 106 with the repair packets in an order that needs iteration:
    // rows 0 and 1 and column 1 see two losses each; column 2 recovers 106, then row 1 105,
    // then column 1 101, then row 0 100; column 0 arrives with nothing left to do.
    receiver r;
    for (const auto& [seq, d] : s.media)
        if (seq != 100 && seq != 101 && seq != 105 && seq != 106) r.media(d);
    const std::vector<std::size_t> order{0, 1, 2, 4, 5, 3, 6}; // rows 0-2, columns 1, 2, 0, 3
    for (std::size_t i : order) r.fec(s.fec[i]);
    REQUIRE(r.recovered.size() == 4);
    for (std::uint16_t seq : std::array<std::uint16_t, 4>{100, 101, 105, 106}) CHECK(r.recovered[seq] == s.media.at(seq));
    CHECK(r.dec.stats().fec_unused >= 1);
    CHECK(r.dec.pending_fec() == 0);
}

TEST_CASE("losses beyond the code are reported unrecoverable") {
    const sent s = encode(flexible(5, 1), 40, 5);
    receiver r;
    for (const auto& [seq, d] : s.media)
        if (seq != 41 && seq != 43) r.media(d);
    r.fec(s.fec[0]);
    CHECK(r.recovered.empty());
    CHECK(r.dec.pending_fec() == 1);
    CHECK_FALSE(r.dec.has(41));
    CHECK(r.dec.has(42));
    // The stream moves on past the window: the repair packet can never complete.
    for (std::uint16_t seq = 45; seq < 45 + 64; ++seq) r.media(media_packet(seq));
    CHECK(r.dec.pending_fec() == 0);
    CHECK(r.dec.stats().unrecoverable == 1);

    receiver r2;
    for (const auto& [seq, d] : s.media)
        if (seq != 40 && seq != 44) r2.media(d);
    r2.fec(s.fec[0]);
    r2.dec.discard_pending();
    CHECK(r2.dec.stats().unrecoverable == 1);
    CHECK(r2.recovered.empty());
}

TEST_CASE("a repair packet before its media, and a recovered packet that arrives late") {
    const sent s = encode(flexible(4, 1), 7, 4);
    receiver r;
    r.fec(s.fec[0]); // reordered ahead of the group
    CHECK(r.dec.pending_fec() == 1);
    r.media(s.media.at(7));
    r.media(s.media.at(9));
    r.media(s.media.at(10));
    REQUIRE(r.recovered.count(8) == 1);
    CHECK(r.recovered[8] == s.media.at(8));
    r.media(s.media.at(8)); // the original after all
    CHECK(r.dec.stats().duplicates == 1);
}

TEST_CASE("a long stream across the sequence wrap with random loss") {
    fec_params p = flexible(10, 2);
    p.max_frames = 3;
    flexfec_encoder::config c{media_ssrc, fec_ssrc, flexfec_payload_type, 9, false, {p, p}};
    flexfec_encoder enc(c);
    receiver r(256, 32);
    std::mt19937 rng(42);
    std::map<std::uint16_t, bytes> lost;
    std::size_t fec_sent = 0;
    for (std::uint32_t i = 0; i < 3000; ++i) {
        const auto seq = static_cast<std::uint16_t>(64000 + i);
        const bytes m = media_packet(seq, 3);
        if (rng() % 100 < 5) lost.emplace(seq, m);
        else r.media(m);
        REQUIRE_FALSE(enc.add(m, [&](rtp::bytes_view d) {
            ++fec_sent;
            if (rng() % 100 >= 5) r.fec(bytes(d.begin(), d.end()));
        }));
    }
    for (const auto& [seq, d] : r.recovered) {
        REQUIRE(lost.count(seq) == 1);
        CHECK(d == lost.at(seq));
    }
    CHECK(r.recovered.size() > lost.size() * 7 / 10); // most single losses per class come back
    CHECK(fec_sent > 3000 / 10);
    CHECK(r.dec.stats().malformed == 0);
}

TEST_CASE("encoder: frame ends, key frames, foreign and oversized packets") {
    fec_params delta = flexible(10, 2);
    delta.max_frames = 2;
    fec_params key = flexible(10, 5);
    key.max_frames = 1;
    flexfec_encoder::config c{media_ssrc, fec_ssrc, flexfec_payload_type, 0, true, {delta, key}};
    flexfec_encoder enc(c);
    std::vector<bytes> out;
    auto emit = [&](rtp::bytes_view d) { out.emplace_back(d.begin(), d.end()); };
    auto packet = [](std::uint16_t seq, bool marker) {
        bytes m = media_packet(seq);
        m[1] = static_cast<std::uint8_t>((marker ? 0x80 : 0) | 96);
        return m;
    };
    // Key frame of 4 packets: closed at its end with ceil(4 * 5 / 10) = 2 repair packets.
    for (std::uint16_t s = 0; s < 4; ++s) REQUIRE_FALSE(enc.add(packet(s, s == 3), true, emit));
    CHECK(out.size() == 2);
    // Delta frames of 2 packets (2 * 2 < 10): the group spans 2 frames, then 1 repair packet.
    out.clear();
    for (std::uint16_t s = 4; s < 6; ++s) REQUIRE_FALSE(enc.add(packet(s, s == 5), false, emit));
    CHECK(out.empty());
    for (std::uint16_t s = 6; s < 8; ++s) REQUIRE_FALSE(enc.add(packet(s, s == 7), false, emit));
    REQUIRE(out.size() == 1);
    // A key frame arriving mid-group closes the delta group first.
    out.clear();
    REQUIRE_FALSE(enc.add(packet(8, false), false, emit));
    REQUIRE_FALSE(enc.add(packet(9, false), true, emit));
    CHECK(out.size() == 1);
    // Other SSRCs, non-RTP and oversized datagrams are skipped.
    bytes foreign = packet(10, false);
    rtp::store_be32(&foreign[8], 1);
    CHECK(enc.add(foreign, emit) == errc::unknown_stream);
    CHECK(enc.add(bytes(5, 0), emit) == errc::truncated);
    bytes big = packet(11, false);
    big.resize(1480);
    big[0] &= static_cast<std::uint8_t>(~0x20);
    CHECK(enc.add(big, emit) == errc::oversized);
    CHECK(enc.stats().skipped == 3);
    // Repair packets carry a transport-wide sequence number for the pacer to fill in.
    rtp::packet_view p;
    REQUIRE_FALSE(rtp::parse(out[0], p));
    REQUIRE(p.transport_sequence());
    CHECK(*p.transport_sequence() == 0);
    rtp::store_be16(out[0].data() + flexfec_encoder::transport_sequence_offset, 0x1234);
    REQUIRE_FALSE(rtp::parse(out[0], p));
    CHECK(*p.transport_sequence() == 0x1234);
    CHECK(p.csrc(0) == media_ssrc);
}

TEST_CASE("the repair packet may itself carry RTP padding") {
    const sent s = encode(flexible(3, 1), 77, 3);
    bytes f = s.fec[0];
    f[0] |= 0x20;
    f.insert(f.end(), {0, 0, 0, 4});
    check_recovery(sent{s.media, {f}}, {78}, {78});
}

TEST_CASE("the protection table responds to loss and protects key frames more") {
    CHECK_FALSE(protection_for_loss(0.0).delta.enabled());
    CHECK(protection_for_loss(0.0).key.fec_packets == 1);
    CHECK(protection_for_loss(0.02).delta.fec_packets == 1);
    CHECK(protection_for_loss(0.05).delta.fec_packets == 2);
    CHECK(protection_for_loss(0.08).delta.fec_packets == 3);
    CHECK(protection_for_loss(0.15).delta.fec_packets == 4);
    CHECK(protection_for_loss(0.40).delta.fec_packets == 5);
    CHECK(protection_for_loss(1.0).delta.fec_packets == 5);
    CHECK(protection_for_loss(-1.0).delta.fec_packets == 0);
    std::uint8_t prev = 0;
    for (int i = 0; i <= 100; ++i) {
        const auto p = protection_for_loss(i / 100.0);
        CHECK(p.delta.fec_packets >= prev);
        CHECK(p.key.fec_packets >= p.delta.fec_packets);
        CHECK(p.key.fec_packets * 2 <= p.key.group_size);
        prev = p.delta.fec_packets;
    }
    // The encoder's overhead follows: 1000 packets in 20-packet frames.
    auto overhead = [](double loss) {
        flexfec_encoder::config c;
        c.media_ssrc = media_ssrc;
        c.fec_ssrc = fec_ssrc;
        flexfec_encoder enc(c);
        enc.set_loss(loss);
        std::size_t n = 0;
        for (std::uint16_t s = 0; s < 1000; ++s) {
            bytes m = media_packet(s);
            m[1] = static_cast<std::uint8_t>((s % 20 == 19 ? 0x80 : 0) | 96);
            REQUIRE_FALSE(enc.add(m, [&](rtp::bytes_view) { ++n; }));
        }
        return n;
    };
    CHECK(overhead(0.0) == 0);
    CHECK(overhead(0.02) == 100);
    CHECK(overhead(0.05) == 200);
    CHECK(overhead(0.3) == 500);
}

TEST_CASE("decoder: foreign, duplicate and old media") {
    receiver r(64);
    bytes other = media_packet(1);
    rtp::store_be32(&other[8], 99);
    r.media(other);
    CHECK(r.dec.stats().foreign == 1);
    r.media(media_packet(1000));
    r.media(media_packet(1000));
    CHECK(r.dec.stats().duplicates == 1);
    r.media(media_packet(1000 - 64)); // exactly one window behind
    CHECK(r.dec.stats().media_too_old == 1);
    r.media(media_packet(1000 - 63));
    CHECK(r.dec.stats().media_packets == 2);
    r.media(bytes{0x80, 0x60});
    CHECK(r.dec.stats().media_malformed == 1);
}

TEST_CASE("malformed repair packets are counted and dropped") {
    // Group 20..24; the lost packet is the longest, so every cut of the repair payload
    // leaves the length recovery pointing beyond it.
    const sent s = encode(flexible(5, 1), 20, 5);
    std::uint16_t longest = 20;
    for (const auto& [seq, d] : s.media)
        if (d.size() > s.media.at(longest).size()) longest = seq;
    const bytes& f = s.fec[0];
    auto deliver = [&](const bytes& fec, std::size_t max_fec = 32, std::size_t window = 64) {
        receiver r(window, max_fec);
        for (const auto& [seq, d] : s.media)
            if (seq != longest) r.media(d);
        r.fec(fec);
        return r;
    };
    SUBCASE("truncated at every length") {
        for (std::size_t n = 0; n < f.size(); ++n) {
            CAPTURE(n);
            auto r = deliver(bytes(f.begin(), f.begin() + static_cast<std::ptrdiff_t>(n)));
            CHECK(r.recovered.empty());
            CHECK(r.dec.stats().malformed == 1);
            CHECK(r.dec.stats().malformed == r.dec.stats().truncated + r.dec.stats().length_overflow);
        }
        CHECK(deliver(f).recovered.size() == 1);
    }
    SUBCASE("wrong SSRC count") {
        for (std::uint8_t cc : std::array<std::uint8_t, 3>{0, 2, 15}) {
            bytes g = f;
            g[0] = static_cast<std::uint8_t>((g[0] & 0xf0) | cc);
            auto r = deliver(g);
            CHECK(r.dec.stats().malformed == 1);
            CHECK((r.dec.stats().bad_ssrc_count == 1 || r.dec.stats().truncated == 1));
        }
    }
    SUBCASE("another protected stream") {
        bytes g = f;
        rtp::store_be32(&g[12], 0xdeadbeef);
        CHECK(deliver(g).dec.stats().foreign == 1);
    }
    SUBCASE("empty mask, L = 0, and spans wider than the window") {
        bytes g = f;
        g[26] = 0x80; // k=1, no bit set
        g[27] = 0x00;
        CHECK(deliver(g).dec.stats().bad_mask == 1);
        bytes h = f;
        h[16] |= 0x40; // F=1
        h[26] = 0;     // L=0
        CHECK(deliver(h).dec.stats().bad_mask == 1);
        h[26] = 64; // column of 64 x 2: span 65 > a 64-packet window
        h[27] = 2;
        CHECK(deliver(h).dec.stats().bad_mask == 1);
        CHECK(deliver(h, 32, 128).dec.stats().bad_mask == 0);
    }
    SUBCASE("masks pointing behind the window") {
        bytes g = f;
        rtp::store_be16(&g[24], 20 - 200);
        CHECK(deliver(g).dec.stats().fec_too_old == 1);
    }
    SUBCASE("length recovery overflow") {
        bytes g = f;
        rtp::store_be16(&g[18], 0xffff);
        auto r = deliver(g);
        CHECK(r.dec.stats().length_overflow == 1);
        CHECK(r.recovered.empty());
    }
    SUBCASE("retransmission variant and reserved R=F=1 are not ours") {
        for (std::uint8_t rf : std::array<std::uint8_t, 2>{0x80, 0xc0}) {
            bytes g = f;
            g[16] = static_cast<std::uint8_t>((g[16] & 0x3f) | rf);
            auto r = deliver(g);
            CHECK(r.dec.stats().unsupported == 1);
            CHECK(r.dec.stats().malformed == 0);
        }
    }
    SUBCASE("recovered bytes that are not RTP") {
        bytes g = f;
        g[16] ^= 0x0f; // CC recovery now claims up to 15 CSRCs: longer than some packet
        g[16] ^= 0x20; // and flips padding
        auto r = deliver(g);
        const auto outcomes = r.recovered.size() + r.dec.stats().bad_recovery;
        CHECK(outcomes == 1);
    }
    SUBCASE("a full repair list evicts the oldest") {
        receiver r(64, 2);
        const sent t = encode(flexible(2, 1), 500, 8); // 4 groups, nothing received
        for (const auto& g : t.fec) r.fec(g);
        CHECK(r.dec.stats().fec_evicted == 2);
        CHECK(r.dec.pending_fec() == 2);
    }
}

TEST_CASE("fuzz: random and mutated repair packets never break the decoder") {
    // A live stream (every fifth packet lost) with its real repair packets, among which
    // random datagrams and cut, mutated copies of the real ones arrive.
    flexfec_encoder enc({media_ssrc, fec_ssrc, flexfec_payload_type, 0, false, {flexible(6, 2), flexible(6, 2)}});
    receiver r(64, 8);
    std::mt19937 rng(20240611);
    std::vector<bytes> recent; // latest real repair packets
    std::size_t delivered = 0;
    auto sink = [&](rtp::bytes_view d) {
        rtp::packet_view p;
        REQUIRE_FALSE(rtp::parse(d, p));
        REQUIRE(d.size() <= max_datagram_size);
        ++delivered;
    };
    std::uint16_t seq = 65000;
    bytes buf;
    for (int it = 0; it < 100'000; ++it) {
        if (it % 10 == 0) { // the stream moves on
            const bytes m = media_packet(++seq, 5);
            REQUIRE_FALSE(enc.add(m, [&](rtp::bytes_view d) {
                recent.emplace_back(d.begin(), d.end());
                if (recent.size() > 8) recent.erase(recent.begin());
            }));
            if (seq % 5) r.dec.add_media(m, sink);
        }
        const unsigned kind = rng() % 4;
        if (kind == 0 || recent.empty()) { // random bytes, with a plausible RTP + CSRC prefix now and then
            buf.resize(rng() % 80);
            for (auto& b : buf) b = static_cast<std::uint8_t>(rng());
            if (buf.size() >= 16 && rng() % 2) {
                buf[0] = static_cast<std::uint8_t>(0x81 | (buf[0] & 0x30));
                rtp::store_be32(&buf[8], fec_ssrc);
                rtp::store_be32(&buf[12], media_ssrc);
            }
        } else {
            buf = recent[rng() % recent.size()];
            if (kind != 1) { // cut, and a few bytes changed
                buf.resize(std::min<std::size_t>(buf.size(), 17 + rng() % 200));
                const unsigned flips = 1 + rng() % 4;
                for (unsigned i = 0; i < flips; ++i) buf[16 + rng() % (buf.size() - 16)] = static_cast<std::uint8_t>(rng());
            }
        }
        r.dec.add_fec(buf, sink);
    }
    const auto& st = r.dec.stats();
    CHECK(st.malformed == st.truncated + st.bad_ssrc_count + st.bad_mask + st.length_overflow + st.bad_recovery);
    CHECK(st.malformed > 0);
    CHECK(st.recovered > 0);
    CHECK(st.recovered == delivered);
    CHECK(r.dec.pending_fec() <= 8);
    MESSAGE("fuzz: " << st.fec_packets << " accepted, " << st.malformed << " malformed, " << delivered << " recovered, "
                     << st.unrecoverable << " given up");
}

TEST_SUITE_END();
