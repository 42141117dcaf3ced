// onair — basic_viewer: the playing side. Receives a stream from a relay node, reassembles
// frames on the network thread, decodes them on a codec thread and hands them to a sink.
#pragma once

#include "onair/codec/av.hpp"
#include "onair/core/error.hpp"
#include "onair/core/timer.hpp"
#include "onair/core/packet_buffer.hpp"
#include "onair/core/random.hpp"
#include "onair/core/stats.hpp"
#include "onair/core/time.hpp"
#include "onair/core/worker.hpp"
#include "onair/qos/nack_generator.hpp"
#include "onair/qos/rtx.hpp"
#include "onair/rtp/packet.hpp"
#include "onair/rtp/rtcp.hpp"
#include "onair/rtp/session_message.hpp"
#include "onair/sink/concepts.hpp"
#include "onair/transport/concepts.hpp"
#include "onair/transport/udp.hpp"

#include <asio/post.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <span>
#include <utility>
#include <vector>

namespace onair {

/// What a viewer has received and rendered.
struct viewer_stats {
    std::uint64_t packets = 0;
    std::uint64_t bytes = 0;           ///< RTP datagram bytes received for the stream
    std::uint64_t unknown_packets = 0; ///< RTP from SSRCs not in the stream description
    std::uint64_t malformed = 0;
    std::uint64_t video_frames = 0;    ///< decoded and handed to the sink
    std::uint64_t audio_frames = 0;
    std::uint64_t decode_errors = 0;
    std::uint64_t keyframe_requests = 0;
    std::uint64_t depacketizer_dropped = 0;
    std::uint64_t video_packets_missing = 0;   ///< holes seen in the video sequence (loss before recovery)
    std::uint64_t video_packets_recovered = 0; ///< holes filled by retransmission
    std::uint64_t video_packets_lost = 0;      ///< holes given up on (loss after recovery)
    std::uint64_t nack_requests = 0;           ///< sequence numbers requested
    std::uint64_t retransmissions = 0;         ///< RTX packets received
    double rtt_ms = 0;                         ///< from request-to-retransmission times
    std::uint64_t audio_concealed = 0;         ///< 20 ms frames produced by loss concealment
    std::uint64_t freezes = 0;                 ///< gaps > 500 ms between rendered video frames
    double frozen_s = 0;                       ///< total length of those gaps
    double playback_s = 0;                     ///< first to last rendered video frame
    double freeze_ratio() const noexcept { return playback_s > 0 ? frozen_s / playback_s : 0.0; }
    double concealment_ratio() const noexcept {
        const auto all = audio_frames + audio_concealed;
        return all ? static_cast<double>(audio_concealed) / static_cast<double>(all) : 0.0;
    }
    sample_set latency_ms;             ///< render time - capture time (abs-capture-time) per video frame
    double elapsed_s = 0;              ///< since the first media packet
};

/// The playing role.
///
/// @tparam Codec     codec::av<Video, Audio>; must match what the stream's host sends
/// @tparam Transport a transport::transport
/// @tparam Sink      a sink::media_sink receiving decoded frames on the codec thread, with
///                   capture_time set from the sender's absolute capture time
///
/// Thread safety: stats() and description() from any thread; start()/stop() from the
/// network thread or while it is not running.
template <class Codec, class Transport = transport::udp, class Sink = sink::null>
class basic_viewer {
    static_assert(codec::check_av_codec<Codec>());
    static_assert(transport::transport<Transport>, "Transport type requirements not met (see onair/transport/concepts.hpp)");
    static_assert(sink::media_sink<Sink>, "Sink type requirements not met (see onair/sink/concepts.hpp)");

public:
    using video_codec = typename Codec::video;
    using audio_codec = typename Codec::audio;

    struct config {
        transport::endpoint relay;
        std::string stream;
        std::chrono::milliseconds hello_interval{1000};
        /// Minimum spacing of the viewer's own keyframe requests.
        std::chrono::milliseconds keyframe_request_interval{300};
        /// How often lost video packets are looked for and requested.
        std::chrono::milliseconds nack_interval{10};
        qos::nack_generator::config nack{};
    };

    template <class... Args>
    basic_viewer(config cfg, Sink sink, Args&&... transport_args)
        : transport_(std::forward<Args>(transport_args)...), sink_(std::move(sink)), cfg_(std::move(cfg)),
          hello_timer_(transport_.get_executor()), nack_timer_(transport_.get_executor()), ssrc_(detail::random_u32()),
          nack_(cfg_.nack) {}
    basic_viewer(const basic_viewer&) = delete;
    basic_viewer& operator=(const basic_viewer&) = delete;
    ~basic_viewer() { worker_.join(); }

    std::error_code start() {
        if (cfg_.stream.empty() || cfg_.stream.size() > rtp::max_stream_name) return errc::unknown_stream;
        if (auto ec = vdec_.open()) return ec;
        if (auto ec = adec_.open()) return ec;
        running_ = true;
        receive();
        send_hello(rtp::session_type::play);
        arm_hello();
        arm_nack();
        return {};
    }

    /// Stops receiving, decodes what has arrived, says goodbye to the relay.
    void stop() {
        if (!running_) return;
        running_ = false;
        hello_timer_.cancel();
        nack_timer_.cancel();
        send_hello(rtp::session_type::leave);
        transport_.close();
        worker_.join();
    }

    /// The stream as the relay described it, once it is live.
    std::optional<rtp::stream_description> description() const {
        std::lock_guard lock(mu_);
        return live_ ? std::optional(desc_) : std::nullopt;
    }

    viewer_stats stats() const {
        std::lock_guard lock(mu_);
        viewer_stats s = stats_;
        if (first_packet_) s.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - *first_packet_).count();
        return s;
    }

    Transport& transport() noexcept { return transport_; }
    Sink& sink() noexcept { return sink_; }

private:
    void send_hello(rtp::session_type type) {
        rtp::session_message m;
        m.type = type;
        m.sender_ssrc = ssrc_;
        m.stream.name = cfg_.stream;
        std::array<std::uint8_t, 512> buf;
        if (const std::size_t n = rtp::write_session_message(m, buf))
            transport_.send_to(asio::buffer(buf.data(), n), cfg_.relay);
    }

    void arm_hello() {
        hello_timer_.expires_after(live_ ? cfg_.hello_interval : std::chrono::milliseconds(100));
        hello_timer_.async_wait([this](std::error_code ec) {
            if (ec || !running_) return;
            send_hello(rtp::session_type::play);
            arm_hello();
        });
    }

    void receive() {
        transport_.async_receive_from(asio::buffer(rx_), rx_from_, [this](std::error_code ec, std::size_t n) {
            if (ec == asio::error::operation_aborted || !running_) return;
            if (!ec && rx_from_ == cfg_.relay) on_datagram(rtp::bytes_view(rx_.data(), n));
            receive();
        });
    }

    void on_datagram(rtp::bytes_view d) {
        if (rtp::is_rtcp(d)) {
            if (rtp::is_session_message(d)) on_session(d);
            return; // sender reports are used for A/V sync once playout buffers exist
        }
        rtp::packet_view p;
        if (rtp::parse(d, p)) {
            std::lock_guard lock(mu_);
            ++stats_.malformed;
            return;
        }
        if (live_ && desc_.video_rtx_ssrc && p.ssrc == desc_.video_rtx_ssrc && p.payload_type == desc_.video_rtx_pt) {
            std::size_t n = 0;
            if (qos::restore_rtx(p, desc_.video_ssrc, desc_.video_pt, restored_, n)) {
                std::lock_guard lock(mu_);
                ++stats_.malformed;
                return;
            }
            rtp::packet_view original;
            if (rtp::parse(rtp::bytes_view(restored_.data(), n), original)) {
                std::lock_guard lock(mu_);
                ++stats_.malformed;
                return;
            }
            {
                std::lock_guard lock(mu_);
                ++stats_.retransmissions;
                stats_.bytes += d.size();
            }
            return on_media(original, true);
        }
        {
            std::lock_guard lock(mu_);
            if (!live_ || (p.ssrc != desc_.video_ssrc && p.ssrc != desc_.audio_ssrc) ||
                (p.ssrc == desc_.video_ssrc && p.payload_type != desc_.video_pt) ||
                (p.ssrc == desc_.audio_ssrc && p.payload_type != desc_.audio_pt)) {
                ++stats_.unknown_packets;
                return;
            }
            ++stats_.packets;
            stats_.bytes += d.size();
            if (!first_packet_) first_packet_ = std::chrono::steady_clock::now();
        }
        on_media(p);
    }

    /// A media packet of the stream (original, or rebuilt from a retransmission).
    void on_media(const rtp::packet_view& p, bool retransmission = false) {
        if (p.ssrc == desc_.video_ssrc) {
            if (nack_.on_packet(p.sequence, std::chrono::steady_clock::now(), retransmission) ==
                qos::nack_generator::arrival::duplicate)
                return; // already had it (a late retransmission)
            vdepack_.push(p, media_kind::video, [this](encoded_frame&& f) {
                worker_.post([this, f = std::move(f)] { decode_video(f); });
            });
        } else {
            adepack_.push(p, media_kind::audio, [this](encoded_frame&& f) {
                worker_.post([this, f = std::move(f)] { decode_audio(f); });
            });
        }
        std::lock_guard lock(mu_);
        stats_.depacketizer_dropped = vdepack_.dropped() + adepack_.dropped();
    }

    void arm_nack() {
        nack_timer_.expires_after(cfg_.nack_interval);
        nack_timer_.async_wait([this](std::error_code ec) {
            if (ec || !running_) return;
            send_nacks();
            arm_nack();
        });
    }

    /// Requests the video holes that are due, and a keyframe when some were given up.
    void send_nacks() {
        if (!live_ || !desc_.video_ssrc || !desc_.video_rtx_ssrc) return;
        lost_.clear();
        nack_.collect(std::chrono::steady_clock::now(), nack_.rtt_estimate(), lost_);
        for (std::size_t done = 0; done < lost_.size();) {
            const std::size_t chunk = std::min<std::size_t>(lost_.size() - done, 250);
            std::array<std::uint8_t, 1200> buf;
            const std::size_t n = rtp::rtcp::write_nack(ssrc_, desc_.video_ssrc, std::span(lost_).subspan(done, chunk), buf);
            if (n) transport_.send_to(asio::buffer(buf.data(), n), cfg_.relay);
            done += chunk;
        }
        if (nack_.take_keyframe_request()) request_keyframe();
        const auto& ns = nack_.stats();
        std::lock_guard lock(mu_);
        stats_.video_packets_missing = ns.missing;
        stats_.video_packets_recovered = ns.recovered;
        stats_.video_packets_lost = ns.given_up;
        stats_.nack_requests = ns.requests;
        stats_.rtt_ms = std::chrono::duration<double, std::milli>(nack_.rtt_estimate()).count();
    }

    void on_session(rtp::bytes_view d) {
        rtp::session_message m;
        if (rtp::parse_session_message(d, m) || m.type != rtp::session_type::ack || m.stream.name != cfg_.stream) return;
        if (m.status != rtp::session_status::ok) return;
        std::lock_guard lock(mu_);
        if (live_ && m.stream == desc_) return;
        if (m.stream.video_ssrc && m.stream.video_codec != video_codec::encoding_name) return; // not ours to decode
        if (m.stream.audio_ssrc && m.stream.audio_codec != audio_codec::encoding_name) return;
        desc_ = m.stream;
        live_ = true;
        vdepack_ = {};
        adepack_ = {};
        nack_.reset();
    }

    void decode_video(const encoded_frame& f) {
        video_frame out;
        if (const auto ec = vdec_.decode(f, out)) {
            {
                std::lock_guard lock(mu_);
                ++stats_.decode_errors;
            }
            asio::post(transport_.get_executor(), [this] { request_keyframe(); });
            return;
        }
        out.capture_time = f.capture_time;
        sink_.on_video(out);
        const double latency = static_cast<double>((now() - f.capture_time).count()) / 1000.0;
        const auto rendered = std::chrono::steady_clock::now();
        std::lock_guard lock(mu_);
        // A freeze is a gap of more than 500 ms between rendered frames.
        if (last_render_) {
            const double gap = std::chrono::duration<double>(rendered - *last_render_).count();
            if (gap > 0.5) {
                ++stats_.freezes;
                stats_.frozen_s += gap;
            }
            stats_.playback_s += gap;
        }
        last_render_ = rendered;
        ++stats_.video_frames;
        if (f.capture_time != timestamp{}) stats_.latency_ms.add(latency);
    }

    void decode_audio(const encoded_frame& f) {
        audio_frame out;
        // Frames that never came are concealed, so playback keeps its 20 ms cadence
        // (bounded: a long outage is a restart, not seconds of concealment).
        if constexpr (requires { adec_.conceal(out); }) {
            constexpr std::uint32_t frame_ts = audio_frame::sample_rate / 50;
            if (last_audio_ts_) {
                const std::uint32_t delta = f.rtp_timestamp - *last_audio_ts_;
                const std::uint32_t missing = delta / frame_ts > 0 ? delta / frame_ts - 1 : 0;
                if (delta % frame_ts == 0 && missing > 0 && missing <= 50) {
                    for (std::uint32_t i = 0; i < missing; ++i) {
                        if (adec_.conceal(out)) break;
                        out.capture_time = f.capture_time - std::chrono::milliseconds(20 * (missing - i));
                        sink_.on_audio(out);
                        std::lock_guard lock(mu_);
                        ++stats_.audio_concealed;
                    }
                }
            }
            last_audio_ts_ = f.rtp_timestamp;
        }
        if (adec_.decode(f, out)) {
            std::lock_guard lock(mu_);
            ++stats_.decode_errors;
            return;
        }
        out.capture_time = f.capture_time;
        sink_.on_audio(out);
        std::lock_guard lock(mu_);
        ++stats_.audio_frames;
    }

    void request_keyframe() {
        if (!running_ || !live_) return;
        const auto t = std::chrono::steady_clock::now();
        if (last_pli_ && t - *last_pli_ < cfg_.keyframe_request_interval) return;
        last_pli_ = t;
        std::array<std::uint8_t, 64> buf;
        if (const std::size_t n = rtp::rtcp::write_pli(ssrc_, desc_.video_ssrc, buf)) {
            transport_.send_to(asio::buffer(buf.data(), n), cfg_.relay);
            std::lock_guard lock(mu_);
            ++stats_.keyframe_requests;
        }
    }

    Transport transport_;
    [[no_unique_address]] Sink sink_;
    config cfg_;
    steady_timer_for<typename Transport::executor_type> hello_timer_;
    steady_timer_for<typename Transport::executor_type> nack_timer_;
    std::uint32_t ssrc_;
    // Network thread state.
    typename video_codec::payload_format::depacketizer vdepack_;
    typename audio_codec::payload_format::depacketizer adepack_;
    std::array<std::uint8_t, max_datagram_size> rx_{};
    transport::endpoint rx_from_;
    std::optional<std::chrono::steady_clock::time_point> last_pli_;
    qos::nack_generator nack_;
    std::vector<std::uint16_t> lost_;
    std::array<std::uint8_t, max_datagram_size> restored_{};
    bool running_ = false;
    // Codec thread state.
    typename video_codec::decoder vdec_;
    typename audio_codec::decoder adec_;
    std::optional<std::uint32_t> last_audio_ts_;
    std::optional<std::chrono::steady_clock::time_point> last_render_; // under mu_
    // Shared, under mu_.
    mutable std::mutex mu_;
    rtp::stream_description desc_;
    bool live_ = false;
    viewer_stats stats_;
    std::optional<std::chrono::steady_clock::time_point> first_packet_;
    worker worker_; // last member: stops before the state above is destroyed
};

} // namespace onair
