#include <onair/control/rate_limit.hpp>

#include <doctest/doctest.h>

#include <cstdint>

using namespace onair::control;

namespace {
/// How many single tokens can be taken at `now`, up to `cap`.
int drain(token_bucket& b, std::int64_t now, int cap = 10'000) {
    int n = 0;
    while (n < cap && b.take(now)) ++n;
    return n;
}
} // namespace

TEST_CASE("rate_limit: a full bucket allows the burst, then refuses") {
    token_bucket b(rate{10, 5}, 1000);
    CHECK(drain(b, 1000) == 5);
    CHECK_FALSE(b.take(1000));
    CHECK_FALSE(b.take(1000)); // a refusal takes nothing and gives nothing back
}

TEST_CASE("rate_limit: tokens come back at the sustained rate in simulated time") {
    token_bucket b(rate{10, 5}, 0); // one token per 100 ms
    REQUIRE(drain(b, 0) == 5);
    CHECK_FALSE(b.take(99));
    CHECK(b.take(100));
    CHECK_FALSE(b.take(150));
    CHECK(b.take(200));
    // Three tokens' worth of time.
    CHECK(drain(b, 500) == 3);
    // Sustained: one request every 100 ms is always allowed.
    for (std::int64_t t = 600; t <= 5000; t += 100) REQUIRE(b.take(t));
    CHECK_FALSE(b.take(5000));
}

TEST_CASE("rate_limit: the bucket never holds more than the burst") {
    token_bucket b(rate{10, 5}, 0);
    CHECK(drain(b, 3'600'000) == 5); // an hour idle: still only the burst
    CHECK(drain(b, 3'600'000 + 10'000) == 5);
    CHECK(b.wait_ms(3'600'000 + 10'000) > 0);
    // Partly drained, then a long idle: refilled to the burst, not beyond.
    token_bucket c(rate{100, 20}, 0);
    REQUIRE(drain(c, 0, 7) == 7);
    CHECK(drain(c, 60'000) == 20);
}

TEST_CASE("rate_limit: wait_ms says when the tokens will be there") {
    token_bucket b(rate{5, 2}, 0); // one token per 200 ms
    CHECK(b.wait_ms(0) == 0);
    CHECK(b.wait_ms(0, 2) == 0);
    REQUIRE(drain(b, 0) == 2);

    const auto w = b.wait_ms(0);
    CHECK(w >= 200);
    CHECK(w <= 201);
    CHECK_FALSE(b.take(w - 2)); // not before (within a millisecond of rounding)
    CHECK(b.take(w));           // and there after

    // For several tokens at once.
    token_bucket m(rate{5, 2}, 0);
    REQUIRE(drain(m, 0) == 2);
    const auto w2 = m.wait_ms(0, 2);
    CHECK(w2 >= 400);
    CHECK(w2 <= 401);
    CHECK_FALSE(m.take(w2 - 2, 2));
    CHECK(m.take(w2, 2));

    // Half a token there: the wait is for the other half only.
    token_bucket h(rate{10, 1}, 0);
    REQUIRE(h.take(0));
    CHECK(h.wait_ms(50) >= 50);
    CHECK(h.wait_ms(50) <= 51);
}

TEST_CASE("rate_limit: taking several tokens at once") {
    token_bucket b(rate{10, 10}, 0);
    CHECK(b.take(0, 4));
    CHECK(b.take(0, 6));
    CHECK_FALSE(b.take(0, 1));
    CHECK(b.take(1000, 10));
    CHECK_FALSE(b.take(1000, 0.5));
    // More than the burst can never be taken.
    CHECK_FALSE(b.take(100'000, 11));
    CHECK(b.take(100'000, 10));
}

TEST_CASE("rate_limit: a zero rate never refills, and time going back refills nothing") {
    token_bucket z(rate{0, 3}, 0);
    CHECK(drain(z, 0) == 3);
    CHECK(drain(z, 1'000'000) == 0);
    CHECK(z.wait_ms(1'000'000) == 1000); // no honest answer: retry in a second

    token_bucket b(rate{10, 5}, 10'000);
    REQUIRE(drain(b, 10'000) == 5);
    CHECK_FALSE(b.take(5'000)); // the clock went back
    CHECK_FALSE(b.take(10'050));
    CHECK(b.take(10'100)); // refill counts from the last real time seen
}
