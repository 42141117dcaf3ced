#include "onair/cdn/egress.hpp"

#include "onair/codec/opus.hpp"
#include "onair/codec/vp8.hpp"
#include "onair/codec/vp9.hpp"
#include "onair/source/test_pattern.hpp"
#include "onair/source/tone.hpp"
#include "support/rtp_builders.hpp"
#include "unit/source/test_files.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <regex>
#include <string>
#include <vector>

using onair::encoded_frame;
using onair::media_kind;
using namespace std::chrono_literals;

namespace {

/// A live WebM client that keeps what it is sent.
struct test_client {
    std::shared_ptr<std::vector<std::uint8_t>> bytes = std::make_shared<std::vector<std::uint8_t>>();
    std::shared_ptr<bool> closed = std::make_shared<bool>(false);
    std::shared_ptr<std::size_t> chunks = std::make_shared<std::size_t>(0);
    bool open() const { return !*closed; }
    bool send(std::shared_ptr<const std::vector<std::uint8_t>> c) {
        bytes->insert(bytes->end(), c->begin(), c->end());
        ++*chunks;
        return true;
    }
    void close() { *closed = true; }
};
using egress = onair::cdn::basic_egress<test_client>;

constexpr std::uint32_t vssrc = 0x1234, assrc = 0x5678;
const onair::timestamp epoch = onair::timestamp{} + 1000s;

/// RTP of `seconds` of 320x240 video (a key frame every second) and stereo Opus, each packet
/// with its arrival time (= capture time + 5 ms) and abs-capture-time, in arrival order.
struct rtp_stream {
    onair::rtp::stream_description desc;
    struct packet {
        std::vector<std::uint8_t> bytes;
        media_kind kind;
        std::chrono::microseconds at;
        int frame = -1; // video frame index
    };
    std::vector<packet> packets;
    int video_frames = 0;
};

template <class Codec>
rtp_stream make_stream(const char* encoding, int seconds) {
    rtp_stream s;
    s.desc.name = "cam";
    s.desc.video_ssrc = vssrc;
    s.desc.audio_ssrc = assrc;
    s.desc.video_codec = encoding;
    s.desc.audio_codec = "opus";
    typename Codec::encoder venc;
    onair::codec::video_config vc;
    vc.width = 320;
    vc.height = 240;
    vc.fps = 30;
    vc.bitrate_kbps = 300;
    vc.keyframe_interval_s = 0;
    REQUIRE_FALSE(venc.open(vc));
    typename Codec::payload_format::packetizer pk;
    onair::source::test_pattern tp(320, 240, 30);
    std::uint16_t vseq = 1, aseq = 1;
    auto add = [&](const encoded_frame& f, std::uint32_t ssrc, std::uint8_t pt, std::uint16_t& seq, std::chrono::microseconds t, int frame,
                   auto& packetizer) {
        for (auto& b : onair_test::packetize_with(packetizer, f, ssrc, seq, pt, onair::to_ntp(epoch + t), 1100))
            s.packets.push_back({std::move(b), ssrc == vssrc ? media_kind::video : media_kind::audio, t + 5ms, frame});
    };
    onair::rtp::opus_payload::packetizer apk;
    onair::codec::opus::encoder aenc;
    onair::codec::opus_config ac;
    ac.channels = 2;
    REQUIRE_FALSE(aenc.open(ac));
    onair::source::tone tone({440.0, 2, 0.4, {}});
    int audio_index = 0;
    for (int i = 0; i < seconds * 30; ++i) {
        const auto t = std::chrono::microseconds(i * 1'000'000 / 30);
        // Audio up to this video frame's time.
        while (audio_index * 20'000 <= t.count()) {
            const auto at = std::chrono::microseconds(audio_index * 20'000);
            REQUIRE_FALSE(aenc.encode(tone.next(), [&](encoded_frame&& e) { add(e, assrc, 111, aseq, at, -1, apk); }));
            ++audio_index;
        }
        if (i % 30 == 0) venc.request_keyframe();
        REQUIRE_FALSE(venc.encode(tp.next(), [&](encoded_frame&& e) {
            add(e, vssrc, 96, vseq, t, i, pk);
            ++s.video_frames;
        }));
    }
    return s;
}

const auto t0 = std::chrono::steady_clock::time_point{} + 100s;

/// Feeds packets up to (excluding) arrival time `until`, ticking every 20 ms as a relay does.
void play(egress& e, const rtp_stream& s, std::size_t& next, std::chrono::microseconds until, int lose_frame = -1) {
    static std::chrono::microseconds last_tick{0};
    while (next < s.packets.size() && s.packets[next].at < until) {
        const auto& p = s.packets[next++];
        if (p.frame == lose_frame && p.frame >= 0) continue; // every packet of one frame, never repaired
        onair::rtp::packet_view v;
        REQUIRE_FALSE(onair::rtp::parse(p.bytes, v));
        e.on_packet(s.desc, p.kind, v, t0 + p.at);
        if (p.at - last_tick >= 20ms) {
            e.tick(t0 + p.at);
            last_tick = p.at;
        }
    }
}

using onair::test::command_output;

long frames_of(const std::filesystem::path& f, const char* stream) {
    const std::string out = command_output(std::string("ffprobe -v error -count_frames -select_streams ") + stream +
                                " -show_entries stream=nb_read_frames -of csv=p=0 '" + f.string() + "' 2>&1");
    try {
        return std::stol(out);
    } catch (...) {
        return -1;
    }
}
std::string decode_errors(const std::filesystem::path& f) { return command_output("ffmpeg -nostdin -v error -i '" + f.string() + "' -f null - 2>&1"); }

} // namespace

TEST_SUITE("cdn.egress") {
    TEST_CASE("VP9: live WebM from the first key frame and from a later one, HLS segments, and a recording; a lost frame is skipped to the next key frame") {
        if (!onair::test::have_tool("ffprobe")) {
            MESSAGE("ffprobe not installed: skipped");
            return;
        }
        const rtp_stream s = make_stream<onair::codec::vp9>("VP9", 5);
        const auto dir = onair::test::scratch("egress-vp9");
        std::filesystem::remove_all(dir);
        std::filesystem::create_directories(dir);
        onair::cdn::egress_config cfg;
        cfg.record_dir = dir;
        egress e(cfg);
        REQUIRE_FALSE(e.start_recording("cam", onair::media::container::webm));
        CHECK(e.start_recording("cam", onair::media::container::mp4) == onair::errc::queue_full);
        CHECK(e.start_recording("../etc", onair::media::container::webm) == onair::errc::unknown_stream);

        std::size_t next = 0;
        test_client early, late;
        play(e, s, next, 100ms);
        REQUIRE(e.has_stream("cam"));
        REQUIRE(e.add_webm_client("cam", early));
        CHECK_FALSE(e.add_webm_client("nope", test_client{}));
        // Frame 40 is lost for good: 41..59 reference it and are skipped; 60 is a key frame.
        play(e, s, next, 2500ms, 40);
        REQUIRE(e.add_webm_client("cam", late));
        CHECK(*late.chunks == 2); // the header, and everything since the key frame at 2 s
        play(e, s, next, 6s, 40);
        e.tick(t0 + 7s);
        const auto* hls = e.hls("cam");
        REQUIRE(hls);
        const std::string pl = hls->playlist();
        REQUIRE(hls->segments().size() == 4); // 0-1, 1-2, 2-3, 3-4 s; 4-5 s is still open
        std::vector<std::uint8_t> all(*hls->init());
        for (const auto& seg : hls->segments()) all.insert(all.end(), seg.bytes->begin(), seg.bytes->end());
        std::vector<std::uint8_t> one(*hls->init());
        const auto seg3 = hls->segment(3);
        REQUIRE(seg3);
        one.insert(one.end(), seg3->begin(), seg3->end());
        CHECK_FALSE(hls->segment(99));
        // The recording: the same frames, finalised on stop.
        const auto info = e.stop_recording("cam");
        CHECK_FALSE(e.stop_recording("cam"));

        // Silence ends the stream: what is held goes out, and live clients are closed.
        e.tick(t0 + 20s);
        CHECK_FALSE(e.has_stream("cam"));
        CHECK(*early.closed);
        CHECK(*late.closed);

        // The early client: every video frame but 40..59, decodable, no errors.
        const auto early_file = dir / "early.webm";
        onair::test::write_file(early_file, *early.bytes);
        CHECK(decode_errors(early_file).empty());
        CHECK(frames_of(early_file, "v:0") == s.video_frames - 20);
        CHECK(frames_of(early_file, "a:0") >= 240);
        // The late client starts at the key frame of 2 s and decodes from there.
        const auto late_file = dir / "late.webm";
        onair::test::write_file(late_file, *late.bytes);
        CHECK(decode_errors(late_file).empty());
        CHECK(frames_of(late_file, "v:0") == 90);
        const std::string first = command_output("ffprobe -v error -select_streams v:0 -show_frames -read_intervals %+#1 -show_entries frame=key_frame,pts_time -of csv=p=0 '" +
                                      late_file.string() + "'");
        CHECK(first.rfind("1,2.000", 0) == 0);

        // HLS: 1 s segments from key frames, a playlist of them, each segment decodable after init.
        CHECK(pl.find("#EXT-X-TARGETDURATION:1\n") != std::string::npos);
        CHECK(pl.find("#EXT-X-MAP:URI=\"init.mp4\"") != std::string::npos);
        CHECK(pl.find("#EXTINF:1.000,\n0.m4s") != std::string::npos);
        const auto hls_file = dir / "hls.mp4";
        onair::test::write_file(hls_file, all);
        CHECK(decode_errors(hls_file).empty());
        CHECK(frames_of(hls_file, "v:0") == 120 - 20);
        const auto one_file = dir / "seg3.mp4";
        onair::test::write_file(one_file, one);
        CHECK(decode_errors(one_file).empty());
        CHECK(frames_of(one_file, "v:0") == 30);

        REQUIRE(info);
        CHECK(info->started);
        CHECK(info->stats.video_frames == static_cast<std::uint64_t>(s.video_frames - 20));
        CHECK(decode_errors(info->path).empty());
        CHECK(frames_of(info->path, "v:0") == s.video_frames - 20);
    }

    TEST_CASE("without live outputs only recorded streams are looked at") {
        const rtp_stream s = make_stream<onair::codec::vp8>("VP8", 3);
        onair::cdn::egress_config cfg;
        cfg.live_outputs = false;
        cfg.record_dir = onair::test::scratch("egress-quiet");
        std::filesystem::create_directories(cfg.record_dir);
        egress e(cfg);
        std::size_t next = 0;
        play(e, s, next, 500ms);
        CHECK_FALSE(e.has_stream("cam"));
        REQUIRE_FALSE(e.start_recording("cam", onair::media::container::webm));
        play(e, s, next, 3500ms); // the recording starts at the key frame of 1 s
        CHECK(e.has_stream("cam"));
        CHECK_FALSE(e.add_webm_client("other", test_client{}));
        e.stop();
        const auto done = e.take_finished();
        REQUIRE(done.size() == 1);
        CHECK(done[0].stats.video_frames == 60);
    }

    TEST_CASE("VP8: live WebM yes, HLS and MP4 recordings no") {
        const rtp_stream s = make_stream<onair::codec::vp8>("VP8", 2);
        const auto dir = onair::test::scratch("egress-vp8");
        std::filesystem::create_directories(dir);
        onair::cdn::egress_config cfg;
        cfg.record_dir = dir;
        egress e(cfg);
        std::size_t next = 0;
        // Asked before the stream came: the refusal is reported when it comes.
        REQUIRE_FALSE(e.start_recording("cam", onair::media::container::mp4));
        play(e, s, next, 100ms);
        const auto failed = e.take_finished();
        REQUIRE(failed.size() == 1);
        CHECK(failed[0].error == onair::errc::unsupported);
        CHECK_FALSE(failed[0].started);
        REQUIRE(e.stop_recording("cam"));
        // Asked while it is here: refused at once.
        CHECK(e.start_recording("cam", onair::media::container::mp4) == onair::errc::unsupported);
        test_client c;
        REQUIRE(e.add_webm_client("cam", c));
        play(e, s, next, 3s);
        e.tick(t0 + 4s);
        CHECK(e.hls("cam") == nullptr);
        CHECK(e.hls_refused("cam"));
        e.tick(t0 + 20s);
        CHECK(c.bytes->size() > 1000);
        if (onair::test::have_tool("ffprobe")) {
            const auto f = dir / "vp8-live.webm";
            onair::test::write_file(f, *c.bytes);
            CHECK(decode_errors(f).empty());
            CHECK(frames_of(f, "v:0") == s.video_frames);
        }
    }
}
