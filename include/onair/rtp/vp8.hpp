// onair — the VP8 RTP payload format (RFC 7741).
//
// Every packet onair sends carries the 6-byte descriptor
//
//     |X|R|N|S|R| PID |   X=1, N = encoded_frame::non_reference, S on a frame's first
//                         packet, PID=0
//     |I|L|T|K| RSV   |   I=1 L=1 T=1 K=0
//     |M| PictureID   |   M=1: 15-bit picture id, +1 per frame
//     |   PictureID   |
//     |   TL0PICIDX   |   +1 per temporal base layer (TID 0) frame
//     |TID|Y| KEYIDX  |   TID = encoded_frame::temporal_layer, Y = encoded_frame::layer_sync,
//                         KEYIDX=0
//
// so a relay can read (and rewrite, at the offsets parse_vp8_descriptor reports) the
// picture id, base-layer index and temporal layer without decoding.
#pragma once

#include "onair/core/error.hpp"
#include "onair/core/media_frame.hpp"
#include "onair/rtp/fragmenter.hpp"
#include "onair/rtp/frame_assembler.hpp"
#include "onair/rtp/packet.hpp"
#include "onair/rtp/payload_concepts.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <system_error>
#include <utility>

namespace onair::rtp {

/// A parsed VP8 payload descriptor. Absent optional fields read 0.
struct vp8_descriptor {
    bool non_reference = false;   ///< N
    bool start = false;           ///< S: first packet of a partition
    std::uint8_t partition_id = 0;
    bool has_picture_id = false;  ///< I
    bool long_picture_id = false; ///< M: 15-bit rather than 7-bit
    std::uint16_t picture_id = 0;
    bool has_tl0picidx = false;   ///< L
    std::uint8_t tl0picidx = 0;
    bool has_tid = false;         ///< T
    std::uint8_t tid = 0;
    bool layer_sync = false;      ///< Y
    bool has_keyidx = false;      ///< K
    std::uint8_t keyidx = 0;
    std::size_t size = 0;              ///< descriptor bytes; the VP8 payload starts here
    std::size_t picture_id_offset = 0; ///< where the picture id starts (when present)
    std::size_t tl0picidx_offset = 0;  ///< where TL0PICIDX is (when present)

    /// S=1 and PID=0: this packet starts a frame.
    bool starts_frame() const noexcept { return start && partition_id == 0; }
};

/// Parses the descriptor at the start of an RTP payload. Never reads past `payload`.
inline std::error_code parse_vp8_descriptor(bytes_view payload, vp8_descriptor& out) noexcept {
    out = vp8_descriptor{};
    const std::size_t n = payload.size();
    std::size_t pos = 0;
    if (n < 1) return errc::truncated;
    const std::uint8_t b0 = payload[pos++];
    out.non_reference = (b0 & 0x20) != 0;
    out.start = (b0 & 0x10) != 0;
    out.partition_id = b0 & 0x0f;
    if (b0 & 0x80) {
        if (pos >= n) return errc::truncated;
        const std::uint8_t x = payload[pos++];
        out.has_picture_id = (x & 0x80) != 0;
        out.has_tl0picidx = (x & 0x40) != 0;
        out.has_tid = (x & 0x20) != 0;
        out.has_keyidx = (x & 0x10) != 0;
        if (out.has_picture_id) {
            if (pos >= n) return errc::truncated;
            out.picture_id_offset = pos;
            const std::uint8_t p0 = payload[pos++];
            if (p0 & 0x80) {
                if (pos >= n) return errc::truncated;
                out.long_picture_id = true;
                out.picture_id = static_cast<std::uint16_t>(((p0 & 0x7f) << 8) | payload[pos++]);
            } else {
                out.picture_id = p0;
            }
        }
        if (out.has_tl0picidx) {
            if (pos >= n) return errc::truncated;
            out.tl0picidx_offset = pos;
            out.tl0picidx = payload[pos++];
        }
        if (out.has_tid || out.has_keyidx) {
            if (pos >= n) return errc::truncated;
            const std::uint8_t t = payload[pos++];
            if (out.has_tid) {
                out.tid = static_cast<std::uint8_t>(t >> 6);
                out.layer_sync = (t & 0x20) != 0;
            }
            if (out.has_keyidx) out.keyidx = t & 0x1f;
        }
    }
    out.size = pos;
    return {};
}

/// What a frame buffer needs from the descriptor to track references.
inline frame_dependency dependency_of(const vp8_descriptor& d) noexcept {
    return {d.has_picture_id, d.picture_id, d.has_tl0picidx, d.tl0picidx, d.layer_sync};
}

/// True when `payload` (an RTP payload) starts a VP8 key frame: S=1, PID=0 and the VP8
/// payload header's inverse key frame bit P is 0.
inline bool vp8_keyframe_start(bytes_view payload) noexcept {
    vp8_descriptor d;
    if (parse_vp8_descriptor(payload, d) || !d.starts_frame() || payload.size() <= d.size) return false;
    return (payload[d.size] & 0x01) == 0;
}

/// What the first bytes of a VP8 frame say (RFC 6386 §9.1): key frame, and for key
/// frames with a valid start code the 14-bit width and height.
struct vp8_frame_info {
    bool keyframe = false;
    int width = 0;
    int height = 0;
};

inline vp8_frame_info parse_vp8_frame_header(bytes_view frame) noexcept {
    vp8_frame_info info;
    if (frame.empty()) return info;
    info.keyframe = (frame[0] & 0x01) == 0;
    if (info.keyframe && frame.size() >= 10 && frame[3] == 0x9d && frame[4] == 0x01 && frame[5] == 0x2a) {
        info.width = (frame[6] | (frame[7] << 8)) & 0x3fff;
        info.height = (frame[8] | (frame[9] << 8)) & 0x3fff;
    }
    return info;
}

struct vp8_payload {
    /// Bytes of the descriptor onair writes.
    static constexpr std::size_t descriptor_size = 6;

    /// Thread safety: none; one packetizer per stream.
    class packetizer {
    public:
        packetizer() = default;
        /// Starts numbering at the given picture id and base-layer index (0 by default; a
        /// sender picks random ones so a restarted stream is not mistaken for the old one).
        explicit packetizer(std::uint16_t first_picture_id, std::uint8_t first_tl0picidx = 0) noexcept
            : picture_id_(first_picture_id & 0x7fff), tl0picidx_(static_cast<std::uint8_t>(first_tl0picidx - 1)) {}

        /// Splits `f` into packets of at most `max_payload` bytes (descriptor included),
        /// calling emit(descriptor, data, marker) for each. Fails without emitting when the
        /// frame is empty or max_payload cannot hold a descriptor and one byte.
        template <class Emit>
        std::error_code packetize(const encoded_frame& f, std::size_t max_payload, Emit&& emit) {
            if (f.data.empty()) return errc::bad_frame;
            const fragment_plan plan(f.data.size(), max_payload, descriptor_size, descriptor_size);
            if (!plan.ok()) return errc::oversized;
            const std::uint8_t tid = static_cast<std::uint8_t>(f.temporal_layer & 0x03);
            if (tid == 0) ++tl0picidx_; // the base layer frame takes the next index
            const std::uint8_t n = f.non_reference ? 0x20 : 0x00;
            std::array<std::uint8_t, descriptor_size> d{
                static_cast<std::uint8_t>(0x90 | n), // X=1 N S=1 PID=0
                0xe0,                                // I=1 L=1 T=1 K=0
                static_cast<std::uint8_t>(0x80 | (picture_id_ >> 8)),
                static_cast<std::uint8_t>(picture_id_),
                tl0picidx_,
                static_cast<std::uint8_t>((tid << 6) | (f.layer_sync ? 0x20 : 0x00)), // TID Y KEYIDX=0
            };
            std::size_t pos = 0;
            for (std::size_t i = 0; i < plan.count(); ++i) {
                const std::size_t len = plan.data_size(i);
                if (i == 1) d[0] = static_cast<std::uint8_t>(0x80 | n); // S=0 after the first packet
                emit(bytes_view{d}, bytes_view{f.data.data() + pos, len}, i + 1 == plan.count());
                pos += len;
            }
            picture_id_ = static_cast<std::uint16_t>((picture_id_ + 1) & 0x7fff);
            return {};
        }

        /// Picture id the next frame gets.
        std::uint16_t next_picture_id() const noexcept { return picture_id_; }

    private:
        std::uint16_t picture_id_ = 0;
        std::uint8_t tl0picidx_ = 0xff; // the first base layer frame gets 0
    };

    /// Thread safety: none; one depacketizer per stream.
    class depacketizer {
    public:
        depacketizer() = default;
        explicit depacketizer(assembler_limits limits) : assembler_(limits) {}

        template <class Emit>
        void push(const packet_view& p, media_kind kind, Emit&& emit) {
            vp8_descriptor d;
            if (parse_vp8_descriptor(p.payload, d) || p.payload.size() <= d.size) {
                assembler_.count_malformed();
                return;
            }
            fragment_info fi;
            fi.data = p.payload.subspan(d.size);
            fi.start = d.starts_frame();
            fi.end = p.marker;
            if (d.has_tid) fi.temporal_layer = d.tid;
            fi.dependency = dependency_of(d);
            assembler_.push(p, kind, fi, [&emit](encoded_frame&& f) {
                const vp8_frame_info info = parse_vp8_frame_header(f.data);
                f.keyframe = info.keyframe;
                f.width = info.width;
                f.height = info.height;
                emit(std::move(f));
            });
        }

        std::uint64_t dropped() const noexcept { return assembler_.dropped(); }
        const assembler_stats& stats() const noexcept { return assembler_.stats(); }
        frame_assembler& assembler() noexcept { return assembler_; }

    private:
        frame_assembler assembler_;
    };
};

static_assert(payload_format<vp8_payload>, "vp8_payload must model rtp::payload_format");

} // namespace onair::rtp
