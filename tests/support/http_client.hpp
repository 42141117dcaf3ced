// Test support: one HTTP/1.1 request of any method to a loopback server (Connection:
// close), with chunked bodies decoded; support/http.hpp has the GET-only streaming client.
#pragma once

#include "support/http.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace onair_test {

struct http_reply {
    int status = 0; ///< 0: no answer
    std::map<std::string, std::string> headers; ///< names lower-cased
    std::string body;
};

/// Decodes a chunked body; stops at the last chunk or where the bytes run out.
inline std::string dechunk(const std::string& raw, bool* complete = nullptr) {
    std::string out;
    std::size_t at = 0;
    if (complete) *complete = false;
    while (at < raw.size()) {
        const auto eol = raw.find("\r\n", at);
        if (eol == std::string::npos) break;
        const std::size_t n = std::stoul(raw.substr(at, eol - at), nullptr, 16);
        if (n == 0) {
            if (complete) *complete = true;
            break;
        }
        if (eol + 2 + n > raw.size()) {
            out.append(raw, eol + 2, std::string::npos);
            break;
        }
        out.append(raw, eol + 2, n);
        at = eol + 2 + n + 2;
    }
    return out;
}

/// Connects to 127.0.0.1:port; -1 on failure. Reads time out after `timeout`.
inline int http_connect(unsigned short port, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

/// Parses a whole response (status line, headers, body; chunked decoded).
inline http_reply parse_reply(const std::string& raw) {
    http_reply r;
    const auto head_end = raw.find("\r\n\r\n");
    if (raw.compare(0, 5, "HTTP/") != 0 || head_end == std::string::npos) return r;
    r.status = std::stoi(raw.substr(raw.find(' ') + 1, 3));
    std::size_t at = raw.find("\r\n") + 2;
    while (at < head_end) {
        const auto eol = raw.find("\r\n", at);
        const auto colon = raw.find(':', at);
        if (colon != std::string::npos && colon < eol) {
            std::string name = raw.substr(at, colon - at);
            for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            std::string value = raw.substr(colon + 1, eol - colon - 1);
            while (!value.empty() && value.front() == ' ') value.erase(0, 1);
            r.headers[name] = value;
        }
        at = eol + 2;
    }
    r.body = raw.substr(head_end + 4);
    if (r.headers["transfer-encoding"] == "chunked") r.body = dechunk(r.body);
    return r;
}

/// One request, read until the server closes (or the timeout).
inline http_reply http_call(unsigned short port, const std::string& method, const std::string& target,
                               const std::vector<std::pair<std::string, std::string>>& headers = {},
                               std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    const int fd = http_connect(port, timeout);
    if (fd < 0) return {};
    std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
    for (const auto& [k, v] : headers) req += k + ": " + v + "\r\n";
    if (method == "POST") req += "Content-Length: 0\r\n";
    req += "\r\n";
    std::string raw;
    if (send_all(fd, req)) {
        char buf[65536];
        for (;;) {
            const auto n = ::recv(fd, buf, sizeof buf, 0);
            if (n <= 0) break;
            raw.append(buf, static_cast<std::size_t>(n));
        }
    }
    ::close(fd);
    return parse_reply(raw);
}

} // namespace onair_test
