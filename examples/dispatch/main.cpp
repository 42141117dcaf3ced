// onair-dispatch — the dispatch center of an RTC network, on one UDP port.
//
// Relay nodes register with it (signed with the cluster's secret), send heartbeats with
// their load and report the links they measure to each other. Clients ask it for edges;
// relays ask it for the route of a stream, and it tells them when a route moves: a link
// slowed down, or a node stopped answering and was taken out.
#include "common/cli.hpp"
#include "common/run_loop.hpp"

#include <onair/dispatch/dispatch_service.hpp>
#include <onair/transport/udp.hpp>

#include <asio/io_context.hpp>

#include <cstdio>

using namespace onair_examples;

int main(int argc, char** argv) {
    command_line cli("onair-dispatch", "dispatch center: edges for clients, routes for streams",
                     {{"listen", "IP:PORT", "UDP address to serve on (required; port 0 picks one)"},
                      {"secret-file", "FILE", "the cluster's secret, which signs node messages (required)"},
                      {"heartbeat-ms", "N", "nodes heartbeat this often; 3 missed take a node out (default 500)"},
                      {"seconds", "N", "stop after N seconds (default: run until SIGINT/SIGTERM)"},
                      {"stats-every", "SEC", "print a statistics line every SEC seconds"}});
    return guarded_main(cli, argc, argv, [&]() -> int {
        const auto listen = parse_endpoint(cli.require("listen"), "--listen");
        onair::dispatch::dispatch_service_config cfg;
        cfg.secret = read_secret_file(cli.require("secret-file"), "--secret-file");
        cfg.center.heartbeat_ms = cli.number<std::int64_t>("heartbeat-ms", 500, 50, 60'000);
        const double seconds = cli.number<double>("seconds", 0, 0, 1e9);
        const double stats_every = cli.number<double>("stats-every", 0, 0, 1e6);

        asio::io_context io(1);
        onair::dispatch::dispatch_service<onair::transport::udp> service(std::move(cfg), io, listen);
        service.start();
        std::printf("onair-dispatch: listening on %s:%u\n", service.local_endpoint().address().to_string().c_str(),
                    service.local_endpoint().port());
        std::fflush(stdout);
        auto report = [&] {
            const auto& c = service.state().stats();
            const auto& s = service.stats();
            std::printf("onair-dispatch: nodes=%zu registered=%llu heartbeats=%llu link_reports=%llu forged=%llu replayed=%llu "
                        "stale=%llu unknown=%llu expired=%llu reroutes=%llu pushes=%llu acks=%llu malformed=%llu\n",
                        service.state().nodes().size(), (unsigned long long)c.registered, (unsigned long long)c.heartbeats,
                        (unsigned long long)c.link_reports, (unsigned long long)c.refused_forged,
                        (unsigned long long)c.refused_replayed, (unsigned long long)c.refused_stale,
                        (unsigned long long)c.refused_unknown, (unsigned long long)c.nodes_expired,
                        (unsigned long long)c.reroutes, (unsigned long long)s.pushes, (unsigned long long)s.acks,
                        (unsigned long long)s.malformed);
            std::fflush(stdout);
        };
        run_until_stopped(io, seconds, stats_every, report);
        report();
        return 0;
    });
}
