// onair — audio jitter buffer: decides, every 20 ms, what the Opus decoder plays.
//
// Packets go in as they arrive (insert), in any order; every frame period the playout side
// asks what to produce (pull) and gets one of: decode this frame, rebuild the lost frame
// from the next packet's in-band FEC, conceal (PLC), comfort noise (a pause in
// transmission), or nothing yet (buffering). Feed it straight from RTP packets: the frame
// assembler drops reordered packets, which this buffer would put back in order.
//
// Delay model (after WebRTC's NetEq):
// - Each packet's relative delay is how much later it arrived than the earliest-arriving
//   packet of the last 2 s would have predicted: (arrival - media time) - min over the
//   window of (arrival - media time). It goes into a histogram of 10 ms buckets with
//   forgetting factor 0.997 per packet (time constant ~6.7 s at 50 packets/s).
// - target = clamp(max(95th percentile of the histogram, peak), min_delay, max_delay)
//   + extra delay (set by lip sync). A packet whose relative delay exceeds the target sets
//   the peak to that delay at once; the peak holds for 2 s after the last such packet. So
//   the target grows immediately with lateness and shrinks only as the histogram forgets.
// - A frame plays at media time + reference + target when playout (re)starts; afterwards
//   one frame per pull, and `current delay` is how far behind the reference it plays.
//
// Time stretching works on whole 20 ms frames (no PCM time-scale modification):
// - accelerate: when the current delay stays above target + one frame for stretch_hold
//   (400 ms), one frame is skipped (its successor is decoded instead), at most one per
//   stretch_hold: the delay shrinks by at most 50 ms/s. Lost frames are free to skip: when
//   the frame due is missing while playout is a frame or more behind the target, its time
//   is left out (up to the excess) instead of concealed.
// - expand: when it stays below target - one frame for stretch_hold, one PLC frame is
//   inserted. An underrun (nothing to play) also plays PLC without advancing, so a late
//   packet is decoded when it comes and the delay grows by the wait.
// - silence: a pause in transmission (DTX: the next packet is the next sequence number but
//   a later timestamp) is played as comfort noise and the new talk spurt starts exactly at
//   its target playout time, shortening or lengthening the pause. PLC frames played in a
//   gap that turns out to be such a pause are counted as comfort noise, not concealment.
// - a frame due to play but missing is waited for (PLC, delay grows) while it is less late
//   than the target; then it is lost: decode_fec when its successor is buffered (Opus LBRR),
//   conceal otherwise. PLC frames played while waiting count as covering the lost frames,
//   so one lost frame is concealed once.
// - bounds: capacity frames at most (the oldest is dropped when full); when the current
//   delay exceeds max_delay + one frame, playout skips ahead to the target; after
//   idle_reset of underrun the buffer goes back to buffering, and the PLC frames played in
//   that underrun count as comfort noise (the sender paused or stopped: an outage that
//   long is not packet loss).
//
// One frame is frame_samples RTP ticks (20 ms for onair's Opus); every pull produces one.
#pragma once

#include "onair/core/media_frame.hpp"
#include "onair/core/time.hpp"
#include "onair/qos/detail/playout_delay.hpp"
#include "onair/rtp/sequence.hpp"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace onair::qos {

struct audio_jitter_config {
    std::uint32_t clock_rate = 48'000;
    std::uint32_t frame_samples = 960;            ///< RTP ticks per packet and per pull
    std::size_t capacity = 50;                    ///< frames held at most
    std::size_t reserved_bytes = 512;             ///< payload bytes reserved per slot up front
    std::chrono::microseconds min_delay{0};
    std::chrono::microseconds max_delay{500'000};
    double quantile = 0.95;
    double forget_factor = 0.997;                 ///< per packet
    std::chrono::microseconds bucket{10'000};     ///< histogram resolution
    std::chrono::microseconds reference_window{2'000'000};
    std::chrono::microseconds peak_hold{2'000'000};
    std::chrono::microseconds stretch_hold{400'000};
    std::chrono::microseconds idle_reset{500'000}; ///< underrun this long: back to buffering
    std::chrono::microseconds restart_span{10'000'000}; ///< a timestamp jump this large restarts the stream
};

enum class audio_action : std::uint8_t {
    buffering,     ///< nothing to play yet (start-up, or after a long pause): play silence
    decode,        ///< decoder.decode(frame)
    decode_fec,    ///< the frame due is lost; `frame` is its successor: decoder.decode_fec(frame)
                   ///< (the successor itself comes with the next pull)
    conceal,       ///< lost or late: decoder.conceal()
    comfort_noise, ///< a pause in transmission: decoder.conceal() (fades to comfort noise)
};

/// What one pull produces.
struct audio_pull {
    audio_action action = audio_action::buffering;
    std::uint32_t rtp_timestamp = 0; ///< RTP time of the 20 ms played (all but buffering/comfort_noise)
};

struct audio_jitter_stats {
    std::chrono::microseconds target_delay{0};  ///< as of the last pull, extra delay included
    std::chrono::microseconds current_delay{0}; ///< last decoded frame, behind the earliest-arrival reference
    std::chrono::microseconds playout_delay{0}; ///< last decoded frame, arrival to playout
    std::size_t buffered = 0;                   ///< frames waiting
    std::uint64_t inserted = 0;
    std::uint64_t decoded = 0;                  ///< decode actions (accelerated ones included)
    std::uint64_t fec = 0;                      ///< decode_fec actions
    std::uint64_t concealed = 0;                ///< conceal actions: lost, late or expanded
    std::uint64_t expanded = 0;                 ///< PLC frames that added delay (underrun or stretch)
    std::uint64_t accelerated = 0;              ///< frames skipped to reduce delay
    std::uint64_t comfort_noise = 0;            ///< frames played in transmission pauses
    std::uint64_t late = 0;                     ///< arrived after their playout time
    std::uint64_t duplicates = 0;
    std::uint64_t overflow = 0;                 ///< dropped because the buffer was full
    std::uint64_t flushed = 0;                  ///< skipped to bring the delay back under max_delay
    std::uint64_t restarts = 0;                 ///< playout restarted after a pause or a timestamp jump
};

/// Thread safety: none; one buffer per audio stream, used from one thread (or under a lock).
class audio_jitter_buffer {
public:
    using clock = std::chrono::steady_clock;
    using time_point = clock::time_point;

    enum class insert_result : std::uint8_t { inserted, duplicate, late, overflow };

    audio_jitter_buffer() : audio_jitter_buffer(audio_jitter_config{}) {}
    explicit audio_jitter_buffer(const audio_jitter_config& c)
        : cfg_(sanitize(c)), frame_us_(detail::playout_media_us(cfg_.frame_samples, cfg_.clock_rate)),
          ref_(cfg_.reference_window.count()),
          hist_(cfg_.bucket.count(), static_cast<std::size_t>(cfg_.max_delay / cfg_.bucket) + 1, cfg_.forget_factor),
          slots_(cfg_.capacity) {
        order_.reserve(cfg_.capacity);
        free_.reserve(cfg_.capacity);
        for (std::size_t i = cfg_.capacity; i-- > 0;) {
            slots_[i].frame.kind = media_kind::audio;
            slots_[i].frame.keyframe = true;
            slots_[i].frame.data.reserve(cfg_.reserved_bytes);
            free_.push_back(static_cast<std::uint32_t>(i));
        }
    }

    /// Adds one Opus packet. Copies the payload into storage kept between packets.
    /// `repaired`: it came by retransmission, a round trip after its loss. Its delay still
    /// goes into the histogram (it is when that frame became available), but it does not
    /// raise the peak at once: one repair is no reason to play everything a round trip late.
    insert_result insert(std::span<const std::uint8_t> payload, std::uint32_t rtp_timestamp, std::uint16_t sequence,
                         time_point arrival, timestamp capture_time = {}, bool repaired = false) {
        const std::int64_t now = us(arrival);
        std::int64_t ts = ts_unwrap_.unwrap(rtp_timestamp);
        if (const std::int64_t* anchor = anchor_ts()) {
            const std::int64_t span = cfg_.restart_span.count() * cfg_.clock_rate / 1'000'000;
            if (ts - *anchor > span || *anchor - ts > span) {
                restart_stream();
                ++stats_.restarts;
                ts = ts_unwrap_.unwrap(rtp_timestamp);
            }
        }
        const std::int64_t seq = seq_unwrap_.unwrap(sequence);
        if (played_ && ts < next_ts_) {
            const std::int64_t back = (next_ts_ - ts + cfg_.frame_samples - 1) / cfg_.frame_samples;
            if (back <= 64 && ((played_mask_ >> (back - 1)) & 1u)) {
                ++stats_.duplicates;
                return insert_result::duplicate;
            }
            observe(now, ts, repaired);
            ++stats_.late;
            return insert_result::late;
        }
        const auto pos = std::lower_bound(order_.begin(), order_.end(), ts,
                                          [this](std::uint32_t i, std::int64_t v) { return slots_[i].ts < v; });
        if (pos != order_.end() && slots_[*pos].ts == ts) {
            ++stats_.duplicates;
            return insert_result::duplicate;
        }
        observe(now, ts, repaired);
        if (free_.empty()) {
            ++stats_.overflow;
            if (pos == order_.begin()) return insert_result::overflow; // older than all held
            drop_head();
        }
        ++stats_.inserted;
        const std::uint32_t idx = free_.back();
        free_.pop_back();
        slot& s = slots_[idx];
        s.ts = ts;
        s.seq = seq;
        s.arrival = now;
        s.frame.rtp_timestamp = rtp_timestamp;
        s.frame.capture_time = capture_time;
        s.frame.data.assign(payload.begin(), payload.end());
        order_.insert(std::lower_bound(order_.begin(), order_.end(), ts,
                                       [this](std::uint32_t i, std::int64_t v) { return slots_[i].ts < v; }),
                      idx);
        return insert_result::inserted;
    }

    insert_result insert(const encoded_frame& f, std::uint16_t sequence, time_point arrival) {
        return insert(f.bytes(), f.rtp_timestamp, sequence, arrival, f.capture_time);
    }

    /// Produces the next frame period's decision. For decode and decode_fec, `out` receives
    /// the packet to hand to the decoder (its storage is reused: no allocation once warm).
    audio_pull pull(time_point now_tp, encoded_frame& out) {
        const std::int64_t now = us(now_tp);
        target_ = target_at(now);
        audio_pull r = state_ == state::playing ? play(now, out) : start(now, out);
        stats_.target_delay = std::chrono::microseconds{target_};
        stats_.buffered = order_.size();
        return r;
    }

    /// PLC frames played since the buffer ran empty: concealment if what follows turns out
    /// lost, comfort noise if the sender paused or stopped. Not known yet; a receiver that
    /// stops now leaves them out of its concealment count.
    std::uint64_t unresolved_concealment() const noexcept {
        return state_ == state::playing && order_.empty() ? expand_run_ : 0;
    }

    /// Extra delay added to the target (lip sync), >= 0.
    void set_extra_delay(std::chrono::microseconds d) noexcept { extra_ = std::max<std::int64_t>(d.count(), 0); }
    std::chrono::microseconds extra_delay() const noexcept { return std::chrono::microseconds{extra_}; }

    /// The target delay as it stands at `now` (extra delay included).
    std::chrono::microseconds target_delay(time_point now) const noexcept { return std::chrono::microseconds{target_at(us(now))}; }

    const audio_jitter_stats& stats() const noexcept { return stats_; }
    const audio_jitter_config& config() const noexcept { return cfg_; }
    std::size_t size() const noexcept { return order_.size(); }

    /// Forgets packets, playout position and delay history (a new stream); counters stay.
    void reset() noexcept {
        restart_stream();
        hist_.reset();
        q_ = 0;
        peak_ = 0;
        peak_until_ = 0;
    }

private:
    enum class state : std::uint8_t { buffering, playing };
    struct slot {
        encoded_frame frame;
        std::int64_t ts = 0;
        std::int64_t seq = 0;
        std::int64_t arrival = 0;
    };

    static audio_jitter_config sanitize(audio_jitter_config c) noexcept {
        if (c.clock_rate == 0) c.clock_rate = 48'000;
        if (c.frame_samples == 0) c.frame_samples = 960;
        if (c.capacity < 2) c.capacity = 2;
        if (c.bucket.count() <= 0) c.bucket = std::chrono::microseconds{10'000};
        if (c.max_delay < c.min_delay) c.max_delay = c.min_delay;
        c.forget_factor = std::clamp(c.forget_factor, 0.0, 0.99999);
        c.quantile = std::clamp(c.quantile, 0.0, 1.0);
        return c;
    }
    static std::int64_t us(time_point t) noexcept {
        return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
    }
    std::int64_t media_us(std::int64_t ts) const noexcept { return detail::playout_media_us(ts, cfg_.clock_rate); }
    std::uint32_t rtp_of(std::int64_t ts) const noexcept { return static_cast<std::uint32_t>(ts); }

    const std::int64_t* anchor_ts() const noexcept {
        if (played_) return &next_ts_;
        if (!order_.empty()) return &slots_[order_.front()].ts;
        return nullptr;
    }

    /// Records a packet's relative delay and moves the peak when it exceeds the target.
    void observe(std::int64_t now, std::int64_t ts, bool repaired) {
        const std::int64_t rel = ref_.update(now, media_us(ts));
        hist_.add(rel);
        q_ = hist_.quantile(cfg_.quantile);
        if (!repaired && rel > base_target(now)) {
            peak_ = rel;
            peak_until_ = now + cfg_.peak_hold.count();
        }
    }
    std::int64_t base_target(std::int64_t now) const noexcept {
        const std::int64_t peak = now < peak_until_ ? peak_ : 0;
        return std::clamp(std::max(q_, peak), cfg_.min_delay.count(), cfg_.max_delay.count());
    }
    std::int64_t target_at(std::int64_t now) const noexcept { return base_target(now) + extra_; }
    /// When a frame plays if playout (re)starts with it.
    std::int64_t due(std::int64_t ts) const noexcept { return media_us(ts) + ref_.offset() + target_; }
    /// How far behind the reference the frame at `ts` plays at `now`.
    std::int64_t delay_of(std::int64_t now, std::int64_t ts) const noexcept {
        return now - media_us(ts) - ref_.offset();
    }
    /// Whole frame periods from next_ts_ to `ts` (>= 0).
    std::int64_t periods_to(std::int64_t ts) const noexcept { return (ts - next_ts_) / cfg_.frame_samples; }

    slot& head() noexcept { return slots_[order_.front()]; }
    void release_head() noexcept {
        free_.push_back(order_.front());
        order_.erase(order_.begin());
    }
    void drop_head() noexcept { release_head(); }

    /// Moves the playout position by n frames whose packets were (1) or were not (0) played.
    void advance(std::int64_t n, bool played) noexcept {
        if (n <= 0) return;
        next_ts_ += n * cfg_.frame_samples;
        played_mask_ = n >= 64 ? 0 : played_mask_ << n;
        if (played) played_mask_ |= 1;
    }

    /// PLC frames played during a gap that turned out to be a pause in transmission.
    void reclassify_as_silence() noexcept {
        stats_.concealed -= expand_run_;
        stats_.expanded -= expand_run_;
        stats_.comfort_noise += expand_run_;
        expand_run_ = 0;
    }

    audio_pull decode_head(std::int64_t now, encoded_frame& out) {
        slot& s = head();
        next_ts_ = s.ts; // realign when timestamps are not whole frames apart
        stats_.current_delay = std::chrono::microseconds{delay_of(now, s.ts)};
        stats_.playout_delay = std::chrono::microseconds{now - s.arrival};
        ++stats_.decoded;
        last_seq_ = s.seq;
        out.kind = media_kind::audio;
        out.keyframe = true;
        out.rtp_timestamp = s.frame.rtp_timestamp;
        out.capture_time = s.frame.capture_time;
        out.data.assign(s.frame.data.begin(), s.frame.data.end());
        advance(1, true);
        release_head();
        return {audio_action::decode, out.rtp_timestamp};
    }

    audio_pull conceal(bool expanding) noexcept {
        ++stats_.concealed;
        if (expanding) ++stats_.expanded;
        return {audio_action::conceal, rtp_of(next_ts_)};
    }

    audio_pull start(std::int64_t now, encoded_frame& out) {
        if (order_.empty()) return {};
        // A restart begins with the newest frame already due: a backlog is not worth its
        // delay. The very first start plays from the first frame (a burst at start-up is the
        // sender's, and acceleration takes the extra delay off later).
        std::size_t pick = order_.size();
        for (std::size_t i = 0; i < order_.size() && due(slots_[order_[i]].ts) <= now; ++i) pick = i;
        if (pick == order_.size()) return {};
        if (!played_) pick = 0;
        for (std::size_t i = 0; i < pick; ++i) {
            drop_head();
            ++stats_.flushed;
        }
        if (played_) {
            ++stats_.restarts;
            if (head().seq == last_seq_ + 1) reclassify_as_silence();
            stats_.expanded -= expand_run_; // PLC in place of what never came: no delay added
            advance(periods_to(head().ts), false);
        }
        expand_run_ = 0;
        played_ = true;
        state_ = state::playing;
        above_since_ = below_since_ = -1;
        empty_since_ = -1;
        return decode_head(now, out);
    }

    audio_pull play(std::int64_t now, encoded_frame& out) {
        if (order_.empty()) return underrun(now);
        // Too far behind (after a stall and a burst): skip ahead to the target.
        if (const std::int64_t late = delay_of(now, next_ts_); late > cfg_.max_delay.count() + extra_ + frame_us_) {
            const std::int64_t skip = (late - target_) / frame_us_;
            const std::int64_t covered = std::min<std::int64_t>(static_cast<std::int64_t>(expand_run_), skip);
            stats_.expanded -= static_cast<std::uint64_t>(covered); // PLC stood in for skipped time
            expand_run_ = 0;
            advance(skip, false);
            while (!order_.empty() && head().ts < next_ts_) {
                drop_head();
                ++stats_.flushed;
            }
            if (order_.empty()) return underrun(now);
        }
        empty_since_ = -1;
        slot& h = head();
        const std::int64_t gap = periods_to(h.ts);
        if (gap <= 0) {
            expand_run_ = 0;
            return stretch_or_decode(now, out);
        }
        if (h.seq == last_seq_ + 1) { // a pause in transmission, nothing lost
            reclassify_as_silence();
            above_since_ = below_since_ = -1;
            if (due(h.ts) <= now) {
                advance(gap, false);
                return decode_head(now, out);
            }
            ++stats_.comfort_noise;
            return {audio_action::comfort_noise, 0};
        }
        // Not overdue by the target's measure: wait for it, unless just one frame is missing
        // and its successor is here: its in-band FEC rebuilds the frame now, where waiting
        // would play PLC in its place (and grow the delay).
        if (delay_of(now, next_ts_) < target_ && !(gap == 1 && expand_run_ == 0)) {
            ++expand_run_;
            above_since_ = below_since_ = -1;
            return conceal(true);
        }
        if (expand_run_ == 0) {
            // Playing later than the target and frames are missing: their time is left out
            // (a free acceleration) instead of concealed; playout joins the next frame held.
            const std::int64_t excess = (delay_of(now, next_ts_) - target_) / frame_us_;
            if (excess >= 1) {
                const std::int64_t skip = std::min(gap, excess);
                advance(skip, false);
                stats_.accelerated += static_cast<std::uint64_t>(skip);
                above_since_ = -1;
                if (skip == gap) return decode_head(now, out);
                return play(now, out);
            }
        }
        std::int64_t missing = gap;
        if (expand_run_ > 0) { // PLC already played in place of missing frames
            const std::int64_t covered = std::min<std::int64_t>(expand_run_, missing);
            stats_.expanded -= static_cast<std::uint64_t>(covered);
            advance(covered, false);
            missing -= covered;
            expand_run_ = 0;
            if (missing == 0) return decode_head(now, out);
        }
        const std::uint32_t lost_ts = rtp_of(next_ts_);
        advance(1, false);
        if (missing == 1) { // the successor is here: its in-band FEC rebuilds the lost frame
            ++stats_.fec;
            out.kind = media_kind::audio;
            out.keyframe = true;
            out.rtp_timestamp = h.frame.rtp_timestamp;
            out.capture_time = h.frame.capture_time;
            out.data.assign(h.frame.data.begin(), h.frame.data.end());
            return {audio_action::decode_fec, lost_ts};
        }
        ++stats_.concealed;
        return {audio_action::conceal, lost_ts};
    }

    audio_pull underrun(std::int64_t now) {
        if (empty_since_ < 0) empty_since_ = now;
        if (now - empty_since_ >= cfg_.idle_reset.count()) {
            // Nothing at all for idle_reset: the sender paused or stopped. The PLC played
            // meanwhile stood in for silence, not for lost packets.
            reclassify_as_silence();
            state_ = state::buffering;
            return {};
        }
        ++expand_run_;
        above_since_ = below_since_ = -1;
        return conceal(true);
    }

    audio_pull stretch_or_decode(std::int64_t now, encoded_frame& out) {
        const std::int64_t d = delay_of(now, next_ts_);
        const std::int64_t hold = cfg_.stretch_hold.count();
        if (d > target_ + frame_us_) {
            below_since_ = -1;
            if (above_since_ < 0) {
                above_since_ = now;
            } else if (now - above_since_ >= hold && order_.size() > 1 &&
                       periods_to(slots_[order_[1]].ts) == 1) {
                above_since_ = now;
                ++stats_.accelerated;
                last_seq_ = head().seq;
                drop_head();
                advance(1, true);
                return decode_head(now, out);
            }
        } else if (d + frame_us_ < target_) {
            above_since_ = -1;
            if (below_since_ < 0) {
                below_since_ = now;
            } else if (now - below_since_ >= hold) {
                below_since_ = now;
                return conceal(true);
            }
        } else {
            above_since_ = below_since_ = -1;
        }
        return decode_head(now, out);
    }

    void restart_stream() noexcept {
        while (!order_.empty()) release_head();
        ts_unwrap_.reset();
        seq_unwrap_.reset();
        ref_.reset();
        state_ = state::buffering;
        played_ = false;
        played_mask_ = 0;
        expand_run_ = 0;
        above_since_ = below_since_ = empty_since_ = -1;
    }

    audio_jitter_config cfg_;
    std::int64_t frame_us_;
    detail::playout_arrival_reference ref_;
    detail::playout_delay_histogram hist_;
    std::vector<slot> slots_;
    std::vector<std::uint32_t> order_; ///< held slots by timestamp
    std::vector<std::uint32_t> free_;
    rtp::timestamp_unwrapper ts_unwrap_;
    rtp::seq_unwrapper seq_unwrap_;
    state state_ = state::buffering;
    bool played_ = false;              ///< next_ts_/last_seq_ are meaningful
    std::int64_t next_ts_ = 0;         ///< unwrapped RTP time the next pull plays
    std::int64_t last_seq_ = 0;        ///< unwrapped sequence of the last frame decoded or skipped
    std::uint64_t played_mask_ = 0;    ///< bit i: the frame i+1 periods before next_ts_ was played
    std::uint64_t expand_run_ = 0;     ///< PLC frames played since the last frame was due and missing
    std::int64_t above_since_ = -1;
    std::int64_t below_since_ = -1;
    std::int64_t empty_since_ = -1;
    std::int64_t q_ = 0;               ///< histogram quantile
    std::int64_t peak_ = 0;
    std::int64_t peak_until_ = 0;
    std::int64_t extra_ = 0;
    std::int64_t target_ = 0;          ///< as of the last pull
    audio_jitter_stats stats_;
};

} // namespace onair::qos
