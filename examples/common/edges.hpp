// onair examples — --dispatch IP:PORT [--region NAME]: the edges the RTC network's dispatch
// center offers, probed, best first (onair::dispatch::edge_selector), printed as chosen.
#pragma once

#include "common/cli.hpp"

#include <onair/dispatch/edge_selector.hpp>

#include <asio/io_context.hpp>

#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

namespace onair_examples {

/// Runs `io` until the selection is done (call before anything else uses `io`); throws
/// when the center names no edge.
inline std::vector<onair::dispatch::edge_candidate> choose_edges(const command_line& cli, asio::io_context& io, const char* program) {
    onair::dispatch::edge_selector_config ec;
    ec.dispatch = parse_endpoint(cli.get("dispatch"), "--dispatch");
    ec.region = cli.get("region", "default");
    onair::dispatch::edge_selector selector(ec, io);
    std::error_code failed;
    std::vector<onair::dispatch::edge_candidate> edges;
    selector.async_select([&](std::error_code e, std::vector<onair::dispatch::edge_candidate> c) {
        failed = e;
        edges = std::move(c);
    });
    io.run();
    io.restart();
    if (failed || edges.empty())
        throw std::runtime_error("no edge from the dispatch center: " + (failed ? failed.message() : std::string("none in service")));
    std::printf("%s: edge %s at %s (rtt %.2f ms)", program, edges.front().node.c_str(),
                onair::transport::to_address(edges.front().media).c_str(), edges.front().rtt_ms);
    for (std::size_t i = 1; i < edges.size(); ++i) std::printf(", then %s", edges[i].node.c_str());
    std::printf("\n");
    std::fflush(stdout);
    return edges;
}

} // namespace onair_examples
