// relay::cascade: streams pulled hop by hop between relay nodes, in simulated time. The
// nodes are cascade policies on a switchboard that parses each datagram as a relay node
// does; clients are addresses whose datagrams are kept.
#include <onair/relay/cascade.hpp>

#include "support/rtp_builders.hpp"

#include <onair/qos/rtx.hpp>
#include <onair/rtp/rtcp.hpp>
#include <onair/rtp/vp8.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <vector>

using namespace onair;
using namespace std::chrono_literals;
using relay::endpoint;

namespace {

using packet = std::vector<std::uint8_t>;
constexpr std::uint32_t video_ssrc = 100, audio_ssrc = 101, video_rtx = 102;
constexpr const char* secret = "cluster-secret";

endpoint ep(unsigned short port) { return {asio::ip::make_address_v4("127.0.0.1"), port}; }

struct datagram {
    endpoint from, to;
    packet bytes;
};

packet_pool& pool() { // outlives every policy here (they keep packets in their caches)
    static packet_pool p;
    return p;
}

/// Relay nodes and clients on one switchboard; time is simulated.
struct mesh {
    std::chrono::steady_clock::time_point t = std::chrono::steady_clock::time_point{} + 1h;
    std::deque<datagram> queue;
    std::map<endpoint, std::unique_ptr<relay::cascade>> nodes;
    std::map<endpoint, std::vector<datagram>> inbox;      // what clients received
    std::vector<datagram> wire;                           // every datagram delivered
    std::function<bool(const datagram&)> drop;            // true: lost on the way
    std::map<endpoint, std::vector<std::string>> missing; // on_missing calls per node

    struct context {
        mesh& m;
        endpoint self;
        void send(const endpoint& to, rtp::bytes_view b) { m.queue.push_back({self, to, {b.begin(), b.end()}}); }
        void send(const endpoint& to, rtp::bytes_view head, rtp::bytes_view tail) {
            packet p(head.begin(), head.end());
            p.insert(p.end(), tail.begin(), tail.end());
            m.queue.push_back({self, to, std::move(p)});
        }
        void send_session(const endpoint& to, const rtp::session_message& msg) {
            std::array<std::uint8_t, 1024> buf;
            if (const auto n = rtp::write_session_message(msg, buf)) send(to, {buf.data(), n});
        }
        void request_keyframe(const endpoint& to, std::uint32_t ssrc) {
            std::array<std::uint8_t, 64> buf;
            if (const auto n = rtp::rtcp::write_pli(0x6f6e6169, ssrc, buf)) send(to, {buf.data(), n});
        }
        void deliver(const rtp::stream_description&, media_kind, const rtp::packet_view&) {}
        std::chrono::steady_clock::time_point now() const { return m.t; }
        packet_ref acquire() { return pool().acquire(); }
    };

    relay::cascade& add(const endpoint& at, relay::cascade_config cfg = {}) {
        if (cfg.secret.empty()) cfg.secret = secret;
        cfg.on_missing = [this, at](const std::string& s) { missing[at].push_back(s); };
        return *nodes.emplace(at, std::make_unique<relay::cascade>(std::move(cfg))).first->second;
    }
    relay::cascade& at(const endpoint& e) { return *nodes.at(e); }

    void inject(const endpoint& from, const endpoint& to, const packet& bytes) { queue.push_back({from, to, bytes}); }
    void inject_session(const endpoint& from, const endpoint& to, const rtp::session_message& m) {
        context{*this, from}.send_session(to, m);
    }

    /// Delivers until nothing is in flight (relays answer at once: no time passes).
    void run() {
        for (std::size_t guard = 0; !queue.empty() && guard < 1'000'000; ++guard) {
            datagram d = std::move(queue.front());
            queue.pop_front();
            if (drop && drop(d)) continue;
            wire.push_back(d);
            auto n = nodes.find(d.to);
            if (n == nodes.end()) {
                inbox[d.to].push_back(std::move(d));
                continue;
            }
            context ctx{*this, d.to};
            const rtp::bytes_view b(d.bytes.data(), d.bytes.size());
            if (rtp::is_rtcp(b)) {
                rtp::session_message m;
                if (rtp::is_session_message(b)) {
                    if (!rtp::parse_session_message(b, m)) n->second->on_session(ctx, m, d.from);
                } else {
                    n->second->on_rtcp(ctx, b, d.from);
                }
                continue;
            }
            packet_ref buf = pool().acquire();
            std::copy(d.bytes.begin(), d.bytes.end(), buf.capacity().begin());
            buf.resize(d.bytes.size());
            rtp::packet_view p;
            if (!rtp::parse(buf.bytes(), p)) n->second->on_rtp(ctx, buf, p, d.from);
        }
    }
    /// `ms` of simulated time in node ticks of 10 ms.
    void advance(std::chrono::milliseconds ms) {
        for (auto left = ms; left > 0ms; left -= 10ms) {
            t += 10ms;
            for (auto& [e, n] : nodes) {
                context ctx{*this, e};
                n->on_timer(ctx);
            }
            run();
        }
    }

    /// Datagrams delivered from -> to (of any kind).
    std::size_t count(const endpoint& from, const endpoint& to, const std::function<bool(const packet&)>& what = {}) const {
        std::size_t n = 0;
        for (const auto& d : wire) n += d.from == from && d.to == to && (!what || what(d.bytes));
        return n;
    }
    /// RTP packets a client received on `ssrc`, in order of arrival.
    std::vector<rtp::packet_view> rtp_to(const endpoint& client, std::uint32_t ssrc) const {
        std::vector<rtp::packet_view> out;
        auto it = inbox.find(client);
        if (it == inbox.end()) return out;
        for (const auto& d : it->second) {
            rtp::packet_view p;
            if (!rtp::is_rtcp(d.bytes) && !rtp::parse(d.bytes, p) && p.ssrc == ssrc) out.push_back(p);
        }
        return out;
    }
};

bool is_rtp_of(const packet& b, std::uint32_t ssrc) {
    rtp::packet_view p;
    return !rtp::is_rtcp(b) && !rtp::parse(b, p) && p.ssrc == ssrc;
}
bool is_nack(const packet& b) {
    bool found = false;
    (void)rtp::rtcp::parse_compound(b, [&](const auto& x) {
        if constexpr (std::is_same_v<std::decay_t<decltype(x)>, rtp::rtcp::nack>) found = true;
    });
    return found;
}
bool is_session(const packet& b, rtp::session_type type) {
    rtp::session_message m;
    return rtp::is_session_message(b) && !rtp::parse_session_message(b, m) && m.type == type;
}
bool is_relay_hello(const packet& b) {
    rtp::session_message m;
    return rtp::is_session_message(b) && !rtp::parse_session_message(b, m) && m.type == rtp::session_type::play && m.relay_leg;
}

rtp::session_message publish_hello(const std::string& name) {
    rtp::session_message m;
    m.type = rtp::session_type::publish;
    m.stream.name = name;
    m.stream.video_ssrc = video_ssrc;
    m.stream.audio_ssrc = audio_ssrc;
    m.stream.video_codec = "VP8";
    m.stream.audio_codec = "opus";
    m.stream.video_rtx_ssrc = video_rtx;
    m.stream.video_rtx_pt = 97;
    return m;
}
rtp::session_message play_hello(const std::string& name) {
    rtp::session_message m;
    m.type = rtp::session_type::play;
    m.stream.name = name;
    return m;
}

/// A publisher's VP8 stream: frame i is a key frame when i % 30 == 0.
struct publisher {
    endpoint self;
    std::uint16_t seq = 1000;
    std::uint32_t ts = 0;
    int frame = 0;
    rtp::vp8_payload::packetizer pk;
    std::vector<packet> next_frame() {
        auto f = onair_test::fake_vp8_frame(frame % 30 == 0, ts, 2500);
        ++frame;
        ts += 3000;
        return onair_test::packetize<rtp::vp8_payload>(pk, f, video_ssrc, seq);
    }
    void send_frames(mesh& m, const endpoint& relay, int frames) {
        for (int i = 0; i < frames; ++i) {
            for (auto& p : next_frame()) m.inject(self, relay, p);
            m.run();
            m.advance(30ms);
        }
    }
};

const endpoint P = ep(1), A = ep(5000), B = ep(5001), C = ep(5002);

/// P publishes "cam" at A; the listed viewers play it at B, which is told the route.
void start_two_hops(mesh& m, const std::vector<endpoint>& viewers) {
    m.add(A);
    m.add(B);
    m.inject_session(P, A, publish_hello("cam"));
    for (const auto& v : viewers) m.inject_session(v, B, play_hello("cam"));
    m.run();
    m.advance(10ms);
}

} // namespace

TEST_CASE("cascade: a stream played at another node is pulled once, however many watch it there") {
    mesh m;
    const std::vector<endpoint> viewers{ep(10), ep(11), ep(12)};
    start_two_hops(m, viewers);
    // B asked where the stream is (once, not once per viewer) and is told: from A.
    REQUIRE(m.missing[B] == std::vector<std::string>{"cam"});
    CHECK(m.missing[A].empty());
    m.at(B).set_route("cam", {A});
    m.advance(20ms);
    CHECK(m.count(B, A, is_relay_hello) == 1);
    CHECK(m.at(B).cascade_counters().adopted == 1);
    CHECK(m.at(A).cascade_counters().relay_legs == 1);
    // The viewers were told the stream's description when B adopted it.
    for (const auto& v : viewers) {
        bool told = false;
        for (const auto& d : m.inbox[v]) {
            rtp::session_message s;
            told |= rtp::is_session_message(d.bytes) && !rtp::parse_session_message(d.bytes, s) &&
                    s.status == rtp::session_status::ok && s.stream.video_ssrc == video_ssrc;
        }
        CHECK(told);
    }

    publisher pub;
    pub.self = P;
    pub.send_frames(m, A, 60);
    const std::size_t published = m.count(P, A, [](const packet& b) { return is_rtp_of(b, video_ssrc); });
    REQUIRE(published > 100);
    // One copy of each packet crosses A -> B; B serves each viewer.
    CHECK(m.count(A, B, [](const packet& b) { return is_rtp_of(b, video_ssrc); }) == published);
    CHECK(m.at(A).forwarding().subscriber_count("cam") == 1);
    CHECK(m.at(B).forwarding().subscriber_count("cam") == 3);
    CHECK(m.at(B).pull_count() == 1);
    for (const auto& v : viewers) {
        const auto got = m.rtp_to(v, video_ssrc);
        REQUIRE(!got.empty());
        // From a key frame on, in the publisher's order, without holes.
        CHECK(rtp::starts_keyframe(rtp::video_format::vp8, got.front().payload));
        for (std::size_t i = 1; i < got.size(); ++i) CHECK(got[i].sequence == static_cast<std::uint16_t>(got[i - 1].sequence + 1));
        CHECK(got.back().sequence == static_cast<std::uint16_t>(pub.seq - 1));
    }
    // Hellos repeat while the pull lasts (the upstream would drop a silent leg).
    CHECK(m.count(B, A, is_relay_hello) >= 3);
}

TEST_CASE("cascade: the hello names the rest of the route, and each hop pulls from its own previous hop") {
    mesh m;
    m.add(A);
    m.add(B);
    m.add(C);
    m.inject_session(P, A, publish_hello("cam"));
    m.inject_session(ep(10), B, play_hello("cam"));
    m.run();
    m.at(B).set_route("cam", {C, A});
    m.advance(30ms);
    CHECK(m.count(B, C, is_relay_hello) >= 1);
    CHECK(m.count(C, A, is_relay_hello) >= 1);
    CHECK(m.count(B, A, is_relay_hello) == 0);
    CHECK(m.missing[C].empty()); // the route came with the hello
    REQUIRE(m.at(C).upstream_of("cam"));
    CHECK(*m.at(C).upstream_of("cam") == A);

    publisher pub;
    pub.self = P;
    pub.send_frames(m, A, 40);
    const std::size_t published = m.count(P, A, [](const packet& b) { return is_rtp_of(b, video_ssrc); });
    CHECK(m.count(A, C, [](const packet& b) { return is_rtp_of(b, video_ssrc); }) == published);
    CHECK(m.count(C, B, [](const packet& b) { return is_rtp_of(b, video_ssrc); }) == published);
    CHECK(m.count(A, B, [](const packet& b) { return is_rtp_of(b, video_ssrc); }) == 0);
    const auto got = m.rtp_to(ep(10), video_ssrc);
    REQUIRE(got.size() > 50);
    CHECK(got.back().sequence == static_cast<std::uint16_t>(pub.seq - 1));
}

TEST_CASE("cascade: a packet lost between nodes is repaired by the upstream node, not the publisher") {
    mesh m;
    start_two_hops(m, {ep(10)});
    m.at(B).set_route("cam", {A});
    m.advance(20ms);
    publisher pub;
    pub.self = P;
    pub.send_frames(m, A, 5);
    // Lose two packets A -> B, and one B -> viewer.
    std::set<std::uint16_t> lose_ab{static_cast<std::uint16_t>(pub.seq + 3), static_cast<std::uint16_t>(pub.seq + 4)};
    const auto lose_bv = static_cast<std::uint16_t>(pub.seq + 9);
    bool bv_dropped = false;
    m.drop = [&](const datagram& d) {
        rtp::packet_view p;
        if (rtp::is_rtcp(d.bytes) || rtp::parse(d.bytes, p) || p.ssrc != video_ssrc) return false;
        if (d.from == A && d.to == B && lose_ab.erase(p.sequence)) return true;
        if (d.from == B && d.to == ep(10) && p.sequence == lose_bv && !bv_dropped) return bv_dropped = true;
        return false;
    };
    pub.send_frames(m, A, 20);
    CHECK(lose_ab.empty());
    CHECK(bv_dropped);
    // B asked A; the publisher was never asked.
    CHECK(m.at(B).stats().upstream_nacks >= 2);
    CHECK(m.at(B).stats().upstream_recovered == 2);
    CHECK(m.at(A).stats().retransmissions >= 2);
    CHECK(m.count(A, P, [](const packet& b) { return is_nack(b); }) == 0);
    CHECK(m.count(B, P) == 0); // B never talks to the publisher at all
    // The viewer's own loss was answered by B from its cache (the viewer's NACK, played by
    // hand, reaches B only).
    std::array<std::uint8_t, 64> nack;
    const std::uint16_t lost[] = {lose_bv};
    const auto n = rtp::rtcp::write_nack(0x1234, video_ssrc, lost, nack);
    const auto a_retransmissions = m.at(A).stats().retransmissions;
    m.inject(ep(10), B, packet(nack.begin(), nack.begin() + static_cast<std::ptrdiff_t>(n)));
    m.run();
    CHECK(m.at(A).stats().retransmissions == a_retransmissions);
    bool repaired = false;
    for (const auto& p : m.rtp_to(ep(10), video_rtx)) {
        std::array<std::uint8_t, 1500> orig;
        std::size_t len = 0;
        if (!qos::restore_rtx(p, video_ssrc, 96, orig, len)) {
            rtp::packet_view o;
            repaired |= !rtp::parse(rtp::bytes_view(orig.data(), len), o) && o.sequence == lose_bv;
        }
    }
    CHECK(repaired);
    // Key frame requests from B go to A, which answers them towards the publisher.
    const auto pli_before = m.at(A).stats().keyframe_requests + m.at(A).stats().keyframe_requests_suppressed;
    std::array<std::uint8_t, 64> pli;
    const auto pn = rtp::rtcp::write_pli(0x1234, video_ssrc, pli);
    m.advance(400ms);
    m.inject(ep(10), B, packet(pli.begin(), pli.begin() + static_cast<std::ptrdiff_t>(pn)));
    m.run();
    CHECK(m.at(A).stats().keyframe_requests + m.at(A).stats().keyframe_requests_suppressed > pli_before);
}

TEST_CASE("cascade: relay legs need the cluster's ticket for that stream") {
    mesh m;
    m.add(A);
    m.inject_session(P, A, publish_hello("cam"));
    m.run();
    auto relay_play = [](std::string ticket, std::string stream = "cam") {
        auto h = play_hello(stream);
        h.relay_leg = true;
        h.ticket = std::move(ticket);
        return h;
    };
    const auto now = control::unix_now();
    m.inject_session(ep(20), A, relay_play(""));
    m.inject_session(ep(21), A, relay_play(relay::cascade_ticket("other-secret", "cam", now)));
    m.inject_session(ep(22), A, relay_play(relay::cascade_ticket(secret, "other-stream", now)));
    m.inject_session(ep(23), A, relay_play(relay::cascade_ticket(secret, "cam", now - 600)));
    m.run();
    CHECK(m.at(A).cascade_counters().relay_refused == 4);
    CHECK(m.at(A).forwarding().subscriber_count("cam") == 0);
    for (unsigned short port = 20; port <= 23; ++port) {
        REQUIRE(m.inbox[ep(port)].size() == 1);
        rtp::session_message s;
        REQUIRE_FALSE(rtp::parse_session_message(m.inbox[ep(port)][0].bytes, s));
        CHECK(s.status == rtp::session_status::unauthorized);
    }
    CHECK(relay::valid_cascade_ticket(secret, "cam", relay::cascade_ticket(secret, "cam", now - 59), now));
    m.inject_session(ep(24), A, relay_play(relay::cascade_ticket(secret, "cam", now)));
    m.run();
    CHECK(m.at(A).forwarding().subscriber_count("cam") == 1);
}

TEST_CASE("cascade: a route that changes moves the pull; the stream goes on without renumbering") {
    mesh m;
    start_two_hops(m, {ep(10)});
    m.add(C);
    m.at(B).set_route("cam", {A});
    m.advance(20ms);
    publisher pub;
    pub.self = P;
    pub.send_frames(m, A, 20);
    const auto before = m.rtp_to(ep(10), video_ssrc).size();
    REQUIRE(before > 20);

    m.at(B).set_route("cam", {C, A});
    m.advance(20ms);
    CHECK(m.count(B, A, [](const packet& b) { return is_session(b, rtp::session_type::leave); }) == 1);
    CHECK(m.at(A).forwarding().subscriber_count("cam") == 1); // C now, not B
    REQUIRE(m.at(B).upstream_of("cam"));
    CHECK(*m.at(B).upstream_of("cam") == C);
    CHECK(m.at(B).cascade_counters().upstream_switches == 1);
    const auto a_to_b = m.count(A, B, [](const packet& b) { return is_rtp_of(b, video_ssrc); });
    pub.send_frames(m, A, 40);
    CHECK(m.count(A, B, [](const packet& b) { return is_rtp_of(b, video_ssrc); }) == a_to_b); // nothing direct any more
    const auto got = m.rtp_to(ep(10), video_ssrc);
    REQUIRE(got.size() > before + 40);
    // One sequence throughout: what the switch lost is a hole, not a renumbering.
    for (std::size_t i = 1; i < got.size(); ++i) {
        const auto step = static_cast<std::int16_t>(got[i].sequence - got[i - 1].sequence);
        CHECK(step >= 1);
        CHECK(step < 50);
    }
    CHECK(got.back().sequence == static_cast<std::uint16_t>(pub.seq - 1));
}

TEST_CASE("cascade: an upstream that stops answering is asked about again; an unwatched pull is released") {
    mesh m;
    start_two_hops(m, {ep(10)});
    m.at(B).set_route("cam", {A});
    m.advance(20ms);
    REQUIRE(m.missing[B].size() == 1);
    // A goes silent (everything from A is lost): B asks where the stream is again.
    m.drop = [](const datagram& d) { return d.from == A; };
    m.advance(2500ms);
    CHECK(m.missing[B].size() >= 2);
    m.drop = {};
    m.advance(100ms);
    // The viewer leaves; after idle_timeout B releases the pull, and A drops its leg.
    rtp::session_message leave;
    leave.type = rtp::session_type::leave;
    leave.stream.name = "cam";
    m.inject_session(ep(10), B, leave);
    m.run();
    m.advance(5100ms);
    CHECK(m.at(B).pull_count() == 0);
    CHECK(m.at(B).cascade_counters().released == 1);
    CHECK(m.count(B, A, [](const packet& b) { return is_session(b, rtp::session_type::leave); }) >= 1);
    CHECK(m.at(A).forwarding().subscriber_count("cam") == 0);
    // A client publishing at B itself is never pulled.
    m.inject_session(ep(2), B, publish_hello("local"));
    m.inject_session(ep(11), B, play_hello("local"));
    m.run();
    m.advance(50ms);
    CHECK(m.at(B).pull_count() == 0);
    CHECK(m.at(B).origin_streams() == std::vector<std::string>{"local"});
}

TEST_CASE("cascade: a relay leg gets every simulcast encoding, and repairs of the lower ones") {
    mesh m;
    m.add(A);
    m.add(B);
    auto h = publish_hello("sim");
    h.stream.video_lower_ssrcs = {200, 0};
    h.stream.video_lower_rtx_ssrcs = {202, 0};
    m.inject_session(P, A, h);
    m.inject_session(ep(10), B, play_hello("sim"));
    m.run();
    m.at(B).set_route("sim", {A});
    m.advance(20ms);
    std::uint16_t top = 100, low = 5000;
    rtp::vp8_payload::packetizer pk_top, pk_low;
    const std::uint16_t lose = 5000 + 12; // a lower-encoding packet lost between A and B
    bool dropped = false;
    m.drop = [&](const datagram& d) {
        rtp::packet_view p;
        if (d.from != A || d.to != B || rtp::is_rtcp(d.bytes) || rtp::parse(d.bytes, p) || p.ssrc != 200) return false;
        if (p.sequence == lose && !dropped) return dropped = true;
        return false;
    };
    for (int i = 0; i < 20; ++i) {
        for (auto& p : onair_test::packetize<rtp::vp8_payload>(pk_top, onair_test::fake_vp8_frame(i == 0, 3000u * i, 2000), video_ssrc, top))
            m.inject(P, A, p);
        for (auto& p : onair_test::packetize<rtp::vp8_payload>(pk_low, onair_test::fake_vp8_frame(i == 0, 3000u * i, 600), 200, low))
            m.inject(P, A, p);
        m.run();
        m.advance(30ms);
    }
    REQUIRE(dropped);
    // Every packet of both encodings crossed once (the lost one again, as RTX).
    CHECK(m.count(A, B, [](const packet& b) { return is_rtp_of(b, 200); }) == static_cast<std::size_t>(low - 5000) - 1);
    CHECK(m.count(A, B, [](const packet& b) { return is_rtp_of(b, video_ssrc); }) == static_cast<std::size_t>(top - 100));
    CHECK(m.count(A, B, [](const packet& b) { return is_rtp_of(b, 202); }) >= 1);
    CHECK(m.at(B).stats().upstream_recovered == 1);
    CHECK(m.count(A, P, [](const packet& b) { return is_nack(b); }) == 0);
    // The viewer at B is served by its own layer selection there (it started on the lowest).
    CHECK(m.rtp_to(ep(10), video_ssrc).size() > 10);
}

TEST_CASE("cascade: routes name advertised addresses; each node reaches a hop its own way") {
    mesh m;
    m.add(A);
    m.add(B);
    m.add(C);
    const endpoint X = ep(7000); // B's way to C (say, an emulated link in front of C)
    m.at(B).set_reach({{C, X}});
    m.inject_session(ep(10), B, play_hello("cam"));
    m.run();
    m.at(B).set_route("cam", {C, A});
    m.advance(20ms);
    CHECK(m.count(B, C, is_relay_hello) == 0);
    REQUIRE(m.inbox[X].size() >= 1);
    rtp::session_message h;
    REQUIRE_FALSE(rtp::parse_session_message(m.inbox[X].front().bytes, h));
    CHECK(h.relay_leg);
    CHECK(h.route == transport::to_address(A)); // the advertised address, not B's way to it
    CHECK(*m.at(B).upstream_of("cam") == C);
    CHECK(m.at(B).reach(C) == X);
    CHECK(m.at(B).reach(A) == A);
}
