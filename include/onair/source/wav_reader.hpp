// onair — RIFF/WAVE file source: 16-bit PCM, 48 kHz, mono or stereo.
//
// Other formats (sample rates, bit depths, float, compressed, > 2 channels) are
// errc::unsupported with a message saying what was found. The file is untrusted: a
// truncated or garbage header is errc::bad_file, chunk sizes are checked against the file
// size, and a data chunk that promises more than the file holds is read up to the end
// of the file (a recording cut short). Samples are returned at capture time start + index / 48 kHz.
#pragma once

#include "onair/core/error.hpp"
#include "onair/core/media_frame.hpp"
#include "onair/core/time.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace onair::source {

/// Reads 16-bit PCM audio frames from a .wav file.
/// Thread safety: none; one thread per object.
class wav_reader {
public:
    static constexpr std::size_t default_frame_samples = 960; ///< per channel: 20 ms

    wav_reader() = default;

    std::error_code open(const std::filesystem::path& path, timestamp start = {}) {
        close();
        start_ = start;
        std::error_code fec;
        const auto file_size = std::filesystem::file_size(path, fec);
        if (fec) return fail(errc::bad_file, "wav: cannot open file");
        in_.open(path, std::ios::binary);
        if (!in_) return fail(errc::bad_file, "wav: cannot open file");

        std::array<std::uint8_t, 12> riff{};
        if (!read_exact(riff.data(), riff.size())) return fail(errc::bad_file, "wav: shorter than a RIFF header");
        if (std::memcmp(riff.data(), "RIFF", 4) != 0 || std::memcmp(riff.data() + 8, "WAVE", 4) != 0)
            return fail(errc::bad_file, "wav: not a RIFF/WAVE file");

        std::uint64_t pos = 12;
        bool have_fmt = false;
        for (;;) {
            std::array<std::uint8_t, 8> hdr{};
            if (!read_exact(hdr.data(), hdr.size()))
                return fail(errc::bad_file, have_fmt ? "wav: no data chunk" : "wav: no fmt chunk");
            pos += 8;
            const std::uint32_t size = le32(hdr.data() + 4);
            if (std::memcmp(hdr.data(), "fmt ", 4) == 0) {
                if (size < 16 || size > 1024) return fail(errc::bad_file, "wav: bad fmt chunk size");
                std::array<std::uint8_t, 1024> fmt{};
                if (!read_exact(fmt.data(), size)) return fail(errc::bad_file, "wav: truncated fmt chunk");
                if (size & 1u) in_.ignore(1);
                pos += size + (size & 1u);
                if (auto ec = parse_fmt(fmt.data(), size)) return ec;
                have_fmt = true;
            } else if (std::memcmp(hdr.data(), "data", 4) == 0) {
                if (!have_fmt) return fail(errc::bad_file, "wav: data chunk before fmt chunk");
                const std::uint64_t available = file_size > pos ? file_size - pos : 0;
                truncated_ = size > available; // 0xFFFFFFFF from streaming writers lands here too
                data_bytes_ = std::min<std::uint64_t>(size, available);
                data_bytes_ -= data_bytes_ % block_align();
                break;
            } else {
                const std::uint64_t skip = std::uint64_t{size} + (size & 1u);
                if (pos + skip > file_size) return fail(errc::bad_file, "wav: chunk runs past end of file");
                in_.seekg(static_cast<std::streamoff>(skip), std::ios::cur);
                if (!in_) return fail(errc::bad_file, "wav: cannot skip chunk");
                pos += skip;
            }
        }
        open_ = true;
        return {};
    }

    /// Reads up to `samples_per_channel` samples per channel into `out` (the last frame may be
    /// shorter). errc::end_of_stream once all samples were returned.
    std::error_code read(audio_frame& out, std::size_t samples_per_channel = default_frame_samples) {
        if (!open_) return fail(errc::bad_file, "wav: not open");
        const std::uint64_t left = (data_bytes_ - consumed_) / block_align();
        if (left == 0) return errc::end_of_stream;
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(left, std::max<std::size_t>(samples_per_channel, 1)));
        buf_.resize(n * block_align());
        if (!read_exact(buf_.data(), buf_.size())) return fail(errc::truncated, "wav: file ended early");
        consumed_ += buf_.size();
        out.channels = channels_;
        out.capture_time = start_ + std::chrono::microseconds{static_cast<std::int64_t>(
                                        samples_ * 1'000'000 / static_cast<std::uint64_t>(audio_frame::sample_rate))};
        out.samples.resize(n * static_cast<std::size_t>(channels_));
        for (std::size_t i = 0; i < out.samples.size(); ++i)
            out.samples[i] = static_cast<std::int16_t>(static_cast<std::uint16_t>(buf_[2 * i] | (buf_[2 * i + 1] << 8)));
        samples_ += n;
        return {};
    }

    void close() {
        if (in_.is_open()) in_.close();
        in_.clear();
        open_ = truncated_ = false;
        channels_ = 0;
        data_bytes_ = consumed_ = samples_ = 0;
        message_.clear();
    }

    bool is_open() const noexcept { return open_; }
    int channels() const noexcept { return channels_; }
    int sample_rate() const noexcept { return audio_frame::sample_rate; }
    /// Samples per channel the data chunk holds (as far as the file goes).
    std::uint64_t total_samples() const noexcept { return channels_ ? data_bytes_ / block_align() : 0; }
    std::uint64_t samples_read() const noexcept { return samples_; }
    /// True when the data chunk claimed more bytes than the file holds.
    bool truncated() const noexcept { return truncated_; }
    const std::string& error_message() const noexcept { return message_; }

private:
    static std::uint16_t le16(const std::uint8_t* p) noexcept { return static_cast<std::uint16_t>(p[0] | (p[1] << 8)); }
    static std::uint32_t le32(const std::uint8_t* p) noexcept {
        return std::uint32_t{p[0]} | (std::uint32_t{p[1]} << 8) | (std::uint32_t{p[2]} << 16) | (std::uint32_t{p[3]} << 24);
    }
    std::size_t block_align() const noexcept { return 2u * static_cast<std::size_t>(channels_); }

    std::error_code parse_fmt(const std::uint8_t* p, std::uint32_t size) {
        std::uint16_t tag = le16(p);
        const std::uint16_t ch = le16(p + 2);
        const std::uint32_t rate = le32(p + 4);
        const std::uint16_t align = le16(p + 12);
        const std::uint16_t bits = le16(p + 14);
        if (tag == 0xFFFE) { // WAVE_FORMAT_EXTENSIBLE: the real tag opens the SubFormat GUID
            if (size < 40) return fail(errc::bad_file, "wav: short WAVE_FORMAT_EXTENSIBLE fmt chunk");
            tag = le16(p + 24);
        }
        if (tag != 1)
            return fail(errc::unsupported, "wav: format tag " + std::to_string(tag) + " unsupported (need PCM)");
        if (ch != 1 && ch != 2)
            return fail(errc::unsupported, "wav: " + std::to_string(ch) + " channels unsupported (need 1 or 2)");
        if (rate != static_cast<std::uint32_t>(audio_frame::sample_rate))
            return fail(errc::unsupported, "wav: sample rate " + std::to_string(rate) + " Hz unsupported (need 48000)");
        if (bits != 16)
            return fail(errc::unsupported, "wav: " + std::to_string(bits) + "-bit samples unsupported (need 16)");
        if (align != 2u * ch) return fail(errc::bad_file, "wav: block align does not match channels");
        channels_ = ch;
        return {};
    }
    bool read_exact(std::uint8_t* p, std::size_t n) {
        in_.read(reinterpret_cast<char*>(p), static_cast<std::streamsize>(n));
        return static_cast<std::size_t>(in_.gcount()) == n;
    }
    std::error_code fail(errc e, std::string msg) {
        message_ = std::move(msg);
        return e;
    }

    std::ifstream in_;
    timestamp start_{};
    int channels_ = 0;
    std::uint64_t data_bytes_ = 0, consumed_ = 0, samples_ = 0;
    bool open_ = false, truncated_ = false;
    std::vector<std::uint8_t> buf_;
    std::string message_;
};

} // namespace onair::source
