// onair — the VP9 RTP payload format (RFC 9628), non-flexible mode, one spatial layer.
//
// Every packet onair sends starts with
//
//     |I|P|L|F|B|E|V|Z|   I=1; P=0 on key frames, 1 otherwise; L=1; F=0; B on the first and
//                         E on the last packet of the frame; V on a key frame's first packet
//     |M| PICTURE ID  |   M=1: 15-bit picture id, +1 per frame
//     | EXTENDED PID  |
//     |TID|U| SID |D  |   TID = encoded_frame::temporal_layer, U = encoded_frame::layer_sync,
//                         SID=0, D=0
//     |   TL0PICIDX   |   +1 per temporal base layer (TID 0) frame
//
// and a key frame's first packet adds the scalability structure with the resolution:
//
//     |N_S|Y|G|0 0 0|     N_S=0 (one spatial layer), Y=1, G=0
//     | WIDTH (16)    |
//     | HEIGHT (16)   |
//
// The parser reads the whole RFC 9628 syntax (flexible mode, reference indices, spatial
// layers, picture group descriptions), checking every length against the payload.
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

/// A parsed VP9 payload descriptor. Absent optional fields read 0.
struct vp9_descriptor {
    static constexpr std::size_t max_spatial_layers = 8;
    static constexpr std::size_t max_reference_indices = 3;

    bool has_picture_id = false;     ///< I
    bool inter_picture = false;      ///< P: predicted from an earlier picture
    bool has_layer_indices = false;  ///< L
    bool flexible = false;           ///< F
    bool begin = false;              ///< B: first packet of a layer frame
    bool end = false;                ///< E: last packet of a layer frame
    bool has_ss = false;             ///< V: scalability structure present
    bool not_upper_reference = false; ///< Z
    bool long_picture_id = false;    ///< M
    std::uint16_t picture_id = 0;
    std::uint8_t tid = 0;
    bool switching_up = false;       ///< U
    std::uint8_t sid = 0;
    bool inter_layer = false;        ///< D
    std::uint8_t tl0picidx = 0;      ///< non-flexible mode with L=1
    std::uint8_t reference_count = 0; ///< flexible mode: P_DIFF entries
    std::array<std::uint8_t, max_reference_indices> p_diff{};
    // Scalability structure (has_ss).
    std::uint8_t spatial_layers = 0; ///< N_S + 1
    bool has_resolution = false;     ///< Y
    std::array<std::uint16_t, max_spatial_layers> width{};
    std::array<std::uint16_t, max_spatial_layers> height{};
    bool has_picture_group = false;  ///< G
    std::uint8_t picture_group_size = 0; ///< N_G (entries are checked, not stored)
    std::size_t size = 0;            ///< descriptor bytes; the VP9 payload starts here

    /// B=1 on the lowest spatial layer: this packet starts a picture.
    bool starts_frame() const noexcept { return begin && sid == 0; }
    /// A picture that needs no earlier picture: P=0 on spatial layer 0.
    bool keyframe() const noexcept { return !inter_picture && sid == 0; }
};

/// What a frame buffer needs from the descriptor to track references (flexible mode
/// signals references explicitly instead, which the TL0PICIDX model does not use).
inline frame_dependency dependency_of(const vp9_descriptor& d) noexcept {
    return {d.has_picture_id, d.picture_id, d.has_layer_indices && !d.flexible, d.tl0picidx, d.switching_up};
}

/// Parses the descriptor at the start of an RTP payload. Never reads past `payload`.
inline std::error_code parse_vp9_descriptor(bytes_view payload, vp9_descriptor& out) noexcept {
    out = vp9_descriptor{};
    const std::size_t n = payload.size();
    std::size_t pos = 0;
    auto next = [&](std::uint8_t& b) noexcept {
        if (pos >= n) return false;
        b = payload[pos++];
        return true;
    };
    std::uint8_t b = 0;
    if (!next(b)) return errc::truncated;
    out.has_picture_id = (b & 0x80) != 0;
    out.inter_picture = (b & 0x40) != 0;
    out.has_layer_indices = (b & 0x20) != 0;
    out.flexible = (b & 0x10) != 0;
    out.begin = (b & 0x08) != 0;
    out.end = (b & 0x04) != 0;
    out.has_ss = (b & 0x02) != 0;
    out.not_upper_reference = (b & 0x01) != 0;
    if (out.has_picture_id) {
        if (!next(b)) return errc::truncated;
        if (b & 0x80) {
            std::uint8_t lo = 0;
            if (!next(lo)) return errc::truncated;
            out.long_picture_id = true;
            out.picture_id = static_cast<std::uint16_t>(((b & 0x7f) << 8) | lo);
        } else {
            out.picture_id = b;
        }
    }
    if (out.has_layer_indices) {
        if (!next(b)) return errc::truncated;
        out.tid = static_cast<std::uint8_t>(b >> 5);
        out.switching_up = (b & 0x10) != 0;
        out.sid = static_cast<std::uint8_t>((b >> 1) & 0x07);
        out.inter_layer = (b & 0x01) != 0;
        if (!out.flexible && !next(out.tl0picidx)) return errc::truncated;
    }
    if (out.flexible && out.inter_picture) {
        bool more = true;
        while (more) {
            if (out.reference_count == vp9_descriptor::max_reference_indices) return errc::bad_payload;
            if (!next(b)) return errc::truncated;
            out.p_diff[out.reference_count++] = static_cast<std::uint8_t>(b >> 1);
            more = (b & 0x01) != 0;
        }
    }
    if (out.has_ss) {
        if (!next(b)) return errc::truncated;
        out.spatial_layers = static_cast<std::uint8_t>((b >> 5) + 1);
        out.has_resolution = (b & 0x10) != 0;
        out.has_picture_group = (b & 0x08) != 0;
        if (out.has_resolution) {
            if (n - pos < 4u * out.spatial_layers) return errc::truncated;
            for (std::size_t i = 0; i < out.spatial_layers; ++i) {
                out.width[i] = load_be16(&payload[pos]);
                out.height[i] = load_be16(&payload[pos + 2]);
                pos += 4;
            }
        }
        if (out.has_picture_group) {
            if (!next(out.picture_group_size)) return errc::truncated;
            for (std::size_t i = 0; i < out.picture_group_size; ++i) {
                if (!next(b)) return errc::truncated;
                const std::size_t refs = (b >> 2) & 0x03;
                if (n - pos < refs) return errc::truncated;
                pos += refs;
            }
        }
    }
    out.size = pos;
    return {};
}

/// True when `payload` (an RTP payload) starts a VP9 key frame (B=1, P=0, SID=0).
inline bool vp9_keyframe_start(bytes_view payload) noexcept {
    vp9_descriptor d;
    if (parse_vp9_descriptor(payload, d) || payload.size() <= d.size) return false;
    return d.starts_frame() && d.keyframe();
}

struct vp9_payload {
    /// Descriptor bytes of every packet, and what a key frame's first packet adds.
    static constexpr std::size_t descriptor_size = 5;
    static constexpr std::size_t ss_size = 5;

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
        /// frame is empty or max_payload cannot hold a descriptor and one byte. A key frame
        /// of unknown size (width or height 0) gets a scalability structure without Y.
        template <class Emit>
        std::error_code packetize(const encoded_frame& f, std::size_t max_payload, Emit&& emit) {
            if (f.data.empty()) return errc::bad_frame;
            const bool resolution = f.keyframe && f.width > 0 && f.height > 0 && f.width <= 0xffff &&
                                    f.height <= 0xffff;
            const std::size_t first = descriptor_size + (f.keyframe ? (resolution ? ss_size : 1) : 0);
            const fragment_plan plan(f.data.size(), max_payload, first, descriptor_size);
            if (!plan.ok()) return errc::oversized;
            const std::uint8_t tid = static_cast<std::uint8_t>(f.temporal_layer & 0x07);
            if (tid == 0) ++tl0picidx_;
            const std::uint8_t flags = static_cast<std::uint8_t>(0xa0 | (f.keyframe ? 0 : 0x40)); // I, L, P
            std::array<std::uint8_t, descriptor_size + ss_size> d{
                flags,
                static_cast<std::uint8_t>(0x80 | (picture_id_ >> 8)),
                static_cast<std::uint8_t>(picture_id_),
                static_cast<std::uint8_t>((tid << 5) | (f.layer_sync ? 0x10 : 0x00)), // U SID=0 D=0
                tl0picidx_,
                static_cast<std::uint8_t>(resolution ? 0x10 : 0x00), // N_S=0, Y, G=0
            };
            if (resolution) {
                store_be16(&d[6], static_cast<std::uint16_t>(f.width));
                store_be16(&d[8], static_cast<std::uint16_t>(f.height));
            }
            std::size_t pos = 0;
            for (std::size_t i = 0; i < plan.count(); ++i) {
                const bool last = i + 1 == plan.count();
                const std::size_t len = plan.data_size(i);
                std::uint8_t b0 = flags;
                if (i == 0) b0 |= 0x08; // B
                if (last) b0 |= 0x04;   // E
                if (i == 0 && f.keyframe) b0 |= 0x02; // V
                d[0] = b0;
                emit(bytes_view{d.data(), i == 0 ? first : descriptor_size}, bytes_view{f.data.data() + pos, len}, last);
                pos += len;
            }
            picture_id_ = static_cast<std::uint16_t>((picture_id_ + 1) & 0x7fff);
            return {};
        }

        std::uint16_t next_picture_id() const noexcept { return picture_id_; }

    private:
        std::uint16_t picture_id_ = 0;
        std::uint8_t tl0picidx_ = 0xff; // the first base layer frame gets 0
    };

    /// Frames start at B on spatial layer 0 and end at the RTP marker (the end of the
    /// picture, RFC 9628 §4.1). Thread safety: none; one depacketizer per stream.
    class depacketizer {
    public:
        depacketizer() = default;
        explicit depacketizer(assembler_limits limits) : assembler_(limits) {}

        template <class Emit>
        void push(const packet_view& p, media_kind kind, Emit&& emit) {
            vp9_descriptor d;
            if (parse_vp9_descriptor(p.payload, d) || p.payload.size() <= d.size) {
                assembler_.count_malformed();
                return;
            }
            fragment_info fi;
            fi.data = p.payload.subspan(d.size);
            fi.start = d.starts_frame();
            fi.end = p.marker;
            fi.keyframe = d.keyframe();
            if (d.has_layer_indices) fi.temporal_layer = d.tid;
            fi.dependency = dependency_of(d);
            if (d.has_ss && d.has_resolution) {
                // The picture decodes at the top spatial layer's size.
                fi.width = d.width[d.spatial_layers - 1u];
                fi.height = d.height[d.spatial_layers - 1u];
            }
            assembler_.push(p, kind, fi, std::forward<Emit>(emit));
        }

        std::uint64_t dropped() const noexcept { return assembler_.dropped(); }
        const assembler_stats& stats() const noexcept { return assembler_.stats(); }
        frame_assembler& assembler() noexcept { return assembler_; }

    private:
        frame_assembler assembler_;
    };
};

static_assert(payload_format<vp9_payload>, "vp9_payload must model rtp::payload_format");

} // namespace onair::rtp
