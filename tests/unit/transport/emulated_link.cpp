// emulated_link over real transports: both directions in simulated time (sim_clock over the
// memory transport), the same link in real time over memory and over UDP, and the claim that
// both clocks share the impairment logic (same seed -> same datagrams lost).
#include <onair/transport/emulated_link.hpp>

#include <onair/transport/memory.hpp>
#include <onair/transport/udp.hpp>

#include <doctest/doctest.h>

#include <asio/io_context.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <functional>
#include <map>
#include <vector>

using namespace std::chrono_literals;
using namespace onair::transport;
using onair::real_clock;
using onair::sim_clock;
using time_point = std::chrono::steady_clock::time_point;

static_assert(transport<emulated_link<udp>>);
static_assert(transport<emulated_link<memory, sim_clock>>);
static_assert(transport<emulated_link<emulated_link<memory>>>); // layers stack
static_assert(sizeof(emulated_link<memory, sim_clock>) > 0);

namespace {

double ms(std::chrono::steady_clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

/// A datagram carrying its sequence number, padded to `size`.
std::vector<std::uint8_t> datagram(std::uint32_t seq, std::size_t size = 200) {
    std::vector<std::uint8_t> d(size, 0xab);
    std::memcpy(d.data(), &seq, sizeof seq);
    return d;
}

/// Receives on `t` until closed, recording each datagram's sequence number and arrival time.
template <class Transport, class Clock>
struct recorder {
    recorder(Transport& transport, Clock& c) : t(transport), clock(c) {}
    Transport& t;
    Clock& clock;
    std::array<std::uint8_t, 1500> buf{};
    endpoint from;
    std::vector<std::pair<std::uint32_t, time_point>> got;
    std::error_code last_error;

    void start() {
        t.async_receive_from(asio::buffer(buf), from, [this](std::error_code ec, std::size_t n) {
            if (ec) {
                last_error = ec;
                return;
            }
            REQUIRE(n >= 4);
            std::uint32_t seq;
            std::memcpy(&seq, buf.data(), sizeof seq);
            got.emplace_back(seq, clock.now());
            start();
        });
    }
    std::vector<std::uint32_t> seqs() const {
        std::vector<std::uint32_t> s;
        for (const auto& g : got) s.push_back(g.first);
        return s;
    }
};

struct sim_env {
    asio::io_context io;
    sim_clock clock;
    memory_network net;
};

} // namespace

TEST_CASE("emulated_link: with nothing configured datagrams pass at once, without timers") {
    sim_env e;
    emulated_link<memory, sim_clock> a(e.clock, link_config{}, e.io, e.net);
    memory b(e.io, e.net);
    recorder rb{b, e.clock};
    rb.start();
    recorder ra{a, e.clock};
    ra.start();
    for (std::uint32_t i = 0; i < 10; ++i) {
        CHECK(!a.send_to(asio::buffer(datagram(i)), b.local_endpoint()));
        b.send_to(asio::buffer(datagram(100 + i)), a.local_endpoint());
    }
    CHECK(e.clock.pending() == 0);
    e.clock.run_for(e.io, 0ms);
    CHECK(rb.got.size() == 10);
    CHECK(ra.got.size() == 10);
    CHECK(a.send_stats().delivered == 10);
    CHECK(a.receive_stats().delivered == 10);
    CHECK(a.stats().datagrams_sent == 10);
    CHECK(a.stats().datagrams_received == 10);
    CHECK(a.next_layer().stats().datagrams_sent == 10);
}

TEST_CASE("emulated_link: send direction in simulated time (loss, delay, jitter, order)") {
    sim_env e;
    link_config cfg;
    cfg.seed = 42;
    cfg.send.loss_percent = 10;
    cfg.send.delay = 50ms;
    cfg.send.jitter = 10ms;
    emulated_link<memory, sim_clock> a(e.clock, cfg, e.io, e.net);
    memory b(e.io, e.net);
    recorder rb{b, e.clock};
    rb.start();
    const time_point t0 = e.clock.now();
    std::map<std::uint32_t, time_point> sent_at;
    for (std::uint32_t i = 0; i < 2000; ++i) {
        e.clock.run_until(e.io, t0 + 1ms * i);
        sent_at[i] = e.clock.now();
        a.send_to(asio::buffer(datagram(i)), b.local_endpoint());
    }
    CHECK(a.send_stats().in_flight > 0);
    e.clock.run_for(e.io, 1s);
    const auto s = a.send_stats();
    MESSAGE("sim send: ", rb.got.size(), "/2000 delivered, lost ", s.dropped_loss);
    CHECK(rb.got.size() == s.delivered);
    CHECK(s.delivered + s.dropped_loss == 2000);
    CHECK(s.in_flight == 0);
    CHECK(s.dropped_loss > 150);
    CHECK(s.dropped_loss < 250);
    for (std::size_t i = 0; i < rb.got.size(); ++i) {
        if (i) REQUIRE(rb.got[i].first > rb.got[i - 1].first); // no reordering
        const double d = ms(rb.got[i].second - sent_at[rb.got[i].first]);
        REQUIRE(d >= 40.0);
        REQUIRE(d <= 60.0);
    }
    CHECK(e.clock.pending() == 0); // no timer left behind
}

TEST_CASE("emulated_link: the receive direction delays datagrams and holds them while nobody reads") {
    sim_env e;
    link_config cfg;
    cfg.receive.delay = 30ms;
    cfg.receive.jitter = 20ms;
    cfg.receive.reorder = true;
    emulated_link<memory, sim_clock> a(e.clock, cfg, e.io, e.net);
    memory b(e.io, e.net);

    SUBCASE("a reading owner sees each datagram when due") {
        recorder ra{a, e.clock};
        ra.start();
        const time_point t0 = e.clock.now();
        std::map<std::uint32_t, time_point> sent_at;
        for (std::uint32_t i = 0; i < 1000; ++i) {
            e.clock.run_until(e.io, t0 + 2ms * i);
            sent_at[i] = e.clock.now();
            b.send_to(asio::buffer(datagram(i)), a.local_endpoint());
        }
        e.clock.run_for(e.io, 1s);
        REQUIRE(ra.got.size() == 1000);
        std::size_t reordered = 0;
        for (std::size_t i = 0; i < ra.got.size(); ++i) {
            const double d = ms(ra.got[i].second - sent_at[ra.got[i].first]);
            REQUIRE(d >= 10.0);
            REQUIRE(d <= 50.0);
            if (i && ra.got[i].first < ra.got[i - 1].first) ++reordered;
        }
        CHECK(reordered > 10);
        CHECK(ra.from == b.local_endpoint());
        CHECK(a.receive_stats().delivered == 1000);
        CHECK(a.send_stats().sent == 0);
    }
    SUBCASE("an owner that stops reading finds the held datagrams later, in order of release") {
        std::array<std::uint8_t, 1500> buf{};
        endpoint from;
        int completions = 0;
        a.async_receive_from(asio::buffer(buf), from, [&](std::error_code ec, std::size_t) {
            CHECK(!ec);
            ++completions;
        });
        for (std::uint32_t i = 0; i < 10; ++i) b.send_to(asio::buffer(datagram(i)), a.local_endpoint());
        e.clock.run_for(e.io, 200ms);
        CHECK(completions == 1);
        CHECK(a.receive_stats().in_flight == 9);
        CHECK(e.clock.pending() == 0); // no wake-ups for an owner that is not reading
        recorder ra{a, e.clock};
        ra.start();
        e.clock.run_for(e.io, 0ms);
        CHECK(ra.got.size() == 9);
        CHECK(a.receive_stats().in_flight == 0);
    }
}

TEST_CASE("emulated_link: bottleneck through the link delivers its rate") {
    sim_env e;
    link_config cfg;
    cfg.send.rate_kbps = 800;
    cfg.send.queue = 100ms;
    emulated_link<memory, sim_clock> a(e.clock, cfg, e.io, e.net);
    memory b(e.io, e.net);
    recorder rb{b, e.clock};
    rb.start();
    const time_point t0 = e.clock.now();
    for (std::uint32_t i = 0; i < 800; ++i) { // 1600 kbit/s for 4 s
        e.clock.run_until(e.io, t0 + 5ms * i);
        a.send_to(asio::buffer(datagram(i, 1000)), b.local_endpoint());
        if (i % 100 == 50) CHECK(ms(std::chrono::microseconds(a.send_stats().queue_delay)) <= 100.0);
    }
    e.clock.run_for(e.io, 1s);
    std::size_t in_window = 0;
    for (const auto& g : rb.got)
        if (g.second >= t0 + 1s && g.second < t0 + 4s) ++in_window;
    const double kbps = static_cast<double>(in_window) * 8.0 / 3.0;
    const auto s = a.send_stats();
    MESSAGE("800 kbit/s link at 2x load: ", kbps, " kbit/s received, ", s.dropped_queue, " queue drops, max queue delay ",
            ms(s.max_queue_delay), " ms");
    CHECK(kbps == doctest::Approx(800).epsilon(0.03));
    CHECK(s.dropped_queue > 350);
    CHECK(s.dropped_queue < 450);
    CHECK(s.max_queue_delay <= 100ms);
    CHECK(s.delivered == rb.got.size());
}

TEST_CASE("emulated_link: duplicates arrive twice") {
    sim_env e;
    link_config cfg;
    cfg.send.duplicate_percent = 100;
    SUBCASE("at once") {}
    SUBCASE("delayed") { cfg.send.delay = 5ms; }
    emulated_link<memory, sim_clock> a(e.clock, cfg, e.io, e.net);
    memory b(e.io, e.net);
    recorder rb{b, e.clock};
    rb.start();
    for (std::uint32_t i = 0; i < 5; ++i) a.send_to(asio::buffer(datagram(i)), b.local_endpoint());
    e.clock.run_for(e.io, 10ms);
    CHECK(rb.seqs() == std::vector<std::uint32_t>{0, 0, 1, 1, 2, 2, 3, 3, 4, 4});
    CHECK(a.send_stats().duplicated == 5);
    CHECK(a.send_stats().delivered == 10);
}

TEST_CASE("emulated_link: close aborts the pending receive and discards held datagrams") {
    sim_env e;
    link_config cfg;
    cfg.send.delay = 50ms;
    emulated_link<memory, sim_clock> a(e.clock, cfg, e.io, e.net);
    memory b(e.io, e.net);
    std::array<std::uint8_t, 1500> buf{};
    endpoint from;
    std::error_code result;
    a.async_receive_from(asio::buffer(buf), from, [&](std::error_code ec, std::size_t) { result = ec; });
    a.send_to(asio::buffer(datagram(1)), b.local_endpoint());
    CHECK(a.send_stats().in_flight == 1);
    a.close();
    e.clock.run_for(e.io, 100ms);
    CHECK(result == asio::error::operation_aborted);
    CHECK(a.send_stats().in_flight == 0);
    CHECK(a.send_stats().dropped_queue == 1);
    CHECK(b.stats().datagrams_received == 0);
    CHECK(a.send_to(asio::buffer(datagram(2)), b.local_endpoint()));
}

namespace {
/// Sends 300 datagrams at once through a link on `Clock`, returns the sequence numbers received.
template <class Link, class Clock, class Run>
std::vector<std::uint32_t> burst_through(Link& a, memory& b, Clock& clock, Run&& run_until_done,
                                         std::vector<double>* delays_ms = nullptr) {
    recorder rb{b, clock};
    rb.start();
    const time_point start = clock.now();
    for (std::uint32_t i = 0; i < 300; ++i) a.send_to(asio::buffer(datagram(i)), b.local_endpoint());
    run_until_done([&] { return a.send_stats().in_flight == 0 && rb.got.size() == a.send_stats().delivered; });
    if (delays_ms)
        for (const auto& g : rb.got) delays_ms->push_back(ms(g.second - start));
    return rb.seqs();
}
} // namespace

TEST_CASE("emulated_link: real time over the memory transport matches simulated time, seed for seed") {
    link_config cfg;
    cfg.seed = 2024;
    cfg.send.loss_percent = 15;
    cfg.send.mean_burst = 2;
    cfg.send.delay = 20ms;
    cfg.send.jitter = 5ms;

    sim_env e;
    emulated_link<memory, sim_clock> sim_link(e.clock, cfg, e.io, e.net);
    memory sim_peer(e.io, e.net);
    const auto sim_seqs = burst_through(sim_link, sim_peer, e.clock, [&](auto&&) { e.clock.run_for(e.io, 1s); });

    asio::io_context io;
    memory_network net;
    emulated_link<memory> real_link(cfg, io, net);
    memory real_peer(io, net);
    real_clock clock;
    std::vector<double> delays;
    const auto real_seqs = burst_through(real_link, real_peer, clock, [&](auto&& done) {
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while (!done() && std::chrono::steady_clock::now() < deadline) io.run_one_for(50ms);
    }, &delays);

    MESSAGE("real time: ", real_seqs.size(), "/300 delivered; delays ", *std::min_element(delays.begin(), delays.end()),
            "..", *std::max_element(delays.begin(), delays.end()), " ms");
    CHECK(sim_seqs.size() < 280);
    CHECK(sim_seqs.size() > 220);
    CHECK(real_seqs == sim_seqs); // the same datagrams lost, the same order kept
    CHECK(*std::min_element(delays.begin(), delays.end()) >= 15.0);
    CHECK(*std::max_element(delays.begin(), delays.end()) < 25.0 + 2000.0); // generous: a busy machine
}

TEST_CASE("emulated_link: over UDP in real time, both directions delayed") {
    asio::io_context io;
    const endpoint loopback(asio::ip::make_address_v4("127.0.0.1"), 0);
    link_config cfg;
    cfg.send.delay = 10ms;
    cfg.receive.delay = 15ms;
    emulated_link<udp> a(cfg, io, loopback);
    udp b(io, loopback);
    real_clock clock;

    // a echoes what it receives; b measures the round trip (>= 25 ms of emulated delay).
    std::array<std::uint8_t, 1500> abuf{};
    endpoint afrom;
    std::function<void()> echo = [&] {
        a.async_receive_from(asio::buffer(abuf), afrom, [&](std::error_code ec, std::size_t n) {
            if (ec) return;
            a.send_to(asio::buffer(abuf.data(), n), afrom);
            echo();
        });
    };
    echo();
    recorder rb{b, clock};
    rb.start();
    std::map<std::uint32_t, time_point> sent_at;
    for (std::uint32_t i = 0; i < 20; ++i) {
        sent_at[i] = clock.now();
        b.send_to(asio::buffer(datagram(i)), a.local_endpoint());
    }
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (rb.got.size() < 20 && std::chrono::steady_clock::now() < deadline) io.run_one_for(50ms);
    REQUIRE(rb.got.size() == 20);
    for (const auto& [seq, at] : rb.got) CHECK(ms(at - sent_at[seq]) >= 25.0);
    CHECK(a.receive_stats().delivered == 20);
    CHECK(a.send_stats().delivered == 20);
    CHECK(a.next_layer().stats().datagrams_received == 20);
}
