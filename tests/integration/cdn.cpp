// CDN egress through nginx, judged by ffmpeg and headless Chromium, and the relay's HTTP
// server under bad input while media flows: real onair-relay, onair-host, onair-viewer,
// nginx (examples/cdn) and Chromium processes on loopback.
#include "support/browser.hpp"
#include "support/http_client.hpp"
#include "support/nginx.hpp"
#include "support/process.hpp"
#include "unit/source/test_files.hpp"

#include <onair/core/media_frame.hpp>
#include <onair/core/time.hpp>
#include <onair/source/barcode.hpp>

#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

using namespace onair_test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

/// A relay with --http and a host publishing 320x240 VP9 (key frame every second) to it.
struct origin {
    fs::path dir;
    std::unique_ptr<process> relay, host;
    std::string media, http;
    unsigned short http_port = 0;

    origin(const fs::path& d, const std::string& codec, double seconds) : dir(d) {
        relay = std::make_unique<process>(std::vector<std::string>{bin("onair-relay"), "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"},
                                          dir, "relay");
        media = output_match(*relay, "listening on (127\\.0\\.0\\.1:[0-9]+)");
        http = output_match(*relay, "http on (127\\.0\\.0\\.1:[0-9]+)");
        REQUIRE_FALSE(http.empty());
        http_port = static_cast<unsigned short>(std::stoi(http.substr(http.find(':') + 1)));
        host = std::make_unique<process>(std::vector<std::string>{bin("onair-host"), "--relay", media, "--stream", "cam", "--video", codec,
                                                                  "--size", "320x240", "--fps", "30", "--bitrate", "400",
                                                                  "--keyframe-interval", "1", "--seconds", std::to_string(seconds)},
                                         dir, "host");
        REQUIRE_FALSE(output_match(*host, "(publishing)").empty());
        // Live once its first segments are out.
        REQUIRE(eventually([&] { return http_call(http_port, "GET", "/live/cam/index.m3u8").status != 404 || codec == "vp8"; }, 15s));
    }
};

/// Decodes `seconds` of `url` with ffmpeg to raw luma; returns the frames whose barcode read,
/// and ffmpeg's error output.
struct decoded {
    long frames = 0, unreadable = 0;
    std::string errors;
};
decoded decode(const std::string& url, const std::vector<std::string>& input_args, double seconds, const fs::path& err_file) {
    std::string cmd = "ffmpeg -nostdin -v error";
    for (const auto& a : input_args) cmd += " " + a;
    cmd += " -i '" + url + "' -t " + std::to_string(seconds) + " -an -f rawvideo -pix_fmt gray -fps_mode passthrough - 2>'" +
           err_file.string() + "'";
    decoded d;
    FILE* p = ::popen(cmd.c_str(), "r");
    REQUIRE(p);
    onair::video_frame f(320, 240);
    const std::size_t luma = 320 * 240;
    while (std::fread(f.data.data(), 1, luma, p) == luma) {
        if (onair::source::read_barcode(f)) ++d.frames;
        else ++d.unreadable;
    }
    ::pclose(p);
    d.errors = read_file(err_file);
    return d;
}

} // namespace

TEST_SUITE("integration.cdn") {
    TEST_CASE("through nginx: ffmpeg plays the live WebM and the HLS stream; segments are cached") {
        if (!onair::test::have_tool("ffmpeg") || !nginx_instance::available()) {
            MESSAGE("ffmpeg or nginx not installed: skipped");
            return;
        }
        const auto dir = scratch_dir("cdn_ffmpeg");
        origin o(dir, "vp9", 40);
        nginx_instance nginx(dir / "nginx", {o.http});

        const decoded webm = decode(nginx.url("/live/cam.webm"), {}, 4, dir / "webm.err");
        CHECK_MESSAGE(webm.errors.empty(), webm.errors);
        CHECK(webm.frames >= 100); // 4 s at 30 fps, from a key frame
        CHECK(webm.unreadable == 0);

        const decoded hls = decode(nginx.url("/live/cam/index.m3u8"), {"-live_start_index", "-1"}, 4, dir / "hls.err");
        CHECK_MESSAGE(hls.errors.empty(), hls.errors);
        CHECK(hls.frames >= 100);
        CHECK(hls.unreadable == 0);

        // A segment asked for twice through nginx: the second answer is nginx's cached copy.
        auto playlist = http_call(nginx.port(), "GET", "/live/cam/index.m3u8");
        REQUIRE(playlist.status == 200);
        CHECK(playlist.headers["content-type"] == "application/vnd.apple.mpegurl");
        const auto last = playlist.body.rfind(".m4s");
        REQUIRE(last != std::string::npos);
        const auto line = playlist.body.rfind('\n', last) + 1;
        const std::string seg = "/live/cam/" + playlist.body.substr(line, last + 4 - line);
        const auto first = http_call(nginx.port(), "GET", seg);
        auto second = http_call(nginx.port(), "GET", seg);
        REQUIRE(first.status == 200);
        CHECK(second.status == 200);
        CHECK(second.body == first.body);
        CHECK(second.headers["x-cache-status"] == "HIT");
        // Unknown streams are 404 at the origin and through nginx.
        CHECK(http_call(nginx.port(), "GET", "/live/nobody.webm").status == 404);
        CHECK(http_call(nginx.port(), "GET", "/live/nobody/index.m3u8").status == 404);
    }

    TEST_CASE("headless Chromium plays the live WebM and the HLS stream from nginx in a <video> element") {
        if (!nginx_instance::available() || !chromium::available()) {
            MESSAGE("nginx or chromium not installed: skipped");
            return;
        }
        const auto dir = scratch_dir("cdn_chromium");
        origin o(dir, "vp9", 60);
        nginx_instance nginx(dir / "nginx", {o.http});
        for (const std::string src : {"/live/cam.webm", "/live/cam/index.m3u8"}) {
            report_listener listener;
            std::string log;
            const auto report = browse_and_report(player_url(nginx.port(), src, listener.url(), 6), listener, dir, 40s, &log);
            REQUIRE_MESSAGE(report, src << ": no report from the page; chromium said: " << log.substr(0, 3000) << "\n" << nginx.diagnostics());
            INFO(src << ": " << describe(*report));
            if (src.ends_with(".m3u8") && report_text(*report, "canplay_hls").empty()) {
                MESSAGE("this Chromium does not play HLS natively: HLS checked with ffmpeg only");
                continue;
            }
            CHECK(report_number(*report, "err") == 0);
            CHECK(report_number(*report, "w") == 320);
            CHECK(report_number(*report, "h") == 240);
            // currentTime advanced: at least 2 s of the 6 the page watched.
            CHECK(report_number(*report, "t1") - report_number(*report, "t0") >= 2.0);
        }
    }

    TEST_CASE("bad HTTP input never stalls other clients or the media path") {
        const auto dir = scratch_dir("cdn_bad_input");
        origin o(dir, "vp8", 25);
        process viewer({bin("onair-viewer"), "--relay", o.media, "--stream", "cam", "--out", (dir / "viewer").string(), "--seconds", "12"},
                       dir, "viewer");
        std::this_thread::sleep_for(1s);
        // 60 slow clients trickling a header, 20 live WebM clients that never read, garbage,
        // huge headers, unknown streams: all at once, while the viewer plays.
        std::vector<int> held;
        for (int i = 0; i < 60; ++i)
            if (const int fd = http_connect(o.http_port); fd >= 0) {
                send_all(fd, std::string("GET /live/cam.webm HTTP/1.1\r\nHo"));
                held.push_back(fd);
            }
        for (int i = 0; i < 20; ++i)
            if (const int fd = http_connect(o.http_port); fd >= 0) {
                const int small = 4096;
                ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
                send_all(fd, std::string("GET /live/cam.webm HTTP/1.1\r\nHost: x\r\n\r\n"));
                held.push_back(fd); // never read
            }
        const auto garbage = [&](const std::string& bytes) {
            const int fd = http_connect(o.http_port);
            REQUIRE(fd >= 0);
            send_all(fd, bytes);
            std::string raw;
            char buf[4096];
            for (;;) {
                const auto n = ::recv(fd, buf, sizeof buf, 0);
                if (n <= 0) break;
                raw.append(buf, static_cast<std::size_t>(n));
            }
            ::close(fd);
            return parse_reply(raw).status;
        };
        CHECK(garbage(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11)) == 400);
        CHECK(garbage("GET /live/cam.webm HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(64 * 1024, 'a') + "\r\n\r\n") == 431);
        CHECK(garbage("BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n") == 501);
        CHECK(http_call(o.http_port, "GET", "/live/nobody.webm").status == 404);
        CHECK(http_call(o.http_port, "GET", "/live/cam/../../etc/passwd").status >= 400);
        CHECK(http_call(o.http_port, "POST", "/record/cam").status == 403); // no token configured
        // A well-behaved client is still served at once, and gets live media.
        const auto t = std::chrono::steady_clock::now();
        const auto streams = http_call(o.http_port, "GET", "/streams", {}, 5s);
        CHECK(streams.status == 200);
        CHECK(std::chrono::steady_clock::now() - t < 2s);
        const int live = http_connect(o.http_port, 5s);
        REQUIRE(live >= 0);
        send_all(live, std::string("GET /live/cam.webm HTTP/1.1\r\nHost: x\r\n\r\n"));
        std::string got;
        char buf[65536];
        const auto until = std::chrono::steady_clock::now() + 3s;
        while (std::chrono::steady_clock::now() < until && got.size() < 100'000) {
            const auto n = ::recv(live, buf, sizeof buf, 0);
            if (n <= 0) break;
            got.append(buf, static_cast<std::size_t>(n));
        }
        ::close(live);
        CHECK(got.size() >= 20'000);
        REQUIRE(viewer.wait(30s) == 0);
        for (const int fd : held) ::close(fd);
        // The viewer over UDP saw no freeze while all of this went on.
        const std::string stats = read_file(dir / "viewer" / "stats.json");
        CHECK(json_number(stats, "frames") >= 300);
        CHECK(json_number(stats, "freeze_ratio") <= 0.01);
    }
}
