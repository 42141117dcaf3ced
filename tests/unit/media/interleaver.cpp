#include "onair/media/interleaver.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <vector>

using onair::encoded_frame;
using onair::media_kind;
using onair::media::interleaver;
using namespace std::chrono_literals;

namespace {
encoded_frame frame(media_kind k, int ms) {
    encoded_frame f;
    f.kind = k;
    f.capture_time = onair::timestamp{} + std::chrono::milliseconds(ms);
    return f;
}
struct times {
    std::vector<std::pair<media_kind, int>> out;
    void operator()(encoded_frame&& f) {
        out.emplace_back(f.kind, static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(f.capture_time.time_since_epoch()).count()));
    }
};
} // namespace

TEST_SUITE("media.interleaver") {
    TEST_CASE("audio running ahead of video waits, and both leave in capture order") {
        interleaver il;
        times t;
        for (int ms = 0; ms <= 200; ms += 20) il.push(frame(media_kind::audio, ms), t);
        CHECK(t.out.empty()); // no video yet: audio waits (up to 1 s)
        il.push(frame(media_kind::video, 0), t);
        il.push(frame(media_kind::video, 33), t);
        il.push(frame(media_kind::video, 66), t);
        il.flush(t);
        REQUIRE(t.out.size() == 14);
        for (std::size_t i = 1; i < t.out.size(); ++i) CHECK(t.out[i - 1].second <= t.out[i].second);
        CHECK(t.out[0] == std::pair{media_kind::video, 0});
        CHECK(t.out[1] == std::pair{media_kind::audio, 0});
    }

    TEST_CASE("a silent track holds the other back at most max_wait; its late frames are dropped") {
        interleaver il(true, true, 500ms);
        times t;
        for (int ms = 0; ms < 500; ms += 33) il.push(frame(media_kind::video, ms), t);
        CHECK(t.out.empty());
        il.push(frame(media_kind::video, 528), t); // 528 ms of video held: 0..33 may go
        CHECK_FALSE(t.out.empty());
        const int last = t.out.back().second;
        il.push(frame(media_kind::audio, last - 10), t); // behind what left: late
        CHECK(il.late() == 1);
    }

    TEST_CASE("a track that takes no part passes the other through and drops its own frames") {
        interleaver il(true, false);
        times t;
        il.push(frame(media_kind::video, 0), t);
        il.push(frame(media_kind::audio, 0), t);
        il.push(frame(media_kind::video, 33), t);
        CHECK(t.out.size() == 2);
        CHECK(il.dropped() == 1);
        CHECK(il.held() == 0);
    }
}
