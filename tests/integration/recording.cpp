// Recording on the host, on the relay node and on a viewer, judged by ffprobe and ffmpeg:
// real onair-relay, onair-host, onair-viewer and onair-netem processes on loopback.
#include "support/http_client.hpp"
#include "support/netem_process.hpp"
#include "support/process.hpp"
#include "support/relay_process.hpp"
#include "unit/source/test_files.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>
#include <regex>
#include <string>
#include <vector>

using namespace onair_test;
namespace fs = std::filesystem;

namespace {

using onair::test::have_tool;
using onair::test::command_output;

/// What the judges say about one recording.
struct verdict {
    std::string probe_errors;   ///< ffprobe -v error output
    std::string decode_errors;  ///< ffmpeg -v error ... -f null output
    std::string video_codec, audio_codec;
    int width = 0, height = 0;
    double duration = 0;        ///< container duration (s)
    double video_start = NAN, audio_start = NAN;
    long video_frames = 0;      ///< decoded by ffprobe -count_frames
    long audio_frames = 0;
};

double number_after(const std::string& text, const std::string& key) {
    const std::regex re(key + (key.back() == ':' ? "" : "=") + "([-0-9.]+)");
    std::smatch m;
    return std::regex_search(text, m, re) ? std::stod(m[1]) : NAN;
}

std::string section(const std::string& text, const std::string& codec_type) {
    // ffprobe -show_streams prints [STREAM] ... [/STREAM] blocks.
    std::size_t at = 0;
    while ((at = text.find("[STREAM]", at)) != std::string::npos) {
        const auto end = text.find("[/STREAM]", at);
        const std::string block = text.substr(at, end - at);
        if (block.find("codec_type=" + codec_type) != std::string::npos) return block;
        at = end;
    }
    return {};
}

verdict judge(const fs::path& file) {
    verdict v;
    const std::string f = "'" + file.string() + "'";
    v.probe_errors = command_output("ffprobe -v error -show_format -show_streams -count_frames " + f + " 2>&1 >/dev/null");
    const std::string info = command_output("ffprobe -v quiet -show_format -show_streams -count_frames " + f);
    const std::string vs = section(info, "video"), as = section(info, "audio");
    std::smatch m;
    if (std::regex_search(vs, m, std::regex("codec_name=([a-z0-9]+)"))) v.video_codec = m[1];
    if (std::regex_search(as, m, std::regex("codec_name=([a-z0-9]+)"))) v.audio_codec = m[1];
    v.width = static_cast<int>(number_after(vs, "\nwidth"));
    v.height = static_cast<int>(number_after(vs, "\nheight"));
    v.video_start = number_after(vs, "start_time");
    v.audio_start = number_after(as, "start_time");
    v.video_frames = static_cast<long>(number_after(vs, "nb_read_frames"));
    v.audio_frames = static_cast<long>(number_after(as, "nb_read_frames"));
    const auto fmt = info.find("[FORMAT]");
    if (fmt != std::string::npos) v.duration = number_after(info.substr(fmt), "duration");
    // Frames keep their own times (a capture loop's timing is not a constant frame rate).
    v.decode_errors = command_output("ffmpeg -nostdin -v error -i " + f + " -fps_mode passthrough -f null - 2>&1");
    return v;
}

/// "NAME: video_frames=N audio_frames=M duration=Ds" as the programs print it.
struct printed {
    long video_frames = -1, audio_frames = -1;
    double duration = -1;
};
printed recorded_line(const std::string& out) {
    const std::regex re("recorded .*: video_frames=([0-9]+) audio_frames=([0-9]+) duration=([0-9.]+)s");
    std::smatch m;
    printed p;
    if (std::regex_search(out, m, re)) {
        p.video_frames = std::stol(m[1]);
        p.audio_frames = std::stol(m[2]);
        p.duration = std::stod(m[3]);
    }
    return p;
}

void check_clean(const verdict& v, const std::string& video_codec, double expected_s) {
    CHECK_MESSAGE(v.probe_errors.empty(), v.probe_errors);
    CHECK_MESSAGE(v.decode_errors.empty(), v.decode_errors);
    CHECK(v.video_codec == video_codec);
    CHECK(v.audio_codec == "opus");
    CHECK(v.width == 320);
    CHECK(v.height == 240);
    CHECK(v.video_frames > 0);
    CHECK(v.audio_frames > 0);
    // Duration within 2 % of the recorded time.
    CHECK_MESSAGE(std::abs(v.duration - expected_s) <= 0.02 * expected_s, "duration " << v.duration << " expected " << expected_s);
    // Audio and video start together.
    CHECK_MESSAGE(std::abs(v.video_start - v.audio_start) <= 0.040, "video start " << v.video_start << " audio start " << v.audio_start);
}

std::vector<std::string> host_args(const std::string& relay, const std::string& video, double seconds) {
    return {bin("onair-host"), "--relay", relay, "--stream", "cam", "--video", video, "--size", "320x240", "--fps", "30",
            "--bitrate", "500", "--seconds", std::to_string(seconds), "--keyframe-interval", "1"};
}

std::vector<std::string> operator+(std::vector<std::string> a, const std::vector<std::string>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

void write_text(const fs::path& p, const std::string& text) {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f << text;
}

fs::path only_file(const fs::path& dir, const std::string& ext) {
    fs::path found;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.path().extension() == ext) found = e.path();
    return found;
}

} // namespace

TEST_SUITE("integration.recording") {
    TEST_CASE("VP8 + Opus to WebM on the host, the relay and a viewer, with loss on both legs") {
        if (!have_tool("ffprobe") || !have_tool("ffmpeg")) {
            MESSAGE("ffmpeg/ffprobe not installed: skipped");
            return;
        }
        const auto dir = scratch_dir("recording_webm");
        fs::create_directories(dir / "relay-rec");
        relay_process relay(dir, {"--record", "cam=webm", "--record-dir", (dir / "relay-rec").string()});
        // 5 % loss on the host's leg and on the viewer's: each leg repairs its own.
        netem_process up(dir / "up", {"--to", relay.address(), "--loss", "5", "--seed", "3"});
        const std::string up_addr = "127.0.0.1:" + std::to_string(up.port);
        process viewer({bin("onair-viewer"), "--relay", relay.address(), "--stream", "cam", "--out", (dir / "viewer").string(),
                        "--seconds", "9", "--record", (dir / "viewer.webm").string()},
                       dir, "viewer");
        const int rc = run(host_args(up_addr, "vp8", 6) + std::vector<std::string>{"--record", (dir / "host.webm").string()}, dir,
                           "host", std::chrono::seconds(30));
        REQUIRE(rc == 0);
        REQUIRE(viewer.wait(std::chrono::seconds(20)) == 0);
        relay.proc->signal(SIGTERM);
        REQUIRE(relay.proc->wait(std::chrono::seconds(10)) == 0);

        const std::string host_out = read_file(dir / "host.out");
        const printed h = recorded_line(host_out);
        REQUIRE(h.video_frames > 0);
        // The host recorded everything it encoded: 6 s at 30 fps.
        CHECK(h.video_frames >= 175);
        const verdict hv = judge(dir / "host.webm");
        check_clean(hv, "vp8", 6.0);
        CHECK(hv.video_frames == h.video_frames);

        const printed vw = recorded_line(viewer.out());
        REQUIRE(vw.video_frames > 0);
        const verdict vv = judge(dir / "viewer.webm");
        check_clean(vv, "vp8", vw.duration);
        CHECK(vv.video_frames == vw.video_frames);

        const fs::path relay_file = only_file(dir / "relay-rec", ".webm");
        REQUIRE_FALSE(relay_file.empty());
        const printed rl = recorded_line(relay.proc->out());
        REQUIRE(rl.video_frames > 0);
        const verdict rv = judge(relay_file);
        check_clean(rv, "vp8", rl.duration);
        CHECK(rv.video_frames == rl.video_frames);
        // Loss was repaired (or skipped to a key frame), never written as corrupt frames:
        // the decoders reported nothing above, and most of the stream made it.
        CHECK(rl.video_frames >= 150);
        // WebM files are seekable: ffmpeg seeks by the cues.
        CHECK(command_output("ffmpeg -nostdin -v error -ss 3 -i '" + (dir / "host.webm").string() + "' -frames:v 1 -f null - 2>&1").empty());
    }

    TEST_CASE("VP9 + Opus to fragmented MP4 on the host, a viewer and the relay (started and stopped over HTTP); VP8 in MP4 refused") {
        if (!have_tool("ffprobe") || !have_tool("ffmpeg")) {
            MESSAGE("ffmpeg/ffprobe not installed: skipped");
            return;
        }
        const auto dir = scratch_dir("recording_mp4");
        fs::create_directories(dir / "rec");
        write_text(dir / "token", "s3cret-record-token\n");
        relay_process relay(dir, {"--http", "127.0.0.1:0", "--record-dir", (dir / "rec").string(), "--record-token-file",
                                  (dir / "token").string(), "--record", "vp8cam=mp4"});
        const auto http_port = static_cast<unsigned short>(std::stoi(output_match(*relay.proc, "http on 127\\.0\\.0\\.1:([0-9]+)")));
        REQUIRE(http_port != 0);
        process host(host_args(relay.address(), "vp9", 7) + std::vector<std::string>{"--record", (dir / "host.mp4").string()}, dir, "host");
        REQUIRE_FALSE(output_match(host, "(publishing)").empty());
        process viewer({bin("onair-viewer"), "--relay", relay.address(), "--stream", "cam", "--out", (dir / "viewer").string(),
                        "--seconds", "5", "--record", (dir / "viewer.mp4").string()},
                       dir, "viewer");
        std::this_thread::sleep_for(std::chrono::milliseconds(500));

        // Without the token: refused. With it: started.
        CHECK(http_call(http_port, "POST", "/record/cam?format=mp4").status == 401);
        const auto started = http_call(http_port, "POST", "/record/cam?format=mp4", {{"Authorization", "Bearer s3cret-record-token"}});
        REQUIRE(started.status == 200);
        CHECK(started.body.find("\"format\":\"mp4\"") != std::string::npos);
        // A second recording of the same stream at once: conflict.
        CHECK(http_call(http_port, "POST", "/record/cam?format=webm", {{"Authorization", "Bearer s3cret-record-token"}}).status == 409);
        std::this_thread::sleep_for(std::chrono::seconds(4));
        const auto stopped = http_call(http_port, "POST", "/record/cam/stop", {{"Authorization", "Bearer s3cret-record-token"}});
        REQUIRE(stopped.status == 200);
        const double relay_duration = number_after(stopped.body, "\"duration_s\":");
        const long relay_frames = static_cast<long>(number_after(stopped.body, "\"video_frames\":"));
        CHECK(relay_duration > 3.0);
        REQUIRE(host.wait(std::chrono::seconds(20)) == 0);
        REQUIRE(viewer.wait(std::chrono::seconds(20)) == 0);
        const printed vw = recorded_line(viewer.out());
        REQUIRE(vw.video_frames > 0);
        const verdict vv = judge(dir / "viewer.mp4");
        check_clean(vv, "vp9", vw.duration);
        CHECK(vv.video_frames == vw.video_frames);

        const verdict hv = judge(dir / "host.mp4");
        check_clean(hv, "vp9", 7.0);
        CHECK(hv.video_frames == recorded_line(host.out()).video_frames);

        const fs::path relay_file = only_file(dir / "rec", ".mp4");
        REQUIRE_FALSE(relay_file.empty());
        const verdict rv = judge(relay_file);
        check_clean(rv, "vp9", relay_duration);
        CHECK(rv.video_frames == relay_frames);

        // VP8 cannot go into MP4: the host refuses at once, with a clear reason.
        std::string err;
        auto vp8 = host_args(relay.address(), "vp8", 1) + std::vector<std::string>{"--record", (dir / "x.mp4").string()};
        vp8[4] = "other";
        const int rc = run(vp8, dir, "host-vp8", std::chrono::seconds(20), nullptr, &err);
        CHECK(rc != 0);
        CHECK(err.find("MP4 holds VP9 video only") != std::string::npos);
        CHECK_FALSE(fs::exists(dir / "x.mp4"));
        // The relay asked (by flag) to record a stream as MP4 that turns out VP8: it says so.
        auto plain = host_args(relay.address(), "vp8", 1.5);
        plain[4] = "vp8cam";
        CHECK(run(plain, dir, "host-vp8cam", std::chrono::seconds(20)) == 0);
        CHECK(output_match(*relay.proc, "cannot record 'vp8cam' as mp4: (MP4 holds VP9 video only)") == "MP4 holds VP9 video only");
        CHECK(only_file(dir / "rec", ".mp4") == relay_file); // nothing else was written
    }

    TEST_CASE("a recording cut by a kill decodes up to the cut") {
        if (!have_tool("ffprobe") || !have_tool("ffmpeg")) {
            MESSAGE("ffmpeg/ffprobe not installed: skipped");
            return;
        }
        const auto dir = scratch_dir("recording_kill");
        fs::create_directories(dir / "rec");
        relay_process relay(dir, {"--record", "cam=webm", "--record", "cam9=mp4", "--record-dir", (dir / "rec").string()});
        process host8(host_args(relay.address(), "vp8", 20), dir, "host8");
        auto a9 = host_args(relay.address(), "vp9", 20);
        a9[4] = "cam9";
        process host9(a9, dir, "host9");
        std::this_thread::sleep_for(std::chrono::seconds(5));
        relay.proc->signal(SIGKILL);
        REQUIRE(relay.proc->wait(std::chrono::seconds(5)) == 128 + SIGKILL);
        host8.signal(SIGTERM);
        host9.signal(SIGTERM);

        for (const char* ext : {".webm", ".mp4"}) {
            const fs::path f = only_file(dir / "rec", ext);
            REQUIRE_FALSE(f.empty());
            const verdict v = judge(f);
            INFO(ext << ": " << v.probe_errors << v.decode_errors);
            // Whole clusters / fragments reach the file as they close (at most 1 s each):
            // about 4 s of the 5 s before the kill are there, and they decode.
            CHECK(v.video_frames >= 90);
            CHECK(v.audio_frames >= 150);
            CHECK(v.decode_errors.empty());
        }
    }
}
