#include "onair/codec/av.hpp"

#include "onair/codec/null.hpp"
#include "onair/codec/opus.hpp"
#include "onair/codec/passthrough.hpp"
#include "onair/codec/vp8.hpp"
#include "onair/codec/vp9.hpp"

#include <doctest/doctest.h>

#include <type_traits>

namespace codec = onair::codec;

namespace {
struct swapped {
    using video = codec::opus;
    using audio = codec::vp8;
};
struct video_only {
    using video = codec::vp8;
};
struct not_a_codec {};
struct bad_members {
    using video = not_a_codec;
    using audio = codec::opus;
};
} // namespace

TEST_SUITE("codec.av") {
    TEST_CASE("av names a video and an audio policy") {
        using c = codec::av<codec::vp8, codec::opus>;
        static_assert(std::is_same_v<c::video, codec::vp8>);
        static_assert(std::is_same_v<c::audio, codec::opus>);
        static_assert(codec::av_codec<c>);
        static_assert(codec::av_codec<codec::av<codec::vp9, codec::opus>>);
        static_assert(codec::av_codec<codec::av<codec::passthrough_video, codec::passthrough_audio>>);
        static_assert(codec::av_codec<codec::av<codec::null_video, codec::null_audio>>);
        static_assert(codec::check_av_codec<c>());
        static_assert(!codec::av_codec<swapped>);
        static_assert(!codec::av_codec<video_only>);
        static_assert(!codec::av_codec<bad_members>);
        static_assert(!codec::av_codec<int>);
        static_assert(!codec::av_codec<codec::vp8>);
        CHECK(c::video::encoding_name == "VP8");
        CHECK(c::audio::encoding_name == "opus");
    }
}
