#include "onair/rtp/rtcp.hpp"

#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

using namespace onair;
using namespace onair::rtp;
using bytes = std::vector<std::uint8_t>;

namespace {
template <class... F>
struct overloaded : F... {
    using F::operator()...;
};
template <class... F>
overloaded(F...) -> overloaded<F...>;

bytes write(auto&& writer, std::size_t capacity = 1500) {
    bytes b(capacity);
    const std::size_t n = writer(std::span<std::uint8_t>{b});
    b.resize(n);
    return b;
}

/// Everything a visitor saw, copied out of the parser's temporary views.
struct seen {
    std::vector<rtcp::report_block> blocks;
    std::vector<std::uint32_t> sr_ssrcs, rr_ssrcs;
    rtcp::sender_report last_sr;
    std::vector<std::pair<std::uint32_t, std::string>> cnames;
    std::vector<std::uint32_t> bye_ssrcs;
    std::string bye_reason;
    std::vector<std::pair<std::uint8_t, bytes>> apps;
    std::vector<std::pair<std::uint32_t, std::uint32_t>> plis;
    std::vector<std::uint16_t> nacked;
    std::vector<std::uint8_t> feedback_fmts;
    std::vector<std::uint8_t> unknown_types;
    std::vector<std::string> order;

    auto visitor() {
        return overloaded{
            [this](const rtcp::sender_report& sr) {
                order.push_back("SR");
                sr_ssrcs.push_back(sr.ssrc);
                last_sr = sr;
                last_sr.blocks = {};
                blocks.insert(blocks.end(), sr.blocks.begin(), sr.blocks.end());
            },
            [this](const rtcp::receiver_report& rr) {
                order.push_back("RR");
                rr_ssrcs.push_back(rr.ssrc);
                blocks.insert(blocks.end(), rr.blocks.begin(), rr.blocks.end());
            },
            [this](const rtcp::sdes& s) {
                order.push_back("SDES");
                for (const auto& c : s.chunks) cnames.emplace_back(c.ssrc, std::string(c.cname));
            },
            [this](const rtcp::bye& b) {
                order.push_back("BYE");
                bye_ssrcs.assign(b.ssrcs.begin(), b.ssrcs.end());
                bye_reason = b.reason;
            },
            [this](const rtcp::app& a) {
                order.push_back("APP");
                if (a.named(rtcp::onair_app_name)) apps.emplace_back(a.subtype, bytes(a.data.begin(), a.data.end()));
            },
            [this](const rtcp::pli& p) {
                order.push_back("PLI");
                plis.emplace_back(p.sender_ssrc, p.media_ssrc);
            },
            [this](const rtcp::nack& n) {
                order.push_back("NACK");
                n.for_each([this](std::uint16_t s) { nacked.push_back(s); });
            },
            [this](const rtcp::feedback& f) {
                order.push_back("FB");
                feedback_fmts.push_back(f.fmt);
            },
            [this](const rtcp::unknown_packet& u) {
                order.push_back("?");
                unknown_types.push_back(u.type);
            },
        };
    }
};

const rtcp::report_block block_a{0x0a0b0c0d, 64, -5, 0x0001ffff, 321, 0x12345678, 0x00010000};
const rtcp::report_block block_b{0x01010101, 255, 0x123456, 70000, 0, 0, 0};
} // namespace

TEST_SUITE_BEGIN("rtp.rtcp");

TEST_CASE("sender report, bit by bit") {
    const std::array blocks{block_a};
    rtcp::sender_report sr;
    sr.ssrc = 0x11223344;
    sr.ntp_timestamp = 0xe1e2e3e4'f1f2f3f4ULL;
    sr.rtp_timestamp = 90000;
    sr.packet_count = 1000;
    sr.octet_count = 1'000'000;
    sr.blocks = blocks;
    const bytes b = write([&](auto out) { return rtcp::write_sender_report(sr, out); });
    const bytes want{
        0x81, 0xc8, 0x00, 0x0c, // V=2 P=0 RC=1, PT=200, length 12 (13 words = 52 bytes)
        0x11, 0x22, 0x33, 0x44, // sender SSRC
        0xe1, 0xe2, 0xe3, 0xe4, // NTP seconds
        0xf1, 0xf2, 0xf3, 0xf4, // NTP fraction
        0x00, 0x01, 0x5f, 0x90, // RTP timestamp 90000
        0x00, 0x00, 0x03, 0xe8, // packet count 1000
        0x00, 0x0f, 0x42, 0x40, // octet count 1000000
        0x0a, 0x0b, 0x0c, 0x0d, // report block: SSRC
        0x40, 0xff, 0xff, 0xfb, // fraction lost 64/256, cumulative lost -5 (24-bit two's complement)
        0x00, 0x01, 0xff, 0xff, // extended highest sequence
        0x00, 0x00, 0x01, 0x41, // jitter 321
        0x12, 0x34, 0x56, 0x78, // LSR
        0x00, 0x01, 0x00, 0x00, // DLSR: 1 s
    };
    CHECK(b == want);

    seen s;
    rtcp::parse_counts counts;
    REQUIRE_FALSE(rtcp::parse_compound(b, s.visitor(), counts));
    CHECK(counts.packets == 1);
    CHECK(counts.malformed == 0);
    REQUIRE(s.sr_ssrcs.size() == 1);
    CHECK(s.last_sr.ssrc == sr.ssrc);
    CHECK(s.last_sr.ntp_timestamp == sr.ntp_timestamp);
    CHECK(s.last_sr.rtp_timestamp == sr.rtp_timestamp);
    CHECK(s.last_sr.packet_count == sr.packet_count);
    CHECK(s.last_sr.octet_count == sr.octet_count);
    REQUIRE(s.blocks.size() == 1);
    CHECK(s.blocks[0] == block_a);
}

TEST_CASE("receiver reports: no blocks, several, 24-bit lost count clamped") {
    rtcp::receiver_report empty;
    empty.ssrc = 5;
    const bytes e = write([&](auto out) { return rtcp::write_receiver_report(empty, out); });
    CHECK(e == bytes{0x80, 0xc9, 0x00, 0x01, 0x00, 0x00, 0x00, 0x05}); // RC=0, PT=201, length 1
    rtcp::report_block huge = block_b;
    huge.cumulative_lost = 50'000'000; // beyond 24 bits
    rtcp::report_block tiny = block_a;
    tiny.cumulative_lost = -50'000'000;
    const std::array blocks{block_a, block_b, huge, tiny};
    rtcp::receiver_report rr{7, blocks};
    const bytes b = write([&](auto out) { return rtcp::write_receiver_report(rr, out); });
    CHECK(b.size() == 8 + 4 * 24);
    CHECK(b[0] == 0x84);
    seen s;
    REQUIRE_FALSE(rtcp::parse_compound(b, s.visitor()));
    REQUIRE(s.blocks.size() == 4);
    CHECK(s.blocks[0] == block_a);
    CHECK(s.blocks[1] == block_b);
    CHECK(s.blocks[2].cumulative_lost == 0x7fffff);
    CHECK(s.blocks[3].cumulative_lost == -0x800000);
    CHECK(s.rr_ssrcs == std::vector<std::uint32_t>{7});

    std::array<rtcp::report_block, 32> too_many{};
    CHECK(write([&](auto out) { return rtcp::write_receiver_report({1, too_many}, out); }).empty());
}

TEST_CASE("SDES CNAME: item, end marker, padding to 32 bits") {
    const bytes b = write([](auto out) { return rtcp::write_sdes_cname(0xaabbccdd, "host-1", out); });
    const bytes want{
        0x81, 0xca, 0x00, 0x04, // V=2 SC=1, PT=202, length 4 (5 words, 20 bytes)
        0xaa, 0xbb, 0xcc, 0xdd, // chunk SSRC
        0x01, 0x06, 'h', 'o',   // CNAME, 6 bytes
        's', 't', '-', '1',
    };
    // 4 + 2 + 6 = 12 bytes of chunk: the end-of-items zero needs a whole new word.
    REQUIRE(b.size() == 20);
    CHECK(bytes(b.begin(), b.begin() + 16) == want);
    CHECK(bytes(b.begin() + 16, b.end()) == bytes{0, 0, 0, 0});
    for (std::size_t len = 0; len < 12; ++len) {
        const std::string name(len, 'x');
        const bytes c = write([&](auto out) { return rtcp::write_sdes_cname(1, name, out); });
        CHECK(c.size() % 4 == 0);
        seen s;
        REQUIRE_FALSE(rtcp::parse_compound(c, s.visitor()));
        REQUIRE(s.cnames.size() == 1);
        CHECK(s.cnames[0].second == name);
    }
    CHECK(write([](auto out) { return rtcp::write_sdes_cname(1, std::string(256, 'x'), out); }).empty());
}

TEST_CASE("SDES with two chunks and other items, written by hand") {
    const bytes b{
        0x82, 0xca, 0x00, 0x06, // SC=2, length 6
        0x00, 0x00, 0x00, 0x01, // chunk 1 SSRC
        0x02, 0x01, 'n', 0x01,  // NAME "n", then CNAME...
        0x02, 'a', 'b', 0x00,   // ... "ab", end
        0x00, 0x00, 0x00, 0x02, // chunk 2 SSRC
        0x00, 0x00, 0x00, 0x00, // no items
        0x03, 0x00, 0x00, 0x00, // (stray word inside the length: ignored)
    };
    seen s;
    REQUIRE_FALSE(rtcp::parse_compound(b, s.visitor()));
    REQUIRE(s.cnames.size() == 2);
    CHECK(s.cnames[0] == std::pair<std::uint32_t, std::string>{1, "ab"});
    CHECK(s.cnames[1] == std::pair<std::uint32_t, std::string>{2, ""});

    bytes bad = b;
    bad[9] = 0x30; // NAME claims 48 bytes
    rtcp::parse_counts counts;
    CHECK(rtcp::parse_compound(bad, seen{}.visitor(), counts) == errc::truncated);
    CHECK(counts.malformed == 1);
    bad = b;
    bad[0] = 0x85; // 5 chunks promised, 2 present
    CHECK(rtcp::parse_compound(bad, seen{}.visitor()) == errc::truncated);
}

TEST_CASE("BYE with and without a reason") {
    const std::array<std::uint32_t, 2> ssrcs{0x01020304, 0x05060708};
    const bytes b = write([&](auto out) { return rtcp::write_bye(ssrcs, "done", out); });
    const bytes want{
        0x82, 0xcb, 0x00, 0x04, // SC=2, PT=203, length 4 (words - 1)
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
        0x04, 'd', 'o', 'n', 'e', 0x00, 0x00, 0x00, // length 4, "done", padding
    };
    CHECK(b == want);
    seen s;
    REQUIRE_FALSE(rtcp::parse_compound(b, s.visitor()));
    CHECK(s.bye_ssrcs == std::vector<std::uint32_t>(ssrcs.begin(), ssrcs.end()));
    CHECK(s.bye_reason == "done");
    const bytes plain = write([&](auto out) { return rtcp::write_bye(ssrcs, "", out); });
    CHECK(plain.size() == 12);
    seen t;
    REQUIRE_FALSE(rtcp::parse_compound(plain, t.visitor()));
    CHECK(t.bye_reason.empty());
    bytes bad = b;
    bad[12] = 0x09; // reason longer than the packet
    CHECK(rtcp::parse_compound(bad, seen{}.visitor()) == errc::truncated);
}

TEST_CASE("APP: onair's ONAR messages, data padded to 32 bits") {
    const bytes data{1, 2, 3, 4, 5};
    rtcp::app a;
    a.subtype = 5;
    a.ssrc = 0x99;
    a.name = rtcp::onair_app_name;
    a.data = data;
    const bytes b = write([&](auto out) { return rtcp::write_app(a, out); });
    const bytes want{
        0x85, 0xcc, 0x00, 0x04, // subtype 5, PT=204, length 4
        0x00, 0x00, 0x00, 0x99, // SSRC
        'O', 'N', 'A', 'R',     // name
        1, 2, 3, 4, 5, 0, 0, 0, // data + zero padding
    };
    CHECK(b == want);
    seen s;
    REQUIRE_FALSE(rtcp::parse_compound(b, s.visitor()));
    REQUIRE(s.apps.size() == 1);
    CHECK(s.apps[0].first == 5);
    CHECK(s.apps[0].second == bytes{1, 2, 3, 4, 5, 0, 0, 0});
    a.subtype = 32;
    CHECK(write([&](auto out) { return rtcp::write_app(a, out); }).empty());
    a.subtype = 31;
    a.data = {};
    CHECK(write([&](auto out) { return rtcp::write_app(a, out); }).size() == 12);
    bytes short_app{0x80, 0xcc, 0x00, 0x01, 0, 0, 0, 1}; // no room for the name
    CHECK(rtcp::parse_compound(short_app, seen{}.visitor()) == errc::truncated);
}

TEST_CASE("PLI and generic NACK, bit by bit") {
    const bytes p = write([](auto out) { return rtcp::write_pli(1, 2, out); });
    CHECK(p == bytes{0x81, 0xce, 0x00, 0x02, 0, 0, 0, 1, 0, 0, 0, 2}); // FMT=1, PT=206, length 2

    const std::array<std::uint16_t, 6> lost{65535, 0, 1, 5, 17, 30};
    const bytes n = write([&](auto out) { return rtcp::write_nack(1, 2, lost, out); });
    const bytes want{
        0x81, 0xcd, 0x00, 0x04, // FMT=1, PT=205, length 4
        0x00, 0x00, 0x00, 0x01, // sender SSRC
        0x00, 0x00, 0x00, 0x02, // media SSRC
        0xff, 0xff, 0x00, 0x23, // PID 65535, BLP bits 0,1,5: 0, 1, 5 (65535+1, +2, +6)
        0x00, 0x11, 0x10, 0x00, // PID 17, BLP bit 12: 30
    };
    CHECK(n == want);
    seen s;
    REQUIRE_FALSE(rtcp::parse_compound(n, s.visitor()));
    CHECK(s.nacked == std::vector<std::uint16_t>(lost.begin(), lost.end()));
    CHECK(write([](auto out) { return rtcp::write_nack(1, 2, {}, out); }).empty());

    bytes bad = n;
    bad[3] = 0x02; // no FCI at all
    bad.resize(12);
    CHECK(rtcp::parse_compound(bad, seen{}.visitor()) == errc::bad_payload);
}

TEST_CASE("NACK for many packets: every bit pattern survives") {
    std::vector<std::uint16_t> lost;
    for (std::uint32_t i = 0; i < 400; ++i)
        if ((i * 7919) % 3 != 0) lost.push_back(static_cast<std::uint16_t>(65400 + i));
    const bytes n = write([&](auto out) { return rtcp::write_nack(1, 2, lost, out); });
    REQUIRE(!n.empty());
    seen s;
    REQUIRE_FALSE(rtcp::parse_compound(n, s.visitor()));
    CHECK(s.nacked == lost);
}

TEST_CASE("compound round trip: every type, in order, then unknown types") {
    const std::array blocks{block_a};
    const std::array<std::uint32_t, 1> bye_ssrc{0x11223344};
    const bytes tcc_fci{0, 1, 0, 2};
    const bytes app_data{'h', 'i', '!', '!'};
    bytes buf(1500);
    std::span<std::uint8_t> out{buf};
    std::size_t n = 0;
    auto add = [&](std::size_t written) {
        REQUIRE(written > 0);
        n += written;
    };
    add(rtcp::write_sender_report({0x11223344, 1, 2, 3, 4, blocks}, out.subspan(n)));
    add(rtcp::write_sdes_cname(0x11223344, "me@onair", out.subspan(n)));
    add(rtcp::write_app({7, 0x11223344, rtcp::onair_app_name, app_data}, out.subspan(n)));
    add(rtcp::write_pli(0x11223344, 0x55, out.subspan(n)));
    const std::array<std::uint16_t, 2> lost{10, 12};
    add(rtcp::write_nack(0x11223344, 0x55, lost, out.subspan(n)));
    add(rtcp::write_feedback({rtcp::type_rtpfb, 15, 0x11223344, 0x55, tcc_fci}, out.subspan(n)));
    const bytes xr{0x80, 207, 0x00, 0x01, 0, 0, 0, 9}; // an XR packet we do not decode
    std::copy(xr.begin(), xr.end(), buf.begin() + static_cast<std::ptrdiff_t>(n));
    n += xr.size();
    add(rtcp::write_bye(bye_ssrc, "", out.subspan(n)));
    buf.resize(n);

    seen s;
    rtcp::parse_counts counts;
    REQUIRE_FALSE(rtcp::parse_compound(buf, s.visitor(), counts));
    CHECK(counts.packets == 8);
    CHECK(s.order == std::vector<std::string>{"SR", "SDES", "APP", "PLI", "NACK", "FB", "?", "BYE"});
    CHECK(s.cnames[0].second == "me@onair");
    CHECK(s.apps[0].second == app_data);
    CHECK(s.plis[0] == std::pair<std::uint32_t, std::uint32_t>{0x11223344, 0x55});
    CHECK(s.nacked == std::vector<std::uint16_t>{10, 12});
    CHECK(s.feedback_fmts == std::vector<std::uint8_t>{15});
    CHECK(s.unknown_types == std::vector<std::uint8_t>{207});
    CHECK(s.bye_ssrcs == std::vector<std::uint32_t>{0x11223344});

    SUBCASE("a visitor sees only the types it accepts") {
        int plis = 0;
        REQUIRE_FALSE(rtcp::parse_compound(buf, [&](const rtcp::pli&) { ++plis; }));
        CHECK(plis == 1);
    }
    SUBCASE("cut at every length: never reads past the end, errors unless cut between packets") {
        for (std::size_t cut = 0; cut < buf.size(); ++cut) {
            const std::vector<std::uint8_t> part(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(cut));
            seen t;
            const auto ec = rtcp::parse_compound(part, t.visitor());
            bool at_boundary = false;
            for (std::size_t pos = 0; pos <= cut && pos < buf.size();) {
                if (pos == cut) { at_boundary = true; break; }
                pos += (std::size_t{load_be16(&buf[pos + 2])} + 1) * 4;
            }
            CHECK((ec == std::error_code{}) == (at_boundary && cut > 0));
        }
    }
    SUBCASE("a length field reaching past the datagram stops the walk there") {
        bytes bad = buf;
        const std::size_t sdes_at = 52; // after the SR with one block
        REQUIRE(bad[sdes_at + 1] == rtcp::type_sdes);
        bad[sdes_at + 2] = 0xff; // length 0xff.. words
        seen t;
        rtcp::parse_counts c;
        CHECK(rtcp::parse_compound(bad, t.visitor(), c) == errc::truncated);
        CHECK(t.order == std::vector<std::string>{"SR"});
        CHECK(c.packets == 1);
        CHECK(c.malformed == 1);
    }
    SUBCASE("a malformed body is skipped and the walk goes on; the first error is returned") {
        bytes bad = buf;
        bad[0] = 0x85; // SR claims 5 blocks but its length holds 1
        seen t;
        rtcp::parse_counts c;
        CHECK(rtcp::parse_compound(bad, t.visitor(), c) == errc::truncated);
        CHECK(t.order == std::vector<std::string>{"SDES", "APP", "PLI", "NACK", "FB", "?", "BYE"});
        CHECK(c.malformed == 1);
        CHECK(c.packets == 7);
    }
    SUBCASE("a bad version stops the walk") {
        bytes bad = buf;
        bad[52] = 0x41;
        seen t;
        CHECK(rtcp::parse_compound(bad, t.visitor()) == errc::bad_version);
        CHECK(t.order == std::vector<std::string>{"SR"});
    }
}

TEST_CASE("padding on a sub-packet is stripped; bad padding is rejected") {
    // APP with P=1: 4 data bytes then 4 bytes of padding whose last says 4.
    bytes b{0xa1, 0xcc, 0x00, 0x04, 0, 0, 0, 1, 'O', 'N', 'A', 'R', 9, 9, 9, 9, 0, 0, 0, 4};
    seen s;
    REQUIRE_FALSE(rtcp::parse_compound(b, s.visitor()));
    REQUIRE(s.apps.size() == 1);
    CHECK(s.apps[0].second == bytes{9, 9, 9, 9});
    b.back() = 0;
    CHECK(rtcp::parse_compound(b, seen{}.visitor()) == errc::bad_padding);
    b.back() = 17; // more than the 16-byte body
    CHECK(rtcp::parse_compound(b, seen{}.visitor()) == errc::bad_padding);
    b.back() = 12; // eats into the SSRC and name: the APP body is then too short
    CHECK(rtcp::parse_compound(b, seen{}.visitor()) == errc::truncated);
}

TEST_CASE("empty and tiny datagrams") {
    rtcp::parse_counts c;
    CHECK(rtcp::parse_compound(bytes_view{}, seen{}.visitor(), c) == errc::truncated);
    CHECK(rtcp::parse_compound(bytes{0x80, 0xc8, 0x00}, seen{}.visitor(), c) == errc::truncated);
    CHECK(rtcp::parse_compound(bytes{0x80, 0xc8, 0x00, 0x00}, seen{}.visitor(), c) == errc::truncated); // SR w/o body
    CHECK(c.malformed == 3);
    CHECK(c.packets == 0);
}

TEST_CASE("writers return 0 when the buffer is one byte short") {
    const std::array blocks{block_a, block_b};
    const std::array<std::uint32_t, 1> ssrcs{1};
    const std::array<std::uint16_t, 3> lost{1, 2, 40};
    const bytes data{1, 2, 3};
    auto check = [](auto&& writer) {
        const std::size_t n = write(writer).size();
        REQUIRE(n > 0);
        CHECK(write(writer, n - 1).empty());
        CHECK(write(writer, n).size() == n);
    };
    check([&](auto o) { return rtcp::write_sender_report({1, 2, 3, 4, 5, blocks}, o); });
    check([&](auto o) { return rtcp::write_receiver_report({1, blocks}, o); });
    check([&](auto o) { return rtcp::write_sdes_cname(1, "abc", o); });
    check([&](auto o) { return rtcp::write_bye(ssrcs, "why", o); });
    check([&](auto o) { return rtcp::write_app({1, 2, rtcp::onair_app_name, data}, o); });
    check([&](auto o) { return rtcp::write_pli(1, 2, o); });
    check([&](auto o) { return rtcp::write_nack(1, 2, lost, o); });
    check([&](auto o) { return rtcp::write_feedback({rtcp::type_psfb, 15, 1, 2, bytes{1, 2, 3, 4}}, o); });
    CHECK(write([&](auto o) { return rtcp::write_feedback({rtcp::type_psfb, 15, 1, 2, data}, o); }).empty());
}

TEST_CASE("round-trip time from LSR and DLSR") {
    rtcp::report_block b;
    CHECK_FALSE(rtcp::round_trip_time(b, 12345));
    b.last_sr = 0x0001'0000;            // 1 s
    b.delay_since_last_sr = 0x0000'8000; // 0.5 s
    const auto rtt = rtcp::round_trip_time(b, 0x0001'c000); // 1.75 s
    REQUIRE(rtt);
    CHECK(rtt->count() == 250'000);
    CHECK(rtcp::round_trip_time(b, 0x0001'0000)->count() == 0); // negative: clamped
    CHECK(rtcp::compact_ntp(0x1234'5678'9abc'def0ULL) == 0x5678'9abcu);
}

TEST_SUITE_END();
