// transport::udp binding: every socket on an ephemeral port has a port of its own, and a
// port in use is refused rather than shared (shared, one socket's traffic would go to the
// other).
#include <onair/transport/udp.hpp>

#include <doctest/doctest.h>

#include <asio/io_context.hpp>

#include <deque>
#include <set>
#include <system_error>

using namespace onair;
using transport::endpoint;
using transport::udp;

TEST_CASE("udp: sockets bound to port 0 get distinct ports, and binding a port in use throws") {
    asio::io_context io;
    const endpoint any{asio::ip::make_address_v4("127.0.0.1"), 0};
    std::deque<udp> socks;
    std::set<unsigned short> ports;
    // Open and close in rounds, as tests and nodes do: the kernel hands out ports of closed
    // sockets again, never one still open.
    for (int round = 0; round < 100; ++round) {
        socks.clear();
        ports.clear();
        for (int i = 0; i < 50; ++i) {
            socks.emplace_back(io, any, 1 << 16);
            ports.insert(socks.back().local_endpoint().port());
        }
        REQUIRE(ports.size() == socks.size());
    }
    const endpoint taken = socks.front().local_endpoint();
    CHECK_THROWS_AS(udp(io, taken), std::system_error);
    // Closed, the port is free again at once (UDP has no TIME_WAIT).
    socks.pop_front();
    CHECK_NOTHROW(udp(io, taken));
}
