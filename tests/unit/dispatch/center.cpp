#include <onair/dispatch/center.hpp>

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace onair::dispatch;
using json = nlohmann::json;

namespace {

constexpr const char* secret = "cluster-secret";

/// A relay node's side: signed, numbered messages.
struct node_client {
    std::string id;
    std::uint64_t counter = 0;
    std::string key = secret;
    json msg(json body, std::int64_t now) {
        body["node"] = id;
        body["counter"] = ++counter;
        body["ts"] = now;
        sign(body, key);
        return body;
    }
};

struct fixture {
    center c{secret};
    std::map<std::string, node_client> nodes;
    std::int64_t now = 1'000'000;

    json say(const std::string& id, json body) {
        auto& n = nodes[id];
        n.id = id;
        return c.on_node_message(n.msg(std::move(body), now), now);
    }
    void add(const std::string& id) {
        REQUIRE(say(id, {{"type", "register"}, {"region", "eu"}, {"media", id + ":5000"}, {"control", id + ":6000"}, {"capacity", 100}})["type"] == "reply");
    }
    void link(const std::string& a, const std::string& b, double rtt) {
        REQUIRE(say(a, {{"type", "links"}, {"links", {{{"to", b}, {"rtt_ms", rtt}, {"loss", 0}, {"jitter_ms", 0}}}}})["taken"] == 1);
    }
    void triangle() {
        for (const char* n : {"A", "B", "C"}) add(n);
        for (auto [a, b, rtt] : {std::tuple{"A", "B", 80.0}, {"A", "C", 20.0}, {"C", "B", 20.0}}) {
            link(a, b, rtt);
            link(b, a, rtt);
        }
    }
    void heartbeat(std::initializer_list<const char*> ids) {
        for (const char* id : ids) REQUIRE(say(id, {{"type", "heartbeat"}, {"load", 10}})["type"] == "reply");
    }
};

} // namespace

TEST_CASE("registered nodes, measured links, a route round the slow link") {
    fixture f;
    f.triangle();
    const json r = f.c.route_for("A", "B");
    REQUIRE(r.is_object());
    CHECK(r["nodes"] == json::array({"A", "C", "B"}));
    CHECK(r["hops"][1]["media"] == "C:5000");
    const json e = f.c.edges("eu", 2);
    CHECK(e.size() == 2);
    CHECK(f.c.stats().registered == 3);
}

TEST_CASE("forged, replayed and unknown-node messages change no route") {
    fixture f;
    f.triangle();
    REQUIRE(f.c.route_for("A", "B")["nodes"] == json::array({"A", "C", "B"}));
    // A forged registration moving C elsewhere, and a forged report making C-B slow.
    node_client forger{"C", 1'000, "wrong-secret"};
    CHECK(f.c.on_node_message(forger.msg({{"type", "register"}, {"region", "x"}, {"media", "evil:1"}, {"control", "evil:2"}, {"capacity", 1}}, f.now), f.now)["code"] == "forged");
    CHECK(f.c.on_node_message(forger.msg({{"type", "links"}, {"links", {{{"to", "B"}, {"rtt_ms", 5000}, {"loss", 1}, {"jitter_ms", 0}}}}}, f.now), f.now)["code"] == "forged");
    // A replay of C's own (genuine) last registration.
    auto& c = f.nodes["C"];
    c.counter = 0; // what an eavesdropper would resend: an old counter
    CHECK(f.c.on_node_message(c.msg({{"type", "register"}, {"region", "eu"}, {"media", "evil:1"}, {"control", "C:6000"}, {"capacity", 100}}, f.now), f.now)["code"] == "replayed");
    // A node nobody registered.
    CHECK(f.say("Z", {{"type", "links"}, {"links", json::array()}})["code"] == "unknown_node");
    // A flood of absurd reports from a real node.
    for (int i = 0; i < 100; ++i) f.say("A", {{"type", "links"}, {"links", {{{"to", "C"}, {"rtt_ms", -5}, {"loss", 0}, {"jitter_ms", 0}}, {{"to", "Q"}, {"rtt_ms", 1}, {"loss", 0}, {"jitter_ms", 0}}}}});
    CHECK(f.c.stats().links_refused == 200);
    CHECK(f.c.tick(f.now).empty());
    CHECK(f.c.route_for("A", "B")["nodes"] == json::array({"A", "C", "B"}));
    CHECK(f.c.nodes().at("C").media == "C:5000");
    CHECK(f.c.stats().refused_forged == 2);
    CHECK(f.c.stats().refused_replayed == 1);
    CHECK(f.c.stats().refused_unknown == 1);
}

TEST_CASE("a node that stops heartbeating is taken out and routes go round it; restarted, it serves again") {
    fixture f;
    f.triangle();
    REQUIRE(f.c.route_for("A", "B")["nodes"] == json::array({"A", "C", "B"}));
    for (int i = 0; i < 2; ++i) {
        f.now += 1000;
        f.heartbeat({"A", "B", "C"});
        CHECK(f.c.tick(f.now).empty());
    }
    // C dies: A and B go on.
    std::vector<route_table::change> moved;
    for (int i = 0; i < 5 && moved.empty(); ++i) {
        f.now += 1000;
        f.heartbeat({"A", "B"});
        moved = f.c.tick(f.now);
    }
    REQUIRE(moved.size() == 1);
    CHECK(moved[0].after->nodes == std::vector<std::string>{"A", "B"});
    CHECK(f.c.stats().nodes_expired == 1);
    CHECK_FALSE(f.c.topo().has_node("C"));
    CHECK(f.say("C", {{"type", "heartbeat"}, {"load", 1}})["code"] == "unknown_node"); // must register again
    // C restarts (its counter follows its clock, so it is above anything it sent before).
    f.nodes["C"].counter = 1'000'000'000;
    f.add("C");
    f.link("A", "C", 20);
    f.link("C", "B", 20);
    moved = f.c.tick(f.now);
    REQUIRE(moved.size() == 1);
    CHECK(moved[0].after->nodes == std::vector<std::string>{"A", "C", "B"});
}

TEST_CASE("streams reported in heartbeats are located with the route from their node") {
    fixture f;
    f.triangle();
    CHECK(f.c.locate("cam", "B")["code"] == "not_published");
    REQUIRE(f.say("A", {{"type", "heartbeat"}, {"load", 1}, {"streams", {"cam", "room/host"}}})["type"] == "reply");
    auto r = f.c.locate("cam", "B");
    REQUIRE(r["type"] == "reply");
    CHECK(r["from"] == "A");
    CHECK(r["route"]["nodes"] == json({"A", "C", "B"}));
    CHECK(r["route"]["hops"][1]["media"] == "C:5000");
    CHECK(f.c.locate("cam", "A")["route"]["nodes"] == json({"A"}));
    CHECK(f.c.locate("cam", "nowhere")["code"] == "unknown_node");

    // A second node claiming the name does not take it; the holder dropping it frees it.
    REQUIRE(f.say("C", {{"type", "heartbeat"}, {"load", 1}, {"streams", {"cam"}}})["type"] == "reply");
    CHECK(f.c.publisher_of("cam") == "A");
    CHECK(f.c.stats().streams_refused == 1);
    REQUIRE(f.say("A", {{"type", "heartbeat"}, {"load", 1}, {"streams", {"room/host"}}})["type"] == "reply");
    CHECK(f.c.publisher_of("cam").empty());
    REQUIRE(f.say("C", {{"type", "heartbeat"}, {"load", 1}, {"streams", {"cam"}}})["type"] == "reply");
    CHECK(f.c.publisher_of("cam") == "C");

    // Malformed lists change nothing; a node taken out frees what it held.
    const auto refused = f.c.stats().streams_refused;
    REQUIRE(f.say("C", {{"type", "heartbeat"}, {"load", 1}, {"streams", "cam"}})["type"] == "reply");
    REQUIRE(f.say("C", {{"type", "heartbeat"}, {"load", 1}, {"streams", {1, "", std::string(300, 'x'), "cam"}}})["type"] == "reply");
    CHECK(f.c.stats().streams_refused == refused + 4);
    CHECK(f.c.publisher_of("cam") == "C");
    json many = json::array();
    for (int i = 0; i < 600; ++i) many.push_back("s" + std::to_string(i));
    REQUIRE(f.say("C", {{"type", "heartbeat"}, {"load", 1}, {"streams", many}})["type"] == "reply");
    CHECK(f.c.publisher_of("s1").empty());
    f.now += 2000;
    f.heartbeat({"A", "B"});
    f.c.tick(f.now);
    CHECK(f.c.publisher_of("cam").empty());
    CHECK(f.c.publisher_of("room/host") == "A");
    // A node registering again reports afresh: what it held is freed until it does.
    f.add("A");
    CHECK(f.c.publisher_of("room/host").empty());
}

TEST_CASE("a stream located before any link is measured takes the direct link, then the measured route") {
    fixture f;
    for (const char* n : {"A", "B", "C"}) f.add(n);
    REQUIRE(f.say("A", {{"type", "heartbeat"}, {"load", 1}, {"streams", {"cam"}}})["type"] == "reply");
    auto r = f.c.locate("cam", "B");
    REQUIRE(r["type"] == "reply");
    CHECK(r["route"]["nodes"] == json({"A", "B"}));
    CHECK(r["route"]["assumed"] == true);
    CHECK(f.c.tick(f.now).empty()); // nothing measured yet: it stays
    for (auto [a, b, rtt] : {std::tuple{"A", "B", 80.0}, {"A", "C", 20.0}, {"C", "B", 20.0}}) f.link(a, b, rtt);
    f.heartbeat({"A", "B", "C"});
    const auto moved = f.c.tick(f.now);
    REQUIRE(moved.size() == 1);
    CHECK(moved[0].from == "A");
    CHECK(moved[0].to == "B");
    REQUIRE(moved[0].after);
    CHECK(moved[0].after->nodes == std::vector<std::string>{"A", "C", "B"});
    CHECK_FALSE(moved[0].after->assumed);
    CHECK(f.c.locate("cam", "B")["route"]["nodes"] == json({"A", "C", "B"}));
}
