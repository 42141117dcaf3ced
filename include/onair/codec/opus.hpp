// onair — Opus codec policy (libopus): 48 kHz, 20 ms frames, in-band FEC, PLC; RFC 7587 payload.
#pragma once

#include "onair/codec/concepts.hpp"
#include "onair/core/error.hpp"
#include "onair/core/media_frame.hpp"
#include "onair/rtp/opus.hpp"

#include <opus/opus.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace onair::codec {

/// OPUS_APPLICATION_* the encoder is created with. In-band FEC needs `voip` (SILK/hybrid
/// modes); `restricted_lowdelay` is CELT-only: lowest delay, no FEC.
enum class opus_application { voip, restricted_lowdelay };

/// Opus encoder settings.
struct opus_config {
    int channels = 1;             ///< 1 or 2 (input frames must match)
    int bitrate_kbps = 32;
    opus_application application = opus_application::voip;
    bool fec = false;             ///< in-band FEC (LBRR); effective with `voip` only
    int expected_loss_pct = 0;    ///< OPUS_SET_PACKET_LOSS_PERC, 0..100; FEC wants > 0
    int complexity = 8;           ///< 0..10
    bool vbr = true;
    bool dtx = false;
    std::uint32_t initial_rtp_timestamp = 0;
};

namespace detail {
struct opus_encoder_deleter {
    void operator()(OpusEncoder* e) const noexcept { opus_encoder_destroy(e); }
};
struct opus_decoder_deleter {
    void operator()(OpusDecoder* d) const noexcept { opus_decoder_destroy(d); }
};
} // namespace detail

/// Opus policy. SDP always says opus/48000/2 (RFC 7587), whatever the encoded channel count.
struct opus {
    static constexpr media_kind kind = media_kind::audio;
    static constexpr std::string_view encoding_name = "opus";
    static constexpr std::uint32_t clock_rate = 48'000;
    static constexpr int channels = 2;
    static constexpr int frame_samples = 960; ///< per channel: 20 ms at 48 kHz
    static constexpr int max_frame_samples = 5760; ///< 120 ms, the longest Opus packet
    using raw_type = audio_frame;
    using config = opus_config;
    using payload_format = rtp::opus_payload;

    /// Buffers input of any length and emits one encoded_frame per 20 ms. Each frame's
    /// capture_time is that of its first sample; rtp_timestamp starts at
    /// config.initial_rtp_timestamp and advances by 960.
    /// Thread safety: open()/encode() from one thread; set_bitrate(), set_fec() and
    /// request_keyframe() from any thread (applied at the next emitted frame).
    class encoder {
    public:
        encoder() = default;
        encoder(const encoder&) = delete;
        encoder& operator=(const encoder&) = delete;
        encoder(encoder&& o) noexcept { move_from(o); }
        encoder& operator=(encoder&& o) noexcept {
            if (this != &o) move_from(o);
            return *this;
        }
        ~encoder() = default;

        std::error_code open(const opus_config& c) {
            enc_.reset();
            if ((c.channels != 1 && c.channels != 2) || c.bitrate_kbps <= 0 || c.complexity < 0 || c.complexity > 10 ||
                c.expected_loss_pct < 0 || c.expected_loss_pct > 100)
                return errc::codec_init_failed;
            const int app = c.application == opus_application::voip ? OPUS_APPLICATION_VOIP
                                                                     : OPUS_APPLICATION_RESTRICTED_LOWDELAY;
            int err = OPUS_OK;
            std::unique_ptr<OpusEncoder, detail::opus_encoder_deleter> e{
                opus_encoder_create(audio_frame::sample_rate, c.channels, app, &err)};
            if (err != OPUS_OK || !e) return errc::codec_init_failed;
            if (opus_encoder_ctl(e.get(), OPUS_SET_BITRATE(clamp_bitrate(c.bitrate_kbps))) != OPUS_OK ||
                opus_encoder_ctl(e.get(), OPUS_SET_COMPLEXITY(c.complexity)) != OPUS_OK ||
                opus_encoder_ctl(e.get(), OPUS_SET_VBR(c.vbr ? 1 : 0)) != OPUS_OK ||
                opus_encoder_ctl(e.get(), OPUS_SET_DTX(c.dtx ? 1 : 0)) != OPUS_OK ||
                opus_encoder_ctl(e.get(), OPUS_SET_INBAND_FEC(c.fec ? 1 : 0)) != OPUS_OK ||
                opus_encoder_ctl(e.get(), OPUS_SET_PACKET_LOSS_PERC(c.expected_loss_pct)) != OPUS_OK)
                return errc::codec_init_failed;
            enc_ = std::move(e);
            config_ = c;
            rtp_timestamp_ = c.initial_rtp_timestamp;
            buffer_.assign(static_cast<std::size_t>(frame_samples * c.channels), 0);
            buffered_ = 0;
            pending_kbps_.store(0, std::memory_order_relaxed);
            pending_fec_.store(-1, std::memory_order_relaxed);
            return {};
        }

        bool is_open() const noexcept { return enc_ != nullptr; }
        const opus_config& config() const noexcept { return config_; }
        /// Samples per channel waiting for the next 20 ms frame.
        int buffered_samples() const noexcept { return buffered_; }

        void set_bitrate(int kbps) noexcept {
            if (kbps > 0) pending_kbps_.store(kbps, std::memory_order_relaxed);
        }
        /// Switches in-band FEC and tells the encoder how much loss to protect against.
        void set_fec(bool on, int expected_loss_pct) noexcept {
            const int pct = std::clamp(expected_loss_pct, 0, 100);
            pending_fec_.store((on ? 0x100 : 0) | pct, std::memory_order_relaxed);
        }
        /// Every Opus packet is independently decodable; nothing to do.
        void request_keyframe() noexcept {}

        template <class Emit>
        std::error_code encode(const audio_frame& in, Emit&& emit) {
            if (!enc_) return errc::codec_failed;
            if (in.channels != config_.channels || in.samples.size() % static_cast<std::size_t>(in.channels) != 0)
                return errc::bad_frame;
            apply_pending();
            const std::size_t ch = static_cast<std::size_t>(config_.channels);
            const std::size_t n = in.samples_per_channel();
            std::size_t pos = 0;
            while (pos < n) {
                if (buffered_ == 0) {
                    const auto offset_us = static_cast<std::int64_t>(pos) * 1'000'000 / audio_frame::sample_rate;
                    frame_start_ = in.capture_time + std::chrono::microseconds{offset_us};
                }
                const std::size_t take = std::min(n - pos, static_cast<std::size_t>(frame_samples - buffered_));
                std::copy_n(in.samples.begin() + static_cast<std::ptrdiff_t>(pos * ch), take * ch,
                            buffer_.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(buffered_) * ch));
                buffered_ += static_cast<int>(take);
                pos += take;
                if (buffered_ == frame_samples) {
                    buffered_ = 0;
                    if (auto ec = encode_buffer(emit)) return ec;
                }
            }
            return {};
        }

    private:
        static int clamp_bitrate(int kbps) noexcept { return std::clamp(kbps, 6, 510) * 1000; }

        void apply_pending() noexcept {
            if (const int kbps = pending_kbps_.exchange(0, std::memory_order_relaxed); kbps > 0) {
                opus_encoder_ctl(enc_.get(), OPUS_SET_BITRATE(clamp_bitrate(kbps)));
                config_.bitrate_kbps = kbps;
            }
            if (const int fec = pending_fec_.exchange(-1, std::memory_order_relaxed); fec >= 0) {
                config_.fec = (fec & 0x100) != 0;
                config_.expected_loss_pct = fec & 0xff;
                opus_encoder_ctl(enc_.get(), OPUS_SET_INBAND_FEC(config_.fec ? 1 : 0));
                opus_encoder_ctl(enc_.get(), OPUS_SET_PACKET_LOSS_PERC(config_.expected_loss_pct));
            }
        }

        template <class Emit>
        std::error_code encode_buffer(Emit& emit) {
            encoded_frame out;
            out.kind = media_kind::audio;
            out.keyframe = true;
            out.capture_time = frame_start_;
            out.rtp_timestamp = rtp_timestamp_;
            rtp_timestamp_ += frame_samples;
            out.data.resize(1500);
            const opus_int32 len = opus_encode(enc_.get(), buffer_.data(), frame_samples, out.data.data(),
                                               static_cast<opus_int32>(out.data.size()));
            if (len < 0) return errc::codec_failed;
            out.data.resize(static_cast<std::size_t>(len));
            // With DTX a 1-2 byte packet means "silence, nothing to send"; keep the timeline.
            if (config_.dtx && len <= 2) return {};
            emit(std::move(out));
            return {};
        }

        void move_from(encoder& o) noexcept {
            enc_ = std::move(o.enc_);
            config_ = o.config_;
            buffer_ = std::move(o.buffer_);
            buffered_ = std::exchange(o.buffered_, 0);
            frame_start_ = o.frame_start_;
            rtp_timestamp_ = o.rtp_timestamp_;
            pending_kbps_.store(o.pending_kbps_.load(std::memory_order_relaxed), std::memory_order_relaxed);
            pending_fec_.store(o.pending_fec_.load(std::memory_order_relaxed), std::memory_order_relaxed);
        }

        std::unique_ptr<OpusEncoder, detail::opus_encoder_deleter> enc_;
        opus_config config_{};
        std::vector<opus_int16> buffer_;
        int buffered_ = 0;
        timestamp frame_start_{};
        std::uint32_t rtp_timestamp_ = 0;
        std::atomic<int> pending_kbps_{0};
        std::atomic<int> pending_fec_{-1};
    };

    /// Decodes Opus packets into `channels`-channel audio (default stereo, as negotiated).
    /// conceal() synthesises a lost frame (PLC); decode_fec() rebuilds the frame *before*
    /// `next` from next's in-band FEC (call it, then decode `next` itself).
    /// Thread safety: none; one thread per decoder.
    class decoder {
    public:
        decoder() = default;
        decoder(const decoder&) = delete;
        decoder& operator=(const decoder&) = delete;
        decoder(decoder&&) noexcept = default;
        decoder& operator=(decoder&&) noexcept = default;
        ~decoder() = default;

        std::error_code open(int output_channels = 2) {
            dec_.reset();
            if (output_channels != 1 && output_channels != 2) return errc::codec_init_failed;
            int err = OPUS_OK;
            std::unique_ptr<OpusDecoder, detail::opus_decoder_deleter> d{
                opus_decoder_create(audio_frame::sample_rate, output_channels, &err)};
            if (err != OPUS_OK || !d) return errc::codec_init_failed;
            dec_ = std::move(d);
            channels_ = output_channels;
            last_samples_ = frame_samples;
            return {};
        }

        bool is_open() const noexcept { return dec_ != nullptr; }
        int output_channels() const noexcept { return channels_; }

        std::error_code decode(const encoded_frame& in, audio_frame& out) {
            if (!dec_) return errc::codec_failed;
            if (in.data.empty() || in.data.size() > 1'500) return errc::codec_failed;
            if (auto ec = run(in.data.data(), static_cast<opus_int32>(in.data.size()), max_frame_samples, 0, out))
                return ec;
            out.capture_time = in.capture_time;
            last_samples_ = static_cast<int>(out.samples_per_channel());
            last_capture_ = in.capture_time;
            return {};
        }

        /// Packet-loss concealment for one lost frame of the last decoded duration.
        std::error_code conceal(audio_frame& out) {
            if (!dec_) return errc::codec_failed;
            if (auto ec = run(nullptr, 0, last_samples_, 0, out)) return ec;
            last_capture_ += duration_of(last_samples_);
            out.capture_time = last_capture_;
            return {};
        }

        /// Recovers the frame lost just before `next` from next's FEC data (PLC when `next`
        /// carries none). The recovered frame has the duration of `next`.
        std::error_code decode_fec(const encoded_frame& next, audio_frame& out) {
            if (!dec_) return errc::codec_failed;
            if (next.data.empty() || next.data.size() > 1'500) return errc::codec_failed;
            const int n = opus_packet_get_nb_samples(next.data.data(), static_cast<opus_int32>(next.data.size()),
                                                     audio_frame::sample_rate);
            if (n <= 0 || n > max_frame_samples) return errc::codec_failed;
            if (auto ec = run(next.data.data(), static_cast<opus_int32>(next.data.size()), n, 1, out)) return ec;
            out.capture_time = next.capture_time - duration_of(n);
            last_capture_ = out.capture_time;
            return {};
        }

    private:
        static std::chrono::microseconds duration_of(int samples) noexcept {
            return std::chrono::microseconds{static_cast<std::int64_t>(samples) * 1'000'000 / audio_frame::sample_rate};
        }

        std::error_code run(const unsigned char* data, opus_int32 len, int max_samples, int fec, audio_frame& out) {
            out.channels = channels_;
            out.samples.resize(static_cast<std::size_t>(max_samples * channels_));
            const int n = opus_decode(dec_.get(), data, len, out.samples.data(), max_samples, fec);
            if (n < 0) {
                out.samples.clear();
                return errc::codec_failed;
            }
            out.samples.resize(static_cast<std::size_t>(n * channels_));
            return {};
        }

        std::unique_ptr<OpusDecoder, detail::opus_decoder_deleter> dec_;
        int channels_ = 2;
        int last_samples_ = frame_samples;
        timestamp last_capture_{};
    };
};

static_assert(audio_codec<opus>);

} // namespace onair::codec
