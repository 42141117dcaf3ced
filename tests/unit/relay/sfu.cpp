#include <onair/relay/sfu.hpp>

#include "support/rtp_builders.hpp"

#include <onair/rtp/rtcp.hpp>
#include <onair/rtp/opus.hpp>
#include <onair/rtp/vp8.hpp>

#include <doctest/doctest.h>

#include <chrono>
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
    void send_session(const endpoint& to, const rtp::session_message& m) { sessions.emplace_back(to, m); }
    void request_keyframe(const endpoint& p, std::uint32_t ssrc) { keyframe_requests.emplace_back(p, ssrc); }
    void deliver(const rtp::stream_description&, media_kind, const rtp::packet_view&) { ++delivered; }
    std::chrono::steady_clock::time_point now() const { return t; }

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
    rtp::packet_view p;
    REQUIRE_FALSE(rtp::parse(pkt, p));
    s.on_rtp(ctx, packet_ref{}, p, from);
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
