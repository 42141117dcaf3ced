// onair-netem as a real process between two plain UDP sockets on 127.0.0.1: measured loss
// and delay in both directions, the bandwidth bottleneck, counters on exit, and bad flags.
#include "support/netem_process.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <csignal>
#include <regex>
#include <vector>

using namespace onair_test;
using namespace std::chrono_literals;

namespace {

double percentile(std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
}
std::vector<double> values(const std::map<std::uint32_t, double>& m) {
    std::vector<double> v;
    for (const auto& [seq, d] : m) v.push_back(d);
    return v;
}
std::uint64_t counter(const std::string& out, const std::string& dir, const std::string& name) {
    const std::regex re("onair-netem: " + dir + " .*\\b" + name + "=([0-9]+)");
    std::smatch m;
    std::string last;
    for (auto it = std::sregex_iterator(out.begin(), out.end(), re); it != std::sregex_iterator(); ++it) last = (*it)[1];
    return last.empty() ? ~std::uint64_t{0} : std::stoull(last);
}

} // namespace

TEST_CASE("onair-netem: 20% loss and 30 ms delay, measured in both directions") {
    const auto dir = scratch_dir("netem_loss_delay");
    raw_udp client, server;
    netem_process netem(dir, {"--to", "127.0.0.1:" + std::to_string(server.port()), "--loss", "20", "--delay", "30",
                              "--seed", "7"});
    const sockaddr_in front = raw_udp::loopback(netem.port);
    constexpr std::uint32_t n = 2000;

    // Up: client -> netem -> server.
    collector at_server(server);
    send_numbered(client, front, n, 200, 1000us);
    std::this_thread::sleep_for(400ms);
    at_server.stop();
    const auto up = at_server.delays();
    const sockaddr_in client_side = at_server.last_source(); // netem's socket for this client

    // Down: server -> netem (the client's socket) -> client.
    collector at_client(client);
    send_numbered(server, client_side, n, 200, 1000us);
    std::this_thread::sleep_for(400ms);
    at_client.stop();
    const auto down = at_client.delays();

    netem.proc->signal(SIGTERM);
    const auto rc = netem.proc->wait(10s);
    const std::string out = netem.proc->out();
    REQUIRE(rc.has_value());
    CHECK(*rc == 0);

    for (const auto& [name, got] : {std::pair{std::string("up"), up}, std::pair{std::string("down"), down}}) {
        CAPTURE(name);
        REQUIRE(got.size() > 100);
        const auto d = values(got);
        const double loss = 100.0 * (1.0 - static_cast<double>(got.size()) / n);
        const double lo = *std::min_element(d.begin(), d.end()), med = percentile(d, 0.5), p95 = percentile(d, 0.95);
        MESSAGE(name, ": loss ", loss, "% (configured 20), delay min ", lo, " median ", med, " p95 ", p95,
                " ms (configured 30)");
        CHECK(loss > 15.0);
        CHECK(loss < 25.0);
        CHECK(lo >= 29.9);  // never early: the timer cannot fire before the release instant
        CHECK(med < 130.0); // generous for a loaded machine
        CHECK(counter(out, name, "sent") == n);
        CHECK(counter(out, name, "lost") + got.size() >= n - 5); // nothing else lost on loopback
        CHECK(counter(out, name, "lost") + got.size() <= n);
    }
    CHECK(out.find("clients_total=1") != std::string::npos);
}

TEST_CASE("onair-netem: a 400 kbit/s bottleneck caps throughput and bounds queueing") {
    const auto dir = scratch_dir("netem_rate");
    raw_udp client, server;
    netem_process netem(dir, {"--to", "127.0.0.1:" + std::to_string(server.port()), "--rate-up", "400", "--queue-up",
                              "50", "--seconds", "30"});
    collector at_server(server);
    // 1000-byte datagrams every 10 ms: 800 kbit/s offered for 2 s.
    const auto start = std::chrono::steady_clock::now();
    send_numbered(client, raw_udp::loopback(netem.port), 200, 1000, 10'000us);
    const double sending_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::this_thread::sleep_for(300ms);
    at_server.stop();
    const double kbps = static_cast<double>(at_server.bytes()) * 8.0 / 1000.0 / (sending_s + 0.1);
    const auto d = values(at_server.delays());
    REQUIRE(!d.empty());
    const double worst = *std::max_element(d.begin(), d.end());
    MESSAGE("400 kbit/s bottleneck, 800 offered: ", kbps, " kbit/s received over ", sending_s, " s, ",
            at_server.datagrams(), "/200 datagrams, worst delay ", worst, " ms");
    CHECK(kbps < 400.0 * 1.1);
    CHECK(kbps > 400.0 * 0.7);
    CHECK(at_server.datagrams() < 150);
    CHECK(percentile(d, 0.5) < 50.0 + 100.0); // queue bound (50 ms) plus generous scheduling slack
    netem.proc->signal(SIGINT);
    const auto rc = netem.proc->wait(10s);
    REQUIRE(rc.has_value());
    CHECK(*rc == 0);
    const std::string out = netem.proc->out();
    CHECK(counter(out, "up", "queue_dropped") > 40);
    CHECK(counter(out, "down", "sent") == 0);
}

TEST_CASE("onair-netem: --seconds stops it, --help succeeds, bad flags exit 2") {
    const auto dir = scratch_dir("netem_flags");
    std::string out, err;
    CHECK(run({bin("onair-netem"), "--help"}, dir, "help", 10s, &out) == 0);
    CHECK(out.find("--loss-up") != std::string::npos);
    CHECK(run({bin("onair-netem"), "--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--seconds", "0.3"}, dir, "seconds",
              10s, &out) == 0);
    CHECK(out.find("listening on 127.0.0.1:") != std::string::npos);
    CHECK(out.find("onair-netem: up sent=0") != std::string::npos);

    const std::vector<std::vector<std::string>> bad = {
        {"--listen", "127.0.0.1:0"},                                   // no --to
        {"--to", "127.0.0.1:9"},                                       // no --listen
        {"--listen", "localhost:0", "--to", "127.0.0.1:9"},            // not an IP
        {"--listen", "127.0.0.1:0", "--to", "127.0.0.1:0"},            // target port 0
        {"--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--loss", "150"},
        {"--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--loss", "abc"},
        {"--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--delay", "-5"},
        {"--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--burst", "0.5"},
        {"--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--loss", "60", "--burst", "1.2"},
        {"--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--distribution", "cauchy"},
        {"--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--schedule", "5:100,1:200"},
        {"--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--reorder=yes"},
        {"--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--bogus", "1"},
    };
    int i = 0;
    for (auto args : bad) {
        args.insert(args.begin(), bin("onair-netem"));
        CAPTURE(args);
        CHECK(run(args, dir, "bad" + std::to_string(i++), 10s, nullptr, &err) == 2);
        CHECK(err.find("error:") != std::string::npos);
    }
}
