// Test support: an onair-netem process on 127.0.0.1 with an ephemeral port, and plain POSIX
// UDP sockets that stamp and collect numbered datagrams (blocking with a receive timeout, so
// a collector thread can be stopped).
#pragma once

#include "support/process.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <array>
#include <atomic>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <regex>
#include <thread>

namespace onair_test {

/// Starts onair-netem --listen 127.0.0.1:0 (plus `extra` flags) and reads back its port.
struct netem_process {
    std::unique_ptr<process> proc;
    unsigned short port = 0;

    netem_process(const std::filesystem::path& dir, std::vector<std::string> extra) {
        std::vector<std::string> argv{bin("onair-netem"), "--listen", "127.0.0.1:0"};
        argv.insert(argv.end(), extra.begin(), extra.end());
        proc = std::make_unique<process>(argv, dir, "netem");
        const std::regex re("listening on 127\\.0\\.0\\.1:([0-9]+)");
        std::smatch m;
        eventually([&] {
            const std::string out = proc->out();
            if (std::regex_search(out, m, re)) port = static_cast<unsigned short>(std::stoi(m[1]));
            return port != 0 || proc->wait(std::chrono::milliseconds(0)).has_value();
        }, std::chrono::seconds(10));
        if (!port) throw std::runtime_error("onair-netem did not report its port: " + proc->err());
    }
};

/// A blocking IPv4 UDP socket on 127.0.0.1 with a 50 ms receive timeout.
class raw_udp {
public:
    raw_udp() : fd_(::socket(AF_INET, SOCK_DGRAM, 0)) {
        if (fd_ < 0) throw std::runtime_error("socket() failed");
        sockaddr_in a = loopback(0);
        if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) throw std::runtime_error("bind() failed");
        timeval tv{0, 50'000};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        int buf = 4 << 20;
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    }
    raw_udp(const raw_udp&) = delete;
    raw_udp& operator=(const raw_udp&) = delete;
    ~raw_udp() { ::close(fd_); }

    static sockaddr_in loopback(unsigned short port) {
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return a;
    }
    unsigned short port() const {
        sockaddr_in a{};
        socklen_t len = sizeof a;
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
        return ntohs(a.sin_port);
    }
    bool send_to(const void* data, std::size_t n, const sockaddr_in& to) {
        return ::sendto(fd_, data, n, 0, reinterpret_cast<const sockaddr*>(&to), sizeof to) == static_cast<ssize_t>(n);
    }
    /// Bytes received (0 on timeout).
    std::size_t receive(void* data, std::size_t cap, sockaddr_in& from) {
        socklen_t len = sizeof from;
        const ssize_t n = ::recvfrom(fd_, data, cap, 0, reinterpret_cast<sockaddr*>(&from), &len);
        return n > 0 ? static_cast<std::size_t>(n) : 0;
    }

private:
    int fd_;
};

/// Payload of a numbered datagram: sequence number and steady_clock send time.
struct stamp {
    std::uint32_t seq;
    std::int64_t sent_ns;
};

inline std::int64_t steady_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

/// Receives numbered datagrams on a socket in a thread until stopped; records one-way delay
/// (steady_clock is system-wide, so sender and receiver may be different threads) and the
/// source address of the last datagram.
class collector {
public:
    explicit collector(raw_udp& s) : sock_(s), thread_([this] { loop(); }) {}
    collector(const collector&) = delete;
    collector& operator=(const collector&) = delete;
    ~collector() { stop(); }

    void stop() {
        stop_ = true;
        if (thread_.joinable()) thread_.join();
    }
    /// seq -> delay in ms of its first copy.
    std::map<std::uint32_t, double> delays() const {
        std::lock_guard lock(mu_);
        return delays_;
    }
    std::size_t datagrams() const {
        std::lock_guard lock(mu_);
        return datagrams_;
    }
    std::size_t bytes() const {
        std::lock_guard lock(mu_);
        return bytes_;
    }
    sockaddr_in last_source() const {
        std::lock_guard lock(mu_);
        return from_;
    }

private:
    void loop() {
        std::array<std::uint8_t, 2048> buf{};
        while (!stop_) {
            sockaddr_in from{};
            const std::size_t n = sock_.receive(buf.data(), buf.size(), from);
            if (n < sizeof(stamp)) continue;
            const std::int64_t now = steady_ns();
            stamp s;
            std::memcpy(&s, buf.data(), sizeof s);
            std::lock_guard lock(mu_);
            ++datagrams_;
            bytes_ += n;
            from_ = from;
            delays_.emplace(s.seq, static_cast<double>(now - s.sent_ns) / 1e6);
        }
    }

    raw_udp& sock_;
    mutable std::mutex mu_;
    std::map<std::uint32_t, double> delays_;
    std::size_t datagrams_ = 0, bytes_ = 0;
    sockaddr_in from_{};
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

/// Sends `count` numbered datagrams of `size` bytes to `to`, one every `gap` (catching up
/// after a stall rather than stretching the run).
inline void send_numbered(raw_udp& s, const sockaddr_in& to, std::uint32_t count, std::size_t size,
                          std::chrono::microseconds gap) {
    std::vector<std::uint8_t> buf(std::max(size, sizeof(stamp)), 0x5a);
    const auto start = std::chrono::steady_clock::now();
    for (std::uint32_t i = 0; i < count; ++i) {
        std::this_thread::sleep_until(start + gap * i);
        const stamp st{i, steady_ns()};
        std::memcpy(buf.data(), &st, sizeof st);
        s.send_to(buf.data(), buf.size(), to);
    }
}

} // namespace onair_test
