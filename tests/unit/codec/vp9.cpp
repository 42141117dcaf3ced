#include "onair/codec/vp9.hpp"

#include "unit/codec/vpx_common.hpp"

#include <doctest/doctest.h>

#include <type_traits>

using onair::codec::vp9;

TEST_SUITE("codec.vp9") {
    TEST_CASE("vp9 policy constants") {
        static_assert(onair::codec::video_codec<vp9>);
        static_assert(!onair::codec::audio_codec<vp9>);
        CHECK(vp9::encoding_name == "VP9");
        CHECK(vp9::clock_rate == 90000);
        CHECK(vp9::channels == 1);
        static_assert(!std::is_copy_constructible_v<vp9::encoder>);
        static_assert(std::is_nothrow_move_constructible_v<vp9::encoder>);
        static_assert(!std::is_copy_constructible_v<vp9::decoder>);
        static_assert(std::is_nothrow_move_constructible_v<vp9::decoder>);
    }
    TEST_CASE("vp9 640x360 1 Mbps: PSNR and barcode on every frame") { onair::test::check_quality_and_barcode<vp9>("vp9"); }
    TEST_CASE("vp9 keyframe on request") { onair::test::check_keyframe_request<vp9>(); }
    TEST_CASE("vp9 periodic keyframes") { onair::test::check_periodic_keyframes<vp9>(); }
    TEST_CASE("vp9 set_bitrate changes output size") { onair::test::check_set_bitrate<vp9>(); }
    TEST_CASE("vp9 decoder waits for a keyframe") { onair::test::check_decoder_needs_keyframe<vp9>(); }
    TEST_CASE("vp9 decoder survives garbage") { onair::test::check_garbage_input<vp9>(); }
    TEST_CASE("vp9 errors and moves") { onair::test::check_errors_and_moves<vp9>(); }
    TEST_CASE("vp9 odd frame size") { onair::test::check_odd_size<vp9>(); }
}
