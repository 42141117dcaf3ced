// onair — packet sinks: what a relay node feeds with the RTP packets it accepts
// (recorders and CDN egress attach here without decoding anything).
//
// Requirement on a packet sink S:
//   s.on_packet(const rtp::stream_description&, media_kind, const rtp::packet_view&)
#pragma once

#include "onair/core/media_frame.hpp"
#include "onair/rtp/packet.hpp"
#include "onair/rtp/session_message.hpp"

namespace onair::sink {

template <class S>
concept packet_sink = requires(S& s, const rtp::stream_description& d, const rtp::packet_view& p) {
    s.on_packet(d, media_kind::video, p);
};

/// The do-nothing packet sink.
struct null_packets {
    void on_packet(const rtp::stream_description&, media_kind, const rtp::packet_view&) noexcept {}
};

} // namespace onair::sink
