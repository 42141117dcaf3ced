// onair-dispatch as a real process, with relay nodes played by UDP sockets in the test:
// routes chosen over measured links, a route that moves when a link slows down mid-run,
// a node that stops heartbeating taken out and routed round within 2 s (pushed to the
// player's edge, repeated until acknowledged), and forged or replayed registrations that
// change nothing.
#include <onair/dispatch/node_auth.hpp>

#include "support/process.hpp"

#include <doctest/doctest.h>

#include <asio/io_context.hpp>
#include <asio/ip/udp.hpp>

#include <nlohmann/json.hpp>

#include <fstream>
#include <map>
#include <regex>

using namespace onair_test;
using namespace std::chrono_literals;
using json = nlohmann::json;
using udp = asio::ip::udp;

namespace {

constexpr const char* secret = "network-secret";

/// A relay node's side of the dispatch protocol, on a socket of its own.
struct fake_node {
    std::string id;
    asio::io_context io;
    udp::socket socket{io, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};
    udp::endpoint dispatch;
    std::uint64_t counter = 0;
    std::vector<json> pushed; // route_changed messages received (and acknowledged)

    fake_node(std::string name, udp::endpoint d) : id(std::move(name)), dispatch(d) { socket.non_blocking(true); }
    std::string address() const { return "127.0.0.1:" + std::to_string(socket.local_endpoint().port()); }

    void send(json m, const std::string& key = secret) {
        m["node"] = id;
        m["counter"] = onair::dispatch::next_counter(counter);
        m["ts"] = onair::control::unix_now() * 1000;
        onair::dispatch::sign(m, key);
        send_raw(m.dump());
    }
    void send_raw(const std::string& s) { socket.send_to(asio::buffer(s), dispatch); }

    /// Reads what arrived within `limit`: replies are returned, pushes recorded and acked.
    std::optional<json> read(std::chrono::milliseconds limit = 2000ms) {
        const auto end = std::chrono::steady_clock::now() + limit;
        std::array<char, 65536> buf;
        while (std::chrono::steady_clock::now() < end) {
            udp::endpoint from;
            std::error_code ec;
            const std::size_t n = socket.receive_from(asio::buffer(buf), from, 0, ec);
            if (ec == asio::error::would_block) {
                std::this_thread::sleep_for(2ms);
                continue;
            }
            if (ec) return std::nullopt;
            json m = json::parse(std::string_view(buf.data(), n), nullptr, false);
            if (m.is_discarded()) continue;
            if (m.value("type", "") == "route_changed") {
                pushed.push_back(m);
                send({{"type", "ack"}, {"from", m["from"]}, {"to", m["to"]}});
                continue;
            }
            return m;
        }
        return std::nullopt;
    }
    json ask(json m) {
        send(std::move(m));
        auto r = read();
        REQUIRE(r);
        return *r;
    }
    void register_here() {
        REQUIRE(ask({{"type", "register"}, {"region", "eu"}, {"media", address()}, {"control", address()}, {"capacity", 100}})["type"] == "reply");
    }
    void links(std::vector<std::pair<std::string, double>> l) {
        json arr = json::array();
        for (auto& [to, rtt] : l) arr.push_back({{"to", to}, {"rtt_ms", rtt}, {"loss", 0}, {"jitter_ms", 0}});
        REQUIRE(ask({{"type", "links"}, {"links", arr}})["type"] == "reply");
    }
    void heartbeat() { REQUIRE(ask({{"type", "heartbeat"}, {"load", 5}})["type"] == "reply"); }
};

json query_route(fake_node& client, const std::string& from, const std::string& to) {
    client.send_raw(json{{"type", "route"}, {"from", from}, {"to", to}, {"id", 7}}.dump());
    auto r = client.read();
    REQUIRE(r);
    CHECK((*r)["id"] == 7);
    return (*r)["route"];
}

/// Starts onair-dispatch on 127.0.0.1:0 with the test's secret; returns it and its port.
std::pair<std::unique_ptr<process>, unsigned short> start_dispatch(const std::filesystem::path& dir, std::vector<std::string> extra) {
    std::ofstream(dir / "secret") << secret << "\n";
    std::vector<std::string> argv{bin("onair-dispatch"), "--listen", "127.0.0.1:0", "--secret-file", (dir / "secret").string(), "--seconds", "60"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto d = std::make_unique<process>(argv, dir, "dispatch");
    unsigned short port = 0;
    REQUIRE(eventually([&] {
        std::smatch m;
        const std::string out = d->out();
        if (std::regex_search(out, m, std::regex("listening on 127\\.0\\.0\\.1:([0-9]+)"))) port = static_cast<unsigned short>(std::stoi(m[1]));
        return port != 0;
    }, 10s));
    return {std::move(d), port};
}

} // namespace

TEST_CASE("the dispatch process routes round slow links and failed nodes, and ignores forgeries") {
    const auto dir = scratch_dir("dispatch");
    auto [dp, port] = start_dispatch(dir, {"--heartbeat-ms", "400"});
    process& d = *dp;
    const udp::endpoint at(asio::ip::make_address("127.0.0.1"), port);
    fake_node a("A", at), b("B", at), c("C", at), client("client", at);
    for (auto* n : {&a, &b, &c}) n->register_here();
    // A-B 80 ms, A-C 20 ms, C-B 20 ms.
    a.links({{"B", 80}, {"C", 20}});
    b.links({{"A", 80}, {"C", 20}});
    c.links({{"A", 20}, {"B", 20}});
    CHECK(query_route(client, "A", "B")["nodes"] == json::array({"A", "C", "B"}));

    // Forged and replayed registrations change nothing.
    c.send({{"type", "register"}, {"region", "eu"}, {"media", "10.0.0.1:1"}, {"control", "10.0.0.1:1"}, {"capacity", 100}}, "guess");
    CHECK(c.read()->value("code", "") == "forged");
    json replay{{"type", "register"}, {"node", "C"}, {"counter", 1}, {"ts", onair::control::unix_now() * 1000}, {"region", "eu"},
                {"media", "10.0.0.1:1"}, {"control", "10.0.0.1:1"}, {"capacity", 100}};
    onair::dispatch::sign(replay, secret);
    c.send_raw(replay.dump());
    CHECK(c.read()->value("code", "") == "replayed");
    client.send_raw("not json at all");
    CHECK(query_route(client, "A", "B")["nodes"] == json::array({"A", "C", "B"}));

    // C stops: A and B keep heartbeating; B (the player's end) is told the new route.
    const auto c_last = std::chrono::steady_clock::now();
    std::optional<std::chrono::steady_clock::duration> rerouted;
    while (!rerouted && std::chrono::steady_clock::now() - c_last < 6s) {
        a.heartbeat();
        b.heartbeat();
        b.read(150ms);
        if (!b.pushed.empty()) rerouted = std::chrono::steady_clock::now() - c_last;
    }
    REQUIRE(rerouted);
    const double seconds = std::chrono::duration<double>(*rerouted).count();
    MESSAGE("re-routed " << seconds << " s after the node's last heartbeat");
    CHECK(seconds <= 2.0); // 3 heartbeats of 400 ms, and a tick
    CHECK(b.pushed.back()["route"]["nodes"] == json::array({"A", "B"}));
    CHECK(query_route(client, "A", "B")["nodes"] == json::array({"A", "B"}));

    // C comes back: registered and measured, the route goes through it again.
    c.register_here();
    c.links({{"A", 20}, {"B", 20}});
    a.links({{"B", 80}, {"C", 20}});
    b.pushed.clear();
    for (int i = 0; i < 20 && b.pushed.empty(); ++i) {
        a.heartbeat();
        c.heartbeat();
        b.heartbeat();
        b.read(100ms);
    }
    REQUIRE_FALSE(b.pushed.empty());
    CHECK(b.pushed.back()["route"]["nodes"] == json::array({"A", "C", "B"}));

    // C-B slows to 200 ms mid-run: the route moves to the direct link.
    b.pushed.clear();
    for (int i = 0; i < 30 && b.pushed.empty(); ++i) {
        c.links({{"A", 20}, {"B", 200}});
        a.heartbeat();
        c.heartbeat();
        b.heartbeat();
        b.read(50ms);
    }
    REQUIRE_FALSE(b.pushed.empty());
    CHECK(b.pushed.back()["route"]["nodes"] == json::array({"A", "B"}));
    d.signal(SIGTERM);
    REQUIRE(d.wait(10s) == 0);
    CHECK(std::regex_search(d.out(), std::regex("forged=1 replayed=1")));
}

TEST_CASE("relay processes join the network, measure each other, and one killed is taken out within 2 s") {
    const auto dir = scratch_dir("dispatch_relays");
    auto [dp, port] = start_dispatch(dir, {});
    process& d = *dp;
    const std::string at = "127.0.0.1:" + std::to_string(port);
    std::map<std::string, std::unique_ptr<process>> relays;
    for (const char* id : {"A", "B", "C"})
        relays[id] = std::make_unique<process>(std::vector<std::string>{bin("onair-relay"), "--listen", "127.0.0.1:0", "--dispatch", at,
                                                                        "--node-id", id, "--region", "eu", "--cluster-secret-file",
                                                                        (dir / "secret").string(), "--seconds", "60"},
                                               dir, std::string("relay_") + id);
    fake_node client("client", udp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    auto edges = [&] {
        client.send_raw(json{{"type", "edges"}, {"region", "eu"}, {"count", 8}}.dump());
        auto r = client.read(500ms);
        return r ? (*r)["edges"] : json::array();
    };
    REQUIRE(eventually([&] { return edges().size() == 3; }, 10s));
    // Every pair measured: a route A -> B exists and is priced by a measured RTT.
    json route;
    REQUIRE(eventually([&] {
        route = query_route(client, "A", "B");
        return route.is_object();
    }, 10s));
    CHECK(route["nodes"] == json::array({"A", "B"})); // loopback: the direct link is cheapest
    CHECK(route["hops"][1]["media"].get<std::string>().rfind("127.0.0.1:", 0) == 0);

    relays["C"]->signal(SIGKILL);
    const auto killed = std::chrono::steady_clock::now();
    REQUIRE(eventually([&] { return edges().size() == 2; }, 5s));
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
    MESSAGE("a killed relay was taken out " << seconds << " s after the kill");
    CHECK(seconds <= 2.0);
    for (const char* id : {"A", "B"}) relays[id]->signal(SIGTERM);
    for (const char* id : {"A", "B"}) CHECK(relays[id]->wait(10s) == 0);
    d.signal(SIGTERM);
    CHECK(d.wait(10s) == 0);
}
