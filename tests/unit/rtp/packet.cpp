#include "onair/rtp/packet.hpp"

#include "onair/core/time.hpp"

#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <vector>

using namespace onair;
using namespace onair::rtp;
using bytes = std::vector<std::uint8_t>;

TEST_SUITE_BEGIN("rtp.packet");

TEST_CASE("parses a minimal RTP header field by field") {
    const bytes d{
        0x80,                   // V=2 P=0 X=0 CC=0
        0xe0,                   // M=1 PT=96
        0x12, 0x34,             // sequence 0x1234
        0xde, 0xad, 0xbe, 0xef, // timestamp
        0x01, 0x02, 0x03, 0x04, // SSRC
        0xaa, 0xbb,             // payload
    };
    packet_view p;
    REQUIRE_FALSE(parse(d, p));
    CHECK(p.marker);
    CHECK(p.payload_type == 96);
    CHECK(p.sequence == 0x1234);
    CHECK(p.timestamp == 0xdeadbeef);
    CHECK(p.ssrc == 0x01020304);
    CHECK(p.csrc_count == 0);
    CHECK(p.extension_profile == 0);
    CHECK(p.padding == 0);
    CHECK(p.header_size() == 12);
    REQUIRE(p.payload.size() == 2);
    CHECK(p.payload[0] == 0xaa);
    CHECK(p.payload[1] == 0xbb);
    CHECK(p.whole.size() == d.size());
    CHECK_FALSE(p.transport_sequence());
    CHECK_FALSE(p.abs_capture_time());
}

TEST_CASE("rejects short input and versions other than 2") {
    packet_view p;
    const bytes eleven(11, 0x80);
    CHECK(parse(eleven, p) == errc::truncated);
    CHECK(parse(bytes_view{}, p) == errc::truncated);
    bytes d(12, 0);
    d[0] = 0x40; // V=1
    CHECK(parse(d, p) == errc::bad_version);
    d[0] = 0xc0; // V=3
    CHECK(parse(d, p) == errc::bad_version);
    d[0] = 0x00; // V=0
    CHECK(parse(d, p) == errc::bad_version);
    d[0] = 0x80;
    CHECK_FALSE(parse(d, p));
    CHECK(p.payload.empty());
}

TEST_CASE("CSRC list: read when present, truncated when the count overflows the buffer") {
    bytes d{0x82, 0x60, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, // CC=2
            0x0a, 0x0b, 0x0c, 0x0d,                    // CSRC 0
            0x1a, 0x1b, 0x1c, 0x1d,                    // CSRC 1
            0x77};                                     // payload
    packet_view p;
    REQUIRE_FALSE(parse(d, p));
    CHECK(p.csrc_count == 2);
    CHECK(p.csrc(0) == 0x0a0b0c0d);
    CHECK(p.csrc(1) == 0x1a1b1c1d);
    CHECK(p.header_size() == 20);
    CHECK(p.payload.size() == 1);

    d[0] = 0x8f; // CC=15 needs 12 + 60 bytes; only 21 are there
    CHECK(parse(d, p) == errc::truncated);
    d.resize(12 + 4 * 15);
    CHECK_FALSE(parse(d, p)); // exactly enough: empty payload
    CHECK(p.payload.empty());
}

TEST_CASE("header extension block: lengths are checked against the buffer") {
    // X=1, profile 0xBEDE, length 1 word: element id 1 (L=1 -> 2 bytes) 0x12 0x34, one pad byte.
    bytes d{0x90, 0x60, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0xbe, 0xde, 0x00, 0x01, 0x11, 0x12, 0x34, 0x00, 0x99};
    packet_view p;
    REQUIRE_FALSE(parse(d, p));
    CHECK(p.extension_profile == 0xBEDE);
    CHECK(p.extension_data.size() == 4);
    REQUIRE(p.transport_sequence());
    CHECK(*p.transport_sequence() == 0x1234);
    CHECK(p.payload.size() == 1);

    SUBCASE("block length beyond the buffer") {
        d[15] = 0x05; // 5 words = 20 bytes, only 5 follow
        CHECK(parse(d, p) == errc::bad_extension);
        d[14] = 0xff; // 0xff05 words
        CHECK(parse(d, p) == errc::bad_extension);
    }
    SUBCASE("extension header itself cut short") {
        d.resize(14); // X=1 but only 2 of the 4 header bytes
        CHECK(parse(d, p) == errc::truncated);
    }
    SUBCASE("one-byte element longer than its block") {
        d[16] = 0x13; // id 1, L=3 -> 4 bytes, the block has 3 after the id byte
        CHECK(parse(d, p) == errc::bad_extension);
    }
    SUBCASE("id 15 stops processing; the rest is not checked") {
        d[16] = 0xff;
        REQUIRE_FALSE(parse(d, p));
        CHECK_FALSE(p.transport_sequence());
    }
    SUBCASE("CSRCs and extension together overflow") {
        d[0] = 0x92; // CC=2: the 8 CSRC bytes eat the extension header
        CHECK(parse(d, p) == errc::truncated);
    }
}

TEST_CASE("two-byte header extension form (RFC 8285 §4.3)") {
    // profile 0x1000 (appbits 0), length 3 words = 12 bytes of elements, each "id, len, data":
    //   01 02 ab cd      id 1, 2 bytes: transport sequence 0xabcd
    //   00               padding byte
    //   09 00            id 9, 0 bytes (empty elements are allowed in this form)
    //   05 03 01 02 03   id 5, 3 bytes
    bytes d{0x90, 0x60, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3,
            0x10, 0x00, 0x00, 0x03,
            0x01, 0x02, 0xab, 0xcd,
            0x00, 0x09, 0x00, 0x05,
            0x03, 0x01, 0x02, 0x03,
            0x42};
    packet_view p;
    REQUIRE_FALSE(parse(d, p));
    CHECK(p.extension_profile == 0x1000);
    REQUIRE(p.transport_sequence());
    CHECK(*p.transport_sequence() == 0xabcd);
    auto e9 = p.extension(9);
    REQUIRE(e9);
    CHECK(e9->empty());
    auto e5 = p.extension(5);
    REQUIRE(e5);
    REQUIRE(e5->size() == 3);
    CHECK((*e5)[2] == 0x03);
    CHECK_FALSE(p.extension(7));
    REQUIRE(p.payload.size() == 1);
    CHECK(p.payload[0] == 0x42);

    d[24] = 0x09; // id 5 claims 9 bytes, 3 remain in the block
    CHECK(parse(d, p) == errc::bad_extension);
    // id 7 in the block's last byte: its length byte would lie outside the block
    d[23] = d[24] = d[25] = d[26] = 0x00;
    d[27] = 0x07;
    CHECK(parse(d, p) == errc::bad_extension);
}

TEST_CASE("an unknown extension profile is carried opaquely") {
    bytes d{0x90, 0x60, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0x12, 0x34, 0x00, 0x01, 0xff, 0xff, 0xff, 0xff};
    packet_view p;
    REQUIRE_FALSE(parse(d, p));
    CHECK(p.extension_profile == 0x1234);
    CHECK(p.extension_data.size() == 4);
    CHECK_FALSE(p.extension(1));
    CHECK(p.payload.empty());
}

TEST_CASE("padding: stripped when valid, rejected when zero or longer than the payload") {
    // P=1, payload 0xaa, then 3 padding bytes whose last says 3.
    bytes d{0xa0, 0x60, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0xaa, 0x00, 0x00, 0x03};
    packet_view p;
    REQUIRE_FALSE(parse(d, p));
    CHECK(p.padding == 3);
    REQUIRE(p.payload.size() == 1);
    CHECK(p.payload[0] == 0xaa);
    d.back() = 4; // all of payload + padding
    REQUIRE_FALSE(parse(d, p));
    CHECK(p.payload.empty());
    d.back() = 0;
    CHECK(parse(d, p) == errc::bad_padding);
    d.back() = 5; // more than the 4 bytes after the header
    CHECK(parse(d, p) == errc::bad_padding);
    d.back() = 0xff;
    CHECK(parse(d, p) == errc::bad_padding);
    const bytes header_only{0xa0, 0x60, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3}; // P=1, nothing to pad
    // the last header byte (3) is taken as the count, with nothing after the header
    CHECK(parse(header_only, p) == errc::bad_padding);
}

TEST_CASE("write_header with both extensions: exact bytes and round trip") {
    header h;
    h.marker = true;
    h.payload_type = 111;
    h.sequence = 65535;
    h.timestamp = 0x01020304;
    h.ssrc = 0xcafebabe;
    h.transport_sequence = 0x0102;
    h.abs_capture_time = 0x1122334455667788ULL;
    CHECK(header_size(h) == 28); // 12 + 4 (BEDE header) + 3 + 9 = 12 bytes of elements
    std::array<std::uint8_t, 28> buf{};
    REQUIRE(write_header(h, buf) == 28);
    const std::array<std::uint8_t, 28> want{
        0x90, 0xef, 0xff, 0xff,       // V=2 X=1, M=1 PT=111, seq 65535
        0x01, 0x02, 0x03, 0x04,       // timestamp
        0xca, 0xfe, 0xba, 0xbe,       // SSRC
        0xbe, 0xde, 0x00, 0x03,       // one-byte form, 3 words
        0x11, 0x01, 0x02,             // id 1, L=1 (2 bytes): transport sequence
        0x27, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, // id 2, L=7 (8 bytes): NTP
    };
    CHECK(buf == want);

    const bytes payload(1200, 0x5a);
    std::vector<std::uint8_t> pkt(28 + payload.size());
    REQUIRE(serialize(h, payload, pkt) == pkt.size());
    packet_view p;
    REQUIRE_FALSE(parse(pkt, p));
    CHECK(p.marker);
    CHECK(p.payload_type == 111);
    CHECK(p.sequence == 65535);
    CHECK(p.timestamp == 0x01020304);
    CHECK(p.ssrc == 0xcafebabe);
    CHECK(p.transport_sequence() == std::optional<std::uint16_t>{0x0102});
    CHECK(p.abs_capture_time() == std::optional<std::uint64_t>{0x1122334455667788ULL});
    CHECK(p.payload.size() == 1200);
    CHECK(p.header_size() == 28);

    SUBCASE("only the transport sequence: padded to a word") {
        header t;
        t.transport_sequence = 7;
        CHECK(header_size(t) == 20);
        std::array<std::uint8_t, 20> b{};
        REQUIRE(write_header(t, b) == 20);
        CHECK(b[16] == 0x11);
        CHECK(b[19] == 0x00); // padding byte
        packet_view q;
        REQUIRE_FALSE(parse(b, q));
        CHECK(q.transport_sequence() == std::optional<std::uint16_t>{7});
        CHECK_FALSE(q.abs_capture_time());
    }
    SUBCASE("no extensions: X=0, 12 bytes") {
        header t;
        CHECK(header_size(t) == 12);
        std::array<std::uint8_t, 12> b{};
        REQUIRE(write_header(t, b) == 12);
        CHECK(b[0] == 0x80);
    }
    SUBCASE("buffers too small") {
        std::array<std::uint8_t, 27> small{};
        CHECK(write_header(h, small) == 0);
        std::vector<std::uint8_t> short_pkt(28 + 1199);
        CHECK(serialize(h, payload, short_pkt) == 0);
    }
}

TEST_CASE("abs capture time: 16-byte form with clock offset; other sizes ignored") {
    // id 2, L=15 -> 16 bytes (NTP + estimated clock offset), then id 1 L=0 (1 byte: wrong size).
    bytes d{0x90, 0x60, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0xbe, 0xde, 0x00, 0x05, 0x2f};
    for (std::uint8_t i = 1; i <= 16; ++i) d.push_back(i);
    d.push_back(0x10); // id 1, L=0 (1 byte)
    d.push_back(0x55);
    d.push_back(0x00);
    packet_view p;
    REQUIRE_FALSE(parse(d, p));
    REQUIRE(p.abs_capture_time());
    CHECK(*p.abs_capture_time() == 0x0102030405060708ULL);
    CHECK_FALSE(p.transport_sequence()); // 1 byte, not 2
}

TEST_CASE("NTP conversion round trip to the microsecond") {
    const timestamp t{std::chrono::microseconds{1'700'000'000'123'456}};
    const std::uint64_t ntp = to_ntp(t);
    CHECK((ntp >> 32) == 1'700'000'000ULL + ntp_unix_offset_s);
    CHECK(from_ntp(ntp) == t);
}

TEST_CASE("is_rtcp tells RTCP packet types from RTP") {
    CHECK(is_rtcp(bytes{0x80, 200, 0, 6}));
    CHECK(is_rtcp(bytes{0x81, 205}));
    CHECK_FALSE(is_rtcp(bytes{0x80, 96}));
    CHECK_FALSE(is_rtcp(bytes{0x80, 0xe0})); // marker + PT 96 reads as 224: RTP
    CHECK_FALSE(is_rtcp(bytes{0x40, 200}));  // version 1
    CHECK_FALSE(is_rtcp(bytes{0x80}));
}

TEST_SUITE_END();
