// Test support: an onair-relay process on 127.0.0.1 with an ephemeral port.
#pragma once

#include "support/process.hpp"

#include <asio/io_context.hpp>
#include <asio/ip/udp.hpp>

#include <memory>
#include <regex>

namespace onair_test {

/// Starts onair-relay --listen 127.0.0.1:0 (plus `extra` flags) and reads back its port.
struct relay_process {
    std::unique_ptr<process> proc;
    unsigned short port = 0;

    relay_process(const std::filesystem::path& dir, std::vector<std::string> extra = {}) {
        std::vector<std::string> argv{bin("onair-relay"), "--listen", "127.0.0.1:0"};
        argv.insert(argv.end(), extra.begin(), extra.end());
        proc = std::make_unique<process>(argv, dir, "relay");
        const std::regex re("listening on 127\\.0\\.0\\.1:([0-9]+)");
        std::smatch m;
        eventually([&] {
            const std::string out = proc->out();
            if (std::regex_search(out, m, re)) port = static_cast<unsigned short>(std::stoi(m[1]));
            return port != 0;
        }, std::chrono::seconds(10));
        if (!port) throw std::runtime_error("onair-relay did not report its port: " + proc->err());
    }
    std::string address() const { return "127.0.0.1:" + std::to_string(port); }
};

/// An even UDP port P on 127.0.0.1 with P..P+3 free right now (for RTP/RTCP pairs).
inline unsigned short free_port_block() {
    asio::io_context io;
    for (int attempt = 0; attempt < 200; ++attempt) {
        asio::ip::udp::socket probe(io, asio::ip::udp::endpoint(asio::ip::make_address_v4("127.0.0.1"), 0));
        unsigned short p = probe.local_endpoint().port();
        probe.close();
        p = static_cast<unsigned short>(p & ~1u);
        if (p < 1024 || p > 65000) continue;
        bool ok = true;
        std::vector<asio::ip::udp::socket> held;
        for (unsigned short i = 0; i < 4 && ok; ++i) {
            std::error_code ec;
            asio::ip::udp::socket s(io);
            s.open(asio::ip::udp::v4());
            s.bind(asio::ip::udp::endpoint(asio::ip::make_address_v4("127.0.0.1"), static_cast<unsigned short>(p + i)), ec);
            ok = !ec;
            held.push_back(std::move(s));
        }
        if (ok) return p;
    }
    throw std::runtime_error("no free UDP port block");
}

} // namespace onair_test
