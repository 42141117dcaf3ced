// onair — how a frame splits into RTP packets of roughly equal size.
//
// Every packetizer asks a fragment_plan for the data size of each packet: the packets are
// as few as fit `max_payload`, and their total sizes (descriptor + data) differ by at most
// one byte, so no runt packet trails a frame. The first packet may carry a bigger
// descriptor than the rest (VP9's scalability structure on keyframes).
#pragma once

#include <cstddef>

namespace onair::rtp {

class fragment_plan {
public:
    /// @param size            frame bytes to carry
    /// @param max_payload     largest RTP payload (descriptor + data)
    /// @param first_overhead  descriptor bytes of the first packet
    /// @param overhead        descriptor bytes of every later packet
    constexpr fragment_plan(std::size_t size, std::size_t max_payload, std::size_t first_overhead,
                            std::size_t overhead) noexcept
        : size_(size), max_(max_payload), first_(first_overhead), rest_(overhead) {
        if (max_ <= first_ || max_ <= rest_) return; // cannot carry a single data byte
        if (size_ <= max_ - first_) {
            count_ = 1;
            total_ = size_ + first_;
            return;
        }
        const std::size_t beyond_first = size_ - (max_ - first_);
        const std::size_t per = max_ - rest_;
        count_ = 1 + (beyond_first + per - 1) / per;
        total_ = size_ + first_ + (count_ - 1) * rest_;
        // Even split is only possible when the smallest share still holds the largest
        // descriptor and one byte; otherwise (tiny max_payload) fill packets greedily.
        even_ = total_ / count_ > (first_ > rest_ ? first_ : rest_);
    }

    /// False when max_payload cannot hold a descriptor and one data byte.
    constexpr bool ok() const noexcept { return count_ != 0; }
    constexpr std::size_t count() const noexcept { return count_; }

    /// Data bytes (without descriptor) of packet `i`, i < count().
    constexpr std::size_t data_size(std::size_t i) const noexcept {
        if (count_ == 1) return size_;
        const std::size_t over = i == 0 ? first_ : rest_;
        if (!even_) {
            if (i + 1 < count_) return max_ - over;
            return size_ - (max_ - first_) - (count_ - 2) * (max_ - rest_);
        }
        // The remainder goes to the last packets, so the first (largest descriptor) is smallest.
        const std::size_t base = total_ / count_;
        const std::size_t extra = total_ % count_;
        const std::size_t share = base + (i >= count_ - extra ? 1 : 0);
        return share - over;
    }

private:
    std::size_t size_, max_, first_, rest_;
    std::size_t count_ = 0;
    std::size_t total_ = 0;
    bool even_ = false;
};

} // namespace onair::rtp
