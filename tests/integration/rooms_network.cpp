// A room across nodes, real processes: onair-dispatch and two onair-relay nodes A and B,
// each with its room service (--control) and in the network (--dispatch). Members log in
// at either node through the client library; the room lives on A (the first node a member
// of it logged in to) and B serves its members through a trunk to A.
//
// - Members on both edges see the same members and every chat message in one order.
// - A co-host on B publishes with the room's grant (carried over the trunk to B's media
//   path); a viewer at A plays it with its own grant (A pulls the stream from B).
// - A member who disconnects at B leaves the room for everyone.
// - A trunk hello that is not signed with the cluster's secret is refused.
#include <onair/control/room_client.hpp>
#include <onair/control/token.hpp>

#include "support/on_io.hpp"
#include "support/process.hpp"

#include <doctest/doctest.h>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include <nlohmann/json.hpp>

#include <csignal>
#include <fstream>
#include <future>
#include <map>
#include <regex>
#include <set>
#include <thread>

using namespace onair;
using namespace onair_test;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

constexpr const char* app_secret = "app-secret";
constexpr const char* cluster_secret = "cluster-secret";

asio::ip::tcp::endpoint tcp_at(const std::string& hostport) {
    const auto colon = hostport.rfind(':');
    return {asio::ip::make_address(hostport.substr(0, colon)), static_cast<unsigned short>(std::stoi(hostport.substr(colon + 1)))};
}

/// Room members on one io_context thread, each logged in at a node of its choice.
struct members {
    asio::io_context io{1};
    asio::executor_work_guard<asio::io_context::executor_type> work = asio::make_work_guard(io);
    std::map<std::string, std::unique_ptr<control::room_client>> clients;
    std::map<std::string, std::vector<json>> events;
    std::jthread thread{[this] { io.run(); }};
    ~members() {
        on_io(io, [&] { clients.clear(); });
        work.reset();
        io.stop();
    }
    control::room_client& join(const std::string& user, const asio::ip::tcp::endpoint& at, control::role r) {
        auto done = std::make_shared<std::promise<std::error_code>>();
        auto* c = on_io(io, [&] {
            control::room_client_handlers h;
            h.on_event = [this, user](const json& m) { events[user].push_back(m); };
            const std::string token = control::mint_token(app_secret, {"onair", "show", user, control::all_privileges, control::unix_now() + 600});
            clients[user] = std::make_unique<control::room_client>(io.get_executor(), control::room_client_config{at, token, "show", r}, h);
            auto* p = clients[user].get();
            p->connect([done](std::error_code ec, const json&) { done->set_value(ec); });
            return p;
        });
        const auto status = done->get_future().wait_for(10s);
        REQUIRE(status == std::future_status::ready);
        return *c;
    }
    std::vector<json> of(const std::string& user, const std::string& type) {
        return on_io(io, [&] {
            std::vector<json> out;
            for (const auto& m : events[user])
                if (m.value("type", "") == type) out.push_back(m);
            return out;
        });
    }
    std::pair<std::error_code, json> call(const std::string& user, json req) {
        auto p = std::make_shared<std::promise<std::pair<std::error_code, json>>>();
        asio::post(io, [this, user, req = std::move(req), p]() mutable {
            clients.at(user)->request(std::move(req), [p](std::error_code ec, const json& r) { p->set_value({ec, r}); });
        });
        return p->get_future().get();
    }
    std::set<std::string> users_seen(const std::string& user) {
        return on_io(io, [&] {
            std::set<std::string> s;
            for (const auto& [name, r] : clients.at(user)->members()) s.insert(name);
            return s;
        });
    }
};

} // namespace

TEST_CASE("a room spans nodes: one member list and one message order on every edge, media granted on each member's edge") {
    const auto dir = scratch_dir("rooms_network");
    std::ofstream(dir / "app") << app_secret << "\n";
    std::ofstream(dir / "cluster") << cluster_secret << "\n";
    process dispatch({bin("onair-dispatch"), "--listen", "127.0.0.1:0", "--secret-file", (dir / "cluster").string(), "--heartbeat-ms", "400",
                      "--seconds", "90"},
                     dir, "dispatch");
    const std::string dport = output_match(dispatch, "listening on 127\\.0\\.0\\.1:([0-9]+)");
    REQUIRE(!dport.empty());
    std::map<std::string, std::unique_ptr<process>> relays;
    std::map<std::string, std::string> media, control_at;
    for (const char* id : {"A", "B"}) {
        relays[id] = std::make_unique<process>(
            std::vector<std::string>{bin("onair-relay"), "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0", "--secret-file",
                                     (dir / "app").string(), "--dispatch", "127.0.0.1:" + dport, "--node-id", id, "--cluster-secret-file",
                                     (dir / "cluster").string(), "--seconds", "90", "--stats-every", "0.5"},
            dir, std::string("relay_") + id);
        media[id] = output_match(*relays[id], "listening on (127\\.0\\.0\\.1:[0-9]+)");
        control_at[id] = output_match(*relays[id], "control on (127\\.0\\.0\\.1:[0-9]+)");
        REQUIRE(!control_at[id].empty());
    }
    REQUIRE(!output_match(*relays["A"], "(joining) the network").empty());
    std::this_thread::sleep_for(1500ms); // both registered

    members m;
    m.join("hana", tcp_at(control_at["A"]), control::role::host); // the room now lives on A
    m.join("bob", tcp_at(control_at["B"]), control::role::audience);
    m.join("cleo", tcp_at(control_at["B"]), control::role::audience);
    m.join("dan", tcp_at(control_at["A"]), control::role::audience);

    // One member list everywhere.
    const std::set<std::string> everyone{"hana", "bob", "cleo", "dan"};
    REQUIRE(eventually([&] {
        for (const auto& u : everyone)
            if (m.users_seen(u) != everyone) return false;
        return true;
    }, 5s));

    // Chat from both edges at once: every member sees one sequence.
    for (int i = 0; i < 10; ++i)
        asio::post(m.io, [&, i] {
            m.clients.at("hana")->chat("h" + std::to_string(i));
            m.clients.at("bob")->chat("b" + std::to_string(i));
            m.clients.at("cleo")->chat("c" + std::to_string(i));
        });
    REQUIRE(eventually([&] {
        for (const auto& u : everyone)
            if (m.of(u, "chat").size() != 30) return false;
        return true;
    }, 5s));
    auto order = [&](const std::string& u) {
        std::vector<std::pair<std::uint64_t, std::string>> v;
        for (const auto& c : m.of(u, "chat")) v.emplace_back(c["seq"].get<std::uint64_t>(), c["text"].get<std::string>());
        return v;
    };
    const auto seen = order("hana");
    for (const auto& u : everyone) CHECK(order(u) == seen);
    for (std::size_t i = 0; i < seen.size(); ++i) CHECK(seen[i].first == seen.front().first + i);
    // Likes from B are counted at the home like any other.
    asio::post(m.io, [&] { m.clients.at("cleo")->like(7); });
    REQUIRE(eventually([&] {
        const auto l = m.of("hana", "likes");
        return !l.empty() && l.back().value("total", 0) == 7;
    }, 5s));

    // Co-hosting across nodes: hana (on A) invites bob (on B); everyone sees his new role.
    const auto [iec, inv] = m.call("hana", {{"type", "cohost_invite"}, {"user", "bob"}});
    REQUIRE(iec == std::error_code{});
    REQUIRE(m.call("bob", {{"type", "cohost_answer"}, {"invite", inv["invite"]}, {"accept", true}}).first == std::error_code{});
    CHECK(eventually([&] {
        for (const auto& u : {"hana", "cleo", "dan"}) {
            bool told = false;
            for (const auto& e : m.of(u, "role_changed")) told |= e.value("user", "") == "bob" && e.value("role", "") == "cohost";
            if (!told) return false;
        }
        return true;
    }, 5s));
    // hana leaves (on A): the room stays on A with dan, and its host role is free.
    on_io(m.io, [&] { m.clients.erase("hana"); });
    REQUIRE(eventually([&] { return m.users_seen("cleo") == std::set<std::string>{"bob", "cleo", "dan"}; }, 5s));
    // Media: a host program on B publishes with the room's grant (sent over the trunk to B's
    // media path); a viewer program on A plays it with its own.
    const std::string bob_token = control::mint_token(app_secret, {"onair", "show", "bob2", control::all_privileges, control::unix_now() + 600});
    const std::string dan_token = control::mint_token(app_secret, {"onair", "show", "dan2", control::all_privileges, control::unix_now() + 600});
    // The programs log in themselves: a host on B and a viewer on A, both through their
    // edge's room service.
    process viewer({bin("onair-viewer"), "--relay", media["A"], "--stream", "bobcam", "--control", control_at["A"], "--token", dan_token,
                    "--room", "show", "--out", (dir / "viewer").string(), "--seconds", "9"},
                   dir, "viewer");
    process host({bin("onair-host"), "--relay", media["B"], "--stream", "bobcam", "--control", control_at["B"], "--token", bob_token,
                  "--room", "show", "--role", "host", "--size", "320x180", "--fps", "15", "--bitrate", "300", "--seconds", "7"},
                 dir, "host");
    REQUIRE(host.wait(30s) == 0);
    const auto vrc = viewer.wait(30s);
    INFO("viewer: " << viewer.out() << viewer.err());
    REQUIRE(vrc == 0);
    const std::string stats = read_file(dir / "viewer" / "stats.json");
    MESSAGE("viewer at A of a stream published at B: " << json_number(stats, "frames") << " frames");
    CHECK(json_number(stats, "frames") >= 60);
    CHECK(json_number(stats, "decode_errors") == 0);
    // Both programs were room members; everyone saw them come (on either edge).
    CHECK(eventually([&] {
        const auto joins = m.of("cleo", "user_joined");
        int n = 0;
        for (const auto& j : joins) n += j.value("user", "") == "bob2" || j.value("user", "") == "dan2";
        return n == 2;
    }, 5s));

    // cleo disconnects at B: the room (on A) sees her leave.
    on_io(m.io, [&] { m.clients.erase("cleo"); });
    CHECK(eventually([&] {
        for (const auto& l : m.of("dan", "user_left"))
            if (l.value("user", "") == "cleo") return true;
        return false;
    }, 5s));

    // A trunk hello not signed with the cluster's secret is refused and closed.
    {
        asio::io_context io;
        asio::ip::tcp::socket s(io);
        s.connect(tcp_at(control_at["A"]));
        json hello{{"type", "trunk"}, {"room", "show"}, {"node", "B"}, {"counter", 1}, {"ts", control::unix_now() * 1000}, {"sig", "00"}};
        const std::string body = hello.dump();
        std::string frame(4, '\0');
        frame[0] = static_cast<char>(body.size() >> 24);
        frame[1] = static_cast<char>(body.size() >> 16);
        frame[2] = static_cast<char>(body.size() >> 8);
        frame[3] = static_cast<char>(body.size());
        frame += body;
        asio::write(s, asio::buffer(frame));
        std::string got;
        std::array<char, 4096> buf;
        std::error_code ec;
        for (;;) {
            const std::size_t n = s.read_some(asio::buffer(buf), ec);
            if (ec) break;
            got.append(buf.data(), n);
        }
        CHECK(got.find("no_privilege") != std::string::npos);
    }
    for (auto& [id, r] : relays) {
        r->signal(SIGTERM);
        CHECK(r->wait(10s) == 0);
    }
    // A pulled the stream from B (B served A a relay leg).
    CHECK(std::regex_search(relays["A"]->out(), std::regex("pulls_started=[1-9]")));
    CHECK(std::regex_search(relays["B"]->out(), std::regex("relay_legs=[1-9]")));
    dispatch.signal(SIGTERM);
    dispatch.wait(10s);
}
