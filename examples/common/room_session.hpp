// onair examples — a host's or viewer's session with the room service (onair-relay
// --control): logs in with a token, asks to publish or play a stream, and hands back the
// stream's media name and ticket. The session must stay open while the media flows: the
// room service withdraws the grant when its member leaves.
#pragma once

#include "common/cli.hpp"

#include <onair/control/room_client.hpp>

#include <asio/io_context.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

namespace onair_examples {

struct media_grant {
    std::string media_stream, ticket;
};

/// Reads --control, --token, --room; `active()` is false when --control was not given.
class room_session {
public:
    room_session(const command_line& cli, asio::io_context& io, const char* default_role) : io_(io) {
        if (!cli.has("control")) return;
        const auto ep = parse_endpoint(cli.get("control"), "--control");
        onair::control::room_client_config c;
        c.server = asio::ip::tcp::endpoint(ep.address(), ep.port());
        c.token = cli.get("token");
        c.room = cli.get("room");
        if (c.token.empty() || c.room.empty()) throw usage_error("--control needs --token and --room");
        c.login_role = cli.get("role", default_role) == "audience" ? onair::control::role::audience : onair::control::role::host;
        client_ = std::make_unique<onair::control::room_client>(io.get_executor(), std::move(c));
    }
    bool active() const noexcept { return client_ != nullptr; }
    /// Closes the session (the room service then withdraws the grant). On the io thread.
    void end() {
        if (client_) client_->close();
    }

    /// Logs in and asks for `stream` (publish or play), running `io` until answered (at most
    /// `timeout`; a play waits for the stream to be published). Throws with the refusal.
    media_grant acquire(bool publish, const std::string& stream, std::chrono::milliseconds timeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        std::error_code failed;
        bool in = false;
        client_->connect([&](std::error_code ec, const nlohmann::json&) {
            if (ec) failed = ec;
            else in = true;
        });
        run_until([&] { return in || failed; }, deadline);
        if (!in) throw std::runtime_error("room service login: " + (failed ? failed.message() : std::string("no answer")));
        std::optional<media_grant> grant;
        while (!grant && std::chrono::steady_clock::now() < deadline) {
            if (!publish && !client_->streams().contains(stream)) { // not published yet: wait for it
                run_until([&] { return client_->streams().contains(stream); }, std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(200)));
                continue;
            }
            bool answered = false;
            auto done = [&](std::error_code ec, const nlohmann::json& r) {
                answered = true;
                if (ec) failed = ec;
                else grant = media_grant{r.value("media_stream", std::string()), r.value("ticket", std::string())};
            };
            if (publish) client_->publish(stream, done);
            else client_->play(stream, done);
            run_until([&] { return answered; }, deadline);
            if (failed && failed != onair::control::errc::unknown_stream) break;
            failed = {};
        }
        if (!grant) throw std::runtime_error("room service: " + std::string(publish ? "publish" : "play") + " '" + stream +
                                             "': " + (failed ? failed.message() : std::string("timed out")));
        return *grant;
    }

private:
    template <class Pred>
    void run_until(Pred done, std::chrono::steady_clock::time_point deadline) {
        while (!done() && std::chrono::steady_clock::now() < deadline) {
            io_.run_for(std::chrono::milliseconds(20));
            if (io_.stopped()) io_.restart();
        }
    }
    asio::io_context& io_;
    std::unique_ptr<onair::control::room_client> client_;
};

} // namespace onair_examples
