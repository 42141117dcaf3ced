// onair — the dispatch center's logic: which relay nodes are in service, how they see each
// other, which edges a client should try and which route a stream takes.
//
// Relay nodes send signed, numbered messages (node_auth.hpp):
//   register  {node, counter, ts, region, media, control, capacity}   -> in service
//   heartbeat {node, counter, ts, load}                               -> still there
//   links     {node, counter, ts, links: [{to, rtt_ms, loss, jitter_ms}]}
// A node missing `missed_heartbeats` heartbeat intervals is taken out with its links, and
// the routes through it are recomputed at once. Clients ask for edges (ranked for their
// region) and relays for routes (publisher's edge -> player's edge). Like room.hpp, this is
// logic without sockets, driven with the caller's milliseconds.
#pragma once

#include "onair/dispatch/node_auth.hpp"
#include "onair/dispatch/topology.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace onair::dispatch {

struct center_config {
    routing_config routing;
    std::int64_t heartbeat_ms = 500;
    int missed_heartbeats = 3;
    std::int64_t auth_window_ms = 30'000;
    std::size_t max_links_per_report = 256;
};

struct center_stats {
    std::uint64_t registered = 0, heartbeats = 0, link_reports = 0, links_refused = 0;
    std::uint64_t refused_malformed = 0, refused_forged = 0, refused_stale = 0, refused_replayed = 0, refused_unknown = 0;
    std::uint64_t nodes_expired = 0, reroutes = 0;
};

struct node_record {
    std::string id, region, media, control, probe;
    double capacity = 1;
    std::int64_t last_heard = 0;
};

class center {
public:
    using json = nlohmann::json;

    center(std::string secret, center_config cfg = {}) : cfg_(cfg), guard_(std::move(secret), cfg.auth_window_ms), topo_(cfg.routing) {}

    /// A node's message; returns the reply ({"type":"reply"} or {"type":"error","code":...}).
    json on_node_message(const json& m, std::int64_t now) {
        const auto verdict = guard_.check(m, now);
        if (verdict != auth_result::ok) {
            switch (verdict) {
            case auth_result::malformed: ++stats_.refused_malformed; break;
            case auth_result::forged: ++stats_.refused_forged; break;
            case auth_result::stale: ++stats_.refused_stale; break;
            case auth_result::replayed: ++stats_.refused_replayed; break;
            case auth_result::ok: break;
            }
            return error(std::string(to_string(verdict)));
        }
        const std::string node = m["node"].get<std::string>();
        const std::string type = m.value("type", std::string());
        if (type == "register") return on_register(node, m, now);
        auto it = nodes_.find(node);
        if (it == nodes_.end()) {
            ++stats_.refused_unknown;
            return error("unknown_node");
        }
        it->second.last_heard = now;
        if (type == "heartbeat") {
            ++stats_.heartbeats;
            if (auto l = m.find("load"); l != m.end() && l->is_number() && l->get<double>() >= 0) topo_.set_load(node, l->get<double>());
            return {{"type", "reply"}};
        }
        if (type == "links") return on_links(node, m, now);
        return error("unknown_type");
    }

    /// A node's signed acknowledgement of a route change pushed to it (it must be the
    /// route's player end).
    bool on_ack(const json& m, std::int64_t now) {
        if (guard_.check(m, now) != auth_result::ok) {
            ++stats_.refused_forged;
            return false;
        }
        return m["node"].get<std::string>() == m.value("to", std::string());
    }

    /// Up to `count` edges for a client in `region`, best first.
    json edges(const std::string& region, std::size_t count) const {
        json out = json::array();
        for (const auto& id : topo_.rank_edges(region, count)) {
            const auto& n = nodes_.at(id);
            out.push_back({{"node", id}, {"region", n.region}, {"media", n.media}, {"control", n.control},
                           {"load", topo_.nodes().at(id).load_share()}});
        }
        return out;
    }

    /// The route in use for `from` -> `to` (chosen on first use); null when none.
    json route_for(const std::string& from, const std::string& to) {
        auto r = routes_.get(topo_, from, to);
        if (!r) return nullptr;
        return route_json(*r);
    }

    /// Timers: expired nodes and links out, routes re-priced; returns the routes that moved.
    std::vector<route_table::change> tick(std::int64_t now) {
        std::vector<std::string> gone;
        for (const auto& [id, n] : nodes_)
            if (now - n.last_heard > cfg_.heartbeat_ms * cfg_.missed_heartbeats) gone.push_back(id);
        for (const auto& id : gone) {
            nodes_.erase(id);
            topo_.remove_node(id);
            ++stats_.nodes_expired;
        }
        topo_.expire(now);
        auto moved = routes_.recompute(topo_);
        stats_.reroutes += moved.size();
        return moved;
    }

    json route_json(const route& r) const {
        json hops = json::array();
        for (const auto& id : r.nodes) {
            auto it = nodes_.find(id);
            hops.push_back({{"node", id}, {"media", it == nodes_.end() ? "" : it->second.media}});
        }
        return {{"nodes", r.nodes}, {"hops", std::move(hops)}, {"cost", r.cost}};
    }

    const topology& topo() const noexcept { return topo_; }
    const std::map<std::string, node_record>& nodes() const noexcept { return nodes_; }
    const center_stats& stats() const noexcept { return stats_; }

private:
    static json error(std::string code) { return {{"type", "error"}, {"code", std::move(code)}}; }
    static const std::string* text(const json& m, const char* k) {
        auto it = m.find(k);
        return it != m.end() && it->is_string() && it->get_ref<const std::string&>().size() <= 128 ? it->get_ptr<const std::string*>() : nullptr;
    }

    /// The other nodes in service, for `node` to probe.
    json peers_of(const std::string& node) const {
        json peers = json::array();
        for (const auto& [id, p] : nodes_)
            if (id != node) peers.push_back({{"node", id}, {"media", p.media}, {"probe", p.probe}});
        return peers;
    }

    json on_register(const std::string& node, const json& m, std::int64_t now) {
        const auto* region = text(m, "region");
        const auto* media = text(m, "media");
        const auto* control = text(m, "control");
        auto cap = m.find("capacity");
        if (!region || !media || !control || cap == m.end() || !cap->is_number() || !(cap->get<double>() > 0)) {
            ++stats_.refused_malformed;
            return error("malformed");
        }
        const auto* probe = text(m, "probe");
        node_record& n = nodes_[node];
        n = {node, *region, *media, *control, probe ? *probe : std::string(), cap->get<double>(), now};
        const double load = topo_.has_node(node) ? topo_.nodes().at(node).load : 0;
        topo_.upsert_node(node, {*region, n.capacity, load});
        ++stats_.registered;
        return {{"type", "reply"}, {"heartbeat_ms", cfg_.heartbeat_ms}, {"peers", peers_of(node)}};
    }

    json on_links(const std::string& node, const json& m, std::int64_t now) {
        auto l = m.find("links");
        if (l == m.end() || !l->is_array() || l->size() > cfg_.max_links_per_report) {
            ++stats_.refused_malformed;
            return error("malformed");
        }
        ++stats_.link_reports;
        std::size_t taken = 0;
        for (const auto& x : *l) {
            const auto* to = x.is_object() ? text(x, "to") : nullptr;
            auto num = [&](const char* k) {
                auto it = x.find(k);
                return it != x.end() && it->is_number() ? it->get<double>() : -1.0;
            };
            if (!to || !topo_.report(node, *to, {num("rtt_ms"), num("loss"), num("jitter_ms")}, now)) {
                ++stats_.links_refused;
                continue;
            }
            ++taken;
        }
        return {{"type", "reply"}, {"taken", taken}, {"peers", peers_of(node)}};
    }

    center_config cfg_;
    message_guard guard_;
    topology topo_;
    route_table routes_;
    std::map<std::string, node_record> nodes_;
    center_stats stats_;
};

} // namespace onair::dispatch
