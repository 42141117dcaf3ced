// onair-demo — a relay node, a host and a viewer in one process over loopback UDP.
//
// The host publishes the numbered test pattern (VP8 or VP9) and a tone (Opus); the viewer
// plays it back through the relay. Writes DIR/sent.y4m (what the host encoded),
// DIR/received.y4m, DIR/received.wav and DIR/stats.json, and prints a one-line summary:
// frames sent/received, end-to-end latency read from the barcode in each received picture,
// PSNR of each received picture against the one sent with the same number, bitrate.
#include "common/cli.hpp"
#include "common/inputs.hpp"
#include "common/json.hpp"

#include <onair/codec/opus.hpp>
#include <onair/codec/vp8.hpp>
#include <onair/codec/vp9.hpp>
#include <onair/core/psnr.hpp>
#include <onair/core/stats.hpp>
#include <onair/host.hpp>
#include <onair/relay_node.hpp>
#include <onair/sink/callback.hpp>
#include <onair/sink/tee.hpp>
#include <onair/sink/wav_writer.hpp>
#include <onair/sink/y4m_writer.hpp>
#include <onair/source/barcode.hpp>
#include <onair/viewer.hpp>

#include <asio/io_context.hpp>

#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

using namespace onair_examples;

namespace {

/// Pairs what the host encoded with what the viewer rendered, by frame number.
struct frame_judge {
    std::mutex mu;
    std::map<std::uint32_t, onair::video_frame> sent; // awaiting their received twin
    onair::sample_set latency_ms;
    onair::sample_set psnr_db;
    std::uint64_t unreadable = 0;
    std::uint64_t audio_frames = 0;

    void on_sent(const onair::video_frame& f) {
        auto code = onair::source::read_barcode(f);
        if (!code) return;
        std::lock_guard lock(mu);
        sent.emplace(code->frame_number, f);
    }
    void on_received(const onair::video_frame& f) {
        const auto rendered = onair::now();
        auto code = onair::source::read_barcode(f);
        std::lock_guard lock(mu);
        if (!code) {
            ++unreadable;
            return;
        }
        latency_ms.add(static_cast<double>((rendered - code->capture_time).count()) / 1000.0);
        auto it = sent.find(code->frame_number);
        if (it != sent.end()) {
            psnr_db.add(onair::psnr(it->second, f).y);
            sent.erase(sent.begin(), std::next(it)); // older ones will not come any more
        }
    }
};

template <class Video>
int run(const command_line& cli) {
    namespace sink = onair::sink;
    const double seconds = cli.number<double>("seconds", 5, 0.5, 3600);
    const std::filesystem::path out = cli.require("out");
    auto [w, h] = parse_size(cli.get("size", "640x360"));
    const int fps = cli.number<int>("fps", 30, 1, 120);
    const int kbps = cli.number<int>("bitrate", 1000, 30, 50'000);
    std::filesystem::create_directories(out);

    frame_judge judge;
    auto sent_cb = sink::callback{[&judge](const onair::video_frame& f) { judge.on_sent(f); }};
    auto recv_cb = sink::callback{[&judge](const auto& f) {
        if constexpr (std::is_same_v<std::decay_t<decltype(f)>, onair::video_frame>) judge.on_received(f);
        else {
            std::lock_guard lock(judge.mu);
            ++judge.audio_frames;
        }
    }};
    using codec_type = onair::codec::av<Video, onair::codec::opus>;
    using host_sink = sink::tee<sink::y4m_writer, decltype(sent_cb)>;
    using viewer_sink = sink::tee<sink::y4m_writer, sink::wav_writer, decltype(recv_cb)>;
    using host_type = onair::basic_host<codec_type, onair::transport::udp, host_sink>;
    using viewer_type = onair::basic_viewer<codec_type, onair::transport::udp, viewer_sink>;

    const asio::ip::udp::endpoint loopback(asio::ip::make_address_v4("127.0.0.1"), 0);
    asio::io_context io(1);
    onair::relay_node relay(onair::relay::sfu{}, {}, {}, io, loopback);
    relay.start();

    typename viewer_type::config vcfg;
    vcfg.relay = relay.local_endpoint();
    vcfg.stream = "demo";
    viewer_type viewer(vcfg, viewer_sink(sink::y4m_writer(out / "received.y4m", fps), sink::wav_writer(out / "received.wav"), recv_cb),
                       io, loopback);

    typename host_type::config hcfg;
    hcfg.relay = relay.local_endpoint();
    hcfg.stream = "demo";
    hcfg.video.width = w;
    hcfg.video.height = h;
    hcfg.video.fps = fps;
    hcfg.video.bitrate_kbps = kbps;
    host_type host(hcfg, host_sink(sink::y4m_writer(out / "sent.y4m", fps), sent_cb), io, loopback);

    if (auto ec = viewer.start()) throw std::runtime_error("viewer: " + ec.message());
    if (auto ec = host.start()) throw std::runtime_error("host: " + ec.message());
    std::thread net([&] { io.run(); });

    // Frames pushed before the relay acknowledges the stream are not sent (a host starts
    // with the key frame that follows the acknowledgement): capture starts once it is in.
    const auto publish_until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!host.stats().published && std::chrono::steady_clock::now() < publish_until)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    video_input video("pattern", w, h, fps);
    audio_input audio("tone");
    std::atomic<bool> stop{false};
    const auto frames_sent = feed_in_real_time(host, &video, &audio, seconds, stop);

    // Let the last frames cross (on a busy machine playout may run late: wait for it, up to
    // 3 s), then stop everyone on the network thread.
    const auto drain_until = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    while (std::chrono::steady_clock::now() < drain_until) {
        const auto sent = host.stats();
        const auto got = viewer.stats();
        if (got.audio_frames + got.audio_skipped >= sent.audio_frames_encoded && got.video_frames >= frames_sent) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    asio::post(io, [&] { host.stop(); });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    asio::post(io, [&] {
        viewer.stop();
        relay.stop();
    });
    net.join();

    const auto hs = host.stats();
    const auto vs = viewer.stats();
    std::lock_guard lock(judge.mu);
    const double bitrate = vs.elapsed_s > 0 ? static_cast<double>(vs.bytes) * 8 / 1000 / vs.elapsed_s : 0.0;
    json_object latency;
    latency.add("p50", judge.latency_ms.percentile(50))
        .add("p95", judge.latency_ms.percentile(95))
        .add("p99", judge.latency_ms.percentile(99))
        .add("max", judge.latency_ms.max());
    json_object psnr;
    psnr.add("mean", judge.psnr_db.mean()).add("min", judge.psnr_db.percentile(0));
    json_object j;
    j.add("video_codec", std::string(Video::encoding_name))
        .add("size", std::to_string(w) + "x" + std::to_string(h))
        .add("fps", static_cast<double>(fps))
        .add("target_kbps", static_cast<double>(kbps))
        .add("seconds", seconds)
        .add("frames_sent", static_cast<double>(frames_sent))
        .add("frames_encoded", static_cast<double>(hs.video_frames_encoded))
        .add("frames_received", static_cast<double>(vs.video_frames))
        .add("audio_frames_sent", static_cast<double>(hs.audio_frames_encoded))
        .add("audio_frames_received", static_cast<double>(vs.audio_frames))
        // Frames the playout dropped to catch up after a stall (they arrived, in time for
        // nothing), and audio packets that never arrived.
        .add("audio_frames_skipped", static_cast<double>(vs.audio_skipped))
        .add("audio_packets_missing", static_cast<double>(vs.audio_packets_missing))
        .add("latency_ms", latency)
        .add("psnr_db", psnr)
        .add("bytes", static_cast<double>(vs.bytes))
        .add("bitrate_kbps", bitrate)
        .add("decode_errors", static_cast<double>(vs.decode_errors))
        .add("unreadable_barcodes", static_cast<double>(judge.unreadable));
    j.write((out / "stats.json").string());
    std::printf("onair-demo: %s %dx%d@%d: frames sent %llu received %llu, audio %llu/%llu, latency p50 %.1f ms p95 %.1f ms "
                "p99 %.1f ms, PSNR %.1f dB, %.0f kbps -> %s\n",
                std::string(Video::encoding_name).c_str(), w, h, fps, (unsigned long long)frames_sent,
                (unsigned long long)vs.video_frames, (unsigned long long)hs.audio_frames_encoded,
                (unsigned long long)vs.audio_frames, judge.latency_ms.percentile(50), judge.latency_ms.percentile(95),
                judge.latency_ms.percentile(99), judge.psnr_db.mean(), bitrate, out.string().c_str());
    return vs.video_frames > 0 ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
    command_line cli("onair-demo", "relay, host and viewer in one process over loopback UDP",
                     {{"seconds", "N", "how long to stream (default 5)"},
                      {"out", "DIR", "output directory (required)"},
                      {"video", "vp8|vp9", "video codec (default vp8)"},
                      {"size", "WxH", "picture size (default 640x360)"},
                      {"fps", "N", "frames per second (default 30)"},
                      {"bitrate", "KBPS", "video bitrate (default 1000)"}});
    return guarded_main(cli, argc, argv, [&]() -> int {
        const std::string video = cli.get("video", "vp8");
        if (video == "vp8") return run<onair::codec::vp8>(cli);
        if (video == "vp9") return run<onair::codec::vp9>(cli);
        throw usage_error("--video must be vp8 or vp9");
    });
}
