// onair — transport::memory: datagrams between objects in one process, for tests.
//
// A memory::network is a switchboard; each memory transport registers an endpoint on it
// (made-up 127.0.0.1 ports). Delivery is posted to the receiver's executor, so roles behave
// as over UDP (asynchronous, possibly on other threads) but nothing touches the kernel.
// A filter on the network injects faults: it sees every datagram and may drop it
// (Beast's test::stream with fail_count plays the same part).
#pragma once

#include "onair/transport/concepts.hpp"

#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include <atomic>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

namespace onair::transport {

namespace memory_detail {
struct port_state {
    explicit port_state(asio::io_context::executor_type e) : ex(e) {}
    asio::io_context::executor_type ex;
    endpoint local;
    // Touched only on ex:
    std::deque<std::pair<std::vector<std::uint8_t>, endpoint>> queue;
    asio::mutable_buffer pending_buf;
    endpoint* pending_from = nullptr;
    std::function<void(std::error_code, std::size_t)> pending; // test transport: fine to erase
    bool closed = false;
    transport_stats stats;
};
} // namespace memory_detail

/// The in-process switchboard. Thread safety: all members may be called from any thread.
class memory_network {
public:
    /// Returns false to drop the datagram (fault injection). Called on the sender's thread.
    using filter_type = std::function<bool(const endpoint& from, const endpoint& to, std::span<const std::uint8_t>)>;

    void set_filter(filter_type f) {
        std::lock_guard lock(mu_);
        filter_ = std::move(f);
    }
    std::uint64_t filtered() const noexcept { return filtered_.load(); }
    std::uint64_t undeliverable() const noexcept { return undeliverable_.load(); }

private:
    friend class memory;
    endpoint attach(const std::shared_ptr<memory_detail::port_state>& p, endpoint wanted) {
        std::lock_guard lock(mu_);
        if (wanted.port() == 0) {
            while (ports_.count(endpoint(wanted.address(), next_port_))) ++next_port_;
            wanted.port(next_port_++);
        }
        ports_[wanted] = p;
        return wanted;
    }
    void detach(const endpoint& e) {
        std::lock_guard lock(mu_);
        ports_.erase(e);
    }
    void deliver(const endpoint& from, const endpoint& to, std::vector<std::uint8_t> data) {
        std::shared_ptr<memory_detail::port_state> dst;
        {
            std::lock_guard lock(mu_);
            if (filter_ && !filter_(from, to, data)) {
                ++filtered_;
                return;
            }
            auto it = ports_.find(to);
            if (it != ports_.end()) dst = it->second.lock();
        }
        if (!dst) {
            ++undeliverable_;
            return;
        }
        asio::post(dst->ex, [dst, from, d = std::move(data)]() mutable {
            if (dst->closed) return;
            ++dst->stats.datagrams_received;
            dst->stats.bytes_received += d.size();
            if (dst->pending) {
                const std::size_t n = std::min(d.size(), dst->pending_buf.size());
                if (n) std::memcpy(dst->pending_buf.data(), d.data(), n);
                *dst->pending_from = from;
                auto h = std::exchange(dst->pending, nullptr);
                h(std::error_code{}, n);
            } else {
                dst->queue.emplace_back(std::move(d), from);
            }
        });
    }

    std::mutex mu_;
    filter_type filter_;
    std::map<endpoint, std::weak_ptr<memory_detail::port_state>> ports_;
    unsigned short next_port_ = 20000;
    std::atomic<std::uint64_t> filtered_{0}, undeliverable_{0};
};

/// One endpoint on a memory_network.
/// Thread safety: use from the thread running its io_context only.
class memory {
public:
    using executor_type = asio::io_context::executor_type;

    memory(asio::io_context& ctx, memory_network& net,
           const endpoint& local = endpoint(asio::ip::make_address_v4("127.0.0.1"), 0))
        : net_(&net), state_(std::make_shared<memory_detail::port_state>(ctx.get_executor())) {
        state_->local = net.attach(state_, local);
    }
    memory(const memory&) = delete;
    memory& operator=(const memory&) = delete;
    ~memory() { close(); }

    executor_type get_executor() const noexcept { return state_->ex; }

    template <class Buffers>
    std::error_code send_to(const Buffers& buffers, const endpoint& to) {
        std::vector<std::uint8_t> d(asio::buffer_size(buffers));
        asio::buffer_copy(asio::buffer(d), buffers);
        ++state_->stats.datagrams_sent;
        state_->stats.bytes_sent += d.size();
        net_->deliver(state_->local, to, std::move(d));
        return {};
    }

    template <class Handler>
    void async_receive_from(asio::mutable_buffer into, endpoint& from, Handler&& h) {
        auto& s = *state_;
        if (!s.queue.empty()) {
            auto [d, src] = std::move(s.queue.front());
            s.queue.pop_front();
            const std::size_t n = std::min(d.size(), into.size());
            if (n) std::memcpy(into.data(), d.data(), n);
            from = src;
            asio::post(s.ex, [h = std::forward<Handler>(h), n]() mutable { h(std::error_code{}, n); });
            return;
        }
        s.pending_buf = into;
        s.pending_from = &from;
        s.pending = [h = std::make_shared<std::decay_t<Handler>>(std::forward<Handler>(h))](
                        std::error_code ec, std::size_t n) { (*h)(ec, n); };
    }

    endpoint local_endpoint() const { return state_->local; }
    void close() {
        if (state_->closed) return;
        state_->closed = true;
        net_->detach(state_->local);
        if (auto h = std::exchange(state_->pending, nullptr))
            asio::post(state_->ex, [h] { h(asio::error::operation_aborted, 0); });
    }
    const transport_stats& stats() const noexcept { return state_->stats; }

private:
    memory_network* net_;
    std::shared_ptr<memory_detail::port_state> state_;
};

} // namespace onair::transport
