// onair — the Opus RTP payload format (RFC 7587): one Opus packet per RTP packet, no
// descriptor. The marker bit flags the first packet of a talkspurt (RFC 3551 §4.1), which
// for onair is the first packet a packetizer sends.
#pragma once

#include "onair/core/error.hpp"
#include "onair/core/media_frame.hpp"
#include "onair/rtp/frame_assembler.hpp"
#include "onair/rtp/packet.hpp"
#include "onair/rtp/payload_concepts.hpp"

#include <cstddef>
#include <cstdint>
#include <system_error>
#include <utility>

namespace onair::rtp {

struct opus_payload {
    /// Thread safety: none; one packetizer per stream.
    class packetizer {
    public:
        /// Emits `f` as one packet. Opus packets cannot be split: a packet larger than
        /// `max_payload` fails with errc::oversized, an empty one with errc::bad_frame.
        template <class Emit>
        std::error_code packetize(const encoded_frame& f, std::size_t max_payload, Emit&& emit) {
            if (f.data.empty()) return errc::bad_frame;
            if (f.data.size() > max_payload) return errc::oversized;
            emit(bytes_view{}, bytes_view{f.data}, std::exchange(talkspurt_, false));
            return {};
        }

        /// The next packet starts a talkspurt (call after a pause in transmission).
        void start_talkspurt() noexcept { talkspurt_ = true; }

    private:
        bool talkspurt_ = true;
    };

    /// Each packet is a frame; the assembler still drops duplicates and late packets, so
    /// frames leave in sequence order. Thread safety: none; one depacketizer per stream.
    class depacketizer {
    public:
        depacketizer() = default;
        explicit depacketizer(assembler_limits limits) : assembler_(limits) {}

        /// Frames are always media_kind::audio, whatever `kind` says.
        template <class Emit>
        void push(const packet_view& p, [[maybe_unused]] media_kind kind, Emit&& emit) {
            if (p.payload.empty()) { // an Opus packet has at least its TOC byte
                assembler_.count_malformed();
                return;
            }
            fragment_info fi;
            fi.data = p.payload;
            fi.start = true;
            fi.end = true;
            fi.keyframe = true; // every Opus packet decodes on its own
            assembler_.push(p, media_kind::audio, fi, std::forward<Emit>(emit));
        }

        std::uint64_t dropped() const noexcept { return assembler_.dropped(); }
        const assembler_stats& stats() const noexcept { return assembler_.stats(); }
        frame_assembler& assembler() noexcept { return assembler_; }

    private:
        frame_assembler assembler_;
    };
};

static_assert(payload_format<opus_payload>, "opus_payload must model rtp::payload_format");

} // namespace onair::rtp
