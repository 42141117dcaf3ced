// onair — basic_participant: one person in an interactive room, with media.
//
// Joins a room through the room service, publishes its own stream whenever its role allows
// (host, or co-host once an invitation is accepted) and plays every other stream in the
// room as it appears, each with the ticket the room service grants. Co-hosting in a few
// lines: three participants in one room, the host inviting the other two, each see and
// hear the other two (examples/cohost).
//
// The room's events still reach the application: the handlers given here are called after
// the participant's own bookkeeping.
#pragma once

#include "onair/control/room.hpp"
#include "onair/control/room_client.hpp"
#include "onair/host.hpp"
#include "onair/viewer.hpp"

#include <asio/io_context.hpp>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace onair {

/// @tparam Codec     codec::av<Video, Audio>, the same for every participant of the room
/// @tparam Sink      a sink::media_sink for each remote stream played (made by a factory)
/// @tparam Transport a transport::transport (udp)
///
/// Thread safety: push_video/push_audio and the *_stats() functions from any thread; start(),
/// stop() and room() on the io_context's thread (or before it runs). Destroy after the
/// io_context has stopped running (hosts and viewers left behind by stop() finish their
/// handlers on it).
template <class Codec, class Sink = sink::null, class Transport = transport::udp>
class basic_participant {
public:
    using host_type = basic_host<Codec, Transport>;
    using viewer_type = basic_viewer<Codec, Transport, Sink>;
    using json = nlohmann::json;

    struct config {
        control::room_client_config room;  ///< service, token, room, login role
        transport::endpoint relay;         ///< the relay's media address
        std::string stream;                ///< this participant's stream in the room; empty: never publishes
        typename host_type::config host{}; ///< codec and QoS settings; relay, stream and ticket are set here
        typename viewer_type::config viewer{};
        bool play_others = true;
    };
    /// Makes the sink for a remote stream: (publishing user, stream name in the room).
    using sink_factory = std::function<Sink(const std::string& user, const std::string& stream)>;

    /// One played stream.
    struct remote {
        std::string user, stream;
        viewer_stats stats;
    };

    basic_participant(config cfg, asio::io_context& io, sink_factory make_sink = {}, control::room_client_handlers app = {})
        : cfg_(std::move(cfg)), io_(io), make_sink_(std::move(make_sink)), app_(std::move(app)),
          room_(io.get_executor(), cfg_.room, handlers()) {}
    basic_participant(const basic_participant&) = delete;
    basic_participant& operator=(const basic_participant&) = delete;

    /// Connects and logs in; media follows the room's events.
    void start(control::room_client::reply_handler done = {}) {
        room_.connect([this, done = std::move(done)](std::error_code ec, const json& reply) {
            if (done) done(ec, reply);
        });
    }

    /// Stops publishing and playing and logs out.
    void stop() {
        stop_publishing();
        std::vector<std::string> names;
        {
            std::lock_guard lock(mu_);
            for (const auto& [n, v] : viewers_) names.push_back(n);
        }
        for (const auto& n : names) stop_playing(n);
        if (room_.logged_in()) room_.logout();
    }

    /// Raw frames for this participant's stream; dropped while it is not publishing.
    std::error_code push_video(video_frame f) {
        std::lock_guard lock(host_mu_);
        if (!publishing_) return errc::unknown_stream;
        return host_->push_video(std::move(f));
    }
    std::error_code push_audio(audio_frame f) {
        std::lock_guard lock(host_mu_);
        if (!publishing_) return errc::unknown_stream;
        return host_->push_audio(std::move(f));
    }

    bool publishing() const {
        std::lock_guard lock(host_mu_);
        return publishing_;
    }
    host_stats publish_stats() const {
        std::lock_guard lock(host_mu_);
        return host_ ? host_->stats() : last_host_stats_;
    }
    /// Every stream played now, with its viewer's stats (latency: capture at its host to
    /// render here).
    std::vector<remote> remote_stats() const {
        std::lock_guard lock(mu_);
        std::vector<remote> out;
        for (const auto& [n, v] : viewers_) out.push_back({v.user, v.stream, v.viewer->stats()});
        return out;
    }

    control::room_client& room() noexcept { return room_; }

private:
    struct played {
        std::string user, stream;
        std::unique_ptr<viewer_type> viewer;
    };

    control::room_client_handlers handlers() {
        control::room_client_handlers h = app_;
        h.on_login = [this](const json& reply) {
            after_login(reply);
            if (app_.on_login) app_.on_login(reply);
        };
        h.on_stream_added = [this](const json& m) {
            consider(m.value("user", std::string()), m.value("stream", std::string()));
            if (app_.on_stream_added) app_.on_stream_added(m);
        };
        h.on_stream_removed = [this](const json& m) {
            stop_playing(m.value("stream", std::string()));
            if (app_.on_stream_removed) app_.on_stream_removed(m);
        };
        h.on_role_changed = [this](const json& m) {
            if (m.value("user", std::string()) == room_.user()) {
                if (room_.current_role() == control::role::audience) stop_publishing();
                else start_publishing();
            }
            if (app_.on_role_changed) app_.on_role_changed(m);
        };
        h.on_cohost_ended = [this](const json& m) {
            stop_publishing();
            if (app_.on_cohost_ended) app_.on_cohost_ended(m);
        };
        return h;
    }

    void after_login(const json& reply) {
        if (room_.current_role() != control::role::audience) start_publishing();
        if (auto st = reply.find("streams"); st != reply.end() && st->is_array())
            for (const auto& s : *st) consider(s.value("user", std::string()), s.value("stream", std::string()));
    }

    void consider(const std::string& user, const std::string& stream) {
        if (!cfg_.play_others || user.empty() || stream.empty() || user == room_.user()) return;
        {
            std::lock_guard lock(mu_);
            if (viewers_.contains(stream) || asked_.contains(stream)) return;
            asked_.insert(stream);
        }
        room_.play(stream, [this, user, stream](std::error_code ec, const json& reply) {
            std::lock_guard lock(mu_);
            asked_.erase(stream);
            if (ec || viewers_.contains(stream) || !room_.streams().contains(stream)) return;
            auto vc = cfg_.viewer;
            vc.relay = cfg_.relay;
            vc.stream = reply.value("media_stream", std::string());
            vc.ticket = reply.value("ticket", std::string());
            auto v = std::make_unique<viewer_type>(std::move(vc), make_sink_ ? make_sink_(user, stream) : Sink{}, io_, transport::endpoint{});
            if (v->start()) return;
            viewers_.emplace(stream, played{user, stream, std::move(v)});
        });
    }

    void stop_playing(const std::string& stream) {
        std::lock_guard lock(mu_);
        auto it = viewers_.find(stream);
        if (it == viewers_.end()) return;
        it->second.viewer->stop();
        retired_viewers_.push_back(std::move(it->second.viewer)); // its handlers may still be queued
        viewers_.erase(it);
    }

    void start_publishing() {
        if (cfg_.stream.empty() || publish_requested_) return;
        publish_requested_ = true;
        room_.publish(cfg_.stream, [this](std::error_code ec, const json& reply) {
            if (ec) {
                publish_requested_ = false;
                return;
            }
            auto hc = cfg_.host;
            hc.relay = cfg_.relay;
            hc.stream = reply.value("media_stream", std::string());
            hc.ticket = reply.value("ticket", std::string());
            auto h = std::make_unique<host_type>(std::move(hc), sink::null{}, io_, transport::endpoint{});
            if (h->start()) {
                publish_requested_ = false;
                return;
            }
            std::lock_guard lock(host_mu_);
            if (host_) retired_hosts_.push_back(std::move(host_));
            host_ = std::move(h);
            publishing_ = true;
        });
    }

    void stop_publishing() {
        if (!publish_requested_) return;
        publish_requested_ = false;
        std::unique_ptr<host_type> h;
        {
            std::lock_guard lock(host_mu_);
            publishing_ = false;
            h = std::move(host_);
            last_host_stats_ = h ? h->stats() : host_stats{};
        }
        if (h) {
            h->stop();
            retired_hosts_.push_back(std::move(h)); // stop() left a handler on the io_context
        }
        if (room_.logged_in() && room_.streams().contains(cfg_.stream)) room_.unpublish(cfg_.stream);
    }

    config cfg_;
    asio::io_context& io_;
    sink_factory make_sink_;
    control::room_client_handlers app_;
    control::room_client room_;
    mutable std::mutex mu_; // viewers_
    std::map<std::string, played> viewers_;
    std::set<std::string> asked_;
    std::vector<std::unique_ptr<viewer_type>> retired_viewers_;
    mutable std::mutex host_mu_; // host_, publishing_
    std::unique_ptr<host_type> host_;
    std::vector<std::unique_ptr<host_type>> retired_hosts_;
    host_stats last_host_stats_{};
    bool publishing_ = false;
    bool publish_requested_ = false;
};

} // namespace onair
