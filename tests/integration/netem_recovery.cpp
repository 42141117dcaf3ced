// Real processes: onair-host -> onair-netem (10 % loss, 20 ms delay, both ways) ->
// onair-relay -> onair-viewer. The relay repairs the lossy host leg with NACK/RTX, so the
// viewer sees no hole at all.
#include "support/relay_process.hpp"

#include <doctest/doctest.h>

#include <regex>

using namespace onair_test;
using namespace std::chrono_literals;


TEST_CASE("a host behind onair-netem at 10 % loss: the relay recovers its leg, the viewer misses nothing") {
    const auto dir = scratch_dir("netem_recovery");
    relay_process relay(dir, {"--seconds", "40"});
    process netem({bin("onair-netem"), "--listen", "127.0.0.1:0", "--to", relay.address(), "--loss", "10", "--delay", "20",
                   "--seed", "5", "--seconds", "40"},
                  dir, "netem");
    unsigned short netem_port = 0;
    const std::regex re("listening on 127\\.0\\.0\\.1:([0-9]+)");
    REQUIRE(eventually([&] {
        std::smatch m;
        const std::string out = netem.out();
        if (std::regex_search(out, m, re)) netem_port = static_cast<unsigned short>(std::stoi(m[1]));
        return netem_port != 0;
    }, 10s));
    const auto out = dir / "viewer";
    process viewer({bin("onair-viewer"), "--relay", relay.address(), "--stream", "cam", "--out", out.string(), "--seconds", "8"},
                   dir, "viewer");
    // A fixed-rate sender, as in the loss sweep: at 10 % random loss the loss-based estimate
    // would lower the rate, and with it the budget for the very retransmissions this test is
    // about (congestion control has tests of its own).
    process host({bin("onair-host"), "--relay", "127.0.0.1:" + std::to_string(netem_port), "--stream", "cam", "--size",
                  "320x180", "--bitrate", "600", "--seconds", "5", "--cc", "off"},
                 dir, "host");
    CHECK(host.wait(30s) == 0);
    REQUIRE(viewer.wait(30s) == 0);
    relay.proc->signal(SIGTERM);
    REQUIRE(relay.proc->wait(10s) == 0);
    const std::string relay_out = relay.proc->out();
    INFO("relay: " << relay_out);
    const std::regex recovered("upstream_recovered=([0-9]+)");
    std::smatch m;
    REQUIRE(std::regex_search(relay_out, m, recovered));
    CHECK(std::stoi(m[1]) > 5); // the relay repaired the lossy host leg

    const std::string stats = read_file(out / "stats.json");
    INFO("viewer stats: " << stats);
    CHECK(json_number(stats, "frames") > 60);
    CHECK(json_number(stats, "video_packets_lost") == 0);
    CHECK(json_number(stats, "loss_after_recovery") == 0);
    netem.signal(SIGTERM);
    CHECK(netem.wait(10s).has_value());
}
