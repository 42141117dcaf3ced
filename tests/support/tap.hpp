// Test support: tap<Next>, a transport layer that records every datagram it sends and
// receives, so a test can compare the bytes a host sent with the bytes a viewer got.
#pragma once

#include <onair/transport/concepts.hpp>

#include <cstdint>
#include <utility>
#include <vector>

namespace onair_test {

struct tap_log {
    std::vector<std::vector<std::uint8_t>> sent;
    std::vector<std::vector<std::uint8_t>> received;
};

/// Records datagrams, then hands them to/from the next layer unchanged.
/// Thread safety: as Next; the log is written on the transport's thread.
template <class Next>
class tap {
public:
    using executor_type = typename Next::executor_type;

    template <class... Args>
    explicit tap(tap_log& log, Args&&... next_args) : log_(&log), next_(std::forward<Args>(next_args)...) {}

    executor_type get_executor() { return next_.get_executor(); }

    template <class Buffers>
    std::error_code send_to(const Buffers& buffers, const onair::transport::endpoint& to) {
        std::vector<std::uint8_t> d(asio::buffer_size(buffers));
        asio::buffer_copy(asio::buffer(d), buffers);
        log_->sent.push_back(std::move(d));
        return next_.send_to(buffers, to);
    }

    template <class Handler>
    void async_receive_from(asio::mutable_buffer into, onair::transport::endpoint& from, Handler&& h) {
        next_.async_receive_from(into, from, [this, into, h = std::forward<Handler>(h)](std::error_code ec, std::size_t n) mutable {
            if (!ec) {
                const auto* p = static_cast<const std::uint8_t*>(into.data());
                log_->received.emplace_back(p, p + n);
            }
            h(ec, n);
        });
    }

    onair::transport::endpoint local_endpoint() const { return next_.local_endpoint(); }
    void close() { next_.close(); }
    const onair::transport::transport_stats& stats() const noexcept { return next_.stats(); }
    Next& next_layer() noexcept { return next_; }

private:
    tap_log* log_;
    Next next_;
};

} // namespace onair_test
