// The command-line contract of onair-relay, onair-host, onair-viewer and onair-demo, run as
// real processes: --help, errors for bad flags, and a host -> relay -> viewer session whose
// files ffprobe reads.
#include "support/relay_process.hpp"

#include <doctest/doctest.h>

#include <fstream>
#include <regex>

using namespace onair_test;
using namespace std::chrono_literals;


TEST_CASE("every program answers --help with its usage and exit code 0") {
    const auto dir = scratch_dir("help");
    for (const char* p : {"onair-relay", "onair-host", "onair-viewer", "onair-demo", "onair-token", "onair-cohost", "onair-dispatch"}) {
        std::string out;
        CHECK(run({bin(p), "--help"}, dir, p, 10s, &out) == 0);
        CHECK(out.find("usage: " + std::string(p)) != std::string::npos);
    }
}

TEST_CASE("bad command lines are refused with exit code 2 and a clear error") {
    const auto dir = scratch_dir("bad_flags");
    struct bad {
        std::vector<std::string> argv;
        std::string message;
    };
    const std::vector<bad> cases{
        {{bin("onair-relay"), "--bogus"}, "unknown option --bogus"},
        {{bin("onair-relay")}, "missing required option --listen"},
        {{bin("onair-relay"), "--listen", "localhost"}, "expected IP:PORT"},
        {{bin("onair-relay"), "--listen", "300.1.1.1:5"}, "not an IP address"},
        {{bin("onair-relay"), "--listen", "127.0.0.1:99999"}, "out of range"},
        {{bin("onair-relay"), "--listen", "127.0.0.1:0", "--forward", "cam"}, "expected STREAM=IP:PORT"},
        {{bin("onair-relay"), "--listen", "127.0.0.1:0", "--sdp", "x.sdp"}, "--sdp needs exactly one --forward"},
        {{bin("onair-host"), "--relay", "127.0.0.1:5000"}, "missing required option --stream"},
        {{bin("onair-host"), "--stream", "s"}, "give exactly one of --relay and --dispatch"},
        {{bin("onair-viewer"), "--relay", "127.0.0.1:5000", "--dispatch", "127.0.0.1:5001", "--stream", "s", "--out", "x"},
         "give exactly one of --relay and --dispatch"},
        {{bin("onair-host"), "--relay", "127.0.0.1:5000", "--stream", "s", "--video", "h264"}, "--video must be vp8 or vp9"},
        {{bin("onair-host"), "--relay", "127.0.0.1:5000", "--stream", "s", "--size", "640by360"}, "expected WxH"},
        {{bin("onair-host"), "--relay", "127.0.0.1:5000", "--stream", "s", "--fps", "fast"}, "is not a number"},
        {{bin("onair-host"), "--relay", "127.0.0.1:5000", "--stream", "s", "--input", "/nonexistent.y4m"}, "--input"},
        {{bin("onair-host"), "--relay", "127.0.0.1:5000", "--stream", "s", "--audio", "/nonexistent.wav"}, "--audio"},
        {{bin("onair-viewer"), "--relay", "127.0.0.1:5000", "--stream", "s"}, "missing required option --out"},
        {{bin("onair-viewer"), "--relay", "127.0.0.1:5000", "--stream", "s", "--out"}, "needs a value"},
        {{bin("onair-demo"), "--out", "x", "--video", "av1"}, "--video must be vp8 or vp9"},
        {{bin("onair-demo"), "--seconds", "5"}, "missing required option --out"},
        {{bin("onair-demo"), "positional"}, "unexpected argument"},
        {{bin("onair-relay"), "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"}, "--control needs --secret-file"},
        {{bin("onair-relay"), "--listen", "127.0.0.1:0", "--pull", "cam"}, "--pull: expected STREAM=IP:PORT"},
        {{bin("onair-relay"), "--listen", "127.0.0.1:0", "--pull", "cam=127.0.0.1:5000,"}, "--pull: expected STREAM=IP:PORT"},
        {{bin("onair-relay"), "--listen", "127.0.0.1:0", "--via", "B=nowhere"}, "--via: expected NODE=IP:PORT"},
        {{bin("onair-relay"), "--listen", "127.0.0.1:0", "--dispatch", "127.0.0.1:5000"}, "--dispatch needs --node-id"},
        {{bin("onair-token"), "--app", "a", "--room", "r", "--user", "u"}, "--secret"},
        {{bin("onair-token"), "--secret", "s", "--app", "a", "--room", "r", "--user", "u", "--privileges", "fly"}, "--privileges"},
    };
    int i = 0;
    for (const auto& c : cases) {
        std::string err;
        INFO(c.argv[0] << " " << (c.argv.size() > 1 ? c.argv[1] : ""));
        CHECK(run(c.argv, dir, "case" + std::to_string(i++), 10s, nullptr, &err) == 2);
        CHECK(err.find(c.message) != std::string::npos);
    }
}

TEST_CASE("a viewer process plays a host process's stream through a relay process") {
    const auto dir = scratch_dir("processes");
    relay_process relay(dir, {"--seconds", "40"});
    const auto out = dir / "viewer";
    process viewer({bin("onair-viewer"), "--relay", relay.address(), "--stream", "cam", "--out", out.string(), "--seconds", "7"},
                   dir, "viewer");
    process host({bin("onair-host"), "--relay", relay.address(), "--stream", "cam", "--size", "320x180", "--bitrate", "500",
                  "--seconds", "4"},
                 dir, "host");
    const auto host_rc = host.wait(30s);
    INFO("host: " << host.out() << host.err());
    CHECK(host_rc == 0);
    const auto viewer_rc = viewer.wait(30s);
    INFO("viewer: " << viewer.out() << viewer.err());
    REQUIRE(viewer_rc == 0);

    const std::string stats = read_file(out / "stats.json");
    INFO("stats.json: " << stats);
    CHECK(json_number(stats, "frames") >= 100); // 4 s at 30 fps, joined before the host
    CHECK(json_number(stats, "bytes") > 100'000);
    CHECK(json_number(stats, "bitrate_kbps") > 100);
    CHECK(json_number(stats, "p50") > 0);
    CHECK(json_number(stats, "p50") <= json_number(stats, "p95"));
    CHECK(json_number(stats, "p95") <= json_number(stats, "p99"));
    CHECK(json_number(stats, "decode_errors") == 0);

    // ffprobe reads what the viewer wrote.
    std::string probe;
    CHECK(run({"ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0",
               (out / "video.y4m").string()},
              dir, "ffprobe_video", 30s, &probe) == 0);
    CHECK(probe.find("rawvideo,320,180") != std::string::npos);
    CHECK(run({"ffprobe", "-v", "error", "-show_entries", "stream=codec_name,sample_rate", "-of", "csv=p=0",
               (out / "audio.wav").string()},
              dir, "ffprobe_audio", 30s, &probe) == 0);
    CHECK(probe.find("pcm_s16le,48000") != std::string::npos);

    // A second publisher of the same name is refused.
    std::string err;
    CHECK(run({bin("onair-host"), "--relay", relay.address(), "--stream", "cam", "--seconds", "1"}, dir, "host2", 30s,
              nullptr, &err) == 0); // the first host is gone, so the name is free again
    relay.proc->signal(SIGTERM);
    CHECK(relay.proc->wait(10s) == 0);
}

TEST_CASE("a host whose stream name is taken exits with an error") {
    const auto dir = scratch_dir("name_taken");
    relay_process relay(dir, {"--seconds", "40"});
    process first({bin("onair-host"), "--relay", relay.address(), "--stream", "cam", "--size", "160x120", "--seconds", "6"},
                  dir, "first");
    std::this_thread::sleep_for(1s);
    std::string err;
    CHECK(run({bin("onair-host"), "--relay", relay.address(), "--stream", "cam", "--size", "160x120", "--seconds", "1"}, dir,
              "second", 30s, nullptr, &err) == 1);
    CHECK(err.find("refused") != std::string::npos);
    CHECK(first.wait(30s) == 0);
}

TEST_CASE("a viewer of a stream that never goes live exits with an error") {
    const auto dir = scratch_dir("not_live");
    relay_process relay(dir, {"--seconds", "40"});
    std::string err;
    CHECK(run({bin("onair-viewer"), "--relay", relay.address(), "--stream", "nobody", "--out", (dir / "v").string(),
               "--seconds", "1"},
              dir, "viewer", 30s, nullptr, &err) == 1);
    CHECK(err.find("not live") != std::string::npos);
}

TEST_CASE("processes through a relay's room service: tickets from --control, and no media without them") {
    const auto dir = scratch_dir("control");
    {
        std::ofstream f(dir / "secret");
        f << "process-secret\n";
    }
    relay_process relay(dir, {"--control", "127.0.0.1:0", "--secret-file", (dir / "secret").string(), "--seconds", "40"});
    std::string control;
    REQUIRE(eventually([&] {
        std::smatch m;
        const std::string out = relay.proc->out();
        if (std::regex_search(out, m, std::regex("control on (127\\.0\\.0\\.1:[0-9]+)"))) control = m[1];
        return !control.empty();
    }, 10s));
    auto token = [&](const std::string& user) {
        std::string t;
        REQUIRE(run({bin("onair-token"), "--secret-file", (dir / "secret").string(), "--app", "onair", "--room", "show", "--user", user},
                    dir, "token_" + user, 10s, &t) == 0);
        while (!t.empty() && t.back() == '\n') t.pop_back();
        return t;
    };
    const std::string host_token = token("hana"), viewer_token = token("vik");
    const auto out = dir / "viewer";
    process viewer({bin("onair-viewer"), "--relay", relay.address(), "--stream", "cam", "--control", control, "--token", viewer_token,
                    "--room", "show", "--out", out.string(), "--seconds", "8"},
                   dir, "viewer");
    process host({bin("onair-host"), "--relay", relay.address(), "--stream", "cam", "--control", control, "--token", host_token,
                  "--room", "show", "--size", "320x180", "--bitrate", "400", "--seconds", "5"},
                 dir, "host");
    // Meanwhile a host without a ticket is refused, with a message that says why.
    std::string err;
    CHECK(run({bin("onair-host"), "--relay", relay.address(), "--stream", "show/cam", "--seconds", "1"}, dir, "intruder", 30s,
              nullptr, &err) == 1);
    CHECK(err.find("granted by its room service") != std::string::npos);
    const auto host_rc = host.wait(30s);
    INFO("host: " << host.out() << host.err());
    CHECK(host_rc == 0);
    const auto viewer_rc = viewer.wait(30s);
    INFO("viewer: " << viewer.out() << viewer.err());
    REQUIRE(viewer_rc == 0);
    const std::string stats = read_file(out / "stats.json");
    CHECK(json_number(stats, "frames") >= 90);
    CHECK(json_number(stats, "decode_errors") == 0);
    relay.proc->signal(SIGTERM);
    REQUIRE(relay.proc->wait(10s) == 0);
    CHECK(std::regex_search(relay.proc->out(), std::regex("unticketed=[1-9]")));
}

TEST_CASE("onair-token mints a token that it then verifies, and names each refusal") {
    const auto dir = scratch_dir("token");
    std::string token, out;
    REQUIRE(run({bin("onair-token"), "--secret", "k", "--app", "onair", "--room", "show", "--user", "ann", "--privileges", "login,play"},
                dir, "mint", 10s, &token) == 0);
    while (!token.empty() && token.back() == '\n') token.pop_back();
    REQUIRE(token.rfind("v1.", 0) == 0);
    CHECK(run({bin("onair-token"), "--secret", "k", "--app", "onair", "--room", "show", "--privileges", "login", "--verify", token},
              dir, "ok", 10s, &out) == 0);
    CHECK(out.find("ok user=ann room=show") != std::string::npos);
    CHECK(run({bin("onair-token"), "--secret", "other", "--app", "onair", "--room", "show", "--privileges", "login", "--verify", token},
              dir, "forged", 10s, &out) == 1);
    CHECK(out.find("token_forged") != std::string::npos);
    CHECK(run({bin("onair-token"), "--secret", "k", "--app", "onair", "--room", "other", "--privileges", "login", "--verify", token},
              dir, "room", 10s, &out) == 1);
    CHECK(out.find("token_wrong_room") != std::string::npos);
    CHECK(run({bin("onair-token"), "--secret", "k", "--app", "onair", "--room", "show", "--privileges", "publish", "--verify", token},
              dir, "priv", 10s, &out) == 1);
    CHECK(out.find("no_privilege") != std::string::npos);
}

TEST_CASE("onair-demo writes its files and a summary") {
    const auto dir = scratch_dir("demo");
    std::string out;
    REQUIRE(run({bin("onair-demo"), "--seconds", "2", "--out", dir.string(), "--size", "320x180"}, dir, "demo", 60s, &out) == 0);
    CHECK(out.find("onair-demo: VP8 320x180@30: frames sent") != std::string::npos);
    for (const char* f : {"sent.y4m", "received.y4m", "received.wav", "stats.json"}) CHECK(std::filesystem::exists(dir / f));
    const std::string stats = read_file(dir / "stats.json");
    CHECK(json_number(stats, "frames_sent") == json_number(stats, "frames_received"));
    // Every audio frame arrived and was played, or skipped by the playout catching up after a
    // stall of a busy machine (a frame or two at most).
    CHECK(json_number(stats, "audio_packets_missing") == 0);
    CHECK(json_number(stats, "audio_frames_sent") == json_number(stats, "audio_frames_received") + json_number(stats, "audio_frames_skipped"));
    CHECK(json_number(stats, "audio_frames_skipped") <= 2);
    CHECK(json_number(stats, "p50") > 0);
    CHECK(json_number(stats, "bitrate_kbps") > 0);
    CHECK(json_number(stats, "mean") >= 32); // PSNR
}
