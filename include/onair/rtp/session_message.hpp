// onair — session messages: hello (publish / play), acknowledgement and leave.
//
// They travel as RTCP APP packets (RFC 3550 §6.7, name "ONAR") on the media socket itself,
// so a relay learns each client's address from the datagram's source (symmetric RTP,
// NAT-friendly) and standard tools still see well-formed RTCP.
//
//   APP header: V=2 P=0 subtype(5) | PT=204 | length | sender SSRC | "ONAR"
//   data:       version u8 (1) | status u8 | reserved u16
//               name_len u8 | name | video_ssrc u32 | audio_ssrc u32 | video_pt u8 | audio_pt u8
//               vcodec_len u8 | vcodec | acodec_len u8 | acodec | rtx_ssrc u32 | rtx_pt u8
//               | red_pt u8 | fec_ssrc u32 | fec_pt u8 | audio_rtx_ssrc u32 | audio_rtx_pt u8
//               | simulcast: 2 x (ssrc u32 | rtx_ssrc u32), lowest encoding first
//               | ticket_len u8 | ticket (from the room service; hellos only)
//               | flags u8 (bit 0: relay leg) | route_len u8 | route (hellos from a relay)
//               | zero padding to 32 bits
// Fields from red_pt on were added later; a shorter message leaves them 0 (none).
#pragma once

#include "onair/core/error.hpp"
#include "onair/rtp/packet.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <system_error>

namespace onair::rtp {

/// What a relay knows about a published stream, and what a viewer needs to play it.
struct stream_description {
    std::string name;
    std::uint32_t video_ssrc = 0; ///< 0 when the stream has no video
    std::uint32_t audio_ssrc = 0; ///< 0 when the stream has no audio
    std::uint8_t video_pt = 96;
    std::uint8_t audio_pt = 111;
    std::string video_codec; ///< SDP encoding name: "VP8", "VP9", "X-ONAIR-RAW"
    std::string audio_codec; ///< "opus", "x-onair-raw-audio"
    std::uint32_t video_rtx_ssrc = 0; ///< RFC 4588 retransmissions of video; 0 = none
    std::uint8_t video_rtx_pt = 97;
    std::uint8_t audio_red_pt = 0;    ///< RFC 2198 redundant audio on the audio SSRC; 0 = none
    std::uint32_t video_fec_ssrc = 0; ///< RFC 8627 FlexFEC repair packets for video; 0 = none
    std::uint8_t video_fec_pt = 118;
    std::uint32_t audio_rtx_ssrc = 0; ///< RFC 4588 retransmissions of audio; 0 = none
    std::uint8_t audio_rtx_pt = 98;
    /// Simulcast: the lower encodings of the video (index 0 the lowest), each with its own
    /// SSRC and RTX SSRC; 0 = none. video_ssrc is the top encoding, and the one SSRC every
    /// viewer sees (the relay forwards each viewer one encoding under it).
    std::array<std::uint32_t, 2> video_lower_ssrcs{};
    std::array<std::uint32_t, 2> video_lower_rtx_ssrcs{};
    /// Encodings of the video: 1 + the lower ones announced.
    std::size_t video_encodings() const noexcept {
        return 1 + (video_lower_ssrcs[0] != 0) + (video_lower_ssrcs[0] != 0 && video_lower_ssrcs[1] != 0);
    }
    friend bool operator==(const stream_description&, const stream_description&) = default;
};

enum class session_type : std::uint8_t { publish = 1, play = 2, ack = 3, leave = 4 };

enum class session_status : std::uint8_t {
    ok = 0,
    waiting = 1,  ///< play: the stream is not live yet; keep sending hellos
    refused = 2,  ///< publish: the name is taken by another publisher
    invalid = 3,  ///< malformed or unknown request
    unauthorized = 4, ///< the relay admits only ticketed hellos, and this ticket is not granted
};

struct session_message {
    session_type type = session_type::publish;
    session_status status = session_status::ok;
    std::uint32_t sender_ssrc = 0;
    stream_description stream;
    /// The grant the room service issued for this publish or play (empty: none); on a
    /// relay leg, the cluster's cascade ticket.
    std::string ticket;
    /// A play from another relay node (cascade): it gets every encoding as published, and
    /// `route` names the hops further upstream.
    bool relay_leg = false;
    /// Upstream hops for a relay leg's play: media addresses "IP:PORT", comma-separated,
    /// the next one first (empty: the receiving node should have the stream itself).
    std::string route;
};

inline constexpr std::uint8_t rtcp_app_type = 204;
inline constexpr char session_app_name[4] = {'O', 'N', 'A', 'R'};
inline constexpr std::size_t max_stream_name = 255;
inline constexpr std::size_t max_ticket = 64;
inline constexpr std::size_t max_route = 255;

/// Serialises `m` into `out`; returns the size, or 0 when it does not fit or a string
/// is longer than 255 bytes.
inline std::size_t write_session_message(const session_message& m, std::span<std::uint8_t> out) noexcept {
    const auto& s = m.stream;
    if (s.name.size() > max_stream_name || s.video_codec.size() > 255 || s.audio_codec.size() > 255 || m.ticket.size() > max_ticket ||
        m.route.size() > max_route)
        return 0;
    const std::size_t data =
        4 + 1 + s.name.size() + 10 + 1 + s.video_codec.size() + 1 + s.audio_codec.size() + 16 + 16 + 1 + m.ticket.size() + 2 + m.route.size();
    const std::size_t padded = (data + 3) / 4 * 4;
    const std::size_t total = 12 + padded;
    if (out.size() < total) return 0;
    std::uint8_t* p = out.data();
    std::memset(p, 0, total);
    p[0] = static_cast<std::uint8_t>(0x80 | (static_cast<std::uint8_t>(m.type) & 0x1f));
    p[1] = rtcp_app_type;
    store_be16(p + 2, static_cast<std::uint16_t>(total / 4 - 1));
    store_be32(p + 4, m.sender_ssrc);
    std::memcpy(p + 8, session_app_name, 4);
    std::uint8_t* q = p + 12;
    *q++ = 1;
    *q++ = static_cast<std::uint8_t>(m.status);
    q += 2;
    auto put_string = [&q](const std::string& str) {
        *q++ = static_cast<std::uint8_t>(str.size());
        if (!str.empty()) std::memcpy(q, str.data(), str.size());
        q += str.size();
    };
    put_string(s.name);
    store_be32(q, s.video_ssrc);
    store_be32(q + 4, s.audio_ssrc);
    q[8] = s.video_pt;
    q[9] = s.audio_pt;
    q += 10;
    put_string(s.video_codec);
    put_string(s.audio_codec);
    store_be32(q, s.video_rtx_ssrc);
    q[4] = s.video_rtx_pt;
    q[5] = s.audio_red_pt;
    store_be32(q + 6, s.video_fec_ssrc);
    q[10] = s.video_fec_pt;
    store_be32(q + 11, s.audio_rtx_ssrc);
    q[15] = s.audio_rtx_pt;
    for (std::size_t i = 0; i < 2; ++i) {
        store_be32(q + 16 + 8 * i, s.video_lower_ssrcs[i]);
        store_be32(q + 20 + 8 * i, s.video_lower_rtx_ssrcs[i]);
    }
    q[32] = static_cast<std::uint8_t>(m.ticket.size());
    if (!m.ticket.empty()) std::memcpy(q + 33, m.ticket.data(), m.ticket.size());
    q += 33 + m.ticket.size();
    q[0] = m.relay_leg ? 1 : 0;
    q[1] = static_cast<std::uint8_t>(m.route.size());
    if (!m.route.empty()) std::memcpy(q + 2, m.route.data(), m.route.size());
    return total;
}

/// True when `d` starts with an onair session message (cheap check before parsing).
inline bool is_session_message(bytes_view d) noexcept {
    return d.size() >= 12 && (d[0] >> 6) == 2 && d[1] == rtcp_app_type && std::memcmp(&d[8], session_app_name, 4) == 0;
}

/// Parses an onair session message from untrusted bytes.
inline std::error_code parse_session_message(bytes_view d, session_message& m) noexcept {
    if (d.size() < 16) return errc::truncated;
    if ((d[0] >> 6) != 2) return errc::bad_version;
    if (!is_session_message(d)) return errc::bad_payload;
    const std::size_t total = (std::size_t{load_be16(&d[2])} + 1) * 4;
    if (total > d.size() || total < 16) return errc::truncated;
    const std::uint8_t sub = d[0] & 0x1f;
    if (sub < 1 || sub > 4) return errc::bad_payload;
    m = session_message{};
    m.type = static_cast<session_type>(sub);
    m.sender_ssrc = load_be32(&d[4]);
    const std::uint8_t* q = d.data() + 12;
    const std::uint8_t* end = d.data() + total;
    if (q[0] != 1) return errc::unsupported;
    if (q[1] > 4) return errc::bad_payload;
    m.status = static_cast<session_status>(q[1]);
    q += 4;
    auto get_string = [&q, end](std::string& str) {
        if (q >= end) return false;
        const std::size_t n = *q++;
        if (static_cast<std::size_t>(end - q) < n) return false;
        str.assign(reinterpret_cast<const char*>(q), n);
        q += n;
        return true;
    };
    auto& s = m.stream;
    if (!get_string(s.name)) return errc::truncated;
    if (end - q < 10) return errc::truncated;
    s.video_ssrc = load_be32(q);
    s.audio_ssrc = load_be32(q + 4);
    s.video_pt = q[8] & 0x7f;
    s.audio_pt = q[9] & 0x7f;
    q += 10;
    if (!get_string(s.video_codec) || !get_string(s.audio_codec)) return errc::truncated;
    if (end - q < 5) return errc::truncated;
    s.video_rtx_ssrc = load_be32(q);
    s.video_rtx_pt = q[4] & 0x7f;
    // Optional fields added later: absent in shorter messages (they read as 0), padding
    // (zero) otherwise.
    // Padding is at most 3 bytes, so a field counts only when the bytes up to it exceed it.
    if (end - q >= 6) s.audio_red_pt = q[5] & 0x7f;
    if (end - q >= 11) {
        s.video_fec_ssrc = load_be32(q + 6);
        s.video_fec_pt = q[10] & 0x7f;
    }
    if (end - q >= 16) {
        s.audio_rtx_ssrc = load_be32(q + 11);
        s.audio_rtx_pt = q[15] & 0x7f;
    }
    for (std::size_t i = 0; i < 2; ++i) {
        if (end - q < static_cast<std::ptrdiff_t>(24 + 8 * i)) break;
        s.video_lower_ssrcs[i] = load_be32(q + 16 + 8 * i);
        s.video_lower_rtx_ssrcs[i] = load_be32(q + 20 + 8 * i);
    }
    if (end - q > 32) {
        const std::size_t n = q[32];
        if (n > max_ticket) return errc::bad_payload;
        if (static_cast<std::size_t>(end - q) < 33 + n) return errc::truncated;
        m.ticket.assign(reinterpret_cast<const char*>(q + 33), n);
        q += 33 + n;
        if (end - q >= 2) {
            if (q[0] > 1) return errc::bad_payload;
            m.relay_leg = q[0] == 1;
            const std::size_t r = q[1];
            if (static_cast<std::size_t>(end - q) < 2 + r) return errc::truncated;
            m.route.assign(reinterpret_cast<const char*>(q + 2), r);
        }
    }
    return {};
}

} // namespace onair::rtp
