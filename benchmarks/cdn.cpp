// onair-bench-cdn — CDN latency: from the test pattern's capture time (its barcode) to the
// moment ffmpeg decodes that frame, read from nginx in front of a relay node.
//
// Real processes throughout: onair-relay --http, onair-host (VP9 640x360 at 30 fps, a key
// frame every second, plus Opus), nginx from examples/cdn (start-nginx.sh), and ffmpeg
// decoding to raw luma on a pipe. For each path, ffmpeg joins, the first `--warmup` seconds
// are left out (a live WebM client starts with the GOP since the latest key frame, an HLS
// client with the newest segment: both a burst of old frames), then every decoded frame's
// barcode gives its latency = decode time - capture time (one machine, one clock).
//
// Paths measured, each with the relay directly as the baseline beside nginx:
//   live WebM  /live/cam.webm         (target p95 <= 1.5 s)
//   HLS        /live/cam/index.m3u8   (target p95 <= 3 s; 1 s fMP4 segments)
#include "common/cli.hpp"

#include <onair/core/stats.hpp>
#include <onair/core/time.hpp>
#include <onair/source/barcode.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

namespace {
std::string bench_bin_dir() { return std::filesystem::read_symlink("/proc/self/exe").parent_path().string(); }
} // namespace
#define ONAIR_BIN_DIR bench_bin_dir()
#define ONAIR_TEST_DATA_DIR std::filesystem::temp_directory_path().string()
#include "support/nginx.hpp"
#include "support/process.hpp"

using namespace onair_examples;
using namespace onair_test;
using namespace std::chrono_literals;

namespace {

struct result {
    std::size_t frames = 0;     ///< measured (after the warm-up)
    std::size_t unreadable = 0; ///< decoded frames whose barcode did not read
    std::vector<double> latency_ms;
    double percentile(double p) const {
        if (latency_ms.empty()) return -1;
        std::vector<double> v = latency_ms;
        std::sort(v.begin(), v.end());
        const auto i = static_cast<std::size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
        return v[std::min(i, v.size() - 1)];
    }
};

/// Decodes `url` with ffmpeg for warmup + seconds and reads every frame's barcode.
result measure(const std::string& url, const std::vector<std::string>& input_args, int w, int h, double warmup, double seconds) {
    std::string cmd = "exec ffmpeg -nostdin -v error";
    for (const auto& a : input_args) cmd += " " + a;
    cmd += " -i '" + url + "' -an -f rawvideo -pix_fmt gray -fps_mode passthrough -flush_packets 1 - 2>/dev/null";
    FILE* p = ::popen(cmd.c_str(), "r");
    if (!p) throw std::runtime_error("cannot start ffmpeg");
    result r;
    onair::video_frame f(w, h);
    const std::size_t luma = static_cast<std::size_t>(w) * static_cast<std::size_t>(h);
    std::fill(f.data.begin() + static_cast<std::ptrdiff_t>(luma), f.data.end(), std::uint8_t{128});
    const auto start = std::chrono::steady_clock::now();
    const auto measure_from = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(warmup));
    const auto end = measure_from + std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(seconds));
    while (std::chrono::steady_clock::now() < end) {
        if (std::fread(f.data.data(), 1, luma, p) != luma) break;
        const auto decoded = onair::now();
        if (std::chrono::steady_clock::now() < measure_from) continue;
        const auto code = onair::source::read_barcode(f);
        if (!code) {
            ++r.unreadable;
            continue;
        }
        ++r.frames;
        r.latency_ms.push_back(static_cast<double>((decoded - code->capture_time).count()) / 1000.0);
    }
    ::pclose(p); // ffmpeg gets SIGPIPE at its next frame
    return r;
}

} // namespace

int main(int argc, char** argv) {
    command_line cli("onair-bench-cdn", "CDN latency through nginx: live WebM and HLS, capture to decode",
                     {{"seconds", "N", "measured seconds per path (default 15)"},
                      {"warmup", "N", "seconds left out after ffmpeg joins (default 4)"},
                      {"size", "WxH", "picture size (default 640x360)"},
                      {"out", "DIR", "working directory (default: a temporary one)"}});
    return guarded_main(cli, argc, argv, [&]() -> int {
        const double seconds = cli.number<double>("seconds", 15, 1, 3600);
        const double warmup = cli.number<double>("warmup", 4, 0, 60);
        const auto [w, h] = parse_size(cli.get("size", "640x360"));
        const std::filesystem::path dir = cli.has("out") ? std::filesystem::path(cli.get("out"))
                                                         : std::filesystem::temp_directory_path() / "onair-bench-cdn";
        std::filesystem::remove_all(dir);
        std::filesystem::create_directories(dir);
        if (!nginx_instance::available()) throw std::runtime_error("nginx is not installed (Debian package nginx)");

        process relay({bin("onair-relay"), "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"}, dir, "relay");
        const std::string media = output_match(relay, "listening on (127\\.0\\.0\\.1:[0-9]+)");
        const std::string http = output_match(relay, "http on (127\\.0\\.0\\.1:[0-9]+)");
        if (media.empty() || http.empty()) throw std::runtime_error("onair-relay did not start: " + relay.err());
        const double total = 4 * (warmup + seconds) + 30;
        process host({bin("onair-host"), "--relay", media, "--stream", "cam", "--video", "vp9", "--size",
                      std::to_string(w) + "x" + std::to_string(h), "--fps", "30", "--bitrate", "800", "--keyframe-interval", "1",
                      "--seconds", std::to_string(total)},
                     dir, "host");
        if (output_match(host, "(publishing)").empty()) throw std::runtime_error("onair-host did not start: " + host.err());
        nginx_instance nginx(dir / "nginx", {http});
        std::this_thread::sleep_for(3s); // a few HLS segments exist

        struct path {
            const char* name;
            std::string url;
            std::vector<std::string> args;
            double target_ms;
        };
        const std::string relay_url = "http://" + http;
        const std::vector<std::string> webm_args{"-fflags", "nobuffer", "-flags", "low_delay", "-probesize", "32768", "-analyzeduration", "0"};
        const std::vector<std::string> hls_args{"-live_start_index", "-1"};
        const std::vector<path> paths{
            {"live WebM, relay", relay_url + "/live/cam.webm", webm_args, 1500},
            {"live WebM, nginx", nginx.url("/live/cam.webm"), webm_args, 1500},
            {"HLS, relay", relay_url + "/live/cam/index.m3u8", hls_args, 3000},
            {"HLS, nginx", nginx.url("/live/cam/index.m3u8"), hls_args, 3000},
        };
        std::printf("onair-bench-cdn: VP9 %dx%d at 30 fps, key frame every 1 s; %.0f s measured per path after %.0f s warm-up\n", w, h,
                    seconds, warmup);
        std::printf("| path | frames | unreadable | p50 | p95 | max | target (p95) |\n|---|---|---|---|---|---|---|\n");
        bool met = true;
        for (const auto& pth : paths) {
            const result r = measure(pth.url, pth.args, w, h, warmup, seconds);
            const double p95 = r.percentile(95);
            const bool ok = r.frames > 0 && p95 <= pth.target_ms;
            met = met && ok;
            std::printf("| %s | %zu | %zu | %.0f ms | %.0f ms | %.0f ms | %.0f ms: %s |\n", pth.name, r.frames, r.unreadable, r.percentile(50),
                        p95, r.percentile(100), pth.target_ms, ok ? "met" : "MISSED");
            std::fflush(stdout);
        }
        const std::string log = nginx.access_log();
        std::size_t hits = 0, misses = 0;
        for (std::size_t at = 0; (at = log.find("cache=HIT", at)) != std::string::npos; ++at) ++hits;
        for (std::size_t at = 0; (at = log.find("cache=MISS", at)) != std::string::npos; ++at) ++misses;
        std::printf("nginx cache (segments): %zu hits, %zu misses in its access log\n", hits, misses);
        host.signal(SIGTERM);
        relay.signal(SIGTERM);
        host.wait(10s);
        relay.wait(10s);
        return met ? 0 : 1;
    });
}
