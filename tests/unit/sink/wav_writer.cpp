#include "onair/sink/wav_writer.hpp"

#include "onair/sink/concepts.hpp"
#include "onair/source/tone.hpp"
#include "unit/source/test_files.hpp"

#include <doctest/doctest.h>

#include <string>
#include <utility>

using onair::audio_frame;
using onair::sink::wav_writer;
using onair::test::scratch;

namespace {
std::uint32_t le32(const std::vector<std::uint8_t>& b, std::size_t at) {
    return std::uint32_t{b[at]} | (std::uint32_t{b[at + 1]} << 8) | (std::uint32_t{b[at + 2]} << 16) |
           (std::uint32_t{b[at + 3]} << 24);
}
} // namespace

TEST_SUITE("sink.wav_writer") {
    TEST_CASE("header fields and sizes patched on close") {
        static_assert(onair::sink::media_sink<wav_writer>);
        const auto p = scratch("w.wav");
        wav_writer w(p);
        onair::source::tone t({1000.0, 2, 0.5, {}});
        w.on_video(onair::video_frame(4, 4)); // ignored
        const auto first = t.next();
        w.on_audio(first);
        w.on_audio(t.next());
        audio_frame mono;
        mono.channels = 1;
        mono.samples.assign(960, 0);
        w.on_audio(mono); // other channel count: dropped
        CHECK(w.frames_dropped() == 1);
        CHECK(w.samples_written() == 1920);
        CHECK_FALSE(w.close());
        const auto b = onair::test::read_file(p);
        REQUIRE(b.size() == 44 + 1920 * 4);
        CHECK(std::string(b.begin(), b.begin() + 4) == "RIFF");
        CHECK(le32(b, 4) == 36 + 1920 * 4);
        CHECK(std::string(b.begin() + 8, b.begin() + 16) == "WAVEfmt ");
        CHECK(le32(b, 16) == 16);
        CHECK(le32(b, 20) == (1u | (2u << 16))); // PCM, 2 channels
        CHECK(le32(b, 24) == 48000);
        CHECK(le32(b, 28) == 192000);
        CHECK(le32(b, 32) == (4u | (16u << 16))); // block align 4, 16 bits
        CHECK(std::string(b.begin() + 36, b.begin() + 40) == "data");
        CHECK(le32(b, 40) == 1920 * 4);
        // Samples little-endian, interleaved.
        CHECK(static_cast<std::int16_t>(b[44 + 4 * 10] | (b[45 + 4 * 10] << 8)) == first.samples[20]);
    }

    TEST_CASE("destructor and move finish the file") {
        const auto p = scratch("moved.wav");
        {
            wav_writer a(p);
            onair::source::tone t;
            a.on_audio(t.next());
            wav_writer b = std::move(a);
            b.on_audio(t.next());
            CHECK(b.samples_written() == 1920);
            CHECK_FALSE(a.is_open());
        }
        const auto bytes = onair::test::read_file(p);
        REQUIRE(bytes.size() == 44 + 1920 * 2);
        CHECK(le32(bytes, 40) == 1920 * 2);
    }

    TEST_CASE("ffprobe reads the wav file") {
        if (!onair::test::have_tool("ffprobe")) {
            MESSAGE("ffprobe not installed: skipped");
            return;
        }
        const auto p = scratch("probe.wav");
        {
            wav_writer w(p);
            onair::source::tone t({1000.0, 2, 0.5, {}});
            for (int i = 0; i < 10; ++i) w.on_audio(t.next());
        }
        const auto out = onair::test::ffprobe_streams(p);
        REQUIRE_FALSE(out.empty());
        CHECK(out.find("codec_name=pcm_s16le") != std::string::npos);
        CHECK(out.find("sample_rate=48000") != std::string::npos);
        CHECK(out.find("channels=2") != std::string::npos);
        CHECK(out.find("duration=0.200000") != std::string::npos);
    }
}
