// Test support: RTP packets built once, as a host sends them (abs-capture-time and the
// transport-wide sequence element), and renumbered in place each time they go out.
#pragma once

#include "support/rtp_builders.hpp"

#include <onair/core/media_frame.hpp>
#include <onair/rtp/packet.hpp>

#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace onair_test {

/// A packet as the publisher sends it, and where its renumbered fields lie.
struct packet_template {
    std::vector<std::uint8_t> bytes;
    std::size_t payload = 0; ///< offset of the payload (the VP8 descriptor)
    std::size_t tseq = 0;    ///< offset of the transport-wide sequence number
};

/// The packets of frame `f` (payloads of at most `max_payload` bytes), each with the
/// transport-wide element a host adds.
template <class Packetizer>
std::vector<packet_template> templates_of(Packetizer& pk, const onair::encoded_frame& f, std::uint32_t ssrc, std::uint8_t pt,
                                          std::size_t max_payload = onair::rtp::max_payload_size) {
    namespace rtp = onair::rtp;
    std::vector<packet_template> out;
    std::uint16_t seq = 0;
    for (auto& bytes : packetize_with(pk, f, ssrc, seq, pt, std::uint64_t{1} << 40, max_payload)) {
        // packetize_with writes abs-capture-time only; add the transport-wide number a host sends.
        rtp::packet_view p;
        REQUIRE_FALSE(rtp::parse(bytes, p));
        rtp::header h;
        h.marker = p.marker;
        h.payload_type = p.payload_type;
        h.timestamp = p.timestamp;
        h.ssrc = p.ssrc;
        h.abs_capture_time = p.abs_capture_time();
        h.transport_sequence = 0;
        packet_template t;
        t.bytes.resize(rtp::header_size(h) + p.payload.size());
        t.bytes.resize(rtp::serialize(h, p.payload, t.bytes));
        REQUIRE(!t.bytes.empty());
        rtp::packet_view q;
        REQUIRE_FALSE(rtp::parse(t.bytes, q));
        t.payload = static_cast<std::size_t>(q.payload.data() - q.whole.data());
        t.tseq = rtp::transport_sequence_offset(q);
        REQUIRE(t.tseq != 0);
        out.push_back(std::move(t));
    }
    return out;
}

} // namespace onair_test
