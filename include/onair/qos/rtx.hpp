// onair — RTP retransmission payload format (RFC 4588, SSRC multiplexing).
//
// A retransmission travels on its own SSRC and payload type with its own sequence numbers;
// its payload starts with the original sequence number (OSN, 2 bytes) followed by the
// original payload. Header extensions and CSRCs are copied from the original packet, the
// marker bit and timestamp too; padding is not retransmitted.
#pragma once

#include "onair/core/error.hpp"
#include "onair/rtp/packet.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <system_error>

namespace onair::qos {

/// Writes the RTX form of `original` into `out`; returns its size, 0 when `out` is too small.
inline std::size_t write_rtx(const rtp::packet_view& original, std::uint32_t rtx_ssrc, std::uint8_t rtx_pt,
                             std::uint16_t rtx_sequence, std::span<std::uint8_t> out) noexcept {
    const std::size_t header = original.header_size();
    const std::size_t total = header + 2 + original.payload.size();
    if (out.size() < total || header < rtp::fixed_header_size) return 0;
    std::uint8_t* p = out.data();
    std::memcpy(p, original.whole.data(), header);
    p[0] &= static_cast<std::uint8_t>(~0x20); // no padding
    p[1] = static_cast<std::uint8_t>((p[1] & 0x80) | (rtx_pt & 0x7f));
    rtp::store_be16(p + 2, rtx_sequence);
    rtp::store_be32(p + 8, rtx_ssrc);
    rtp::store_be16(p + header, original.sequence);
    if (!original.payload.empty()) std::memcpy(p + header + 2, original.payload.data(), original.payload.size());
    return total;
}

/// Rebuilds the original packet from an RTX packet (already parsed) into `out`: original
/// SSRC, payload type and sequence number (the OSN). Returns the size, or an error for an
/// RTX payload too short to hold an OSN.
inline std::error_code restore_rtx(const rtp::packet_view& rtx, std::uint32_t media_ssrc, std::uint8_t media_pt,
                                   std::span<std::uint8_t> out, std::size_t& size) noexcept {
    if (rtx.payload.size() < 2) return errc::truncated;
    const std::size_t header = rtx.header_size();
    const std::size_t total = header + rtx.payload.size() - 2;
    if (out.size() < total) return errc::oversized;
    std::uint8_t* p = out.data();
    std::memcpy(p, rtx.whole.data(), header);
    p[0] &= static_cast<std::uint8_t>(~0x20);
    p[1] = static_cast<std::uint8_t>((p[1] & 0x80) | (media_pt & 0x7f));
    std::memcpy(p + 2, rtx.payload.data(), 2); // OSN becomes the sequence number
    rtp::store_be32(p + 8, media_ssrc);
    if (rtx.payload.size() > 2) std::memcpy(p + header, rtx.payload.data() + 2, rtx.payload.size() - 2);
    size = total;
    return {};
}

} // namespace onair::qos
