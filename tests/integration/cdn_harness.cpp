// The CDN test harness, without a relay: nginx from examples/cdn in front of fake relays
// written here, and headless Chromium on examples/cdn/player.html reporting what it played.
//  - segments are cached by URI, a thousand viewers' misses become one relay request,
//    404s are neither cached nor fatal (the next relay is asked);
//  - the live WebM passes through unbuffered and chunked (each piece at once, and a viewer
//    that stops reading stalls the relay's writes instead of filling nginx's temp files),
//    and the relay connection closes when the viewer leaves;
//  - the playlist is never older than playlist_max_stale;
//  - Chromium plays a static WebM, a live chunked WebM and (natively) a live HLS playlist.
#include "support/browser.hpp"
#include "support/http.hpp"
#include "support/nginx.hpp"
#include "support/process.hpp"
#include "support/tools.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <fstream>
#include <functional>
#include <latch>
#include <mutex>
#include <regex>
#include <thread>

using namespace onair_test;
using namespace std::chrono_literals;

namespace {

/// nginx.conf.in does not cache playlists: a changed playlist must show at once; 500 ms is the
/// most any setting should allow (a playlist changes every second).
constexpr auto playlist_max_stale = 500ms;

/// An HTTP server on 127.0.0.1 standing in for a relay: one thread per connection, one
/// request per connection (responses say Connection: close), every request counted.
class fake_relay {
public:
    using handler = std::function<void(int fd, const http_request&, const fake_relay& self)>;

    explicit fake_relay(handler h) : handler_(std::move(h)), listen_(tcp_listen_loopback(0)), port_(local_port(listen_.get())) {
        acceptor_ = std::thread([this] { accept_loop(); });
    }
    fake_relay(const fake_relay&) = delete;
    fake_relay& operator=(const fake_relay&) = delete;
    ~fake_relay() {
        stop_ = true;
        acceptor_.join();
        std::vector<std::thread> threads;
        {
            std::lock_guard lock(mutex_);
            threads.swap(connections_);
        }
        for (auto& t : threads) t.join();
    }

    std::uint16_t port() const { return port_; }
    std::string address() const { return loopback(port_); }
    /// Handlers that stream check this to end.
    bool stopping() const { return stop_; }
    int count(const std::string& path) const {
        std::lock_guard lock(mutex_);
        int n = 0;
        for (const auto& r : requests_) n += r.path == path;
        return n;
    }
    int total() const {
        std::lock_guard lock(mutex_);
        return static_cast<int>(requests_.size());
    }
    std::vector<http_request> requests() const {
        std::lock_guard lock(mutex_);
        return requests_;
    }

private:
    void accept_loop() {
        while (!stop_) {
            if (!wait_fd(listen_.get(), POLLIN, 100ms)) continue;
            socket_fd c(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
            if (!c) continue;
            std::lock_guard lock(mutex_);
            connections_.emplace_back([this, fd = std::move(c)]() mutable {
                const auto r = read_request(fd.get(), 5s);
                if (!r) return;
                {
                    std::lock_guard l(mutex_);
                    requests_.push_back(*r);
                }
                handler_(fd.get(), *r, *this);
            });
        }
    }

    handler handler_;
    socket_fd listen_;
    std::uint16_t port_;
    std::atomic<bool> stop_{false};
    mutable std::mutex mutex_;
    std::vector<http_request> requests_;
    std::vector<std::thread> connections_;
    std::thread acceptor_;
};

/// A relay that has no streams: 404 for everything.
fake_relay::handler no_streams() {
    return [](int fd, const http_request&, const fake_relay&) { send_response(fd, 404, "text/plain", "no such stream\n"); };
}

/// A port nothing listens on (a relay that is down).
std::string dead_relay() { return loopback(free_tcp_port()); }

bool sleep_unless(const fake_relay& relay, std::chrono::milliseconds d) {
    const auto end = std::chrono::steady_clock::now() + d;
    while (std::chrono::steady_clock::now() < end) {
        if (relay.stopping()) return false;
        std::this_thread::sleep_for(10ms);
    }
    return true;
}

std::string segment_body(const std::string& name) {
    std::string body = "segment " + name + ":";
    while (body.size() < 20000) body += " payload of " + name;
    return body;
}

bool have_nginx() {
    if (nginx_instance::available()) return true;
    MESSAGE("skipped: nginx (/usr/sbin/nginx or NGINX) or examples/cdn/start-nginx.sh is missing");
    return false;
}

bool have_browser_and_ffmpeg() {
    if (!have_nginx()) return false;
    if (!chromium::available()) {
        MESSAGE("skipped: no Chromium (set ONAIR_CHROMIUM) or no setsid");
        return false;
    }
    for (const char* enc : {"libvpx", "libvpx-vp9", "libopus"}) {
        if (!ffmpeg_has_encoder(enc)) {
            MESSAGE("skipped: no ffmpeg with the " << enc << " encoder");
            return false;
        }
    }
    return true;
}

/// 320x240 test pattern at 30 fps with a key frame every second and a 440 Hz tone.
std::vector<std::string> ffmpeg_sources(double seconds) {
    return {"ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=30",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", std::to_string(seconds), "-g", "30",
            "-keyint_min", "30", "-b:v", "400k", "-deadline", "realtime", "-cpu-used", "8", "-c:a", "libopus", "-b:a", "64k"};
}

/// A VP8 + Opus WebM; `live`: written as a live stream (no cues, like the relay's).
void make_webm(const std::filesystem::path& out, double seconds, bool live, const std::filesystem::path& log_dir) {
    auto argv = ffmpeg_sources(seconds);
    argv.insert(argv.end(), {"-c:v", "libvpx", "-f", "webm"});
    if (live) argv.insert(argv.end(), {"-live", "1"});
    argv.insert(argv.end(), {"-y", out.string()});
    std::string err;
    const int rc = run(argv, log_dir, "ffmpeg-webm", 120s, nullptr, &err);
    INFO("ffmpeg: " << err);
    REQUIRE(rc == 0);
    REQUIRE(std::filesystem::file_size(out) > 10000);
}

/// VP9 + Opus fMP4 HLS: dir/init.mp4, dir/0.m4s ... and dir/vod.m3u8; returns the segment
/// durations.
std::vector<double> make_hls(const std::filesystem::path& dir, double seconds, const std::filesystem::path& log_dir) {
    std::filesystem::create_directories(dir);
    auto argv = ffmpeg_sources(seconds);
    argv.insert(argv.end(), {"-c:v", "libvpx-vp9", "-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod",
                             "-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "init.mp4", "-hls_segment_filename",
                             (dir / "%d.m4s").string(), "-y", (dir / "vod.m3u8").string()});
    std::string err;
    const int rc = run(argv, log_dir, "ffmpeg-hls", 120s, nullptr, &err);
    INFO("ffmpeg: " << err);
    REQUIRE(rc == 0);
    std::vector<double> durations;
    const std::string playlist = read_file(dir / "vod.m3u8");
    const std::regex extinf("#EXTINF:([0-9.]+),");
    for (std::sregex_iterator it(playlist.begin(), playlist.end(), extinf), end; it != end; ++it)
        durations.push_back(std::stod((*it)[1]));
    REQUIRE(durations.size() >= 4);
    REQUIRE(std::filesystem::exists(dir / "init.mp4"));
    return durations;
}

/// Opens player.html on `src` (through nginx) for `seconds` and returns the page's report;
/// fails the test if none comes.
query_map play(const nginx_instance& ng, const std::string& src, double seconds, const std::filesystem::path& dir) {
    report_listener listener;
    const std::string url = player_url(ng.port(), src, listener.url(), seconds);
    std::string log;
    // Chromium may need several seconds to start on a loaded machine.
    const auto report = browse_and_report(url, listener, dir, std::chrono::milliseconds(static_cast<long>(seconds * 1000)) + 60s, &log);
    INFO("page: " << url);
    INFO("chromium log tail: " << (log.size() > 3000 ? log.substr(log.size() - 3000) : log));
    INFO(ng.diagnostics());
    REQUIRE(report.has_value());
    return *report;
}

} // namespace

TEST_SUITE("integration.cdn_harness") {

TEST_CASE("nginx caches segments by URI, asks the relay once for concurrent misses and fails over on 404") {
    if (!have_nginx()) return;
    const auto dir = scratch_dir("cdn_harness_segments");
    std::atomic<bool> published7{false};
    fake_relay origin([&](int fd, const http_request& r, const fake_relay&) {
        const std::regex seg("/live/x/([0-9]+)\\.m4s");
        std::smatch m;
        if (r.path == "/live/x/init.mp4") {
            send_response(fd, 200, "video/mp4", segment_body("init"));
        } else if (std::regex_match(r.path, m, seg)) {
            const std::string n = m[1];
            if (n == "7" && !published7) {
                send_response(fd, 404, "text/plain", "not yet\n");
                return;
            }
            if (n == "6") std::this_thread::sleep_for(1000ms); // a slow relay: viewers pile up
            // Even a relay that says no-cache cannot make nginx ask again for an immutable segment.
            send_response(fd, 200, "video/iso.segment", segment_body(n), {"Cache-Control: no-cache"});
        } else {
            send_response(fd, 404, "text/plain", "no such stream\n");
        }
    });
    fake_relay empty(no_streams());
    nginx_instance ng(dir / "nginx", {dead_relay(), empty.address(), origin.address()});
    INFO(ng.diagnostics());

    SUBCASE("a segment is fetched once and then served from the cache") {
        const auto first = http_get(ng.port(), "/live/x/5.m4s");
        CHECK(first.status == 200);
        CHECK(first.body == segment_body("5"));
        CHECK(first.header("X-Cache-Status") == "MISS");
        CHECK(first.header("Content-Type") == "video/iso.segment");
        CHECK(first.header("Cache-Control").find("immutable") != std::string::npos);
        const auto second = http_get(ng.port(), "/live/x/5.m4s");
        CHECK(second.status == 200);
        CHECK(second.body == first.body);
        CHECK(second.header("X-Cache-Status") == "HIT");
        // The key is the URI: a query string does not bypass the cache.
        const auto busted = http_get(ng.port(), "/live/x/5.m4s?nocache=123");
        CHECK(busted.header("X-Cache-Status") == "HIT");
        CHECK(origin.count("/live/x/5.m4s") == 1);

        const auto init1 = http_get(ng.port(), "/live/x/init.mp4");
        const auto init2 = http_get(ng.port(), "/live/x/init.mp4");
        CHECK(init1.status == 200);
        CHECK(init1.header("X-Cache-Status") == "MISS");
        CHECK(init2.header("X-Cache-Status") == "HIT");
        CHECK(init2.body == segment_body("init"));
        CHECK(origin.count("/live/x/init.mp4") == 1);
    }

    SUBCASE("viewers asking for the same new segment at once cause one relay request") {
        constexpr int viewers = 24;
        std::vector<http_response> responses(viewers);
        std::vector<std::string> errors(viewers);
        std::latch go(viewers);
        std::vector<std::thread> threads;
        for (int i = 0; i < viewers; ++i) {
            threads.emplace_back([&, i] {
                go.arrive_and_wait();
                try {
                    responses[i] = http_get(ng.port(), "/live/x/6.m4s", 30s);
                } catch (const std::exception& e) {
                    errors[i] = e.what();
                }
            });
        }
        for (auto& t : threads) t.join();
        int misses = 0, hits = 0;
        for (int i = 0; i < viewers; ++i) {
            INFO("viewer " << i << ": " << errors[i]);
            CHECK(errors[i].empty());
            CHECK(responses[i].status == 200);
            CHECK(responses[i].body == segment_body("6"));
            misses += responses[i].header("X-Cache-Status") == "MISS";
            hits += responses[i].header("X-Cache-Status") == "HIT";
        }
        CHECK(origin.count("/live/x/6.m4s") == 1);
        CHECK(misses == 1);
        CHECK(hits == viewers - 1);
    }

    SUBCASE("a segment that is not published yet is not cached as missing") {
        const auto before = http_get(ng.port(), "/live/x/7.m4s");
        CHECK(before.status == 404);
        CHECK(before.header("Cache-Control").find("immutable") == std::string::npos);
        published7 = true;
        const auto after = http_get(ng.port(), "/live/x/7.m4s");
        CHECK(after.status == 200);
        CHECK(after.body == segment_body("7"));
        CHECK(http_get(ng.port(), "/live/x/7.m4s").header("X-Cache-Status") == "HIT");
        CHECK(origin.count("/live/x/7.m4s") == 2);
    }

    SUBCASE("a stream no relay has is a 404, other paths are not proxied") {
        CHECK(http_get(ng.port(), "/live/nosuch/1.m4s").status == 404);
        CHECK(http_get(ng.port(), "/live/x/other.txt").status == 404);
        CHECK(origin.count("/live/x/other.txt") == 0);
    }

    // Every request above succeeded although nginx also tried a dead relay and one without
    // the stream: round robin sends some requests there first.
    CHECK(empty.total() > 0);
}

TEST_CASE("nginx passes the live WebM through unbuffered and chunked, and lets go of the relay") {
    if (!have_nginx()) return;
    const auto dir = scratch_dir("cdn_harness_webm");
    const std::string first_chunk = "EBML header and the cluster from the last key frame";
    const std::string second_chunk = "the next live cluster";
    std::atomic<bool> first_sent{false}, release_second{false}, second_sent{false}, relay_saw_close{false};
    fake_relay origin([&](int fd, const http_request& r, const fake_relay& self) {
        if (r.path != "/live/x.webm") {
            send_response(fd, 404, "text/plain", "no such stream\n");
            return;
        }
        send_all(fd, "HTTP/1.1 200 OK\r\nContent-Type: video/webm\r\nTransfer-Encoding: chunked\r\n"
                     "Cache-Control: no-cache\r\nConnection: close\r\n\r\n");
        send_chunk(fd, first_chunk);
        first_sent = true;
        // The second chunk waits until the viewer has the first one (or 5 s): a buffering
        // proxy would hold the first chunk back until then.
        const auto give_up = std::chrono::steady_clock::now() + 5s;
        while (!release_second && std::chrono::steady_clock::now() < give_up && !self.stopping()) std::this_thread::sleep_for(5ms);
        second_sent = true;
        if (!send_chunk(fd, second_chunk)) return;
        // Then a live stream that never ends, until nginx closes the connection.
        for (int i = 0; i < 600 && sleep_unless(self, 100ms); ++i) {
            if (!send_chunk(fd, "cluster " + std::to_string(i) + ";")) {
                relay_saw_close = true;
                return;
            }
        }
    });
    fake_relay empty(no_streams());
    nginx_instance ng(dir / "nginx", {empty.address(), origin.address()});
    INFO(ng.diagnostics());

    // Asking for compression like a browser: nothing may hold the stream back to compress it.
    http_stream viewer(ng.port(), "/live/x.webm", 15s, {"Accept-Encoding: gzip, deflate, br"});
    CHECK(viewer.status() == 200);
    CHECK_FALSE(viewer.has_header("Content-Encoding"));
    CHECK(viewer.version() == "HTTP/1.1");
    CHECK(viewer.header("Content-Type") == "video/webm");
    CHECK(viewer.chunked());
    CHECK_FALSE(viewer.has_header("Content-Length"));
    CHECK(viewer.header("Cache-Control") == "no-store");

    const bool got_first = viewer.read_until([&](const std::string& b) { return b.size() >= first_chunk.size(); }, 15s);
    const bool second_was_sent = second_sent.load();
    REQUIRE(got_first);
    CHECK(viewer.body() == first_chunk);
    INFO("the viewer got the first chunk only after the relay sent the second one: nginx buffers");
    CHECK_FALSE(second_was_sent);
    release_second = true;

    CHECK(viewer.read_until([&](const std::string& b) { return b.size() >= first_chunk.size() + second_chunk.size(); }, 15s));
    CHECK(viewer.body().substr(first_chunk.size(), second_chunk.size()) == second_chunk);
    // More keeps coming, piece by piece.
    const auto size_now = viewer.body().size();
    CHECK(viewer.read_until([&](const std::string& b) { return b.find(';', size_now) != std::string::npos; }, 10s));
    CHECK_FALSE(viewer.complete());

    // nginx spoke HTTP/1.1 to the relay, without "Connection: close".
    bool seen = false;
    for (const auto& r : origin.requests()) {
        if (r.path != "/live/x.webm") continue;
        seen = true;
        CHECK(r.version == "HTTP/1.1");
        CHECK(r.headers.count("connection") == 0);
    }
    CHECK(seen);

    // The viewer leaves: nginx closes the relay connection.
    viewer.close();
    CHECK(eventually([&] { return relay_saw_close.load(); }, 15s));
}

TEST_CASE("a live WebM viewer that stops reading holds the relay back: nginx does not read ahead") {
    // Buffered proxying would keep reading from the relay into temp files (up to 1 GB) for a
    // viewer that does not keep up, so the relay could not see a slow viewer and the viewer's
    // delay would grow without bound. Unbuffered, the relay's writes stop once the socket
    // buffers and one proxy buffer are full.
    if (!have_nginx()) return;
    const auto dir = scratch_dir("cdn_harness_backpressure");
    constexpr std::size_t cap = 96u << 20;
    std::atomic<std::size_t> written{0};
    std::atomic<bool> ended{false};
    fake_relay origin([&](int fd, const http_request& r, const fake_relay& self) {
        if (r.path != "/live/fast.webm") {
            send_response(fd, 404, "text/plain", "no such stream\n");
            return;
        }
        send_all(fd, "HTTP/1.1 200 OK\r\nContent-Type: video/webm\r\nTransfer-Encoding: chunked\r\n"
                     "Connection: close\r\n\r\n");
        const std::string cluster(64 * 1024, 'c');
        while (written < cap && !self.stopping()) {
            if (!send_chunk(fd, cluster)) break;
            written += cluster.size();
        }
        if (written >= cap) {
            while (sleep_unless(self, 100ms) && send_chunk(fd, "x")) {
            }
        }
        ended = true;
    });
    nginx_instance ng(dir / "nginx", {origin.address()});
    INFO(ng.diagnostics());

    http_stream viewer(ng.port(), "/live/fast.webm", 15s, {}, 64 * 1024);
    REQUIRE(viewer.status() == 200);
    // The viewer reads nothing more; wait until the relay's writes stall (or 10 s).
    std::size_t last = written;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    for (int quiet = 0; quiet < 10 && std::chrono::steady_clock::now() < deadline;) {
        std::this_thread::sleep_for(100ms);
        const std::size_t now = written;
        quiet = now == last ? quiet + 1 : 0;
        last = now;
    }
    const std::size_t stalled_at = written;
    MESSAGE("the relay could write " << stalled_at / 1024 << " KiB to a viewer that reads nothing");
    CHECK(stalled_at < cap / 4);
    // The viewer leaves: nginx lets go of the relay.
    viewer.close();
    CHECK(eventually([&] { return ended.load(); }, 15s));
}

TEST_CASE("nginx never serves a playlist older than the configured time") {
    if (!have_nginx()) return;
    const auto dir = scratch_dir("cdn_harness_playlist");
    std::atomic<int> sequence{1};
    fake_relay origin([&](int fd, const http_request& r, const fake_relay&) {
        if (r.path != "/live/x/index.m3u8") {
            send_response(fd, 404, "text/plain", "no such stream\n");
            return;
        }
        const int seq = sequence;
        std::string m3u8 = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:" +
                           std::to_string(seq) + "\n#EXT-X-MAP:URI=\"init.mp4\"\n";
        for (int i = seq; i < seq + 4; ++i) m3u8 += "#EXTINF:1.000,\n" + std::to_string(i) + ".m4s\n";
        send_response(fd, 200, "application/vnd.apple.mpegurl", m3u8, {"Cache-Control: max-age=10"});
    });
    nginx_instance ng(dir / "nginx", {origin.address()});
    INFO(ng.diagnostics());

    const auto first = http_get(ng.port(), "/live/x/index.m3u8");
    CHECK(first.status == 200);
    CHECK(first.header("Content-Type") == "application/vnd.apple.mpegurl");
    CHECK(first.header("Cache-Control") == "no-cache");
    CHECK(first.body.find("#EXT-X-MEDIA-SEQUENCE:1\n") != std::string::npos);

    // Five playlist changes, each 300 ms after a burst of requests for the current one: the
    // first request that starts later than playlist_max_stale after a change must see it.
    for (int change = 2; change <= 6; ++change) {
        for (int i = 0; i < 5; ++i) http_get(ng.port(), "/live/x/index.m3u8");
        std::this_thread::sleep_for(300ms);
        sequence = change;
        const auto changed = std::chrono::steady_clock::now();
        const std::string expect = "#EXT-X-MEDIA-SEQUENCE:" + std::to_string(change) + "\n";
        std::chrono::milliseconds stale{-1};
        while (std::chrono::steady_clock::now() - changed < 5s) {
            const auto asked = std::chrono::steady_clock::now();
            if (http_get(ng.port(), "/live/x/index.m3u8").body.find(expect) != std::string::npos) {
                stale = std::chrono::duration_cast<std::chrono::milliseconds>(asked - changed);
                break;
            }
            std::this_thread::sleep_for(20ms);
        }
        INFO("change " << change << ": nginx served the old playlist for " << stale.count() << " ms");
        CHECK(stale.count() >= 0);
        CHECK(stale <= playlist_max_stale);
    }
}

TEST_CASE("Chromium plays a static WebM served by nginx") {
    if (!have_browser_and_ffmpeg()) return;
    const auto dir = scratch_dir("cdn_harness_static");
    fake_relay relay(no_streams());
    nginx_instance ng(dir / "nginx", {relay.address()});
    make_webm(ng.doc_root() / "clip.webm", 6, false, dir);

    const auto report = play(ng, "/clip.webm", 4, dir);
    INFO("report: " << describe(report));
    CHECK(report_number(report, "err") == 0);
    CHECK(report_number(report, "w") == 320);
    CHECK(report_number(report, "h") == 240);
    CHECK(report_number(report, "t1") - report_number(report, "t0") > 1.0);
    CHECK(report_number(report, "n") >= 8); // sampled every 250 ms
}

TEST_CASE("Chromium plays a live chunked WebM through nginx") {
    if (!have_browser_and_ffmpeg()) return;
    const auto dir = scratch_dir("cdn_harness_live_webm");
    make_webm(dir / "live.webm", 10, true, dir);
    const std::string data = read_file(dir / "live.webm");
    fake_relay origin([&](int fd, const http_request& r, const fake_relay& self) {
        if (r.path != "/live/cam.webm") {
            send_response(fd, 404, "text/plain", "no such stream\n");
            return;
        }
        if (!send_all(fd, "HTTP/1.1 200 OK\r\nContent-Type: video/webm\r\nTransfer-Encoding: chunked\r\n"
                          "Connection: close\r\n\r\n"))
            return;
        // The first second at once (header + the cluster from the key frame), the rest at
        // about the media's pace, then nothing but an open connection: live, never ending.
        std::size_t pos = std::min(data.size(), data.size() / 10);
        if (!send_chunk(fd, std::string_view(data).substr(0, pos))) return;
        const std::size_t step = data.size() / 100;
        while (pos < data.size()) {
            if (!sleep_unless(self, 100ms)) return;
            const std::size_t n = std::min(step, data.size() - pos);
            if (!send_chunk(fd, std::string_view(data).substr(pos, n))) return;
            pos += n;
        }
        while (sleep_unless(self, 100ms)) {
        }
    });
    nginx_instance ng(dir / "nginx", {origin.address()});

    const auto report = play(ng, "/live/cam.webm", 5, dir);
    INFO("report: " << describe(report));
    INFO(ng.diagnostics());
    CHECK(report_number(report, "err") == 0);
    CHECK(report_number(report, "w") == 320);
    CHECK(report_number(report, "h") == 240);
    CHECK(report_number(report, "t1") - report_number(report, "t0") > 1.0);
    CHECK(origin.count("/live/cam.webm") >= 1);
}

TEST_CASE("Chromium plays a live HLS playlist through nginx natively") {
    if (!have_browser_and_ffmpeg()) return;
    const auto dir = scratch_dir("cdn_harness_live_hls");
    const auto media = dir / "hls";
    const auto durations = make_hls(media, 12, dir);
    const auto started = std::chrono::steady_clock::now();
    // A sliding window of 4 segments; 3 exist when the viewer comes, then one more a second.
    auto available = [&] {
        const auto s = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
        return std::min<std::size_t>(durations.size(), 3 + static_cast<std::size_t>(s.count() / 1000));
    };
    fake_relay origin([&](int fd, const http_request& r, const fake_relay&) {
        const std::regex seg("/live/cam/([0-9]+)\\.m4s");
        std::smatch m;
        if (r.path == "/live/cam/index.m3u8") {
            const std::size_t end = available();
            const std::size_t begin = end > 4 ? end - 4 : 0;
            std::string m3u8 = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:" +
                               std::to_string(begin) + "\n#EXT-X-MAP:URI=\"init.mp4\"\n";
            for (std::size_t i = begin; i < end; ++i) {
                char extinf[64];
                std::snprintf(extinf, sizeof extinf, "#EXTINF:%.3f,\n", durations[i]);
                m3u8 += extinf + std::to_string(i) + ".m4s\n";
            }
            send_response(fd, 200, "application/vnd.apple.mpegurl", m3u8);
        } else if (r.path == "/live/cam/init.mp4") {
            send_response(fd, 200, "video/mp4", read_file(media / "init.mp4"));
        } else if (std::regex_match(r.path, m, seg) && std::stoul(m[1]) < available()) {
            send_response(fd, 200, "video/iso.segment", read_file(media / (m[1].str() + ".m4s")));
        } else {
            send_response(fd, 404, "text/plain", "no such segment\n");
        }
    });
    nginx_instance ng(dir / "nginx", {origin.address()});

    const auto report = play(ng, "/live/cam/index.m3u8", 6, dir);
    INFO("report: " << describe(report));
    INFO(ng.diagnostics());
    if (report_text(report, "canplay_hls").empty()) {
        MESSAGE("skipped: this Chromium does not play HLS natively (canPlayType is empty); use the live WebM");
        return;
    }
    CHECK(report_number(report, "err") == 0);
    CHECK(report_number(report, "w") == 320);
    CHECK(report_number(report, "h") == 240);
    CHECK(report_number(report, "t1") - report_number(report, "t0") > 1.0);
    // Segments came through the cache: each was asked of the relay at most once.
    for (std::size_t i = 0; i < durations.size(); ++i) CHECK(origin.count("/live/cam/" + std::to_string(i) + ".m4s") <= 1);
    CHECK(origin.count("/live/cam/index.m3u8") >= 2); // a live player polls the playlist
}

} // TEST_SUITE
