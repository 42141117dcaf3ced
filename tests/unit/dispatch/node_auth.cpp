#include <onair/dispatch/node_auth.hpp>

#include <doctest/doctest.h>

using namespace onair::dispatch;
using json = nlohmann::json;

namespace {
json message(const std::string& node, std::uint64_t counter, std::int64_t ts, const std::string& secret = "cluster") {
    json m{{"type", "register"}, {"node", node}, {"counter", counter}, {"ts", ts}, {"media", "127.0.0.1:5000"}, {"capacity", 100}};
    sign(m, secret);
    return m;
}
} // namespace

TEST_CASE("a signed, fresh, numbered message is accepted once") {
    message_guard g("cluster");
    const auto m = message("A", 10, 1000);
    CHECK(g.check(m, 1000) == auth_result::ok);
    CHECK(g.check(m, 1001) == auth_result::replayed);               // the same message again
    CHECK(g.check(message("A", 9, 1002), 1002) == auth_result::replayed); // an older counter
    CHECK(g.check(message("A", 11, 1003), 1003) == auth_result::ok);
    CHECK(g.check(message("B", 1, 1003), 1003) == auth_result::ok); // counters are per node
    // A round trip through text keeps the signature (it covers the sorted dump).
    CHECK(g.check(json::parse(message("A", 12, 1004).dump()), 1004) == auth_result::ok);
}

TEST_CASE("forged messages fail their signature") {
    message_guard g("cluster");
    auto m = message("A", 1, 0);
    m["capacity"] = 1'000'000; // a tampered field
    CHECK(g.check(m, 0) == auth_result::forged);
    CHECK(g.check(message("A", 2, 0, "guess"), 0) == auth_result::forged);
    auto n = message("A", 3, 0);
    n["sig"] = "AAAA";
    CHECK(g.check(n, 0) == auth_result::forged);
    n["sig"] = "!!";
    CHECK(g.check(n, 0) == auth_result::forged);
    // None of the forgeries advanced the node's counter.
    CHECK(g.check(message("A", 1, 0), 0) == auth_result::ok);
}

TEST_CASE("stale and malformed messages are refused") {
    message_guard g("cluster", 30'000);
    CHECK(g.check(message("A", 1, 0), 40'000) == auth_result::stale);
    CHECK(g.check(message("A", 2, 80'000), 40'000) == auth_result::stale);
    CHECK(g.check(message("A", 3, 20'000), 40'000) == auth_result::ok);
    CHECK(g.check(json::array(), 0) == auth_result::malformed);
    auto m = message("A", 4, 0);
    m.erase("counter");
    CHECK(g.check(m, 0) == auth_result::malformed);
    auto n = message("A", 5, 0);
    n["node"] = 5;
    CHECK(g.check(n, 0) == auth_result::malformed);
}

TEST_CASE("next_counter increases and follows the clock") {
    std::uint64_t last = 0;
    const auto a = next_counter(last);
    const auto b = next_counter(last);
    CHECK(b > a);
    CHECK(a > 1'700'000'000'000'000ull); // microseconds since the epoch
    std::uint64_t ahead = a + 1'000'000'000;
    CHECK(next_counter(ahead) == a + 1'000'000'001);
}
