// onair — relay::cascade: an sfu that also pulls streams from other relay nodes.
//
// A stream played here that no client publishes here is pulled from the previous hop of
// its route: the node sends that hop a play hello from its own media socket, marked as a
// relay leg, exactly as a viewer would, and the hop answers with the stream's description
// and forwards it. The stream is then live here with the upstream node as its publisher,
// so everything the sfu does per leg applies hop by hop: the node answers its subscribers'
// NACKs from its own cache and asks the upstream for what the inter-node leg lost; key
// frame requests, receiver reports and transport-wide feedback go to the upstream, which
// terminates them like any subscriber's. Payloads are never decoded.
//
// One upstream subscription per stream per node, whatever the number of its subscribers.
// A relay leg gets every encoding byte for byte (the publisher's numbers, its FlexFEC
// protection); layer selection happens at the edge that serves each viewer.
//
// Where a stream comes from is asked of the caller (on_missing; the dispatch center in
// onair-relay) or configured (static_routes), and answered with set_route: the hops from
// here towards the publisher, the next one first. The hello to the next hop carries the
// hops after it, so each node on the way pulls from its own previous hop. A route that
// changes moves the pull: the new hop gets a hello at once, the old one a leave, and the
// stream goes on from the new upstream (caches and subscribers' numbering kept, a key frame
// asked for). Hops are the addresses nodes advertise; set_reach maps one this node reaches
// another way (an emulated link, a NAT) to the address it sends to. A pulled stream nobody
// watches for idle_timeout is released.
//
// Relay legs are admitted with a cascade ticket: HMAC-SHA256 of the stream name and the
// minute, keyed with the cluster's secret (previous and next minute accepted too); they
// need no room ticket. Without a secret a relay leg is admitted like any play (a node that
// requires tickets then refuses it).
#pragma once

#include "onair/control/token.hpp"
#include "onair/relay/sfu.hpp"
#include "onair/transport/address.hpp"

#include <openssl/crypto.h>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

namespace onair::relay {

struct cascade_config {
    sfu_config sfu{};
    /// The cluster's secret: signs this node's relay-leg hellos and checks other nodes'.
    std::string secret;
    /// How often a pull's hello is repeated (the upstream drops a silent leg after its
    /// session_timeout).
    std::chrono::milliseconds hello_interval{500};
    /// A pulled stream with no subscriber here for this long is released upstream.
    std::chrono::milliseconds idle_timeout{5000};
    /// A stream without a route (or whose upstream has not acknowledged for twice this
    /// long) is asked for again at most this often.
    std::chrono::milliseconds locate_interval{1000};
    /// Asks where `stream` is published (on the node's thread); the answer comes back by
    /// set_route. Per stream, not per packet.
    std::function<void(const std::string& stream)> on_missing;
    /// Routes known in advance: stream -> hops towards its publisher, the next one first.
    std::map<std::string, std::vector<endpoint>> static_routes;
};

struct cascade_stats {
    std::uint64_t pulls = 0;             ///< upstream subscriptions started
    std::uint64_t upstream_switches = 0; ///< pulls moved to another hop (a route changed)
    std::uint64_t released = 0;          ///< pulls ended: nobody watched
    std::uint64_t hellos_sent = 0;       ///< relay-leg hellos sent upstream
    std::uint64_t adopted = 0;           ///< upstream acknowledgements that made (or moved) a stream live here
    std::uint64_t locate_requests = 0;   ///< on_missing calls
    std::uint64_t relay_legs = 0;        ///< relay-leg hellos admitted from other nodes
    std::uint64_t relay_refused = 0;     ///< relay-leg hellos without a valid cascade ticket
    std::uint64_t upstream_refused = 0;  ///< acknowledgements refusing this node's pull
    std::uint64_t bad_routes = 0;        ///< relay-leg hellos whose route did not parse
};

namespace detail {
inline std::string cascade_ticket_for(std::string_view secret, std::string_view stream, std::int64_t minute) {
    std::string data = "onair-cascade\n";
    data.append(stream);
    data += '\n';
    data += std::to_string(minute);
    const auto mac = control::detail::hmac_sha256(secret, data);
    return "c" + control::detail::base64url_encode(std::span<const std::uint8_t>(mac.data(), 24));
}
} // namespace detail

/// The ticket a relay-leg hello for `stream` carries at `unix_seconds`.
inline std::string cascade_ticket(std::string_view secret, std::string_view stream, std::int64_t unix_seconds) {
    return detail::cascade_ticket_for(secret, stream, unix_seconds / 60);
}

/// True when `ticket` is `stream`'s cascade ticket within a minute of `unix_seconds`.
inline bool valid_cascade_ticket(std::string_view secret, std::string_view stream, std::string_view ticket,
                                 std::int64_t unix_seconds) {
    if (ticket.size() != 33) return false;
    for (std::int64_t m = unix_seconds / 60 - 1; m <= unix_seconds / 60 + 1; ++m) {
        const std::string expected = detail::cascade_ticket_for(secret, stream, m);
        if (CRYPTO_memcmp(expected.data(), ticket.data(), expected.size()) == 0) return true;
    }
    return false;
}

/// "IP:PORT,IP:PORT" -> endpoints; false when any part does not parse or there are more
/// than `limit`.
inline bool parse_route(const std::string& text, std::vector<endpoint>& out, std::size_t limit = 8) {
    out.clear();
    std::size_t at = 0;
    while (at < text.size()) {
        const std::size_t comma = std::min(text.find(',', at), text.size());
        const auto e = transport::parse_address(text.substr(at, comma - at));
        if (!e || out.size() == limit) return false;
        out.push_back(*e);
        at = comma + 1;
        if (comma + 1 == text.size()) return false; // a trailing comma
    }
    return true;
}

inline std::string route_text(std::span<const endpoint> hops) {
    std::string s;
    for (const auto& e : hops) {
        if (!s.empty()) s += ',';
        s += transport::to_address(e);
    }
    return s;
}

/// An sfu that pulls what it does not have from other relay nodes.
///
/// Thread safety: owned by one relay node; called on its thread only (set_route too: post
/// it there).
class cascade {
public:
    using clock = std::chrono::steady_clock;

    cascade() : cascade(cascade_config{}) {}
    explicit cascade(cascade_config cfg) : cfg_(std::move(cfg)), sfu_(cfg_.sfu) {}

    /// The route of `stream` from here: hops towards its publisher, the next one first
    /// (empty: unknown, or published nowhere). Starts the pull if there is none.
    void set_route(const std::string& stream, std::vector<endpoint> hops) {
        pull& p = pulls_[stream];
        if (p.hops == hops) return;
        if (!p.hops.empty() && (hops.empty() || hops.front() != p.hops.front())) {
            if (p.confirmed) ++stats_.upstream_switches;
            p.leave_to.push_back(p.hops.front());
            p.confirmed = false;
            p.asked_since = p.last_ack = {};
        }
        p.hops = std::move(hops);
        p.last_hello = {}; // the new route goes out at the next tick
    }

    /// Advertised address -> the address this node sends to instead (replaces the map).
    void set_reach(std::map<endpoint, endpoint> reach) { reach_ = std::move(reach); }
    /// Where this node sends to reach the node advertising `advertised`.
    const endpoint& reach(const endpoint& advertised) const {
        auto it = reach_.find(advertised);
        return it == reach_.end() ? advertised : it->second;
    }

    void apply(const ticket_grant& g) { sfu_.apply(g); }

    template <class Ctx>
    void on_session(Ctx& ctx, const rtp::session_message& m, const endpoint& from) {
        const auto now = ctx.now();
        if (m.type == rtp::session_type::ack) return on_ack(ctx, m, from, now);
        if (m.type == rtp::session_type::play && m.relay_leg) {
            if (!cfg_.secret.empty() && !valid_cascade_ticket(cfg_.secret, m.stream.name, m.ticket, control::unix_now())) {
                ++stats_.relay_refused;
                rtp::session_message no;
                no.type = rtp::session_type::ack;
                no.status = rtp::session_status::unauthorized;
                no.sender_ssrc = relay_ssrc;
                no.stream.name = m.stream.name;
                return ctx.send_session(from, no);
            }
            ++stats_.relay_legs;
            // A stream no client publishes here is pulled along the route the hello names; a
            // pull that works keeps its route (two downstream nodes naming different ones
            // must not make it flap), one that is stale or has none takes it.
            if (!m.stream.name.empty() && !(published_here(m.stream.name) && !pulled_here(m.stream.name))) {
                std::vector<endpoint> hops;
                want(m.stream.name);
                if (!parse_route(m.route, hops)) ++stats_.bad_routes;
                else if (!hops.empty() && !working(m.stream.name, ctx.now())) set_route(m.stream.name, std::move(hops));
            }
            // Without a cluster secret a relay leg is just a play: tickets apply if required.
            return sfu_.on_session(ctx, m, from, !cfg_.secret.empty());
        }
        if (m.type == rtp::session_type::play && !m.stream.name.empty() && !published_here(m.stream.name)) want(m.stream.name);
        sfu_.on_session(ctx, m, from);
    }

    template <class Ctx>
    void on_rtp(Ctx& ctx, const packet_ref& pkt, const rtp::packet_view& p, const endpoint& from) {
        sfu_.on_rtp(ctx, pkt, p, from);
    }
    template <class Ctx>
    void on_rtcp(Ctx& ctx, rtp::bytes_view compound, const endpoint& from) {
        sfu_.on_rtcp(ctx, compound, from);
    }

    template <class Ctx>
    void on_timer(Ctx& ctx) {
        sfu_.on_timer(ctx);
        const auto now = ctx.now();
        for (auto it = pulls_.begin(); it != pulls_.end();) {
            auto& [name, p] = *it;
            for (const auto& gone : p.leave_to) send_leave(ctx, name, reach(gone));
            p.leave_to.clear();
            if (sfu_.subscriber_count(name) == 0) {
                if (p.idle_since == clock::time_point{}) p.idle_since = now;
                if (now - p.idle_since >= cfg_.idle_timeout) {
                    if (!p.hops.empty()) send_leave(ctx, name, reach(p.hops.front()));
                    sfu_.drop(name);
                    ++stats_.released;
                    it = pulls_.erase(it);
                    continue;
                }
            } else {
                p.idle_since = {};
            }
            if (published_here(name) && !pulled_here(name)) { // a client publishes it here now
                ++it;
                continue;
            }
            // No route, or an upstream that stopped answering (2 locate intervals): ask again.
            const bool stale = p.hops.empty() || (p.asked_since != clock::time_point{} &&
                                                  now - std::max(p.asked_since, p.last_ack) >= 2 * cfg_.locate_interval);
            if (stale && (p.last_locate == clock::time_point{} || now - p.last_locate >= cfg_.locate_interval)) {
                p.last_locate = now;
                locate(name);
            }
            if (!p.hops.empty() && (p.last_hello == clock::time_point{} || now - p.last_hello >= cfg_.hello_interval)) {
                if (p.asked_since == clock::time_point{}) p.asked_since = now;
                p.last_hello = now;
                send_hello(ctx, name, p);
            }
            ++it;
        }
    }

    const relay_stats& stats() const noexcept { return sfu_.stats(); }
    const cascade_stats& cascade_counters() const noexcept { return stats_; }
    const sfu& forwarding() const noexcept { return sfu_; }
    sfu& forwarding() noexcept { return sfu_; }
    std::size_t stream_count() const noexcept { return sfu_.stream_count(); }

    /// Streams published by clients of this node (what the dispatch center routes from here).
    std::vector<std::string> origin_streams() const {
        std::vector<std::string> out;
        sfu_.for_each_stream([&](const sfu::stream& s) {
            if (s.live && !s.pulled) out.push_back(s.desc.name);
        });
        return out;
    }
    /// The next hop a stream is pulled from, as advertised (nullptr: not pulled, or no route yet).
    const endpoint* upstream_of(const std::string& stream) const {
        auto it = pulls_.find(stream);
        return it == pulls_.end() || it->second.hops.empty() ? nullptr : &it->second.hops.front();
    }
    std::size_t pull_count() const noexcept { return pulls_.size(); }

private:
    struct pull {
        std::vector<endpoint> hops;        ///< towards the publisher, the next one first
        std::vector<endpoint> leave_to;    ///< former upstreams, told at the next tick
        clock::time_point last_hello{}, asked_since{}, last_ack{}, last_locate{}, idle_since{};
        bool confirmed = false;            ///< the current upstream acknowledged with the stream
    };

    /// A pull whose upstream answers.
    bool working(const std::string& name, clock::time_point now) const {
        auto it = pulls_.find(name);
        return it != pulls_.end() && !it->second.hops.empty() && it->second.last_ack != clock::time_point{} &&
               now - it->second.last_ack < 2 * cfg_.locate_interval;
    }

    bool published_here(const std::string& name) const {
        const auto* s = sfu_.find(name);
        return s && s->live;
    }
    bool pulled_here(const std::string& name) const {
        const auto* s = sfu_.find(name);
        return s && s->live && s->pulled;
    }

    /// A stream someone plays here: pulled unless a client publishes it here.
    void want(const std::string& name) {
        if (pulls_.contains(name)) return;
        pull& p = pulls_[name];
        ++stats_.pulls;
        if (auto r = cfg_.static_routes.find(name); r != cfg_.static_routes.end()) p.hops = r->second;
    }

    void locate(const std::string& name) {
        if (auto r = cfg_.static_routes.find(name); r != cfg_.static_routes.end()) {
            set_route(name, r->second);
            return;
        }
        if (!cfg_.on_missing) return;
        ++stats_.locate_requests;
        cfg_.on_missing(name);
    }

    template <class Ctx>
    void on_ack(Ctx& ctx, const rtp::session_message& m, const endpoint& from, clock::time_point now) {
        auto it = pulls_.find(m.stream.name);
        if (it == pulls_.end() || it->second.hops.empty() || reach(it->second.hops.front()) != from) return; // not asked of it
        pull& p = it->second;
        switch (m.status) {
        case rtp::session_status::ok:
            if (sfu_.adopt(ctx, m.stream, from)) {
                if (!p.confirmed) ++stats_.adopted;
                p.confirmed = true;
                p.last_ack = now;
            }
            return;
        case rtp::session_status::waiting: p.last_ack = now; return; // up, and pulling it too
        default: ++stats_.upstream_refused; return;
        }
    }

    template <class Ctx>
    void send_hello(Ctx& ctx, const std::string& name, const pull& p) {
        rtp::session_message m;
        m.type = rtp::session_type::play;
        m.sender_ssrc = relay_ssrc;
        m.stream.name = name;
        m.relay_leg = true;
        m.route = route_text(std::span<const endpoint>(p.hops).subspan(1));
        if (!cfg_.secret.empty()) m.ticket = cascade_ticket(cfg_.secret, name, control::unix_now());
        ctx.send_session(reach(p.hops.front()), m);
        ++stats_.hellos_sent;
    }
    template <class Ctx>
    static void send_leave(Ctx& ctx, const std::string& name, const endpoint& to) {
        rtp::session_message m;
        m.type = rtp::session_type::leave;
        m.sender_ssrc = relay_ssrc;
        m.stream.name = name;
        ctx.send_session(to, m);
    }

    static constexpr std::uint32_t relay_ssrc = 0x6f6e6169;
    cascade_config cfg_;
    sfu sfu_;
    std::unordered_map<std::string, pull> pulls_;
    std::map<endpoint, endpoint> reach_;
    cascade_stats stats_;
};

static_assert(relay_policy<cascade>);

} // namespace onair::relay
