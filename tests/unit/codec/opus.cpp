#include "onair/codec/opus.hpp"

#include "onair/source/tone.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <random>
#include <type_traits>
#include <vector>

using onair::audio_frame;
using onair::encoded_frame;
using onair::errc;
using onair::timestamp;
using onair::codec::opus;
using onair::source::tone_level;

namespace {

const timestamp epoch{std::chrono::seconds{1'700'000'000}};

std::vector<encoded_frame> encode_all(opus::encoder& enc, const std::vector<audio_frame>& in) {
    std::vector<encoded_frame> out;
    for (const auto& f : in) REQUIRE_FALSE(enc.encode(f, [&](encoded_frame&& e) { out.push_back(std::move(e)); }));
    return out;
}

std::vector<audio_frame> tone_frames(double hz, int channels, int n, double amplitude = 0.5) {
    onair::source::tone t({hz, channels, amplitude, epoch});
    std::vector<audio_frame> v;
    for (int i = 0; i < n; ++i) v.push_back(t.next());
    return v;
}

/// Mono frame whose content switches from silence to a `hz` tone at sample `switch_at`.
std::vector<audio_frame> switching_tone(double hz, int frames, int switch_frame) {
    std::vector<audio_frame> v;
    for (int i = 0; i < frames; ++i) {
        audio_frame f;
        f.channels = 1;
        f.capture_time = epoch + std::chrono::milliseconds{20 * i};
        f.samples.resize(960);
        for (int k = 0; k < 960; ++k) {
            const int n = i * 960 + k;
            f.samples[static_cast<std::size_t>(k)] =
                i < switch_frame ? 0
                                 : static_cast<std::int16_t>(std::lround(
                                       16000.0 * std::sin(2.0 * std::numbers::pi * hz * n / 48000.0)));
        }
        v.push_back(std::move(f));
    }
    return v;
}

} // namespace

TEST_SUITE("codec.opus") {
    TEST_CASE("opus policy constants") {
        static_assert(onair::codec::audio_codec<opus>);
        static_assert(!onair::codec::video_codec<opus>);
        CHECK(opus::encoding_name == "opus");
        CHECK(opus::clock_rate == 48000);
        CHECK(opus::channels == 2);
        static_assert(!std::is_copy_constructible_v<opus::encoder>);
        static_assert(std::is_nothrow_move_constructible_v<opus::encoder>);
        static_assert(!std::is_copy_constructible_v<opus::decoder>);
        static_assert(std::is_nothrow_move_constructible_v<opus::decoder>);
    }

    TEST_CASE("mono tone round trip keeps the tone") {
        for (auto app : {onair::codec::opus_application::voip, onair::codec::opus_application::restricted_lowdelay}) {
            CAPTURE(static_cast<int>(app));
            opus::encoder enc;
            REQUIRE_FALSE(enc.open({.channels = 1, .bitrate_kbps = 32, .application = app}));
            opus::decoder dec;
            REQUIRE_FALSE(dec.open(1));
            const auto in = tone_frames(1000.0, 1, 50);
            const auto packets = encode_all(enc, in);
            REQUIRE(packets.size() == 50);
            for (std::size_t i = 0; i < packets.size(); ++i) {
                const auto& p = packets[i];
                CHECK(p.kind == onair::media_kind::audio);
                CHECK(p.rtp_timestamp == 960u * i);
                CHECK(p.capture_time == in[i].capture_time);
                CHECK(p.data.size() > 10);
                CHECK(p.data.size() < 200); // 32 kbps * 20 ms = 80 bytes on average
                audio_frame out;
                REQUIRE_FALSE(dec.decode(p, out));
                CHECK(out.channels == 1);
                CHECK(out.samples_per_channel() == 960);
                CHECK(out.capture_time == p.capture_time);
                if (i >= 3) {
                    CHECK(tone_level(out, 1000.0) == doctest::Approx(0.5).epsilon(0.15));
                    CHECK(tone_level(out, 3100.0) < 0.02);
                }
            }
        }
    }

    TEST_CASE("encoder buffers any input length into 20 ms frames") {
        opus::encoder enc;
        REQUIRE_FALSE(enc.open({.channels = 1, .initial_rtp_timestamp = 0xffff'fe00u}));
        // 1 s of tone delivered in odd chunks with exact capture times.
        const auto whole = tone_frames(1000.0, 1, 50);
        std::vector<std::int16_t> pcm;
        for (const auto& f : whole) pcm.insert(pcm.end(), f.samples.begin(), f.samples.end());
        std::vector<encoded_frame> out;
        std::size_t pos = 0;
        const std::size_t chunks[] = {1, 100, 333, 959, 960, 961, 2000, 7};
        for (int k = 0; pos < pcm.size(); ++k) {
            const std::size_t n = std::min(chunks[k % 8], pcm.size() - pos);
            audio_frame f;
            f.channels = 1;
            f.capture_time = epoch + std::chrono::microseconds{static_cast<std::int64_t>(pos) * 1'000'000 / 48'000};
            f.samples.assign(pcm.begin() + static_cast<std::ptrdiff_t>(pos),
                             pcm.begin() + static_cast<std::ptrdiff_t>(pos + n));
            REQUIRE_FALSE(enc.encode(f, [&](encoded_frame&& e) { out.push_back(std::move(e)); }));
            pos += n;
        }
        REQUIRE(out.size() == 50);
        CHECK(enc.buffered_samples() == 0);
        for (std::size_t i = 0; i < out.size(); ++i) {
            CHECK(out[i].rtp_timestamp == static_cast<std::uint32_t>(0xffff'fe00u + 960u * i)); // wraps
            // first sample of frame i is sample 960 i: its time within 1 us
            const auto expect = epoch + std::chrono::microseconds{static_cast<std::int64_t>(i) * 20'000};
            CHECK(std::chrono::abs(out[i].capture_time - expect) <= std::chrono::microseconds{1});
        }
        // A partial frame stays buffered until completed.
        audio_frame half;
        half.channels = 1;
        half.samples.assign(480, 0);
        out.clear();
        REQUIRE_FALSE(enc.encode(half, [&](encoded_frame&& e) { out.push_back(std::move(e)); }));
        CHECK(out.empty());
        CHECK(enc.buffered_samples() == 480);
    }

    TEST_CASE("stereo keeps channels apart") {
        opus::encoder enc;
        REQUIRE_FALSE(enc.open({.channels = 2, .bitrate_kbps = 96}));
        opus::decoder dec;
        REQUIRE_FALSE(dec.open()); // stereo output by default
        onair::source::tone left({700.0, 1, 0.5, epoch}), right({2300.0, 1, 0.5, epoch});
        for (int i = 0; i < 30; ++i) {
            const auto l = left.next(), r = right.next();
            audio_frame f;
            f.channels = 2;
            f.capture_time = l.capture_time;
            for (std::size_t k = 0; k < 960; ++k) {
                f.samples.push_back(l.samples[k]);
                f.samples.push_back(r.samples[k]);
            }
            std::vector<encoded_frame> out;
            REQUIRE_FALSE(enc.encode(f, [&](encoded_frame&& e) { out.push_back(std::move(e)); }));
            REQUIRE(out.size() == 1);
            CHECK(opus_packet_get_nb_channels(out[0].data.data()) == 2);
            audio_frame d;
            REQUIRE_FALSE(dec.decode(out[0], d));
            REQUIRE(d.channels == 2);
            REQUIRE(d.samples_per_channel() == 960);
            if (i >= 3) {
                CHECK(tone_level(d, 700.0, 0) > 0.35);
                CHECK(tone_level(d, 2300.0, 1) > 0.35);
                CHECK(tone_level(d, 2300.0, 0) < 0.05);
                CHECK(tone_level(d, 700.0, 1) < 0.05);
            }
        }
        // A mono stream decodes to stereo with both channels equal.
        opus::encoder mono;
        REQUIRE_FALSE(mono.open({.channels = 1}));
        std::vector<encoded_frame> out;
        for (const auto& f : tone_frames(1000.0, 1, 5))
            REQUIRE_FALSE(mono.encode(f, [&](encoded_frame&& e) { out.push_back(std::move(e)); }));
        audio_frame d;
        for (const auto& p : out) REQUIRE_FALSE(dec.decode(p, d));
        CHECK(d.channels == 2);
        CHECK(tone_level(d, 1000.0, 0) == doctest::Approx(tone_level(d, 1000.0, 1)).epsilon(0.01));
    }

    TEST_CASE("in-band FEC recovers a lost frame that PLC cannot") {
        // Silence, then a tone starting with frame 11, which is lost. PLC extrapolates the
        // past; FEC carried in frame 12 holds a low-rate copy of frame 11 itself.
        const auto in = switching_tone(1000.0, 20, 11);
        auto recover = [&](bool fec_in_config, bool fec_at_runtime) {
            opus::encoder enc;
            REQUIRE_FALSE(enc.open({.channels = 1, .bitrate_kbps = 32, .fec = fec_in_config,
                                    .expected_loss_pct = fec_in_config ? 20 : 0}));
            if (fec_at_runtime) enc.set_fec(true, 20);
            const auto packets = encode_all(enc, in);
            REQUIRE(packets.size() == 20);
            opus::decoder dec;
            REQUIRE_FALSE(dec.open(1));
            audio_frame out;
            for (int i = 0; i < 11; ++i) REQUIRE_FALSE(dec.decode(packets[static_cast<std::size_t>(i)], out));
            audio_frame rec;
            REQUIRE_FALSE(dec.decode_fec(packets[12], rec));
            CHECK(rec.samples_per_channel() == 960);
            CHECK(rec.capture_time == packets[11].capture_time);
            audio_frame next;
            REQUIRE_FALSE(dec.decode(packets[12], next));
            return tone_level(rec, 1000.0);
        };
        const double with_fec = recover(true, false);
        const double runtime_fec = recover(false, true);
        const double without = recover(false, false);
        MESSAGE("tone level in recovered frame: FEC " << with_fec << ", FEC via set_fec " << runtime_fec << ", PLC "
                                                      << without);
        CHECK(with_fec > 0.2);
        CHECK(runtime_fec > 0.2);
        CHECK(without < with_fec / 2);
    }

    TEST_CASE("concealment continues the timeline") {
        opus::encoder enc;
        REQUIRE_FALSE(enc.open({.channels = 1}));
        const auto packets = encode_all(enc, tone_frames(1000.0, 1, 10));
        opus::decoder dec;
        audio_frame out;
        CHECK(dec.conceal(out) == errc::codec_failed); // not open
        REQUIRE_FALSE(dec.open(1));
        for (int i = 0; i < 5; ++i) REQUIRE_FALSE(dec.decode(packets[static_cast<std::size_t>(i)], out));
        audio_frame plc;
        REQUIRE_FALSE(dec.conceal(plc));
        CHECK(plc.channels == 1);
        CHECK(plc.samples_per_channel() == 960);
        CHECK(plc.capture_time == packets[4].capture_time + std::chrono::milliseconds{20});
        CHECK(tone_level(plc, 1000.0) > 0.1); // a stationary tone is extrapolated
        REQUIRE_FALSE(dec.conceal(plc));
        CHECK(plc.capture_time == packets[4].capture_time + std::chrono::milliseconds{40});
        REQUIRE_FALSE(dec.decode(packets[7], out));
        CHECK(out.capture_time == packets[7].capture_time);
    }

    TEST_CASE("runtime bitrate changes packet size") {
        opus::encoder enc;
        REQUIRE_FALSE(enc.open({.channels = 1, .bitrate_kbps = 64, .vbr = false}));
        const auto in = tone_frames(1000.0, 1, 20);
        const auto high = encode_all(enc, in);
        enc.set_bitrate(12);
        const auto low = encode_all(enc, in);
        CHECK(high.back().data.size() == 160); // CBR: 64 kbps * 20 ms
        CHECK(low.back().data.size() == 30);
        CHECK(enc.config().bitrate_kbps == 12);
    }

    TEST_CASE("opus errors: bad config, bad input, garbage packets") {
        opus::encoder enc;
        audio_frame f;
        f.channels = 1;
        f.samples.assign(960, 0);
        CHECK(enc.encode(f, [](encoded_frame&&) {}) == errc::codec_failed); // not open
        CHECK(enc.open({.channels = 3}) == errc::codec_init_failed);
        CHECK(enc.open({.channels = 1, .bitrate_kbps = 0}) == errc::codec_init_failed);
        CHECK(enc.open({.channels = 1, .complexity = 11}) == errc::codec_init_failed);
        REQUIRE_FALSE(enc.open({.channels = 2}));
        CHECK(enc.encode(f, [](encoded_frame&&) {}) == errc::bad_frame); // mono into stereo
        f.channels = 2;
        f.samples.resize(961);
        CHECK(enc.encode(f, [](encoded_frame&&) {}) == errc::bad_frame); // not whole sample pairs

        opus::decoder dec;
        CHECK(dec.open(3) == errc::codec_init_failed);
        REQUIRE_FALSE(dec.open());
        encoded_frame e;
        audio_frame out;
        CHECK(dec.decode(e, out) == errc::codec_failed); // empty
        CHECK(dec.decode_fec(e, out) == errc::codec_failed);
        std::mt19937 rng(7);
        int rejected = 0;
        for (int i = 0; i < 2000; ++i) {
            e.data.resize(static_cast<std::size_t>(1 + rng() % 1400));
            for (auto& b : e.data) b = static_cast<std::uint8_t>(rng());
            const auto ec = dec.decode(e, out);
            if (ec) {
                ++rejected;
                CHECK(ec == errc::codec_failed);
            } else {
                CHECK(out.samples_per_channel() <= 5760);
            }
            (void)dec.decode_fec(e, out);
        }
        CHECK(rejected > 0);
    }

    TEST_CASE("opus encoder and decoder are movable") {
        opus::encoder a;
        REQUIRE_FALSE(a.open({.channels = 1, .initial_rtp_timestamp = 100}));
        audio_frame half;
        half.channels = 1;
        half.samples.assign(480, 0);
        REQUIRE_FALSE(a.encode(half, [](encoded_frame&&) {}));
        opus::encoder b = std::move(a);
        CHECK(b.buffered_samples() == 480);
        std::vector<encoded_frame> out;
        REQUIRE_FALSE(b.encode(half, [&](encoded_frame&& e) { out.push_back(std::move(e)); }));
        REQUIRE(out.size() == 1);
        CHECK(out[0].rtp_timestamp == 100);
        opus::decoder d1;
        REQUIRE_FALSE(d1.open(1));
        opus::decoder d2 = std::move(d1);
        audio_frame pcm;
        CHECK_FALSE(d2.decode(out[0], pcm));
    }
}
