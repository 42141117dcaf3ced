// A viewer's edge dies: real processes (onair-dispatch, relays A in region "us", B and C in
// "eu", a host publishing at A, onair-viewer --dispatch in "eu").
//
// - The viewer asks the center for edges, probes them and plays from B (its region, best).
// - B is killed with SIGKILL: the viewer moves to C within 3 s; C pulls the stream from A
//   and the viewer goes on (freeze at most 3 s, no decode errors).
// - B is restarted with the same node id and nothing else touched: it registers again, the
//   center offers it, and a new viewer plays from it.
#include "support/process.hpp"

#include <doctest/doctest.h>

#include <asio/io_context.hpp>
#include <asio/ip/udp.hpp>

#include <nlohmann/json.hpp>

#include <csignal>
#include <fstream>
#include <map>
#include <regex>
#include <thread>

using namespace onair_test;
using namespace std::chrono_literals;
using json = nlohmann::json;
using udp = asio::ip::udp;

namespace {

constexpr const char* secret = "cluster-secret";

/// The center's edges for `region`, as node ids.
std::vector<std::string> edges(unsigned short port, const std::string& region) {
    asio::io_context io;
    udp::socket s(io, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    s.non_blocking(true);
    s.send_to(asio::buffer(json{{"type", "edges"}, {"region", region}, {"count", 5}, {"id", 1}}.dump()),
              udp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    std::array<char, 65536> buf;
    const auto end = std::chrono::steady_clock::now() + 1s;
    while (std::chrono::steady_clock::now() < end) {
        udp::endpoint from;
        std::error_code ec;
        const std::size_t n = s.receive_from(asio::buffer(buf), from, 0, ec);
        if (ec == asio::error::would_block) {
            std::this_thread::sleep_for(2ms);
            continue;
        }
        json m = json::parse(std::string_view(buf.data(), n), nullptr, false);
        std::vector<std::string> out;
        if (m.is_object() && m.contains("edges"))
            for (const auto& e : m["edges"]) out.push_back(e.value("node", ""));
        return out;
    }
    return {};
}

} // namespace

TEST_CASE("a viewer whose edge is killed moves to the next-best edge within 3 s; the edge restarted serves again") {
    const auto dir = scratch_dir("edge_failover");
    std::ofstream(dir / "secret") << secret << "\n";
    const std::string secret_file = (dir / "secret").string();
    process dispatch({bin("onair-dispatch"), "--listen", "127.0.0.1:0", "--secret-file", secret_file, "--heartbeat-ms", "400",
                      "--seconds", "90"},
                     dir, "dispatch");
    const std::string dport = output_match(dispatch, "listening on 127\\.0\\.0\\.1:([0-9]+)");
    REQUIRE(!dport.empty());
    const std::string at = "127.0.0.1:" + dport;
    auto relay = [&](const std::string& id, const std::string& region, const std::string& name) {
        return std::make_unique<process>(std::vector<std::string>{bin("onair-relay"), "--listen", "127.0.0.1:0", "--dispatch", at,
                                                                  "--node-id", id, "--region", region, "--cluster-secret-file",
                                                                  secret_file, "--seconds", "90", "--stats-every", "0.5"},
                                         dir, name);
    };
    std::map<std::string, std::unique_ptr<process>> relays;
    relays["A"] = relay("A", "us", "relay_A");
    relays["B"] = relay("B", "eu", "relay_B");
    relays["C"] = relay("C", "eu", "relay_C");
    std::map<std::string, std::string> media;
    for (auto& [id, p] : relays) {
        media[id] = output_match(*p, "listening on (127\\.0\\.0\\.1:[0-9]+)");
        REQUIRE(!media[id].empty());
    }
    const auto port = static_cast<unsigned short>(std::stoi(dport));
    REQUIRE(eventually([&] { return edges(port, "eu") == std::vector<std::string>{"B", "C", "A"}; }, 10s));

    process host({bin("onair-host"), "--relay", media["A"], "--stream", "cam", "--size", "320x180", "--fps", "15", "--bitrate", "300",
                  "--seconds", "40"},
                 dir, "host");
    std::this_thread::sleep_for(1500ms); // A reports the stream in a heartbeat
    const auto vdir = dir / "viewer";
    process viewer({bin("onair-viewer"), "--dispatch", at, "--region", "eu", "--stream", "cam", "--out", vdir.string(), "--seconds", "16",
                    "--stats-every", "0.1"},
                   dir, "viewer");
    REQUIRE(output_match(viewer, "edge ([A-Z]) at") == "B");
    // Playing from B: frames are rendered.
    REQUIRE(eventually([&] {
        const std::string out = viewer.out();
        const std::regex frames(" frames=([0-9]+)");
        std::string last;
        for (auto it = std::sregex_iterator(out.begin(), out.end(), frames); it != std::sregex_iterator(); ++it) last = (*it)[1];
        return !last.empty() && std::stoi(last) > 30;
    }, 10s));

    relays["B"]->signal(SIGKILL);
    const auto killed = std::chrono::steady_clock::now();
    REQUIRE(eventually([&] { return viewer.out().find("relay_moves=1") != std::string::npos; }, 5s));
    const double moved_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
    MESSAGE("the viewer moved to the next edge " << moved_s << " s after its edge was killed");
    CHECK(moved_s <= 3.0);
    // C serves it (pulled from A).
    REQUIRE(eventually([&] { return std::regex_search(relays["C"]->out(), std::regex("pulls=1")); }, 5s));

    REQUIRE(viewer.wait(30s) == 0);
    const std::string stats = read_file(vdir / "stats.json");
    INFO(stats);
    const double longest = json_number(stats, "longest_freeze_ms");
    MESSAGE("viewer: " << json_number(stats, "frames") << " frames, longest freeze " << longest << " ms, moves "
                       << json_number(stats, "relay_moves"));
    CHECK(json_number(stats, "relay_moves") == 1);
    CHECK(longest <= 3000);
    CHECK(json_number(stats, "decode_errors") == 0);
    CHECK(json_number(stats, "frames") >= 13 * 15); // ~15 s played, less the move

    // B restarted, nothing else touched: back in service, and it serves a new viewer.
    relays["B"] = relay("B", "eu", "relay_B2");
    REQUIRE(!output_match(*relays["B"], "listening on (127\\.0\\.0\\.1:[0-9]+)").empty());
    REQUIRE(eventually([&] {
        const auto e = edges(port, "eu");
        return !e.empty() && e.front() == "B";
    }, 10s));
    const auto v2dir = dir / "viewer2";
    process viewer2({bin("onair-viewer"), "--dispatch", at, "--region", "eu", "--stream", "cam", "--out", v2dir.string(), "--seconds", "4"},
                    dir, "viewer2");
    REQUIRE(viewer2.wait(30s) == 0);
    CHECK(viewer2.out().find("edge B at") != std::string::npos);
    const std::string stats2 = read_file(v2dir / "stats.json");
    CHECK(json_number(stats2, "frames") >= 2 * 15);
    CHECK(json_number(stats2, "decode_errors") == 0);

    host.signal(SIGTERM);
    host.wait(10s);
    for (auto& [id, p] : relays) {
        p->signal(SIGTERM);
        CHECK(p->wait(10s) == 0);
    }
    dispatch.signal(SIGTERM);
    dispatch.wait(10s);
}
