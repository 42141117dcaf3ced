// relay::layer_selector on a VP9 stream with spatial layers in one SSRC (SVC): packets of
// the layers above the target dropped without holes, the marker on the last packet kept of
// each picture, down-switches at the next picture and up-switches at a key picture only,
// late packets of a dropped layer filled, and what a viewer reassembles from the output.
#include <onair/relay/layer_selector.hpp>

#include "support/rtp_builders.hpp"

#include <onair/rtp/packet.hpp>
#include <onair/rtp/vp9.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

using namespace onair;
using relay::layer_action;
using relay::layer_decision;
using relay::layer_selector;

namespace {

constexpr std::uint32_t in_ssrc = 0x2000;
constexpr std::uint32_t out_ssrc = 0x5eed0002;

struct svc_packet {
    std::vector<std::uint8_t> bytes;
    std::uint8_t sid = 0;
    std::size_t picture = 0;
};

/// A publisher of three spatial layers, each layer frame two packets (as onair's packetizer
/// writes them).
struct svc_sender {
    rtp::vp9_payload::packetizer pk{0x0100, 5};
    std::uint16_t seq = 60000; // across the wrap
    std::uint32_t ts = 90000;
    std::size_t pictures = 0;
    std::vector<std::vector<std::uint8_t>> layer_data; ///< per picture and layer: what was sent

    std::vector<svc_packet> picture(bool key, std::uint8_t tid = 0) {
        std::vector<svc_packet> out;
        for (std::uint8_t s = 0; s < 3; ++s) {
            encoded_frame f;
            f.keyframe = key;
            f.temporal_layer = key ? 0 : tid;
            f.rtp_timestamp = ts;
            f.spatial_layer = s;
            f.spatial_layers = 3;
            f.inter_layer = key && s > 0;
            f.end_of_picture = s == 2;
            for (std::size_t k = 0; k < 3; ++k) {
                f.layer_width[k] = static_cast<std::uint16_t>(160 << k);
                f.layer_height[k] = static_cast<std::uint16_t>(90 << k);
            }
            for (std::size_t i = 0; i < 1800; ++i) f.data.push_back(static_cast<std::uint8_t>(pictures * 31 + s * 7 + i));
            layer_data.push_back(f.data);
            const auto pkts = onair_test::packetize_with(pk, f, in_ssrc, seq, 96, std::nullopt, 1100);
            REQUIRE(pkts.size() == 2);
            for (const auto& p : pkts) out.push_back({p, s, pictures});
        }
        ++pictures;
        ts += 3000;
        return out;
    }
};

struct out_packet {
    layer_decision d;
    std::vector<std::uint8_t> wire; ///< what the subscriber receives
    std::uint8_t sid = 0;
    std::size_t picture = 0;
};

/// Feeds packets to a selector, 0.5 ms apart, and builds what the subscriber receives.
struct svc_feeder {
    layer_selector sel{out_ssrc, 1, 3};
    std::int64_t now = 1'000'000;
    std::vector<out_packet> out;

    layer_decision push(const svc_packet& pk) {
        now += 500;
        rtp::packet_view p;
        REQUIRE_FALSE(rtp::parse(pk.bytes, p));
        rtp::vp9_descriptor d;
        REQUIRE_FALSE(rtp::parse_vp9_descriptor(p.payload, d));
        const relay::layer_info info = relay::layer_info_of(0, d);
        CHECK(info.svc_layer == pk.sid);
        const layer_decision dec = sel.on_packet(p, info, now);
        if (dec.action == layer_action::forward) {
            std::array<std::uint8_t, 64> head{};
            const std::size_t n = relay::write_rewritten_prefix(p, relay::layout_of(d), out_ssrc, dec, head);
            REQUIRE(n > 0);
            std::vector<std::uint8_t> wire(head.begin(), head.begin() + static_cast<std::ptrdiff_t>(n));
            wire.insert(wire.end(), pk.bytes.begin() + static_cast<std::ptrdiff_t>(n), pk.bytes.end());
            out.push_back({dec, std::move(wire), pk.sid, pk.picture});
        } else if (dec.action == layer_action::fill) {
            std::array<std::uint8_t, 64> buf{};
            const std::size_t n = relay::write_fill_packet(p, out_ssrc, dec, buf);
            REQUIRE(n > 0);
            out.push_back({dec, {buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n)}, pk.sid, pk.picture});
        }
        return dec;
    }
    void push(const std::vector<svc_packet>& v) {
        for (const auto& pk : v) push(pk);
    }
};

/// Output numbers without holes, one SSRC, and a marker on exactly the last packet of each
/// picture (the packets of a picture are consecutive here).
void check_stream(const std::vector<out_packet>& out) {
    REQUIRE_FALSE(out.empty());
    for (std::size_t i = 0; i < out.size(); ++i) {
        rtp::packet_view p;
        REQUIRE_FALSE(rtp::parse(out[i].wire, p));
        CHECK(p.ssrc == out_ssrc);
        if (i > 0) CHECK(out[i].d.sequence == static_cast<std::uint16_t>(out[i - 1].d.sequence + 1));
        const bool last_of_picture = i + 1 == out.size() || out[i + 1].picture != out[i].picture;
        if (out[i].d.action == layer_action::forward) CHECK(p.marker == last_of_picture);
    }
}

/// What a viewer assembles from the output: one frame per picture with the layers up to
/// `top(picture)`, in order.
template <class Top>
void check_assembled(const std::vector<out_packet>& out, const svc_sender& s, std::size_t first, std::size_t last, Top top) {
    rtp::vp9_payload::depacketizer dp;
    std::vector<encoded_frame> frames;
    for (const auto& o : out) {
        rtp::packet_view p;
        REQUIRE_FALSE(rtp::parse(o.wire, p));
        if (p.payload.empty()) continue; // a fill
        dp.push(p, media_kind::video, [&](encoded_frame&& f) { frames.push_back(std::move(f)); });
    }
    REQUIRE(frames.size() == last - first + 1);
    for (std::size_t i = first; i <= last; ++i) {
        INFO("picture " << i);
        std::vector<std::uint8_t> want;
        for (std::size_t sid = 0; sid <= top(i); ++sid) {
            const auto& l = s.layer_data[i * 3 + sid];
            want.insert(want.end(), l.begin(), l.end());
        }
        CHECK(frames[i - first].data == want);
    }
}

} // namespace

TEST_SUITE("relay.svc_selector") {
    TEST_CASE("spatial layers above the target are dropped: continuous numbers, the marker on the kept layer's end") {
        svc_sender s;
        svc_feeder f;
        f.sel.set_target(0, 2);
        f.sel.set_svc_target(1);
        CHECK(f.sel.wants_keyframe() == std::optional<std::uint8_t>(0)); // not started
        f.push(s.picture(false)); // before any key frame: nothing
        CHECK(f.out.empty());
        f.push(s.picture(true));
        static constexpr std::uint8_t tids[] = {2, 1, 2, 0, 2, 1, 2};
        for (const auto t : tids) f.push(s.picture(false, t));
        CHECK(f.sel.svc_layer() == 1);
        CHECK_FALSE(f.sel.wants_keyframe());
        REQUIRE(f.out.size() == 8 * 4); // layers 0 and 1, two packets each
        for (const auto& o : f.out) {
            CHECK(o.d.action == layer_action::forward);
            CHECK(o.sid <= 1);
        }
        check_stream(f.out);
        check_assembled(f.out, s, 1, 8, [](std::size_t) { return std::size_t{1}; });
        CHECK(f.sel.stats().spatial_dropped == 8 * 2);
        // A NACK's resend goes out with the marker it had.
        const auto h = f.sel.history(f.out[3].d.sequence);
        REQUIRE(h);
        CHECK(h->decision.marker);
        CHECK_FALSE(f.sel.history(f.out[2].d.sequence)->decision.marker);

        SUBCASE("the top target: every layer, the publisher's markers") {
            svc_feeder all;
            all.sel.set_svc_target(2);
            svc_sender s2;
            all.push(s2.picture(true));
            for (int i = 0; i < 4; ++i) all.push(s2.picture(false));
            REQUIRE(all.out.size() == 5 * 6);
            check_stream(all.out);
            check_assembled(all.out, s2, 0, 4, [](std::size_t) { return std::size_t{2}; });
            CHECK(all.sel.stats().spatial_dropped == 0);
        }
    }

    TEST_CASE("down at the next picture, up only at a key picture (asked for)") {
        svc_sender s;
        svc_feeder f;
        f.sel.set_svc_target(2);
        f.push(s.picture(true)); // picture 0: all three
        auto p1 = s.picture(false);
        // Down to layer 0 halfway through picture 1: picture 1 keeps its layers.
        for (std::size_t i = 0; i < p1.size(); ++i) {
            if (i == 3) f.sel.set_svc_target(0);
            f.push(p1[i]);
        }
        CHECK(f.sel.svc_layer() == 2);
        f.push(s.picture(false)); // picture 2: layer 0 only
        CHECK(f.sel.svc_layer() == 0);
        f.push(s.picture(false));
        // Up to layer 2: delta pictures cannot start it.
        f.sel.set_svc_target(2);
        CHECK(f.sel.wants_keyframe() == std::optional<std::uint8_t>(0));
        f.push(s.picture(false)); // picture 4
        f.push(s.picture(false)); // picture 5
        CHECK(f.sel.svc_layer() == 0);
        f.push(s.picture(true)); // picture 6
        CHECK(f.sel.svc_layer() == 2);
        CHECK_FALSE(f.sel.wants_keyframe());
        f.push(s.picture(false)); // picture 7
        check_stream(f.out);
        const auto top = [](std::size_t i) { return i <= 1 || i >= 6 ? std::size_t{2} : std::size_t{0}; };
        check_assembled(f.out, s, 0, 7, top);
        CHECK(f.sel.stats().svc_switches == 2);
    }

    TEST_CASE("a lost packet's number is kept: its late arrival is forwarded, or filled when its layer is dropped") {
        svc_sender s;
        svc_feeder f;
        f.sel.set_svc_target(1);
        f.push(s.picture(true));
        auto p1 = s.picture(false);
        // Picture 1 arrives with its layer-0 second packet and layer-2 first packet late.
        const svc_packet late0 = p1[1], late2 = p1[4];
        for (std::size_t i = 0; i < p1.size(); ++i)
            if (i != 1 && i != 4) f.push(p1[i]);
        f.push(s.picture(false));
        CHECK(f.push(late0).action == layer_action::forward);
        CHECK(f.push(late2).action == layer_action::fill);
        CHECK(f.sel.stats().filled == 1);
        // Every output number from the first to the last was given exactly once.
        std::vector<std::uint16_t> seqs;
        for (const auto& o : f.out) seqs.push_back(o.d.sequence);
        std::sort(seqs.begin(), seqs.end(), [&](std::uint16_t a, std::uint16_t b) { return rtp::seq_newer(b, a); });
        for (std::size_t i = 1; i < seqs.size(); ++i) CHECK(seqs[i] == static_cast<std::uint16_t>(seqs[i - 1] + 1));
        // In arrival order: the viewer still gets pictures 0-2 whole at layers 0-1.
        rtp::vp9_payload::depacketizer dp(rtp::assembler_limits{.keep_incomplete = true});
        int frames = 0;
        for (const auto& o : f.out) {
            rtp::packet_view p;
            REQUIRE_FALSE(rtp::parse(o.wire, p));
            if (!p.payload.empty()) dp.push(p, media_kind::video, [&](encoded_frame&&) { ++frames; });
        }
        CHECK(frames == 3);
    }

    TEST_CASE("a stream without spatial layers is unchanged by the spatial target") {
        rtp::vp9_payload::packetizer pk;
        std::uint16_t seq = 10;
        svc_feeder f;
        f.sel.set_svc_target(0);
        for (int i = 0; i < 5; ++i) {
            auto frame = onair_test::fake_vp8_frame(i == 0, 3000u * static_cast<std::uint32_t>(i), 2500);
            for (const auto& b : onair_test::packetize_with(pk, frame, in_ssrc, seq)) {
                rtp::packet_view p;
                REQUIRE_FALSE(rtp::parse(b, p));
                rtp::vp9_descriptor d;
                REQUIRE_FALSE(rtp::parse_vp9_descriptor(p.payload, d));
                const auto dec = f.sel.on_packet(p, relay::layer_info_of(0, d), 1000 * i);
                CHECK(dec.action == layer_action::forward);
                CHECK(dec.marker == p.marker);
                CHECK(dec.sequence == p.sequence);
            }
        }
        CHECK(f.sel.stats().spatial_dropped == 0);
    }
}
