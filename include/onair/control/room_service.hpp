// onair — the room service: rooms over TCP, with length-prefixed JSON frames.
//
// One service serves many rooms on one Asio executor (one thread). It owns the sockets and
// the protocol's edges — framing, JSON, login and tokens, time limits, slow readers — and
// hands each logged-in member's requests to its room (room.hpp). docs/protocol.md has the
// messages.
//
// Untrusted input: a frame of length 0 or over max_frame closes the connection (its framing
// is lost); a frame that is not a JSON object, lacks a type or is unknown gets an error, and
// after bad_frames_before_close of them the connection is closed; half a frame left unsent
// for frame_timeout, or no login within login_timeout, closes it; a reader that lets
// max_backlog_bytes pile up is closed so it cannot hold the room's memory. Every case is
// counted in room_service_stats, and none touches another connection.
//
// Broadcast fan-out is paced: a room's outbox is flushed at most every
// members / fanout_writes_per_second seconds, and no more often than lets its writes take
// fanout_share of the thread at their measured cost, so a busy room costs a bounded number
// of socket writes per second however many messages arrive (they share each write). A
// flush is written a chunk at a time, so members' requests are read in between.
//
// Rooms across nodes (locate_room set): each room lives on one node, its home, which the
// dispatch center names (the first node a member of it logs in to). A member logging in
// to another node is served through a trunk: that node keeps one TCP connection per room to
// the home's service and multiplexes its members over it; the home runs the room for all
// of them, so everyone sees one room in one order. On a trunk (docs/protocol.md):
//   edge -> home  {"type":"trunk","node","room",counter,ts,sig}  first, signed (node_auth)
//                 {"type":"m","m":ID,"f":"<the member's frame>"}  a member's request
//                 {"type":"gone","m":ID}                           the member disconnected
//   home -> edge  {"type":"to","m":[ID...],"k":K} + K frames       for those members
//                 {"type":"close","m":ID}                          the home closed the member
//                 {"type":"media",...grant}                        a grant for the edge's media path
// A broadcast crosses a trunk once per flush chunk, with the list of its members.
#pragma once

#include "onair/control/error.hpp"
#include "onair/control/framing.hpp"
#include "onair/control/room.hpp"
#include "onair/control/token.hpp"
#include "onair/dispatch/node_auth.hpp"

#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>

#include <nlohmann/json.hpp>
#include <openssl/rand.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

namespace onair::control {

struct room_service_config {
    std::string app_id = "onair";
    std::string secret; ///< the tokens' HMAC key; required
    room_config room;
    std::size_t max_frame = 16 * 1024;
    std::size_t max_connections = 100'000;
    std::size_t max_backlog_bytes = 4 * 1024 * 1024;
    std::chrono::milliseconds login_timeout{10'000};
    std::chrono::milliseconds frame_timeout{10'000};
    std::chrono::milliseconds tick{50};
    std::chrono::milliseconds empty_room_linger{60'000};
    /// Broadcast pacing: a room's outbox is flushed at most every members / this seconds,
    /// and at least as far apart as fanout_share of the thread allows at the measured cost
    /// of a write; a flush goes out fanout_chunk writes per turn of the loop.
    double fanout_writes_per_second = 100'000;
    double fanout_share = 0.6;
    std::size_t fanout_chunk = 256;
    int bad_frames_before_close = 10;
    /// Publish/play grants and withdrawals, for the media path; called on the service's thread.
    std::function<void(const media_grant&)> on_media;

    /// Rooms across nodes: where `room` lives. Called on the service's thread the first
    /// time a member logs in to a room this node does not know; `done` must be called on
    /// it too, with nullopt when the room lives here or the home's room service.
    std::function<void(const std::string& room, std::function<void(std::optional<asio::ip::tcp::endpoint>)> done)> locate_room;
    std::string cluster_secret; ///< signs and checks trunk hellos; without it trunks are refused
    std::string node_id;        ///< this node's id, named in its trunk hellos
    std::size_t max_trunk_backlog_bytes = 64 * 1024 * 1024; ///< a trunk carries many members
};

struct room_service_stats {
    std::uint64_t accepted = 0, refused_connections = 0, closed = 0;
    std::uint64_t frames = 0, bad_frames = 0, bad_json = 0, bad_requests = 0;
    std::uint64_t logins = 0, login_refused = 0;
    std::uint64_t login_timeouts = 0, stalled_frames = 0, slow_readers = 0;
    std::uint64_t bytes_in = 0, bytes_out = 0, writes = 0;
    std::uint64_t trunks_in = 0, trunks_out = 0, trunks_refused = 0, trunk_failures = 0;
    std::uint64_t proxied_logins = 0, bad_trunk_frames = 0;
};

/// Thread safety: construct, start() and stop() on the executor's thread or before it runs;
/// everything else runs there. stats() and room_stats() may be read on that thread.
class room_service {
public:
    using json = nlohmann::json;
    using tcp = asio::ip::tcp;

    room_service(asio::any_io_executor ex, const tcp::endpoint& listen, room_service_config cfg)
        : ex_(ex), acceptor_(ex, listen), cfg_(std::move(cfg)), tick_timer_(ex), flush_timer_(ex),
          epoch_ms_(unix_now() * 1000), start_(std::chrono::steady_clock::now()), trunk_guard_(cfg_.cluster_secret) {
        acceptor_.set_option(tcp::acceptor::reuse_address(true));
    }
    room_service(const room_service&) = delete;
    room_service& operator=(const room_service&) = delete;
    ~room_service() { stop(); }

    void start() {
        running_ = true;
        accept();
        arm_tick();
    }
    void stop() {
        if (!running_) return;
        running_ = false;
        std::error_code ec;
        acceptor_.close(ec);
        tick_timer_.cancel();
        flush_timer_.cancel();
        for (auto& [id, c] : connections_) c->socket.close(ec);
        connections_.clear();
    }

    tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }
    const room_service_stats& stats() const noexcept { return stats_; }
    std::size_t connections() const noexcept { return connections_.size(); }
    /// The stats of room `name`, or nullptr.
    const room_stats* room_stats_of(const std::string& name) const {
        auto it = rooms_.find(name);
        return it == rooms_.end() ? nullptr : &it->second->r.stats();
    }
    std::size_t room_size(const std::string& name) const {
        auto it = rooms_.find(name);
        return it == rooms_.end() ? 0 : it->second->r.size();
    }
    /// Rooms served here through a trunk to their home (with members now).
    std::size_t remote_rooms() const noexcept { return remote_rooms_.size(); }

    /// Milliseconds on the clock the service stamps messages with (Unix time, monotonic).
    std::int64_t now_ms() const {
        return epoch_ms_ + std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start_).count();
    }

private:
    struct room_slot;
    struct output {
        room_service& svc;
        room_slot& slot;
        void send(session_id s, const shared_frames& f) { svc.queue(s, f); }
        void deliver(const shared_frames& f, std::vector<session_id>&& to) { svc.deliver(slot, f, std::move(to)); }
        void close(session_id s, errc e) { svc.close(s, e); }
        std::string make_ticket() { return random_ticket(); }
        void on_media(const media_grant& g) { svc.media(g); }
    };
    struct remote_room;
    /// A broadcast on its way: written to `to` from `next` on, a chunk per turn of the loop.
    struct delivery {
        shared_frames frames;
        std::vector<session_id> to;
        std::size_t next = 0;
    };
    struct room_slot {
        output out;
        room<output> r;
        std::deque<delivery> deliveries;
        std::int64_t last_flush = 0;
        std::int64_t empty_since = 0;
        bool dirty = false, pumping = false;
        room_slot(room_service& svc, std::string name, const room_config& c, std::int64_t now)
            : out{svc, *this}, r(std::move(name), c, out, now) {}
    };
    struct connection {
        explicit connection(asio::any_io_executor ex, std::size_t max_frame) : socket(ex), reader(max_frame) {}
        tcp::socket socket;
        frame_reader reader;
        session_id id = 0;
        room_slot* room = nullptr;
        std::vector<shared_frames> pending, inflight;
        std::vector<asio::const_buffer> buffers;
        std::size_t backlog = 0;
        std::int64_t accepted_at = 0, mid_frame_since = -1;
        int bad_frames = 0;
        bool writing = false, closing = false;
        // Rooms across nodes.
        bool trunk_in = false, trunk_out = false; ///< a trunk from an edge (at the home) / to the home (at an edge)
        bool is_virtual = false;                  ///< at the home: a member behind a trunk (no socket of its own)
        bool remote_gone = false;                 ///< that member's edge said it disconnected
        std::shared_ptr<connection> trunk;        ///< a virtual member's trunk
        std::uint64_t remote_id = 0;              ///< its id at the edge
        std::unordered_map<std::uint64_t, session_id> members; ///< a trunk_in's members: edge id -> virtual session
        std::string trunk_room;
        std::string user;                         ///< logged in as
        remote_room* via = nullptr;               ///< at an edge: a member served by the room's home
        std::vector<session_id> route_to;         ///< trunk_out: the members the next route_left frames are for
        std::size_t route_left = 0;
    };
    using connection_ptr = std::shared_ptr<connection>;
    /// At an edge: a room whose home is another node, and the trunk to it.
    struct remote_room {
        std::string name;
        bool up = false;
        connection_ptr trunk;
        std::vector<std::pair<connection_ptr, std::string>> waiting; ///< logins held until the trunk is up
        std::unordered_map<session_id, connection_ptr> members;
    };

    static std::string random_ticket() {
        unsigned char b[16];
        if (RAND_bytes(b, sizeof b) != 1) throw std::runtime_error("RAND_bytes failed");
        static constexpr char hex[] = "0123456789abcdef";
        std::string s(32, '0');
        for (std::size_t i = 0; i < 16; ++i) {
            s[2 * i] = hex[b[i] >> 4];
            s[2 * i + 1] = hex[b[i] & 15];
        }
        return s;
    }

    // --- accept and read ----------------------------------------------------------------
    void accept() {
        auto c = std::make_shared<connection>(ex_, cfg_.max_frame);
        acceptor_.async_accept(c->socket, [this, c](std::error_code ec) {
            if (!running_) return;
            if (!ec) {
                if (connections_.size() >= cfg_.max_connections) {
                    ++stats_.refused_connections;
                    std::error_code ignored;
                    c->socket.close(ignored);
                } else {
                    ++stats_.accepted;
                    c->id = ++next_id_;
                    c->accepted_at = now_ms();
                    std::error_code ignored;
                    c->socket.set_option(tcp::no_delay(true), ignored);
                    connections_.emplace(c->id, c);
                    read(c);
                }
            }
            accept();
        });
    }

    void read(const connection_ptr& c) {
        auto room_for = c->reader.prepare(4096);
        c->socket.async_read_some(asio::buffer(room_for.data(), room_for.size()), [this, c](std::error_code ec, std::size_t n) {
            if (!running_ || c->closing) return;
            if (ec) return abort(c, "disconnect");
            stats_.bytes_in += n;
            c->reader.commit(n);
            const std::int64_t now = now_ms();
            std::string_view body;
            for (;;) {
                const auto st = c->reader.next(body);
                if (st == frame_reader::status::need_more) break;
                if (st == frame_reader::status::error) {
                    ++stats_.bad_frames;
                    close(c->id, errc::bad_frame);
                    return schedule_flush();
                }
                ++stats_.frames;
                try {
                    if (c->trunk_out) on_trunk_down(c, body);
                    else if (c->trunk_in) on_trunk_up(c, body, now);
                    else on_frame(c, body, now);
                } catch (const std::exception&) {
                    // Every field is type-checked before use; this is the last line of defence:
                    // the one connection goes, the service and the room stay.
                    ++stats_.bad_requests;
                    close(c->id, errc::bad_request);
                    return schedule_flush();
                }
                if (c->closing || !connections_.contains(c->id)) return schedule_flush(); // what it said still goes out now
            }
            c->mid_frame_since = c->reader.mid_frame() ? (c->mid_frame_since < 0 ? now : c->mid_frame_since) : -1;
            schedule_flush();
            read(c);
        });
    }

    // --- requests -----------------------------------------------------------------------
    void send_error(const connection_ptr& c, const json& id, errc e, std::string_view why) {
        queue(c->id, make_frame(json{{"type", "error"}, {"id", id}, {"code", wire_name(e)}, {"message", why}}.dump()));
    }

    void on_frame(const connection_ptr& c, std::string_view body, std::int64_t now) {
        if (c->via) return forward_up(*c->via, c->id, body); // its room's home answers
        json req = json::parse(body.begin(), body.end(), nullptr, false);
        if (req.is_discarded() || !req.is_object()) {
            ++stats_.bad_json;
            return bad_frame(c, nullptr, errc::bad_json, "the frame is not a JSON object");
        }
        json id = req.contains("id") ? req["id"] : json(nullptr);
        if (!id.is_null() && !id.is_number_unsigned() && !(id.is_string() && id.get_ref<const std::string&>().size() <= 64)) {
            ++stats_.bad_requests;
            return bad_frame(c, nullptr, errc::bad_request, "id: an unsigned integer (or a string of at most 64 bytes)");
        }
        auto t = req.find("type");
        if (t == req.end() || !t->is_string()) {
            ++stats_.bad_requests;
            return bad_frame(c, id, errc::bad_request, "a request needs a type");
        }
        const std::string& type = t->get_ref<const std::string&>();
        if (!c->room) {
            if (type == "trunk" && !c->is_virtual) return accept_trunk(c, req, now);
            if (type != "login") return bad_frame(c, id, errc::not_logged_in, "log in first");
            if (cfg_.locate_room && !c->is_virtual) {
                const auto room_it = req.find("room");
                if (room_it != req.end() && room_it->is_string() && valid_name(room_it->get_ref<const std::string&>()) &&
                    !home_rooms_.contains(room_it->get_ref<const std::string&>()))
                    return route_login(c, room_it->get_ref<const std::string&>(), body);
            }
            return login(c, req, id, now);
        }
        room_slot& slot = *c->room;
        if (type == "login") {
            send_error(c, id, errc::already_logged_in, "already logged in");
        } else if (type == "logout") {
            slot.r.leave(c->id, "logout", now);
            if (!id.is_null()) queue(c->id, make_frame(json{{"type", "reply"}, {"id", id}}.dump()));
            close(c->id, errc::ok);
        } else {
            slot.r.handle(c->id, type, req, now);
        }
        note(slot);
    }

    void bad_frame(const connection_ptr& c, const json& id, errc e, std::string_view why) {
        send_error(c, id, e, why);
        if (++c->bad_frames >= cfg_.bad_frames_before_close) close(c->id, e);
    }

    void login(const connection_ptr& c, const json& req, const json& id, std::int64_t now) {
        auto str = [&](const char* k) -> const std::string* {
            auto it = req.find(k);
            return it != req.end() && it->is_string() ? it->get_ptr<const std::string*>() : nullptr;
        };
        const auto* token = str("token");
        const auto* room_name = str("room");
        const auto* role_text = str("role");
        const auto r = role_text ? parse_role(*role_text) : std::optional<role>(role::audience);
        if (!token || !room_name || !valid_name(*room_name) || !r) {
            ++stats_.login_refused;
            return bad_frame(c, id, errc::bad_request, "login needs a token, a room (1-127 of [A-Za-z0-9_.-]) and a role");
        }
        const token_check check = verify_token(cfg_.secret, *token, cfg_.app_id, *room_name,
                                               static_cast<std::uint32_t>(privilege::login), now / 1000);
        if (!check) {
            ++stats_.login_refused;
            return bad_frame(c, id, check.error, std::string(wire_name(check.error)));
        }
        if (c->is_virtual && *room_name != c->trunk->trunk_room) {
            ++stats_.login_refused;
            return bad_frame(c, id, errc::bad_request, "this trunk carries another room");
        }
        auto it = rooms_.find(*room_name);
        if (it == rooms_.end()) it = rooms_.emplace(*room_name, std::make_unique<room_slot>(*this, *room_name, cfg_.room, now)).first;
        room_slot& slot = *it->second;
        std::uint64_t since = 0;
        if (auto sn = req.find("since"); sn != req.end() && sn->is_number_unsigned()) since = sn->get<std::uint64_t>();
        if (slot.r.join(c->id, check.claims.user, check.claims.privileges, *r, id, now, since) != errc::ok) {
            ++stats_.login_refused;
            note(slot);
            return;
        }
        ++stats_.logins;
        c->room = &slot;
        member_of_[{*room_name, check.claims.user}] = c->id;
        c->user = check.claims.user;
        note(slot);
    }

    // --- rooms across nodes -------------------------------------------------------------
    /// A grant goes to the media path of the node its member is on.
    void media(const media_grant& g) {
        auto m = member_of_.find({g.room, g.user});
        if (m != member_of_.end()) {
            auto c = connections_.find(m->second);
            if (c != connections_.end() && c->second->is_virtual) {
                static constexpr const char* kinds[] = {"publish", "unpublish", "play", "stop"};
                queue(c->second->trunk->id, make_frame(json{{"type", "media"}, {"what", kinds[static_cast<int>(g.what)]}, {"room", g.room},
                                                            {"user", g.user}, {"stream", g.stream}, {"ticket", g.ticket}}.dump()));
                return;
            }
        }
        if (cfg_.on_media) cfg_.on_media(g);
    }

    /// At an edge: a login to a room this node is not the home of.
    void route_login(const connection_ptr& c, const std::string& name, std::string_view body) {
        auto [it, fresh] = remote_rooms_.try_emplace(name);
        if (fresh) {
            it->second = std::make_unique<remote_room>();
            it->second->name = name;
        }
        remote_room& rr = *it->second;
        if (rr.up) return attach(c, rr, body);
        rr.waiting.emplace_back(c, std::string(body));
        if (fresh)
            cfg_.locate_room(name, [this, name](std::optional<tcp::endpoint> home) {
                if (running_) located(name, home);
            });
    }

    void located(const std::string& name, const std::optional<tcp::endpoint>& home) {
        auto it = remote_rooms_.find(name);
        if (it == remote_rooms_.end()) return;
        if (!home) { // the room lives here: its held logins go in
            home_rooms_.insert(name);
            auto waiting = std::move(it->second->waiting);
            remote_rooms_.erase(it);
            const std::int64_t now = now_ms();
            for (auto& [c, body] : waiting)
                if (connections_.contains(c->id) && !c->closing) on_frame(c, body, now);
            return schedule_flush();
        }
        auto t = std::make_shared<connection>(ex_, trunk_frame_limit);
        t->trunk_out = true;
        t->trunk_room = name;
        t->id = ++next_id_;
        t->accepted_at = now_ms();
        connections_.emplace(t->id, t);
        it->second->trunk = t;
        t->socket.async_connect(*home, [this, t, name](std::error_code ec) {
            if (!running_) return;
            auto rr = remote_rooms_.find(name);
            if (rr == remote_rooms_.end() || rr->second->trunk != t) return abort(t, "gone");
            if (ec) return trunk_failed(t);
            std::error_code ignored;
            t->socket.set_option(tcp::no_delay(true), ignored);
            ++stats_.trunks_out;
            json hello{{"type", "trunk"}, {"room", name}, {"node", cfg_.node_id}, {"counter", dispatch::next_counter(trunk_counter_)},
                       {"ts", now_ms()}};
            dispatch::sign(hello, cfg_.cluster_secret);
            queue(t->id, make_frame(hello.dump()));
            remote_room& r = *rr->second;
            r.up = true;
            auto waiting = std::move(r.waiting);
            for (auto& [c, body] : waiting)
                if (connections_.contains(c->id) && !c->closing) attach(c, r, body);
            read(t);
        });
    }

    void attach(const connection_ptr& c, remote_room& rr, std::string_view login_body) {
        c->via = &rr;
        rr.members[c->id] = c;
        ++stats_.proxied_logins;
        forward_up(rr, c->id, login_body);
    }
    void forward_up(remote_room& rr, session_id member, std::string_view body) {
        if (!rr.trunk) return;
        queue(rr.trunk->id, make_frame(json{{"type", "m"}, {"m", member}, {"f", std::string(body)}}.dump()));
    }

    /// At an edge: the trunk to a room's home failed; its members are told and closed
    /// (clients log in again).
    void trunk_failed(const connection_ptr& t) {
        fail_remote_room(t);
        abort(t, "trunk failed");
    }
    void fail_remote_room(const connection_ptr& t) {
        ++stats_.trunk_failures;
        auto rr = remote_rooms_.find(t->trunk_room);
        if (rr != remote_rooms_.end() && rr->second->trunk == t) {
            auto members = std::move(rr->second->members);
            auto waiting = std::move(rr->second->waiting);
            remote_rooms_.erase(rr);
            for (auto& [id, c] : members) {
                c->via = nullptr;
                close(id, errc::unavailable);
            }
            for (auto& [c, body] : waiting) close(c->id, errc::unavailable);
        }
    }

    /// At an edge: a frame from a room's home.
    void on_trunk_down(const connection_ptr& t, std::string_view body) {
        auto rr = remote_rooms_.find(t->trunk_room);
        if (rr == remote_rooms_.end()) return;
        if (t->route_left > 0) { // a frame for the members named before it, as it is
            --t->route_left;
            const shared_frames f = make_frame(body);
            for (session_id id : t->route_to)
                if (rr->second->members.contains(id)) queue(id, f);
            return;
        }
        json m = json::parse(body.begin(), body.end(), nullptr, false);
        const std::string type = m.is_object() ? m.value("type", std::string()) : std::string();
        if (type == "to" && m.contains("m") && m["m"].is_array() && m.contains("k") && m["k"].is_number_unsigned()) {
            t->route_to.clear();
            for (const auto& id : m["m"])
                if (id.is_number_unsigned()) t->route_to.push_back(id.get<session_id>());
            t->route_left = m["k"].get<std::size_t>();
        } else if (type == "close" && m.contains("m") && m["m"].is_number_unsigned()) {
            auto c = rr->second->members.find(m["m"].get<session_id>());
            if (c == rr->second->members.end()) return;
            connection_ptr member = c->second;
            rr->second->members.erase(c);
            member->via = nullptr;
            close(member->id, errc::ok); // the home's error frame, if any, came before
        } else if (type == "media") {
            static const std::map<std::string, media_grant::kind> kinds{
                {"publish", media_grant::kind::publish}, {"unpublish", media_grant::kind::unpublish},
                {"play", media_grant::kind::play}, {"stop", media_grant::kind::stop}};
            auto k = kinds.find(m.value("what", std::string()));
            if (k == kinds.end()) {
                ++stats_.bad_trunk_frames;
                return;
            }
            media_grant g{k->second, m.value("room", std::string()), m.value("user", std::string()), m.value("stream", std::string()),
                          m.value("ticket", std::string())};
            if (cfg_.on_media) cfg_.on_media(g);
        } else {
            ++stats_.bad_trunk_frames;
        }
    }

    /// At the home: a trunk from an edge, signed with the cluster's secret.
    void accept_trunk(const connection_ptr& c, const json& req, std::int64_t now) {
        const std::string room_name = req.value("room", std::string());
        if (cfg_.cluster_secret.empty() || !valid_name(room_name) || trunk_guard_.check(req, now) != dispatch::auth_result::ok) {
            ++stats_.trunks_refused;
            return close(c->id, errc::no_privilege);
        }
        ++stats_.trunks_in;
        c->trunk_in = true;
        c->reader.set_max_frame(trunk_frame_limit); // members' frames, wrapped
        c->trunk_room = room_name;
        home_rooms_.insert(room_name);
    }

    /// At the home: a frame from an edge for one of its members.
    void on_trunk_up(const connection_ptr& t, std::string_view body, std::int64_t now) {
        json m = json::parse(body.begin(), body.end(), nullptr, false);
        const std::string type = m.is_object() ? m.value("type", std::string()) : std::string();
        if (!m.is_object() || !m.contains("m") || !m["m"].is_number_unsigned()) {
            ++stats_.bad_trunk_frames;
            return;
        }
        const auto remote = m["m"].get<std::uint64_t>();
        auto known = t->members.find(remote);
        if (type == "gone") {
            if (known == t->members.end()) return;
            auto v = connections_.find(known->second);
            t->members.erase(known);
            if (v == connections_.end()) return;
            v->second->remote_gone = true;
            abort(v->second, "disconnect");
            return;
        }
        if (type != "m" || !m.contains("f") || !m["f"].is_string()) {
            ++stats_.bad_trunk_frames;
            return;
        }
        connection_ptr v;
        if (known != t->members.end()) {
            auto it = connections_.find(known->second);
            if (it == connections_.end()) return; // closed here; the edge hears of it
            v = it->second;
        } else {
            v = std::make_shared<connection>(ex_, cfg_.max_frame);
            v->is_virtual = true;
            v->trunk = t;
            v->remote_id = remote;
            v->id = ++next_id_;
            v->accepted_at = now;
            connections_.emplace(v->id, v);
            t->members[remote] = v->id;
        }
        const std::string& f = m["f"].get_ref<const std::string&>();
        if (f.size() > cfg_.max_frame) return close(v->id, errc::bad_frame);
        on_frame(v, f, now);
    }

    /// Frames in a buffer of length-prefixed frames.
    static std::size_t frames_in(const shared_frames& f) {
        std::size_t n = 0;
        for (std::size_t at = 0; at + 4 <= f->size(); ++n) {
            const auto* p = reinterpret_cast<const unsigned char*>(f->data()) + at;
            at += 4 + ((std::size_t{p[0]} << 24) | (std::size_t{p[1]} << 16) | (std::size_t{p[2]} << 8) | p[3]);
        }
        return n;
    }
    /// `f` for the members `remote` of trunk `t` (at the home).
    void queue_on_trunk(session_id t, const std::vector<std::uint64_t>& remote, const shared_frames& f) {
        queue(t, make_frame(json{{"type", "to"}, {"m", remote}, {"k", frames_in(f)}}.dump()));
        queue(t, f);
    }

    // --- writing ------------------------------------------------------------------------
    void queue(session_id s, const shared_frames& f) {
        auto it = connections_.find(s);
        if (it == connections_.end()) return;
        const connection_ptr& c = it->second;
        if (c->closing) return;
        if (c->is_virtual) {
            if (!c->remote_gone && connections_.contains(c->trunk->id)) queue_on_trunk(c->trunk->id, {c->remote_id}, f);
            return;
        }
        c->backlog += f->size();
        if (c->backlog > (c->trunk_in || c->trunk_out ? cfg_.max_trunk_backlog_bytes : cfg_.max_backlog_bytes)) {
            // Not at once: this may run inside a room's flush, which walks its members.
            ++stats_.slow_readers;
            c->closing = true;
            c->pending.clear();
            asio::post(ex_, [this, c] { abort(c, "slow reader"); });
            return;
        }
        c->pending.push_back(f);
        if (!c->writing) write(c);
    }

    void write(const connection_ptr& c) {
        c->writing = true;
        c->inflight.swap(c->pending);
        c->pending.clear();
        c->buffers.clear();
        for (const auto& f : c->inflight) c->buffers.emplace_back(f->data(), f->size());
        ++stats_.writes;
        asio::async_write(c->socket, c->buffers, [this, c](std::error_code ec, std::size_t n) {
            c->writing = false;
            stats_.bytes_out += n;
            c->backlog -= std::min(c->backlog, n);
            c->inflight.clear();
            if (!running_) return;
            if (ec) return abort(c, "disconnect");
            if (!c->pending.empty()) return write(c);
            if (c->closing) finish(c);
        });
    }

    /// Sends what is queued (and an error frame when `e` is one), then closes.
    void close(session_id s, errc e) {
        auto it = connections_.find(s);
        if (it == connections_.end() || it->second->closing) return;
        connection_ptr c = it->second;
        if (e != errc::ok) send_error(c, nullptr, e, "closing");
        c->closing = true;
        if (c->room) {
            c->room->r.leave(c->id, e == errc::ok ? "logout" : "closed", now_ms());
            note(*c->room);
            forget_member(c);
            c->room = nullptr;
        }
        if (!c->writing) finish(c);
    }

    void finish(const connection_ptr& c, std::string_view reason = "closed") {
        if (c->room) {
            c->room->r.leave(c->id, reason, now_ms());
            note(*c->room);
            forget_member(c);
            c->room = nullptr;
        }
        if (c->is_virtual) { // no socket: the edge closes its member
            if (!c->remote_gone && connections_.contains(c->trunk->id)) {
                queue(c->trunk->id, make_frame(json{{"type", "close"}, {"m", c->remote_id}}.dump()));
                c->trunk->members.erase(c->remote_id);
            }
            if (connections_.erase(c->id)) ++stats_.closed;
            return;
        }
        if (c->via) { // at an edge: the home hears the member went
            remote_room& rr = *c->via;
            c->via = nullptr;
            rr.members.erase(c->id);
            if (rr.trunk && connections_.contains(rr.trunk->id))
                queue(rr.trunk->id, make_frame(json{{"type", "gone"}, {"m", c->id}}.dump()));
        }
        if (c->trunk_in) { // its members go with it
            auto members = std::move(c->members);
            for (const auto& [remote, v] : members)
                if (auto it = connections_.find(v); it != connections_.end()) {
                    it->second->remote_gone = true;
                    abort(it->second, "trunk closed");
                }
        }
        if (c->trunk_out) {
            if (auto rr = remote_rooms_.find(c->trunk_room); rr != remote_rooms_.end() && rr->second->trunk == c) fail_remote_room(c);
        }
        std::error_code ec;
        c->socket.shutdown(tcp::socket::shutdown_both, ec);
        c->socket.close(ec);
        if (connections_.erase(c->id)) ++stats_.closed;
    }

    void forget_member(const connection_ptr& c) {
        auto it = member_of_.find({c->room->r.name(), c->user});
        if (it != member_of_.end() && it->second == c->id) member_of_.erase(it);
    }

    /// The peer is gone or stuck: close at once.
    void abort(const connection_ptr& c, std::string_view reason) {
        if (!connections_.contains(c->id)) return;
        c->pending.clear();
        c->closing = true;
        finish(c, reason);
    }

    // --- flushing and timers ------------------------------------------------------------
    void note(room_slot& slot) {
        if (slot.r.has_outbox() && !slot.dirty) {
            slot.dirty = true;
            dirty_.push_back(&slot);
        }
    }

    // The larger of the configured write budget and the measured cost: a flush of this room
    // may take at most fanout_share of the thread, so reads still get in between.
    std::int64_t flush_interval_ms(const room_slot& slot) const {
        const double members = static_cast<double>(slot.r.size());
        const double budget_ms = members * 1000.0 / cfg_.fanout_writes_per_second;
        const double cost_ms = members * write_cost_us_ / 1000.0 / cfg_.fanout_share;
        return static_cast<std::int64_t>(std::max(budget_ms, cost_ms));
    }

    void deliver(room_slot& slot, const shared_frames& f, std::vector<session_id>&& to) {
        slot.deliveries.push_back({f, std::move(to), 0});
        if (!slot.pumping) {
            slot.pumping = true;
            pump(slot);
        }
    }

    // Writes one chunk of the slot's deliveries, then yields to the loop (reads, timers,
    // other rooms) before the next; measures what a write costs here.
    void pump(room_slot& slot) {
        const auto start = std::chrono::steady_clock::now();
        std::size_t writes = 0;
        while (writes < cfg_.fanout_chunk && !slot.deliveries.empty()) {
            delivery& d = slot.deliveries.front();
            // Members behind a trunk get this chunk's copy together: one per trunk.
            std::map<session_id, std::vector<std::uint64_t>> trunked;
            while (writes < cfg_.fanout_chunk && d.next < d.to.size()) {
                const session_id to = d.to[d.next++];
                auto c = connections_.find(to);
                if (c != connections_.end() && c->second->is_virtual) {
                    if (!c->second->remote_gone) trunked[c->second->trunk->id].push_back(c->second->remote_id);
                } else {
                    queue(to, d.frames);
                }
                ++writes;
            }
            for (const auto& [t, remote] : trunked)
                if (connections_.contains(t)) queue_on_trunk(t, remote, d.frames);
            if (d.next == d.to.size()) slot.deliveries.pop_front();
        }
        if (writes >= 64) {
            const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() / static_cast<double>(writes);
            write_cost_us_ = write_cost_us_ * 0.8 + us * 0.2;
        }
        if (slot.deliveries.empty()) {
            slot.pumping = false;
            return;
        }
        asio::post(ex_, [this, &slot] {
            if (running_) pump(slot);
        });
    }

    // Flushes what is due now and arms the timer for the rest; posted, so that every frame
    // of one read (and of other connections ready at once) shares the flush.
    void schedule_flush() {
        if (dirty_.empty() || flush_posted_) return;
        flush_posted_ = true;
        asio::post(ex_, [this] {
            flush_posted_ = false;
            if (running_) flush_due();
        });
    }

    void flush_due() {
        const std::int64_t now = now_ms();
        std::int64_t next = -1;
        std::vector<room_slot*> still;
        for (room_slot* slot : dirty_) {
            const std::int64_t due = slot->last_flush + flush_interval_ms(*slot);
            if (due <= now && slot->pumping) {
                still.push_back(slot); // the last broadcast is still going out: wait for it
                next = next < 0 ? now + 5 : std::min(next, now + 5);
            } else if (due <= now) {
                slot->dirty = false;
                slot->last_flush = now;
                slot->r.flush();
            } else {
                still.push_back(slot);
                next = next < 0 ? due : std::min(next, due);
            }
        }
        dirty_.swap(still);
        if (next >= 0 && !flush_armed_) {
            flush_armed_ = true;
            flush_timer_.expires_after(std::chrono::milliseconds(next - now));
            flush_timer_.async_wait([this](std::error_code ec) {
                flush_armed_ = false;
                if (!ec && running_) flush_due();
            });
        }
    }

    void arm_tick() {
        tick_timer_.expires_after(cfg_.tick);
        tick_timer_.async_wait([this](std::error_code ec) {
            if (ec || !running_) return;
            on_tick();
            arm_tick();
        });
    }

    void on_tick() {
        const std::int64_t now = now_ms();
        std::vector<connection_ptr> late;
        for (const auto& [id, c] : connections_) {
            if (c->closing) continue;
            const bool served = c->room || c->via || c->trunk_in || c->trunk_out;
            if (!served && now - c->accepted_at > cfg_.login_timeout.count()) {
                ++stats_.login_timeouts;
                late.push_back(c);
            } else if (c->mid_frame_since >= 0 && now - c->mid_frame_since > cfg_.frame_timeout.count()) {
                ++stats_.stalled_frames;
                late.push_back(c);
            }
        }
        for (const auto& c : late) close(c->id, errc::timed_out);
        // Trunks whose members have all gone are closed (the next login locates the room again).
        for (auto it = remote_rooms_.begin(); it != remote_rooms_.end();) {
            if (it->second->up && it->second->members.empty() && it->second->waiting.empty()) {
                connection_ptr t = it->second->trunk;
                it = remote_rooms_.erase(it);
                if (t) abort(t, "idle");
                continue;
            }
            ++it;
        }
        for (auto it = rooms_.begin(); it != rooms_.end();) {
            room_slot& slot = *it->second;
            slot.r.tick(now);
            note(slot);
            if (!slot.r.empty()) slot.empty_since = 0;
            else if (slot.empty_since == 0) slot.empty_since = now;
            if (slot.r.empty() && !slot.dirty && !slot.pumping && now - slot.empty_since > cfg_.empty_room_linger.count()) {
                it = rooms_.erase(it);
                continue;
            }
            ++it;
        }
        schedule_flush();
    }

    asio::any_io_executor ex_;
    tcp::acceptor acceptor_;
    room_service_config cfg_;
    asio::steady_timer tick_timer_, flush_timer_;
    std::int64_t epoch_ms_;
    std::chrono::steady_clock::time_point start_;
    std::unordered_map<session_id, connection_ptr> connections_;
    std::map<std::string, std::unique_ptr<room_slot>> rooms_;
    std::vector<room_slot*> dirty_;
    session_id next_id_ = 0;
    // Rooms across nodes.
    std::map<std::pair<std::string, std::string>, session_id> member_of_; ///< (room, user) -> its session here
    std::set<std::string> home_rooms_;                                    ///< rooms located here
    std::map<std::string, std::unique_ptr<remote_room>> remote_rooms_;    ///< rooms served through a trunk
    dispatch::message_guard trunk_guard_;
    static constexpr std::size_t trunk_frame_limit = 1024 * 1024;
    std::uint64_t trunk_counter_ = 0;
    bool running_ = false, flush_posted_ = false, flush_armed_ = false;
    double write_cost_us_ = 5; ///< measured cost of one socket write (moving average)
    room_service_stats stats_;
};

} // namespace onair::control
