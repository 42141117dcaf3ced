// Test support: the global operator new replaced by one that counts, for the tests that
// show a path allocates nothing. Include it in exactly one file of a separate executable
// (the replacement is program-wide); read onair_test::allocations around the part measured.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace onair_test {
inline std::atomic<std::uint64_t> allocations{0};
} // namespace onair_test

// noinline: GCC would otherwise pair the inlined malloc/free with new/delete expressions
// and warn about a mismatch. The array and nothrow forms default to these; the aligned
// forms are counted too.
__attribute__((noinline)) void* operator new(std::size_t n) {
    ++onair_test::allocations;
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
__attribute__((noinline)) void* operator new(std::size_t n, std::align_val_t a) {
    ++onair_test::allocations;
    const auto align = static_cast<std::size_t>(a);
    if (void* p = std::aligned_alloc(align, (std::max<std::size_t>(n, 1) + align - 1) / align * align)) return p;
    throw std::bad_alloc();
}
__attribute__((noinline)) void operator delete(void* p) noexcept { std::free(p); }
__attribute__((noinline)) void operator delete(void* p, std::size_t) noexcept { std::free(p); }
__attribute__((noinline)) void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
__attribute__((noinline)) void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
