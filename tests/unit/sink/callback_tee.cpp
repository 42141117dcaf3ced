#include "onair/sink/callback.hpp"
#include "onair/sink/tee.hpp"

#include "onair/sink/concepts.hpp"
#include "onair/sink/null.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using onair::audio_frame;
using onair::video_frame;
namespace sink = onair::sink;

namespace {
struct counting {
    int video = 0, audio = 0;
    void on_video(const video_frame&) { ++video; }
    void on_audio(const audio_frame&) { ++audio; }
};
struct video_only_sink {
    void on_video(const video_frame&) {}
};
} // namespace

TEST_SUITE("sink.callback_tee") {
    TEST_CASE("media_sink concept and null") {
        static_assert(sink::media_sink<sink::null>);
        static_assert(sink::media_sink<counting>);
        static_assert(!sink::media_sink<video_only_sink>);
        static_assert(!sink::media_sink<int>);
        sink::null n;
        n.on_video(video_frame(2, 2));
        n.on_audio(audio_frame{});
    }

    TEST_CASE("callback calls what the callable accepts") {
        int v = 0, a = 0;
        sink::callback video_cb{[&](const video_frame& f) { v += f.width; }};
        static_assert(sink::media_sink<decltype(video_cb)>);
        video_cb.on_video(video_frame(4, 2));
        video_cb.on_audio(audio_frame{}); // not for this callable: dropped
        CHECK(v == 4);

        std::vector<std::string> seen;
        sink::callback both{[&](const auto& f) {
            if constexpr (std::is_same_v<std::decay_t<decltype(f)>, video_frame>)
                seen.push_back("v");
            else
                seen.push_back("a");
        }};
        both.on_audio(audio_frame{});
        both.on_video(video_frame(2, 2));
        CHECK(seen == std::vector<std::string>{"a", "v"});

        sink::callback audio_cb{[&](const audio_frame&) { ++a; }};
        audio_cb.on_audio(audio_frame{});
        audio_cb.on_video(video_frame(2, 2));
        CHECK(a == 1);
    }

    TEST_CASE("tee forwards to every sink in order") {
        std::vector<int> order;
        sink::tee t{sink::callback{[&](const video_frame&) { order.push_back(1); }},
                    sink::callback{[&](const video_frame&) { order.push_back(2); }}, counting{}};
        static_assert(sink::media_sink<decltype(t)>);
        t.on_video(video_frame(2, 2));
        t.on_audio(audio_frame{});
        t.on_audio(audio_frame{});
        CHECK(order == std::vector<int>{1, 2});
        CHECK(t.get<2>().video == 1);
        CHECK(t.get<2>().audio == 2);
    }

    TEST_CASE("tee of references forwards to outside sinks") {
        counting a, b;
        sink::tee<counting&, sink::null, counting&> t{a, sink::null{}, b};
        t.on_video(video_frame(2, 2));
        t.on_audio(audio_frame{});
        CHECK(a.video == 1);
        CHECK(b.audio == 1);
        CHECK(&t.get<0>() == &a);
        sink::tee<counting, counting> defaulted;
        defaulted.on_video(video_frame(2, 2));
        CHECK(defaulted.get<1>().video == 1);
        sink::tee<> empty;
        empty.on_video(video_frame(2, 2));
    }
}
