// onair micro benchmarks — barcode stamp/read, test pattern rendering, VP8/VP9/Opus encode.
#include "onair/codec/opus.hpp"
#include "onair/codec/vp8.hpp"
#include "onair/codec/vp9.hpp"
#include "onair/source/barcode.hpp"
#include "onair/source/test_pattern.hpp"
#include "onair/source/tone.hpp"

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <vector>

namespace {

const onair::timestamp epoch{std::chrono::seconds{1'700'000'000}};

void bm_barcode_stamp_read(benchmark::State& st) {
    onair::source::test_pattern tp(640, 360, 30, epoch);
    auto f = tp.next();
    std::uint32_t n = 0;
    for (auto _ : st) {
        onair::source::stamp_barcode(f, {n, epoch + std::chrono::microseconds{n}});
        auto r = onair::source::read_barcode(f);
        benchmark::DoNotOptimize(r);
        ++n;
    }
}
BENCHMARK(bm_barcode_stamp_read);

void bm_test_pattern_render(benchmark::State& st) {
    onair::source::test_pattern tp(640, 360, 30, epoch);
    onair::video_frame f;
    for (auto _ : st) {
        tp.next(epoch, f);
        benchmark::DoNotOptimize(f.data.data());
    }
}
BENCHMARK(bm_test_pattern_render);

/// Encode one 640x360 frame of a running 1 Mbps real-time stream (frames pre-rendered).
template <class Codec>
void bm_video_encode(benchmark::State& st) {
    typename Codec::encoder enc;
    onair::codec::video_config cfg;
    cfg.width = 640;
    cfg.height = 360;
    cfg.bitrate_kbps = 1000;
    if (enc.open(cfg)) {
        st.SkipWithError("open failed");
        return;
    }
    onair::source::test_pattern tp(640, 360, 30, epoch);
    std::vector<onair::video_frame> frames;
    for (int i = 0; i < 60; ++i) frames.push_back(tp.next());
    std::size_t i = 0, bytes = 0;
    std::int64_t t = 0;
    for (auto _ : st) {
        auto f = frames[i++ % frames.size()];
        f.capture_time = epoch + std::chrono::microseconds{t += 33'333};
        enc.encode(f, [&](onair::encoded_frame&& e) { bytes += e.data.size(); });
    }
    st.counters["bytes/frame"] = benchmark::Counter(static_cast<double>(bytes) / static_cast<double>(st.iterations()));
    st.counters["fps"] = benchmark::Counter(static_cast<double>(st.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(bm_video_encode<onair::codec::vp8>)->Name("bm_vp8_encode_640x360")->Unit(benchmark::kMillisecond);
BENCHMARK(bm_video_encode<onair::codec::vp9>)->Name("bm_vp9_encode_640x360")->Unit(benchmark::kMillisecond);

void bm_opus_encode_20ms(benchmark::State& st) {
    onair::codec::opus::encoder enc;
    if (enc.open({})) {
        st.SkipWithError("open failed");
        return;
    }
    onair::source::tone tone;
    const auto f = tone.next();
    for (auto _ : st) enc.encode(f, [](onair::encoded_frame&& e) { benchmark::DoNotOptimize(e.data.data()); });
}
BENCHMARK(bm_opus_encode_20ms)->Unit(benchmark::kMicrosecond);

} // namespace
