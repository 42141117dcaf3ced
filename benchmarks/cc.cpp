// onair-bench-cc: congestion control on the RFC 8867 test cases, in simulated time.
//
// Each flow is a sender as the host runs it: qos::congestion_controller (pacer, transport-
// wide numbers stamped at egress, send-side estimator) fed by the receiver's
// qos::transport_feedback_generator through real RTCP bytes (built, then parsed with
// rtp::rtcp::parse_compound), every 50 ms. Media comes from a model encoder that produces,
// every 33 ms, a frame of the video share of the target (qos::split_bitrate) +-15 % and
// 20 ms audio packets, packetized as RTP with the transport-wide element. All flows share
// one bottleneck: transport::impairment, the model emulated_link runs (drop-tail queue in
// front of a serialising link with a capacity schedule), 50 ms one way each direction; the
// feedback path is not limited. Time advances in 1 ms steps; a run of 100 s takes well
// under a second of CPU, so every point is reproducible and seeds can be swept.
//
// Cases (RFC 8867 §5.1, §5.2, and a three-flow join on 3.5 Mbps after its §5.4 layout):
//   5.1  one flow; capacity 1 -> 2.5 -> 0.6 -> 1 Mbps at 0 / 40 / 60 / 80 s, 100 s
//   5.2  two flows; 4 -> 2 -> 3.5 -> 1 -> 2 Mbps at 0 / 25 / 50 / 75 / 100 s, 125 s
//   5.4  three flows joining at 0 / 20 / 40 s on 3.5 Mbps, 120 s
// Per phase: utilisation (bytes through the bottleneck / capacity x time), p50/p95 queuing
// delay of the packets offered, loss at the queue, time until the delivered rate (1 s
// window) first reaches 90 % of a raised capacity, time until the queue is under 20 ms
// after a drop, and Jain's fairness over the flows' throughput in the second half of the
// phase.
//
// fanout (fanout_case.hpp) runs in real time instead: a host with three simulcast encodings,
// a relay and three viewers behind 300 kbps, 1 Mbps and 4 Mbps, with and without per-viewer
// layer selection; per viewer the encoding, frames shown, freeze ratio and queue drops.
#include "common/cli.hpp"
#include "fanout_case.hpp"

#include <onair/core/packet_buffer.hpp>
#include <onair/qos/congestion_controller.hpp>
#include <onair/qos/transport_feedback_generator.hpp>
#include <onair/rtp/packet.hpp>
#include <onair/rtp/rtcp.hpp>
#include <onair/transport/detail/impairment.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <memory>
#include <queue>
#include <random>
#include <string>
#include <vector>

using namespace onair;
using namespace std::chrono_literals;

namespace {

using tp = std::chrono::steady_clock::time_point;
constexpr std::int64_t step_us = 1'000;
constexpr std::int64_t one_way_us = 50'000;

tp at(std::int64_t us) { return tp{} + std::chrono::microseconds(us); }

struct scenario {
    std::string name;
    double seconds = 100;
    std::vector<transport::rate_step> capacity; ///< kbps steps
    std::vector<double> joins;                  ///< flow start times, s
};

struct flow {
    packet_pool pool{64}; // first: the pacer's queued packets go back to it
    qos::congestion_controller cc;
    qos::transport_feedback_generator receiver;
    std::uint32_t ssrc = 0;
    std::uint16_t rtp_seq = 0;
    std::int64_t start_us = 0;
    std::int64_t next_video_us = 0, next_audio_us = 0;
    std::uint32_t frame = 0;
    std::mt19937 rng;
    std::vector<std::uint64_t> delivered_per_100ms; ///< bytes through the bottleneck
    explicit flow(const qos::congestion_controller_config& c, std::uint32_t s, std::int64_t start)
        : cc(c), ssrc(s), start_us(start), next_video_us(start), next_audio_us(start), rng(s) {}
};

struct arrival {
    std::int64_t at_us;
    std::size_t flow;
    std::uint16_t tseq;
    bool operator>(const arrival& o) const { return at_us > o.at_us; }
};
struct report {
    std::int64_t at_us;
    std::size_t flow;
    std::vector<std::uint8_t> bytes;
};

struct packet_log {
    std::int64_t offered_us;
    std::int64_t queue_us; ///< -1: dropped
    std::uint32_t bytes;
};

struct phase_result {
    double from_s = 0, to_s = 0, capacity_kbps = 0;
    int flows = 0;
    double utilisation = 0, q50 = 0, q95 = 0, loss = 0;
    double reach_s = -1;  ///< raised capacity: time to 90 %
    double drain_s = -1;  ///< dropped capacity: time to a queue under 20 ms
    double fairness = -1; ///< multi-flow phases
};

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<std::size_t>(p / 100 * static_cast<double>(v.size())))];
}

struct probe_options {
    double periodic_s = 2;
    double gain = 1.5;
};

std::vector<phase_result> run(const scenario& sc, std::uint64_t seed, bool verbose, const probe_options& probe, std::int64_t trace_us = 0) {
    transport::direction_config link;
    link.delay = std::chrono::microseconds(one_way_us);
    link.queue = 300ms;
    link.rate_kbps = sc.capacity.front().kbps;
    link.schedule = sc.capacity;
    transport::detail::impairment bottleneck(link, seed, at(0), "bottleneck");

    qos::congestion_controller_config cfg;
    cfg.bwe.start_bps = 300'000;
    cfg.bwe.min_bps = 50'000;
    cfg.bwe.max_bps = 10'000'000;
    cfg.bwe.periodic_probe = std::chrono::microseconds(static_cast<std::int64_t>(probe.periodic_s * 1e6));
    cfg.bwe.periodic_probe_gain = probe.gain;
    std::vector<std::unique_ptr<flow>> flows;
    for (std::size_t i = 0; i < sc.joins.size(); ++i)
        flows.push_back(std::make_unique<flow>(cfg, static_cast<std::uint32_t>(0x1000 + i * 16 + seed),
                                               static_cast<std::int64_t>(sc.joins[i] * 1e6)));
    const std::int64_t end_us = static_cast<std::int64_t>(sc.seconds * 1e6);
    for (auto& f : flows) f->delivered_per_100ms.assign(static_cast<std::size_t>(end_us / 100'000) + 1, 0);

    std::priority_queue<arrival, std::vector<arrival>, std::greater<>> arrivals;
    std::deque<report> reports;
    std::vector<packet_log> log;
    std::vector<std::pair<std::int64_t, double>> queue_samples; // every 10 ms

    auto make_packet = [](flow& f, std::size_t payload, std::uint8_t pt, std::uint32_t ts) {
        packet_ref p = f.pool.acquire();
        rtp::header h;
        h.payload_type = pt;
        h.sequence = f.rtp_seq++;
        h.timestamp = ts;
        h.ssrc = f.ssrc;
        h.transport_sequence = 0;
        const std::size_t n = rtp::write_header(h, p.capacity());
        std::fill_n(p.capacity().data() + n, payload, std::uint8_t{0x5a});
        p.resize(n + payload);
        return p;
    };

    for (std::int64_t now = 0; now <= end_us; now += step_us) {
        // Deliveries and feedback first: what arrived by now.
        while (!arrivals.empty() && arrivals.top().at_us <= now) {
            const arrival a = arrivals.top();
            arrivals.pop();
            flows[a.flow]->receiver.on_packet(a.tseq, at(a.at_us));
        }
        while (!reports.empty() && reports.front().at_us <= now) {
            report r = std::move(reports.front());
            reports.pop_front();
            flow& f = *flows[r.flow];
            rtp::rtcp::parse_counts counts;
            (void)rtp::rtcp::parse_compound(rtp::bytes_view(r.bytes.data(), r.bytes.size()),
                                            [&](const rtp::rtcp::feedback& fb) {
                                                if (fb.fmt == rtp::twcc::fmt) f.cc.on_feedback(fb.fci, at(now));
                                            },
                                            counts);
        }
        for (std::size_t i = 0; i < flows.size(); ++i) {
            flow& f = *flows[i];
            if (now < f.start_us) continue;
            if (f.receiver.due(at(now))) {
                f.receiver.build(at(now), 0x6f6e6169, f.ssrc, [&](rtp::bytes_view b) {
                    reports.push_back({now + one_way_us, i, std::vector<std::uint8_t>(b.begin(), b.end())});
                });
            }
            // The model encoder: audio every 20 ms, a video frame every 33.3 ms.
            const auto split = qos::split_bitrate(f.cc.target_bps(), 40'000, 0.0, 50'000, cfg.bwe.max_bps);
            while (f.next_audio_us <= now) {
                f.cc.enqueue(make_packet(f, 80, 111, static_cast<std::uint32_t>(f.next_audio_us)), qos::pacer_priority::audio, at(now));
                f.next_audio_us += 20'000;
            }
            while (f.next_video_us <= now) {
                const double jitter = std::uniform_real_distribution<>(0.85, 1.15)(f.rng);
                const auto bytes = static_cast<std::size_t>(static_cast<double>(split.video_bps) / 30.0 / 8.0 * jitter);
                const std::size_t packets = std::max<std::size_t>(1, (bytes + 1099) / 1100);
                for (std::size_t k = 0; k < packets; ++k)
                    f.cc.enqueue(make_packet(f, std::max<std::size_t>(bytes / packets, 1), 96, f.frame * 3000), qos::pacer_priority::video,
                                 at(now));
                ++f.frame;
                f.next_video_us = f.start_us + static_cast<std::int64_t>(f.frame) * 1'000'000 / 30;
            }
            f.cc.process(
                at(now),
                [&](std::span<const std::uint8_t> d) {
                    rtp::packet_view pv;
                    if (rtp::parse(d, pv)) return;
                    const auto v = bottleneck.offer(at(now), d.size());
                    const auto tseq = pv.transport_sequence().value_or(0);
                    if (v.copies == 0) {
                        log.push_back({now, -1, static_cast<std::uint32_t>(d.size())});
                        return;
                    }
                    const std::int64_t depart = std::chrono::duration_cast<std::chrono::microseconds>(v.depart[0] - tp{}).count();
                    const std::int64_t release = std::chrono::duration_cast<std::chrono::microseconds>(v.release[0] - tp{}).count();
                    log.push_back({now, depart - now, static_cast<std::uint32_t>(d.size())});
                    f.delivered_per_100ms[static_cast<std::size_t>(std::min(depart, end_us) / 100'000)] += d.size();
                    arrivals.push({release, i, tseq});
                },
                [&](std::size_t want) { return make_packet(f, std::min<std::size_t>(want, 1100), 97, 0); });
        }
        if (now % 10'000 == 0)
            queue_samples.push_back({now, static_cast<double>(bottleneck.stats(at(now)).queue_delay.count()) / 1000.0});
        if (trace_us > 0 && now % trace_us == 0) {
            std::printf("  t=%7.2fs cap %5.0f q %4.0f ms:", static_cast<double>(now) / 1e6, bottleneck.rate_at(at(now)), queue_samples.back().second);
            for (auto& f : flows) {
                const auto& st = f->cc.estimator().stats();
                // target, delay-based, loss-based, acknowledged (kbps), detector state, modified
                // trend against threshold (ms), queuing delay the estimator sees (ms)
                std::printf(" [%lld d%lld l%lld a%lld %c %.1f/%.1f q%lld]", static_cast<long long>(st.target_bps / 1000),
                            static_cast<long long>(st.delay_based_bps / 1000), static_cast<long long>(st.loss_based_bps / 1000),
                            static_cast<long long>(st.acked_bps / 1000), "nuo"[static_cast<int>(st.usage)], st.trend, st.threshold,
                            static_cast<long long>(st.queue_delay_us / 1000));
            }
            std::printf("\n");
        }
        if (verbose && now % 1'000'000 == 0) {
            std::printf("  t=%3llds cap %5.0f kbps q %4.0f ms:", static_cast<long long>(now / 1'000'000), bottleneck.rate_at(at(now)),
                        queue_samples.back().second);
            for (auto& f : flows) std::printf(" %6lld", static_cast<long long>(f->cc.target_bps() / 1000));
            std::printf("\n");
        }
    }

    // Phases: every capacity step and every join starts one.
    std::vector<double> bounds{0, sc.seconds};
    for (const auto& s : sc.capacity) bounds.push_back(static_cast<double>(s.at.count()) / 1e6);
    for (double j : sc.joins) bounds.push_back(j);
    std::sort(bounds.begin(), bounds.end());
    bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
    auto capacity_at = [&](double t) {
        double c = sc.capacity.front().kbps;
        for (const auto& s : sc.capacity)
            if (static_cast<double>(s.at.count()) / 1e6 <= t) c = s.kbps;
        return c;
    };
    std::vector<phase_result> out;
    for (std::size_t b = 0; b + 1 < bounds.size(); ++b) {
        phase_result r;
        r.from_s = bounds[b];
        r.to_s = bounds[b + 1];
        r.capacity_kbps = capacity_at(r.from_s);
        const auto from = static_cast<std::int64_t>(r.from_s * 1e6), to = static_cast<std::int64_t>(r.to_s * 1e6);
        for (const auto& f : flows) r.flows += f->start_us <= from ? 1 : 0;
        std::uint64_t bytes = 0;
        for (const auto& f : flows)
            for (std::int64_t k = from / 100'000; k < to / 100'000; ++k) bytes += f->delivered_per_100ms[static_cast<std::size_t>(k)];
        r.utilisation = static_cast<double>(bytes) * 8 / (r.capacity_kbps * 1000 * (r.to_s - r.from_s));
        std::vector<double> q;
        std::uint64_t offered = 0, dropped = 0;
        for (const auto& p : log) {
            if (p.offered_us < from || p.offered_us >= to) continue;
            ++offered;
            if (p.queue_us < 0) ++dropped;
            else q.push_back(static_cast<double>(p.queue_us) / 1000.0);
        }
        r.q50 = percentile(q, 50);
        r.q95 = percentile(q, 95);
        r.loss = offered ? static_cast<double>(dropped) / static_cast<double>(offered) : 0;
        const double before = b > 0 ? capacity_at(bounds[b - 1]) : 0;
        if (r.capacity_kbps > before) { // raised (or the start): time to 90 % over a 1 s window
            for (std::int64_t k = from / 100'000 + 10; k <= to / 100'000; ++k) {
                std::uint64_t win = 0;
                for (const auto& f : flows)
                    for (std::int64_t j = k - 10; j < k; ++j) win += f->delivered_per_100ms[static_cast<std::size_t>(j)];
                if (static_cast<double>(win) * 8 >= 0.9 * r.capacity_kbps * 1000) {
                    r.reach_s = static_cast<double>(k * 100'000 - from) / 1e6;
                    break;
                }
            }
        } else if (r.capacity_kbps < before) { // dropped: time to a queue under 20 ms
            for (const auto& [t, qd] : queue_samples) {
                if (t < from + 10'000 || t >= to) continue;
                if (qd < 20) {
                    r.drain_s = static_cast<double>(t - from) / 1e6;
                    break;
                }
            }
        }
        if (r.flows > 1) { // Jain's index over the second half of the phase
            double sum = 0, sq = 0;
            int n = 0;
            for (const auto& f : flows) {
                if (f->start_us > from) continue;
                double x = 0;
                for (std::int64_t k = (from + to) / 2 / 100'000; k < to / 100'000; ++k)
                    x += static_cast<double>(f->delivered_per_100ms[static_cast<std::size_t>(k)]);
                sum += x;
                sq += x * x;
                ++n;
            }
            r.fairness = sq > 0 ? sum * sum / (n * sq) : 0;
        }
        out.push_back(r);
    }
    return out;
}

} // namespace

int main(int argc, char** argv) {
    onair_examples::command_line cli("onair-bench-cc", "congestion control on RFC 8867 cases, simulated time",
                                     {{"only", "NAME", "run only case NAME (5.1, 5.2, 5.4 or fanout)"},
                                      {"fanout-seconds", "S", "length of each fan-out run, real time (default 20)"},
                                      {"seed", "N", "seed of the bottleneck and the model encoders (default 1)"},
                                      {"periodic-probe", "S", "probe after S seconds without over-use or probe (default: the estimator's, 2; 0: off)"},
                                      {"probe-gain", "G", "a periodic probe asks for G times the target (default: the estimator's, 1.5)"},
                                      {"verbose", "", "print every flow's target once a simulated second"},
                                      {"trace-ms", "MS", "print every flow's estimator state every MS simulated milliseconds"}});
    return onair_examples::guarded_main(cli, argc, argv, [&]() -> int {
        const auto seed = cli.number<std::uint64_t>("seed", 1, 0, ~std::uint64_t{0});
        const std::string only = cli.get("only");
        probe_options probe;
        const qos::send_side_bwe_config defaults;
        probe.periodic_s = cli.number<double>("periodic-probe", static_cast<double>(defaults.periodic_probe.count()) / 1e6, 0, 60);
        probe.gain = cli.number<double>("probe-gain", defaults.periodic_probe_gain, 1.05, 8);
        const auto trace_ms = cli.number<std::int64_t>("trace-ms", 0, 0, 60'000);
        auto s = [](double sec) { return std::chrono::microseconds(static_cast<std::int64_t>(sec * 1e6)); };
        const std::vector<scenario> cases{
            {"5.1", 100, {{s(0), 1000}, {s(40), 2500}, {s(60), 600}, {s(80), 1000}}, {0}},
            {"5.2", 125, {{s(0), 4000}, {s(25), 2000}, {s(50), 3500}, {s(75), 1000}, {s(100), 2000}}, {0, 0}},
            {"5.4", 120, {{s(0), 3500}}, {0, 20, 40}},
        };
        std::printf("onair-bench-cc: qos::congestion_controller per flow, shared drop-tail bottleneck (300 ms queue), "
                    "50 ms one way, feedback every 50 ms, simulated time, seed %llu\n\n",
                    static_cast<unsigned long long>(seed));
        std::printf("| case | phase | capacity | flows | utilisation | queue p50 / p95 | loss | 90 %% of raised capacity | drained after drop | fairness |\n");
        std::printf("|---|---|---|---|---|---|---|---|---|---|\n");
        bool any = false;
        for (const auto& c : cases) {
            if (!only.empty() && only != c.name) continue;
            any = true;
            for (const auto& r : run(c, seed, cli.has("verbose"), probe, trace_ms * 1000)) {
                char reach[32] = "", drain[32] = "", fair[32] = "";
                if (r.reach_s >= 0) std::snprintf(reach, sizeof reach, "%.1f s", r.reach_s);
                else if (r.drain_s < 0 && r.fairness < 0 && r.capacity_kbps > 0) std::snprintf(reach, sizeof reach, "-");
                if (r.drain_s >= 0) std::snprintf(drain, sizeof drain, "%.1f s", r.drain_s);
                if (r.fairness >= 0) std::snprintf(fair, sizeof fair, "%.3f", r.fairness);
                std::printf("| %s | %.0f-%.0f s | %.0f kbps | %d | %.1f %% | %.0f / %.0f ms | %.2f %% | %s | %s | %s |\n", c.name.c_str(),
                            r.from_s, r.to_s, r.capacity_kbps, r.flows, r.utilisation * 100, r.q50, r.q95, r.loss * 100, reach, drain,
                            fair);
            }
        }
        if (only.empty() || only == "fanout") {
            any = true;
            onair_bench::run_fanout_case(cli.number<double>("fanout-seconds", 20, 3, 600));
        }
        if (!any) throw onair_examples::usage_error("--only: no case named '" + only + "'");
        return 0;
    });
}
