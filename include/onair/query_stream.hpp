// onair — query_stream: asks a relay node what a stream is (codecs, SSRCs) before playing it,
// so a program can pick the viewer type whose codecs match.
#pragma once

#include "onair/core/random.hpp"
#include "onair/rtp/session_message.hpp"
#include "onair/transport/concepts.hpp"

#include <asio/io_context.hpp>
#include <asio/ip/udp.hpp>

#include <array>
#include <chrono>
#include <functional>
#include <optional>
#include <string>

namespace onair {

/// Sends play hellos for `stream` to `relay` every 100 ms until the relay describes the
/// live stream or `timeout` passes; then says leave. Blocks the calling thread. `ticket`:
/// the room service's play ticket, for relays that admit only ticketed hellos.
inline std::optional<rtp::stream_description> query_stream(const transport::endpoint& relay, const std::string& stream,
                                                           std::chrono::milliseconds timeout, const std::string& ticket = {}) {
    asio::io_context io(1);
    asio::ip::udp::socket socket(io, relay.protocol());
    socket.bind(transport::endpoint(relay.protocol(), 0));
    rtp::session_message hello;
    hello.type = rtp::session_type::play;
    hello.sender_ssrc = detail::random_u32();
    hello.stream.name = stream;
    hello.ticket = ticket;
    std::array<std::uint8_t, 512> out;
    std::array<std::uint8_t, 2048> in;
    transport::endpoint from;
    std::optional<rtp::stream_description> result;

    std::function<void()> receive = [&] {
        socket.async_receive_from(asio::buffer(in), from, [&](std::error_code ec, std::size_t n) {
            if (ec) return;
            rtp::session_message m;
            if (from == relay && !rtp::parse_session_message(rtp::bytes_view(in.data(), n), m) &&
                m.type == rtp::session_type::ack && m.status == rtp::session_status::ok && m.stream.name == stream) {
                result = m.stream;
                io.stop();
                return;
            }
            receive();
        });
    };
    receive();
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!result && std::chrono::steady_clock::now() < deadline) {
        std::error_code ec;
        if (const std::size_t n = rtp::write_session_message(hello, out)) socket.send_to(asio::buffer(out.data(), n), relay, 0, ec);
        io.run_for(std::chrono::milliseconds(100));
        if (io.stopped() && !result) io.restart();
    }
    hello.type = rtp::session_type::leave;
    std::error_code ec;
    if (const std::size_t n = rtp::write_session_message(hello, out)) socket.send_to(asio::buffer(out.data(), n), relay, 0, ec);
    return result;
}

} // namespace onair
