// onair — small statistics helpers: percentiles over recorded samples.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

namespace onair {

/// Collects samples and answers nearest-rank percentiles. Meant for reports, not hot paths.
class sample_set {
public:
    void add(double v) { v_.push_back(v); sorted_ = false; }
    std::size_t count() const noexcept { return v_.size(); }
    bool empty() const noexcept { return v_.empty(); }

    /// Nearest-rank percentile, p in [0, 100]. Returns 0 when empty.
    double percentile(double p) const {
        if (v_.empty()) return 0.0;
        sort();
        const double rank = std::ceil(p / 100.0 * static_cast<double>(v_.size()));
        const auto idx = static_cast<std::size_t>(std::clamp(rank, 1.0, static_cast<double>(v_.size()))) - 1;
        return v_[idx];
    }
    double mean() const {
        if (v_.empty()) return 0.0;
        double s = 0;
        for (double x : v_) s += x;
        return s / static_cast<double>(v_.size());
    }
    double max() const { return v_.empty() ? 0.0 : (sort(), v_.back()); }

private:
    void sort() const {
        if (!sorted_) { std::sort(v_.begin(), v_.end()); sorted_ = true; }
    }
    mutable std::vector<double> v_;
    mutable bool sorted_ = true;
};

} // namespace onair
