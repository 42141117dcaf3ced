#include <onair/relay/layer_selector.hpp>

#include "support/rtp_builders.hpp"

#include <onair/rtp/packet.hpp>
#include <onair/rtp/sequence.hpp>
#include <onair/rtp/vp8.hpp>
#include <onair/rtp/vp9.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <random>
#include <set>
#include <vector>

using namespace onair;
using relay::layer_action;
using relay::layer_decision;
using relay::layer_selector;

namespace {

constexpr std::uint32_t out_ssrc = 0x5eed0001;

/// One VP8 packet as onair's packetizer writes it (X=1, I=1 L=1 T=1 descriptor).
struct vp8_spec {
    std::uint16_t seq = 0;
    std::uint32_t ts = 0;
    std::uint32_t ssrc = 0x1000;
    std::uint16_t picture_id = 0;
    bool short_picture_id = false;
    std::uint8_t tl0picidx = 0;
    std::uint8_t tid = 0;
    bool sync = false;
    bool start = true;
    bool key = false;
    bool marker = true;
    bool extensions = false; ///< transport-wide sequence and absolute capture time
    std::uint16_t transport_seq = 0;
    std::size_t data_size = 40;
    bool padding_only = false;
};

struct packet {
    std::vector<std::uint8_t> bytes;
    std::uint8_t spatial = 0;
};

std::vector<std::uint8_t> make_vp8(const vp8_spec& s) {
    rtp::header h;
    h.marker = s.marker && !s.padding_only;
    h.payload_type = 96;
    h.sequence = s.seq;
    h.timestamp = s.ts;
    h.ssrc = s.ssrc;
    if (s.extensions) {
        h.transport_sequence = s.transport_seq;
        h.abs_capture_time = 0x0123456789abcdefull;
    }
    std::vector<std::uint8_t> payload;
    if (s.padding_only) {
        std::vector<std::uint8_t> out(rtp::header_size(h) + 4);
        const std::size_t n = rtp::write_header(h, out);
        REQUIRE(n > 0);
        out[0] |= 0x20;
        out[n + 3] = 4;
        return out;
    }
    payload.push_back(static_cast<std::uint8_t>(0x80 | (s.start ? 0x10 : 0))); // X, S, PID=0
    payload.push_back(0xe0);                                                       // I L T
    if (s.short_picture_id) {
        payload.push_back(static_cast<std::uint8_t>(s.picture_id & 0x7f));
    } else {
        payload.push_back(static_cast<std::uint8_t>(0x80 | ((s.picture_id >> 8) & 0x7f)));
        payload.push_back(static_cast<std::uint8_t>(s.picture_id));
    }
    payload.push_back(s.tl0picidx);
    payload.push_back(static_cast<std::uint8_t>((s.tid & 3) << 6 | (s.sync ? 0x20 : 0)));
    for (std::size_t i = 0; i < s.data_size; ++i) payload.push_back(static_cast<std::uint8_t>(s.seq * 7 + i * 13));
    payload[payload.size() - s.data_size] = s.start && s.key ? 0x10 : 0x11; // VP8 P bit: 0 on a key frame
    std::vector<std::uint8_t> out(rtp::header_size(h) + payload.size());
    REQUIRE(rtp::serialize(h, payload, out) == out.size());
    return out;
}

/// One simulcast encoding as a sender produces it: frames of a few packets.
struct encoding {
    std::uint8_t spatial = 0;
    std::uint32_t ssrc = 0x1000;
    std::uint16_t seq = 0;
    std::uint32_t ts = 0;
    std::uint16_t picture_id = 0;
    std::uint8_t tl0picidx = 0;
    bool short_picture_id = false;
    std::uint32_t ts_step = 3000;

    std::vector<packet> frame(std::uint8_t tid, bool key = false, std::size_t packets = 2, bool sync = false) {
        if (tid == 0) ++tl0picidx;
        std::vector<packet> out;
        for (std::size_t i = 0; i < packets; ++i) {
            vp8_spec s;
            s.seq = seq++;
            s.ts = ts;
            s.ssrc = ssrc;
            s.picture_id = picture_id;
            s.short_picture_id = short_picture_id;
            s.tl0picidx = tl0picidx;
            s.tid = tid;
            s.sync = sync;
            s.start = i == 0;
            s.key = key;
            s.marker = i + 1 == packets;
            out.push_back({make_vp8(s), spatial});
        }
        picture_id = static_cast<std::uint16_t>((picture_id + 1) & 0x7fff);
        ts += ts_step;
        return out;
    }
    packet padding() {
        vp8_spec s;
        s.seq = seq++;
        s.ts = ts;
        s.ssrc = ssrc;
        s.padding_only = true;
        return {make_vp8(s), spatial};
    }
};

struct parsed {
    rtp::packet_view view;
    rtp::vp8_descriptor desc;
    relay::layer_info info;
};

parsed parse_packet(const packet& pk) {
    parsed p;
    REQUIRE_FALSE(rtp::parse(pk.bytes, p.view));
    if (!p.view.payload.empty()) {
        REQUIRE_FALSE(rtp::parse_vp8_descriptor(p.view.payload, p.desc));
        p.info = relay::layer_info_of(pk.spatial, p.desc, p.view.payload);
    }
    p.info.spatial = pk.spatial;
    return p;
}

/// What went out (forwards and fills), with what it came from.
struct sent {
    layer_decision d;
    std::uint8_t spatial = 0;
    std::uint16_t in_seq = 0;
    std::uint32_t in_ts = 0;
    std::uint16_t in_pid = 0;
    std::uint8_t in_tl0 = 0;
    std::uint8_t tid = 0;
    std::int64_t at = 0;
};

/// Feeds packets to a selector, 0.5 ms apart, and records what it sends.
struct feeder {
    explicit feeder(layer_selector& s) : sel(s) {}

    layer_selector& sel;
    std::int64_t now = 1'000'000;
    std::vector<sent> out;

    layer_decision push(const packet& pk) {
        now += 500;
        const parsed p = parse_packet(pk);
        const layer_decision d = sel.on_packet(p.view, p.info, now);
        if (d.action != layer_action::drop)
            out.push_back({d, pk.spatial, p.view.sequence, p.view.timestamp, p.info.picture_id, p.info.tl0picidx,
                           p.info.temporal, now});
        return d;
    }
    /// Pushes all; returns how many were forwarded.
    std::size_t push(const std::vector<packet>& v) {
        std::size_t n = 0;
        for (const auto& pk : v) n += push(pk).action == layer_action::forward;
        return n;
    }
    std::vector<sent> forwards() const {
        std::vector<sent> f;
        for (const auto& s : out)
            if (s.d.action == layer_action::forward) f.push_back(s);
        return f;
    }
};

/// The forwarded packets, in order and without reordering, form one continuous stream:
/// sequence numbers one apart, picture ids one apart from frame to frame, timestamps
/// increasing from frame to frame, TL0PICIDX with a constant offset per encoding and one
/// past the last at a switch.
void check_continuous(const std::vector<sent>& f) {
    for (std::size_t i = 1; i < f.size(); ++i) {
        const sent& a = f[i - 1];
        const sent& b = f[i];
        CAPTURE(i);
        CHECK(b.d.sequence == static_cast<std::uint16_t>(a.d.sequence + 1));
        if (a.spatial == b.spatial && a.in_ts == b.in_ts) {
            CHECK(b.d.timestamp == a.d.timestamp);
            CHECK(b.d.picture_id == a.d.picture_id);
            CHECK(b.d.tl0picidx == a.d.tl0picidx);
        } else {
            CHECK(rtp::ts_newer(b.d.timestamp, a.d.timestamp));
            CHECK(b.d.picture_id == ((a.d.picture_id + 1) & 0x7fff));
        }
        if (a.spatial == b.spatial)
            CHECK(static_cast<std::uint8_t>(b.d.tl0picidx - b.in_tl0) == static_cast<std::uint8_t>(a.d.tl0picidx - a.in_tl0));
        else
            CHECK(b.d.tl0picidx == static_cast<std::uint8_t>(a.d.tl0picidx + 1));
    }
}

} // namespace

TEST_SUITE_BEGIN("relay.layer_selector");

TEST_CASE("layer_selector: nothing goes out before a key frame of the target encoding") {
    layer_selector sel(out_ssrc, 3, 3);
    sel.set_target(1, 2);
    feeder f(sel);
    CHECK_FALSE(sel.started());
    CHECK(sel.wants_keyframe() == std::optional<std::uint8_t>(1));

    encoding e0{0, 0x100, 1000, 90000, 10, 5};
    encoding e1{1, 0x101, 5000, 180000, 300, 50};
    // Delta frames of the target and a key frame of another encoding: all dropped.
    CHECK(f.push(e1.frame(0)) == 0);
    CHECK(f.push(e1.frame(2)) == 0);
    CHECK(f.push(e0.frame(0, true)) == 0);
    CHECK(f.out.empty());
    CHECK(sel.stats().waiting == 6);
    CHECK(sel.wants_keyframe() == std::optional<std::uint8_t>(1));

    // A key frame whose first packet arrives after its second is not started on.
    auto broken = e1.frame(0, true, 3);
    CHECK(f.push(broken[1]).action == layer_action::drop);
    CHECK(f.push(broken[0]).action == layer_action::drop);
    CHECK(f.push(broken[2]).action == layer_action::drop);
    CHECK_FALSE(sel.started());

    // The next key frame starts the output; its packets after the first follow, a late one
    // in its own place.
    auto key = e1.frame(0, true, 3);
    const layer_decision k0 = f.push(key[0]);
    REQUIRE(k0.action == layer_action::forward);
    CHECK(sel.started());
    CHECK(sel.spatial() == 1);
    CHECK(sel.temporal() == 2);
    CHECK_FALSE(sel.wants_keyframe());
    const layer_decision k2 = f.push(key[2]);
    const layer_decision k1 = f.push(key[1]);
    CHECK(k2.action == layer_action::forward);
    CHECK(k1.action == layer_action::forward);
    CHECK(k1.sequence == static_cast<std::uint16_t>(k0.sequence + 1));
    CHECK(k2.sequence == static_cast<std::uint16_t>(k0.sequence + 2));
    CHECK(k1.timestamp == k0.timestamp);
    CHECK(k1.picture_id == k0.picture_id);
    // A packet from before the start point (the broken key frame) and the other encoding's
    // packets stay out.
    CHECK(f.push(broken[2]).action == layer_action::drop);
    CHECK(f.push(e0.frame(0)) == 0);
    CHECK(f.push(e1.frame(2)) == 2);
    CHECK(sel.stats().other_layer == 2);

    // reset(): waits for a key frame again; the output goes on where it was.
    const sent last = f.out.back();
    sel.reset();
    CHECK_FALSE(sel.started());
    CHECK(sel.wants_keyframe() == std::optional<std::uint8_t>(1));
    CHECK(f.push(e1.frame(1)) == 0);
    CHECK(f.push(e1.frame(0, true)) == 2);
    const sent again = f.out[f.out.size() - 2];
    CHECK(again.d.sequence == static_cast<std::uint16_t>(last.d.sequence + 1));
    CHECK(rtp::ts_newer(again.d.timestamp, last.d.timestamp));
    CHECK(again.d.picture_id == last.d.picture_id + 1);
    CHECK(again.d.tl0picidx == static_cast<std::uint8_t>(last.d.tl0picidx + 1));
}

TEST_CASE("layer_selector: temporal layers go down at the next frame and up at a base layer or sync frame") {
    layer_selector sel(out_ssrc, 1, 3);
    sel.set_target(0, 2);
    feeder f(sel);
    encoding e{0, 0x200, 65530, 4294960000u, 0x7ffd, 254}; // every counter wraps during the test

    CHECK(f.push(e.frame(0, true)) == 2);
    CHECK(f.push(e.frame(2)) == 2);
    // Down to the base layer in the middle of a TID 1 frame: that frame is finished.
    auto t1 = e.frame(1);
    CHECK(f.push(t1[0]).action == layer_action::forward);
    sel.set_target(0, 0);
    CHECK(f.push(t1[1]).action == layer_action::forward);
    CHECK(sel.temporal() == 2);
    CHECK(f.push(e.frame(2)) == 0);
    CHECK(sel.temporal() == 0);
    CHECK(f.push(e.frame(0)) == 2);
    CHECK(f.push(e.frame(2)) == 0);

    // Up: frames of TID 1 and 2 without sync are no place to start; a base layer frame is.
    sel.set_target(0, 2);
    CHECK(f.push(e.frame(1)) == 0);
    CHECK(f.push(e.frame(2)) == 0);
    CHECK(sel.temporal() == 0);
    CHECK(f.push(e.frame(0)) == 2);
    CHECK(sel.temporal() == 2);
    CHECK(f.push(e.frame(2)) == 2);
    CHECK(f.push(e.frame(1)) == 2);

    // Up through sync frames: each allows its own layer.
    sel.set_target(0, 0);
    CHECK(f.push(e.frame(2)) == 0);
    CHECK(sel.temporal() == 0);
    sel.set_target(0, 2);
    CHECK(f.push(e.frame(2)) == 0);                    // no sync
    CHECK(f.push(e.frame(1, false, 2, true)) == 2);   // sync on TID 1
    CHECK(sel.temporal() == 1);
    CHECK(f.push(e.frame(2)) == 0);                    // TID 2 still waits for its sync
    CHECK(f.push(e.frame(1)) == 2);
    CHECK(f.push(e.frame(2, false, 2, true)) == 2);   // sync on TID 2
    CHECK(sel.temporal() == 2);
    CHECK(f.push(e.frame(2)) == 2);

    // A sync frame above the target does not count.
    sel.set_target(0, 0);
    CHECK(f.push(e.frame(0)) == 2);
    sel.set_target(0, 1);
    CHECK(f.push(e.frame(2, false, 2, true)) == 0);
    CHECK(sel.temporal() == 0);
    CHECK(f.push(e.frame(1, false, 2, true)) == 2);
    CHECK(sel.temporal() == 1);

    CHECK(sel.stats().temporal_switches == 7);
    const auto fw = f.forwards();
    check_continuous(fw);
    // The base layer index keeps its meaning: the output is the input's (no switch here).
    for (const auto& s : fw) CHECK(s.d.tl0picidx == s.in_tl0);
    for (const auto& s : fw) CHECK(s.d.timestamp == s.in_ts);
    CHECK(fw.front().d.sequence == 65530); // the first key frame keeps its numbers
    CHECK(fw.front().d.picture_id == 0x7ffd);
}

TEST_CASE("layer_selector: spatial switches wait for the new encoding's key frame and keep the output continuous") {
    layer_selector sel(out_ssrc, 3, 3);
    sel.set_target(0, 2);
    feeder f(sel);
    encoding e[3] = {
        {0, 0x300, 1000, 10000, 100, 10},
        {1, 0x301, 20000, 500000, 3000, 200},
        {2, 0x302, 65500, 4294900000u, 0x7ff0, 250},
    };
    const std::uint8_t pattern[4] = {0, 2, 1, 2};
    int frame_no = 0;
    // One frame of each encoding, lowest first; `key` marks the encodings sending a key frame.
    auto tick = [&](unsigned key_mask) {
        const std::uint8_t tid = pattern[frame_no++ % 4];
        std::size_t forwarded = 0;
        for (std::uint8_t s = 0; s < 3; ++s) {
            const bool key = (key_mask >> s) & 1u;
            forwarded += f.push(e[s].frame(key ? 0 : tid, key, 2 + s));
        }
        f.now += 30'000;
        return forwarded;
    };
    auto switch_point = [&](std::uint8_t to) {
        for (std::size_t i = 1; i < f.out.size(); ++i)
            if (f.out[i].spatial == to && f.out[i - 1].spatial != to) return i;
        return std::size_t{0};
    };

    CHECK(tick(0b111) == 2);
    CHECK(sel.spatial() == 0);
    for (int i = 0; i < 5; ++i) CHECK(tick(0) == 2);

    // Up to 2: layer 0 goes on until 2's key frame; 1's key frame does not do.
    sel.set_target(2, 2);
    CHECK(sel.wants_keyframe() == std::optional<std::uint8_t>(2));
    CHECK(tick(0) == 2);
    CHECK(tick(0b010) == 2);
    CHECK(sel.spatial() == 0);
    CHECK(sel.wants_keyframe() == std::optional<std::uint8_t>(2));
    CHECK(tick(0b100) == 2 + 4); // layer 0's frame, then 2's key frame
    CHECK(sel.spatial() == 2);
    CHECK_FALSE(sel.wants_keyframe());
    CHECK(sel.stats().spatial_switches == 1);
    for (int i = 0; i < 4; ++i) CHECK(tick(0) == 4);

    // The first timestamp after the switch: the last one plus the time that passed.
    const std::size_t up = switch_point(2);
    REQUIRE(up > 0);
    const sent& before = f.out[up - 1];
    const sent& after = f.out[up];
    CHECK(after.d.timestamp == before.d.timestamp + static_cast<std::uint32_t>((after.at - before.at) * 90 / 1000));

    // Down to 0.
    sel.set_target(0, 2);
    CHECK(sel.wants_keyframe() == std::optional<std::uint8_t>(0));
    CHECK(tick(0) == 4);
    CHECK(tick(0b001) == 2); // 0's key frame comes first in the tick: 2's frame is dropped
    CHECK(sel.spatial() == 0);
    for (int i = 0; i < 4; ++i) CHECK(tick(0) == 2);
    const std::size_t down = switch_point(0);
    REQUIRE(down > up);
    CHECK(f.out[down].d.timestamp ==
          f.out[down - 1].d.timestamp + static_cast<std::uint32_t>((f.out[down].at - f.out[down - 1].at) * 90 / 1000));

    // A target back on the current encoding ends the wait: 1's key frame is not taken.
    sel.set_target(1, 2);
    CHECK(sel.wants_keyframe() == std::optional<std::uint8_t>(1));
    CHECK(tick(0) == 2);
    sel.set_target(0, 2);
    CHECK_FALSE(sel.wants_keyframe());
    CHECK(tick(0b010) == 2);
    CHECK(sel.spatial() == 0);
    CHECK(sel.stats().spatial_switches == 2);

    const auto fw = f.forwards();
    REQUIRE(fw.size() == f.out.size()); // no fills here
    check_continuous(fw);
    // After each switch the key frame's packets, then that encoding only.
    CHECK(fw[up].spatial == 2);
    CHECK(fw[down].spatial == 0);
    for (std::size_t i = up; i < down; ++i) CHECK(fw[i].spatial == 2);
}

TEST_CASE("layer_selector: a switch lands on the same numbers whatever the time that passed") {
    // Time going backwards or standing still still moves the timestamp on by one tick.
    layer_selector sel(out_ssrc, 2, 1);
    encoding e0{0, 0x310, 10, 1000, 1, 1};
    encoding e1{1, 0x311, 20, 99999999, 2, 2};
    auto push = [&](const packet& pk, std::int64_t now) {
        const parsed p = parse_packet(pk);
        return sel.on_packet(p.view, p.info, now);
    };
    const layer_decision a = push(e0.frame(0, true, 1)[0], 5'000'000);
    sel.set_target(1, 0);
    const layer_decision b = push(e1.frame(0, true, 1)[0], 4'000'000);
    CHECK(b.action == layer_action::forward);
    CHECK(b.timestamp == a.timestamp + 1);
    CHECK(b.sequence == a.sequence + 1);
    CHECK(b.picture_id == a.picture_id + 1);
    CHECK(b.tl0picidx == a.tl0picidx + 1);
}

TEST_CASE("layer_selector: reordered packets keep their numbers; a dropped layer's kept number is filled") {
    layer_selector sel(out_ssrc, 1, 3);
    sel.set_target(0, 2);
    feeder f(sel);
    encoding e{0, 0x400, 300, 90000, 40, 7};
    REQUIRE(f.push(e.frame(0, true, 3)) == 3);
    const std::uint16_t base = f.out.back().d.sequence;

    // Inside a forwarded frame: the late packet gets the number of its place.
    auto a = e.frame(0, false, 3);
    CHECK(f.push(a[0]).sequence == base + 1);
    CHECK(f.push(a[2]).sequence == base + 3);
    const layer_decision a1 = f.push(a[1]);
    CHECK(a1.action == layer_action::forward);
    CHECK(a1.sequence == base + 2);

    // The first packet of a TID 2 frame arrives after the frame was dropped: fill.
    sel.set_target(0, 0);
    auto b = e.frame(2);
    auto c = e.frame(0);
    CHECK(f.push(b[1]).action == layer_action::drop);
    const layer_decision c0 = f.push(c[0]);
    CHECK(c0.sequence == base + 5); // base + 4 is kept for b[0]
    CHECK(f.push(c[1]).sequence == base + 6);
    const layer_decision b0 = f.push(b[0]);
    CHECK(b0.action == layer_action::fill);
    CHECK(b0.sequence == base + 4);
    CHECK(sel.stats().filled == 1);

    // Duplicates: of a fill, of a forward, of the newest.
    CHECK(f.push(b[0]).action == layer_action::drop);
    CHECK(f.push(a[1]).action == layer_action::drop);
    CHECK(f.push(c[1]).action == layer_action::drop);
    CHECK(sel.stats().duplicates == 3);

    // A whole frame of a dropped layer arriving after the next frame: both numbers filled;
    // its picture id stays kept (it could not be known to be dropped).
    auto d = e.frame(2);
    auto g = e.frame(0);
    const layer_decision g0 = f.push(g[0]);
    CHECK(g0.sequence == base + 9);
    CHECK(g0.picture_id == c0.picture_id + 2);
    CHECK(f.push(d[1]).action == layer_action::fill);
    CHECK(f.push(d[0]).action == layer_action::fill);
    CHECK(f.out[f.out.size() - 1].d.sequence == base + 7);
    CHECK(f.out[f.out.size() - 2].d.sequence == base + 8);
    CHECK(f.push(g[1]).sequence == base + 10);

    // Upstream padding holds numbers: dropped in order, filled when late.
    const packet pad1 = e.padding();
    const packet pad2 = e.padding();
    CHECK(f.push(pad1).action == layer_action::drop);
    CHECK(sel.stats().padding_dropped == 1);
    auto h = e.frame(0);
    CHECK(f.push(h[0]).sequence == base + 12); // base + 11 kept for pad2
    const layer_decision late_pad = f.push(pad2);
    CHECK(late_pad.action == layer_action::fill);
    CHECK(late_pad.sequence == base + 11);
    CHECK(f.push(h[1]).sequence == base + 13);

    // A frame missing while its layer was not allowed stays out when it comes late, even
    // though its layer is allowed by then (it may need frames the subscriber did not get).
    auto x = e.frame(2);
    sel.set_target(0, 2);
    auto y = e.frame(0);
    CHECK(f.push(y[0]).sequence == base + 16);
    CHECK(sel.temporal() == 2);
    CHECK(f.push(x[1]).action == layer_action::fill);
    CHECK(f.push(x[0]).action == layer_action::fill);
    CHECK(f.push(y[1]).sequence == base + 17);

    // Too old, or from before the start point: dropped.
    const auto stale_before = sel.stats().stale;
    encoding old = e;
    old.seq = static_cast<std::uint16_t>(e.seq - 1500);
    CHECK(f.push(old.frame(0, false, 1)) == 0);
    encoding early = e;
    early.seq = 299;
    CHECK(f.push(early.frame(0, false, 1)) == 0);
    CHECK(sel.stats().stale == stale_before + 2);

    // Every number was given once: forwards and fills cover the first .. the newest.
    std::set<std::uint16_t> numbers;
    for (const auto& s : f.out) CHECK(numbers.insert(s.d.sequence).second);
    CHECK(*numbers.begin() == base - 2);
    CHECK(numbers.size() == static_cast<std::size_t>(*numbers.rbegin() - *numbers.begin() + 1));
}

TEST_CASE("layer_selector: a late packet keeps its number while its encoding's window holds it: 256 numbers of the top encoding, 128 of a lower one") {
    for (const std::uint8_t spatial : {std::uint8_t{1}, std::uint8_t{0}}) {
        const std::size_t held = spatial == 1 ? layer_selector::window : layer_selector::lower_window;
        for (const bool in_window : {true, false}) {
            CAPTURE(spatial);
            CAPTURE(in_window);
            layer_selector sel(out_ssrc, 2, 1);
            sel.set_target(spatial, 0);
            feeder f(sel);
            encoding e{spatial, 0x600u + spatial, 100, 5000, 3, 1};
            REQUIRE(f.push(e.frame(0, true, 2)) == 2);
            auto fr = e.frame(0, false, 2); // fr[0] comes late
            const layer_decision kept_after = f.push(fr[1]);
            REQUIRE(kept_after.action == layer_action::forward);
            // More packets, two a frame, until fr[0]'s number is held - 1 (or held) behind the newest.
            std::vector<packet> more;
            while (more.size() < held) {
                auto next = e.frame(0, false, 2);
                more.insert(more.end(), next.begin(), next.end());
            }
            more.resize(in_window ? held - 2 : held - 1);
            REQUIRE(f.push(more) == more.size());
            const layer_decision late = f.push(fr[0]);
            if (in_window) {
                CHECK(late.action == layer_action::forward);
                CHECK(late.sequence == static_cast<std::uint16_t>(kept_after.sequence - 1));
            } else {
                CHECK(late.action == layer_action::drop);
                CHECK(sel.stats().stale == 1);
            }
        }
    }
}

TEST_CASE("layer_selector: source_of maps output numbers back to forwarded upstream packets") {
    layer_selector sel(out_ssrc, 2, 1);
    feeder f(sel);
    encoding e0{0, 0x500, 700, 1000, 5, 5};
    encoding e1{1, 0x501, 9000, 70000, 500, 90};
    auto key = e0.frame(0, true, 3);
    REQUIRE(f.push(key) == 3);
    auto fr = e0.frame(0, false, 3);
    const layer_decision f0 = f.push(fr[0]);
    const layer_decision f2 = f.push(fr[2]); // fr[1] still on its way
    const std::uint16_t kept = static_cast<std::uint16_t>(f0.sequence + 1);
    CHECK(f2.sequence == kept + 1);
    CHECK_FALSE(sel.source_of(kept)); // a hole is not a forwarded packet

    sel.set_target(1, 0);
    auto k1 = e1.frame(0, true, 2);
    const layer_decision m0 = f.push(k1[0]);
    REQUIRE(m0.action == layer_action::forward);
    CHECK(m0.sequence == kept + 2);
    CHECK(sel.spatial() == 1);
    // The old encoding's late packet: its number is filled, not forwarded.
    const layer_decision late = f.push(fr[1]);
    CHECK(late.action == layer_action::fill);
    CHECK(late.sequence == kept);
    CHECK(f.push(k1[1]).action == layer_action::forward);

    using src = std::pair<std::uint8_t, std::uint16_t>;
    const std::uint16_t first_out = f.out.front().d.sequence;
    CHECK(sel.source_of(first_out) == std::optional<src>(src{0, 700}));
    CHECK(sel.source_of(f0.sequence) == std::optional<src>(src{0, 703}));
    CHECK(sel.source_of(m0.sequence) == std::optional<src>(src{1, 9000}));
    CHECK_FALSE(sel.source_of(kept));                                   // a fill
    CHECK_FALSE(sel.source_of(static_cast<std::uint16_t>(m0.sequence + 2))); // not given yet
    CHECK_FALSE(sel.source_of(static_cast<std::uint16_t>(first_out - 1)));   // never given
    const auto h = sel.history(m0.sequence);
    REQUIRE(h);
    CHECK(h->decision.timestamp == m0.timestamp);
    CHECK(h->decision.picture_id == m0.picture_id);
    CHECK(h->decision.tl0picidx == m0.tl0picidx);

    // Only the last `window` numbers are remembered.
    for (int i = 0; i < 1100; ++i) f.push(e1.frame(0, false, 1));
    CHECK_FALSE(sel.source_of(first_out));
    CHECK_FALSE(sel.source_of(m0.sequence));
    const sent& newest = f.out.back();
    CHECK(sel.source_of(newest.d.sequence) == std::optional<src>(src{1, newest.in_seq}));
}

TEST_CASE("write_rewritten_prefix: the reassembled packet is the original under the decision's numbers") {
    layer_decision d;
    d.action = layer_action::forward;
    d.sequence = 4242;
    d.timestamp = 0x12345678;
    d.picture_id = 0x7abc;
    d.tl0picidx = 77;

    auto check = [&](const vp8_spec& spec) {
        const auto bytes = make_vp8(spec);
        rtp::packet_view p;
        REQUIRE_FALSE(rtp::parse(bytes, p));
        rtp::vp8_descriptor desc;
        REQUIRE_FALSE(rtp::parse_vp8_descriptor(p.payload, desc));
        std::array<std::uint8_t, 160> head{};
        const std::size_t n = relay::write_rewritten_prefix(p, relay::layout_of(desc), out_ssrc, d, head);
        REQUIRE(n > 0);
        CHECK(n == p.header_size() + desc.tl0picidx_offset + 1);
        std::vector<std::uint8_t> whole(head.begin(), head.begin() + static_cast<std::ptrdiff_t>(n));
        whole.insert(whole.end(), bytes.begin() + static_cast<std::ptrdiff_t>(n), bytes.end());
        REQUIRE(whole.size() == bytes.size());
        rtp::packet_view q;
        REQUIRE_FALSE(rtp::parse(whole, q));
        rtp::vp8_descriptor qd;
        REQUIRE_FALSE(rtp::parse_vp8_descriptor(q.payload, qd));
        CHECK(q.ssrc == out_ssrc);
        CHECK(q.sequence == d.sequence);
        CHECK(q.timestamp == d.timestamp);
        CHECK(q.marker == d.marker); // the decision's: where the subscriber's picture ends
        CHECK(q.payload_type == p.payload_type);
        CHECK(q.extension_profile == p.extension_profile);
        CHECK(std::equal(q.extension_data.begin(), q.extension_data.end(), p.extension_data.begin(), p.extension_data.end()));
        CHECK(q.transport_sequence() == p.transport_sequence());
        CHECK(q.abs_capture_time() == p.abs_capture_time());
        CHECK(qd.long_picture_id == desc.long_picture_id);
        CHECK(qd.picture_id == (desc.long_picture_id ? d.picture_id : (d.picture_id & 0x7f)));
        CHECK(qd.tl0picidx == d.tl0picidx);
        CHECK(qd.tid == desc.tid);
        CHECK(qd.layer_sync == desc.layer_sync);
        CHECK(qd.start == desc.start);
        CHECK(qd.size == desc.size);
        const auto pd = p.payload.subspan(desc.size);
        const auto qq = q.payload.subspan(qd.size);
        CHECK(std::equal(qq.begin(), qq.end(), pd.begin(), pd.end()));
        // Bytes keep their places: a leg stamps its transport-wide number in the prefix.
        if (const std::size_t off = rtp::transport_sequence_offset(bytes)) {
            REQUIRE(off + 2 <= n);
            rtp::store_be16(head.data() + off, 0xbeef);
            std::copy(head.begin(), head.begin() + static_cast<std::ptrdiff_t>(n), whole.begin());
            REQUIRE_FALSE(rtp::parse(whole, q));
            CHECK(q.transport_sequence() == std::optional<std::uint16_t>(0xbeef));
        }
        // Too small a buffer: nothing written.
        std::array<std::uint8_t, 8> tiny{};
        CHECK(relay::write_rewritten_prefix(p, relay::layout_of(desc), out_ssrc, d, tiny) == 0);
    };

    vp8_spec spec;
    spec.seq = 17;
    spec.ts = 3000;
    spec.picture_id = 0x1234;
    spec.tl0picidx = 9;
    spec.tid = 2;
    spec.sync = true;
    spec.marker = true;
    SUBCASE("15-bit picture id") {
        d.marker = true;
        check(spec);
    }
    SUBCASE("15-bit picture id, the marker cleared") { check(spec); }
    SUBCASE("7-bit picture id") {
        spec.short_picture_id = true;
        spec.picture_id = 0x55;
        d.marker = true;
        check(spec);
    }
    SUBCASE("with header extensions") {
        spec.extensions = true;
        spec.transport_seq = 0x4321;
        spec.marker = false;
        spec.start = false;
        d.marker = true; // set where the packet had none (the last one kept of a picture)
        check(spec);
    }
    SUBCASE("a layout outside the payload is refused") {
        const auto bytes = make_vp8(spec);
        rtp::packet_view p;
        REQUIRE_FALSE(rtp::parse(bytes, p));
        relay::descriptor_layout l;
        l.has_tl0picidx = true;
        l.tl0picidx_offset = p.payload.size();
        std::array<std::uint8_t, 160> head{};
        CHECK(relay::write_rewritten_prefix(p, l, out_ssrc, d, head) == 0);
        l = {};
        l.has_picture_id = true;
        l.long_picture_id = true;
        l.picture_id_offset = p.payload.size() - 1;
        CHECK(relay::write_rewritten_prefix(p, l, out_ssrc, d, head) == 0);
    }
}

TEST_CASE("write_rewritten_prefix: VP9 picture id and TL0PICIDX") {
    rtp::vp9_payload::packetizer pk(0x0321, 40);
    std::uint16_t seq = 100;
    auto frame = onair_test::fake_vp8_frame(false, 9000, 200);
    frame.temporal_layer = 1;
    const auto pkts = onair_test::packetize<rtp::vp9_payload>(pk, frame, 0x600, seq);
    REQUIRE(pkts.size() == 1);
    rtp::packet_view p;
    REQUIRE_FALSE(rtp::parse(pkts[0], p));
    rtp::vp9_descriptor desc;
    REQUIRE_FALSE(rtp::parse_vp9_descriptor(p.payload, desc));
    const relay::layer_info info = relay::layer_info_of(2, desc);
    CHECK(info.spatial == 2);
    CHECK(info.temporal == 1);
    CHECK(info.frame_start);
    CHECK_FALSE(info.keyframe);
    CHECK(info.picture_id == 0x0321);
    CHECK(info.has_tl0picidx);

    layer_decision d;
    d.sequence = 1;
    d.timestamp = 2;
    d.picture_id = 0x6000;
    d.tl0picidx = 200;
    std::array<std::uint8_t, 64> head{};
    const std::size_t n = relay::write_rewritten_prefix(p, relay::layout_of(desc), out_ssrc, d, head);
    REQUIRE(n == p.header_size() + 5);
    std::vector<std::uint8_t> whole(head.begin(), head.begin() + static_cast<std::ptrdiff_t>(n));
    whole.insert(whole.end(), pkts[0].begin() + static_cast<std::ptrdiff_t>(n), pkts[0].end());
    rtp::packet_view q;
    REQUIRE_FALSE(rtp::parse(whole, q));
    rtp::vp9_descriptor qd;
    REQUIRE_FALSE(rtp::parse_vp9_descriptor(q.payload, qd));
    CHECK(qd.picture_id == 0x6000);
    CHECK(qd.tl0picidx == 200);
    CHECK(qd.tid == 1);
    CHECK(qd.inter_picture == desc.inter_picture);
    CHECK(qd.size == desc.size);
}

TEST_CASE("write_fill_packet: a padding-only packet under the fill's number") {
    vp8_spec spec;
    spec.seq = 5;
    spec.ts = 1234;
    spec.extensions = true;
    spec.transport_seq = 77;
    spec.marker = true;
    const auto bytes = make_vp8(spec);
    rtp::packet_view p;
    REQUIRE_FALSE(rtp::parse(bytes, p));
    layer_decision d;
    d.action = layer_action::fill;
    d.sequence = 777;
    d.timestamp = 999;
    std::array<std::uint8_t, 128> buf{};
    const std::size_t n = relay::write_fill_packet(p, out_ssrc, d, buf, 8);
    REQUIRE(n == p.header_size() + 8);
    rtp::packet_view q;
    REQUIRE_FALSE(rtp::parse(rtp::bytes_view(buf.data(), n), q));
    CHECK(q.payload.empty());
    CHECK(q.padding == 8);
    CHECK(q.sequence == 777);
    CHECK(q.timestamp == 999);
    CHECK(q.ssrc == out_ssrc);
    CHECK_FALSE(q.marker);
    CHECK(q.payload_type == p.payload_type);
    CHECK(q.transport_sequence() == std::optional<std::uint16_t>(77));
    CHECK(relay::write_fill_packet(p, out_ssrc, d, buf, 0) == p.header_size() + 1); // at least one byte
    std::array<std::uint8_t, 16> tiny{};
    CHECK(relay::write_fill_packet(p, out_ssrc, d, tiny) == 0);
}

TEST_CASE("layer_selector: realistic reordering, loss-free: every output number is given exactly once") {
    // Three encodings, random temporal layers and key frames, padding, duplicates, packets
    // reordered within a few places and targets changing: at the end every number between the
    // first and the newest was sent once (forward or fill), with no hole.
    std::mt19937 rng(20240611);
    layer_selector sel(out_ssrc, 3, 3);
    sel.set_target(1, 2);
    encoding e[3] = {
        {0, 0x700, 100, 1000, 10, 1},
        {1, 0x701, 30000, 2000000, 2000, 100},
        {2, 0x702, 65000, 4294000000u, 0x7f00, 200},
    };
    std::vector<packet> pending;
    rtp::seq_unwrapper unwrap;
    std::set<std::int64_t> given;
    std::optional<std::int64_t> high;
    std::optional<std::uint32_t> last_ts;
    std::int64_t now = 0;
    std::size_t fills = 0;
    auto deliver = [&](const packet& pk) {
        now += static_cast<std::int64_t>(rng() % 2000);
        const parsed p = parse_packet(pk);
        const layer_decision d = sel.on_packet(p.view, p.info, now);
        if (d.action == layer_action::drop) return;
        const std::int64_t u = unwrap.unwrap(d.sequence);
        CHECK(given.insert(u).second);
        if (d.action == layer_action::fill) ++fills;
        const bool newest = !high || u > *high;
        if (newest) {
            if (high) CHECK(u - *high <= layer_selector::max_sequence_jump);
            high = u;
        }
        if (d.action == layer_action::forward) {
            CHECK(sel.source_of(d.sequence) == std::optional(std::pair{pk.spatial, p.view.sequence}));
            if (newest) {
                if (last_ts) CHECK_FALSE(rtp::ts_newer(*last_ts, d.timestamp)); // never backwards
                last_ts = d.timestamp;
            }
        }
    };
    for (int step = 0; step < 6000; ++step) {
        if (step % 97 == 0) sel.set_target(static_cast<std::uint8_t>(rng() % 3), static_cast<std::uint8_t>(rng() % 3));
        for (auto& enc : e) {
            const bool key = rng() % 40 == 0;
            const auto tid = static_cast<std::uint8_t>(rng() % 3);
            auto fr = enc.frame(key ? 0 : tid, key, 1 + rng() % 4, rng() % 4 == 0);
            pending.insert(pending.end(), fr.begin(), fr.end());
            if (rng() % 30 == 0) pending.push_back(enc.padding());
        }
        while (pending.size() > 8) {
            const std::size_t i = rng() % 8;
            const packet pk = pending[i];
            pending.erase(pending.begin() + static_cast<std::ptrdiff_t>(i));
            deliver(pk);
            if (rng() % 50 == 0) deliver(pk); // a duplicate
        }
    }
    while (!pending.empty()) {
        deliver(pending.front());
        pending.erase(pending.begin());
    }
    REQUIRE(high);
    CHECK(sel.stats().spatial_switches > 5);
    CHECK(sel.stats().temporal_switches > 5);
    CHECK(fills > 0);
    CHECK(sel.stats().restarts == 0);
    // No hole: every number from the first to the newest was given.
    CHECK(static_cast<std::int64_t>(given.size()) == *high - *given.begin() + 1);
}

TEST_CASE("layer_selector: random input never breaks the output numbering") {
    std::mt19937 rng(7);
    layer_selector sel(out_ssrc, 3, 3);
    std::uint16_t seqs[4] = {0, 1000, 40000, 9};
    rtp::seq_unwrapper unwrap;
    std::set<std::int64_t> given;
    std::optional<std::int64_t> high;
    std::int64_t now = 0;
    std::int64_t budget = 0; // how far the numbering may have moved on since the newest number given
    std::vector<std::uint8_t> bytes(64);
    for (int i = 0; i < 200'000; ++i) {
        if (rng() % 50 == 0) sel.set_target(static_cast<std::uint8_t>(rng() % 5), static_cast<std::uint8_t>(rng() % 9));
        if (rng() % 5000 == 0) sel.reset();
        relay::layer_info info;
        info.spatial = static_cast<std::uint8_t>(rng() % 4); // 3: not an encoding of the stream
        info.temporal = static_cast<std::uint8_t>(rng() % 10 == 0 ? rng() : rng() % 3);
        info.layer_sync = rng() % 4 == 0;
        info.frame_start = rng() % 3 == 0;
        info.keyframe = rng() % 20 == 0;
        info.has_picture_id = rng() % 8 != 0;
        info.short_picture_id = rng() % 10 == 0;
        info.picture_id = static_cast<std::uint16_t>(rng() % 6 == 0 ? rng() : i / 3 + rng() % 5);
        info.has_tl0picidx = rng() % 2 == 0;
        info.tl0picidx = static_cast<std::uint8_t>(rng());
        std::uint16_t& s = seqs[info.spatial];
        switch (rng() % 12) {
        case 0: s = static_cast<std::uint16_t>(rng()); break;              // anything
        case 1: s = static_cast<std::uint16_t>(s - rng() % 40); break;     // late
        case 2: s = static_cast<std::uint16_t>(s + rng() % 1500); break;   // a hole, or a jump
        case 3: break;                                                     // a duplicate
        default: ++s;
        }
        rtp::header h;
        h.sequence = s;
        h.timestamp = static_cast<std::uint32_t>(rng() % 4 == 0 ? rng() : static_cast<std::uint32_t>(i) * 1500u);
        h.ssrc = 0x800u + info.spatial;
        const std::size_t payload = rng() % 10 == 0 ? 0 : 20;
        const std::size_t n = rtp::write_header(h, bytes);
        if (payload == 0) {
            bytes[0] |= 0x20;
            bytes[n] = 1;
        }
        rtp::packet_view p;
        REQUIRE_FALSE(rtp::parse(rtp::bytes_view(bytes.data(), n + (payload ? payload : 1)), p));
        now += rng() % 7 == 0 ? -static_cast<std::int64_t>(rng() % 100000) : static_cast<std::int64_t>(rng() % 5000);
        const layer_decision d = sel.on_packet(p, info, now);
        // A packet moves the numbering on by at most a hole of max_sequence_jump - 1 kept
        // numbers and its own (dropped packets give none, kept ones are not seen here).
        budget += layer_selector::max_sequence_jump;
        if (d.action == layer_action::drop) continue;
        const std::int64_t u = unwrap.unwrap(d.sequence);
        if (!high || u > *high) {
            if (high) REQUIRE(u - *high <= budget);
            high = u;
            budget = 0;
        } else {
            REQUIRE(*high - u < layer_selector::window); // a number kept for a hole
        }
        REQUIRE(given.insert(u).second); // never twice
        while (!given.empty() && *given.begin() < *high - 4 * layer_selector::window) given.erase(given.begin());
        if (d.action == layer_action::forward)
            REQUIRE(sel.source_of(d.sequence) == std::optional(std::pair{info.spatial, s}));
    }
    const auto& st = sel.stats();
    CHECK(st.forwarded > 1000);
    CHECK(st.filled > 0);
    CHECK(st.restarts > 0);
    CHECK(st.ignored > 0);
    CHECK(st.forwarded + st.filled + st.dropped == 200'000);
}

TEST_SUITE_END();
