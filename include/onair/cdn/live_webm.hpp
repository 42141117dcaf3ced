// onair — one stream as live WebM for any number of HTTP clients.
//
// One muxer per stream (live mode: unknown sizes, a cluster at every video key frame)
// writes each sample once; the bytes become one shared chunk that every client's queue
// references, so a thousand clients cost a thousand queue entries, not a thousand copies.
// A client that joins gets the header and the cluster in progress, which starts at the
// latest key frame (the muxer's since_keyframe()), and then the live chunks: its first picture is a key frame and it is
// at most one GOP behind. While the cluster in progress did not begin at a key frame (the
// stream is audio-first, or a key frame is awaited), new clients wait for the next one.
// A GOP longer than a cluster (5 s) is several clusters: a joining client gets all of them
// back to the key frame.
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
        bool* key_cluster_opened = nullptr;
        void write(std::span<const std::uint8_t> b) { buf->insert(buf->end(), b.begin(), b.end()); }
        void on_cluster_start(bool keyframe) {
            if (keyframe) *key_cluster_opened = true;
        }
    };

public:
    live_webm() = default;
    live_webm(const live_webm&) = delete; // the muxer's output points into this object
    live_webm& operator=(const live_webm&) = delete;

    std::error_code start(const media::tracks& t) {
        mux_.emplace(chunk_output{&pending_, &key_opened_}, t, media::webm_mode::live);
        pending_.clear();
        if (const auto ec = mux_->start()) {
            mux_.reset();
            return ec;
        }
        header_ = std::make_shared<const std::vector<std::uint8_t>>(pending_);
        pending_.clear();
        return {};
    }

    bool started() const noexcept { return mux_.has_value(); }

    void push(const media::sample& s) {
        if (!mux_) return;
        pending_.clear();
        key_opened_ = false;
        if (mux_->write(s)) return;
        if (key_opened_) {
            // This sample opened a cluster a player can start at, and the chunk starts with
            // it: waiting clients join here.
            for (auto& c : waiting_)
                if (c.open() && c.send(header_)) clients_.push_back(std::move(c));
            waiting_.clear();
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
        const auto gop = mux_ ? mux_->since_keyframe() : std::span<const std::uint8_t>{};
        if (gop.empty()) {
            waiting_.push_back(std::move(c));
            return;
        }
        if (!c.send(header_)) return;
        if (!c.send(std::make_shared<const std::vector<std::uint8_t>>(gop.begin(), gop.end()))) return;
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
    bool key_opened_ = false;
    live_webm_stats stats_;
};

} // namespace onair::cdn
