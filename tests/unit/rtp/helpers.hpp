// Test helpers for the RTP payload format tests: packetize frames into whole datagrams,
// push datagrams through a depacketizer, make deterministic bytes.
#pragma once

#include "onair/core/media_frame.hpp"
#include "onair/rtp/packet.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <random>
#include <system_error>
#include <vector>

namespace onair::rtp::test {

using datagram = std::vector<std::uint8_t>;

inline std::vector<std::uint8_t> random_bytes(std::size_t n, std::uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<std::uint8_t> v(n);
    for (auto& b : v) b = static_cast<std::uint8_t>(rng());
    return v;
}

/// Sender side of one stream: numbers packets and writes whole RTP datagrams.
struct sender {
    std::uint16_t seq = 0;
    std::uint32_t ssrc = 0x11223344;
    std::uint8_t payload_type = 96;
    std::size_t max_payload = max_payload_size;
    std::optional<std::uint64_t> capture_ntp; ///< put in every packet when set
    bool capture_on_first_only = false;

    template <class Packetizer>
    std::vector<datagram> packetize(Packetizer& pk, const encoded_frame& f) {
        std::vector<datagram> out;
        const std::error_code ec = pk.packetize(f, max_payload, [&](bytes_view d, bytes_view data, bool marker) {
            CHECK(d.size() + data.size() <= max_payload);
            header h;
            h.marker = marker;
            h.payload_type = payload_type;
            h.sequence = seq++;
            h.timestamp = f.rtp_timestamp;
            h.ssrc = ssrc;
            if (!capture_on_first_only || out.empty()) h.abs_capture_time = capture_ntp;
            datagram dg(header_size(h) + d.size() + data.size());
            const std::size_t n = write_header(h, dg);
            REQUIRE(n == header_size(h));
            if (!d.empty()) std::memcpy(dg.data() + n, d.data(), d.size());
            if (!data.empty()) std::memcpy(dg.data() + n + d.size(), data.data(), data.size());
            out.push_back(std::move(dg));
        });
        REQUIRE_FALSE(ec);
        return out;
    }
};

/// Parses each datagram and pushes it; returns the frames emitted.
template <class Depacketizer>
std::vector<encoded_frame> push_all(Depacketizer& dp, const std::vector<datagram>& dgs,
                                    media_kind kind = media_kind::video) {
    std::vector<encoded_frame> frames;
    for (const auto& d : dgs) {
        packet_view pv;
        REQUIRE_FALSE(parse(d, pv));
        dp.push(pv, kind, [&](encoded_frame&& f) { frames.push_back(std::move(f)); });
    }
    return frames;
}

/// Payload (after the RTP header) of a datagram written by `sender`.
inline bytes_view payload_of(const datagram& d) {
    packet_view pv;
    REQUIRE_FALSE(parse(d, pv));
    return pv.payload;
}

inline void append(std::vector<datagram>& to, const std::vector<datagram>& from) {
    to.insert(to.end(), from.begin(), from.end());
}

/// A frame that looks like VP8 to the depacketizer: a key frame starts with the 10-byte
/// key frame header (P=0, start code 9d 01 2a, 14-bit width and height, little endian).
inline encoded_frame vp8_like_frame(bool key, std::uint32_t ts, std::size_t size, std::uint32_t seed, int width = 640,
                                    int height = 360) {
    encoded_frame f;
    f.kind = media_kind::video;
    f.keyframe = key;
    f.rtp_timestamp = ts;
    f.data = random_bytes(size, seed);
    if (key) {
        f.data[0] = static_cast<std::uint8_t>(f.data[0] & ~0x01); // P=0: key frame
        f.data[3] = 0x9d;
        f.data[4] = 0x01;
        f.data[5] = 0x2a;
        f.data[6] = static_cast<std::uint8_t>(width);
        f.data[7] = static_cast<std::uint8_t>((width >> 8) & 0x3f);
        f.data[8] = static_cast<std::uint8_t>(height);
        f.data[9] = static_cast<std::uint8_t>((height >> 8) & 0x3f);
        f.width = width;
        f.height = height;
    } else {
        f.data[0] |= 0x01; // P=1: inter frame
    }
    return f;
}

} // namespace onair::rtp::test
