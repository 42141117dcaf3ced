// The HTTP egress server over real TCP on 127.0.0.1: complete responses with keep-alive,
// chunked live streams pushed from the io thread, and hostile clients (garbage, oversized
// heads and bodies, slowloris, idle and stuck connections) refused, counted and closed
// without holding up anyone else.
//
// The server lives on an io_context run by a thread; the clients are raw non-blocking
// sockets driven from test threads with poll() deadlines, so nothing can hang.
#include "support/on_io.hpp"

#include <onair/http/request.hpp>
#include <onair/http/server.hpp>

#include <doctest/doctest.h>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include <poll.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <latch>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using namespace std::string_literals;

namespace {

namespace http = onair::http;
using tcp = asio::ip::tcp;
using steady = std::chrono::steady_clock;
using onair_test::on_io;

long ms_since(steady::time_point t) {
    return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - t).count());
}

/// Polls `p` every 10 ms until it holds or `limit` passes.
template <class P>
bool eventually(P p, std::chrono::milliseconds limit = 5s) {
    const auto deadline = steady::now() + limit;
    while (!p()) {
        if (steady::now() > deadline) return false;
        std::this_thread::sleep_for(10ms);
    }
    return true;
}

std::string lower(std::string s) {
    for (auto& c : s)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return s;
}

struct reply {
    int status = 0;
    std::map<std::string, std::string> headers; ///< names lowercased
    std::string body;

    std::string header(const std::string& name) const {
        auto it = headers.find(name);
        return it == headers.end() ? std::string("<none>") : it->second;
    }
    bool has(const std::string& name) const { return headers.contains(name); }
};

/// A raw HTTP client on a test thread: non-blocking socket, poll() with deadlines, its own
/// response and chunk decoding.
class client {
public:
    enum class end { none, eof, reset, timeout };

    client(asio::io_context& ctx, const tcp::endpoint& ep, int rcvbuf = 0) : s_(ctx) {
        s_.open(ep.protocol());
        if (rcvbuf > 0) s_.set_option(asio::socket_base::receive_buffer_size(rcvbuf));
        s_.connect(ep);
        s_.set_option(tcp::no_delay(true));
        s_.non_blocking(true);
    }

    /// Writes all of `bytes`; false if the connection failed or the deadline passed.
    bool send(std::string_view bytes, std::chrono::milliseconds limit = 3s) {
        const auto deadline = steady::now() + limit;
        while (!bytes.empty()) {
            std::error_code ec;
            const std::size_t n = s_.write_some(asio::buffer(bytes.data(), bytes.size()), ec);
            if (ec == asio::error::would_block || ec == asio::error::try_again) {
                if (!wait(POLLOUT, deadline)) return false;
                continue;
            }
            if (ec) return false;
            bytes.remove_prefix(n);
        }
        return true;
    }

    /// Status line and header fields.
    std::optional<reply> head(std::chrono::milliseconds limit = 3s) {
        const auto deadline = steady::now() + limit;
        std::size_t at;
        while ((at = buf_.find("\r\n\r\n")) == std::string::npos)
            if (!fill(deadline)) return std::nullopt;
        std::string h = buf_.substr(0, at);
        buf_.erase(0, at + 4);
        reply r;
        if (h.size() < 12 || h.compare(0, 9, "HTTP/1.1 ") != 0) return std::nullopt;
        r.status = std::atoi(h.c_str() + 9);
        std::size_t pos = h.find("\r\n");
        while (pos != std::string::npos) {
            const std::size_t next = h.find("\r\n", pos + 2);
            const std::string line = h.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
            const std::size_t colon = line.find(':');
            if (colon == std::string::npos) return std::nullopt;
            std::string value = line.substr(colon + 1);
            while (!value.empty() && value.front() == ' ') value.erase(0, 1);
            r.headers[lower(line.substr(0, colon))] = value;
            pos = next;
        }
        return r;
    }

    /// A whole response: Content-Length, chunked, or (an HTTP/1.0 stream) to the end.
    std::optional<reply> response(bool to_head = false, std::chrono::milliseconds limit = 3s) {
        const auto deadline = steady::now() + limit;
        auto r = head(limit);
        if (!r || to_head || r->status < 200 || r->status == 204 || r->status == 304) return r;
        if (lower(r->header("transfer-encoding")) == "chunked") {
            for (;;) {
                auto c = chunk(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now()));
                if (!c) return std::nullopt;
                if (c->empty()) return r;
                r->body += *c;
            }
        }
        if (r->has("content-length")) {
            const auto n = static_cast<std::size_t>(std::stoull(r->header("content-length")));
            while (buf_.size() < n)
                if (!fill(deadline)) return std::nullopt;
            r->body = buf_.substr(0, n);
            buf_.erase(0, n);
            return r;
        }
        while (fill(deadline)) {
        }
        if (end_ != end::eof) return std::nullopt;
        r->body = std::move(buf_);
        buf_.clear();
        return r;
    }

    /// The next chunk of a chunked body; "" for the terminating chunk; nullopt if the stream
    /// broke, was malformed or the deadline passed.
    std::optional<std::string> chunk(std::chrono::milliseconds limit = 3s) {
        const auto deadline = steady::now() + limit;
        std::size_t eol;
        while ((eol = buf_.find("\r\n")) == std::string::npos)
            if (!fill(deadline)) return std::nullopt;
        std::size_t size = 0;
        try {
            size = std::stoul(buf_.substr(0, eol), nullptr, 16);
        } catch (...) {
            return std::nullopt;
        }
        while (buf_.size() < eol + 2 + size + 2)
            if (!fill(deadline)) return std::nullopt;
        if (buf_.compare(eol + 2 + size, 2, "\r\n") != 0) return std::nullopt;
        std::string data = buf_.substr(eol + 2, size);
        buf_.erase(0, eol + 2 + size + 2);
        return data;
    }

    /// Reads (and keeps) until the connection ends or `limit` passes.
    end wait_end(std::chrono::milliseconds limit = 3s) {
        const auto deadline = steady::now() + limit;
        while (fill(deadline)) {
            if (buf_.size() > (1u << 24)) buf_.clear();
        }
        return end_ == end::none ? end::timeout : end_;
    }
    bool ended() const noexcept { return end_ == end::eof || end_ == end::reset; }
    const std::string& buffered() const noexcept { return buf_; }

private:
    bool fill(steady::time_point deadline) {
        if (end_ != end::none) return false;
        for (;;) {
            std::error_code ec;
            const std::size_t n = s_.read_some(asio::buffer(tmp_), ec);
            if (ec == asio::error::would_block || ec == asio::error::try_again) {
                if (!wait(POLLIN, deadline)) return false;
                continue;
            }
            if (ec == asio::error::eof) end_ = end::eof;
            else if (ec) end_ = end::reset;
            else buf_.append(tmp_.data(), n);
            return !ec;
        }
    }
    bool wait(short events, steady::time_point deadline) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now()).count();
        if (left <= 0) return false;
        pollfd pfd{s_.native_handle(), events, 0};
        return ::poll(&pfd, 1, static_cast<int>(left)) > 0;
    }

    tcp::socket s_;
    std::string buf_;
    std::array<char, 65536> tmp_{};
    end end_ = end::none;
};

std::string get(const std::string& target, const std::string& extra = "") {
    return "GET " + target + " HTTP/1.1\r\nHost: test\r\n" + extra + "\r\n";
}

/// `n` bytes that say which chunk they belong to, so a reordering or a loss shows.
std::string payload(std::size_t k, std::size_t n) {
    std::string s = "<" + std::to_string(k) + ">";
    while (s.size() < n) s.push_back(static_cast<char>('a' + (k + s.size()) % 26));
    s.resize(n);
    return s;
}

http::server_config test_config() {
    http::server_config cfg;
    cfg.header_timeout = 2000ms;
    cfg.idle_timeout = 2000ms;
    cfg.write_timeout = 3000ms;
    cfg.linger_timeout = 500ms;
    return cfg;
}

/// A server with a small router: /hello, /echo..., POST /record/NAME, /big, /throw, HLS
/// playlist, and /live/NAME.webm streams kept in `streams` (io thread only).
struct fixture {
    asio::io_context io;
    asio::io_context raw_io; // the clients' sockets: synchronous use only, never run
    asio::executor_work_guard<asio::io_context::executor_type> guard = asio::make_work_guard(io);
    std::unique_ptr<http::server> srv;
    tcp::endpoint ep;
    std::map<std::string, std::vector<std::shared_ptr<http::stream>>> streams; // io thread only
    std::map<std::string, int> stream_ends;                                    // io thread only: on_close calls
    http::shared_bytes big = http::make_shared_bytes(payload(7, 2 * 1024 * 1024));
    std::jthread thread;

    explicit fixture(http::server_config cfg = test_config()) {
        srv = std::make_unique<http::server>(io.get_executor(), tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0), std::move(cfg),
                                             [this](const http::request& req, http::response& res) { route(req, res); });
        srv->start();
        ep = srv->local_endpoint();
        thread = std::jthread([this] { io.run(); });
    }
    ~fixture() {
        on_io(io, [this] {
            srv->stop();
            streams.clear();
        });
        guard.reset();
        io.stop();
        thread.join();
    }

    void route(const http::request& req, http::response& res) {
        const std::string& p = req.path;
        if (p == "/hello") {
            res.content_type = "text/plain";
            res.add_header("Cache-Control", "no-cache");
            res.body = "hello world";
        } else if (p.starts_with("/echo")) {
            res.content_type = "text/plain";
            res.body = "method=" + std::string(http::method_name(req.method)) + "\npath=" + p + "\nquery=" + req.query +
                       "\nname=" + req.query_param("name").value_or("<none>") + "\nx-test=" +
                       std::string(req.header("X-TEST").value_or("<none>")) + "\nbody=" + req.body;
        } else if (p.starts_with("/record/") && req.method == http::method::post) {
            res.status = 201;
            res.body = "recording " + p.substr(8) + " as " + req.query_param("format").value_or("?") + " (" + std::to_string(req.body.size()) + " bytes)";
        } else if (p == "/big") {
            res.content_type = "application/octet-stream";
            res.shared_body = big;
        } else if (p == "/throw") {
            throw std::runtime_error("handler failure");
        } else if (p == "/live/cam/index.m3u8") {
            res.content_type = "application/vnd.apple.mpegurl";
            res.add_header("Cache-Control", "max-age=1");
            res.body = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2.0,\n0.m4s\n";
        } else if (p.starts_with("/live/") && p.ends_with(".webm")) {
            const std::string name = p.substr(6, p.size() - 11);
            res.content_type = "video/webm";
            res.add_header("Cache-Control", "no-store");
            res.add_header("Content-Length", "12345"); // the server owns framing: dropped
            auto s = res.start_stream();
            s->send("HEADER:" + name);
            if (name == "short") { // a whole stream inside the handler
                s->send("one");
                s->send("two");
                s->close();
                return;
            }
            if (!s->open()) return; // HEAD
            s->on_close([this, name] { ++stream_ends[name]; });
            streams[name].push_back(std::move(s));
        } else {
            res.status = 404;
            res.content_type = "text/plain";
            res.body = "not found\n";
        }
    }

    http::server_stats stats() { return on_io(io, [this] { return srv->stats(); }); }
    std::size_t stream_count(const std::string& name) {
        return on_io(io, [&] { return streams[name].size(); });
    }
};

} // namespace

TEST_SUITE("integration.http_server") {

TEST_CASE("request parser: any split, pipelining, decoding, limits") {
    SUBCASE("one byte at a time") {
        http::request_parser p;
        const std::string in = "GET /live/a%20b/x.webm?name=J%C3%B6rg+K&n=1 HTTP/1.1\r\nHost: h\r\nX-Thing:  v w  \r\n\r\n";
        http::request r;
        int got = 0;
        for (const char c : in) {
            auto room = p.prepare(1);
            room[0] = c;
            p.commit(1);
            const auto st = p.next(r);
            REQUIRE(st != http::request_parser::status::error);
            if (st == http::request_parser::status::request) ++got;
        }
        CHECK(got == 1);
        CHECK(r.method == http::method::get);
        CHECK(r.path == "/live/a b/x.webm");
        CHECK(r.query == "name=J%C3%B6rg+K&n=1");
        CHECK(r.query_param("name") == "J\xc3\xb6rg K");
        CHECK(r.query_param("n") == "1");
        CHECK_FALSE(r.query_param("missing"));
        CHECK(r.header("x-thing") == "v w");
        CHECK(r.header("HOST") == "h");
        CHECK(r.keep_alive);
        CHECK_FALSE(p.started());
    }
    SUBCASE("pipelined requests with a body between, LF line ends, leading empty lines, absolute form") {
        http::request_parser p;
        const std::string in = "\r\n\r\nGET /a HTTP/1.1\r\nHost: h\r\n\r\n"
                               "POST /record/x?format=webm HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
                               "GET http://example.com:8080/b?q=1 HTTP/1.0\nConnection: keep-alive\n\n"
                               "GET /c HTTP/1.0\r\n\r\nGET /partial";
        auto room = p.prepare(in.size());
        std::copy(in.begin(), in.end(), room.begin());
        p.commit(in.size());
        std::vector<http::request> rs;
        http::request r;
        while (p.next(r) == http::request_parser::status::request) rs.push_back(r);
        REQUIRE(rs.size() == 4);
        CHECK(rs[0].path == "/a");
        CHECK(rs[1].method == http::method::post);
        CHECK(rs[1].body == "hello");
        CHECK(rs[1].query_param("format") == "webm");
        CHECK(rs[2].path == "/b");
        CHECK(rs[2].query == "q=1");
        CHECK(rs[2].minor_version == 0);
        CHECK(rs[2].keep_alive);
        CHECK(rs[3].path == "/c");
        CHECK_FALSE(rs[3].keep_alive); // HTTP/1.0 without keep-alive
        CHECK(p.started());            // "GET /partial" waits for the rest
    }
    SUBCASE("query parameters and percent-decoding") {
        http::request r;
        r.query = "a=1&b=x%20y+z&c&d=&bad=%zz";
        CHECK(r.query_param("a") == "1");
        CHECK(r.query_param("b") == "x y z");
        CHECK(r.query_param("c") == "");
        CHECK(r.query_param("d") == "");
        CHECK_FALSE(r.query_param("bad"));
        CHECK_FALSE(r.query_param("e"));
        CHECK(http::percent_decode("%41%4a%4A") == "AJJ");
        CHECK_FALSE(http::percent_decode("%4"));
        CHECK_FALSE(http::percent_decode("%"));
        CHECK(http::percent_decode("a+b") == "a+b"); // '+' is a space only in a query
    }
    SUBCASE("refusals and their statuses") {
        struct bad {
            std::string in;
            int status;
        };
        const std::vector<bad> cases = {
            {"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"s, 400}, // a TLS hello: refused before any line ends
            {"hello there\r\n\r\n", 400},
            {"GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400},
            {"GET / HTTP/1.1\r\n\r\n", 400}, // no Host
            {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
            {"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505},
            {"GET / HTTX/1.1\r\nHost: h\r\n\r\n", 400},
            {"PUT / HTTP/1.1\r\nHost: h\r\n\r\n", 405},
            {"BREW / HTTP/1.1\r\nHost: h\r\n\r\n", 501},
            {"get / HTTP/1.1\r\nHost: h\r\n\r\n", 501},
            {"GET x HTTP/1.1\r\nHost: h\r\n\r\n", 400},
            {"GET /../etc/passwd HTTP/1.1\r\nHost: h\r\n\r\n", 400},
            {"GET /a/%2e%2e/b HTTP/1.1\r\nHost: h\r\n\r\n", 400},
            {"GET /a/..%2fb HTTP/1.1\r\nHost: h\r\n\r\n", 400},
            {"GET /a%00b HTTP/1.1\r\nHost: h\r\n\r\n", 400},
            {"GET /a%zz HTTP/1.1\r\nHost: h\r\n\r\n", 400},
            {"GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400},
            {"GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n", 400},
            {"GET / HTTP/1.1\r\nHost: h\r\nNo colon here\r\n\r\n", 400},
            {"GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n"s, 400},
            {"GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", 400},
            {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400},
            {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400},
            {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4097\r\n\r\n", 413},
            {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", 411},
            {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
            {"GET /" + std::string(9000, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n", 414},
            {"GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(9000, 'a') + "\r\n\r\n", 431},
            {"GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(9000, 'a'), 431}, // refused before the head ends
        };
        for (const auto& c : cases) {
            INFO(c.in.substr(0, 60));
            http::request_parser p;
            auto room = p.prepare(c.in.size());
            std::copy(c.in.begin(), c.in.end(), room.begin());
            p.commit(c.in.size());
            http::request r;
            REQUIRE(p.next(r) == http::request_parser::status::error);
            CHECK(p.error_status() == c.status);
        }
        std::string many = "GET / HTTP/1.1\r\nHost: h\r\n";
        for (int i = 0; i < 120; ++i) many += "A: b\r\n";
        http::request_parser p;
        auto room = p.prepare(many.size());
        std::copy(many.begin(), many.end(), room.begin());
        p.commit(many.size());
        http::request r;
        CHECK(p.next(r) == http::request_parser::status::error);
        CHECK(p.error_status() == 431);
    }
}

TEST_CASE("complete responses: GET, keep-alive, HEAD, 404, decoding, query, POST, pipelining, HTTP/1.0") {
    fixture fx;
    const auto before = fx.stats();
    {
        INFO("two requests and a HEAD on one keep-alive connection");
        client c(fx.raw_io, fx.ep);
        REQUIRE(c.send(get("/hello")));
        auto r = c.response();
        REQUIRE(r);
        CHECK(r->status == 200);
        CHECK(r->body == "hello world");
        CHECK(r->header("content-length") == "11");
        CHECK(r->header("content-type") == "text/plain");
        CHECK(r->header("cache-control") == "no-cache");
        CHECK(r->header("access-control-allow-origin") == "*");
        CHECK_FALSE(r->has("connection"));

        REQUIRE(c.send(get("/echo/a%20b/%C3%A9?name=J%C3%B6rg+K&x=1", "X-Test: yes\r\n")));
        r = c.response();
        REQUIRE(r);
        CHECK(r->status == 200);
        CHECK(r->body == "method=GET\npath=/echo/a b/\xc3\xa9\nquery=name=J%C3%B6rg+K&x=1\nname=J\xc3\xb6rg K\nx-test=yes\nbody=");

        REQUIRE(c.send("HEAD /hello HTTP/1.1\r\nHost: test\r\n\r\n"));
        r = c.response(true);
        REQUIRE(r);
        CHECK(r->status == 200);
        CHECK(r->header("content-length") == "11");
        // No body followed the HEAD: the next response parses from the first byte.
        REQUIRE(c.send(get("/nope")));
        r = c.response();
        REQUIRE(r);
        CHECK(r->status == 404);
        CHECK(r->body == "not found\n");
        CHECK(c.buffered().empty());

        REQUIRE(c.send(get("/live/cam/index.m3u8")));
        r = c.response();
        REQUIRE(r);
        CHECK(r->header("content-type") == "application/vnd.apple.mpegurl");
        CHECK(r->body.starts_with("#EXTM3U\n"));
    }
    {
        INFO("pipelined requests are answered in order");
        client c(fx.raw_io, fx.ep);
        REQUIRE(c.send(get("/echo/1") + get("/echo/2") + get("/hello")));
        auto a = c.response(), b = c.response(), h = c.response();
        REQUIRE((a && b && h));
        CHECK(a->body.find("path=/echo/1\n") != std::string::npos);
        CHECK(b->body.find("path=/echo/2\n") != std::string::npos);
        CHECK(h->body == "hello world");
    }
    {
        INFO("POST with a body, and with Expect: 100-continue");
        client c(fx.raw_io, fx.ep);
        const std::string body(3000, 'x');
        REQUIRE(c.send("POST /record/cam1?format=webm HTTP/1.1\r\nHost: test\r\nContent-Length: 3000\r\n\r\n" + body));
        auto r = c.response();
        REQUIRE(r);
        CHECK(r->status == 201);
        CHECK(r->body == "recording cam1 as webm (3000 bytes)");

        REQUIRE(c.send("POST /record/cam2?format=mp4 HTTP/1.1\r\nHost: test\r\nContent-Length: 3000\r\nExpect: 100-continue\r\n\r\n"));
        r = c.response();
        REQUIRE(r);
        CHECK(r->status == 100);
        REQUIRE(c.send(body));
        r = c.response();
        REQUIRE(r);
        CHECK(r->status == 201);
        CHECK(r->body == "recording cam2 as mp4 (3000 bytes)");

        REQUIRE(c.send("GET /record/cam1 HTTP/1.1\r\nHost: test\r\n\r\n")); // GET: not a recording
        r = c.response();
        REQUIRE(r);
        CHECK(r->status == 404);
    }
    {
        INFO("a large shared body");
        client c(fx.raw_io, fx.ep);
        REQUIRE(c.send(get("/big")));
        auto r = c.response(false, 10s);
        REQUIRE(r);
        CHECK(r->status == 200);
        CHECK(r->body.size() == fx.big->size());
        CHECK(std::equal(r->body.begin(), r->body.end(), reinterpret_cast<const char*>(fx.big->data())));
    }
    {
        INFO("Connection: close, HTTP/1.0 with and without keep-alive");
        client c(fx.raw_io, fx.ep);
        REQUIRE(c.send(get("/hello", "Connection: close\r\n")));
        auto r = c.response();
        REQUIRE(r);
        CHECK(r->header("connection") == "close");
        CHECK(c.wait_end() == client::end::eof);

        client d(fx.raw_io, fx.ep);
        REQUIRE(d.send("GET /hello HTTP/1.0\r\n\r\n"));
        r = d.response();
        REQUIRE(r);
        CHECK(r->status == 200);
        CHECK(r->header("connection") == "close");
        CHECK(d.wait_end() == client::end::eof);

        client e(fx.raw_io, fx.ep);
        REQUIRE(e.send("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
        r = e.response();
        REQUIRE(r);
        CHECK(r->header("connection") == "keep-alive");
        REQUIRE(e.send("GET /echo/again HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
        r = e.response();
        REQUIRE(r);
        CHECK(r->body.find("path=/echo/again\n") != std::string::npos);
    }
    {
        INFO("a throwing handler: 500 and closed");
        client c(fx.raw_io, fx.ep);
        REQUIRE(c.send(get("/throw")));
        auto r = c.response();
        REQUIRE(r);
        CHECK(r->status == 500);
        CHECK(c.wait_end() == client::end::eof);
    }
    const auto after = fx.stats();
    CHECK(after.requests - before.requests == 17);
    CHECK(after.responses_4xx - before.responses_4xx == 2);
    CHECK(after.responses_5xx - before.responses_5xx == 1);
    CHECK(after.responses_2xx - before.responses_2xx == 14);
    CHECK(after.handler_errors - before.handler_errors == 1);
    CHECK(after.bad_requests == before.bad_requests);
    CHECK(after.bytes_out - before.bytes_out > fx.big->size());
}

TEST_CASE("bad input is answered with its status and closed; the server keeps serving") {
    auto cfg = test_config();
    cfg.header_timeout = 5000ms; // well above how long any refusal may take
    fixture fx(cfg);
    const auto before = fx.stats();
    struct attack {
        std::string bytes;
        int status;
        const char* what;
    };
    std::string many_lines = "GET /hello HTTP/1.1\r\nHost: test\r\n";
    for (int i = 0; i < 150; ++i) many_lines += "X-" + std::to_string(i) + ": y\r\n";
    many_lines += "\r\n";
    std::string huge = "GET /hello HTTP/1.1\r\nHost: test\r\n";
    while (huge.size() < 64 * 1024) huge += "X-Filler: " + std::string(100, 'f') + "\r\n";
    huge += "\r\n";
    const std::vector<attack> attacks = {
        {"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x00\x00"s, 400, "binary garbage (TLS hello)"},
        {"garbage garbage garbage\r\n\r\n", 400, "text garbage"},
        {huge, 431, "64 KiB of header fields"},
        {"GET /" + std::string(64 * 1024, 'a') + " HTTP/1.1\r\nHost: test\r\n\r\n", 414, "64 KiB request line"},
        {many_lines, 431, "150 header lines"},
        {"PUT /hello HTTP/1.1\r\nHost: test\r\n\r\n", 405, "PUT"},
        {"BREW /hello HTTP/1.1\r\nHost: test\r\n\r\n", 501, "unknown method"},
        {"POST /record/x HTTP/1.1\r\nHost: test\r\nContent-Length: 100000\r\n\r\n", 413, "oversize body (not sent)"},
        {"POST /record/x HTTP/1.1\r\nHost: test\r\nContent-Length: 100000\r\n\r\n" + std::string(100000, 'b'), 413, "oversize body (sent)"},
        {"POST /record/x HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 411, "chunked body"},
        {"GET /../secret HTTP/1.1\r\nHost: test\r\n\r\n", 400, "dot-dot path"},
        {"GET /live/%2e%2e/secret HTTP/1.1\r\nHost: test\r\n\r\n", 400, "encoded dot-dot path"},
        {"GET /a%00b HTTP/1.1\r\nHost: test\r\n\r\n", 400, "NUL in the path"},
        {"GET /hello HTTP/3.0\r\nHost: test\r\n\r\n", 505, "HTTP/3.0"},
    };
    for (const auto& a : attacks) {
        INFO(a.what);
        client c(fx.raw_io, fx.ep);
        const auto t0 = steady::now();
        CHECK(c.send(a.bytes)); // the server drops the rest after refusing: this does not block
        auto r = c.response();
        REQUIRE(r);
        CHECK(r->status == a.status);
        CHECK(r->header("connection") == "close");
        if (a.status == 405) CHECK(r->header("allow") == "GET, HEAD, POST");
        CHECK(c.wait_end() != client::end::timeout);
        CHECK(ms_since(t0) < 2500); // at once, not at the 5 s header timeout
    }
    const auto after = fx.stats();
    CHECK(after.bad_requests - before.bad_requests == attacks.size());
    CHECK(after.header_too_large - before.header_too_large == 3);
    CHECK(after.body_too_large - before.body_too_large == 2);
    CHECK(after.bad_method - before.bad_method == 2);
    CHECK(after.requests == before.requests); // none reached the handler
    CHECK(after.header_timeouts == before.header_timeouts);

    client ok(fx.raw_io, fx.ep);
    REQUIRE(ok.send(get("/hello")));
    auto r = ok.response();
    REQUIRE(r);
    CHECK(r->body == "hello world");
    CHECK(eventually([&] { return on_io(fx.io, [&] { return fx.srv->connections(); }) == 1; }));
}

TEST_CASE("slowloris and idle connections are closed on time and never delay other clients") {
    auto cfg = test_config();
    cfg.header_timeout = 2500ms;
    cfg.idle_timeout = 1000ms;
    fixture fx(cfg);
    const auto before = fx.stats();

    std::vector<std::unique_ptr<client>> idle;
    for (int i = 0; i < 50; ++i) idle.push_back(std::make_unique<client>(fx.raw_io, fx.ep));

    // One header byte every 100 ms: the request would take ~25 s to arrive.
    std::atomic<int> slow_bytes{0};
    std::atomic<bool> slow_closed{false};
    std::atomic<long> slow_closed_ms{-1};
    std::jthread slow([&](std::stop_token stop) {
        asio::io_context ctx;
        client c(ctx, fx.ep);
        const auto t0 = steady::now();
        const std::string req = "GET /hello HTTP/1.1\r\nHost: test\r\nX-Slow: " + std::string(200, 'a') + "\r\n\r\n";
        for (const char ch : req) {
            if (stop.stop_requested() || ms_since(t0) > 10'000) break;
            if (!c.send(std::string_view(&ch, 1), 500ms)) break;
            ++slow_bytes;
            if (c.wait_end(100ms) != client::end::timeout) break;
        }
        slow_closed_ms = ms_since(t0);
        slow_closed = c.ended();
    });
    REQUIRE(eventually([&] { return slow_bytes >= 3; }));

    // Meanwhile, fresh clients are served promptly.
    long worst = 0;
    int served_while_slow_open = 0;
    for (int i = 0; i < 10; ++i) {
        const auto t0 = steady::now();
        client c(fx.raw_io, fx.ep);
        REQUIRE(c.send(get("/hello")));
        auto r = c.response();
        REQUIRE(r);
        CHECK(r->body == "hello world");
        worst = std::max(worst, ms_since(t0));
        if (!slow_closed) ++served_while_slow_open;
    }
    CHECK(served_while_slow_open >= 1);
    CHECK(worst < 1500);

    // A keep-alive connection left idle after a response: closed after idle_timeout.
    client kept(fx.raw_io, fx.ep);
    REQUIRE(kept.send(get("/hello")));
    REQUIRE(kept.response());
    const auto kept_t0 = steady::now();

    slow.join();
    CHECK(slow_closed);
    CHECK(slow_closed_ms >= 2000);          // not before its header timeout (2.5 s)...
    CHECK(slow_closed_ms < 2500 + 4000);    // ...and not long after
    CHECK(slow_bytes < 60);                 // the trickle did not extend the deadline

    CHECK(kept.wait_end(4s) == client::end::eof);
    CHECK(ms_since(kept_t0) >= 800);
    const auto idle_deadline = steady::now() + 4s;
    int idle_open = 0;
    for (auto& c : idle)
        if (c->wait_end(std::max(1ms, std::chrono::duration_cast<std::chrono::milliseconds>(idle_deadline - steady::now()))) == client::end::timeout) ++idle_open;
    CHECK(idle_open == 0);

    const auto after = fx.stats();
    CHECK(after.header_timeouts - before.header_timeouts >= 51);
    CHECK(after.idle_timeouts - before.idle_timeouts == 1);
    CHECK(after.requests - before.requests == 11);
    CHECK(eventually([&] { return on_io(fx.io, [&] { return fx.srv->connections(); }) == 0; }));
}

TEST_CASE("a client that stops reading a complete response is closed at the write timeout") {
    auto cfg = test_config();
    cfg.write_timeout = 600ms;
    cfg.socket_send_buffer = 32 * 1024;
    fixture fx(cfg);
    client stuck(fx.raw_io, fx.ep, 4096);
    REQUIRE(stuck.send(get("/big"))); // 2 MiB, never read
    const auto t0 = steady::now();
    REQUIRE(eventually([&] { return fx.stats().write_timeouts == 1; }));
    CHECK(ms_since(t0) >= 400);

    client ok(fx.raw_io, fx.ep);
    REQUIRE(ok.send(get("/hello")));
    auto r = ok.response();
    REQUIRE(r);
    CHECK(r->body == "hello world");
    CHECK(stuck.wait_end(5s) != client::end::timeout);
    CHECK(stuck.buffered().size() < fx.big->size()); // it was cut off, not finished
}

TEST_CASE("chunked streaming: every byte pushed arrives in order; close() sends the last chunk") {
    fixture fx;
    client c(fx.raw_io, fx.ep);
    REQUIRE(c.send(get("/live/a.webm")));
    auto h = c.head();
    REQUIRE(h);
    CHECK(h->status == 200);
    CHECK(h->header("transfer-encoding") == "chunked");
    CHECK(h->header("content-type") == "video/webm");
    CHECK(h->header("cache-control") == "no-store");
    CHECK(h->header("connection") == "close");
    CHECK_FALSE(h->has("content-length"));
    auto first = c.chunk();
    REQUIRE(first);
    CHECK(*first == "HEADER:a");
    REQUIRE(fx.stream_count("a") == 1);

    // Copied spans, shared buffers and strings, of many sizes; an empty one is no chunk.
    std::string expected;
    for (std::size_t k = 0; k < 200; ++k) expected += payload(k, 1 + (k * 997) % 9000);
    const bool all_sent = on_io(fx.io, [&] {
        auto& s = *fx.streams["a"][0];
        bool ok = s.send(std::span<const std::uint8_t>());
        for (std::size_t k = 0; k < 200; ++k) {
            const std::string p = payload(k, 1 + (k * 997) % 9000);
            if (k % 3 == 0) ok = s.send(http::make_shared_bytes(p)) && ok;
            else if (k % 3 == 1) ok = s.send(std::span(reinterpret_cast<const std::uint8_t*>(p.data()), p.size())) && ok;
            else ok = s.send(std::string_view(p)) && ok;
        }
        return ok;
    });
    CHECK(all_sent);
    std::string got;
    int chunks = 0;
    while (got.size() < expected.size()) {
        auto ch = c.chunk();
        REQUIRE(ch);
        REQUIRE_FALSE(ch->empty());
        got += *ch;
        ++chunks;
    }
    CHECK(chunks == 200);
    CHECK(got == expected);

    const auto [open_before, open_after, send_after] = on_io(fx.io, [&] {
        auto s = fx.streams["a"][0];
        const bool before = s->open();
        s->close();
        return std::tuple{before, s->open(), s->send("late")};
    });
    CHECK(open_before);
    CHECK_FALSE(open_after);
    CHECK_FALSE(send_after);
    auto last = c.chunk();
    REQUIRE(last);
    CHECK(last->empty());
    CHECK(c.wait_end() == client::end::eof);
    CHECK(c.buffered().empty());
    CHECK(on_io(fx.io, [&] { return fx.stream_ends["a"]; }) == 0); // the application's own close()

    {
        INFO("HEAD on a stream: the head only, and the connection stays usable");
        client d(fx.raw_io, fx.ep);
        REQUIRE(d.send("HEAD /live/b.webm HTTP/1.1\r\nHost: test\r\n\r\n"));
        auto r = d.response(true);
        REQUIRE(r);
        CHECK(r->status == 200);
        CHECK(r->header("transfer-encoding") == "chunked");
        REQUIRE(d.send(get("/hello")));
        r = d.response();
        REQUIRE(r);
        CHECK(r->body == "hello world");
        CHECK(fx.stream_count("b") == 0);
    }
    {
        INFO("a stream opened and closed inside the handler");
        client d(fx.raw_io, fx.ep);
        REQUIRE(d.send(get("/live/short.webm")));
        auto r = d.response();
        REQUIRE(r);
        CHECK(r->body == "HEADER:shortonetwo");
        CHECK(d.wait_end() == client::end::eof);
    }
    {
        INFO("HTTP/1.0: the body unframed, ended by the close");
        client d(fx.raw_io, fx.ep);
        REQUIRE(d.send("GET /live/old.webm HTTP/1.0\r\n\r\n"));
        auto hh = d.head();
        REQUIRE(hh);
        CHECK_FALSE(hh->has("transfer-encoding"));
        REQUIRE(fx.stream_count("old") == 1);
        on_io(fx.io, [&] {
            fx.streams["old"][0]->send("abc");
            fx.streams["old"][0]->close();
        });
        CHECK(d.wait_end() == client::end::eof);
        CHECK(d.buffered() == "HEADER:oldabc");
    }
    {
        INFO("a viewer that leaves: its stream closes and on_close runs");
        auto d = std::make_unique<client>(fx.raw_io, fx.ep);
        REQUIRE(d->send(get("/live/gone.webm")));
        REQUIRE(d->head());
        REQUIRE(fx.stream_count("gone") == 1);
        CHECK(on_io(fx.io, [&] { return fx.srv->open_streams(); }) == 1);
        d.reset();
        CHECK(eventually([&] { return on_io(fx.io, [&] { return fx.stream_ends["gone"]; }) == 1; }));
        CHECK(on_io(fx.io, [&] { return !fx.streams["gone"][0]->open() && fx.srv->open_streams() == 0; }));
    }
    {
        INFO("stop() ends open streams without their last chunk");
        client d(fx.raw_io, fx.ep);
        REQUIRE(d.send(get("/live/stop.webm")));
        REQUIRE(d.head());
        REQUIRE(d.chunk());
        REQUIRE(fx.stream_count("stop") == 1);
        on_io(fx.io, [&] { fx.srv->stop(); });
        CHECK(d.wait_end() != client::end::timeout);
        CHECK(d.buffered().empty()); // no "0\r\n\r\n"
        CHECK(eventually([&] { return on_io(fx.io, [&] { return fx.stream_ends["stop"]; }) == 1; }));
        CHECK(on_io(fx.io, [&] { return fx.streams["stop"][0]->send("x"); }) == false);
        CHECK_THROWS(client(fx.raw_io, fx.ep)); // the listener is closed
    }
    CHECK(fx.stats().streams == 5);
}

TEST_CASE("a streaming client that never reads is dropped at its queue bound; one that reads gets every chunk") {
    auto cfg = test_config();
    cfg.max_stream_queue_bytes = 256 * 1024;
    cfg.socket_send_buffer = 32 * 1024;
    cfg.write_timeout = 30'000ms; // so what drops it is the queue bound
    fixture fx(cfg);

    client stuck(fx.raw_io, fx.ep, 4096);
    REQUIRE(stuck.send(get("/live/s.webm")));
    REQUIRE(eventually([&] { return fx.stream_count("s") == 1; }));
    client reader(fx.raw_io, fx.ep);
    REQUIRE(reader.send(get("/live/s.webm")));
    REQUIRE(eventually([&] { return fx.stream_count("s") == 2; }));
    REQUIRE(reader.head());
    auto first = reader.chunk();
    REQUIRE(first);
    CHECK(*first == "HEADER:s");

    constexpr std::size_t chunk_size = 16 * 1024;
    std::size_t pushed_before_drop = 0, k = 0, after_drop = 0, mismatches = 0;
    bool dropped = false;
    for (; k < 4000 && after_drop < 10; ++k) {
        const std::string p = payload(k, chunk_size);
        const auto shared = http::make_shared_bytes(p);
        const auto [stuck_ok, reader_ok] = on_io(fx.io, [&] {
            auto& v = fx.streams["s"];
            return std::pair{v[0]->send(shared), v[1]->send(shared)};
        });
        REQUIRE(reader_ok);
        if (!stuck_ok) dropped = true;
        if (dropped) ++after_drop;
        else pushed_before_drop += chunk_size;
        // The reader keeps up: its queue never holds more than this chunk.
        auto got = reader.chunk();
        REQUIRE(got);
        if (*got != p) ++mismatches;
    }
    CHECK(dropped);
    CHECK(mismatches == 0);
    CHECK(pushed_before_drop >= 240 * 1024); // not before its queue could have reached the bound
    CHECK(pushed_before_drop < 16 * 1024 * 1024);
    const auto st = fx.stats();
    CHECK(st.slow_clients == 1);
    CHECK(st.write_timeouts == 0);
    CHECK(eventually([&] { return on_io(fx.io, [&] { return fx.stream_ends["s"]; }) == 1; }));
    CHECK(on_io(fx.io, [&] { return !fx.streams["s"][0]->open() && fx.streams["s"][1]->open(); }));
    CHECK(stuck.wait_end(5s) != client::end::timeout);

    on_io(fx.io, [&] { fx.streams["s"][1]->close(); });
    auto last = reader.chunk();
    REQUIRE(last);
    CHECK(last->empty());
    CHECK(reader.wait_end() == client::end::eof);
}

TEST_CASE("max_connections: connections past it are closed at once; a freed slot is usable") {
    auto cfg = test_config();
    cfg.max_connections = 8;
    cfg.header_timeout = 20'000ms;
    fixture fx(cfg);
    std::vector<std::unique_ptr<client>> held;
    for (int i = 0; i < 8; ++i) held.push_back(std::make_unique<client>(fx.raw_io, fx.ep));
    REQUIRE(eventually([&] { return on_io(fx.io, [&] { return fx.srv->connections(); }) == 8; }));

    client extra(fx.raw_io, fx.ep);
    const auto t0 = steady::now();
    CHECK(extra.wait_end(5s) != client::end::timeout);
    CHECK(ms_since(t0) < 3000);
    CHECK(extra.buffered().empty());
    CHECK(fx.stats().refused_connections == 1);

    // The held ones still work.
    REQUIRE(held[0]->send(get("/hello")));
    auto r = held[0]->response();
    REQUIRE(r);
    CHECK(r->body == "hello world");

    held.pop_back();
    REQUIRE(eventually([&] { return on_io(fx.io, [&] { return fx.srv->connections(); }) == 7; }));
    client next(fx.raw_io, fx.ep);
    REQUIRE(next.send(get("/hello")));
    r = next.response();
    REQUIRE(r);
    CHECK(r->body == "hello world");
    CHECK(fx.stats().refused_connections == 1);
}

TEST_CASE("200 concurrent clients each doing a few requests all get their own answers") {
    auto cfg = test_config();
    cfg.header_timeout = 10'000ms;
    cfg.idle_timeout = 10'000ms;
    fixture fx(cfg);
    constexpr int threads = 8, per_thread = 25, rounds = 3;
    std::latch connected(threads);
    std::atomic<int> good{0}, bad{0};
    {
        std::vector<std::jthread> workers;
        for (int t = 0; t < threads; ++t)
            workers.emplace_back([&, t] {
                asio::io_context ctx;
                std::vector<std::unique_ptr<client>> cs;
                for (int i = 0; i < per_thread; ++i) cs.push_back(std::make_unique<client>(ctx, fx.ep));
                connected.arrive_and_wait(); // all 200 are open at once from here
                for (int round = 0; round < rounds; ++round) {
                    for (int i = 0; i < per_thread; ++i)
                        if (!cs[i]->send(get("/echo/t" + std::to_string(t) + "c" + std::to_string(i) + "?name=r" + std::to_string(round)))) ++bad;
                    for (int i = 0; i < per_thread; ++i) {
                        auto r = cs[i]->response(false, 10s);
                        const std::string want = "path=/echo/t" + std::to_string(t) + "c" + std::to_string(i) + "\n";
                        if (r && r->status == 200 && r->body.find(want) != std::string::npos &&
                            r->body.find("name=r" + std::to_string(round) + "\n") != std::string::npos)
                            ++good;
                        else
                            ++bad;
                    }
                }
            });
    }
    CHECK(good == threads * per_thread * rounds);
    CHECK(bad == 0);
    const auto st = fx.stats();
    CHECK(st.accepted == threads * per_thread);
    CHECK(st.requests == threads * per_thread * rounds);
    CHECK(st.refused_connections == 0);
}

TEST_CASE("curl talks to it: a small response, a POST, and a whole chunked stream") {
    if (std::system("curl --version > /dev/null 2>&1") != 0) {
        MESSAGE("curl is not installed: skipped");
        return;
    }
    fixture fx;
    const std::string base = "http://127.0.0.1:" + std::to_string(fx.ep.port());
    auto run = [](const std::string& cmd) {
        std::string out;
        if (FILE* f = ::popen(cmd.c_str(), "r")) {
            std::array<char, 4096> buf;
            std::size_t n;
            while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) out.append(buf.data(), n);
            ::pclose(f);
        }
        return out;
    };
    const std::string hello = run("curl -s -S --max-time 10 -i " + base + "/hello 2>&1");
    CHECK(hello.find("HTTP/1.1 200 OK") != std::string::npos);
    CHECK(hello.find("hello world") != std::string::npos);

    const std::string body_file = std::string(ONAIR_TEST_DATA_DIR) + "/http_server_post.bin";
    std::ofstream(body_file, std::ios::binary) << std::string(3000, 'p');
    CHECK(run("curl -s -S --max-time 10 --data-binary @" + body_file + " '" + base + "/record/cam9?format=webm' 2>&1") ==
          "recording cam9 as webm (3000 bytes)");

    CHECK(run("curl -s -S --max-time 10 " + base + "/live/short.webm 2>&1") == "HEADER:shortonetwo");
    CHECK(run("curl -s -o /dev/null -w '%{http_code}' --max-time 10 " + base + "/nope 2>&1") == "404");
}

} // TEST_SUITE
