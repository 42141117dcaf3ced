// Test support: the global operator new replaced by one that counts, for the tests that
// show a path allocates nothing and those that compare reported memory with the heap.
// Include it in exactly one file of a separate executable (the replacement is
// program-wide); read onair_test::allocations or onair_test::live_bytes around the part
// measured.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <malloc.h>
#include <new>

namespace onair_test {
inline std::atomic<std::uint64_t> allocations{0};
/// Heap bytes allocated through operator new and not yet freed, as the allocator's usable
/// size of each block (what was asked for, rounded up: glibc adds at most 15 bytes to a
/// block of 24 bytes or more).
inline std::atomic<std::int64_t> live_bytes{0};
inline void* counted(void* p) noexcept {
    if (p) live_bytes += static_cast<std::int64_t>(malloc_usable_size(p));
    return p;
}
inline void uncounted(void* p) noexcept {
    if (p) live_bytes -= static_cast<std::int64_t>(malloc_usable_size(p));
}
} // namespace onair_test

// noinline: GCC would otherwise pair the inlined malloc/free with new/delete expressions
// and warn about a mismatch. The array and nothrow forms default to these; the aligned
// forms are counted too.
__attribute__((noinline)) void* operator new(std::size_t n) {
    ++onair_test::allocations;
    if (void* p = std::malloc(n ? n : 1)) return onair_test::counted(p);
    throw std::bad_alloc();
}
__attribute__((noinline)) void* operator new(std::size_t n, std::align_val_t a) {
    ++onair_test::allocations;
    const auto align = static_cast<std::size_t>(a);
    if (void* p = std::aligned_alloc(align, (std::max<std::size_t>(n, 1) + align - 1) / align * align)) return onair_test::counted(p);
    throw std::bad_alloc();
}
__attribute__((noinline)) void operator delete(void* p) noexcept {
    onair_test::uncounted(p);
    std::free(p);
}
__attribute__((noinline)) void operator delete(void* p, std::size_t) noexcept {
    onair_test::uncounted(p);
    std::free(p);
}
__attribute__((noinline)) void operator delete(void* p, std::align_val_t) noexcept {
    onair_test::uncounted(p);
    std::free(p);
}
__attribute__((noinline)) void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
    onair_test::uncounted(p);
    std::free(p);
}
