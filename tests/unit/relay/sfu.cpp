#include <onair/relay/sfu.hpp>

#include "support/rtp_builders.hpp"

#include <onair/rtp/rtcp.hpp>
#include <onair/qos/rtx.hpp>
#include <onair/rtp/opus.hpp>
#include <onair/rtp/vp8.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <vector>

using namespace onair;
using namespace std::chrono_literals;
using relay::endpoint;

namespace {

/// Records what the sfu asks its node to do; time is simulated.
struct fake_context {
    struct sent { endpoint to; std::vector<std::uint8_t> bytes; };
    std::vector<sent> sends;
    std::vector<std::pair<endpoint, rtp::session_message>> sessions;
    std::vector<std::pair<endpoint, std::uint32_t>> keyframe_requests;
    std::size_t delivered = 0;
    std::chrono::steady_clock::time_point t = std::chrono::steady_clock::time_point{} + 1h;

    void send(const endpoint& to, rtp::bytes_view b) { sends.push_back({to, {b.begin(), b.end()}}); }
    void send(const endpoint& to, rtp::bytes_view head, rtp::bytes_view tail) {
        sends.push_back({to, {head.begin(), head.end()}});
        sends.back().bytes.insert(sends.back().bytes.end(), tail.begin(), tail.end());
    }
    void send_session(const endpoint& to, const rtp::session_message& m) { sessions.emplace_back(to, m); }
    void request_keyframe(const endpoint& p, std::uint32_t ssrc) { keyframe_requests.emplace_back(p, ssrc); }
    void deliver(const rtp::stream_description&, media_kind, const rtp::packet_view&) { ++delivered; }
    std::chrono::steady_clock::time_point now() const { return t; }
    // Outlives every sfu in these tests (the sfu keeps packets in its caches).
    static packet_pool& pool() {
        static packet_pool p;
        return p;
    }
    packet_ref acquire() { return pool().acquire(); }

    std::size_t sent_to(const endpoint& e) const {
        std::size_t n = 0;
        for (auto& s : sends) n += s.to == e;
        return n;
    }
};

endpoint ep(unsigned short port) { return {asio::ip::make_address_v4("127.0.0.1"), port}; }

rtp::session_message hello(rtp::session_type type, const std::string& name, std::uint32_t vssrc = 0, std::uint32_t assrc = 0) {
    rtp::session_message m;
    m.type = type;
    m.stream.name = name;
    m.stream.video_ssrc = vssrc;
    m.stream.audio_ssrc = assrc;
    m.stream.video_codec = vssrc ? "VP8" : "";
    m.stream.audio_codec = assrc ? "opus" : "";
    return m;
}

void feed(relay::sfu& s, fake_context& ctx, const std::vector<std::uint8_t>& pkt, const endpoint& from) {
    packet_ref buf = ctx.acquire(); // as the node does: a pooled buffer the sfu may keep
    std::copy(pkt.begin(), pkt.end(), buf.capacity().begin());
    buf.resize(pkt.size());
    rtp::packet_view p;
    REQUIRE_FALSE(rtp::parse(buf.bytes(), p));
    s.on_rtp(ctx, buf, p, from);
}

} // namespace

static_assert(relay::relay_policy<relay::sfu>);

TEST_CASE("sfu: publish is acknowledged and a second publisher of the same name is refused") {
    relay::sfu s;
    fake_context ctx;
    s.on_session(ctx, hello(rtp::session_type::publish, "cam", 100, 101), ep(1));
    REQUIRE(ctx.sessions.size() == 1);
    CHECK(ctx.sessions[0].second.status == rtp::session_status::ok);
    CHECK(ctx.sessions[0].second.stream.video_ssrc == 100);

    s.on_session(ctx, hello(rtp::session_type::publish, "cam", 200, 201), ep(2));
    REQUIRE(ctx.sessions.size() == 2);
    CHECK(ctx.sessions[1].first == ep(2));
    CHECK(ctx.sessions[1].second.status == rtp::session_status::refused);
    CHECK(s.stats().refused_sessions == 1);

    // The same publisher repeating its hello (keepalive) stays accepted.
    s.on_session(ctx, hello(rtp::session_type::publish, "cam", 100, 101), ep(1));
    CHECK(ctx.sessions.back().second.status == rtp::session_status::ok);
}

TEST_CASE("sfu: a viewer that asks before the stream is live waits, then is told when it goes live") {
    relay::sfu s;
    fake_context ctx;
    s.on_session(ctx, hello(rtp::session_type::play, "cam"), ep(10));
    REQUIRE(ctx.sessions.size() == 1);
    CHECK(ctx.sessions[0].second.status == rtp::session_status::waiting);
    s.on_session(ctx, hello(rtp::session_type::publish, "cam", 100, 101), ep(1));
    // The waiting viewer receives the description unprompted.
    bool told = false;
    for (auto& [to, m] : ctx.sessions)
        told |= to == ep(10) && m.status == rtp::session_status::ok && m.stream.video_ssrc == 100;
    CHECK(told);
}

TEST_CASE("sfu: packets reach every subscriber unchanged; video only from a keyframe on") {
    relay::sfu s;
    fake_context ctx;
    s.on_session(ctx, hello(rtp::session_type::publish, "cam", 100, 101), ep(1));
    s.on_session(ctx, hello(rtp::session_type::play, "cam"), ep(10));
    s.on_session(ctx, hello(rtp::session_type::play, "cam"), ep(11));
    std::uint16_t seq = 1000;
    auto delta = onair_test::packetize<rtp::vp8_payload>(onair_test::fake_vp8_frame(false, 3000), 100, seq);
    auto key = onair_test::packetize<rtp::vp8_payload>(onair_test::fake_vp8_frame(true, 6000, 5000), 100, seq);
    auto delta2 = onair_test::packetize<rtp::vp8_payload>(onair_test::fake_vp8_frame(false, 9000), 100, seq);
    REQUIRE(key.size() > 1);

    ctx.sends.clear();
    for (auto& p : delta) feed(s, ctx, p, ep(1));
    CHECK(ctx.sends.empty()); // nobody has a keyframe yet: delta frames are useless to them
    for (auto& p : key) feed(s, ctx, p, ep(1));
    for (auto& p : delta2) feed(s, ctx, p, ep(1));
    CHECK(ctx.sent_to(ep(10)) == key.size() + delta2.size());
    CHECK(ctx.sent_to(ep(11)) == key.size() + delta2.size());
    // Byte-identical forwarding.
    CHECK(ctx.sends[0].bytes == key[0]);
    CHECK(ctx.sends.back().bytes == delta2.back());
    CHECK(s.stats().rtp_forwarded == 2 * (key.size() + delta2.size()));

    // Audio flows without waiting.
    onair::encoded_frame a;
    a.kind = media_kind::audio;
    a.data.assign(80, 1);
    std::uint16_t aseq = 5;
    auto apkts = onair_test::packetize<rtp::opus_payload>(a, 101, aseq, 111);
    ctx.sends.clear();
    feed(s, ctx, apkts[0], ep(1));
    CHECK(ctx.sent_to(ep(10)) == 1);
    CHECK(ctx.sent_to(ep(11)) == 1);
}

TEST_CASE("sfu: unknown SSRCs and spoofed sources are counted and dropped") {
    relay::sfu s;
    fake_context ctx;
    s.on_session(ctx, hello(rtp::session_type::publish, "cam", 100, 101), ep(1));
    s.on_session(ctx, hello(rtp::session_type::play, "cam"), ep(10));
    std::uint16_t seq = 1;
    auto key = onair_test::packetize<rtp::vp8_payload>(onair_test::fake_vp8_frame(true, 0), 100, seq);
    auto stranger = onair_test::packetize<rtp::vp8_payload>(onair_test::fake_vp8_frame(true, 0), 999, seq);
    ctx.sends.clear();
    feed(s, ctx, stranger[0], ep(1));
    CHECK(s.stats().unknown_stream == 1);
    feed(s, ctx, key[0], ep(7)); // right SSRC, wrong address
    CHECK(s.stats().unauthorized == 1);
    CHECK(ctx.sends.empty());
    CHECK(ctx.delivered == 0);
}

TEST_CASE("sfu: keyframe requests are aggregated to one per stream per 300 ms") {
    relay::sfu s;
    fake_context ctx;
    s.on_session(ctx, hello(rtp::session_type::publish, "cam", 100, 101), ep(1));
    for (unsigned short v = 0; v < 50; ++v) {
        s.on_session(ctx, hello(rtp::session_type::play, "cam"), ep(static_cast<unsigned short>(100 + v)));
        ctx.t += 2ms;
    }
    // 50 viewers joined within 100 ms: one request went upstream.
    CHECK(ctx.keyframe_requests.size() == 1);
    CHECK(ctx.keyframe_requests[0].first == ep(1));
    CHECK(ctx.keyframe_requests[0].second == 100);
    // Viewers' own PLIs within the window are absorbed too.
    std::array<std::uint8_t, 64> pli;
    const auto n = rtp::rtcp::write_pli(42, 100, pli);
    REQUIRE(n > 0);
    for (int i = 0; i < 10; ++i) s.on_rtcp(ctx, rtp::bytes_view(pli.data(), n), ep(100));
    CHECK(ctx.keyframe_requests.size() == 1);
    CHECK(s.stats().keyframe_requests_suppressed >= 10);
    // While someone still waits for a keyframe the timer asks again, once the window passed.
    ctx.t += 150ms;
    s.on_timer(ctx);
    CHECK(ctx.keyframe_requests.size() == 1);
    ctx.t += 100ms;
    s.on_timer(ctx);
    CHECK(ctx.keyframe_requests.size() == 2);
    // Once a keyframe went out nobody waits: no more requests.
    std::uint16_t seq = 1;
    for (auto& p : onair_test::packetize<rtp::vp8_payload>(onair_test::fake_vp8_frame(true, 0), 100, seq)) feed(s, ctx, p, ep(1));
    ctx.t += 1s;
    s.on_timer(ctx);
    CHECK(ctx.keyframe_requests.size() == 2);
}

TEST_CASE("sfu: a PLI from a non-subscriber is ignored") {
    relay::sfu s;
    fake_context ctx;
    s.on_session(ctx, hello(rtp::session_type::publish, "cam", 100, 101), ep(1));
    std::array<std::uint8_t, 64> pli;
    const auto n = rtp::rtcp::write_pli(42, 100, pli);
    s.on_rtcp(ctx, rtp::bytes_view(pli.data(), n), ep(55));
    CHECK(ctx.keyframe_requests.empty());
}

TEST_CASE("sfu: silent subscribers and publishers time out; fixed targets do not") {
    relay::sfu s;
    fake_context ctx;
    s.add_forward("cam", ep(5000), ep(5002));
    s.on_session(ctx, hello(rtp::session_type::publish, "cam", 100, 101), ep(1));
    s.on_session(ctx, hello(rtp::session_type::play, "cam"), ep(10));
    REQUIRE(s.find("cam")->subscribers.size() == 2);
    ctx.t += 5s;
    s.on_session(ctx, hello(rtp::session_type::publish, "cam", 100, 101), ep(1)); // keepalive
    ctx.t += 6s;
    s.on_timer(ctx);
    REQUIRE(s.find("cam") != nullptr);
    CHECK(s.find("cam")->live);
    CHECK(s.find("cam")->subscribers.size() == 1); // the viewer went silent
    CHECK(s.find("cam")->subscribers[0].fixed);
    ctx.t += 11s;
    s.on_timer(ctx);
    REQUIRE(s.find("cam") != nullptr); // kept for its fixed target
    CHECK_FALSE(s.find("cam")->live);
    // Its SSRCs are free again: another publisher may take the name.
    s.on_session(ctx, hello(rtp::session_type::publish, "cam", 300, 301), ep(3));
    CHECK(ctx.sessions.back().second.status == rtp::session_status::ok);
}

TEST_CASE("sfu: a publisher may not claim another stream's SSRC") {
    relay::sfu s;
    fake_context ctx;
    s.on_session(ctx, hello(rtp::session_type::publish, "a", 100, 101), ep(1));
    s.on_session(ctx, hello(rtp::session_type::publish, "b", 100, 201), ep(2));
    CHECK(ctx.sessions.back().second.status == rtp::session_status::invalid);
}

TEST_CASE("sfu: streams with plain-RTP targets get a keyframe at least every forward_keyframe_interval") {
    relay::sfu_config cfg;
    cfg.forward_keyframe_interval = 2s;
    relay::sfu s(cfg);
    fake_context ctx;
    s.add_forward("cam", ep(5000), ep(5002));
    s.on_session(ctx, hello(rtp::session_type::publish, "cam", 100, 101), ep(1));
    s.on_timer(ctx);
    REQUIRE(ctx.keyframe_requests.size() == 1); // the target waits for its first keyframe
    std::uint16_t seq = 1;
    for (auto& p : onair_test::packetize<rtp::vp8_payload>(onair_test::fake_vp8_frame(true, 0), 100, seq)) feed(s, ctx, p, ep(1));
    ctx.t += 1900ms;
    s.on_session(ctx, hello(rtp::session_type::publish, "cam", 100, 101), ep(1)); // keepalive
    s.on_timer(ctx);
    CHECK(ctx.keyframe_requests.size() == 1);
    ctx.t += 200ms;
    s.on_timer(ctx);
    CHECK(ctx.keyframe_requests.size() == 2);

    // Without fixed targets there is no periodic refresh.
    relay::sfu plain(cfg);
    fake_context ctx2;
    plain.on_session(ctx2, hello(rtp::session_type::publish, "cam", 100, 101), ep(1));
    plain.on_session(ctx2, hello(rtp::session_type::play, "cam"), ep(10));
    seq = 1;
    for (auto& p : onair_test::packetize<rtp::vp8_payload>(onair_test::fake_vp8_frame(true, 0), 100, seq)) feed(plain, ctx2, p, ep(1));
    const auto before = ctx2.keyframe_requests.size();
    for (int i = 0; i < 5; ++i) {
        ctx2.t += 1s;
        plain.on_session(ctx2, hello(rtp::session_type::publish, "cam", 100, 101), ep(1));
        plain.on_session(ctx2, hello(rtp::session_type::play, "cam"), ep(10));
        plain.on_timer(ctx2);
    }
    CHECK(ctx2.keyframe_requests.size() == before);
}

namespace {
std::vector<std::uint8_t> rtp_header_for_test(std::uint32_t ssrc, std::uint16_t seq) {
    rtp::header h;
    h.payload_type = 97;
    h.sequence = seq;
    h.ssrc = ssrc;
    std::vector<std::uint8_t> b(rtp::fixed_header_size);
    rtp::write_header(h, b);
    return b;
}
rtp::session_message hello_rtx(const std::string& name) {
    auto m = hello(rtp::session_type::publish, name, 100, 101);
    m.stream.video_rtx_ssrc = 102;
    m.stream.video_rtx_pt = 97;
    return m;
}
} // namespace

TEST_CASE("sfu: a subscriber's NACK is answered from the cache with an RTX packet on its own leg") {
    relay::sfu s;
    fake_context ctx;
    s.on_session(ctx, hello_rtx("cam"), ep(1));
    s.on_session(ctx, hello(rtp::session_type::play, "cam"), ep(10));
    s.on_session(ctx, hello(rtp::session_type::play, "cam"), ep(11));
    std::uint16_t seq = 500;
    auto key = onair_test::packetize<rtp::vp8_payload>(onair_test::fake_vp8_frame(true, 0, 5000), 100, seq);
    REQUIRE(key.size() >= 3);
    for (auto& p : key) feed(s, ctx, p, ep(1));
    ctx.sends.clear();

    std::array<std::uint8_t, 64> nack;
    const std::array<std::uint16_t, 2> lost{501, 502};
    const auto n = rtp::rtcp::write_nack(4242, 100, lost, nack);
    s.on_rtcp(ctx, rtp::bytes_view(nack.data(), n), ep(10));
    REQUIRE(ctx.sends.size() == 2);
    for (std::size_t i = 0; i < 2; ++i) {
        CHECK(ctx.sends[i].to == ep(10)); // only the subscriber that asked
        rtp::packet_view r;
        REQUIRE_FALSE(rtp::parse(ctx.sends[i].bytes, r));
        CHECK(r.ssrc == 102);
        CHECK(r.payload_type == 97);
        CHECK(r.sequence == i); // this leg's RTX numbering starts at 0
        // OSN, then the original payload byte for byte.
        CHECK(rtp::load_be16(r.payload.data()) == lost[i]);
        rtp::packet_view orig;
        REQUIRE_FALSE(rtp::parse(key[1 + i], orig));
        CHECK(std::equal(orig.payload.begin(), orig.payload.end(), r.payload.begin() + 2, r.payload.end()));
    }
    CHECK(s.stats().retransmissions == 2);
    // Another subscriber's request for the same packets is answered too, on its numbering.
    s.on_rtcp(ctx, rtp::bytes_view(nack.data(), n), ep(11));
    CHECK(ctx.sends.size() == 4);
    CHECK(ctx.sends[2].to == ep(11));
    // A NACK from someone who is not a subscriber gets nothing.
    s.on_rtcp(ctx, rtp::bytes_view(nack.data(), n), ep(99));
    CHECK(ctx.sends.size() == 4);
}

TEST_CASE("sfu: the copies of a subscriber's NACK are answered once, its retry again") {
    // On lossy paths a viewer sends each NACK twice (or three times) back to back: the relay
    // answers the request once per subscriber, not once per copy (every answer is itself
    // sent repair_copies() times). A retry from the subscriber comes 20 ms or more later and
    // is answered again; another subscriber's request for the same packet is its own.
    relay::sfu s;
    fake_context ctx;
    s.on_session(ctx, hello_rtx("cam"), ep(1));
    s.on_session(ctx, hello(rtp::session_type::play, "cam"), ep(10));
    s.on_session(ctx, hello(rtp::session_type::play, "cam"), ep(11));
    std::uint16_t seq = 500;
    auto key = onair_test::packetize<rtp::vp8_payload>(onair_test::fake_vp8_frame(true, 0, 5000), 100, seq);
    REQUIRE(key.size() >= 3);
    for (auto& p : key) feed(s, ctx, p, ep(1));
    ctx.sends.clear();

    std::array<std::uint8_t, 64> nack;
    const std::array<std::uint16_t, 2> lost{501, 502};
    const auto n = rtp::rtcp::write_nack(4242, 100, lost, nack);
    s.on_rtcp(ctx, rtp::bytes_view(nack.data(), n), ep(10));
    REQUIRE(ctx.sent_to(ep(10)) == 2);
    ctx.t += 3ms; // the second copy, a little behind the first
    s.on_rtcp(ctx, rtp::bytes_view(nack.data(), n), ep(10));
    CHECK(ctx.sent_to(ep(10)) == 2);
    CHECK(s.stats().retransmissions == 2);
    CHECK(s.stats().retransmissions_suppressed == 2);
    // The other subscriber's request is not a copy of this one.
    s.on_rtcp(ctx, rtp::bytes_view(nack.data(), n), ep(11));
    CHECK(ctx.sent_to(ep(11)) == 2);
    // The subscriber's retry (its answer was lost) is answered again.
    ctx.t += 20ms;
    s.on_rtcp(ctx, rtp::bytes_view(nack.data(), n), ep(10));
    CHECK(ctx.sent_to(ep(10)) == 4);
    CHECK(s.stats().retransmissions == 6);
    CHECK(s.stats().retransmissions_limited == 0);
}

TEST_CASE("sfu: a hole on the host leg is NACKed upstream and the RTX is restored and forwarded") {
    relay::sfu s;
    fake_context ctx;
    s.on_session(ctx, hello_rtx("cam"), ep(1));
    s.on_session(ctx, hello(rtp::session_type::play, "cam"), ep(10));
    std::uint16_t seq = 65534; // the hole sits across the wrap
    auto key = onair_test::packetize<rtp::vp8_payload>(onair_test::fake_vp8_frame(true, 0, 5000), 100, seq);
    REQUIRE(key.size() >= 4);
    for (std::size_t i = 0; i < key.size(); ++i)
        if (i != 2) feed(s, ctx, key[i], ep(1)); // seq 0 lost on the way in
    ctx.sends.clear();
    s.on_timer(ctx);
    // The timer asked the publisher for sequence number 0.
    std::vector<std::uint16_t> asked;
    for (auto& sent : ctx.sends) {
        if (sent.to != ep(1)) continue;
        rtp::rtcp::parse_counts counts;
        rtp::rtcp::parse_compound(sent.bytes, [&](const rtp::rtcp::nack& nk) {
            CHECK(nk.media_ssrc == 100);
            nk.for_each([&](std::uint16_t q) { asked.push_back(q); });
        }, counts);
    }
    CHECK(asked == std::vector<std::uint16_t>{0});

    // The host answers with RTX (OSN 0); the relay forwards the original packet.
    rtp::packet_view orig;
    REQUIRE_FALSE(rtp::parse(key[2], orig));
    std::array<std::uint8_t, 1500> rtx;
    const auto n = qos::write_rtx(orig, 102, 97, 7, rtx);
    ctx.sends.clear();
    feed(s, ctx, std::vector<std::uint8_t>(rtx.begin(), rtx.begin() + static_cast<std::ptrdiff_t>(n)), ep(1));
    REQUIRE(ctx.sends.size() == 1);
    CHECK(ctx.sends[0].to == ep(10));
    CHECK(ctx.sends[0].bytes == key[2]);
    CHECK(s.stats().upstream_recovered == 1);
    // The same RTX again fills no hole: dropped as a duplicate (repairs may come twice).
    const auto dups = s.stats().duplicates;
    feed(s, ctx, std::vector<std::uint8_t>(rtx.begin(), rtx.begin() + static_cast<std::ptrdiff_t>(n)), ep(1));
    CHECK(ctx.sends.size() == 1);
    CHECK(s.stats().duplicates == dups + 1);
    CHECK(s.stats().unsolicited_rtx == 0);
    // An RTX without an OSN is counted and dropped.
    std::vector<std::uint8_t> bad{0x80, 97, 0, 9, 0, 0, 0, 0, 0, 0, 0, 102, 0x01};
    feed(s, ctx, bad, ep(1));
    CHECK(s.stats().malformed_rtx == 1);
    CHECK(ctx.sends.size() == 1);
}

TEST_CASE("sfu: hostile NACKs and RTX never crash it or corrupt its retransmission cache") {
    relay::sfu s;
    fake_context ctx;
    s.on_session(ctx, hello_rtx("cam"), ep(1));
    s.on_session(ctx, hello(rtp::session_type::play, "cam"), ep(10));
    std::uint16_t seq = 1000;
    auto key = onair_test::packetize<rtp::vp8_payload>(onair_test::fake_vp8_frame(true, 0, 6000), 100, seq);
    for (auto& p : key) feed(s, ctx, p, ep(1));

    std::mt19937 rng(77);
    for (int i = 0; i < 20000; ++i) {
        // Random RTCP-looking bytes from the subscriber: NACK headers with random lengths and FCI.
        std::vector<std::uint8_t> b(std::uniform_int_distribution<std::size_t>(0, 80)(rng));
        for (auto& x : b) x = static_cast<std::uint8_t>(rng());
        if (b.size() >= 12) {
            b[0] = static_cast<std::uint8_t>(0x81 | (rng() & 0x40)); // V=2, FMT=1 (sometimes P set)
            b[1] = 205;                                              // RTPFB
            rtp::store_be32(&b[8], 100);                             // media SSRC: the stream's video
        }
        s.on_rtcp(ctx, b, ep(10));
        // Random "RTX" from the publisher: RTX SSRC, payload of any length.
        std::vector<std::uint8_t> r = rtp_header_for_test(102, static_cast<std::uint16_t>(rng()));
        r.resize(r.size() + std::uniform_int_distribution<std::size_t>(0, 40)(rng));
        for (std::size_t k = 12; k < r.size(); ++k) r[k] = static_cast<std::uint8_t>(rng());
        if (r.size() >= 14) { r[12] = 0xff; r[13] = static_cast<std::uint8_t>(rng()); } // OSN far from the stream's
        feed(s, ctx, r, ep(1));
    }
    CHECK(s.stats().malformed_rtcp > 0);
    CHECK(s.stats().malformed_rtx > 0);
    CHECK(s.stats().unsolicited_rtx > 0);
    // The cache still answers with the original bytes of every packet it held.
    ctx.sends.clear();
    std::array<std::uint8_t, 64> nack;
    for (std::size_t i = 0; i < key.size(); ++i) {
        const std::array<std::uint16_t, 1> lost{static_cast<std::uint16_t>(1000 + i)};
        const auto n = rtp::rtcp::write_nack(4242, 100, lost, nack);
        ctx.sends.clear();
        s.on_rtcp(ctx, rtp::bytes_view(nack.data(), n), ep(10));
        REQUIRE(ctx.sends.size() == 1);
        rtp::packet_view r, orig;
        REQUIRE_FALSE(rtp::parse(ctx.sends[0].bytes, r));
        REQUIRE_FALSE(rtp::parse(key[i], orig));
        CHECK(rtp::load_be16(r.payload.data()) == lost[0]);
        CHECK(std::equal(orig.payload.begin(), orig.payload.end(), r.payload.begin() + 2, r.payload.end()));
    }
}
