// onair — delay-based bandwidth estimation: the congestion signal from one-way delay.
//
// A sender learns, from transport-wide feedback, when each of its packets arrived. When the
// path's queue grows, packets arrive further apart than they were sent; the estimator finds
// that trend and turns it into a bitrate, after Google Congestion Control
// (draft-ietf-rmcat-gcc-02) as deployed in WebRTC:
//
// 1. inter_arrival: packets sent within 5 ms of the first of a group form one group (a
//    frame's burst); for two consecutive complete groups it yields the send-time delta, the
//    arrival-time delta and so the delay variation d = arrival delta - send delta. Packets
//    that arrived in a burst (less than 5 ms after the group's last one, and earlier than
//    the send spacing predicts) join the group: a burst after a short stall is not queuing.
//    Packets sent before the current group (reordered on the path) are ignored.
// 2. trendline_estimator: the accumulated delay variation, smoothed (alpha 0.9), over the
//    last 20 groups against their arrival times; the least-squares slope is the trend (ms of
//    queue growth per ms). The modified trend = min(groups seen, 60) * slope * 4 is compared
//    with an adaptive threshold gamma: above for more than 10 ms (and at least two groups,
//    the trend not falling) is overuse, below -gamma underuse, else normal. gamma follows
//    |modified trend| (up 0.0087, down 0.039 per ms, clamped 6..600; outliers more than 15
//    above are not followed), so competing TCP-like flows do not starve the estimator.
// 3. aimd_rate_control: overuse -> decrease to 0.85 x the throughput just acknowledged (and
//    remember that as the link capacity); normal -> increase, multiplicatively (8 % a second)
//    while far from the known capacity, additively (about one packet per response time,
//    100 ms + RTT) near it; underuse -> hold. The estimate never exceeds 1.5 x the
//    acknowledged throughput + 10 kbps: a sender that does not use its rate does not grow it.
//
// All times are microseconds on the caller's clocks: send times on the sender's, arrival
// times on the receiver's (only differences of arrival times are used, so the clocks need
// not agree).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>

namespace onair::qos {

/// Detector output, per group delta.
enum class bandwidth_usage : std::uint8_t { normal, underusing, overusing };

/// Groups packets into send bursts and reports deltas between consecutive groups.
class inter_arrival {
public:
    struct deltas {
        std::int64_t send_delta_us = 0;
        std::int64_t arrival_delta_us = 0;
        std::int64_t arrival_us = 0; ///< completion time of the newer group
    };

    static constexpr std::int64_t group_length_us = 5'000;
    static constexpr std::int64_t burst_delta_us = 5'000;
    /// An arrival-delta minus send-delta jump this large is a clock jump: start over.
    static constexpr std::int64_t max_offset_us = 3'000'000;
    static constexpr int max_reordered_before_reset = 3;

    /// Adds one acknowledged packet (in feedback order). Returns the deltas between the two
    /// groups before this packet when it starts a new group.
    std::optional<deltas> add(std::int64_t send_us, std::int64_t arrival_us) noexcept {
        if (!cur_.valid) {
            cur_ = {send_us, send_us, arrival_us, arrival_us, true};
            return std::nullopt;
        }
        if (send_us < cur_.first_send) { // reordered: sent before the group being built
            if (++reordered_ > max_reordered_before_reset) reset();
            ++stats_reordered_;
            return std::nullopt;
        }
        reordered_ = 0;
        std::optional<deltas> out;
        if (new_group(send_us, arrival_us)) {
            if (prev_.valid) {
                const deltas d{cur_.last_send - prev_.last_send, cur_.last_arrival - prev_.last_arrival, cur_.last_arrival};
                if (d.arrival_delta_us - d.send_delta_us > max_offset_us || d.arrival_delta_us < 0) {
                    // The receiver's clock jumped (or absurd feedback): forget the history.
                    ++stats_resets_;
                    prev_ = {};
                    cur_ = {send_us, send_us, arrival_us, arrival_us, true};
                    return std::nullopt;
                }
                out = d;
            }
            prev_ = cur_;
            cur_ = {send_us, send_us, arrival_us, arrival_us, true};
            return out;
        }
        cur_.last_send = std::max(cur_.last_send, send_us);
        cur_.last_arrival = std::max(cur_.last_arrival, arrival_us);
        return std::nullopt;
    }

    void reset() noexcept {
        cur_ = {};
        prev_ = {};
        reordered_ = 0;
    }
    std::uint64_t reordered() const noexcept { return stats_reordered_; }
    std::uint64_t resets() const noexcept { return stats_resets_; }

private:
    struct group {
        std::int64_t first_send = 0, last_send = 0, first_arrival = 0, last_arrival = 0;
        bool valid = false;
    };
    bool new_group(std::int64_t send_us, std::int64_t arrival_us) const noexcept {
        if (in_burst(send_us, arrival_us)) return false;
        return send_us - cur_.first_send > group_length_us;
    }
    /// Arrived right after the group's last packet, sooner than its send spacing: the path
    /// delivered a backlog at once (a burst), which says nothing about the queue.
    bool in_burst(std::int64_t send_us, std::int64_t arrival_us) const noexcept {
        const std::int64_t arrival_delta = arrival_us - cur_.last_arrival;
        const std::int64_t send_delta = send_us - cur_.last_send;
        if (send_delta == 0) return true;
        const std::int64_t propagation_delta = arrival_delta - send_delta;
        return propagation_delta < 0 && arrival_delta <= burst_delta_us && arrival_us - cur_.first_arrival < 100'000;
    }

    group cur_, prev_;
    int reordered_ = 0;
    std::uint64_t stats_reordered_ = 0;
    std::uint64_t stats_resets_ = 0;
};

/// Least-squares trend of the smoothed accumulated delay variation, and the over-use
/// detector with its adaptive threshold.
class trendline_estimator {
public:
    struct config {
        std::size_t window = 20; ///< groups the trend is fitted over (2..max_window)
        double smoothing = 0.9;
        double threshold_gain = 4.0;
        double k_up = 0.0087;
        double k_down = 0.039;
        double initial_threshold_ms = 12.5;
        double min_threshold_ms = 6.0;
        double max_threshold_ms = 600.0;
        double overuse_time_ms = 10.0;
    };

    trendline_estimator() : trendline_estimator(config{}) {}
    explicit trendline_estimator(const config& c) noexcept : cfg_(c), threshold_(c.initial_threshold_ms) {
        cfg_.window = std::clamp<std::size_t>(cfg_.window, 2, max_window);
    }

    /// One group delta (send and arrival deltas in microseconds, arrival time of the group).
    bandwidth_usage update(std::int64_t send_delta_us, std::int64_t arrival_delta_us, std::int64_t arrival_us) noexcept {
        const double delta_ms = static_cast<double>(arrival_delta_us - send_delta_us) / 1000.0;
        const double arrival_ms = static_cast<double>(arrival_us) / 1000.0;
        if (deltas_ < 1000) ++deltas_;
        if (first_arrival_ms_ < 0) first_arrival_ms_ = arrival_ms;
        accumulated_ms_ += delta_ms;
        smoothed_ms_ = cfg_.smoothing * smoothed_ms_ + (1 - cfg_.smoothing) * accumulated_ms_;
        points_[head_] = {arrival_ms - first_arrival_ms_, smoothed_ms_};
        head_ = (head_ + 1) % cfg_.window;
        if (count_ < cfg_.window) ++count_;
        if (count_ == cfg_.window) {
            if (const auto s = slope()) trend_ = *s;
        }
        detect(static_cast<double>(send_delta_us) / 1000.0, arrival_ms);
        return state_;
    }

    bandwidth_usage state() const noexcept { return state_; }
    double trend() const noexcept { return trend_; }
    double modified_trend() const noexcept { return modified_trend_; }
    double threshold_ms() const noexcept { return threshold_; }

    /// The longest window: its points are kept in the object (a relay keeps a detector per
    /// subscriber).
    static constexpr std::size_t max_window = 32;

private:
    struct point {
        double x = 0, y = 0;
    };

    std::optional<double> slope() const noexcept {
        double sx = 0, sy = 0;
        for (std::size_t i = 0; i < count_; ++i) {
            sx += points_[i].x;
            sy += points_[i].y;
        }
        const double mx = sx / static_cast<double>(count_), my = sy / static_cast<double>(count_);
        double num = 0, den = 0;
        for (std::size_t i = 0; i < count_; ++i) {
            num += (points_[i].x - mx) * (points_[i].y - my);
            den += (points_[i].x - mx) * (points_[i].x - mx);
        }
        if (den == 0) return std::nullopt;
        return num / den;
    }

    void detect(double send_delta_ms, double now_ms) noexcept {
        if (deltas_ < 2) {
            state_ = bandwidth_usage::normal;
            return;
        }
        modified_trend_ = static_cast<double>(std::min<int>(deltas_, 60)) * trend_ * cfg_.threshold_gain;
        if (modified_trend_ > threshold_) {
            if (time_over_ms_ < 0) time_over_ms_ = send_delta_ms / 2; // first sample: assume half a delta over
            else time_over_ms_ += send_delta_ms;
            ++overuse_count_;
            if (time_over_ms_ > cfg_.overuse_time_ms && overuse_count_ > 1 && trend_ >= prev_trend_) {
                time_over_ms_ = 0;
                overuse_count_ = 0;
                state_ = bandwidth_usage::overusing;
            }
        } else if (modified_trend_ < -threshold_) {
            time_over_ms_ = -1;
            overuse_count_ = 0;
            state_ = bandwidth_usage::underusing;
        } else {
            time_over_ms_ = -1;
            overuse_count_ = 0;
            state_ = bandwidth_usage::normal;
        }
        prev_trend_ = trend_;
        adapt_threshold(now_ms);
    }

    void adapt_threshold(double now_ms) noexcept {
        if (last_update_ms_ < 0) last_update_ms_ = now_ms;
        const double m = std::fabs(modified_trend_);
        if (m > threshold_ + 15.0) { // a spike (e.g. a route change): do not follow it
            last_update_ms_ = now_ms;
            return;
        }
        const double k = m < threshold_ ? cfg_.k_down : cfg_.k_up;
        const double dt = std::min(now_ms - last_update_ms_, 100.0);
        threshold_ += k * (m - threshold_) * dt;
        threshold_ = std::clamp(threshold_, cfg_.min_threshold_ms, cfg_.max_threshold_ms);
        last_update_ms_ = now_ms;
    }

    config cfg_;
    std::array<point, max_window> points_{};
    std::size_t head_ = 0, count_ = 0;
    int deltas_ = 0;
    double first_arrival_ms_ = -1;
    double accumulated_ms_ = 0, smoothed_ms_ = 0;
    double trend_ = 0, prev_trend_ = 0, modified_trend_ = 0;
    double threshold_;
    double time_over_ms_ = -1;
    int overuse_count_ = 0;
    double last_update_ms_ = -1;
    bandwidth_usage state_ = bandwidth_usage::normal;
};

/// Additive-increase / multiplicative-decrease of the delay-based estimate.
class aimd_rate_control {
public:
    struct config {
        std::int64_t min_bps = 30'000;
        std::int64_t max_bps = 20'000'000;
        double beta = 0.85;
        double multiplicative_per_s = 0.08;
        std::int64_t min_additive_bps_per_s = 4'000;
    };
    enum class state : std::uint8_t { hold, increase, decrease };

    aimd_rate_control() : aimd_rate_control(config{}) {}
    explicit aimd_rate_control(const config& c) noexcept : cfg_(c) {}

    /// Sets the estimate outright (start bitrate, a probe's result).
    void set_estimate(std::int64_t bps, std::int64_t now_us) noexcept {
        rate_ = std::clamp(bps, cfg_.min_bps, cfg_.max_bps);
        valid_ = true;
        last_change_us_ = now_us;
    }
    bool valid() const noexcept { return valid_; }
    std::int64_t estimate() const noexcept { return rate_; }
    state current_state() const noexcept { return state_; }
    void set_rtt(std::int64_t rtt_us) noexcept { rtt_us_ = std::max<std::int64_t>(rtt_us, 0); }
    /// The link capacity learned at the last overuse (nullopt: not known, or forgotten).
    std::optional<double> link_capacity_bps() const noexcept {
        if (cap_ < 0) return std::nullopt;
        return cap_;
    }

    /// One detector output; `acked_bps`: the throughput acknowledged now (0: unknown).
    /// `urgent`: an over-use that may decrease again within a round trip (a standing queue);
    /// `beta`: the decrease factor for this one (0: the configured one).
    std::int64_t update(bandwidth_usage usage, std::int64_t acked_bps, std::int64_t now_us, bool urgent = false, double beta = 0) noexcept {
        if (!valid_) return rate_;
        switch (usage) { // the state machine: overuse always decreases, underuse holds
        case bandwidth_usage::normal:
            if (state_ == state::hold) {
                last_change_us_ = now_us;
                state_ = state::increase;
            }
            break;
        case bandwidth_usage::overusing:
            state_ = state::decrease;
            break;
        case bandwidth_usage::underusing:
            state_ = state::hold;
            break;
        }
        const double acked = static_cast<double>(acked_bps);
        if (acked > 0 && cap_ >= 0 && acked > cap_ + 3 * cap_std()) cap_ = -1; // the path got faster
        double next = static_cast<double>(rate_);
        switch (state_) {
        case state::hold:
            break;
        case state::increase: {
            const double dt_s = std::min(static_cast<double>(now_us - last_change_us_) / 1e6, 1.0);
            if (dt_s < 0) break;
            if (cap_ >= 0) next += additive_rate_per_s() * dt_s; // near the known capacity
            else next += std::max(next * (std::pow(1.0 + cfg_.multiplicative_per_s, dt_s) - 1.0), 1000.0 * dt_s);
            // A sender that does not use its rate does not grow it (nor loses it for that).
            if (acked > 0 && next > 1.5 * acked + 10'000.0) next = std::max(static_cast<double>(rate_), 1.5 * acked + 10'000.0);
            last_change_us_ = now_us;
            break;
        }
        case state::decrease: {
            // One decrease per round trip (10-200 ms), unless what gets through is under
            // half the estimate: every detector update of one congestion episode is an
            // overuse, and the throughput it is cut from has not seen the last cut yet.
            const std::int64_t interval = std::clamp<std::int64_t>(rtt_us_, 10'000, 200'000);
            if (!urgent && now_us - last_decrease_us_ < interval && !(acked > 0 && acked < 0.5 * next)) {
                state_ = state::hold;
                break;
            }
            last_decrease_us_ = now_us;
            if (acked > 0) {
                const double b = beta > 0 ? beta : cfg_.beta;
                double d = b * acked;
                if (d > next && cap_ >= 0) d = b * cap_;
                if (d < next) next = d;
                learn_capacity(acked);
            } else {
                next *= cfg_.beta;
            }
            ++decreases_;
            state_ = state::hold;
            last_change_us_ = now_us;
            break;
        }
        }
        rate_ = std::clamp(static_cast<std::int64_t>(next), cfg_.min_bps, cfg_.max_bps);
        return rate_;
    }

    std::uint64_t decreases() const noexcept { return decreases_; }
    /// Drops the learned link capacity (a probe found more): the increase is multiplicative
    /// again until the next over-use.
    void forget_capacity() noexcept { cap_ = -1; }

private:
    double cap_std() const noexcept { return std::sqrt(std::max(cap_var_, 0.0)) * std::max(cap_, 1.0); }
    void learn_capacity(double acked) noexcept {
        // Exponential average of the throughput at overuse, with its normalised variance.
        const double alpha = 0.05;
        if (cap_ < 0) {
            cap_ = acked;
            cap_var_ = 0.4 * 0.4 / 9; // +-40 % (3 std) until learned
            return;
        }
        cap_ = (1 - alpha) * cap_ + alpha * acked;
        const double norm = std::max(cap_, 1.0);
        const double err = (acked - cap_) / norm;
        cap_var_ = std::clamp((1 - alpha) * cap_var_ + alpha * err * err, 0.0004, 0.0178);
    }
    /// About one average packet per response time (100 ms + RTT), from a 30 fps frame size.
    double additive_rate_per_s() const noexcept {
        const double bits_per_frame = static_cast<double>(rate_) / 30.0;
        const double packets = std::ceil(bits_per_frame / (1200.0 * 8.0));
        const double packet_bits = bits_per_frame / std::max(packets, 1.0);
        const double response_s = (100'000.0 + static_cast<double>(rtt_us_)) / 1e6;
        return std::max(packet_bits / response_s, static_cast<double>(cfg_.min_additive_bps_per_s));
    }

    config cfg_;
    std::int64_t rate_ = 300'000;
    bool valid_ = false;
    state state_ = state::hold;
    std::int64_t last_change_us_ = 0;
    std::int64_t rtt_us_ = 200'000;
    std::int64_t last_decrease_us_ = INT64_MIN / 2;
    double cap_ = -1, cap_var_ = 0;
    std::uint64_t decreases_ = 0;
};

} // namespace onair::qos
