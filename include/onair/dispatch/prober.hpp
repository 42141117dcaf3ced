// onair — link probing between relay nodes: RTT, loss and jitter to each peer, over UDP.
//
// Every interval a node sends each peer a probe; the peer echoes it. A probe carries a
// sequence number, a random 64-bit nonce and the sender's send time:
//
//   "ONPR" | kind u8 (1 request, 2 response) | 0 u8 x3 | seq u32 | nonce u64 | sent_us u64
//
// A response counts only if it comes from the peer's address and echoes a nonce the node
// sent in one of its last `window` probes, so a flood of forged responses measures
// nothing, and a flood of requests is answered at most `answers_per_second` per source.
// Loss is the share of the last `window` probes (older than `timeout`) never answered;
// jitter is the RFC 3550 §6.4.1 estimate over successive RTTs.
#pragma once

#include "onair/core/timer.hpp"
#include "onair/dispatch/topology.hpp"
#include "onair/rtp/packet.hpp"
#include "onair/transport/concepts.hpp"

#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace onair::dispatch {

struct probe_config {
    std::chrono::milliseconds interval{200};
    std::chrono::milliseconds timeout{1000}; ///< a probe unanswered this long is lost
    std::size_t window = 50;                 ///< probes a measurement covers (10 s at 200 ms)
    double answers_per_second = 50;          ///< requests answered per source address
    std::size_t max_sources = 4096;          ///< sources tracked for that limit; beyond, unknown ones are not answered
};

struct prober_stats {
    std::uint64_t probes_sent = 0;
    std::uint64_t responses = 0;          ///< answers to this node's probes, accepted
    std::uint64_t responses_refused = 0;  ///< unknown nonce, wrong source, or too late
    std::uint64_t requests_answered = 0;
    std::uint64_t requests_limited = 0;   ///< not answered: over the per-source rate
    std::uint64_t malformed = 0;
};

inline constexpr std::size_t probe_size = 28;

/// Thread safety: everything on the transport's executor.
template <class Transport>
class prober {
    static_assert(transport::transport<Transport>, "Transport type requirements not met (see onair/transport/concepts.hpp)");

public:
    using clock = std::chrono::steady_clock;

    template <class... Args>
    explicit prober(probe_config cfg, Args&&... transport_args)
        : transport_(std::forward<Args>(transport_args)...), cfg_(cfg), timer_(transport_.get_executor()),
          rng_(std::random_device{}()) {}
    prober(const prober&) = delete;
    prober& operator=(const prober&) = delete;

    void add_peer(const std::string& id, const transport::endpoint& at) {
        auto& p = peers_[id];
        p.at = at;
        p.slots.assign(cfg_.window, {});
    }
    void remove_peer(const std::string& id) { peers_.erase(id); }

    void start() {
        running_ = true;
        receive();
        tick();
    }
    void stop() {
        running_ = false;
        timer_.cancel();
        transport_.close();
    }

    /// What the last `window` probes to `id` say, once one was answered.
    std::optional<link_sample> measure(const std::string& id, clock::time_point now = clock::now()) const {
        auto it = peers_.find(id);
        if (it == peers_.end() || !it->second.answered_any) return std::nullopt;
        const peer& p = it->second;
        std::size_t due = 0, lost = 0;
        for (const auto& s : p.slots) {
            if (!s.used || now - s.sent < cfg_.timeout) continue;
            ++due;
            lost += !s.answered;
        }
        link_sample out;
        out.rtt_ms = p.srtt_ms;
        out.loss = due ? static_cast<double>(lost) / static_cast<double>(due) : 0.0;
        out.jitter_ms = p.jitter_ms;
        return out;
    }

    transport::endpoint local_endpoint() const { return transport_.local_endpoint(); }
    const prober_stats& stats() const noexcept { return stats_; }
    Transport& transport() noexcept { return transport_; }

private:
    struct slot {
        bool used = false, answered = false;
        std::uint32_t seq = 0;
        std::uint64_t nonce = 0;
        clock::time_point sent{};
    };
    struct peer {
        transport::endpoint at;
        std::vector<slot> slots;
        std::uint32_t next_seq = 0;
        bool answered_any = false;
        double srtt_ms = 0, last_rtt_ms = -1, jitter_ms = 0;
    };
    struct source {
        double tokens = 0;
        clock::time_point refilled{};
    };

    static std::uint64_t micros(clock::time_point t) {
        return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count());
    }
    static void write(std::array<std::uint8_t, probe_size>& b, std::uint8_t kind, std::uint32_t seq, std::uint64_t nonce, std::uint64_t sent_us) {
        std::memcpy(b.data(), "ONPR", 4);
        b[4] = kind;
        b[5] = b[6] = b[7] = 0;
        rtp::store_be32(&b[8], seq);
        rtp::store_be32(&b[12], static_cast<std::uint32_t>(nonce >> 32));
        rtp::store_be32(&b[16], static_cast<std::uint32_t>(nonce));
        rtp::store_be32(&b[20], static_cast<std::uint32_t>(sent_us >> 32));
        rtp::store_be32(&b[24], static_cast<std::uint32_t>(sent_us));
    }

    void tick() {
        if (!running_) return;
        const auto now = clock::now();
        for (auto& [id, p] : peers_) {
            slot& s = p.slots[p.next_seq % p.slots.size()];
            s = {true, false, p.next_seq, rng_(), now};
            std::array<std::uint8_t, probe_size> b;
            write(b, 1, s.seq, s.nonce, micros(now));
            transport_.send_to(asio::buffer(b), p.at);
            ++stats_.probes_sent;
            ++p.next_seq;
        }
        timer_.expires_after(cfg_.interval);
        timer_.async_wait([this](std::error_code ec) {
            if (!ec) tick();
        });
    }

    void receive() {
        transport_.async_receive_from(asio::buffer(rx_), from_, [this](std::error_code ec, std::size_t n) {
            if (!running_ || ec == asio::error::operation_aborted) return;
            if (!ec) on_datagram(n);
            receive();
        });
    }

    void on_datagram(std::size_t n) {
        if (n != probe_size || std::memcmp(rx_.data(), "ONPR", 4) != 0 || (rx_[4] != 1 && rx_[4] != 2)) {
            ++stats_.malformed;
            return;
        }
        const std::uint32_t seq = rtp::load_be32(&rx_[8]);
        const std::uint64_t nonce = (std::uint64_t{rtp::load_be32(&rx_[12])} << 32) | rtp::load_be32(&rx_[16]);
        const auto now = clock::now();
        if (rx_[4] == 1) return answer(now);
        for (auto& [id, p] : peers_) {
            if (p.at != from_) continue;
            slot& s = p.slots[seq % p.slots.size()];
            if (!s.used || s.seq != seq || s.nonce != nonce || s.answered || now - s.sent >= cfg_.timeout) break;
            s.answered = true;
            ++stats_.responses;
            const double rtt = std::chrono::duration<double, std::milli>(now - s.sent).count();
            p.srtt_ms = p.answered_any ? p.srtt_ms + (rtt - p.srtt_ms) / 8 : rtt;
            if (p.last_rtt_ms >= 0) p.jitter_ms += (std::abs(rtt - p.last_rtt_ms) - p.jitter_ms) / 16;
            p.last_rtt_ms = rtt;
            p.answered_any = true;
            return;
        }
        ++stats_.responses_refused;
    }

    void answer(clock::time_point now) {
        auto it = sources_.find(from_);
        if (it == sources_.end()) {
            if (sources_.size() >= cfg_.max_sources) std::erase_if(sources_, [&](const auto& kv) { return now - kv.second.refilled > std::chrono::seconds(10); });
            if (sources_.size() >= cfg_.max_sources) {
                ++stats_.requests_limited;
                return;
            }
            it = sources_.emplace(from_, source{cfg_.answers_per_second, now}).first;
        }
        source& s = it->second;
        s.tokens = std::min(cfg_.answers_per_second, s.tokens + std::chrono::duration<double>(now - s.refilled).count() * cfg_.answers_per_second);
        s.refilled = now;
        if (s.tokens < 1) {
            ++stats_.requests_limited;
            return;
        }
        s.tokens -= 1;
        std::array<std::uint8_t, probe_size> b;
        std::memcpy(b.data(), rx_.data(), probe_size); // the request's send time, echoed
        b[4] = 2;
        transport_.send_to(asio::buffer(b), from_);
        ++stats_.requests_answered;
    }

    Transport transport_;
    probe_config cfg_;
    steady_timer_for<typename Transport::executor_type> timer_;
    std::mt19937_64 rng_; ///< nonces: only the peer sees them
    std::map<std::string, peer> peers_;
    std::map<transport::endpoint, source> sources_;
    std::array<std::uint8_t, 64> rx_{};
    transport::endpoint from_;
    bool running_ = false;
    prober_stats stats_;
};

} // namespace onair::dispatch
