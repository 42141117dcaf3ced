// onair — a small HTTP/1.1 server for a relay node's CDN egress: live WebM as a chunked
// response that never ends, HLS playlists and segments as small complete responses, and a
// few control endpoints.
//
// One server runs on one Asio executor (the relay's network thread). Each request goes to
// the handler, which either fills a complete response or turns the connection into a
// stream: the head goes out with Transfer-Encoding: chunked and the application pushes
// chunks to it from its own code on the same thread, as media is produced.
//
// Untrusted clients (request.hpp has the parser's limits): a bad request is answered with
// its 4xx/5xx and the connection closed; a request head must arrive within header_timeout
// of the connection (or of its first byte, on a keep-alive connection), so a client that
// trickles bytes is closed; a keep-alive connection that sends nothing for idle_timeout is
// closed; a write that makes no progress for write_timeout closes its connection; a
// streaming client whose queue would pass max_stream_queue_bytes is closed at once, so a
// stuck viewer holds a bounded amount of memory and never slows the others. Past
// max_connections, new connections are closed as soon as they are accepted. Every case is
// counted in server_stats.
//
// Requests on one connection are served one at a time: the next is not read until the
// response before it is written, so a pipelining client that does not read holds one
// response, not a pile of them.
#pragma once

#include "onair/http/request.hpp"

#include <asio/buffer.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace onair::http {

/// Bytes shared by every connection they are sent to (one copy for all viewers of a stream).
using shared_bytes = std::shared_ptr<const std::vector<std::uint8_t>>;

inline shared_bytes make_shared_bytes(std::span<const std::uint8_t> b) {
    return std::make_shared<const std::vector<std::uint8_t>>(b.begin(), b.end());
}
inline shared_bytes make_shared_bytes(std::string_view s) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(s.data());
    return std::make_shared<const std::vector<std::uint8_t>>(p, p + s.size());
}

constexpr std::string_view reason_phrase(int status) noexcept {
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: break;
    }
    if (status >= 200 && status < 300) return "OK";
    if (status >= 300 && status < 400) return "Redirect";
    if (status >= 400 && status < 500) return "Client Error";
    return "Server Error";
}

struct server_config {
    std::size_t max_connections = 1024;
    std::size_t max_header_bytes = 8 * 1024; ///< request line + header fields; past it: 431 (414 for the line alone)
    std::size_t max_header_lines = 100;      ///< request line + header fields; past it: 431
    std::size_t max_body_bytes = 4 * 1024;   ///< Content-Length request bodies; past it: 413
    /// A streaming response's bytes not yet written (kernel buffers aside); past it the
    /// client is closed and counted in slow_clients.
    std::size_t max_stream_queue_bytes = 8 * 1024 * 1024;
    /// From accept (or a keep-alive connection's first byte) to the whole request, body
    /// included.
    std::chrono::milliseconds header_timeout{5'000};
    std::chrono::milliseconds idle_timeout{15'000};  ///< a keep-alive connection between requests
    std::chrono::milliseconds write_timeout{10'000}; ///< a write that makes no progress at all
    /// After the last response on a connection the server stops sending and reads (and
    /// drops) what the client still sends, for up to this long, before closing: closing
    /// with unread bytes would reset the connection and could destroy the response at the
    /// client before it reads it.
    std::chrono::milliseconds linger_timeout{1'000};
    int socket_send_buffer = 0;      ///< SO_SNDBUF for accepted sockets; 0: the system's (auto-tuned)
    std::string allow_origin = "*";  ///< Access-Control-Allow-Origin on every response; empty: none
};

struct server_stats {
    std::uint64_t accepted = 0, refused_connections = 0, closed = 0, accept_errors = 0;
    std::uint64_t requests = 0; ///< handed to the handler
    std::uint64_t responses_2xx = 0, responses_3xx = 0, responses_4xx = 0, responses_5xx = 0;
    /// Refused by the parser, whatever the status; the next three are among them.
    std::uint64_t bad_requests = 0;
    std::uint64_t header_too_large = 0, body_too_large = 0, bad_method = 0;
    std::uint64_t header_timeouts = 0, idle_timeouts = 0, write_timeouts = 0;
    std::uint64_t slow_clients = 0; ///< streaming clients closed for their queue bound
    std::uint64_t streams = 0, handler_errors = 0;
    std::uint64_t bytes_in = 0, bytes_out = 0;

    std::uint64_t timeouts() const noexcept { return header_timeouts + idle_timeouts + write_timeouts; }
};

class server;
class stream;

namespace detail {

/// Bytes waiting to be written: owned (framing, heads, small copies) or shared.
struct out_piece {
    std::string own;
    shared_bytes shared;
    std::size_t off = 0;

    const char* data() const noexcept { return shared ? reinterpret_cast<const char*>(shared->data()) : own.data(); }
    std::size_t size() const noexcept { return shared ? shared->size() : own.size(); }
};

enum class conn_state {
    reading,    ///< waiting for (the rest of) a request
    responding, ///< a complete response is being written; nothing is read meanwhile
    streaming,  ///< a streaming response is open
    lingering,  ///< done sending; dropping what the client still sends until it closes
};

struct http_connection : std::enable_shared_from_this<http_connection> {
    http_connection(const asio::any_io_executor& ex, parser_limits limits) : socket(ex), parser(limits) {}

    asio::ip::tcp::socket socket;
    request_parser parser;
    std::uint64_t id = 0;
    conn_state state = conn_state::reading;
    std::deque<out_piece> out;
    std::array<asio::const_buffer, 64> gather{};
    std::size_t gathered = 0;
    std::size_t queued = 0; ///< bytes in `out` not yet written
    std::size_t lingered = 0;
    std::chrono::steady_clock::time_point deadline{}, write_since{};
    std::shared_ptr<http::stream> stream;
    bool writing = false, reading = false, closed = false;
    bool awaiting_idle = false; ///< between requests on a keep-alive connection
    bool close_after = false;   ///< close once the response being written is out
};

} // namespace detail

/// A streaming response: the application pushes chunks to one client. send() queues and
/// returns at once; it never blocks and never calls back into the application.
///
/// Thread safety: every call on the server's executor thread. A stream may outlive its
/// connection and its server; it is then closed and send() returns false.
class stream {
    struct key {};

public:
    stream(key, server* srv, detail::http_connection* c, bool chunked, asio::any_io_executor ex)
        : server_(srv), conn_(c), ex_(std::move(ex)), chunked_(chunked) {}
    stream(const stream&) = delete;
    stream& operator=(const stream&) = delete;

    /// Queues `bytes` as one chunk (copied); empty spans are skipped. False if the stream
    /// is closed, or was closed now because its queue would pass its bound.
    bool send(std::span<const std::uint8_t> bytes);
    bool send(std::string_view bytes) { return send(std::span(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size())); }
    /// Queues `bytes` as one chunk without copying them: fan-out to many clients.
    bool send(const shared_bytes& bytes);
    /// Ends the response with the terminating chunk once everything queued is written,
    /// then closes the connection.
    void close();
    bool open() const noexcept { return conn_ != nullptr; }
    /// Bytes queued and not yet written (e.g. to skip to a keyframe for a lagging viewer).
    std::size_t queued_bytes() const noexcept;
    /// `f` runs once, posted to the executor, when the stream ends other than by close():
    /// the client left or stalled, it was too slow, or the server stopped. Right away (posted)
    /// if that has already happened.
    void on_close(std::function<void()> f);

private:
    friend class server;
    friend class response;
    server* server_;
    detail::http_connection* conn_; ///< null once the stream has ended
    asio::any_io_executor ex_;      ///< where on_close runs (the server may be gone by then)
    std::function<void()> on_close_;
    bool chunked_;
    bool ended_by_server_ = false;
};

/// What the handler answers with: a complete response (status, headers, body), or, after
/// start_stream(), a stream.
///
/// The server owns the framing: Content-Length, Transfer-Encoding and Connection set in
/// `headers` are ignored, and so is any header whose name or value could break the head.
///
/// Thread safety: the handler's to fill, on the executor thread, during its call.
class response {
public:
    int status = 200;                ///< 200..599
    std::string content_type;        ///< none when empty
    std::vector<header_field> headers;
    std::string body;
    shared_bytes shared_body;        ///< sent instead of `body` when set (cached segments)
    bool close = false;              ///< close the connection after this response

    void add_header(std::string name, std::string value) { headers.push_back({std::move(name), std::move(value)}); }

    /// Turns the response into a stream: the head (status, content_type and headers as set
    /// now) is queued at once. Call it at most once, inside the handler; a second call
    /// returns the same stream. For HEAD requests the head is all that goes out, and the
    /// stream returned is closed. For HTTP/1.0 clients the body is sent unframed and ends
    /// with the connection.
    std::shared_ptr<http::stream> start_stream();
    bool streaming() const noexcept { return stream_ != nullptr; }

private:
    friend class server;
    server* server_ = nullptr;
    std::shared_ptr<detail::http_connection> conn_;
    const request* req_ = nullptr;
    std::shared_ptr<http::stream> stream_;
};

/// The HTTP server.
///
/// Usage:
///   http::server srv(io.get_executor(), {asio::ip::make_address("127.0.0.1"), 0}, {},
///       [&](const http::request& req, http::response& res) {
///           if (req.path == "/live/a.webm") {
///               res.content_type = "video/webm";
///               auto s = res.start_stream();
///               s->send(webm_header);
///               viewers.push_back(s); // later: for (auto& v : viewers) v->send(cluster);
///           } else {
///               res.status = 404;
///           }
///       });
///   srv.start();
///
/// The constructor binds and listens (throwing std::system_error if it cannot), so
/// local_endpoint() is known before start(); port 0 picks an ephemeral port.
///
/// Thread safety: construct, start(), stop(), stats() and every stream on the executor's
/// thread (or before it runs); the handler and on_close callbacks run there. Destroy the
/// server there too, or after the executor has stopped.
class server {
public:
    using tcp = asio::ip::tcp;
    /// Called once per request; fills `res`. An exception from it is answered with 500.
    using handler = std::function<void(const request& req, response& res)>;

    server(asio::any_io_executor ex, const tcp::endpoint& listen, server_config cfg, handler h)
        : ex_(std::move(ex)), acceptor_(ex_), cfg_(std::move(cfg)), handler_(std::move(h)), tick_timer_(ex_), retry_timer_(ex_) {
        acceptor_.open(listen.protocol());
        acceptor_.set_option(tcp::acceptor::reuse_address(true));
        acceptor_.bind(listen);
        acceptor_.listen();
        // Deadlines are checked on a tick, not with a timer per connection: a write would
        // otherwise re-arm a timer for every chunk of every viewer.
        const auto shortest = std::min({cfg_.header_timeout, cfg_.idle_timeout, cfg_.write_timeout, cfg_.linger_timeout});
        tick_ = std::clamp(shortest / 4, std::chrono::milliseconds(5), std::chrono::milliseconds(250));
    }
    server(const server&) = delete;
    server& operator=(const server&) = delete;
    ~server() { stop(); }

    void start() {
        if (running_ || !*alive_) return;
        running_ = true;
        accept();
        arm_tick();
    }

    /// Closes the listener and every connection (streams end without their last chunk).
    void stop() {
        if (!*alive_) return;
        *alive_ = false;
        running_ = false;
        std::error_code ec;
        acceptor_.close(ec);
        tick_timer_.cancel();
        retry_timer_.cancel();
        auto all = std::move(connections_);
        connections_.clear();
        for (auto& [id, c] : all) finish(*c);
    }

    tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }
    unsigned short port() const { return acceptor_.local_endpoint().port(); }
    const server_stats& stats() const noexcept { return stats_; }
    const server_config& config() const noexcept { return cfg_; }
    std::size_t connections() const noexcept { return connections_.size(); }
    std::size_t open_streams() const noexcept { return open_streams_; }

private:
    friend class stream;
    friend class response;
    using conn_ptr = std::shared_ptr<detail::http_connection>;
    using clock = std::chrono::steady_clock;
    using state = detail::conn_state;

    // --- accepting --------------------------------------------------------------------
    void accept() {
        auto c = std::make_shared<detail::http_connection>(ex_, parser_limits{cfg_.max_header_bytes, cfg_.max_header_lines, cfg_.max_body_bytes});
        acceptor_.async_accept(c->socket, [this, alive = alive_, c](std::error_code ec) {
            if (!*alive) return;
            if (ec) {
                if (ec == asio::error::operation_aborted) return;
                // Out of descriptors, typically: try again shortly instead of spinning.
                ++stats_.accept_errors;
                retry_timer_.expires_after(std::chrono::milliseconds(50));
                retry_timer_.async_wait([this, alive](std::error_code e) {
                    if (!e && *alive) accept();
                });
                return;
            }
            std::error_code ignored;
            if (connections_.size() >= cfg_.max_connections) {
                ++stats_.refused_connections;
                c->socket.close(ignored);
            } else {
                ++stats_.accepted;
                c->id = ++next_id_;
                c->socket.set_option(tcp::no_delay(true), ignored);
                if (cfg_.socket_send_buffer > 0) c->socket.set_option(asio::socket_base::send_buffer_size(cfg_.socket_send_buffer), ignored);
                c->deadline = clock::now() + cfg_.header_timeout;
                connections_.emplace(c->id, c);
                read(c);
            }
            accept();
        });
    }

    // --- reading ----------------------------------------------------------------------
    void read(const conn_ptr& c) {
        c->reading = true;
        auto room = c->parser.prepare(4096);
        c->socket.async_read_some(asio::buffer(room.data(), room.size()), [this, c](std::error_code ec, std::size_t n) {
            c->reading = false;
            if (c->closed) return;
            if (ec) return finish(*c);
            stats_.bytes_in += n;
            c->parser.commit(n);
            if (c->awaiting_idle) { // the next request has begun: it gets header_timeout from now
                c->awaiting_idle = false;
                c->deadline = clock::now() + cfg_.header_timeout;
            }
            on_input(c);
        });
    }

    /// Reads and drops: a streaming client's stray bytes, or a closing one's leftovers;
    /// what matters is noticing the end of the connection.
    void read_discard(const conn_ptr& c) {
        c->reading = true;
        c->socket.async_read_some(asio::buffer(scratch_), [this, c](std::error_code ec, std::size_t n) {
            c->reading = false;
            if (c->closed) return;
            if (ec) return finish(*c);
            stats_.bytes_in += n;
            if (c->state == state::lingering && (c->lingered += n) > max_linger_bytes) return finish(*c);
            read_discard(c);
        });
    }

    void on_input(const conn_ptr& c) {
        request req;
        const auto st = c->parser.next(req);
        if (st == request_parser::status::need_more) {
            if (c->parser.take_continue()) {
                queue(*c, "HTTP/1.1 100 Continue\r\n\r\n");
                kick(*c);
            }
            return read(c);
        }
        if (st == request_parser::status::error) return refuse(c);
        serve(c, req);
    }

    // --- answering --------------------------------------------------------------------
    void serve(const conn_ptr& c, const request& req) {
        ++stats_.requests;
        response res;
        res.server_ = this;
        res.conn_ = c;
        res.req_ = &req;
        try {
            if (handler_) handler_(req, res);
            else res.status = 404;
        } catch (const std::exception&) {
            ++stats_.handler_errors;
            if (c->closed) return;
            if (res.stream_) return finish(*c); // the head is out already: all that is left is to cut it
            res = response{};
            res.status = 500;
            res.close = true;
        }
        res.server_ = nullptr;
        res.conn_.reset();
        if (c->closed) return; // the handler stopped the server
        if (res.stream_) {
            if (c->state == state::streaming) read_discard(c);
            return;
        }
        send_complete(*c, req, res);
    }

    void send_complete(detail::http_connection& c, const request& req, response& res) {
        if (res.status < 200 || res.status > 599) res.status = 500; // 1xx cannot be final
        const bool keep = req.keep_alive && !res.close && running_;
        const bool no_body = res.status == 204 || res.status == 304;
        const std::size_t size = res.shared_body ? res.shared_body->size() : res.body.size();
        std::string head = head_for(res);
        if (!no_body) append_header(head, "Content-Length", size);
        if (!keep) head += "Connection: close\r\n";
        else if (req.minor_version == 0) head += "Connection: keep-alive\r\n";
        head += "\r\n";
        count_status(res.status);
        c.state = state::responding;
        c.close_after = !keep;
        const bool body = !no_body && req.method != method::head && size > 0;
        if (body && !res.shared_body && size <= 16 * 1024) head += res.body; // one write for small answers
        queue(c, std::move(head));
        if (body && res.shared_body) queue(c, res.shared_body);
        else if (body && size > 16 * 1024) queue(c, std::move(res.body));
        kick(c);
    }

    void refuse(const conn_ptr& c) {
        const int status = c->parser.error_status();
        ++stats_.bad_requests;
        if (status == 431 || status == 414) ++stats_.header_too_large;
        if (status == 413) ++stats_.body_too_large;
        if (c->parser.method_refused()) ++stats_.bad_method;
        response res;
        res.status = status;
        res.content_type = "text/plain; charset=utf-8";
        res.body = std::string(reason_phrase(status)) + ": " + std::string(c->parser.error_detail()) + "\n";
        if (status == 405) res.add_header("Allow", "GET, HEAD, POST");
        request req;
        req.keep_alive = false;
        send_complete(*c, req, res);
    }

    std::shared_ptr<http::stream> begin_stream(response& res) {
        if (res.stream_) return res.stream_;
        detail::http_connection& c = *res.conn_;
        const request& req = *res.req_;
        const bool chunked = req.minor_version == 1;
        const bool head_only = req.method == method::head;
        if (res.status < 200 || res.status > 599) res.status = 500;
        std::string head = head_for(res);
        if (chunked) head += "Transfer-Encoding: chunked\r\n";
        // A stream ends its connection: it lasts as long as the broadcast, and a new
        // connection afterwards costs nothing next to that.
        const bool keep = head_only && req.keep_alive && !res.close && running_;
        if (!keep) head += "Connection: close\r\n";
        else if (req.minor_version == 0) head += "Connection: keep-alive\r\n";
        head += "\r\n";
        count_status(res.status);
        queue(c, std::move(head));
        res.stream_ = std::make_shared<http::stream>(stream::key{}, this, head_only ? nullptr : &c, chunked, ex_);
        if (head_only) {
            c.state = state::responding;
            c.close_after = !keep;
        } else {
            ++stats_.streams;
            ++open_streams_;
            c.state = state::streaming;
            c.close_after = true;
            c.stream = res.stream_;
        }
        kick(c);
        return res.stream_;
    }

    std::string head_for(const response& res) const {
        std::string h;
        h.reserve(256);
        h += "HTTP/1.1 "; // the server's version, whatever the client's (RFC 9110 6.2)
        append_number(h, static_cast<std::uint64_t>(res.status));
        h += ' ';
        h += reason_phrase(res.status);
        h += "\r\n";
        if (!res.content_type.empty() && safe_value(res.content_type)) {
            h += "Content-Type: ";
            h += res.content_type;
            h += "\r\n";
        }
        if (!cfg_.allow_origin.empty() && safe_value(cfg_.allow_origin)) {
            h += "Access-Control-Allow-Origin: ";
            h += cfg_.allow_origin;
            h += "\r\n";
        }
        for (const auto& f : res.headers) {
            if (f.name.empty() || !std::all_of(f.name.begin(), f.name.end(), detail::is_tchar) || !safe_value(f.value)) continue;
            if (iequals(f.name, "content-length") || iequals(f.name, "transfer-encoding") || iequals(f.name, "connection")) continue;
            h += f.name;
            h += ": ";
            h += f.value;
            h += "\r\n";
        }
        return h;
    }

    static bool safe_value(std::string_view v) noexcept {
        return std::none_of(v.begin(), v.end(), [](char ch) { return ch == '\r' || ch == '\n' || ch == '\0'; });
    }
    static void append_number(std::string& s, std::uint64_t n, int base = 10) {
        char buf[24];
        const auto r = std::to_chars(buf, buf + sizeof buf, n, base);
        s.append(buf, r.ptr);
    }
    static void append_header(std::string& s, std::string_view name, std::uint64_t n) {
        s += name;
        s += ": ";
        append_number(s, n);
        s += "\r\n";
    }

    void count_status(int status) noexcept {
        if (status < 300) ++stats_.responses_2xx;
        else if (status < 400) ++stats_.responses_3xx;
        else if (status < 500) ++stats_.responses_4xx;
        else ++stats_.responses_5xx;
    }

    // --- streams ----------------------------------------------------------------------
    bool stream_send(stream& s, std::span<const std::uint8_t> bytes, const shared_bytes* shared) {
        detail::http_connection& c = *s.conn_;
        if (bytes.empty()) return true; // an empty chunk would end the response
        const std::size_t framing = s.chunked_ ? 20 : 0;
        if (c.queued + bytes.size() + framing > cfg_.max_stream_queue_bytes) {
            ++stats_.slow_clients;
            const auto keep = c.shared_from_this(); // finish() drops the server's reference
            finish(c);
            return false;
        }
        if (!s.chunked_) {
            if (shared) queue(c, *shared);
            else queue(c, std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
        } else if (shared) {
            std::string size_line;
            append_number(size_line, bytes.size(), 16);
            size_line += "\r\n";
            queue(c, std::move(size_line));
            queue(c, *shared);
            queue(c, std::string("\r\n"));
        } else {
            std::string chunk;
            chunk.reserve(bytes.size() + framing);
            append_number(chunk, bytes.size(), 16);
            chunk += "\r\n";
            chunk.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
            chunk += "\r\n";
            queue(c, std::move(chunk));
        }
        kick(c);
        return true;
    }

    void stream_close(stream& s) {
        detail::http_connection& c = *s.conn_;
        s.conn_ = nullptr;
        --open_streams_;
        const auto keep = c.shared_from_this();
        c.stream.reset();
        if (s.chunked_) queue(c, std::string("0\r\n\r\n"));
        c.state = state::responding;
        c.close_after = true;
        if (c.out.empty() && !c.writing) return drained(keep);
        kick(c);
    }

    // --- writing ----------------------------------------------------------------------
    void queue(detail::http_connection& c, std::string bytes) {
        c.queued += bytes.size();
        c.out.push_back({std::move(bytes), nullptr, 0});
    }
    void queue(detail::http_connection& c, const shared_bytes& bytes) {
        if (bytes->empty()) return;
        c.queued += bytes->size();
        c.out.push_back({std::string(), bytes, 0});
    }

    /// Starts a write of what is queued, unless one is in flight.
    void kick(detail::http_connection& c) {
        if (c.writing || c.closed || c.out.empty()) return;
        c.gathered = 0;
        std::size_t bytes = 0;
        for (const auto& p : c.out) {
            if (c.gathered == c.gather.size() || bytes >= max_write_bytes) break;
            c.gather[c.gathered++] = asio::const_buffer(p.data() + p.off, p.size() - p.off);
            bytes += p.size() - p.off;
        }
        c.writing = true;
        c.write_since = clock::now();
        // write_some, not async_write: each completion is progress, which is what the
        // stall timeout measures.
        c.socket.async_write_some(std::span<const asio::const_buffer>(c.gather.data(), c.gathered),
                                  [this, c = c.shared_from_this()](std::error_code ec, std::size_t n) {
                                      c->writing = false;
                                      if (c->closed) return;
                                      if (ec) return finish(*c);
                                      stats_.bytes_out += n;
                                      c->queued -= n;
                                      while (n > 0) {
                                          detail::out_piece& p = c->out.front();
                                          const std::size_t take = std::min(n, p.size() - p.off);
                                          p.off += take;
                                          n -= take;
                                          if (p.off == p.size()) c->out.pop_front();
                                      }
                                      if (!c->out.empty()) return kick(*c);
                                      drained(c);
                                  });
    }

    /// Everything queued is written.
    void drained(const conn_ptr& c) {
        if (c->state != state::responding) return;
        if (c->close_after) return linger(c);
        c->state = state::reading;
        c->awaiting_idle = !c->parser.started();
        c->deadline = clock::now() + (c->awaiting_idle ? cfg_.idle_timeout : cfg_.header_timeout);
        on_input(c); // a pipelined request may be buffered already
    }

    void linger(const conn_ptr& c) {
        c->state = state::lingering;
        c->deadline = clock::now() + cfg_.linger_timeout;
        std::error_code ec;
        c->socket.shutdown(tcp::socket::shutdown_send, ec);
        if (ec) return finish(*c);
        if (!c->reading) read_discard(c);
    }

    /// Closes the connection now; its stream, if any, ends without its last chunk.
    void finish(detail::http_connection& c) {
        if (c.closed) return;
        c.closed = true;
        std::error_code ec;
        c.socket.close(ec);
        if (!c.writing) c.out.clear(); // else the write in flight still points into it; it goes with the connection
        c.queued = 0;
        if (auto s = std::move(c.stream)) {
            s->conn_ = nullptr;
            s->ended_by_server_ = true;
            --open_streams_;
            if (s->on_close_) asio::post(ex_, [s] {
                    auto f = std::move(s->on_close_);
                    s->on_close_ = nullptr;
                    if (f) f();
                });
        }
        ++stats_.closed;
        connections_.erase(c.id);
    }

    // --- deadlines --------------------------------------------------------------------
    void arm_tick() {
        tick_timer_.expires_after(tick_);
        tick_timer_.async_wait([this, alive = alive_](std::error_code ec) {
            if (ec || !*alive) return;
            on_tick();
            arm_tick();
        });
    }

    void on_tick() {
        const auto now = clock::now();
        std::vector<conn_ptr> late;
        for (const auto& [id, c] : connections_) {
            if (c->writing && now - c->write_since > cfg_.write_timeout) {
                ++stats_.write_timeouts;
                late.push_back(c);
            } else if (c->state == state::reading && now > c->deadline) {
                ++(c->awaiting_idle ? stats_.idle_timeouts : stats_.header_timeouts);
                late.push_back(c);
            } else if (c->state == state::lingering && now > c->deadline) {
                late.push_back(c);
            }
        }
        for (const auto& c : late) finish(*c);
    }

    static constexpr std::size_t max_write_bytes = 1024 * 1024;
    static constexpr std::size_t max_linger_bytes = 1024 * 1024;

    asio::any_io_executor ex_;
    tcp::acceptor acceptor_;
    server_config cfg_;
    handler handler_;
    asio::steady_timer tick_timer_, retry_timer_;
    std::chrono::milliseconds tick_{};
    std::unordered_map<std::uint64_t, conn_ptr> connections_;
    std::uint64_t next_id_ = 0;
    std::size_t open_streams_ = 0;
    std::array<char, 4096> scratch_{}; ///< what read_discard() drops
    /// Shared with every handler that captures `this`: false once stopped, so a handler that
    /// runs after the server is gone returns before touching it.
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
    bool running_ = false;
    server_stats stats_;
};

// --- out of line: these need server ---------------------------------------------------

inline bool stream::send(std::span<const std::uint8_t> bytes) {
    return conn_ && server_->stream_send(*this, bytes, nullptr);
}
inline bool stream::send(const shared_bytes& bytes) {
    return conn_ && bytes && server_->stream_send(*this, *bytes, &bytes);
}
inline void stream::close() {
    if (conn_) server_->stream_close(*this);
}
inline std::size_t stream::queued_bytes() const noexcept { return conn_ ? conn_->queued : 0; }
inline void stream::on_close(std::function<void()> f) {
    if (!ended_by_server_) {
        on_close_ = std::move(f);
        return;
    }
    if (f) asio::post(ex_, std::move(f));
}

inline std::shared_ptr<http::stream> response::start_stream() {
    if (!server_) return stream_ ? stream_ : std::make_shared<http::stream>(stream::key{}, nullptr, nullptr, true, asio::any_io_executor{});
    return server_->begin_stream(*this);
}

} // namespace onair::http
