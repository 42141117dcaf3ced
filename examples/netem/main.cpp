// onair-netem — a UDP impairment proxy: netem for machines whose kernel has none.
//
// Clients send to --listen; each client gets its own socket towards --to, so replies come
// back to the client that caused them. Both directions cross one emulated_link (the same
// code the library's tests use), facing the clients:
//   up    client -> target   (the link's receive direction)
//   down  target -> client   (the link's send direction)
// Every impairment flag applies to both directions; FLAG-up / FLAG-down override it for
// one. Both directions, like a shared access link, are common to all clients.
// Datagrams are limited to 1500 bytes (onair::max_datagram_size).
#include "common/cli.hpp"
#include "common/run_loop.hpp"

#include <onair/transport/emulated_link.hpp>
#include <onair/transport/udp.hpp>

#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>

#include <array>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>

using namespace onair_examples;
namespace tr = onair::transport;

namespace {

// Flags that exist as --X, --X-up and --X-down.
const std::vector<std::pair<std::string, std::pair<std::string, std::string>>> directional = {
    {"loss", {"PCT", "random loss in percent (default 0)"}},
    {"burst", {"MEAN", "mean loss burst length in datagrams: Gilbert-Elliott bursts (default: independent)"}},
    {"delay", {"MS", "fixed one-way delay in milliseconds (default 0)"}},
    {"jitter", {"MS", "jitter around the delay in milliseconds (default 0)"}},
    {"rate", {"KBPS", "bottleneck rate in kbit/s (default: unlimited)"}},
    {"queue", {"MS", "drop-tail queue before the bottleneck, in ms at its rate (default 100)"}},
    {"schedule", {"S:KBPS,...", "capacity steps: from S seconds after start the rate is KBPS (0 = unlimited)"}},
    {"duplicate", {"PCT", "duplicated datagrams in percent (default 0)"}},
};

std::vector<option_spec> options() {
    std::vector<option_spec> o{
        {"listen", "IP:PORT", "UDP address clients send to (required; port 0 picks one)"},
        {"to", "IP:PORT", "where datagrams are forwarded (required)"},
    };
    for (const auto& [name, d] : directional) o.push_back({name, d.first, d.second});
    o.push_back({"distribution", "uniform|normal", "jitter distribution (default uniform; normal: sigma = jitter)"});
    o.push_back({"reorder", "", "let jitter reorder datagrams (default: keep order)"});
    o.push_back({"bucket", "BYTES", "token bucket depth of the bottleneck (default 0)"});
    o.push_back({"seed", "N", "random seed: same seed, same impairments (default 1)"});
    o.push_back({"idle", "SEC", "forget a client after SEC seconds of silence (default 60)"});
    o.push_back({"seconds", "N", "stop after N seconds (default: run until SIGINT/SIGTERM)"});
    o.push_back({"stats-every", "SEC", "print counters every SEC seconds"});
    for (const auto& [name, d] : directional) {
        o.push_back({name + "-up", d.first, "--" + name + " for client -> target only"});
        o.push_back({name + "-down", d.first, "--" + name + " for target -> client only"});
    }
    return o;
}

std::chrono::microseconds millis(double ms) {
    return std::chrono::microseconds(static_cast<std::int64_t>(ms * 1000.0 + 0.5));
}

std::vector<tr::rate_step> parse_schedule(const std::string& text, const std::string& what) {
    std::vector<tr::rate_step> steps;
    std::size_t pos = 0;
    while (pos <= text.size()) {
        const std::size_t comma = std::min(text.find(',', pos), text.size());
        const std::string item = text.substr(pos, comma - pos);
        const std::size_t colon = item.find(':');
        if (colon == std::string::npos) throw usage_error(what + ": expected S:KBPS, got '" + item + "'");
        const double at = command_line::parse_number<double>(item.substr(0, colon), what + " offset", 0, 1e7);
        const double kbps = command_line::parse_number<double>(item.substr(colon + 1), what + " rate", 0, 1e8);
        if (!steps.empty() && millis(at * 1000) < steps.back().at) throw usage_error(what + ": offsets must not decrease");
        steps.push_back({millis(at * 1000), kbps});
        pos = comma + 1;
    }
    return steps;
}

tr::direction_config parse_direction(const command_line& cli, const std::string& suffix) {
    auto pick = [&](const std::string& name) -> std::pair<std::string, std::string> { // value, flag
        if (cli.has(name + suffix)) return {cli.get(name + suffix), "--" + name + suffix};
        if (cli.has(name)) return {cli.get(name), "--" + name};
        return {};
    };
    auto number = [&](const std::string& name, double fallback, double min, double max) {
        const auto [v, flag] = pick(name);
        return flag.empty() ? fallback : command_line::parse_number<double>(v, flag, min, max);
    };
    tr::direction_config d;
    d.loss_percent = number("loss", 0, 0, 100);
    d.mean_burst = number("burst", 0, 1, 1e6);
    d.delay = millis(number("delay", 0, 0, 60'000));
    d.jitter = millis(number("jitter", 0, 0, 60'000));
    d.rate_kbps = number("rate", 0, 0, 1e8);
    d.queue = millis(number("queue", 100, 0, 60'000));
    d.duplicate_percent = number("duplicate", 0, 0, 100);
    if (const auto [v, flag] = pick("schedule"); !flag.empty()) d.schedule = parse_schedule(v, flag);
    const std::string dist = cli.get("distribution", "uniform");
    if (dist == "normal") d.distribution = tr::jitter_distribution::normal;
    else if (dist != "uniform") throw usage_error("--distribution: expected uniform or normal, got '" + dist + "'");
    d.reorder = cli.has("reorder");
    d.bucket_bytes = cli.number<std::size_t>("bucket", 0, 0, std::size_t{1} << 30);
    try {
        tr::detail::validate(d, suffix == "-up" ? "up" : "down");
    } catch (const std::invalid_argument& e) {
        throw usage_error(e.what());
    }
    return d;
}

double ms(std::chrono::microseconds us) { return static_cast<double>(us.count()) / 1000.0; }

/// The proxy: one emulated link facing the clients, one plain socket per client towards
/// the target. Everything runs on one io_context thread.
class proxy {
public:
    proxy(asio::io_context& io, const tr::link_config& cfg, const tr::endpoint& listen, const tr::endpoint& target,
          std::chrono::steady_clock::duration idle)
        : io_(io), front_(cfg, io, listen), target_(target), idle_(idle), reaper_(io) {}

    void start() {
        receive_up();
        reap();
    }
    void stop() {
        front_.close();
        reaper_.cancel();
        for (auto& [ep, c] : clients_) c->close();
    }
    tr::endpoint local_endpoint() const { return front_.local_endpoint(); }

    void report(const char* when) {
        auto line = [](const char* name, const tr::direction_stats& s) {
            std::printf("onair-netem: %s sent=%llu lost=%llu queue_dropped=%llu duplicated=%llu delivered=%llu "
                        "in_flight=%llu queue_delay_ms=%.1f max_queue_delay_ms=%.1f bytes_delivered=%llu\n",
                        name, (unsigned long long)s.sent, (unsigned long long)s.dropped_loss,
                        (unsigned long long)s.dropped_queue, (unsigned long long)s.duplicated,
                        (unsigned long long)s.delivered, (unsigned long long)s.in_flight, ms(s.queue_delay),
                        ms(s.max_queue_delay), (unsigned long long)s.bytes_delivered);
        };
        line("up", front_.receive_stats());
        line("down", front_.send_stats());
        std::printf("onair-netem: %s clients=%zu clients_total=%llu refused=%llu send_errors=%llu\n", when,
                    clients_.size(), (unsigned long long)clients_total_, (unsigned long long)refused_,
                    (unsigned long long)(send_errors_ + front_.stats().send_dropped));
        std::fflush(stdout);
    }

private:
    static constexpr std::size_t max_clients = 1024;

    struct client {
        client(asio::io_context& io, const tr::endpoint& local, const tr::endpoint& peer_) : sock(io, local), peer(peer_) {}
        void close() {
            closed = true;
            sock.close();
        }
        tr::udp sock;
        tr::endpoint peer; // the client's address at the front
        tr::endpoint from;
        std::chrono::steady_clock::time_point last_active = std::chrono::steady_clock::now();
        bool closed = false;
        std::array<std::uint8_t, 65536> buf;
    };

    void receive_up() {
        front_.async_receive_from(asio::buffer(up_buf_), up_from_, [this](std::error_code ec, std::size_t n) {
            if (ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) return;
            if (!ec) forward_up(n);
            receive_up();
        });
    }

    void forward_up(std::size_t n) {
        auto it = clients_.find(up_from_);
        if (it == clients_.end()) {
            if (clients_.size() >= max_clients) {
                ++refused_;
                return;
            }
            std::error_code ec;
            auto c = make_client(ec);
            if (!c) {
                ++refused_;
                return;
            }
            it = clients_.emplace(up_from_, c).first;
            ++clients_total_;
            receive_down(c);
        }
        client& c = *it->second;
        c.last_active = std::chrono::steady_clock::now();
        if (c.sock.send_to(asio::buffer(up_buf_.data(), n), target_)) ++send_errors_;
    }

    std::shared_ptr<client> make_client(std::error_code& ec) {
        const auto front = front_.local_endpoint();
        const bool same_family = front.address().is_v4() == target_.address().is_v4();
        const tr::endpoint local = same_family && !front.address().is_unspecified() ? tr::endpoint(front.address(), 0)
                                                                                     : tr::endpoint(target_.protocol(), 0);
        try {
            return std::make_shared<client>(io_, local, up_from_);
        } catch (const std::system_error& e) {
            ec = e.code();
            return nullptr;
        }
    }

    void receive_down(const std::shared_ptr<client>& c) {
        c->sock.async_receive_from(asio::buffer(c->buf), c->from, [this, c](std::error_code ec, std::size_t n) {
            if (ec == asio::error::operation_aborted || c->closed) return;
            if (!ec) {
                c->last_active = std::chrono::steady_clock::now();
                front_.send_to(asio::buffer(c->buf.data(), n), c->peer);
            }
            receive_down(c);
        });
    }

    void reap() {
        reaper_.expires_after(std::chrono::seconds(1));
        reaper_.async_wait([this](std::error_code ec) {
            if (ec) return;
            const auto now = std::chrono::steady_clock::now();
            std::erase_if(clients_, [&](auto& kv) {
                if (now - kv.second->last_active < idle_) return false;
                kv.second->close();
                return true;
            });
            reap();
        });
    }

    asio::io_context& io_;
    tr::emulated_link<tr::udp> front_;
    tr::endpoint target_;
    std::chrono::steady_clock::duration idle_;
    asio::steady_timer reaper_;
    std::map<tr::endpoint, std::shared_ptr<client>> clients_;
    std::array<std::uint8_t, 65536> up_buf_;
    tr::endpoint up_from_;
    std::uint64_t clients_total_ = 0, refused_ = 0, send_errors_ = 0;
};

} // namespace

int main(int argc, char** argv) {
    command_line cli("onair-netem", "UDP proxy that impairs traffic: loss, bursts, delay, jitter, bandwidth", options());
    return guarded_main(cli, argc, argv, [&]() -> int {
        const auto listen = parse_endpoint(cli.require("listen"), "--listen");
        const auto target = parse_endpoint(cli.require("to"), "--to");
        if (target.port() == 0) throw usage_error("--to: PORT must not be 0");
        const double seconds = cli.number<double>("seconds", 0, 0, 1e9);
        const double stats_every = cli.number<double>("stats-every", 0, 0, 1e6);
        const double idle = cli.number<double>("idle", 60, 0.1, 1e7);
        tr::link_config cfg;
        cfg.seed = cli.number<std::uint64_t>("seed", 1, 0, ~std::uint64_t{0});
        cfg.receive = parse_direction(cli, "-up");
        cfg.send = parse_direction(cli, "-down");

        asio::io_context io(1);
        proxy p(io, cfg, listen, target,
                std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(idle)));
        p.start();
        const auto ep = p.local_endpoint();
        std::printf("onair-netem: listening on %s:%u\n", ep.address().to_string().c_str(), ep.port());
        std::printf("onair-netem: forwarding to %s:%u\n", target.address().to_string().c_str(), target.port());
        std::fflush(stdout);

        run_until_stopped(io, seconds, stats_every, [&] { p.report("stats"); });
        p.report("final");
        p.stop();
        return 0;
    });
}
