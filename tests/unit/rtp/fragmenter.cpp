#include "onair/rtp/fragmenter.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstddef>

using onair::rtp::fragment_plan;

namespace {
/// Checks the invariants every plan must keep and returns the largest/smallest packet.
std::pair<std::size_t, std::size_t> check_plan(std::size_t size, std::size_t max, std::size_t first, std::size_t rest) {
    const fragment_plan plan(size, max, first, rest);
    REQUIRE(plan.ok());
    std::size_t sum = 0, biggest = 0, smallest = max;
    for (std::size_t i = 0; i < plan.count(); ++i) {
        const std::size_t over = i == 0 ? first : rest;
        const std::size_t d = plan.data_size(i);
        REQUIRE(d + over <= max);
        if (size > 0) REQUIRE(d >= 1);
        sum += d;
        biggest = std::max(biggest, d + over);
        smallest = std::min(smallest, d + over);
    }
    REQUIRE(sum == size);
    // As few packets as fit: one fewer could not carry the frame.
    if (plan.count() > 1) REQUIRE(size > (max - first) + (plan.count() - 2) * (max - rest));
    return {biggest, smallest};
}
} // namespace

TEST_SUITE_BEGIN("rtp.fragmenter");

TEST_CASE("one packet when the frame fits") {
    const fragment_plan p(100, 1200, 6, 6);
    REQUIRE(p.ok());
    CHECK(p.count() == 1);
    CHECK(p.data_size(0) == 100);
    const fragment_plan exact(1194, 1200, 6, 6);
    CHECK(exact.count() == 1);
    const fragment_plan empty(0, 1200, 1, 1);
    CHECK(empty.count() == 1);
    CHECK(empty.data_size(0) == 0);
}

TEST_CASE("equal split: 1195 bytes with 6-byte descriptors make packets of 603 and 604 bytes") {
    const fragment_plan p(1195, 1200, 6, 6);
    REQUIRE(p.count() == 2);
    // 1195 + 2 * 6 = 1207 bytes on the wire: 603 + 604, the odd byte in the last packet.
    CHECK(p.data_size(0) == 603 - 6);
    CHECK(p.data_size(1) == 604 - 6);
}

TEST_CASE("a bigger first descriptor takes its bytes from the first packet's data") {
    const fragment_plan p(3000, 1200, 10, 5); // 3000 + 10 + 2*5 = 3020 over 3 packets
    REQUIRE(p.count() == 3);
    CHECK(p.data_size(0) + 10 == 1006);
    CHECK(p.data_size(1) + 5 == 1007);
    CHECK(p.data_size(2) + 5 == 1007);
}

TEST_CASE("invariants over many sizes and limits") {
    for (std::size_t max : {20u, 27u, 100u, 1200u}) {
        for (std::size_t size = 0; size < 5000; size += (size < 300 ? 1 : 37)) {
            const auto [biggest, smallest] = check_plan(size, max, 10, 5);
            if (size > 0 && max >= 100) CHECK(biggest - smallest <= 1); // even split
        }
    }
    check_plan(50'000, 1200, 6, 6);
    check_plan(4u << 20, 1200, 6, 6);
}

TEST_CASE("tiny limits fall back to filling packets") {
    // max 12 with a 10-byte first descriptor: an even share (about 6) would not hold it.
    check_plan(100, 12, 10, 5);
    check_plan(7, 11, 10, 1);
}

TEST_CASE("not ok when a descriptor leaves no room for data") {
    CHECK_FALSE(fragment_plan(10, 6, 6, 6).ok());
    CHECK_FALSE(fragment_plan(10, 10, 10, 5).ok());
    CHECK_FALSE(fragment_plan(10, 0, 1, 1).ok());
    CHECK(fragment_plan(10, 11, 10, 5).ok());
}

TEST_SUITE_END();
