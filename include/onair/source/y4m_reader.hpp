// onair — YUV4MPEG2 (.y4m) file source, 8-bit 4:2:0 only.
//
// Accepts C420, C420jpeg, C420mpeg2, C420paldv or no C tag; any other colour space is
// errc::unsupported. The file is untrusted: malformed or truncated headers give
// errc::bad_file, a short last frame errc::truncated; nothing is read past what the header
// promises. Frame i gets capture time start + i / fps.
#pragma once

#include "onair/core/error.hpp"
#include "onair/core/media_frame.hpp"
#include "onair/core/time.hpp"

#include <charconv>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace onair::source {

/// Reads I420 frames from a .y4m file.
/// Thread safety: none; one thread per object.
class y4m_reader {
public:
    static constexpr int max_dimension = 16384;

    y4m_reader() = default;

    /// Opens `path` and parses its stream header. Frame i will carry capture time start + i / fps.
    std::error_code open(const std::filesystem::path& path, timestamp start = {}) {
        close();
        start_ = start;
        in_.open(path, std::ios::binary);
        if (!in_) return fail(errc::bad_file, "y4m: cannot open file");
        std::string line;
        if (!read_line(line, 4096)) return fail(errc::bad_file, "y4m: no stream header line");
        constexpr std::string_view magic = "YUV4MPEG2";
        if (line.size() < magic.size() || std::string_view(line).substr(0, magic.size()) != magic ||
            (line.size() > magic.size() && line[magic.size()] != ' '))
            return fail(errc::bad_file, "y4m: missing YUV4MPEG2 signature");
        std::string_view rest = std::string_view(line).substr(magic.size());
        int w = 0, h = 0;
        fps_num_ = 25; // ffmpeg's assumption when F is absent
        fps_den_ = 1;
        while (!rest.empty()) {
            if (rest.front() == ' ') { rest.remove_prefix(1); continue; }
            const std::size_t end = rest.find(' ');
            const std::string_view tok = rest.substr(0, end);
            rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end);
            const std::string_view val = tok.substr(1);
            switch (tok.front()) {
            case 'W':
                if (!parse_int(val, w) || w <= 0 || w > max_dimension) return fail(errc::bad_file, "y4m: bad W");
                break;
            case 'H':
                if (!parse_int(val, h) || h <= 0 || h > max_dimension) return fail(errc::bad_file, "y4m: bad H");
                break;
            case 'F': {
                const std::size_t colon = val.find(':');
                if (colon == std::string_view::npos || !parse_int(val.substr(0, colon), fps_num_) ||
                    !parse_int(val.substr(colon + 1), fps_den_) || fps_num_ <= 0 || fps_den_ <= 0)
                    return fail(errc::bad_file, "y4m: bad F (frame rate)");
                break;
            }
            case 'C':
                if (val != "420" && val != "420jpeg" && val != "420mpeg2" && val != "420paldv")
                    return fail(errc::unsupported, "y4m: colour space C" + std::string(val) +
                                                       " unsupported (need 8-bit 4:2:0)");
                break;
            default: break; // I (interlacing), A (aspect), X (comments): ignored
            }
        }
        if (w == 0 || h == 0) return fail(errc::bad_file, "y4m: W or H missing");
        width_ = w;
        height_ = h;
        open_ = true;
        return {};
    }

    /// Reads the next frame into `out`. errc::end_of_stream after the last whole frame.
    std::error_code read(video_frame& out) {
        if (!open_) return fail(errc::bad_file, "y4m: not open");
        std::string line;
        if (in_.peek() == std::ifstream::traits_type::eof()) return errc::end_of_stream;
        if (!read_line(line, 1024) || line.compare(0, 5, "FRAME") != 0)
            return fail(errc::bad_file, "y4m: missing FRAME marker");
        if (out.width != width_ || out.height != height_ || out.data.size() != video_frame::size_for(width_, height_))
            out = video_frame(width_, height_);
        in_.read(reinterpret_cast<char*>(out.data.data()), static_cast<std::streamsize>(out.data.size()));
        if (static_cast<std::size_t>(in_.gcount()) != out.data.size())
            return fail(errc::truncated, "y4m: last frame is truncated");
        out.capture_time = start_ + offset_of(frames_);
        ++frames_;
        return {};
    }

    void close() {
        if (in_.is_open()) in_.close();
        in_.clear();
        open_ = false;
        width_ = height_ = 0;
        frames_ = 0;
        message_.clear();
    }

    bool is_open() const noexcept { return open_; }
    int width() const noexcept { return width_; }
    int height() const noexcept { return height_; }
    int fps_num() const noexcept { return fps_num_; }
    int fps_den() const noexcept { return fps_den_; }
    double fps() const noexcept { return static_cast<double>(fps_num_) / fps_den_; }
    std::uint64_t frames_read() const noexcept { return frames_; }
    /// Human-readable reason for the last error, empty when none.
    const std::string& error_message() const noexcept { return message_; }

private:
    static bool parse_int(std::string_view s, int& v) noexcept {
        const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
        return r.ec == std::errc{} && r.ptr == s.data() + s.size() && !s.empty();
    }
    bool read_line(std::string& line, std::size_t max) {
        line.clear();
        for (;;) {
            const int c = in_.get();
            if (c == std::ifstream::traits_type::eof()) return false;
            if (c == '\n') return true;
            if (line.size() >= max) return false;
            line.push_back(static_cast<char>(c));
        }
    }
    /// frame index / fps in microseconds, without overflow for any index and rate.
    std::chrono::microseconds offset_of(std::uint64_t i) const noexcept {
        const std::uint64_t num = static_cast<std::uint64_t>(fps_num_);
        const std::uint64_t t = i * static_cast<std::uint64_t>(fps_den_);
        return std::chrono::microseconds{static_cast<std::int64_t>(t / num * 1'000'000 + t % num * 1'000'000 / num)};
    }
    std::error_code fail(errc e, std::string msg) {
        message_ = std::move(msg);
        return e;
    }

    std::ifstream in_;
    timestamp start_{};
    int width_ = 0, height_ = 0;
    int fps_num_ = 25, fps_den_ = 1;
    std::uint64_t frames_ = 0;
    bool open_ = false;
    std::string message_;
};

} // namespace onair::source
