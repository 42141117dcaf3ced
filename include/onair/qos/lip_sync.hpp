// onair — audio/video synchronisation from RTCP sender reports.
//
// rtp_to_ntp maps one stream's RTP timestamps to the sender's NTP wall clock: a least-squares
// line through the last 8 sender reports (so a sender whose media clock drifts from its wall
// clock is followed), or the nominal clock rate through the newest report while they span
// less than a second. Timestamps are unwrapped around the newest report.
//
// lip_sync keeps both streams' mappings and, per stream, the earliest transit seen over a
// 2 s window: min(arrival - capture time), the same earliest-arrival reference the playout
// buffers measure their delays from (feed it the arrival times given to the buffers: packet
// arrival for audio, frame completion for video). A capture instant then plays at
//     capture + transit_min + delay (+ extra)
// in each stream, so the audio/video skew is
//     skew = (transit_v - transit_a) + video_delay - audio_delay
// (> 0: video late). update(audio_delay, video_delay) takes each buffer's target delay with
// the extra delay it already applies (stats().target_delay), leaves the skew alone within
// the deadband (20 ms) and otherwise moves the extra delays by the skew, at most max_step
// (80 ms) per update: first taking extra delay off the stream that is late, then adding it
// to the one that is early; at most one stream has extra delay. The transit minima and the
// target delays are already smooth, so the skew is not filtered by default (filter_length
// > 1 averages it exponentially over that many updates).
// Call it about once a second; give each buffer its extra with set_extra_delay().
#pragma once

#include "onair/core/media_frame.hpp"
#include "onair/core/time.hpp"
#include "onair/qos/detail/playout_delay.hpp"
#include "onair/rtp/rtcp.hpp"
#include "onair/rtp/sequence.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>

namespace onair::qos {

/// RTP timestamp -> sender NTP time for one stream. Thread safety: none.
class rtp_to_ntp {
public:
    static constexpr std::size_t max_reports = 8;

    explicit rtp_to_ntp(std::uint32_t clock_rate = 90'000) noexcept : rate_(clock_rate ? clock_rate : 90'000) {}

    /// Adds a sender report's (NTP, RTP) pair. Returns false when it was ignored (a repeat,
    /// or not newer); a report going backwards or far off the line starts over from it.
    bool update(std::uint64_t ntp, std::uint32_t rtp_ts) {
        const std::int64_t t = us_of(ntp);
        const std::int64_t x = unwrap_.peek(rtp_ts);
        if (n_ > 0) {
            const point& last = p_[(head_ + max_reports - 1) % max_reports];
            if (t == last.t && x == last.x) return false;
            const std::int64_t off = capture_us(x) - t;
            if (t <= last.t || x <= last.x || off > 1'000'000 || off < -1'000'000) reset();
        }
        if (n_ == 0) unwrap_.reset();
        p_[head_] = {unwrap_.unwrap(rtp_ts), t};
        head_ = (head_ + 1) % max_reports;
        n_ = std::min(n_ + 1, max_reports);
        fit();
        return true;
    }
    bool update(const rtp::rtcp::sender_report& sr) { return update(sr.ntp_timestamp, sr.rtp_timestamp); }

    bool valid() const noexcept { return n_ > 0; }
    /// The sender's wall-clock time of `rtp_ts` (nullopt before the first report).
    std::optional<timestamp> capture_time(std::uint32_t rtp_ts) const noexcept {
        if (!n_) return std::nullopt;
        return timestamp{std::chrono::microseconds{capture_us(unwrap_.peek(rtp_ts))}};
    }
    /// Estimated media clock rate (ticks per second of the sender's wall clock).
    double clock_rate() const noexcept { return 1e6 / slope_; }
    std::uint32_t nominal_rate() const noexcept { return rate_; }
    std::size_t reports() const noexcept { return n_; }
    void reset() noexcept {
        n_ = 0;
        head_ = 0;
        slope_ = 1e6 / rate_;
    }

private:
    struct point {
        std::int64_t x = 0; ///< unwrapped RTP
        std::int64_t t = 0; ///< microseconds since the Unix epoch
    };
    static std::int64_t us_of(std::uint64_t ntp) noexcept { return from_ntp(ntp).time_since_epoch().count(); }

    std::int64_t capture_us(std::int64_t x) const noexcept {
        return t0_ + static_cast<std::int64_t>(std::llround(slope_ * static_cast<double>(x - x0_) + dt_));
    }

    void fit() noexcept {
        const point& newest = p_[(head_ + max_reports - 1) % max_reports];
        const point& oldest = p_[n_ < max_reports ? 0 : head_];
        x0_ = newest.x;
        t0_ = newest.t;
        slope_ = 1e6 / rate_;
        dt_ = 0;
        if (n_ < 2 || newest.t - oldest.t < 1'000'000) return;
        double mx = 0, mt = 0;
        for (std::size_t i = 0; i < n_; ++i) {
            mx += static_cast<double>(p_[i].x - x0_);
            mt += static_cast<double>(p_[i].t - t0_);
        }
        mx /= static_cast<double>(n_);
        mt /= static_cast<double>(n_);
        double sxx = 0, sxt = 0;
        for (std::size_t i = 0; i < n_; ++i) {
            const double dx = static_cast<double>(p_[i].x - x0_) - mx;
            sxx += dx * dx;
            sxt += dx * (static_cast<double>(p_[i].t - t0_) - mt);
        }
        const double slope = sxt / sxx;
        const double nominal = 1e6 / rate_;
        if (!(sxx > 0) || slope < nominal * 0.99 || slope > nominal * 1.01) return; // not a clock
        slope_ = slope;
        dt_ = mt - slope * mx; // line through the centroid, relative to the newest report
    }

    std::uint32_t rate_;
    std::array<point, max_reports> p_{};
    std::size_t head_ = 0;
    std::size_t n_ = 0;
    rtp::timestamp_unwrapper unwrap_;
    std::int64_t x0_ = 0;
    std::int64_t t0_ = 0;
    double slope_ = 1e6 / rate_; ///< microseconds per tick
    double dt_ = 0;
};

struct lip_sync_config {
    std::uint32_t audio_clock_rate = 48'000;
    std::uint32_t video_clock_rate = 90'000;
    std::chrono::microseconds transit_window{2'000'000};
    std::chrono::microseconds deadband{20'000};
    std::chrono::microseconds max_step{80'000};
    std::chrono::microseconds max_extra{1'000'000};
    int filter_length = 1; ///< 1: no smoothing
};

/// Extra playout delay for each stream; at most one is non-zero.
struct sync_delays {
    std::chrono::microseconds audio{0};
    std::chrono::microseconds video{0};
    friend bool operator==(const sync_delays&, const sync_delays&) = default;
};

/// Thread safety: none; one per audio/video pair.
class lip_sync {
public:
    using clock = std::chrono::steady_clock;
    using time_point = clock::time_point;
    using microseconds = std::chrono::microseconds;

    lip_sync(std::uint32_t audio_ssrc, std::uint32_t video_ssrc, lip_sync_config c = {})
        : cfg_(c), audio_ssrc_(audio_ssrc), video_ssrc_(video_ssrc), audio_(c.audio_clock_rate),
          video_(c.video_clock_rate), audio_transit_(c.transit_window.count()),
          video_transit_(c.transit_window.count()) {
        if (cfg_.filter_length < 1) cfg_.filter_length = 1;
    }

    /// Takes a sender report of either stream; false when it is neither's (or a repeat).
    bool on_sender_report(const rtp::rtcp::sender_report& sr) {
        if (sr.ssrc == audio_ssrc_) return audio_.update(sr);
        if (sr.ssrc == video_ssrc_) return video_.update(sr);
        return false;
    }

    /// Records when media with `rtp_ts` arrived (ignored until the stream's first report).
    void on_packet(media_kind kind, std::uint32_t rtp_ts, time_point arrival) {
        const auto cap = clock_of(kind).capture_time(rtp_ts);
        if (!cap) return;
        (kind == media_kind::audio ? audio_transit_ : video_transit_)
            .update(us_of(arrival), cap->time_since_epoch().count());
    }

    std::optional<timestamp> capture_time(media_kind kind, std::uint32_t rtp_ts) const noexcept {
        return clock_of(kind).capture_time(rtp_ts);
    }

    /// Earliest video transit - earliest audio transit (receiver clock offset cancels).
    std::optional<microseconds> relative_delay() const noexcept {
        if (!audio_transit_.valid() || !video_transit_.valid()) return std::nullopt;
        return microseconds{video_transit_.offset() - audio_transit_.offset()};
    }

    /// Given each stream's playout delay after its earliest arrival, extra delay included
    /// (the buffers' target delays), returns the extra delay each stream should now have.
    /// nullopt until both streams have a sender report and media.
    std::optional<sync_delays> update(microseconds audio_delay, microseconds video_delay) {
        const auto rel = relative_delay();
        if (!rel) return std::nullopt;
        return apply(*rel + video_delay - audio_delay);
    }

    /// The same control from a measured skew: how much later than the audio of the same
    /// capture instant video was actually shown over the last period (av_offset of played
    /// frames, extra delays included). For receivers whose video plays later than its
    /// buffer's target says (frames held back until a repair completes them).
    sync_delays update_measured(microseconds skew) { return apply(skew); }

    /// The A/V offset actually produced: > 0 when the video frame is shown later than the
    /// audio of the same capture instant. Arguments: a frame of each and when it played.
    std::optional<microseconds> av_offset(std::uint32_t audio_rtp_ts, time_point audio_played,
                                          std::uint32_t video_rtp_ts, time_point video_rendered) const {
        const auto ca = audio_.capture_time(audio_rtp_ts);
        const auto cv = video_.capture_time(video_rtp_ts);
        if (!ca || !cv) return std::nullopt;
        return microseconds{(us_of(video_rendered) - us_of(audio_played)) - (*cv - *ca).count()};
    }

    const sync_delays& delays() const noexcept { return delays_; }
    /// Skew given to the last update() before smoothing.
    microseconds last_skew() const noexcept { return last_skew_; }
    const rtp_to_ntp& clock_of(media_kind kind) const noexcept { return kind == media_kind::audio ? audio_ : video_; }

private:
    static std::int64_t us_of(time_point t) noexcept {
        return std::chrono::duration_cast<microseconds>(t.time_since_epoch()).count();
    }

    sync_delays apply(microseconds measured) {
        const double skew = static_cast<double>(measured.count());
        filtered_ = has_filtered_ ? filtered_ + (skew - filtered_) / cfg_.filter_length : skew;
        has_filtered_ = true;
        last_skew_ = microseconds{static_cast<std::int64_t>(skew)};
        if (std::abs(filtered_) <= static_cast<double>(cfg_.deadband.count())) return delays_;
        const auto step = static_cast<std::int64_t>(
            std::clamp(filtered_, -static_cast<double>(cfg_.max_step.count()), static_cast<double>(cfg_.max_step.count())));
        const sync_delays before = delays_;
        microseconds& late = step > 0 ? delays_.video : delays_.audio;  // the stream behind
        microseconds& early = step > 0 ? delays_.audio : delays_.video; // the stream ahead
        const microseconds want{step > 0 ? step : -step};
        const microseconds off = std::min(late, want);
        late -= off;
        early = std::min(early + want - off, cfg_.max_extra);
        // What changed moves the skew by as much; the next inputs will include it.
        filtered_ -= static_cast<double>(((delays_.audio - before.audio) - (delays_.video - before.video)).count());
        return delays_;
    }

    lip_sync_config cfg_;
    std::uint32_t audio_ssrc_;
    std::uint32_t video_ssrc_;
    rtp_to_ntp audio_;
    rtp_to_ntp video_;
    detail::playout_arrival_reference audio_transit_;
    detail::playout_arrival_reference video_transit_;
    sync_delays delays_;
    double filtered_ = 0;
    bool has_filtered_ = false;
    microseconds last_skew_{0};
};

} // namespace onair::qos
