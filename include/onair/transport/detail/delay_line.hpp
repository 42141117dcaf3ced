// onair — datagrams held by an emulated link until their release instant.
#pragma once

#include "onair/core/packet_buffer.hpp"
#include "onair/transport/concepts.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <utility>
#include <vector>

namespace onair::transport::detail {

struct held_datagram {
    std::chrono::steady_clock::time_point release;
    std::uint64_t order = 0; ///< entry order: equal release instants leave first-in first-out
    packet_ref data;         ///< pooled; both copies of a duplicate share one buffer
    endpoint peer;           ///< destination (send side) or source (receive side)
};

/// A min-heap on (release, order) over a vector that only grows: once it has reached the
/// largest backlog seen, pushing and popping allocate nothing.
class delay_line {
public:
    bool empty() const noexcept { return heap_.empty(); }
    std::size_t size() const noexcept { return heap_.size(); }
    const held_datagram& top() const noexcept { return heap_.front(); }

    void push(std::chrono::steady_clock::time_point release, packet_ref data, const endpoint& peer) {
        heap_.push_back(held_datagram{release, next_order_++, std::move(data), peer});
        std::push_heap(heap_.begin(), heap_.end(), later);
    }
    held_datagram pop() {
        std::pop_heap(heap_.begin(), heap_.end(), later);
        held_datagram d = std::move(heap_.back());
        heap_.pop_back();
        return d;
    }
    void clear() noexcept { heap_.clear(); }

private:
    static bool later(const held_datagram& a, const held_datagram& b) noexcept {
        return a.release != b.release ? a.release > b.release : a.order > b.order;
    }
    std::vector<held_datagram> heap_;
    std::uint64_t next_order_ = 0;
};

} // namespace onair::transport::detail
