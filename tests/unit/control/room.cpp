#include <onair/control/room.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <map>
#include <optional>
#include <ostream> // doctest prints std::string and json through it
#include <set>
#include <string>
#include <string_view>
#include <vector>

using namespace onair::control;
using json = nlohmann::json;

namespace {

// Privilege bits, as the token carries them.
constexpr std::uint32_t p_login = 1, p_publish = 2, p_play = 4, p_message = 8;
constexpr std::uint32_t p_all = p_login | p_publish | p_play | p_message;

/// Records what the room says, per session, as individual JSON messages.
struct test_output {
    std::map<session_id, std::vector<json>> got;
    std::map<session_id, std::vector<errc>> closed;
    std::map<session_id, const std::string*> last_buffer; ///< to see that a broadcast is shared
    std::vector<media_grant> grants;
    int tickets = 0;
    int malformed = 0;

    void send(session_id s, const shared_frames& f) {
        REQUIRE(f != nullptr);
        last_buffer[s] = f.get();
        std::string_view b(*f);
        while (!b.empty()) {
            if (b.size() < frame_header_size) return void(++malformed);
            const auto* p = reinterpret_cast<const unsigned char*>(b.data());
            const std::size_t len = (std::size_t{p[0]} << 24) | (std::size_t{p[1]} << 16) | (std::size_t{p[2]} << 8) | p[3];
            if (len == 0 || b.size() < frame_header_size + len) return void(++malformed);
            got[s].push_back(json::parse(b.substr(frame_header_size, len)));
            b.remove_prefix(frame_header_size + len);
        }
    }
    void close(session_id s, errc e) { closed[s].push_back(e); }
    std::string make_ticket() { return "ticket-" + std::to_string(++tickets); }
    void on_media(const media_grant& g) { grants.push_back(g); }
};
static_assert(room_output<test_output>);

using test_room = room<test_output>;

/// A room, its members by user id, and a simulated clock.
struct fixture {
    room_config cfg;
    test_output out;
    std::optional<test_room> r;
    std::int64_t now = 0;
    std::map<std::string, session_id> sid;
    session_id next_session = 100;
    std::int64_t next_id = 1;

    test_room& start(std::int64_t t = 0) {
        now = t;
        r.emplace("lobby", cfg, out, t);
        return *r;
    }
    /// Joins `user` on a new session (sid[user] is that session, even when refused).
    errc join(const std::string& user, role ro = role::audience, std::uint32_t privileges = p_all) {
        const session_id s = next_session++;
        sid[user] = s;
        return r->join(s, user, privileges, ro, json("join-" + user), now);
    }
    /// The join reply (or error) `user`'s session got.
    json join_reply(const std::string& user) { return find(sid.at(user), json("join-" + user)); }

    /// One request as the wire carries it (so numbers are what a parser makes of them);
    /// returns the reply or error with its id, or null when there was none.
    json ask(const std::string& user, const std::string& type, json body = json::object()) {
        const session_id s = sid.at(user);
        const std::int64_t id = next_id++;
        body["type"] = type;
        body["id"] = id;
        r->handle(s, type, json::parse(body.dump()), now);
        return find(s, json(id));
    }
    json find(session_id s, const json& id) {
        auto& v = out.got[s];
        for (auto it = v.rbegin(); it != v.rend(); ++it)
            if (it->contains("id") && it->at("id") == id && (it->value("type", "") == "reply" || it->value("type", "") == "error")) return *it;
        return nullptr;
    }
    /// Everything `user` got since the last take, in order.
    std::vector<json> take(const std::string& user) {
        auto& v = out.got[sid.at(user)];
        std::vector<json> r2 = std::move(v);
        v.clear();
        return r2;
    }
    void take_all() {
        for (auto& [s, v] : out.got) v.clear();
    }
    void flush() { r->flush(); }
    void tick(std::int64_t t) {
        now = t;
        r->tick(t);
    }
};

std::string code(const json& res) {
    if (res.is_null()) return "<no answer>";
    if (res.value("type", "") == "reply") return "ok";
    return res.value("code", "<no code>");
}

std::vector<json> only(const std::vector<json>& v, std::string_view type) {
    std::vector<json> r;
    for (const auto& j : v)
        if (j.value("type", "") == type) r.push_back(j);
    return r;
}

std::vector<std::string> types(const std::vector<json>& v) {
    std::vector<std::string> r;
    for (const auto& j : v) r.push_back(j.value("type", "?"));
    return r;
}

/// Without the replies and errors: what the room told everyone.
std::vector<json> events(const std::vector<json>& v) {
    std::vector<json> r;
    for (const auto& j : v)
        if (j.value("type", "") != "reply" && j.value("type", "") != "error") r.push_back(j);
    return r;
}

std::map<std::string, std::string> user_roles(const json& users) {
    std::map<std::string, std::string> m;
    for (const auto& u : users) m[u.at("user").get<std::string>()] = u.at("role").get<std::string>();
    return m;
}

json rose_template() {
    return json::parse(R"({"id": "rose", "icon": "rose.png", "text": "{sender} sent {count} roses to {to}",
        "fields": [{"name": "count", "type": "int", "min": 1, "max": 99},
                   {"name": "to", "type": "text", "max_len": 16},
                   {"name": "note", "type": "text", "optional": true}],
        "style": {"colour": "red"}})");
}

/// Makes `user` (in the room as audience) a co-host through the host's invitation.
void make_cohost(fixture& f, const std::string& host, const std::string& user) {
    const json inv = f.ask(host, "cohost_invite", {{"user", user}});
    REQUIRE(code(inv) == "ok");
    REQUIRE(code(f.ask(user, "cohost_answer", {{"invite", inv.at("invite")}, {"accept", true}})) == "ok");
    REQUIRE(f.r->role_of(user) == role::cohost);
}

} // namespace

// --- joining -------------------------------------------------------------------------

TEST_CASE("room: the join reply carries users, streams, history, templates and quizzes") {
    fixture f;
    auto& r = f.start();
    REQUIRE(f.join("h", role::host) == errc::ok);
    const json hr = f.join_reply("h");
    CHECK(code(hr) == "ok");
    CHECK(hr.at("room") == "lobby");
    CHECK(hr.at("user") == "h");
    CHECK(hr.at("role") == "host");
    CHECK(hr.at("heartbeat_ms") == 5000);
    CHECK(hr.at("user_count") == 1);
    CHECK(hr.at("seq") == 0);
    CHECK(hr.at("likes") == 0);
    CHECK(user_roles(hr.at("users")) == std::map<std::string, std::string>{{"h", "host"}});
    CHECK(hr.at("streams") == json::array());
    CHECK(hr.at("history") == json::array());
    CHECK(hr.at("templates") == json::array());
    CHECK(hr.at("quizzes") == json::array());
    CHECK(f.take("h").size() == 1); // the reply only: the room's news waits in the outbox
    CHECK(r.has_outbox());

    // Give the room some state, then let a second member in.
    f.now = 100;
    REQUIRE(code(f.ask("h", "publish", {{"stream", "main"}})) == "ok");
    REQUIRE(code(f.ask("h", "add_template", {{"template", rose_template()}})) == "ok");
    REQUIRE(code(f.ask("h", "chat", {{"text", "hello"}})) == "ok");
    REQUIRE(code(f.ask("h", "quiz", {{"question", "2+2?"}, {"options", {"3", "4"}}, {"duration_ms", 5000}})) == "ok");
    f.take("h");
    f.now = 200;
    REQUIRE(f.join("a") == errc::ok);

    // The host got the outbox (in the order things happened) when "a" joined.
    CHECK(types(f.take("h")) == std::vector<std::string>{"user_joined", "stream_added", "template", "chat", "quiz"});
    // "a" got only its reply: what happened before is in it, not sent twice.
    const auto a_got = f.take("a");
    REQUIRE(a_got.size() == 1);
    const json& ar = a_got[0];
    CHECK(code(ar) == "ok");
    CHECK(ar.at("id") == "join-a");
    CHECK(ar.at("role") == "audience");
    CHECK(ar.at("user_count") == 2);
    CHECK(ar.at("seq") == 1);
    CHECK(user_roles(ar.at("users")) == std::map<std::string, std::string>{{"h", "host"}, {"a", "audience"}});
    CHECK(ar.at("streams") == json::array({{{"stream", "main"}, {"user", "h"}}}));
    REQUIRE(ar.at("history").size() == 1);
    CHECK(ar.at("history")[0].at("type") == "chat");
    CHECK(ar.at("history")[0].at("text") == "hello");
    CHECK(ar.at("history")[0].at("seq") == 1);
    CHECK(ar.at("history")[0].at("ts") == 100);
    REQUIRE(ar.at("templates").size() == 1);
    CHECK(ar.at("templates")[0].at("id") == "rose");
    CHECK(ar.at("templates")[0].at("style") == json{{"colour", "red"}});
    REQUIRE(ar.at("quizzes").size() == 1);
    CHECK(ar.at("quizzes")[0].at("question") == "2+2?");
    CHECK(ar.at("quizzes")[0].at("deadline") == 5100);
    CHECK(f.out.malformed == 0);
}

TEST_CASE("room: user_joined and user_left reach the others at flush, in one shared buffer") {
    fixture f;
    auto& r = f.start();
    REQUIRE(f.join("h", role::host) == errc::ok);
    REQUIRE(f.join("a") == errc::ok);
    f.flush();
    f.take_all();

    REQUIRE(f.join("b") == errc::ok);
    CHECK(f.take("a").empty()); // not before the flush
    f.flush();
    for (const char* u : {"h", "a", "b"}) {
        const auto got = events(f.take(u));
        REQUIRE(got.size() == 1);
        CHECK(got[0] == json{{"type", "user_joined"}, {"user", "b"}, {"role", "audience"}});
    }
    // One buffer for every member.
    CHECK(f.out.last_buffer.at(f.sid["h"]) == f.out.last_buffer.at(f.sid["a"]));
    CHECK(f.out.last_buffer.at(f.sid["a"]) == f.out.last_buffer.at(f.sid["b"]));

    r.leave(f.sid["b"], "logout", f.now);
    CHECK_FALSE(r.has_member("b"));
    CHECK(r.size() == 2);
    f.flush();
    for (const char* u : {"h", "a"}) {
        const auto got = f.take(u);
        REQUIRE(got.size() == 1);
        CHECK(got[0] == json{{"type", "user_left"}, {"user", "b"}, {"reason", "logout"}});
    }
    CHECK(f.take("b").empty()); // gone: it hears nothing more
    CHECK(r.stats().joins == 3);
    CHECK(r.stats().leaves == 1);
}

TEST_CASE("room: over user_list_limit the room sends member counts instead of names") {
    fixture f;
    f.cfg.user_list_limit = 3;
    auto& r = f.start();
    for (const char* u : {"u1", "u2", "u3"}) REQUIRE(f.join(u) == errc::ok);
    CHECK(f.join_reply("u3").at("users").size() == 3);
    f.tick(200); // at the limit, not over it: no count
    f.flush();
    const auto u1 = f.take("u1");
    CHECK(only(u1, "user_count").empty());
    CHECK(only(u1, "user_joined").size() == 3); // itself, u2 and u3, by name
    f.take_all();

    f.now = 300;
    REQUIRE(f.join("u4") == errc::ok);
    const json rep = f.join_reply("u4");
    CHECK_FALSE(rep.contains("users"));
    CHECK(rep.at("user_count") == 4);
    f.flush();
    CHECK(f.take("u1").empty()); // no user_joined over the limit

    f.tick(400); // aggregate: 200 ms since the last
    f.flush();
    for (const char* u : {"u1", "u2", "u3", "u4"}) {
        const auto got = events(f.take(u));
        REQUIRE(got.size() == 1);
        CHECK(got[0] == json{{"type", "user_count"}, {"count", 4}});
    }
    f.tick(600); // no change, no update
    f.flush();
    CHECK(f.take("u1").empty());

    f.now = 700;
    REQUIRE(f.join("u5") == errc::ok);
    f.tick(750); // not yet 200 ms since the last aggregate
    f.flush();
    CHECK(f.take("u1").empty());
    f.tick(800);
    f.flush();
    CHECK(only(f.take("u1"), "user_count") == std::vector<json>{{{"type", "user_count"}, {"count", 5}}});

    f.now = 900;
    r.leave(f.sid["u5"], "logout", f.now);
    f.flush();
    CHECK(f.take("u1").empty()); // no user_left either
    f.tick(1000);
    f.flush();
    CHECK(f.take("u1") == std::vector<json>{{{"type", "user_count"}, {"count", 4}}});
}

TEST_CASE("room: a host needs the publish privilege; one host; co-host is not a way in") {
    fixture f;
    auto& r = f.start();
    SUBCASE("a host without publish") {
        CHECK(f.join("h", role::host, p_login | p_play | p_message) == errc::no_privilege);
        CHECK(code(f.join_reply("h")) == "no_privilege");
        CHECK(f.join_reply("h").at("id") == "join-h");
        CHECK_FALSE(r.has_member("h"));
        CHECK(r.empty());
        // Publish alone is enough to host.
        CHECK(f.join("h", role::host, p_login | p_publish) == errc::ok);
        CHECK(r.role_of("h") == role::host);
    }
    SUBCASE("a second host") {
        REQUIRE(f.join("h", role::host) == errc::ok);
        CHECK(f.join("h2", role::host) == errc::not_allowed);
        CHECK(code(f.join_reply("h2")) == "not_allowed");
        CHECK_FALSE(r.has_member("h2"));
        CHECK(r.role_of("h") == role::host);
        CHECK(r.size() == 1);
        // Once the host leaves, another may host.
        r.leave(f.sid["h"], "logout", 0);
        CHECK(f.join("h2", role::host) == errc::ok);
    }
    SUBCASE("joining as co-host") {
        REQUIRE(f.join("h", role::host) == errc::ok);
        CHECK(f.join("c", role::cohost) == errc::not_allowed);
        CHECK(code(f.join_reply("c")) == "not_allowed");
        CHECK_FALSE(r.has_member("c"));
    }
}

TEST_CASE("room: the same user joining again replaces the older session") {
    fixture f;
    auto& r = f.start();
    REQUIRE(f.join("h", role::host) == errc::ok);
    REQUIRE(f.join("a") == errc::ok);
    const session_id old = f.sid["a"];
    f.flush();
    f.take_all();

    f.now = 500;
    REQUIRE(f.join("a") == errc::ok);
    const session_id fresh = f.sid["a"];
    REQUIRE(fresh != old);
    CHECK(f.out.closed[old] == std::vector<errc>{errc::replaced});
    CHECK_FALSE(r.contains(old));
    CHECK(r.contains(fresh));
    CHECK(r.size() == 2);
    CHECK(code(f.join_reply("a")) == "ok");
    f.flush();
    CHECK(f.take("h") == std::vector<json>{{{"type", "user_left"}, {"user", "a"}, {"reason", "replaced"}},
                                           {{"type", "user_joined"}, {"user", "a"}, {"role", "audience"}}});
    CHECK(types(f.take("a")) == std::vector<std::string>{"reply", "user_joined"});
    CHECK(f.out.got[old].empty()); // nothing more for the old session

    // The host rejoining keeps the room hosted by it.
    REQUIRE(f.join("h", role::host) == errc::ok);
    CHECK(r.role_of("h") == role::host);
    CHECK(r.size() == 2);
}

// --- chat ----------------------------------------------------------------------------

TEST_CASE("room: chat seq increases, ts is the request's time, and every member sees one order") {
    fixture f;
    f.cfg.chat_per_user = {100, 100};
    f.cfg.chat_per_room = {1000, 1000};
    auto& r = f.start();
    const std::vector<std::string> users = {"h", "a", "b", "c"};
    REQUIRE(f.join("h", role::host) == errc::ok);
    for (std::size_t i = 1; i < users.size(); ++i) REQUIRE(f.join(users[i]) == errc::ok);
    f.flush();
    f.take_all();

    // 30 messages from interleaved senders, flushed at uneven points.
    std::vector<json> sent;
    for (int i = 0; i < 30; ++i) {
        f.now = 1000 + 7 * i;
        const std::string& from = users[(i * 3 + i / 4) % users.size()];
        const std::string text = "m" + std::to_string(i);
        const json rep = f.ask(from, "chat", {{"text", text}});
        REQUIRE(code(rep) == "ok");
        CHECK(rep.at("seq") == i + 1);
        CHECK(rep.at("ts") == f.now);
        sent.push_back({{"type", "chat"}, {"seq", i + 1}, {"ts", f.now}, {"from", from}, {"text", text}});
        if (i % 7 == 3) f.flush();
    }
    f.flush();
    for (const auto& u : users) {
        const auto chats = only(f.take(u), "chat");
        CHECK(chats == sent);
    }
    CHECK(r.stats().chat == 30);
}

TEST_CASE("room: a late joiner gets the last `history` messages, in order") {
    fixture f;
    f.cfg.history = 5;
    f.start();
    REQUIRE(f.join("h", role::host) == errc::ok);
    for (int i = 1; i <= 8; ++i) {
        f.now = 100 * i;
        REQUIRE(code(f.ask("h", "chat", {{"text", "m" + std::to_string(i)}})) == "ok");
    }
    REQUIRE(f.join("late") == errc::ok);
    const json rep = f.join_reply("late");
    CHECK(rep.at("seq") == 8);
    const json& h = rep.at("history");
    REQUIRE(h.size() == 5);
    for (int k = 0; k < 5; ++k) {
        CHECK(h[k].at("seq") == 4 + k);
        CHECK(h[k].at("text") == "m" + std::to_string(4 + k));
        CHECK(h[k].at("ts") == 100 * (4 + k));
        CHECK(h[k].at("from") == "h");
    }
}

TEST_CASE("room: chat text must be 1 to max_chat_bytes") {
    fixture f;
    f.cfg.max_chat_bytes = 16;
    f.start();
    REQUIRE(f.join("a") == errc::ok);
    f.flush();
    f.take_all();
    CHECK(code(f.ask("a", "chat", {{"text", std::string(16, 'x')}})) == "ok");
    CHECK(code(f.ask("a", "chat", {{"text", std::string(17, 'x')}})) == "too_large");
    CHECK(code(f.ask("a", "chat", {{"text", ""}})) == "bad_request");
    CHECK(code(f.ask("a", "chat")) == "bad_request");
    CHECK(code(f.ask("a", "chat", {{"text", 42}})) == "bad_request");
    f.flush();
    const auto chats = only(f.take("a"), "chat");
    REQUIRE(chats.size() == 1); // the refused ones went nowhere
    CHECK(chats[0].at("text") == std::string(16, 'x'));
    CHECK(chats[0].at("seq") == 1);
}

TEST_CASE("room: chat needs the message privilege") {
    fixture f;
    auto& r = f.start();
    REQUIRE(f.join("mute", role::audience, p_login | p_play) == errc::ok);
    const json e = f.ask("mute", "chat", {{"text", "hi"}});
    CHECK(code(e) == "no_privilege");
    CHECK(e.at("message").get<std::string>().size() > 0);
    CHECK(code(f.ask("mute", "like")) == "no_privilege");
    CHECK(code(f.ask("mute", "barrage", {{"text", "hi"}})) == "no_privilege");
    f.flush();
    CHECK(only(f.take("mute"), "chat").empty());
    CHECK(r.stats().chat == 0);
}

TEST_CASE("room: the per-user chat rate limit says when to retry") {
    fixture f; // chat_per_user {5/s, burst 10}
    auto& r = f.start();
    REQUIRE(f.join("a") == errc::ok);
    REQUIRE(f.join("b") == errc::ok);
    f.now = 1000;
    for (int i = 0; i < 10; ++i) REQUIRE(code(f.ask("a", "chat", {{"text", "x"}})) == "ok");
    const json e = f.ask("a", "chat", {{"text", "one too many"}});
    CHECK(code(e) == "rate_limited");
    CHECK(e.at("retry_after_ms") == 201); // one token at 5/s, rounded up
    CHECK(code(f.ask("b", "chat", {{"text", "b is not limited"}})) == "ok");
    f.now = 1100;
    CHECK(code(f.ask("a", "chat", {{"text", "too soon"}})) == "rate_limited");
    f.now = 1000 + 201;
    CHECK(code(f.ask("a", "chat", {{"text", "after the wait"}})) == "ok");
    CHECK(r.stats().rate_limited == 2);
    CHECK(r.has_member("a"));
}

TEST_CASE("room: the room's chat budget is shared by its members") {
    fixture f;
    f.cfg.chat_per_room = {1, 3};
    auto& r = f.start();
    for (const char* u : {"a", "b", "c", "d"}) REQUIRE(f.join(u) == errc::ok);
    f.now = 1000;
    CHECK(code(f.ask("a", "chat", {{"text", "1"}})) == "ok");
    CHECK(code(f.ask("b", "chat", {{"text", "2"}})) == "ok");
    CHECK(code(f.ask("c", "chat", {{"text", "3"}})) == "ok");
    const json e = f.ask("d", "chat", {{"text", "4"}});
    CHECK(code(e) == "rate_limited");
    CHECK(e.at("message").get<std::string>().find("room") != std::string::npos);
    CHECK(e.at("retry_after_ms") == 1001);
    f.now = 1500;
    CHECK(code(f.ask("d", "chat", {{"text", "4"}})) == "rate_limited");
    f.now = 2001;
    CHECK(code(f.ask("d", "chat", {{"text", "4"}})) == "ok");
    f.flush();
    CHECK(only(f.take("a"), "chat").size() == 4);
    CHECK(r.size() == 4);
}

// --- flood -----------------------------------------------------------------------------

TEST_CASE("room: a flooding member is closed; the others are unaffected and nothing accepted is lost") {
    fixture f;
    f.cfg.chat_per_user = {0.1, 3}; // her burst, barely refilled in the test
    f.cfg.flood_refusals = 5;
    auto& r = f.start();
    REQUIRE(f.join("h", role::host) == errc::ok);
    REQUIRE(f.join("flood") == errc::ok);
    REQUIRE(f.join("b") == errc::ok);
    f.flush();
    f.take_all();
    const session_id fs = f.sid["flood"];

    f.now = 5000;
    for (int i = 0; i < 3; ++i) REQUIRE(code(f.ask("flood", "chat", {{"text", "ok" + std::to_string(i)}})) == "ok");
    for (int i = 0; i < 5; ++i) {
        f.now = 5001 + i;
        REQUIRE(code(f.ask("flood", "chat", {{"text", "spam"}})) == "rate_limited");
        REQUIRE(r.contains(fs));
    }
    CHECK(f.out.closed[fs].empty());
    f.now = 5010;
    CHECK(code(f.ask("flood", "chat", {{"text", "the last straw"}})) == "<no answer>");
    CHECK(f.out.closed[fs] == std::vector<errc>{errc::rate_limited});
    CHECK_FALSE(r.contains(fs));
    CHECK_FALSE(r.has_member("flood"));
    CHECK(r.stats().flood_disconnects == 1);
    CHECK(only(f.take("flood"), "error").size() == 5);

    f.now = 5020;
    CHECK(code(f.ask("b", "chat", {{"text", "still here"}})) == "ok");
    f.flush();
    for (const char* u : {"h", "b"}) {
        const auto got = events(f.take(u));
        REQUIRE(got.size() == 5);
        CHECK(got[0].at("text") == "ok0");
        CHECK(got[1].at("text") == "ok1");
        CHECK(got[2].at("text") == "ok2");
        CHECK(got[3] == json{{"type", "user_left"}, {"user", "flood"}, {"reason", "flood"}});
        CHECK(got[4].at("text") == "still here");
        CHECK(got[4].at("seq") == 4);
    }
    CHECK(r.has_member("h"));
    CHECK(r.has_member("b"));
}

TEST_CASE("room: refusals spread over more than a second are not a flood") {
    fixture f;
    f.cfg.chat_per_user = {1, 1};
    f.cfg.flood_refusals = 5;
    auto& r = f.start();
    REQUIRE(f.join("a") == errc::ok);
    f.now = 1000;
    REQUIRE(code(f.ask("a", "chat", {{"text", "x"}})) == "ok");
    for (int i = 0; i < 5; ++i) REQUIRE(code(f.ask("a", "chat", {{"text", "x"}})) == "rate_limited");
    f.now = 2100;
    REQUIRE(code(f.ask("a", "chat", {{"text", "x"}})) == "ok");
    for (int i = 0; i < 5; ++i) REQUIRE(code(f.ask("a", "chat", {{"text", "x"}})) == "rate_limited");
    CHECK(r.has_member("a"));
    CHECK(f.out.closed[f.sid["a"]].empty());
    CHECK(r.stats().flood_disconnects == 0);
}

// --- commands --------------------------------------------------------------------------

TEST_CASE("room: a command reaches only its targets") {
    fixture f;
    f.cfg.max_command_bytes = 64;
    auto& r = f.start();
    REQUIRE(f.join("h", role::host) == errc::ok);
    for (const char* u : {"a", "b", "c"}) REQUIRE(f.join(u) == errc::ok);
    f.flush();
    f.take_all();
    f.now = 1234;

    const json one = f.ask("h", "command", {{"to", "a"}, {"data", {{"op", "mute"}}}});
    CHECK(code(one) == "ok");
    CHECK(one.at("delivered") == 1);
    CHECK(one.at("missing") == json::array());
    // At once, without a flush, and only to "a".
    CHECK(f.take("a") == std::vector<json>{{{"type", "command"}, {"from", "h"}, {"ts", 1234}, {"data", {{"op", "mute"}}}}});
    CHECK(f.take("b").empty());
    CHECK(f.take("c").empty());
    CHECK(only(f.take("h"), "command").empty());

    const json many = f.ask("h", "command", {{"to", {"a", "c", "ghost", "a"}}, {"data", "ping"}});
    CHECK(code(many) == "ok");
    CHECK(many.at("delivered") == 2);
    CHECK(many.at("missing") == json::array({"ghost"}));
    CHECK(only(f.take("a"), "command").size() == 1); // named twice, delivered once
    CHECK(only(f.take("c"), "command").size() == 1);
    CHECK(f.take("b").empty());

    CHECK(code(f.ask("h", "command", {{"to", "a"}, {"data", std::string(100, 'd')}})) == "too_large");
    CHECK(code(f.ask("h", "command", {{"to", "a"}, {"data", std::string(60, 'd')}})) == "ok"); // 62 bytes as JSON
    CHECK(code(f.ask("h", "command", {{"data", 1}})) == "bad_request");
    CHECK(code(f.ask("h", "command", {{"to", json::array()}, {"data", 1}})) == "bad_request");
    CHECK(code(f.ask("h", "command", {{"to", {"a", 5}}, {"data", 1}})) == "bad_request");
    CHECK(code(f.ask("h", "command", {{"to", "a"}})) == "bad_request");
    CHECK(only(f.take("a"), "command").size() == 1);
    CHECK_FALSE(r.has_outbox()); // commands never go through the broadcast outbox
    CHECK(r.stats().commands == 3);
}

// --- barrage ---------------------------------------------------------------------------

namespace {
struct barrage_seen {
    std::vector<std::string> texts; ///< delivered items, in order
    std::size_t messages = 0, dropped = 0;
    json last;
};
barrage_seen barrage_of(const std::vector<json>& got) {
    barrage_seen b;
    for (const auto& m : only(got, "barrage")) {
        ++b.messages;
        for (const auto& it : m.at("items")) b.texts.push_back(it.at("text").get<std::string>());
        b.dropped += m.at("dropped").get<std::size_t>();
        b.last = m;
    }
    return b;
}
} // namespace

TEST_CASE("room: barrage under the room's budget is all delivered") {
    fixture f;
    f.cfg.barrage_per_room = 100; // 10 per 100 ms window: 5 at once, 5 at the window's end
    auto& r = f.start();
    REQUIRE(f.join("h", role::host) == errc::ok);
    REQUIRE(f.join("a") == errc::ok);
    f.flush();
    f.take_all();

    for (int i = 0; i < 5; ++i) {
        f.now = 1000 + i;
        REQUIRE(code(f.ask("a", "barrage", {{"text", "b" + std::to_string(i)}})) == "ok");
    }
    f.flush(); // no tick needed
    const auto direct = barrage_of(f.take("h"));
    CHECK(direct.messages == 5);
    CHECK(direct.texts == std::vector<std::string>{"b0", "b1", "b2", "b3", "b4"});
    CHECK(direct.dropped == 0);
    CHECK(direct.last.at("items")[0] == json{{"from", "a"}, {"text", "b4"}});

    // Up to the budget in the same window: the rest comes whole at the window's end.
    for (int i = 5; i < 10; ++i) {
        f.now = 1000 + i;
        REQUIRE(code(f.ask("a", "barrage", {{"text", "b" + std::to_string(i)}})) == "ok");
    }
    f.tick(1050);
    f.flush();
    CHECK(barrage_of(f.take("h")).messages == 0);
    f.tick(1100);
    f.flush();
    const auto rest = barrage_of(f.take("h"));
    CHECK(rest.messages == 1);
    CHECK(rest.dropped == 0);
    CHECK(std::set<std::string>(rest.texts.begin(), rest.texts.end()) == std::set<std::string>{"b5", "b6", "b7", "b8", "b9"});
    CHECK(r.stats().barrage == 10);
    CHECK(r.stats().barrage_dropped == 0);

    CHECK(code(f.ask("a", "barrage", {{"text", ""}})) == "bad_request");
    CHECK(code(f.ask("a", "barrage", {{"text", std::string(257, 'x')}})) == "too_large");
}

TEST_CASE("room: far over the budget, barrage is sampled per window and the drops counted") {
    fixture f;
    f.cfg.barrage_per_room = 100;
    f.cfg.barrage_per_user = {1e6, 1e6};
    auto& r = f.start();
    REQUIRE(f.join("watch") == errc::ok);
    std::vector<std::string> senders;
    for (int u = 0; u < 10; ++u) {
        senders.push_back("s" + std::to_string(u));
        REQUIRE(f.join(senders.back()) == errc::ok);
    }
    f.flush();
    f.take_all();

    std::size_t total_delivered = 0, total_dropped = 0;
    for (int w = 0; w < 3; ++w) {
        const std::int64_t start = 1000 + 100 * w;
        int accepted = 0;
        for (int i = 0; i < 1000; ++i) {
            f.now = start + i / 10;
            const std::string text = "w" + std::to_string(w) + "-" + std::to_string(i);
            accepted += code(f.ask(senders[i % senders.size()], "barrage", {{"text", text}})) == "ok";
        }
        REQUIRE(accepted == 1000);
        f.tick(start + 100);
        f.flush();
        const auto seen = barrage_of(f.take("watch"));
        CAPTURE(w);
        CHECK(seen.texts.size() == 10); // the window's budget: 100/s over 100 ms
        CHECK(seen.last.at("dropped") == 990);
        CHECK(seen.texts.size() + seen.dropped == 1000);
        // The first half of the budget passed at once: the burst's first items.
        for (int i = 0; i < 5; ++i) CHECK(seen.texts.at(i) == "w" + std::to_string(w) + "-" + std::to_string(i));
        // The rest is a sample of the whole window, not its head.
        bool late_item = false;
        std::set<std::string> distinct;
        for (const auto& t : seen.texts) {
            distinct.insert(t);
            REQUIRE(t.rfind("w" + std::to_string(w) + "-", 0) == 0);
            late_item = late_item || std::stoi(t.substr(t.find('-') + 1)) >= 500;
        }
        CHECK(late_item);
        CHECK(distinct.size() == seen.texts.size());
        total_delivered += seen.texts.size();
        total_dropped += seen.dropped;
        for (const auto& s : senders) f.take(s);
    }
    CHECK(r.stats().barrage == 3000);
    CHECK(r.stats().barrage_dropped == total_dropped);
    CHECK(total_delivered + total_dropped == 3000);
}

// --- likes -----------------------------------------------------------------------------

TEST_CASE("room: likes are aggregated into one update per aggregate tick") {
    fixture f; // aggregate_ms 200
    auto& r = f.start();
    REQUIRE(f.join("h", role::host) == errc::ok);
    REQUIRE(f.join("a") == errc::ok);
    REQUIRE(f.join("b") == errc::ok);
    f.tick(1000);
    f.flush();
    f.take_all();

    for (int i = 0; i < 50; ++i) {
        f.now = 1000 + 4 * i;
        REQUIRE(code(f.ask("a", "like")) == "ok");
        if (i % 10 == 0) {
            REQUIRE(code(f.ask("b", "like", {{"count", 10}})) == "ok");
            f.tick(f.now); // ticks inside the window aggregate nothing yet
            f.flush();
        }
    }
    CHECK(only(f.take("h"), "likes").empty());
    CHECK(r.likes() == 100);
    f.tick(1200);
    f.flush();
    for (const char* u : {"h", "a", "b"}) {
        const auto likes = only(f.take(u), "likes");
        REQUIRE(likes.size() == 1);
        CHECK(likes[0] == json{{"type", "likes"}, {"total", 100}, {"delta", 100}});
    }

    f.now = 1250;
    REQUIRE(code(f.ask("a", "like", {{"count", 7}})) == "ok");
    f.tick(1300);
    f.flush();
    CHECK(only(f.take("h"), "likes").empty());
    f.tick(1400);
    f.flush();
    CHECK(only(f.take("h"), "likes") == std::vector<json>{{{"type", "likes"}, {"total", 107}, {"delta", 7}}});
    f.tick(1600); // nothing new: no update
    f.flush();
    CHECK(only(f.take("h"), "likes").empty());

    CHECK(code(f.ask("a", "like", {{"count", 0}})) == "bad_request");
    CHECK(code(f.ask("a", "like", {{"count", 101}})) == "bad_request");
    CHECK(code(f.ask("a", "like", {{"count", -1}})) == "bad_request");
    CHECK(code(f.ask("a", "like", {{"count", "5"}})) == "bad_request");
    REQUIRE(f.join("c") == errc::ok); // a full bucket: the largest count passes
    CHECK(code(f.ask("c", "like", {{"count", 100}})) == "ok");
    CHECK(r.likes() == 207);
    CHECK(r.stats().likes == 207);
    REQUIRE(f.join("late") == errc::ok);
    CHECK(f.join_reply("late").at("likes") == 207);
}

// --- gifts -----------------------------------------------------------------------------

TEST_CASE("room: gift templates are added by the host, broadcast, and refused from the audience") {
    fixture f;
    f.start();
    REQUIRE(f.join("h", role::host) == errc::ok);
    REQUIRE(f.join("a") == errc::ok);
    f.flush();
    f.take_all();

    CHECK(code(f.ask("h", "add_template", {{"template", rose_template()}})) == "ok");
    f.flush();
    gift_template expected;
    std::string why;
    REQUIRE(parse_template(rose_template(), expected, why) == errc::ok);
    for (const char* u : {"h", "a"}) {
        const auto t = only(f.take(u), "template");
        REQUIRE(t.size() == 1);
        CHECK(t[0].at("template") == expected.to_json());
    }

    json other = rose_template();
    other["id"] = "lily";
    const json e = f.ask("a", "add_template", {{"template", other}});
    CHECK(code(e) == "not_allowed");
    json broken = rose_template();
    broken.erase("text");
    const json bad = f.ask("h", "add_template", {{"template", broken}});
    CHECK(code(bad) == "bad_request");
    CHECK(bad.at("message").get<std::string>().find("text") != std::string::npos);
    CHECK(code(f.ask("h", "add_template")) == "bad_request");
    f.flush();
    CHECK(only(f.take("a"), "template").empty());
    CHECK(code(f.ask("a", "gift", {{"template", "lily"}, {"fields", json::object()}})) == "unknown_template");
}

TEST_CASE("room: a gift is checked, rendered and broadcast in the chat's seq") {
    fixture f;
    f.start();
    REQUIRE(f.join("h", role::host) == errc::ok);
    REQUIRE(f.join("a") == errc::ok);
    REQUIRE(code(f.ask("h", "add_template", {{"template", rose_template()}})) == "ok");
    f.flush();
    f.take_all();

    f.now = 1000;
    REQUIRE(code(f.ask("a", "chat", {{"text", "hi"}})) == "ok");
    f.now = 1010;
    const json g = f.ask("a", "gift", {{"template", "rose"}, {"fields", {{"count", 3}, {"to", "h"}}}});
    REQUIRE(code(g) == "ok");
    CHECK(g.at("seq") == 2);
    CHECK(g.at("ts") == 1010);
    f.now = 1020;
    REQUIRE(code(f.ask("h", "chat", {{"text", "thanks"}})) == "ok");

    CHECK(code(f.ask("a", "gift", {{"template", "tulip"}, {"fields", {{"count", 3}, {"to", "h"}}}})) == "unknown_template");
    CHECK(code(f.ask("a", "gift", {{"fields", {{"count", 3}, {"to", "h"}}}})) == "bad_request");
    const json extra = f.ask("a", "gift", {{"template", "rose"}, {"fields", {{"count", 3}, {"to", "h"}, {"gold", 1}}}});
    CHECK(code(extra) == "bad_fields");
    CHECK(extra.at("message").get<std::string>().find("gold") != std::string::npos);
    CHECK(code(f.ask("a", "gift", {{"template", "rose"}, {"fields", {{"count", 0}, {"to", "h"}}}})) == "bad_fields");
    CHECK(code(f.ask("a", "gift", {{"template", "rose"}, {"fields", {{"count", 3}}}})) == "bad_fields");
    CHECK(code(f.ask("a", "gift", {{"template", "rose"}, {"fields", {{"count", "3"}, {"to", "h"}}}})) == "bad_fields");
    CHECK(code(f.ask("a", "gift", {{"template", "rose"}})) == "bad_fields");

    f.flush();
    const auto got = events(f.take("h"));
    REQUIRE(got.size() == 3); // the refused gifts went nowhere
    CHECK(got[0].at("type") == "chat");
    CHECK(got[0].at("seq") == 1);
    CHECK(got[1] == json{{"type", "gift"}, {"seq", 2}, {"ts", 1010}, {"from", "a"}, {"template", "rose"},
                         {"fields", {{"count", 3}, {"to", "h"}}}, {"text", "a sent 3 roses to h"}});
    CHECK(got[2].at("type") == "chat");
    CHECK(got[2].at("seq") == 3);

    REQUIRE(f.join("late") == errc::ok);
    const json history = f.join_reply("late").at("history");
    REQUIRE(history.size() == 3);
    CHECK(history[1].at("type") == "gift");
    CHECK(history[1].at("text") == "a sent 3 roses to h");
}

// --- quizzes ---------------------------------------------------------------------------

TEST_CASE("room: a quiz is answered once per member, tallied live, and resolved at its deadline") {
    fixture f;
    auto& r = f.start();
    REQUIRE(f.join("h", role::host) == errc::ok);
    for (const char* u : {"a", "b", "c"}) REQUIRE(f.join(u) == errc::ok);
    f.flush();
    f.take_all();

    f.now = 1000;
    CHECK(code(f.ask("a", "quiz", {{"question", "?"}, {"options", {"x", "y"}}, {"duration_ms", 5000}})) == "not_allowed");
    const json q = f.ask("h", "quiz", {{"question", "2+2?"}, {"options", {"3", "4", "5"}}, {"duration_ms", 5000}, {"answer", 1}});
    REQUIRE(code(q) == "ok");
    const auto qid = q.at("quiz");
    f.flush();
    const auto posted = only(f.take("a"), "quiz");
    REQUIRE(posted.size() == 1);
    CHECK(posted[0] == json{{"type", "quiz"}, {"quiz", qid}, {"from", "h"}, {"question", "2+2?"}, {"options", {"3", "4", "5"}}, {"deadline", 6000}});
    CHECK_FALSE(posted[0].contains("answer")); // the answer stays secret until the result

    f.now = 1100;
    const json ans = f.ask("a", "quiz_answer", {{"quiz", qid}, {"option", 1}});
    CHECK(code(ans) == "ok");
    CHECK(ans.at("option") == 1);
    CHECK(code(f.ask("a", "quiz_answer", {{"quiz", qid}, {"option", 2}})) == "already_answered");
    CHECK(code(f.ask("b", "quiz_answer", {{"quiz", qid}, {"option", 0}})) == "ok");
    CHECK(code(f.ask("c", "quiz_answer", {{"quiz", qid}, {"option", 3}})) == "bad_request");
    CHECK(code(f.ask("c", "quiz_answer", {{"quiz", 999}, {"option", 0}})) == "unknown_quiz");
    f.take_all();

    f.tick(1200);
    f.flush();
    for (const char* u : {"h", "a", "b", "c"}) {
        const auto got = f.take(u);
        REQUIRE(got.size() == 1);
        CHECK(got[0] == json{{"type", "quiz_tally"}, {"quiz", qid}, {"counts", {1, 1, 0}}, {"answers", 2}});
    }
    f.tick(1300); // too soon, and nothing new anyway
    f.flush();
    CHECK(f.take("h").empty());
    f.now = 1350;
    CHECK(code(f.ask("c", "quiz_answer", {{"quiz", qid}, {"option", 1}})) == "ok");
    f.tick(1400);
    f.flush();
    CHECK(only(f.take("h"), "quiz_tally") ==
          std::vector<json>{{{"type", "quiz_tally"}, {"quiz", qid}, {"counts", {1, 2, 0}}, {"answers", 3}}});
    f.tick(1800); // no new answers: no tally
    f.flush();
    CHECK(f.take("h").empty());

    f.now = 2000;
    REQUIRE(f.join("late") == errc::ok);
    const json running = f.join_reply("late").at("quizzes");
    REQUIRE(running.size() == 1);
    CHECK(running[0].at("quiz") == qid);
    CHECK(running[0].at("deadline") == 6000);

    f.tick(5999);
    f.flush();
    CHECK(only(f.take("h"), "quiz_result").empty());
    f.tick(6000);
    f.flush();
    for (const char* u : {"h", "a", "late"}) {
        const auto res = only(f.take(u), "quiz_result");
        REQUIRE(res.size() == 1);
        CHECK(res[0] == json{{"type", "quiz_result"}, {"quiz", qid}, {"counts", {1, 2, 0}}, {"answers", 3}, {"correct", 1}});
    }
    CHECK(code(f.ask("late", "quiz_answer", {{"quiz", qid}, {"option", 1}})) == "unknown_quiz");
    CHECK(r.stats().quizzes == 1);
    CHECK(r.stats().answers == 3);

    // Without an answer the result says so.
    const json q2 = f.ask("h", "quiz", {{"question", "best colour?"}, {"options", {"red", "blue"}}, {"duration_ms", 1000}});
    REQUIRE(code(q2) == "ok");
    CHECK(q2.at("quiz") != qid);
    f.tick(7000);
    f.flush();
    const auto res2 = only(f.take("h"), "quiz_result");
    REQUIRE(res2.size() == 1);
    CHECK(res2[0].at("correct").is_null());
    CHECK(res2[0].at("counts") == json::array({0, 0}));
}

TEST_CASE("room: quiz requests are checked") {
    fixture f;
    f.start();
    REQUIRE(f.join("h", role::host) == errc::ok);
    auto quiz = [&](json body) { return code(f.ask("h", "quiz", std::move(body))); };
    const json opts = {"a", "b"};
    CHECK(quiz({{"question", ""}, {"options", opts}, {"duration_ms", 5000}}) == "bad_request");
    CHECK(quiz({{"question", "q"}, {"options", json::array({"only"})}, {"duration_ms", 5000}}) == "bad_request");
    CHECK(quiz({{"question", "q"}, {"options", {"a", ""}}, {"duration_ms", 5000}}) == "bad_request");
    CHECK(quiz({{"question", "q"}, {"options", opts}, {"duration_ms", 999}}) == "bad_request");
    CHECK(quiz({{"question", "q"}, {"options", opts}, {"duration_ms", 600'001}}) == "bad_request");
    CHECK(quiz({{"question", "q"}, {"options", opts}, {"duration_ms", 5000}, {"answer", 2}}) == "bad_request");
    CHECK(quiz({{"question", "q"}, {"options", opts}, {"duration_ms", 1000}}) == "ok");
}

// --- co-hosting ------------------------------------------------------------------------

TEST_CASE("room: co-hosting by invitation and by request") {
    fixture f;
    auto& r = f.start();
    REQUIRE(f.join("h", role::host) == errc::ok);
    for (const char* u : {"a", "b", "c"}) REQUIRE(f.join(u) == errc::ok);
    f.flush();
    f.take_all();

    SUBCASE("the host invites, the audience member accepts") {
        const json inv = f.ask("h", "cohost_invite", {{"user", "a"}});
        REQUIRE(code(inv) == "ok");
        const auto id = inv.at("invite");
        CHECK(f.take("a") == std::vector<json>{{{"type", "cohost_invited"}, {"invite", id}, {"from", "h"}}});
        CHECK(f.take("b").empty());
        f.take("h");

        CHECK(code(f.ask("a", "cohost_answer", {{"invite", id}, {"accept", true}})) == "ok");
        CHECK(r.role_of("a") == role::cohost);
        CHECK(f.take("h") == std::vector<json>{{{"type", "cohost_answered"}, {"invite", id}, {"accept", true}, {"user", "a"}}});
        f.flush();
        for (const char* u : {"h", "a", "b", "c"})
            CHECK(only(f.take(u), "role_changed") == std::vector<json>{{{"type", "role_changed"}, {"user", "a"}, {"role", "cohost"}}});

        // A co-host may publish; the audience may not.
        CHECK(code(f.ask("a", "publish", {{"stream", "a-cam"}})) == "ok");
        CHECK(code(f.ask("b", "publish", {{"stream", "b-cam"}})) == "not_allowed");
        // The invitation is used up.
        CHECK(code(f.ask("a", "cohost_answer", {{"invite", id}, {"accept", true}})) == "no_invitation");
        // A co-host cannot be invited again, and only the host invites.
        CHECK(code(f.ask("h", "cohost_invite", {{"user", "a"}})) == "not_allowed");
        CHECK(code(f.ask("b", "cohost_invite", {{"user", "c"}})) == "not_allowed");
        CHECK(code(f.ask("h", "cohost_invite", {{"user", "nobody"}})) == "unknown_user");
    }
    SUBCASE("the invited member rejects: no role change, the host is told") {
        const json inv = f.ask("h", "cohost_invite", {{"user", "b"}});
        REQUIRE(code(inv) == "ok");
        f.take("h");
        CHECK(code(f.ask("b", "cohost_answer", {{"invite", inv.at("invite")}, {"accept", false}})) == "ok");
        CHECK(r.role_of("b") == role::audience);
        CHECK(f.take("h") == std::vector<json>{{{"type", "cohost_answered"}, {"invite", inv.at("invite")}, {"accept", false}, {"user", "b"}}});
        f.flush();
        CHECK(only(f.take("c"), "role_changed").empty());
        CHECK(code(f.ask("b", "publish", {{"stream", "b-cam"}})) == "not_allowed");
    }
    SUBCASE("an audience member asks, the host accepts") {
        const json req = f.ask("b", "cohost_request");
        REQUIRE(code(req) == "ok");
        const auto id = req.at("invite");
        CHECK(f.take("h") == std::vector<json>{{{"type", "cohost_requested"}, {"invite", id}, {"from", "b"}}});
        f.take("b");
        // Only the host may answer a request.
        CHECK(code(f.ask("c", "cohost_answer", {{"invite", id}, {"accept", true}})) == "no_invitation");
        CHECK(code(f.ask("b", "cohost_answer", {{"invite", id}, {"accept", true}})) == "no_invitation");
        CHECK(r.role_of("b") == role::audience);
        f.take("b");
        CHECK(code(f.ask("h", "cohost_answer", {{"invite", id}, {"accept", true}})) == "ok");
        CHECK(r.role_of("b") == role::cohost);
        CHECK(f.take("b") == std::vector<json>{{{"type", "cohost_answered"}, {"invite", id}, {"accept", true}, {"user", "h"}}});
        f.flush();
        CHECK(only(f.take("a"), "role_changed") == std::vector<json>{{{"type", "role_changed"}, {"user", "b"}, {"role", "cohost"}}});
        CHECK(code(f.ask("b", "cohost_request")) == "not_allowed"); // already one
        CHECK(code(f.ask("h", "cohost_request")) == "not_allowed");
    }
    SUBCASE("answering someone else's invitation") {
        const json inv = f.ask("h", "cohost_invite", {{"user", "c"}});
        REQUIRE(code(inv) == "ok");
        CHECK(code(f.ask("b", "cohost_answer", {{"invite", inv.at("invite")}, {"accept", true}})) == "no_invitation");
        CHECK(code(f.ask("h", "cohost_answer", {{"invite", inv.at("invite")}, {"accept", true}})) == "no_invitation");
        CHECK(r.role_of("b") == role::audience);
        CHECK(code(f.ask("b", "cohost_answer", {{"invite", 999}, {"accept", true}})) == "no_invitation");
        CHECK(code(f.ask("b", "cohost_answer", {{"invite", inv.at("invite")}})) == "bad_request");
        // Still open for the one it was for.
        CHECK(code(f.ask("c", "cohost_answer", {{"invite", inv.at("invite")}, {"accept", true}})) == "ok");
        CHECK(r.role_of("c") == role::cohost);
    }
}

TEST_CASE("room: co-host invitations expire after invitation_ms") {
    fixture f;
    f.cfg.invitation_ms = 1000;
    auto& r = f.start();
    REQUIRE(f.join("h", role::host) == errc::ok);
    REQUIRE(f.join("a") == errc::ok);
    REQUIRE(f.join("b") == errc::ok);
    f.now = 1000;
    const json ia = f.ask("h", "cohost_invite", {{"user", "a"}});
    const json ib = f.ask("h", "cohost_invite", {{"user", "b"}});
    REQUIRE(code(ia) == "ok");
    REQUIRE(code(ib) == "ok");
    f.tick(1999);
    CHECK(code(f.ask("b", "cohost_answer", {{"invite", ib.at("invite")}, {"accept", true}})) == "ok");
    CHECK(r.role_of("b") == role::cohost);
    f.tick(2000);
    CHECK(code(f.ask("a", "cohost_answer", {{"invite", ia.at("invite")}, {"accept", true}})) == "no_invitation");
    CHECK(r.role_of("a") == role::audience);
}

TEST_CASE("room: ending co-hosting returns the member to the audience and ends its streams") {
    fixture f;
    auto& r = f.start();
    REQUIRE(f.join("h", role::host) == errc::ok);
    REQUIRE(f.join("a") == errc::ok);
    REQUIRE(f.join("b") == errc::ok);
    make_cohost(f, "h", "a");
    REQUIRE(code(f.ask("a", "publish", {{"stream", "a-cam"}})) == "ok");
    REQUIRE(code(f.ask("h", "publish", {{"stream", "main"}})) == "ok");
    f.flush();
    f.take_all();
    f.out.grants.clear();

    CHECK(code(f.ask("b", "cohost_end", {{"user", "a"}})) == "not_allowed"); // only the host ends another's
    CHECK(code(f.ask("h", "cohost_end", {{"user", "b"}})) == "no_invitation"); // not a co-host
    CHECK(code(f.ask("h", "cohost_end", {{"user", "a"}})) == "ok");
    CHECK(r.role_of("a") == role::audience);
    CHECK(f.take("a") == std::vector<json>{{{"type", "cohost_ended"}, {"by", "h"}}});
    REQUIRE(f.out.grants.size() == 1);
    CHECK(f.out.grants[0].what == media_grant::kind::unpublish);
    CHECK(f.out.grants[0].room == "lobby");
    CHECK(f.out.grants[0].user == "a");
    CHECK(f.out.grants[0].stream == "a-cam");
    f.flush();
    for (const char* u : {"h", "a", "b"})
        CHECK(events(f.take(u)) == std::vector<json>{{{"type", "stream_removed"}, {"stream", "a-cam"}, {"user", "a"}},
                                             {{"type", "role_changed"}, {"user", "a"}, {"role", "audience"}}});
    CHECK(code(f.ask("a", "publish", {{"stream", "a-cam"}})) == "not_allowed");
    CHECK(code(f.ask("h", "cohost_end", {{"user", "a"}})) == "no_invitation");
    CHECK(code(f.ask("b", "play", {{"stream", "a-cam"}})) == "unknown_stream");
    CHECK(code(f.ask("b", "play", {{"stream", "main"}})) == "ok"); // the host's stream is untouched

    // A co-host may step down itself; it is not told it was ended.
    make_cohost(f, "h", "b");
    f.take_all();
    CHECK(code(f.ask("b", "cohost_end")) == "ok");
    CHECK(r.role_of("b") == role::audience);
    CHECK(only(f.take("b"), "cohost_ended").empty());
}

// --- streams ---------------------------------------------------------------------------

TEST_CASE("room: publish, play and unpublish streams with tickets") {
    fixture f;
    auto& r = f.start();
    REQUIRE(f.join("h", role::host) == errc::ok);
    REQUIRE(f.join("c") == errc::ok);
    REQUIRE(f.join("a") == errc::ok);
    REQUIRE(f.join("noplay", role::audience, p_login | p_message) == errc::ok);
    make_cohost(f, "h", "c");
    f.flush();
    f.take_all();

    const json pub = f.ask("h", "publish", {{"stream", "main"}});
    REQUIRE(code(pub) == "ok");
    CHECK(pub.at("stream") == "main");
    REQUIRE(f.out.grants.size() == 1);
    const media_grant g = f.out.grants.back();
    CHECK(g.what == media_grant::kind::publish);
    CHECK(g.room == "lobby");
    CHECK(g.user == "h");
    CHECK(g.stream == "main");
    CHECK(pub.at("ticket") == g.ticket);
    CHECK_FALSE(g.ticket.empty());
    f.flush();
    for (const char* u : {"h", "c", "a"})
        CHECK(events(f.take(u)) == std::vector<json>{{{"type", "stream_added"}, {"stream", "main"}, {"user", "h"}}});

    CHECK(code(f.ask("c", "publish", {{"stream", "main"}})) == "stream_taken");
    CHECK(f.out.grants.size() == 1);
    CHECK(code(f.ask("c", "publish", {{"stream", "bad name"}})) == "bad_request");
    CHECK(code(f.ask("c", "publish")) == "bad_request");

    // The same user publishing again: a fresh ticket, no second stream_added.
    const json again = f.ask("h", "publish", {{"stream", "main"}});
    REQUIRE(code(again) == "ok");
    CHECK(again.at("ticket") != pub.at("ticket"));
    REQUIRE(f.out.grants.size() == 2);
    CHECK(f.out.grants[1].what == media_grant::kind::publish);
    CHECK(again.at("ticket") == f.out.grants[1].ticket);
    f.flush();
    CHECK(f.take("a").empty());

    const json play = f.ask("a", "play", {{"stream", "main"}});
    REQUIRE(code(play) == "ok");
    REQUIRE(f.out.grants.size() == 3);
    CHECK(f.out.grants[2].what == media_grant::kind::play);
    CHECK(f.out.grants[2].user == "a");
    CHECK(f.out.grants[2].stream == "main");
    CHECK(play.at("ticket") == f.out.grants[2].ticket);
    CHECK(play.at("ticket") != again.at("ticket"));
    CHECK(code(f.ask("a", "play", {{"stream", "nope"}})) == "unknown_stream");
    CHECK(code(f.ask("noplay", "play", {{"stream", "main"}})) == "no_privilege");
    CHECK(code(f.ask("a", "publish", {{"stream", "a-cam"}})) == "not_allowed");

    CHECK(code(f.ask("c", "unpublish", {{"stream", "main"}})) == "unknown_stream"); // not c's
    f.out.grants.clear();
    CHECK(code(f.ask("h", "unpublish", {{"stream", "main"}})) == "ok");
    REQUIRE(f.out.grants.size() == 1);
    CHECK(f.out.grants[0].what == media_grant::kind::unpublish);
    CHECK(f.out.grants[0].user == "h");
    CHECK(f.out.grants[0].stream == "main");
    f.flush();
    CHECK(events(f.take("a")) == std::vector<json>{{{"type", "stream_removed"}, {"stream", "main"}, {"user", "h"}}});
    CHECK(code(f.ask("a", "play", {{"stream", "main"}})) == "unknown_stream");
    CHECK(code(f.ask("h", "unpublish", {{"stream", "main"}})) == "unknown_stream");
    // Now the co-host may take the name.
    CHECK(code(f.ask("c", "publish", {{"stream", "main"}})) == "ok");
    CHECK(r.stats().refused > 0);
}

TEST_CASE("room: a co-host without the publish privilege cannot publish; streams per user are capped") {
    fixture f;
    f.cfg.max_streams_per_user = 2;
    f.start();
    REQUIRE(f.join("h", role::host) == errc::ok);
    REQUIRE(f.join("c", role::audience, p_login | p_play | p_message) == errc::ok);
    make_cohost(f, "h", "c");
    CHECK(code(f.ask("c", "publish", {{"stream", "c-cam"}})) == "no_privilege");
    CHECK(code(f.ask("h", "publish", {{"stream", "one"}})) == "ok");
    CHECK(code(f.ask("h", "publish", {{"stream", "two"}})) == "ok");
    CHECK(code(f.ask("h", "publish", {{"stream", "three"}})) == "too_large");
    CHECK(code(f.ask("h", "publish", {{"stream", "two"}})) == "ok"); // re-publishing is not a new stream
}

TEST_CASE("room: a leaving member's streams are removed") {
    fixture f;
    auto& r = f.start();
    REQUIRE(f.join("h", role::host) == errc::ok);
    REQUIRE(f.join("a") == errc::ok);
    REQUIRE(code(f.ask("h", "publish", {{"stream", "main"}})) == "ok");
    REQUIRE(code(f.ask("h", "publish", {{"stream", "side"}})) == "ok");
    f.flush();
    f.take_all();
    f.out.grants.clear();

    r.leave(f.sid["h"], "logout", f.now);
    std::set<std::string> withdrawn;
    for (const auto& g : f.out.grants)
        if (g.what == media_grant::kind::unpublish && g.user == "h") withdrawn.insert(g.stream);
    CHECK(withdrawn == std::set<std::string>{"main", "side"});
    f.flush();
    const auto got = f.take("a");
    CHECK(types(got) == std::vector<std::string>{"stream_removed", "stream_removed", "user_left"});
    CHECK(got.back() == json{{"type", "user_left"}, {"user", "h"}, {"reason", "logout"}});
    CHECK(code(f.ask("a", "play", {{"stream", "main"}})) == "unknown_stream");

    REQUIRE(f.join("h2", role::host) == errc::ok);
    CHECK(f.join_reply("h2").at("streams") == json::array());
    CHECK(code(f.ask("h2", "publish", {{"stream", "main"}})) == "ok");
}

// --- heartbeats and the rest -----------------------------------------------------------

TEST_CASE("room: a silent member times out; one that keeps touching stays") {
    fixture f;
    f.cfg.heartbeat_ms = 1000;
    auto& r = f.start();
    REQUIRE(f.join("a") == errc::ok);
    REQUIRE(f.join("b") == errc::ok);
    REQUIRE(f.join("c") == errc::ok);
    CHECK(f.join_reply("a").at("heartbeat_ms") == 1000);
    f.flush();
    f.take_all();

    f.tick(1000);
    r.touch(f.sid["b"], 1000);
    f.tick(2000);
    r.touch(f.sid["b"], 2000);
    f.now = 2500;
    CHECK(code(f.ask("c", "heartbeat")) == "ok"); // a request proves it alive too
    f.tick(3000); // exactly 3 heartbeats of silence: not yet
    CHECK(r.has_member("a"));
    r.touch(f.sid["b"], 3000);
    f.tick(3001);
    CHECK_FALSE(r.has_member("a"));
    CHECK(f.out.closed[f.sid["a"]] == std::vector<errc>{errc::timed_out});
    CHECK(r.has_member("b"));
    CHECK(r.has_member("c"));
    CHECK(r.stats().timeouts == 1);
    f.flush();
    CHECK(f.take("b") == std::vector<json>{{{"type", "user_left"}, {"user", "a"}, {"reason", "timeout"}}});

    r.touch(f.sid["b"], 4000);
    r.touch(f.sid["b"], 5000);
    f.tick(5501); // c last heard at 2500
    CHECK_FALSE(r.has_member("c"));
    CHECK(f.out.closed[f.sid["c"]] == std::vector<errc>{errc::timed_out});
    CHECK(r.has_member("b"));
    CHECK(f.out.closed[f.sid["b"]].empty());
    CHECK(r.size() == 1);
}

TEST_CASE("room: unknown request types are refused; heartbeats are answered") {
    fixture f;
    f.start();
    REQUIRE(f.join("a") == errc::ok);
    f.take_all();
    const json e = f.ask("a", "dance", {{"style", "waltz"}});
    CHECK(code(e) == "unknown_type");
    CHECK(e.at("id") == f.next_id - 1);
    CHECK(code(f.ask("a", "heartbeat")) == "ok");
    // Without an id nothing is said.
    f.take_all();
    f.r->handle(f.sid["a"], "heartbeat", json{{"type", "heartbeat"}}, f.now);
    CHECK(f.take("a").empty());
    // A session that is not a member is ignored.
    f.r->handle(9999, "chat", json{{"type", "chat"}, {"id", 1}, {"text", "hi"}}, f.now);
    CHECK(f.out.got[9999].empty());
    CHECK(f.out.malformed == 0);
}

TEST_CASE("deadlines hold without a tick: late quiz answers and stale invitations are refused") {
    fixture f;
    f.cfg.invitation_ms = 1000;
    f.start();
    REQUIRE(f.join("host", role::host) == errc::ok);
    REQUIRE(f.join("ann") == errc::ok);
    const json q = f.ask("host", "quiz", {{"question", "?"}, {"options", {"a", "b"}}, {"duration_ms", 1000}});
    REQUIRE(code(q) == "ok");
    f.now = 1500; // past the deadline, before any tick
    CHECK(code(f.ask("ann", "quiz_answer", {{"quiz", q["quiz"]}, {"option", 0}})) == "unknown_quiz");
    f.tick(1500);
    f.flush();
    const auto results = only(f.take("ann"), "quiz_result");
    REQUIRE(results.size() == 1);
    CHECK(results[0]["answers"] == 0);

    const json inv = f.ask("host", "cohost_invite", {{"user", "ann"}});
    REQUIRE(code(inv) == "ok");
    f.now = 1500 + 5000; // long after it lapsed, no tick in between
    CHECK(code(f.ask("ann", "cohost_answer", {{"invite", inv["invite"]}, {"accept", true}})) == "no_invitation");
    CHECK(f.r->role_of("ann") == role::audience);
}

TEST_CASE("a refused host login leaves the user's existing session alone") {
    fixture f;
    f.start();
    REQUIRE(f.join("host", role::host) == errc::ok);
    REQUIRE(f.join("ann") == errc::ok);
    const session_id ann = f.sid.at("ann");
    CHECK(f.join("ann", role::host) == errc::not_allowed);
    CHECK(f.out.closed[ann].empty());
    CHECK(f.r->contains(ann));
    CHECK(f.r->role_of("ann") == role::audience);
}

TEST_CASE("falling back to the user-list limit sends the count once more") {
    fixture f;
    f.cfg.user_list_limit = 2;
    f.start();
    REQUIRE(f.join("a") == errc::ok);
    REQUIRE(f.join("b") == errc::ok);
    REQUIRE(f.join("c") == errc::ok);
    f.tick(200);
    f.flush();
    auto counts = only(f.take("a"), "user_count");
    REQUIRE(counts.size() == 1);
    CHECK(counts[0]["count"] == 3);
    f.r->leave(f.sid.at("c"), "logout", f.now);
    f.tick(400);
    f.flush();
    counts = only(f.take("a"), "user_count");
    REQUIRE(counts.size() == 1);
    CHECK(counts[0]["count"] == 2);
    f.tick(600);
    f.flush();
    CHECK(only(f.take("a"), "user_count").empty()); // once, not every tick
}

TEST_CASE("the room's chat budget refusing a message does not spend the member's own rate") {
    fixture f;
    f.cfg.chat_per_room = {1, 1};
    f.cfg.chat_per_user = {0.1, 3}; // her burst, barely refilled in the test
    f.start();
    REQUIRE(f.join("ann") == errc::ok);
    REQUIRE(f.join("ben") == errc::ok);
    REQUIRE(code(f.ask("ben", "chat", {{"text", "first"}})) == "ok"); // the room's one token
    for (int i = 0; i < 3; ++i) CHECK(code(f.ask("ann", "chat", {{"text", "no room"}})) == "rate_limited");
    f.now = 1000; // the room has a token again; ann's own burst is untouched
    CHECK(code(f.ask("ann", "chat", {{"text", "now"}})) == "ok");
}

TEST_CASE("a member that reconnects with since gets only the history it missed") {
    fixture f;
    f.start();
    REQUIRE(f.join("ann") == errc::ok);
    for (int i = 0; i < 6; ++i) REQUIRE(code(f.ask("ann", "chat", {{"text", "m" + std::to_string(i)}})) == "ok");
    f.flush();
    const session_id s = f.next_session++;
    REQUIRE(f.r->join(s, "ben", p_all, role::audience, json("rejoin"), f.now, 4) == errc::ok);
    const json reply = f.find(s, json("rejoin"));
    REQUIRE(reply["history"].size() == 2);
    CHECK(reply["history"][0]["seq"] == 5);
    CHECK(reply["history"][1]["text"] == "m5");
}
