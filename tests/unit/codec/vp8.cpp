#include "onair/codec/vp8.hpp"

#include "unit/codec/vpx_common.hpp"

#include <doctest/doctest.h>

#include <type_traits>

using onair::codec::vp8;

TEST_SUITE("codec.vp8") {
    TEST_CASE("vp8 policy constants") {
        static_assert(onair::codec::video_codec<vp8>);
        static_assert(!onair::codec::audio_codec<vp8>);
        CHECK(vp8::encoding_name == "VP8");
        CHECK(vp8::clock_rate == 90000);
        CHECK(vp8::channels == 1);
        static_assert(!std::is_copy_constructible_v<vp8::encoder>);
        static_assert(std::is_nothrow_move_constructible_v<vp8::encoder>);
        static_assert(!std::is_copy_constructible_v<vp8::decoder>);
        static_assert(std::is_nothrow_move_constructible_v<vp8::decoder>);
    }
    TEST_CASE("vp8 640x360 1 Mbps: PSNR and barcode on every frame") { onair::test::check_quality_and_barcode<vp8>("vp8"); }
    TEST_CASE("vp8 keyframe on request") { onair::test::check_keyframe_request<vp8>(); }
    TEST_CASE("vp8 periodic keyframes") { onair::test::check_periodic_keyframes<vp8>(); }
    TEST_CASE("vp8 set_bitrate changes output size") { onair::test::check_set_bitrate<vp8>(); }
    TEST_CASE("vp8 decoder waits for a keyframe") { onair::test::check_decoder_needs_keyframe<vp8>(); }
    TEST_CASE("vp8 decoder survives garbage") { onair::test::check_garbage_input<vp8>(); }
    TEST_CASE("vp8 errors and moves") { onair::test::check_errors_and_moves<vp8>(); }
    TEST_CASE("vp8 odd frame size") { onair::test::check_odd_size<vp8>(); }
}
