// onair examples — inputs for a host: the test pattern or a .y4m file for video, a tone or a
// .wav file for audio, paced in real time by a feeder thread.
#pragma once

#include "common/cli.hpp"

#include <onair/core/time.hpp>
#include <onair/source/test_pattern.hpp>
#include <onair/source/tone.hpp>
#include <onair/source/wav_reader.hpp>
#include <onair/source/y4m_reader.hpp>

#include <atomic>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

namespace onair_examples {

/// Video from the numbered test pattern or a .y4m file (looped when it ends).
class video_input {
public:
    video_input(const std::string& what, int width, int height, int fps) : fps_(fps) {
        if (what == "pattern") {
            pattern_.emplace(width, height, fps);
        } else {
            path_ = what;
            reopen();
            if (file_.fps() > 0 && fps_ <= 0) fps_ = static_cast<int>(file_.fps() + 0.5);
        }
    }
    int width() const { return pattern_ ? pattern_->width() : file_.width(); }
    int height() const { return pattern_ ? pattern_->height() : file_.height(); }
    int fps() const { return fps_; }

    /// The next frame, captured now.
    onair::video_frame next(onair::timestamp t) {
        if (pattern_) return pattern_->next(t);
        onair::video_frame f;
        auto ec = file_.read(f);
        if (ec == onair::errc::end_of_stream) {
            reopen();
            ec = file_.read(f);
        }
        if (ec) throw std::runtime_error(path_ + ": " + file_.error_message());
        f.capture_time = t;
        return f;
    }

private:
    void reopen() {
        if (auto ec = file_.open(path_)) throw usage_error("--input " + path_ + ": " + file_.error_message());
    }
    int fps_;
    std::optional<onair::source::test_pattern> pattern_;
    onair::source::y4m_reader file_;
    std::string path_;
};

/// Audio from a tone or a 48 kHz 16-bit .wav file (looped), in 20 ms frames.
class audio_input {
public:
    explicit audio_input(const std::string& what) {
        if (what == "tone") {
            tone_.emplace();
        } else {
            path_ = what;
            reopen();
        }
    }
    int channels() const { return tone_ ? tone_->config().channels : file_.channels(); }

    onair::audio_frame next(onair::timestamp t) {
        if (tone_) return tone_->next(t);
        onair::audio_frame f;
        auto ec = file_.read(f, 960);
        if (ec == onair::errc::end_of_stream) {
            reopen();
            ec = file_.read(f, 960);
        }
        if (ec) throw std::runtime_error(path_ + ": " + file_.error_message());
        f.capture_time = t;
        return f;
    }

private:
    void reopen() {
        if (auto ec = file_.open(path_)) throw usage_error("--audio " + path_ + ": " + file_.error_message());
    }
    std::optional<onair::source::tone> tone_;
    onair::source::wav_reader file_;
    std::string path_;
};

/// Feeds `host` in real time for `seconds` (or until `stop`): a video frame every 1/fps,
/// an audio frame every 20 ms, each stamped with the wall-clock time it is produced.
/// Returns the number of video frames pushed.
template <class Host>
std::uint64_t feed_in_real_time(Host& host, video_input* video, audio_input* audio, double seconds,
                                const std::atomic<bool>& stop) {
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    const auto end = start + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(seconds));
    const auto video_period = std::chrono::microseconds(video ? 1'000'000 / video->fps() : 0);
    const auto audio_period = std::chrono::microseconds(20'000);
    auto next_video = start;
    auto next_audio = start;
    std::uint64_t frames = 0;
    while (!stop) {
        auto next = clock::time_point::max();
        if (video && next_video < end) next = std::min(next, next_video);
        if (audio && next_audio < end) next = std::min(next, next_audio);
        if (next == clock::time_point::max()) break;
        std::this_thread::sleep_until(next);
        if (video && next == next_video) {
            host.push_video(video->next(onair::now()));
            ++frames;
            next_video += video_period;
        }
        if (audio && next == next_audio) {
            host.push_audio(audio->next(onair::now()));
            next_audio += audio_period;
        }
    }
    return frames;
}

} // namespace onair_examples
