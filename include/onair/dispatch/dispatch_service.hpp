// onair — the dispatch center on UDP: one JSON object per datagram, each answered by one.
//
// Datagrams are small and self-contained, so the service keeps no connection state.
//
// - Node messages (register, heartbeat, links) are signed (node_auth.hpp) and answered with
//   the center's reply.
// - Clients ask {"type":"edges","region":R,"count":N} and {"type":"route","from":A,"to":B};
//   relays {"type":"locate","stream":S,"to":B} (where S is published, and the route to B).
// - Every request may carry an "id", which the answer echoes.
// - When a route in use moves, the service sends {"type":"route_changed","from","to",
//   "route"} to the node at the route's player end, signed as node "dispatch". It repeats
//   the message every tick until that node acknowledges it with {"type":"ack","from","to"}.
//
// Untrusted input: datagrams over max_datagram, non-JSON and non-objects are counted and
// dropped.
#pragma once

#include "onair/core/timer.hpp"
#include "onair/dispatch/center.hpp"
#include "onair/transport/address.hpp"
#include "onair/transport/concepts.hpp"

#include <nlohmann/json.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace onair::dispatch {

using transport::parse_address;
using transport::to_address;

struct dispatch_service_config {
    std::string secret;
    center_config center;
    std::chrono::milliseconds tick{100};
    std::size_t max_datagram = 16 * 1024;
};

struct dispatch_service_stats {
    std::uint64_t datagrams = 0, malformed = 0, oversized = 0, queries = 0, pushes = 0, acks = 0;
};

/// Thread safety: everything on the transport's executor.
template <class Transport>
class dispatch_service {
    static_assert(transport::transport<Transport>, "Transport type requirements not met (see onair/transport/concepts.hpp)");

public:
    using json = nlohmann::json;
    using clock = std::chrono::steady_clock;

    template <class... Args>
    explicit dispatch_service(dispatch_service_config cfg, Args&&... transport_args)
        : transport_(std::forward<Args>(transport_args)...), cfg_(std::move(cfg)), center_(cfg_.secret, cfg_.center),
          timer_(transport_.get_executor()), epoch_ms_(control::unix_now() * 1000), start_(clock::now()) {}
    dispatch_service(const dispatch_service&) = delete;
    dispatch_service& operator=(const dispatch_service&) = delete;

    void start() {
        running_ = true;
        receive();
        arm();
    }
    void stop() {
        running_ = false;
        timer_.cancel();
        transport_.close();
    }

    transport::endpoint local_endpoint() const { return transport_.local_endpoint(); }
    const center& state() const noexcept { return center_; }
    const dispatch_service_stats& stats() const noexcept { return stats_; }
    std::int64_t now_ms() const {
        return epoch_ms_ + std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - start_).count();
    }

private:
    void receive() {
        transport_.async_receive_from(asio::buffer(rx_), from_, [this](std::error_code ec, std::size_t n) {
            if (!running_ || ec == asio::error::operation_aborted) return;
            if (!ec) on_datagram(n);
            receive();
        });
    }

    void reply(const json& j, const transport::endpoint& to) {
        const std::string s = j.dump(-1, ' ', false, json::error_handler_t::replace);
        transport_.send_to(asio::buffer(s.data(), s.size()), to);
    }

    void on_datagram(std::size_t n) {
        ++stats_.datagrams;
        if (n > cfg_.max_datagram) {
            ++stats_.oversized;
            return;
        }
        json m = json::parse(rx_.begin(), rx_.begin() + static_cast<std::ptrdiff_t>(n), nullptr, false);
        if (m.is_discarded() || !m.is_object() || !m.contains("type") || !m["type"].is_string()) {
            ++stats_.malformed;
            return;
        }
        const std::int64_t now = now_ms();
        const json id = m.contains("id") && (m["id"].is_number_unsigned() || m["id"].is_string()) ? m["id"] : json(nullptr);
        const std::string type = m["type"].get<std::string>();
        json out;
        try {
            if (m.contains("sig")) {
                if (type == "ack") {
                    // A node acknowledges a route change: it must be that node, signed.
                    if (center_.on_ack(m, now)) {
                        ++stats_.acks;
                        pending_.erase({m.value("from", std::string()), m.value("to", std::string())});
                    }
                    return;
                }
                out = center_.on_node_message(m, now);
            } else if (type == "edges") {
                ++stats_.queries;
                const std::string region = m.value("region", std::string());
                const std::size_t count = std::min<std::size_t>(m.value("count", std::size_t{3}), 16);
                out = {{"type", "reply"}, {"edges", center_.edges(region, count)}};
            } else if (type == "locate") {
                ++stats_.queries;
                out = center_.locate(m.value("stream", std::string()), m.value("to", std::string()));
            } else if (type == "route") {
                ++stats_.queries;
                const json r = center_.route_for(m.value("from", std::string()), m.value("to", std::string()));
                out = {{"type", "reply"}, {"route", r}};
            } else {
                out = {{"type", "error"}, {"code", "unknown_type"}};
            }
        } catch (const nlohmann::json::exception&) { // a field of the wrong type
            ++stats_.malformed;
            out = {{"type", "error"}, {"code", "malformed"}};
        }
        if (!id.is_null()) out["id"] = id;
        reply(out, from_);
    }

    void arm() {
        timer_.expires_after(cfg_.tick);
        timer_.async_wait([this](std::error_code ec) {
            if (ec || !running_) return;
            on_tick();
            arm();
        });
    }

    void on_tick() {
        const std::int64_t now = now_ms();
        for (const auto& c : center_.tick(now)) {
            json m{{"type", "route_changed"}, {"from", c.from}, {"to", c.to},
                   {"route", c.after ? center_.route_json(*c.after) : json(nullptr)}};
            pending_[{c.from, c.to}] = std::move(m);
        }
        // Unacknowledged route changes go again, to the node at the player's end.
        for (auto it = pending_.begin(); it != pending_.end();) {
            auto node = center_.nodes().find(it->first.second);
            if (node == center_.nodes().end()) {
                it = pending_.erase(it);
                continue;
            }
            json m = it->second;
            m["node"] = "dispatch";
            m["counter"] = next_counter(counter_);
            m["ts"] = now;
            sign(m, cfg_.secret);
            if (auto ep = parse_address(node->second.control)) {
                reply(m, *ep);
                ++stats_.pushes;
            }
            ++it;
        }
    }

    Transport transport_;
    dispatch_service_config cfg_;
    center center_;
    steady_timer_for<typename Transport::executor_type> timer_;
    std::int64_t epoch_ms_;
    clock::time_point start_;
    std::array<char, 65536> rx_{};
    transport::endpoint from_;
    std::map<std::pair<std::string, std::string>, json> pending_;
    std::uint64_t counter_ = 0;
    bool running_ = false;
    dispatch_service_stats stats_;
};

} // namespace onair::dispatch
