// Test support: loopback TCP sockets and just enough HTTP/1.1 to talk to nginx and to stand
// in for an HTTP server (report listener, fake relays). Blocking POSIX sockets with poll()
// timeouts; 127.0.0.1 only.
#pragma once

#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <optional>
#include <poll.h>
#include <stdexcept>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <unistd.h>
#include <utility>
#include <vector>

namespace onair_test {

/// An owned file descriptor.
class socket_fd {
public:
    socket_fd() = default;
    explicit socket_fd(int fd) : fd_(fd) {}
    socket_fd(socket_fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    socket_fd& operator=(socket_fd&& o) noexcept {
        if (this != &o) {
            reset();
            fd_ = std::exchange(o.fd_, -1);
        }
        return *this;
    }
    socket_fd(const socket_fd&) = delete;
    socket_fd& operator=(const socket_fd&) = delete;
    ~socket_fd() { reset(); }

    int get() const { return fd_; }
    explicit operator bool() const { return fd_ >= 0; }
    void reset() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

private:
    int fd_ = -1;
};

inline sockaddr_in loopback_address(std::uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

inline std::uint16_t local_port(int fd) {
    sockaddr_in a{};
    socklen_t len = sizeof a;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) throw std::runtime_error("getsockname failed");
    return ntohs(a.sin_port);
}

/// A listening TCP socket on 127.0.0.1:`port` (0: an ephemeral port, see local_port()).
inline socket_fd tcp_listen_loopback(std::uint16_t port = 0, int backlog = 128) {
    socket_fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!s) throw std::runtime_error("socket failed");
    const int one = 1;
    ::setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    const sockaddr_in a = loopback_address(port);
    if (::bind(s.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0)
        throw std::runtime_error("bind 127.0.0.1:" + std::to_string(port) + ": " + std::strerror(errno));
    if (::listen(s.get(), backlog) != 0) throw std::runtime_error("listen failed");
    return s;
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read it, close), for
/// programs that cannot bind port 0 themselves. Someone may take it before the program
/// binds it: callers retry on a bind failure.
inline std::uint16_t free_tcp_port() {
    socket_fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!s) throw std::runtime_error("socket failed");
    const sockaddr_in a = loopback_address(0);
    if (::bind(s.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) throw std::runtime_error("bind failed");
    return local_port(s.get());
}

inline std::string loopback(std::uint16_t port) { return "127.0.0.1:" + std::to_string(port); }

inline bool wait_fd(int fd, short events, std::chrono::milliseconds timeout) {
    pollfd p{fd, events, 0};
    for (;;) {
        const int r = ::poll(&p, 1, static_cast<int>(timeout.count()));
        if (r > 0) return true;
        if (r == 0) return false;
        if (errno != EINTR) return false;
    }
}

/// Connects to 127.0.0.1:`port`; an empty socket_fd if that fails within `timeout`.
/// `rcvbuf` > 0 fixes the receive buffer (a slow reader that does not let the kernel buffer
/// much for it).
inline socket_fd tcp_connect_loopback(std::uint16_t port, std::chrono::milliseconds timeout = std::chrono::seconds(5),
                                      int rcvbuf = 0) {
    socket_fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!s) return {};
    if (rcvbuf > 0) ::setsockopt(s.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    const sockaddr_in a = loopback_address(port);
    if (::connect(s.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
        if (errno != EINPROGRESS || !wait_fd(s.get(), POLLOUT, timeout)) return {};
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(s.get(), SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) return {};
    }
    ::fcntl(s.get(), F_SETFL, ::fcntl(s.get(), F_GETFL) & ~O_NONBLOCK);
    const int one = 1;
    ::setsockopt(s.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return s;
}

/// Writes all of `data`; false if the peer is gone.
inline bool send_all(int fd, std::string_view data) {
    while (!data.empty()) {
        const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

/// Appends what arrives within `timeout` to `buf`: >0 bytes read, 0 end of stream, -1 error,
/// -2 timeout.
inline long recv_some(int fd, std::string& buf, std::chrono::milliseconds timeout) {
    if (!wait_fd(fd, POLLIN, timeout)) return -2;
    char tmp[16384];
    for (;;) {
        const ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n > 0) buf.append(tmp, static_cast<std::size_t>(n));
        return static_cast<long>(n);
    }
}

inline std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    return s;
}

/// Percent-decoding, '+' as space (query strings).
inline std::string url_decode(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '+') out += ' ';
        else if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
            out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
            i += 2;
        } else out += s[i];
    }
    return out;
}

/// Percent-encodes everything but unreserved characters (for query values).
inline std::string url_encode(std::string_view s) {
    static const char digits[] = "0123456789ABCDEF";
    std::string out;
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
            c == '~')
            out += ch;
        else {
            out += '%';
            out += digits[c >> 4];
            out += digits[c & 15];
        }
    }
    return out;
}

/// "a=1&b=x%20y" -> {a: 1, b: "x y"}.
inline std::map<std::string, std::string> parse_query(std::string_view q) {
    std::map<std::string, std::string> out;
    while (!q.empty()) {
        const auto amp = q.find('&');
        const std::string_view part = q.substr(0, amp);
        if (!part.empty()) {
            const auto eq = part.find('=');
            out[url_decode(part.substr(0, eq))] = eq == std::string_view::npos ? "" : url_decode(part.substr(eq + 1));
        }
        if (amp == std::string_view::npos) break;
        q.remove_prefix(amp + 1);
    }
    return out;
}

using header_map = std::map<std::string, std::string>; // lower-case names; repeats joined by ", "

/// Parses "Name: value" lines (after the first line) of a head ending in "\r\n\r\n".
inline header_map parse_headers(std::string_view head) {
    header_map h;
    std::size_t pos = head.find("\r\n");
    while (pos != std::string_view::npos) {
        pos += 2;
        const auto end = head.find("\r\n", pos);
        if (end == std::string_view::npos || end == pos) break;
        const std::string_view line = head.substr(pos, end - pos);
        const auto colon = line.find(':');
        if (colon != std::string_view::npos) {
            std::string_view v = line.substr(colon + 1);
            while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
            while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
            auto& slot = h[lower(std::string(line.substr(0, colon)))];
            slot += (slot.empty() ? "" : ", ") + std::string(v);
        }
        pos = end;
    }
    return h;
}

/// One request as a server sees it.
struct http_request {
    std::string method, target, version; // "GET", "/live/x.webm?a=1", "HTTP/1.1"
    std::string path;                    // target without the query
    std::map<std::string, std::string> query;
    header_map headers;
    std::string line() const { return method + " " + target + " " + version; }
};

/// Reads one request head from `fd` (no body); nullopt on timeout, EOF or garbage.
inline std::optional<http_request> read_request(int fd, std::chrono::milliseconds timeout = std::chrono::seconds(5),
                                                std::size_t max_size = 1 << 20) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string buf;
    while (buf.find("\r\n\r\n") == std::string::npos) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0 || buf.size() > max_size) return std::nullopt;
        if (recv_some(fd, buf, left) <= 0) return std::nullopt;
    }
    http_request r;
    const std::string first = buf.substr(0, buf.find("\r\n"));
    const auto sp1 = first.find(' ');
    const auto sp2 = first.rfind(' ');
    if (sp1 == std::string::npos || sp2 == sp1) return std::nullopt;
    r.method = first.substr(0, sp1);
    r.target = first.substr(sp1 + 1, sp2 - sp1 - 1);
    r.version = first.substr(sp2 + 1);
    const auto q = r.target.find('?');
    r.path = r.target.substr(0, q);
    if (q != std::string::npos) r.query = parse_query(std::string_view(r.target).substr(q + 1));
    r.headers = parse_headers(std::string_view(buf).substr(0, buf.find("\r\n\r\n") + 4));
    return r;
}

inline const char* reason_phrase(int status) {
    switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    default: return "Status";
    }
}

/// A complete response with Content-Length and "Connection: close".
inline bool send_response(int fd, int status, const std::string& content_type, std::string_view body,
                          const std::vector<std::string>& extra_headers = {}) {
    std::string head = "HTTP/1.1 " + std::to_string(status) + " " + reason_phrase(status) + "\r\n";
    if (!content_type.empty()) head += "Content-Type: " + content_type + "\r\n";
    head += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    for (const auto& h : extra_headers) head += h + "\r\n";
    head += "Connection: close\r\n\r\n";
    return send_all(fd, head) && send_all(fd, body);
}

/// One chunk of a chunked body ("" would end the body: use send_last_chunk for that).
inline bool send_chunk(int fd, std::string_view data) {
    char size[32];
    std::snprintf(size, sizeof size, "%zx\r\n", data.size());
    return send_all(fd, std::string(size) + std::string(data) + "\r\n");
}
inline bool send_last_chunk(int fd) { return send_all(fd, "0\r\n\r\n"); }

/// Client side: an HTTP/1.1 GET to 127.0.0.1:port whose body can be read as it arrives
/// (chunked, Content-Length or until close), for live responses that never end.
class http_stream {
public:
    /// Connects, sends the request and reads the status line and headers; throws if that does
    /// not happen within `timeout`.
    /// `rcvbuf`: see tcp_connect_loopback.
    http_stream(std::uint16_t port, const std::string& target, std::chrono::milliseconds timeout = std::chrono::seconds(10),
                const std::vector<std::string>& extra_headers = {}, int rcvbuf = 0) {
        fd_ = tcp_connect_loopback(port, timeout, rcvbuf);
        if (!fd_) throw std::runtime_error("cannot connect to 127.0.0.1:" + std::to_string(port));
        std::string req = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) + "\r\n";
        for (const auto& h : extra_headers) req += h + "\r\n";
        req += "Connection: close\r\n\r\n";
        if (!send_all(fd_.get(), req)) throw std::runtime_error("cannot send request for " + target);
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (raw_.find("\r\n\r\n") == std::string::npos) {
            if (read_more(deadline) <= 0) throw std::runtime_error("no response head for " + target + ": " + raw_);
        }
        const auto end = raw_.find("\r\n\r\n") + 4;
        const std::string head = raw_.substr(0, end);
        raw_.erase(0, end);
        const auto first = head.substr(0, head.find("\r\n"));
        version_ = first.substr(0, first.find(' '));
        if (first.size() > version_.size() + 1) status_ = std::atoi(first.c_str() + version_.size() + 1);
        headers_ = parse_headers(head);
        chunked_ = lower(header("transfer-encoding")).find("chunked") != std::string::npos;
        if (!chunked_ && headers_.count("content-length")) length_ = std::stoll(header("content-length"));
        decode();
    }

    int status() const { return status_; }
    const std::string& version() const { return version_; }
    const header_map& headers() const { return headers_; }
    std::string header(const std::string& name) const {
        const auto it = headers_.find(lower(name));
        return it == headers_.end() ? std::string() : it->second;
    }
    bool has_header(const std::string& name) const { return headers_.count(lower(name)) != 0; }
    bool chunked() const { return chunked_; }
    /// The body decoded so far.
    const std::string& body() const { return body_; }
    /// True once the whole body arrived (last chunk, Content-Length reached or close).
    bool complete() const { return complete_; }
    /// Sizes of the chunks decoded so far (chunked responses).
    const std::vector<std::size_t>& chunk_sizes() const { return chunk_sizes_; }

    /// Reads until `pred(body())` holds, the body is complete or `timeout` passes; returns
    /// pred(body()).
    template <class Pred>
    bool read_until(Pred&& pred, std::chrono::milliseconds timeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (!pred(body_) && !complete_) {
            if (read_more(deadline) <= 0) break;
            decode();
        }
        return pred(body_);
    }
    /// Reads until the body is complete; false if it is not within `timeout`.
    bool read_to_end(std::chrono::milliseconds timeout) {
        read_until([](const std::string&) { return false; }, timeout);
        return complete_;
    }
    void close() { fd_.reset(); }

private:
    long read_more(std::chrono::steady_clock::time_point deadline) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return -2;
        const long n = recv_some(fd_.get(), raw_, left);
        if (n == 0) eof_ = true;
        if (n == 0 && !chunked_ && length_ < 0) complete_ = true;
        return n;
    }
    void decode() {
        if (!chunked_) {
            body_ += raw_;
            raw_.clear();
            if (length_ >= 0 && static_cast<long long>(body_.size()) >= length_) complete_ = true;
            return;
        }
        for (;;) {
            const auto eol = raw_.find("\r\n");
            if (eol == std::string::npos) return;
            const std::size_t size = std::stoul(raw_.substr(0, eol), nullptr, 16);
            if (size == 0) {
                complete_ = true;
                raw_.clear();
                return;
            }
            if (raw_.size() < eol + 2 + size + 2) return;
            body_.append(raw_, eol + 2, size);
            chunk_sizes_.push_back(size);
            raw_.erase(0, eol + 2 + size + 2);
        }
    }

    socket_fd fd_;
    std::string raw_, body_, version_;
    int status_ = 0;
    header_map headers_;
    bool chunked_ = false, complete_ = false, eof_ = false;
    long long length_ = -1;
    std::vector<std::size_t> chunk_sizes_;
};

/// A whole response.
struct http_response {
    int status = 0;
    header_map headers;
    std::string body;
    std::string header(const std::string& name) const {
        const auto it = headers.find(lower(name));
        return it == headers.end() ? std::string() : it->second;
    }
    bool has_header(const std::string& name) const { return headers.count(lower(name)) != 0; }
};

/// GET http://127.0.0.1:port + target and read the whole response; throws on failure or when
/// it does not complete within `timeout`.
inline http_response http_get(std::uint16_t port, const std::string& target,
                              std::chrono::milliseconds timeout = std::chrono::seconds(10),
                              const std::vector<std::string>& extra_headers = {}) {
    http_stream s(port, target, timeout, extra_headers);
    if (!s.read_to_end(timeout)) throw std::runtime_error("incomplete response for " + target);
    return http_response{s.status(), s.headers(), s.body()};
}

} // namespace onair_test
