// onair — a relay node's side of the dispatch center: it registers, heartbeats with its
// load, probes the peers the center names and reports what it measures, and takes the
// route changes the center pushes (acknowledging each).
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
#include <set>
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
};

struct node_agent_stats {
    std::uint64_t registrations = 0, heartbeats = 0, reports = 0, route_changes = 0, refused = 0, malformed = 0;
    bool registered = false;
};

/// Thread safety: everything on the io_context's thread; set_load() too.
class node_agent {
public:
    using json = nlohmann::json;
    /// A route change pushed by the center: {"from", "to", "route": {nodes, hops, cost} or null}.
    using route_handler = std::function<void(const json&)>;

    node_agent(node_agent_config cfg, asio::io_context& io, const transport::endpoint& local, route_handler on_route = {})
        : cfg_(std::move(cfg)), control_(io, local), prober_(cfg_.probe, io, transport::endpoint(local.address(), 0)),
          timer_(io), on_route_(std::move(on_route)) {}

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

    void tick() {
        if (!running_) return;
        const auto now = std::chrono::steady_clock::now();
        if (!stats_.registered) {
            send({{"type", "register"}, {"region", cfg_.region}, {"media", cfg_.media}, {"control", to_address(control_endpoint())},
                  {"probe", to_address(probe_endpoint())}, {"capacity", cfg_.capacity}});
        } else {
            send({{"type", "heartbeat"}, {"load", load_}});
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
            if (on_route_) on_route_(m);
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

    void update_peers(const json& peers) {
        std::set<std::string> now;
        for (const auto& p : peers) {
            if (!p.is_object()) continue;
            const std::string id = p.value("node", std::string());
            const auto at = parse_address(p.value("probe", std::string()));
            if (id.empty() || !at) continue;
            now.insert(id);
            if (!peers_.contains(id)) prober_.add_peer(id, *at);
        }
        for (const auto& id : peers_)
            if (!now.contains(id)) prober_.remove_peer(id);
        peers_ = std::move(now);
    }

    node_agent_config cfg_;
    transport::udp control_;
    prober<transport::udp> prober_;
    asio::steady_timer timer_;
    route_handler on_route_;
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
