// onair — onair's own generic payload format, for codecs RTP has no format for (the
// passthrough test codec). A frame of any size, even empty, is split over packets that
// each start with one descriptor byte:
//
//     |S|E|K|0 0|TID|   S: first packet of the frame, E: last packet of the frame,
//                       K: the frame is a key frame, TID: temporal layer (0..7)
//
// followed by the frame's bytes. The RTP marker bit is set on the E packet too; the
// receiver goes by S and E.
#pragma once

#include "onair/core/error.hpp"
#include "onair/core/media_frame.hpp"
#include "onair/rtp/fragmenter.hpp"
#include "onair/rtp/frame_assembler.hpp"
#include "onair/rtp/packet.hpp"
#include "onair/rtp/payload_concepts.hpp"

#include <cstddef>
#include <cstdint>
#include <system_error>
#include <utility>

namespace onair::rtp {

struct generic_descriptor {
    bool start = false;
    bool end = false;
    bool keyframe = false;
    std::uint8_t tid = 0;
    std::size_t size = 0; ///< descriptor bytes (1)
};

/// Parses the descriptor byte. Reserved bits must be 0 (errc::bad_payload otherwise).
inline std::error_code parse_generic_descriptor(bytes_view payload, generic_descriptor& out) noexcept {
    out = generic_descriptor{};
    if (payload.empty()) return errc::truncated;
    const std::uint8_t b = payload[0];
    if (b & 0x18) return errc::bad_payload;
    out.start = (b & 0x80) != 0;
    out.end = (b & 0x40) != 0;
    out.keyframe = (b & 0x20) != 0;
    out.tid = b & 0x07;
    out.size = 1;
    return {};
}

struct generic_payload {
    static constexpr std::size_t descriptor_size = 1;

    /// Thread safety: none; one packetizer per stream.
    class packetizer {
    public:
        /// Splits `f` over packets of at most `max_payload` bytes (descriptor included).
        /// Fails without emitting when max_payload < 2.
        template <class Emit>
        std::error_code packetize(const encoded_frame& f, std::size_t max_payload, Emit&& emit) {
            const fragment_plan plan(f.data.size(), max_payload, descriptor_size, descriptor_size);
            if (!plan.ok()) return errc::oversized;
            const std::uint8_t base =
                static_cast<std::uint8_t>((f.keyframe ? 0x20 : 0) | (f.temporal_layer & 0x07));
            std::size_t pos = 0;
            for (std::size_t i = 0; i < plan.count(); ++i) {
                const bool last = i + 1 == plan.count();
                const std::uint8_t d = static_cast<std::uint8_t>(base | (i == 0 ? 0x80 : 0) | (last ? 0x40 : 0));
                const std::size_t len = plan.data_size(i);
                emit(bytes_view{&d, 1}, bytes_view{f.data.data() + pos, len}, last);
                pos += len;
            }
            return {};
        }
    };

    /// Thread safety: none; one depacketizer per stream.
    class depacketizer {
    public:
        depacketizer() = default;
        explicit depacketizer(assembler_limits limits) : assembler_(limits) {}

        template <class Emit>
        void push(const packet_view& p, media_kind kind, Emit&& emit) {
            generic_descriptor d;
            if (parse_generic_descriptor(p.payload, d)) {
                assembler_.count_malformed();
                return;
            }
            fragment_info fi;
            fi.data = p.payload.subspan(d.size);
            fi.start = d.start;
            fi.end = d.end;
            fi.keyframe = d.keyframe;
            fi.temporal_layer = d.tid;
            assembler_.push(p, kind, fi, std::forward<Emit>(emit));
        }

        std::uint64_t dropped() const noexcept { return assembler_.dropped(); }
        const assembler_stats& stats() const noexcept { return assembler_.stats(); }
        frame_assembler& assembler() noexcept { return assembler_; }

    private:
        frame_assembler assembler_;
    };
};

static_assert(payload_format<generic_payload>, "generic_payload must model rtp::payload_format");

} // namespace onair::rtp
