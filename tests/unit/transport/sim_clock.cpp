// sim_clock: timers fire in time order with the clock reading their expiry; cancel and
// re-arm complete with operation_aborted; destroyed timers stay silent.
#include <onair/core/sim_clock.hpp>

#include <doctest/doctest.h>

#include <asio/io_context.hpp>

#include <functional>
#include <vector>

using namespace std::chrono_literals;
using onair::sim_clock;
using executor = asio::io_context::executor_type;

static_assert(onair::clock_policy<onair::real_clock, executor>);
static_assert(onair::clock_policy<sim_clock, executor>);

TEST_CASE("sim_clock: timers fire in time order, each seeing its own expiry") {
    asio::io_context io;
    sim_clock clock;
    const auto t0 = clock.now();
    auto a = clock.make_timer(io.get_executor());
    auto b = clock.make_timer(io.get_executor());
    auto c = clock.make_timer(io.get_executor());
    std::vector<std::pair<char, sim_clock::duration>> fired;
    auto record = [&](char name) {
        return [&, name](std::error_code ec) {
            CHECK(!ec);
            fired.emplace_back(name, clock.now() - t0);
        };
    };
    a.expires_at(t0 + 30ms);
    a.async_wait(record('a'));
    b.expires_at(t0 + 10ms);
    b.async_wait(record('b'));
    c.expires_at(t0 + 10ms); // same instant as b, scheduled later: fires after it
    c.async_wait(record('c'));
    CHECK(clock.pending() == 3);

    clock.run_until(io, t0 + 20ms);
    REQUIRE(fired.size() == 2);
    CHECK(fired[0] == std::pair{'b', sim_clock::duration(10ms)});
    CHECK(fired[1] == std::pair{'c', sim_clock::duration(10ms)});
    CHECK(clock.now() == t0 + 20ms);

    clock.run_for(io, 1s);
    REQUIRE(fired.size() == 3);
    CHECK(fired[2] == std::pair{'a', sim_clock::duration(30ms)});
    CHECK(clock.now() == t0 + 1020ms);
    CHECK(clock.pending() == 0);
}

TEST_CASE("sim_clock: cancel and re-arm abort the wait; a destroyed timer never calls") {
    asio::io_context io;
    sim_clock clock;
    auto t = clock.make_timer(io.get_executor());
    std::vector<std::error_code> results;
    t.expires_after(50ms);
    t.async_wait([&](std::error_code ec) { results.push_back(ec); });
    t.expires_after(100ms); // re-arm: the first wait is aborted
    t.async_wait([&](std::error_code ec) { results.push_back(ec); });
    clock.run_for(io, 60ms);
    REQUIRE(results.size() == 1);
    CHECK(results[0] == asio::error::operation_aborted);
    clock.run_for(io, 60ms);
    REQUIRE(results.size() == 2);
    CHECK(!results[1]);

    t.expires_after(10ms);
    t.async_wait([&](std::error_code ec) { results.push_back(ec); });
    CHECK(t.cancel() == 1);
    clock.run_for(io, 20ms);
    REQUIRE(results.size() == 3);
    CHECK(results[2] == asio::error::operation_aborted);

    {
        auto gone = clock.make_timer(io.get_executor());
        gone.expires_after(5ms);
        gone.async_wait([&](std::error_code ec) { results.push_back(ec); });
    }
    CHECK(clock.pending() == 0);
    clock.run_for(io, 20ms);
    CHECK(results.size() == 3);
}

TEST_CASE("sim_clock: handlers that re-arm run in virtual time; run_all drains the agenda") {
    asio::io_context io;
    sim_clock clock;
    const auto t0 = clock.now();
    auto t = clock.make_timer(io.get_executor());
    int ticks = 0;
    std::function<void()> arm = [&] {
        t.expires_after(20ms);
        t.async_wait([&](std::error_code ec) {
            if (ec || ++ticks == 50) return;
            arm();
        });
    };
    arm();
    clock.run_all(io);
    CHECK(ticks == 50);
    CHECK(clock.now() == t0 + 1s);
}
