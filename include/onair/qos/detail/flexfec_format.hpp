// onair — FlexFEC (RFC 8627) wire format: the FEC header, the protected-packet sets it
// describes, and the parity ("bit string") arithmetic shared by the encoder and decoder.
//
// An RFC 8627 repair packet is an RTP packet on its own SSRC whose CSRC list names the
// protected source SSRC (CC=1: onair protects one stream per FEC stream), followed by:
//
//   flexible mask (R=0 F=0)                     fixed L/D (R=0 F=1)
//   |0|0|P|X| CC |M| PT rec | length recovery |  |0|1|P|X| CC |M| PT rec | length recovery |
//   |            TS recovery                  |  |            TS recovery                  |
//   |     SN base      |k| mask 0-14          |  |     SN base      | L (cols) | D (rows)   |
//   |k|  mask 15-45 (when the first k = 0)    |  :  repair payload                         :
//   |  mask 46-109 (when both k = 0, 64 bits) |
//   :  repair payload                         :
//
// k = 1 ends the mask (so the mask is 15, 46 or 110 bits); mask bit i (most significant
// first) protects sequence number SN base + i. Fixed mode: D <= 1 protects the row SN base ..
// SN base + L - 1 (D = 1 says column packets follow), D > 1 the column SN base + j*L, j < D.
//
// The bit string of a source packet is its first 8 bytes, with the 16-bit length of what
// follows the fixed header (packet length - 12) in place of the sequence number, then
// everything after byte 12 (CSRCs, extension, payload, padding); the repair packet carries
// the XOR of its source packets' bit strings, shorter ones padded with zeros (§6.2).
#pragma once

#include "onair/core/packet_buffer.hpp"
#include "onair/rtp/packet.hpp"
#include "onair/rtp/sequence.hpp"

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace onair::qos {

/// Payload type onair uses for FlexFEC (SDP: `a=rtpmap:118 flexfec/90000`).
inline constexpr std::uint8_t flexfec_payload_type = 118;
/// Mask bits of the flexible variant: packets SN base + 0 .. SN base + 109.
inline constexpr std::size_t flexfec_max_mask_bits = 110;

namespace detail {

/// RTP header (12) + one CSRC (4) + optional one-byte extension block with a transport-wide
/// sequence number (8).
inline constexpr std::size_t fec_rtp_header_max = rtp::fixed_header_size + 4 + 8;
inline constexpr std::size_t fec_header_min = 12;  ///< fixed variant, or flexible with a 15-bit mask
inline constexpr std::size_t fec_header_max = 24;  ///< flexible with a 110-bit mask
/// Largest repair payload that keeps a FEC datagram within max_datagram_size.
inline constexpr std::size_t fec_max_repair = max_datagram_size - fec_rtp_header_max - fec_header_max;
/// Largest media datagram the encoder protects (its bit string body must fit the repair payload).
inline constexpr std::size_t fec_max_media = fec_max_repair + rtp::fixed_header_size;

/// Up to 256 protected packets: sequence number base + i * stride for every set bit i.
struct fec_coverage {
    std::int64_t base = 0; ///< unwrapped in the decoder, a 16-bit value in the encoder
    std::uint16_t stride = 1;
    std::uint16_t count = 0; ///< bits at or above count are never set
    std::array<std::uint64_t, 4> bits{};

    void set(std::size_t i) noexcept {
        bits[i / 64] |= std::uint64_t{1} << (i % 64);
        if (i + 1 > count) count = static_cast<std::uint16_t>(i + 1);
    }
    bool test(std::size_t i) const noexcept { return i < 256 && ((bits[i / 64] >> (i % 64)) & 1u) != 0; }
    bool empty() const noexcept { return (bits[0] | bits[1] | bits[2] | bits[3]) == 0; }
    std::size_t size() const noexcept {
        std::size_t n = 0;
        for (auto w : bits) n += static_cast<std::size_t>(std::popcount(w));
        return n;
    }
    std::int64_t last() const noexcept { return base + std::int64_t{count ? count - 1 : 0} * stride; }
    /// Distance in sequence numbers from the first to the last protected packet, plus one.
    std::int64_t span() const noexcept { return last() - base + 1; }
    bool covers(std::int64_t seq) const noexcept {
        const std::int64_t d = seq - base;
        if (d < 0 || d % stride != 0) return false;
        const std::int64_t i = d / stride;
        return i < count && test(static_cast<std::size_t>(i));
    }
    /// Calls f(std::int64_t seq) for each protected packet; stops early when f returns false.
    template <class F>
    void for_each(F&& f) const {
        for (std::size_t w = 0; w < bits.size(); ++w) {
            std::uint64_t word = bits[w];
            while (word) {
                const auto b = static_cast<std::size_t>(std::countr_zero(word));
                word &= word - 1;
                if (!f(base + static_cast<std::int64_t>(w * 64 + b) * stride)) return;
            }
        }
    }
};

/// dst[i] ^= src[i] for i < n, a word at a time.
inline void xor_bytes(std::uint8_t* dst, const std::uint8_t* src, std::size_t n) noexcept {
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        std::uint64_t a, b;
        std::memcpy(&a, dst + i, 8);
        std::memcpy(&b, src + i, 8);
        a ^= b;
        std::memcpy(dst + i, &a, 8);
    }
    for (; i < n; ++i) dst[i] ^= src[i];
}

/// Running parity of the bit strings of the source packets one repair packet protects.
struct fec_accumulator {
    std::array<std::uint8_t, 8> head{}; ///< XOR of bytes 0-7 (bytes 2-3, the sequence number, unused)
    std::uint16_t length = 0;           ///< XOR of (packet length - 12)
    std::size_t size = 0;               ///< longest (packet length - 12): the repair payload size
    std::uint32_t last_timestamp = 0;
    fec_coverage cover;
    std::array<std::uint8_t, fec_max_repair> body; ///< XOR of bytes 12..; zero beyond `size`

    fec_accumulator() noexcept { body.fill(0); }
    bool empty() const noexcept { return cover.empty(); }
    void clear() noexcept {
        head = {};
        length = 0;
        std::memset(body.data(), 0, size);
        size = 0;
        cover = {};
    }
    /// Adds a source packet (length 12..fec_max_media, checked by the caller) as index i.
    void add(rtp::bytes_view pkt, std::size_t i) noexcept {
        xor_bytes(head.data(), pkt.data(), 8);
        const std::size_t n = pkt.size() - rtp::fixed_header_size;
        length ^= static_cast<std::uint16_t>(n);
        xor_bytes(body.data(), pkt.data() + rtp::fixed_header_size, n);
        if (n > size) size = n;
        last_timestamp = rtp::load_be32(pkt.data() + 4);
        cover.set(i);
    }
    /// Folds another accumulator (same base and stride) into this one.
    void merge(const fec_accumulator& o) noexcept {
        xor_bytes(head.data(), o.head.data(), 8);
        length ^= o.length;
        xor_bytes(body.data(), o.body.data(), o.size);
        if (o.size > size) size = o.size;
        if (rtp::ts_newer(o.last_timestamp, last_timestamp)) last_timestamp = o.last_timestamp;
        for (std::size_t w = 0; w < cover.bits.size(); ++w) cover.bits[w] |= o.cover.bits[w];
        if (o.cover.count > cover.count) cover.count = o.cover.count;
    }
};

/// Where the FEC packet's RTP header comes from.
struct fec_rtp_fields {
    std::uint8_t payload_type = 0;
    std::uint16_t sequence = 0;
    std::uint32_t timestamp = 0;
    std::uint32_t ssrc = 0;
    std::uint32_t protected_ssrc = 0;
    bool transport_sequence = false; ///< reserve an RFC 8285 element (id 1, value 0) for the pacer
};

/// Offset of the transport-wide sequence number in a FEC packet written with one.
inline constexpr std::size_t fec_transport_sequence_offset = rtp::fixed_header_size + 4 + 4 + 1;

/// How a repair packet names its source packets on the wire.
enum class fec_layout : std::uint8_t {
    flexible, ///< R=0 F=0 mask; cover.stride must be 1 and count <= 110
    row,      ///< R=0 F=1, L = count, D = 0 (1-D) or 1 (2-D: columns follow)
    column,   ///< R=0 F=1, L = stride, D = count (>= 2)
};

/// Writes one repair packet; returns its size, 0 when `out` is too small or the coverage
/// does not fit the layout. `row_d` is the D value of a row packet (0 or 1).
inline std::size_t write_fec_packet(const fec_rtp_fields& h, const fec_accumulator& acc, fec_layout layout,
                                    std::uint8_t row_d, std::span<std::uint8_t> out) noexcept {
    std::size_t fec_header = fec_header_min;
    std::uint8_t mask[14] = {};
    if (layout == fec_layout::flexible) {
        if (acc.cover.stride != 1 || acc.cover.count > flexfec_max_mask_bits || acc.cover.empty()) return 0;
        auto put = [&](std::size_t bit_pos, std::size_t i) { // bit_pos counted from mask[0]'s MSB
            if (acc.cover.test(i)) mask[bit_pos / 8] |= static_cast<std::uint8_t>(0x80u >> (bit_pos % 8));
        };
        for (std::size_t i = 0; i < 15; ++i) put(1 + i, i);
        if (acc.cover.count <= 15) {
            mask[0] |= 0x80; // k: mask ends here
            fec_header = 12;
        } else {
            for (std::size_t i = 15; i < 46; ++i) put(17 + (i - 15), i);
            if (acc.cover.count <= 46) {
                mask[2] |= 0x80;
                fec_header = 16;
            } else {
                for (std::size_t i = 46; i < 110; ++i) put(48 + (i - 46), i);
                fec_header = 24;
            }
        }
    } else if (acc.cover.count == 0 || acc.cover.count > 255 || acc.cover.stride == 0 ||
               (layout == fec_layout::column && (acc.cover.count < 2 || acc.cover.stride > 255))) {
        return 0;
    }
    const std::size_t rtp_header = rtp::fixed_header_size + 4 + (h.transport_sequence ? 8 : 0);
    const std::size_t total = rtp_header + fec_header + acc.size;
    if (out.size() < total) return 0;
    std::uint8_t* p = out.data();
    p[0] = static_cast<std::uint8_t>(0x80 | (h.transport_sequence ? 0x10 : 0) | 1); // V=2, CC=1
    p[1] = static_cast<std::uint8_t>(h.payload_type & 0x7f);
    rtp::store_be16(p + 2, h.sequence);
    rtp::store_be32(p + 4, h.timestamp);
    rtp::store_be32(p + 8, h.ssrc);
    rtp::store_be32(p + 12, h.protected_ssrc);
    if (h.transport_sequence) {
        const std::uint8_t ext[8] = {0xBE, 0xDE, 0x00, 0x01, static_cast<std::uint8_t>(rtp::ext::transport_sequence << 4 | 1),
                                     0, 0, 0};
        std::memcpy(p + 16, ext, sizeof ext);
    }
    std::uint8_t* f = p + rtp_header;
    // The first 2 bits of the parity string (the version) give way to R and F.
    f[0] = static_cast<std::uint8_t>((acc.head[0] & 0x3f) | (layout == fec_layout::flexible ? 0x00 : 0x40));
    f[1] = acc.head[1];
    rtp::store_be16(f + 2, acc.length);
    std::memcpy(f + 4, acc.head.data() + 4, 4);
    rtp::store_be16(f + 8, static_cast<std::uint16_t>(acc.cover.base));
    if (layout == fec_layout::flexible) {
        std::memcpy(f + 10, mask, fec_header - 10);
    } else if (layout == fec_layout::row) {
        f[10] = static_cast<std::uint8_t>(acc.cover.count);
        f[11] = row_d;
    } else {
        f[10] = static_cast<std::uint8_t>(acc.cover.stride);
        f[11] = static_cast<std::uint8_t>(acc.cover.count);
    }
    if (acc.size) std::memcpy(f + fec_header, acc.body.data(), acc.size);
    return total;
}

/// Why a repair packet was refused.
enum class fec_parse_status : std::uint8_t {
    ok,
    truncated,      ///< FEC header longer than the payload
    bad_ssrc_count, ///< CC is not 1
    bad_mask,       ///< empty mask, L = 0
    unsupported,    ///< R = 1 (retransmission variant) or R = F = 1 (reserved)
};

/// A parsed repair packet; spans point into the datagram.
struct fec_packet_view {
    std::uint32_t protected_ssrc = 0;
    std::uint8_t recovery0 = 0; ///< P, X, CC recovery in the low 6 bits
    std::uint8_t recovery1 = 0; ///< M, PT recovery
    std::uint16_t length_recovery = 0;
    std::uint32_t timestamp_recovery = 0;
    fec_coverage cover; ///< base is the 16-bit SN base
    fec_layout layout = fec_layout::flexible;
    rtp::bytes_view repair;
};

/// Parses the FEC part of a repair packet already parsed as RTP. Never reads outside `p`.
inline fec_parse_status parse_fec_packet(const rtp::packet_view& p, fec_packet_view& out) noexcept {
    if (p.csrc_count != 1) return fec_parse_status::bad_ssrc_count;
    out = fec_packet_view{};
    out.protected_ssrc = p.csrc(0);
    const rtp::bytes_view d = p.payload;
    if (d.size() < fec_header_min) return fec_parse_status::truncated;
    const bool r = (d[0] & 0x80) != 0;
    const bool f = (d[0] & 0x40) != 0;
    if (r) return fec_parse_status::unsupported;
    out.recovery0 = d[0] & 0x3f;
    out.recovery1 = d[1];
    out.length_recovery = rtp::load_be16(&d[2]);
    out.timestamp_recovery = rtp::load_be32(&d[4]);
    out.cover.base = rtp::load_be16(&d[8]);
    std::size_t header = 12;
    if (!f) {
        out.layout = fec_layout::flexible;
        auto take = [&](std::size_t bit_pos, std::size_t i) {
            if (d[8 + 2 + bit_pos / 8] & (0x80u >> (bit_pos % 8))) out.cover.set(i);
        };
        for (std::size_t i = 0; i < 15; ++i) take(1 + i, i);
        if (!(d[10] & 0x80)) {
            if (d.size() < 16) return fec_parse_status::truncated;
            for (std::size_t i = 15; i < 46; ++i) take(17 + (i - 15), i);
            header = 16;
            if (!(d[12] & 0x80)) {
                if (d.size() < 24) return fec_parse_status::truncated;
                for (std::size_t i = 46; i < 110; ++i) take(48 + (i - 46), i);
                header = 24;
            }
        }
        if (out.cover.empty()) return fec_parse_status::bad_mask;
    } else {
        const std::uint8_t l = d[10];
        const std::uint8_t dd = d[11];
        if (l == 0) return fec_parse_status::bad_mask;
        if (dd <= 1) {
            out.layout = fec_layout::row;
            for (std::size_t i = 0; i < l; ++i) out.cover.set(i);
        } else {
            out.layout = fec_layout::column;
            out.cover.stride = l;
            for (std::size_t i = 0; i < dd; ++i) out.cover.set(i);
        }
    }
    out.repair = d.subspan(header);
    return fec_parse_status::ok;
}

} // namespace detail
} // namespace onair::qos
