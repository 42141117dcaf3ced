#include "onair/media/rtp_frames.hpp"

#include "support/rtp_builders.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <vector>

using onair::encoded_frame;
using onair::media_kind;
using onair::media::rtp_frames;
using namespace std::chrono_literals;

namespace {

constexpr std::uint32_t video_ssrc = 0x1111;
constexpr std::uint32_t audio_ssrc = 0x2222;

onair::rtp::stream_description description(bool red = false) {
    onair::rtp::stream_description d;
    d.name = "cam";
    d.video_ssrc = video_ssrc;
    d.audio_ssrc = audio_ssrc;
    d.video_codec = "VP8";
    d.audio_codec = "opus";
    if (red) d.audio_red_pt = 63;
    return d;
}

onair::timestamp at_ms(int ms) { return onair::timestamp{} + std::chrono::milliseconds(1'000'000 + ms); }

/// RTP datagrams of a VP8 frame, each with the abs-capture-time extension as hosts send it.
struct vp8_sender {
    onair::rtp::vp8_payload::packetizer pk;
    std::uint16_t seq = 100;
    std::vector<std::vector<std::uint8_t>> frame(bool key, int index, std::size_t size = 2500) {
        encoded_frame f = onair_test::fake_vp8_frame(key, static_cast<std::uint32_t>(index * 3000), size);
        return onair_test::packetize_with(pk, f, video_ssrc, seq, 96, onair::to_ntp(at_ms(index * 33)), 1000);
    }
};

std::vector<std::uint8_t> audio_packet(std::uint16_t seq, std::uint32_t ts, std::uint8_t pt, const std::vector<std::uint8_t>& payload) {
    onair::rtp::header h;
    h.payload_type = pt;
    h.sequence = seq;
    h.timestamp = ts;
    h.ssrc = audio_ssrc;
    h.abs_capture_time = onair::to_ntp(at_ms(static_cast<int>(ts / 48)));
    std::vector<std::uint8_t> pkt(onair::rtp::header_size(h) + payload.size());
    pkt.resize(onair::rtp::serialize(h, payload, pkt));
    return pkt;
}

struct collector {
    std::vector<encoded_frame> frames;
    void operator()(encoded_frame&& f) { frames.push_back(std::move(f)); }
    std::size_t count(media_kind k) const {
        std::size_t n = 0;
        for (const auto& f : frames) n += f.kind == k;
        return n;
    }
};

void feed(rtp_frames& r, media_kind k, const std::vector<std::uint8_t>& bytes, std::chrono::steady_clock::time_point t, collector& out) {
    onair::rtp::packet_view p;
    REQUIRE_FALSE(onair::rtp::parse(bytes, p));
    r.push(k, p, t, out);
}

} // namespace

TEST_SUITE("media.rtp_frames") {
    TEST_CASE("video frames leave whole, in order, with their capture times, after the repair wait") {
        rtp_frames r(description());
        vp8_sender s;
        collector out;
        const auto t0 = std::chrono::steady_clock::time_point{} + 10s;
        for (int i = 0; i < 10; ++i)
            for (const auto& pkt : s.frame(i == 0, i)) feed(r, media_kind::video, pkt, t0 + i * 33ms, out);
        // The buffer holds frames for its minimum delay (250 ms) so repairs can come.
        CHECK(out.count(media_kind::video) < 10);
        r.service(t0 + 2s, out);
        REQUIRE(out.frames.size() == 10);
        CHECK(out.frames[0].keyframe);
        CHECK(out.frames[0].width == 640);
        CHECK(out.frames[0].height == 360);
        for (int i = 0; i < 10; ++i) {
            CHECK(out.frames[static_cast<std::size_t>(i)].data.size() == 2500);
            CHECK(out.frames[static_cast<std::size_t>(i)].capture_time == at_ms(i * 33));
        }
        CHECK(r.stats().video_frames == 10);
        CHECK(r.stats().video_skipped == 0);
    }

    TEST_CASE("a lost packet skips its frame and every frame after it until the next key frame") {
        rtp_frames r(description());
        vp8_sender s;
        collector out;
        const auto t0 = std::chrono::steady_clock::time_point{} + 10s;
        auto t = t0;
        for (int i = 0; i < 20; ++i) {
            auto pkts = s.frame(i == 0 || i == 12, i);
            for (std::size_t k = 0; k < pkts.size(); ++k) {
                if (i == 5 && k == 1) continue; // never repaired
                feed(r, media_kind::video, pkts[k], t, out);
            }
            t += 33ms;
            r.service(t, out);
        }
        r.service(t + 2s, out);
        // Frames 0-4, then nothing until the key frame 12, then 12-19: no frame decoded
        // against a reference it does not have.
        REQUIRE(out.frames.size() == 13);
        for (std::size_t i = 0; i < 5; ++i) CHECK(out.frames[i].capture_time == at_ms(static_cast<int>(i) * 33));
        CHECK(out.frames[5].keyframe);
        CHECK(out.frames[5].capture_time == at_ms(12 * 33));
        CHECK(r.stats().video_skipped >= 6);
    }

    TEST_CASE("a packet repaired within the wait completes its frame: nothing is skipped") {
        rtp_frames r(description());
        vp8_sender s;
        collector out;
        const auto t0 = std::chrono::steady_clock::time_point{} + 10s;
        auto t = t0;
        std::vector<std::uint8_t> held;
        for (int i = 0; i < 10; ++i) {
            auto pkts = s.frame(i == 0, i);
            for (std::size_t k = 0; k < pkts.size(); ++k) {
                if (i == 3 && k == 0) {
                    held = pkts[k];
                    continue;
                }
                feed(r, media_kind::video, pkts[k], t, out);
            }
            if (i == 6) feed(r, media_kind::video, held, t, out); // the relay's repair, 100 ms late
            t += 33ms;
            r.service(t, out);
        }
        r.service(t + 2s, out);
        REQUIRE(out.frames.size() == 10);
        for (std::size_t i = 0; i < 10; ++i) CHECK(out.frames[i].capture_time == at_ms(static_cast<int>(i) * 33));
        CHECK(r.stats().video_skipped == 0);
    }

    TEST_CASE("audio: plain and RED packets give their Opus frames; late and foreign ones are counted") {
        rtp_frames r(description(true));
        collector out;
        const auto t = std::chrono::steady_clock::time_point{} + 10s;
        const std::vector<std::uint8_t> opus1{0x78, 1, 2, 3};
        feed(r, media_kind::audio, audio_packet(1, 960, 111, opus1), t, out);
        // RED (RFC 2198): one redundant block (the previous frame) then the primary.
        const std::vector<std::uint8_t> prev{0x78, 9, 9};
        const std::vector<std::uint8_t> opus2{0x78, 4, 5, 6, 7};
        std::vector<std::uint8_t> red{
            static_cast<std::uint8_t>(0x80 | 111),              // F=1, block PT 111
            static_cast<std::uint8_t>((960 >> 6) & 0xff),       // timestamp offset 960 (14 bits) ...
            static_cast<std::uint8_t>(((960 & 0x3f) << 2) | 0), // ... and block length (10 bits) high bits
            static_cast<std::uint8_t>(prev.size()),             // block length low byte
            111,                                                // F=0: the primary's PT
        };
        red.insert(red.end(), prev.begin(), prev.end());
        red.insert(red.end(), opus2.begin(), opus2.end());
        feed(r, media_kind::audio, audio_packet(2, 1920, 63, red), t, out);
        REQUIRE(out.count(media_kind::audio) == 2);
        CHECK(out.frames[1].data == opus2);
        CHECK(out.frames[1].rtp_timestamp == 1920);
        // Late (behind the last frame given out), another SSRC, an unknown payload type.
        feed(r, media_kind::audio, audio_packet(1, 960, 111, opus1), t, out);
        auto foreign = audio_packet(3, 2880, 111, opus1);
        foreign[8] = 0x77; // SSRC
        feed(r, media_kind::audio, foreign, t, out);
        feed(r, media_kind::audio, audio_packet(3, 2880, 100, opus1), t, out);
        // A RED packet whose block lengths run past its end.
        feed(r, media_kind::audio, audio_packet(4, 3840, 63, {0x80 | 111, 0, 0, 200, 111, 1}), t, out);
        CHECK(out.count(media_kind::audio) == 2);
        CHECK(r.stats().foreign == 2);
        CHECK(r.stats().malformed == 1);
        CHECK(r.stats().audio_frames == 2);
    }

    TEST_CASE("a stream without VP8/VP9 video yields no video, and says so") {
        auto d = description();
        d.video_codec = "X-ONAIR-RAW";
        rtp_frames r(d);
        CHECK_FALSE(r.format());
        vp8_sender s;
        collector out;
        for (const auto& pkt : s.frame(true, 0)) feed(r, media_kind::video, pkt, std::chrono::steady_clock::time_point{} + 1s, out);
        CHECK(out.frames.empty());
        CHECK(r.stats().foreign > 0);
    }
}
