// onair — puts the encoded frames of a stream's two tracks into one capture-time order.
//
// Audio and video reach a recorder out of step: a host's audio encoder answers before its
// video encoder, a relay releases video later than audio (its frame buffer waits for
// repairs). Containers want their blocks in time order across tracks (a WebM cluster's
// blocks are relative to its start; a browser reading a live WebM stalls on a block far
// behind its neighbours), so frames wait here until the other track has caught up: the
// older head of the two queues leaves while both hold frames. A track that stays silent
// (a muted host, a lost audio stream) holds the other back at most `max_wait` of capture
// time; then frames leave without it, and anything of the silent track older than what
// already left is dropped as late.
#pragma once

#include "onair/core/media_frame.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <utility>

namespace onair::media {

/// Thread safety: none.
class interleaver {
public:
    /// @param video,audio the tracks that take part (a missing track holds nothing back)
    interleaver(bool video = true, bool audio = true, std::chrono::microseconds max_wait = std::chrono::milliseconds(1000))
        : video_(video), audio_(audio), max_wait_(max_wait) {}

    /// Adds one frame; `emit(encoded_frame&&)` gets every frame that may leave now.
    template <class Emit>
    void push(encoded_frame&& f, Emit&& emit) {
        const bool v = f.kind == media_kind::video;
        if (!(v ? video_ : audio_)) {
            ++dropped_;
            return;
        }
        if (left_ && f.capture_time < last_) { // the other track already moved past it
            ++late_;
            return;
        }
        (v ? vq_ : aq_).push_back(std::move(f));
        drain(emit, false);
    }

    /// Emits everything still held, in order (at the end of a recording).
    template <class Emit>
    void flush(Emit&& emit) {
        drain(emit, true);
    }

    std::size_t held() const noexcept { return vq_.size() + aq_.size(); }
    std::uint64_t late() const noexcept { return late_; }
    std::uint64_t dropped() const noexcept { return dropped_; }

private:
    template <class Emit>
    void drain(Emit& emit, bool all) {
        for (;;) {
            std::deque<encoded_frame>* q = nullptr;
            if (!vq_.empty() && !aq_.empty()) {
                q = vq_.front().capture_time <= aq_.front().capture_time ? &vq_ : &aq_;
            } else {
                std::deque<encoded_frame>* only = !vq_.empty() ? &vq_ : !aq_.empty() ? &aq_ : nullptr;
                if (!only) return;
                const bool other_expected = only == &vq_ ? audio_ : video_;
                if (!all && other_expected && only->back().capture_time - only->front().capture_time < max_wait_) return;
                q = only;
            }
            last_ = q->front().capture_time;
            left_ = true;
            emit(std::move(q->front()));
            q->pop_front();
        }
    }

    bool video_;
    bool audio_;
    std::chrono::microseconds max_wait_;
    std::deque<encoded_frame> vq_;
    std::deque<encoded_frame> aq_;
    timestamp last_{};
    bool left_ = false;
    std::uint64_t late_ = 0;
    std::uint64_t dropped_ = 0;
};

} // namespace onair::media
