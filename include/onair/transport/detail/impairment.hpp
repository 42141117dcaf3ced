// onair — the impairment model of one direction of an emulated link (see emulated_link.hpp).
//
// Pure and clock-free: offer() takes the instant a datagram enters the link and returns its
// fate (dropped, or one or two release instants). emulated_link applies it in real or virtual
// time; tests drive it directly for statistics over many packets.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace onair::transport {

/// How jitter is drawn around the fixed delay.
enum class jitter_distribution : std::uint8_t {
    uniform, ///< delay + U(-jitter, +jitter)
    normal,  ///< delay + N(0, jitter^2), truncated at +-3 jitter
};

/// One step of a capacity schedule: from `at` after the link started, the bottleneck runs
/// at `kbps` (0 = unlimited).
struct rate_step {
    std::chrono::microseconds at{0};
    double kbps = 0;
};

/// Impairments of one direction. The defaults impair nothing.
struct direction_config {
    /// Long-run share of datagrams lost, 0..100.
    double loss_percent = 0;
    /// Mean length of a loss burst in datagrams. 0: losses are independent (Bernoulli).
    /// >= 1: Gilbert-Elliott bursts (see emulated_link.hpp for the transition formulas);
    /// must satisfy mean_burst >= loss / (1 - loss) with loss as a fraction.
    double mean_burst = 0;
    /// Fixed one-way delay and jitter around it; one-way delay is never below zero.
    std::chrono::microseconds delay{0};
    std::chrono::microseconds jitter{0};
    jitter_distribution distribution = jitter_distribution::uniform;
    /// Whether jitter may reorder datagrams. When false a datagram is never released before
    /// the one that entered the link before it (it waits behind it instead).
    bool reorder = false;
    /// Bottleneck rate in kbit/s (1000 bit/s); 0 = unlimited.
    double rate_kbps = 0;
    /// Drop-tail queue in front of the bottleneck, sized in time at the current rate: a datagram
    /// is dropped when it would wait longer than this (an empty queue always takes one).
    std::chrono::microseconds queue{std::chrono::milliseconds(100)};
    /// Token bucket depth in bytes: this much may pass back-to-back after an idle period.
    /// 0 = a plain serialising link.
    std::size_t bucket_bytes = 0;
    /// Capacity steps applied as the link runs, sorted by `at`; each replaces rate_kbps.
    std::vector<rate_step> schedule;
    /// Share of datagrams sent twice, 0..100 (each copy is queued and delayed on its own).
    double duplicate_percent = 0;
    /// Most datagrams held in the delay line at once; beyond, datagrams are dropped and counted
    /// as queue drops (bounds memory when delay x rate is huge).
    std::size_t max_held = 65536;
};

/// Settings of a whole link: `send` impairs what the owner sends, `receive` what it receives.
struct link_config {
    direction_config send;
    direction_config receive;
    std::uint64_t seed = 1; ///< same seed, same traffic -> same drops, delays and duplicates
};

/// Counters of one direction.
/// Invariant: sent + duplicated == dropped_loss + dropped_queue + delivered + in_flight.
struct direction_stats {
    std::uint64_t sent = 0;          ///< datagrams that entered this direction
    std::uint64_t dropped_loss = 0;  ///< lost (random or burst loss)
    std::uint64_t dropped_queue = 0; ///< drop-tail at the bottleneck, or delay line full
    std::uint64_t duplicated = 0;    ///< extra copies made
    std::uint64_t delivered = 0;     ///< datagrams (copies included) that left the link
    std::uint64_t bytes_delivered = 0;
    std::uint64_t in_flight = 0;     ///< held in the delay line now
    std::chrono::microseconds queue_delay{0};     ///< bottleneck backlog now: the wait of a datagram entering now
    std::chrono::microseconds max_queue_delay{0}; ///< longest queueing delay any datagram had
    double rate_kbps = 0;                         ///< bottleneck rate now (0 = unlimited)
};

namespace detail {

/// splitmix64: seeds the generators below from one 64-bit seed.
inline std::uint64_t splitmix64(std::uint64_t& x) noexcept {
    std::uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/// xoshiro256** with our own uniform and normal draws, so a seed gives the same sequence
/// whatever the standard library (std:: distributions are implementation-defined).
class link_rng {
public:
    explicit link_rng(std::uint64_t seed) noexcept {
        for (auto& w : s_) w = splitmix64(seed);
    }
    std::uint64_t next() noexcept {
        const std::uint64_t r = rotl(s_[1] * 5, 7) * 9;
        const std::uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return r;
    }
    /// Uniform in [0, 1).
    double uniform() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
    /// Standard normal (Box-Muller, both values used).
    double normal() noexcept {
        if (has_spare_) {
            has_spare_ = false;
            return spare_;
        }
        const double u1 = 1.0 - uniform(); // (0, 1]
        const double u2 = uniform();
        const double r = std::sqrt(-2.0 * std::log(u1));
        constexpr double two_pi = 6.283185307179586476925;
        spare_ = r * std::sin(two_pi * u2);
        has_spare_ = true;
        return r * std::cos(two_pi * u2);
    }

private:
    static std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }
    std::array<std::uint64_t, 4> s_{};
    double spare_ = 0;
    bool has_spare_ = false;
};

/// Throws std::invalid_argument naming the first bad setting.
inline void validate(const direction_config& c, const char* dir) {
    auto fail = [&](const std::string& what) {
        throw std::invalid_argument(std::string("emulated_link ") + dir + ": " + what);
    };
    auto percent = [](double p) { return p >= 0 && p <= 100; }; // also rejects NaN
    if (!percent(c.loss_percent)) fail("loss_percent must be within 0..100");
    if (!percent(c.duplicate_percent)) fail("duplicate_percent must be within 0..100");
    if (!(c.mean_burst == 0 || c.mean_burst >= 1) || !std::isfinite(c.mean_burst))
        fail("mean_burst must be 0 (independent losses) or >= 1");
    if (c.mean_burst >= 1 && c.loss_percent > 0 && c.loss_percent < 100) {
        const double pi = c.loss_percent / 100;
        if (c.mean_burst < pi / (1 - pi) * (1 - 1e-12))
            fail("mean_burst is too short for that loss rate (needs >= loss/(1-loss))");
    }
    if (c.delay.count() < 0 || c.jitter.count() < 0) fail("delay and jitter must not be negative");
    if (!(c.rate_kbps >= 0) || !std::isfinite(c.rate_kbps)) fail("rate_kbps must be >= 0");
    if (c.queue.count() < 0) fail("queue must not be negative");
    for (std::size_t i = 0; i < c.schedule.size(); ++i) {
        if (!(c.schedule[i].kbps >= 0) || !std::isfinite(c.schedule[i].kbps)) fail("schedule rates must be >= 0");
        if (c.schedule[i].at.count() < 0 || (i && c.schedule[i].at < c.schedule[i - 1].at))
            fail("schedule steps must have non-negative, non-decreasing offsets");
    }
    if (c.max_held == 0) fail("max_held must be at least 1");
}

/// The fate of one datagram: `copies` release instants (0 = dropped), and for each the
/// instant it left the bottleneck (release - depart is the propagation delay + jitter).
struct verdict {
    using time_point = std::chrono::steady_clock::time_point;
    std::size_t copies = 0;
    std::array<time_point, 2> release{};
    std::array<time_point, 2> depart{};
};

/// One direction's impairments, applied in this order: loss, duplication, bottleneck
/// (token bucket + drop-tail queue, capacity schedule), delay + jitter, order keeping.
/// Loss, duplication and jitter draw from separate generators, so e.g. changing the delay
/// does not change which datagrams are lost.
class impairment {
public:
    using clock_type = std::chrono::steady_clock;
    using time_point = clock_type::time_point;
    using duration = clock_type::duration;

    /// `start` is the origin of the capacity schedule. Throws std::invalid_argument.
    impairment(const direction_config& cfg, std::uint64_t seed, time_point start, const char* name = "direction")
        : cfg_((validate(cfg, name), cfg)), loss_rng_(seed ^ 0x6c6f7373ULL), dup_rng_(seed ^ 0x64757031ULL),
          jitter_rng_(seed ^ 0x6a697474ULL), start_(start), tail_(start), last_release_(start),
          rate_kbps_(cfg.rate_kbps), tokens_(static_cast<double>(cfg.bucket_bytes)) {
        const double pi = cfg_.loss_percent / 100;
        loss_ = pi;
        if (cfg_.mean_burst >= 1 && pi > 0 && pi < 1) {
            gilbert_ = true;
            r_ = 1 / cfg_.mean_burst;
            p_ = std::min(1.0, r_ * pi / (1 - pi));
            bad_ = loss_rng_.uniform() < pi; // start in the stationary distribution
        }
        dup_ = cfg_.duplicate_percent / 100;
        stats_.rate_kbps = rate_kbps_;
    }

    const direction_config& config() const noexcept { return cfg_; }

    /// Decides what happens to a datagram of `bytes` entering the link at `now` (instants
    /// must not decrease from one call to the next).
    verdict offer(time_point now, std::size_t bytes) {
        verdict v;
        ++stats_.sent;
        if (lose()) {
            ++stats_.dropped_loss;
            return v;
        }
        std::size_t n = 1;
        if (dup_ > 0 && dup_rng_.uniform() < dup_) {
            ++stats_.duplicated;
            n = 2;
        }
        for (std::size_t i = 0; i < n; ++i) {
            time_point depart;
            if (!enqueue(now, bytes, depart)) {
                ++stats_.dropped_queue;
                continue;
            }
            time_point release = depart + sample_delay();
            if (!cfg_.reorder) release = std::max(release, last_release_);
            last_release_ = std::max(last_release_, release);
            v.release[v.copies] = release;
            v.depart[v.copies] = depart;
            ++v.copies;
        }
        return v;
    }

    /// The link handed one datagram of `bytes` on.
    void count_delivered(std::size_t bytes) noexcept {
        ++stats_.delivered;
        stats_.bytes_delivered += bytes;
    }
    /// The link could not hold an admitted datagram (delay line full, too large to copy).
    void count_overflow() noexcept { ++stats_.dropped_queue; }

    /// Counters, with the backlog and rate as of `now` (in_flight is the link's to fill in).
    direction_stats stats(time_point now) const noexcept {
        direction_stats s = stats_;
        s.queue_delay = std::chrono::duration_cast<std::chrono::microseconds>(std::max(duration::zero(), tail_ - now));
        s.rate_kbps = rate_at(now);
        return s;
    }

    /// The bottleneck rate in force at `now` (0 = unlimited); `now` must not precede the last offer.
    double rate_at(time_point now) const noexcept {
        double r = rate_kbps_;
        for (std::size_t i = next_step_; i < cfg_.schedule.size() && start_ + cfg_.schedule[i].at <= now; ++i)
            r = cfg_.schedule[i].kbps;
        return r;
    }

private:
    bool lose() {
        if (loss_ <= 0) return false;
        if (loss_ >= 1) return true;
        if (!gilbert_) return loss_rng_.uniform() < loss_;
        // The state of this datagram decides its fate; then the chain moves on.
        const bool lost = bad_;
        const double u = loss_rng_.uniform();
        bad_ = bad_ ? (u >= r_) : (u < p_);
        return lost;
    }

    /// Token bucket at the current rate feeding a drop-tail queue. Departures are FIFO and
    /// computed on arrival: tail_ is when the previous datagram left, tokens_ the bucket then.
    bool enqueue(time_point now, std::size_t bytes, time_point& depart) {
        while (next_step_ < cfg_.schedule.size() && start_ + cfg_.schedule[next_step_].at <= now)
            rate_kbps_ = cfg_.schedule[next_step_++].kbps;
        const time_point begin = std::max(now, tail_);
        const double depth = static_cast<double>(cfg_.bucket_bytes);
        double tokens = depth;
        if (rate_kbps_ <= 0) {
            depart = begin; // unlimited, but FIFO behind what is still queued
        } else {
            const double bytes_per_ns = rate_kbps_ / 8e6; // kbit/s = 1000/8 bytes per 1e9 ns
            const double idle_ns = static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(begin - tail_).count());
            tokens = std::min(depth, tokens_ + idle_ns * bytes_per_ns);
            const double need = static_cast<double>(bytes);
            if (tokens >= need) {
                depart = begin;
                tokens -= need;
            } else {
                const double wait_ns = std::ceil((need - tokens) / bytes_per_ns);
                depart = begin + std::chrono::duration_cast<duration>(std::chrono::nanoseconds(static_cast<std::int64_t>(
                                     std::min(wait_ns, 1e17))));
                tokens = 0;
            }
        }
        const duration wait = depart - now;
        if (tail_ > now && wait > cfg_.queue) return false; // drop-tail: the queue is full
        tail_ = depart;
        tokens_ = tokens;
        const auto us = std::chrono::duration_cast<std::chrono::microseconds>(wait);
        stats_.max_queue_delay = std::max(stats_.max_queue_delay, us);
        return true;
    }

    duration sample_delay() {
        const double base = static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(cfg_.delay).count());
        const double j = static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(cfg_.jitter).count());
        double x = 0;
        if (j > 0) {
            if (cfg_.distribution == jitter_distribution::uniform) {
                x = (2 * jitter_rng_.uniform() - 1) * j;
            } else {
                double z;
                do z = jitter_rng_.normal();
                while (std::abs(z) > 3);
                x = z * j;
            }
        }
        const double total = std::max(0.0, std::round(base + x));
        return std::chrono::duration_cast<duration>(std::chrono::nanoseconds(static_cast<std::int64_t>(total)));
    }

    direction_config cfg_;
    link_rng loss_rng_, dup_rng_, jitter_rng_;
    double loss_ = 0, dup_ = 0;
    bool gilbert_ = false, bad_ = false;
    double p_ = 0, r_ = 1; // Gilbert-Elliott: P(good -> bad), P(bad -> good)
    time_point start_, tail_, last_release_;
    double rate_kbps_;
    double tokens_;
    std::size_t next_step_ = 0;
    direction_stats stats_;
};

} // namespace detail
} // namespace onair::transport
