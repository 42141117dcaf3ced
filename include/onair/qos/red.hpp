// onair — RTP payload for redundant audio data (RFC 2198, "RED").
//
// A RED payload repeats the previous one or two audio payloads in front of the current
// ("primary") one, so a receiver that lost a packet finds it again in the next:
//
//   |1| block PT  | timestamp offset (14) | block length (10) |   one per redundant block
//   |0| block PT  |                                              then the primary's header
//   redundant data (oldest first) ... primary data
//
// A redundant block's timestamp is the RTP timestamp minus its offset. red_encoder always
// sends the packets immediately before the current one, oldest first, so the i-th of n
// redundant blocks of the packet with sequence number S is packet S - (n - i) — the rule
// red_gaps() uses to place them (libwebrtc's RED sender follows it too).
//
// Nothing here allocates; parse results point into the caller's bytes.
#pragma once

#include "onair/core/error.hpp"
#include "onair/rtp/packet.hpp"
#include "onair/rtp/sequence.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <system_error>

namespace onair::qos {

/// Payload type onair uses for RED (SDP: `a=rtpmap:63 red/48000/2`, `a=fmtp:63 111/111`).
inline constexpr std::uint8_t red_payload_type = 63;
/// Redundant blocks red_encoder sends at most.
inline constexpr std::size_t red_max_redundancy = 2;
/// Blocks (redundant + primary) a RED payload may carry for red_decoder; more is malformed.
inline constexpr std::size_t red_max_blocks = 8;
inline constexpr std::uint32_t red_max_timestamp_offset = (1u << 14) - 1;
inline constexpr std::size_t red_max_block_length = (1u << 10) - 1;

struct red_block {
    std::uint8_t payload_type = 0;
    std::uint32_t timestamp = 0;
    rtp::bytes_view data;
};

/// A parsed RED payload; data spans point into the parsed bytes.
struct red_payload {
    std::array<red_block, red_max_blocks - 1> redundant_blocks{}; ///< oldest first
    std::size_t redundant_count = 0;
    red_block primary;

    std::span<const red_block> redundant() const noexcept { return {redundant_blocks.data(), redundant_count}; }
};

/// Why a RED payload was refused.
enum class red_status : std::uint8_t {
    ok,
    empty,           ///< no bytes at all
    truncated,       ///< a block header runs past the end
    too_many_blocks, ///< more than red_max_blocks
    length_overflow, ///< block lengths add up to more than the payload
    empty_primary,   ///< nothing left for the primary block
};

/// Parses a RED payload (the RTP payload, padding removed) of a packet with RTP timestamp
/// `timestamp`. Untrusted bytes: never reads past `d`.
inline red_status parse_red(rtp::bytes_view d, std::uint32_t timestamp, red_payload& out) noexcept {
    out = red_payload{};
    if (d.empty()) return red_status::empty;
    std::size_t pos = 0;
    std::size_t lengths = 0;
    std::array<std::uint16_t, red_max_blocks> length{};
    for (;;) {
        if (pos >= d.size()) return red_status::truncated;
        const std::uint8_t b = d[pos];
        if ((b & 0x80) == 0) { // the primary's one-byte header ends the list
            out.primary.payload_type = b & 0x7f;
            out.primary.timestamp = timestamp;
            ++pos;
            break;
        }
        if (d.size() - pos < 4) return red_status::truncated;
        if (out.redundant_count + 1 >= red_max_blocks) return red_status::too_many_blocks;
        const std::uint32_t v = rtp::load_be24(&d[pos + 1]);
        red_block& r = out.redundant_blocks[out.redundant_count++];
        r.payload_type = b & 0x7f;
        r.timestamp = timestamp - (v >> 10);
        length[out.redundant_count - 1] = static_cast<std::uint16_t>(v & 0x3ff); // data placed below
        lengths += v & 0x3ff;
        pos += 4;
    }
    if (lengths > d.size() - pos) return red_status::length_overflow;
    for (std::size_t i = 0; i < out.redundant_count; ++i) {
        out.redundant_blocks[i].data = d.subspan(pos, length[i]);
        pos += length[i];
    }
    if (pos == d.size()) return red_status::empty_primary;
    out.primary.data = d.subspan(pos);
    return red_status::ok;
}

/// Wraps audio payloads in RED with the previous 0..2 payloads as redundancy.
///
/// Each encode() must become one RTP packet, sent with the next sequence number: the
/// receiver places redundant blocks by counting back from it. A previous payload goes along
/// when it is 1..1023 bytes, its timestamp 1..16383 ticks older, and (for the older one)
/// the newer one goes too; when `out` is short the oldest is left out first.
///
/// Thread safety: none.
class red_encoder {
public:
    explicit red_encoder(std::size_t redundancy = 1) noexcept { set_redundancy(redundancy); }

    void set_redundancy(std::size_t n) noexcept { redundancy_ = std::min(n, red_max_redundancy); }
    std::size_t redundancy() const noexcept { return redundancy_; }
    /// Forgets the previous payloads (a new stream, or after a discontinuity).
    void reset() noexcept { history_ = {}; }

    /// Writes the RED payload for `primary` (payload type `pt`, RTP timestamp `timestamp`)
    /// into `out` and keeps it for the next packets. Returns the size, or 0 (and keeps
    /// nothing) when `out` cannot hold even the primary alone.
    std::size_t encode(std::uint8_t pt, std::uint32_t timestamp, rtp::bytes_view primary,
                       std::span<std::uint8_t> out) noexcept {
        // The eligible previous payloads, newest first, stopping at the first gap.
        std::array<const entry*, red_max_redundancy> use{};
        std::size_t n = 0;
        for (std::size_t k = 0; k < redundancy_; ++k) {
            const entry& e = history_[(head_ + history_.size() - 1 - k) % history_.size()];
            const std::uint32_t offset = timestamp - e.timestamp;
            if (!e.valid || e.size == 0 || offset == 0 || offset > red_max_timestamp_offset) break;
            use[n++] = &e;
        }
        auto total = [&](std::size_t k) {
            std::size_t t = 1 + primary.size();
            for (std::size_t i = 0; i < k; ++i) t += 4 + use[i]->size;
            return t;
        };
        while (n > 0 && total(n) > out.size()) --n;
        if (total(n) > out.size()) return 0;
        std::uint8_t* p = out.data();
        for (std::size_t i = n; i-- > 0;) { // oldest first
            const entry& e = *use[i];
            *p++ = static_cast<std::uint8_t>(0x80 | (e.payload_type & 0x7f));
            rtp::store_be24(p, (timestamp - e.timestamp) << 10 | static_cast<std::uint32_t>(e.size));
            p += 3;
        }
        *p++ = static_cast<std::uint8_t>(pt & 0x7f);
        for (std::size_t i = n; i-- > 0;) {
            std::memcpy(p, use[i]->data.data(), use[i]->size);
            p += use[i]->size;
        }
        if (!primary.empty()) std::memcpy(p, primary.data(), primary.size());
        const std::size_t size = total(n);
        remember(pt, timestamp, primary);
        return size;
    }

private:
    struct entry {
        bool valid = false;
        std::uint8_t payload_type = 0;
        std::uint32_t timestamp = 0;
        std::size_t size = 0;
        std::array<std::uint8_t, red_max_block_length> data;
    };
    void remember(std::uint8_t pt, std::uint32_t timestamp, rtp::bytes_view d) noexcept {
        entry& e = history_[head_];
        head_ = (head_ + 1) % history_.size();
        e.valid = d.size() <= red_max_block_length; // a longer one breaks the chain
        e.payload_type = pt;
        e.timestamp = timestamp;
        e.size = e.valid ? d.size() : 0;
        if (e.size) std::memcpy(e.data.data(), d.data(), e.size);
    }

    std::size_t redundancy_ = 1;
    std::array<entry, red_max_redundancy> history_{};
    std::size_t head_ = 0; ///< where the next payload goes; the newest is just before
};

struct red_decoder_stats {
    std::uint64_t packets = 0;          ///< parsed
    std::uint64_t redundant_blocks = 0; ///< in parsed packets
    std::uint64_t malformed = 0;        ///< the sum of the counters below
    std::uint64_t empty = 0;
    std::uint64_t truncated = 0;
    std::uint64_t too_many_blocks = 0;
    std::uint64_t length_overflow = 0;
    std::uint64_t empty_primary = 0;
};

/// parse_red() with counters, for a receiver's statistics.
class red_decoder {
public:
    /// Parses `payload`; malformed payloads are counted and reported (errc::truncated for
    /// short headers and empty input, errc::bad_payload otherwise).
    std::error_code parse(rtp::bytes_view payload, std::uint32_t timestamp, red_payload& out) noexcept {
        switch (parse_red(payload, timestamp, out)) {
        case red_status::ok:
            ++stats_.packets;
            stats_.redundant_blocks += out.redundant_count;
            return {};
        case red_status::empty: return fail(stats_.empty, errc::truncated);
        case red_status::truncated: return fail(stats_.truncated, errc::truncated);
        case red_status::too_many_blocks: return fail(stats_.too_many_blocks, errc::bad_payload);
        case red_status::length_overflow: return fail(stats_.length_overflow, errc::bad_payload);
        case red_status::empty_primary: return fail(stats_.empty_primary, errc::bad_payload);
        }
        return errc::bad_payload;
    }
    /// Parses a whole RTP packet whose payload is RED.
    std::error_code parse(const rtp::packet_view& p, red_payload& out) noexcept { return parse(p.payload, p.timestamp, out); }

    const red_decoder_stats& stats() const noexcept { return stats_; }

private:
    std::error_code fail(std::uint64_t& counter, errc e) noexcept {
        ++counter;
        ++stats_.malformed;
        return e;
    }
    red_decoder_stats stats_;
};

/// A redundant block standing in for a lost packet.
struct red_recovery {
    std::uint16_t sequence = 0;
    red_block block;
};

/// The redundant blocks of the RED packet `p` (sequence number `sequence`) that fill gaps:
/// block i of n is packet sequence - (n - i); it is wanted when `received(seq)` is false
/// and it is not empty. Writes them oldest first into `out`; returns how many.
template <class Received>
std::size_t red_gaps(const red_payload& p, std::uint16_t sequence, Received&& received, std::span<red_recovery> out) {
    std::size_t k = 0;
    const std::size_t n = p.redundant_count;
    for (std::size_t i = 0; i < n && k < out.size(); ++i) {
        const auto seq = static_cast<std::uint16_t>(sequence - (n - i));
        if (p.redundant_blocks[i].data.empty() || received(seq)) continue;
        out[k++] = red_recovery{seq, p.redundant_blocks[i]};
    }
    return k;
}

/// Which of the last 64 sequence numbers arrived (or were filled in): the `received`
/// predicate for red_gaps(). Numbers older than the window, or before the first packet,
/// count as received: there is nothing to fill there.
class sequence_history {
public:
    void insert(std::uint16_t seq) noexcept {
        const std::int64_t s = unwrap_.unwrap(seq);
        if (!has_) {
            has_ = true;
            first_ = highest_ = s;
            bits_ = 1;
            return;
        }
        if (s > highest_) {
            const std::int64_t shift = s - highest_;
            bits_ = shift >= 64 ? 0 : bits_ << shift;
            bits_ |= 1;
            highest_ = s;
        } else if (highest_ - s < 64) {
            bits_ |= std::uint64_t{1} << (highest_ - s);
        }
        first_ = std::min(first_, s);
    }
    bool received(std::uint16_t seq) const noexcept {
        if (!has_) return true;
        const std::int64_t s = unwrap_.peek(seq);
        if (s < first_ || highest_ - s >= 64) return true;
        if (s > highest_) return false;
        return ((bits_ >> (highest_ - s)) & 1u) != 0;
    }
    bool operator()(std::uint16_t seq) const noexcept { return received(seq); }

private:
    rtp::seq_unwrapper unwrap_;
    std::int64_t first_ = 0;
    std::int64_t highest_ = 0;
    std::uint64_t bits_ = 0;
    bool has_ = false;
};

} // namespace onair::qos
