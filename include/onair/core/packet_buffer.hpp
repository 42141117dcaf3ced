// onair — pooled, reference-counted packet buffers.
//
// A relay receives a datagram into a buffer taken from a pool and hands the same buffer
// to every subscriber: fan-out costs a reference count, not a copy, and the steady state
// allocates nothing (buffers return to the pool's free list when the last reference drops).
#pragma once

#include <array>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <utility>
#include <vector>

namespace onair {

/// Largest datagram onair sends or accepts (an Ethernet MTU less IP/UDP headers, rounded up).
inline constexpr std::size_t max_datagram_size = 1500;

class packet_pool;

namespace detail {
struct packet_block {
    std::array<std::uint8_t, max_datagram_size> bytes;
    std::size_t size = 0;
    std::uint32_t refs = 0;
    packet_pool* owner = nullptr;
    packet_block* next_free = nullptr;
};
} // namespace detail

/// Shared handle on a pooled buffer. Copying adds a reference; the last one returns the
/// buffer to its pool. Not thread-safe: a pool and its handles belong to one thread.
class packet_ref {
public:
    packet_ref() = default;
    packet_ref(const packet_ref& o) noexcept : b_(o.b_) { if (b_) ++b_->refs; }
    packet_ref(packet_ref&& o) noexcept : b_(std::exchange(o.b_, nullptr)) {}
    packet_ref& operator=(packet_ref o) noexcept { std::swap(b_, o.b_); return *this; }
    ~packet_ref() { reset(); }

    void reset() noexcept;
    explicit operator bool() const noexcept { return b_ != nullptr; }
    std::uint32_t use_count() const noexcept { return b_ ? b_->refs : 0; }

    /// Whole capacity, for receiving into.
    std::span<std::uint8_t> capacity() noexcept { return {b_->bytes.data(), b_->bytes.size()}; }
    /// The valid bytes.
    std::span<std::uint8_t> bytes() noexcept { return {b_->bytes.data(), b_->size}; }
    std::span<const std::uint8_t> bytes() const noexcept { return {b_->bytes.data(), b_->size}; }
    std::size_t size() const noexcept { return b_->size; }
    void resize(std::size_t n) noexcept { assert(n <= max_datagram_size); b_->size = n; }

private:
    friend class packet_pool;
    explicit packet_ref(detail::packet_block* b) noexcept : b_(b) { ++b_->refs; }
    detail::packet_block* b_ = nullptr;
};

/// A free list of packet blocks grown in chunks; blocks are never returned to the heap
/// until the pool is destroyed, so steady-state forwarding allocates nothing.
/// The pool must outlive every packet_ref taken from it.
class packet_pool {
public:
    explicit packet_pool(std::size_t chunk = 256) : chunk_(chunk ? chunk : 1) {}
    packet_pool(const packet_pool&) = delete;
    packet_pool& operator=(const packet_pool&) = delete;

    packet_ref acquire() {
        if (!free_) grow();
        detail::packet_block* b = free_;
        free_ = b->next_free;
        b->next_free = nullptr;
        b->size = 0;
        ++in_use_;
        return packet_ref{b};
    }

    std::size_t in_use() const noexcept { return in_use_; }
    std::size_t capacity() const noexcept { return chunks_.size() * chunk_; }

private:
    friend class packet_ref;
    void release(detail::packet_block* b) noexcept {
        b->next_free = free_;
        free_ = b;
        --in_use_;
    }
    void grow() {
        auto blocks = std::make_unique<detail::packet_block[]>(chunk_);
        for (std::size_t i = 0; i < chunk_; ++i) {
            blocks[i].owner = this;
            blocks[i].next_free = free_;
            free_ = &blocks[i];
        }
        chunks_.push_back(std::move(blocks));
    }

    std::size_t chunk_;
    std::size_t in_use_ = 0;
    detail::packet_block* free_ = nullptr;
    std::vector<std::unique_ptr<detail::packet_block[]>> chunks_;
};

inline void packet_ref::reset() noexcept {
    if (b_ && --b_->refs == 0) b_->owner->release(b_);
    b_ = nullptr;
}

} // namespace onair
