// onair-bench-network — an RTC network on one machine, real processes throughout.
//
// onair-dispatch and five onair-relay nodes A..E. Every pair of nodes is joined by its own
// onair-netem instances with a fixed one-way delay (media and probes alike; see `links`), so
// the center measures the delays and routes over them. A host publishes at A (VP8 320x180
// at 15 fps, 300 kbit/s, plus Opus); viewers play at A (the baseline: no inter-node hop),
// at B (two of them), C, D, and one with --dispatch in E's region, which plays from E.
//
// Printed:
// - the route the center chose to each edge, its one-way link delay, and the direct link's;
// - per viewer, end-to-end video latency (render - capture, p50) and the latency each
//   inter-node hop added beyond its link's delay: (latency - baseline - link delays) / hops;
// - bytes per inter-node link over a measurement window, against the stream's rate (each
//   stream crosses each link once, however many watch it behind it);
// - after C (the middle of A -> C -> B) is killed: how long until the center routed round
//   it, and B's viewers' longest freeze;
// - after E is killed: how long until its viewer moved to the next edge, and its freeze.
#include "common/cli.hpp"

#include <nlohmann/json.hpp>

#include <asio/io_context.hpp>
#include <asio/ip/udp.hpp>

#include <array>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {
std::string bench_bin_dir() {
    return std::filesystem::read_symlink("/proc/self/exe").parent_path().string();
}
} // namespace
#define ONAIR_BIN_DIR bench_bin_dir()
#define ONAIR_TEST_DATA_DIR std::filesystem::temp_directory_path().string()
#include "support/process.hpp"

using namespace onair_examples;
using namespace onair_test;
using namespace std::chrono_literals;
using json = nlohmann::json;
using udp = asio::ip::udp;

namespace {

const std::vector<std::string> node_ids{"A", "B", "C", "D", "E"};
/// One-way delays in ms. A-B is long and A-C-B short (the route goes round); D is between
/// A and E.
const std::map<std::pair<std::string, std::string>, int> links{
    {{"A", "B"}, 80}, {{"A", "C"}, 20}, {{"B", "C"}, 20}, {{"A", "D"}, 30}, {{"A", "E"}, 90},
    {{"D", "E"}, 25}, {{"B", "D"}, 70}, {{"C", "D"}, 45}, {{"B", "E"}, 60}, {{"C", "E"}, 70},
};
int delay_of(const std::string& a, const std::string& b) {
    auto it = links.find({std::min(a, b), std::max(a, b)});
    return it == links.end() ? 0 : it->second;
}

unsigned short free_port() {
    asio::io_context io;
    udp::socket s(io, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    return s.local_endpoint().port();
}
std::string loopback(unsigned short p) { return "127.0.0.1:" + std::to_string(p); }

std::string wait_for(process& p, const std::string& pattern) {
    const std::string found = output_match(p, pattern);
    if (found.empty()) throw std::runtime_error("no '" + pattern + "' from a process: " + p.err());
    return found;
}

/// The last `key=N` in a program's statistics lines (-1: none yet).
double last_value(const std::string& out, const std::string& key) {
    const std::regex re(" " + key + "=([-0-9.]+)");
    double v = -1;
    for (auto it = std::sregex_iterator(out.begin(), out.end(), re); it != std::sregex_iterator(); ++it) v = std::stod((*it)[1]);
    return v;
}

json query(unsigned short port, json q) {
    asio::io_context io;
    udp::socket s(io, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    s.non_blocking(true);
    q["id"] = 1;
    s.send_to(asio::buffer(q.dump()), udp::endpoint(asio::ip::make_address("127.0.0.1"), port));
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
        if (ec) break;
        return json::parse(std::string_view(buf.data(), n), nullptr, false);
    }
    return nullptr;
}
std::vector<std::string> route_nodes(unsigned short port, const std::string& from, const std::string& to) {
    const json r = query(port, {{"type", "route"}, {"from", from}, {"to", to}});
    std::vector<std::string> out;
    if (r.is_object() && r.contains("route") && r["route"].is_object())
        for (const auto& n : r["route"]["nodes"]) out.push_back(n.get<std::string>());
    return out;
}
std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : "->") + x;
    return s;
}
int route_delay(const std::vector<std::string>& r) {
    int d = 0;
    for (std::size_t i = 0; i + 1 < r.size(); ++i) d += delay_of(r[i], r[i + 1]);
    return d;
}

struct viewer_run {
    std::string name, edge;
    std::unique_ptr<process> proc;
    std::filesystem::path out;
};

} // namespace

int main(int argc, char** argv) {
    command_line cli("onair-bench-network", "an RTC network of five relays over emulated links: routes, latency, bytes, failures",
                     {{"dir", "DIR", "scratch directory for the processes' output (default: a temporary one)"}});
    return guarded_main(cli, argc, argv, [&]() -> int {
        const std::filesystem::path dir = cli.has("dir") ? std::filesystem::path(cli.get("dir"))
                                                         : std::filesystem::temp_directory_path() / "onair-bench-network";
        std::filesystem::remove_all(dir);
        std::filesystem::create_directories(dir);
        std::ofstream(dir / "secret") << "bench-cluster-secret\n";
        const std::string secret_file = (dir / "secret").string();

        process dispatch({bin("onair-dispatch"), "--listen", "127.0.0.1:0", "--secret-file", secret_file, "--heartbeat-ms", "400",
                          "--seconds", "120"},
                         dir, "dispatch");
        const auto dport = static_cast<unsigned short>(std::stoi(wait_for(dispatch, "listening on 127\\.0\\.0\\.1:([0-9]+)")));

        // Every node's media and probe ports are chosen first, so the netems in front of
        // them can start before the nodes that use them.
        std::map<std::string, unsigned short> media_port, probe_port;
        for (const auto& id : node_ids) {
            media_port[id] = free_port();
            probe_port[id] = free_port();
        }
        std::vector<std::unique_ptr<process>> netems;
        std::map<std::pair<std::string, std::string>, std::string> via_media, via_probe; // (from, to) -> address
        std::map<std::pair<std::string, std::string>, process*> media_netem;              // (puller, upstream)
        for (const auto& x : node_ids)
            for (const auto& y : node_ids) {
                if (x == y) continue;
                const int d = delay_of(x, y);
                for (int probe = 0; probe < 2; ++probe) {
                    const unsigned short to = probe ? probe_port[y] : media_port[y];
                    auto n = std::make_unique<process>(
                        std::vector<std::string>{bin("onair-netem"), "--listen", "127.0.0.1:0", "--to", loopback(to), "--delay",
                                                 std::to_string(d), "--queue", "1000", "--seconds", "120", "--stats-every", "1"},
                        dir, "netem_" + x + y + (probe ? "_probe" : "_media"));
                    const std::string at = "127.0.0.1:" + wait_for(*n, "listening on 127\\.0\\.0\\.1:([0-9]+)");
                    (probe ? via_probe : via_media)[{x, y}] = at;
                    if (!probe) media_netem[{x, y}] = n.get();
                    netems.push_back(std::move(n));
                }
            }
        std::map<std::string, std::unique_ptr<process>> relays;
        for (const auto& id : node_ids) {
            std::vector<std::string> a{bin("onair-relay"), "--listen", loopback(media_port[id]), "--probe-port", std::to_string(probe_port[id]),
                                       "--dispatch", loopback(dport), "--node-id", id, "--region", id == "E" ? "south" : "north",
                                       "--cluster-secret-file", secret_file, "--seconds", "120", "--stats-every", "0.5"};
            for (const auto& peer : node_ids) {
                if (peer == id) continue;
                a.push_back("--via");
                a.push_back(peer + "=" + via_media[{id, peer}]);
                a.push_back("--probe-via");
                a.push_back(peer + "=" + via_probe[{id, peer}]);
            }
            relays[id] = std::make_unique<process>(a, dir, "relay_" + id);
            wait_for(*relays[id], "listening on (127\\.0\\.0\\.1:[0-9]+)");
        }
        std::printf("onair-bench-network: dispatch + %zu relays + %zu netems up\n", relays.size(), netems.size());
        std::fflush(stdout);
        // Routes settle once every link has been probed and reported a few times.
        if (!eventually([&] {
                for (const auto& to : {"B", "C", "D", "E"})
                    if (route_nodes(dport, "A", to).size() < 2) return false;
                return route_nodes(dport, "A", "B").size() == 3;
            }, 20s))
            std::printf("onair-bench-network: routes did not settle in 20 s (A->B is %s)\n", join(route_nodes(dport, "A", "B")).c_str());
        std::this_thread::sleep_for(3s);

        process host({bin("onair-host"), "--relay", loopback(media_port["A"]), "--stream", "cam", "--size", "320x180", "--fps", "15",
                      "--bitrate", "300", "--seconds", "60"},
                     dir, "host");
        std::this_thread::sleep_for(1500ms); // A reports the stream with a heartbeat
        std::vector<viewer_run> viewers;
        auto add_viewer = [&](const std::string& name, const std::string& edge, bool via_dispatch) {
            viewer_run v{name, edge, nullptr, dir / name};
            std::filesystem::create_directories(v.out);
            std::vector<std::string> a{bin("onair-viewer"), "--stream", "cam", "--out", v.out.string(), "--seconds", "40", "--stats-every", "0.2"};
            if (via_dispatch) {
                a.insert(a.end(), {"--dispatch", loopback(dport), "--region", "south"});
            } else {
                a.insert(a.end(), {"--relay", loopback(media_port[edge])});
            }
            v.proc = std::make_unique<process>(a, dir, name);
            viewers.push_back(std::move(v));
        };
        add_viewer("viewer_A", "A", false);
        add_viewer("viewer_B1", "B", false);
        add_viewer("viewer_B2", "B", false);
        add_viewer("viewer_C", "C", false);
        add_viewer("viewer_D", "D", false);
        add_viewer("viewer_E", "E", true);
        std::this_thread::sleep_for(8s);

        // Routes and latency.
        std::printf("\nroutes from the publisher's edge A (one-way link delays, ms):\n");
        std::printf("  %-4s %-14s %8s %8s\n", "to", "route", "route", "direct");
        std::map<std::string, std::vector<std::string>> routes;
        for (const auto& to : {"B", "C", "D", "E"}) {
            routes[to] = route_nodes(dport, "A", to);
            std::printf("  %-4s %-14s %8d %8d\n", to, join(routes[to]).c_str(), route_delay(routes[to]), delay_of("A", to));
        }
        routes["A"] = {"A"};
        // The measurement window: link bytes and the host's bytes over 5 s.
        auto link_bytes = [&] {
            std::map<std::pair<std::string, std::string>, double> b;
            for (const auto& [k, n] : media_netem) b[k] = last_value(n->out(), "bytes_delivered"); // the last line is 'down'
            return b;
        };
        // The stream's bytes as the viewer at A (no inter-node hop) receives them.
        auto host_bytes = [&] { return last_value(viewers.front().proc->out(), "bytes"); };
        const auto b0 = link_bytes();
        const double h0 = host_bytes();
        std::this_thread::sleep_for(5s);
        const auto b1 = link_bytes();
        const double h1 = host_bytes();
        std::map<std::string, double> latency;
        for (auto& v : viewers) latency[v.name] = last_value(v.proc->out(), "latency_p50");
        const double base = latency["viewer_A"];
        std::printf("\nend-to-end video latency (render - capture, p50; baseline: the viewer at A, %.1f ms):\n", base);
        std::printf("  %-10s %-5s %-12s %5s %10s %12s %12s %14s\n", "viewer", "edge", "route", "hops", "latency", "link delay",
                    "direct link", "added per hop");
        for (auto& v : viewers) {
            const auto& r = routes[v.edge];
            const int hops = static_cast<int>(r.size()) - 1;
            const double added = hops > 0 ? (latency[v.name] - base - route_delay(r)) / hops : 0.0;
            std::printf("  %-10s %-5s %-12s %5d %8.1fms %10dms %10dms %12.2fms\n", v.name.c_str(), v.edge.c_str(), join(r).c_str(), hops,
                        latency[v.name], route_delay(r), delay_of("A", v.edge), added);
        }
        std::printf("\nbytes per inter-node link in 5 s (media direction; the viewer at A received %.0f bytes of the stream meanwhile):\n", h1 - h0);
        std::printf("  %-8s %12s %10s\n", "link", "bytes", "x stream");
        for (const auto& [k, b] : b1) {
            const double d = b - b0.at(k);
            if (d < 1000) continue; // feedback only
            std::printf("  %s->%-5s %12.0f %10.2f\n", k.second.c_str(), k.first.c_str(), d, (h1 - h0) > 0 ? d / (h1 - h0) : 0.0);
        }

        // Failure 1: the middle of A -> C -> B.
        relays["C"]->signal(SIGKILL);
        const auto killed_c = std::chrono::steady_clock::now();
        eventually([&] { const auto r = route_nodes(dport, "A", "B"); return !r.empty() && r != routes["B"]; }, 10s);
        const double reroute_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_c).count();
        std::printf("\nC killed: the center routed A->B as %s after %.2f s (target 2 s)\n", join(route_nodes(dport, "A", "B")).c_str(),
                    reroute_s);
        std::this_thread::sleep_for(6s);

        // Failure 2: the edge of the viewer that chose its edge.
        const std::string e_edge = "E";
        relays[e_edge]->signal(SIGKILL);
        const auto killed_e = std::chrono::steady_clock::now();
        process& ve = *viewers.back().proc;
        eventually([&] { return last_value(ve.out(), "relay_moves") >= 1; }, 10s);
        const double moved_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_e).count();
        std::printf("E killed: its viewer moved to the next edge after %.2f s (target 3 s)\n", moved_s);

        for (auto& v : viewers) v.proc->wait(60s);
        std::printf("\nviewers at the end:\n  %-10s %8s %12s %10s %8s\n", "viewer", "frames", "longest", "decode", "moves");
        for (auto& v : viewers) {
            const std::string stats = read_file(v.out / "stats.json");
            if (stats.empty()) {
                std::printf("  %-10s (no stats: %s)\n", v.name.c_str(), v.proc->err().c_str());
                continue;
            }
            std::printf("  %-10s %8.0f %10.0fms %10.0f %8.0f\n", v.name.c_str(), json_number(stats, "frames"),
                        json_number(stats, "longest_freeze_ms"), json_number(stats, "decode_errors"), json_number(stats, "relay_moves"));
        }
        host.signal(SIGTERM);
        host.wait(10s);
        for (auto& [id, r] : relays) r->signal(SIGTERM);
        for (auto& n : netems) n->signal(SIGTERM);
        dispatch.signal(SIGTERM);
        return 0;
    });
}
