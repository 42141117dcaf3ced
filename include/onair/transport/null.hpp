// onair — transport::null: the do-nothing transport (sends vanish, nothing is received).
#pragma once

#include "onair/transport/concepts.hpp"

#include <asio/io_context.hpp>

namespace onair::transport {

/// Accepts every send and never receives. Useful to run a role with no network at all.
class null {
public:
    using executor_type = asio::io_context::executor_type;
    explicit null(asio::io_context& ctx) : ex_(ctx.get_executor()) {}

    executor_type get_executor() const noexcept { return ex_; }
    template <class Buffers>
    std::error_code send_to(const Buffers& b, const endpoint&) {
        ++stats_.datagrams_sent;
        stats_.bytes_sent += asio::buffer_size(b);
        return {};
    }
    template <class Handler>
    void async_receive_from(asio::mutable_buffer, endpoint&, Handler&&) {}
    endpoint local_endpoint() const { return {}; }
    void close() {}
    const transport_stats& stats() const noexcept { return stats_; }

private:
    executor_type ex_;
    transport_stats stats_;
};

} // namespace onair::transport
