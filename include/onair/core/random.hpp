// onair — random identifiers (SSRCs, initial sequence numbers and timestamps, RFC 3550 §5.1).
#pragma once

#include <cstdint>
#include <random>

namespace onair::detail {

inline std::uint32_t random_u32() {
    static thread_local std::mt19937 gen{std::random_device{}()};
    return static_cast<std::uint32_t>(gen());
}

} // namespace onair::detail
