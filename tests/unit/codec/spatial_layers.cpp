// VP9 spatial layers (libvpx SVC): each picture as one frame per spatial layer with its id
// and size, the temporal pattern across them, what a receiver of only the lower spatial and
// temporal layers decodes, the rate split, and the decoder fed layer frames one at a time.
#include "onair/codec/vp8.hpp"
#include "onair/codec/vp9.hpp"
#include "onair/core/psnr.hpp"
#include "onair/core/scale.hpp"

#include "unit/codec/vpx_common.hpp"

#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <vector>

using onair::encoded_frame;
using onair::video_frame;
using onair::codec::vp9;

namespace {

onair::codec::video_config svc_config(int spatial, int temporal, int kbps = 1500) {
    auto c = onair::test::config_640(kbps);
    c.spatial_layers = spatial;
    c.temporal_layers = temporal;
    return c;
}

/// One encoded picture: its layer frames, lowest first.
struct picture {
    std::vector<encoded_frame> layers;
};

/// Encodes `n` frames, keeping the sources; every input must give a whole picture.
void encode_pictures(vp9::encoder& enc, onair::source::test_pattern& tp, int n, int spatial, std::vector<video_frame>& src,
                     std::vector<picture>& out) {
    for (int i = 0; i < n; ++i) {
        src.push_back(tp.next());
        picture p;
        REQUIRE_FALSE(enc.encode(src.back(), [&](encoded_frame&& e) { p.layers.push_back(std::move(e)); }));
        REQUIRE(p.layers.size() == static_cast<std::size_t>(spatial));
        out.push_back(std::move(p));
    }
}

/// The source at spatial layer `sid`'s size (of `layers`), as the reference for PSNR.
video_frame scaled(const video_frame& f, int sid, int layers) {
    video_frame cur = f;
    for (int k = layers - 1; k > sid; --k) {
        video_frame half;
        onair::downscale_half(cur, half);
        cur = std::move(half);
    }
    return cur;
}

/// Decodes each picture's layer frames up to `max_sid` (pictures up to `max_tid`) as one
/// frame, as a receiver's frame assembler hands them over: no errors, one picture each at
/// layer max_sid's size, close to the source at that size.
void check_decode_up_to(const std::vector<video_frame>& src, const std::vector<picture>& pics, int max_sid, int max_tid,
                        int layers, int expected) {
    INFO("spatial 0.." << max_sid << ", temporal 0.." << max_tid);
    vp9::decoder dec;
    REQUIRE_FALSE(dec.open());
    int pictures = 0, errors = 0, barcodes = 0;
    double min_psnr = 1e9;
    for (std::size_t i = 0; i < pics.size(); ++i) {
        const auto& first = pics[i].layers.front();
        if (first.temporal_layer > max_tid) continue;
        encoded_frame in = first;
        in.data.clear();
        for (const auto& l : pics[i].layers)
            if (l.spatial_layer <= max_sid) in.data.insert(in.data.end(), l.data.begin(), l.data.end());
        video_frame out;
        if (dec.decode(in, out)) {
            ++errors;
            continue;
        }
        ++pictures;
        const video_frame ref = scaled(src[i], max_sid, layers);
        CHECK(out.width == ref.width);
        CHECK(out.height == ref.height);
        if (out.width != ref.width || out.height != ref.height) continue;
        if (const auto bc = onair::source::read_barcode(out)) {
            CHECK(bc->frame_number == static_cast<std::uint32_t>(i));
            ++barcodes;
        }
        const auto p = onair::psnr(ref, out);
        REQUIRE(p.valid);
        min_psnr = std::min(min_psnr, p.all);
    }
    MESSAGE("spatial 0.." << max_sid << ", temporal 0.." << max_tid << ": " << pictures << " pictures, " << barcodes
                          << " barcodes read, min PSNR " << min_psnr << " dB");
    CHECK(errors == 0);
    CHECK(pictures == expected);
    // Against a box-filtered reference (libvpx scales with its own filter); a missing
    // reference would collapse it far below.
    CHECK(min_psnr >= 24.0);
    if (max_sid == layers - 1) CHECK(barcodes == pictures);
}

} // namespace

TEST_SUITE("codec.spatial_layers") {
    TEST_CASE("vp9 three spatial layers: one frame per layer, lowest first, with its id and size") {
        vp9::encoder enc;
        REQUIRE_FALSE(enc.open(svc_config(3, 3)));
        onair::source::test_pattern tp(640, 360, 30, onair::test::test_epoch);
        std::vector<video_frame> src;
        std::vector<picture> pics;
        encode_pictures(enc, tp, 13, 3, src, pics);
        enc.request_keyframe();
        encode_pictures(enc, tp, 8, 3, src, pics);
        static constexpr int width[] = {160, 320, 640}, height[] = {90, 180, 360};
        static constexpr std::uint8_t tl[] = {0, 2, 1, 2};
        for (std::size_t i = 0; i < pics.size(); ++i) {
            INFO("picture " << i);
            const bool key = i == 0 || i == 13;
            const std::size_t step = i < 13 ? i : i - 13;
            for (std::size_t s = 0; s < 3; ++s) {
                INFO("layer " << s);
                const auto& e = pics[i].layers[s];
                CHECK(e.spatial_layer == s);
                CHECK(e.spatial_layers == 3);
                CHECK(e.width == width[s]);
                CHECK(e.height == height[s]);
                CHECK(e.rtp_timestamp == pics[i].layers[0].rtp_timestamp);
                CHECK(e.end_of_picture == (s == 2));
                CHECK(e.keyframe == key);
                CHECK(e.temporal_layer == tl[step % 4]); // the pattern restarts at the key frame
                // k-SVC: only a key picture's upper layers are predicted from the layer below.
                CHECK(e.inter_layer == (key && s > 0));
                CHECK(!e.data.empty());
                if (key) {
                    for (std::size_t k = 0; k < 3; ++k) {
                        CHECK(e.layer_width[k] == width[k]);
                        CHECK(e.layer_height[k] == height[k]);
                    }
                } else {
                    // libvpx's pattern: TL1 and the first TL2 read the TL0 frame, the second
                    // TL2 the TL1 frame only: every upper frame is a switching point.
                    CHECK(e.layer_sync == (step % 4 != 0));
                }
            }
            // The top layer's TL2 frames refresh no buffer.
            if (!key && tl[step % 4] == 2) CHECK(pics[i].layers[2].non_reference);
            if (tl[step % 4] < 2) CHECK_FALSE(pics[i].layers[2].non_reference);
        }
    }

    TEST_CASE("vp9 three spatial layers decode alone up to any spatial and temporal layer") {
        vp9::encoder enc;
        REQUIRE_FALSE(enc.open(svc_config(3, 3)));
        onair::source::test_pattern tp(640, 360, 30, onair::test::test_epoch);
        std::vector<video_frame> src;
        std::vector<picture> pics;
        encode_pictures(enc, tp, 30, 3, src, pics);
        enc.request_keyframe();
        encode_pictures(enc, tp, 30, 3, src, pics);
        int counts[3] = {};
        for (const auto& p : pics) ++counts[p.layers[0].temporal_layer];
        CHECK(counts[0] == 16);
        for (int sid = 0; sid < 3; ++sid) {
            check_decode_up_to(src, pics, sid, 0, 3, counts[0]);
            check_decode_up_to(src, pics, sid, 1, 3, counts[0] + counts[1]);
            check_decode_up_to(src, pics, sid, 2, 3, 60);
        }
    }

    TEST_CASE("vp9 two spatial layers: 1/2 and full size, both decodable") {
        vp9::encoder enc;
        REQUIRE_FALSE(enc.open(svc_config(2, 1, 800)));
        onair::source::test_pattern tp(640, 360, 30, onair::test::test_epoch);
        std::vector<video_frame> src;
        std::vector<picture> pics;
        encode_pictures(enc, tp, 20, 2, src, pics);
        for (const auto& p : pics) {
            CHECK(p.layers[0].width == 320);
            CHECK(p.layers[1].width == 640);
            CHECK(p.layers[0].temporal_layer == 0);
        }
        check_decode_up_to(src, pics, 0, 0, 2, 20);
        check_decode_up_to(src, pics, 1, 0, 2, 20);
    }

    TEST_CASE("vp9 layer frames decoded one at a time are each a shown picture of their size") {
        vp9::encoder enc;
        REQUIRE_FALSE(enc.open(svc_config(3, 1)));
        onair::source::test_pattern tp(640, 360, 30, onair::test::test_epoch);
        std::vector<video_frame> src;
        std::vector<picture> pics;
        encode_pictures(enc, tp, 10, 3, src, pics);
        vp9::decoder dec;
        REQUIRE_FALSE(dec.open());
        for (const auto& p : pics)
            for (const auto& l : p.layers) {
                video_frame out;
                REQUIRE_FALSE(dec.decode(l, out));
                CHECK(out.width == l.width);
                CHECK(out.height == l.height);
            }
    }

    TEST_CASE("vp9 spatial layers: the rate split between layers, and set_bitrate moves it") {
        vp9::encoder enc;
        REQUIRE_FALSE(enc.open(svc_config(3, 1, 1500)));
        onair::source::test_pattern tp(640, 360, 30, onair::test::test_epoch);
        std::vector<video_frame> src;
        std::vector<picture> pics;
        encode_pictures(enc, tp, 90, 3, src, pics);
        auto kbps = [&](std::size_t from, std::size_t to, std::size_t sid) {
            std::size_t bytes = 0;
            for (std::size_t i = from; i < to; ++i) bytes += pics[i].layers[sid].data.size();
            return static_cast<double>(bytes) * 8.0 / (static_cast<double>(to - from) / 30.0) / 1000.0;
        };
        const double l0 = kbps(30, 90, 0), l1 = kbps(30, 90, 1), l2 = kbps(30, 90, 2);
        MESSAGE("1500 kbps, 3 spatial layers: " << l0 << " / " << l1 << " / " << l2 << " kbps");
        CHECK(l0 > 50);
        CHECK(l0 < 300);
        CHECK(l1 > l0);
        CHECK(l2 > l1);
        CHECK(l0 + l1 + l2 > 900);
        CHECK(l0 + l1 + l2 < 2200);
        enc.set_bitrate(500);
        encode_pictures(enc, tp, 60, 3, src, pics);
        const double total = kbps(120, 150, 0) + kbps(120, 150, 1) + kbps(120, 150, 2);
        MESSAGE("500 kbps: " << total << " kbps");
        CHECK(total < 800);
        CHECK(total > 250);
    }

    TEST_CASE("spatial layers: out of range, or VP8, is refused") {
        vp9::encoder enc;
        CHECK(enc.open(svc_config(4, 1)));
        CHECK(enc.open(svc_config(0, 1)));
        auto tiny = svc_config(3, 1);
        tiny.width = 48;
        tiny.height = 48;
        CHECK(enc.open(tiny)); // 12x12 at the bottom
        onair::codec::vp8::encoder v8;
        CHECK(v8.open(svc_config(2, 1)));
        CHECK_FALSE(v8.open(svc_config(1, 1)));
    }

    TEST_CASE("split_superframe: layer frames at the index; malformed indexes refused") {
        using onair::codec::detail::split_superframe;
        std::array<std::span<const std::uint8_t>, 8> parts;
        // Two frames of 3 and 2 bytes, 1-byte sizes: marker 0b110'00'001.
        const std::vector<std::uint8_t> sf{0x80, 1, 2, 0x80, 3, 0xc1, 3, 2, 0xc1};
        REQUIRE(split_superframe(sf, parts) == 2);
        CHECK(parts[0].size() == 3);
        CHECK(parts[1].size() == 2);
        CHECK(parts[1][1] == 3);
        // Sizes that do not add up to the data before the index.
        const std::vector<std::uint8_t> bad{0x80, 1, 2, 0x80, 3, 0xc1, 3, 3, 0xc1};
        CHECK(split_superframe(bad, parts) == 0);
        const std::vector<std::uint8_t> zero{0x80, 1, 2, 0x80, 3, 0xc1, 0, 5, 0xc1};
        CHECK(split_superframe(zero, parts) == 0);
        // No index: one frame.
        const std::vector<std::uint8_t> plain{0x80, 1, 2};
        REQUIRE(split_superframe(plain, parts) == 1);
        CHECK(parts[0].size() == 3);
        CHECK(split_superframe({}, parts) == 0);
    }
}
