// onair — "IP:PORT" text for endpoints, as nodes advertise their addresses ("[v6]:PORT"
// for IPv6).
#pragma once

#include "onair/transport/concepts.hpp"

#include <asio/ip/address.hpp>

#include <optional>
#include <string>
#include <system_error>

namespace onair::transport {

/// The endpoint "IP:PORT" names; nullopt when it is not one (port 1..65535).
inline std::optional<endpoint> parse_address(const std::string& hostport) {
    const auto colon = hostport.rfind(':');
    if (colon == std::string::npos || colon + 1 == hostport.size() || hostport.size() - colon > 6) return std::nullopt;
    std::error_code ec;
    std::string host = hostport.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    const auto addr = asio::ip::make_address(host, ec);
    if (ec) return std::nullopt;
    unsigned port = 0;
    for (char ch : hostport.substr(colon + 1)) {
        if (ch < '0' || ch > '9') return std::nullopt;
        port = port * 10 + static_cast<unsigned>(ch - '0');
    }
    if (port == 0 || port > 65535) return std::nullopt;
    return endpoint(addr, static_cast<unsigned short>(port));
}

inline std::string to_address(const endpoint& e) {
    return (e.address().is_v6() ? "[" + e.address().to_string() + "]" : e.address().to_string()) + ":" + std::to_string(e.port());
}

} // namespace onair::transport
