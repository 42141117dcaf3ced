// onair — FlexFEC (RFC 8627): XOR parity repair packets for one video stream.
//
// The sender's flexfec_encoder sees every outgoing media datagram of the protected SSRC and
// emits repair datagrams on the FEC SSRC when a group of media packets closes; the
// receiver's flexfec_decoder keeps a window of recent media packets and the repair packets
// still useful, and rebuilds a lost packet, byte for byte, as soon as it is the only one
// missing from a repair packet's set. Recovered packets count as received, so one recovery
// can complete another set (2-D row/column codes recover bursts a row code alone cannot).
//
// Neither class touches sockets or allocates per packet: storage is sized when the object is
// made (or when protection grows), FEC datagrams are handed to a callback from an owned
// buffer, recovered datagrams from the decoder's window.
//
// Protection schemes (fec_params::scheme):
// - flexible: m repair packets per group of k media packets, repair j protecting the
//   packets whose index in the group is j modulo m (any burst of up to m losses, and one
//   loss in each residue class, is recovered). Flexible-mask header (R=0 F=0).
// - row: one repair packet per L consecutive packets (1-D non-interleaved, F=1, D=0).
// - column: L repair packets per block of L x D packets, one per column (1-D interleaved:
//   a burst of up to L losses is recovered; F=1, D>1).
// - row_column: both (2-D); rows are sent with D=1 as RFC 8627 asks.
//
// protection_for_loss() maps a measured loss fraction to a flexible-mode protection level,
// more for key frames than for delta frames; see docs/protocol.md "FEC and redundancy".
#pragma once

#include "onair/core/error.hpp"
#include "onair/core/packet_buffer.hpp"
#include "onair/qos/detail/flexfec_format.hpp"
#include "onair/rtp/packet.hpp"
#include "onair/rtp/sequence.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <span>
#include <system_error>
#include <vector>

namespace onair::qos {

enum class fec_scheme : std::uint8_t { flexible, row, column, row_column };

/// One protection level. Limits (clamped by normalized()): flexible group 1..48 with
/// 0..group repair packets (0 = off); row L 1..255; column and 2-D L 1..64, D 2..64.
/// Keep a column block (L x D) within the receiver's window (flexfec_decoder::config).
struct fec_params {
    fec_scheme scheme = fec_scheme::flexible;
    std::uint8_t group_size = 10; ///< k (flexible) or L, the columns (fixed schemes)
    std::uint8_t fec_packets = 1; ///< m, repair packets per full group (flexible only)
    std::uint8_t rows = 4;        ///< D (column, row_column)
    /// A group still open when a frame ends is closed there once it spans this many frames;
    /// flexible groups also close at a frame end once they hold enough packets for one
    /// repair packet at the nominal rate (k/m). 0: groups close only when full.
    std::uint8_t max_frames = 3;

    bool enabled() const noexcept { return scheme != fec_scheme::flexible || fec_packets > 0; }
    fec_params normalized() const noexcept {
        fec_params p = *this;
        auto clamp = [](std::uint8_t v, std::uint8_t lo, std::uint8_t hi) { return std::clamp(v, lo, hi); };
        switch (p.scheme) {
        case fec_scheme::flexible:
            p.group_size = clamp(p.group_size, 1, 48);
            p.fec_packets = std::min(p.fec_packets, p.group_size);
            break;
        case fec_scheme::row: p.group_size = std::max<std::uint8_t>(p.group_size, 1); break;
        case fec_scheme::column:
        case fec_scheme::row_column:
            p.group_size = clamp(p.group_size, 1, 64);
            p.rows = clamp(p.rows, 2, 64);
            break;
        }
        return p;
    }
    friend bool operator==(const fec_params&, const fec_params&) = default;
};

/// Protection for delta frames and for key frames (whose loss stalls the stream until the
/// next key frame, so they get more).
struct fec_protection {
    fec_params delta;
    fec_params key;
    friend bool operator==(const fec_protection&, const fec_protection&) = default;
};

/// One row of the loss -> protection table: below `max_loss`, m repair packets per 10 media.
struct fec_table_row {
    double max_loss;
    std::uint8_t delta_per_10;
    std::uint8_t key_per_10;
};

/// Flexible mode, groups of 10. Under 1 % loss NACK repairs delta frames alone; above, the
/// overhead grows about 3-4 times faster than the loss until it is capped at 50 %, where
/// an XOR code stops paying for itself (RTX and key frame requests take over).
inline constexpr std::array<fec_table_row, 6> fec_loss_table{{
    {0.01, 0, 1},
    {0.03, 1, 2},
    {0.06, 2, 3},
    {0.10, 3, 4},
    {0.20, 4, 5},
    {1.01, 5, 5},
}};

/// The protection for a measured loss fraction (0..1, e.g. RTCP fraction lost / 256,
/// smoothed by the caller).
inline fec_protection protection_for_loss(double loss_fraction) noexcept {
    if (!(loss_fraction >= 0)) loss_fraction = 0; // NaN too
    const fec_table_row* row = &fec_loss_table.back();
    for (const auto& r : fec_loss_table)
        if (loss_fraction < r.max_loss) {
            row = &r;
            break;
        }
    fec_protection p;
    p.delta.group_size = p.key.group_size = 10;
    p.delta.fec_packets = row->delta_per_10;
    p.key.fec_packets = row->key_per_10;
    p.key.max_frames = 1; // a key frame's repair packets go out with it
    return p;
}

/// Smooths the loss a receiver reports (RTCP fraction lost, before recovery) for choosing
/// protection: it follows a rise within one or two reports and a fall over several, so one
/// quiet second does not strip protection from a lossy path.
class loss_estimate {
public:
    /// From this loss on, a repair (a NACK, a retransmission) is sent twice, and from
    /// triplicate_repairs_from on three times: one round trip then fails with about p^2 (p^3)
    /// instead of p, and a round trip is what a repair costs.
    static constexpr double duplicate_repairs_from = 0.10;
    static constexpr double triplicate_repairs_from = 0.30;
    /// How many copies of each repair packet to send on a path with this loss.
    int repair_copies() const noexcept {
        if (!seen_) return 1;
        return value_ >= triplicate_repairs_from ? 3 : value_ >= duplicate_repairs_from ? 2 : 1;
    }

    /// One report's fraction lost (0..255, 1/256 units). Returns the new estimate (0..1).
    double on_report(std::uint8_t fraction_lost) noexcept {
        const double sample = fraction_lost / 256.0;
        if (!seen_) value_ = sample;
        else value_ += (sample > value_ ? 0.6 : 0.2) * (sample - value_);
        seen_ = true;
        return value_;
    }
    double value() const noexcept { return value_; }
    bool seen() const noexcept { return seen_; }
    void reset() noexcept { *this = {}; }

private:
    double value_ = 0;
    bool seen_ = false;
};

struct flexfec_encoder_stats {
    std::uint64_t media_packets = 0; ///< accepted (protected unless protection is off); late ones are not
    std::uint64_t fec_packets = 0;
    std::uint64_t fec_bytes = 0;
    std::uint64_t skipped = 0; ///< not RTP, another SSRC, or longer than detail::fec_max_media
    std::uint64_t late = 0;    ///< older than packets already protected, and not in the open group: left out
};

/// Builds FlexFEC repair packets for one media SSRC.
///
/// Call add() with every media datagram of the protected stream, in sending order, after
/// handing it to the pacer: repair packets it emits protect packets already sent. Sending
/// order may differ from sequence order (a relay forwards in arrival order): in flexible
/// mode a packet still joins the open group if its place there is free; otherwise a packet
/// older than one already protected is left out (counted as late), never closing the
/// group, and is left to retransmission. Nothing
/// waits on a timer: a group closes when full, at a frame end (see fec_params::max_frames),
/// on a key/delta change, or at flush().
///
/// Memory: one 1.5 KB parity accumulator per repair packet of a group (per column, plus
/// one row, in fixed layouts), allocated when protection first needs it.
///
/// Thread safety: none; one encoder belongs to one sending thread.
class flexfec_encoder {
public:
    struct config {
        std::uint32_t media_ssrc = 0;
        std::uint32_t fec_ssrc = 0;
        std::uint8_t payload_type = flexfec_payload_type;
        std::uint16_t first_sequence = 0; ///< of the FEC stream (RFC 3550: random)
        /// Repair packets carry a zero transport-wide sequence number (extension id 1) at
        /// byte transport_sequence_offset, for the pacer to fill in place.
        bool transport_sequence = false;
        fec_protection protection = protection_for_loss(0.02);
    };
    static constexpr std::size_t transport_sequence_offset = detail::fec_transport_sequence_offset;

    explicit flexfec_encoder(const config& c) : cfg_(c), seq_(c.first_sequence) { set_protection(c.protection); }

    /// New protection, used from the next group on.
    void set_protection(const fec_protection& p) {
        cfg_.protection = {p.delta.normalized(), p.key.normalized()};
        reserve(cfg_.protection.delta);
        reserve(cfg_.protection.key);
    }
    /// Shorthand for set_protection(protection_for_loss(loss_fraction)).
    void set_loss(double loss_fraction) { set_protection(protection_for_loss(loss_fraction)); }
    const fec_protection& protection() const noexcept { return cfg_.protection; }
    const flexfec_encoder_stats& stats() const noexcept { return stats_; }
    /// Bytes this encoder takes: the object and its parity accumulators.
    std::size_t memory_bytes() const noexcept {
        return sizeof(*this) + acc_.capacity() * sizeof(acc_[0]) + acc_.size() * sizeof(detail::fec_accumulator);
    }

    /// Protects one media datagram; calls emit(rtp::bytes_view) with each repair datagram
    /// that becomes ready (the view is valid during the call). Datagrams of another SSRC,
    /// not RTP, or too long to protect are skipped with an error.
    template <class Emit>
    std::error_code add(rtp::bytes_view media, bool keyframe, Emit&& emit) {
        rtp::packet_view p;
        if (const auto ec = rtp::parse(media, p)) {
            ++stats_.skipped;
            return ec;
        }
        if (p.ssrc != cfg_.media_ssrc) {
            ++stats_.skipped;
            return errc::unknown_stream;
        }
        if (media.size() > detail::fec_max_media) {
            ++stats_.skipped;
            close(emit); // a hole in a fixed-layout group would be "recovered" as garbage
            return errc::oversized;
        }
        const auto behind = static_cast<std::int16_t>(p.sequence - edge_);
        if (any_ && behind < 0 && behind >= -late_span && !(open_ && keyframe == key_ && fits(p.sequence))) {
            ++stats_.late;
            return {};
        }
        // The edge moves with every packet, protected or not (protection may be off for
        // delta frames), and a jump far back is a restart of the numbering, not lateness.
        if (!any_ || behind >= 0 || behind < -late_span) edge_ = static_cast<std::uint16_t>(p.sequence + 1);
        any_ = true;
        ++stats_.media_packets;
        if (open_ && (keyframe != key_ || !fits(p.sequence))) close(emit);
        if (!open_) start(p.sequence, keyframe);
        if (!cur_.enabled()) {
            open_ = false;
            return {};
        }
        const auto index = static_cast<std::size_t>(static_cast<std::uint16_t>(p.sequence - base_));
        place(media, index, emit);
        if (p.marker && open_ && cur_.max_frames) {
            ++frames_;
            if (frames_ >= cur_.max_frames ||
                (cur_.scheme == fec_scheme::flexible && packets_ * cur_.fec_packets >= cur_.group_size))
                close(emit);
        }
        return {};
    }
    template <class Emit>
    std::error_code add(rtp::bytes_view media, Emit&& emit) {
        return add(media, false, emit);
    }

    /// Closes the open group now (end of stream, or a caller's latency timer).
    template <class Emit>
    void flush(Emit&& emit) {
        close(emit);
    }

private:
    std::size_t accumulators_for(const fec_params& p) const noexcept {
        switch (p.scheme) {
        case fec_scheme::flexible: return p.fec_packets;
        case fec_scheme::row: return 1;
        case fec_scheme::column: return p.group_size;
        case fec_scheme::row_column: return std::size_t{p.group_size} + 1;
        }
        return 0;
    }
    void reserve(const fec_params& p) {
        while (acc_.size() < accumulators_for(p)) acc_.emplace_back(std::make_unique<detail::fec_accumulator>());
    }
    std::size_t block_size() const noexcept {
        switch (cur_.scheme) {
        case fec_scheme::flexible: return cur_.group_size;
        case fec_scheme::row: return cur_.group_size;
        default: return std::size_t{cur_.group_size} * cur_.rows;
        }
    }
    /// Whether `seq` belongs to the open group: flexible groups take any packet of the
    /// group's span not placed yet; fixed layouts need the next sequence number.
    bool fits(std::uint16_t seq) const noexcept {
        const auto index = static_cast<std::uint16_t>(seq - base_);
        if (cur_.scheme == fec_scheme::flexible) return index < block_size() && !((placed_ >> index) & 1u);
        return index == next_;
    }
    void start(std::uint16_t seq, bool keyframe) {
        cur_ = keyframe ? cfg_.protection.key : cfg_.protection.delta;
        key_ = keyframe;
        base_ = seq;
        next_ = 0;
        placed_ = 0;
        packets_ = 0;
        frames_ = 0;
        open_ = true;
        for (std::size_t i = 0; i < accumulators_for(cur_); ++i) {
            acc_[i]->clear();
            acc_[i]->cover.base = seq;
        }
        if (cur_.scheme == fec_scheme::column || cur_.scheme == fec_scheme::row_column)
            for (std::size_t c = 0; c < cur_.group_size; ++c) {
                acc_[c]->cover.base = static_cast<std::uint16_t>(seq + c);
                acc_[c]->cover.stride = cur_.group_size;
            }
    }
    template <class Emit>
    void place(rtp::bytes_view media, std::size_t index, Emit& emit) {
        ++packets_;
        next_ = std::max(next_, static_cast<std::uint16_t>(index + 1));
        if (index < 64) placed_ |= std::uint64_t{1} << index;
        switch (cur_.scheme) {
        case fec_scheme::flexible: acc_[index % cur_.fec_packets]->add(media, index); break;
        case fec_scheme::row: acc_[0]->add(media, index); break;
        case fec_scheme::column:
        case fec_scheme::row_column: {
            const std::size_t l = cur_.group_size;
            acc_[index % l]->add(media, index / l);
            if (cur_.scheme == fec_scheme::row_column) {
                auto& row = *acc_[l];
                if (index % l == 0) {
                    row.clear();
                    row.cover.base = static_cast<std::uint16_t>(base_ + index);
                }
                row.add(media, index % l);
                if (index % l == l - 1) {
                    write(row, detail::fec_layout::row, 1, emit);
                    row.clear();
                }
            }
            break;
        }
        }
        if (packets_ == block_size() || (cur_.scheme != fec_scheme::flexible && next_ == block_size())) close(emit);
    }
    template <class Emit>
    void close(Emit& emit) {
        if (!open_) return;
        open_ = false;
        if (packets_ == 0) return;
        switch (cur_.scheme) {
        case fec_scheme::flexible: {
            // A short group gets repair packets in proportion (at least one), each folding
            // several residue classes together.
            const std::size_t m = cur_.fec_packets;
            const std::size_t want = std::clamp<std::size_t>((packets_ * m + cur_.group_size - 1) / cur_.group_size, 1, m);
            for (std::size_t j = want; j < m; ++j) acc_[j % want]->merge(*acc_[j]);
            for (std::size_t j = 0; j < want; ++j)
                if (!acc_[j]->empty()) write(*acc_[j], detail::fec_layout::flexible, 0, emit);
            break;
        }
        case fec_scheme::row: write(*acc_[0], detail::fec_layout::row, 0, emit); break;
        case fec_scheme::column:
        case fec_scheme::row_column: {
            const std::size_t l = cur_.group_size;
            if (cur_.scheme == fec_scheme::row_column && !acc_[l]->empty()) write(*acc_[l], detail::fec_layout::row, 1, emit);
            for (std::size_t c = 0; c < l; ++c) {
                auto& col = *acc_[c];
                if (col.cover.count >= 2) write(col, detail::fec_layout::column, 0, emit);
                else if (col.cover.count == 1) { // a one-packet column is a one-packet row
                    col.cover.stride = 1;
                    write(col, detail::fec_layout::row, 0, emit);
                }
            }
            break;
        }
        }
    }
    template <class Emit>
    void write(const detail::fec_accumulator& acc, detail::fec_layout layout, std::uint8_t row_d, Emit& emit) {
        detail::fec_rtp_fields h;
        h.payload_type = cfg_.payload_type;
        h.sequence = seq_;
        h.timestamp = acc.last_timestamp;
        h.ssrc = cfg_.fec_ssrc;
        h.protected_ssrc = cfg_.media_ssrc;
        h.transport_sequence = cfg_.transport_sequence;
        const std::size_t n = detail::write_fec_packet(h, acc, layout, row_d, out_);
        if (n == 0) return; // cannot happen with normalized params and checked media sizes
        ++seq_;
        ++stats_.fec_packets;
        stats_.fec_bytes += n;
        emit(rtp::bytes_view{out_.data(), n});
    }

    config cfg_;
    std::uint16_t seq_;
    std::vector<std::unique_ptr<detail::fec_accumulator>> acc_;
    std::array<std::uint8_t, max_datagram_size> out_{};
    fec_params cur_;
    bool open_ = false;
    bool key_ = false;
    std::uint16_t base_ = 0;
    std::uint16_t next_ = 0; ///< index after the newest packet placed
    std::uint64_t placed_ = 0; ///< flexible groups (k <= 48): bit i set when index i is placed
    std::uint16_t edge_ = 0;   ///< sequence number after the newest packet seen
    static constexpr std::int16_t late_span = 1024; ///< further behind than this: a restart
    bool any_ = false;
    std::size_t packets_ = 0;
    std::size_t frames_ = 0;
    flexfec_encoder_stats stats_;
};

struct flexfec_decoder_stats {
    std::uint64_t media_packets = 0;  ///< stored in the window
    std::uint64_t fec_packets = 0;    ///< repair packets accepted
    std::uint64_t recovered = 0;
    std::uint64_t duplicates = 0;     ///< media packets already held (received or recovered)
    std::uint64_t media_too_old = 0;  ///< behind the window
    std::uint64_t media_malformed = 0;
    std::uint64_t foreign = 0;        ///< another SSRC, or a repair packet for another stream
    std::uint64_t fec_unused = 0;     ///< every protected packet already there
    std::uint64_t fec_too_old = 0;    ///< protects packets already behind the window
    std::uint64_t fec_evicted = 0;    ///< pushed out by newer repair packets
    std::uint64_t unrecoverable = 0;  ///< repair packets given up with 2+ of their packets missing
    /// Malformed repair packets, all dropped; `malformed` is the sum of the five below.
    std::uint64_t malformed = 0;
    std::uint64_t truncated = 0;       ///< not RTP, or FEC header longer than the payload
    std::uint64_t bad_ssrc_count = 0;  ///< CC != 1
    std::uint64_t bad_mask = 0;        ///< empty mask, L = 0, or protected span wider than the window
    std::uint64_t length_overflow = 0; ///< recovered length beyond the repair payload or datagram
    std::uint64_t bad_recovery = 0;    ///< recovered bytes are not a valid RTP packet
    std::uint64_t unsupported = 0;     ///< R = 1 (retransmission variant), R = F = 1
};

/// Recovers lost media packets of one SSRC from FlexFEC repair packets.
///
/// Feed every received media datagram to add_media() and every repair datagram to
/// add_fec() (or both to add(), which sorts them by SSRC). Each packet recovered is handed
/// to the callback, byte-identical to what the sender sent, and held as if received; the
/// callback must not call back into the decoder. State is bounded: `window` media packets
/// (by sequence number) and `max_fec` repair packets; repair packets leave when used, when
/// their packets fall behind the window (counted as unrecoverable if packets are still
/// missing) or when newer ones push them out.
///
/// Thread safety: none; one decoder belongs to one receiving thread.
class flexfec_decoder {
public:
    struct config {
        std::uint32_t media_ssrc = 0;
        std::uint32_t fec_ssrc = 0;
        std::size_t window = 256; ///< media packets kept, rounded up to a power of two (>= 16)
        std::size_t max_fec = 32; ///< repair packets kept
        // Memory: about (window + max_fec) x 1.5 KB, allocated once (430 KB by default).
    };

    explicit flexfec_decoder(const config& c)
        : cfg_(c), media_(std::bit_ceil(std::max<std::size_t>(c.window, 16))), fec_(std::max<std::size_t>(c.max_fec, 1)) {
        work_.reserve(fec_.size() + 1);
    }

    const flexfec_decoder_stats& stats() const noexcept { return stats_; }
    std::size_t window() const noexcept { return media_.size(); }
    /// Bytes this decoder takes: the object, its media window and its repair packets.
    std::size_t memory_bytes() const noexcept {
        return sizeof(*this) + media_.capacity() * sizeof(media_slot) + fec_.capacity() * sizeof(fec_slot) +
               work_.capacity() * sizeof(std::int64_t);
    }
    /// Repair packets still waiting for enough media to be useful.
    std::size_t pending_fec() const noexcept {
        return static_cast<std::size_t>(std::count_if(fec_.begin(), fec_.end(), [](const auto& f) { return f.active; }));
    }
    /// Whether media packet `seq` is held (received or recovered).
    bool has(std::uint16_t seq) const noexcept { return has_media_ && present(unwrap_.peek(seq)); }

    template <class Recovered>
    void add(rtp::bytes_view d, Recovered&& out) {
        if (d.size() >= rtp::fixed_header_size && rtp::load_be32(d.data() + 8) == cfg_.fec_ssrc) add_fec(d, out);
        else add_media(d, out);
    }

    template <class Recovered>
    void add_media(rtp::bytes_view d, Recovered&& out) {
        rtp::packet_view p;
        if (rtp::parse(d, p) || d.size() > max_datagram_size) {
            ++stats_.media_malformed;
            return;
        }
        if (p.ssrc != cfg_.media_ssrc) {
            ++stats_.foreign;
            return;
        }
        const std::int64_t seq = unwrap_.unwrap(p.sequence);
        if (has_media_ && seq <= highest_ - static_cast<std::int64_t>(media_.size())) {
            ++stats_.media_too_old;
            return;
        }
        if (has_media_ && present(seq)) {
            ++stats_.duplicates;
            return;
        }
        store(seq, d);
        ++stats_.media_packets;
        work_.clear();
        work_.push_back(seq);
        run(out);
    }

    template <class Recovered>
    void add_fec(rtp::bytes_view d, Recovered&& out) {
        rtp::packet_view p;
        if (rtp::parse(d, p)) return reject(stats_.truncated);
        if (p.ssrc != cfg_.fec_ssrc) {
            ++stats_.foreign;
            return;
        }
        detail::fec_packet_view f;
        switch (detail::parse_fec_packet(p, f)) {
        case detail::fec_parse_status::ok: break;
        case detail::fec_parse_status::truncated: return reject(stats_.truncated);
        case detail::fec_parse_status::bad_ssrc_count: return reject(stats_.bad_ssrc_count);
        case detail::fec_parse_status::bad_mask: return reject(stats_.bad_mask);
        case detail::fec_parse_status::unsupported: ++stats_.unsupported; return;
        }
        if (f.protected_ssrc != cfg_.media_ssrc) {
            ++stats_.foreign;
            return;
        }
        if (f.cover.span() > static_cast<std::int64_t>(media_.size())) return reject(stats_.bad_mask);
        if (f.repair.size() > max_datagram_size) return reject(stats_.length_overflow);
        f.cover.base = unwrap_.peek(static_cast<std::uint16_t>(f.cover.base));
        if (has_media_ && (f.cover.base < low() || f.cover.base > highest_ + static_cast<std::int64_t>(media_.size()))) {
            ++stats_.fec_too_old;
            return;
        }
        ++stats_.fec_packets;
        fec_slot& s = free_slot();
        s.active = true;
        s.cover = f.cover;
        s.recovery0 = f.recovery0;
        s.recovery1 = f.recovery1;
        s.length_recovery = f.length_recovery;
        s.timestamp_recovery = f.timestamp_recovery;
        s.repair_size = f.repair.size();
        if (!f.repair.empty()) std::memcpy(s.repair.data(), f.repair.data(), f.repair.size());
        s.order = ++order_;
        work_.clear();
        evaluate(s, out);
        run(out);
    }

    /// Gives up every repair packet still waiting (counted as unrecoverable), e.g. at the
    /// end of a stream.
    void discard_pending() noexcept {
        for (auto& f : fec_)
            if (f.active) drop(f, true);
    }

private:
    struct media_slot {
        std::int64_t seq = std::numeric_limits<std::int64_t>::min();
        std::size_t size = 0;
        std::array<std::uint8_t, max_datagram_size> bytes;
    };
    struct fec_slot {
        bool active = false;
        detail::fec_coverage cover;
        std::uint8_t recovery0 = 0, recovery1 = 0;
        std::uint16_t length_recovery = 0;
        std::uint32_t timestamp_recovery = 0;
        std::size_t repair_size = 0;
        std::uint64_t order = 0;
        std::array<std::uint8_t, max_datagram_size> repair;
    };

    std::int64_t low() const noexcept { return highest_ - static_cast<std::int64_t>(media_.size()) + 1; }
    media_slot& slot(std::int64_t seq) noexcept { return media_[static_cast<std::size_t>(seq) & (media_.size() - 1)]; }
    const media_slot& slot(std::int64_t seq) const noexcept {
        return media_[static_cast<std::size_t>(seq) & (media_.size() - 1)];
    }
    bool present(std::int64_t seq) const noexcept { return slot(seq).seq == seq; }

    void reject(std::uint64_t& counter) noexcept {
        ++counter;
        ++stats_.malformed;
    }
    void drop(fec_slot& f, bool give_up) noexcept {
        f.active = false;
        if (give_up) ++stats_.unrecoverable;
    }
    fec_slot& free_slot() noexcept {
        fec_slot* oldest = &fec_[0];
        for (auto& f : fec_) {
            if (!f.active) return f;
            if (f.order < oldest->order) oldest = &f;
        }
        ++stats_.fec_evicted;
        drop(*oldest, false);
        return *oldest;
    }

    void store(std::int64_t seq, rtp::bytes_view d) noexcept {
        media_slot& m = slot(seq);
        m.seq = seq;
        m.size = d.size();
        std::memcpy(m.bytes.data(), d.data(), d.size());
        advance(seq);
    }
    /// Moves the window's top to `seq`; repair packets whose packets fall behind it go.
    void advance(std::int64_t seq) noexcept {
        if (has_media_ && seq <= highest_) return;
        highest_ = seq;
        has_media_ = true;
        for (auto& f : fec_)
            if (f.active && f.cover.base < low()) drop(f, true);
    }

    /// Recovers from `f` when exactly one of its packets is missing; queues what it recovers.
    template <class Recovered>
    void evaluate(fec_slot& f, Recovered& out) {
        std::size_t missing = 0;
        std::int64_t lost = 0;
        f.cover.for_each([&](std::int64_t seq) {
            if (has_media_ && present(seq)) return true;
            lost = seq;
            return ++missing < 2;
        });
        if (missing == 0) {
            ++stats_.fec_unused;
            drop(f, false);
        } else if (missing == 1) {
            drop(f, false);
            if (recover(f, lost)) {
                ++stats_.recovered;
                out(rtp::bytes_view{slot(lost).bytes.data(), slot(lost).size});
                work_.push_back(lost);
            }
        }
    }
    /// Every repair packet covering a packet that just arrived may now be complete.
    template <class Recovered>
    void run(Recovered& out) {
        for (std::size_t w = 0; w < work_.size(); ++w) {
            const std::int64_t seq = work_[w];
            for (auto& f : fec_)
                if (f.active && f.cover.covers(seq)) evaluate(f, out);
        }
    }

    /// RFC 8627 §6.3: XOR the repair packet with every other protected packet; the header
    /// comes from the first 8 bytes and the length, the SSRC from the CSRC, the sequence
    /// number from the position.
    bool recover(const fec_slot& f, std::int64_t lost) noexcept {
        std::uint8_t b0 = f.recovery0, b1 = f.recovery1;
        std::uint16_t length = f.length_recovery;
        std::uint32_t ts = f.timestamp_recovery;
        f.cover.for_each([&](std::int64_t seq) {
            if (seq == lost) return true;
            const media_slot& m = slot(seq);
            b0 ^= m.bytes[0];
            b1 ^= m.bytes[1];
            length ^= static_cast<std::uint16_t>(m.size - rtp::fixed_header_size);
            ts ^= rtp::load_be32(m.bytes.data() + 4);
            return true;
        });
        if (length > f.repair_size || length > max_datagram_size - rtp::fixed_header_size) {
            reject(stats_.length_overflow);
            return false;
        }
        std::uint8_t* p = scratch_.data(); // the slot may still hold a packet other sets need
        p[0] = static_cast<std::uint8_t>(0x80 | (b0 & 0x3f));
        p[1] = b1;
        rtp::store_be16(p + 2, static_cast<std::uint16_t>(lost));
        rtp::store_be32(p + 4, ts);
        rtp::store_be32(p + 8, cfg_.media_ssrc);
        std::memcpy(p + rtp::fixed_header_size, f.repair.data(), length);
        f.cover.for_each([&](std::int64_t seq) {
            if (seq == lost) return true;
            const media_slot& m = slot(seq);
            const std::size_t n = std::min<std::size_t>(m.size - rtp::fixed_header_size, length);
            detail::xor_bytes(p + rtp::fixed_header_size, m.bytes.data() + rtp::fixed_header_size, n);
            return true;
        });
        const std::size_t size = rtp::fixed_header_size + length;
        rtp::packet_view check;
        if (rtp::parse(rtp::bytes_view{p, size}, check)) {
            reject(stats_.bad_recovery);
            return false;
        }
        media_slot& r = slot(lost);
        r.seq = lost;
        r.size = size;
        std::memcpy(r.bytes.data(), p, size);
        advance(lost);
        return true;
    }

    config cfg_;
    std::vector<media_slot> media_;
    std::vector<fec_slot> fec_;
    std::vector<std::int64_t> work_;
    std::array<std::uint8_t, max_datagram_size> scratch_;
    rtp::seq_unwrapper unwrap_;
    std::int64_t highest_ = 0;
    bool has_media_ = false;
    std::uint64_t order_ = 0;
    flexfec_decoder_stats stats_;
};

} // namespace onair::qos
