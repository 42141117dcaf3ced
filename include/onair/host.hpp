// onair — basic_host: the publishing side. Frames pushed by the application (or a source)
// are encoded on a codec thread, packetized and sent to a relay node on the network thread.
#pragma once

#include "onair/codec/av.hpp"
#include "onair/core/error.hpp"
#include "onair/core/overloaded.hpp"
#include "onair/core/packet_buffer.hpp"
#include "onair/core/timer.hpp"
#include "onair/core/random.hpp"
#include "onair/core/scale.hpp"
#include "onair/core/time.hpp"
#include "onair/core/worker.hpp"
#include "onair/qos/congestion_controller.hpp"
#include "onair/relay/layer_meter.hpp"
#include "onair/qos/flexfec.hpp"
#include "onair/qos/red.hpp"
#include "onair/qos/retransmission_cache.hpp"
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
#include <cstring>
#include <span>
#include <string>
#include <utility>

namespace onair {

/// What a host has done so far. A snapshot; every field is read atomically.
struct host_stats {
    std::uint64_t video_frames_in = 0;      ///< pushed by the application
    std::uint64_t video_frames_dropped = 0; ///< refused because the encoder fell behind
    std::uint64_t video_frames_encoded = 0;
    std::uint64_t keyframes = 0;
    std::uint64_t keyframe_requests = 0;    ///< PLIs received
    std::uint64_t audio_frames_encoded = 0;
    std::uint64_t packets_sent = 0;
    std::uint64_t video_packets_sent = 0;   ///< of packets_sent (originals, not retransmissions)
    std::uint64_t bytes_sent = 0;           ///< RTP payload + headers
    std::uint64_t encode_errors = 0;
    std::uint64_t video_frames_before_publish = 0; ///< not sent: encoded before the relay acknowledged the stream (or before the key frame that follows)
    std::uint64_t audio_frames_before_publish = 0;
    std::uint64_t nacks_received = 0;
    std::uint64_t retransmissions = 0;      ///< RTX packets sent
    std::uint64_t retransmission_bytes = 0; ///< their datagram bytes (included in bytes_sent)
    std::uint64_t redundancy_bytes = 0;     ///< RED redundant blocks and headers (included in bytes_sent)
    std::uint64_t fec_packets = 0;          ///< FlexFEC repair packets sent
    std::uint64_t fec_bytes = 0;            ///< their datagram bytes (included in bytes_sent)
    std::uint64_t audio_retransmissions = 0; ///< audio RTX packets sent (included in retransmissions)
    double reported_loss = 0;               ///< video loss the relay reports (smoothed, 0..1): sets FEC protection
    double rtt_ms = 0;                      ///< round trip to the relay (RFC 3550, from its receiver reports)
    std::uint32_t fec_delta_per_10 = 0;     ///< FEC repair packets per 10 media packets now: delta frames
    std::uint32_t fec_key_per_10 = 0;       ///< and key frames
    // Congestion control (zero when off).
    std::int64_t target_bps = 0;            ///< the estimated bitrate of the path to the relay
    std::int64_t acked_bps = 0;             ///< what the relay's feedback says got through
    int video_target_kbps = 0;              ///< what the video encoder was last told
    std::uint64_t video_frames_shed = 0;    ///< encoded frames of upper temporal layers not sent (output over the estimate)
    double pacer_queue_ms = 0;              ///< age of the oldest packet waiting in the pacer
    std::uint64_t transport_feedback = 0;   ///< feedback messages taken
    std::uint64_t malformed_feedback = 0;   ///< feedback that did not parse, was repeated or absurd
    std::uint64_t overuses = 0;             ///< delay-based decreases
    std::uint64_t probes = 0;               ///< probe clusters sent
    std::uint64_t padding_packets = 0;
    std::uint64_t pacer_dropped = 0;        ///< packets the pacer's bounded queue gave up
    std::uint64_t retransmissions_limited = 0; ///< requested packets not resent: over the retransmission budget
    std::uint64_t video_frames_congested = 0;  ///< raw frames not encoded: the pacer was more than 150 ms behind (at most every other one)
    std::uint64_t resolution_changes = 0;      ///< encoder reopened at another picture size (adapt_resolution)
    bool published = false;                 ///< the relay acknowledged the publish hello
    bool refused = false;                   ///< the relay refused the stream name
    bool unauthorized = false;              ///< the relay wants a (valid) ticket from the room service
};

namespace detail {
/// Per-medium sending state, touched on the network thread only.
template <class Codec>
struct outgoing_media {
    typename Codec::payload_format::packetizer packetizer;
    std::uint32_t ssrc = 0;
    std::uint8_t payload_type = 0;
    std::uint16_t sequence = 0;
    std::uint32_t timestamp_offset = 0;
    std::uint32_t packets = 0;
    std::uint32_t octets = 0;
    bool sent_any = false;
    std::uint32_t last_rtp_timestamp = 0;
    timestamp last_capture{};
};
} // namespace detail

/// The publishing role.
///
/// @tparam Codec     codec::av<Video, Audio>, e.g. av<codec::vp8, codec::opus>
/// @tparam Transport a transport::transport
/// @tparam Sink      a sink::media_sink that sees every raw frame handed to the encoders
///                   (local preview or recording), on the codec thread
///
/// Thread safety: push_video/push_audio/stats may be called from any thread. start() and
/// stop() from the network thread or while it is not running. The host must outlive the
/// io_context's pending handlers (stop it, then destroy).
template <class Codec, class Transport = transport::udp, class Sink = sink::null>
class basic_host {
    static_assert(codec::check_av_codec<Codec>());
    static_assert(transport::transport<Transport>, "Transport type requirements not met (see onair/transport/concepts.hpp)");
    static_assert(sink::media_sink<Sink>, "Sink type requirements not met (see onair/sink/concepts.hpp)");

public:
    using video_codec = typename Codec::video;
    using audio_codec = typename Codec::audio;

    struct config {
        transport::endpoint relay;
        std::string stream;
        /// The room service's publish ticket (room_client::publish), for relays that admit
        /// only ticketed hellos; empty otherwise.
        std::string ticket;
        typename video_codec::config video{};
        typename audio_codec::config audio{};
        bool send_video = true;
        bool send_audio = true;
        /// Raw video frames allowed to wait for the encoder; beyond, push_video refuses.
        int max_pending_video = 4;
        std::chrono::milliseconds hello_interval{1000};
        std::chrono::milliseconds report_interval{1000};
        std::uint8_t video_payload_type = 96;
        std::uint8_t audio_payload_type = 111;
        std::uint8_t video_rtx_payload_type = 97;
        /// Video packets kept for retransmission (about 10 s at 1 Mbps).
        std::size_t retransmission_packets = 1024;
        /// Previous audio frames repeated in each audio packet (RFC 2198 RED), 0..2; 0 sends
        /// plain Opus. Each costs about one more audio payload per packet.
        std::size_t audio_redundancy = 0;
        std::uint8_t audio_red_payload_type = qos::red_payload_type;
        /// FlexFEC (RFC 8627) repair packets for video on their own SSRC, with protection
        /// following the loss the relay reports (qos::protection_for_loss); before the first
        /// report, the protection for `video_fec_initial_loss`.
        bool video_fec = true;
        std::uint8_t video_fec_payload_type = qos::flexfec_payload_type;
        double video_fec_initial_loss = 0;
        /// Audio packets kept for retransmission (RFC 4588, on their own SSRC): about 5 s.
        std::size_t audio_retransmission_packets = 256;
        std::uint8_t audio_rtx_payload_type = 98;
        /// Congestion control on the path to the relay (its transport-wide feedback): every
        /// packet goes out through a pacer, and the video encoder follows the estimated
        /// bitrate, from `start_bitrate_kbps` (probing upwards at once) up to
        /// video.bitrate_kbps. Off: packets go out as they are made, video at
        /// video.bitrate_kbps (a fixed-rate sender, as for measuring loss recovery alone).
        bool congestion_control = true;
        int start_bitrate_kbps = 300; ///< whole stream; 0: start at video.bitrate_kbps + audio
        int min_video_kbps = 50;
        /// With congestion control: let the video encoder step down when its share is too
        /// low: its rate control drops frames (video.drop_frame_threshold, 30 % if left at
        /// 0), and raw frames are not encoded while the pacer is 150 ms behind. Scaling the
        /// picture down is video.resize_allowed (off by default: each resize is a key frame).
        bool adapt_video = true;
        /// With congestion control: halve the picture (down to a quarter) while the video
        /// share is under 0.05 bits per pixel per frame, and double it back above 0.09
        /// (onair::resolution_ladder; each step is a key frame of the new size). Receivers
        /// see the size change in the stream; sinks that need one size (Y4M files) do not
        /// want it, so it is off by default.
        bool adapt_resolution = false;
        qos::pacer_config pacer{};
        /// Simulcast: encodings of the video sent at once, 1..3. The top one is `video` as
        /// configured; each lower one has half the width and height of the one above and
        /// `simulcast_rate_step` of its bitrate, its own SSRC, RTX SSRC and key frames. A relay
        /// forwards each viewer the encoding its link carries. Only the top one is FEC-protected.
        /// Not together with video.spatial_layers > 1 (VP9 SVC: one stream whose lower spatial
        /// layers a relay forwards the same way).
        int simulcast = 1;
        double simulcast_rate_step = 0.3;
    };

    /// Constructs the transport in place from `transport_args`.
    template <class... Args>
    basic_host(config cfg, Sink sink, Args&&... transport_args)
        : transport_(std::forward<Args>(transport_args)...), sink_(std::forward<Sink>(sink)), cfg_(std::move(cfg)),
          hello_timer_(transport_.get_executor()), report_timer_(transport_.get_executor()),
          pace_timer_(transport_.get_executor()), video_cache_(cfg_.retransmission_packets), audio_cache_(cfg_.audio_retransmission_packets),
          red_(cfg_.audio_redundancy), fec_(fec_config(cfg_, 0, 0)),
          cc_(cc_config(cfg_)) {
        video_.ssrc = (detail::random_u32() | 1u) & 0x7fff'ffffu;
        audio_.ssrc = video_.ssrc + 1;
        video_.payload_type = cfg_.video_payload_type;
        audio_.payload_type = cfg_.audio_payload_type;
        video_.sequence = static_cast<std::uint16_t>(detail::random_u32());
        audio_.sequence = static_cast<std::uint16_t>(detail::random_u32());
        video_.timestamp_offset = detail::random_u32();
        rtx_ssrc_ = video_.ssrc + 2;
        rtx_sequence_ = static_cast<std::uint16_t>(detail::random_u32());
        audio_rtx_ssrc_ = video_.ssrc + 4;
        audio_rtx_sequence_ = static_cast<std::uint16_t>(detail::random_u32());
        fec_ = qos::flexfec_encoder(fec_config(cfg_, video_.ssrc, static_cast<std::uint16_t>(detail::random_u32())));
        stats_.fec_delta = fec_.protection().delta.fec_packets;
        stats_.fec_key = fec_.protection().key.fec_packets;
        audio_.timestamp_offset = detail::random_u32();
        for (std::size_t i = 0; i < lower_.size(); ++i) {
            if (static_cast<int>(i) + 1 >= cfg_.simulcast) break;
            auto l = std::make_unique<lower_encoding>(cfg_.retransmission_packets / 2);
            l->media.ssrc = video_.ssrc + 5 + static_cast<std::uint32_t>(i);
            l->media.payload_type = cfg_.video_payload_type;
            l->media.sequence = static_cast<std::uint16_t>(detail::random_u32());
            l->media.timestamp_offset = video_.timestamp_offset; // one capture clock for all encodings
            l->rtx_ssrc = video_.ssrc + 7 + static_cast<std::uint32_t>(i);
            l->rtx_sequence = static_cast<std::uint16_t>(detail::random_u32());
            lower_[i] = std::move(l);
        }
    }
    basic_host(const basic_host&) = delete;
    basic_host& operator=(const basic_host&) = delete;
    ~basic_host() { worker_.join(); }

    /// Opens the encoders, announces the stream to the relay and starts the timers.
    std::error_code start() {
        if (cfg_.stream.empty() || cfg_.stream.size() > rtp::max_stream_name) return errc::unknown_stream;
        if (cfg_.send_video) {
            auto vc = cfg_.video;
            if (cfg_.congestion_control && cfg_.adapt_video) {
                if (vc.drop_frame_threshold == 0) vc.drop_frame_threshold = 30;
            }
            if (cfg_.simulcast < 1 || cfg_.simulcast > 3) return errc::codec_init_failed;
            // Spatial layers are the one stream's own simulcast: not both at once.
            if (cfg_.simulcast > 1 && cfg_.video.spatial_layers > 1) return errc::codec_init_failed;
            if (auto ec = venc_.open(vc)) return ec;
            encoder_config_ = vc;
            // Lower encodings: from the top one down, each half the size of the one above.
            auto lc = vc;
            for (std::size_t k = lower_count(); k-- > 0;) {
                lc.width = (lc.width + 1) / 2;
                lc.height = (lc.height + 1) / 2;
                lc.bitrate_kbps = std::max(1, static_cast<int>(lc.bitrate_kbps * cfg_.simulcast_rate_step));
                if (auto ec = lower_[k]->encoder.open(lc)) return ec;
                lower_[k]->max_kbps = lc.bitrate_kbps;
            }
        }
        if (cfg_.send_audio)
            if (auto ec = aenc_.open(cfg_.audio)) return ec;
        running_ = true;
        if (cfg_.congestion_control) apply_target(); // the start bitrate, until the first feedback
        receive();
        send_hello(rtp::session_type::publish);
        arm_hello();
        arm_report();
        return {};
    }

    /// The room service's publish ticket for the hellos (a participant learns it after the
    /// host exists). Call from the network thread, or before start().
    void set_ticket(std::string ticket) { cfg_.ticket = std::move(ticket); }

    /// Finishes encoding what was pushed, sends it, tells the relay the stream ends.
    /// Call from the network thread (or when it is not running).
    void stop() {
        if (!running_) return;
        running_ = false;
        worker_.join(); // encodes what is queued; the sends are posted to the network thread
        hello_timer_.cancel();
        report_timer_.cancel();
        asio::post(transport_.get_executor(), [this] {
            pace_timer_.cancel();
            flush_pacer(); // what the encoders made before stop() goes out
            send_hello(rtp::session_type::leave);
            transport_.close();
        });
    }

    /// Queues a raw frame for encoding; its capture_time should be set by the caller.
    std::error_code push_video(video_frame f) {
        if (!cfg_.send_video) return errc::unsupported;
        ++stats_.video_frames_in;
        if (pending_video_.fetch_add(1) >= cfg_.max_pending_video) {
            --pending_video_;
            ++stats_.video_frames_dropped;
            return errc::queue_full;
        }
        worker_.post([this, f = std::move(f)] {
            --pending_video_;
            sink_.on_video(f);
            if (cfg_.congestion_control && cfg_.adapt_video && !skipped_last_ &&
                stats_.pacer_queue_us.load(std::memory_order_relaxed) > static_cast<std::uint64_t>(pacer_congested.count())) {
                // The pacer still holds more than this of what was encoded: the path is
                // behind the encoder (its rate control lags a sudden drop). Not encoding this
                // frame is the frame-rate step down (at most every other frame: skipping
                // more would be a freeze of its own); it costs no reference (the encoder
                // never saw it).
                ++stats_.video_frames_congested;
                skipped_last_ = true;
                return;
            }
            skipped_last_ = false;
            const video_frame& in = encoder_input(f);
            if (key_requested_.exchange(false)) venc_.request_keyframe();
            const auto ec = venc_.encode(in, [this](encoded_frame&& ef) {
                // A picture of several spatial layers counts once, when its last layer is out.
                if (ef.end_of_picture) ++stats_.video_frames_encoded;
                if constexpr (sink::encoded_sink<Sink>) record(ef);
                if (ef.keyframe && ef.end_of_picture) ++stats_.keyframes;
                asio::post(transport_.get_executor(),
                           [this, ef = std::move(ef)] { send_frame(video_, ef); });
            });
            if (ec) ++stats_.encode_errors;
            encode_lower(f);
        });
        return {};
    }

    /// Queues PCM for encoding (any length; the encoder cuts 20 ms frames).
    std::error_code push_audio(audio_frame f) {
        if (!cfg_.send_audio) return errc::unsupported;
        worker_.post([this, f = std::move(f)] {
            sink_.on_audio(f);
            const auto ec = aenc_.encode(f, [this](encoded_frame&& ef) {
                ++stats_.audio_frames_encoded;
                if constexpr (sink::encoded_sink<Sink>) sink_.on_encoded(ef);
                asio::post(transport_.get_executor(),
                           [this, ef = std::move(ef)] { send_frame(audio_, ef); });
            });
            if (ec) ++stats_.encode_errors;
        });
        return {};
    }

    /// Changes the video bitrate at run time (applied on the codec thread). With congestion
    /// control on, the estimate overrides it at the next feedback; use the config's bounds.
    void set_video_bitrate(int kbps) {
        worker_.post([this, kbps] { venc_.set_bitrate(kbps); });
    }
    void request_keyframe() { key_requested_ = true; }

    host_stats stats() const {
        host_stats s;
        s.video_frames_in = stats_.video_frames_in;
        s.video_frames_dropped = stats_.video_frames_dropped;
        s.video_frames_encoded = stats_.video_frames_encoded;
        s.keyframes = stats_.keyframes;
        s.keyframe_requests = stats_.keyframe_requests;
        s.audio_frames_encoded = stats_.audio_frames_encoded;
        s.packets_sent = stats_.packets_sent;
        s.video_packets_sent = stats_.video_packets_sent;
        s.bytes_sent = stats_.bytes_sent;
        s.encode_errors = stats_.encode_errors;
        s.video_frames_before_publish = stats_.video_frames_before_publish;
        s.audio_frames_before_publish = stats_.audio_frames_before_publish;
        s.nacks_received = stats_.nacks_received;
        s.retransmissions = stats_.retransmissions;
        s.retransmission_bytes = stats_.retransmission_bytes;
        s.redundancy_bytes = stats_.redundancy_bytes;
        s.fec_packets = stats_.fec_packets;
        s.fec_bytes = stats_.fec_bytes;
        s.audio_retransmissions = stats_.audio_retransmissions;
        s.reported_loss = static_cast<double>(stats_.reported_loss_permille.load()) / 1000.0;
        s.fec_delta_per_10 = stats_.fec_delta;
        s.fec_key_per_10 = stats_.fec_key;
        s.rtt_ms = static_cast<double>(stats_.rtt_us.load()) / 1000.0;
        s.target_bps = stats_.target_bps;
        s.acked_bps = stats_.acked_bps;
        s.video_target_kbps = stats_.video_target_kbps;
        s.video_frames_shed = stats_.video_frames_shed;
        s.pacer_queue_ms = static_cast<double>(stats_.pacer_queue_us.load()) / 1000.0;
        s.transport_feedback = stats_.transport_feedback;
        s.malformed_feedback = stats_.malformed_feedback;
        s.overuses = stats_.overuses;
        s.probes = stats_.probes;
        s.padding_packets = stats_.padding_packets;
        s.pacer_dropped = stats_.pacer_dropped;
        s.retransmissions_limited = stats_.retransmissions_limited;
        s.video_frames_congested = stats_.video_frames_congested;
        s.resolution_changes = stats_.resolution_changes;
        s.published = stats_.published;
        s.refused = stats_.refused;
        s.unauthorized = stats_.unauthorized;
        return s;
    }

    rtp::stream_description description() const {
        rtp::stream_description d;
        d.name = cfg_.stream;
        if (cfg_.send_video) {
            d.video_ssrc = video_.ssrc;
            d.video_pt = video_.payload_type;
            d.video_codec = std::string(video_codec::encoding_name);
            d.video_rtx_ssrc = rtx_ssrc_;
            d.video_rtx_pt = cfg_.video_rtx_payload_type;
            if (cfg_.video_fec) {
                d.video_fec_ssrc = fec_ssrc(video_.ssrc);
                d.video_fec_pt = cfg_.video_fec_payload_type;
            }
            for (std::size_t i = 0; i < lower_count(); ++i) {
                d.video_lower_ssrcs[i] = lower_[i]->media.ssrc;
                d.video_lower_rtx_ssrcs[i] = lower_[i]->rtx_ssrc;
            }
        }
        if (cfg_.send_audio) {
            d.audio_ssrc = audio_.ssrc;
            d.audio_pt = audio_.payload_type;
            d.audio_codec = std::string(audio_codec::encoding_name);
            if (cfg_.audio_redundancy > 0) d.audio_red_pt = cfg_.audio_red_payload_type;
            // One RTX payload type: it stands for the payload type every audio packet has
            // (RED when on, Opus otherwise).
            d.audio_rtx_ssrc = audio_rtx_ssrc_;
            d.audio_rtx_pt = cfg_.audio_rtx_payload_type;
        }
        return d;
    }

    Transport& transport() noexcept { return transport_; }
    Sink& sink() noexcept { return sink_; }

private:
    /// A lower simulcast encoding: its encoder (codec thread) and sending state (network thread).
    struct lower_encoding {
        explicit lower_encoding(std::size_t cache_packets) : cache(cache_packets) {}
        typename video_codec::encoder encoder;
        detail::outgoing_media<video_codec> media;
        std::uint32_t rtx_ssrc = 0;
        std::uint16_t rtx_sequence = 0;
        qos::retransmission_cache cache;
        bool held_back = false;                 ///< network thread: waits for a key frame
        std::atomic<bool> key_requested{false};
        int max_kbps = 0;
        std::atomic<int> kbps{0};               ///< new share for the encoder (0: unchanged)
        int last_kbps = 0;                      ///< network thread: the share last given
        video_frame scaled;                     ///< codec thread: this encoding's input
    };
    struct atomic_stats {
        std::atomic<std::uint64_t> video_frames_in{0}, video_frames_dropped{0}, video_frames_encoded{0}, keyframes{0},
            keyframe_requests{0}, audio_frames_encoded{0}, packets_sent{0}, video_packets_sent{0}, bytes_sent{0}, encode_errors{0}, video_frames_before_publish{0},
            audio_frames_before_publish{0},
            nacks_received{0}, retransmissions{0}, retransmission_bytes{0}, redundancy_bytes{0}, fec_packets{0}, fec_bytes{0},
            audio_retransmissions{0}, reported_loss_permille{0}, transport_feedback{0}, malformed_feedback{0}, overuses{0},
            probes{0}, padding_packets{0}, pacer_dropped{0}, pacer_queue_us{0}, retransmissions_limited{0},
            video_frames_congested{0}, resolution_changes{0}, rtt_us{0}, video_frames_shed{0};
        std::atomic<std::int64_t> target_bps{0}, acked_bps{0};
        std::atomic<int> video_target_kbps{0};
        std::atomic<std::uint32_t> fec_delta{0}, fec_key{0};
        std::atomic<bool> published{false}, refused{false}, unauthorized{false};
    };

    template <class Media>
    void send_frame(Media& m, const encoded_frame& ef) {
        const std::uint32_t ts = ef.rtp_timestamp + m.timestamp_offset;
        const std::uint64_t ntp = to_ntp(ef.capture_time);
        const bool video = ef.kind == media_kind::video;
        lower_encoding* low = video ? lower_of(m) : nullptr; // null: the top encoding (or audio)
        bool& held_back = low ? low->held_back : held_back_video_;
        if (!stats_.published) {
            // Media that overtook the publish hello (a reordering path) would be dropped by
            // the relay as an unknown stream, and a key frame without its first packets
            // starts nobody: nothing goes out until the relay has the stream, and the first
            // video frame after that is a key frame.
            if (video) {
                if (!low && ef.end_of_picture) ++stats_.video_frames_before_publish;
                held_back = true;
            } else {
                ++stats_.audio_frames_before_publish;
            }
            return;
        }
        if (video && held_back) {
            // Frames encoded before the key frame asked for at the ack are still deltas.
            if (!ef.keyframe || ef.spatial_layer > 0) { // a key picture starts at its lowest layer
                if (!low && ef.end_of_picture) ++stats_.video_frames_before_publish;
                return;
            }
            held_back = false;
        }
        if (video && !low && shed(ef)) {
            ++stats_.video_frames_shed;
            return;
        }
        const bool red = !video && cfg_.audio_redundancy > 0;
        const auto t = std::chrono::steady_clock::now();
        m.packetizer.packetize(ef, rtp::max_payload_size, [&](rtp::bytes_view desc, rtp::bytes_view data, bool marker) {
            rtp::header h;
            h.marker = marker;
            h.payload_type = red ? cfg_.audio_red_payload_type : m.payload_type;
            h.sequence = m.sequence++;
            h.timestamp = ts;
            h.ssrc = m.ssrc;
            h.transport_sequence = transport_sequence_++;
            h.abs_capture_time = ntp;
            // One pooled buffer per packet: sent now, kept for retransmission (video).
            packet_ref pkt = pool_.acquire();
            auto buf = pkt.capacity();
            const std::size_t n = rtp::write_header(h, buf);
            if (n == 0 || buf.size() - n < desc.size() + data.size()) return;
            std::size_t payload_size = desc.size() + data.size();
            if (red) {
                // The primary (one Opus packet), then RED wraps it with the previous ones.
                std::array<std::uint8_t, rtp::max_payload_size> primary;
                if (payload_size > primary.size()) return;
                if (!desc.empty()) std::memcpy(primary.data(), desc.data(), desc.size());
                if (!data.empty()) std::memcpy(primary.data() + desc.size(), data.data(), data.size());
                payload_size = red_.encode(m.payload_type, ts, rtp::bytes_view(primary.data(), desc.size() + data.size()),
                                           buf.subspan(n, std::min(buf.size() - n, rtp::max_payload_size)));
                if (payload_size == 0) return;
                stats_.redundancy_bytes += payload_size - (desc.size() + data.size());
            } else {
                if (!desc.empty()) std::memcpy(buf.data() + n, desc.data(), desc.size());
                if (!data.empty()) std::memcpy(buf.data() + n + desc.size(), data.data(), data.size());
            }
            pkt.resize(n + payload_size);
            ++m.packets;
            m.octets += static_cast<std::uint32_t>(payload_size);
            ++stats_.packets_sent;
            if (video) ++stats_.video_packets_sent;
            stats_.bytes_sent += pkt.size();
            if (video) {
                (low ? low->cache : video_cache_).store(h.sequence, pkt, t);
                const rtp::bytes_view sent(pkt.bytes().data(), pkt.size());
                out(std::move(pkt), qos::pacer_priority::video);
                if (cfg_.video_fec && !low) protect(sent, ef.keyframe); // the cache holds the buffer
            } else {
                audio_cache_.store(h.sequence, pkt, t);
                out(std::move(pkt), qos::pacer_priority::audio);
            }
        });
        pace();
        m.sent_any = true;
        m.last_rtp_timestamp = ts;
        m.last_capture = ef.capture_time;
    }

    /// Hands a sent video packet to the FlexFEC encoder; repair packets it completes go
    /// out right after it.
    void protect(rtp::bytes_view media, bool keyframe) {
        (void)fec_.add(media, keyframe, [this](rtp::bytes_view repair) {
            if (repair.size() > max_datagram_size) return;
            packet_ref pkt = pool_.acquire();
            std::memcpy(pkt.capacity().data(), repair.data(), repair.size());
            pkt.resize(repair.size());
            out(std::move(pkt), qos::pacer_priority::fec);
            ++stats_.fec_packets;
            stats_.fec_bytes += repair.size();
            stats_.bytes_sent += repair.size();
        });
    }

    static std::uint32_t fec_ssrc(std::uint32_t video_ssrc) noexcept { return video_ssrc + 3; }
    static qos::flexfec_encoder::config fec_config(const config& c, std::uint32_t video_ssrc, std::uint16_t first_sequence) {
        qos::flexfec_encoder::config f;
        f.media_ssrc = video_ssrc;
        f.fec_ssrc = fec_ssrc(video_ssrc);
        f.first_sequence = first_sequence;
        f.payload_type = c.video_fec_payload_type;
        f.protection = qos::protection_for_loss(c.video_fec_initial_loss);
        f.transport_sequence = c.congestion_control; // an element for the pacer to stamp
        return f;
    }
    void set_fec_protection(const qos::fec_protection& p) {
        fec_.set_protection(p);
        stats_.fec_delta = fec_.protection().delta.fec_packets;
        stats_.fec_key = fec_.protection().key.fec_packets;
    }

    /// The relay's receiver report on the video stream: its fraction lost (before repair)
    /// sets the FEC protection, and whether retransmissions go twice.
    void on_report_block(const rtp::rtcp::report_block& b) {
        if (b.ssrc != video_.ssrc) return;
        // RFC 3550 round trip from our SR the relay echoes: paces the estimator's increase.
        if (const auto rtt = rtp::rtcp::round_trip_time(b, static_cast<std::uint32_t>(to_ntp(now()) >> 16)); rtt && *rtt < std::chrono::seconds(10)) {
            cc_.set_rtt(*rtt);
            stats_.rtt_us = static_cast<std::uint64_t>(rtt->count());
        }
        const double loss = loss_.on_report(b.fraction_lost);
        stats_.reported_loss_permille = static_cast<std::uint64_t>(loss * 1000.0 + 0.5);
        if (!cfg_.video_fec) return;
        const auto p = qos::protection_for_loss(loss);
        if (p != fec_.protection()) set_fec_protection(p);
    }

    /// Answers a NACK from the relay with RFC 4588 retransmissions from the cache.
    void on_nack(const rtp::rtcp::nack& nack, bool video, lower_encoding* low = nullptr) {
        ++stats_.nacks_received;
        const auto t = std::chrono::steady_clock::now();
        auto& cache = low ? low->cache : video ? video_cache_ : audio_cache_;
        nack.for_each([&](std::uint16_t seq) {
            packet_ref original = cache.take_for_resend(seq, t);
            if (!original) return;
            rtp::packet_view p;
            if (rtp::parse(original.bytes(), p)) return;
            packet_ref rtx = pool_.acquire();
            const std::size_t n =
                low     ? qos::write_rtx(p, low->rtx_ssrc, cfg_.video_rtx_payload_type, low->rtx_sequence++, rtx.capacity())
                : video ? qos::write_rtx(p, rtx_ssrc_, cfg_.video_rtx_payload_type, rtx_sequence_++, rtx.capacity())
                        : qos::write_rtx(p, audio_rtx_ssrc_, cfg_.audio_rtx_payload_type, audio_rtx_sequence_++, rtx.capacity());
            if (n == 0) return;
            rtx.resize(n);
            int copies = loss_.repair_copies();
            if (cfg_.congestion_control) {
                // Retransmissions share the path with the media: at most half the target
                // (over a 1 s bucket). A congested path that drops packets must not be
                // answered with more of them.
                refill_rtx_budget(t);
                copies = std::min<int>(copies, static_cast<int>(rtx_budget_ / static_cast<double>(n)));
                if (copies <= 0) {
                    ++stats_.retransmissions_limited;
                    return;
                }
                rtx_budget_ -= static_cast<double>(n) * copies;
            }
            // Each copy is its own datagram on the wire (and gets its own transport-wide
            // number as it leaves the pacer).
            for (int c = 0; c < copies; ++c) out(rtx, qos::pacer_priority::retransmission);
            stats_.retransmissions += static_cast<std::uint64_t>(copies);
            if (!video) stats_.audio_retransmissions += static_cast<std::uint64_t>(copies);
            stats_.retransmission_bytes += n * static_cast<std::uint64_t>(copies);
            stats_.bytes_sent += n * static_cast<std::uint64_t>(copies);
        });
        pace();
    }

    /// Codec thread: the frame the encoder gets, at the size the resolution ladder chose
    /// for the current video share (the encoder is reopened at a new size).
    const video_frame& encoder_input(const video_frame& f) {
        if (!cfg_.congestion_control || !cfg_.adapt_resolution) return f;
        const int d = ladder_.update(f.width, f.height, cfg_.video.fps, video_share_kbps_.load(std::memory_order_relaxed),
                                     std::chrono::steady_clock::now());
        if (d != encoder_divisor_) {
            auto vc = encoder_config_;
            vc.width = d >= 2 ? (f.width + 1) / 2 : f.width;
            vc.height = d >= 2 ? (f.height + 1) / 2 : f.height;
            if (d >= 4) {
                vc.width = (vc.width + 1) / 2;
                vc.height = (vc.height + 1) / 2;
            }
            vc.bitrate_kbps = std::max(video_share_kbps_.load(std::memory_order_relaxed), 1);
            if (venc_.open(vc)) {
                ++stats_.encode_errors;
                (void)venc_.open(encoder_config_); // back to the full size
                encoder_divisor_ = 1;
                return f;
            }
            encoder_divisor_ = d;
            ++stats_.resolution_changes;
        }
        if (d == 1) return f;
        downscale_half(f, half_);
        if (d == 2) return half_;
        downscale_half(half_, quarter_);
        return quarter_;
    }

    // ---- pacing and congestion control (network thread) ----

    static qos::congestion_controller_config cc_config(const config& c) {
        qos::congestion_controller_config cc;
        cc.pacer = c.pacer;
        const std::int64_t audio = c.send_audio ? audio_bps(c) : 0;
        std::int64_t video_max = c.send_video ? std::int64_t{c.video.bitrate_kbps} * 1000 : 0;
        for (int k = 1, rate = c.video.bitrate_kbps; k < std::clamp(c.simulcast, 1, 3); ++k) { // the lower encodings' bitrates too
            rate = std::max(1, static_cast<int>(rate * c.simulcast_rate_step));
            video_max += std::int64_t{rate} * 1000;
        }
        cc.bwe.max_bps = std::max<std::int64_t>(audio + video_max * 3 / 2, 100'000); // FEC and repairs on top of video
        cc.bwe.min_bps = std::min<std::int64_t>(audio + std::int64_t{c.min_video_kbps} * 1000, cc.bwe.max_bps);
        cc.bwe.start_bps = c.start_bitrate_kbps > 0 ? std::int64_t{c.start_bitrate_kbps} * 1000 : audio + video_max;
        return cc;
    }
    /// What the audio stream takes on the wire: the encoder's rate, RED copies, and about 40
    /// bytes of RTP header and extensions per 20 ms packet.
    static std::int64_t audio_bps(const config& c) {
        const std::int64_t payload = std::int64_t{std::max(c.audio.bitrate_kbps, 0)} * 1000;
        return payload * static_cast<std::int64_t>(1 + c.audio_redundancy) + 50 * 40 * 8;
    }

    void refill_rtx_budget(std::chrono::steady_clock::time_point t) {
        const double rate = static_cast<double>(cc_.target_bps()) * rtx_share / 8.0; // bytes per second
        if (rtx_refilled_ != std::chrono::steady_clock::time_point{})
            rtx_budget_ += rate * std::chrono::duration<double>(t - rtx_refilled_).count();
        else
            rtx_budget_ = rate;
        rtx_budget_ = std::min(rtx_budget_, rate); // at most a second's worth
        rtx_refilled_ = t;
    }

    /// Hands a packet to the wire: through the pacer with congestion control, at once without.
    void out(packet_ref pkt, qos::pacer_priority prio) {
        if (!cfg_.congestion_control) {
            transport_.send_to(asio::buffer(pkt.bytes().data(), pkt.size()), cfg_.relay);
            return;
        }
        if (!cc_.enqueue(std::move(pkt), prio, std::chrono::steady_clock::now())) ++stats_.pacer_dropped;
    }

    /// Sends what the pacer releases now and sets the timer for the next burst.
    void pace() {
        // Nothing is measured before the relay has the stream: it drops what it does not know.
        if (!cfg_.congestion_control || !stats_.published) return;
        const auto now = std::chrono::steady_clock::now();
        cc_.process(
            now, [this](std::span<const std::uint8_t> d) { transport_.send_to(asio::buffer(d.data(), d.size()), cfg_.relay); },
            [this](std::size_t want) { return make_padding(want); });
        const auto& ps = cc_.pacing().stats();
        stats_.probes = ps.probe_clusters_started;
        stats_.padding_packets = cc_.padding_packets();
        stats_.pacer_queue_us = static_cast<std::uint64_t>(cc_.pacing().queue_delay(now).count());
        arm_pace(cc_.next_process_time(now));
    }
    void arm_pace(std::chrono::steady_clock::time_point at) {
        if (at == std::chrono::steady_clock::time_point::max() || !running_) return;
        if (pace_at_ != std::chrono::steady_clock::time_point::max() && pace_at_ <= at) return; // sooner one pending
        pace_at_ = at;
        pace_timer_.expires_at(at);
        pace_timer_.async_wait([this, at](std::error_code ec) {
            if (ec || pace_at_ != at) return; // replaced by a sooner one, or cancelled
            pace_at_ = std::chrono::steady_clock::time_point::max();
            pace();
        });
    }
    /// At stop: what is queued goes out now (the relay is told the stream ends right after).
    void flush_pacer() {
        if (!cfg_.congestion_control) return;
        auto t = std::chrono::steady_clock::now();
        for (int i = 0; i < 10'000 && cc_.pacing().queued_packets() > 0; ++i) {
            t += std::chrono::milliseconds(5);
            cc_.process(
                t, [this](std::span<const std::uint8_t> d) { transport_.send_to(asio::buffer(d.data(), d.size()), cfg_.relay); },
                [](std::size_t) { return packet_ref{}; });
        }
    }

    /// A padding-only packet on the video RTX SSRC (RFC 3550 padding, no payload): probes
    /// the path when no media is queued. The relay counts and drops it.
    packet_ref make_padding(std::size_t want) {
        if (!cfg_.send_video) return {};
        rtp::header h;
        h.payload_type = cfg_.video_rtx_payload_type;
        h.sequence = rtx_sequence_++;
        h.timestamp = video_.last_rtp_timestamp;
        h.ssrc = rtx_ssrc_;
        h.transport_sequence = 0;
        packet_ref pkt = pool_.acquire();
        auto buf = pkt.capacity();
        const std::size_t n = rtp::write_header(h, buf);
        if (n == 0) return {};
        const std::size_t pad = std::clamp<std::size_t>(want > n ? want - n : 1, 1, 255);
        buf[0] = static_cast<std::uint8_t>(buf[0] | 0x20);
        std::memset(buf.data() + n, 0, pad - 1);
        buf[n + pad - 1] = static_cast<std::uint8_t>(pad);
        pkt.resize(n + pad);
        stats_.bytes_sent += n + pad;
        return pkt;
    }

    /// Transport-wide feedback from the relay: a new estimate, shared out to the encoders.
    void on_transport_feedback(rtp::bytes_view fci) {
        if (!cfg_.congestion_control) return;
        const auto now = std::chrono::steady_clock::now();
        if (cc_.on_feedback(fci, now)) ++stats_.transport_feedback;
        const auto& bs = cc_.estimator().stats();
        stats_.malformed_feedback = bs.malformed + bs.repeated + bs.absurd;
        stats_.overuses = bs.overuses;
        stats_.target_bps = cc_.target_bps();
        stats_.acked_bps = bs.acked_bps;
        apply_target();
        pace(); // a probe may be due
    }

    /// Hands an encoded frame to the sink: a picture of several spatial layers as one frame
    /// (its layer frames in order, which decode to the top layer, as a viewer receives it).
    void record(const encoded_frame& ef) {
        if constexpr (sink::encoded_sink<Sink>) {
            if (ef.spatial_layers <= 1) return sink_.on_encoded(ef);
            if (ef.spatial_layer == 0) {
                recorded_ = ef;
            } else {
                recorded_.data.insert(recorded_.data.end(), ef.data.begin(), ef.data.end());
                recorded_.spatial_layer = ef.spatial_layer;
                recorded_.width = ef.width;
                recorded_.height = ef.height;
                recorded_.inter_layer = false;
            }
            if (!ef.end_of_picture) return;
            recorded_.end_of_picture = true;
            sink_.on_encoded(recorded_);
        }
    }

    /// With temporal layers and congestion control, frames of the upper layers are not sent
    /// while what the encoder produces (measured per layer over the last second) exceeds the
    /// video share of the estimate: the rate falls at once by their share (TL2 40 %, TL1 20 %
    /// of a 3-layer stream), and the frames still sent decode, since nothing references a
    /// frame that was left out. The encoder's own rate control follows more slowly; as its
    /// output comes down the layers come back (each from its next frame after a base layer
    /// frame). A left-out TL1 frame takes the TL2 frames after it (they may reference it) up
    /// to the next base layer frame.
    /// A picture of several spatial layers is decided at its lowest layer frame, and the
    /// rest of it follows (its marker is on the last layer's last packet).
    bool shed(const encoded_frame& ef) {
        const auto now = std::chrono::steady_clock::now();
        const std::size_t packets = ef.data.size() / rtp::max_payload_size + 1;
        produced_.add(0, ef.temporal_layer, ef.data.size() + packets * 40, now); // with about 40 header bytes a packet
        if (ef.spatial_layer > 0) return shed_picture_;
        shed_picture_ = shed_frame(ef, now);
        return shed_picture_;
    }
    bool shed_frame(const encoded_frame& ef, std::chrono::steady_clock::time_point now) {
        if (!cfg_.congestion_control || !cfg_.adapt_video || cfg_.video.temporal_layers < 2) return false;
        if (ef.keyframe || ef.temporal_layer == 0) {
            // The layers allowed until the next base layer frame.
            const std::int64_t budget = std::int64_t{video_kbps_ > 0 ? video_kbps_ : cfg_.video.bitrate_kbps} * 1000;
            allowed_layer_ = 0;
            for (std::size_t t = 1; t < static_cast<std::size_t>(cfg_.video.temporal_layers); ++t)
                if (produced_.rate_bps(0, t, now) <= budget) allowed_layer_ = static_cast<std::uint8_t>(t);
            return false;
        }
        // Between base layer frames the allowed layer only goes down (a sudden drop of the
        // estimate): the top layer's frames are referenced by nothing, so shedding them now is safe.
        const std::int64_t budget = std::int64_t{video_kbps_ > 0 ? video_kbps_ : cfg_.video.bitrate_kbps} * 1000;
        if (allowed_layer_ > 1 && produced_.rate_bps(0, allowed_layer_, now) > budget * 5 / 4) allowed_layer_ = 1;
        return ef.temporal_layer > allowed_layer_;
    }

    /// Splits the target among audio, FEC and video; tells the video encoder when its share
    /// moved by 5 % or more.
    void apply_target() {
        if (!cfg_.send_video) return;
        const double fec_fraction = cfg_.video_fec ? static_cast<double>(fec_.protection().delta.fec_packets) / 10.0 : 0.0;
        const auto split = qos::split_bitrate(cc_.target_bps(), cfg_.send_audio ? audio_bps(cfg_) : 0, fec_fraction,
                                              std::int64_t{cfg_.min_video_kbps} * 1000, video_max_kbps() * 1000);
        int kbps = static_cast<int>(split.video_bps / 1000);
        // Simulcast: the lower encodings first (each up to its own bitrate), the top one the rest.
        for (std::size_t i = 0; i < lower_count(); ++i) {
            auto& l = *lower_[i];
            const int give = std::clamp(kbps - cfg_.min_video_kbps, 1, l.max_kbps);
            if (std::abs(give - l.last_kbps) * 20 >= std::max(l.last_kbps, 1)) {
                l.last_kbps = give;
                l.kbps.store(give, std::memory_order_relaxed);
            }
            kbps = std::max(kbps - give, cfg_.min_video_kbps);
        }
        if (video_kbps_ != 0 && std::abs(kbps - video_kbps_) * 20 < video_kbps_) return;
        video_kbps_ = kbps;
        stats_.video_target_kbps = kbps;
        video_share_kbps_.store(kbps, std::memory_order_relaxed);
        worker_.post([this, kbps] { venc_.set_bitrate(kbps); });
    }

    void send_hello(rtp::session_type type) {
        rtp::session_message m;
        m.type = type;
        m.sender_ssrc = video_.ssrc;
        m.stream = description();
        m.ticket = cfg_.ticket;
        std::array<std::uint8_t, 1024> buf;
        if (const std::size_t n = rtp::write_session_message(m, buf))
            transport_.send_to(asio::buffer(buf.data(), n), cfg_.relay);
    }

    void arm_hello() {
        // Until acknowledged, repeat quickly; afterwards the hello is a keepalive.
        hello_timer_.expires_after(stats_.published ? cfg_.hello_interval : std::chrono::milliseconds(100));
        hello_timer_.async_wait([this](std::error_code ec) {
            if (ec || !running_) return;
            send_hello(rtp::session_type::publish);
            arm_hello();
        });
    }

    template <class Media, class ClockRate>
    void send_report(Media& m, ClockRate clock_rate) {
        if (!m.sent_any) return;
        const timestamp t = now();
        rtp::rtcp::sender_report sr;
        sr.ssrc = m.ssrc;
        sr.ntp_timestamp = to_ntp(t);
        const auto elapsed_us = (t - m.last_capture).count();
        sr.rtp_timestamp = m.last_rtp_timestamp +
                           static_cast<std::uint32_t>(elapsed_us * static_cast<std::int64_t>(clock_rate) / 1'000'000);
        sr.packet_count = m.packets;
        sr.octet_count = m.octets;
        // Compound: SR then SDES with the stream name as CNAME (RFC 3550 §6.1).
        std::array<std::uint8_t, 512> buf;
        const std::size_t n = rtp::rtcp::write_sender_report(sr, buf);
        if (n == 0) return;
        const std::size_t c = rtp::rtcp::write_sdes_cname(m.ssrc, cfg_.stream, std::span(buf).subspan(n));
        if (c == 0) return;
        transport_.send_to(asio::buffer(buf.data(), n + c), cfg_.relay);
    }

    void arm_report() {
        report_timer_.expires_after(cfg_.report_interval);
        report_timer_.async_wait([this](std::error_code ec) {
            if (ec || !running_) return;
            send_report(video_, video_codec::clock_rate);
            for (std::size_t i = 0; i < lower_count(); ++i) send_report(lower_[i]->media, video_codec::clock_rate);
            send_report(audio_, audio_codec::clock_rate);
            arm_report();
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
        if (!rtp::is_rtcp(d)) return;
        if (rtp::is_session_message(d)) {
            rtp::session_message m;
            if (rtp::parse_session_message(d, m) || m.type != rtp::session_type::ack || m.stream.name != cfg_.stream)
                return;
            if (m.status == rtp::session_status::ok && !stats_.published.exchange(true)) {
                if (held_back_video_) key_requested_ = true;
                for (std::size_t i = 0; i < lower_count(); ++i)
                    if (lower_[i]->held_back) lower_[i]->key_requested = true;
            }
            else if (m.status == rtp::session_status::refused) stats_.refused = true;
            else if (m.status == rtp::session_status::unauthorized) stats_.unauthorized = true;
            return;
        }
        rtp::rtcp::parse_counts counts;
        (void)rtp::rtcp::parse_compound(d,
                                        overloaded{
                                            [this](const rtp::rtcp::pli& pli) {
                                                if (pli.media_ssrc == video_.ssrc) {
                                                    ++stats_.keyframe_requests;
                                                    key_requested_ = true;
                                                } else if (auto* l = lower_by_ssrc(pli.media_ssrc)) {
                                                    ++stats_.keyframe_requests;
                                                    l->key_requested = true;
                                                }
                                            },
                                            [this](const rtp::rtcp::nack& nack) {
                                                if (nack.media_ssrc == video_.ssrc) on_nack(nack, true);
                                                else if (auto* l = lower_by_ssrc(nack.media_ssrc)) on_nack(nack, true, l);
                                                else if (nack.media_ssrc == audio_.ssrc) on_nack(nack, false);
                                            },
                                            [this](const rtp::rtcp::receiver_report& rr) {
                                                for (const auto& b : rr.blocks) on_report_block(b);
                                            },
                                            [this](const rtp::rtcp::sender_report& sr) {
                                                for (const auto& b : sr.blocks) on_report_block(b);
                                            },
                                            [this](const rtp::rtcp::feedback& f) {
                                                if (f.type == rtp::rtcp::type_rtpfb && f.fmt == rtp::twcc::fmt) on_transport_feedback(f.fci);
                                            },
                                        },
                                        counts);
    }

    Transport transport_;
    [[no_unique_address]] Sink sink_;
    config cfg_;
    steady_timer_for<typename Transport::executor_type> hello_timer_;
    steady_timer_for<typename Transport::executor_type> report_timer_;
    steady_timer_for<typename Transport::executor_type> pace_timer_;
    // Codec thread state.
    typename video_codec::encoder venc_;
    /// The top encoding's bitrate and the lower ones'.
    std::int64_t video_max_kbps() const noexcept {
        std::int64_t k = cfg_.video.bitrate_kbps;
        for (std::size_t i = 0; i < lower_count(); ++i) k += lower_[i]->max_kbps;
        return k;
    }
    std::size_t lower_count() const noexcept { return static_cast<std::size_t>(std::clamp(cfg_.simulcast, 1, 3) - 1); }
    template <class Media>
    lower_encoding* lower_of(Media& m) noexcept {
        for (std::size_t i = 0; i < lower_count(); ++i)
            if (static_cast<void*>(&lower_[i]->media) == static_cast<void*>(&m)) return lower_[i].get();
        return nullptr;
    }
    lower_encoding* lower_by_ssrc(std::uint32_t ssrc) noexcept {
        for (std::size_t i = 0; i < lower_count(); ++i)
            if (lower_[i]->media.ssrc == ssrc) return lower_[i].get();
        return nullptr;
    }

    /// Codec thread: the lower encodings of a raw frame, from the top down (each input is
    /// the one above, halved).
    void encode_lower(const video_frame& f) {
        const video_frame* above = &f;
        for (std::size_t k = lower_count(); k-- > 0;) {
            lower_encoding& l = *lower_[k];
            downscale_half(*above, l.scaled);
            above = &l.scaled;
            if (const int kbps = l.kbps.exchange(0, std::memory_order_relaxed); kbps > 0) l.encoder.set_bitrate(kbps);
            if (l.key_requested.exchange(false)) l.encoder.request_keyframe();
            const auto ec = l.encoder.encode(l.scaled, [this, &l](encoded_frame&& ef) {
                asio::post(transport_.get_executor(), [this, &l, ef = std::move(ef)] { send_frame(l.media, ef); });
            });
            if (ec) ++stats_.encode_errors;
        }
    }
    typename audio_codec::encoder aenc_;
    // Network thread state.
    detail::outgoing_media<video_codec> video_;
    detail::outgoing_media<audio_codec> audio_;
    std::uint16_t transport_sequence_ = 0;
    packet_pool pool_;
    qos::retransmission_cache video_cache_;
    std::array<std::unique_ptr<lower_encoding>, 2> lower_{}; ///< [0] the lowest (after pool_: their caches hold its buffers)
    qos::retransmission_cache audio_cache_;
    qos::red_encoder red_;
    qos::flexfec_encoder fec_;
    qos::congestion_controller cc_;
    std::chrono::steady_clock::time_point pace_at_ = std::chrono::steady_clock::time_point::max(); ///< pace_timer_ armed for
    int video_kbps_ = 0; ///< last bitrate given to the video encoder (network thread's view)
    static constexpr std::chrono::microseconds pacer_congested{150'000}; ///< pacer queue age that skips frames
    static constexpr double rtx_share = 0.5; ///< of the target, for retransmissions (congestion control on)
    double rtx_budget_ = 0;                  ///< bytes
    std::chrono::steady_clock::time_point rtx_refilled_{};
    qos::loss_estimate loss_;
    std::uint32_t rtx_ssrc_ = 0;
    std::uint16_t rtx_sequence_ = 0;
    std::uint32_t audio_rtx_ssrc_ = 0;
    std::uint16_t audio_rtx_sequence_ = 0;
    bool held_back_video_ = false; ///< video was held back: wait for a key frame
    std::array<std::uint8_t, max_datagram_size> rx_{};
    transport::endpoint rx_from_;
    bool running_ = false;
    // Codec thread state (resolution steps).
    typename video_codec::config encoder_config_{};
    resolution_ladder ladder_;
    int encoder_divisor_ = 1;
    relay::layer_meter produced_;    ///< what the encoder produced per temporal layer (network thread)
    std::uint8_t allowed_layer_ = 7; ///< temporal layers above this are not sent (until the next base layer frame)
    bool shed_picture_ = false;      ///< the decision for the picture whose layer frames are being sent
    encoded_frame recorded_;         ///< codec thread: the layer frames of a picture so far, for the sink
    bool skipped_last_ = false; ///< the previous raw frame was not encoded (pacer congested)
    video_frame half_, quarter_;
    // Shared.
    std::atomic<int> video_share_kbps_{0};
    std::atomic<int> pending_video_{0};
    std::atomic<bool> key_requested_{false};
    atomic_stats stats_;
    worker worker_; // last member: its thread stops before the state above is destroyed
};

} // namespace onair
