// onair micro benchmarks — playout buffers: audio jitter buffer insert + pull, video frame
// buffer insert + release, receiver statistics per packet. Simulated time: no clock reads.
#include "onair/qos/frame_buffer.hpp"
#include "onair/qos/jitter_buffer.hpp"
#include "onair/qos/receive_statistics.hpp"

#include <benchmark/benchmark.h>

#include <array>
#include <chrono>
#include <cstdint>

namespace {

using namespace std::chrono_literals;
using time_point = std::chrono::steady_clock::time_point;
using us = std::chrono::microseconds;
const time_point t0{std::chrono::seconds{1000}};

/// One 20 ms Opus packet in and one pull out per iteration; `jitter_ms` of deterministic
/// arrival jitter (0: a steady network) keeps a few packets buffered and reordering.
void bm_audio_jitter_insert_pull(benchmark::State& st) {
    const auto jitter_ms = static_cast<std::uint32_t>(st.range(0));
    onair::qos::audio_jitter_buffer jb;
    onair::encoded_frame out;
    std::array<std::uint8_t, 80> payload{};
    std::uint32_t rnd = 1;
    std::int64_t i = 0;
    for (auto _ : st) {
        rnd = rnd * 1664525u + 1013904223u;
        const us delay{20'000 + (jitter_ms ? (rnd >> 8) % (jitter_ms * 1000) : 0)};
        payload[0] = static_cast<std::uint8_t>(i);
        jb.insert(payload, static_cast<std::uint32_t>(960 * i), static_cast<std::uint16_t>(i), t0 + us{20'000} * i + delay);
        const auto r = jb.pull(t0 + us{20'000} * i + 5ms, out);
        benchmark::DoNotOptimize(r);
        ++i;
    }
    st.SetItemsProcessed(st.iterations());
    st.counters["concealed"] = static_cast<double>(jb.stats().concealed);
}
BENCHMARK(bm_audio_jitter_insert_pull)->Arg(0)->Arg(60);

/// One 25 fps frame in and out per iteration (its data buffer circulates: no allocation).
/// Arg: temporal layers (1: single layer, 3: pattern 0 2 1 2 with TL0PICIDX).
void bm_frame_buffer_insert_release(benchmark::State& st) {
    const bool layered = st.range(0) > 1;
    static constexpr std::array<std::uint8_t, 4> pattern{0, 2, 1, 2};
    onair::qos::frame_buffer fb;
    onair::qos::released_frame r;
    onair::encoded_frame f;
    f.kind = onair::media_kind::video;
    f.data.assign(4'000, 0x5a);
    std::uint8_t tl0 = 0;
    std::int64_t n = 0;
    for (auto _ : st) {
        const std::uint8_t layer = layered ? pattern[static_cast<std::size_t>(n) % pattern.size()] : 0;
        if (layer == 0) ++tl0;
        f.keyframe = n % 300 == 0;
        f.temporal_layer = layer;
        f.rtp_timestamp = static_cast<std::uint32_t>(3'600 * n);
        onair::qos::frame_info info;
        info.picture_id = static_cast<std::uint16_t>(n & 0x7fff);
        info.has_tl0picidx = layered;
        info.tl0picidx = tl0;
        const time_point now = t0 + us{40'000} * n;
        fb.insert(std::move(f), info, now + 20ms);
        while (fb.release(now + 30ms, r)) f = std::move(r.frame);
        ++n;
    }
    st.SetItemsProcessed(st.iterations());
    st.counters["released"] = static_cast<double>(fb.stats().released);
}
BENCHMARK(bm_frame_buffer_insert_release)->Arg(1)->Arg(3);

void bm_receive_statistics_packet(benchmark::State& st) {
    onair::qos::stream_statistics s(1, 90'000);
    std::int64_t i = 0;
    for (auto _ : st) {
        s.on_packet(static_cast<std::uint16_t>(i), static_cast<std::uint32_t>(3'000 * (i / 3)), t0 + us{11'111} * i);
        ++i;
    }
    benchmark::DoNotOptimize(s.jitter());
    st.SetItemsProcessed(st.iterations());
}
BENCHMARK(bm_receive_statistics_packet);

} // namespace
