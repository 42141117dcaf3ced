#include <onair/qos/pacer.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <vector>

using namespace onair;
using namespace std::chrono_literals;
using qos::pacer;
using qos::pacer_priority;
using qos::pacer_send_info;
using time_point = pacer::time_point;

namespace {

const time_point t0 = time_point{} + 1h;

struct sent_packet {
    std::uint32_t tag;
    std::size_t size;
    time_point at;
    pacer_send_info info;
    bool padding; // from the pad callback
};

// Builds packets whose first four bytes carry a tag, and records what the pacer sends.
struct harness {
    packet_pool pool{512};
    pacer p;
    std::vector<sent_packet> sent;
    std::size_t pad_calls = 0;
    std::size_t pad_reply = 0;        // 0: send exactly what is asked
    bool pad_refuses = false;
    std::size_t pad_while_queued = 0; // pad asked while media was queued (must stay 0)

    explicit harness(const qos::pacer_config& cfg = {}) : p(cfg) { sent.reserve(1 << 16); }

    packet_ref make(std::uint32_t tag, std::size_t size) {
        packet_ref r = pool.acquire();
        r.resize(size);
        std::memcpy(r.bytes().data(), &tag, sizeof tag);
        return r;
    }
    bool push(std::uint32_t tag, pacer_priority prio, time_point now, std::size_t size = 1000) {
        return p.enqueue(make(tag, size), prio, now);
    }

    // Returns the bytes sent (media and padding) by this call.
    std::size_t process(time_point now) {
        std::size_t bytes = 0;
        p.process(
            now,
            [&](packet_ref&& r, const pacer_send_info& info) {
                std::uint32_t tag = 0;
                std::memcpy(&tag, r.bytes().data(), sizeof tag);
                sent.push_back({tag, r.size(), now, info, false});
                bytes += r.size();
            },
            [&](std::size_t want, const pacer_send_info& info) -> std::size_t {
                ++pad_calls;
                if (p.queued_packets() != 0) ++pad_while_queued;
                if (pad_refuses) return 0;
                const std::size_t n = pad_reply ? pad_reply : want;
                sent.push_back({0xFFFFFFFFu, n, now, info, true});
                bytes += n;
                return n;
            });
        return bytes;
    }

    std::size_t bytes_between(time_point from, time_point to, bool padding_only = false) const {
        std::size_t n = 0;
        for (const auto& s : sent)
            if (s.at >= from && s.at < to && (!padding_only || s.padding)) n += s.size;
        return n;
    }
    std::vector<std::uint32_t> tags() const {
        std::vector<std::uint32_t> out;
        for (const auto& s : sent)
            if (!s.padding) out.push_back(s.tag);
        return out;
    }
};

// Keeps about `ahead` worth of `size`-byte video packets queued at `bps`.
void top_up(harness& h, std::uint32_t& tag, time_point now, std::int64_t bps, std::size_t size,
            std::chrono::milliseconds ahead) {
    const auto want = static_cast<std::size_t>(bps / 8 * ahead.count() / 1000);
    while (h.p.queued_bytes() < want) h.push(tag++, pacer_priority::video, now, size);
}

enum class driver { at_next_process_time, every_ms, every_5ms };

} // namespace

TEST_CASE("pacer: the sent rate over one second matches the pacing rate") {
    struct rate_case { std::int64_t bps; std::size_t size; };
    for (const rate_case rc : {rate_case{300'000, 200}, rate_case{1'000'000, 1000}, rate_case{5'000'000, 1200}}) {
        for (const driver d : {driver::at_next_process_time, driver::every_ms, driver::every_5ms}) {
            CAPTURE(rc.bps);
            CAPTURE(static_cast<int>(d));
            harness h;
            h.p.set_rates(rc.bps, 0);
            std::uint32_t tag = 0;
            time_point now = t0;
            const time_point end = t0 + 1s;
            while (now < end) {
                top_up(h, tag, now, rc.bps, rc.size, 100ms);
                h.process(now);
                if (d == driver::at_next_process_time) {
                    const time_point next = h.p.next_process_time(now);
                    REQUIRE(next > now);
                    now = next;
                } else {
                    now += d == driver::every_ms ? 1ms : 5ms;
                }
            }
            const double expected = static_cast<double>(rc.bps) / 8.0;
            const auto got = static_cast<double>(h.bytes_between(t0, end));
            CHECK(got == doctest::Approx(expected).epsilon(0.03));
            CHECK(h.p.stats().queue_time_boosts == 0);
            CHECK(h.p.stats().padding_packets == 0);
        }
    }
}

TEST_CASE("pacer: no burst exceeds one interval's budget plus one packet, whatever the call times") {
    const std::int64_t bps = 2'000'000;
    const std::size_t size = 1200;
    const std::size_t cap = static_cast<std::size_t>(bps / 8 * 5 / 1000); // 5 ms worth
    harness h;
    h.p.set_rates(bps, 0);
    std::uint32_t tag = 0;
    std::uint32_t rng = 12345;
    time_point now = t0;
    std::size_t largest = 0;
    while (now < t0 + 2s) {
        top_up(h, tag, now, bps, size, 60ms);
        const std::size_t burst = h.process(now);
        largest = std::max(largest, burst);
        CHECK(burst <= cap + size);
        rng = rng * 1103515245u + 12345u;
        now += std::chrono::microseconds(500 + (rng >> 8) % 20'000); // 0.5 to 20.5 ms
    }
    CHECK(largest > cap); // the bound is reached, so the check above means something
    // Late calls lose budget (capped), never gain it.
    CHECK(h.bytes_between(t0, now) <= static_cast<std::size_t>(bps / 8 * 2) + cap + size);
}

TEST_CASE("pacer: strict priority between classes, audio first") {
    harness h;
    h.p.set_rates(10'000'000, 0);
    h.push(1, pacer_priority::video, t0);
    h.push(2, pacer_priority::fec, t0);
    h.push(3, pacer_priority::padding, t0);
    h.push(4, pacer_priority::retransmission, t0);
    h.push(5, pacer_priority::audio, t0);
    h.process(t0);
    CHECK(h.tags() == std::vector<std::uint32_t>{5, 4, 1, 2, 3});
    REQUIRE(h.sent.size() == 5);
    CHECK(h.sent[0].info.priority == pacer_priority::audio);
    CHECK(h.sent[1].info.priority == pacer_priority::retransmission);
    CHECK(h.sent[2].info.priority == pacer_priority::video);
    CHECK(h.sent[3].info.priority == pacer_priority::fec);
    CHECK(h.sent[4].info.priority == pacer_priority::padding);
    for (const auto& s : h.sent) CHECK(s.info.probe_cluster_id == -1);
    CHECK(h.p.stats().sent_by_priority[static_cast<std::size_t>(pacer_priority::audio)] == 1);

    SUBCASE("also one packet at a time, with later arrivals overtaking lower classes") {
        harness g;
        g.p.set_rates(100'000, 0); // one 1000-byte packet per 80 ms
        g.push(1, pacer_priority::video, t0);
        g.push(2, pacer_priority::fec, t0);
        g.push(3, pacer_priority::video, t0);
        g.process(t0);                                // sends 1, then in debt
        CHECK(g.tags() == std::vector<std::uint32_t>{1});
        g.push(4, pacer_priority::retransmission, t0 + 1ms);
        g.push(5, pacer_priority::audio, t0 + 2ms);
        time_point now = t0;
        while (g.p.queued_packets() > 0) {
            now = g.p.next_process_time(now);
            g.process(now);
        }
        CHECK(g.tags() == std::vector<std::uint32_t>{1, 5, 4, 3, 2});
        // One packet per process call at this rate.
        for (std::size_t i = 1; i < g.sent.size(); ++i) CHECK(g.sent[i].at > g.sent[i - 1].at);
    }
}

TEST_CASE("pacer: FIFO within a class") {
    harness h;
    h.p.set_rates(50'000'000, 0);
    for (std::uint32_t i = 0; i < 10; ++i) {
        h.push(100 + i, pacer_priority::fec, t0 + std::chrono::microseconds(i));
        h.push(i, pacer_priority::video, t0 + std::chrono::microseconds(i));
        h.push(200 + i, pacer_priority::retransmission, t0 + std::chrono::microseconds(i));
    }
    time_point now = t0 + 10us;
    while (h.p.queued_packets() > 0) {
        h.process(now);
        now += 5ms;
    }
    std::vector<std::uint32_t> expected;
    for (std::uint32_t i = 0; i < 10; ++i) expected.push_back(200 + i);
    for (std::uint32_t i = 0; i < 10; ++i) expected.push_back(i);
    for (std::uint32_t i = 0; i < 10; ++i) expected.push_back(100 + i);
    CHECK(h.tags() == expected);
}

TEST_CASE("pacer: a full queue drops the oldest packet of the lowest class, never audio") {
    qos::pacer_config cfg;
    cfg.max_packets = 4;
    harness h(cfg);
    h.p.set_rates(1'000'000, 0);
    CHECK(h.push(1, pacer_priority::audio, t0));
    CHECK(h.push(2, pacer_priority::video, t0));
    CHECK(h.push(3, pacer_priority::video, t0));
    CHECK(h.push(4, pacer_priority::fec, t0));
    CHECK(h.p.stats().dropped_packets == 0);

    CHECK(h.push(5, pacer_priority::video, t0));           // evicts fec 4
    CHECK(h.p.queued_packets(pacer_priority::fec) == 0);
    CHECK(h.push(6, pacer_priority::retransmission, t0));  // evicts the oldest video, 2
    CHECK_FALSE(h.push(7, pacer_priority::padding, t0));   // lower than anything queued: refused
    CHECK_FALSE(h.push(8, pacer_priority::fec, t0));
    CHECK(h.p.stats().dropped_packets == 4);
    CHECK(h.p.stats().dropped_bytes == 4000);
    CHECK(h.p.stats().dropped_by_priority[static_cast<std::size_t>(pacer_priority::fec)] == 2);
    CHECK(h.p.stats().dropped_by_priority[static_cast<std::size_t>(pacer_priority::video)] == 1);
    CHECK(h.p.stats().dropped_by_priority[static_cast<std::size_t>(pacer_priority::padding)] == 1);

    CHECK(h.push(9, pacer_priority::audio, t0));   // evicts video 3
    CHECK(h.push(10, pacer_priority::audio, t0));  // evicts video 5
    CHECK(h.push(11, pacer_priority::audio, t0));  // evicts rtx 6
    CHECK(h.p.stats().dropped_by_priority[static_cast<std::size_t>(pacer_priority::audio)] == 0);
    CHECK(h.p.queued_packets(pacer_priority::audio) == 4);
    // A queue full of audio: the new audio packet is refused, no queued audio is evicted.
    CHECK_FALSE(h.push(12, pacer_priority::audio, t0));
    CHECK(h.p.stats().dropped_by_priority[static_cast<std::size_t>(pacer_priority::audio)] == 1);
    CHECK(h.p.stats().dropped_packets == 8);
    CHECK(h.p.queued_packets() == 4);
    CHECK(h.p.queued_bytes() == 4000);
    // Evicted packets went back to the pool at once.
    CHECK(h.pool.in_use() == 4);

    time_point now = t0;
    while (h.p.queued_packets() > 0) {
        h.process(now);
        now += 5ms;
    }
    CHECK(h.tags() == std::vector<std::uint32_t>{1, 9, 10, 11});
    CHECK(h.pool.in_use() == 0);

    // Within the victim class it is the oldest that goes.
    qos::pacer_config small;
    small.max_packets = 3;
    harness g(small);
    g.p.set_rates(10'000'000, 0);
    for (std::uint32_t i = 1; i <= 3; ++i) g.push(i, pacer_priority::video, t0 + std::chrono::milliseconds(i));
    CHECK(g.push(4, pacer_priority::video, t0 + 4ms));
    CHECK(g.push(5, pacer_priority::video, t0 + 5ms));
    CHECK(g.p.queue_delay(t0 + 5ms) == 2ms); // packet 3 is now the oldest
    g.process(t0 + 5ms);
    CHECK(g.tags() == std::vector<std::uint32_t>{3, 4, 5});
}

TEST_CASE("pacer: a backlog beyond max_queue_time drains within about max_queue_time") {
    harness h; // max_packets 2048, max_queue_time 2 s
    const std::int64_t bps = 1'000'000;
    h.p.set_rates(bps, 0);
    const std::size_t n = 2000; // 2 MB: 16 s at the pacing rate
    for (std::uint32_t i = 0; i < n; ++i) REQUIRE(h.push(i, pacer_priority::video, t0, 1000));
    time_point now = t0;
    std::chrono::microseconds worst_delay{0};
    for (;;) {
        worst_delay = std::max(worst_delay, h.p.queue_delay(now));
        h.process(now);
        if (h.p.queued_packets() == 0) break;
        const time_point next = h.p.next_process_time(now);
        REQUIRE(next > now);
        now = next;
        REQUIRE(now < t0 + 20s);
    }
    CHECK(h.p.next_process_time(now) == time_point::max());
    const auto drained = h.sent.back().at - t0;
    CHECK(drained <= 2s + 10ms);
    CHECK(drained >= 1900ms); // just fast enough, not a flush
    CHECK(worst_delay <= 2s + 10ms);
    CHECK(h.p.stats().queue_time_boosts > 0);
    CHECK(h.p.stats().max_effective_bps >= 7'900'000); // 16 Mbit in 2 s
    CHECK(h.p.stats().max_effective_bps <= 9'000'000);
    CHECK(h.tags().size() == n);
    CHECK(h.p.stats().dropped_packets == 0);

    SUBCASE("a backlog that fits is sent at the pacing rate") {
        harness g;
        g.p.set_rates(bps, 0);
        for (std::uint32_t i = 0; i < 150; ++i) g.push(i, pacer_priority::video, t0, 1000); // 1.2 s
        time_point t = t0;
        for (;;) {
            g.process(t);
            if (g.p.queued_packets() == 0) break;
            t = g.p.next_process_time(t);
        }
        CHECK(g.p.stats().queue_time_boosts == 0);
        CHECK(g.sent.back().at - t0 >= 1150ms);
        CHECK(g.sent.back().at - t0 <= 1210ms);
    }
}

TEST_CASE("pacer: padding only with an empty queue and padding_bps > 0, at about padding_bps") {
    SUBCASE("empty queue: padding at its rate") {
        harness h;
        h.p.set_rates(2'000'000, 500'000);
        time_point now = t0;
        REQUIRE(h.p.next_process_time(now) == now); // padding wanted: work to do
        while (now < t0 + 1s) {
            h.process(now);
            now = h.p.next_process_time(now);
        }
        CHECK(static_cast<double>(h.bytes_between(t0, t0 + 1s, true)) == doctest::Approx(62'500).epsilon(0.03));
        for (const auto& s : h.sent) {
            CHECK(s.padding);
            CHECK(s.size <= max_datagram_size);
            CHECK(s.info.priority == pacer_priority::padding);
            CHECK(s.info.probe_cluster_id == -1);
        }
    }
    SUBCASE("a callback sending more than asked does not raise the rate") {
        harness h;
        h.p.set_rates(2'000'000, 500'000);
        h.pad_reply = 300;
        for (time_point now = t0; now < t0 + 1s; now += 5ms) h.process(now);
        CHECK(static_cast<double>(h.bytes_between(t0, t0 + 1s, true)) == doctest::Approx(62'500).epsilon(0.05));
    }
    SUBCASE("no padding rate: never asked, and nothing to do") {
        harness h;
        h.p.set_rates(2'000'000, 0);
        CHECK(h.p.next_process_time(t0) == time_point::max());
        for (time_point now = t0; now < t0 + 1s; now += 5ms) h.process(now);
        CHECK(h.pad_calls == 0);
    }
    SUBCASE("a backlog suppresses padding") {
        harness h;
        h.p.set_rates(1'000'000, 500'000);
        std::uint32_t tag = 0;
        for (time_point now = t0; now < t0 + 1s; now += 5ms) {
            top_up(h, tag, now, 1'000'000, 1000, 50ms);
            h.process(now);
        }
        CHECK(h.pad_calls == 0);
        CHECK(h.p.stats().padding_bytes == 0);
    }
    SUBCASE("media below the padding rate is topped up to it") {
        harness h;
        h.p.set_rates(2'000'000, 500'000);
        std::uint32_t tag = 0;
        for (time_point now = t0; now < t0 + 1s; now += 5ms) {
            if ((now - t0) % 40ms == 0ms) h.push(tag++, pacer_priority::video, now, 1000); // 200 kbps
            h.process(now);
        }
        CHECK(h.pad_while_queued == 0);
        CHECK(h.tags().size() == 25);
        CHECK(h.p.stats().padding_bytes > 0);
        CHECK(static_cast<double>(h.bytes_between(t0, t0 + 1s)) == doctest::Approx(62'500).epsilon(0.08));
    }
}

TEST_CASE("pacer: a probe cluster sends at its rate, tags its packets and ends after min_bytes and min_duration") {
    harness h;
    h.p.set_rates(1'000'000, 0);
    for (std::uint32_t i = 0; i < 4; ++i) h.push(i, pacer_priority::video, t0, 1000);
    REQUIRE(h.p.add_probe_cluster(7, 4'000'000, 10'000, 15ms));
    CHECK(h.p.probing());
    time_point now = t0;
    for (;;) {
        h.process(now);
        if (!h.p.probing()) break;
        now = h.p.next_process_time(now);
        REQUIRE(now < t0 + 1s);
    }
    std::vector<const sent_packet*> probe;
    for (const auto& s : h.sent)
        if (s.info.probe_cluster_id == 7) probe.push_back(&s);
        else CHECK(s.info.probe_cluster_id == -1);
    REQUIRE(probe.size() > 4);
    // Queued media first, then padding, all tagged.
    for (std::size_t i = 0; i < 4; ++i) {
        CHECK_FALSE(probe[i]->padding);
        CHECK(probe[i]->tag == i);
    }
    for (std::size_t i = 4; i < probe.size(); ++i) {
        CHECK(probe[i]->padding);
        CHECK(probe[i]->size >= 1000); // useful pieces, never a byte or two
    }

    std::size_t bytes = 0;
    for (const auto* s : probe) bytes += s->size;
    const auto duration = probe.back()->at - probe.front()->at;
    CHECK(bytes >= 10'000);
    CHECK(duration >= 15ms);
    CHECK(bytes <= 10'000 + 2 * max_datagram_size); // ended as soon as both were met
    // Rate as a receiver would measure it: all but the last packet over the duration.
    const std::size_t before_last = bytes - probe.back()->size;
    const double bps = static_cast<double>(before_last) * 8.0 /
                       std::chrono::duration<double>(duration).count();
    CHECK(bps == doctest::Approx(4'000'000).epsilon(0.15));
    CHECK(h.p.stats().probe_clusters_completed == 1);
    CHECK(h.p.stats().probe_packets == probe.size());
    CHECK(h.p.stats().probe_bytes == bytes);

    // After the cluster, media is paced (and untagged) again, without an extra burst.
    for (std::uint32_t i = 0; i < 20; ++i) h.push(100 + i, pacer_priority::video, now, 1000);
    const std::size_t before = h.sent.size();
    const std::size_t first = h.process(now);
    CHECK(first <= 625 + 1000);
    CHECK(h.sent.size() > before);
    CHECK(h.sent.back().info.probe_cluster_id == -1);
}

TEST_CASE("pacer: media queued when a probe ends is paced from an empty budget, without a pause") {
    harness h;
    h.p.set_rates(1'000'000, 0); // 625 bytes per interval
    std::uint32_t tag = 0;
    for (; tag < 200; ++tag) h.push(tag, pacer_priority::video, t0, 100);
    REQUIRE(h.p.add_probe_cluster(5, 4'000'000, 5000, 10ms));
    time_point now = t0;
    for (;;) {
        h.process(now);
        if (!h.p.probing()) break;
        now = h.p.next_process_time(now);
        REQUIRE(now < t0 + 1s);
    }
    REQUIRE(h.p.queued_packets() > 0);
    // In the call that ended the cluster: at most one untagged packet after its last probe packet.
    std::size_t untagged_at_end = 0;
    for (const auto& s : h.sent)
        if (s.at == now && s.info.probe_cluster_id == -1) untagged_at_end += s.size;
    CHECK(untagged_at_end <= 100);
    // The probe's bytes are not a debt of the media budget: the next interval sends as usual.
    const std::size_t next = h.process(now + 5ms);
    CHECK(next >= 600);
    CHECK(next <= 700);
    CHECK(h.sent.back().info.probe_cluster_id == -1);
}

TEST_CASE("pacer: probe clusters run one after another; the longer of bytes and duration wins") {
    harness h;
    h.p.set_rates(1'000'000, 0);
    REQUIRE(h.p.add_probe_cluster(1, 2'000'000, 1, 30ms));     // duration dominates
    REQUIRE(h.p.add_probe_cluster(2, 8'000'000, 20'000, 1ms)); // bytes dominate
    time_point now = t0;
    for (;;) {
        h.process(now);
        if (!h.p.probing()) break;
        now = h.p.next_process_time(now);
        REQUIRE(now < t0 + 1s);
    }
    time_point first1 = time_point::max(), last1{}, first2 = time_point::max(), last2{};
    std::size_t bytes1 = 0, bytes2 = 0;
    for (const auto& s : h.sent) {
        REQUIRE(s.padding);
        if (s.info.probe_cluster_id == 1) {
            first1 = std::min(first1, s.at);
            last1 = std::max(last1, s.at);
            bytes1 += s.size;
        } else {
            REQUIRE(s.info.probe_cluster_id == 2);
            first2 = std::min(first2, s.at);
            last2 = std::max(last2, s.at);
            bytes2 += s.size;
        }
    }
    CHECK(last1 - first1 >= 30ms);
    CHECK(last1 - first1 <= 35ms);
    CHECK(static_cast<double>(bytes1) == doctest::Approx(2'000'000 / 8 * 0.030).epsilon(0.2));
    CHECK(first2 > last1);
    CHECK(bytes2 >= 20'000);
    CHECK(last2 - first2 >= 15ms); // 20 kB at 8 Mbps takes 20 ms, not one burst
    CHECK(h.p.stats().probe_clusters_completed == 2);

    SUBCASE("a cluster waits while there is nothing to probe with, then does not burst") {
        harness g;
        g.p.set_rates(1'000'000, 0);
        g.pad_refuses = true;
        REQUIRE(g.p.add_probe_cluster(3, 4'000'000, 5000, 10ms));
        for (time_point t = t0; t < t0 + 200ms; t += 5ms) g.process(t);
        CHECK(g.p.probing());
        CHECK(g.sent.empty());
        for (std::uint32_t i = 0; i < 20; ++i) g.push(i, pacer_priority::video, t0 + 200ms, 1000);
        CHECK(g.process(t0 + 200ms) <= 2500 + 1000); // at most one interval at the probe rate
        CHECK(g.sent.back().info.probe_cluster_id == 3);
    }
    SUBCASE("the pending clusters are bounded") {
        harness g;
        for (std::int32_t i = 0; i < static_cast<std::int32_t>(pacer::max_probe_clusters); ++i)
            CHECK(g.p.add_probe_cluster(i, 1'000'000, 100, 1ms));
        CHECK_FALSE(g.p.add_probe_cluster(99, 1'000'000, 100, 1ms));
        CHECK_FALSE(harness{}.p.add_probe_cluster(1, 0, 100, 1ms));
    }
}

TEST_CASE("pacer: an idle pacer does not burst after the idle time") {
    for (const bool called_while_idle : {true, false}) {
        CAPTURE(called_while_idle);
        harness h;
        h.p.set_rates(1'000'000, 0);
        for (std::uint32_t i = 0; i < 5; ++i) h.push(i, pacer_priority::video, t0, 1000);
        time_point now = t0;
        for (;;) {
            h.process(now);
            if (h.p.queued_packets() == 0) break;
            now = h.p.next_process_time(now);
        }
        CHECK(h.p.next_process_time(now) == time_point::max());
        const time_point wake = now + 1s;
        if (called_while_idle)
            for (; now < wake; now += 5ms) h.process(now);
        for (std::uint32_t i = 0; i < 100; ++i) h.push(100 + i, pacer_priority::video, wake, 1000);
        CHECK(h.p.next_process_time(wake) == wake);
        CHECK(h.process(wake) <= 625 + 1000);
        // And from there on the pacing rate, not a catch-up.
        now = wake;
        while (now < wake + 200ms) {
            now = h.p.next_process_time(now);
            h.process(now);
        }
        CHECK(h.bytes_between(wake, wake + 200ms) <= 25'000 + 625 + 1000);
    }
}

TEST_CASE("pacer: audio bypasses pacing only when configured to") {
    for (const bool paced : {true, false}) {
        CAPTURE(paced);
        qos::pacer_config cfg;
        cfg.pace_audio = paced;
        harness h(cfg);
        h.p.set_rates(100'000, 0);
        for (std::uint32_t i = 0; i < 5; ++i) h.push(i, pacer_priority::video, t0, 1000);
        h.process(t0); // one video packet: 80 ms of debt
        REQUIRE(h.tags() == std::vector<std::uint32_t>{0});
        const time_point t = t0 + 1ms;
        h.push(50, pacer_priority::audio, t, 100);
        if (paced) {
            CHECK(h.p.next_process_time(t) > t + 50ms);
            h.process(t);
            CHECK(h.tags() == std::vector<std::uint32_t>{0});
            h.process(h.p.next_process_time(t));
            CHECK(h.tags() == std::vector<std::uint32_t>{0, 50}); // first once the budget allows
        } else {
            CHECK(h.p.next_process_time(t) == t);
            h.process(t);
            CHECK(h.tags() == std::vector<std::uint32_t>{0, 50}); // at once, despite the debt
            CHECK(h.sent.back().info.priority == pacer_priority::audio);
            // It was charged: the next video packet waits 82 ms more, not 74 ms.
            CHECK(h.p.next_process_time(t) >= t0 + 82ms);
        }
    }
}

TEST_CASE("pacer: queue delay is the oldest packet's age, and sending returns buffers to the pool") {
    harness h;
    h.p.set_rates(1'000'000, 0);
    CHECK(h.p.queue_delay(t0) == 0us);
    h.push(1, pacer_priority::fec, t0);
    h.push(2, pacer_priority::audio, t0 + 3ms);
    CHECK(h.p.queue_delay(t0 + 10ms) == 10ms); // the fec packet, though audio heads the queue
    CHECK(h.p.queued_bytes() == 2000);
    CHECK(h.pool.in_use() == 2);
    CHECK_FALSE(h.p.enqueue(packet_ref{}, pacer_priority::video, t0));
    h.process(t0 + 10ms);
    h.process(t0 + 20ms);
    CHECK(h.p.queued_packets() == 0);
    CHECK(h.pool.in_use() == 0);
    CHECK(h.p.stats().sent_packets == 2);
    CHECK(h.p.stats().sent_bytes == 2000);
    CHECK(h.p.stats().enqueued == 2);
}
