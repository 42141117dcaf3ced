// onair — RTP packets (RFC 3550) with RFC 8285 header extensions.
//
// parse() takes untrusted bytes: it never reads past the span, checks every length field
// and reports what was wrong as an onair::errc. A parsed packet_view points into the
// caller's buffer; it copies nothing.
#pragma once

#include "onair/core/error.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <system_error>

namespace onair::rtp {

using bytes_view = std::span<const std::uint8_t>;

inline constexpr std::size_t fixed_header_size = 12;
/// Largest RTP payload onair puts in one packet, so packets fit a 1280-byte path MTU.
inline constexpr std::size_t max_payload_size = 1200;

/// Header extension ids onair negotiates (RFC 8285 one-byte form, ids 1..14). The SDP the
/// relay writes declares them with these URIs.
namespace ext {
inline constexpr std::uint8_t transport_sequence = 1; ///< 2 bytes, transport-wide-cc-extensions-01
inline constexpr std::uint8_t abs_capture_time = 2;   ///< 8 bytes NTP (optionally +8 clock offset)
inline constexpr const char* transport_sequence_uri =
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
inline constexpr const char* abs_capture_time_uri =
    "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time";
} // namespace ext

inline std::uint16_t load_be16(const std::uint8_t* p) noexcept {
    return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}
inline std::uint32_t load_be24(const std::uint8_t* p) noexcept {
    return (std::uint32_t{p[0]} << 16) | (std::uint32_t{p[1]} << 8) | p[2];
}
inline std::uint32_t load_be32(const std::uint8_t* p) noexcept {
    return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}
inline std::uint64_t load_be64(const std::uint8_t* p) noexcept {
    return (std::uint64_t{load_be32(p)} << 32) | load_be32(p + 4);
}
inline void store_be16(std::uint8_t* p, std::uint16_t v) noexcept {
    p[0] = static_cast<std::uint8_t>(v >> 8);
    p[1] = static_cast<std::uint8_t>(v);
}
inline void store_be24(std::uint8_t* p, std::uint32_t v) noexcept {
    p[0] = static_cast<std::uint8_t>(v >> 16);
    p[1] = static_cast<std::uint8_t>(v >> 8);
    p[2] = static_cast<std::uint8_t>(v);
}
inline void store_be32(std::uint8_t* p, std::uint32_t v) noexcept {
    p[0] = static_cast<std::uint8_t>(v >> 24);
    p[1] = static_cast<std::uint8_t>(v >> 16);
    p[2] = static_cast<std::uint8_t>(v >> 8);
    p[3] = static_cast<std::uint8_t>(v);
}
inline void store_be64(std::uint8_t* p, std::uint64_t v) noexcept {
    store_be32(p, static_cast<std::uint32_t>(v >> 32));
    store_be32(p + 4, static_cast<std::uint32_t>(v));
}

/// True when a datagram is RTCP rather than RTP (RFC 5761 §4: payload types 192-223).
inline bool is_rtcp(bytes_view d) noexcept {
    return d.size() >= 2 && (d[0] >> 6) == 2 && d[1] >= 192 && d[1] <= 223;
}

/// A parsed RTP packet; spans point into the parsed buffer.
struct packet_view {
    bool marker = false;
    std::uint8_t payload_type = 0;
    std::uint16_t sequence = 0;
    std::uint32_t timestamp = 0;
    std::uint32_t ssrc = 0;
    std::uint8_t csrc_count = 0;
    std::uint16_t extension_profile = 0; ///< 0xBEDE, 0x100x, other, or 0 when absent
    bytes_view extension_data;           ///< the extension block without its 4-byte header
    bytes_view payload;                  ///< excludes padding
    std::uint8_t padding = 0;
    bytes_view whole;                    ///< the entire datagram

    std::uint32_t csrc(std::size_t i) const noexcept { return load_be32(whole.data() + fixed_header_size + 4 * i); }
    std::size_t header_size() const noexcept { return static_cast<std::size_t>(payload.data() - whole.data()); }

    /// Value of RFC 8285 element `id`, or nullopt. The block was validated by parse().
    std::optional<bytes_view> extension(std::uint8_t id) const noexcept {
        const std::uint8_t* p = extension_data.data();
        const std::uint8_t* end = p + extension_data.size();
        if (extension_profile == 0xBEDE) {
            while (p < end) {
                if (*p == 0) { ++p; continue; } // padding byte
                const std::uint8_t eid = *p >> 4;
                const std::size_t len = (*p & 0x0f) + 1u;
                if (eid == 15) break; // reserved: stop processing (RFC 8285 §4.2)
                if (eid == id) return bytes_view{p + 1, len};
                p += 1 + len;
            }
        } else if ((extension_profile & 0xfff0) == 0x1000) {
            while (p < end) {
                if (*p == 0) { ++p; continue; }
                const std::uint8_t eid = p[0];
                const std::size_t len = p[1];
                if (eid == id) return bytes_view{p + 2, len};
                p += 2 + len;
            }
        }
        return std::nullopt;
    }
    std::optional<std::uint16_t> transport_sequence() const noexcept {
        auto e = extension(ext::transport_sequence);
        if (!e || e->size() != 2) return std::nullopt;
        return load_be16(e->data());
    }
    /// Absolute capture time as a 64-bit NTP timestamp.
    std::optional<std::uint64_t> abs_capture_time() const noexcept {
        auto e = extension(ext::abs_capture_time);
        if (!e || (e->size() != 8 && e->size() != 16)) return std::nullopt;
        return load_be64(e->data());
    }
};

/// Checks that an extension block is well formed (every element inside the block).
inline bool valid_extension_block(std::uint16_t profile, bytes_view block) noexcept {
    const std::uint8_t* p = block.data();
    const std::uint8_t* end = p + block.size();
    if (profile == 0xBEDE) {
        while (p < end) {
            if (*p == 0) { ++p; continue; }
            if ((*p >> 4) == 15) return true; // rest ignored by the receiver
            const std::size_t len = (*p & 0x0f) + 1u;
            if (static_cast<std::size_t>(end - p) < 1 + len) return false;
            p += 1 + len;
        }
        return true;
    }
    if ((profile & 0xfff0) == 0x1000) {
        while (p < end) {
            if (*p == 0) { ++p; continue; }
            if (end - p < 2) return false;
            const std::size_t len = p[1];
            if (static_cast<std::size_t>(end - p) < 2 + len) return false;
            p += 2 + len;
        }
        return true;
    }
    return true; // an unknown profile is carried opaquely
}

/// Parses an RTP packet. On error `out` is unspecified.
inline std::error_code parse(bytes_view d, packet_view& out) noexcept {
    if (d.size() < fixed_header_size) return errc::truncated;
    const std::uint8_t b0 = d[0];
    if ((b0 >> 6) != 2) return errc::bad_version;
    out = packet_view{};
    out.whole = d;
    const bool has_padding = (b0 & 0x20) != 0;
    const bool has_ext = (b0 & 0x10) != 0;
    out.csrc_count = b0 & 0x0f;
    out.marker = (d[1] & 0x80) != 0;
    out.payload_type = d[1] & 0x7f;
    out.sequence = load_be16(&d[2]);
    out.timestamp = load_be32(&d[4]);
    out.ssrc = load_be32(&d[8]);
    std::size_t pos = fixed_header_size + 4u * out.csrc_count;
    if (d.size() < pos) return errc::truncated;
    if (has_ext) {
        if (d.size() < pos + 4) return errc::truncated;
        out.extension_profile = load_be16(&d[pos]);
        const std::size_t words = load_be16(&d[pos + 2]);
        pos += 4;
        if (d.size() - pos < words * 4) return errc::bad_extension;
        out.extension_data = d.subspan(pos, words * 4);
        if (!valid_extension_block(out.extension_profile, out.extension_data)) return errc::bad_extension;
        pos += words * 4;
    }
    std::size_t end = d.size();
    if (has_padding) {
        const std::uint8_t pad = d[d.size() - 1];
        if (pad == 0 || pad > end - pos) return errc::bad_padding;
        out.padding = pad;
        end -= pad;
    }
    out.payload = d.subspan(pos, end - pos);
    return {};
}

/// What a sender puts in an RTP header. Extensions are written in one-byte form.
struct header {
    bool marker = false;
    std::uint8_t payload_type = 0;
    std::uint16_t sequence = 0;
    std::uint32_t timestamp = 0;
    std::uint32_t ssrc = 0;
    std::optional<std::uint16_t> transport_sequence;
    std::optional<std::uint64_t> abs_capture_time; ///< NTP 64
};

/// Bytes write_header() will use for `h`.
inline std::size_t header_size(const header& h) noexcept {
    std::size_t ext = 0;
    if (h.transport_sequence) ext += 3;
    if (h.abs_capture_time) ext += 9;
    if (ext) ext = 4 + (ext + 3) / 4 * 4;
    return fixed_header_size + ext;
}

/// Writes the header; returns its size, or 0 when `out` is too small.
inline std::size_t write_header(const header& h, std::span<std::uint8_t> out) noexcept {
    const std::size_t n = header_size(h);
    if (out.size() < n) return 0;
    std::uint8_t* p = out.data();
    const bool has_ext = n > fixed_header_size;
    p[0] = static_cast<std::uint8_t>(0x80 | (has_ext ? 0x10 : 0));
    p[1] = static_cast<std::uint8_t>((h.marker ? 0x80 : 0) | (h.payload_type & 0x7f));
    store_be16(p + 2, h.sequence);
    store_be32(p + 4, h.timestamp);
    store_be32(p + 8, h.ssrc);
    if (has_ext) {
        std::uint8_t* e = p + fixed_header_size;
        store_be16(e, 0xBEDE);
        store_be16(e + 2, static_cast<std::uint16_t>((n - fixed_header_size - 4) / 4));
        std::uint8_t* q = e + 4;
        if (h.transport_sequence) {
            *q++ = static_cast<std::uint8_t>(ext::transport_sequence << 4 | 1);
            store_be16(q, *h.transport_sequence);
            q += 2;
        }
        if (h.abs_capture_time) {
            *q++ = static_cast<std::uint8_t>(ext::abs_capture_time << 4 | 7);
            store_be64(q, *h.abs_capture_time);
            q += 8;
        }
        while (q < p + n) *q++ = 0;
    }
    return n;
}

/// Offset of the transport-wide sequence number's 2-byte value inside an RTP packet, or 0
/// when the packet has no such element (or is malformed). Lets a pacer (host) or a relay
/// (per subscriber leg) stamp its own number into a packet in place.
inline std::size_t transport_sequence_offset(const packet_view& p) noexcept {
    const auto e = p.extension(ext::transport_sequence);
    if (!e || e->size() != 2) return 0;
    return static_cast<std::size_t>(e->data() - p.whole.data());
}
/// The same, for a packet not parsed yet.
inline std::size_t transport_sequence_offset(bytes_view packet) noexcept {
    packet_view p;
    if (parse(packet, p)) return 0;
    return transport_sequence_offset(p);
}

/// Writes `seq` into the packet's transport-wide sequence element; false when it has none.
inline bool set_transport_sequence(std::span<std::uint8_t> packet, std::uint16_t seq) noexcept {
    const std::size_t off = transport_sequence_offset(packet);
    if (off == 0) return false;
    store_be16(packet.data() + off, seq);
    return true;
}

/// Writes a whole packet (header + payload); returns its size, or 0 when it does not fit.
inline std::size_t serialize(const header& h, bytes_view payload, std::span<std::uint8_t> out) noexcept {
    const std::size_t n = write_header(h, out);
    if (n == 0 || out.size() - n < payload.size()) return 0;
    if (!payload.empty()) std::memcpy(out.data() + n, payload.data(), payload.size());
    return n + payload.size();
}

} // namespace onair::rtp
