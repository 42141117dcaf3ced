#include <onair/rtp/session_message.hpp>

#include <doctest/doctest.h>

#include <array>
#include <cstring>
#include <ostream> // doctest prints std::error_code through it
#include <random>
#include <string>
#include <vector>

using namespace onair;

namespace {
rtp::session_message sample() {
    rtp::session_message m;
    m.type = rtp::session_type::ack;
    m.status = rtp::session_status::waiting;
    m.sender_ssrc = 0x01020304;
    m.stream.name = "cam";
    m.stream.video_ssrc = 0xAABBCCDD;
    m.stream.audio_ssrc = 0x11223344;
    m.stream.video_pt = 96;
    m.stream.audio_pt = 111;
    m.stream.video_codec = "VP8";
    m.stream.audio_codec = "opus";
    m.stream.video_rtx_ssrc = 0x55667788;
    m.stream.video_rtx_pt = 97;
    m.stream.audio_red_pt = 63;
    m.stream.video_fec_ssrc = 0x99AABBCC;
    m.stream.video_fec_pt = 118;
    m.stream.audio_rtx_ssrc = 0x0D0E0F10;
    m.stream.audio_rtx_pt = 98;
    return m;
}
} // namespace

TEST_CASE("session message: the APP header and every field round-trip") {
    std::array<std::uint8_t, 256> buf{};
    const auto n = rtp::write_session_message(sample(), buf);
    // 12-byte APP header + 4 + (1+3) + 10 + (1+3) + (1+4) + 5 + 1 (RED PT) + 5 (FEC) + 5
    // (audio RTX) + 16 (simulcast) + 1 (ticket length) + 2 (flags, route length) = 74,
    // padded to 76.
    REQUIRE(n == 76);
    CHECK(buf[44] == 63); // audio RED PT right after the RTX PT
    CHECK(rtp::load_be32(&buf[45]) == 0x99AABBCC);
    CHECK(buf[49] == 118);
    CHECK(rtp::load_be32(&buf[50]) == 0x0D0E0F10);
    CHECK(buf[54] == 98);
    CHECK(buf[0] == (0x80 | 3));              // V=2, subtype 3 = ack
    CHECK(buf[1] == 204);                     // APP
    CHECK(rtp::load_be16(&buf[2]) == 76 / 4 - 1);
    CHECK(std::string(buf.begin() + 8, buf.begin() + 12) == "ONAR");
    CHECK(rtp::is_rtcp(std::span(buf.data(), n)));
    CHECK(rtp::is_session_message(std::span(buf.data(), n)));
    rtp::session_message back;
    REQUIRE_FALSE(static_cast<bool>(rtp::parse_session_message(std::span(buf.data(), n), back)));
    CHECK(back.type == rtp::session_type::ack);
    CHECK(back.status == rtp::session_status::waiting);
    CHECK(back.sender_ssrc == 0x01020304);
    CHECK(back.stream == sample().stream);
}

TEST_CASE("session message: a message without the RED field (the earlier layout) reads audio_red_pt 0") {
    auto m = sample();
    m.stream.audio_red_pt = 0;
    m.stream.video_fec_ssrc = 0;
    m.stream.video_fec_pt = rtp::stream_description{}.video_fec_pt;
    m.stream.audio_rtx_ssrc = 0;
    m.stream.audio_rtx_pt = rtp::stream_description{}.audio_rtx_pt;
    std::array<std::uint8_t, 256> buf{};
    const auto n = rtp::write_session_message(m, buf);
    // The earlier layout ended after the RTX PT: 44 bytes, length field 10.
    std::vector<std::uint8_t> old(buf.begin(), buf.begin() + 44);
    rtp::store_be16(&old[2], 44 / 4 - 1);
    rtp::session_message back;
    REQUIRE_FALSE(static_cast<bool>(rtp::parse_session_message(old, back)));
    CHECK(back.stream.audio_red_pt == 0);
    CHECK(back.stream == m.stream);
    REQUIRE(n == 76);
}

TEST_CASE("session message: a message with RED but without FEC and audio RTX (the layout before) reads them as none") {
    auto m = sample();
    std::array<std::uint8_t, 256> buf{};
    REQUIRE(rtp::write_session_message(m, buf) == 76);
    // That layout ended after the RED PT: 45 bytes, padded to 48 with zeros.
    std::vector<std::uint8_t> old(buf.begin(), buf.begin() + 48);
    old[45] = old[46] = old[47] = 0;
    rtp::store_be16(&old[2], 48 / 4 - 1);
    rtp::session_message back;
    REQUIRE_FALSE(static_cast<bool>(rtp::parse_session_message(old, back)));
    CHECK(back.stream.audio_red_pt == 63);
    CHECK(back.stream.video_fec_ssrc == 0);
    CHECK(back.stream.audio_rtx_ssrc == 0);
    CHECK(back.stream.video_rtx_ssrc == m.stream.video_rtx_ssrc);
}

TEST_CASE("session message: every truncation and bad field is refused") {
    std::array<std::uint8_t, 256> buf{};
    const auto n = rtp::write_session_message(sample(), buf);
    rtp::session_message m;
    for (std::size_t len = 0; len < n; ++len)
        CHECK(static_cast<bool>(rtp::parse_session_message(std::span(buf.data(), len), m))); // shorter than its length field
    auto bad = std::vector<std::uint8_t>(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
    bad[0] = 0x80 | 9; // unknown subtype
    CHECK(rtp::parse_session_message(bad, m) == errc::bad_payload);
    bad[0] = 0x80 | 1;
    bad[12] = 2; // unknown version
    CHECK(rtp::parse_session_message(bad, m) == errc::unsupported);
    bad[12] = 1;
    bad[16] = 200; // name longer than the packet
    CHECK(rtp::parse_session_message(bad, m) == errc::truncated);
    // The writer refuses what the format cannot carry, and buffers that are too small.
    auto long_name = sample();
    long_name.stream.name.assign(256, 'x');
    CHECK(rtp::write_session_message(long_name, buf) == 0);
    CHECK(rtp::write_session_message(sample(), std::span(buf.data(), 44)) == 0);
}

TEST_CASE("session message: random bytes never crash the parser") {
    std::mt19937 rng(5);
    std::vector<std::uint8_t> d;
    rtp::session_message m;
    int accepted = 0;
    for (int i = 0; i < 100'000; ++i) {
        d.resize(std::uniform_int_distribution<std::size_t>(0, 80)(rng));
        for (auto& x : d) x = static_cast<std::uint8_t>(rng());
        if (d.size() >= 12 && (rng() & 1)) { // often a plausible header, so the body is exercised
            d[0] = static_cast<std::uint8_t>(0x80 | (rng() % 5));
            d[1] = 204;
            rtp::store_be16(&d[2], static_cast<std::uint16_t>(d.size() / 4 - 1));
            d[8] = 'O'; d[9] = 'N'; d[10] = 'A'; d[11] = 'R';
        }
        if (!rtp::parse_session_message(d, m)) {
            ++accepted;
            CHECK(m.stream.name.size() <= d.size());
        }
    }
    CHECK(accepted < 100'000);
}

TEST_CASE("session message: simulcast encodings round-trip, and a message without them reads none") {
    auto m = sample();
    m.stream.video_lower_ssrcs = {0x21222324, 0x31323334};
    m.stream.video_lower_rtx_ssrcs = {0x41424344, 0x51525354};
    CHECK(m.stream.video_encodings() == 3);
    std::array<std::uint8_t, 256> buf{};
    const auto n = rtp::write_session_message(m, buf);
    REQUIRE(n == 76);
    CHECK(rtp::load_be32(&buf[55]) == 0x21222324);
    CHECK(rtp::load_be32(&buf[59]) == 0x41424344);
    CHECK(rtp::load_be32(&buf[63]) == 0x31323334);
    CHECK(rtp::load_be32(&buf[67]) == 0x51525354);
    rtp::session_message back;
    REQUIRE_FALSE(static_cast<bool>(rtp::parse_session_message(std::span(buf.data(), n), back)));
    CHECK(back.stream == m.stream);
    // The same message as an older sender writes it: ends after the audio RTX PT (55 bytes,
    // padded to 56). The simulcast fields read 0: one encoding.
    std::array<std::uint8_t, 56> old{};
    std::memcpy(old.data(), buf.data(), 55);
    rtp::store_be16(&old[2], 56 / 4 - 1);
    REQUIRE_FALSE(static_cast<bool>(rtp::parse_session_message(std::span(old.data(), old.size()), back)));
    CHECK(back.stream.video_lower_ssrcs[0] == 0);
    CHECK(back.stream.video_lower_rtx_ssrcs[1] == 0);
    CHECK(back.stream.video_encodings() == 1);
    CHECK(back.stream.audio_rtx_ssrc == m.stream.audio_rtx_ssrc);
    // Only the lowest of the two announced: two encodings.
    m.stream.video_lower_ssrcs[1] = 0;
    CHECK(m.stream.video_encodings() == 2);
}

TEST_CASE("session message: a relay leg's flag and route round-trip; a message without them reads a client's") {
    auto m = sample();
    m.type = rtp::session_type::play;
    m.ticket = "c0123456789abcdef";
    m.relay_leg = true;
    m.route = "127.0.0.1:4000,[::1]:5000";
    std::array<std::uint8_t, 512> buf{};
    const auto n = rtp::write_session_message(m, buf);
    REQUIRE(n > 0);
    rtp::session_message back;
    REQUIRE_FALSE(static_cast<bool>(rtp::parse_session_message(std::span(buf.data(), n), back)));
    CHECK(back.relay_leg);
    CHECK(back.route == m.route);
    CHECK(back.ticket == m.ticket);
    CHECK(back.stream == m.stream);

    // The layout before these fields: the message ends after the ticket (plus padding).
    auto old = m;
    old.relay_leg = false;
    old.route.clear();
    const auto full = rtp::write_session_message(old, buf);
    // Cut the two new bytes (and re-pad) by shrinking the length field: ticket ends at
    // full - 2 - padding; every shorter valid layout must read as a client's hello.
    for (std::size_t cut = 4; cut <= 8; cut += 4) {
        std::vector<std::uint8_t> shorter(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(full));
        const std::size_t total = full - cut;
        rtp::store_be16(&shorter[2], static_cast<std::uint16_t>(total / 4 - 1));
        shorter.resize(total);
        rtp::session_message s2;
        if (!rtp::parse_session_message(shorter, s2)) {
            CHECK_FALSE(s2.relay_leg);
            CHECK(s2.route.empty());
        }
    }

    // A bad flag byte and a route running past the end are refused; an oversized route is
    // not written.
    const auto len = rtp::write_session_message(m, buf);
    // header 12, version..reserved 4, "cam" 1+3, SSRCs and PTs 10, "VP8" 1+3, "opus" 1+4,
    // RTX..audio RTX 16, simulcast 16, then the ticket.
    const std::size_t flags_at = 12 + 4 + 4 + 10 + 4 + 5 + 16 + 16 + 1 + m.ticket.size();
    std::vector<std::uint8_t> bad(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(len));
    REQUIRE(bad[flags_at] == 1);
    bad[flags_at] = 7;
    CHECK(rtp::parse_session_message(bad, back) == errc::bad_payload);
    bad[flags_at] = 1;
    bad[flags_at + 1] = 250;
    CHECK(rtp::parse_session_message(bad, back) == errc::truncated);
    m.route.assign(256, 'x');
    CHECK(rtp::write_session_message(m, buf) == 0);
}
