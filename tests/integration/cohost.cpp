// Co-hosting with media: onair-cohost runs a relay node with its room service and three
// participants — the host, one it invites and one who asks — and each must receive the
// other two's audio and video, with the capture-to-render latency of every pair reported.
#include "support/process.hpp"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <set>

using namespace onair_test;
using namespace std::chrono_literals;

TEST_CASE("three co-hosts each receive the other two's audio and video") {
    const auto dir = scratch_dir("cohost");
    std::string out;
    const double seconds = 5;
    REQUIRE(run({bin("onair-cohost"), "--seconds", "5", "--out", dir.string()}, dir, "cohost", 90s, &out) == 0);
    CHECK(out.find("all publish (2 co-hosts)") != std::string::npos);
    const auto stats = nlohmann::json::parse(read_file(dir / "stats.json"));
    CHECK(stats["cohosts"] == 2); // alice invited and accepted, bob asked and was accepted
    CHECK(stats["relay"]["unticketed_sessions"] == 0);
    CHECK(stats["relay"]["unauthorized"] == 0);
    const double frames = stats["frames_pushed"].get<double>();
    std::set<std::pair<std::string, std::string>> pairs;
    for (const auto& p : stats["pairs"]) {
        const std::string from = p["from"], to = p["to"];
        CAPTURE(from);
        CAPTURE(to);
        CHECK(from != to);
        pairs.emplace(from, to);
        CHECK(p["video_frames"].get<double>() >= 0.8 * frames);
        CHECK(p["audio_frames"].get<double>() >= 0.8 * seconds * 50); // 20 ms frames
        CHECK(p["decode_errors"] == 0);
        CHECK(p["latency_p50_ms"].get<double>() > 0);
        CHECK(p["latency_p95_ms"].get<double>() < 1000); // loopback: tens of ms; generous for a busy machine
    }
    CHECK(pairs.size() == 6);
}
