// onair — HTTP/1.x requests from untrusted bytes: the request, percent-decoding, and an
// incremental parser that takes bytes in any split and refuses what it will not serve.
//
// The parser (RFC 9112) is deliberately narrow, for a media egress: a request line and
// header fields of bounded total size and count; methods GET, HEAD and POST; HTTP/1.0 and
// 1.1; bodies only with Content-Length and only up to a small bound. Everything else gets
// the status to refuse it with (400, 405, 411, 413, 414, 431, 501, 505), and after an error
// the stream has lost its framing: the connection must be closed.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace onair::http {

enum class method { get, head, post };

constexpr std::string_view method_name(method m) noexcept {
    switch (m) {
    case method::get: return "GET";
    case method::head: return "HEAD";
    case method::post: return "POST";
    }
    return "GET";
}

struct header_field {
    std::string name, value;
};

/// ASCII case-insensitive equality (header names and tokens are ASCII).
constexpr bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
        if (x != y) return false;
    }
    return true;
}

namespace detail {

constexpr int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/// RFC 9110 tchar: the characters of a method or a header field name.
constexpr bool is_tchar(char c) noexcept {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~': return true;
    default: return false;
    }
}

constexpr bool is_ctl(char c) noexcept {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
}

constexpr std::string_view trim_ows(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

/// Whether the comma-separated list `list` holds `token` (case-insensitive).
constexpr bool has_token(std::string_view list, std::string_view token) noexcept {
    while (!list.empty()) {
        const std::size_t comma = list.find(',');
        if (iequals(trim_ows(list.substr(0, comma)), token)) return true;
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
    }
    return false;
}

} // namespace detail

/// `in` with %XX escapes decoded (and '+' as a space when `plus_is_space`, as in a query),
/// or nullopt if an escape is malformed.
inline std::optional<std::string> percent_decode(std::string_view in, bool plus_is_space = false) {
    std::string out;
    out.reserve(in.size());
    for (std::size_t i = 0; i < in.size(); ++i) {
        const char c = in[i];
        if (c == '%') {
            if (i + 2 >= in.size()) return std::nullopt;
            const int hi = detail::hex_value(in[i + 1]), lo = detail::hex_value(in[i + 2]);
            if (hi < 0 || lo < 0) return std::nullopt;
            out.push_back(static_cast<char>(hi * 16 + lo));
            i += 2;
        } else if (c == '+' && plus_is_space) {
            out.push_back(' ');
        } else {
            out.push_back(c);
        }
    }
    return out;
}

/// One parsed request. The path is percent-decoded and safe to map onto names: it starts
/// with '/', holds no NUL and no ".." segment. The query is as sent (see query_param()).
struct request {
    http::method method = http::method::get;
    int minor_version = 1;    ///< HTTP/1.<minor>: 0 or 1
    std::string target;       ///< the request target as sent
    std::string path;         ///< decoded path
    std::string query;        ///< what followed '?', undecoded, without the '?'
    std::vector<header_field> headers;
    std::string body;
    bool keep_alive = true;   ///< the client lets the connection carry another request

    /// The value of the first header field called `name` (case-insensitive), or nullopt.
    std::optional<std::string_view> header(std::string_view name) const {
        for (const auto& h : headers)
            if (iequals(h.name, name)) return std::string_view(h.value);
        return std::nullopt;
    }

    /// The decoded value of the first query parameter `name` ("" for a bare `name`), or
    /// nullopt if absent or malformed.
    std::optional<std::string> query_param(std::string_view name) const {
        std::string_view q = query;
        while (!q.empty()) {
            const std::size_t amp = q.find('&');
            const std::string_view pair = q.substr(0, amp);
            const std::size_t eq = pair.find('=');
            const auto key = percent_decode(pair.substr(0, eq), true);
            if (key && *key == name) return eq == std::string_view::npos ? std::string() : percent_decode(pair.substr(eq + 1), true);
            if (amp == std::string_view::npos) break;
            q.remove_prefix(amp + 1);
        }
        return std::nullopt;
    }
};

struct parser_limits {
    std::size_t max_header_bytes = 8 * 1024; ///< request line + header fields + blank line
    std::size_t max_header_lines = 100;      ///< request line + header fields
    std::size_t max_body_bytes = 4 * 1024;   ///< Content-Length bodies; larger get 413
};

/// Splits a byte stream into requests.
///
/// Usage: read into prepare(), commit() what arrived, then call next() until it returns
/// need_more. Pipelined requests come out one per next(). After error, error_status() is
/// the status to answer with; the stream has lost its framing: answer, then close.
///
/// Memory stays under about max_header_bytes + max_body_bytes + one read: next() fails a
/// head that grows past its bound before the rest of it is buffered.
class request_parser {
public:
    enum class status { request, need_more, error };

    explicit request_parser(parser_limits limits = {}) : limits_(limits) {}

    /// Room for at least `min` more bytes; consumed bytes are moved out once they are half
    /// of the buffer.
    std::span<char> prepare(std::size_t min = 4096) {
        if (begin_ > 0 && (begin_ == end_ || begin_ > buf_.size() / 2)) {
            std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
            end_ -= begin_;
            begin_ = 0;
        }
        if (buf_.size() - end_ < min) buf_.resize(end_ + min);
        return {buf_.data() + end_, buf_.size() - end_};
    }
    void commit(std::size_t n) noexcept {
        end_ += n;
        if (n > 0) started_ = true;
    }

    /// The next whole request in `out`.
    status next(request& out) {
        if (failed_) return status::error;
        if (!in_body_) {
            const auto st = scan_head();
            if (st != status::request) return st;
        }
        const std::size_t have = end_ - begin_;
        if (have < body_left_) {
            if (expect_continue_ && !continue_asked_) continue_asked_ = want_continue_ = true;
            return status::need_more;
        }
        pending_.body.assign(buf_.data() + begin_, body_left_);
        begin_ += body_left_;
        out = std::move(pending_);
        pending_ = request{};
        in_body_ = false;
        body_left_ = 0;
        scan_ = lines_ = hosts_ = 0;
        content_length_.reset();
        chunked_ = other_coding_ = conn_close_ = conn_keep_alive_ = false;
        expect_continue_ = continue_asked_ = want_continue_ = false;
        started_ = begin_ != end_;
        return status::request;
    }

    /// Once per request that sent "Expect: 100-continue" and whose body has not all come:
    /// true when the client waits for an interim "100 Continue" before sending it.
    bool take_continue() noexcept {
        const bool w = want_continue_;
        want_continue_ = false;
        return w;
    }

    /// Bytes of a request not yet complete have arrived (for telling an idle keep-alive
    /// connection from one that is slowly sending a request).
    bool started() const noexcept { return started_; }
    std::size_t buffered() const noexcept { return end_ - begin_; }
    int error_status() const noexcept { return error_status_; }
    /// The error is the method (405 for a standard one not served, 501 for others).
    bool method_refused() const noexcept { return method_refused_; }
    std::string_view error_detail() const noexcept { return error_detail_; }
    const parser_limits& limits() const noexcept { return limits_; }

private:
    status fail(int http_status, std::string_view detail) {
        failed_ = true;
        error_status_ = http_status;
        error_detail_ = detail;
        return status::error;
    }

    // Scans what is new since the last call line by line, parsing each line as it
    // completes, so garbage is refused as soon as its first line (or first bytes) show it.
    // Positions are relative to begin_, which prepare() may move.
    status scan_head() {
        for (;;) {
            const std::size_t have = end_ - begin_;
            const char* base = buf_.data() + begin_;
            if (scan_ >= have) break;
            const auto* nl = static_cast<const char*>(std::memchr(base + scan_, '\n', have - scan_));
            if (!nl) {
                scan_ = have;
                break;
            }
            const std::size_t eol = static_cast<std::size_t>(nl - base);
            std::size_t len = eol - line_start_;
            if (len > 0 && base[eol - 1] == '\r') --len;
            const std::string_view line(base + line_start_, len);
            scan_ = eol + 1;
            if (scan_ > limits_.max_header_bytes)
                return lines_ == 0 ? fail(414, "request line too long") : fail(431, "request header fields too large");
            if (len == 0) {
                if (lines_ == 0) { // RFC 9112 2.2: empty lines before a request line are ignored
                    begin_ += scan_;
                    scan_ = line_start_ = 0;
                    continue;
                }
                if (const auto st = finish_head(); st == status::error) return st;
                begin_ += scan_;
                scan_ = line_start_ = 0;
                return status::request;
            }
            if (++lines_ > limits_.max_header_lines) return fail(431, "too many header fields");
            if (const auto st = lines_ == 1 ? parse_request_line(line) : parse_field(line); st == status::error) return st;
            line_start_ = scan_;
        }
        const std::size_t have = end_ - begin_;
        if (have > limits_.max_header_bytes)
            return lines_ == 0 ? fail(414, "request line too long") : fail(431, "request header fields too large");
        if (lines_ == 0) { // the method so far must be a token: binary garbage is refused at once
            std::string_view partial(buf_.data() + begin_, have);
            partial = partial.substr(0, partial.find(' '));
            if (!partial.empty() && partial.back() == '\r') partial.remove_suffix(1);
            if (!std::all_of(partial.begin(), partial.end(), detail::is_tchar)) return fail(400, "malformed request line");
        }
        return status::need_more;
    }

    // Request line: method SP target SP version, single spaces.
    status parse_request_line(std::string_view rl) {
        request& r = pending_;
        const std::size_t sp1 = rl.find(' ');
        const std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : rl.find(' ', sp1 + 1);
        if (sp2 == std::string_view::npos || rl.find(' ', sp2 + 1) != std::string_view::npos)
            return fail(400, "malformed request line");
        const std::string_view m = rl.substr(0, sp1), target = rl.substr(sp1 + 1, sp2 - sp1 - 1), version = rl.substr(sp2 + 1);
        if (m.empty() || !std::all_of(m.begin(), m.end(), detail::is_tchar)) return fail(400, "malformed method");
        if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' || version[5] < '0' || version[5] > '9' ||
            version[7] < '0' || version[7] > '9')
            return fail(400, "malformed HTTP version");
        if (version[5] != '1') return fail(505, "HTTP version not supported");
        r.minor_version = version[7] == '0' ? 0 : 1; // 1.x for x > 1 is served as 1.1

        if (m == "GET") r.method = method::get;
        else if (m == "HEAD") r.method = method::head;
        else if (m == "POST") r.method = method::post;
        else {
            method_refused_ = true;
            if (m == "PUT" || m == "DELETE" || m == "OPTIONS" || m == "PATCH" || m == "TRACE" || m == "CONNECT")
                return fail(405, "method not allowed");
            return fail(501, "method not implemented");
        }
        return parse_target(target);
    }

    status parse_field(std::string_view line) {
        if (line.front() == ' ' || line.front() == '\t') return fail(400, "obsolete line folding");
        const std::size_t colon = line.find(':');
        if (colon == 0 || colon == std::string_view::npos) return fail(400, "malformed header field");
        const std::string_view name = line.substr(0, colon);
        if (!std::all_of(name.begin(), name.end(), detail::is_tchar)) return fail(400, "malformed header field name");
        const std::string_view value = detail::trim_ows(line.substr(colon + 1));
        for (const char c : value)
            if (detail::is_ctl(c) && c != '\t') return fail(400, "control character in a header field");
        if (iequals(name, "host")) {
            ++hosts_;
        } else if (iequals(name, "content-length")) {
            if (value.empty() || value.size() > 18 || !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; }))
                return fail(400, "malformed Content-Length");
            std::uint64_t n = 0;
            for (const char c : value) n = n * 10 + static_cast<std::uint64_t>(c - '0');
            if (content_length_ && *content_length_ != n) return fail(400, "conflicting Content-Length");
            content_length_ = n;
        } else if (iequals(name, "transfer-encoding")) {
            (iequals(value, "chunked") ? chunked_ : other_coding_) = true;
        } else if (iequals(name, "connection")) {
            conn_close_ = conn_close_ || detail::has_token(value, "close");
            conn_keep_alive_ = conn_keep_alive_ || detail::has_token(value, "keep-alive");
        } else if (iequals(name, "expect")) {
            expect_continue_ = iequals(value, "100-continue");
        }
        pending_.headers.push_back({std::string(name), std::string(value)});
        return status::request;
    }

    status finish_head() {
        request& r = pending_;
        if (hosts_ > 1 || (hosts_ == 0 && r.minor_version == 1)) return fail(400, "an HTTP/1.1 request needs one Host");
        // Only Content-Length bodies: a length is what lets a small bound be enforced up front.
        if (other_coding_) return fail(501, "transfer coding not implemented");
        if (chunked_) return fail(411, "length required");
        if (content_length_ && *content_length_ > limits_.max_body_bytes) return fail(413, "content too large");
        r.keep_alive = r.minor_version == 1 ? !conn_close_ : (conn_keep_alive_ && !conn_close_);
        body_left_ = content_length_.value_or(0);
        if (body_left_ == 0) expect_continue_ = false;
        in_body_ = true;
        return status::request;
    }

    status parse_target(std::string_view target) {
        request& r = pending_;
        for (const char c : target)
            if (detail::is_ctl(c)) return fail(400, "control character in the target");
        r.target = std::string(target);
        // Absolute form (RFC 9112 3.2.2): the authority is not used here, only the path.
        if (target.size() > 7 && (iequals(target.substr(0, 7), "http://") || (target.size() > 8 && iequals(target.substr(0, 8), "https://")))) {
            const std::size_t after = target.find("//") + 2;
            const std::size_t slash = target.find_first_of("/?", after);
            target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
            if (target.front() == '?') return fail(400, "malformed target");
        }
        if (target.empty() || target.front() != '/') return fail(400, "malformed target");
        const std::size_t q = target.find('?');
        std::string_view raw_path = target.substr(0, q);
        if (q != std::string_view::npos) r.query = std::string(target.substr(q + 1));
        const std::size_t hash = r.query.find('#');
        if (hash != std::string::npos) r.query.resize(hash);
        if (const std::size_t h = raw_path.find('#'); h != std::string_view::npos) raw_path = raw_path.substr(0, h);
        auto decoded = percent_decode(raw_path);
        if (!decoded) return fail(400, "malformed percent-encoding");
        if (decoded->find('\0') != std::string::npos) return fail(400, "NUL in the path");
        // Checked after decoding, so "%2e%2e" and "..%2f" are refused as well.
        std::string_view rest = *decoded;
        while (!rest.empty()) {
            const std::size_t slash = rest.find('/');
            const std::string_view seg = rest.substr(0, slash);
            if (seg == "..") return fail(400, "path escapes its root");
            if (slash == std::string_view::npos) break;
            rest.remove_prefix(slash + 1);
        }
        r.path = std::move(*decoded);
        return status::request;
    }

    parser_limits limits_;
    std::vector<char> buf_;
    std::size_t begin_ = 0, end_ = 0;
    std::size_t scan_ = 0, line_start_ = 0, lines_ = 0; ///< head scanning, relative to begin_
    std::uint64_t body_left_ = 0;
    request pending_; ///< the request whose head or body is coming
    // What the head so far says.
    std::size_t hosts_ = 0;
    std::optional<std::uint64_t> content_length_;
    bool chunked_ = false, other_coding_ = false, conn_close_ = false, conn_keep_alive_ = false;
    int error_status_ = 0;
    std::string_view error_detail_;
    bool in_body_ = false, failed_ = false, started_ = false, method_refused_ = false;
    bool expect_continue_ = false, continue_asked_ = false, want_continue_ = false;
};

} // namespace onair::http
