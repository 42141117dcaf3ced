// onair — a sink that records video to a YUV4MPEG2 (.y4m) file, readable by ffmpeg and mpv.
//
// The stream header (W H F<fps>:1 Ip A1:1 C420jpeg) is written with the first frame, whose
// size fixes the file's size: later frames of another size are dropped and counted.
#pragma once

#include "onair/core/error.hpp"
#include "onair/core/media_frame.hpp"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

namespace onair::sink {

/// Writes I420 frames to a .y4m file; ignores audio.
/// Thread safety: none; one thread per object.
class y4m_writer {
public:
    y4m_writer() = default;
    explicit y4m_writer(const std::filesystem::path& path, int fps = 30) { open(path, fps); }
    y4m_writer(y4m_writer&&) = default;
    y4m_writer& operator=(y4m_writer&&) = default;
    ~y4m_writer() = default;

    std::error_code open(const std::filesystem::path& path, int fps = 30) {
        close();
        out_.open(path, std::ios::binary | std::ios::trunc);
        fps_ = fps > 0 ? fps : 30;
        error_ = out_ ? std::error_code{} : make_error_code(errc::bad_file);
        return error_;
    }

    void on_video(const video_frame& f) {
        if (!out_.is_open() || error_) return;
        if (!f.valid()) {
            ++dropped_;
            return;
        }
        if (width_ == 0) {
            width_ = f.width;
            height_ = f.height;
            const std::string hdr = "YUV4MPEG2 W" + std::to_string(width_) + " H" + std::to_string(height_) + " F" +
                                    std::to_string(fps_) + ":1 Ip A1:1 C420jpeg\n";
            out_.write(hdr.data(), static_cast<std::streamsize>(hdr.size()));
        } else if (f.width != width_ || f.height != height_) {
            ++dropped_;
            return;
        }
        out_.write("FRAME\n", 6);
        out_.write(reinterpret_cast<const char*>(f.data.data()), static_cast<std::streamsize>(f.data.size()));
        if (!out_) {
            error_ = make_error_code(errc::bad_file);
            return;
        }
        ++frames_;
    }
    void on_audio(const audio_frame&) noexcept {}

    /// Flushes and closes the file; returns the first write error, if any.
    std::error_code close() {
        if (out_.is_open()) {
            out_.close();
            if (!out_ && !error_) error_ = make_error_code(errc::bad_file);
        }
        out_.clear();
        width_ = height_ = 0;
        return error_;
    }

    bool is_open() const noexcept { return out_.is_open(); }
    std::error_code error() const noexcept { return error_; }
    std::uint64_t frames_written() const noexcept { return frames_; }
    std::uint64_t frames_dropped() const noexcept { return dropped_; }

private:
    std::ofstream out_;
    int fps_ = 30;
    int width_ = 0, height_ = 0;
    std::uint64_t frames_ = 0, dropped_ = 0;
    std::error_code error_;
};

} // namespace onair::sink
