// onair — transport::udp: one non-blocking UDP socket on an io_context.
#pragma once

#include "onair/transport/concepts.hpp"

#include <asio/io_context.hpp>
#include <asio/basic_datagram_socket.hpp>
#include <asio/ip/udp.hpp>
#include <asio/socket_base.hpp>

#include "onair/core/packet_buffer.hpp"

#include <netinet/in.h>
#include <netinet/udp.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <thread>
#include <utility>
#include <vector>

namespace onair::transport {

/// Datagrams a udp transport receives with one recvmmsg, and sends with one sendmmsg.
inline constexpr std::size_t udp_batch = 64;
/// Datagrams queued for sending before the queue is flushed on its own: what a batch of
/// received packets fans out to, so that GSO finds several datagrams per destination even
/// with thousands of them (64 x 256, about 4 MB with the arena, made at the first send).
inline constexpr std::size_t udp_send_queue = 16384;
/// Most datagrams one UDP GSO send carries (the kernel's limit), and most bytes.
inline constexpr std::size_t udp_gso_segments = 64;
inline constexpr std::size_t udp_gso_bytes = 63 * 1024;
/// Send workers (udp::set_send_workers): a flush shorter than this is sent by the calling
/// thread alone (waking a worker costs more than it saves), and the most threads a flush uses.
inline constexpr std::size_t udp_split_min = 16;
inline constexpr std::size_t udp_max_send_workers = 16;

/// Whether sockets use UDP generic segmentation offload where the kernel has it: on unless
/// the environment says ONAIR_UDP_GSO=0 (read once).
inline bool udp_gso_wanted() noexcept {
    static const bool wanted = [] {
        const char* v = std::getenv("ONAIR_UDP_GSO");
        return !(v && v[0] == '0');
    }();
    return wanted;
}

/// A UDP socket bound to one local address; every stream of a node shares it and is told
/// apart by SSRC. Sends are non-blocking: when the kernel buffer is full the datagram is
/// dropped and counted, so the media path never stalls on the network.
///
/// Thread safety: use from the thread running its io_context only (send workers, when
/// set, are internal to flush_sends()).
class udp {
public:
    using executor_type = asio::io_context::executor_type;
    using socket_type = asio::basic_datagram_socket<asio::ip::udp, executor_type>;

    /// Binds to `local` (port 0 picks an ephemeral port). Throws std::system_error, also
    /// when the port is taken: no SO_REUSEADDR, which on UDP lets two sockets share a port
    /// (the kernel may even pick a taken ephemeral port for a second such socket) and
    /// splits one's traffic between them. UDP has no TIME_WAIT: a restarted node rebinds
    /// its port without it.
    udp(asio::io_context& ctx, const endpoint& local, int buffer_bytes = 4 << 20)
        : socket_(ctx.get_executor(), local.protocol()) {
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
        if (!out_) {
            out_ = std::make_unique<send_queue>();
            out_->head.fill(-1);
        }
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

    /// Sends what queue_send() queued: sendmmsg, udp_batch messages per call. With GSO
    /// (gso()), the datagrams to one destination, in their queued order, go as one message
    /// wherever they have the same size (the last of a run may be shorter), up to
    /// udp_gso_segments of them; datagrams to different destinations may leave in another
    /// order than queued, those to one destination never do. A kernel that refuses a GSO
    /// message whose datagrams it then takes one by one (no segmentation on the route)
    /// turns GSO off for the socket; the rest of the flush goes one by one.
    ///
    /// With send workers (set_send_workers()), a flush of at least udp_split_min datagrams
    /// to two or more destinations is cut at destination boundaries into one share per
    /// worker, by datagram count; the calling thread sends the first share while the
    /// workers send theirs, and the call returns when every share is sent (the queued
    /// buffers stay the caller's until then).
    void flush_sends() noexcept {
        if (!out_ || out_->count == 0) return;
        send_queue& q = *out_;
        const std::size_t shares = workers_ ? workers_->slots.size() + 1 : 1;
        const bool split = shares > 1 && q.count >= udp_split_min;
        std::size_t groups = 1;
        if (gso_ || split) groups = group_by_destination(q);
        else
            for (std::size_t i = 0; i < q.count; ++i) q.order[i] = static_cast<std::uint32_t>(i);
        bool refused = false;
        if (split && groups > 1) {
            // Share w ends at the first destination boundary at or after (w + 1) / shares
            // of the queue.
            worker_pool& wp = *workers_;
            std::size_t from = 0, first_end = 0;
            for (std::size_t w = 0; w < shares; ++w) {
                std::size_t to = w + 1 == shares ? q.count : std::max(from, (q.count * (w + 1)) / shares);
                while (to > 0 && to < q.count && q.group[to] == q.group[to - 1]) ++to;
                if (w == 0) first_end = to;
                else if (to > from) { // an empty share wakes nobody: its worker's done stays at go
                    send_worker& sw = *wp.slots[w - 1];
                    sw.job = {&q, from, to, socket_.native_handle(), gso_};
                    sw.go.fetch_add(1, std::memory_order_release);
                    sw.go.notify_one();
                }
                from = to;
            }
            send_share share{&q, 0, first_end, socket_.native_handle(), gso_};
            refused = send_positions(share, stats_);
            ++stats_.split_flushes;
            for (auto& sw : wp.slots) {
                const std::uint32_t gen = sw->go.load(std::memory_order_relaxed);
                for (std::uint32_t d = sw->done.load(std::memory_order_acquire); d != gen; d = sw->done.load(std::memory_order_acquire))
                    sw->done.wait(d, std::memory_order_acquire);
                add(stats_, sw->stats);
                sw->stats = {};
                refused = refused || sw->refused;
                sw->refused = false;
            }
        } else {
            send_share all{&q, 0, q.count, socket_.native_handle(), gso_};
            refused = send_positions(all, stats_);
        }
        if (refused) {
            gso_ = false;
            ++stats_.gso_refused;
        }
        q.count = 0;
        q.used = 0;
    }

    /// Sends flushes on `n` threads: this one and n - 1 workers it starts (1: no workers,
    /// the default; at most udp_max_send_workers). The workers share this socket (one
    /// local address), wait on an atomic between flushes and take no lock; they stop and
    /// are joined with the transport.
    void set_send_workers(std::size_t n) {
        n = std::clamp<std::size_t>(n, 1, udp_max_send_workers);
        if (n == send_workers()) return;
        workers_.reset(); // joins the old ones
        if (n > 1) workers_ = std::make_unique<worker_pool>(n - 1);
    }
    std::size_t send_workers() const noexcept { return workers_ ? workers_->slots.size() + 1 : 1; }
    /// CPU time the send workers used (their thread clocks, summed; 0 without workers).
    std::chrono::nanoseconds send_workers_cpu() const noexcept {
        std::chrono::nanoseconds sum{0};
        if (workers_)
            for (const auto& w : workers_->slots) {
                clockid_t id;
                timespec ts{};
                if (pthread_getcpuclockid(w->thread.native_handle(), &id) == 0 && clock_gettime(id, &ts) == 0)
                    sum += std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
            }
        return sum;
    }

    /// UDP GSO in flush_sends(): on where the kernel has it (and udp_gso_wanted()), off
    /// after the kernel refused it once.
    bool gso() const noexcept { return gso_; }
    void set_gso(bool on) noexcept { gso_ = on && gso_supported(); }

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
        std::array<std::uint8_t, 2 * 1024 * 1024> arena; ///< copied heads and whole datagrams
        // flush_sends(): the sending order (queue indices, grouped by destination), each
        // position's destination group, the iovecs of the messages (from 2 x their first
        // position).
        std::array<std::uint32_t, udp_send_queue> order;
        std::array<std::uint32_t, udp_send_queue> group;
        std::array<iovec, 2 * udp_send_queue> flat;
        // group_by_destination(): an open-addressed table of destinations (group heads and
        // tails as queue indices, -1 for none) and each entry's successor in its group.
        static constexpr std::size_t table = 2 * udp_send_queue;
        std::array<std::int32_t, table> head, tail; ///< head: all -1 between flushes
        std::array<std::int32_t, udp_send_queue> next;
        std::array<std::int32_t, udp_send_queue> heads; ///< group heads in first-queued order
    };

    static bool gso_supported() noexcept {
        if (!udp_gso_wanted()) return false;
#ifdef UDP_SEGMENT
        return true;
#else
        return false;
#endif
    }

    static std::size_t hash(const endpoint& e) noexcept {
        std::size_t h = e.port() * 0x9e3779b1u;
        const auto* p = static_cast<const std::uint8_t*>(static_cast<const void*>(e.data()));
        for (std::size_t i = 0; i < e.size(); ++i) h = (h ^ p[i]) * 0x100000001b3ull;
        return h;
    }

    /// q.order: the queue's datagrams grouped by destination (groups in the order of their
    /// first datagram, each group in queued order); q.group[k]: the group of position k.
    /// Returns how many destinations. No allocation, linear in the queue.
    static std::size_t group_by_destination(send_queue& q) noexcept {
        std::size_t groups = 0;
        for (std::size_t i = 0; i < q.count; ++i) {
            std::size_t h = hash(q.to[i]) & (send_queue::table - 1);
            while (q.head[h] >= 0 && !(q.to[static_cast<std::size_t>(q.head[h])] == q.to[i])) h = (h + 1) & (send_queue::table - 1);
            q.next[i] = -1;
            if (q.head[h] < 0) {
                q.head[h] = q.tail[h] = static_cast<std::int32_t>(i);
                q.heads[groups++] = static_cast<std::int32_t>(h);
            } else {
                q.next[static_cast<std::size_t>(q.tail[h])] = static_cast<std::int32_t>(i);
                q.tail[h] = static_cast<std::int32_t>(i);
            }
        }
        std::size_t k = 0;
        for (std::size_t g = 0; g < groups; ++g)
            for (std::int32_t i = q.head[static_cast<std::size_t>(q.heads[g])]; i >= 0; i = q.next[static_cast<std::size_t>(i)]) {
                q.order[k] = static_cast<std::uint32_t>(i);
                q.group[k++] = static_cast<std::uint32_t>(g);
            }
        for (std::size_t g = 0; g < groups; ++g) q.head[static_cast<std::size_t>(q.heads[g])] = -1; // cleared for the next flush
        return groups;
    }

    /// One thread's part of a flush: positions [from, to) of q->order, whole destinations.
    struct send_share {
        send_queue* q = nullptr;
        std::size_t from = 0, to = 0;
        int fd = -1;
        bool gso = false;
    };

    /// Sends positions [s.from, s.to) of s.q->order, counting into `st` (each thread its
    /// own). A message's iovecs go at q.flat[2 * its first position] (no more than two per
    /// datagram), so shares never touch each other's. Returns whether the kernel refused
    /// GSO (the rest of the share then went one by one).
    static bool send_positions(const send_share& s, transport_stats& st) noexcept {
        send_queue& q = *s.q;
        std::array<std::array<std::uint8_t, CMSG_SPACE(sizeof(std::uint16_t))>, udp_batch> control{};
        std::size_t at = s.from; // in q.order
        while (at < s.to) {
            std::array<mmsghdr, udp_batch> msgs;
            std::array<std::size_t, udp_batch> first{}, segments{};
            std::size_t n = 0;
            while (n < udp_batch && at < s.to) {
                const std::size_t start = at;
                std::size_t seg = 1, total = q.bytes[q.order[at]];
                const std::size_t size = total;
                if (s.gso && size > 0) { // the run of same-size datagrams to this destination (an empty one is no segment)
                    while (at + seg < s.to && seg < udp_gso_segments && q.group[at + seg] == q.group[start]) {
                        const std::size_t b = q.bytes[q.order[at + seg]];
                        if (b == 0 || b > size || total + b > udp_gso_bytes) break;
                        total += b;
                        ++seg;
                        if (b < size) break; // a shorter one ends the run
                    }
                }
                mmsghdr& m = msgs[n];
                m = {};
                const endpoint& to = q.to[q.order[start]];
                m.msg_hdr.msg_name = const_cast<void*>(static_cast<const void*>(to.data()));
                m.msg_hdr.msg_namelen = static_cast<socklen_t>(to.size());
                iovec* iov = &q.flat[2 * start];
                m.msg_hdr.msg_iov = iov;
                for (std::size_t k = 0; k < seg; ++k) {
                    const std::size_t e = q.order[start + k];
                    *iov++ = q.iov[2 * e];
                    if (q.iov[2 * e + 1].iov_len) *iov++ = q.iov[2 * e + 1];
                }
                m.msg_hdr.msg_iovlen = static_cast<std::size_t>(iov - m.msg_hdr.msg_iov);
                if (seg > 1) {
                    m.msg_hdr.msg_control = control[n].data();
                    m.msg_hdr.msg_controllen = CMSG_SPACE(sizeof(std::uint16_t));
                    cmsghdr* c = CMSG_FIRSTHDR(&m.msg_hdr);
                    c->cmsg_level = SOL_UDP;
                    c->cmsg_type = UDP_SEGMENT;
                    c->cmsg_len = CMSG_LEN(sizeof(std::uint16_t));
                    const auto gso_size = static_cast<std::uint16_t>(size);
                    std::memcpy(CMSG_DATA(c), &gso_size, sizeof gso_size);
                }
                first[n] = start;
                segments[n] = seg;
                ++n;
                at += seg;
            }
            std::size_t done = 0;
            while (done < n) {
                const int sent = ::sendmmsg(s.fd, msgs.data() + done, static_cast<unsigned>(n - done), MSG_DONTWAIT);
                if (sent > 0) { // a short count leaves errno alone: the next call reports the refused one
                    for (std::size_t k = done; k < done + static_cast<std::size_t>(sent); ++k) count_sent(q, first[k], segments[k], st);
                    done += static_cast<std::size_t>(sent);
                    continue;
                }
                // Message `done` was refused.
                const int err = errno;
                if (segments[done] > 1 && (err == EIO || err == EINVAL || err == ENOPROTOOPT || err == EOPNOTSUPP)) {
                    // Its datagrams one by one tell a kernel that cannot segment (they go
                    // through: GSO off, and the rest of this share without it) from a
                    // destination that takes nothing (they fail too: GSO stays).
                    if (resend_plain(q, s.fd, first[done], first[done] + segments[done], st) > 0) {
                        resend_plain(q, s.fd, first[done] + segments[done], s.to, st);
                        return true;
                    }
                    ++done;
                    continue;
                }
                st.send_dropped += segments[done]; // a full buffer: dropped, the rest go on
                ++done;
            }
        }
        return false;
    }

    static void count_sent(const send_queue& q, std::size_t first, std::size_t segments, transport_stats& st) noexcept {
        for (std::size_t k = first; k < first + segments; ++k) {
            ++st.datagrams_sent;
            st.bytes_sent += q.bytes[q.order[k]];
        }
        if (segments > 1) {
            ++st.gso_sends;
            st.gso_datagrams += segments;
        }
    }

    /// Positions [from, to) of q.order, one sendmsg each (after GSO was refused); how many
    /// went out.
    static std::size_t resend_plain(send_queue& q, int fd, std::size_t from, std::size_t to, transport_stats& st) noexcept {
        std::size_t ok = 0;
        for (std::size_t k = from; k < to; ++k) {
            const std::size_t e = q.order[k];
            msghdr m{};
            m.msg_name = const_cast<void*>(static_cast<const void*>(q.to[e].data()));
            m.msg_namelen = static_cast<socklen_t>(q.to[e].size());
            m.msg_iov = &q.iov[2 * e];
            m.msg_iovlen = q.iov[2 * e + 1].iov_len ? 2 : 1;
            if (::sendmsg(fd, &m, MSG_DONTWAIT) < 0) {
                ++st.send_dropped;
                continue;
            }
            ++st.datagrams_sent;
            st.bytes_sent += q.bytes[e];
            ++ok;
        }
        return ok;
    }

    static void add(transport_stats& to, const transport_stats& from) noexcept {
        to.datagrams_sent += from.datagrams_sent;
        to.bytes_sent += from.bytes_sent;
        to.send_dropped += from.send_dropped;
        to.gso_sends += from.gso_sends;
        to.gso_datagrams += from.gso_datagrams;
    }

    /// A send worker: a thread that sends the share `job` each time `go` advances, then
    /// sets `done` to it. Between flushes it sleeps in go.wait(); nothing else is shared.
    struct send_worker {
        std::atomic<std::uint32_t> go{0}, done{0};
        send_share job{};
        transport_stats stats{};
        bool refused = false;
        bool stopping = false;
        std::thread thread;

        send_worker() : thread([this] { run(); }) {}
        send_worker(const send_worker&) = delete;
        send_worker& operator=(const send_worker&) = delete;
        ~send_worker() {
            stopping = true;
            go.fetch_add(1, std::memory_order_release);
            go.notify_one();
            thread.join();
        }

        void run() noexcept {
            std::uint32_t seen = 0;
            for (;;) {
                go.wait(seen, std::memory_order_acquire);
                seen = go.load(std::memory_order_acquire);
                if (stopping) return;
                refused = send_positions(job, stats);
                done.store(seen, std::memory_order_release);
                done.notify_one();
            }
        }
    };
    struct worker_pool {
        std::vector<std::unique_ptr<send_worker>> slots;
        explicit worker_pool(std::size_t n) {
            slots.reserve(n);
            for (std::size_t i = 0; i < n; ++i) slots.push_back(std::make_unique<send_worker>());
        }
    };

    socket_type socket_;
    transport_stats stats_;
    std::unique_ptr<send_queue> out_; ///< made at the first queue_send()
    bool gso_ = gso_supported();
    std::unique_ptr<worker_pool> workers_; ///< set_send_workers(n > 1); destroyed (joined) first
};

} // namespace onair::transport
