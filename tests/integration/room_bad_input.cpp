// The room service under hostile input over real TCP: bad framing, bad JSON, stalls, idle
// connections, chat floods, slow readers and bad tokens are refused with the right error,
// counted, and closed, while the honest members of the room keep chatting undisturbed.
//
// The services and the honest members (room_clients) live on one io_context run by a
// thread; the attackers are raw non-blocking sockets driven from the test thread with
// poll() deadlines, so nothing can hang.
#include "support/on_io.hpp"

#include <onair/control/room_client.hpp>
#include <onair/control/room_service.hpp>
#include <onair/control/token.hpp>

#include <doctest/doctest.h>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <poll.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

using namespace std::chrono_literals;

namespace {

namespace oc = onair::control;
using json = nlohmann::json;
using tcp = asio::ip::tcp;
using steady = std::chrono::steady_clock;
using onair_test::on_io;

constexpr std::string_view secret = "room-bad-input-secret";
const std::string lobby = "lobby";

std::string token_for(const std::string& user, const std::string& room = lobby, std::uint32_t priv = oc::all_privileges,
                      std::int64_t ttl_s = 3600, const std::string& app = "onair", std::string_view key = secret) {
    return oc::mint_token(key, {app, room, user, priv, oc::unix_now() + ttl_s});
}

std::string frame(std::string_view body) {
    std::string s;
    oc::append_frame(s, body);
    return s;
}
std::string jframe(const json& j) { return frame(j.dump()); }

long ms_since(steady::time_point t) {
    return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - t).count());
}

/// Polls `p` every 10 ms until it holds or `limit` passes.
template <class P>
bool eventually(P p, std::chrono::milliseconds limit = 5s) {
    const auto deadline = steady::now() + limit;
    while (!p()) {
        if (steady::now() > deadline) return false;
        std::this_thread::sleep_for(10ms);
    }
    return true;
}

/// A raw TCP peer on the test thread: non-blocking socket, poll() with deadlines.
class raw_peer {
public:
    enum class got { frame, eof, reset, timeout };

    raw_peer(asio::io_context& ctx, const tcp::endpoint& ep, int rcvbuf = 0) : s_(ctx) {
        s_.open(ep.protocol());
        if (rcvbuf > 0) s_.set_option(asio::socket_base::receive_buffer_size(rcvbuf));
        s_.connect(ep);
        s_.set_option(tcp::no_delay(true));
        s_.non_blocking(true);
    }

    /// Writes all of `bytes`; false if the connection failed or the deadline passed.
    bool send(std::string_view bytes, std::chrono::milliseconds limit = 3s) {
        const auto deadline = steady::now() + limit;
        while (!bytes.empty()) {
            std::error_code ec;
            const std::size_t n = s_.write_some(asio::buffer(bytes.data(), bytes.size()), ec);
            if (ec == asio::error::would_block || ec == asio::error::try_again) {
                if (!wait(POLLOUT, deadline)) return false;
                continue;
            }
            if (ec) return false;
            bytes.remove_prefix(n);
        }
        return true;
    }
    bool send_json(const json& j) { return send(jframe(j)); }

    /// The next frame (parsed; discarded JSON if it is not JSON), or how the stream ended.
    got next(json& out, steady::time_point deadline) {
        for (;;) {
            if (buf_.size() >= 4) {
                const auto* p = reinterpret_cast<const unsigned char*>(buf_.data());
                const std::size_t len = (std::size_t{p[0]} << 24) | (std::size_t{p[1]} << 16) | (std::size_t{p[2]} << 8) | p[3];
                if (buf_.size() >= 4 + len) {
                    out = json::parse(buf_.begin() + 4, buf_.begin() + 4 + static_cast<std::ptrdiff_t>(len), nullptr, false);
                    buf_.erase(0, 4 + len);
                    return got::frame;
                }
            }
            if (end_) return *end_;
            std::error_code ec;
            const std::size_t n = s_.read_some(asio::buffer(tmp_), ec);
            if (ec == asio::error::would_block || ec == asio::error::try_again) {
                if (!wait(POLLIN, deadline)) return got::timeout;
                continue;
            }
            if (ec == asio::error::eof) end_ = got::eof;
            else if (ec) end_ = got::reset;
            else buf_.append(tmp_.data(), n);
        }
    }

    /// The first frame that satisfies `pred` (others are skipped), or null.
    template <class P>
    json expect(P pred, std::chrono::milliseconds limit = 3s) {
        const auto deadline = steady::now() + limit;
        json j;
        while (next(j, deadline) == got::frame)
            if (pred(j)) return j;
        return nullptr;
    }
    /// The reply or error to request `id`.
    json answer(std::uint64_t id, std::chrono::milliseconds limit = 3s) {
        return expect([id](const json& j) { return is_answer(j) && j["id"] == id; }, limit);
    }
    /// The next reply or error (broadcasts are skipped).
    json next_answer(std::chrono::milliseconds limit = 3s) { return expect(is_answer, limit); }

    /// Reads until the stream ends; the frames seen on the way go to `frames`.
    got drain(std::vector<json>& frames, std::chrono::milliseconds limit = 3s) {
        const auto deadline = steady::now() + limit;
        json j;
        for (;;) {
            const got g = next(j, deadline);
            if (g != got::frame) return g;
            frames.push_back(std::move(j));
        }
    }

    /// Logs in and returns the answer.
    json login(const std::string& token, std::uint64_t id, const std::string& room = lobby) {
        send_json(json{{"type", "login"}, {"id", id}, {"token", token}, {"room", room}, {"role", "audience"}});
        return answer(id);
    }

    void close() {
        std::error_code ec;
        s_.close(ec);
    }

    static bool is_answer(const json& j) {
        return j.is_object() && j.contains("type") && (j["type"] == "reply" || j["type"] == "error");
    }

private:
    bool wait(short events, steady::time_point deadline) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now()).count();
        if (left <= 0) return false;
        pollfd pfd{s_.native_handle(), events, 0};
        return ::poll(&pfd, 1, static_cast<int>(left)) > 0;
    }

    tcp::socket s_;
    std::string buf_;
    std::array<char, 65536> tmp_{};
    std::optional<got> end_;
};

bool is_error(const json& j, std::string_view code) {
    return j.is_object() && j.value("type", "") == "error" && j.value("code", "") == code;
}

/// What an honest member saw (touched on the io thread only).
struct member_log {
    std::vector<json> chats, left;
    bool closed = false;
    std::error_code why;
};

/// Sends `texts` one every `every`, on the io thread.
struct pacer : std::enable_shared_from_this<pacer> {
    pacer(asio::io_context& io, std::weak_ptr<oc::room_client> cl, std::vector<std::string> t, std::chrono::milliseconds e)
        : timer(io), c(std::move(cl)), texts(std::move(t)), every(e) {}
    asio::steady_timer timer;
    std::weak_ptr<oc::room_client> c;
    std::vector<std::string> texts;
    std::chrono::milliseconds every;
    std::vector<std::error_code> errors;
    std::vector<json> replies;
    std::size_t i = 0;

    void step() {
        auto cl = c.lock();
        if (!cl) return;
        cl->chat(texts[i], [self = shared_from_this()](std::error_code e, const json& r) {
            self->errors.push_back(e);
            self->replies.push_back(r);
        });
        if (++i == texts.size()) return;
        timer.expires_after(every);
        timer.async_wait([self = shared_from_this()](std::error_code ec) {
            if (!ec) self->step();
        });
    }
};

/// Chats large texts with a few in flight until the service has closed a slow reader (and
/// 20 more after that), on the io thread.
struct pump : std::enable_shared_from_this<pump> {
    std::weak_ptr<oc::room_client> c;
    const oc::room_service* svc = nullptr;
    std::string text;
    std::size_t inflight = 0, sent = 0, after = 0, max = 4000;
    std::uint64_t errors = 0;
    std::vector<std::uint64_t> seqs;
    bool done = false;

    void fill() {
        auto cl = c.lock();
        if (!cl) return;
        while (!done && inflight < 4) {
            if (svc->stats().slow_readers > 0 && after++ >= 20) done = true;
            if (sent >= max) done = true;
            if (done) break;
            ++inflight;
            ++sent;
            cl->chat(text + std::to_string(sent), [self = shared_from_this()](std::error_code e, const json& r) {
                --self->inflight;
                if (!e && r.contains("seq")) self->seqs.push_back(r["seq"].get<std::uint64_t>());
                else ++self->errors;
                self->fill();
            });
        }
    }
};

oc::room_service_config base_config() {
    oc::room_service_config cfg;
    cfg.secret = std::string(secret);
    cfg.max_frame = 16 * 1024;
    cfg.max_backlog_bytes = 256 * 1024;
    cfg.login_timeout = 300ms;
    cfg.frame_timeout = 300ms;
    cfg.tick = 20ms;
    cfg.bad_frames_before_close = 10;
    cfg.room.heartbeat_ms = 200;
    cfg.room.flood_refusals = 50;
    return cfg;
}

struct fixture {
    asio::io_context io;
    asio::io_context raw_io; // the attackers' sockets: synchronous use only, never run
    asio::executor_work_guard<asio::io_context::executor_type> guard = asio::make_work_guard(io);
    std::unique_ptr<oc::room_service> svc, svc2; // svc: default rate limits; svc2: chat limits raised
    tcp::endpoint ep, ep2;
    std::map<std::string, std::shared_ptr<oc::room_client>> clients; // io thread only
    std::map<std::string, member_log> logs;                         // io thread only
    std::atomic<bool> io_threw{false};
    std::jthread thread;

    fixture() {
        const tcp::endpoint any(asio::ip::make_address("127.0.0.1"), 0);
        svc = std::make_unique<oc::room_service>(io.get_executor(), any, base_config());
        auto cfg2 = base_config();
        cfg2.room.chat_per_user = {1e6, 1e6};
        cfg2.room.chat_per_room = {1e6, 1e6};
        cfg2.room.max_chat_bytes = 12'000;
        svc2 = std::make_unique<oc::room_service>(io.get_executor(), any, cfg2);
        svc->start();
        svc2->start();
        ep = svc->local_endpoint();
        ep2 = svc2->local_endpoint();
        thread = std::jthread([this] {
            for (;;) { // a throwing handler must not leave on_io() waiting forever
                try {
                    io.run();
                    return;
                } catch (...) {
                    io_threw = true;
                }
            }
        });
    }
    ~fixture() {
        on_io(io, [this] {
            clients.clear();
            svc->stop();
            svc2->stop();
        });
        guard.reset();
        io.stop();
        thread.join();
    }

    /// Connects an honest member and waits for its login.
    bool join(const std::string& user, const tcp::endpoint& where) {
        auto done = std::make_shared<std::promise<std::error_code>>();
        auto f = done->get_future();
        asio::post(io, [this, user, where, done] {
            auto& log = logs[user];
            oc::room_client_handlers h;
            h.on_chat = [&log](const json& m) { log.chats.push_back(m); };
            h.on_user_left = [&log](const json& m) { log.left.push_back(m); };
            h.on_closed = [&log](std::error_code e) {
                log.closed = true;
                log.why = e;
            };
            auto c = std::make_shared<oc::room_client>(io.get_executor(), oc::room_client_config{where, token_for(user), lobby}, std::move(h));
            c->connect([done](std::error_code e, const json&) { done->set_value(e); });
            clients[user] = std::move(c);
        });
        return f.wait_for(3s) == std::future_status::ready && !f.get();
    }

    oc::room_service_stats stats() { return on_io(io, [this] { return svc->stats(); }); }
    oc::room_service_stats stats2() { return on_io(io, [this] { return svc2->stats(); }); }
    member_log log_of(const std::string& user) { return on_io(io, [&] { return logs[user]; }); }
};

/// The seq of every chat in `log` from `user`, in arrival order, and their texts.
std::vector<std::uint64_t> seqs_from(const member_log& log, const std::string& user, std::vector<std::string>* texts = nullptr) {
    std::vector<std::uint64_t> v;
    for (const auto& c : log.chats)
        if (c.value("from", "") == user) {
            v.push_back(c["seq"].get<std::uint64_t>());
            if (texts) texts->push_back(c.value("text", ""));
        }
    return v;
}

} // namespace

TEST_CASE("room service: hostile input is refused, counted and closed; honest members are undisturbed") {
    fixture fx;
    // alice: the well-behaved member of case 7; bob chats at a normal pace; carol listens.
    REQUIRE(fx.join("alice", fx.ep));
    REQUIRE(fx.join("bob", fx.ep));
    REQUIRE(fx.join("carol", fx.ep));
    REQUIRE(on_io(fx.io, [&] { return fx.svc->connections(); }) == 3);

    // --- 1. bad framing: zero length, oversized length, garbage -------------------------
    {
        INFO("case 1: bad framing");
        const auto before = fx.stats();
        struct attack {
            std::string bytes;
            const char* what;
        };
        const std::vector<attack> attacks = {
            {std::string("\0\0\0\0{\"type\":\"login\"}", 21), "zero length"},
            {std::string("\x00\x01\x00\x00", 4), "64 KiB promised (over max_frame), body never sent"},
            {std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "HTTP garbage (length 0x47455420)"},
        };
        for (const auto& a : attacks) {
            INFO(a.what);
            raw_peer p(fx.raw_io, fx.ep);
            const auto t0 = steady::now();
            REQUIRE(p.send(a.bytes));
            std::vector<json> frames;
            CHECK(p.drain(frames) == raw_peer::got::eof);
            const long took = ms_since(t0);
            REQUIRE(frames.size() == 1);
            CHECK(is_error(frames[0], "bad_frame"));
            CHECK(frames[0]["id"].is_null());
            CHECK(took < 250); // at once: not after frame_timeout (300 ms), and not waiting for the body
        }
        const auto after = fx.stats();
        CHECK(after.bad_frames - before.bad_frames == 3);
        CHECK(after.stalled_frames == before.stalled_frames);
        CHECK(after.frames == before.frames);
    }

    // --- 2. bad requests before and after login -----------------------------------------
    {
        INFO("case 2: bad requests before login, closed at the 10th");
        const auto before = fx.stats();
        raw_peer p(fx.raw_io, fx.ep);
        struct bad {
            std::string body;
            json id;
            const char* code;
        };
        const std::vector<bad> nine = {
            {"this is not json", nullptr, "bad_json"},
            {"{\"type\":", nullptr, "bad_json"},
            {"[1,2,3]", nullptr, "bad_json"},
            {"42", nullptr, "bad_json"},
            {R"({"id":5})", 5, "bad_request"},
            {R"({"type":6,"id":6})", 6, "bad_request"},
            {R"({"type":"chat","id":7,"text":"hi"})", 7, "not_logged_in"},
            {R"({"type":"dance","id":8})", 8, "not_logged_in"},
            {R"({"type":"login","id":9})", 9, "bad_request"}, // no token, no room
        };
        std::string all;
        for (const auto& b : nine) all += frame(b.body);
        REQUIRE(p.send(all));
        for (const auto& b : nine) {
            INFO(b.body);
            const json e = p.next_answer();
            CHECK(is_error(e, b.code));
            CHECK(e["id"] == b.id);
        }
        REQUIRE(p.send_json(json{{"type", "heartbeat"}, {"id", 10}})); // the 10th bad frame
        const json tenth = p.next_answer();
        CHECK(is_error(tenth, "not_logged_in"));
        CHECK(tenth["id"] == 10);
        std::vector<json> rest;
        CHECK(p.drain(rest) == raw_peer::got::eof);
        REQUIRE(rest.size() == 1);
        CHECK(is_error(rest[0], "not_logged_in")); // the closing error
        CHECK(rest[0]["id"].is_null());
        const auto after = fx.stats();
        CHECK(after.bad_json - before.bad_json == 4);
        CHECK(after.bad_requests - before.bad_requests == 2);
        CHECK(after.login_refused - before.login_refused == 1);
        CHECK(after.logins == before.logins);
    }
    {
        INFO("case 2: bad requests after login");
        const auto before = fx.stats();
        raw_peer p(fx.raw_io, fx.ep);
        const json in = p.login(token_for("prober"), 1);
        REQUIRE(in.value("type", "") == "reply");
        CHECK(in.value("user", "") == "prober");

        p.send_json(json{{"type", "dance"}, {"id", 2}});
        const json e2 = p.answer(2);
        CHECK(is_error(e2, "unknown_type"));
        p.send_json(json{{"type", "login"}, {"id", 3}, {"token", token_for("prober")}, {"room", lobby}});
        CHECK(is_error(p.answer(3), "already_logged_in"));
        p.send(frame("{not json"));
        CHECK(is_error(p.next_answer(), "bad_json"));
        p.send(frame(R"({"id":4,"text":"no type"})"));
        const json e4 = p.answer(4);
        CHECK(is_error(e4, "bad_request"));
        p.send_json(json{{"type", "heartbeat"}, {"id", 5}}); // still served
        CHECK(p.answer(5).value("type", "") == "reply");
        p.send_json(json{{"type", "logout"}, {"id", 6}});
        CHECK(p.answer(6).value("type", "") == "reply");
        std::vector<json> rest;
        CHECK(p.drain(rest) == raw_peer::got::eof);
        const auto after = fx.stats();
        CHECK(after.bad_json - before.bad_json == 1);
        CHECK(after.bad_requests - before.bad_requests == 1);
        CHECK(after.logins - before.logins == 1);
        const auto rs = on_io(fx.io, [&] { return *fx.svc->room_stats_of(lobby); });
        CHECK(rs.refused >= 1);
    }

    // --- 6. token refusals over the wire ------------------------------------------------
    {
        INFO("case 6: token refusals");
        const auto before = fx.stats();
        raw_peer p(fx.raw_io, fx.ep);
        const std::vector<std::pair<std::string, const char*>> bad_tokens = {
            {token_for("tok", lobby, oc::all_privileges, -60), "token_expired"},
            {token_for("tok", lobby, oc::all_privileges, 3600, "onair", "not-the-secret"), "token_forged"},
            {token_for("tok", "elsewhere"), "token_wrong_room"},
            {token_for("tok", lobby, oc::all_privileges, 3600, "another-app"), "token_wrong_app"},
            {token_for("tok", lobby, oc::all_privileges & ~oc::privilege_bit(oc::privilege::login)), "no_privilege"},
            {"v1.!!!.???", "token_malformed"},
        };
        std::uint64_t id = 0;
        for (const auto& [t, code] : bad_tokens) {
            INFO(code);
            const json e = p.login(t, ++id);
            CHECK(is_error(e, code));
        }
        const json ok = p.login(token_for("tok"), ++id); // the connection is still usable
        CHECK(ok.value("type", "") == "reply");
        p.send_json(json{{"type", "logout"}, {"id", ++id}});
        CHECK(p.answer(id).value("type", "") == "reply");
        std::vector<json> rest;
        CHECK(p.drain(rest) == raw_peer::got::eof);
        const auto after = fx.stats();
        CHECK(after.login_refused - before.login_refused == 6);
        CHECK(after.logins - before.logins == 1);
    }

    // --- 3. half a frame, and a connection that never logs in ---------------------------
    {
        INFO("case 3: stalls");
        const auto before = fx.stats();
        raw_peer p(fx.raw_io, fx.ep);
        REQUIRE(p.login(token_for("staller"), 1).value("type", "") == "reply");
        std::string half = frame(R"({"type":"heartbeat"})");
        half += std::string("\x00\x00\x00\x64", 4) + std::string(10, 'x'); // 100 bytes promised, 10 sent
        const auto t0 = steady::now();
        REQUIRE(p.send(half));
        const json closing = p.expect([](const json& j) { return raw_peer::is_answer(j); });
        std::vector<json> rest;
        CHECK(p.drain(rest) == raw_peer::got::eof);
        const long took = ms_since(t0);
        CHECK(is_error(closing, "timed_out"));
        CHECK(closing["id"].is_null());
        CHECK(took >= 300);
        CHECK(took < 550); // not the heartbeat expiry (600 ms after the heartbeat sent with it)

        const auto idle_t0 = steady::now(); // before the connect, so before the service's accept
        raw_peer idle(fx.raw_io, fx.ep);    // connects and says nothing
        std::vector<json> idle_frames;
        CHECK(idle.drain(idle_frames) == raw_peer::got::eof);
        const long idle_took = ms_since(idle_t0);
        REQUIRE(idle_frames.size() == 1);
        CHECK(is_error(idle_frames[0], "timed_out"));
        CHECK(idle_took >= 300);
        CHECK(idle_took < 550);

        const auto after = fx.stats();
        CHECK(after.stalled_frames == 1);
        REQUIRE(eventually([&] {
            const auto log = fx.log_of("carol");
            return std::any_of(log.left.begin(), log.left.end(), [](const json& m) { return m.value("user", "") == "staller"; });
        }));
        for (const auto& m : fx.log_of("carol").left)
            if (m.value("user", "") == "staller") CHECK(m.value("reason", "") == "closed"); // not "timeout" (heartbeats)
        CHECK(after.login_timeouts - before.login_timeouts == 1);
    }

    // --- 4. a chat flood beside a member chatting at a normal pace ----------------------
    {
        INFO("case 4: flood");
        raw_peer flooder(fx.raw_io, fx.ep);
        REQUIRE(flooder.login(token_for("flooder"), 1).value("type", "") == "reply");

        std::vector<std::string> bob_texts;
        for (int i = 0; i < 5; ++i) bob_texts.push_back("bob says " + std::to_string(i));
        auto bob = on_io(fx.io, [&] {
            auto pc = std::make_shared<pacer>(fx.io, fx.clients["bob"], bob_texts, 300ms);
            pc->step();
            return pc;
        });
        // Flood once bob is two messages in.
        REQUIRE(eventually([&] { return on_io(fx.io, [&] { return bob->replies.size(); }) >= 2; }));
        std::string flood;
        constexpr std::uint64_t n_flood = 300;
        for (std::uint64_t i = 1; i <= n_flood; ++i)
            flood += jframe(json{{"type", "chat"}, {"id", 100 + i}, {"text", "flood " + std::to_string(i)}});
        flooder.send(flood); // may fail part way once the service has hung up

        std::vector<json> got;
        const auto end = flooder.drain(got);
        CHECK((end == raw_peer::got::eof || end == raw_peer::got::reset));
        std::map<std::uint64_t, std::string> accepted; // seq -> text
        std::size_t limited = 0, bad_limited = 0;
        bool closing_seen = false, after_closing = false;
        for (const auto& j : got) {
            if (!raw_peer::is_answer(j)) continue;
            if (closing_seen) after_closing = true;
            if (j["id"].is_null()) {
                closing_seen = is_error(j, "rate_limited");
                CHECK(closing_seen);
                continue;
            }
            const auto id = j["id"].get<std::uint64_t>();
            if (j["type"] == "reply") {
                REQUIRE(j.contains("seq"));
                accepted[j["seq"].get<std::uint64_t>()] = "flood " + std::to_string(id - 100);
            } else if (is_error(j, "rate_limited")) {
                ++limited;
                if (!j.contains("retry_after_ms") || !j["retry_after_ms"].is_number_integer() || j["retry_after_ms"].get<std::int64_t>() <= 0)
                    ++bad_limited;
            } else {
                FAIL_CHECK("unexpected answer to a flood chat: " << j.dump());
            }
        }
        CHECK(closing_seen);
        CHECK_FALSE(after_closing);
        CHECK(accepted.size() >= 10); // the burst
        CHECK(accepted.size() <= 12);
        CHECK(limited == 50); // flood_refusals, then the connection ends
        CHECK(bad_limited == 0);

        // Bob's five all arrive at carol, in order, and so does every flood chat accepted.
        REQUIRE(eventually([&] { return on_io(fx.io, [&] { return bob->replies.size(); }) == 5; }));
        const auto bob_state = on_io(fx.io, [&] { return std::make_pair(bob->errors, bob->replies); });
        std::vector<std::uint64_t> bob_seqs;
        for (std::size_t i = 0; i < 5; ++i) {
            CHECK_FALSE(bob_state.first[i]);
            if (bob_state.second[i].contains("seq")) bob_seqs.push_back(bob_state.second[i]["seq"].get<std::uint64_t>());
        }
        REQUIRE(bob_seqs.size() == 5);
        REQUIRE(eventually([&] {
            const auto log = fx.log_of("carol");
            return seqs_from(log, "bob").size() == 5 && seqs_from(log, "flooder").size() >= accepted.size();
        }));
        const auto carol = fx.log_of("carol");
        std::vector<std::string> texts;
        CHECK(seqs_from(carol, "bob", &texts) == bob_seqs);
        CHECK(texts == bob_texts);
        std::vector<std::string> flood_texts;
        const auto flood_seqs = seqs_from(carol, "flooder", &flood_texts);
        std::map<std::uint64_t, std::string> delivered;
        for (std::size_t i = 0; i < flood_seqs.size(); ++i) delivered[flood_seqs[i]] = flood_texts[i];
        CHECK(delivered == accepted);
        for (std::size_t i = 1; i < carol.chats.size(); ++i) // carol sees the room in one order, with no gap
            CHECK(carol.chats[i]["seq"].get<std::uint64_t>() == carol.chats[i - 1]["seq"].get<std::uint64_t>() + 1);
        REQUIRE(eventually([&] {
            const auto log = fx.log_of("carol");
            return std::any_of(log.left.begin(), log.left.end(), [](const json& m) { return m.value("user", "") == "flooder"; });
        }));
        const auto left = fx.log_of("carol").left;
        for (const auto& m : left)
            if (m.value("user", "") == "flooder") CHECK(m.value("reason", "") == "flood");
        const auto rs = on_io(fx.io, [&] { return *fx.svc->room_stats_of(lobby); });
        CHECK(rs.flood_disconnects == 1);
    }

    // --- 5. a slow reader in a busy room (the second service: chat limits raised) ------
    {
        INFO("case 5: slow reader");
        REQUIRE(fx.join("pat", fx.ep2));   // broadcasts large chats
        REQUIRE(fx.join("quinn", fx.ep2)); // reads everything
        raw_peer slow(fx.raw_io, fx.ep2, 4096);
        REQUIRE(slow.login(token_for("slow"), 1).value("type", "") == "reply");
        // From here on `slow` only writes heartbeats, and never reads.
        auto p = on_io(fx.io, [&] {
            auto pp = std::make_shared<pump>();
            pp->c = fx.clients["pat"];
            pp->svc = fx.svc2.get();
            pp->text = std::string(8000, 'x');
            pp->fill();
            return pp;
        });
        auto last_beat = steady::now();
        const std::string beat = frame(R"({"type":"heartbeat"})");
        const bool finished = eventually(
            [&] {
                if (ms_since(last_beat) >= 100) {
                    slow.send(beat, 100ms);
                    last_beat = steady::now();
                }
                return on_io(fx.io, [&] { return p->done && p->inflight == 0; });
            },
            20s);
        REQUIRE(finished);
        const auto st = fx.stats2();
        CHECK(st.slow_readers >= 1);
        const auto pumped = on_io(fx.io, [&] { return std::make_tuple(p->seqs, p->errors, p->sent); });
        CHECK(std::get<1>(pumped) == 0);
        CHECK(std::get<0>(pumped).size() == std::get<2>(pumped));
        CHECK(std::get<2>(pumped) < 4000); // the slow reader was cut off well before the cap
        // Quinn (and pat) received every chat, in order.
        REQUIRE(eventually([&] { return seqs_from(fx.log_of("quinn"), "pat").size() >= std::get<0>(pumped).size(); }));
        CHECK(seqs_from(fx.log_of("quinn"), "pat") == std::get<0>(pumped));
        REQUIRE(eventually([&] { return seqs_from(fx.log_of("pat"), "pat").size() >= std::get<0>(pumped).size(); }));
        CHECK(seqs_from(fx.log_of("pat"), "pat") == std::get<0>(pumped));
        const auto quinn = fx.log_of("quinn");
        CHECK_FALSE(quinn.closed);
        CHECK(std::any_of(quinn.left.begin(), quinn.left.end(),
                          [](const json& m) { return m.value("user", "") == "slow" && m.value("reason", "") == "slow reader"; }));
        CHECK(on_io(fx.io, [&] { return fx.svc2->room_size(lobby); }) == 2);
        slow.close();
        CHECK(eventually([&] { return on_io(fx.io, [&] { return fx.svc2->connections(); }) == 2; }));
        CHECK_FALSE(fx.log_of("pat").closed);
    }

    // --- 7. the honest members are still there, and only they -------------------------
    {
        INFO("case 7: honest members");
        auto done = std::make_shared<std::promise<json>>();
        auto f = done->get_future();
        asio::post(fx.io, [&, done] {
            fx.clients["alice"]->chat("still here", [done](std::error_code e, const json& r) { done->set_value(e ? json(nullptr) : r); });
        });
        REQUIRE(f.wait_for(3s) == std::future_status::ready);
        const json r = f.get();
        REQUIRE(r.contains("seq"));
        const auto seq = r["seq"].get<std::uint64_t>();
        CHECK(eventually([&] {
            const auto log = fx.log_of("alice");
            return std::any_of(log.chats.begin(), log.chats.end(), [&](const json& c) {
                return c["seq"] == seq && c.value("from", "") == "alice" && c.value("text", "") == "still here";
            });
        }));
        for (const char* u : {"alice", "bob", "carol", "pat", "quinn"}) {
            INFO(u);
            CHECK_FALSE(fx.log_of(u).closed);
        }
        CHECK(eventually([&] { return on_io(fx.io, [&] { return fx.svc->connections(); }) == 3; }));
        CHECK(on_io(fx.io, [&] { return fx.svc->room_size(lobby); }) == 3);
        CHECK(on_io(fx.io, [&] { return fx.svc2->connections(); }) == 2);
        const auto st = fx.stats();
        CHECK(st.slow_readers == 0);
        CHECK(st.stalled_frames == 1);
        CHECK(st.login_timeouts == 1);
        CHECK(st.accepted - st.closed == 3);
        CHECK_FALSE(fx.io_threw.load());
    }
}
