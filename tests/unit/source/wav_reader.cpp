#include "onair/source/wav_reader.hpp"

#include "onair/sink/wav_writer.hpp"
#include "onair/source/tone.hpp"
#include "unit/source/test_files.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

using onair::audio_frame;
using onair::errc;
using onair::timestamp;
using onair::source::wav_reader;
using onair::test::scratch;
using onair::test::write_file;

namespace {

const timestamp epoch{std::chrono::seconds{1'700'000'000}};

void put16(std::vector<std::uint8_t>& v, std::uint16_t x) {
    v.push_back(static_cast<std::uint8_t>(x));
    v.push_back(static_cast<std::uint8_t>(x >> 8));
}
void put32(std::vector<std::uint8_t>& v, std::uint32_t x) {
    put16(v, static_cast<std::uint16_t>(x));
    put16(v, static_cast<std::uint16_t>(x >> 16));
}
void tag(std::vector<std::uint8_t>& v, const char* t) {
    for (int i = 0; i < 4; ++i) v.push_back(static_cast<std::uint8_t>(t[i]));
}

/// A WAV file built field by field: RIFF header, fmt chunk, optional extra chunk, data.
std::vector<std::uint8_t> make_wav(std::uint16_t format, std::uint16_t channels, std::uint32_t rate,
                                   std::uint16_t bits, std::uint32_t samples, bool extra_chunk = false,
                                   std::uint32_t data_size_override = 0) {
    std::vector<std::uint8_t> v;
    const std::uint32_t data = samples * channels * bits / 8;
    tag(v, "RIFF");
    put32(v, 0); // many writers get this wrong; readers must not depend on it
    tag(v, "WAVE");
    if (extra_chunk) {
        tag(v, "LIST");
        put32(v, 5); // odd size: padded to 6
        v.insert(v.end(), {'h', 'e', 'l', 'l', 'o', 0});
    }
    tag(v, "fmt ");
    put32(v, 16);
    put16(v, format);
    put16(v, channels);
    put32(v, rate);
    put32(v, rate * channels * bits / 8);
    put16(v, static_cast<std::uint16_t>(channels * bits / 8));
    put16(v, bits);
    tag(v, "data");
    put32(v, data_size_override ? data_size_override : data);
    for (std::uint32_t i = 0; i < samples * channels; ++i) put16(v, static_cast<std::uint16_t>(i));
    return v;
}

std::error_code open_bytes(wav_reader& r, const std::vector<std::uint8_t>& bytes) {
    const auto p = scratch("test.wav");
    write_file(p, bytes);
    return r.open(p, epoch);
}

} // namespace

TEST_SUITE("source.wav_reader") {
    TEST_CASE("wav write -> read round trip") {
        for (int ch : {1, 2}) {
            CAPTURE(ch);
            const auto p = scratch("roundtrip.wav");
            onair::source::tone t({1000.0, ch, 0.5, epoch});
            std::vector<std::int16_t> all;
            {
                onair::sink::wav_writer w(p);
                for (int i = 0; i < 10; ++i) {
                    const auto f = t.next();
                    all.insert(all.end(), f.samples.begin(), f.samples.end());
                    w.on_audio(f);
                }
                CHECK(w.samples_written() == 9600);
            } // destructor patches the sizes
            wav_reader r;
            REQUIRE_FALSE(r.open(p, epoch));
            CHECK(r.channels() == ch);
            CHECK(r.sample_rate() == 48000);
            CHECK(r.total_samples() == 9600);
            CHECK_FALSE(r.truncated());
            std::vector<std::int16_t> back;
            audio_frame f;
            for (int i = 0; i < 10; ++i) {
                REQUIRE_FALSE(r.read(f));
                CHECK(f.channels == ch);
                CHECK(f.samples_per_channel() == 960);
                CHECK(f.capture_time == epoch + std::chrono::milliseconds{20 * i});
                back.insert(back.end(), f.samples.begin(), f.samples.end());
            }
            CHECK(r.read(f) == errc::end_of_stream);
            CHECK(back == all);
        }
    }

    TEST_CASE("partial last frame, other frame sizes, unknown chunks") {
        wav_reader r;
        REQUIRE_FALSE(open_bytes(r, make_wav(1, 2, 48000, 16, 1000, true)));
        audio_frame f;
        REQUIRE_FALSE(r.read(f, 960));
        CHECK(f.samples_per_channel() == 960);
        CHECK(f.samples[0] == 0);
        CHECK(f.samples[1] == 1);
        REQUIRE_FALSE(r.read(f, 960));
        CHECK(f.samples_per_channel() == 40);
        CHECK(f.capture_time == epoch + std::chrono::milliseconds{20});
        CHECK(r.read(f) == errc::end_of_stream);
        CHECK(r.samples_read() == 1000);

        REQUIRE_FALSE(open_bytes(r, make_wav(1, 1, 48000, 16, 480)));
        REQUIRE_FALSE(r.read(f, 48)); // 1 ms
        CHECK(f.samples_per_channel() == 48);
        REQUIRE_FALSE(r.read(f, 48));
        CHECK(f.capture_time == epoch + std::chrono::milliseconds{1});
    }

    TEST_CASE("WAVE_FORMAT_EXTENSIBLE with PCM is accepted") {
        std::vector<std::uint8_t> v;
        tag(v, "RIFF");
        put32(v, 0);
        tag(v, "WAVE");
        tag(v, "fmt ");
        put32(v, 40);
        put16(v, 0xFFFE);
        put16(v, 2);
        put32(v, 48000);
        put32(v, 192000);
        put16(v, 4);
        put16(v, 16);
        put16(v, 22); // cbSize
        put16(v, 16); // valid bits
        put32(v, 3);  // channel mask
        put16(v, 1);  // SubFormat GUID starts with the format tag (PCM)
        v.insert(v.end(), {0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71});
        tag(v, "data");
        put32(v, 8);
        put32(v, 0x00020001);
        put32(v, 0x00040003);
        wav_reader r;
        REQUIRE_FALSE(open_bytes(r, v));
        audio_frame f;
        REQUIRE_FALSE(r.read(f));
        CHECK(f.samples == std::vector<std::int16_t>{1, 2, 3, 4});
    }

    TEST_CASE("other formats are unsupported, with a message") {
        struct bad_format {
            std::uint16_t format, channels;
            std::uint32_t rate;
            std::uint16_t bits;
            const char* says;
        };
        const bad_format cases[] = {{1, 2, 44100, 16, "44100"}, {1, 1, 48000, 24, "24-bit"}, {1, 1, 48000, 8, "8-bit"},
                                    {3, 1, 48000, 32, "tag 3"}, {1, 6, 48000, 16, "6 channels"}, {0x55, 2, 48000, 16, "tag 85"}};
        for (const auto& c : cases) {
            CAPTURE(c.says);
            wav_reader r;
            CHECK(open_bytes(r, make_wav(c.format, c.channels, c.rate, c.bits, 100)) == errc::unsupported);
            CHECK(r.error_message().find(c.says) != std::string::npos);
        }
    }

    TEST_CASE("truncated and garbage headers are bad_file, never a crash") {
        const auto good = make_wav(1, 2, 48000, 16, 100, true);
        // Every prefix that cuts into the header.
        const std::size_t header_end = good.size() - 400;
        for (std::size_t n = 0; n < header_end; ++n) {
            CAPTURE(n);
            wav_reader r;
            CHECK(open_bytes(r, {good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n)}) == errc::bad_file);
        }
        // Random garbage and random corruption of the header.
        std::mt19937 rng(99);
        for (int i = 0; i < 300; ++i) {
            std::vector<std::uint8_t> v(static_cast<std::size_t>(rng() % 200));
            for (auto& b : v) b = static_cast<std::uint8_t>(rng());
            if (i % 2) {
                v = good;
                for (int k = 0; k < 3; ++k) v[rng() % header_end] = static_cast<std::uint8_t>(rng());
            }
            wav_reader r;
            if (!open_bytes(r, v)) {
                audio_frame f;
                while (!r.read(f)) CHECK(f.samples.size() <= 960 * 2);
            }
        }
        // Chunk sizes that point past the end of the file.
        auto huge = good;
        huge[16] = 0xff; // LIST chunk size
        huge[17] = 0xff;
        huge[18] = 0xff;
        wav_reader r;
        CHECK(open_bytes(r, huge) == errc::bad_file);
        // Structural problems.
        CHECK(open_bytes(r, {'R', 'I', 'F', 'F', 0, 0, 0, 0, 'A', 'V', 'I', ' '}) == errc::bad_file);
        std::vector<std::uint8_t> no_fmt;
        tag(no_fmt, "RIFF");
        put32(no_fmt, 0);
        tag(no_fmt, "WAVE");
        tag(no_fmt, "data");
        put32(no_fmt, 4);
        put32(no_fmt, 0);
        CHECK(open_bytes(r, no_fmt) == errc::bad_file);
        CHECK(r.open(scratch("missing.wav")) == errc::bad_file);
    }

    TEST_CASE("a data chunk longer than the file is read to its end") {
        auto v = make_wav(1, 1, 48000, 16, 1000, false, 0xffff'ffffu); // streaming writers' size
        v.pop_back();                                                    // and an odd trailing byte
        wav_reader r;
        REQUIRE_FALSE(open_bytes(r, v));
        CHECK(r.truncated());
        CHECK(r.total_samples() == 999);
        audio_frame f;
        REQUIRE_FALSE(r.read(f));
        REQUIRE_FALSE(r.read(f));
        CHECK(f.samples_per_channel() == 39);
        CHECK(r.read(f) == errc::end_of_stream);
    }

    TEST_CASE("reads ffmpeg's wav output") {
        if (!onair::test::have_tool("ffmpeg")) {
            MESSAGE("ffmpeg not installed: skipped");
            return;
        }
        const auto p = scratch("ffmpeg.wav");
        const std::string cmd = "ffmpeg -v error -y -f lavfi -i sine=frequency=1000:sample_rate=48000:duration=0.1 -ac 2 "
                                "-c:a pcm_s16le '" + p.string() + "'";
        REQUIRE(std::system(cmd.c_str()) == 0);
        wav_reader r;
        REQUIRE_FALSE(r.open(p, epoch));
        CHECK(r.channels() == 2);
        CHECK(r.total_samples() == 4800);
        audio_frame f;
        int n = 0;
        double level = 0;
        while (!r.read(f)) {
            ++n;
            level = onair::source::tone_level(f, 1000.0, 1);
        }
        CHECK(n == 5);
        CHECK(level > 0.05);
    }
}
