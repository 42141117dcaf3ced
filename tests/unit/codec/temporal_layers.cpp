// Temporal layers in the libvpx encoder (VP8 and VP9): the layer pattern, what a receiver of
// only the lower layers decodes, the per-layer bitrate split, and the RTP descriptor bits.
#include "onair/codec/vp8.hpp"
#include "onair/codec/vp9.hpp"

#include "unit/codec/vpx_common.hpp"

#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <vector>

using onair::encoded_frame;
using onair::video_frame;
using onair::codec::vp8;
using onair::codec::vp9;

namespace {

/// The 3-layer pattern's layer for the n-th frame of a stream with no keyframe after the first.
std::uint8_t three_layer_of(std::size_t n) {
    static constexpr std::uint8_t layer[] = {0, 2, 1, 2};
    return layer[n % 4];
}

onair::codec::video_config layered(int layers, int kbps = 800, int w = 320, int h = 180) {
    auto c = onair::test::config_640(kbps);
    c.width = w;
    c.height = h;
    c.temporal_layers = layers;
    return c;
}

/// Encodes `n` test-pattern frames, keeping the sources; every input must give one frame.
template <class C>
void encode_keep(typename C::encoder& enc, onair::source::test_pattern& tp, int n, std::vector<video_frame>& src,
                 std::vector<encoded_frame>& out) {
    for (int i = 0; i < n; ++i) {
        src.push_back(tp.next());
        const std::size_t before = out.size();
        REQUIRE_FALSE(enc.encode(src.back(), [&](encoded_frame&& e) { out.push_back(std::move(e)); }));
        REQUIRE(out.size() == before + 1);
    }
}

/// The 3-layer pattern position of each frame: 0 TL0, 1 first TL2, 2 TL1, 3 second TL2.
void check_three_layer_step(const encoded_frame& e, int step) {
    INFO("pattern step " << step);
    static constexpr bool sync[] = {false, true, true, false};
    static constexpr bool non_ref[] = {false, true, false, true};
    CHECK(e.temporal_layer == three_layer_of(static_cast<std::size_t>(step)));
    CHECK(e.layer_sync == sync[step]);
    CHECK(e.non_reference == non_ref[step]);
}

template <class C>
void check_three_layer_pattern() {
    typename C::encoder enc;
    REQUIRE_FALSE(enc.open(layered(3)));
    onair::source::test_pattern tp(320, 180, 30, onair::test::test_epoch);
    const auto frames = onair::test::encode_pattern<C>(enc, tp, 16);
    REQUIRE(frames.size() == 16);
    for (int i = 0; i < 16; ++i) {
        const auto& e = frames[static_cast<std::size_t>(i)];
        CHECK(e.keyframe == (i == 0));
        check_three_layer_step(e, i % 4);
    }
    // One more frame leaves the pattern at a TL2 step; the keyframe restarts it at TL0.
    auto more = onair::test::encode_pattern<C>(enc, tp, 1);
    REQUIRE(more.size() == 1);
    CHECK(more[0].temporal_layer == 0);
    enc.request_keyframe();
    more = onair::test::encode_pattern<C>(enc, tp, 9);
    REQUIRE(more.size() == 9);
    CHECK(more[0].keyframe);
    for (int i = 0; i < 9; ++i) {
        if (i > 0) CHECK_FALSE(more[static_cast<std::size_t>(i)].keyframe);
        check_three_layer_step(more[static_cast<std::size_t>(i)], i % 4);
    }
}

template <class C>
void check_two_layer_pattern() {
    typename C::encoder enc;
    REQUIRE_FALSE(enc.open(layered(2)));
    onair::source::test_pattern tp(320, 180, 30, onair::test::test_epoch);
    auto frames = onair::test::encode_pattern<C>(enc, tp, 11);
    enc.request_keyframe(); // frame 11 would be TL1
    const auto more = onair::test::encode_pattern<C>(enc, tp, 5);
    frames.insert(frames.end(), more.begin(), more.end());
    REQUIRE(frames.size() == 16);
    for (std::size_t i = 0; i < frames.size(); ++i) {
        INFO("frame " << i);
        const auto& e = frames[i];
        const std::size_t step = i < 11 ? i : i - 11;
        CHECK(e.keyframe == (i == 0 || i == 11));
        CHECK(e.temporal_layer == step % 2);
        CHECK(e.layer_sync == (step % 2 == 1));
        CHECK(e.non_reference == (step % 2 == 1));
    }
}

/// Decodes the frames of layers <= max_layer only: no errors, one picture per frame, and
/// each picture is the right source frame at full quality (a missing reference would
/// show as a wrong picture or a PSNR collapse long before a decode error).
template <class C>
void check_decode_up_to(const std::vector<video_frame>& src, const std::vector<encoded_frame>& frames, int max_layer,
                        int expected_pictures) {
    INFO("layers 0.." << max_layer);
    typename C::decoder dec;
    REQUIRE_FALSE(dec.open());
    int pictures = 0, errors = 0;
    double min_psnr = 1e9;
    for (std::size_t i = 0; i < frames.size(); ++i) {
        if (frames[i].temporal_layer > max_layer) continue;
        video_frame out;
        if (dec.decode(frames[i], out)) {
            ++errors;
            continue;
        }
        ++pictures;
        const auto bc = onair::source::read_barcode(out);
        REQUIRE(bc.has_value());
        CHECK(bc->frame_number == static_cast<std::uint32_t>(i));
        const auto p = onair::psnr(src[i], out);
        REQUIRE(p.valid);
        min_psnr = std::min(min_psnr, p.all);
    }
    MESSAGE("layers 0.." << max_layer << ": " << pictures << " pictures, min PSNR " << min_psnr << " dB");
    CHECK(errors == 0);
    CHECK(pictures == expected_pictures);
    CHECK(min_psnr >= 30.0);
}

template <class C>
void check_layer_dropping_three() {
    typename C::encoder enc;
    REQUIRE_FALSE(enc.open(layered(3, 800)));
    onair::source::test_pattern tp(320, 180, 30, onair::test::test_epoch);
    std::vector<video_frame> src;
    std::vector<encoded_frame> frames;
    encode_keep<C>(enc, tp, 30, src, frames); // frames 0..29; 30 would be a TL1 step
    enc.request_keyframe();
    encode_keep<C>(enc, tp, 30, src, frames); // keyframe at 30, the pattern again from there
    int counts[3] = {};
    for (const auto& e : frames) ++counts[e.temporal_layer];
    CHECK(counts[0] == 8 + 8); // 0,4,...,28 and 30,34,...,58
    CHECK(counts[1] == 7 + 7);
    CHECK(counts[2] == 15 + 15);
    check_decode_up_to<C>(src, frames, 0, counts[0]);
    check_decode_up_to<C>(src, frames, 1, counts[0] + counts[1]);
    check_decode_up_to<C>(src, frames, 2, 60);
}

template <class C>
void check_layer_dropping_two() {
    typename C::encoder enc;
    REQUIRE_FALSE(enc.open(layered(2, 800)));
    onair::source::test_pattern tp(320, 180, 30, onair::test::test_epoch);
    std::vector<video_frame> src;
    std::vector<encoded_frame> frames;
    encode_keep<C>(enc, tp, 40, src, frames);
    check_decode_up_to<C>(src, frames, 0, 20);
    check_decode_up_to<C>(src, frames, 1, 40);
}

/// 3 s at 600 kbps: libvpx's per-layer rate control gives TL0 its share of the bytes, and
/// set_bitrate() moves the whole split.
template <class C>
void check_bitrate_split() {
    typename C::encoder enc;
    REQUIRE_FALSE(enc.open(layered(3, 600, 640, 360)));
    onair::source::test_pattern tp(640, 360, 30, onair::test::test_epoch);
    auto share = [](const std::vector<encoded_frame>& v, std::size_t from, double& kbps) {
        std::size_t all = 0, base = 0;
        for (std::size_t i = from; i < v.size(); ++i) {
            all += v[i].data.size();
            if (v[i].temporal_layer == 0) base += v[i].data.size();
        }
        kbps = static_cast<double>(all) * 8.0 / (static_cast<double>(v.size() - from) / 30.0) / 1000.0;
        return static_cast<double>(base) / static_cast<double>(all);
    };
    const auto frames = onair::test::encode_pattern<C>(enc, tp, 90);
    REQUIRE(frames.size() == 90);
    double kbps = 0;
    const double tl0 = share(frames, 0, kbps);
    MESSAGE("600 kbps, 3 layers: TL0 " << tl0 * 100 << " % of " << kbps << " kbps");
    CHECK(tl0 > 0.25);
    CHECK(tl0 < 0.70);
    CHECK(kbps > 300.0);
    CHECK(kbps < 900.0);

    enc.set_bitrate(200);
    const auto low = onair::test::encode_pattern<C>(enc, tp, 60);
    REQUIRE(low.size() == 60);
    double low_kbps = 0;
    const double low_tl0 = share(low, 30, low_kbps); // the last second
    MESSAGE("200 kbps, 3 layers: TL0 " << low_tl0 * 100 << " % of " << low_kbps << " kbps");
    CHECK(enc.bitrate_kbps() == 200);
    CHECK(low_kbps < 400.0);
    CHECK(low_kbps * 1.5 < kbps);
    CHECK(low_tl0 > 0.25);
    CHECK(low_tl0 < 0.70);
    for (std::size_t i = 0; i < low.size(); ++i) CHECK(low[i].temporal_layer == three_layer_of(90 + i));
}

/// Periodic keyframes land on TL0 and restart the pattern.
template <class C>
void check_periodic_keyframes_layered() {
    typename C::encoder enc;
    auto cfg = layered(3);
    cfg.fps = 10;
    cfg.keyframe_interval_s = 1; // every 10 frames
    REQUIRE_FALSE(enc.open(cfg));
    onair::source::test_pattern tp(320, 180, 10, onair::test::test_epoch);
    const auto frames = onair::test::encode_pattern<C>(enc, tp, 31);
    REQUIRE(frames.size() == 31);
    for (std::size_t i = 0; i < frames.size(); ++i) {
        INFO("frame " << i);
        CHECK(frames[i].keyframe == (i % 10 == 0));
        check_three_layer_step(frames[i], static_cast<int>(i % 10 % 4));
    }
}

template <class C>
void check_layer_count_checked() {
    typename C::encoder enc;
    for (int bad : {0, 4, -1, 5}) {
        INFO("temporal_layers " << bad);
        CHECK(enc.open(layered(bad)) == onair::errc::codec_init_failed);
        CHECK_FALSE(enc.is_open());
    }
    for (int good : {1, 2, 3}) {
        INFO("temporal_layers " << good);
        CHECK_FALSE(enc.open(layered(good)));
        CHECK(enc.is_open());
    }
}

/// One layer: every frame is TL0 and carries no layer flags.
template <class C>
void check_single_layer() {
    typename C::encoder enc;
    REQUIRE_FALSE(enc.open(layered(1)));
    onair::source::test_pattern tp(320, 180, 30, onair::test::test_epoch);
    for (const auto& e : onair::test::encode_pattern<C>(enc, tp, 8)) {
        CHECK(e.temporal_layer == 0);
        CHECK_FALSE(e.layer_sync);
        CHECK_FALSE(e.non_reference);
    }
}

/// A moved encoder keeps its place in the pattern.
template <class C>
void check_move_keeps_pattern() {
    typename C::encoder enc;
    REQUIRE_FALSE(enc.open(layered(3)));
    onair::source::test_pattern tp(320, 180, 30, onair::test::test_epoch);
    (void)onair::test::encode_pattern<C>(enc, tp, 3);
    typename C::encoder moved = std::move(enc);
    const auto more = onair::test::encode_pattern<C>(moved, tp, 4);
    REQUIRE(more.size() == 4);
    for (std::size_t i = 0; i < more.size(); ++i) check_three_layer_step(more[i], static_cast<int>((3 + i) % 4));
}

struct sent_packet {
    std::vector<std::uint8_t> payload; ///< descriptor and data
    bool marker = false;
};

template <class Packetizer>
std::vector<sent_packet> packetize(Packetizer& pk, const encoded_frame& f, std::size_t max_payload) {
    std::vector<sent_packet> out;
    REQUIRE_FALSE(pk.packetize(f, max_payload, [&](onair::rtp::bytes_view d, onair::rtp::bytes_view data, bool marker) {
        sent_packet p;
        p.payload.assign(d.begin(), d.end());
        p.payload.insert(p.payload.end(), data.begin(), data.end());
        p.marker = marker;
        out.push_back(std::move(p));
    }));
    return out;
}

/// Real encoder output through the packetizer: TID, Y and N in every packet, TL0PICIDX +1 per
/// TL0 frame.
void check_vp8_descriptors(int layers) {
    INFO(layers << " layers");
    vp8::encoder enc;
    REQUIRE_FALSE(enc.open(layered(layers, 800, 640, 360)));
    onair::source::test_pattern tp(640, 360, 30, onair::test::test_epoch);
    const auto frames = onair::test::encode_pattern<vp8>(enc, tp, 16);
    REQUIRE(frames.size() == 16);
    onair::rtp::vp8_payload::packetizer pk(100, 250);
    std::uint8_t expect_tl0 = 249;
    bool multi_packet = false;
    for (std::size_t i = 0; i < frames.size(); ++i) {
        INFO("frame " << i);
        const auto& f = frames[i];
        if (f.temporal_layer == 0) ++expect_tl0;
        const auto pkts = packetize(pk, f, 300);
        REQUIRE_FALSE(pkts.empty());
        multi_packet = multi_packet || pkts.size() > 1;
        for (std::size_t k = 0; k < pkts.size(); ++k) {
            onair::rtp::vp8_descriptor d;
            REQUIRE_FALSE(onair::rtp::parse_vp8_descriptor(pkts[k].payload, d));
            CHECK(d.start == (k == 0));
            CHECK(d.has_tid);
            CHECK(d.tid == f.temporal_layer);
            CHECK(d.layer_sync == f.layer_sync);
            CHECK(d.non_reference == f.non_reference);
            CHECK(d.has_tl0picidx);
            CHECK(d.tl0picidx == expect_tl0);
            CHECK(d.picture_id == 100 + i);
            CHECK(pkts[k].marker == (k + 1 == pkts.size()));
        }
        if (layers == 3) {
            check_three_layer_step(f, static_cast<int>(i % 4));
        } else {
            CHECK(f.temporal_layer == i % 2);
        }
    }
    CHECK(multi_packet);
    CHECK(expect_tl0 == static_cast<std::uint8_t>(250 + (layers == 3 ? 4 : 8) - 1)); // 2 layers wrap past 255
}

void check_vp9_descriptors() {
    vp9::encoder enc;
    REQUIRE_FALSE(enc.open(layered(3, 800, 640, 360)));
    onair::source::test_pattern tp(640, 360, 30, onair::test::test_epoch);
    const auto frames = onair::test::encode_pattern<vp9>(enc, tp, 16);
    REQUIRE(frames.size() == 16);
    onair::rtp::vp9_payload::packetizer pk(7, 0);
    std::uint8_t expect_tl0 = 255;
    for (std::size_t i = 0; i < frames.size(); ++i) {
        INFO("frame " << i);
        const auto& f = frames[i];
        check_three_layer_step(f, static_cast<int>(i % 4));
        if (f.temporal_layer == 0) ++expect_tl0;
        const auto pkts = packetize(pk, f, 300);
        REQUIRE_FALSE(pkts.empty());
        for (std::size_t k = 0; k < pkts.size(); ++k) {
            onair::rtp::vp9_descriptor d;
            REQUIRE_FALSE(onair::rtp::parse_vp9_descriptor(pkts[k].payload, d));
            CHECK(d.begin == (k == 0));
            CHECK(d.has_layer_indices);
            CHECK(d.tid == f.temporal_layer);
            CHECK(d.switching_up == f.layer_sync);
            CHECK(d.tl0picidx == expect_tl0);
            CHECK(d.inter_picture == !f.keyframe);
        }
        const onair::rtp::vp9_descriptor parsed = [&] {
            onair::rtp::vp9_descriptor d;
            (void)onair::rtp::parse_vp9_descriptor(pkts[0].payload, d);
            return d;
        }();
        CHECK(onair::rtp::dependency_of(parsed).layer_sync == f.layer_sync);
    }
    CHECK(expect_tl0 == 3);
}

} // namespace

TEST_SUITE("codec.temporal_layers") {
    TEST_CASE("vp8 3 layers: pattern 0,2,1,2, sync and non-reference flags, keyframe restarts it") {
        check_three_layer_pattern<vp8>();
    }
    TEST_CASE("vp8 2 layers: pattern 0,1, every TL1 frame a non-reference sync frame") {
        check_two_layer_pattern<vp8>();
    }
    TEST_CASE("vp8 3 layers: TL0 only, TL0+TL1 and all layers decode cleanly") { check_layer_dropping_three<vp8>(); }
    TEST_CASE("vp8 2 layers: TL0 only and both layers decode cleanly") { check_layer_dropping_two<vp8>(); }
    TEST_CASE("vp8 3 layers at 600 kbps: TL0 gets its share; set_bitrate moves the split") {
        check_bitrate_split<vp8>();
    }
    TEST_CASE("vp8 periodic keyframes with layers land on TL0") { check_periodic_keyframes_layered<vp8>(); }
    TEST_CASE("vp8 temporal_layers outside 1..3 is refused") { check_layer_count_checked<vp8>(); }
    TEST_CASE("vp8 one layer: no layer flags") { check_single_layer<vp8>(); }
    TEST_CASE("vp8 a moved encoder keeps its place in the pattern") { check_move_keeps_pattern<vp8>(); }
    TEST_CASE("vp8 packetizer: TID, Y, N and TL0PICIDX from the encoder's frames") {
        check_vp8_descriptors(3);
        check_vp8_descriptors(2);
    }

    TEST_CASE("vp9 3 layers: pattern 0,2,1,2, sync and non-reference flags, keyframe restarts it") {
        check_three_layer_pattern<vp9>();
    }
    TEST_CASE("vp9 2 layers: pattern 0,1, every TL1 frame a non-reference sync frame") {
        check_two_layer_pattern<vp9>();
    }
    TEST_CASE("vp9 3 layers: TL0 only, TL0+TL1 and all layers decode cleanly") { check_layer_dropping_three<vp9>(); }
    TEST_CASE("vp9 2 layers: TL0 only and both layers decode cleanly") { check_layer_dropping_two<vp9>(); }
    TEST_CASE("vp9 3 layers at 600 kbps: TL0 gets its share; set_bitrate moves the split") {
        check_bitrate_split<vp9>();
    }
    TEST_CASE("vp9 periodic keyframes with layers land on TL0") { check_periodic_keyframes_layered<vp9>(); }
    TEST_CASE("vp9 temporal_layers outside 1..3 is refused") { check_layer_count_checked<vp9>(); }
    TEST_CASE("vp9 one layer: no layer flags") { check_single_layer<vp9>(); }
    TEST_CASE("vp9 a moved encoder keeps its place in the pattern") { check_move_keeps_pattern<vp9>(); }
    TEST_CASE("vp9 packetizer: TID, U and TL0PICIDX from the encoder's frames") { check_vp9_descriptors(); }
}
