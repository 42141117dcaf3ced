// onair — the RTP payload format concept: how a codec's frames become RTP payloads and back.
//
// Requirements on a payload format P:
//   P::packetizer    default constructible;
//                    packetize(const encoded_frame&, std::size_t max_payload, Emit&& emit)
//                      calls emit(bytes_view descriptor, bytes_view data, bool marker) once per
//                      packet, in order; descriptor + data <= max_payload. The two parts are
//                      kept apart so a sender can gather them without copying.
//   P::depacketizer  default constructible;
//                    push(const rtp::packet_view&, media_kind, Emit&& emit) takes packets in any
//                      order and calls emit(encoded_frame&&) for each frame it completes,
//                      in timestamp order. Malformed payloads are counted and dropped.
//                    dropped() -> std::uint64_t   packets/frames discarded as malformed or late
#pragma once

#include "onair/core/media_frame.hpp"
#include "onair/rtp/packet.hpp"

#include <concepts>
#include <cstddef>
#include <cstdint>

namespace onair::rtp {

namespace detail {
struct payload_sink_archetype {
    void operator()(bytes_view, bytes_view, bool) const noexcept {}
};
struct frame_sink_archetype {
    void operator()(encoded_frame&&) const noexcept {}
};
} // namespace detail

template <class P>
concept payload_format =
    std::default_initializable<typename P::packetizer> && std::default_initializable<typename P::depacketizer> &&
    requires(typename P::packetizer& pk, typename P::depacketizer& dp, const encoded_frame& f,
             const packet_view& pv, std::size_t max_payload) {
        pk.packetize(f, max_payload, detail::payload_sink_archetype{});
        dp.push(pv, media_kind::video, detail::frame_sink_archetype{});
        { dp.dropped() } -> std::convertible_to<std::uint64_t>;
    };

} // namespace onair::rtp
