// onair — one room of the room service: its members, streams and messages.
//
// The room is the control plane's logic without its sockets: requests come in as parsed
// JSON with the caller's clock, and what the room says goes out through its Output policy,
// so tests drive it in simulated time and the TCP service (room_service.hpp) in real time.
//
// Everything the room broadcasts goes through one outbox in the order it happened (chat,
// gifts, joins, streams, likes, quizzes); flush() sends the outbox to every member as one
// shared buffer, so a member sees the room's events in one order and a broadcast costs one
// allocation whatever the room's size. Replies and commands to named users go at once.
#pragma once

#include "onair/control/error.hpp"
#include "onair/control/framing.hpp"
#include "onair/control/gift_template.hpp"
#include "onair/control/rate_limit.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace onair::control {

enum class role { host, cohost, audience };

constexpr std::string_view role_name(role r) noexcept {
    return r == role::host ? "host" : r == role::cohost ? "cohost" : "audience";
}
inline std::optional<role> parse_role(std::string_view s) noexcept {
    if (s == "host") return role::host;
    if (s == "cohost") return role::cohost;
    if (s == "audience") return role::audience;
    return std::nullopt;
}

using session_id = std::uint64_t;

/// The name a room's stream has on the media path ("room/stream"): relays serve many rooms,
/// and neither part may contain '/'.
inline std::string media_stream_name(std::string_view room, std::string_view stream) {
    std::string s;
    s.reserve(room.size() + 1 + stream.size());
    s.append(room).append("/").append(stream);
    return s;
}

/// Room and stream names: 1-127 of [A-Za-z0-9_.-].
inline bool valid_name(std::string_view n) noexcept {
    if (n.empty() || n.size() > 127) return false;
    for (char c : n)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.')) return false;
    return true;
}

/// A grant the relay's media path must learn of: publish/play come with the ticket the
/// UDP hello must carry; unpublish withdraws one.
struct media_grant {
    enum class kind { publish, unpublish, play, stop };
    kind what = kind::publish;
    std::string room, user, stream, ticket;
};

struct room_config {
    std::size_t max_members = 100'000;
    std::size_t user_list_limit = 500;  ///< above this many members: counts, not names
    std::size_t history = 50;           ///< chat and gifts sent to a member on join
    std::int64_t heartbeat_ms = 5000;   ///< a member silent for 3 of these is logged out
    std::int64_t aggregate_ms = 200;    ///< likes, quiz tallies and member counts
    std::int64_t invitation_ms = 60'000;
    std::size_t max_chat_bytes = 1024;
    std::size_t max_barrage_bytes = 256;
    std::size_t max_command_bytes = 4096;
    std::size_t max_command_targets = 100;
    std::size_t max_templates = 64;
    std::size_t max_quizzes = 4;
    std::size_t max_streams_per_user = 4;
    rate chat_per_user{5, 10};
    rate chat_per_room{100, 200};
    rate gift_per_user{5, 10};
    rate command_per_user{20, 40};
    rate barrage_per_user{10, 20};
    double barrage_per_room = 100;      ///< per second; past it the room samples
    rate likes_per_user{50, 100};       ///< in likes, not requests
    rate requests_per_user{50, 100};    ///< everything else (publish, quiz answers...)
    int flood_refusals = 50;            ///< rate-limit refusals in one second that end a connection
};

struct room_stats {
    std::uint64_t joins = 0, leaves = 0, timeouts = 0;
    std::uint64_t chat = 0, gifts = 0, commands = 0, barrage = 0, barrage_dropped = 0, likes = 0;
    std::uint64_t quizzes = 0, answers = 0, invitations = 0;
    std::uint64_t refused = 0, rate_limited = 0, flood_disconnects = 0;
    std::uint64_t flushes = 0, deliveries = 0; ///< deliveries: frames buffers handed to members
};

/// Output policy: what a room needs from the service that owns it. It may also have
/// deliver(shared_frames, std::vector<session_id>) for broadcasts: each member must get
/// them in the order they were delivered, after what was sent to it before.
template <class O>
concept room_output = requires(O& o, session_id s, const shared_frames& f, errc e, const media_grant& g) {
    o.send(s, f);     // queue `f` on one connection, after what is queued there
    o.close(s, e);    // send what is queued, then an error frame with `e`, then close
    { o.make_ticket() } -> std::convertible_to<std::string>;
    o.on_media(g);
};

/// One room. Thread safety: none; the service calls it from one thread.
template <room_output Output>
class room {
public:
    using json = nlohmann::json;

    room(std::string name, room_config cfg, Output& out, std::int64_t now_ms)
        : name_(std::move(name)), cfg_(cfg), out_(out), room_chat_(cfg.chat_per_room, now_ms),
          last_aggregate_(now_ms), barrage_window_start_(now_ms) {}

    const std::string& name() const noexcept { return name_; }
    std::size_t size() const noexcept { return members_.size(); }
    bool empty() const noexcept { return members_.empty(); }
    const room_stats& stats() const noexcept { return stats_; }
    std::uint64_t likes() const noexcept { return likes_total_; }
    bool has_member(std::string_view user) const { return by_user_.contains(std::string(user)); }
    std::optional<role> role_of(std::string_view user) const {
        auto it = by_user_.find(std::string(user));
        if (it == by_user_.end()) return std::nullopt;
        return members_.at(it->second).r;
    }

    /// A login whose token the service has checked. Replies to `id` (the login's request id).
    /// A user already in the room is replaced: the older connection is closed.
    /// `since`: the last chat/gift seq the member has (a reconnect); the history it gets starts
    /// after it.
    errc join(session_id s, const std::string& user, std::uint32_t privileges, role r, const json& id, std::int64_t now,
              std::uint64_t since = 0) {
        if (r == role::host && !(privileges & 2u)) return refuse(s, id, errc::no_privilege, "a host needs the publish privilege");
        if (r == role::cohost) return refuse(s, id, errc::not_allowed, "co-host is reached by invitation");
        // Refusals first: a refused login must not cost the user its existing session.
        if (r == role::host && host_session_ && members_.at(*host_session_).user != user)
            return refuse(s, id, errc::not_allowed, "the room has a host");
        if (auto old = by_user_.find(user); old != by_user_.end()) {
            const session_id o = old->second;
            leave(o, "replaced", now);
            out_.close(o, errc::replaced);
        }
        if (members_.size() >= cfg_.max_members) return refuse(s, id, errc::room_full, "room full");
        flush(); // what happened before this member joined is not theirs to see twice
        member m{user, r, privileges, now, cfg_};
        members_.emplace(s, std::move(m));
        by_user_[user] = s;
        if (r == role::host) host_session_ = s;
        ++stats_.joins;

        json reply{{"type", "reply"}, {"id", id}, {"room", name_}, {"user", user}, {"role", role_name(r)},
                   {"heartbeat_ms", cfg_.heartbeat_ms}, {"user_count", members_.size()}, {"likes", likes_total_}, {"seq", seq_}};
        if (members_.size() <= cfg_.user_list_limit) {
            json users = json::array();
            for (const auto& [sid, mm] : members_) users.push_back({{"user", mm.user}, {"role", role_name(mm.r)}});
            reply["users"] = std::move(users);
        }
        json streams = json::array();
        for (const auto& [n, st] : streams_) streams.push_back({{"stream", n}, {"user", st.user}});
        reply["streams"] = std::move(streams);
        json history = json::array();
        for (const auto& h : history_)
            if (h["seq"].get<std::uint64_t>() > since) history.push_back(h);
        reply["history"] = std::move(history);
        json templates = json::array();
        for (const auto& [tid, t] : templates_) templates.push_back(t.to_json());
        reply["templates"] = std::move(templates);
        json quizzes = json::array();
        for (const auto& [qid, q] : quizzes_) quizzes.push_back(quiz_json(qid, q));
        reply["quizzes"] = std::move(quizzes);
        send(s, reply);
        if (members_.size() <= cfg_.user_list_limit) broadcast({{"type", "user_joined"}, {"user", user}, {"role", role_name(r)}});
        return errc::ok;
    }

    /// Removes a member (logout, disconnect, timeout, replaced): its streams end, its
    /// invitations lapse, and the room hears of it.
    void leave(session_id s, std::string_view reason, std::int64_t) {
        auto it = members_.find(s);
        if (it == members_.end()) return;
        const std::string user = it->second.user;
        const bool listed = members_.size() <= cfg_.user_list_limit;
        for (const auto& [stream, ticket] : it->second.plays) out_.on_media({media_grant::kind::stop, name_, user, stream, ticket});
        end_streams_of(user);
        std::erase_if(invitations_, [&](const auto& kv) { return kv.second.from == user || kv.second.to == user; });
        if (host_session_ == s) host_session_.reset();
        by_user_.erase(user);
        members_.erase(it);
        ++stats_.leaves;
        if (listed) broadcast({{"type", "user_left"}, {"user", user}, {"reason", reason}});
    }

    bool contains(session_id s) const { return members_.contains(s); }

    /// Any frame from a member proves it alive.
    void touch(session_id s, std::int64_t now) {
        if (auto it = members_.find(s); it != members_.end()) it->second.last_seen = now;
    }

    /// One request from a logged-in member.
    void handle(session_id s, std::string_view type, const json& req, std::int64_t now) {
        auto it = members_.find(s);
        if (it == members_.end()) return;
        member& m = it->second;
        m.last_seen = now;
        const json& id = req.contains("id") ? req["id"] : null_;
        if (type == "heartbeat") {
            if (!id.is_null()) send(s, {{"type", "reply"}, {"id", id}});
        } else if (type == "chat") chat(s, m, req, id, now);
        else if (type == "barrage") barrage(s, m, req, id, now);
        else if (type == "like") like(s, m, req, id, now);
        else if (type == "command") command(s, m, req, id, now);
        else if (type == "gift") gift(s, m, req, id, now);
        else if (!limited(s, m, m.requests, id, now)) {
            if (type == "publish") publish(s, m, req, id);
            else if (type == "unpublish") unpublish(s, m, req, id);
            else if (type == "play") play(s, m, req, id);
            else if (type == "add_template") add_template(s, m, req, id);
            else if (type == "quiz") quiz(s, m, req, id, now);
            else if (type == "quiz_answer") quiz_answer(s, m, req, id, now);
            else if (type == "cohost_invite") cohost_invite(s, m, req, id, now);
            else if (type == "cohost_request") cohost_request(s, m, id, now);
            else if (type == "cohost_answer") cohost_answer(s, m, req, id, now);
            else if (type == "cohost_end") cohost_end(s, m, req, id);
            else refuse(s, id, errc::unknown_type, "unknown request type");
        }
    }

    /// Timers: heartbeat expiry, aggregated updates, quiz deadlines, sampled barrage.
    void tick(std::int64_t now) {
        std::vector<session_id> silent;
        for (const auto& [s, m] : members_)
            if (now - m.last_seen > 3 * cfg_.heartbeat_ms) silent.push_back(s);
        for (session_id s : silent) {
            ++stats_.timeouts;
            leave(s, "timeout", now);
            out_.close(s, errc::timed_out);
        }
        end_barrage_window(now);
        std::erase_if(invitations_, [&](const auto& kv) { return kv.second.expires <= now; });
        for (auto q = quizzes_.begin(); q != quizzes_.end();) {
            if (q->second.deadline <= now) {
                json result{{"type", "quiz_result"}, {"quiz", q->first}, {"counts", q->second.counts}, {"answers", q->second.answered.size()}};
                result["correct"] = q->second.correct ? json(*q->second.correct) : json(nullptr);
                broadcast(result);
                q = quizzes_.erase(q);
            } else {
                ++q;
            }
        }
        if (now - last_aggregate_ < cfg_.aggregate_ms) return;
        last_aggregate_ = now;
        if (likes_pending_) {
            broadcast({{"type", "likes"}, {"total", likes_total_}, {"delta", likes_pending_}});
            likes_pending_ = 0;
        }
        for (auto& [qid, q] : quizzes_)
            if (q.dirty) {
                q.dirty = false;
                broadcast({{"type", "quiz_tally"}, {"quiz", qid}, {"counts", q.counts}, {"answers", q.answered.size()}});
            }
        // Counts while the room is over the limit, and once more when it falls back to it
        // (members that joined above it never had the names).
        if ((members_.size() > cfg_.user_list_limit || last_count_sent_ > cfg_.user_list_limit) && members_.size() != last_count_sent_) {
            last_count_sent_ = members_.size();
            broadcast({{"type", "user_count"}, {"count", members_.size()}});
        }
    }

    bool has_outbox() const noexcept { return !outbox_.empty(); }

    /// Sends the outbox to every member as one shared buffer: through the output's
    /// deliver(frames, members) when it has one (the service spreads a big room's writes
    /// over several turns of its loop), else by send() to each.
    void flush() {
        if (outbox_.empty()) return;
        auto frames = std::make_shared<const std::string>(std::move(outbox_));
        outbox_.clear();
        ++stats_.flushes;
        stats_.deliveries += members_.size();
        if constexpr (requires(std::vector<session_id> v) { out_.deliver(frames, std::move(v)); }) {
            std::vector<session_id> to;
            to.reserve(members_.size());
            for (const auto& [s, m] : members_) to.push_back(s);
            out_.deliver(frames, std::move(to));
        } else {
            for (const auto& [s, m] : members_) out_.send(s, frames);
        }
    }

private:
    struct member {
        std::string user;
        role r;
        std::uint32_t privileges;
        std::int64_t last_seen;
        token_bucket chat, gift, command, barrage, likes, requests;
        std::int64_t refusal_window = 0;
        int refusals = 0;
        std::map<std::string, std::string> plays; ///< stream -> the play ticket granted
        member(std::string u, role rr, std::uint32_t p, std::int64_t now, const room_config& c)
            : user(std::move(u)), r(rr), privileges(p), last_seen(now), chat(c.chat_per_user, now), gift(c.gift_per_user, now),
              command(c.command_per_user, now), barrage(c.barrage_per_user, now), likes(c.likes_per_user, now),
              requests(c.requests_per_user, now) {}
    };
    struct stream_entry {
        std::string user;
    };
    struct quiz_state {
        std::string from, question;
        json options;
        std::optional<std::size_t> correct;
        std::int64_t deadline = 0;
        std::vector<std::uint64_t> counts;
        std::unordered_map<std::string, std::size_t> answered;
        bool dirty = false;
    };
    struct invitation {
        bool by_host; ///< true: a host invited `to`; false: `from` (audience) asked the host `to`
        std::string from, to;
        std::int64_t expires;
    };
    static constexpr std::uint32_t privilege_publish = 2, privilege_play = 4, privilege_message = 8;
    static inline const json null_ = nullptr;

    // --- output -----------------------------------------------------------------------
    void send(session_id s, const json& j) { out_.send(s, make_frame(j.dump(-1, ' ', false, json::error_handler_t::replace))); }
    void broadcast(const json& j) { append_frame(outbox_, j.dump(-1, ' ', false, json::error_handler_t::replace)); }
    void reply(session_id s, const json& id, json body = json::object()) {
        if (id.is_null()) return;
        body["type"] = "reply";
        body["id"] = id;
        send(s, body);
    }
    errc refuse(session_id s, const json& id, errc e, std::string_view why, json extra = json::object()) {
        ++stats_.refused;
        extra["type"] = "error";
        extra["id"] = id;
        extra["code"] = wire_name(e);
        extra["message"] = why;
        send(s, extra);
        return e;
    }
    // A refused rate limit; past cfg_.flood_refusals in one second the member is dropped.
    bool limited(session_id s, member& m, token_bucket& b, const json& id, std::int64_t now, double n = 1) {
        if (b.take(now, n)) return false;
        ++stats_.rate_limited;
        if (now - m.refusal_window >= 1000) {
            m.refusal_window = now;
            m.refusals = 0;
        }
        if (++m.refusals > cfg_.flood_refusals) {
            ++stats_.flood_disconnects;
            leave(s, "flood", now);
            out_.close(s, errc::rate_limited);
            return true;
        }
        refuse(s, id, errc::rate_limited, "rate limited", {{"retry_after_ms", b.wait_ms(now, n)}});
        return true;
    }
    bool privileged(session_id s, const member& m, std::uint32_t p, const json& id) {
        if (m.privileges & p) return true;
        refuse(s, id, errc::no_privilege, "the token does not grant this");
        return false;
    }
    static const std::string* text_field(const json& req, const char* key) {
        auto it = req.find(key);
        return it != req.end() && it->is_string() ? it->template get_ptr<const std::string*>() : nullptr;
    }
    void remember(const json& msg) {
        history_.push_back(msg);
        while (history_.size() > cfg_.history) history_.pop_front();
    }

    // --- messages ---------------------------------------------------------------------
    void chat(session_id s, member& m, const json& req, const json& id, std::int64_t now) {
        if (!privileged(s, m, privilege_message, id)) return;
        const auto* text = text_field(req, "text");
        if (!text || text->empty()) return void(refuse(s, id, errc::bad_request, "chat needs a text"));
        if (text->size() > cfg_.max_chat_bytes) return void(refuse(s, id, errc::too_large, "chat text over the limit"));
        if (limited(s, m, m.chat, id, now)) return;
        if (!room_chat_.take(now)) {
            m.chat.give_back(); // the room refused it, not the member's own rate
            ++stats_.rate_limited;
            return void(refuse(s, id, errc::rate_limited, "the room's chat budget is spent", {{"retry_after_ms", room_chat_.wait_ms(now)}}));
        }
        json msg{{"type", "chat"}, {"seq", ++seq_}, {"ts", now}, {"from", m.user}, {"text", *text}};
        broadcast(msg);
        remember(msg);
        ++stats_.chat;
        reply(s, id, {{"seq", seq_}, {"ts", now}});
    }

    void barrage(session_id s, member& m, const json& req, const json& id, std::int64_t now) {
        if (!privileged(s, m, privilege_message, id)) return;
        const auto* text = text_field(req, "text");
        if (!text || text->empty()) return void(refuse(s, id, errc::bad_request, "barrage needs a text"));
        if (text->size() > cfg_.max_barrage_bytes) return void(refuse(s, id, errc::too_large, "barrage text over the limit"));
        if (limited(s, m, m.barrage, id, now)) return;
        end_barrage_window(now);
        ++stats_.barrage;
        // Half of each 100 ms window's budget passes at once; past that the rest of the
        // window is sampled uniformly (reservoir) and sent when the window ends.
        const auto budget = static_cast<std::size_t>(std::max(1.0, cfg_.barrage_per_room / 10));
        const std::size_t direct = (budget + 1) / 2, reservoir = budget - direct;
        json item{{"from", m.user}, {"text", *text}};
        if (barrage_window_count_++ < direct) {
            broadcast({{"type", "barrage"}, {"items", json::array({std::move(item)})}, {"dropped", 0}});
        } else if (reservoir_.size() < reservoir) {
            reservoir_.push_back(std::move(item));
        } else {
            const std::size_t seen = barrage_window_count_ - direct; // this one is the seen-th
            const std::size_t k = std::uniform_int_distribution<std::size_t>(0, seen - 1)(rng_);
            if (k < reservoir) reservoir_[k] = std::move(item);
        }
        reply(s, id);
    }

    void end_barrage_window(std::int64_t now) {
        if (now - barrage_window_start_ < 100) return;
        const auto budget = static_cast<std::size_t>(std::max(1.0, cfg_.barrage_per_room / 10));
        const std::size_t direct = (budget + 1) / 2;
        if (barrage_window_count_ > direct) {
            const std::size_t dropped = barrage_window_count_ - direct - reservoir_.size();
            stats_.barrage_dropped += dropped;
            broadcast({{"type", "barrage"}, {"items", std::move(reservoir_)}, {"dropped", dropped}});
        }
        reservoir_ = json::array();
        barrage_window_count_ = 0;
        barrage_window_start_ = now;
    }

    void like(session_id s, member& m, const json& req, const json& id, std::int64_t now) {
        if (!privileged(s, m, privilege_message, id)) return;
        std::uint64_t n = 1;
        if (auto c = req.find("count"); c != req.end()) {
            if (!c->is_number_unsigned() || c->get<std::uint64_t>() == 0 || c->get<std::uint64_t>() > 100)
                return void(refuse(s, id, errc::bad_request, "count: 1-100"));
            n = c->get<std::uint64_t>();
        }
        if (limited(s, m, m.likes, id, now, static_cast<double>(n))) return;
        likes_total_ += n;
        likes_pending_ += n;
        stats_.likes += n;
        reply(s, id);
    }

    void command(session_id s, member& m, const json& req, const json& id, std::int64_t now) {
        if (!privileged(s, m, privilege_message, id)) return;
        std::vector<std::string> to;
        if (auto t = req.find("to"); t != req.end() && t->is_string()) to.push_back(t->get<std::string>());
        else if (t != req.end() && t->is_array() && !t->empty() && t->size() <= cfg_.max_command_targets) {
            for (const auto& x : *t) {
                if (!x.is_string()) return void(refuse(s, id, errc::bad_request, "to: user ids"));
                to.push_back(x.get<std::string>());
            }
        } else {
            return void(refuse(s, id, errc::bad_request, "to: a user id or a list of 1-100"));
        }
        auto d = req.find("data");
        if (d == req.end()) return void(refuse(s, id, errc::bad_request, "command needs data"));
        if (d->dump().size() > cfg_.max_command_bytes) return void(refuse(s, id, errc::too_large, "command data over the limit"));
        if (limited(s, m, m.command, id, now)) return;
        std::sort(to.begin(), to.end());
        to.erase(std::unique(to.begin(), to.end()), to.end());
        const auto frame = make_frame(json{{"type", "command"}, {"from", m.user}, {"ts", now}, {"data", *d}}.dump(-1, ' ', false, json::error_handler_t::replace));
        json missing = json::array();
        std::size_t delivered = 0;
        for (const auto& u : to) {
            if (auto it = by_user_.find(u); it != by_user_.end()) {
                out_.send(it->second, frame);
                ++delivered;
            } else {
                missing.push_back(u);
            }
        }
        ++stats_.commands;
        reply(s, id, {{"delivered", delivered}, {"missing", std::move(missing)}});
    }

    void add_template(session_id s, member& m, const json& req, const json& id) {
        if (m.r == role::audience) return void(refuse(s, id, errc::not_allowed, "hosts and co-hosts register templates"));
        auto t = req.find("template");
        if (t == req.end()) return void(refuse(s, id, errc::bad_request, "add_template needs a template"));
        gift_template g;
        std::string why;
        if (parse_template(*t, g, why) != errc::ok) return void(refuse(s, id, errc::bad_request, why));
        if (!templates_.contains(g.id) && templates_.size() >= cfg_.max_templates)
            return void(refuse(s, id, errc::too_large, "the room has its most templates"));
        broadcast({{"type", "template"}, {"template", g.to_json()}});
        templates_[g.id] = std::move(g);
        reply(s, id);
    }

    void gift(session_id s, member& m, const json& req, const json& id, std::int64_t now) {
        if (!privileged(s, m, privilege_message, id)) return;
        const auto* tid = text_field(req, "template");
        if (!tid) return void(refuse(s, id, errc::bad_request, "gift needs a template"));
        auto t = templates_.find(*tid);
        if (t == templates_.end()) return void(refuse(s, id, errc::unknown_template, "no such template"));
        json clean;
        std::string text, why;
        auto f = req.find("fields");
        if (validate_gift(t->second, f == req.end() ? json::object() : *f, m.user, clean, text, why) != errc::ok)
            return void(refuse(s, id, errc::bad_fields, why));
        if (limited(s, m, m.gift, id, now)) return;
        json msg{{"type", "gift"}, {"seq", ++seq_}, {"ts", now}, {"from", m.user}, {"template", *tid}, {"fields", std::move(clean)}, {"text", text}};
        broadcast(msg);
        remember(msg);
        ++stats_.gifts;
        reply(s, id, {{"seq", seq_}, {"ts", now}});
    }

    // --- quizzes ----------------------------------------------------------------------
    json quiz_json(std::uint64_t qid, const quiz_state& q) const {
        return {{"type", "quiz"}, {"quiz", qid}, {"from", q.from}, {"question", q.question}, {"options", q.options}, {"deadline", q.deadline}};
    }

    void quiz(session_id s, member& m, const json& req, const json& id, std::int64_t now) {
        if (m.r == role::audience) return void(refuse(s, id, errc::not_allowed, "hosts and co-hosts post quizzes"));
        const auto* question = text_field(req, "question");
        auto options = req.find("options");
        auto duration = req.find("duration_ms");
        if (!question || question->empty() || question->size() > 512) return void(refuse(s, id, errc::bad_request, "question: 1-512 bytes"));
        if (options == req.end() || !options->is_array() || options->size() < 2 || options->size() > 10)
            return void(refuse(s, id, errc::bad_request, "options: 2-10 texts"));
        for (const auto& o : *options)
            if (!o.is_string() || o.get_ref<const std::string&>().empty() || o.get_ref<const std::string&>().size() > 128)
                return void(refuse(s, id, errc::bad_request, "options: 2-10 texts of 1-128 bytes"));
        if (duration == req.end() || !duration->is_number_unsigned() || duration->get<std::uint64_t>() < 1000 ||
            duration->get<std::uint64_t>() > 600'000)
            return void(refuse(s, id, errc::bad_request, "duration_ms: 1000-600000"));
        quiz_state q;
        if (auto a = req.find("answer"); a != req.end()) {
            if (!a->is_number_unsigned() || a->get<std::size_t>() >= options->size()) return void(refuse(s, id, errc::bad_request, "answer: an option index"));
            q.correct = a->get<std::size_t>();
        }
        if (quizzes_.size() >= cfg_.max_quizzes) return void(refuse(s, id, errc::too_large, "too many quizzes running"));
        q.from = m.user;
        q.question = *question;
        q.options = *options;
        q.deadline = now + duration->get<std::int64_t>();
        q.counts.assign(options->size(), 0);
        const std::uint64_t qid = ++quiz_seq_;
        broadcast(quiz_json(qid, q));
        quizzes_.emplace(qid, std::move(q));
        ++stats_.quizzes;
        reply(s, id, {{"quiz", qid}});
    }

    void quiz_answer(session_id s, member& m, const json& req, const json& id, std::int64_t now) {
        if (!privileged(s, m, privilege_message, id)) return;
        auto qid = req.find("quiz");
        auto opt = req.find("option");
        if (qid == req.end() || !qid->is_number_unsigned() || opt == req.end() || !opt->is_number_unsigned())
            return void(refuse(s, id, errc::bad_request, "quiz_answer needs quiz and option"));
        auto q = quizzes_.find(qid->get<std::uint64_t>());
        if (q == quizzes_.end() || now >= q->second.deadline) return void(refuse(s, id, errc::unknown_quiz, "no such quiz running"));
        const auto o = opt->get<std::uint64_t>();
        if (o >= q->second.counts.size()) return void(refuse(s, id, errc::bad_request, "no such option"));
        if (!q->second.answered.emplace(m.user, o).second) return void(refuse(s, id, errc::already_answered, "one answer per quiz"));
        ++q->second.counts[o];
        q->second.dirty = true;
        ++stats_.answers;
        reply(s, id, {{"quiz", q->first}, {"option", o}});
    }

    // --- streams ----------------------------------------------------------------------
    void publish(session_id s, member& m, const json& req, const json& id) {
        if (!privileged(s, m, privilege_publish, id)) return;
        if (m.r == role::audience) return void(refuse(s, id, errc::not_allowed, "only hosts and co-hosts publish"));
        const auto* stream = text_field(req, "stream");
        if (!stream || !valid_name(*stream)) return void(refuse(s, id, errc::bad_request, "stream: 1-127 of [A-Za-z0-9_.-]"));
        auto it = streams_.find(*stream);
        if (it != streams_.end() && it->second.user != m.user) return void(refuse(s, id, errc::stream_taken, "another user publishes this stream"));
        if (it == streams_.end()) {
            std::size_t mine = 0;
            for (const auto& [n, st] : streams_) mine += st.user == m.user;
            if (mine >= cfg_.max_streams_per_user) return void(refuse(s, id, errc::too_large, "too many streams for one user"));
        }
        const std::string ticket = out_.make_ticket();
        out_.on_media({media_grant::kind::publish, name_, m.user, *stream, ticket});
        if (it == streams_.end()) {
            streams_.emplace(*stream, stream_entry{m.user});
            broadcast({{"type", "stream_added"}, {"stream", *stream}, {"user", m.user}});
        }
        reply(s, id, {{"stream", *stream}, {"media_stream", media_stream_name(name_, *stream)}, {"ticket", ticket}});
    }

    void unpublish(session_id s, member& m, const json& req, const json& id) {
        const auto* stream = text_field(req, "stream");
        auto it = stream ? streams_.find(*stream) : streams_.end();
        if (it == streams_.end() || it->second.user != m.user) return void(refuse(s, id, errc::unknown_stream, "not publishing that stream"));
        end_stream(it);
        reply(s, id);
    }

    void play(session_id s, member& m, const json& req, const json& id) {
        if (!privileged(s, m, privilege_play, id)) return;
        const auto* stream = text_field(req, "stream");
        if (!stream || !streams_.contains(*stream)) return void(refuse(s, id, errc::unknown_stream, "no such stream in the room"));
        auto [t, fresh] = m.plays.try_emplace(*stream);
        if (fresh) {
            t->second = out_.make_ticket();
            out_.on_media({media_grant::kind::play, name_, m.user, *stream, t->second});
        }
        reply(s, id, {{"stream", *stream}, {"media_stream", media_stream_name(name_, *stream)}, {"ticket", t->second}});
    }

    void end_stream(typename std::map<std::string, stream_entry>::iterator it) {
        out_.on_media({media_grant::kind::unpublish, name_, it->second.user, it->first, {}});
        broadcast({{"type", "stream_removed"}, {"stream", it->first}, {"user", it->second.user}});
        streams_.erase(it);
    }
    void end_streams_of(const std::string& user) {
        for (auto it = streams_.begin(); it != streams_.end();) {
            auto next = std::next(it);
            if (it->second.user == user) end_stream(it);
            it = next;
        }
    }

    // --- co-hosting -------------------------------------------------------------------
    void cohost_invite(session_id s, member& m, const json& req, const json& id, std::int64_t now) {
        if (m.r != role::host) return void(refuse(s, id, errc::not_allowed, "only the host invites co-hosts"));
        const auto* user = text_field(req, "user");
        auto target = user ? by_user_.find(*user) : by_user_.end();
        if (target == by_user_.end()) return void(refuse(s, id, errc::unknown_user, "no such member"));
        if (members_.at(target->second).r != role::audience) return void(refuse(s, id, errc::not_allowed, "already a co-host"));
        const std::uint64_t inv = ++invitation_seq_;
        invitations_[inv] = {true, m.user, *user, now + cfg_.invitation_ms};
        ++stats_.invitations;
        send(target->second, {{"type", "cohost_invited"}, {"invite", inv}, {"from", m.user}});
        reply(s, id, {{"invite", inv}});
    }

    void cohost_request(session_id s, member& m, const json& id, std::int64_t now) {
        if (m.r != role::audience) return void(refuse(s, id, errc::not_allowed, "already a co-host or the host"));
        if (!host_session_) return void(refuse(s, id, errc::unknown_user, "the room has no host"));
        const std::string& host = members_.at(*host_session_).user;
        const std::uint64_t inv = ++invitation_seq_;
        invitations_[inv] = {false, m.user, host, now + cfg_.invitation_ms};
        ++stats_.invitations;
        send(*host_session_, {{"type", "cohost_requested"}, {"invite", inv}, {"from", m.user}});
        reply(s, id, {{"invite", inv}});
    }

    void cohost_answer(session_id s, member& m, const json& req, const json& id, std::int64_t now) {
        auto inv = req.find("invite");
        auto accept = req.find("accept");
        if (inv == req.end() || !inv->is_number_unsigned() || accept == req.end() || !accept->is_boolean())
            return void(refuse(s, id, errc::bad_request, "cohost_answer needs invite and accept"));
        auto it = invitations_.find(inv->get<std::uint64_t>());
        if (it == invitations_.end() || it->second.to != m.user || it->second.expires <= now)
            return void(refuse(s, id, errc::no_invitation, "no such invitation"));
        const invitation v = it->second;
        invitations_.erase(it);
        const bool yes = accept->get<bool>();
        const std::string& audience = v.by_host ? v.to : v.from;
        auto a = by_user_.find(audience);
        if (yes && a != by_user_.end() && members_.at(a->second).r == role::audience) {
            members_.at(a->second).r = role::cohost;
            broadcast({{"type", "role_changed"}, {"user", audience}, {"role", "cohost"}});
        }
        if (auto other = by_user_.find(v.from); other != by_user_.end())
            send(other->second, {{"type", "cohost_answered"}, {"invite", inv->get<std::uint64_t>()}, {"accept", yes}, {"user", m.user}});
        reply(s, id);
    }

    void cohost_end(session_id s, member& m, const json& req, const json& id) {
        const auto* user = text_field(req, "user");
        const std::string target = user ? *user : m.user;
        if (target != m.user && m.r != role::host) return void(refuse(s, id, errc::not_allowed, "only the host ends another's co-hosting"));
        auto t = by_user_.find(target);
        if (t == by_user_.end() || members_.at(t->second).r != role::cohost) return void(refuse(s, id, errc::no_invitation, "not a co-host"));
        members_.at(t->second).r = role::audience;
        end_streams_of(target);
        broadcast({{"type", "role_changed"}, {"user", target}, {"role", "audience"}});
        if (target != m.user) send(t->second, {{"type", "cohost_ended"}, {"by", m.user}});
        reply(s, id);
    }

    std::string name_;
    room_config cfg_;
    Output& out_;
    std::unordered_map<session_id, member> members_;
    std::unordered_map<std::string, session_id> by_user_;
    std::optional<session_id> host_session_;
    std::map<std::string, stream_entry> streams_;
    std::map<std::string, gift_template> templates_;
    std::map<std::uint64_t, quiz_state> quizzes_;
    std::map<std::uint64_t, invitation> invitations_;
    std::deque<json> history_;
    std::string outbox_;
    token_bucket room_chat_;
    std::uint64_t seq_ = 0, quiz_seq_ = 0, invitation_seq_ = 0;
    std::uint64_t likes_total_ = 0, likes_pending_ = 0;
    std::size_t last_count_sent_ = 0;
    std::int64_t last_aggregate_;
    std::int64_t barrage_window_start_;
    std::size_t barrage_window_count_ = 0;
    json reservoir_ = json::array();
    std::mt19937_64 rng_{0x9e3779b97f4a7c15ull}; // sampling only: not a secret
    room_stats stats_;
};

} // namespace onair::control
