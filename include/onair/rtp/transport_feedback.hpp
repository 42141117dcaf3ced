// onair — transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-
// extensions-01 §3.1): the RTPFB message (PT=205, FMT=15) a receiver sends back to report,
// for every transport-wide sequence number in a range, whether the packet arrived and when.
//
// The FCI (what rtcp::feedback::fci holds, after the sender and media SSRCs) is
//
//   base sequence (16) | packet status count (16) | reference time (24, signed, 64 ms units)
//   | feedback packet count (8) | packet chunks (16 each) | receive deltas | zero padding
//
// Each status is a 2-bit symbol: 00 not received, 01 received with a small delta (1 byte,
// unsigned), 10 received with a large or negative delta (2 bytes, signed), 11 reserved. The
// symbol's value is therefore the number of delta bytes it implies. Chunks carry them:
//   run length chunk    0 | symbol (2) | run length (13)
//   status vector chunk 1 | 0 | 14 one-bit symbols (0 not received, 1 received small)
//                       1 | 1 | 7 two-bit symbols
// symbols first in the chunk's high bits. The last chunk may describe more symbols than the
// count asks for; the extra ones are ignored. Deltas are in 250 µs units, one per received
// packet in sequence order; the first is relative to reference time * 64 ms, each next one to
// the previous packet's time.
//
// parse() takes untrusted bytes. It validates the whole message first — every chunk needed
// for the status count, no reserved symbol among the counted statuses, every delta those
// chunks imply, at most 3 bytes of padding after — and only then reports the statuses, so a
// malformed message reports nothing. It walks the message twice instead of storing
// statuses, so it neither allocates nor limits the status count (at most 65535 steps a walk).
// The FCI need not be padded to 32 bits itself: a sender may pad with the RTCP P bit, which
// rtcp::parse_compound strips.
//
// feedback_builder encodes one message from received packets added in sequence order. Its
// storage is sized once in the constructor; add() and write() do not allocate. Chunks are
// chosen greedily as statuses arrive: a run of 8 or more equal symbols becomes a run length
// chunk, other statuses fill one-bit vectors (14 a chunk) while only "not received" and
// "small delta" occur, and two-bit vectors (7 a chunk) when a large delta is among them.
// Because the encoding is decided incrementally, add() knows the exact size of the message
// and refuses a packet that would not fit. Deltas are rounded against the builder's own
// reconstruction of the previous packet's time (what the receiver of the feedback will
// compute), so each reported time is within 125 µs of the true one however many packets
// the message holds: rounding errors do not accumulate.
#pragma once

#include "onair/rtp/packet.hpp"
#include "onair/rtp/rtcp.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace onair::rtp::twcc {

inline constexpr std::uint8_t fmt = 15; ///< RTPFB FMT of transport-wide feedback

inline constexpr std::size_t header_size = 8;           ///< FCI bytes before the chunks
inline constexpr std::int64_t delta_unit_us = 250;      ///< receive delta resolution
inline constexpr std::int64_t reference_unit_us = 64'000; ///< reference time resolution

/// The fixed part of the FCI.
struct feedback_header {
    std::uint16_t base_sequence = 0;
    std::uint16_t status_count = 0;
    std::int32_t reference_time = 0; ///< signed 24-bit, 64 ms units
    std::uint8_t feedback_count = 0;

    friend bool operator==(const feedback_header&, const feedback_header&) = default;
};

enum class parse_status : std::uint8_t {
    ok,
    truncated, ///< the header, or receive deltas the chunks imply, are missing
    bad_chunk, ///< a reserved symbol (11) among the counted statuses, or a run of length 0
    bad_count, ///< status count 0, or more statuses than the chunks present describe
    trailing,  ///< more than 3 bytes left after the deltas (padding is at most 3)
};

namespace detail {

inline constexpr std::uint8_t symbol_not_received = 0;
inline constexpr std::uint8_t symbol_small = 1;
inline constexpr std::uint8_t symbol_large = 2;
inline constexpr std::uint8_t symbol_reserved = 3;
inline constexpr std::uint16_t max_run = 0x1fff; ///< 13-bit run length
inline constexpr std::size_t one_bit_capacity = 14;
inline constexpr std::size_t two_bit_capacity = 7;

/// floor(a / b) for b > 0.
constexpr std::int64_t floor_div(std::int64_t a, std::int64_t b) noexcept {
    std::int64_t q = a / b;
    if (a % b != 0 && a < 0) --q;
    return q;
}

/// The low 24 bits of v as a signed value.
constexpr std::int32_t wrap24(std::int64_t v) noexcept {
    auto r = static_cast<std::int32_t>(v & 0xff'ffff);
    if (r & 0x80'0000) r -= 0x100'0000;
    return r;
}

/// Walks the chunks at the start of `chunks`, calling f(symbol) for the first `count`
/// statuses. On success `used` is the number of chunk bytes. Stops at the first problem;
/// f may then have been called for some statuses.
template <class F>
parse_status walk_chunks(bytes_view chunks, std::uint16_t count, std::size_t& used, F&& f) {
    std::size_t pos = 0;
    std::uint32_t left = count;
    while (left > 0) {
        if (chunks.size() - pos < 2) return parse_status::bad_count;
        const std::uint16_t c = load_be16(chunks.data() + pos);
        pos += 2;
        if ((c & 0x8000) == 0) { // run length
            const auto sym = static_cast<std::uint8_t>((c >> 13) & 3);
            const std::uint32_t run = c & max_run;
            if (sym == symbol_reserved || run == 0) return parse_status::bad_chunk;
            const std::uint32_t n = std::min(run, left);
            for (std::uint32_t i = 0; i < n; ++i) f(sym);
            left -= n;
        } else if ((c & 0x4000) == 0) { // 14 one-bit symbols
            for (int shift = 13; shift >= 0 && left > 0; --shift, --left) f(static_cast<std::uint8_t>((c >> shift) & 1));
        } else { // 7 two-bit symbols
            for (int shift = 12; shift >= 0 && left > 0; shift -= 2, --left) {
                const auto sym = static_cast<std::uint8_t>((c >> shift) & 3);
                if (sym == symbol_reserved) return parse_status::bad_chunk;
                f(sym);
            }
        }
    }
    used = pos;
    return parse_status::ok;
}

} // namespace detail

/// Decodes a transport-wide feedback FCI. On ok, calls
/// on_packet(std::uint16_t sequence, bool received, std::int64_t arrival_us) once per status
/// in sequence order (base_sequence, base_sequence + 1, ... wrapping at 2^16), with
/// arrival_us = reference_time * 64000 + the sum of the deltas so far * 250 (0 and
/// meaningless when !received). Any other result calls it zero times. `h` holds the header
/// whenever the first 8 bytes were there.
template <class F>
parse_status parse(bytes_view fci, feedback_header& h, F&& on_packet) {
    if (fci.size() < header_size) return parse_status::truncated;
    const std::uint8_t* p = fci.data();
    h.base_sequence = load_be16(p);
    h.status_count = load_be16(p + 2);
    h.reference_time = detail::wrap24(load_be24(p + 4));
    h.feedback_count = p[7];
    if (h.status_count == 0) return parse_status::bad_count;

    // First walk: the chunks are sound and the deltas they imply are all present.
    const bytes_view chunks = fci.subspan(header_size);
    std::size_t chunk_bytes = 0;
    std::size_t delta_bytes = 0; // a symbol's value is its delta size in bytes
    const parse_status st = detail::walk_chunks(chunks, h.status_count, chunk_bytes,
                                                [&](std::uint8_t sym) { delta_bytes += sym; });
    if (st != parse_status::ok) return st;
    const std::size_t needed = chunk_bytes + delta_bytes;
    if (chunks.size() < needed) return parse_status::truncated;
    if (chunks.size() - needed > 3) return parse_status::trailing;

    // Second walk: report.
    const std::uint8_t* d = chunks.data() + chunk_bytes;
    std::int64_t t = std::int64_t{h.reference_time} * reference_unit_us;
    auto seq = h.base_sequence;
    std::size_t unused = 0;
    detail::walk_chunks(chunks, h.status_count, unused, [&](std::uint8_t sym) {
        if (sym == detail::symbol_not_received) {
            on_packet(seq, false, std::int64_t{0});
        } else {
            if (sym == detail::symbol_small) {
                t += std::int64_t{*d} * delta_unit_us;
                d += 1;
            } else {
                t += std::int64_t{static_cast<std::int16_t>(load_be16(d))} * delta_unit_us;
                d += 2;
            }
            on_packet(seq, true, t);
        }
        seq = static_cast<std::uint16_t>(seq + 1);
    });
    return parse_status::ok;
}

/// Builds one transport-wide feedback message. Thread safety: none.
class feedback_builder {
public:
    /// `max_fci_bytes`: the largest FCI write() may produce (padding included); the RTCP
    /// packet write_rtcp() makes is 12 bytes more.
    explicit feedback_builder(std::size_t max_fci_bytes = 1200)
        : max_fci_(max_fci_bytes / 4 * 4),
          // A message of n FCI bytes has at most (n - 8) / 2 chunks and n - 8 deltas; one add()
          // emits at most a few chunks before its size is checked (a gap of up to 32767 lost
          // statuses is 4 run chunks, plus two vector flushes).
          scratch_(max_fci_ + 4) {
        chunks_.reserve(max_fci_ / 2 + 16);
        deltas_.reserve(max_fci_);
    }

    /// Starts a new message whose first status is `base_sequence`. Reference time is
    /// floor(first_arrival_us / 64 ms), kept to signed 24 bits (wrapping); pass the arrival
    /// time of the first packet that will be added.
    void reset(std::uint16_t base_sequence, std::int64_t first_arrival_us, std::uint8_t feedback_count) noexcept {
        base_ = base_sequence;
        const std::int64_t ref = detail::floor_div(first_arrival_us, reference_unit_us);
        reference_ = detail::wrap24(ref);
        last_ticks_ = ref * (reference_unit_us / delta_unit_us);
        feedback_count_ = feedback_count;
        chunks_.clear();
        deltas_.clear();
        tail_ = {};
        delta_bytes_ = 0;
        status_count_ = 0;
        last_seq_ = 0;
    }

    /// Adds a packet received at `arrival_us`, after the last one added (the first one at or
    /// after the base sequence; sequence numbers between become "not received"). Returns
    /// false, changing nothing, when the packet does not fit this message: its sequence is
    /// not ahead (by less than 2^15), the status count would pass 65535, its delta from the
    /// previous reported time is outside the 2-byte signed range (±8192 ms), or the FCI
    /// would grow past the size limit. The caller then starts a new message with it.
    bool add(std::uint16_t sequence, std::int64_t arrival_us) {
        std::uint32_t gap = 0;
        if (status_count_ > 0) {
            const auto diff = static_cast<std::uint16_t>(sequence - last_seq_);
            if (diff == 0 || diff >= 0x8000) return false;
            gap = diff - 1u;
        } else {
            gap = static_cast<std::uint16_t>(sequence - base_);
            if (gap >= 0x8000) return false;
        }
        if (status_count_ + gap + 1 > 0xffff) return false;
        const std::int64_t ticks = detail::floor_div(arrival_us + delta_unit_us / 2, delta_unit_us);
        const std::int64_t delta = ticks - last_ticks_;
        if (delta < -0x8000 || delta > 0x7fff) return false;
        const bool small = delta >= 0 && delta <= 0xff;
        if (deltas_.size() == deltas_.capacity() || chunks_.capacity() - chunks_.size() < 16) return false;

        const std::size_t old_chunks = chunks_.size();
        const tail old_tail = tail_;
        if (gap > 0) push(detail::symbol_not_received, gap);
        push(small ? detail::symbol_small : detail::symbol_large, 1);
        const std::size_t dbytes = delta_bytes_ + (small ? 1 : 2);
        if (fci_size(chunks_.size() + (tail_.n > 0 ? 1 : 0), dbytes) > max_fci_) {
            chunks_.resize(old_chunks);
            tail_ = old_tail;
            return false;
        }
        deltas_.push_back(static_cast<std::int16_t>(delta));
        delta_bytes_ = dbytes;
        last_ticks_ = ticks;
        last_seq_ = sequence;
        status_count_ += gap + 1;
        return true;
    }

    bool empty() const noexcept { return status_count_ == 0; }
    /// Statuses so far, lost ones included.
    std::uint16_t status_count() const noexcept { return static_cast<std::uint16_t>(status_count_); }
    /// Received packets added so far.
    std::size_t received() const noexcept { return deltas_.size(); }
    std::uint16_t base_sequence() const noexcept { return base_; }
    std::int32_t reference_time() const noexcept { return reference_; }
    std::uint8_t feedback_count() const noexcept { return feedback_count_; }
    /// Bytes this builder takes: the object and its buffers (sized at construction).
    std::size_t memory_bytes() const noexcept {
        return sizeof(*this) + scratch_.capacity() + chunks_.capacity() * sizeof(std::uint16_t) +
               deltas_.capacity() * sizeof(std::int16_t);
    }
    /// Bytes write() produces now (0 while empty).
    std::size_t size() const noexcept {
        return empty() ? 0 : fci_size(chunks_.size() + (tail_.n > 0 ? 1 : 0), delta_bytes_);
    }

    /// Writes the FCI, zero-padded to a multiple of 4 bytes. Returns its size, or 0 when
    /// `out` is too small or nothing was added (a message must report at least one status).
    std::size_t write(std::span<std::uint8_t> out) const noexcept {
        const std::size_t n = size();
        if (n == 0 || out.size() < n) return 0;
        std::uint8_t* p = out.data();
        store_be16(p, base_);
        store_be16(p + 2, static_cast<std::uint16_t>(status_count_));
        store_be24(p + 4, static_cast<std::uint32_t>(reference_) & 0xff'ffff);
        p[7] = feedback_count_;
        std::uint8_t* q = p + header_size;
        for (const std::uint16_t c : chunks_) {
            store_be16(q, c);
            q += 2;
        }
        if (tail_.n > 0) {
            store_be16(q, tail_chunk());
            q += 2;
        }
        for (const std::int16_t d : deltas_) {
            if (d >= 0 && d <= 0xff) {
                *q++ = static_cast<std::uint8_t>(d);
            } else {
                store_be16(q, static_cast<std::uint16_t>(d));
                q += 2;
            }
        }
        while (q < p + n) *q++ = 0;
        return n;
    }

    /// Writes a complete RTCP RTPFB packet (FMT=15) carrying the FCI. Returns its size, or 0
    /// when `out` is too small or nothing was added.
    std::size_t write_rtcp(std::uint32_t sender_ssrc, std::uint32_t media_ssrc, std::span<std::uint8_t> out) const noexcept {
        const std::size_t n = write(scratch_);
        if (n == 0) return 0;
        rtcp::feedback f;
        f.type = rtcp::type_rtpfb;
        f.fmt = fmt;
        f.sender_ssrc = sender_ssrc;
        f.media_ssrc = media_ssrc;
        f.fci = bytes_view{scratch_.data(), n};
        return rtcp::write_feedback(f, out);
    }

private:
    /// Statuses not yet committed to a chunk: a run of one symbol (any length up to
    /// max_run), or up to 14 mixed symbols (up to 7 when one is a large delta).
    struct tail {
        std::array<std::uint8_t, detail::one_bit_capacity> sym{};
        std::uint16_t n = 0;
        bool mixed = false; ///< not all sym[0]; then n <= 14
        bool large = false; ///< holds a large-delta symbol; with mixed, n <= 7
    };

    /// A run this long is worth its own chunk when a different symbol ends it.
    static constexpr std::uint16_t run_threshold = 8;

    static std::size_t fci_size(std::size_t chunks, std::size_t delta_bytes) noexcept {
        return (header_size + 2 * chunks + delta_bytes + 3) / 4 * 4;
    }
    static std::uint16_t run_chunk(std::uint8_t sym, std::uint16_t n) noexcept {
        return static_cast<std::uint16_t>((sym << 13) | n);
    }
    static std::uint16_t vector_chunk(const std::uint8_t* s, std::size_t n, bool two_bit) noexcept {
        unsigned c = two_bit ? 0xc000u : 0x8000u;
        for (std::size_t i = 0; i < n; ++i)
            c |= two_bit ? unsigned{s[i]} << (12 - 2 * i) : unsigned{s[i]} << (13 - i);
        return static_cast<std::uint16_t>(c);
    }
    /// The chunk that carries the tail at the end of the message (a vector's unused
    /// symbols are "not received", beyond the status count, and ignored by receivers).
    std::uint16_t tail_chunk() const noexcept {
        if (!tail_.mixed) return run_chunk(tail_.sym[0], tail_.n);
        return vector_chunk(tail_.sym.data(), tail_.n, tail_.large);
    }

    void push(std::uint8_t s, std::uint32_t count) {
        while (count > 0) {
            if (tail_.n > 0 && !tail_.mixed && s == tail_.sym[0] && tail_.n < detail::max_run) {
                const auto take = static_cast<std::uint16_t>(std::min<std::uint32_t>(count, detail::max_run - tail_.n));
                for (std::size_t i = tail_.n; i < std::min<std::size_t>(tail_.n + take, detail::one_bit_capacity); ++i)
                    tail_.sym[i] = s;
                tail_.n = static_cast<std::uint16_t>(tail_.n + take);
                count -= take;
            } else {
                push_one(s);
                --count;
            }
        }
    }

    void push_one(std::uint8_t s) {
        for (;;) {
            if (tail_.n == 0) {
                tail_.sym[0] = s;
                tail_.n = 1;
                tail_.mixed = false;
                tail_.large = s == detail::symbol_large;
                return;
            }
            if (!tail_.mixed && s == tail_.sym[0]) { // the run goes on
                if (tail_.n == detail::max_run) {
                    chunks_.push_back(run_chunk(s, tail_.n));
                    tail_.n = 0;
                    continue;
                }
                if (tail_.n < detail::one_bit_capacity) tail_.sym[tail_.n] = s;
                ++tail_.n;
                return;
            }
            if (!tail_.mixed && tail_.n >= run_threshold) { // a long run ends
                chunks_.push_back(run_chunk(tail_.sym[0], tail_.n));
                tail_.n = 0;
                continue;
            }
            // Here n <= 14: a short run or mixed symbols, which a vector carries.
            const bool large = tail_.large || s == detail::symbol_large;
            const std::size_t capacity = large ? detail::two_bit_capacity : detail::one_bit_capacity;
            if (tail_.n < capacity) {
                tail_.sym[tail_.n++] = s;
                tail_.mixed = true;
                tail_.large = large;
                return;
            }
            if (!tail_.large && tail_.n == detail::one_bit_capacity) { // a full one-bit vector
                chunks_.push_back(vector_chunk(tail_.sym.data(), tail_.n, false));
                tail_.n = 0;
                continue;
            }
            // s needs two-bit symbols: the first 7 go in a two-bit vector, the rest stay.
            chunks_.push_back(vector_chunk(tail_.sym.data(), detail::two_bit_capacity, true));
            const std::size_t rest = tail_.n - detail::two_bit_capacity;
            std::copy_n(tail_.sym.begin() + detail::two_bit_capacity, rest, tail_.sym.begin());
            tail_.n = static_cast<std::uint16_t>(rest);
            tail_.mixed = false;
            tail_.large = false;
            for (std::size_t i = 0; i < rest; ++i) {
                tail_.mixed = tail_.mixed || tail_.sym[i] != tail_.sym[0];
                tail_.large = tail_.large || tail_.sym[i] == detail::symbol_large;
            }
        }
    }

    std::size_t max_fci_;
    mutable std::vector<std::uint8_t> scratch_; ///< write_rtcp's FCI, sized once
    std::vector<std::uint16_t> chunks_;         ///< committed chunks
    std::vector<std::int16_t> deltas_;          ///< one per received packet, 250 µs units
    tail tail_;
    std::size_t delta_bytes_ = 0;
    std::uint32_t status_count_ = 0;
    std::int64_t last_ticks_ = 0; ///< the receiver's reconstruction of the last time, 250 µs units
    std::int32_t reference_ = 0;
    std::uint16_t base_ = 0;
    std::uint16_t last_seq_ = 0;
    std::uint8_t feedback_count_ = 0;
};

} // namespace onair::rtp::twcc
