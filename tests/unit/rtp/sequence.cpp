#include "onair/rtp/sequence.hpp"

#include <doctest/doctest.h>

#include <cstdint>

using namespace onair::rtp;

TEST_SUITE_BEGIN("rtp.sequence");

TEST_CASE("seq_newer and ts_newer compare modulo 2^16 / 2^32") {
    CHECK(seq_newer(1, 0));
    CHECK_FALSE(seq_newer(0, 1));
    CHECK_FALSE(seq_newer(5, 5));
    CHECK(seq_newer(0, 65535));     // across the wrap
    CHECK(seq_newer(10, 65530));
    CHECK_FALSE(seq_newer(65530, 10));
    CHECK(seq_newer(0x7fff, 0));    // half range minus one: newer
    CHECK_FALSE(seq_newer(0x8000, 0)); // exactly half: not newer (ambiguous, taken as older)
    CHECK(ts_newer(0, 0xffff'ffffu));
    CHECK(ts_newer(90000, 0));
    CHECK_FALSE(ts_newer(0, 90000));
    CHECK_FALSE(ts_newer(0x8000'0000u, 0));
}

TEST_CASE("seq_unwrapper extends across forward wraps") {
    seq_unwrapper u;
    CHECK_FALSE(u.last());
    CHECK(u.unwrap(65530) == 65530);
    std::int64_t prev = 65530;
    for (int i = 1; i < 200'000; ++i) { // three wraps
        const auto s = static_cast<std::uint16_t>(65530 + i);
        const std::int64_t v = u.unwrap(s);
        REQUIRE(v == prev + 1);
        prev = v;
    }
    CHECK(*u.last() == 65530 + 199'999);
}

TEST_CASE("seq_unwrapper keeps reordered packets in place across the wrap") {
    seq_unwrapper u;
    CHECK(u.unwrap(65534) == 65534);
    CHECK(u.unwrap(2) == 65538);     // jumped the wrap
    CHECK(u.unwrap(65535) == 65535); // late packet from before the wrap
    CHECK(u.unwrap(0) == 65536);
    CHECK(u.unwrap(1) == 65537);
    CHECK(*u.last() == 65538);       // older packets do not move the reference
    CHECK(u.unwrap(3) == 65539);
}

TEST_CASE("seq_unwrapper goes below the first value when a packet precedes it") {
    seq_unwrapper u;
    CHECK(u.unwrap(3) == 3);
    CHECK(u.unwrap(65535) == -1); // closest to 3 is one before zero
    CHECK(u.unwrap(4) == 4);
}

TEST_CASE("seq_unwrapper picks the closest value; peek does not move the reference") {
    seq_unwrapper u;
    u.unwrap(1000);
    CHECK(u.peek(1000 + 0x7fff) == 1000 + 0x7fff);
    CHECK(u.peek(static_cast<std::uint16_t>(1000 + 0x8001)) == 1000 + 0x8001 - 65536);
    CHECK(*u.last() == 1000);
    CHECK(u.unwrap(30000) == 30000);
    CHECK(u.unwrap(60000) == 60000);
    CHECK(u.unwrap(100) == 65636);
    u.reset();
    CHECK_FALSE(u.last());
    CHECK(u.unwrap(100) == 100);
}

TEST_CASE("timestamp_unwrapper extends 32-bit RTP timestamps") {
    timestamp_unwrapper u;
    const std::uint32_t start = 0xffff'0000u;
    CHECK(u.unwrap(start) == start);
    CHECK(u.unwrap(start + 3000u) == std::int64_t{start} + 3000);
    const std::uint32_t after = start + 0x20000u; // wraps to 0x10000
    CHECK(after == 0x10000u);
    CHECK(u.unwrap(after) == std::int64_t{start} + 0x20000);
    CHECK(u.unwrap(start + 6000u) == std::int64_t{start} + 6000); // late, before the wrap
}

TEST_SUITE_END();
