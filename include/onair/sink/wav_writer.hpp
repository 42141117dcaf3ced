// onair — a sink that records audio to a RIFF/WAVE file (16-bit PCM, 48 kHz).
//
// The header is written with the first frame, whose channel count fixes the file's; the
// RIFF and data sizes are patched on close() and on destruction, so a file is valid once
// closed (and readable by tools that tolerate a zero data size before that).
#pragma once

#include "onair/core/error.hpp"
#include "onair/core/media_frame.hpp"

#include <array>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <system_error>
#include <utility>
#include <vector>

namespace onair::sink {

/// Writes audio frames to a .wav file; ignores video. Data beyond 4 GiB is dropped.
/// Thread safety: none; one thread per object.
class wav_writer {
public:
    wav_writer() = default;
    explicit wav_writer(const std::filesystem::path& path) { open(path); }
    wav_writer(wav_writer&& o) noexcept { *this = std::move(o); }
    wav_writer& operator=(wav_writer&& o) noexcept {
        if (this != &o) {
            close();
            out_ = std::move(o.out_);
            channels_ = std::exchange(o.channels_, 0);
            data_bytes_ = std::exchange(o.data_bytes_, 0);
            dropped_ = std::exchange(o.dropped_, 0);
            error_ = std::exchange(o.error_, {});
        }
        return *this;
    }
    ~wav_writer() { close(); }

    std::error_code open(const std::filesystem::path& path) {
        close();
        out_.open(path, std::ios::binary | std::ios::trunc);
        channels_ = 0;
        data_bytes_ = 0;
        error_ = out_ ? std::error_code{} : make_error_code(errc::bad_file);
        return error_;
    }

    void on_video(const video_frame&) noexcept {}
    void on_audio(const audio_frame& f) {
        if (!out_.is_open() || error_) return;
        if ((f.channels != 1 && f.channels != 2) || f.samples.size() % static_cast<std::size_t>(f.channels) != 0 ||
            (channels_ != 0 && f.channels != channels_)) {
            ++dropped_;
            return;
        }
        if (channels_ == 0) {
            channels_ = f.channels;
            write_header();
        }
        const std::size_t bytes = 2 * f.samples.size();
        if (data_bytes_ + bytes > max_data_bytes) {
            ++dropped_;
            return;
        }
        buf_.resize(bytes);
        for (std::size_t i = 0; i < f.samples.size(); ++i) {
            const auto u = static_cast<std::uint16_t>(f.samples[i]);
            buf_[2 * i] = static_cast<char>(u & 0xff);
            buf_[2 * i + 1] = static_cast<char>(u >> 8);
        }
        out_.write(buf_.data(), static_cast<std::streamsize>(bytes));
        if (!out_) {
            error_ = make_error_code(errc::bad_file);
            return;
        }
        data_bytes_ += bytes;
    }

    /// Patches the header sizes and closes the file; returns the first write error, if any.
    std::error_code close() {
        if (!out_.is_open()) return error_;
        if (channels_ != 0) {
            std::array<char, 4> v{};
            put32(v, static_cast<std::uint32_t>(36 + data_bytes_));
            out_.seekp(4);
            out_.write(v.data(), 4);
            put32(v, static_cast<std::uint32_t>(data_bytes_));
            out_.seekp(40);
            out_.write(v.data(), 4);
        }
        out_.close();
        if (!out_ && !error_) error_ = make_error_code(errc::bad_file);
        out_.clear();
        return error_;
    }

    bool is_open() const noexcept { return out_.is_open(); }
    std::error_code error() const noexcept { return error_; }
    int channels() const noexcept { return channels_; }
    /// Samples per channel written so far.
    std::uint64_t samples_written() const noexcept { return channels_ ? data_bytes_ / (2u * channels_) : 0; }
    std::uint64_t frames_dropped() const noexcept { return dropped_; }

private:
    static constexpr std::uint64_t max_data_bytes = std::numeric_limits<std::uint32_t>::max() - 36;

    static void put32(std::array<char, 4>& v, std::uint32_t x) noexcept {
        for (int i = 0; i < 4; ++i) v[static_cast<std::size_t>(i)] = static_cast<char>((x >> (8 * i)) & 0xff);
    }
    void write_header() {
        const std::uint32_t rate = audio_frame::sample_rate;
        const auto ch = static_cast<std::uint16_t>(channels_);
        const std::uint32_t byte_rate = rate * 2u * ch;
        const auto align = static_cast<std::uint16_t>(2u * ch);
        std::array<std::uint8_t, 44> h{};
        auto p32 = [&](std::size_t at, std::uint32_t x) {
            for (int i = 0; i < 4; ++i) h[at + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(x >> (8 * i));
        };
        auto p16 = [&](std::size_t at, std::uint16_t x) {
            h[at] = static_cast<std::uint8_t>(x & 0xff);
            h[at + 1] = static_cast<std::uint8_t>(x >> 8);
        };
        auto tag = [&](std::size_t at, const char* t) {
            for (std::size_t i = 0; i < 4; ++i) h[at + i] = static_cast<std::uint8_t>(t[i]);
        };
        tag(0, "RIFF");
        p32(4, 36); // patched on close
        tag(8, "WAVE");
        tag(12, "fmt ");
        p32(16, 16);
        p16(20, 1); // PCM
        p16(22, ch);
        p32(24, rate);
        p32(28, byte_rate);
        p16(32, align);
        p16(34, 16);
        tag(36, "data");
        p32(40, 0); // patched on close
        out_.write(reinterpret_cast<const char*>(h.data()), static_cast<std::streamsize>(h.size()));
    }

    std::ofstream out_;
    int channels_ = 0;
    std::uint64_t data_bytes_ = 0, dropped_ = 0;
    std::vector<char> buf_;
    std::error_code error_;
};

} // namespace onair::sink
