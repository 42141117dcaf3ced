// onair — room_client: the application's side of the room service.
//
// Connects, logs in with a token, keeps the session alive with heartbeats, and keeps a
// view of the room (members when the room is small enough to list them, member count,
// streams, likes) up to date from the service's events. Every event has a callback;
// every request takes an optional completion that gets the reply or the error.
//
// Usable alone (a chat-only application) or beside a host or viewer: publish() and play()
// return the ticket the media session's hello carries.
#pragma once

#include "onair/control/error.hpp"
#include "onair/control/framing.hpp"
#include "onair/control/room.hpp"

#include <asio/connect.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace onair::control {

struct room_client_config {
    asio::ip::tcp::endpoint server;
    std::string token;
    std::string room;
    role login_role = role::audience;
    std::size_t max_frame = 8 * 1024 * 1024; ///< the login reply carries history and lists
    /// On a reconnect: the last chat/gift seq already seen, so the history starts after it.
    std::uint64_t since = 0;
};

/// Callbacks for the service's events, all called on the client's executor. Unset ones
/// are skipped; on_event sees every event (after the specific callback).
struct room_client_handlers {
    using event = std::function<void(const nlohmann::json&)>;
    event on_login;                           ///< the login reply (users, streams, history...)
    std::function<void(std::error_code)> on_closed; ///< the session ended (errc from the service, or a socket error)
    event on_chat, on_gift, on_barrage, on_likes, on_command;
    event on_user_joined, on_user_left, on_user_count, on_role_changed;
    event on_stream_added, on_stream_removed, on_template;
    event on_quiz, on_quiz_tally, on_quiz_result;
    event on_cohost_invited, on_cohost_requested, on_cohost_answered, on_cohost_ended;
    event on_event;
};

/// Thread safety: call everything on the executor's thread (asio::post from elsewhere).
class room_client {
public:
    using json = nlohmann::json;
    using tcp = asio::ip::tcp;
    /// Completion of a request: errc::ok and the reply, or the service's error and its message.
    using reply_handler = std::function<void(std::error_code, const json&)>;

    room_client(asio::any_io_executor ex, room_client_config cfg, room_client_handlers h = {})
        : state_(std::make_shared<state>(ex, std::move(cfg), std::move(h))) {}
    room_client(const room_client&) = delete;
    room_client& operator=(const room_client&) = delete;
    ~room_client() { close(); }

    /// Connects and logs in; `done` gets the login's outcome.
    void connect(reply_handler done = {}) {
        auto s = state_;
        s->socket.async_connect(s->cfg.server, [s, done = std::move(done)](std::error_code ec) mutable {
            if (s->closed) return;
            if (ec) {
                if (done) done(ec, nullptr);
                return s->end(ec);
            }
            std::error_code ignored;
            s->socket.set_option(tcp::no_delay(true), ignored);
            s->connected = true;
            s->read();
            json login{{"type", "login"}, {"token", s->cfg.token}, {"room", s->cfg.room}, {"role", role_name(s->cfg.login_role)}};
            if (s->cfg.since) login["since"] = s->cfg.since;
            s->request(std::move(login), [s, done = std::move(done)](std::error_code e, const json& reply) {
                if (!e) s->logged_in(reply);
                if (done) done(e, reply);
            });
        });
    }

    /// Logs out (the service closes the connection after replying).
    void logout(reply_handler done = {}) { state_->request({{"type", "logout"}}, std::move(done)); }
    /// Closes the connection at once (the service sees a disconnect).
    void close() { state_->end(asio::error::operation_aborted, false); }

    void chat(std::string text, reply_handler done = {}) { state_->request({{"type", "chat"}, {"text", std::move(text)}}, std::move(done)); }
    void barrage(std::string text, reply_handler done = {}) { state_->request({{"type", "barrage"}, {"text", std::move(text)}}, std::move(done)); }
    void like(unsigned count = 1, reply_handler done = {}) { state_->request({{"type", "like"}, {"count", count}}, std::move(done)); }
    void command(std::vector<std::string> to, json data, reply_handler done = {}) {
        state_->request({{"type", "command"}, {"to", std::move(to)}, {"data", std::move(data)}}, std::move(done));
    }
    void add_template(json tmpl, reply_handler done = {}) { state_->request({{"type", "add_template"}, {"template", std::move(tmpl)}}, std::move(done)); }
    void gift(std::string tmpl, json fields, reply_handler done = {}) {
        state_->request({{"type", "gift"}, {"template", std::move(tmpl)}, {"fields", std::move(fields)}}, std::move(done));
    }
    void quiz(std::string question, std::vector<std::string> options, std::chrono::milliseconds duration,
              std::optional<std::size_t> answer = std::nullopt, reply_handler done = {}) {
        json q{{"type", "quiz"}, {"question", std::move(question)}, {"options", std::move(options)}, {"duration_ms", duration.count()}};
        if (answer) q["answer"] = *answer;
        state_->request(std::move(q), std::move(done));
    }
    void answer(std::uint64_t quiz, std::size_t option, reply_handler done = {}) {
        state_->request({{"type", "quiz_answer"}, {"quiz", quiz}, {"option", option}}, std::move(done));
    }
    /// Asks to publish `stream`; the reply's "ticket" goes into the host's hello.
    void publish(std::string stream, reply_handler done) { state_->request({{"type", "publish"}, {"stream", std::move(stream)}}, std::move(done)); }
    void unpublish(std::string stream, reply_handler done = {}) { state_->request({{"type", "unpublish"}, {"stream", std::move(stream)}}, std::move(done)); }
    /// Asks to play `stream`; the reply's "ticket" goes into the viewer's hello.
    void play(std::string stream, reply_handler done) { state_->request({{"type", "play"}, {"stream", std::move(stream)}}, std::move(done)); }
    void invite_cohost(std::string user, reply_handler done = {}) { state_->request({{"type", "cohost_invite"}, {"user", std::move(user)}}, std::move(done)); }
    void request_cohost(reply_handler done = {}) { state_->request({{"type", "cohost_request"}}, std::move(done)); }
    void answer_cohost(std::uint64_t invite, bool accept, reply_handler done = {}) {
        state_->request({{"type", "cohost_answer"}, {"invite", invite}, {"accept", accept}}, std::move(done));
    }
    /// Ends `user`'s co-hosting (the host), or one's own (empty `user`).
    void end_cohost(std::string user = {}, reply_handler done = {}) {
        json r{{"type", "cohost_end"}};
        if (!user.empty()) r["user"] = std::move(user);
        state_->request(std::move(r), std::move(done));
    }
    /// Any request (its "id" is set here).
    void request(json req, reply_handler done = {}) { state_->request(std::move(req), std::move(done)); }

    bool logged_in() const noexcept { return state_->in; }
    const std::string& user() const noexcept { return state_->user; }
    role current_role() const noexcept { return state_->my_role; }
    /// Members by user id with their role (while the room is small enough to be listed).
    const std::map<std::string, role>& members() const noexcept { return state_->members; }
    std::size_t member_count() const noexcept { return state_->member_count; }
    /// Live streams: name -> publishing user.
    const std::map<std::string, std::string>& streams() const noexcept { return state_->streams; }
    std::uint64_t likes() const noexcept { return state_->likes; }
    std::uint64_t frames_received() const noexcept { return state_->frames; }
    std::uint64_t bad_frames() const noexcept { return state_->bad; }

private:
    // Shared with the handlers in flight, so a client may be destroyed while they are queued.
    struct state : std::enable_shared_from_this<state> {
        state(asio::any_io_executor e, room_client_config c, room_client_handlers hh)
            : ex(e), socket(e), heartbeat(e), cfg(std::move(c)), h(std::move(hh)), reader(cfg.max_frame) {}
        asio::any_io_executor ex;
        tcp::socket socket;
        asio::steady_timer heartbeat;
        room_client_config cfg;
        room_client_handlers h;
        frame_reader reader;
        std::vector<shared_frames> pending, inflight;
        std::vector<asio::const_buffer> buffers;
        std::map<std::uint64_t, reply_handler> waiting;
        std::uint64_t next_id = 0, frames = 0, bad = 0;
        bool connected = false, writing = false, closed = false, in = false;
        std::string user;
        role my_role = role::audience;
        std::map<std::string, role> members;
        std::size_t member_count = 0;
        std::map<std::string, std::string> streams;
        std::uint64_t likes = 0;
        std::chrono::milliseconds heartbeat_every{5000};

        void request(json req, reply_handler done) {
            if (closed) {
                if (done) done(make_error_code(errc::not_logged_in), nullptr);
                return;
            }
            if (done) {
                const std::uint64_t id = ++next_id;
                req["id"] = id;
                waiting.emplace(id, std::move(done));
            }
            send(make_frame(req.dump()));
        }
        void send(shared_frames f) {
            pending.push_back(std::move(f));
            if (connected && !writing) write();
        }
        void write() {
            writing = true;
            inflight.swap(pending);
            pending.clear();
            buffers.clear();
            for (const auto& f : inflight) buffers.emplace_back(f->data(), f->size());
            asio::async_write(socket, buffers, [self = shared_from_this()](std::error_code ec, std::size_t) {
                self->writing = false;
                self->inflight.clear();
                if (self->closed) return;
                if (ec) return self->end(ec);
                if (!self->pending.empty()) self->write();
            });
        }
        void read() {
            auto buf = reader.prepare(16 * 1024);
            socket.async_read_some(asio::buffer(buf.data(), buf.size()), [self = shared_from_this()](std::error_code ec, std::size_t n) {
                if (self->closed) return;
                if (ec) return self->end(ec == asio::error::eof ? self->close_reason : ec);
                self->reader.commit(n);
                std::string_view body;
                for (;;) {
                    const auto st = self->reader.next(body);
                    if (st == frame_reader::status::need_more) break;
                    if (st == frame_reader::status::error) return self->end(make_error_code(errc::bad_frame));
                    ++self->frames;
                    try {
                        self->on_frame(body);
                    } catch (const nlohmann::json::exception&) {
                        ++self->bad; // a field of an unexpected type: that message is skipped
                    }
                    if (self->closed) return;
                }
                self->read();
            });
        }
        void arm_heartbeat() {
            heartbeat.expires_after(heartbeat_every);
            heartbeat.async_wait([self = shared_from_this()](std::error_code ec) {
                if (ec || self->closed) return;
                self->send(make_frame(R"({"type":"heartbeat"})"));
                self->arm_heartbeat();
            });
        }
        void logged_in(const json& reply) {
            in = true;
            user = reply.value("user", std::string());
            if (auto r = parse_role(reply.value("role", std::string("audience")))) my_role = *r;
            member_count = reply.value("user_count", std::size_t{0});
            likes = reply.value("likes", std::uint64_t{0});
            members.clear();
            if (auto u = reply.find("users"); u != reply.end() && u->is_array())
                for (const auto& m : *u)
                    if (m.is_object()) members[m.value("user", std::string())] = parse_role(m.value("role", std::string())).value_or(role::audience);
            streams.clear();
            if (auto st = reply.find("streams"); st != reply.end() && st->is_array())
                for (const auto& x : *st)
                    if (x.is_object()) streams[x.value("stream", std::string())] = x.value("user", std::string());
            heartbeat_every = std::chrono::milliseconds(std::max<std::int64_t>(100, reply.value("heartbeat_ms", std::int64_t{5000})));
            arm_heartbeat();
            if (h.on_login) h.on_login(reply);
        }

        void on_frame(std::string_view body) {
            json m = json::parse(body.begin(), body.end(), nullptr, false);
            if (m.is_discarded() || !m.is_object() || !m.contains("type") || !m["type"].is_string()) {
                ++bad;
                return;
            }
            const std::string type = m["type"].get<std::string>();
            if (type == "reply" || type == "error") {
                const bool is_error = type == "error";
                const std::error_code e = is_error ? make_error_code(from_wire_name(m.value("code", std::string()))) : std::error_code{};
                if (auto id = m.find("id"); id != m.end() && id->is_number_unsigned()) {
                    if (auto w = waiting.find(id->get<std::uint64_t>()); w != waiting.end()) {
                        auto done = std::move(w->second);
                        waiting.erase(w);
                        done(e, m);
                        return;
                    }
                }
                if (is_error) close_reason = e; // an error for no request: the service is about to close
                return;
            }
            event(type, m);
            if (h.on_event) h.on_event(m);
        }

        void event(const std::string& type, const json& m) {
            auto call = [&](const room_client_handlers::event& f) {
                if (f) f(m);
            };
            if (type == "chat") call(h.on_chat);
            else if (type == "gift") call(h.on_gift);
            else if (type == "barrage") call(h.on_barrage);
            else if (type == "likes") {
                likes = m.value("total", likes);
                call(h.on_likes);
            } else if (type == "command") call(h.on_command);
            else if (type == "user_joined") {
                members[m.value("user", std::string())] = parse_role(m.value("role", std::string())).value_or(role::audience);
                member_count = std::max(member_count + 1, members.size());
                call(h.on_user_joined);
            } else if (type == "user_left") {
                members.erase(m.value("user", std::string()));
                if (member_count) --member_count;
                call(h.on_user_left);
            } else if (type == "user_count") {
                member_count = m.value("count", member_count);
                call(h.on_user_count);
            } else if (type == "role_changed") {
                const auto u = m.value("user", std::string());
                const auto r = parse_role(m.value("role", std::string())).value_or(role::audience);
                if (members.contains(u)) members[u] = r;
                if (u == user) my_role = r;
                call(h.on_role_changed);
            } else if (type == "stream_added") {
                streams[m.value("stream", std::string())] = m.value("user", std::string());
                call(h.on_stream_added);
            } else if (type == "stream_removed") {
                streams.erase(m.value("stream", std::string()));
                call(h.on_stream_removed);
            } else if (type == "template") call(h.on_template);
            else if (type == "quiz") call(h.on_quiz);
            else if (type == "quiz_tally") call(h.on_quiz_tally);
            else if (type == "quiz_result") call(h.on_quiz_result);
            else if (type == "cohost_invited") call(h.on_cohost_invited);
            else if (type == "cohost_requested") call(h.on_cohost_requested);
            else if (type == "cohost_answered") call(h.on_cohost_answered);
            else if (type == "cohost_ended") {
                my_role = role::audience;
                call(h.on_cohost_ended);
            }
        }

        void end(std::error_code why, bool notify = true) {
            if (closed) return;
            closed = true;
            in = false;
            std::error_code ec;
            heartbeat.cancel();
            socket.close(ec);
            auto w = std::move(waiting);
            waiting.clear();
            for (auto& [id, done] : w) done(why ? why : make_error_code(errc::not_logged_in), nullptr);
            if (notify && h.on_closed) h.on_closed(why);
        }
        std::error_code close_reason = asio::error::eof;
    };
    std::shared_ptr<state> state_;
};

} // namespace onair::control
