// onair examples — running a program's io_context until SIGINT/SIGTERM or a deadline, with
// an optional periodic statistics line.
#pragma once

#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <functional>

namespace onair_examples {

inline std::chrono::steady_clock::duration seconds_to_duration(double s) {
    return std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(s));
}

/// Runs `io` until SIGINT/SIGTERM, or until `seconds` passed (0: no deadline), calling
/// `report` every `report_every` seconds (0: never). Returns when `io` stopped.
inline void run_until_stopped(asio::io_context& io, double seconds, double report_every, const std::function<void()>& report) {
    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](std::error_code ec, int) {
        if (!ec) io.stop();
    });
    asio::steady_timer deadline(io);
    if (seconds > 0) {
        deadline.expires_after(seconds_to_duration(seconds));
        deadline.async_wait([&](std::error_code ec) {
            if (!ec) io.stop();
        });
    }
    asio::steady_timer ticker(io);
    std::function<void()> arm = [&] {
        ticker.expires_after(seconds_to_duration(report_every));
        ticker.async_wait([&](std::error_code ec) {
            if (ec) return;
            report();
            arm();
        });
    };
    if (report_every > 0 && report) arm();
    io.run();
}

} // namespace onair_examples
