// onair — transport::udp: one non-blocking UDP socket on an io_context.
#pragma once

#include "onair/transport/concepts.hpp"

#include <asio/io_context.hpp>
#include <asio/basic_datagram_socket.hpp>
#include <asio/ip/udp.hpp>
#include <asio/socket_base.hpp>

#include "onair/core/packet_buffer.hpp"

#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <memory>
#include <span>
#include <utility>

namespace onair::transport {

/// Datagrams a udp transport receives with one recvmmsg, and sends with one sendmmsg.
inline constexpr std::size_t udp_batch = 64;
/// Datagrams queued for sending before the queue is flushed on its own.
inline constexpr std::size_t udp_send_queue = 512;

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

    // ---- batched I/O, for a node that forwards (basic_relay_node uses it when present) ----

    /// Calls `h(error_code)` when the socket has something to read.
    template <class Handler>
    void async_wait_readable(Handler&& h) {
        socket_.async_wait(socket_type::wait_read, std::forward<Handler>(h));
    }

    /// Receives up to bufs.size() (at most udp_batch) datagrams at once, without waiting:
    /// datagram i into bufs[i] (resized to it; a datagram that fills the whole buffer is
    /// reported with the full capacity, as cut short), its source into from[i]. Returns how
    /// many (0: none waiting, or an error).
    std::size_t receive_many(std::span<packet_ref> bufs, std::span<endpoint> from) noexcept {
        const std::size_t n = std::min({bufs.size(), from.size(), udp_batch});
        std::array<mmsghdr, udp_batch> msgs;
        std::array<iovec, udp_batch> iov;
        for (std::size_t i = 0; i < n; ++i) {
            auto cap = bufs[i].capacity();
            iov[i] = {cap.data(), cap.size()};
            msgs[i] = {};
            msgs[i].msg_hdr.msg_name = from[i].data();
            msgs[i].msg_hdr.msg_namelen = static_cast<socklen_t>(from[i].capacity());
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        const int got = ::recvmmsg(socket_.native_handle(), msgs.data(), static_cast<unsigned>(n), MSG_DONTWAIT, nullptr);
        if (got <= 0) return 0;
        for (std::size_t i = 0; i < static_cast<std::size_t>(got); ++i) {
            from[i].resize(msgs[i].msg_hdr.msg_namelen);
            bufs[i].resize(msgs[i].msg_len);
            ++stats_.datagrams_received;
            stats_.bytes_received += msgs[i].msg_len;
        }
        return static_cast<std::size_t>(got);
    }

    /// Queues `head` followed by `tail` as one datagram to `to`, sent at the next
    /// flush_sends() (or now, when the queue is full). `head`, and `tail` unless
    /// `tail_stays` (the caller keeps it unchanged until the flush, e.g. a received packet
    /// held for the batch), are copied. A datagram the kernel will not take at the flush is
    /// dropped and counted, as send_to() does.
    void queue_send(const endpoint& to, std::span<const std::uint8_t> head, std::span<const std::uint8_t> tail, bool tail_stays) noexcept {
        if (!out_) out_ = std::make_unique<send_queue>();
        send_queue& q = *out_;
        const std::size_t copy = head.size() + (tail_stays ? 0 : tail.size());
        if (q.count == udp_send_queue || q.used + copy > q.arena.size()) flush_sends();
        if (copy > q.arena.size()) { // larger than any datagram: refused as the kernel would
            ++stats_.send_dropped;
            return;
        }
        const std::size_t i = q.count++;
        std::uint8_t* at = q.arena.data() + q.used;
        if (!head.empty()) std::memcpy(at, head.data(), head.size());
        if (!tail_stays && !tail.empty()) {
            std::memcpy(at + head.size(), tail.data(), tail.size());
            q.iov[2 * i] = {at, copy};
            q.iov[2 * i + 1] = {nullptr, 0};
        } else {
            q.iov[2 * i] = {at, head.size()};
            q.iov[2 * i + 1] = {const_cast<std::uint8_t*>(tail.data()), tail.size()};
        }
        q.used += (copy + 7) & ~std::size_t{7};
        q.to[i] = to;
        q.bytes[i] = head.size() + tail.size();
    }

    /// Sends what queue_send() queued: sendmmsg, udp_batch datagrams per call.
    void flush_sends() noexcept {
        if (!out_ || out_->count == 0) return;
        send_queue& q = *out_;
        std::array<mmsghdr, udp_batch> msgs;
        for (std::size_t first = 0; first < q.count;) {
            const std::size_t n = std::min(udp_batch, q.count - first);
            for (std::size_t j = 0; j < n; ++j) {
                const std::size_t i = first + j;
                msgs[j] = {};
                msgs[j].msg_hdr.msg_name = const_cast<void*>(static_cast<const void*>(q.to[i].data()));
                msgs[j].msg_hdr.msg_namelen = static_cast<socklen_t>(q.to[i].size());
                msgs[j].msg_hdr.msg_iov = &q.iov[2 * i];
                msgs[j].msg_hdr.msg_iovlen = q.iov[2 * i + 1].iov_len ? 2 : 1;
            }
            const int sent = ::sendmmsg(socket_.native_handle(), msgs.data(), static_cast<unsigned>(n), MSG_DONTWAIT);
            const std::size_t done = sent > 0 ? static_cast<std::size_t>(sent) : 0;
            for (std::size_t j = 0; j < done; ++j) {
                ++stats_.datagrams_sent;
                stats_.bytes_sent += q.bytes[first + j];
            }
            if (done == n) {
                first += n;
                continue;
            }
            // The datagram at first + done was refused (a full buffer, an unreachable
            // destination): dropped, and the rest go on.
            ++stats_.send_dropped;
            first += done + 1;
        }
        q.count = 0;
        q.used = 0;
    }

    endpoint local_endpoint() const { return socket_.local_endpoint(); }
    void close() {
        std::error_code ignored;
        socket_.close(ignored);
    }
    const transport_stats& stats() const noexcept { return stats_; }
    socket_type& socket() noexcept { return socket_; }

private:
    struct send_queue {
        std::size_t count = 0, used = 0;
        std::array<endpoint, udp_send_queue> to;
        std::array<std::size_t, udp_send_queue> bytes;
        std::array<iovec, 2 * udp_send_queue> iov;
        std::array<std::uint8_t, 256 * 1024> arena; ///< copied heads and whole datagrams
    };

    socket_type socket_;
    transport_stats stats_;
    std::unique_ptr<send_queue> out_; ///< made at the first queue_send()
};

} // namespace onair::transport
