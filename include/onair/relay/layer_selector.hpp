// onair — relay::layer_selector: what one subscriber gets of a layered video stream.
//
// A publisher may send up to three simulcast encodings of its video (spatial index 0 is
// the lowest; each has its own SSRC, sequence numbers, timestamps and picture ids), each
// with temporal layers (the TID of every packet's VP8 / VP9 payload descriptor). A relay
// forwards to each subscriber the layers that fit its link, as one continuous stream: one
// SSRC, sequence numbers without holes, timestamps that never go back, picture ids one
// apart from frame to frame and a TL0PICIDX that keeps counting, whatever is dropped and
// whichever encoding is forwarded. One layer_selector per (subscriber, video stream)
// decides for every packet of the stream whether that subscriber gets it, and under which
// numbers.
//
// Rules:
// - Start: nothing is forwarded before a key frame starts on the target encoding; the
//   packets of that key frame that arrive after its first one follow it. A key frame whose
//   first packet arrives after a later packet of its encoding is not used: part of it is
//   gone already.
// - Spatial switch (up or down) only at a key frame of the new encoding: the current one is
//   forwarded until the new one's key frame starts, and dropped from that packet on.
//   wants_keyframe() names the encoding waited for, so the relay can ask for a key frame.
//   A target back on the current encoding ends the wait.
// - Temporal layers above the allowed one are dropped. Going down takes effect at the next
//   frame; going up at a frame the higher layers can start from: a base layer (TID 0) frame
//   allows the target, a layer sync frame of TID t (<= target) allows t. A key frame allows
//   the target.
// - Sequence numbers: a dropped packet takes no output number. A hole in the input is
//   taken as forwarded and keeps its numbers; a late packet gets the number its place was
//   given. When that late packet turns out to be one the subscriber does not get (a layer
//   dropped meanwhile, or an encoding switched away from), the decision is `fill`: the
//   relay sends a padding-only packet under that number, so the subscriber sees no loss.
//   Duplicates, packets older than the window (the encoding's last 256 input numbers, 128
//   for a lower simulcast encoding) and packets from before the encoding's switch point are
//   dropped. An input jump of more than 1000 ahead (or a run of packets that far behind) is
//   a renumbering: the output goes on at the next number.
// - Timestamps follow the input plus an offset fixed at each spatial switch, chosen so that
//   the new encoding's first frame comes after the last output by the time that passed
//   (at least one tick): never backwards.
// - Picture ids (15-bit) are given per forwarded frame: a dropped frame takes none, a frame
//   missing from the input keeps its id. After a spatial switch they go on from the last
//   one. TL0PICIDX is the input's plus an offset per switch, so it goes on from the last.
//
// - Spatial layers of one encoding (VP9 SVC: one SSRC, the SID of each packet's descriptor,
//   the layers of a picture sharing its timestamp and picture id): packets with a SID above
//   the allowed one are dropped like those of a dropped temporal layer (they take no output
//   number), and the marker bit goes on the last forwarded packet of each picture (E on the
//   allowed layer; the picture's own marker when that is its top layer). Going down takes
//   effect at the next picture (lower layers never depend on upper ones); going up only at a
//   key picture, since an upper layer frame is predicted from the earlier frames of its own
//   layer, which the subscriber did not get. wants_keyframe() then names the forwarded
//   encoding. Up to three spatial layers are told apart: a target of 3 or more is every layer.
//
// The packet a relay forwards is shared by all subscribers and never written to:
// write_rewritten_prefix() writes this subscriber's first bytes of it for a two-buffer
// send; write_fill_packet() writes the padding-only packet of a fill.
//
// Input is untrusted: any layer_info, sequence numbers and picture ids give a defined
// decision. Not thread-safe: one selector per subscriber leg, on the relay's thread.
// Everything after construction is noexcept and allocates nothing.
#pragma once

#include "onair/rtp/packet.hpp"
#include "onair/rtp/sequence.hpp"
#include "onair/rtp/vp8.hpp"
#include "onair/rtp/vp9.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <utility>
#include <vector>

namespace onair::relay {

/// What the relay knows about one packet of a layered video stream, from the RTP header
/// and the payload descriptor (layer_info_of() fills it from a VP8 or VP9 descriptor).
struct layer_info {
    std::uint8_t spatial = 0;       ///< simulcast encoding of the packet's SSRC (0 = lowest)
    std::uint8_t temporal = 0;      ///< TID (0 when the stream has no temporal layers)
    bool layer_sync = false;        ///< VP8 Y / VP9 U: higher layers may start at this frame
    bool frame_start = false;       ///< first packet of a frame
    bool keyframe = false;          ///< this packet starts a key frame
    bool has_picture_id = false;
    bool short_picture_id = false;  ///< a 7-bit id (M=0): compared modulo 128
    std::uint16_t picture_id = 0;   ///< 15-bit (or 7-bit)
    bool has_tl0picidx = false;
    std::uint8_t tl0picidx = 0;
    std::uint8_t svc_layer = 0;     ///< VP9 SID: spatial layer within the packet's encoding
    bool layer_end = false;         ///< VP9 E: last packet of its layer frame
};

enum class layer_action : std::uint8_t {
    forward, ///< send the packet, rewritten with the decision's numbers
    drop,    ///< not for this subscriber
    fill,    ///< send a padding-only packet under `sequence` (write_fill_packet)
};

/// A layer_selector's answer for one packet. The numbers are valid for forward (all of
/// them) and fill (sequence and timestamp).
struct layer_decision {
    layer_action action = layer_action::drop;
    std::uint16_t sequence = 0;   ///< output sequence number
    std::uint32_t timestamp = 0;  ///< output RTP timestamp
    std::uint16_t picture_id = 0; ///< output picture id (15-bit), when the packet has one
    std::uint8_t tl0picidx = 0;   ///< output TL0PICIDX, when the packet has one
    bool marker = false;          ///< output RTP marker (forward): the end of what goes out of the picture
};

/// A packet the selector forwarded, as source_of() / history() find it for a NACK.
struct forwarded_packet {
    std::uint8_t spatial = 0;   ///< encoding it came from
    std::uint16_t sequence = 0; ///< its sequence number there (the relay's cache key)
    layer_decision decision;    ///< the numbers it went out with (to rewrite the resend)
};

struct layer_selector_stats {
    std::uint64_t forwarded = 0;
    std::uint64_t filled = 0;
    std::uint64_t dropped = 0;           ///< all of the reasons below
    std::uint64_t waiting = 0;           ///< before the first key frame
    std::uint64_t other_layer = 0;       ///< of an encoding not forwarded
    std::uint64_t temporal_dropped = 0;  ///< above the allowed temporal layer (or of an unknown frame)
    std::uint64_t spatial_dropped = 0;   ///< above the allowed spatial layer (SID) of the encoding
    std::uint64_t padding_dropped = 0;   ///< padding-only packets of the forwarded encoding
    std::uint64_t duplicates = 0;
    std::uint64_t stale = 0;             ///< outside the window, or before the encoding's switch point
    std::uint64_t ignored = 0;           ///< spatial index beyond the stream's encodings
    std::uint64_t restarts = 0;          ///< input renumberings (sequence jumps)
    std::uint64_t spatial_switches = 0;
    std::uint64_t temporal_switches = 0;
    std::uint64_t svc_switches = 0;      ///< changes of the allowed spatial layer (SID)
};

/// The forwarding decision for one subscriber of one video stream. Its windows (what became
/// of the last input numbers of each encoding, of the forwarded encoding's last frames and
/// of the last output numbers) take 4.5 KB for one encoding, 5.5 KB for three, allocated
/// at construction (memory_bytes()).
class layer_selector {
public:
    static constexpr std::uint8_t max_spatial_layers = 3;
    static constexpr std::uint8_t max_temporal_layers = 8; ///< VP9's TID has 3 bits
    /// Output numbers source_of() remembers, and input numbers remembered of the top
    /// encoding: 1.7 s of a 1.5 Mbps stream (150 packets a second), 1 s of 2.5 Mbps in
    /// 1.2 KB packets, the time a subscriber's NACKs and the publisher leg's repairs take.
    static constexpr std::uint16_t window = 256;
    /// Input numbers remembered of each lower simulcast encoding: at a quarter of the pixels
    /// or fewer it sends half the top one's packets or fewer, so half the window lasts as
    /// long (the relay caches half as many of its packets too).
    static constexpr std::uint16_t lower_window = window / 2;
    /// A sequence number this far from the newest: a renumbering, not reordering or loss.
    static constexpr int max_sequence_jump = 1000;
    /// Consecutive packets that far behind after which the input is taken as renumbered.
    static constexpr std::uint8_t stale_run_restart = 8;
    /// Frames (picture ids) remembered of the forwarded encoding (those of the others are
    /// never looked at: a switch starts from none): what `window` input numbers hold at two
    /// packets a frame.
    static constexpr std::uint16_t frame_window = 128;
    /// A picture id this far ahead: the ids were renumbered, the output goes on from the last.
    static constexpr int max_picture_id_jump = 100;

    /// `spatial_layers` encodings (1..3) with `temporal_layers` temporal layers (1..8) each;
    /// out-of-range counts are clamped. Starts with the lowest layers as the target.
    layer_selector(std::uint32_t output_ssrc, std::uint8_t spatial_layers, std::uint8_t temporal_layers)
        : ssrc_(output_ssrc),
          spatial_layers_(std::clamp<std::uint8_t>(spatial_layers, 1, max_spatial_layers)),
          temporal_layers_(std::clamp<std::uint8_t>(temporal_layers, 1, max_temporal_layers)),
          inputs_(std::size_t{window} + std::size_t{lower_window} * (spatial_layers_ - 1u)),
          frames_(frame_window),
          outputs_(window) {}

    /// The layers that fit this subscriber now (clamped to the stream's). A spatial target
    /// other than the current encoding is reached at its next key frame; a temporal one at
    /// the next frame that allows it.
    void set_target(std::uint8_t spatial, std::uint8_t temporal) noexcept {
        target_spatial_ = std::min<std::uint8_t>(spatial, static_cast<std::uint8_t>(spatial_layers_ - 1));
        target_temporal_ = std::min<std::uint8_t>(temporal, static_cast<std::uint8_t>(temporal_layers_ - 1));
    }

    /// The spatial layers (VP9 SIDs 0..layer) of the forwarded encoding that fit this
    /// subscriber now; 3 or more: all. A lower one applies from the next picture, a higher
    /// one from the next key picture.
    void set_svc_target(std::uint8_t sid) noexcept { target_svc_ = sid >= svc_all ? all_layers : sid; }

    /// Waits for a key frame again (the publisher restarted, say); the output numbering
    /// goes on where it was.
    void reset() noexcept { started_ = false; }

    std::uint32_t output_ssrc() const noexcept { return ssrc_; }
    std::uint8_t spatial_layers() const noexcept { return spatial_layers_; }
    std::uint8_t temporal_layers() const noexcept { return temporal_layers_; }
    /// The encoding forwarded now (meaningful once started).
    std::uint8_t spatial() const noexcept { return current_spatial_; }
    /// The highest temporal layer forwarded now.
    std::uint8_t temporal() const noexcept { return temporal_; }
    std::uint8_t target_spatial() const noexcept { return target_spatial_; }
    std::uint8_t target_temporal() const noexcept { return target_temporal_; }
    /// The highest spatial layer (SID) forwarded now (7: all), and the target.
    std::uint8_t svc_layer() const noexcept { return svc_; }
    std::uint8_t target_svc_layer() const noexcept { return target_svc_; }
    /// A key frame has been forwarded (since construction or the last reset()).
    bool started() const noexcept { return started_; }
    /// The encoding whose key frame the selector waits for (to start, or to switch to): the
    /// relay sends a PLI for that encoding's SSRC. nullopt when it waits for none.
    std::optional<std::uint8_t> wants_keyframe() const noexcept {
        if (!started_ || target_spatial_ != current_spatial_) return target_spatial_;
        if (target_svc_ > svc_) return current_spatial_; // an upper spatial layer starts at a key picture
        return std::nullopt;
    }
    const layer_selector_stats& stats() const noexcept { return stats_; }
    /// Bytes this selector takes: the object and its windows.
    std::size_t memory_bytes() const noexcept {
        return sizeof(*this) + inputs_.capacity() * sizeof(input_slot) + frames_.capacity() * sizeof(frame_slot) +
               outputs_.capacity() * sizeof(output_slot);
    }

    /// Decides for one packet of the stream. Pass every packet of every encoding, padding-only
    /// ones included (they hold sequence numbers), in arrival order; `now_us` is the arrival
    /// time (microseconds, monotonic), which places the first timestamp after a switch.
    layer_decision on_packet(const rtp::packet_view& p, const layer_info& info, std::int64_t now_us) noexcept {
        if (info.spatial >= spatial_layers_) return drop(stats_.ignored);
        layer& l = layers_[info.spatial];
        const int ahead = distance(p.sequence, l.newest);
        const bool fresh = !l.seen || ahead > 0 || ahead < -max_sequence_jump;
        if (fresh) {
            l.seen = true;
            l.newest = p.sequence;
        }
        const bool media = !p.payload.empty();
        if (media && fresh && info.keyframe && info.frame_start && info.spatial == target_spatial_ &&
            (!started_ || info.spatial != current_spatial_))
            return switch_to(info.spatial, p, info, now_us);
        if (!started_ || info.spatial != current_spatial_) {
            if (auto f = fill_reserved(info.spatial, p)) return *f;
            return drop(started_ ? stats_.other_layer : stats_.waiting);
        }
        return on_current(info.spatial, p, info, media, now_us);
    }

    /// The packet output number `out` carried, if it is one of the last `window` numbers and
    /// was a forwarded packet (not a fill, not a hole still waiting for its packet).
    std::optional<forwarded_packet> history(std::uint16_t out) const noexcept {
        if (!has_out_ || static_cast<std::uint16_t>(out_high_ - out) >= window) return std::nullopt;
        const output_slot& o = outputs_[out % window];
        if (!o.holds(out) || o.state != slot::forwarded) return std::nullopt;
        forwarded_packet f;
        f.spatial = o.encoding();
        f.sequence = o.in;
        f.decision.action = layer_action::forward;
        f.decision.sequence = out;
        f.decision.timestamp = o.timestamp;
        f.decision.picture_id = o.picture_id;
        f.decision.tl0picidx = o.tl0picidx;
        f.decision.marker = o.marker();
        return f;
    }

    /// NACK support: the (encoding, upstream sequence number) output number `out` carried,
    /// under the same conditions as history().
    std::optional<std::pair<std::uint8_t, std::uint16_t>> source_of(std::uint16_t out) const noexcept {
        if (auto f = history(out)) return std::pair{f->spatial, f->sequence};
        return std::nullopt;
    }

private:
    enum class slot : std::uint8_t { unused, reserved, forwarded, dropped, filled };
    enum class verdict : std::uint8_t { forward, temporal, spatial, unknown };
    /// set_svc_target()'s "every spatial layer", and the targets from which it applies.
    static constexpr std::uint8_t all_layers = 7;
    static constexpr std::uint8_t svc_all = 3;

    // The slots keep a number as its quotient by their window (`tag`): with the slot's
    // index, the remainder, that is the whole number.
    static_assert((window & (window - 1)) == 0 && 65536 / window <= 256, "output tag: 8 bits");
    static_assert((lower_window & (lower_window - 1)) == 0 && window % lower_window == 0 && 65536 / lower_window <= 8192,
                  "input tag: 13 bits, telling the number in either window");
    static_assert((frame_window & (frame_window - 1)) == 0 && 32768 / frame_window <= 256, "frame tag: 8 bits");

    /// What became of one input sequence number of an encoding (4 bytes). The tag is the
    /// number / lower_window, which tells it in either window.
    struct input_slot {
        std::uint16_t out = 0;  ///< the output number it has (reserved, forwarded, filled)
        std::uint16_t bits = 0; ///< the state (low 3 bits) and the tag
        static input_slot of(std::uint16_t seq, std::uint16_t out, slot state) noexcept {
            return {out, static_cast<std::uint16_t>((seq / lower_window) << 3 | static_cast<unsigned>(state))};
        }
        bool holds(std::uint16_t seq) const noexcept { return bits >> 3 == seq / lower_window; }
        slot state() const noexcept { return static_cast<slot>(bits & 7u); }
        void set_state(slot s) noexcept { bits = static_cast<std::uint16_t>((bits & ~7u) | static_cast<unsigned>(s)); }
    };
    /// What became of one frame (by input picture id, 15-bit) of the forwarded encoding (4 bytes).
    struct frame_slot {
        std::uint16_t out = 0;  ///< its output picture id (reserved or forwarded)
        std::uint8_t tag = 0;   ///< its picture id / frame_window
        /// The state (low 3 bits), the highest TID (3 bits) and SID (2 bits, 3: all) allowed
        /// when it was given its id.
        std::uint8_t bits = 0;
        static frame_slot of(std::uint16_t pid, std::uint16_t out, std::uint8_t allowed, std::uint8_t svc, slot state) noexcept {
            const unsigned svc_code = std::min<unsigned>(svc, svc_all);
            return {out, static_cast<std::uint8_t>(pid / frame_window),
                    static_cast<std::uint8_t>(svc_code << 6 | (allowed & 0x07u) << 3 | static_cast<unsigned>(state))};
        }
        bool holds(std::uint16_t pid) const noexcept { return tag == pid / frame_window; }
        slot state() const noexcept { return static_cast<slot>(bits & 0x07); }
        std::uint8_t allowed() const noexcept { return static_cast<std::uint8_t>((bits >> 3) & 0x07); }
        std::uint8_t svc() const noexcept {
            const auto code = static_cast<std::uint8_t>(bits >> 6);
            return code == svc_all ? all_layers : code;
        }
        void set_state(slot s) noexcept { bits = static_cast<std::uint8_t>((bits & 0xf8u) | static_cast<unsigned>(s)); }
    };
    /// One output sequence number (12 bytes).
    struct output_slot {
        std::uint32_t timestamp = 0;
        std::uint16_t in = 0;
        std::uint16_t picture_id = 0;
        std::uint8_t tl0picidx = 0;
        std::uint8_t tag = 0; ///< the output number / window
        std::uint8_t spatial = 0; ///< the encoding (low 7 bits) and the output marker (0x80)
        slot state = slot::unused;
        static output_slot of(std::uint32_t ts, std::uint16_t out, std::uint16_t in, std::uint16_t pid, std::uint8_t tl0,
                              std::uint8_t spatial, slot state, bool marker = false) noexcept {
            return {ts, in, pid, tl0, static_cast<std::uint8_t>(out / window),
                    static_cast<std::uint8_t>((spatial & 0x7fu) | (marker ? 0x80u : 0u)), state};
        }
        bool holds(std::uint16_t out) const noexcept { return tag == out / window; }
        std::uint8_t encoding() const noexcept { return static_cast<std::uint8_t>(spatial & 0x7f); }
        bool marker() const noexcept { return (spatial & 0x80) != 0; }
    };
    static_assert(sizeof(input_slot) == 4 && sizeof(frame_slot) == 4 && sizeof(output_slot) == 12);
    /// The numbering of one encoding. `first`..`high` is its current stretch as the
    /// forwarded encoding (since its switch point or the last renumbering); the next input
    /// number after `high` gets output number high + 1 + seq_offset.
    struct layer {
        bool seen = false;
        bool anchored = false;       ///< has been forwarded: its window holds numbers
        std::uint16_t newest = 0;    ///< newest sequence number seen, forwarded or not
        std::uint16_t first = 0;
        std::uint16_t high = 0;
        std::uint16_t seq_offset = 0;
        std::uint32_t ts_offset = 0;
        bool has_ts = false;         ///< high_ts is set (frames told apart by timestamp)
        std::uint32_t high_ts = 0;
        bool has_picture_id = false; ///< high_pid and pid_offset are set
        std::uint16_t high_pid = 0;  ///< newest input picture id (15-bit)
        std::uint16_t pid_offset = 0;
        bool has_tl0 = false;
        std::uint8_t tl0_offset = 0;
        std::uint8_t stale_run = 0;
    };

    static constexpr std::uint16_t pid_mask = 0x7fff;

    static int distance(std::uint16_t a, std::uint16_t b) noexcept {
        return static_cast<std::int16_t>(static_cast<std::uint16_t>(a - b));
    }
    static std::uint16_t add16(std::uint16_t a, std::uint16_t b) noexcept { return static_cast<std::uint16_t>(a + b); }
    static std::uint16_t pid_add(std::uint16_t a, int b) noexcept {
        return static_cast<std::uint16_t>((a + static_cast<unsigned>(b)) & pid_mask);
    }

    /// The lower encodings' windows first, then the top one's.
    input_slot& input(std::uint8_t spatial, std::uint16_t seq) noexcept {
        if (spatial + 1 == spatial_layers_) return inputs_[std::size_t{lower_window} * spatial + seq % window];
        return inputs_[std::size_t{lower_window} * spatial + seq % lower_window];
    }
    frame_slot& frame(std::uint16_t pid) noexcept { return frames_[pid % frame_window]; }

    layer_decision drop(std::uint64_t& reason) noexcept {
        ++reason;
        ++stats_.dropped;
        return {};
    }

    /// Starts forwarding `spatial` at this packet, the first of one of its key frames.
    layer_decision switch_to(std::uint8_t spatial, const rtp::packet_view& p, const layer_info& info,
                             std::int64_t now_us) noexcept {
        if (started_ && spatial != current_spatial_) ++stats_.spatial_switches;
        layer& l = layers_[spatial];
        l.anchored = true;
        l.first = p.sequence;
        l.high = static_cast<std::uint16_t>(p.sequence - 1);
        l.stale_run = 0;
        l.seq_offset = has_out_ ? static_cast<std::uint16_t>(out_high_ + 1 - p.sequence) : 0;
        const std::uint32_t ts = has_ts_out_ ? ts_out_high_ + ticks_since_forward(now_us) : p.timestamp;
        l.ts_offset = ts - p.timestamp;
        l.has_ts = false;
        l.has_picture_id = false;
        l.has_tl0 = false;
        std::fill(frames_.begin(), frames_.end(), frame_slot{});
        current_spatial_ = spatial;
        if (started_ && svc_ != target_svc_) ++stats_.svc_switches;
        started_ = true;
        temporal_ = target_temporal_; // a key frame: every temporal and spatial layer may start here
        svc_ = target_svc_;
        return in_order(spatial, l, p, info, true, now_us, true);
    }

    /// 90 kHz ticks since the last forwarded packet arrived, at least 1 (capped at an hour).
    std::uint32_t ticks_since_forward(std::int64_t now_us) const noexcept {
        if (now_us <= last_forward_us_) return 1;
        const std::uint64_t us = static_cast<std::uint64_t>(now_us) - static_cast<std::uint64_t>(last_forward_us_);
        const std::uint64_t capped = std::min<std::uint64_t>(us, 3'600'000'000ull);
        return std::max<std::uint32_t>(1, static_cast<std::uint32_t>(capped * 90 / 1000));
    }

    /// A packet of the forwarded encoding.
    layer_decision on_current(std::uint8_t spatial, const rtp::packet_view& p, const layer_info& info, bool media,
                              std::int64_t now_us) noexcept {
        layer& l = layers_[spatial];
        const std::uint16_t seq = p.sequence;
        const int d = distance(seq, l.high);
        if (d > max_sequence_jump || (d < -max_sequence_jump && ++l.stale_run >= stale_run_restart)) {
            // Renumbered input: the output goes on at the next number, no hole in between.
            ++stats_.restarts;
            l.first = seq;
            l.high = static_cast<std::uint16_t>(seq - 1);
            l.seq_offset = static_cast<std::uint16_t>(out_high_ + 1 - seq);
            l.stale_run = 0;
            return in_order(spatial, l, p, info, media, now_us, false);
        }
        if (d < -max_sequence_jump) return drop(stats_.stale);
        l.stale_run = 0;
        if (d > 0) return in_order(spatial, l, p, info, media, now_us, false);
        if (d == 0) return drop(stats_.duplicates);
        // Late: its place in the output was kept when the hole was seen.
        if (distance(seq, l.first) < 0) { // from before this encoding's switch point
            if (auto f = fill_reserved(spatial, p)) return *f;
            return drop(stats_.stale);
        }
        input_slot& s = input(spatial, seq);
        if (!s.holds(seq) || s.state() == slot::unused) return drop(stats_.stale);
        if (s.state() != slot::reserved || !reserved_output(s.out, spatial, seq)) return drop(stats_.duplicates);
        std::uint16_t pid = 0;
        std::uint8_t svc = 0;
        if (media && frame_decision(l, p, info, false, false, pid, svc) == verdict::forward) {
            s.set_state(slot::forwarded);
            return forwarded(spatial, l, p, info, s.out, pid, svc);
        }
        s.set_state(slot::filled);
        return filled(spatial, l, p, s.out);
    }

    /// The next packet of the forwarded encoding's numbering (after a hole, maybe).
    layer_decision in_order(std::uint8_t spatial, layer& l, const rtp::packet_view& p, const layer_info& info,
                            bool media, std::int64_t now_us, bool force) noexcept {
        const std::uint16_t seq = p.sequence;
        for (std::uint16_t x = add16(l.high, 1); x != seq; x = add16(x, 1)) { // a hole: kept for its packets
            const std::uint16_t out = add16(x, l.seq_offset);
            input(spatial, x) = input_slot::of(x, out, slot::reserved);
            reserve(out, spatial, x);
        }
        l.high = seq;
        const std::uint16_t out = add16(seq, l.seq_offset);
        input_slot& s = input(spatial, seq);
        std::uint16_t pid = 0;
        std::uint8_t svc = 0;
        const verdict v = media ? frame_decision(l, p, info, true, force, pid, svc) : verdict::temporal;
        if (v != verdict::forward) {
            s = input_slot::of(seq, out, slot::dropped);
            l.seq_offset = static_cast<std::uint16_t>(l.seq_offset - 1); // takes no number
            return drop(!media                     ? stats_.padding_dropped
                        : v == verdict::spatial ? stats_.spatial_dropped
                                                : stats_.temporal_dropped);
        }
        s = input_slot::of(seq, out, slot::forwarded);
        out_high_ = out;
        has_out_ = true;
        const layer_decision dec = forwarded(spatial, l, p, info, out, pid, svc);
        if (!has_ts_out_ || rtp::ts_newer(dec.timestamp, ts_out_high_)) ts_out_high_ = dec.timestamp;
        has_ts_out_ = true;
        last_forward_us_ = now_us;
        if (info.has_tl0picidx) {
            tl0_last_ = dec.tl0picidx;
            has_tl0_out_ = true;
        }
        return dec;
    }

    /// Whether the packet is forwarded: its frame (picture) by temporal layer, then the packet
    /// by spatial layer. `pid` gets the frame's output picture id, `svc` the highest SID
    /// allowed in it. Frames are told apart by picture id (else by timestamp); layer switches
    /// happen at the first packet of a new frame that arrives in order.
    verdict frame_decision(layer& l, const rtp::packet_view& p, const layer_info& info,
                           bool in_order, bool force, std::uint16_t& pid, std::uint8_t& svc) noexcept {
        const auto by_sid = [&](std::uint8_t allowed) noexcept {
            svc = allowed;
            return info.svc_layer <= allowed ? verdict::forward : verdict::spatial;
        };
        if (!info.has_picture_id) {
            if (in_order && (force || !l.has_ts || rtp::ts_newer(p.timestamp, l.high_ts))) {
                if (!force) update_temporal(info);
                l.has_ts = true;
                l.high_ts = p.timestamp;
            }
            return force || info.temporal <= temporal_ ? by_sid(svc_) : verdict::temporal;
        }
        const std::uint16_t modulus = info.short_picture_id ? 0x80 : 0x8000;
        const std::uint16_t in_pid = static_cast<std::uint16_t>(info.picture_id & (modulus - 1));
        if (!l.has_picture_id) { // first id of this stretch: goes on from the last output id
            l.has_picture_id = true;
            l.high_pid = pid_add(in_pid, -1);
            l.pid_offset = has_pid_out_ ? static_cast<std::uint16_t>((pid_out_high_ + 1u - in_pid) & pid_mask) : 0;
        }
        // Signed distance from the newest id, modulo the id's width.
        int dist = (in_pid - (l.high_pid & (modulus - 1))) & (modulus - 1);
        if (dist >= modulus / 2) dist -= modulus;
        if (dist > 0) { // a new frame
            if (dist > max_picture_id_jump) { // renumbered ids: no frames kept for the jump
                const std::uint16_t ext = pid_add(l.high_pid, dist);
                if (has_pid_out_) l.pid_offset = static_cast<std::uint16_t>((pid_out_high_ + 1u - ext) & pid_mask);
                l.high_pid = pid_add(ext, -1);
                dist = 1;
            }
            for (int k = 1; k < dist; ++k) { // frames missing so far keep their ids
                const std::uint16_t f = pid_add(l.high_pid, k);
                const std::uint16_t out = pid_add(f, l.pid_offset);
                frame(f) = frame_slot::of(f, out, temporal_, svc_, slot::reserved);
                pid_out_high_ = out;
                has_pid_out_ = true;
            }
            const std::uint16_t ext = pid_add(l.high_pid, dist);
            l.high_pid = ext;
            if (in_order && !force) update_temporal(info);
            const std::uint16_t out = pid_add(ext, l.pid_offset);
            frame_slot& fs = frame(ext);
            if (force || info.temporal <= temporal_) {
                fs = frame_slot::of(ext, out, temporal_, svc_, slot::forwarded);
                pid_out_high_ = out;
                has_pid_out_ = true;
                pid = out;
                return by_sid(svc_);
            }
            fs = frame_slot::of(ext, out, temporal_, svc_, slot::dropped);
            l.pid_offset = pid_add(l.pid_offset, -1); // takes no id
            return verdict::temporal;
        }
        if (dist <= -static_cast<int>(frame_window)) return verdict::unknown;
        const std::uint16_t ext = pid_add(l.high_pid, dist);
        frame_slot& fs = frame(ext);
        if (!fs.holds(ext)) return verdict::unknown;
        switch (fs.state()) {
        case slot::forwarded:
            pid = fs.out;
            return by_sid(fs.svc());
        case slot::dropped:
            return verdict::temporal;
        case slot::reserved: { // its first packet to arrive: allowed then and now
            const bool ok = info.temporal <= std::min(fs.allowed(), temporal_);
            const std::uint8_t allowed_svc = std::min(fs.svc(), svc_);
            fs = frame_slot::of(ext, fs.out, fs.allowed(), allowed_svc, ok ? slot::forwarded : slot::dropped);
            pid = fs.out;
            return ok ? by_sid(allowed_svc) : verdict::temporal;
        }
        default:
            return verdict::unknown;
        }
    }

    /// At the start of a new frame: moves the allowed temporal layer toward the target, and
    /// the allowed spatial layer (down at once, up at a key picture).
    void update_temporal(const layer_info& info) noexcept {
        const std::uint8_t svc_before = svc_;
        if (target_svc_ < svc_ || (info.keyframe && info.frame_start)) svc_ = target_svc_;
        if (svc_ != svc_before) ++stats_.svc_switches;
        const std::uint8_t before = temporal_;
        if (target_temporal_ < temporal_) {
            temporal_ = target_temporal_;
        } else if (target_temporal_ > temporal_) {
            if (info.temporal == 0) temporal_ = target_temporal_;
            else if (info.layer_sync && info.temporal > temporal_ && info.temporal <= target_temporal_)
                temporal_ = info.temporal;
        }
        if (temporal_ != before) ++stats_.temporal_switches;
    }

    layer_decision forwarded(std::uint8_t spatial, layer& l, const rtp::packet_view& p, const layer_info& info,
                             std::uint16_t out, std::uint16_t pid, std::uint8_t svc) noexcept {
        layer_decision d;
        d.action = layer_action::forward;
        // The last packet of the highest layer forwarded ends what the subscriber gets of the picture.
        d.marker = p.marker || (info.layer_end && info.svc_layer == svc);
        d.sequence = out;
        d.timestamp = p.timestamp + l.ts_offset;
        d.picture_id = info.has_picture_id ? pid : 0;
        if (info.has_tl0picidx) {
            if (!l.has_tl0) { // first index of this stretch: goes on from the last output index
                l.has_tl0 = true;
                l.tl0_offset = has_tl0_out_ ? static_cast<std::uint8_t>(tl0_last_ + 1 - info.tl0picidx) : 0;
            }
            d.tl0picidx = static_cast<std::uint8_t>(info.tl0picidx + l.tl0_offset);
        }
        outputs_[out % window] =
            output_slot::of(d.timestamp, out, p.sequence, d.picture_id, d.tl0picidx, spatial, slot::forwarded, d.marker);
        ++stats_.forwarded;
        return d;
    }

    layer_decision filled(std::uint8_t spatial, const layer& l, const rtp::packet_view& p, std::uint16_t out) noexcept {
        layer_decision d;
        d.action = layer_action::fill;
        d.sequence = out;
        d.timestamp = p.timestamp + l.ts_offset;
        outputs_[out % window] = output_slot::of(d.timestamp, out, p.sequence, 0, 0, spatial, slot::filled);
        ++stats_.filled;
        return d;
    }

    void reserve(std::uint16_t out, std::uint8_t spatial, std::uint16_t in) noexcept {
        outputs_[out % window] = output_slot::of(0, out, in, 0, 0, spatial, slot::reserved);
        out_high_ = out;
        has_out_ = true;
    }
    /// Output number `out` is recent and still waits for input number `in` of `spatial`.
    bool reserved_output(std::uint16_t out, std::uint8_t spatial, std::uint16_t in) const noexcept {
        if (!has_out_ || static_cast<std::uint16_t>(out_high_ - out) >= window) return false;
        const output_slot& o = outputs_[out % window];
        return o.holds(out) && o.state == slot::reserved && o.encoding() == spatial && o.in == in;
    }
    /// A late packet of an encoding not forwarded now (or from before its switch point)
    /// whose output number was kept: filled.
    std::optional<layer_decision> fill_reserved(std::uint8_t spatial, const rtp::packet_view& p) noexcept {
        const layer& l = layers_[spatial];
        if (!l.anchored) return std::nullopt;
        input_slot& s = input(spatial, p.sequence);
        if (!s.holds(p.sequence) || s.state() != slot::reserved || !reserved_output(s.out, spatial, p.sequence))
            return std::nullopt;
        s.set_state(slot::filled);
        return filled(spatial, l, p, s.out);
    }

    std::uint32_t ssrc_;
    std::uint8_t spatial_layers_;
    std::uint8_t temporal_layers_;
    std::uint8_t target_spatial_ = 0;
    std::uint8_t target_temporal_ = 0;
    std::uint8_t current_spatial_ = 0;
    std::uint8_t temporal_ = 0;
    std::uint8_t target_svc_ = 0;
    std::uint8_t svc_ = 0;
    bool started_ = false;
    // The output so far: newest sequence number given (forwarded or kept for a hole),
    // newest timestamp and the arrival of the last forwarded packet, newest picture id,
    // last TL0PICIDX.
    bool has_out_ = false;
    std::uint16_t out_high_ = 0;
    bool has_ts_out_ = false;
    std::uint32_t ts_out_high_ = 0;
    std::int64_t last_forward_us_ = 0;
    bool has_pid_out_ = false;
    std::uint16_t pid_out_high_ = 0;
    bool has_tl0_out_ = false;
    std::uint8_t tl0_last_ = 0;
    std::array<layer, max_spatial_layers> layers_{};
    std::vector<input_slot> inputs_;  // window per encoding, by input sequence number
    std::vector<frame_slot> frames_;  // frame_window of the forwarded encoding, by input picture id
    std::vector<output_slot> outputs_; // by output sequence number
    layer_selector_stats stats_;
};

/// Where a packet's payload descriptor holds the fields a layer_selector renumbers
/// (offsets from the start of the RTP payload).
struct descriptor_layout {
    bool has_picture_id = false;
    bool long_picture_id = false; ///< 15-bit; a 7-bit id is written modulo 128
    std::size_t picture_id_offset = 0;
    bool has_tl0picidx = false;
    std::size_t tl0picidx_offset = 0;
};

inline descriptor_layout layout_of(const rtp::vp8_descriptor& d) noexcept {
    return {d.has_picture_id, d.long_picture_id, d.picture_id_offset, d.has_tl0picidx, d.tl0picidx_offset};
}

/// VP9 (RFC 9628): the picture id follows the first byte; TL0PICIDX follows the layer
/// indices in non-flexible mode.
inline descriptor_layout layout_of(const rtp::vp9_descriptor& d) noexcept {
    descriptor_layout l;
    std::size_t pos = 1;
    if (d.has_picture_id) {
        l.has_picture_id = true;
        l.long_picture_id = d.long_picture_id;
        l.picture_id_offset = pos;
        pos += d.long_picture_id ? 2 : 1;
    }
    if (d.has_layer_indices && !d.flexible) {
        l.has_tl0picidx = true;
        l.tl0picidx_offset = pos + 1;
    }
    return l;
}

/// The layer_info of a VP8 packet of encoding `spatial`; `payload` is its RTP payload.
inline layer_info layer_info_of(std::uint8_t spatial, const rtp::vp8_descriptor& d, rtp::bytes_view payload) noexcept {
    layer_info i;
    i.spatial = spatial;
    i.temporal = d.has_tid ? d.tid : 0;
    i.layer_sync = d.has_tid && d.layer_sync;
    i.frame_start = d.starts_frame();
    i.keyframe = i.frame_start && payload.size() > d.size && (payload[d.size] & 0x01) == 0;
    i.has_picture_id = d.has_picture_id;
    i.short_picture_id = !d.long_picture_id;
    i.picture_id = d.picture_id;
    i.has_tl0picidx = d.has_tl0picidx;
    i.tl0picidx = d.tl0picidx;
    return i;
}

/// The layer_info of a VP9 packet of encoding `spatial`.
inline layer_info layer_info_of(std::uint8_t spatial, const rtp::vp9_descriptor& d) noexcept {
    layer_info i;
    i.spatial = spatial;
    i.temporal = d.has_layer_indices ? d.tid : 0;
    i.layer_sync = d.has_layer_indices && d.switching_up;
    i.frame_start = d.starts_frame();
    i.keyframe = i.frame_start && d.keyframe();
    i.has_picture_id = d.has_picture_id;
    i.short_picture_id = !d.long_picture_id;
    i.picture_id = d.picture_id;
    i.has_tl0picidx = d.has_layer_indices && !d.flexible;
    i.tl0picidx = d.tl0picidx;
    i.svc_layer = d.has_layer_indices ? d.sid : 0;
    i.layer_end = d.end;
    return i;
}

/// Writes the first bytes of packet `p` as forwarded under `d`: the RTP header (CSRCs and
/// extensions included) with `ssrc` and the decision's marker, sequence number and timestamp, then
/// the payload up to the end of the renumbered picture id / TL0PICIDX (where `layout` says
/// they are). Returns how many bytes of `p.whole` the prefix stands for: the datagram is the
/// prefix followed by p.whole.subspan(returned). Every byte keeps its position, so the
/// transport-wide sequence element is at rtp::transport_sequence_offset(p.whole) in the
/// prefix. Returns 0 when the prefix does not fit `out` or `layout` lies outside the payload.
inline std::size_t write_rewritten_prefix(const rtp::packet_view& p, const descriptor_layout& layout, std::uint32_t ssrc,
                                          const layer_decision& d, std::span<std::uint8_t> out) noexcept {
    const std::size_t header = p.header_size();
    std::size_t end = header;
    if (layout.has_picture_id) {
        const std::size_t n = layout.long_picture_id ? 2 : 1;
        if (layout.picture_id_offset > p.payload.size() || p.payload.size() - layout.picture_id_offset < n) return 0;
        end = std::max(end, header + layout.picture_id_offset + n);
    }
    if (layout.has_tl0picidx) {
        if (layout.tl0picidx_offset >= p.payload.size()) return 0;
        end = std::max(end, header + layout.tl0picidx_offset + 1);
    }
    if (header < rtp::fixed_header_size || end > p.whole.size() || end > out.size()) return 0;
    std::memcpy(out.data(), p.whole.data(), end);
    out[1] = static_cast<std::uint8_t>(d.marker ? (out[1] | 0x80) : (out[1] & 0x7f));
    rtp::store_be16(out.data() + 2, d.sequence);
    rtp::store_be32(out.data() + 4, d.timestamp);
    rtp::store_be32(out.data() + 8, ssrc);
    if (layout.has_picture_id) {
        std::uint8_t* q = out.data() + header + layout.picture_id_offset;
        if (layout.long_picture_id) {
            q[0] = static_cast<std::uint8_t>(0x80 | ((d.picture_id >> 8) & 0x7f));
            q[1] = static_cast<std::uint8_t>(d.picture_id);
        } else {
            q[0] = static_cast<std::uint8_t>(d.picture_id & 0x7f);
        }
    }
    if (layout.has_tl0picidx) out[header + layout.tl0picidx_offset] = d.tl0picidx;
    return end;
}

/// Writes the padding-only packet of a `fill` decision for packet `p`: p's header (CSRCs and
/// extensions kept, so the leg can stamp its transport-wide number) with `ssrc`, the
/// decision's sequence number and timestamp, the marker clear, no payload and
/// `padding_size` bytes of padding (at least 1). Returns its size, or 0 when it does not fit.
inline std::size_t write_fill_packet(const rtp::packet_view& p, std::uint32_t ssrc, const layer_decision& d,
                                     std::span<std::uint8_t> out, std::uint8_t padding_size = 4) noexcept {
    const std::size_t header = p.header_size();
    const std::uint8_t pad = std::max<std::uint8_t>(padding_size, 1);
    if (header < rtp::fixed_header_size || header > p.whole.size() || out.size() < header + pad) return 0;
    std::memcpy(out.data(), p.whole.data(), header);
    out[0] = static_cast<std::uint8_t>(out[0] | 0x20); // P
    out[1] = static_cast<std::uint8_t>(out[1] & 0x7f); // no marker
    rtp::store_be16(out.data() + 2, d.sequence);
    rtp::store_be32(out.data() + 4, d.timestamp);
    rtp::store_be32(out.data() + 8, ssrc);
    std::memset(out.data() + header, 0, pad - 1u);
    out[header + pad - 1u] = pad;
    return header + pad;
}

} // namespace onair::relay
