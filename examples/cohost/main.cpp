// onair-cohost — three participants co-host one room over a relay node.
//
// Starts a relay node with its room service on loopback (media on UDP, rooms on TCP, media
// admitted only with the room service's tickets), then three participants: "host" logs in
// as the room's host, invites "alice", and accepts "bob"'s request to co-host. Each of them
// publishes the numbered test pattern and a tone once allowed, and plays the other two.
// Prints, for each of the six (publisher -> player) pairs, the frames received and the
// latency from capture at the publisher to render at the player (read from the stream's
// capture timestamps), and with --out writes DIR/stats.json.
#include "common/cli.hpp"
#include "common/inputs.hpp"

#include <onair/codec/opus.hpp>
#include <onair/codec/vp8.hpp>
#include <onair/control/media_binding.hpp>
#include <onair/control/room_service.hpp>
#include <onair/control/token.hpp>
#include <onair/participant.hpp>
#include <onair/relay_node.hpp>

#include <asio/io_context.hpp>

#include <nlohmann/json.hpp>
#include <openssl/rand.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <thread>

using namespace onair_examples;
namespace control = onair::control;
using av = onair::codec::av<onair::codec::vp8, onair::codec::opus>;
using participant = onair::basic_participant<av>;

int main(int argc, char** argv) {
    command_line cli("onair-cohost", "three participants co-host one room through a relay node on loopback",
                     {{"seconds", "N", "how long the three stream once all are co-hosting (default 8)"},
                      {"size", "WxH", "picture size (default 320x180)"},
                      {"fps", "N", "frame rate (default 15)"},
                      {"bitrate", "KBPS", "video bitrate of each participant (default 300)"},
                      {"out", "DIR", "write DIR/stats.json"}});
    return guarded_main(cli, argc, argv, [&]() -> int {
        const double seconds = cli.number<double>("seconds", 8, 1, 3600);
        const auto [width, height] = parse_size(cli.get("size", "320x180"));
        const int fps = cli.number<int>("fps", 15, 1, 60);
        const int bitrate = cli.number<int>("bitrate", 300, 50, 20000);
        const std::string out = cli.get("out");

        // The relay node (media thread) and its room service (control thread).
        std::array<unsigned char, 32> key{};
        if (RAND_bytes(key.data(), key.size()) != 1) throw std::runtime_error("no randomness for the secret");
        const std::string secret(reinterpret_cast<const char*>(key.data()), key.size());
        asio::io_context media_io(1), control_io(1), app_io(1);
        const auto loopback = asio::ip::make_address("127.0.0.1");
        onair::relay::sfu_config rc;
        rc.require_tickets = true;
        onair::relay_node node(onair::relay::sfu(std::move(rc)), {}, {}, media_io, onair::transport::endpoint(loopback, 0));
        node.start();
        control::room_service_config sc;
        sc.secret = secret;
        sc.on_media = control::grant_to(node, media_io.get_executor());
        control::room_service rooms(control_io.get_executor(), {loopback, 0}, std::move(sc));
        rooms.start();
        std::printf("onair-cohost: relay on %s:%u (media), %s:%u (rooms)\n", loopback.to_string().c_str(), node.local_endpoint().port(),
                    loopback.to_string().c_str(), rooms.local_endpoint().port());
        std::fflush(stdout);

        // The three participants, on one io_context of their own.
        const std::array<std::string, 3> names{"host", "alice", "bob"};
        std::array<std::unique_ptr<participant>, 3> people;
        std::atomic<int> cohosts{0};
        for (std::size_t i = 0; i < names.size(); ++i) {
            participant::config pc;
            pc.room.server = rooms.local_endpoint();
            pc.room.room = "show";
            pc.room.login_role = i == 0 ? control::role::host : control::role::audience;
            pc.room.token = control::mint_token(secret, {"onair", "show", names[i], control::all_privileges, control::unix_now() + 3600});
            pc.relay = node.local_endpoint();
            pc.stream = names[i] + "-cam";
            pc.host.video.width = width;
            pc.host.video.height = height;
            pc.host.video.fps = fps;
            pc.host.video.bitrate_kbps = bitrate;
            pc.host.start_bitrate_kbps = bitrate + 64;
            control::room_client_handlers h;
            if (i == 0) {
                // The host invites alice when she arrives, and accepts whoever asks.
                h.on_user_joined = [&, i](const nlohmann::json& m) {
                    if (m.value("user", "") == "alice") people[i]->room().invite_cohost("alice");
                };
                h.on_cohost_requested = [&, i](const nlohmann::json& m) { people[i]->room().answer_cohost(m.value("invite", 0ull), true); };
            } else if (names[i] == "alice") {
                h.on_cohost_invited = [&, i](const nlohmann::json& m) { people[i]->room().answer_cohost(m.value("invite", 0ull), true); };
            }
            if (i == 0)
                h.on_role_changed = [&](const nlohmann::json& m) {
                    if (m.value("role", "") == "cohost") ++cohosts;
                };
            people[i] = std::make_unique<participant>(std::move(pc), app_io, participant::sink_factory{}, std::move(h));
        }
        // The host first, so the others find a host to ask; bob asks once logged in.
        people[0]->start([&](std::error_code ec, const nlohmann::json&) {
            if (ec) throw std::runtime_error("host login: " + ec.message());
            people[1]->start();
            people[2]->start([&](std::error_code e, const nlohmann::json&) {
                if (!e) people[2]->room().request_cohost();
            });
        });

        std::jthread media_thread([&] { media_io.run(); });
        std::jthread control_thread([&] { control_io.run(); });
        auto app_work = asio::make_work_guard(app_io);
        std::jthread app_thread([&] { app_io.run(); });

        // Wait (up to 10 s) until all three publish, then stream for `seconds`.
        const auto wait_until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        auto all_publish = [&] { return people[0]->publishing() && people[1]->publishing() && people[2]->publishing(); };
        while (!all_publish() && std::chrono::steady_clock::now() < wait_until) std::this_thread::sleep_for(std::chrono::milliseconds(20));
        if (!all_publish()) throw std::runtime_error("the three did not all reach publishing within 10 s");
        std::printf("onair-cohost: host, alice (invited) and bob (asked) all publish (%d co-hosts)\n", cohosts.load());
        std::fflush(stdout);

        std::atomic<bool> stop{false};
        std::vector<std::jthread> feeders;
        for (std::size_t i = 0; i < people.size(); ++i)
            feeders.emplace_back([&, i] {
                video_input v("pattern", width, height, fps);
                audio_input a("tone");
                feed_in_real_time(*people[i], &v, &a, seconds, stop);
            });
        for (auto& f : feeders) f.join();
        std::this_thread::sleep_for(std::chrono::milliseconds(500)); // the last frames arrive

        // Six pairs: who sent, who played, what arrived, how late.
        nlohmann::json report = nlohmann::json::array();
        bool complete = true;
        for (std::size_t i = 0; i < people.size(); ++i) {
            for (const auto& r : people[i]->remote_stats()) {
                const auto& s = r.stats;
                std::printf("onair-cohost: %-5s -> %-5s video %llu frames, audio %llu frames, latency p50 %.1f ms p95 %.1f ms, freezes %llu\n",
                            r.user.c_str(), names[i].c_str(), (unsigned long long)s.video_frames, (unsigned long long)s.audio_frames,
                            s.latency_ms.percentile(50), s.latency_ms.percentile(95), (unsigned long long)s.freezes);
                report.push_back({{"from", r.user}, {"to", names[i]}, {"video_frames", s.video_frames}, {"audio_frames", s.audio_frames},
                                  {"latency_p50_ms", s.latency_ms.percentile(50)}, {"latency_p95_ms", s.latency_ms.percentile(95)},
                                  {"audio_latency_p50_ms", s.audio_latency_ms.percentile(50)}, {"freezes", s.freezes},
                                  {"freeze_ratio", s.freeze_ratio()}, {"decode_errors", s.decode_errors}});
                complete = complete && s.video_frames > 0 && s.audio_frames > 0;
            }
            if (people[i]->remote_stats().size() != 2) complete = false;
        }
        const std::uint64_t expected_frames = static_cast<std::uint64_t>(seconds * fps);

        asio::post(app_io, [&] {
            for (auto& p : people) p->stop();
        });
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        app_work.reset();
        app_io.stop();
        app_thread.join();
        std::promise<nlohmann::json> relay_stats;
        asio::post(media_io, [&] {
            const auto& r = node.relay().stats();
            relay_stats.set_value({{"unticketed_sessions", r.unticketed_sessions}, {"rtp_forwarded", r.rtp_forwarded}, {"unauthorized", r.unauthorized}});
        });
        const nlohmann::json rs = relay_stats.get_future().get();
        media_io.stop();
        control_io.stop();
        media_thread.join();
        control_thread.join();

        if (!out.empty()) {
            std::filesystem::create_directories(out);
            std::ofstream f(out + "/stats.json", std::ios::trunc);
            f << nlohmann::json{{"pairs", report}, {"cohosts", cohosts.load()}, {"frames_pushed", expected_frames}, {"relay", rs}}.dump(2) << "\n";
        }
        if (!complete) {
            std::fprintf(stderr, "onair-cohost: not every participant received both others' audio and video\n");
            return 1;
        }
        return 0;
    });
}
