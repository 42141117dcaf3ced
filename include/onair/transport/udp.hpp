// onair — transport::udp: one non-blocking UDP socket on an io_context.
#pragma once

#include "onair/transport/concepts.hpp"

#include <asio/io_context.hpp>
#include <asio/basic_datagram_socket.hpp>
#include <asio/ip/udp.hpp>
#include <asio/socket_base.hpp>

#include <utility>

namespace onair::transport {

/// A UDP socket bound to one local address; every stream of a node shares it and is told
/// apart by SSRC. Sends are non-blocking: when the kernel buffer is full the datagram is
/// dropped and counted, so the media path never stalls on the network.
///
/// Thread safety: use from the thread running its io_context only.
class udp {
public:
    using executor_type = asio::io_context::executor_type;
    using socket_type = asio::basic_datagram_socket<asio::ip::udp, executor_type>;

    /// Binds to `local` (port 0 picks an ephemeral port). Throws std::system_error.
    udp(asio::io_context& ctx, const endpoint& local, int buffer_bytes = 4 << 20)
        : socket_(ctx.get_executor(), local.protocol()) {
        socket_.set_option(asio::socket_base::reuse_address(true));
        std::error_code ignored; // the kernel caps these at rmem_max/wmem_max: best effort
        socket_.set_option(asio::socket_base::receive_buffer_size(buffer_bytes), ignored);
        socket_.set_option(asio::socket_base::send_buffer_size(buffer_bytes), ignored);
        socket_.bind(local);
        socket_.non_blocking(true);
    }

    executor_type get_executor() noexcept { return socket_.get_executor(); }

    template <class Buffers>
    std::error_code send_to(const Buffers& buffers, const endpoint& to) {
        std::error_code ec;
        const std::size_t n = socket_.send_to(buffers, to, 0, ec);
        if (ec) {
            ++stats_.send_dropped;
            return ec;
        }
        ++stats_.datagrams_sent;
        stats_.bytes_sent += n;
        return {};
    }

    template <class Handler>
    void async_receive_from(asio::mutable_buffer into, endpoint& from, Handler&& h) {
        socket_.async_receive_from(into, from,
            [this, h = std::forward<Handler>(h)](std::error_code ec, std::size_t n) mutable {
                if (!ec) {
                    ++stats_.datagrams_received;
                    stats_.bytes_received += n;
                }
                h(ec, n);
            });
    }

    endpoint local_endpoint() const { return socket_.local_endpoint(); }
    void close() {
        std::error_code ignored;
        socket_.close(ignored);
    }
    const transport_stats& stats() const noexcept { return stats_; }
    socket_type& socket() noexcept { return socket_; }

private:
    socket_type socket_;
    transport_stats stats_;
};

} // namespace onair::transport
