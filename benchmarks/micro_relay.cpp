// Microbenchmarks of the relay's per-packet work: a subscriber's layer decision and rewritten
// packet head (relay::layer_selector), the leg's transport-wide numbering (relay::downlink),
// the retransmission cache a NACK is answered from, and the per-layer bitrate meter.
// Simulated time: no clock reads.
#include <onair/core/packet_buffer.hpp>
#include <onair/qos/retransmission_cache.hpp>
#include <onair/relay/downlink.hpp>
#include <onair/relay/layer_meter.hpp>
#include <onair/relay/layer_selector.hpp>
#include <onair/rtp/packet.hpp>
#include <onair/rtp/vp8.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace {

using namespace onair;
using clock_type = std::chrono::steady_clock;
using us = std::chrono::microseconds;
const clock_type::time_point t0{std::chrono::seconds{1000}};

constexpr std::uint32_t video_ssrc = 0x11223344;

/// A VP8 stream as a host publishes it: frames of three 1200-byte packets at 30 fps, temporal
/// layers in the pattern 0 2 1 2, a key frame first, the descriptor the packetizer writes
/// (15-bit picture id, TL0PICIDX, TID) and the transport-wide sequence number and capture time
/// extensions. One datagram is renumbered in place for each packet; its parsed view and
/// layer_info are kept as rtp::parse and layer_info_of give them (check_stream() verifies).
/// Moving on has a cost of its own (BM_vp8_stream_next), included in every figure that uses it.
class vp8_stream {
public:
    static constexpr std::int64_t packets_per_frame = 3;
    static constexpr std::array<std::uint8_t, 4> pattern{0, 2, 1, 2};

    vp8_stream(const vp8_stream&) = delete; // the view points into the datagram
    vp8_stream& operator=(const vp8_stream&) = delete;

    vp8_stream() : wire_(max_datagram_size) {
        rtp::header h;
        h.payload_type = 96;
        h.ssrc = video_ssrc;
        h.transport_sequence = 0;
        h.abs_capture_time = 0;
        std::vector<std::uint8_t> payload(rtp::max_payload_size, 0x5a);
        const std::array<std::uint8_t, rtp::vp8_payload::descriptor_size> d{0x90, 0xe0, 0x80, 0, 0, 0};
        std::copy(d.begin(), d.end(), payload.begin());
        wire_.resize(rtp::serialize(h, payload, wire_));
        ok_ = !rtp::parse(wire_, view_);
        rtp::vp8_descriptor desc;
        ok_ = ok_ && !rtp::parse_vp8_descriptor(view_.payload, desc);
        layout_ = relay::layout_of(desc);
        header_ = view_.header_size();
        tseq_offset_ = rtp::transport_sequence_offset(view_);
        ok_ = ok_ && tseq_offset_ != 0;
    }

    /// Moves on to the next packet of the stream.
    void next() noexcept {
        if (++part_ == packets_per_frame) {
            part_ = 0;
            ++frame_;
        }
        const std::int64_t frame = frame_;
        const std::int64_t part = part_;
        const bool start = part == 0;
        const bool last = part + 1 == packets_per_frame;
        const std::uint8_t tid = pattern[static_cast<std::size_t>(frame & 3)];
        if (start && tid == 0) ++tl0_;
        const auto seq = static_cast<std::uint16_t>(n_);
        const auto ts = static_cast<std::uint32_t>(3'000 * frame);
        const auto pid = static_cast<std::uint16_t>(frame & 0x7fff);
        std::uint8_t* w = wire_.data();
        w[1] = static_cast<std::uint8_t>((w[1] & 0x7f) | (last ? 0x80 : 0));
        rtp::store_be16(w + 2, seq);
        rtp::store_be32(w + 4, ts);
        rtp::store_be16(w + tseq_offset_, seq);
        std::uint8_t* d = w + header_;
        d[0] = start ? 0x90 : 0x80; // X S PID=0
        d[2] = static_cast<std::uint8_t>(0x80 | (pid >> 8));
        d[3] = static_cast<std::uint8_t>(pid);
        d[4] = tl0_;
        d[5] = static_cast<std::uint8_t>(tid << 6);
        d[6] = static_cast<std::uint8_t>(frame == 0 ? d[6] & 0xfe : d[6] | 0x01); // P=0: key frame
        view_.marker = last;
        view_.sequence = seq;
        view_.timestamp = ts;
        info_.temporal = tid;
        info_.frame_start = start;
        info_.keyframe = start && frame == 0;
        info_.has_picture_id = true;
        info_.short_picture_id = false;
        info_.picture_id = pid;
        info_.has_tl0picidx = true;
        info_.tl0picidx = tl0_;
        now_us_ = 1'000'000'000 + frame * 33'333 + part * 1'000;
        ++n_;
    }

    bool ok() const noexcept { return ok_; }
    const rtp::packet_view& packet() const noexcept { return view_; }
    const relay::layer_info& info() const noexcept { return info_; }
    const relay::descriptor_layout& layout() const noexcept { return layout_; }
    std::size_t tseq_offset() const noexcept { return tseq_offset_; }
    std::int64_t now_us() const noexcept { return now_us_; }
    clock_type::time_point now() const noexcept { return clock_type::time_point{us{now_us_}}; }

private:
    std::vector<std::uint8_t> wire_;
    rtp::packet_view view_;
    relay::layer_info info_;
    relay::descriptor_layout layout_;
    std::size_t header_ = 0;
    std::size_t tseq_offset_ = 0;
    std::int64_t n_ = 0;
    std::int64_t frame_ = -1;
    std::int64_t part_ = packets_per_frame - 1;
    std::uint8_t tl0_ = 0xff; // the first base layer frame gets 0
    std::int64_t now_us_ = 0;
    bool ok_ = false;
};

/// The stream's view and layer_info match what parsing its datagram gives, over a few
/// pattern periods and a picture id wrap.
bool check_stream() {
    vp8_stream s;
    if (!s.ok()) return false;
    for (int i = 0; i < 200'000; ++i) {
        s.next();
        rtp::packet_view p;
        rtp::vp8_descriptor d;
        if (rtp::parse(s.packet().whole, p) || rtp::parse_vp8_descriptor(p.payload, d)) return false;
        const relay::layer_info a = relay::layer_info_of(0, d, p.payload);
        const relay::layer_info& b = s.info();
        const rtp::packet_view& v = s.packet();
        if (p.sequence != v.sequence || p.timestamp != v.timestamp || p.marker != v.marker ||
            p.payload.data() != v.payload.data() || p.payload.size() != v.payload.size() || a.spatial != b.spatial ||
            a.temporal != b.temporal || a.layer_sync != b.layer_sync || a.frame_start != b.frame_start ||
            a.keyframe != b.keyframe || a.has_picture_id != b.has_picture_id ||
            a.short_picture_id != b.short_picture_id || a.picture_id != b.picture_id ||
            a.has_tl0picidx != b.has_tl0picidx || a.tl0picidx != b.tl0picidx)
            return false;
    }
    return true;
}

bool stream_checked() {
    static const bool ok = check_stream();
    return ok;
}

/// A subscriber's selector on one encoding with three temporal layers, as a leg that has been
/// on for a while: it started at the key frame with TL0 and TL1 (the TL2 frames dropped, so
/// its sequence numbers and picture ids differ from the publisher's and every forwarded
/// packet is rewritten), then got `target_temporal`, reached at the next frame.
relay::layer_selector running_selector(vp8_stream& s, std::uint8_t target_temporal) {
    relay::layer_selector sel(video_ssrc, 1, 3);
    sel.set_target(0, 1);
    for (std::int64_t i = 0; i < 4 * vp8_stream::packets_per_frame; ++i) {
        s.next();
        (void)sel.on_packet(s.packet(), s.info(), s.now_us());
    }
    sel.set_target(0, target_temporal);
    return sel;
}

/// One subscriber's work for a packet it gets: the decision and its rewritten head (RTP header
/// and descriptor up to TL0PICIDX, sent ahead of the shared packet's untouched rest).
void BM_layer_selector_forward(benchmark::State& state) {
    if (!stream_checked()) return state.SkipWithError("stream generator out of step with the parser");
    vp8_stream s;
    relay::layer_selector sel = running_selector(s, 2);
    std::array<std::uint8_t, relay::max_rewritten_head> head;
    std::size_t forwarded = 0, renumbered = 0, unwritten = 0, prefix = 0;
    for (auto _ : state) {
        s.next();
        const relay::layer_decision d = sel.on_packet(s.packet(), s.info(), s.now_us());
        const std::size_t n = relay::write_rewritten_prefix(s.packet(), s.layout(), video_ssrc, d, head);
        benchmark::DoNotOptimize(head.data());
        benchmark::DoNotOptimize(n);
        benchmark::ClobberMemory();
        forwarded += d.action == relay::layer_action::forward;
        renumbered += d.sequence != s.packet().sequence;
        unwritten += n == 0;
        prefix += n;
    }
    const auto it = static_cast<std::size_t>(state.iterations());
    if (forwarded != it || renumbered != it || unwritten != 0)
        state.SkipWithError("not every packet forwarded, renumbered and its head written");
    state.counters["forwarded"] = static_cast<double>(forwarded) / static_cast<double>(it);
    state.counters["head_bytes"] = static_cast<double>(prefix) / static_cast<double>(it);
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_layer_selector_forward);

/// A subscriber on fewer temporal layers (Arg: the highest TID it gets; 1 drops the TL2
/// frames, half the packets, 0 keeps only the base layer, a quarter): the decision for every
/// packet, the head for those forwarded.
void BM_layer_selector_reduced(benchmark::State& state) {
    if (!stream_checked()) return state.SkipWithError("stream generator out of step with the parser");
    const auto target = static_cast<std::uint8_t>(state.range(0));
    vp8_stream s;
    relay::layer_selector sel = running_selector(s, target);
    std::array<std::uint8_t, relay::max_rewritten_head> head;
    std::size_t forwarded = 0, wrong = 0;
    for (auto _ : state) {
        s.next();
        const relay::layer_decision d = sel.on_packet(s.packet(), s.info(), s.now_us());
        const bool forward = d.action == relay::layer_action::forward;
        if (forward) {
            const std::size_t n = relay::write_rewritten_prefix(s.packet(), s.layout(), video_ssrc, d, head);
            benchmark::DoNotOptimize(head.data());
            benchmark::DoNotOptimize(n);
            benchmark::ClobberMemory();
        }
        forwarded += forward;
        wrong += forward != (s.info().temporal <= target);
    }
    if (wrong != 0) state.SkipWithError("a decision other than the temporal target asks");
    state.counters["forwarded"] = static_cast<double>(forwarded) / static_cast<double>(state.iterations());
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_layer_selector_reduced)->Arg(1)->Arg(0);

/// The stream moving on by one packet, alone: the share of the figures above that is not the
/// relay's.
void BM_vp8_stream_next(benchmark::State& state) {
    vp8_stream s;
    for (auto _ : state) {
        s.next();
        benchmark::DoNotOptimize(s.packet());
        benchmark::DoNotOptimize(s.info());
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_vp8_stream_next);

/// The part of a forwarded packet's handling done once for all its subscribers: the VP8
/// descriptor parsed into the selector's layer_info, where its renumbered fields lie and
/// where the transport-wide sequence number is.
void BM_vp8_layer_info(benchmark::State& state) {
    vp8_stream s;
    if (!s.ok()) return state.SkipWithError("stream not parsed");
    for (auto _ : state) {
        s.next();
        rtp::vp8_descriptor d;
        benchmark::DoNotOptimize(rtp::parse_vp8_descriptor(s.packet().payload, d));
        const relay::layer_info info = relay::layer_info_of(0, d, s.packet().payload);
        const relay::descriptor_layout layout = relay::layout_of(d);
        const std::size_t tseq = rtp::transport_sequence_offset(s.packet());
        benchmark::DoNotOptimize(info);
        benchmark::DoNotOptimize(layout);
        benchmark::DoNotOptimize(tseq);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_vp8_layer_info);

/// A forwarded packet sent whole on a subscriber leg: its first bytes copied up to the
/// transport-wide sequence element, the leg's number written there and recorded for the
/// leg's estimator, the copy and the shared rest handed to a send that does nothing.
void BM_downlink_send_packet(benchmark::State& state) {
    vp8_stream s;
    if (!s.ok()) return state.SkipWithError("stream not parsed");
    s.next();
    relay::downlink leg;
    auto now = t0;
    const auto send = [](rtp::bytes_view head, rtp::bytes_view tail) {
        benchmark::DoNotOptimize(head.data());
        benchmark::DoNotOptimize(tail.data());
    };
    for (auto _ : state) {
        leg.send_packet(send, s.packet().whole, s.tseq_offset(), now);
        now += us{500}; // 1200-byte packets at about 20 Mbps
        benchmark::ClobberMemory();
    }
    if (leg.packets() != static_cast<std::uint64_t>(state.iterations()) || leg.unmeasured() != 0)
        state.SkipWithError("packets sent unmeasured");
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_downlink_send_packet);

/// A rewritten leg's whole per-subscriber cost for a packet it gets: decision, rewritten head,
/// the leg's transport-wide number in that head, the two-buffer send.
void BM_subscriber_forward_rewritten(benchmark::State& state) {
    if (!stream_checked()) return state.SkipWithError("stream generator out of step with the parser");
    vp8_stream s;
    relay::layer_selector sel = running_selector(s, 2);
    relay::downlink leg;
    std::array<std::uint8_t, relay::max_rewritten_head> head;
    const auto send = [](rtp::bytes_view h, rtp::bytes_view tail) {
        benchmark::DoNotOptimize(h.data());
        benchmark::DoNotOptimize(tail.data());
    };
    std::size_t forwarded = 0;
    for (auto _ : state) {
        s.next();
        const relay::layer_decision d = sel.on_packet(s.packet(), s.info(), s.now_us());
        if (d.action != relay::layer_action::forward) continue;
        const std::size_t n = relay::write_rewritten_prefix(s.packet(), s.layout(), video_ssrc, d, head);
        if (n == 0) continue;
        leg.send(send, std::span<std::uint8_t>(head.data(), n), s.packet().whole.subspan(n), s.tseq_offset(), s.now());
        ++forwarded;
    }
    const auto it = static_cast<std::uint64_t>(state.iterations());
    if (forwarded != it || leg.packets() != it || leg.unmeasured() != 0) state.SkipWithError("not every packet sent measured");
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_subscriber_forward_rewritten);

packet_ref rtp_packet(packet_pool& pool, std::uint16_t seq) {
    rtp::header h;
    h.payload_type = 96;
    h.sequence = seq;
    h.timestamp = 3'000u * (seq / 3u);
    h.ssrc = video_ssrc;
    h.transport_sequence = seq;
    static const std::vector<std::uint8_t> payload(rtp::max_payload_size, 0x5a);
    packet_ref p = pool.acquire();
    p.resize(rtp::serialize(h, payload, p.capacity()));
    return p;
}

/// A stream's 1024-packet video cache after 2048 packets: it holds 1024..2047; the slots of
/// 0..1023 hold the packets 1024 numbers later.
struct cache_fixture {
    packet_pool pool;
    qos::retransmission_cache cache{1024};
    cache_fixture() {
        for (std::uint16_t seq = 0; seq < 2048; ++seq) (void)cache.store(seq, rtp_packet(pool, seq), t0);
    }
};

/// A NACKed packet that is held, taken for a resend as the relay does (no resend
/// suppression: each subscriber paces its own requests). Each lookup is another of the held
/// numbers; the packet comes back as a reference, released after.
void BM_retransmission_cache_hit(benchmark::State& state) {
    cache_fixture fx;
    const std::uint64_t hits = fx.cache.stats().hits;
    std::uint32_t i = 0;
    for (auto _ : state) {
        const auto seq = static_cast<std::uint16_t>(1024 + (i++ & 1023));
        packet_ref p = fx.cache.take_for_resend(seq, t0, clock_type::duration::zero());
        benchmark::DoNotOptimize(p);
    }
    if (fx.cache.stats().hits - hits != static_cast<std::uint64_t>(state.iterations())) state.SkipWithError("missed");
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_retransmission_cache_hit);

/// A NACKed packet no longer held: its slot holds a newer one.
void BM_retransmission_cache_miss(benchmark::State& state) {
    cache_fixture fx;
    const std::uint64_t misses = fx.cache.stats().misses;
    std::uint32_t i = 0;
    for (auto _ : state) {
        const auto seq = static_cast<std::uint16_t>(i++ & 1023);
        packet_ref p = fx.cache.take_for_resend(seq, t0, clock_type::duration::zero());
        benchmark::DoNotOptimize(p);
    }
    if (fx.cache.stats().misses - misses != static_cast<std::uint64_t>(state.iterations())) state.SkipWithError("hit");
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_retransmission_cache_miss);

/// Every received packet: a buffer taken from the pool (received into; not written here),
/// stored in the full cache, the packet 1024 numbers older released to the pool.
void BM_retransmission_cache_store(benchmark::State& state) {
    cache_fixture fx;
    const std::uint64_t stored = fx.cache.stats().stored;
    std::uint16_t seq = 2048;
    for (auto _ : state) {
        packet_ref p = fx.pool.acquire();
        p.resize(rtp::fixed_header_size + rtp::max_payload_size);
        benchmark::DoNotOptimize(fx.cache.store(seq++, std::move(p), t0));
    }
    if (fx.cache.stats().stored - stored != static_cast<std::uint64_t>(state.iterations()) || fx.pool.in_use() != 1024)
        state.SkipWithError("not stored, or buffers not released");
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_retransmission_cache_store);

/// Every packet of a stream counted by layer (30 fps, three packets a frame, TIDs 0 2 1 2):
/// the meter's buckets move on every 125 ms.
void BM_layer_meter_add(benchmark::State& state) {
    vp8_stream s;
    relay::layer_meter meter;
    for (auto _ : state) {
        s.next();
        meter.add(s.info().spatial, s.info().temporal, s.packet().whole.size(), s.now());
        benchmark::ClobberMemory();
    }
    state.counters["kbps"] = static_cast<double>(meter.rate_bps(0, 2, s.now())) / 1000.0;
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_layer_meter_add);

} // namespace
