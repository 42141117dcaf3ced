// onair — a client's choice of edge: the dispatch center's ranked candidates, each probed,
// the best first.
//
// The client asks the center {"type":"edges","region":R,"count":N} (repeated until
// answered), probes every candidate's probe address with the relays' own link probes
// (prober.hpp) for probe_for, and orders them by measured RTT plus rank_weight_ms per place
// in the center's ranking (which already weighs region and load); a candidate that never
// answered goes last. The list is what a viewer plays from: the first, then the next ones
// when an edge fails (viewer_config::fallback_relays).
#pragma once

#include "onair/core/timer.hpp"
#include "onair/dispatch/prober.hpp"
#include "onair/transport/address.hpp"
#include "onair/transport/udp.hpp"

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

namespace onair::dispatch {

struct edge_candidate {
    std::string node;
    transport::endpoint media;
    std::string control;  ///< the node's room service, "IP:PORT" (empty if it has none)
    double load = 0;      ///< share of its capacity in use, as the center knows it
    double rtt_ms = std::numeric_limits<double>::infinity(); ///< as probed (infinite: no answer)
    std::size_t rank = 0; ///< place in the center's answer
};

struct edge_selector_config {
    transport::endpoint dispatch;
    std::string region = "default";
    std::size_t count = 3;
    std::chrono::milliseconds probe_for{300};
    std::chrono::milliseconds query_timeout{2000};
    double rank_weight_ms = 1;
};

/// Thread safety: everything on the io_context's thread. One selection at a time.
class edge_selector {
public:
    using json = nlohmann::json;
    using handler = std::function<void(std::error_code, std::vector<edge_candidate>)>;

    edge_selector(edge_selector_config cfg, asio::io_context& io)
        : cfg_(std::move(cfg)), io_(io), socket_(io, transport::endpoint(local_for(cfg_.dispatch.address()), 0)), timer_(io) {}

    /// Asks, probes and calls `done` with the candidates best first (an error when the
    /// center did not answer within query_timeout or named no edge).
    void async_select(handler done) {
        done_ = std::move(done);
        asked_ = std::chrono::steady_clock::now();
        running_ = true;
        receive();
        ask();
    }
    void cancel() {
        running_ = false;
        timer_.cancel();
        socket_.close();
        if (prober_) prober_->stop();
    }

private:
    /// A loopback center is reached from loopback; any other from any address of its family.
    static asio::ip::address local_for(const asio::ip::address& a) {
        if (a.is_loopback()) return a;
        return a.is_v6() ? asio::ip::address(asio::ip::address_v6::any()) : asio::ip::address(asio::ip::address_v4::any());
    }

    void ask() {
        if (!running_) return;
        if (std::chrono::steady_clock::now() - asked_ >= cfg_.query_timeout) return finish(std::make_error_code(std::errc::timed_out));
        const std::string q = json{{"type", "edges"}, {"region", cfg_.region}, {"count", cfg_.count}, {"id", "edges"}}.dump();
        socket_.send_to(asio::buffer(q.data(), q.size()), cfg_.dispatch);
        timer_.expires_after(std::chrono::milliseconds(300));
        timer_.async_wait([this](std::error_code ec) {
            if (!ec && candidates_.empty()) ask();
        });
    }

    void receive() {
        socket_.async_receive_from(asio::buffer(rx_), from_, [this](std::error_code ec, std::size_t n) {
            if (!running_ || ec == asio::error::operation_aborted) return;
            if (!ec && from_ == cfg_.dispatch && candidates_.empty() && on_answer(n)) return;
            receive();
        });
    }

    bool on_answer(std::size_t n) {
        json m = json::parse(rx_.begin(), rx_.begin() + static_cast<std::ptrdiff_t>(n), nullptr, false);
        if (!m.is_object() || m.value("id", std::string()) != "edges" || !m.contains("edges") || !m["edges"].is_array()) return false;
        probe_config pc;
        pc.interval = std::chrono::milliseconds(50);
        prober_ = std::make_unique<prober<transport::udp>>(pc, io_, transport::endpoint(socket_.local_endpoint().address(), 0));
        for (const auto& e : m["edges"]) {
            if (!e.is_object()) continue;
            const auto media = transport::parse_address(e.value("media", std::string()));
            const std::string node = e.value("node", std::string());
            if (!media || node.empty()) continue;
            edge_candidate c;
            c.node = node;
            c.media = *media;
            c.control = e.value("control", std::string());
            c.load = e.contains("load") && e["load"].is_number() ? e["load"].get<double>() : 0.0;
            c.rank = candidates_.size();
            if (const auto probe = transport::parse_address(e.value("probe", std::string()))) prober_->add_peer(node, *probe);
            candidates_.push_back(std::move(c));
        }
        if (candidates_.empty()) {
            finish(std::make_error_code(std::errc::host_unreachable));
            return true;
        }
        prober_->start();
        timer_.expires_after(cfg_.probe_for);
        timer_.async_wait([this](std::error_code ec) {
            if (!ec) rank();
        });
        return true;
    }

    void rank() {
        for (auto& c : candidates_)
            if (const auto m = prober_->measure(c.node)) c.rtt_ms = m->rtt_ms;
        const double w = cfg_.rank_weight_ms;
        std::stable_sort(candidates_.begin(), candidates_.end(), [w](const edge_candidate& a, const edge_candidate& b) {
            const bool ra = std::isfinite(a.rtt_ms), rb = std::isfinite(b.rtt_ms);
            if (ra != rb) return ra;
            if (!ra) return a.rank < b.rank;
            return a.rtt_ms + w * static_cast<double>(a.rank) < b.rtt_ms + w * static_cast<double>(b.rank);
        });
        finish({});
    }

    void finish(std::error_code ec) {
        auto done = std::move(done_);
        auto out = std::move(candidates_);
        cancel();
        if (done) done(ec, std::move(out));
    }

    edge_selector_config cfg_;
    asio::io_context& io_;
    transport::udp socket_;
    asio::steady_timer timer_;
    std::unique_ptr<prober<transport::udp>> prober_;
    std::vector<edge_candidate> candidates_;
    std::chrono::steady_clock::time_point asked_{};
    std::array<char, 16384> rx_{};
    transport::endpoint from_;
    handler done_;
    bool running_ = false;
};

} // namespace onair::dispatch
