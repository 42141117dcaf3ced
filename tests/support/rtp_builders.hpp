// Test support: building RTP packets of a given codec with onair's own packetizers.
#pragma once

#include <onair/core/media_frame.hpp>
#include <onair/rtp/packet.hpp>

#include <cstdint>
#include <optional>
#include <vector>

namespace onair_test {

/// Packetizes `f` with `pk` (any payload format's packetizer: keep one per stream, so
/// picture ids advance from frame to frame as a sender's do) into whole RTP datagrams, each
/// with the abs-capture-time extension when `capture_ntp` is given (as hosts send it).
template <class Packetizer>
std::vector<std::vector<std::uint8_t>> packetize_with(Packetizer& pk, const onair::encoded_frame& f, std::uint32_t ssrc,
                                                      std::uint16_t& seq, std::uint8_t pt = 96,
                                                      std::optional<std::uint64_t> capture_ntp = std::nullopt,
                                                      std::size_t max_payload = onair::rtp::max_payload_size) {
    std::vector<std::vector<std::uint8_t>> out;
    pk.packetize(f, max_payload, [&](onair::rtp::bytes_view desc, onair::rtp::bytes_view data, bool marker) {
        std::vector<std::uint8_t> payload(desc.begin(), desc.end());
        payload.insert(payload.end(), data.begin(), data.end());
        onair::rtp::header h;
        h.marker = marker;
        h.payload_type = pt;
        h.sequence = seq++;
        h.timestamp = f.rtp_timestamp;
        h.ssrc = ssrc;
        h.abs_capture_time = capture_ntp;
        std::vector<std::uint8_t> pkt(onair::rtp::header_size(h) + payload.size());
        pkt.resize(onair::rtp::serialize(h, payload, pkt));
        out.push_back(std::move(pkt));
    });
    return out;
}

template <class Payload>
std::vector<std::vector<std::uint8_t>> packetize(typename Payload::packetizer& pk, const onair::encoded_frame& f,
                                                 std::uint32_t ssrc, std::uint16_t& seq, std::uint8_t pt = 96) {
    return packetize_with(pk, f, ssrc, seq, pt);
}

/// Packetizes one frame with a fresh packetizer (picture id 0): for a single frame.
template <class Payload>
std::vector<std::vector<std::uint8_t>> packetize(const onair::encoded_frame& f, std::uint32_t ssrc, std::uint16_t& seq,
                                                 std::uint8_t pt = 96) {
    typename Payload::packetizer pk;
    return packetize<Payload>(pk, f, ssrc, seq, pt);
}

/// A VP8-looking frame: a keyframe starts with the 10-byte keyframe header (P bit clear,
/// start code, 14-bit width and height); an interframe has the P bit set.
inline onair::encoded_frame fake_vp8_frame(bool key, std::uint32_t ts, std::size_t size = 3000) {
    onair::encoded_frame f;
    f.kind = onair::media_kind::video;
    f.keyframe = key;
    f.rtp_timestamp = ts;
    f.data.assign(size, 0x55);
    f.data[0] = key ? 0x10 : 0x11; // bit 0: P (0 = keyframe), show_frame bit 4
    if (key && size >= 10) {
        f.data[3] = 0x9d; f.data[4] = 0x01; f.data[5] = 0x2a;
        f.data[6] = 0x80; f.data[7] = 0x02; // width 640
        f.data[8] = 0x68; f.data[9] = 0x01; // height 360
    }
    return f;
}

} // namespace onair_test
