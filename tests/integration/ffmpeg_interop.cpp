// Interop: real ffmpeg decodes the relay's plain-RTP forward of a stream from the SDP the
// relay writes, with no decode errors.
#include "support/relay_process.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <regex>

using namespace onair_test;
using namespace std::chrono_literals;

namespace {

std::size_t count_lines_starting(const std::string& text, const std::string& prefix) {
    std::size_t n = 0;
    std::size_t pos = 0;
    while (pos < text.size()) {
        if (text.compare(pos, prefix.size(), prefix) == 0) ++n;
        pos = text.find('\n', pos);
        if (pos == std::string::npos) break;
        ++pos;
    }
    return n;
}

} // namespace

TEST_CASE("ffmpeg decodes the relay's VP8 + Opus forward from its SDP without errors") {
    const auto dir = scratch_dir("ffmpeg_interop");
    const auto sdp = dir / "cam.sdp";
    const unsigned short port = free_port_block();
    relay_process relay(dir, {"--forward", "cam=127.0.0.1:" + std::to_string(port), "--sdp", sdp.string(), "--seconds", "30"});
    process host({bin("onair-host"), "--relay", relay.address(), "--stream", "cam", "--video", "vp8", "--size", "640x360",
                  "--bitrate", "1000", "--seconds", "16"},
                 dir, "host");
    REQUIRE(eventually([&] { return std::filesystem::exists(sdp); }, 10s));
    const std::string sdp_text = read_file(sdp);
    CHECK(sdp_text.find("a=rtpmap:96 VP8/90000") != std::string::npos);
    CHECK(sdp_text.find("m=audio " + std::to_string(port + 2)) != std::string::npos);

    // 8 s of output: the relay sends the first keyframe within its 2 s refresh interval; a
    // loaded machine may add a second or two before ffmpeg listens.
    std::string out, err;
    const int rc = run({"ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-protocol_whitelist", "file,udp,rtp", "-i",
                        sdp.string(), "-t", "8", "-f", "framecrc", "-"},
                       dir, "ffmpeg", 60s, &out, &err);
    INFO("ffmpeg stderr: " << err);
    CHECK(rc == 0);
    CHECK(err.empty()); // -v error: any decode error would be printed
    const auto video_frames = count_lines_starting(out, "0,");
    const auto audio_frames = count_lines_starting(out, "1,");
    CHECK(video_frames >= 90);  // 8 s at 30 fps, less the wait for the first keyframe
    CHECK(audio_frames >= 200); // 20 ms Opus frames
    // Decoded pictures have the published size (framecrc: 640x360 I420 = 345600 bytes).
    CHECK(std::regex_search(out, std::regex("\\n0, +[0-9]+, +[0-9]+, +[0-9]+, +345600, ")));
    host.signal(SIGINT);
    CHECK(host.wait(20s).has_value());
    relay.proc->signal(SIGINT);
    CHECK(relay.proc->wait(10s) == 0);
}
