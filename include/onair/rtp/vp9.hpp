// onair — the VP9 RTP payload format (RFC 9628), non-flexible mode, spatial and temporal layers.
//
// A picture is one layer frame per spatial layer (encoded_frame::spatial_layer, lowest
// first), each packetized on its own. Every packet onair sends starts with
//
//     |I|P|L|F|B|E|V|Z|   I=1; P=0 on key pictures (every layer of one), 1 otherwise; L=1;
//                         F=0; B on the first and E on the last packet of the layer frame;
//                         V on the first packet of a key picture's layer 0; Z=0
//     |M| PICTURE ID  |   M=1: 15-bit picture id, +1 per picture (all its layers share it)
//     | EXTENDED PID  |
//     |TID|U| SID |D  |   TID = encoded_frame::temporal_layer, U = encoded_frame::layer_sync,
//                         SID = encoded_frame::spatial_layer, D = encoded_frame::inter_layer
//     |   TL0PICIDX   |   +1 per temporal base layer (TID 0) picture
//
// The RTP marker is set on the last packet of the picture's last layer frame
// (encoded_frame::end_of_picture). A key picture's first packet adds the scalability
// structure with every spatial layer's resolution:
//
//     |N_S|Y|G|0 0 0|     N_S = spatial layers - 1, Y=1, G=0
//     | WIDTH (16)    |   per spatial layer, lowest first
//     | HEIGHT (16)   |
//
// The parser reads the whole RFC 9628 syntax (flexible mode, reference indices, spatial
// layers, picture group descriptions), checking every length against the payload. The
// depacketizer gives a picture from its layer 0 start to the marker, so a picture a relay
// cut down to its lower layers (the marker then on the last one kept) is whole too; its
// size is that of the last layer it holds.
#pragma once

#include "onair/core/error.hpp"
#include "onair/core/media_frame.hpp"
#include "onair/rtp/fragmenter.hpp"
#include "onair/rtp/frame_assembler.hpp"
#include "onair/rtp/packet.hpp"
#include "onair/rtp/payload_concepts.hpp"

#include <algorithm>
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
    /// Descriptor bytes of every packet, and what a key frame's first packet adds for one
    /// spatial layer (each more adds 4).
    static constexpr std::size_t descriptor_size = 5;
    static constexpr std::size_t ss_size = 5;
    static constexpr std::size_t max_spatial_layers = 3; ///< what encoded_frame describes

    /// Thread safety: none; one packetizer per stream.
    class packetizer {
    public:
        packetizer() = default;
        /// Starts numbering at the given picture id and base-layer index (0 by default; a
        /// sender picks random ones so a restarted stream is not mistaken for the old one).
        explicit packetizer(std::uint16_t first_picture_id, std::uint8_t first_tl0picidx = 0) noexcept
            : picture_id_(first_picture_id & 0x7fff), tl0picidx_(static_cast<std::uint8_t>(first_tl0picidx - 1)) {}

        /// Splits `f` (a picture, or one layer frame of it) into packets of at most
        /// `max_payload` bytes (descriptor included), calling emit(descriptor, data, marker)
        /// for each. Fails without emitting when the frame is empty, its spatial layer is out
        /// of range, or max_payload cannot hold a descriptor and one byte. A key frame of
        /// unknown size (width or height 0) gets a scalability structure without Y.
        template <class Emit>
        std::error_code packetize(const encoded_frame& f, std::size_t max_payload, Emit&& emit) {
            if (f.data.empty()) return errc::bad_frame;
            const std::size_t layers = std::max<std::size_t>(f.spatial_layers, 1);
            if (layers > max_spatial_layers || f.spatial_layer >= layers) return errc::bad_frame;
            const bool ss = f.keyframe && f.spatial_layer == 0;
            // Every layer's size: from the encoder's list when layered, else the frame's own.
            std::array<std::uint16_t, max_spatial_layers> w{}, h{};
            bool resolution = true;
            for (std::size_t i = 0; i < layers; ++i) {
                const int fw = layers > 1 ? f.layer_width[i] : f.width, fh = layers > 1 ? f.layer_height[i] : f.height;
                if (fw <= 0 || fh <= 0 || fw > 0xffff || fh > 0xffff) resolution = false;
                else {
                    w[i] = static_cast<std::uint16_t>(fw);
                    h[i] = static_cast<std::uint16_t>(fh);
                }
            }
            const std::size_t ss_bytes = ss ? 1 + (resolution ? 4 * layers : 0) : 0;
            const std::size_t first = descriptor_size + ss_bytes;
            const fragment_plan plan(f.data.size(), max_payload, first, descriptor_size);
            if (!plan.ok()) return errc::oversized;
            const std::uint8_t tid = static_cast<std::uint8_t>(f.temporal_layer & 0x07);
            if (tid == 0 && f.spatial_layer == 0) ++tl0picidx_; // once per picture
            const std::uint8_t flags = static_cast<std::uint8_t>(0xa0 | (f.keyframe ? 0 : 0x40)); // I, L, P
            std::array<std::uint8_t, descriptor_size + 1 + 4 * max_spatial_layers> d{
                flags,
                static_cast<std::uint8_t>(0x80 | (picture_id_ >> 8)),
                static_cast<std::uint8_t>(picture_id_),
                static_cast<std::uint8_t>((tid << 5) | (f.layer_sync ? 0x10 : 0x00) | ((f.spatial_layer & 0x07) << 1) |
                                          (f.inter_layer ? 0x01 : 0x00)), // TID U SID D
                tl0picidx_,
                static_cast<std::uint8_t>(((layers - 1) << 5) | (resolution ? 0x10 : 0x00)), // N_S, Y, G=0
            };
            if (resolution)
                for (std::size_t i = 0; i < layers; ++i) {
                    store_be16(&d[6 + 4 * i], w[i]);
                    store_be16(&d[8 + 4 * i], h[i]);
                }
            std::size_t pos = 0;
            for (std::size_t i = 0; i < plan.count(); ++i) {
                const bool last = i + 1 == plan.count();
                const std::size_t len = plan.data_size(i);
                std::uint8_t b0 = flags;
                if (i == 0) b0 |= 0x08; // B
                if (last) b0 |= 0x04;   // E
                if (i == 0 && ss) b0 |= 0x02; // V
                d[0] = b0;
                emit(bytes_view{d.data(), i == 0 ? first : descriptor_size}, bytes_view{f.data.data() + pos, len},
                     last && f.end_of_picture);
                pos += len;
            }
            if (f.end_of_picture) picture_id_ = static_cast<std::uint16_t>((picture_id_ + 1) & 0x7fff);
            return {};
        }

        std::uint16_t next_picture_id() const noexcept { return picture_id_; }

    private:
        std::uint16_t picture_id_ = 0;
        std::uint8_t tl0picidx_ = 0xff; // the first base layer frame gets 0
    };

    /// Frames (pictures) start at B on spatial layer 0 and end at the RTP marker (the end of
    /// the picture, RFC 9628 §4.1): a picture's layer frames in sequence order, which the
    /// VP9 decoder decodes one after the other, showing the last. The last scalability
    /// structure's sizes give its picture the size of the layer its marker packet belongs
    /// to (the SS arriving after the marker: the top layer's). Thread safety: none; one depacketizer per stream.
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
                // The picture decodes at the top spatial layer's size, unless it ends lower.
                fi.width = d.width[d.spatial_layers - 1u];
                fi.height = d.height[d.spatial_layers - 1u];
                ss_layers_ = d.spatial_layers;
                ss_timestamp_ = p.timestamp;
                ss_width_ = d.width;
                ss_height_ = d.height;
            }
            if (p.marker && d.has_layer_indices && d.sid < ss_layers_ && p.timestamp == ss_timestamp_) {
                fi.width = ss_width_[d.sid];
                fi.height = ss_height_[d.sid];
            }
            assembler_.push(p, kind, fi, std::forward<Emit>(emit));
        }

        std::uint64_t dropped() const noexcept { return assembler_.dropped(); }
        const assembler_stats& stats() const noexcept { return assembler_.stats(); }
        frame_assembler& assembler() noexcept { return assembler_; }

    private:
        frame_assembler assembler_;
        // The last scalability structure with resolutions (0 layers: none yet), and the
        // timestamp of its picture (only that picture's size it tells).
        std::uint8_t ss_layers_ = 0;
        std::uint32_t ss_timestamp_ = 0;
        std::array<std::uint16_t, vp9_descriptor::max_spatial_layers> ss_width_{};
        std::array<std::uint16_t, vp9_descriptor::max_spatial_layers> ss_height_{};
    };
};

static_assert(payload_format<vp9_payload>, "vp9_payload must model rtp::payload_format");

} // namespace onair::rtp
