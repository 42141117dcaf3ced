// onair — a relay node's side of the dispatch center: it registers, heartbeats with its
// load and the streams published at it, probes the peers the center names and reports what
// it measures, locates the streams the node must pull, and takes the route changes the
// center pushes (acknowledging each): a route from a stream's node to this one becomes the
// hops the node pulls that stream along.
//
// Two sockets: the control socket talks to the center (its address is the node's
// "control" address, where pushes arrive), the prober's socket answers and sends probes
// (the "probe" address peers are told). Registration is repeated until answered, and again
// whenever the center no longer knows the node (it was taken out, or the center restarted).
#pragma once

#include "onair/core/timer.hpp"
#include "onair/dispatch/dispatch_service.hpp"
#include "onair/dispatch/node_auth.hpp"
#include "onair/dispatch/prober.hpp"
#include "onair/transport/udp.hpp"

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <vector>
#include <string>

namespace onair::dispatch {

struct node_agent_config {
    std::string node_id;
    std::string region = "default";
    std::string secret;                 ///< the cluster's
    transport::endpoint dispatch;
    std::string media;                  ///< the relay's media address as clients and peers reach it
    double capacity = 1000;             ///< e.g. Mbit/s out
    std::chrono::milliseconds heartbeat{500}; ///< the center's answer to the registration overrides it
    std::chrono::milliseconds report{1000};
    probe_config probe{};
    /// Where to reach a peer instead of the address it advertises (node id -> IP:PORT):
    /// its media address (what pulls are sent to) and its probe address. For emulated
    /// inter-node links (onair-netem in front of a peer) and for NAT between nodes.
    std::map<std::string, std::string> media_via, probe_via;
    /// The probe socket's port (0: any); peers are told its address.
    unsigned short probe_port = 0;
    /// This node's room service (TCP "IP:PORT"; empty: none): rooms that live here are
    /// reached there from other nodes.
    std::string rooms;
};

struct node_agent_stats {
    std::uint64_t registrations = 0, heartbeats = 0, reports = 0, route_changes = 0, refused = 0, malformed = 0;
    std::uint64_t locates = 0, located = 0, not_published = 0;
    std::uint64_t room_queries = 0, room_answers = 0, room_fallbacks = 0;
    bool registered = false;
};

/// Thread safety: everything on the io_context's thread; set_load() too.
class node_agent {
public:
    using json = nlohmann::json;
    /// Where a stream is to be pulled from: the hops from this node towards its publisher's
    /// node, the next one first (empty: published nowhere, or no route now). Called for each
    /// locate answered and for each route change of a stream located before.
    using pull_handler = std::function<void(const std::string& stream, std::vector<transport::endpoint> hops)>;
    /// The peers this node reaches through media_via: advertised media address -> the one
    /// to send to. Called when it changes.
    using reach_handler = std::function<void(std::map<transport::endpoint, transport::endpoint>)>;

    node_agent(node_agent_config cfg, asio::io_context& io, const transport::endpoint& local, pull_handler on_pull = {},
               reach_handler on_reach = {})
        : cfg_(std::move(cfg)), control_(io, local), prober_(cfg_.probe, io, transport::endpoint(local.address(), cfg_.probe_port)),
          timer_(io), on_pull_(std::move(on_pull)), on_reach_(std::move(on_reach)) {}

    void start() {
        running_ = true;
        prober_.start();
        receive();
        tick();
    }
    void stop() {
        running_ = false;
        timer_.cancel();
        control_.close();
        prober_.stop();
    }
    void set_load(double load) { load_ = load; }
    /// The streams clients publish at this node (sent with every heartbeat; as many as fit
    /// a datagram of max_streams_bytes).
    void set_streams(std::vector<std::string> names) { streams_ = std::move(names); }
    /// Asks the center where `stream` is published; the answer goes to the pull handler.
    void locate(const std::string& stream) {
        const std::uint64_t id = ++query_id_;
        locating_[id] = stream;
        if (locating_.size() > 1024) locating_.erase(locating_.begin()); // unanswered ones
        const std::string s = json{{"type", "locate"}, {"stream", stream}, {"to", cfg_.node_id}, {"id", id}}.dump();
        control_.send_to(asio::buffer(s.data(), s.size()), cfg_.dispatch);
        ++stats_.locates;
    }
    static constexpr std::size_t max_streams_bytes = 12 * 1024;

    /// Where a room lives: done(true, "") when here, done(false, "IP:PORT") for another
    /// node's room service. Asked of the center (signed), repeated every tick; after 3
    /// unanswered tries (or a refusal) the room is served here.
    using room_handler = std::function<void(bool here, std::string rooms)>;
    void locate_room(const std::string& room, room_handler done) {
        const std::string id = "r" + std::to_string(++query_id_);
        rooms_asked_[id] = {room, std::move(done), 0};
        ask_room(id);
    }

    transport::endpoint control_endpoint() const { return control_.local_endpoint(); }
    transport::endpoint probe_endpoint() const { return prober_.local_endpoint(); }
    const node_agent_stats& stats() const noexcept { return stats_; }
    const prober<transport::udp>& probes() const noexcept { return prober_; }

private:
    void send(json m) {
        m["node"] = cfg_.node_id;
        m["counter"] = next_counter(counter_);
        m["ts"] = control::unix_now() * 1000;
        sign(m, cfg_.secret);
        const std::string s = m.dump();
        control_.send_to(asio::buffer(s.data(), s.size()), cfg_.dispatch);
    }

    void ask_room(const std::string& id) {
        auto& q = rooms_asked_.at(id);
        ++q.tries;
        ++stats_.room_queries;
        send({{"type", "room_home"}, {"room", q.room}, {"id", id}});
    }
    void answer_room(const std::string& id, bool here, std::string rooms) {
        auto it = rooms_asked_.find(id);
        if (it == rooms_asked_.end()) return;
        auto done = std::move(it->second.done);
        rooms_asked_.erase(it);
        if (done) done(here, std::move(rooms));
    }

    void tick() {
        if (!running_) return;
        const auto now = std::chrono::steady_clock::now();
        for (auto it = rooms_asked_.begin(); it != rooms_asked_.end();) {
            const std::string id = (it++)->first;
            if (rooms_asked_.at(id).tries >= 3) {
                ++stats_.room_fallbacks;
                answer_room(id, true, {});
            } else if (stats_.registered) {
                ask_room(id);
            }
        }
        if (!stats_.registered) {
            send({{"type", "register"}, {"region", cfg_.region}, {"media", cfg_.media}, {"control", to_address(control_endpoint())},
                  {"probe", to_address(probe_endpoint())}, {"capacity", cfg_.capacity}, {"rooms", cfg_.rooms}});
        } else {
            json names = json::array();
            std::size_t bytes = 0;
            for (const auto& n : streams_) {
                bytes += n.size() + 3;
                if (bytes > max_streams_bytes) break;
                names.push_back(n);
            }
            send({{"type", "heartbeat"}, {"load", load_}, {"streams", std::move(names)}});
            if (now - last_report_ >= cfg_.report) {
                last_report_ = now;
                json links = json::array();
                for (const auto& peer : peers_)
                    if (auto m = prober_.measure(peer))
                        links.push_back({{"to", peer}, {"rtt_ms", m->rtt_ms}, {"loss", m->loss}, {"jitter_ms", m->jitter_ms}});
                send({{"type", "links"}, {"links", std::move(links)}});
                ++stats_.reports;
            }
        }
        timer_.expires_after(stats_.registered ? heartbeat_ : std::chrono::milliseconds(200));
        timer_.async_wait([this](std::error_code ec) {
            if (!ec) tick();
        });
    }

    void receive() {
        control_.async_receive_from(asio::buffer(rx_), from_, [this](std::error_code ec, std::size_t n) {
            if (!running_ || ec == asio::error::operation_aborted) return;
            if (!ec && from_ == cfg_.dispatch) on_datagram(n);
            receive();
        });
    }

    void on_datagram(std::size_t n) {
        json m = json::parse(rx_.begin(), rx_.begin() + static_cast<std::ptrdiff_t>(n), nullptr, false);
        if (m.is_discarded() || !m.is_object()) {
            ++stats_.malformed;
            return;
        }
        const std::string type = m.value("type", std::string());
        if (type == "route_changed") {
            // Signed by the center: a forged push would re-cascade streams.
            if (center_guard_.check(m, control::unix_now() * 1000) != auth_result::ok || m.value("node", std::string()) != "dispatch") {
                ++stats_.refused;
                return;
            }
            send({{"type", "ack"}, {"from", m.value("from", std::string())}, {"to", m.value("to", std::string())}});
            ++stats_.route_changes;
            const std::string from = m.value("from", std::string());
            if (m.value("to", std::string()) != cfg_.node_id) return;
            const auto route = m.find("route");
            const auto hops = route == m.end() ? std::vector<transport::endpoint>{} : hops_of(*route);
            for (const auto& [stream, origin] : pulled_)
                if (origin == from && on_pull_) on_pull_(stream, hops);
            return;
        }
        if (auto id = m.find("id"); id != m.end() && id->is_string()) {
            // The answer to a room_home query.
            const std::string qid = id->get<std::string>();
            if (!rooms_asked_.contains(qid)) return;
            if (type == "reply") {
                ++stats_.room_answers;
                const std::string home = m.value("home", std::string());
                answer_room(qid, home == cfg_.node_id, m.value("rooms", std::string()));
            } else if (m.value("code", std::string()) == "unknown_node") {
                stats_.registered = false; // asked again once registered
            } else {
                ++stats_.room_fallbacks;
                answer_room(qid, true, {});
            }
            return;
        }
        if (auto id = m.find("id"); id != m.end() && id->is_number_unsigned()) {
            // The answer to a locate.
            auto q = locating_.find(id->get<std::uint64_t>());
            if (q == locating_.end()) return;
            const std::string stream = q->second;
            locating_.erase(q);
            std::vector<transport::endpoint> hops;
            if (type == "reply" && m.value("stream", std::string()) == stream && m.contains("from") && m["from"].is_string()) {
                ++stats_.located;
                pulled_[stream] = m["from"].get<std::string>();
                if (pulled_.size() > 4096) pulled_.erase(pulled_.begin());
                if (auto r = m.find("route"); r != m.end()) hops = hops_of(*r);
            } else {
                ++stats_.not_published;
                pulled_.erase(stream);
            }
            if (on_pull_) on_pull_(stream, std::move(hops));
            return;
        }
        if (type == "error") {
            // Taken out (or the center restarted): register again.
            if (m.value("code", std::string()) == "unknown_node") stats_.registered = false;
            else ++stats_.refused;
            return;
        }
        if (type != "reply") return;
        if (auto hb = m.find("heartbeat_ms"); hb != m.end() && hb->is_number_unsigned()) {
            heartbeat_ = std::chrono::milliseconds(std::clamp<std::uint64_t>(hb->get<std::uint64_t>(), 50, 60'000));
            if (!stats_.registered) ++stats_.registrations;
            stats_.registered = true;
        } else if (m.contains("taken")) {
            // (a links reply)
        } else {
            ++stats_.heartbeats;
        }
        if (auto p = m.find("peers"); p != m.end() && p->is_array()) update_peers(*p);
    }

    /// A route {nodes, hops: [{node, media}]} ending here, as the hops to pull along: the
    /// nodes before this one, nearest first, at the media addresses they advertise (the
    /// hello to the next hop names the rest; each node applies its own media_via).
    std::vector<transport::endpoint> hops_of(const json& route) const {
        std::vector<transport::endpoint> out;
        if (!route.is_object() || !route.contains("hops") || !route["hops"].is_array()) return out;
        const auto& hops = route["hops"];
        if (hops.empty() || !hops.back().is_object() || hops.back().value("node", std::string()) != cfg_.node_id) return out;
        for (std::size_t i = hops.size() - 1; i-- > 0;) {
            const auto& h = hops[i];
            if (!h.is_object()) return {};
            const auto at = parse_address(h.value("media", std::string()));
            if (!at) return {};
            out.push_back(*at);
        }
        return out;
    }

    void update_peers(const json& peers) {
        std::set<std::string> now;
        std::map<transport::endpoint, transport::endpoint> reach;
        for (const auto& p : peers) {
            if (!p.is_object()) continue;
            const std::string id = p.value("node", std::string());
            if (auto via = cfg_.media_via.find(id); via != cfg_.media_via.end()) {
                const auto advertised = parse_address(p.value("media", std::string()));
                const auto to = parse_address(via->second);
                if (advertised && to) reach[*advertised] = *to;
            }
            auto via = cfg_.probe_via.find(id);
            const auto at = parse_address(via != cfg_.probe_via.end() ? via->second : p.value("probe", std::string()));
            if (id.empty() || !at) continue;
            now.insert(id);
            if (!peers_.contains(id)) prober_.add_peer(id, *at);
        }
        for (const auto& id : peers_)
            if (!now.contains(id)) prober_.remove_peer(id);
        peers_ = std::move(now);
        if (reach != reach_) {
            reach_ = reach;
            if (on_reach_) on_reach_(std::move(reach));
        }
    }

    node_agent_config cfg_;
    transport::udp control_;
    prober<transport::udp> prober_;
    asio::steady_timer timer_;
    pull_handler on_pull_;
    reach_handler on_reach_;
    std::map<transport::endpoint, transport::endpoint> reach_;
    std::vector<std::string> streams_;
    std::map<std::uint64_t, std::string> locating_;  ///< locate queries in flight, by id
    std::map<std::string, std::string> pulled_;      ///< stream -> the node it was located at
    std::uint64_t query_id_ = 0;
    struct room_query {
        std::string room;
        room_handler done;
        int tries = 0;
    };
    std::map<std::string, room_query> rooms_asked_;
    message_guard center_guard_{cfg_.secret};
    std::chrono::milliseconds heartbeat_{cfg_.heartbeat};
    std::chrono::steady_clock::time_point last_report_{};
    std::set<std::string> peers_;
    std::array<char, 65536> rx_{};
    transport::endpoint from_;
    std::uint64_t counter_ = 0;
    double load_ = 0;
    bool running_ = false;
    node_agent_stats stats_;
};

} // namespace onair::dispatch
