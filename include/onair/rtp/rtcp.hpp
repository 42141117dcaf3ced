// onair — RTCP (RFC 3550) and RTP/AVPF feedback (RFC 4585): writers and a compound parser.
//
// Writers fill a caller's buffer and return the bytes written, or 0 when the buffer (or a
// field such as a 31-entry list) is too small; a compound packet is the writers' outputs
// laid end to end. parse_compound() walks a compound datagram and calls a visitor once per
// sub-packet with one of the structs below, only for the types the visitor accepts. Spans
// in those structs point into the datagram or into the parser's stack, so they are valid
// during the call only.
//
// onair's control messages (client hello, relay ack) travel as APP packets named "ONAR"
// with a subtype 0..31; APP data is padded with zeros to a 32-bit boundary, so a message
// that needs its exact length must carry it.
#pragma once

#include "onair/core/error.hpp"
#include "onair/rtp/packet.hpp"

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string_view>
#include <system_error>
#include <type_traits>

namespace onair::rtp::rtcp {

inline constexpr std::uint8_t type_sr = 200;
inline constexpr std::uint8_t type_rr = 201;
inline constexpr std::uint8_t type_sdes = 202;
inline constexpr std::uint8_t type_bye = 203;
inline constexpr std::uint8_t type_app = 204;
inline constexpr std::uint8_t type_rtpfb = 205; ///< transport layer feedback
inline constexpr std::uint8_t type_psfb = 206;  ///< payload specific feedback
inline constexpr std::uint8_t fmt_nack = 1;     ///< RTPFB generic NACK
inline constexpr std::uint8_t fmt_pli = 1;      ///< PSFB picture loss indication

inline constexpr std::size_t header_size = 4;
inline constexpr std::size_t report_block_size = 24;
inline constexpr std::size_t max_count = 31; ///< the 5-bit count field's limit
inline constexpr std::uint8_t sdes_cname = 1;

inline constexpr std::array<char, 4> onair_app_name{'O', 'N', 'A', 'R'};

/// The middle 32 bits of an NTP timestamp, as used by LSR and DLSR (1/65536 s units).
constexpr std::uint32_t compact_ntp(std::uint64_t ntp) noexcept { return static_cast<std::uint32_t>(ntp >> 16); }

struct report_block {
    std::uint32_t ssrc = 0;
    std::uint8_t fraction_lost = 0;       ///< lost / expected since the last report, 1/256 units
    std::int32_t cumulative_lost = 0;     ///< 24-bit signed on the wire (clamped when written)
    std::uint32_t extended_highest_seq = 0;
    std::uint32_t jitter = 0;             ///< RTP timestamp units
    std::uint32_t last_sr = 0;            ///< compact NTP of the last SR received, 0 if none
    std::uint32_t delay_since_last_sr = 0; ///< 1/65536 s

    friend bool operator==(const report_block&, const report_block&) = default;
};

/// RFC 3550 §6.4.1 round-trip time: now - LSR - DLSR, with `now` the compact NTP time the
/// report arrived. nullopt when the block reports no SR.
inline std::optional<std::chrono::microseconds> round_trip_time(const report_block& b, std::uint32_t now) noexcept {
    if (b.last_sr == 0) return std::nullopt;
    const std::uint32_t rtt = now - b.last_sr - b.delay_since_last_sr;
    if (rtt > 0x8000'0000u) return std::chrono::microseconds{0}; // clocks disagree: clamp
    return std::chrono::microseconds{static_cast<std::int64_t>((std::uint64_t{rtt} * 1'000'000) >> 16)};
}

/// SR: maps the sender's NTP wall clock to its RTP timestamps, plus its send counters.
struct sender_report {
    std::uint32_t ssrc = 0;
    std::uint64_t ntp_timestamp = 0; ///< 32.32 NTP, see onair::to_ntp
    std::uint32_t rtp_timestamp = 0; ///< the RTP time of the same instant
    std::uint32_t packet_count = 0;
    std::uint32_t octet_count = 0;   ///< payload bytes
    std::span<const report_block> blocks; ///< at most 31
};

struct receiver_report {
    std::uint32_t ssrc = 0;
    std::span<const report_block> blocks; ///< at most 31
};

struct sdes_chunk {
    std::uint32_t ssrc = 0;
    std::string_view cname; ///< empty when the chunk has none (other items are skipped)
};
struct sdes {
    std::span<const sdes_chunk> chunks;
};

struct bye {
    std::span<const std::uint32_t> ssrcs; ///< at most 31
    std::string_view reason;              ///< at most 255 bytes
};

struct app {
    std::uint8_t subtype = 0; ///< 0..31
    std::uint32_t ssrc = 0;
    std::array<char, 4> name{};
    bytes_view data; ///< written padded to a multiple of 4 bytes; parsed with that padding

    bool named(const std::array<char, 4>& n) const noexcept { return name == n; }
};

/// PSFB FMT=1: the receiver of `media_ssrc` needs a key frame.
struct pli {
    std::uint32_t sender_ssrc = 0;
    std::uint32_t media_ssrc = 0;
};

/// RTPFB FMT=1 generic NACK: pairs of a lost packet id and a 16-bit mask of the next 16.
struct nack {
    std::uint32_t sender_ssrc = 0;
    std::uint32_t media_ssrc = 0;
    bytes_view fci; ///< whole 4-byte PID/BLP items

    std::size_t items() const noexcept { return fci.size() / 4; }
    /// Calls f(std::uint16_t seq) for every sequence number reported lost.
    template <class F>
    void for_each(F&& f) const {
        for (std::size_t i = 0; i + 4 <= fci.size(); i += 4) {
            const std::uint16_t pid = load_be16(&fci[i]);
            const std::uint16_t blp = load_be16(&fci[i + 2]);
            f(pid);
            for (unsigned b = 0; b < 16; ++b)
                if (blp & (1u << b)) f(static_cast<std::uint16_t>(pid + b + 1));
        }
    }
};

/// An RTPFB or PSFB message other than NACK and PLI (e.g. transport-wide feedback, REMB).
struct feedback {
    std::uint8_t type = 0; ///< type_rtpfb or type_psfb
    std::uint8_t fmt = 0;
    std::uint32_t sender_ssrc = 0;
    std::uint32_t media_ssrc = 0;
    bytes_view fci;
};

/// Any other packet type (e.g. XR), handed over undecoded.
struct unknown_packet {
    std::uint8_t type = 0;
    std::uint8_t count = 0; ///< the header's 5-bit count/format field
    bytes_view body;        ///< after the 4-byte header, without padding
};

// ---------------------------------------------------------------------------------------
// Writers

namespace detail {
inline void write_common(std::uint8_t* p, std::uint8_t count, std::uint8_t type, std::size_t total) noexcept {
    p[0] = static_cast<std::uint8_t>(0x80 | (count & 0x1f));
    p[1] = type;
    store_be16(p + 2, static_cast<std::uint16_t>(total / 4 - 1));
}
inline void write_block(std::uint8_t* p, const report_block& b) noexcept {
    store_be32(p, b.ssrc);
    std::int32_t lost = b.cumulative_lost;
    if (lost > 0x7fffff) lost = 0x7fffff;
    if (lost < -0x800000) lost = -0x800000;
    p[4] = b.fraction_lost;
    store_be24(p + 5, static_cast<std::uint32_t>(lost) & 0xffffff);
    store_be32(p + 8, b.extended_highest_seq);
    store_be32(p + 12, b.jitter);
    store_be32(p + 16, b.last_sr);
    store_be32(p + 20, b.delay_since_last_sr);
}
inline report_block read_block(const std::uint8_t* p) noexcept {
    report_block b;
    b.ssrc = load_be32(p);
    b.fraction_lost = p[4];
    std::uint32_t lost = load_be24(p + 5);
    if (lost & 0x800000) lost |= 0xff00'0000u; // sign-extend
    b.cumulative_lost = static_cast<std::int32_t>(lost);
    b.extended_highest_seq = load_be32(p + 8);
    b.jitter = load_be32(p + 12);
    b.last_sr = load_be32(p + 16);
    b.delay_since_last_sr = load_be32(p + 20);
    return b;
}
/// Largest RTCP packet the 16-bit length field can describe.
inline constexpr std::size_t max_packet_size = (std::size_t{0xffff} + 1) * 4;
} // namespace detail

inline std::size_t write_sender_report(const sender_report& sr, std::span<std::uint8_t> out) noexcept {
    if (sr.blocks.size() > max_count) return 0;
    const std::size_t n = header_size + 24 + report_block_size * sr.blocks.size();
    if (out.size() < n) return 0;
    std::uint8_t* p = out.data();
    detail::write_common(p, static_cast<std::uint8_t>(sr.blocks.size()), type_sr, n);
    store_be32(p + 4, sr.ssrc);
    store_be64(p + 8, sr.ntp_timestamp);
    store_be32(p + 16, sr.rtp_timestamp);
    store_be32(p + 20, sr.packet_count);
    store_be32(p + 24, sr.octet_count);
    for (std::size_t i = 0; i < sr.blocks.size(); ++i) detail::write_block(p + 28 + i * report_block_size, sr.blocks[i]);
    return n;
}

inline std::size_t write_receiver_report(const receiver_report& rr, std::span<std::uint8_t> out) noexcept {
    if (rr.blocks.size() > max_count) return 0;
    const std::size_t n = header_size + 4 + report_block_size * rr.blocks.size();
    if (out.size() < n) return 0;
    std::uint8_t* p = out.data();
    detail::write_common(p, static_cast<std::uint8_t>(rr.blocks.size()), type_rr, n);
    store_be32(p + 4, rr.ssrc);
    for (std::size_t i = 0; i < rr.blocks.size(); ++i) detail::write_block(p + 8 + i * report_block_size, rr.blocks[i]);
    return n;
}

/// One SDES chunk with a CNAME item (at most 255 bytes).
inline std::size_t write_sdes_cname(std::uint32_t ssrc, std::string_view cname, std::span<std::uint8_t> out) noexcept {
    if (cname.size() > 255) return 0;
    // ssrc, CNAME type + length + text, then at least one zero byte (end of items) up to 4n.
    const std::size_t chunk = (4 + 2 + cname.size() + 1 + 3) / 4 * 4;
    const std::size_t n = header_size + chunk;
    if (out.size() < n) return 0;
    std::uint8_t* p = out.data();
    detail::write_common(p, 1, type_sdes, n);
    store_be32(p + 4, ssrc);
    p[8] = sdes_cname;
    p[9] = static_cast<std::uint8_t>(cname.size());
    if (!cname.empty()) std::memcpy(p + 10, cname.data(), cname.size());
    std::memset(p + 10 + cname.size(), 0, n - 10 - cname.size());
    return n;
}

inline std::size_t write_bye(std::span<const std::uint32_t> ssrcs, std::string_view reason,
                             std::span<std::uint8_t> out) noexcept {
    if (ssrcs.size() > max_count || reason.size() > 255) return 0;
    const std::size_t body = 4 * ssrcs.size() + (reason.empty() ? 0 : (1 + reason.size() + 3) / 4 * 4);
    const std::size_t n = header_size + body;
    if (out.size() < n) return 0;
    std::uint8_t* p = out.data();
    detail::write_common(p, static_cast<std::uint8_t>(ssrcs.size()), type_bye, n);
    std::uint8_t* q = p + header_size;
    for (std::uint32_t s : ssrcs) {
        store_be32(q, s);
        q += 4;
    }
    if (!reason.empty()) {
        *q++ = static_cast<std::uint8_t>(reason.size());
        std::memcpy(q, reason.data(), reason.size());
        q += reason.size();
        while (q < p + n) *q++ = 0;
    }
    return n;
}

inline std::size_t write_app(const app& a, std::span<std::uint8_t> out) noexcept {
    if (a.subtype > 31) return 0;
    const std::size_t n = header_size + 8 + (a.data.size() + 3) / 4 * 4;
    if (n > detail::max_packet_size || out.size() < n) return 0;
    std::uint8_t* p = out.data();
    detail::write_common(p, a.subtype, type_app, n);
    store_be32(p + 4, a.ssrc);
    std::memcpy(p + 8, a.name.data(), 4);
    if (!a.data.empty()) std::memcpy(p + 12, a.data.data(), a.data.size());
    std::memset(p + 12 + a.data.size(), 0, n - 12 - a.data.size());
    return n;
}

inline std::size_t write_pli(std::uint32_t sender_ssrc, std::uint32_t media_ssrc, std::span<std::uint8_t> out) noexcept {
    constexpr std::size_t n = header_size + 8;
    if (out.size() < n) return 0;
    detail::write_common(out.data(), fmt_pli, type_psfb, n);
    store_be32(out.data() + 4, sender_ssrc);
    store_be32(out.data() + 8, media_ssrc);
    return n;
}

/// Generic NACK for `lost`, given oldest first (wrap-aware): each run of sequence numbers
/// within 16 of an item's first packet shares that item.
inline std::size_t write_nack(std::uint32_t sender_ssrc, std::uint32_t media_ssrc, std::span<const std::uint16_t> lost,
                              std::span<std::uint8_t> out) noexcept {
    if (lost.empty()) return 0;
    auto item_end = [&](std::size_t i) {
        std::size_t j = i + 1;
        while (j < lost.size()) {
            const auto d = static_cast<std::uint16_t>(lost[j] - lost[i]);
            if (d < 1 || d > 16) break;
            ++j;
        }
        return j;
    };
    std::size_t items = 0;
    for (std::size_t i = 0; i < lost.size(); i = item_end(i)) ++items;
    const std::size_t n = header_size + 8 + 4 * items;
    if (n > detail::max_packet_size || out.size() < n) return 0;
    std::uint8_t* p = out.data();
    detail::write_common(p, fmt_nack, type_rtpfb, n);
    store_be32(p + 4, sender_ssrc);
    store_be32(p + 8, media_ssrc);
    std::uint8_t* q = p + 12;
    for (std::size_t i = 0; i < lost.size();) {
        const std::size_t j = item_end(i);
        std::uint16_t blp = 0;
        for (std::size_t k = i + 1; k < j; ++k)
            blp = static_cast<std::uint16_t>(blp | (1u << (static_cast<std::uint16_t>(lost[k] - lost[i]) - 1)));
        store_be16(q, lost[i]);
        store_be16(q + 2, blp);
        q += 4;
        i = j;
    }
    return n;
}

/// Any RTPFB/PSFB message; `fci` must be a whole number of 32-bit words.
inline std::size_t write_feedback(const feedback& f, std::span<std::uint8_t> out) noexcept {
    if (f.fmt > 31 || f.fci.size() % 4 != 0) return 0;
    const std::size_t n = header_size + 8 + f.fci.size();
    if (n > detail::max_packet_size || out.size() < n) return 0;
    std::uint8_t* p = out.data();
    detail::write_common(p, f.fmt, f.type, n);
    store_be32(p + 4, f.sender_ssrc);
    store_be32(p + 8, f.media_ssrc);
    if (!f.fci.empty()) std::memcpy(p + 12, f.fci.data(), f.fci.size());
    return n;
}

// ---------------------------------------------------------------------------------------
// Parser

/// Running totals over parse_compound calls.
struct parse_counts {
    std::uint64_t packets = 0;   ///< sub-packets handed to the visitor
    std::uint64_t malformed = 0; ///< sub-packets rejected
};

namespace detail {
template <class Visitor, class T>
void visit(Visitor& v, const T& t) {
    if constexpr (std::is_invocable_v<Visitor&, const T&>) v(t);
}

/// Decodes one sub-packet's body (header and padding removed) and visits it.
template <class Visitor>
std::error_code parse_one(std::uint8_t type, std::uint8_t count, bytes_view body, Visitor& v) {
    const std::size_t n = body.size();
    const std::uint8_t* b = body.data();
    switch (type) {
    case type_sr:
    case type_rr: {
        const std::size_t info = type == type_sr ? 24 : 4;
        if (n < info + report_block_size * count) return errc::truncated;
        std::array<report_block, max_count> blocks;
        for (std::size_t i = 0; i < count; ++i) blocks[i] = read_block(b + info + i * report_block_size);
        const std::span<const report_block> list{blocks.data(), count};
        if (type == type_sr) {
            sender_report sr;
            sr.ssrc = load_be32(b);
            sr.ntp_timestamp = load_be64(b + 4);
            sr.rtp_timestamp = load_be32(b + 12);
            sr.packet_count = load_be32(b + 16);
            sr.octet_count = load_be32(b + 20);
            sr.blocks = list;
            visit(v, sr);
        } else {
            visit(v, receiver_report{load_be32(b), list});
        }
        return {};
    }
    case type_sdes: {
        std::array<sdes_chunk, max_count> chunks;
        std::size_t pos = 0;
        for (std::size_t c = 0; c < count; ++c) {
            if (n - pos < 4) return errc::truncated;
            chunks[c] = sdes_chunk{load_be32(b + pos), {}};
            pos += 4;
            for (;;) { // items, ended by a zero type byte
                if (pos >= n) return errc::truncated;
                const std::uint8_t item = b[pos];
                if (item == 0) break;
                if (n - pos < 2 || n - pos - 2 < b[pos + 1]) return errc::truncated;
                const std::size_t len = b[pos + 1];
                if (item == sdes_cname) chunks[c].cname = {reinterpret_cast<const char*>(b + pos + 2), len};
                pos += 2 + len;
            }
            pos = (pos + 1 + 3) / 4 * 4; // the end byte, then zeros to the next 32-bit word
            if (pos > n) return errc::truncated;
        }
        visit(v, sdes{{chunks.data(), count}});
        return {};
    }
    case type_bye: {
        if (n < 4u * count) return errc::truncated;
        std::array<std::uint32_t, max_count> ssrcs;
        for (std::size_t i = 0; i < count; ++i) ssrcs[i] = load_be32(b + 4 * i);
        bye msg{{ssrcs.data(), count}, {}};
        const std::size_t pos = 4u * count;
        if (pos < n) {
            const std::size_t len = b[pos];
            if (n - pos - 1 < len) return errc::truncated;
            msg.reason = {reinterpret_cast<const char*>(b + pos + 1), len};
        }
        visit(v, msg);
        return {};
    }
    case type_app: {
        if (n < 8) return errc::truncated;
        app a;
        a.subtype = count;
        a.ssrc = load_be32(b);
        std::memcpy(a.name.data(), b + 4, 4);
        a.data = body.subspan(8);
        visit(v, a);
        return {};
    }
    case type_rtpfb:
    case type_psfb: {
        if (n < 8) return errc::truncated;
        const std::uint32_t sender = load_be32(b);
        const std::uint32_t media = load_be32(b + 4);
        const bytes_view fci = body.subspan(8);
        if (type == type_rtpfb && count == fmt_nack) {
            if (fci.empty() || fci.size() % 4 != 0) return errc::bad_payload;
            visit(v, nack{sender, media, fci});
        } else if (type == type_psfb && count == fmt_pli) {
            visit(v, pli{sender, media}); // RFC 4585 §6.3.1: no FCI; extra bytes ignored
        } else {
            visit(v, feedback{type, count, sender, media, fci});
        }
        return {};
    }
    default:
        visit(v, unknown_packet{type, count, body});
        return {};
    }
}
} // namespace detail

/// Walks a compound RTCP datagram, calling `v(const T&)` for each sub-packet whose type T
/// (sender_report, receiver_report, sdes, bye, app, pli, nack, feedback, unknown_packet)
/// the visitor accepts. Returns the first error: a bad header or length stops the walk (the
/// rest cannot be framed); a sub-packet with a malformed body is skipped and the walk goes
/// on. Never reads outside `d`. The reduced-size form (RFC 5506: feedback without a leading
/// SR/RR) is accepted.
template <class Visitor>
std::error_code parse_compound(bytes_view d, Visitor&& v, parse_counts& counts) {
    std::error_code first;
    std::size_t pos = 0;
    if (d.empty()) {
        ++counts.malformed;
        return errc::truncated;
    }
    while (pos < d.size()) {
        const std::size_t left = d.size() - pos;
        const std::uint8_t* p = d.data() + pos;
        if (left < header_size) {
            ++counts.malformed;
            return first ? first : make_error_code(errc::truncated);
        }
        if ((p[0] >> 6) != 2) {
            ++counts.malformed;
            return first ? first : make_error_code(errc::bad_version);
        }
        const std::size_t size = (std::size_t{load_be16(p + 2)} + 1) * 4;
        if (size > left) {
            ++counts.malformed;
            return first ? first : make_error_code(errc::truncated);
        }
        pos += size;
        std::size_t body = size - header_size;
        if (p[0] & 0x20) {
            const std::uint8_t pad = p[size - 1];
            if (pad == 0 || pad > body) {
                ++counts.malformed;
                if (!first) first = errc::bad_padding;
                continue;
            }
            body -= pad;
        }
        const std::error_code ec =
            detail::parse_one(p[1], static_cast<std::uint8_t>(p[0] & 0x1f), bytes_view{p + header_size, body}, v);
        if (ec) {
            ++counts.malformed;
            if (!first) first = ec;
        } else {
            ++counts.packets;
        }
    }
    return first;
}

template <class Visitor>
std::error_code parse_compound(bytes_view d, Visitor&& v) {
    parse_counts counts;
    return parse_compound(d, v, counts);
}

} // namespace onair::rtp::rtcp
