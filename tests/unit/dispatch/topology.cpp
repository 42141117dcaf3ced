#include <onair/dispatch/topology.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

using namespace onair::dispatch;

namespace {

using path = std::vector<std::string>;

/// Both directions of a link, measured once (the first sample is taken as it is).
void both(topology& t, const std::string& a, const std::string& b, double rtt, double loss = 0, std::int64_t now = 0) {
    REQUIRE(t.report(a, b, {rtt, loss, 0}, now));
    REQUIRE(t.report(b, a, {rtt, loss, 0}, now));
}

/// The triangle of the benchmark: A-B 80 ms, A-C 20 ms, C-B 20 ms.
topology triangle(routing_config cfg = {}) {
    topology t(cfg);
    for (const char* n : {"A", "B", "C"}) t.upsert_node(n, {"r", 100, 0});
    both(t, "A", "B", 80);
    both(t, "A", "C", 20);
    both(t, "C", "B", 20);
    return t;
}

} // namespace

TEST_CASE("the cheapest route goes round a slow direct link") {
    auto t = triangle();
    auto r = t.best_route("A", "B");
    REQUIRE(r);
    CHECK(r->nodes == path{"A", "C", "B"});
    CHECK(r->cost == doctest::Approx(40));
    CHECK(t.best_route("B", "A")->nodes == path{"B", "C", "A"});
    CHECK(t.best_route("A", "A")->nodes == path{"A"});
    CHECK_FALSE(t.best_route("A", "Z"));
}

TEST_CASE("a link that slows down mid-run moves the route; noise does not") {
    auto t = triangle();
    route_table routes;
    REQUIRE(routes.get(t, "A", "B")->nodes == path{"A", "C", "B"});
    // Noise: C-B a little slower (25 ms); the direct link would still be dearer.
    for (int i = 0; i < 20; ++i) t.report("C", "B", {25, 0, 0}, i);
    CHECK(routes.recompute(t).empty());
    // C-B now 100 ms: A-C-B costs 120 against 80 direct.
    std::vector<route_table::change> moved;
    for (int i = 0; i < 20 && moved.empty(); ++i) {
        t.report("C", "B", {100, 0, 0}, 100 + i);
        moved = routes.recompute(t);
    }
    REQUIRE(moved.size() == 1);
    CHECK(moved[0].before->nodes == path{"A", "C", "B"});
    CHECK(moved[0].after->nodes == path{"A", "B"});
    CHECK(routes.get(t, "A", "B")->nodes == path{"A", "B"});
}

TEST_CASE("a route in use moves only for a path switch_gain cheaper") {
    routing_config cfg;
    cfg.smoothing = 1; // every sample is the link's value
    topology t(cfg);
    for (const char* n : {"A", "B", "C"}) t.upsert_node(n, {"r", 100, 0});
    both(t, "A", "B", 50);
    both(t, "A", "C", 30);
    both(t, "C", "B", 30);
    route_table routes;
    REQUIRE(routes.get(t, "A", "B")->nodes == path{"A", "B"}); // 50 against 60
    t.report("A", "B", {62, 0, 0}, 1);                          // 62 against 60: not 20 % better
    CHECK(routes.recompute(t).empty());
    CHECK(routes.get(t, "A", "B")->cost == doctest::Approx(62));
    t.report("A", "B", {80, 0, 0}, 2); // 80 against 60: 25 % better
    auto moved = routes.recompute(t);
    REQUIRE(moved.size() == 1);
    CHECK(moved[0].after->nodes == path{"A", "C", "B"});
}

TEST_CASE("loss costs: a lossy short path loses to a clean longer one") {
    auto t = triangle();
    both(t, "A", "C", 20, 0.05); // 5 % loss: + 100 ms at the default penalty, once smoothed in
    CHECK(t.best_route("A", "B")->nodes == path{"A", "C", "B"}); // one sample moves it 30 % of the way
    for (int i = 0; i < 20; ++i) both(t, "A", "C", 20, 0.05);
    CHECK(t.link_of("A", "C")->loss == doctest::Approx(0.05).epsilon(0.01));
    CHECK(t.best_route("A", "B")->nodes == path{"A", "B"});
}

TEST_CASE("the hop limit bounds the route") {
    routing_config cfg;
    cfg.max_hops = 2;
    topology t(cfg);
    for (const char* n : {"A", "B", "C", "D", "E"}) t.upsert_node(n, {"r", 100, 0});
    both(t, "A", "C", 5);
    both(t, "C", "D", 5);
    both(t, "D", "E", 5);
    both(t, "E", "B", 5); // 4 links, 20 ms
    both(t, "A", "D", 40);
    both(t, "D", "B", 40); // 2 links, 80 ms
    both(t, "A", "B", 200);
    auto r = t.best_route("A", "B");
    REQUIRE(r);
    CHECK(r->nodes == path{"A", "D", "B"});
    CHECK(r->nodes.size() - 1 <= 2);
    routing_config wide;
    wide.max_hops = 4;
    topology t4(wide);
    for (const auto& [id, n] : t.nodes()) t4.upsert_node(id, n);
    for (const char* a : {"A", "C", "D", "E", "B"})
        for (const char* b : {"A", "C", "D", "E", "B"})
            if (auto l = t.link_of(a, b)) t4.report(a, b, *l, 0);
    CHECK(t4.best_route("A", "B")->nodes == path{"A", "C", "D", "E", "B"});
}

TEST_CASE("an overloaded node carries no transit, and load adds to a node's cost") {
    auto t = triangle();
    t.set_load("C", 99); // 99 % of 100
    CHECK(t.best_route("A", "B")->nodes == path{"A", "B"});
    CHECK(t.best_route("A", "C")->nodes == path{"A", "C"}); // still an end
    t.set_load("C", 50);
    auto r = t.best_route("A", "B");
    REQUIRE(r);
    CHECK(r->nodes == path{"A", "C", "B"});
    CHECK(r->cost == doctest::Approx(40 + 0.5 * t.config().load_penalty_ms));
}

TEST_CASE("a node taken out breaks its routes, which go round it or end") {
    auto t = triangle();
    route_table routes;
    REQUIRE(routes.get(t, "A", "B")->nodes == path{"A", "C", "B"});
    REQUIRE(routes.get(t, "A", "C"));
    t.remove_node("C");
    auto moved = routes.recompute(t);
    REQUIRE(moved.size() == 2);
    for (const auto& c : moved) {
        if (c.to == "B") CHECK(c.after->nodes == path{"A", "B"});
        else CHECK_FALSE(c.after); // to C: no way
    }
    CHECK(routes.size() == 1);
    CHECK_FALSE(t.link_of("A", "C"));
}

TEST_CASE("links not measured for link_timeout_ms are gone") {
    routing_config cfg;
    cfg.link_timeout_ms = 1000;
    auto t = triangle(cfg);
    t.report("A", "C", {20, 0, 0}, 900);
    t.report("C", "B", {20, 0, 0}, 900);
    CHECK(t.expire(1500) == 4); // A-B, B-A, C-A, B-C were measured at 0
    CHECK(t.best_route("A", "B")->nodes == path{"A", "C", "B"});
    CHECK_FALSE(t.best_route("B", "A"));
}

TEST_CASE("absurd or unknown reports are refused and change nothing") {
    auto t = triangle();
    const auto before = *t.link_of("A", "C");
    const double nan = std::numeric_limits<double>::quiet_NaN();
    CHECK_FALSE(t.report("A", "C", {-1, 0, 0}, 1));
    CHECK_FALSE(t.report("A", "C", {nan, 0, 0}, 1));
    CHECK_FALSE(t.report("A", "C", {20, 1.5, 0}, 1));
    CHECK_FALSE(t.report("A", "C", {20, -0.1, 0}, 1));
    CHECK_FALSE(t.report("A", "C", {20, 0, nan}, 1));
    CHECK_FALSE(t.report("A", "C", {1e9, 0, 0}, 1));
    CHECK_FALSE(t.report("A", "A", {1, 0, 0}, 1));
    CHECK_FALSE(t.report("A", "Z", {1, 0, 0}, 1));
    CHECK_FALSE(t.report("Z", "A", {1, 0, 0}, 1));
    CHECK(t.link_of("A", "C")->rtt_ms == before.rtt_ms);
    CHECK_FALSE(t.link_of("A", "Z"));
}

TEST_CASE("edges are ranked: the client's region first, then by load, overloaded last") {
    topology t;
    t.upsert_node("eu1", {"eu", 100, 70});
    t.upsert_node("eu2", {"eu", 100, 20});
    t.upsert_node("us1", {"us", 100, 0});
    t.upsert_node("eu3", {"eu", 100, 99});
    CHECK(t.rank_edges("eu", 10) == std::vector<std::string>{"eu2", "eu1", "us1", "eu3"});
    CHECK(t.rank_edges("us", 2) == std::vector<std::string>{"us1", "eu2"});
}

TEST_CASE("edges whose loads differ by less than a load step keep their order by id; a step apart, the lighter comes first") {
    topology t;
    // Near idle: b carries a little more (its probes, a heartbeat) than a and c.
    t.upsert_node("b", {"eu", 1000, 0.3});
    t.upsert_node("c", {"eu", 1000, 0.0});
    t.upsert_node("a", {"eu", 1000, 2.0});
    CHECK(t.rank_edges("eu", 3) == std::vector<std::string>{"a", "b", "c"});
    // a step (5 % of capacity) more on a: it goes behind.
    t.upsert_node("a", {"eu", 1000, 60});
    CHECK(t.rank_edges("eu", 3) == std::vector<std::string>{"b", "c", "a"});
}
