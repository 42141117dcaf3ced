// onair-viewer — plays a stream from a relay node and records what it rendered:
// DIR/video.y4m, DIR/audio.wav and DIR/stats.json (frames, latency, bytes, bitrate).
// With --dispatch instead of --relay it asks the RTC network's dispatch center for edges,
// probes them, plays from the best and moves to the next when that one fails.
#include "common/cli.hpp"
#include "common/edges.hpp"
#include "common/room_session.hpp"
#include "common/json.hpp"
#include "common/recording.hpp"
#include "common/run_loop.hpp"

#include <onair/codec/opus.hpp>
#include <onair/codec/vp8.hpp>
#include <onair/codec/vp9.hpp>
#include <onair/query_stream.hpp>
#include <onair/media/recorder.hpp>
#include <onair/sink/tee.hpp>
#include <onair/sink/wav_writer.hpp>
#include <onair/sink/y4m_writer.hpp>
#include <onair/viewer.hpp>

#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>

#include <cstdio>
#include <filesystem>
#include <functional>

using namespace onair_examples;

namespace {

template <class Video>
int play(asio::io_context& io, room_session& room, const asio::ip::udp::endpoint& relay, std::vector<asio::ip::udp::endpoint> fallbacks,
         const std::string& stream, const std::string& ticket, const std::filesystem::path& out, double seconds, double stats_every,
         onair::media::recorder& recording) {
    using sink_type = onair::sink::tee<onair::sink::y4m_writer, onair::sink::wav_writer, onair::media::recorder&>;
    using viewer_type = onair::basic_viewer<onair::codec::av<Video, onair::codec::opus>, onair::transport::udp, sink_type>;
    typename viewer_type::config cfg;
    cfg.relay = relay;
    cfg.stream = stream;
    cfg.ticket = ticket;
    cfg.fallback_relays = std::move(fallbacks);
    const asio::ip::udp::endpoint local(relay.address().is_v6() ? asio::ip::udp::v6() : asio::ip::udp::v4(), 0);
    viewer_type viewer(cfg, sink_type(onair::sink::y4m_writer(out / "video.y4m"), onair::sink::wav_writer(out / "audio.wav"), recording),
                       io, local);
    if (auto ec = viewer.start()) throw std::runtime_error("cannot start: " + ec.message());

    auto print_line = [&] {
        const auto s = viewer.stats();
        std::printf("onair-viewer: t=%.1fs frames=%llu audio_frames=%llu packets=%llu bytes=%llu latency_p50=%.1fms "
                    "decode_errors=%llu missing=%llu recovered=%llu lost=%llu rtt=%.1fms freeze_ratio=%.3f "
                    "concealment=%.3f jitter_buffer=%.0fms av_offset_p50=%.0fms relay_moves=%llu\n",
                    s.elapsed_s, (unsigned long long)s.video_frames, (unsigned long long)s.audio_frames,
                    (unsigned long long)s.packets, (unsigned long long)s.bytes, s.latency_ms.percentile(50),
                    (unsigned long long)s.decode_errors, (unsigned long long)s.video_packets_missing,
                    (unsigned long long)s.video_packets_recovered, (unsigned long long)s.video_packets_lost, s.rtt_ms,
                    s.freeze_ratio(), s.concealment_ratio(), s.audio_current_delay_ms, s.av_offset_ms.percentile(50),
                    (unsigned long long)s.relay_moves);
        std::fflush(stdout);
    };
    run_until_stopped(io, seconds, stats_every, print_line);
    io.restart();
    viewer.stop();
    if (recording.is_open()) {
        const auto ec = recording.close();
        const auto rec = recording.stats();
        std::printf("onair-viewer: recorded %s: video_frames=%llu audio_frames=%llu duration=%.2fs not_written=%llu%s%s\n",
                    recording.options().path.c_str(), (unsigned long long)rec.video_frames, (unsigned long long)rec.audio_frames,
                    rec.duration_s, (unsigned long long)(rec.waiting + rec.late + rec.refused), ec ? " error=" : "", ec ? ec.message().c_str() : "");
    }
    room.end();
    io.poll();

    const auto s = viewer.stats();
    json_object latency;
    latency.add("p50", s.latency_ms.percentile(50)).add("p95", s.latency_ms.percentile(95)).add("p99", s.latency_ms.percentile(99));
    json_object audio_latency;
    audio_latency.add("p50", s.audio_latency_ms.percentile(50)).add("p95", s.audio_latency_ms.percentile(95));
    json_object av_offset; // > 0: video shown later than the audio of the same instant
    av_offset.add("p5", s.av_offset_ms.percentile(5)).add("p50", s.av_offset_ms.percentile(50)).add("p95", s.av_offset_ms.percentile(95));
    json_object jitter;
    jitter.add("audio_target", s.audio_target_delay_ms).add("audio_current", s.audio_current_delay_ms)
        .add("video_target", s.video_target_delay_ms).add("video_current", s.video_current_delay_ms)
        .add("audio_sync_extra", s.audio_sync_delay_ms).add("video_sync_extra", s.video_sync_delay_ms);
    json_object j;
    j.add("stream", stream)
        .add("video_codec", std::string(Video::encoding_name))
        .add("frames", static_cast<double>(s.video_frames))
        .add("audio_frames", static_cast<double>(s.audio_frames))
        .add("packets", static_cast<double>(s.packets))
        .add("bytes", static_cast<double>(s.bytes))
        .add("bitrate_kbps", s.elapsed_s > 0 ? static_cast<double>(s.bytes) * 8 / 1000 / s.elapsed_s : 0.0)
        .add("latency_ms", latency)
        .add("decode_errors", static_cast<double>(s.decode_errors))
        .add("video_packets_missing", static_cast<double>(s.video_packets_missing))
        .add("video_packets_recovered", static_cast<double>(s.video_packets_recovered))
        .add("video_packets_lost", static_cast<double>(s.video_packets_lost))
        .add("loss_before_recovery", s.packets ? static_cast<double>(s.video_packets_missing) / static_cast<double>(s.packets + s.video_packets_lost) : 0.0)
        .add("loss_after_recovery", s.packets ? static_cast<double>(s.video_packets_lost) / static_cast<double>(s.packets + s.video_packets_lost) : 0.0)
        .add("nack_requests", static_cast<double>(s.nack_requests))
        .add("video_fec_recovered", static_cast<double>(s.video_fec_recovered))
        .add("fec_packets", static_cast<double>(s.fec_packets))
        .add("audio_packets_missing", static_cast<double>(s.audio_packets_missing))
        .add("audio_nack_requests", static_cast<double>(s.audio_nack_requests))
        .add("audio_retransmissions", static_cast<double>(s.audio_retransmissions))
        .add("retransmissions", static_cast<double>(s.retransmissions))
        .add("rtt_ms", s.rtt_ms)
        .add("freezes", static_cast<double>(s.freezes))
        .add("freeze_ratio", s.freeze_ratio())
        .add("longest_freeze_ms", s.longest_freeze_s * 1000)
        .add("relay_moves", static_cast<double>(s.relay_moves))
        .add("audio_concealed", static_cast<double>(s.audio_concealed))
        .add("audio_concealment_ratio", s.concealment_ratio())
        .add("audio_fec", static_cast<double>(s.audio_fec))
        .add("audio_red_recovered", static_cast<double>(s.audio_red_recovered))
        .add("audio_skipped", static_cast<double>(s.audio_skipped))
        .add("comfort_noise", static_cast<double>(s.comfort_noise))
        .add("video_frames_skipped", static_cast<double>(s.video_frames_skipped))
        .add("jitter_buffer_ms", jitter)
        .add("audio_latency_ms", audio_latency)
        .add("av_offset_ms", av_offset)
        .add("keyframe_requests", static_cast<double>(s.keyframe_requests))
        .add("malformed", static_cast<double>(s.malformed));
    j.write((out / "stats.json").string());
    print_line();
    return s.video_frames + s.audio_frames > 0 ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
    command_line cli("onair-viewer", "plays a stream from a relay node into files",
                     {{"relay", "IP:PORT", "relay node to play from (this or --dispatch)"},
                      {"dispatch", "IP:PORT", "RTC network: ask this dispatch center for edges, play from the best, fail over to the next"},
                      {"region", "NAME", "this viewer's region, for the edges the center ranks (default: default)"},
                      {"stream", "NAME", "stream name (required)"},
                      {"out", "DIR", "directory for video.y4m, audio.wav and stats.json (required)"},
                      {"seconds", "N", "how long to play (default 10)"},
                      {"stats-every", "SEC", "print a statistics line every SEC seconds"},
                      {"control", "IP:PORT", "the relay's room service: log in and ask to play there (with --token, --room)"},
                      {"token", "TOKEN", "room-service token (onair-token)"},
                      {"room", "NAME", "room to play in"},
                      {"role", "host|audience", "login role (default audience)"},
                      {"record", "FILE.webm|FILE.mp4", "also record what is received, without decoding it again (MP4: VP9 only)"}});
    return guarded_main(cli, argc, argv, [&]() -> int {
        if (cli.has("relay") == cli.has("dispatch")) throw usage_error("give exactly one of --relay and --dispatch");
        std::optional<asio::ip::udp::endpoint> chosen;
        std::vector<asio::ip::udp::endpoint> fallbacks;
        if (cli.has("relay")) chosen = parse_endpoint(cli.get("relay"), "--relay");
        const std::string stream = cli.require("stream");
        const std::filesystem::path out = cli.require("out");
        const double seconds = cli.number<double>("seconds", 10, 0.1, 1e7);
        const double stats_every = cli.number<double>("stats-every", 0, 0, 1e6);
        std::filesystem::create_directories(out);
        const auto started = std::chrono::steady_clock::now();
        // With --control the room service names the stream on the media path and grants the
        // ticket; its session stays open on `io` while the viewer plays.
        asio::io_context io(1);
        if (cli.has("dispatch")) {
            const auto edges = choose_edges(cli, io, "onair-viewer");
            chosen = edges.front().media;
            for (std::size_t i = 1; i < edges.size(); ++i) fallbacks.push_back(edges[i].media);
        }
        const auto relay = *chosen;
        room_session room(cli, io, "audience");
        std::string media_stream = stream, ticket;
        if (room.active()) {
            const auto grant = room.acquire(false, stream, std::chrono::milliseconds(static_cast<long>(seconds * 1000)));
            media_stream = grant.media_stream;
            ticket = grant.ticket;
        }
        const auto desc = onair::query_stream(relay, media_stream, std::chrono::milliseconds(static_cast<long>(seconds * 1000)), ticket);
        if (!desc) {
            std::fprintf(stderr, "onair-viewer: stream '%s' is not live on %s:%u\n", stream.c_str(),
                         relay.address().to_string().c_str(), relay.port());
            return 1;
        }
        onair::media::recorder recording;
        if (cli.has("record")) {
            onair::media::recording_options ro = recording_options_for(cli.get("record"), "--record");
            ro.video = desc->video_ssrc != 0;
            ro.audio = desc->audio_ssrc != 0;
            ro.video_codec = onair::media::video_format_of(desc->video_codec);
            if (const auto ec = recording.open(ro))
                throw usage_error("--record " + cli.get("record") + ": " + (ec == onair::errc::unsupported ? "MP4 holds VP9 video only; this stream is " + desc->video_codec : ec.message()));
        }
        const double left = seconds - std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        if (desc->video_codec == "VP8")
            return play<onair::codec::vp8>(io, room, relay, fallbacks, media_stream, ticket, out, std::max(left, 0.1), stats_every, recording);
        if (desc->video_codec == "VP9")
            return play<onair::codec::vp9>(io, room, relay, fallbacks, media_stream, ticket, out, std::max(left, 0.1), stats_every, recording);
        std::fprintf(stderr, "onair-viewer: stream '%s' uses video codec '%s', which this viewer cannot decode\n",
                     stream.c_str(), desc->video_codec.c_str());
        return 1;
    });
}
