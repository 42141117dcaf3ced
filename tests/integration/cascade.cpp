// Relays cascading a stream along the dispatch center's routes, all real processes:
// onair-dispatch, three onair-relay nodes A, B, C, onair-netem on the A -> B link, a host
// publishing at A and two viewers playing at B.
//
// - The route starts direct (A -> B); B pulls the stream from A once for both viewers.
// - The A -> B link slows to 80 ms RTT mid-run (netem restarted with a delay): the route
//   moves to A -> C -> B, B moves its pull to C, C pulls from A.
// - C is killed with SIGKILL: the center routes round it within 2 s, B pulls from A again,
//   and the viewers freeze for at most 3 s and go on from a key frame.
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

/// Starts a process and waits for `pattern` in its output; returns the first capture.
std::string start_and_read(std::unique_ptr<process>& p, std::vector<std::string> argv, const std::filesystem::path& dir,
                           const std::string& name, const std::string& pattern) {
    p = std::make_unique<process>(argv, dir, name);
    const std::string found = output_match(*p, pattern);
    INFO(name << ": " << p->err());
    REQUIRE(!found.empty());
    return found;
}

/// Unsigned queries to the center from a socket of the test's.
struct center_client {
    asio::io_context io;
    udp::socket socket{io, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};
    udp::endpoint center;
    int id = 0;
    explicit center_client(unsigned short port) : center(asio::ip::make_address("127.0.0.1"), port) { socket.non_blocking(true); }
    json route(const std::string& from, const std::string& to) {
        socket.send_to(asio::buffer(json{{"type", "route"}, {"from", from}, {"to", to}, {"id", ++id}}.dump()), center);
        const auto end = std::chrono::steady_clock::now() + 1s;
        std::array<char, 65536> buf;
        while (std::chrono::steady_clock::now() < end) {
            udp::endpoint from_ep;
            std::error_code ec;
            const std::size_t n = socket.receive_from(asio::buffer(buf), from_ep, 0, ec);
            if (ec == asio::error::would_block) {
                std::this_thread::sleep_for(2ms);
                continue;
            }
            if (ec) break;
            json m = json::parse(std::string_view(buf.data(), n), nullptr, false);
            if (m.is_object() && m.value("id", 0) == id) return m.value("route", json(nullptr));
        }
        return nullptr;
    }
    json nodes_of(const std::string& from, const std::string& to) {
        const json r = route(from, to);
        return r.is_object() ? r.value("nodes", json(nullptr)) : json(nullptr);
    }
};

/// The last value of `key=N` in a relay's statistics lines.
std::uint64_t last_counter(const std::string& out, const std::string& key) {
    const std::regex re(key + "=([0-9]+)");
    std::uint64_t v = 0;
    for (auto it = std::sregex_iterator(out.begin(), out.end(), re); it != std::sregex_iterator(); ++it) v = std::stoull((*it)[1]);
    return v;
}

} // namespace

TEST_CASE("relays cascade a stream along the center's routes, move it when a link slows, and route round a killed relay") {
    const auto dir = scratch_dir("cascade");
    std::ofstream(dir / "secret") << secret << "\n";
    const std::string secret_file = (dir / "secret").string();

    std::unique_ptr<process> dispatch;
    const std::string dport = start_and_read(dispatch, {bin("onair-dispatch"), "--listen", "127.0.0.1:0", "--secret-file", secret_file,
                                                        "--heartbeat-ms", "400", "--seconds", "90"},
                                             dir, "dispatch", "listening on 127\\.0\\.0\\.1:([0-9]+)");
    const std::string at = "127.0.0.1:" + dport;
    auto relay_argv = [&](const std::string& id, std::vector<std::string> extra) {
        std::vector<std::string> argv{bin("onair-relay"), "--listen", "127.0.0.1:0", "--dispatch", at, "--node-id", id,
                                      "--region", "eu", "--cluster-secret-file", secret_file, "--seconds", "90", "--stats-every", "0.5"};
        argv.insert(argv.end(), extra.begin(), extra.end());
        return argv;
    };
    std::map<std::string, std::unique_ptr<process>> relays;
    std::map<std::string, std::string> media;
    const std::string joined = "listening on (127\\.0\\.0\\.1:[0-9]+)";
    media["B"] = start_and_read(relays["B"], relay_argv("B", {}), dir, "relay_B", joined);
    media["C"] = start_and_read(relays["C"], relay_argv("C", {}), dir, "relay_C", joined);
    const std::string b_probe = output_match(*relays["B"], "probe (127\\.0\\.0\\.1:[0-9]+)");
    REQUIRE(!b_probe.empty());

    // A measures its link to B through onair-netem (A's probes to B cross it); the netem is
    // restarted on the same port to change the link's delay.
    unsigned short netem_port = 0;
    {
        asio::io_context io;
        udp::socket s(io, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
        netem_port = s.local_endpoint().port();
    }
    const std::string netem_at = "127.0.0.1:" + std::to_string(netem_port);
    auto start_netem = [&](const std::string& delay) {
        std::unique_ptr<process> n;
        start_and_read(n, {bin("onair-netem"), "--listen", netem_at, "--to", b_probe, "--delay", delay, "--seconds", "90"}, dir,
                       "netem_" + delay, "(listening) on");
        return n;
    };
    auto netem = start_netem("0");
    media["A"] = start_and_read(relays["A"], relay_argv("A", {"--probe-via", "B=" + netem_at}), dir, "relay_A", joined);

    center_client center(static_cast<unsigned short>(std::stoi(dport)));
    // Every node measured: the route from A to B is the direct link.
    REQUIRE(eventually([&] { return center.nodes_of("A", "B") == json::array({"A", "B"}) && center.nodes_of("A", "C").is_array() &&
                                    center.nodes_of("C", "B").is_array(); }, 10s));

    // The host publishes at A; two viewers play at B.
    std::unique_ptr<process> host = std::make_unique<process>(
        std::vector<std::string>{bin("onair-host"), "--relay", media["A"], "--stream", "cam", "--size", "320x180", "--fps", "15",
                                 "--bitrate", "300", "--seconds", "30"},
        dir, "host");
    std::this_thread::sleep_for(1500ms); // A reports the stream in a heartbeat
    std::vector<std::unique_ptr<process>> viewers;
    for (int i = 0; i < 2; ++i) {
        std::filesystem::create_directories(dir / ("viewer" + std::to_string(i)));
        viewers.push_back(std::make_unique<process>(
            std::vector<std::string>{bin("onair-viewer"), "--relay", media["B"], "--stream", "cam", "--out",
                                     (dir / ("viewer" + std::to_string(i))).string(), "--seconds", "22"},
            dir, "viewer" + std::to_string(i)));
    }

    // B pulls once from A for both viewers.
    REQUIRE(eventually([&] { return last_counter(relays["B"]->out(), "pulls") == 1 && last_counter(relays["A"]->out(), "relay_legs") >= 1; }, 10s));
    std::this_thread::sleep_for(3s);
    {
        const std::string a = relays["A"]->out(), b = relays["B"]->out();
        CHECK(last_counter(b, "pulls_started") == 1);
        // A forwards one copy (to B); B forwards two (to the viewers).
        const double a_bytes = static_cast<double>(last_counter(a, "bytes_forwarded"));
        const double b_bytes = static_cast<double>(last_counter(b, "bytes_forwarded"));
        MESSAGE("forwarded so far: A " << a_bytes << " bytes, B " << b_bytes << " bytes");
        CHECK(b_bytes > 1.6 * a_bytes);
        CHECK(last_counter(relays["C"]->out(), "relay_legs") == 0);
    }

    // The A -> B link slows: the route moves through C, and so does the stream.
    netem->signal(SIGKILL);
    netem->wait(5s);
    netem = start_netem("40");
    const auto slowed = std::chrono::steady_clock::now();
    REQUIRE(eventually([&] { return center.nodes_of("A", "B") == json::array({"A", "C", "B"}); }, 10s));
    MESSAGE("route moved through C " << std::chrono::duration<double>(std::chrono::steady_clock::now() - slowed).count()
                                     << " s after the link slowed");
    REQUIRE(eventually([&] { return last_counter(relays["B"]->out(), "upstream_switches") >= 1 &&
                                    last_counter(relays["C"]->out(), "relay_legs") >= 1; }, 5s));
    std::this_thread::sleep_for(3s);
    {
        // C now carries the stream: it forwards to B; B still one pull.
        const auto c0 = last_counter(relays["C"]->out(), "bytes_forwarded");
        std::this_thread::sleep_for(1s);
        CHECK(last_counter(relays["C"]->out(), "bytes_forwarded") > c0 + 10'000);
        CHECK(last_counter(relays["B"]->out(), "pulls") == 1);
    }

    // C dies mid-route: routed round within 2 s, B pulls from A again.
    relays["C"]->signal(SIGKILL);
    const auto killed = std::chrono::steady_clock::now();
    REQUIRE(eventually([&] { return center.nodes_of("A", "B") == json::array({"A", "B"}); }, 10s));
    const double reroute_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
    MESSAGE("re-routed " << reroute_s << " s after the middle relay was killed");
    CHECK(reroute_s <= 2.0);
    REQUIRE(eventually([&] { return last_counter(relays["B"]->out(), "upstream_switches") >= 2; }, 5s));

    for (auto& v : viewers) REQUIRE(v->wait(40s) == 0);
    for (int i = 0; i < 2; ++i) {
        const std::string stats = read_file(dir / ("viewer" + std::to_string(i)) / "stats.json");
        INFO("viewer " << i << ": " << stats);
        const double frames = json_number(stats, "frames");
        const double longest = json_number(stats, "longest_freeze_ms");
        MESSAGE("viewer " << i << ": " << frames << " frames, longest freeze " << longest << " ms, decode errors "
                          << json_number(stats, "decode_errors"));
        CHECK(longest <= 3000);
        CHECK(json_number(stats, "decode_errors") == 0);
        // About 19 s of 15 fps played across both moves (the first second or so is the start).
        CHECK(frames >= 15 * 15);
    }
    host->signal(SIGTERM);
    host->wait(10s);
    for (auto& [id, r] : relays) {
        if (id == "C") continue;
        r->signal(SIGTERM);
        CHECK(r->wait(10s) == 0);
    }
    const std::string b = relays["B"]->out();
    CHECK(last_counter(b, "relay_refused") == 0);
    CHECK(last_counter(relays["A"]->out(), "relay_refused") == 0);
    dispatch->signal(SIGTERM);
    dispatch->wait(10s);
    netem->signal(SIGTERM);
    netem->wait(10s);
}
