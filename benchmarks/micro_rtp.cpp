// Microbenchmarks of the RTP layer: packet parse and serialise, VP8 packetise and
// depacketise (reassembly included), RTCP compound parse.
#include <onair/rtp/packet.hpp>
#include <onair/rtp/rtcp.hpp>
#include <onair/rtp/vp8.hpp>

#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

namespace {

using namespace onair;
using namespace onair::rtp;

header full_header() {
    header h;
    h.marker = true;
    h.payload_type = 96;
    h.sequence = 4242;
    h.timestamp = 90000;
    h.ssrc = 0x11223344;
    h.transport_sequence = 77;
    h.abs_capture_time = to_ntp(timestamp{std::chrono::microseconds{1'700'000'000'000'000}});
    return h;
}

std::vector<std::uint8_t> random_bytes(std::size_t n) {
    std::mt19937 rng(1);
    std::vector<std::uint8_t> v(n);
    for (auto& b : v) b = static_cast<std::uint8_t>(rng());
    return v;
}

void BM_rtp_parse(benchmark::State& state) {
    const auto payload = random_bytes(max_payload_size);
    std::vector<std::uint8_t> wire(1500);
    wire.resize(serialize(full_header(), payload, wire));
    for (auto _ : state) {
        packet_view p;
        benchmark::DoNotOptimize(parse(wire, p));
        benchmark::DoNotOptimize(p.transport_sequence());
        benchmark::DoNotOptimize(p.abs_capture_time());
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_rtp_parse);

void BM_rtp_serialize(benchmark::State& state) {
    const auto payload = random_bytes(max_payload_size);
    std::array<std::uint8_t, 1500> wire;
    header h = full_header();
    for (auto _ : state) {
        ++h.sequence;
        ++*h.transport_sequence;
        benchmark::DoNotOptimize(serialize(h, payload, wire));
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(payload.size()));
}
BENCHMARK(BM_rtp_serialize);

encoded_frame vp8_frame(std::size_t size) {
    encoded_frame f;
    f.data = random_bytes(size);
    f.data[0] |= 0x01; // inter frame
    f.rtp_timestamp = 3000;
    return f;
}

/// Packetise a 30 KB frame and write each packet (header + descriptor + data) to a datagram
/// buffer, as a sender does.
void BM_vp8_packetize_30k(benchmark::State& state) {
    const encoded_frame f = vp8_frame(30'000);
    vp8_payload::packetizer pk;
    std::array<std::uint8_t, 1500> wire;
    header h = full_header();
    std::size_t packets = 0;
    for (auto _ : state) {
        pk.packetize(f, max_payload_size, [&](bytes_view d, bytes_view data, bool marker) {
            h.marker = marker;
            ++h.sequence;
            const std::size_t n = write_header(h, wire);
            std::memcpy(wire.data() + n, d.data(), d.size());
            std::memcpy(wire.data() + n + d.size(), data.data(), data.size());
            benchmark::DoNotOptimize(wire.data());
            ++packets;
        });
        benchmark::ClobberMemory();
    }
    state.counters["packets/frame"] = static_cast<double>(packets) / static_cast<double>(state.iterations());
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(f.data.size()));
}
BENCHMARK(BM_vp8_packetize_30k);

/// Parse and reassemble the packets of a 30 KB frame; each iteration renumbers them (a new
/// frame, sequence numbers and timestamp moving on) so none is taken as a late duplicate.
void BM_vp8_depacketize_30k(benchmark::State& state) {
    const encoded_frame f = vp8_frame(30'000);
    vp8_payload::packetizer pk;
    std::vector<std::vector<std::uint8_t>> pkts;
    header h = full_header();
    pk.packetize(f, max_payload_size, [&](bytes_view d, bytes_view data, bool marker) {
        h.marker = marker;
        std::vector<std::uint8_t> w(header_size(h) + d.size() + data.size());
        const std::size_t n = write_header(h, w);
        std::memcpy(w.data() + n, d.data(), d.size());
        std::memcpy(w.data() + n + d.size(), data.data(), data.size());
        pkts.push_back(std::move(w));
    });
    vp8_payload::depacketizer dp;
    std::uint16_t seq = 0;
    std::uint32_t ts = 0;
    std::size_t frames = 0;
    for (auto _ : state) {
        ts += 3000;
        for (auto& w : pkts) { // 26 stores: noise next to the work measured
            store_be16(w.data() + 2, seq++);
            store_be32(w.data() + 4, ts);
        }
        for (const auto& w : pkts) {
            packet_view p;
            if (parse(w, p)) continue;
            dp.push(p, media_kind::video, [&](encoded_frame&& out) {
                benchmark::DoNotOptimize(out.data.data());
                ++frames;
            });
        }
    }
    if (frames != static_cast<std::size_t>(state.iterations())) state.SkipWithError("frames lost");
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(f.data.size()));
}
BENCHMARK(BM_vp8_depacketize_30k);

/// SR with two report blocks + SDES CNAME + NACK + PLI, the compound a receiver handles.
void BM_rtcp_compound_parse(benchmark::State& state) {
    std::array<std::uint8_t, 512> buf;
    std::span<std::uint8_t> out{buf};
    const std::array<rtcp::report_block, 2> blocks{};
    const std::array<std::uint16_t, 4> lost{100, 101, 105, 140};
    std::size_t n = 0;
    n += rtcp::write_sender_report({1, 2, 3, 4, 5, blocks}, out.subspan(n));
    n += rtcp::write_sdes_cname(1, "host@onair", out.subspan(n));
    n += rtcp::write_nack(1, 2, lost, out.subspan(n));
    n += rtcp::write_pli(1, 2, out.subspan(n));
    const bytes_view compound{buf.data(), n};
    std::size_t seen = 0;
    for (auto _ : state) {
        const auto ec = rtcp::parse_compound(compound, [&](const auto& p) {
            benchmark::DoNotOptimize(&p);
            ++seen;
        });
        benchmark::DoNotOptimize(ec);
    }
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(n));
}
BENCHMARK(BM_rtcp_compound_parse);

} // namespace
