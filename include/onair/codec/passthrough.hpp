// onair — lossless "codecs" for tests: raw frames behind a tiny header, decoded back exactly.
//
// They let a test check a pipeline bit for bit (transport, packetization, jitter buffer)
// without codec loss getting in the way. Payload format: rtp::generic_payload.
#pragma once

#include "onair/codec/concepts.hpp"
#include "onair/codec/detail/audio_config.hpp"
#include "onair/codec/detail/video_config.hpp"
#include "onair/core/error.hpp"
#include "onair/core/media_frame.hpp"
#include "onair/rtp/generic.hpp"

#include <cstddef>
#include <algorithm>
#include <cstdint>
#include <span>
#include <cstring>
#include <string_view>
#include <system_error>
#include <utility>

namespace onair::codec {

/// Raw I420 video. Encoded frame = [width:16 BE][height:16 BE][I420 bytes]; every frame is
/// a keyframe; rtp_timestamp = capture time on the 90 kHz clock. Any valid frame size is
/// accepted (config is ignored).
/// Thread safety: none needed beyond the usual one-thread-per-object rule.
struct passthrough_video {
    static constexpr media_kind kind = media_kind::video;
    static constexpr std::string_view encoding_name = "x-onair-raw-video";
    static constexpr std::uint32_t clock_rate = 90'000;
    static constexpr int channels = 1;
    static constexpr std::size_t header_size = 4;
    using raw_type = video_frame;
    using config = video_config;
    using payload_format = rtp::generic_payload;

    class encoder {
    public:
        std::error_code open(const video_config&) {
            open_ = true;
            return {};
        }
        void set_bitrate(int) noexcept {}
        void request_keyframe() noexcept {}

        template <class Emit>
        std::error_code encode(const video_frame& f, Emit&& emit) {
            if (!open_) return errc::codec_failed;
            if (!f.valid() || f.width > 0xffff || f.height > 0xffff) return errc::bad_frame;
            encoded_frame out;
            out.kind = media_kind::video;
            out.keyframe = true;
            const auto us = static_cast<std::uint64_t>(f.capture_time.time_since_epoch().count());
            out.rtp_timestamp = static_cast<std::uint32_t>(us * 9u / 100u);
            out.capture_time = f.capture_time;
            out.width = f.width;
            out.height = f.height;
            out.data.resize(header_size + f.data.size());
            out.data[0] = static_cast<std::uint8_t>(f.width >> 8);
            out.data[1] = static_cast<std::uint8_t>(f.width);
            out.data[2] = static_cast<std::uint8_t>(f.height >> 8);
            out.data[3] = static_cast<std::uint8_t>(f.height);
            std::memcpy(out.data.data() + header_size, f.data.data(), f.data.size());
            emit(std::move(out));
            return {};
        }

    private:
        bool open_ = false;
    };

    class decoder {
    public:
        std::error_code open() {
            open_ = true;
            return {};
        }
        std::error_code decode(const encoded_frame& in, video_frame& out) {
            if (!open_) return errc::codec_failed;
            if (in.data.size() < header_size) return errc::codec_failed;
            const int w = (in.data[0] << 8) | in.data[1];
            const int h = (in.data[2] << 8) | in.data[3];
            if (w == 0 || h == 0 || in.data.size() != header_size + video_frame::size_for(w, h))
                return errc::codec_failed;
            out.width = w;
            out.height = h;
            out.capture_time = in.capture_time;
            const std::span<const std::uint8_t> picture = std::span(in.data).subspan(header_size);
            out.data.resize(picture.size());
            std::copy(picture.begin(), picture.end(), out.data.begin());
            return {};
        }

    private:
        bool open_ = false;
    };
};

/// Raw 16-bit PCM. Encoded frame = [channels:8][samples, little-endian int16 interleaved].
/// Each input frame becomes one encoded frame (no re-framing); rtp_timestamp starts at 0 and
/// advances by the samples per channel on the 48 kHz clock.
/// Thread safety: one thread per object.
struct passthrough_audio {
    static constexpr media_kind kind = media_kind::audio;
    static constexpr std::string_view encoding_name = "x-onair-raw-audio";
    static constexpr std::uint32_t clock_rate = 48'000;
    static constexpr int channels = 2;
    static constexpr std::size_t header_size = 1;
    using raw_type = audio_frame;
    using config = audio_config;
    using payload_format = rtp::generic_payload;

    class encoder {
    public:
        std::error_code open(const audio_config& c) {
            if (c.channels != 1 && c.channels != 2) return errc::codec_init_failed;
            channels_ = c.channels;
            rtp_timestamp_ = 0;
            open_ = true;
            return {};
        }
        void set_bitrate(int) noexcept {}
        void request_keyframe() noexcept {}

        template <class Emit>
        std::error_code encode(const audio_frame& f, Emit&& emit) {
            if (!open_) return errc::codec_failed;
            if (f.channels != channels_ || f.samples.size() % static_cast<std::size_t>(channels_) != 0)
                return errc::bad_frame;
            encoded_frame out;
            out.kind = media_kind::audio;
            out.keyframe = true;
            out.rtp_timestamp = rtp_timestamp_;
            rtp_timestamp_ += static_cast<std::uint32_t>(f.samples_per_channel());
            out.capture_time = f.capture_time;
            out.data.resize(header_size + 2 * f.samples.size());
            out.data[0] = static_cast<std::uint8_t>(channels_);
            std::uint8_t* p = out.data.data() + header_size;
            for (const std::int16_t s : f.samples) {
                const auto u = static_cast<std::uint16_t>(s);
                *p++ = static_cast<std::uint8_t>(u);
                *p++ = static_cast<std::uint8_t>(u >> 8);
            }
            emit(std::move(out));
            return {};
        }

    private:
        int channels_ = 1;
        std::uint32_t rtp_timestamp_ = 0;
        bool open_ = false;
    };

    class decoder {
    public:
        std::error_code open() {
            open_ = true;
            return {};
        }
        std::error_code decode(const encoded_frame& in, audio_frame& out) {
            if (!open_) return errc::codec_failed;
            if (in.data.size() < header_size) return errc::codec_failed;
            const int ch = in.data[0];
            const std::size_t bytes = in.data.size() - header_size;
            if ((ch != 1 && ch != 2) || bytes % (2u * static_cast<std::size_t>(ch)) != 0) return errc::codec_failed;
            out.channels = ch;
            out.capture_time = in.capture_time;
            out.samples.resize(bytes / 2);
            const std::uint8_t* p = in.data.data() + header_size;
            for (auto& s : out.samples) {
                s = static_cast<std::int16_t>(static_cast<std::uint16_t>(p[0] | (p[1] << 8)));
                p += 2;
            }
            return {};
        }

    private:
        bool open_ = false;
    };
};

static_assert(video_codec<passthrough_video>);
static_assert(audio_codec<passthrough_audio>);

} // namespace onair::codec
