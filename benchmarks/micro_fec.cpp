// Microbenchmarks of loss recovery: FlexFEC encode over a group of 10 media packets of 1200
// payload bytes, FlexFEC decode with one loss recovered (and with none), RED encode and
// parse of Opus-sized payloads with two redundant blocks.
#include <onair/qos/flexfec.hpp>
#include <onair/qos/red.hpp>
#include <onair/rtp/packet.hpp>

#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>
#include <random>
#include <vector>

namespace {

using namespace onair;
using namespace onair::qos;

constexpr std::uint32_t media_ssrc = 0x11223344;
constexpr std::uint32_t fec_ssrc = 0x55667788;

/// `n` media datagrams with a transport-wide sequence number extension and 1200 payload bytes.
std::vector<std::vector<std::uint8_t>> media_group(std::size_t n) {
    std::mt19937 rng(1);
    std::vector<std::vector<std::uint8_t>> out;
    for (std::size_t i = 0; i < n; ++i) {
        rtp::header h;
        h.payload_type = 96;
        h.sequence = static_cast<std::uint16_t>(i);
        h.timestamp = 90000;
        h.ssrc = media_ssrc;
        h.marker = i + 1 == n;
        h.transport_sequence = static_cast<std::uint16_t>(i);
        std::vector<std::uint8_t> payload(rtp::max_payload_size);
        for (auto& b : payload) b = static_cast<std::uint8_t>(rng());
        std::vector<std::uint8_t> d(1500);
        d.resize(rtp::serialize(h, payload, d));
        out.push_back(std::move(d));
    }
    return out;
}

fec_params flexible(std::uint8_t k, std::uint8_t m) {
    fec_params p;
    p.group_size = k;
    p.fec_packets = m;
    p.max_frames = 0;
    return p;
}

/// Protect a group of 10 packets with `range(0)` repair packets (interleaved masks).
void BM_flexfec_encode_10x1200(benchmark::State& state) {
    auto group = media_group(10);
    const auto m = static_cast<std::uint8_t>(state.range(0));
    flexfec_encoder enc({media_ssrc, fec_ssrc, flexfec_payload_type, 0, true, {flexible(10, m), flexible(10, m)}});
    std::uint16_t seq = 0;
    std::size_t fec = 0;
    for (auto _ : state) {
        for (auto& d : group) {
            rtp::store_be16(d.data() + 2, seq++);
            const auto ec = enc.add(d, [&](rtp::bytes_view f) {
                benchmark::DoNotOptimize(f.data());
                ++fec;
            });
            benchmark::DoNotOptimize(ec);
        }
    }
    if (fec != static_cast<std::size_t>(state.iterations()) * m) state.SkipWithError("wrong FEC count");
    state.SetItemsProcessed(state.iterations() * 10);
    state.SetBytesProcessed(state.iterations() * 10 * static_cast<std::int64_t>(group[0].size()));
}
BENCHMARK(BM_flexfec_encode_10x1200)->Arg(1)->Arg(2)->Arg(5);

/// A group of 10 and its repair packet; each iteration renumbers them (sequence numbers are
/// outside the parity) so the decoder sees a live stream.
struct decode_fixture {
    std::vector<std::vector<std::uint8_t>> group = media_group(10);
    std::vector<std::uint8_t> fec;
    decode_fixture() {
        flexfec_encoder enc({media_ssrc, fec_ssrc, flexfec_payload_type, 0, false, {flexible(10, 1), flexible(10, 1)}});
        for (const auto& d : group)
            (void)enc.add(d, [&](rtp::bytes_view f) { fec.assign(f.begin(), f.end()); });
    }
    void renumber(std::uint16_t base, std::uint16_t fec_seq) {
        for (std::size_t i = 0; i < group.size(); ++i) rtp::store_be16(group[i].data() + 2, static_cast<std::uint16_t>(base + i));
        rtp::store_be16(fec.data() + 2, fec_seq);
        rtp::store_be16(fec.data() + 16 + 8, base); // SN base
    }
};

/// Nine of the ten packets and the repair packet; the tenth (in the middle) is rebuilt.
void BM_flexfec_decode_recover_one(benchmark::State& state) {
    decode_fixture fx;
    flexfec_decoder dec({media_ssrc, fec_ssrc, 256, 32});
    std::uint16_t base = 0, fec_seq = 0;
    std::size_t recovered = 0;
    auto sink = [&](rtp::bytes_view d) {
        benchmark::DoNotOptimize(d.data());
        ++recovered;
    };
    for (auto _ : state) {
        fx.renumber(base, fec_seq++);
        base = static_cast<std::uint16_t>(base + 10);
        for (std::size_t i = 0; i < fx.group.size(); ++i)
            if (i != 4) dec.add_media(fx.group[i], sink);
        dec.add_fec(fx.fec, sink);
    }
    if (recovered != static_cast<std::size_t>(state.iterations())) state.SkipWithError("not recovered");
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_flexfec_decode_recover_one);

/// The receiver's cost when nothing is lost: ten packets stored, the repair packet found unneeded.
void BM_flexfec_decode_no_loss(benchmark::State& state) {
    decode_fixture fx;
    flexfec_decoder dec({media_ssrc, fec_ssrc, 256, 32});
    std::uint16_t base = 0, fec_seq = 0;
    auto sink = [](rtp::bytes_view d) { benchmark::DoNotOptimize(d.data()); };
    for (auto _ : state) {
        fx.renumber(base, fec_seq++);
        base = static_cast<std::uint16_t>(base + 10);
        for (const auto& d : fx.group) dec.add_media(d, sink);
        dec.add_fec(fx.fec, sink);
    }
    if (dec.stats().recovered != 0) state.SkipWithError("unexpected recovery");
    state.SetItemsProcessed(state.iterations() * 10);
}
BENCHMARK(BM_flexfec_decode_no_loss);

/// 20 ms Opus frames of 80 bytes wrapped with two redundant blocks.
void BM_red_encode_opus(benchmark::State& state) {
    std::vector<std::uint8_t> frame(80, 0x5a);
    std::array<std::uint8_t, 1200> out;
    red_encoder enc(2);
    std::uint32_t ts = 0;
    for (auto _ : state) {
        ts += 960;
        benchmark::DoNotOptimize(enc.encode(111, ts, frame, out));
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_red_encode_opus);

/// Parse that payload and pick the redundant blocks that fill a gap (one in four packets lost).
void BM_red_decode_opus(benchmark::State& state) {
    std::vector<std::uint8_t> frame(80, 0x5a);
    std::array<std::uint8_t, 1200> buf;
    red_encoder enc(2);
    (void)enc.encode(111, 0, frame, buf);
    (void)enc.encode(111, 960, frame, buf);
    const std::size_t n = enc.encode(111, 1920, frame, buf);
    const rtp::bytes_view red{buf.data(), n};
    red_decoder dec;
    sequence_history history;
    std::array<red_recovery, red_max_redundancy> gaps;
    std::uint16_t seq = 0;
    for (auto _ : state) {
        red_payload p;
        benchmark::DoNotOptimize(dec.parse(red, 1920, p));
        const std::size_t k = red_gaps(p, seq, history, gaps);
        for (std::size_t i = 0; i < k; ++i) history.insert(gaps[i].sequence);
        history.insert(seq);
        seq = static_cast<std::uint16_t>(seq + (seq % 4 == 0 ? 2 : 1));
        benchmark::DoNotOptimize(k);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_red_decode_opus);

} // namespace
