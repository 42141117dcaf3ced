#include "onair/codec/null.hpp"

#include <doctest/doctest.h>

using onair::codec::null_audio;
using onair::codec::null_video;

TEST_SUITE("codec.null") {
    TEST_CASE("null codecs model the concepts and do nothing") {
        static_assert(onair::codec::video_codec<null_video>);
        static_assert(onair::codec::audio_codec<null_audio>);
        null_video::encoder venc;
        REQUIRE_FALSE(venc.open({}));
        int emitted = 0;
        CHECK_FALSE(venc.encode(onair::video_frame(16, 16), [&](onair::encoded_frame&&) { ++emitted; }));
        null_audio::encoder aenc;
        REQUIRE_FALSE(aenc.open({}));
        CHECK_FALSE(aenc.encode(onair::audio_frame{}, [&](onair::encoded_frame&&) { ++emitted; }));
        CHECK(emitted == 0);
        venc.set_bitrate(100);
        venc.request_keyframe();

        null_video::decoder vdec;
        null_audio::decoder adec;
        REQUIRE_FALSE(vdec.open());
        REQUIRE_FALSE(adec.open());
        onair::video_frame v;
        onair::audio_frame a;
        CHECK(vdec.decode(onair::encoded_frame{}, v) == onair::errc::unsupported);
        CHECK(adec.decode(onair::encoded_frame{}, a) == onair::errc::unsupported);
    }
}
