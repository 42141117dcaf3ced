// onair — the dispatch center's view of the RTC network: relay nodes, measured links
// between them, and the routes streams take.
//
// Nodes report what they measure to each other (RTT, loss, jitter, from their UDP probes);
// the topology smooths each directed link's samples and prices it:
//
//   cost(a -> b) = rtt + loss_penalty_ms * loss + jitter_weight * jitter
//                  + load_penalty_ms * load(b)       (b carries the stream on)
//
// A route from the publisher's edge to a player's edge is the cheapest path of at most
// max_hops links, through nodes that are alive and not overloaded. Routes already in use
// change only when they break (a node or link is gone) or a new path is cheaper by
// switch_gain, so measurement noise does not move streams back and forth.
//
// No I/O and no clock of its own: times are the caller's milliseconds (simulated in tests).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace onair::dispatch {

struct link_sample {
    double rtt_ms = 0;
    double loss = 0;      ///< 0..1
    double jitter_ms = 0;
};

struct routing_config {
    double loss_penalty_ms = 2000;  ///< the cost of 100 % loss: 1 % costs as much as 20 ms
    double jitter_weight = 1;
    double load_penalty_ms = 20;    ///< added per node at full load (load / capacity = 1)
    double overload = 0.95;         ///< nodes above this share of their capacity carry no transit
    /// Edges are ranked by load in steps of this share of capacity: within one step (probes
    /// and heartbeats, a stream or two) the node id decides, so near-idle edges keep a
    /// stable order instead of swapping places on noise.
    double load_step = 0.05;
    std::size_t max_hops = 4;       ///< links on a route
    double switch_gain = 0.2;       ///< a route in use moves only to one this much cheaper
    double smoothing = 0.3;         ///< weight of a new sample in a link's moving average
    std::int64_t link_timeout_ms = 10'000; ///< a link not measured for this long is gone
    double max_rtt_ms = 10'000;     ///< samples beyond are absurd, and ignored
};

struct node_state {
    std::string region;
    double capacity = 1;  ///< in the node's own unit (e.g. Mbit/s out); > 0
    double load = 0;      ///< in the same unit
    double load_share() const noexcept { return capacity > 0 ? load / capacity : 1; }
};

struct route {
    std::vector<std::string> nodes; ///< from the publisher's edge to the player's edge
    double cost = 0;
    /// Not measured yet: the direct link between two nodes in service, taken until probes
    /// measure a way (nodes in service reach each other).
    bool assumed = false;
    friend bool operator==(const route&, const route&) = default;
};

class topology {
public:
    explicit topology(routing_config cfg = {}) : cfg_(cfg) {}

    const routing_config& config() const noexcept { return cfg_; }

    void upsert_node(const std::string& id, node_state s) { nodes_[id] = std::move(s); }
    void set_load(const std::string& id, double load) {
        if (auto it = nodes_.find(id); it != nodes_.end()) it->second.load = std::max(0.0, load);
    }
    /// Takes a node out with every link from or to it.
    void remove_node(const std::string& id) {
        nodes_.erase(id);
        std::erase_if(links_, [&](const auto& kv) { return kv.first.first == id || kv.first.second == id; });
    }
    bool has_node(const std::string& id) const { return nodes_.contains(id); }
    const std::map<std::string, node_state>& nodes() const noexcept { return nodes_; }

    /// A measurement of `from` -> `to`, reported by `from`. Returns false (and ignores it)
    /// for unknown nodes, a node's link to itself, or absurd values.
    bool report(const std::string& from, const std::string& to, const link_sample& s, std::int64_t now_ms) {
        if (from == to || !nodes_.contains(from) || !nodes_.contains(to)) return false;
        if (!(s.rtt_ms >= 0 && s.rtt_ms <= cfg_.max_rtt_ms) || !(s.loss >= 0 && s.loss <= 1) ||
            !(s.jitter_ms >= 0 && s.jitter_ms <= cfg_.max_rtt_ms))
            return false;
        auto [it, fresh] = links_.try_emplace({from, to});
        link& l = it->second;
        if (fresh) {
            l.smoothed = s;
        } else {
            const double a = cfg_.smoothing;
            l.smoothed.rtt_ms += a * (s.rtt_ms - l.smoothed.rtt_ms);
            l.smoothed.loss += a * (s.loss - l.smoothed.loss);
            l.smoothed.jitter_ms += a * (s.jitter_ms - l.smoothed.jitter_ms);
        }
        l.measured_ms = now_ms;
        return true;
    }

    /// Drops links not measured for link_timeout_ms; returns how many.
    std::size_t expire(std::int64_t now_ms) {
        return std::erase_if(links_, [&](const auto& kv) { return now_ms - kv.second.measured_ms > cfg_.link_timeout_ms; });
    }

    std::optional<link_sample> link_of(const std::string& from, const std::string& to) const {
        auto it = links_.find({from, to});
        if (it == links_.end()) return std::nullopt;
        return it->second.smoothed;
    }

    /// The price of sending over `from` -> `to` (infinite when there is no such link).
    double link_cost(const std::string& from, const std::string& to) const {
        auto it = links_.find({from, to});
        auto n = nodes_.find(to);
        if (it == links_.end() || n == nodes_.end()) return infinity;
        const link_sample& s = it->second.smoothed;
        return s.rtt_ms + cfg_.loss_penalty_ms * s.loss + cfg_.jitter_weight * s.jitter_ms +
               cfg_.load_penalty_ms * std::min(1.0, n->second.load_share());
    }

    /// The cheapest route of at most max_hops links (Bellman-Ford bounded by hops; a network
    /// has tens to hundreds of nodes). Overloaded nodes may be either end, not transit.
    std::optional<route> best_route(const std::string& from, const std::string& to) const {
        if (!nodes_.contains(from) || !nodes_.contains(to)) return std::nullopt;
        if (from == to) return route{{from}, 0};
        // layer[k][v]: the cheapest way to v in at most k links, and where it came from.
        struct step {
            double cost;
            std::string prev; ///< empty: the same as in layer k - 1
        };
        std::vector<std::map<std::string, step>> layer(cfg_.max_hops + 1);
        layer[0][from] = {0, {}};
        for (std::size_t k = 1; k <= cfg_.max_hops; ++k) {
            layer[k] = layer[k - 1];
            for (auto& [v, st] : layer[k]) st.prev.clear();
            for (const auto& [key, l] : links_) {
                const auto& [a, b] = key;
                auto da = layer[k - 1].find(a);
                if (da == layer[k - 1].end() || b == from) continue;
                if (a != from && nodes_.at(a).load_share() > cfg_.overload) continue; // no transit through it
                const double c = da->second.cost + link_cost(a, b);
                auto db = layer[k].find(b);
                if (db == layer[k].end() || c < db->second.cost) layer[k][b] = {c, a};
            }
        }
        auto d = layer[cfg_.max_hops].find(to);
        if (d == layer[cfg_.max_hops].end() || d->second.cost == infinity) return std::nullopt;
        route r;
        r.cost = d->second.cost;
        std::string at = to;
        for (std::size_t k = cfg_.max_hops; at != from; --k) {
            const step& st = layer[k].at(at);
            if (st.prev.empty()) continue; // reached in fewer links: look one layer down
            r.nodes.push_back(at);
            at = st.prev;
        }
        r.nodes.push_back(from);
        std::reverse(r.nodes.begin(), r.nodes.end());
        return r;
    }

    /// The cost of `r` now (infinite when a node or link of it is gone).
    double cost_of(const route& r) const {
        double c = 0;
        for (std::size_t i = 0; i + 1 < r.nodes.size(); ++i) {
            if (i > 0 && has_node(r.nodes[i]) && nodes_.at(r.nodes[i]).load_share() > cfg_.overload) return infinity;
            c += link_cost(r.nodes[i], r.nodes[i + 1]);
        }
        if (r.nodes.empty() || !has_node(r.nodes.front()) || !has_node(r.nodes.back())) return infinity;
        return c;
    }

    /// Nodes ranked for a client in `region`: same region first, then by load share;
    /// overloaded nodes last. At most `count`.
    std::vector<std::string> rank_edges(const std::string& region, std::size_t count) const {
        std::vector<std::pair<std::string, const node_state*>> v;
        for (const auto& [id, n] : nodes_) v.emplace_back(id, &n);
        std::sort(v.begin(), v.end(), [&](const auto& x, const auto& y) {
            const bool xo = x.second->load_share() > cfg_.overload, yo = y.second->load_share() > cfg_.overload;
            if (xo != yo) return !xo;
            const bool xr = x.second->region == region, yr = y.second->region == region;
            if (xr != yr) return xr;
            const double xs = std::floor(x.second->load_share() / cfg_.load_step), ys = std::floor(y.second->load_share() / cfg_.load_step);
            if (xs != ys) return xs < ys;
            return x.first < y.first;
        });
        std::vector<std::string> out;
        for (std::size_t i = 0; i < v.size() && i < count; ++i) out.push_back(v[i].first);
        return out;
    }

    static constexpr double infinity = std::numeric_limits<double>::infinity();

private:
    struct link {
        link_sample smoothed;
        std::int64_t measured_ms = 0;
    };
    routing_config cfg_;
    std::map<std::string, node_state> nodes_;
    std::map<std::pair<std::string, std::string>, link> links_;
};

/// The routes in use, per (publisher's edge, player's edge), kept stable: recompute()
/// moves a route only when it broke or a path switch_gain cheaper exists.
class route_table {
public:
    struct change {
        std::string from, to;
        std::optional<route> before, after;
    };

    /// The route for `from` -> `to`, choosing one on first use.
    std::optional<route> get(const topology& t, const std::string& from, const std::string& to) {
        auto key = std::make_pair(from, to);
        if (auto it = routes_.find(key); it != routes_.end()) return it->second;
        auto r = t.best_route(from, to);
        if (r) routes_[key] = *r;
        return r;
    }
    /// The same, but when nothing is measured between two nodes in service yet, the direct
    /// link, assumed: kept until a measured route exists (then it moves, as any route).
    std::optional<route> get_or_direct(const topology& t, const std::string& from, const std::string& to) {
        if (auto r = get(t, from, to)) return r;
        if (!t.has_node(from) || !t.has_node(to)) return std::nullopt;
        route r{from == to ? std::vector<std::string>{from} : std::vector<std::string>{from, to}, topology::infinity, true};
        routes_[{from, to}] = r;
        return r;
    }
    void forget(const std::string& from, const std::string& to) { routes_.erase({from, to}); }

    /// Re-prices every route in use and returns those that moved (or broke with no way round).
    std::vector<change> recompute(const topology& t) {
        std::vector<change> out;
        for (auto it = routes_.begin(); it != routes_.end();) {
            const auto& [from, to] = it->first;
            const double now_cost = t.cost_of(it->second);
            auto best = t.best_route(from, to);
            const bool broken = now_cost == topology::infinity;
            if (it->second.assumed && t.has_node(from) && t.has_node(to)) {
                if (best) { // measured at last
                    out.push_back({from, to, it->second, *best});
                    it->second = *best;
                }
                ++it;
                continue;
            }
            if (!best) {
                out.push_back({from, to, it->second, std::nullopt});
                it = routes_.erase(it);
                continue;
            }
            if (broken || (best->nodes != it->second.nodes && best->cost < now_cost * (1 - t.config().switch_gain))) {
                out.push_back({from, to, it->second, *best});
                it->second = *best;
            } else {
                it->second.cost = now_cost;
            }
            ++it;
        }
        return out;
    }
    std::size_t size() const noexcept { return routes_.size(); }

private:
    std::map<std::pair<std::string, std::string>, route> routes_;
};

} // namespace onair::dispatch
