// onair — one stream as live WebM for any number of HTTP clients.
//
// One muxer per stream (live mode: unknown sizes, a cluster at every video key frame)
// writes each sample once; the bytes become one shared chunk that every client's queue
// references, so a thousand clients cost a thousand queue entries, not a thousand copies.
// A client that joins gets the header and the cluster in progress, which starts at the
// latest key frame, and then the live chunks: its first picture is a key frame and it is
// at most one GOP behind. While the cluster in progress did not begin at a key frame (the
// stream is audio-first, or a key frame is awaited), new clients wait for the next one.
//
// Client: a handle with `bool send(std::shared_ptr<const std::vector<std::uint8_t>>)`
// (false: the client is gone or too slow and was dropped) and `bool open() const`.
#pragma once

#include "onair/core/error.hpp"
#include "onair/media/tracks.hpp"
#include "onair/media/webm_muxer.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <system_error>
#include <utility>
#include <vector>

namespace onair::cdn {

struct live_webm_stats {
    std::uint64_t clients_joined = 0;
    std::uint64_t clients_left = 0;  ///< closed, or dropped as too slow
    std::uint64_t chunks = 0;
    std::uint64_t bytes = 0;         ///< muxed (once, whatever the number of clients)
};

/// Thread safety: none; used from the relay's network thread.
template <class Client>
class live_webm {
    // The muxer writes into the chunk being built.
    struct chunk_output {
        std::vector<std::uint8_t>* buf = nullptr;
        void write(std::span<const std::uint8_t> b) { buf->insert(buf->end(), b.begin(), b.end()); }
    };

public:
    live_webm() = default;
    live_webm(const live_webm&) = delete; // the muxer's output points into this object
    live_webm& operator=(const live_webm&) = delete;

    std::error_code start(const media::tracks& t) {
        mux_.emplace(chunk_output{&pending_}, t, media::webm_mode::live);
        pending_.clear();
        if (const auto ec = mux_->start()) {
            mux_.reset();
            return ec;
        }
        header_ = std::make_shared<const std::vector<std::uint8_t>>(pending_);
        pending_.clear();
        key_cluster_ = false;
        video_ = t.video.has_value();
        return {};
    }

    bool started() const noexcept { return mux_.has_value(); }

    void push(const media::sample& s) {
        if (!mux_) return;
        const auto clusters = mux_->stats().clusters;
        pending_.clear();
        if (mux_->write(s)) return;
        if (mux_->stats().clusters != clusters) {
            // This sample opened a cluster: the chunk starts with it. Waiting clients join here.
            key_cluster_ = !video_ || (s.kind == media_kind::video && s.keyframe);
            if (key_cluster_) {
                for (auto& c : waiting_)
                    if (c.open() && c.send(header_)) clients_.push_back(std::move(c));
                waiting_.clear();
            }
        }
        if (pending_.empty()) return;
        auto chunk = std::make_shared<const std::vector<std::uint8_t>>(std::move(pending_));
        pending_ = {};
        ++stats_.chunks;
        stats_.bytes += chunk->size();
        std::erase_if(clients_, [&](Client& c) {
            if (c.open() && c.send(chunk)) return false;
            ++stats_.clients_left;
            return true;
        });
    }

    /// A new client: served from the latest key frame at once, or from the next one.
    void add(Client c) {
        ++stats_.clients_joined;
        if (!mux_ || !key_cluster_) {
            waiting_.push_back(std::move(c));
            return;
        }
        const auto cluster = mux_->current_cluster();
        if (!c.send(header_)) return;
        if (!cluster.empty() && !c.send(std::make_shared<const std::vector<std::uint8_t>>(cluster.begin(), cluster.end()))) return;
        clients_.push_back(std::move(c));
    }

    /// Ends every client's response (the stream stopped).
    template <class End>
    void end(End&& end_client) {
        for (auto& c : clients_) end_client(c);
        for (auto& c : waiting_) end_client(c);
        clients_.clear();
        waiting_.clear();
    }

    std::size_t clients() const noexcept { return clients_.size() + waiting_.size(); }
    const live_webm_stats& stats() const noexcept { return stats_; }

private:
    std::optional<media::webm_muxer<chunk_output>> mux_;
    std::vector<std::uint8_t> pending_;
    std::shared_ptr<const std::vector<std::uint8_t>> header_;
    std::vector<Client> clients_;
    std::vector<Client> waiting_;
    bool key_cluster_ = false;
    bool video_ = false;
    live_webm_stats stats_;
};

} // namespace onair::cdn
