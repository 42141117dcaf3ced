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
#pragma once

#include "onair/control/error.hpp"
#include "onair/control/framing.hpp"
#include "onair/control/room.hpp"
#include "onair/control/token.hpp"

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
};

struct room_service_stats {
    std::uint64_t accepted = 0, refused_connections = 0, closed = 0;
    std::uint64_t frames = 0, bad_frames = 0, bad_json = 0, bad_requests = 0;
    std::uint64_t logins = 0, login_refused = 0;
    std::uint64_t login_timeouts = 0, stalled_frames = 0, slow_readers = 0;
    std::uint64_t bytes_in = 0, bytes_out = 0, writes = 0;
};

/// Thread safety: construct, start() and stop() on the executor's thread or before it runs;
/// everything else runs there. stats() and room_stats() may be read on that thread.
class room_service {
public:
    using json = nlohmann::json;
    using tcp = asio::ip::tcp;

    room_service(asio::any_io_executor ex, const tcp::endpoint& listen, room_service_config cfg)
        : ex_(ex), acceptor_(ex, listen), cfg_(std::move(cfg)), tick_timer_(ex), flush_timer_(ex),
          epoch_ms_(unix_now() * 1000), start_(std::chrono::steady_clock::now()) {
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
        void on_media(const media_grant& g) {
            if (svc.cfg_.on_media) svc.cfg_.on_media(g);
        }
    };
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
    };
    using connection_ptr = std::shared_ptr<connection>;

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
                    on_frame(c, body, now);
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
            if (type != "login") return bad_frame(c, id, errc::not_logged_in, "log in first");
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
        note(slot);
    }

    // --- writing ------------------------------------------------------------------------
    void queue(session_id s, const shared_frames& f) {
        auto it = connections_.find(s);
        if (it == connections_.end()) return;
        const connection_ptr& c = it->second;
        if (c->closing) return;
        c->backlog += f->size();
        if (c->backlog > cfg_.max_backlog_bytes) {
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
            c->room = nullptr;
        }
        if (!c->writing) finish(c);
    }

    void finish(const connection_ptr& c, std::string_view reason = "closed") {
        if (c->room) {
            c->room->r.leave(c->id, reason, now_ms());
            note(*c->room);
            c->room = nullptr;
        }
        std::error_code ec;
        c->socket.shutdown(tcp::socket::shutdown_both, ec);
        c->socket.close(ec);
        if (connections_.erase(c->id)) ++stats_.closed;
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
            while (writes < cfg_.fanout_chunk && d.next < d.to.size()) {
                queue(d.to[d.next++], d.frames);
                ++writes;
            }
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
            if (!c->room && now - c->accepted_at > cfg_.login_timeout.count()) {
                ++stats_.login_timeouts;
                late.push_back(c);
            } else if (c->mid_frame_since >= 0 && now - c->mid_frame_since > cfg_.frame_timeout.count()) {
                ++stats_.stalled_frames;
                late.push_back(c);
            }
        }
        for (const auto& c : late) close(c->id, errc::timed_out);
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
    bool running_ = false, flush_posted_ = false, flush_armed_ = false;
    double write_cost_us_ = 5; ///< measured cost of one socket write (moving average)
    room_service_stats stats_;
};

} // namespace onair::control
