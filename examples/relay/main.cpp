// onair-relay — a relay node (media server) on one UDP port.
//
// Hosts publish to it and viewers play from it with onair's session hellos. A stream
// played here that no host publishes here is pulled from another relay node (cascade):
// along the route the dispatch center gives (--dispatch), or from the hops --pull names. With
// --control IP:PORT it also runs the room service (rooms, messaging, co-hosting) on TCP,
// on a thread of its own, and then admits only hellos that carry a ticket the room
// service granted (publish and play are asked for on the control plane). With
// --forward STREAM=IP:PORT it also pushes that stream as plain RTP (video to PORT, audio
// to PORT+2) and, with --sdp FILE, writes an SDP file ffmpeg/ffplay/GStreamer can open.
// With --http IP:PORT it is also a CDN origin (live WebM, HLS; examples/cdn puts nginx in
// front), and it records streams to --record-dir: --record STREAM=webm|mp4 from the start,
// or at run time over HTTP (POST /record/STREAM, with --record-token-file).
#include "common/cli.hpp"
#include "common/run_loop.hpp"

#include <onair/cdn/http_egress.hpp>
#include <onair/control/media_binding.hpp>
#include <onair/control/room_service.hpp>
#include <onair/dispatch/node_agent.hpp>
#include <onair/relay/cascade.hpp>
#include <onair/relay_node.hpp>
#include <onair/rtp/sdp.hpp>

#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <functional>
#include <memory>
#include <thread>

using namespace onair_examples;

namespace {

struct forward_target {
    asio::ip::udp::endpoint video, audio;
};

void write_file_atomically(const std::string& path, const std::string& text) {
    const std::string tmp = path + ".tmp";
    {
        std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
        if (!f) throw std::runtime_error("cannot write " + tmp);
        f << text;
    }
    std::filesystem::rename(tmp, path);
}

} // namespace

int main(int argc, char** argv) {
    command_line cli("onair-relay", "relay node: forwards published streams to their viewers",
                     {{"listen", "IP:PORT", "UDP address to serve on (required; port 0 picks one)"},
                      {"forward", "STREAM=IP:PORT", "also push STREAM as plain RTP: video to PORT, audio to PORT+2", true},
                      {"sdp", "FILE", "write the SDP of the --forward stream to FILE once it is live"},
                      {"control", "IP:PORT", "also run the room service on this TCP address (port 0 picks one); media then needs tickets"},
                      {"secret-file", "FILE", "the tokens' HMAC secret (required with --control)"},
                      {"app", "ID", "application id the tokens must name (default: onair)"},
                      {"dispatch", "IP:PORT", "join an RTC network: register with this dispatch center, probe peers, report links"},
                      {"node-id", "ID", "this node's id in the network (required with --dispatch)"},
                      {"region", "NAME", "this node's region label (default: default)"},
                      {"cluster-secret-file", "FILE", "the network's secret: signs node messages and pulls between nodes (required with --dispatch)"},
                      {"capacity", "MBPS", "what this node may send, in Mbit/s (default 1000)"},
                      {"probe-port", "PORT", "UDP port of this node's link probes (default: any)"},
                      {"via", "NODE=IP:PORT", "reach peer NODE's media at this address instead of the one it advertises", true},
                      {"probe-via", "NODE=IP:PORT", "probe peer NODE at this address instead of the one it advertises", true},
                      {"pull", "STREAM=IP:PORT[,IP:PORT...]", "pull STREAM from these relay nodes (the next hop first) when it is played here", true},
                      {"http", "IP:PORT", "serve live WebM, HLS and recording control over HTTP on this TCP address (port 0 picks one)"},
                      {"record", "STREAM=webm|mp4", "record STREAM whenever it is live here (one file per stream and session)", true},
                      {"record-dir", "DIR", "where recordings go (default: the current directory)"},
                      {"record-token-file", "FILE", "bearer token that POST /record/... requests must carry (default: no HTTP control)"},
                      {"workers", "N", "threads that send what the node forwards, this one included (default: ONAIR_RELAY_WORKERS, else 1)"},
                      {"seconds", "N", "stop after N seconds (default: run until SIGINT/SIGTERM)"},
                      {"stats-every", "SEC", "print a statistics line every SEC seconds"}});
    return guarded_main(cli, argc, argv, [&]() -> int {
        const auto listen = parse_endpoint(cli.require("listen"), "--listen");
        const double seconds = cli.number<double>("seconds", 0, 0, 1e9);
        const double stats_every = cli.number<double>("stats-every", 0, 0, 1e6);
        std::map<std::string, forward_target> forwards;
        for (const auto& f : cli.all("forward")) {
            const auto eq = f.find('=');
            if (eq == std::string::npos || eq == 0) throw usage_error("--forward: expected STREAM=IP:PORT, got '" + f + "'");
            const auto video = parse_endpoint(f.substr(eq + 1), "--forward");
            if (video.port() == 0 || video.port() > 65533) throw usage_error("--forward: PORT must be 1..65533");
            forwards[f.substr(0, eq)] = {video, {video.address(), static_cast<unsigned short>(video.port() + 2)}};
        }
        const std::string sdp_path = cli.get("sdp");
        if (!sdp_path.empty() && forwards.size() != 1) throw usage_error("--sdp needs exactly one --forward");

        const bool with_control = cli.has("control");
        if (with_control && !cli.has("secret-file")) throw usage_error("--control needs --secret-file");
        const bool with_dispatch = cli.has("dispatch");
        if (with_dispatch && (!cli.has("node-id") || !cli.has("cluster-secret-file")))
            throw usage_error("--dispatch needs --node-id and --cluster-secret-file");
        auto node_map = [&](const char* flag) {
            std::map<std::string, std::string> out;
            for (const auto& v : cli.all(flag)) {
                const auto eq = v.find('=');
                if (eq == std::string::npos || eq == 0 || !onair::transport::parse_address(v.substr(eq + 1)))
                    throw usage_error(std::string("--") + flag + ": expected NODE=IP:PORT, got '" + v + "'");
                out[v.substr(0, eq)] = v.substr(eq + 1);
            }
            return out;
        };
        const auto media_via = node_map("via");
        const auto probe_via = node_map("probe-via");

        asio::io_context io(1);
        asio::io_context dispatch_io(1);
        std::unique_ptr<onair::dispatch::node_agent> agent;
        onair::relay::cascade_config cascade_cfg;
        for (const auto& v : cli.all("pull")) {
            const auto eq = v.find('=');
            std::vector<onair::transport::endpoint> hops;
            if (eq == std::string::npos || eq == 0 || !onair::relay::parse_route(v.substr(eq + 1), hops) || hops.empty())
                throw usage_error("--pull: expected STREAM=IP:PORT[,IP:PORT...], got '" + v + "'");
            cascade_cfg.static_routes[v.substr(0, eq)] = std::move(hops);
        }
        std::string cascade_secret; // signs and checks relay legs (pulls between nodes) and room trunks
        if (cli.has("cluster-secret-file")) cascade_secret = read_secret_file(cli.get("cluster-secret-file"), "--cluster-secret-file");
        cascade_cfg.secret = cascade_secret;
        if (with_dispatch) {
            // Where a stream is: asked of the center by the agent, on its thread.
            cascade_cfg.on_missing = [&](const std::string& stream) {
                asio::post(dispatch_io, [&agent, stream] {
                    if (agent) agent->locate(stream);
                });
            };
        }
        onair::relay::sfu_config& rc = cascade_cfg.sfu;
        rc.require_tickets = with_control;
        rc.on_stream_live = [&](const onair::rtp::stream_description& d) {
            auto it = forwards.find(d.name);
            if (it == forwards.end() || sdp_path.empty()) return;
            write_file_atomically(sdp_path, onair::rtp::make_sdp(d, it->second.video, it->second.audio));
            std::printf("onair-relay: stream '%s' live (%s + %s), SDP written to %s\n", d.name.c_str(),
                        d.video_codec.c_str(), d.audio_codec.c_str(), sdp_path.c_str());
            std::fflush(stdout);
        };
        onair::relay::cascade policy(std::move(cascade_cfg));
        for (const auto& [name, t] : forwards) policy.forwarding().add_forward(name, t.video, t.audio);

        // The egress sees every packet the node accepts: recordings, live WebM and HLS.
        onair::cdn::egress_config egress_cfg;
        egress_cfg.record_dir = cli.get("record-dir", ".");
        egress_cfg.live_outputs = cli.has("http"); // a relay that is no CDN origin packages nothing
        if (!std::filesystem::is_directory(egress_cfg.record_dir))
            throw usage_error("--record-dir: no directory " + egress_cfg.record_dir.string());
        onair::cdn::egress egress(egress_cfg);
        for (const auto& r : cli.all("record")) {
            const auto eq = r.find('=');
            const auto format = eq == std::string::npos ? std::nullopt : onair::media::container_of(r.substr(eq + 1));
            if (!format || eq == 0 || egress.start_recording(r.substr(0, eq), *format))
                throw usage_error("--record: expected STREAM=webm|mp4 (one per stream), got '" + r + "'");
        }
        onair::cdn::http_egress_config hc;
        if (cli.has("record-token-file")) hc.record_token = read_secret_file(cli.get("record-token-file"), "--record-token-file");

        onair::relay_node_config node_cfg;
        node_cfg.workers = cli.number<std::size_t>("workers", node_cfg.workers, 1, onair::transport::udp_max_send_workers);
        onair::basic_relay_node<onair::transport::udp, onair::relay::cascade, onair::cdn::egress&> node(std::move(policy), egress, node_cfg, io,
                                                                                                      listen);
        node.start();
        std::printf("onair-relay: listening on %s:%u\n", node.local_endpoint().address().to_string().c_str(),
                    node.local_endpoint().port());
        std::unique_ptr<onair::http::server> http;
        if (cli.has("http")) {
            const auto ep = parse_endpoint(cli.get("http"), "--http");
            http = std::make_unique<onair::http::server>(io.get_executor(), asio::ip::tcp::endpoint(ep.address(), ep.port()),
                                                         onair::http::server_config{},
                                                         [&](const onair::http::request& req, onair::http::response& res) {
                                                             onair::cdn::serve(egress, hc, req, res);
                                                         });
            http->start();
            std::printf("onair-relay: http on %s:%u\n", ep.address().to_string().c_str(), http->local_endpoint().port());
        }
        auto print_recordings = [&] {
            const auto done = egress.take_finished();
            for (const auto& r : done) {
                if (r.error)
                    std::printf("onair-relay: cannot record '%s' as %s: %s\n", r.stream.c_str(), onair::media::extension_of(r.format) + 1,
                                r.error == onair::errc::unsupported ? "MP4 holds VP9 video only" : r.error.message().c_str());
                else
                    std::printf("onair-relay: recorded %s: video_frames=%llu audio_frames=%llu duration=%.2fs\n", r.path.c_str(),
                                (unsigned long long)r.stats.video_frames, (unsigned long long)r.stats.audio_frames, r.stats.duration_s);
            }
            if (!done.empty()) std::fflush(stdout);
        };
        // The egress's clock: due video frames out, silent streams ended.
        asio::steady_timer egress_timer(io);
        std::function<void()> egress_tick = [&] {
            egress_timer.expires_after(std::chrono::milliseconds(20));
            egress_timer.async_wait([&](std::error_code e) {
                if (e) return;
                egress.tick();
                print_recordings();
                egress_tick();
            });
        };
        egress_tick();
        std::fflush(stdout);

        // The room service: its own io_context and thread; grants reach the media thread by post.
        asio::io_context control_io(1);
        std::unique_ptr<onair::control::room_service> rooms;
        std::jthread control_thread;
        if (with_control) {
            onair::control::room_service_config cc;
            cc.secret = read_secret_file(cli.get("secret-file"), "--secret-file");
            cc.app_id = cli.get("app", "onair");
            cc.on_media = onair::control::grant_to(node, io.get_executor());
            if (with_dispatch) {
                // Rooms span the network: the center names each room's home; members of a
                // room that lives elsewhere are served through a trunk to it.
                cc.cluster_secret = cascade_secret;
                cc.node_id = cli.get("node-id");
                cc.locate_room = [&](const std::string& room, std::function<void(std::optional<asio::ip::tcp::endpoint>)> done) {
                    asio::post(dispatch_io, [&agent, &control_io, room, done = std::move(done)]() mutable {
                        agent->locate_room(room, [&control_io, done = std::move(done)](bool here, std::string at) mutable {
                            asio::post(control_io, [done = std::move(done), here, at] {
                                const auto ep = here ? std::nullopt : onair::transport::parse_address(at);
                                if (ep) done(asio::ip::tcp::endpoint(ep->address(), ep->port()));
                                else done(std::nullopt); // here, or the home has no usable address: serve it here
                            });
                        });
                    });
                };
            }
            const auto ep = parse_endpoint(cli.get("control"), "--control");
            rooms = std::make_unique<onair::control::room_service>(control_io.get_executor(),
                                                                    asio::ip::tcp::endpoint(ep.address(), ep.port()), std::move(cc));
            rooms->start();
            std::printf("onair-relay: control on %s:%u\n", rooms->local_endpoint().address().to_string().c_str(),
                        rooms->local_endpoint().port());
            control_thread = std::jthread([&] { control_io.run(); });
        }
        std::fflush(stdout);

        auto report = [&] {
            const auto& n = node.stats();
            const auto& r = node.relay().stats();
            const auto& c = node.relay().cascade_counters();
            std::printf("onair-relay: datagrams=%llu rtp=%llu rtcp=%llu malformed=%llu forwarded=%llu bytes_forwarded=%llu "
                        "unknown_stream=%llu unauthorized=%llu unticketed=%llu keyframe_requests=%llu oversized=%llu nack_requests=%llu "
                        "retransmissions=%llu upstream_nacks=%llu upstream_recovered=%llu streams=%zu pulls=%zu "
                        "pulls_started=%llu upstream_switches=%llu relay_legs=%llu relay_refused=%llu\n",
                        (unsigned long long)n.datagrams, (unsigned long long)n.rtp, (unsigned long long)n.rtcp,
                        (unsigned long long)n.malformed, (unsigned long long)r.rtp_forwarded,
                        (unsigned long long)r.bytes_forwarded, (unsigned long long)r.unknown_stream,
                        (unsigned long long)r.unauthorized, (unsigned long long)r.unticketed_sessions, (unsigned long long)r.keyframe_requests,
                        (unsigned long long)n.oversized, (unsigned long long)r.nack_requests,
                        (unsigned long long)r.retransmissions, (unsigned long long)r.upstream_nacks,
                        (unsigned long long)r.upstream_recovered, node.relay().stream_count(), node.relay().pull_count(),
                        (unsigned long long)c.pulls, (unsigned long long)c.upstream_switches, (unsigned long long)c.relay_legs,
                        (unsigned long long)c.relay_refused);
            std::fflush(stdout);
        };

        // The RTC network: the dispatch agent on a thread of its own; the media thread
        // tells it the forwarded rate (its load) and the streams published here twice a
        // second, and takes the routes it locates.
        std::jthread dispatch_thread;
        asio::steady_timer load_timer(io);
        std::function<void()> sample_load;
        std::uint64_t last_bytes = 0;
        if (with_dispatch) {
            onair::dispatch::node_agent_config ac;
            ac.node_id = cli.get("node-id");
            ac.region = cli.get("region", "default");
            ac.secret = read_secret_file(cli.get("cluster-secret-file"), "--cluster-secret-file");
            ac.dispatch = parse_endpoint(cli.get("dispatch"), "--dispatch");
            ac.media = onair::dispatch::to_address(node.local_endpoint());
            ac.capacity = cli.number<double>("capacity", 1000, 0.001, 1e9);
            ac.media_via = media_via;
            ac.probe_port = cli.number<unsigned short>("probe-port", 0, 0, 65535);
            if (rooms) ac.rooms = onair::dispatch::to_address(onair::transport::endpoint(rooms->local_endpoint().address(), rooms->local_endpoint().port()));
            ac.probe_via = probe_via;
            auto on_pull = [&](const std::string& stream, std::vector<onair::transport::endpoint> hops) {
                asio::post(io, [&node, stream, hops = std::move(hops)]() mutable { node.relay().set_route(stream, std::move(hops)); });
            };
            auto on_reach = [&](std::map<onair::transport::endpoint, onair::transport::endpoint> reach) {
                asio::post(io, [&node, reach = std::move(reach)]() mutable { node.relay().set_reach(std::move(reach)); });
            };
            agent = std::make_unique<onair::dispatch::node_agent>(std::move(ac), dispatch_io,
                                                                   onair::transport::endpoint(node.local_endpoint().address(), 0), on_pull,
                                                                   on_reach);
            agent->start();
            dispatch_thread = std::jthread([&] { dispatch_io.run(); });
            sample_load = [&] {
                load_timer.expires_after(std::chrono::milliseconds(500));
                load_timer.async_wait([&](std::error_code ec) {
                    if (ec) return;
                    const std::uint64_t bytes = node.relay().stats().bytes_forwarded;
                    const double mbps = static_cast<double>(bytes - last_bytes) * 8 / 1e6 * 2;
                    last_bytes = bytes;
                    asio::post(dispatch_io, [&agent, mbps, streams = node.relay().origin_streams()]() mutable {
                        agent->set_load(mbps);
                        agent->set_streams(std::move(streams));
                    });
                    sample_load();
                });
            };
            sample_load();
            std::printf("onair-relay: node '%s' joining the network at %s (control %s, probe %s)\n", cli.get("node-id").c_str(),
                        cli.get("dispatch").c_str(), onair::dispatch::to_address(agent->control_endpoint()).c_str(),
                        onair::dispatch::to_address(agent->probe_endpoint()).c_str());
            std::fflush(stdout);
        }

        run_until_stopped(io, seconds, stats_every, report);
        load_timer.cancel();
        if (agent) {
            dispatch_io.stop();
            dispatch_thread.join();
            agent->stop();
        }
        if (rooms) {
            control_io.stop();
            control_thread.join();
            rooms->stop();
        }
        egress_timer.cancel();
        if (http) http->stop();
        egress.stop(); // finalises recordings
        print_recordings();
        report();
        return 0;
    });
}
