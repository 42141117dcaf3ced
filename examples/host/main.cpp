// onair-host — publishes a stream to a relay node: the numbered test pattern (or a .y4m
// file) encoded with VP8 or VP9, and a tone (or a .wav file) encoded with Opus. With
// --dispatch instead of --relay it publishes to the best edge the RTC network offers.
#include "common/cli.hpp"
#include "common/edges.hpp"
#include "common/room_session.hpp"
#include "common/inputs.hpp"
#include "common/recording.hpp"

#include <onair/codec/opus.hpp>
#include <onair/codec/vp8.hpp>
#include <onair/codec/vp9.hpp>
#include <onair/host.hpp>
#include <onair/media/recorder.hpp>

#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>

#include <atomic>
#include <cstdio>
#include <thread>

using namespace onair_examples;

namespace {

template <class Video>
int publish(const command_line& cli) {
    using host_type = onair::basic_host<onair::codec::av<Video, onair::codec::opus>, onair::transport::udp, onair::media::recorder&>;
    if (cli.has("relay") == cli.has("dispatch")) throw usage_error("give exactly one of --relay and --dispatch");
    const std::string stream = cli.require("stream");
    auto [w, h] = parse_size(cli.get("size", "640x360"));
    const int fps = cli.number<int>("fps", 30, 1, 120);
    const int kbps = cli.number<int>("bitrate", 1000, 30, 50'000);
    const double seconds = cli.number<double>("seconds", 10, 0.1, 1e7);
    video_input video(cli.get("input", "pattern"), w, h, fps);
    audio_input audio(cli.get("audio", "tone"));

    typename host_type::config cfg;
    cfg.stream = stream;
    cfg.video.width = video.width();
    cfg.video.height = video.height();
    cfg.video.fps = video.fps();
    cfg.video.bitrate_kbps = kbps;
    cfg.video.keyframe_interval_s = cli.number<int>("keyframe-interval", 10, 0, 3600);
    cfg.audio.channels = audio.channels();
    // Audio protection: RED blocks (0..2) and, with them, Opus in-band FEC.
    cfg.audio_redundancy = static_cast<std::size_t>(cli.number<int>("red", 0, 0, 2));
    cfg.audio.fec = cfg.audio_redundancy > 0;
    cfg.audio.expected_loss_pct = cfg.audio.fec ? 10 : 0;
    cfg.video_fec = cli.get("fec", "on") != "off";
    cfg.congestion_control = cli.get("cc", "on") != "off";
    // Layers a relay can choose from per viewer: temporal layers of each encoding, and
    // simulcast encodings (each half the size of the one above).
    cfg.video.temporal_layers = cli.number<int>("layers", 1, 1, 3);
    cfg.simulcast = cli.number<int>("simulcast", 1, 1, 3);

    asio::io_context io(1);
    const auto relay = cli.has("relay") ? parse_endpoint(cli.get("relay"), "--relay") : choose_edges(cli, io, "onair-host").front().media;
    // With --control: the stream and its ticket come from the room service, whose session
    // stays open (on this io_context) while the host publishes.
    room_session room(cli, io, "host");
    if (room.active()) {
        const auto grant = room.acquire(true, stream, std::chrono::seconds(10));
        cfg.stream = grant.media_stream;
        cfg.ticket = grant.ticket;
    }
    cfg.relay = relay;
    const asio::ip::udp::endpoint local(relay.address().is_v6() ? asio::ip::udp::v6() : asio::ip::udp::v4(), 0);
    // --record: a local recording of what the encoders produce (before any network loss).
    onair::media::recorder recording;
    if (cli.has("record")) {
        onair::media::recording_options ro = recording_options_for(cli.get("record"), "--record");
        ro.video_codec = onair::media::video_format_of(Video::encoding_name);
        if (const auto ec = recording.open(ro))
            throw usage_error("--record " + cli.get("record") + ": " + (ec == onair::errc::unsupported ? "MP4 holds VP9 video only (use --video vp9 or a .webm file)" : ec.message()));
    }
    host_type host(cfg, recording, io, local);
    if (auto ec = host.start()) throw std::runtime_error("cannot start: " + ec.message());
    std::atomic<bool> stop{false};
    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](std::error_code ec, int) {
        if (!ec) stop = true;
    });
    std::thread net([&] { io.run(); });
    std::printf("onair-host: publishing '%s' (%s %dx%d@%d %d kbps + opus) to %s:%u\n", stream.c_str(),
                std::string(Video::encoding_name).c_str(), video.width(), video.height(), video.fps(), kbps,
                relay.address().to_string().c_str(), relay.port());
    std::fflush(stdout);
    const auto frames = feed_in_real_time(host, &video, &audio, seconds, stop);
    asio::post(io, [&] {
        host.stop();
        signals.cancel();
        room.end();
    });
    net.join();
    if (recording.is_open()) {
        const auto ec = recording.close();
        const auto rec = recording.stats();
        std::printf("onair-host: recorded %s: video_frames=%llu audio_frames=%llu duration=%.2fs not_written=%llu%s%s\n", recording.options().path.c_str(),
                    (unsigned long long)rec.video_frames, (unsigned long long)rec.audio_frames, rec.duration_s, (unsigned long long)(rec.waiting + rec.late + rec.refused), ec ? " error=" : "",
                    ec ? ec.message().c_str() : "");
    }
    const auto s = host.stats();
    std::printf("onair-host: frames=%llu encoded=%llu dropped=%llu keyframes=%llu keyframe_requests=%llu packets=%llu "
                "bytes=%llu retransmissions=%llu fec_packets=%llu reported_loss=%.3f published=%s\n",
                (unsigned long long)frames, (unsigned long long)s.video_frames_encoded,
                (unsigned long long)s.video_frames_dropped, (unsigned long long)s.keyframes,
                (unsigned long long)s.keyframe_requests, (unsigned long long)s.packets_sent,
                (unsigned long long)s.bytes_sent, (unsigned long long)s.retransmissions,
                (unsigned long long)s.fec_packets, s.reported_loss, s.published ? "yes" : "no");
    if (s.unauthorized && !s.published) {
        std::fprintf(stderr, "onair-host: the relay admits only streams granted by its room service (use --control, --token, --room)\n");
        return 1;
    }
    if (s.refused) {
        std::fprintf(stderr, "onair-host: the relay refused stream '%s' (published by someone else)\n", stream.c_str());
        return 1;
    }
    if (!s.published) {
        std::fprintf(stderr, "onair-host: no answer from the relay at %s:%u\n", relay.address().to_string().c_str(),
                     relay.port());
        return 1;
    }
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    command_line cli("onair-host", "publishes a test pattern (or files) to a relay node",
                     {{"relay", "IP:PORT", "relay node to publish to (this or --dispatch)"},
                      {"dispatch", "IP:PORT", "RTC network: publish to the best edge this dispatch center offers"},
                      {"region", "NAME", "this host's region, for the edges the center ranks (default: default)"},
                      {"stream", "NAME", "stream name (required)"},
                      {"video", "vp8|vp9", "video codec (default vp8)"},
                      {"input", "pattern|FILE.y4m", "video source (default pattern)"},
                      {"audio", "tone|FILE.wav", "audio source: a tone or 48 kHz 16-bit PCM (default tone)"},
                      {"size", "WxH", "test pattern size (default 640x360)"},
                      {"fps", "N", "frames per second (default 30)"},
                      {"bitrate", "KBPS", "video bitrate (default 1000)"},
                      {"seconds", "N", "how long to publish (default 10)"},
                      {"red", "N", "redundant audio frames per packet, RFC 2198 (0..2, default 0; above 0 also turns Opus in-band FEC on)"},
                      {"fec", "on|off", "FlexFEC for video, adapted to the relay's reported loss (default on)"},
                      {"cc", "on|off", "congestion control: pace and follow the path's estimated bitrate up to --bitrate (default on)"},
                      {"layers", "1..3", "temporal layers of the video (default 1)"},
                      {"simulcast", "1..3", "simulcast encodings: full, half and quarter size (default 1)"},
                      {"control", "IP:PORT", "the relay's room service: log in and ask to publish there (with --token, --room)"},
                      {"token", "TOKEN", "room-service token (onair-token)"},
                      {"room", "NAME", "room to publish in"},
                      {"role", "host|audience", "login role (default host)"},
                      {"keyframe-interval", "SEC", "periodic key frame distance in seconds (default 10; 1 for 1 s HLS segments; 0: on request only)"},
                      {"record", "FILE.webm|FILE.mp4", "also record the encoded stream locally (MP4: VP9 only)"}});
    return guarded_main(cli, argc, argv, [&]() -> int {
        const std::string video = cli.get("video", "vp8");
        if (video == "vp8") return publish<onair::codec::vp8>(cli);
        if (video == "vp9") return publish<onair::codec::vp9>(cli);
        throw usage_error("--video must be vp8 or vp9");
    });
}
