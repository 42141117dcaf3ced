// onair — the dispatch center's logic: which relay nodes are in service, how they see each
// other, which edges a client should try and which route a stream takes.
//
// Relay nodes send signed, numbered messages (node_auth.hpp):
//   register  {node, counter, ts, region, media, control, capacity}   -> in service
//   heartbeat {node, counter, ts, load, streams: [names published there]} -> still there
//   links     {node, counter, ts, links: [{to, rtt_ms, loss, jitter_ms}]}
//   room_home {node, counter, ts, room} -> {home, rooms}: the node a room lives on (the
//             first to ask, while it is in service) and its room service's address
// A node missing `missed_heartbeats` heartbeat intervals is taken out with its links, and
// the routes through it are recomputed at once. Clients ask for edges (ranked for their
// region) and relays for routes (publisher's edge -> player's edge), or where a stream is
// published and the route from there (locate). A stream name is held by the first node
// that reports it until that node stops reporting it or is taken out. Like room.hpp, this is
// logic without sockets, driven with the caller's milliseconds.
#pragma once

#include "onair/dispatch/node_auth.hpp"
#include "onair/dispatch/topology.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace onair::dispatch {

struct center_config {
    routing_config routing;
    std::int64_t heartbeat_ms = 500;
    int missed_heartbeats = 3;
    std::int64_t auth_window_ms = 30'000;
    std::size_t max_links_per_report = 256;
    std::size_t max_streams_per_node = 512;
    std::size_t max_rooms = 1'000'000;
};

struct center_stats {
    std::uint64_t registered = 0, heartbeats = 0, link_reports = 0, links_refused = 0;
    std::uint64_t refused_malformed = 0, refused_forged = 0, refused_stale = 0, refused_replayed = 0, refused_unknown = 0;
    std::uint64_t nodes_expired = 0, reroutes = 0;
    std::uint64_t streams_refused = 0; ///< reported names that were malformed, too many, or held by another node
};

struct node_record {
    std::string id, region, media, control, probe;
    std::string rooms; ///< its room service (TCP "IP:PORT"); empty: none
    double capacity = 1;
    std::int64_t last_heard = 0;
    std::set<std::string> streams; ///< published there (held by it)
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
            if (auto st = m.find("streams"); st != m.end()) set_streams(it->second, *st);
            return {{"type", "reply"}};
        }
        if (type == "links") return on_links(node, m, now);
        if (type == "room_home") return on_room_home(it->second, m);
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
            out.push_back({{"node", id}, {"region", n.region}, {"media", n.media}, {"control", n.control}, {"probe", n.probe},
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

    /// Where `stream` is published and the route in use from there to node `to`:
    /// {"stream", "from", "route"} (route null when there is none yet), or an error
    /// ("not_published", "unknown_node").
    json locate(const std::string& stream, const std::string& to) {
        auto holder = publishers_.find(stream);
        if (holder == publishers_.end()) return error("not_published");
        if (!nodes_.contains(to)) return error("unknown_node");
        auto r = routes_.get_or_direct(topo_, holder->second, to);
        return {{"type", "reply"}, {"stream", stream}, {"from", holder->second}, {"route", r ? route_json(*r) : json(nullptr)}};
    }
    /// The node holding `stream` (empty: none).
    std::string publisher_of(const std::string& stream) const {
        auto it = publishers_.find(stream);
        return it == publishers_.end() ? std::string() : it->second;
    }

    /// Timers: expired nodes and links out, routes re-priced; returns the routes that moved.
    std::vector<route_table::change> tick(std::int64_t now) {
        std::vector<std::string> gone;
        for (const auto& [id, n] : nodes_)
            if (now - n.last_heard > cfg_.heartbeat_ms * cfg_.missed_heartbeats) gone.push_back(id);
        for (const auto& id : gone) {
            for (const auto& st : nodes_.at(id).streams) publishers_.erase(st);
            std::erase_if(room_homes_, [&](const auto& kv) { return kv.second == id; });
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
        json out{{"nodes", r.nodes}, {"hops", std::move(hops)}, {"cost", r.assumed ? json(nullptr) : json(r.cost)}};
        if (r.assumed) out["assumed"] = true;
        return out;
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
        const auto* rooms = text(m, "rooms");
        node_record& n = nodes_[node];
        for (const auto& st : n.streams) publishers_.erase(st); // a restarted node reports its streams again
        n = {node, *region, *media, *control, probe ? *probe : std::string(), rooms ? *rooms : std::string(), cap->get<double>(), now, {}};
        const double load = topo_.has_node(node) ? topo_.nodes().at(node).load : 0;
        topo_.upsert_node(node, {*region, n.capacity, load});
        ++stats_.registered;
        return {{"type", "reply"}, {"heartbeat_ms", cfg_.heartbeat_ms}, {"peers", peers_of(node)}};
    }

    /// A heartbeat's list of the streams published at `n`: names it newly holds are taken
    /// unless another node holds them; names it no longer lists are freed.
    void set_streams(node_record& n, const json& list) {
        if (!list.is_array() || list.size() > cfg_.max_streams_per_node) {
            ++stats_.streams_refused;
            return;
        }
        std::set<std::string> now;
        for (const auto& x : list) {
            if (!x.is_string() || x.get_ref<const std::string&>().empty() || x.get_ref<const std::string&>().size() > 255) {
                ++stats_.streams_refused;
                continue;
            }
            const auto& name = x.get_ref<const std::string&>();
            auto [it, fresh] = publishers_.emplace(name, n.id);
            if (!fresh && it->second != n.id) {
                ++stats_.streams_refused;
                continue;
            }
            now.insert(name);
        }
        for (const auto& old : n.streams)
            if (!now.contains(old)) publishers_.erase(old);
        n.streams = std::move(now);
    }

    /// Where a room lives: its home while that node is in service, else the asking node
    /// (which must run a room service).
    json on_room_home(const node_record& n, const json& m) {
        const auto* room = text(m, "room");
        if (!room || room->empty()) {
            ++stats_.refused_malformed;
            return error("malformed");
        }
        auto it = room_homes_.find(*room);
        if (it == room_homes_.end() || !nodes_.contains(it->second)) {
            if (n.rooms.empty()) return error("no_room_service");
            if (room_homes_.size() >= cfg_.max_rooms) return error("too_many_rooms");
            it = room_homes_.insert_or_assign(*room, n.id).first;
        }
        const auto& home = nodes_.at(it->second);
        return {{"type", "reply"}, {"room", *room}, {"home", home.id}, {"rooms", home.rooms}};
    }
    /// The node `room` lives on (empty: none yet).
    std::string home_of(const std::string& room) const {
        auto it = room_homes_.find(room);
        return it == room_homes_.end() ? std::string() : it->second;
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
    std::map<std::string, std::string> publishers_; ///< stream -> the node holding it
    std::map<std::string, std::string> room_homes_; ///< room -> the node it lives on
    center_stats stats_;
};

} // namespace onair::dispatch
