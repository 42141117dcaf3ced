// The relay's forwarding path allocates nothing per packet once warmed up: a relay::sfu
// forwarding one published stream (VP8 in three temporal layers, Opus audio, RTX announced)
// to 1, 10 and 200 viewers, with its timer ticking every 10 ms, the viewers' transport-wide
// feedback coming back every 50 ms and hellos every second, makes no heap allocation in
// steady state, with layer selection on (the default) and off. Counted by replacing the
// global operator new; a separate executable, so the replacement affects no other test.
#include <onair/relay/sfu.hpp>

#include <onair/core/packet_buffer.hpp>
#include <onair/qos/transport_feedback_generator.hpp>
#include <onair/rtp/opus.hpp>
#include <onair/rtp/vp8.hpp>

#include "support/packet_templates.hpp"
#include "support/rtp_builders.hpp"

#include "support/counting_new.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <span>
#include <string>
#include <vector>

using onair_test::allocations;

using namespace onair;
using onair_test::packet_template;
using onair_test::templates_of;
using namespace std::chrono_literals;
using relay::endpoint;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr std::uint32_t video_ssrc = 100, audio_ssrc = 101, rtx_ssrc = 102;
constexpr unsigned short viewer_base_port = 20'000;

endpoint publisher_at() { return {asio::ip::make_address_v4("127.0.0.1"), 5000}; }
endpoint viewer_at(std::size_t i) {
    return {asio::ip::make_address_v4("127.0.0.2"), static_cast<unsigned short>(viewer_base_port + i)};
}

rtp::session_message hello(rtp::session_type type) {
    rtp::session_message m;
    m.type = type;
    m.stream.name = "cam";
    if (type == rtp::session_type::publish) {
        m.stream.video_ssrc = video_ssrc;
        m.stream.audio_ssrc = audio_ssrc;
        m.stream.video_codec = "VP8";
        m.stream.audio_codec = "opus";
        m.stream.video_rtx_ssrc = rtx_ssrc; // the legs' probes go out on it
    }
    return m;
}

/// One viewer: what reached it, and the transport-wide feedback it sends back (arrivals
/// over a link of its own: a queue drained at `link_kbps`, never dropping).
struct viewer {
    endpoint at;
    std::uint64_t link_kbps = 20'000;
    qos::transport_feedback_generator feedback{};
    clock_type::time_point link_free{};
    std::uint64_t video = 0, audio = 0, padding = 0, other = 0, rtcp = 0;
};

/// What the sfu asks its node to do, counted in plain integers (nothing is kept per
/// packet); time is simulated.
struct counting_context {
    packet_pool& pool;
    std::span<viewer> viewers;
    clock_type::time_point t = clock_type::time_point{} + 1h;
    std::uint64_t sends = 0, bytes = 0, to_publisher = 0, stray = 0, unparsed = 0;
    std::uint64_t sessions = 0, keyframe_requests = 0, delivered = 0;
    bool keyframe_wanted = false;
    std::array<std::uint8_t, max_datagram_size> scratch{};

    void send(const endpoint& to, rtp::bytes_view b) { arrive(to, b, {}); }
    void send(const endpoint& to, rtp::bytes_view head, rtp::bytes_view tail) { arrive(to, head, tail); }
    void send_session(const endpoint&, const rtp::session_message&) { ++sessions; }
    void request_keyframe(const endpoint&, std::uint32_t) {
        ++keyframe_requests;
        keyframe_wanted = true;
    }
    void deliver(const rtp::stream_description&, media_kind, const rtp::packet_view&) { ++delivered; }
    clock_type::time_point now() const { return t; }
    packet_ref acquire() { return pool.acquire(); }

    void arrive(const endpoint& to, rtp::bytes_view head, rtp::bytes_view tail) {
        const std::size_t n = head.size() + tail.size();
        ++sends;
        bytes += n;
        if (to == publisher_at()) {
            ++to_publisher;
            return;
        }
        const std::size_t i = static_cast<std::size_t>(to.port() - viewer_base_port);
        if (to.port() < viewer_base_port || i >= viewers.size() || viewers[i].at != to) {
            ++stray;
            return;
        }
        viewer& v = viewers[i];
        if (n > scratch.size()) {
            ++unparsed;
            return;
        }
        if (!head.empty()) std::memcpy(scratch.data(), head.data(), head.size());
        if (!tail.empty()) std::memcpy(scratch.data() + head.size(), tail.data(), tail.size());
        const rtp::bytes_view d(scratch.data(), n);
        if (rtp::is_rtcp(d)) {
            ++v.rtcp;
            return;
        }
        rtp::packet_view p;
        if (rtp::parse(d, p)) {
            ++unparsed;
            return;
        }
        if (const auto tseq = p.transport_sequence()) {
            v.link_free = std::max(v.link_free, t) + std::chrono::microseconds(n * 8'000 / v.link_kbps);
            v.feedback.on_packet(*tseq, v.link_free);
        }
        if (p.payload.empty() && p.padding > 0) ++v.padding; // probes and fills
        else if (p.ssrc == video_ssrc) ++v.video;
        else if (p.ssrc == audio_ssrc) ++v.audio;
        else ++v.other;
    }
};


/// The publisher: frames of a VP8 L1T3 stream (30 fps, key frame every 2 s and on request)
/// and Opus every 20 ms, from packets built once and renumbered as they go out, each into
/// a pooled buffer as the node receives it.
class publisher {
public:
    publisher() {
        rtp::vp8_payload::packetizer vp8;
        auto frame = [&](bool key, std::uint8_t tid, bool sync, std::size_t size) {
            auto f = onair_test::fake_vp8_frame(key, 0, size);
            f.temporal_layer = tid;
            f.layer_sync = sync;
            f.non_reference = tid == 2;
            return templates_of(vp8, f, video_ssrc, 96);
        };
        key_ = frame(true, 0, false, 9000);
        layers_[0] = frame(false, 0, false, 4800);
        layers_[1] = frame(false, 1, true, 3000);
        layers_[2] = frame(false, 2, true, 1800);
        rtp::opus_payload::packetizer opus;
        encoded_frame a;
        a.kind = media_kind::audio;
        a.data.assign(90, 0x3c);
        audio_ = templates_of(opus, a, audio_ssrc, 111).at(0);
    }

    template <class Ctx>
    void video_frame(relay::sfu& s, Ctx& ctx) {
        constexpr std::array<std::uint8_t, 4> pattern{0, 2, 1, 2};
        const bool key = ctx.keyframe_wanted || frame_ % 60 == 0;
        ctx.keyframe_wanted = false;
        const std::uint8_t tid = key ? 0 : pattern[frame_ % pattern.size()];
        if (tid == 0) ++tl0_;
        for (const auto& t : key ? key_ : layers_[tid]) {
            feed(s, ctx, t, video_seq_++, static_cast<std::uint32_t>(frame_ * 3000), [&](std::uint8_t* b) {
                rtp::store_be16(b + t.payload + 2, static_cast<std::uint16_t>(0x8000 | (frame_ & 0x7fff)));
                b[t.payload + 4] = tl0_;
            });
            ++video_packets;
        }
        ++frame_;
    }

    template <class Ctx>
    void audio_packet(relay::sfu& s, Ctx& ctx) {
        feed(s, ctx, audio_, audio_seq_++, audio_ts_, [](std::uint8_t*) {});
        audio_ts_ += 960;
        ++audio_packets;
    }

    std::uint64_t frames() const noexcept { return frame_; }

    std::uint64_t video_packets = 0, audio_packets = 0, malformed = 0;

private:
    template <class Ctx, class Patch>
    void feed(relay::sfu& s, Ctx& ctx, const packet_template& t, std::uint16_t seq, std::uint32_t ts, Patch&& patch) {
        packet_ref buf = ctx.acquire();
        std::uint8_t* b = buf.capacity().data();
        std::memcpy(b, t.bytes.data(), t.bytes.size());
        rtp::store_be16(b + 2, seq);
        rtp::store_be32(b + 4, ts);
        rtp::store_be16(b + t.tseq, transport_seq_++);
        patch(b);
        buf.resize(t.bytes.size());
        rtp::packet_view p;
        if (rtp::parse(buf.bytes(), p)) {
            ++malformed;
            return;
        }
        s.on_rtp(ctx, buf, p, publisher_at());
    }

    std::vector<packet_template> key_;
    std::array<std::vector<packet_template>, 3> layers_;
    packet_template audio_;
    std::uint64_t frame_ = 0;
    std::uint8_t tl0_ = 0xff;
    std::uint16_t video_seq_ = 31'000, audio_seq_ = 7'000, transport_seq_ = 900;
    std::uint32_t audio_ts_ = 48'000;
};

struct figures {
    std::uint64_t allocations = 0;
    std::uint64_t video_in = 0, audio_in = 0; ///< packets the publisher sent while measured
    std::uint64_t sends = 0, bytes = 0;       ///< datagrams the sfu sent while measured
    std::uint64_t min_video = 0, min_audio = 0; ///< the least any viewer got while measured
    std::uint64_t ticks = 0, feedback = 0;    ///< on_timer calls, feedback messages taken, while measured
    std::uint64_t padding = 0, layer_dropped = 0, layer_changes = 0;
    std::int64_t min_estimate_kbps = 0;
};

/// Runs the stream to `viewers` viewers for `warm` of simulated time, then counts the
/// allocations of the next `measured`. With layer selection, two viewers in three (the
/// first one among them, so a single viewer too) have links too slow for every layer:
/// their legs drop layers, renumber, fill and probe.
figures run(std::size_t viewers, bool select_layers, clock_type::duration warm, clock_type::duration measured) {
    packet_pool pool; // outlives the sfu, which keeps packets in its caches
    std::vector<viewer> audience;
    audience.reserve(viewers);
    for (std::size_t i = 0; i < viewers; ++i) {
        constexpr std::array<std::uint64_t, 3> links{450, 20'000, 700};
        audience.push_back(viewer{viewer_at(i), select_layers ? links[i % links.size()] : 20'000});
    }
    counting_context ctx{pool, audience};
    relay::sfu_config cfg;
    cfg.select_layers = select_layers;
    relay::sfu s(cfg);
    publisher pub;

    const auto publish = hello(rtp::session_type::publish), play = hello(rtp::session_type::play);
    s.on_session(ctx, publish, publisher_at());
    for (auto& v : audience) s.on_session(ctx, play, v.at);
    REQUIRE(s.subscriber_count("cam") == viewers);

    std::uint64_t ticks = 0;
    std::uint64_t feedback = 0;
    const auto start = ctx.t;
    // One simulated millisecond at a time: a frame every 33.3 ms, audio every 20 ms, the
    // node's tick (with the viewers' feedback when due) every 10 ms, hellos every second.
    auto simulate = [&](clock_type::duration d) {
        const auto end = ctx.t + d;
        for (; ctx.t < end; ctx.t += 1ms) {
            const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(ctx.t - start).count();
            if (ms % 1000 == 0) {
                s.on_session(ctx, publish, publisher_at());
                for (auto& v : audience) s.on_session(ctx, play, v.at);
            }
            if (pub.frames() * 1000 <= static_cast<std::uint64_t>(ms) * 30) pub.video_frame(s, ctx);
            if (ms % 20 == 0) pub.audio_packet(s, ctx);
            if (ms % 10 == 0) {
                s.on_timer(ctx);
                ++ticks;
                for (auto& v : audience)
                    if (v.feedback.due(ctx.t))
                        v.feedback.build(ctx.t, 0x5eed, video_ssrc, [&](rtp::bytes_view b) {
                            s.on_rtcp(ctx, b, v.at);
                            ++feedback;
                        });
            }
        }
    };

    simulate(warm);
    REQUIRE(s.find("cam") != nullptr);
    REQUIRE(s.find("cam")->live);

    std::vector<std::uint64_t> video_before(viewers), audio_before(viewers);
    for (std::size_t i = 0; i < viewers; ++i) {
        video_before[i] = audience[i].video;
        audio_before[i] = audience[i].audio;
    }
    const auto st0 = s.stats();
    const auto video0 = pub.video_packets, audio0 = pub.audio_packets;
    const auto sends0 = ctx.sends, bytes0 = ctx.bytes, ticks0 = ticks, feedback0 = s.stats().subscriber_feedback;

    const std::uint64_t at_warm = allocations.load();
    simulate(measured);
    const std::uint64_t during = allocations.load() - at_warm;

    figures f;
    f.allocations = during;
    f.video_in = pub.video_packets - video0;
    f.audio_in = pub.audio_packets - audio0;
    f.sends = ctx.sends - sends0;
    f.bytes = ctx.bytes - bytes0;
    f.ticks = ticks - ticks0;
    f.feedback = s.stats().subscriber_feedback - feedback0;
    f.padding = s.stats().padding_sent - st0.padding_sent + s.stats().layer_fills - st0.layer_fills;
    f.layer_dropped = s.stats().layer_dropped - st0.layer_dropped;
    f.layer_changes = s.stats().layer_changes - st0.layer_changes;
    f.min_video = f.min_audio = std::numeric_limits<std::uint64_t>::max();
    for (std::size_t i = 0; i < viewers; ++i) {
        f.min_video = std::min(f.min_video, audience[i].video - video_before[i]);
        f.min_audio = std::min(f.min_audio, audience[i].audio - audio_before[i]);
    }
    f.min_estimate_kbps = std::numeric_limits<std::int64_t>::max();
    for (const auto& sub : s.find("cam")->subscribers) f.min_estimate_kbps = std::min(f.min_estimate_kbps, sub.leg.target_bps() / 1000);

    CHECK(pub.malformed == 0);
    CHECK(ctx.unparsed == 0);
    CHECK(ctx.stray == 0);
    CHECK(s.stats().malformed_rtcp == 0);
    CHECK(s.stats().unknown_stream == 0);
    CHECK(s.stats().unauthorized == 0);
    CHECK(s.stats().duplicates == 0);
    CHECK(s.stats().layer_unparsed == 0);
    CHECK(s.subscriber_count("cam") == viewers); // nobody timed out
    CHECK(feedback > 0);
    return f;
}

void check_steady_state(std::size_t viewers, bool select_layers) {
    const std::string layers = select_layers ? "layer selection on" : "layer selection off";
    INFO(viewers << " viewers, " << layers);
    // 20 s of warm-up: the stream's video cache holds 1024 packets (about 11 s of this
    // stream), and the packet pool grows until it is full.
    const figures f = run(viewers, select_layers, 20s, 30s);
    const std::uint64_t in = f.video_in + f.audio_in;
    MESSAGE(in << " packets in (" << f.video_in << " video, " << f.audio_in << " audio), " << f.sends << " datagrams out ("
               << f.bytes / 1000 << " kB), " << f.ticks << " ticks, " << f.feedback << " feedback messages, " << f.padding
               << " probes/fills, " << f.layer_dropped << " layer drops, " << f.layer_changes
               << " layer changes; least a viewer got: " << f.min_video << " video, " << f.min_audio
               << " audio; lowest leg estimate " << f.min_estimate_kbps << " kbps; allocations after warm-up: " << f.allocations);
    // Not vacuous: thousands of packets went to every viewer while counted.
    CHECK(in > 4000);
    CHECK(f.sends > in * viewers / 2);
    CHECK(f.min_audio == f.audio_in);
    if (select_layers) {
        CHECK(f.min_video * 3 > f.video_in); // at least the base layer
        CHECK(f.layer_dropped > 0);          // and the slow legs' renumbering was measured too
    } else {
        CHECK(f.min_video == f.video_in);
        CHECK(f.layer_dropped == 0);
    }
    CHECK(f.feedback > f.ticks * viewers / 10); // each viewer's feedback every 50 ms
    CHECK(f.allocations == 0);
}

} // namespace

TEST_CASE("sfu forwarding: no allocation per packet in steady state, layer selection on") {
    for (std::size_t viewers : {1, 10, 200}) check_steady_state(viewers, true);
}

TEST_CASE("sfu forwarding: no allocation per packet in steady state, every layer to every viewer") {
    for (std::size_t viewers : {1, 10, 200}) check_steady_state(viewers, false);
}
