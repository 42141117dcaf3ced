// onair-bench-relay: how many viewers one core of a relay node carries, against a raw
// forwarder over the same traffic.
//
// One publisher (a VP8-sized video stream at --kbps, 30 frames/s with a key frame every 2 s,
// plus 50 Opus-sized audio packets/s; generated, not encoded, each packet carrying the
// transport-wide sequence element as hosts send it) -> a forwarder pinned to core 0 -> K
// subscriber sockets. The load generator and the sinks run on core 1. For each K, two
// forwarders take the same traffic one after the other:
//   raw    a bare loop written here: recvmmsg in (batches of 64), sendto to each of the K
//          destinations, no parsing, no state;
//   onair  relay_node (transport::udp, relay::sfu, default configuration: layer selection,
//          per-leg transport-wide numbering and estimation, keyframe gating), the K sinks
//          subscribed with play hellos as viewers are; batched I/O (recvmmsg, sendmmsg),
//          UDP GSO off;
//   +gso   the same with UDP GSO on (datagrams of one batch to one destination in one send);
//   +gso*N with --workers N: the same with N send workers (relay_node_config::workers), not
//          pinned; its CPU is the node thread's plus the workers'.
// Every packet carries its send time (steady clock) in its last 8 bytes; the sinks read
// every socket (epoll + recvmmsg) and count media packets, keeping one delay sample in 8.
// Printed per K and forwarder: packets/s and Gbit/s out (received by the sinks), the
// forwarder thread's CPU (its own clock, % of one core), packets out per CPU-second, p99
// forwarding delay, loss (1 - received / (sent x K)), and for onair the resident memory
// per subscriber ((RSS with K subscribed, streaming) - (RSS before the node existed)) / K,
// and what the sfu reports it keeps (sfu::memory(): per subscriber, and the stream's own).
// ratio = onair / raw, of packets per CPU-second (equal when neither is saturated and
// onair spends less CPU per packet) and of packets/s when the raw one is saturated.
#include "common/cli.hpp"

#include <onair/relay_node.hpp>
#include <onair/rtp/packet.hpp>
#include <onair/rtp/session_message.hpp>
#include <onair/transport/udp.hpp>

#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace onair;
using namespace onair_examples;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

constexpr std::uint32_t video_ssrc = 0x1000, audio_ssrc = 0x2000, rtx_ssrc = 0x1001;
constexpr const char* stream_name = "bench";

/// Pins `t` to `cpu` and names it (perf and top show forwarders by these names).
void pin(std::thread& t, int cpu, const char* name) {
    pthread_setname_np(t.native_handle(), name);
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu % static_cast<int>(std::max(1u, std::thread::hardware_concurrency())), &set);
    pthread_setaffinity_np(t.native_handle(), sizeof set, &set);
}

double thread_cpu_seconds(std::thread& t) {
    clockid_t id;
    if (pthread_getcpuclockid(t.native_handle(), &id)) return 0;
    timespec ts{};
    clock_gettime(id, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

std::int64_t rss_bytes() {
    std::ifstream f("/proc/self/statm");
    std::int64_t size = 0, resident = 0;
    f >> size >> resident;
    return resident * sysconf(_SC_PAGESIZE);
}

std::int64_t now_ns() { return std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now().time_since_epoch()).count(); }

int udp_socket(sockaddr_in& bound, int rcvbuf) {
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (fd < 0) throw std::runtime_error("socket: " + std::string(std::strerror(errno)));
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a)) throw std::runtime_error("bind: " + std::string(std::strerror(errno)));
    socklen_t len = sizeof bound;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
    return fd;
}

sockaddr_in to_sockaddr(const transport::endpoint& e) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(e.address().to_v4().to_uint());
    a.sin_port = htons(e.port());
    return a;
}

/// K subscriber sockets, read by one thread on core 1.
struct sinks {
    std::vector<int> fds;
    std::vector<sockaddr_in> addrs;
    int epoll_fd = -1;
    std::size_t active = 0; ///< the first `active` sockets are counted
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> packets{0}, bytes{0};
    std::vector<std::int64_t> delays; ///< ns; written by the thread, read after join
    std::thread thread;

    explicit sinks(std::size_t n) {
        epoll_fd = ::epoll_create1(0);
        fds.resize(n);
        addrs.resize(n);
        for (std::size_t i = 0; i < n; ++i) {
            fds[i] = udp_socket(addrs[i], 1 << 20);
            epoll_event ev{};
            ev.events = EPOLLIN;
            ev.data.u32 = static_cast<std::uint32_t>(i);
            ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fds[i], &ev);
        }
        delays.reserve(1 << 22);
    }
    ~sinks() {
        for (int fd : fds) ::close(fd);
        ::close(epoll_fd);
    }

    void start(std::size_t k) {
        active = k;
        stop = false;
        packets = 0;
        bytes = 0;
        delays.clear();
        thread = std::thread([this] { run(); });
        pin(thread, 1, "bench-sinks");
    }
    void finish() {
        stop = true;
        thread.join();
    }

    void run() {
        constexpr int batch = 32;
        std::array<epoll_event, 256> events;
        std::vector<std::array<std::uint8_t, 1500>> bufs(batch);
        std::array<iovec, batch> iov;
        std::array<mmsghdr, batch> msgs;
        std::uint64_t count = 0, sum = 0, seen = 0;
        while (!stop.load(std::memory_order_relaxed)) {
            const int n = ::epoll_wait(epoll_fd, events.data(), static_cast<int>(events.size()), 20);
            for (int e = 0; e < n; ++e) {
                const std::uint32_t i = events[static_cast<std::size_t>(e)].data.u32;
                for (int j = 0; j < batch; ++j) {
                    iov[static_cast<std::size_t>(j)] = {bufs[static_cast<std::size_t>(j)].data(), bufs[0].size()};
                    msgs[static_cast<std::size_t>(j)] = {};
                    msgs[static_cast<std::size_t>(j)].msg_hdr.msg_iov = &iov[static_cast<std::size_t>(j)];
                    msgs[static_cast<std::size_t>(j)].msg_hdr.msg_iovlen = 1;
                }
                const int got = ::recvmmsg(fds[i], msgs.data(), batch, MSG_DONTWAIT, nullptr);
                if (got <= 0 || i >= active) continue;
                const std::int64_t t = now_ns();
                for (int j = 0; j < got; ++j) {
                    const auto* b = bufs[static_cast<std::size_t>(j)].data();
                    const std::size_t len = msgs[static_cast<std::size_t>(j)].msg_len;
                    // Media only: RTP (version 2) of the two payload types, not RTCP.
                    if (len < 20 || (b[0] >> 6) != 2) continue;
                    const std::uint8_t pt = b[1] & 0x7f;
                    if (pt != 96 && pt != 111) continue;
                    ++count;
                    sum += len;
                    if ((++seen & 7) == 0) {
                        std::int64_t sent;
                        std::memcpy(&sent, b + len - 8, 8);
                        if (sent > 0 && t >= sent) delays.push_back(t - sent);
                    }
                }
            }
            packets.store(count, std::memory_order_relaxed);
            bytes.store(sum, std::memory_order_relaxed);
        }
        packets = count;
        bytes = sum;
    }
};

/// The publisher: video at `kbps` (1200-byte packets, key frames 3x a delta frame), audio.
struct generator {
    int fd = -1;
    sockaddr_in self{};
    sockaddr_in to{};
    std::uint16_t vseq = 0, aseq = 0, tseq = 0;
    std::uint16_t picture_id = 0;
    std::uint64_t sent = 0;

    generator() { fd = udp_socket(self, 1 << 20); }
    ~generator() { ::close(fd); }

    void send_bytes(const std::uint8_t* b, std::size_t n) {
        while (::sendto(fd, b, n, 0, reinterpret_cast<const sockaddr*>(&to), sizeof to) < 0 && errno == EAGAIN) std::this_thread::yield();
    }
    void send_packet(std::uint32_t ssrc, std::uint8_t pt, std::uint16_t seq, std::uint32_t ts, bool marker, std::span<std::uint8_t> payload) {
        rtp::header h;
        h.payload_type = pt;
        h.sequence = seq;
        h.timestamp = ts;
        h.ssrc = ssrc;
        h.marker = marker;
        h.transport_sequence = tseq++;
        std::array<std::uint8_t, 1500> buf;
        const std::int64_t t = now_ns();
        std::memcpy(payload.data() + payload.size() - 8, &t, 8);
        const std::size_t n = rtp::serialize(h, payload, buf);
        if (n) {
            send_bytes(buf.data(), n);
            ++sent;
        }
    }
    /// One video frame of `size` bytes as VP8 packets (descriptor: X, S on the first, 15-bit
    /// picture id).
    void video_frame(bool key, std::size_t size, std::uint32_t ts) {
        constexpr std::size_t chunk = 1100;
        std::array<std::uint8_t, 1200> payload;
        for (std::size_t off = 0; off < size;) {
            const std::size_t n = std::min(chunk, size - off);
            payload[0] = static_cast<std::uint8_t>(0x80 | (off == 0 ? 0x10 : 0)); // X, S
            payload[1] = 0x80;                                                   // I
            payload[2] = static_cast<std::uint8_t>(0x80 | (picture_id >> 8));    // M, 15-bit id
            payload[3] = static_cast<std::uint8_t>(picture_id);
            std::memset(payload.data() + 4, 0x55, n);
            if (off == 0) {
                payload[4] = key ? 0x10 : 0x11; // P bit clear: a key frame
                if (key) {
                    const std::uint8_t hdr[] = {0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01};
                    std::memcpy(payload.data() + 7, hdr, sizeof hdr);
                }
            }
            off += n;
            send_packet(video_ssrc, 96, vseq++, ts, off == size, std::span<std::uint8_t>(payload.data(), 4 + n));
        }
        ++picture_id;
        picture_id &= 0x7fff;
    }
    void audio_packet(std::uint32_t ts) {
        std::array<std::uint8_t, 120> payload;
        std::memset(payload.data(), 0x33, payload.size());
        send_packet(audio_ssrc, 111, aseq++, ts, false, payload);
    }

    /// Streams for `seconds` in real time, starting with a key frame.
    void stream(double seconds, int kbps) {
        const std::size_t delta = static_cast<std::size_t>(kbps) * 1000 / 8 / 30 * 10 / 11; // key frames make up the rest
        const auto start = steady::now();
        const int frames = static_cast<int>(seconds * 30), audios = static_cast<int>(seconds * 50);
        for (int v = 0, a = 0; v < frames || a < audios;) {
            const auto tv = start + std::chrono::microseconds(std::int64_t{v} * 1'000'000 / 30);
            const auto ta = start + std::chrono::microseconds(std::int64_t{a} * 20'000);
            if (v < frames && (a >= audios || tv <= ta)) {
                std::this_thread::sleep_until(tv);
                const bool key = v % 60 == 0;
                video_frame(key, key ? delta * 3 : delta, static_cast<std::uint32_t>(v) * 3000);
                ++v;
            } else {
                std::this_thread::sleep_until(ta);
                audio_packet(static_cast<std::uint32_t>(a) * 960);
                ++a;
            }
        }
    }
};

/// recvmmsg in, sendto out to every destination, nothing else.
struct raw_forwarder {
    int fd = -1;
    sockaddr_in self{};
    std::vector<sockaddr_in> dests;
    std::atomic<bool> stop{false};
    std::uint64_t send_errors = 0;
    std::thread thread;

    explicit raw_forwarder(std::vector<sockaddr_in> d) : dests(std::move(d)) {
        fd = udp_socket(self, 4 << 20);
        const int sndbuf = 4 << 20;
        ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
        thread = std::thread([this] { run(); });
        pin(thread, 0, "raw-forwarder");
    }
    ~raw_forwarder() {
        stop = true;
        thread.join();
        ::close(fd);
    }
    void run() {
        constexpr int batch = 64;
        std::vector<std::array<std::uint8_t, 1500>> bufs(batch);
        std::array<iovec, batch> iov;
        std::array<mmsghdr, batch> msgs;
        while (!stop.load(std::memory_order_relaxed)) {
            for (int j = 0; j < batch; ++j) {
                iov[static_cast<std::size_t>(j)] = {bufs[static_cast<std::size_t>(j)].data(), bufs[0].size()};
                msgs[static_cast<std::size_t>(j)] = {};
                msgs[static_cast<std::size_t>(j)].msg_hdr.msg_iov = &iov[static_cast<std::size_t>(j)];
                msgs[static_cast<std::size_t>(j)].msg_hdr.msg_iovlen = 1;
            }
            timespec timeout{0, 20'000'000};
            const int got = ::recvmmsg(fd, msgs.data(), batch, MSG_WAITFORONE, &timeout);
            if (got <= 0) {
                if (got < 0 && errno == EAGAIN) {
                    pollfd p{fd, POLLIN, 0};
                    ::poll(&p, 1, 20);
                }
                continue;
            }
            for (int j = 0; j < got; ++j)
                for (const auto& d : dests)
                    if (::sendto(fd, bufs[static_cast<std::size_t>(j)].data(), msgs[static_cast<std::size_t>(j)].msg_len, 0,
                                 reinterpret_cast<const sockaddr*>(&d), sizeof d) < 0)
                        ++send_errors;
        }
    }
};

struct result {
    double seconds = 0;
    double pps = 0, gbps = 0, cpu = 0, per_cpu_s = 0, p99_ms = 0, loss = 0;
    double bytes_per_subscriber = 0;
    double reported_per_subscriber = 0, reported_stream = 0; ///< sfu::memory(): subscriber and stream state
    double gso_share = 0, gso_per_send = 0; ///< datagrams sent in GSO messages; datagrams per GSO message
    std::uint64_t gso_refused = 0;
};

/// `more_cpu`: CPU seconds the forwarder spent beside its thread (onair's send workers).
template <class MoreCpu>
result measure(sinks& s, std::size_t k, generator& g, std::thread& forwarder_thread, double seconds, int kbps, std::uint64_t sent_before,
               MoreCpu more_cpu) {
    const double cpu0 = thread_cpu_seconds(forwarder_thread) + more_cpu();
    const auto t0 = steady::now();
    g.stream(seconds, kbps);
    const auto t1 = steady::now();
    const double cpu1 = thread_cpu_seconds(forwarder_thread) + more_cpu();
    std::this_thread::sleep_for(300ms); // what is in flight
    s.finish();
    result r;
    r.seconds = std::chrono::duration<double>(t1 - t0).count();
    const double received = static_cast<double>(s.packets.load());
    r.pps = received / r.seconds;
    r.gbps = static_cast<double>(s.bytes.load()) * 8 / r.seconds / 1e9;
    r.cpu = (cpu1 - cpu0) / r.seconds;
    r.per_cpu_s = r.cpu > 0 ? received / (cpu1 - cpu0) : 0;
    const double expected = static_cast<double>(g.sent - sent_before) * static_cast<double>(k);
    r.loss = expected > 0 ? std::max(0.0, 1.0 - received / expected) : 0;
    auto& d = s.delays;
    if (!d.empty()) {
        const std::size_t i = d.size() * 99 / 100;
        std::nth_element(d.begin(), d.begin() + static_cast<std::ptrdiff_t>(i), d.end());
        r.p99_ms = static_cast<double>(d[i]) / 1e6;
    }
    return r;
}

result run_raw(sinks& s, std::size_t k, double seconds, int kbps) {
    std::vector<sockaddr_in> dests(s.addrs.begin(), s.addrs.begin() + static_cast<std::ptrdiff_t>(k));
    raw_forwarder f(std::move(dests));
    generator g;
    g.to = f.self;
    s.start(k);
    return measure(s, k, g, f.thread, seconds, kbps, 0, [] { return 0.0; });
}

result run_onair(sinks& s, std::size_t k, double seconds, int kbps, bool gso, std::size_t workers) {
    const std::int64_t rss0 = rss_bytes();
    asio::io_context io(1);
    relay_node_config nc;
    nc.workers = workers;
    relay_node node(relay::sfu{}, sink::null_packets{}, nc, io, transport::endpoint(asio::ip::make_address_v4("127.0.0.1"), 0));
    node.transport().set_gso(gso);
    node.start();
    std::thread t([&] { io.run(); });
    pin(t, 0, "onair-node");
    generator g;
    g.to = to_sockaddr(node.local_endpoint());
    auto hello = [&](int fd, rtp::session_type type) {
        rtp::session_message m;
        m.type = type;
        m.sender_ssrc = type == rtp::session_type::publish ? video_ssrc : 0;
        m.stream.name = stream_name;
        if (type == rtp::session_type::publish) {
            m.stream.video_ssrc = video_ssrc;
            m.stream.audio_ssrc = audio_ssrc;
            m.stream.video_codec = "VP8";
            m.stream.audio_codec = "opus";
            m.stream.video_rtx_ssrc = rtx_ssrc; // as hosts announce it: the legs probe on it
        }
        std::array<std::uint8_t, 1024> buf;
        const std::size_t n = rtp::write_session_message(m, buf);
        ::sendto(fd, buf.data(), n, 0, reinterpret_cast<const sockaddr*>(&g.to), sizeof g.to);
    };
    auto subscribers = [&] {
        std::promise<std::size_t> p;
        auto f = p.get_future();
        asio::post(io, [&] {
            const auto* st = node.relay().find(stream_name);
            p.set_value(st ? st->subscribers.size() : 0);
        });
        return f.get();
    };
    hello(g.fd, rtp::session_type::publish);
    std::this_thread::sleep_for(50ms);
    for (int round = 0; round < 20 && subscribers() < k; ++round) {
        for (std::size_t i = 0; i < k; ++i) {
            hello(s.fds[i], rtp::session_type::play);
            if (i % 256 == 255) std::this_thread::sleep_for(2ms); // not more than the node's socket holds
        }
        std::this_thread::sleep_for(100ms);
    }
    const std::size_t joined = subscribers();
    if (joined < k) std::fprintf(stderr, "only %zu of %zu subscribers joined\n", joined, k);
    s.start(k);
    const std::uint64_t before = g.sent;
    result r = measure(s, k, g, t, seconds, kbps, before,
                       [&] { return std::chrono::duration<double>(node.transport().send_workers_cpu()).count(); });
    r.bytes_per_subscriber = static_cast<double>(rss_bytes() - rss0) / static_cast<double>(k);
    {
        std::promise<relay::sfu_memory> p;
        auto f = p.get_future();
        asio::post(io, [&] { p.set_value(node.relay().memory(stream_name)); });
        const relay::sfu_memory m = f.get();
        r.reported_per_subscriber = m.subscribers ? static_cast<double>(m.subscriber_bytes) / static_cast<double>(m.subscribers) : 0;
        r.reported_stream = static_cast<double>(m.stream_bytes);
    }
    node.stop();
    io.stop();
    t.join();
    const auto& ts = node.transport().stats();
    r.gso_share = ts.datagrams_sent ? static_cast<double>(ts.gso_datagrams) / static_cast<double>(ts.datagrams_sent) : 0;
    r.gso_per_send = ts.gso_sends ? static_cast<double>(ts.gso_datagrams) / static_cast<double>(ts.gso_sends) : 0;
    r.gso_refused = ts.gso_refused;
    return r;
}

void print(const char* what, std::size_t k, int kbps, const result& r) {
    std::printf("%6zu %5d  %-6s %10.0f %7.3f %6.1f %%  %10.0f %8.2f %8.4f %%", k, kbps, what, r.pps, r.gbps, r.cpu * 100, r.per_cpu_s, r.p99_ms,
                r.loss * 100);
    if (r.bytes_per_subscriber > 0)
        std::printf(" %9.1f %9.1f %8.0f", r.bytes_per_subscriber / 1024, r.reported_per_subscriber / 1024, r.reported_stream / 1024);
    if (r.gso_share > 0 || r.gso_refused) std::printf("   %.0f %% of datagrams in GSO sends of %.1f%s", r.gso_share * 100, r.gso_per_send, r.gso_refused ? " (refused: off)" : "");
    std::printf("\n");
    std::fflush(stdout);
}

std::vector<std::size_t> parse_list(const std::string& text) {
    std::vector<std::size_t> out;
    std::size_t pos = 0;
    while (pos <= text.size()) {
        const std::size_t comma = std::min(text.find(',', pos), text.size());
        out.push_back(command_line::parse_number<std::size_t>(text.substr(pos, comma - pos), "--subscribers", 1, 10000));
        pos = comma + 1;
    }
    return out;
}

} // namespace

int main(int argc, char** argv) {
    command_line cli("onair-bench-relay", "relay forwarding on one core against a raw recvmmsg/sendto forwarder",
                     {{"subscribers", "K,K,...", "subscriber counts (default 10,100,1000,3000)"},
                      {"kbps", "N", "video bitrate of the stream (default 1500)"},
                      {"seconds", "S", "streaming time per run (default 4)"},
                      {"extra", "K@KBPS", "one more onair and raw run at another bitrate (default 3000@600; 'none' for none)"},
                      {"workers", "N", "also run onair with GSO and N send workers, unpinned (default 1: no such run)"}});
    return guarded_main(cli, argc, argv, [&]() -> int {
        const auto ks = parse_list(cli.get("subscribers", "10,100,1000,3000"));
        const int kbps = cli.number<int>("kbps", 1500, 50, 20000);
        const double seconds = cli.number<double>("seconds", 4, 1, 600);
        const auto workers = cli.number<std::size_t>("workers", 1, 1, transport::udp_max_send_workers);
        std::vector<std::pair<std::size_t, int>> runs;
        for (auto k : ks) runs.emplace_back(k, kbps);
        const std::string extra = cli.get("extra", "3000@600");
        if (extra != "none") {
            const auto at = extra.find('@');
            if (at == std::string::npos) throw usage_error("--extra: K@KBPS");
            runs.emplace_back(command_line::parse_number<std::size_t>(extra.substr(0, at), "--extra", 1, 10000),
                              command_line::parse_number<int>(extra.substr(at + 1), "--extra", 50, 20000));
        }
        std::size_t most = 0;
        for (auto& [k, _] : runs) most = std::max(most, k);
        sinks s(most);
        std::printf("onair-bench-relay: forwarder on core 0, publisher and %zu sink sockets on core 1, %.0f s per run\n", most, seconds);
        std::printf("%6s %5s  %-6s %10s %7s %8s  %10s %8s %10s %9s %9s %8s\n", "K", "kbps", "fwd", "pkts/s out", "Gbit/s", "CPU", "pkts/CPU-s",
                    "p99 ms", "loss", "KB/sub", "sfu KB/s", "strm KB");
        for (auto& [k, rate] : runs) {
            const result raw = run_raw(s, k, seconds, rate);
            print("raw", k, rate, raw);
            const result on = run_onair(s, k, seconds, rate, false, 1);
            print("onair", k, rate, on);
            const result gso = run_onair(s, k, seconds, rate, true, 1);
            print("+gso", k, rate, gso);
            std::vector<std::pair<const char*, result>> ratios{{"ratio", on}, {"gso/raw", gso}};
            if (workers > 1) {
                const result w = run_onair(s, k, seconds, rate, true, workers);
                print("+gso*N", k, rate, w);
                ratios.emplace_back("gsoN/raw", w);
            }
            for (const auto& [name, r] : ratios)
                std::printf("%6s %5s  %-7s%10.3f %7s %8s  %10.3f\n", "", "", name, raw.pps > 0 ? r.pps / raw.pps : 0, "", "",
                            raw.per_cpu_s > 0 ? r.per_cpu_s / raw.per_cpu_s : 0);
        }
        return 0;
    });
}
