// Link probing between relay nodes over real UDP on loopback: the RTT a delayed path adds,
// loss when a peer goes away, and floods of forged responses and requests that measure
// nothing.
#include <onair/dispatch/prober.hpp>
#include <onair/transport/emulated_link.hpp>
#include <onair/transport/udp.hpp>

#include "support/on_io.hpp"

#include <doctest/doctest.h>

#include <asio/io_context.hpp>

#include <random>
#include <thread>

using namespace onair;
using namespace std::chrono_literals;
using onair_test::on_io;

namespace {
const transport::endpoint loopback(asio::ip::make_address("127.0.0.1"), 0);
}

TEST_CASE("probes measure a path's RTT, and loss once the peer is gone") {
    asio::io_context io(1);
    dispatch::probe_config pc;
    pc.interval = 50ms;
    pc.timeout = 300ms;
    pc.window = 10;
    transport::link_config slow;
    slow.send.delay = 40ms; // A's probes take 40 ms to leave
    dispatch::prober<transport::emulated_link<transport::udp>> a(pc, slow, io, loopback);
    dispatch::prober<transport::udp> b(pc, io, loopback);
    a.add_peer("B", b.local_endpoint());
    a.start();
    b.start();
    auto work = asio::make_work_guard(io);
    std::jthread t([&] { io.run(); });
    std::this_thread::sleep_for(1s);
    auto m = on_io(io, [&] { return a.measure("B"); });
    REQUIRE(m);
    CHECK(m->rtt_ms >= 38);
    CHECK(m->rtt_ms < 150);
    CHECK(m->loss == 0);
    CHECK(on_io(io, [&] { return a.stats().responses; }) >= 10);
    CHECK_FALSE(on_io(io, [&] { return a.measure("C"); }));

    on_io(io, [&] { b.stop(); });
    std::this_thread::sleep_for(1s); // the window is all unanswered probes now
    m = on_io(io, [&] { return a.measure("B"); });
    REQUIRE(m);
    CHECK(m->loss > 0.8);
    on_io(io, [&] { a.stop(); });
    work.reset();
    io.stop();
}

TEST_CASE("forged responses and request floods do not change what a prober measures") {
    asio::io_context io(1);
    dispatch::probe_config pc;
    pc.interval = 50ms;
    pc.timeout = 300ms;
    pc.window = 20;
    dispatch::prober<transport::udp> a(pc, io, loopback);
    dispatch::prober<transport::udp> b(pc, io, loopback);
    a.add_peer("B", b.local_endpoint());
    a.start();
    b.start();
    auto work = asio::make_work_guard(io);
    std::jthread t([&] { io.run(); });
    std::this_thread::sleep_for(600ms);
    const auto before = on_io(io, [&] { return *a.measure("B"); });

    // The attacker: forged responses to A (any seq, random nonces) and requests to B.
    asio::io_context aio;
    asio::ip::udp::socket s(aio, loopback);
    std::mt19937_64 rng(7);
    std::array<std::uint8_t, dispatch::probe_size> pkt{};
    std::memcpy(pkt.data(), "ONPR", 4);
    for (int i = 0; i < 3000; ++i) {
        pkt[4] = 2;
        for (std::size_t k = 8; k < 24; ++k) pkt[k] = static_cast<std::uint8_t>(rng());
        pkt[8] = pkt[9] = pkt[10] = 0;
        pkt[11] = static_cast<std::uint8_t>(i % 8); // seqs A really used
        pkt[20] = pkt[21] = pkt[22] = pkt[23] = 0;  // "sent" at time 0: a huge RTT if believed
        s.send_to(asio::buffer(pkt), a.local_endpoint());
        pkt[4] = 1;
        s.send_to(asio::buffer(pkt), b.local_endpoint());
        if (i % 500 == 0) std::this_thread::sleep_for(10ms);
    }
    std::array<std::uint8_t, 5> junk{'O', 'N', 'P', 'R', 9};
    s.send_to(asio::buffer(junk), a.local_endpoint());
    std::this_thread::sleep_for(500ms);
    const auto after = on_io(io, [&] { return *a.measure("B"); });
    const auto sa = on_io(io, [&] { return a.stats(); });
    const auto sb = on_io(io, [&] { return b.stats(); });
    CHECK(after.loss == 0);
    CHECK(after.rtt_ms < before.rtt_ms + 20); // loopback: a forged "sent at 0" would be hours
    CHECK(sa.responses_refused >= 2500);      // the socket may drop some of the flood
    CHECK(sa.malformed >= 1);
    CHECK(sb.requests_limited >= 2000);       // 50/s per source answered
    CHECK(sb.requests_answered < 200);        // A's own probes (about 22) and the burst
    on_io(io, [&] {
        a.stop();
        b.stop();
    });
    work.reset();
    io.stop();
}
