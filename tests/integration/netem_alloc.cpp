// emulated_link in real time allocates nothing per datagram once warmed up: both directions
// impaired (loss, duplication, delay + jitter, bottleneck), counted by replacing the global
// operator new. A separate executable, so the replacement affects no other test.
#include <onair/transport/emulated_link.hpp>
#include <onair/transport/null.hpp>

#include "support/counting_new.hpp"

#include <doctest/doctest.h>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>

using onair_test::allocations;

using namespace std::chrono_literals;
using namespace onair::transport;

namespace {

/// A transport whose datagrams the test injects: sends vanish (counted), receives complete
/// when inject() is called, inline (the caller is itself a completion handler).
class injector {
public:
    using executor_type = asio::io_context::executor_type;
    explicit injector(asio::io_context& io) : ex_(io.get_executor()) {}
    executor_type get_executor() const noexcept { return ex_; }
    template <class Buffers>
    std::error_code send_to(const Buffers& b, const endpoint&) {
        ++stats_.datagrams_sent;
        stats_.bytes_sent += asio::buffer_size(b);
        return {};
    }
    template <class Handler>
    void async_receive_from(asio::mutable_buffer into, endpoint& from, Handler&& h) {
        into_ = into;
        from_ = &from;
        pending_.emplace(std::forward<Handler>(h));
    }
    endpoint local_endpoint() const { return {}; }
    void close() {
        if (pending_) pending_.reset();
    }
    const transport_stats& stats() const noexcept { return stats_; }

    bool inject(const std::uint8_t* data, std::size_t n, const endpoint& from) {
        if (!pending_) return false;
        std::memcpy(into_.data(), data, std::min(n, into_.size()));
        *from_ = from;
        ++stats_.datagrams_received;
        pending_.take_and_call(std::error_code{}, n);
        return true;
    }

private:
    executor_type ex_;
    asio::mutable_buffer into_;
    endpoint* from_ = nullptr;
    detail::small_handler<void(std::error_code, std::size_t)> pending_;
    transport_stats stats_;
};

} // namespace

TEST_CASE("emulated_link: no allocation per datagram in steady state (real time, both directions)") {
    asio::io_context io(1);
    link_config cfg;
    cfg.seed = 5;
    for (direction_config* d : {&cfg.send, &cfg.receive}) {
        d->loss_percent = 10;
        d->mean_burst = 2;
        d->duplicate_percent = 5;
        d->delay = 3ms;
        d->jitter = 1ms;
        d->rate_kbps = 50'000;
    }
    emulated_link<injector> link(cfg, io);
    const endpoint peer(asio::ip::make_address_v4("127.0.0.1"), 5000);

    std::array<std::uint8_t, 1500> rbuf{};
    endpoint rfrom;
    std::uint64_t received = 0;
    std::function<void()> receive = [&] {
        link.async_receive_from(asio::buffer(rbuf), rfrom, [&](std::error_code ec, std::size_t) {
            if (ec) return;
            ++received;
            receive();
        });
    };
    receive();

    std::array<std::uint8_t, 1200> payload{};
    asio::steady_timer tick(io);
    int ticks = 0;
    std::uint64_t at_warm = 0;
    constexpr int warm_ticks = 400, total_ticks = 2400;
    std::function<void()> arm = [&] {
        tick.expires_after(250us);
        tick.async_wait([&](std::error_code ec) {
            if (ec) return;
            ++ticks;
            // A burst early on grows the pool and the delay lines beyond any later backlog.
            const int n = ticks == 50 ? 100 : 1;
            for (int i = 0; i < n; ++i) {
                link.send_to(asio::buffer(payload), peer);
                link.next_layer().inject(payload.data(), payload.size(), peer);
            }
            if (ticks == warm_ticks) at_warm = allocations.load();
            if (ticks < total_ticks) arm();
            else io.stop();
        });
    };
    arm();
    io.run_for(30s);
    const std::uint64_t during = allocations.load() - at_warm;
    const auto tx = link.send_stats(), rx = link.receive_stats();
    MESSAGE("steady state: ", total_ticks - warm_ticks, " ticks, ", tx.sent, " sent / ", tx.delivered, " released, ",
            rx.sent, " arrived / ", rx.delivered, " received; allocations after warm-up: ", during);
    REQUIRE(ticks == total_ticks);
    CHECK(tx.dropped_loss > 0);
    CHECK(tx.duplicated > 0);
    CHECK(rx.delivered == received);
    CHECK(during == 0);
}
