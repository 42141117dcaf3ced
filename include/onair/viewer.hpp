// onair — basic_viewer: the playing side. Receives a stream from a relay node, repairs loss
// (NACK/RTX, RED), reassembles frames and schedules their playout on the network thread:
// video through qos::frame_buffer (only decodable frames, at their render time), audio
// through qos::audio_jitter_buffer (one 20 ms decision per period: decode, FEC, conceal),
// the two kept in step by qos::lip_sync from the sender reports. Decoding and the sink run
// on a codec thread.
#pragma once

#include "onair/codec/av.hpp"
#include "onair/core/error.hpp"
#include "onair/core/timer.hpp"
#include "onair/core/packet_buffer.hpp"
#include "onair/core/random.hpp"
#include "onair/core/stats.hpp"
#include "onair/core/time.hpp"
#include "onair/core/worker.hpp"
#include "onair/core/overloaded.hpp"
#include "onair/qos/flexfec.hpp"
#include "onair/qos/frame_buffer.hpp"
#include "onair/qos/jitter_buffer.hpp"
#include "onair/qos/lip_sync.hpp"
#include "onair/qos/nack_generator.hpp"
#include "onair/qos/receive_statistics.hpp"
#include "onair/qos/red.hpp"
#include "onair/qos/rtx.hpp"
#include "onair/qos/transport_feedback_generator.hpp"
#include "onair/rtp/keyframe.hpp"
#include "onair/rtp/opus.hpp"
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
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <span>
#include <type_traits>
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
    std::uint64_t audio_frames = 0;    ///< decoded (FEC included) and handed to the sink
    std::uint64_t audio_played = 0;    ///< 20 ms frames handed to the sink: decoded, concealed or comfort noise
    std::uint64_t decode_errors = 0;
    std::uint64_t keyframe_requests = 0;
    std::uint64_t depacketizer_dropped = 0;
    std::uint64_t video_packets_missing = 0;   ///< holes seen in the video sequence (loss before recovery)
    std::uint64_t video_packets_recovered = 0; ///< holes filled by retransmission or FEC (before or after the request)
    std::uint64_t video_fec_recovered = 0;     ///< packets rebuilt from FlexFEC repair packets
    std::uint64_t fec_packets = 0;             ///< FlexFEC repair packets received
    std::uint64_t audio_packets_missing = 0;   ///< holes in the audio sequence
    std::uint64_t audio_nack_requests = 0;
    std::uint64_t audio_retransmissions = 0;   ///< audio RTX packets received
    std::uint64_t video_packets_lost = 0;      ///< holes given up on (loss after recovery)
    std::uint64_t nack_requests = 0;           ///< sequence numbers requested
    std::uint64_t retransmissions = 0;         ///< RTX packets received
    double rtt_ms = 0;                         ///< from request-to-retransmission times
    std::uint64_t audio_concealed = 0;         ///< 20 ms frames produced by loss concealment (PLC)
    /// Gaps > 500 ms between rendered video frames. A gap still open counts too, up to the
    /// last video packet received: a viewer that gets packets but renders nothing is frozen
    /// (a stream that ended is not).
    std::uint64_t freezes = 0;
    double frozen_s = 0;                       ///< total length of those gaps
    double longest_freeze_s = 0;               ///< the longest of them
    std::uint64_t relay_moves = 0;             ///< moves to a fallback relay (failover)
    double playback_s = 0;                     ///< first rendered video frame to the last (or to the last packet, in an open gap)
    double freeze_ratio() const noexcept { return playback_s > 0 ? frozen_s / playback_s : 0.0; }
    double concealment_ratio() const noexcept {
        const auto all = audio_frames + audio_concealed;
        return all ? static_cast<double>(audio_concealed) / static_cast<double>(all) : 0.0;
    }
    sample_set latency_ms;             ///< render time - capture time (abs-capture-time) per video frame
    sample_set audio_latency_ms;       ///< play time - capture time per decoded audio frame
    sample_set av_offset_ms;           ///< per video frame: its latency - the latest audio frame's (> 0: video late)
    std::uint64_t audio_fec = 0;              ///< of audio_frames: rebuilt from the next packet's Opus in-band FEC
    std::uint64_t audio_red_recovered = 0;    ///< frames that arrived only as RED redundancy
    std::uint64_t audio_late = 0;             ///< packets that came after their playout time
    std::uint64_t audio_expanded = 0;         ///< of audio_concealed: PLC frames that added delay (underrun or growing target)
    std::uint64_t comfort_noise = 0;          ///< frames played in transmission pauses (DTX)
    std::uint64_t audio_skipped = 0;          ///< frames dropped to cut delay (acceleration, flush, overflow)
    std::uint64_t video_frames_skipped = 0;   ///< complete frames dropped as undecodable (a reference lost)
    double audio_target_delay_ms = 0;  ///< audio jitter buffer target (lip-sync extra included)
    double audio_current_delay_ms = 0; ///< how far behind the earliest-arrival reference audio plays
    double video_target_delay_ms = 0;  ///< video frame buffer target (lip-sync extra included)
    double video_current_delay_ms = 0;
    double audio_sync_delay_ms = 0;    ///< extra delays lip sync applies
    double video_sync_delay_ms = 0;
    double elapsed_s = 0;              ///< since the first media packet
    std::uint64_t transport_feedback_sent = 0; ///< transport-wide feedback messages sent to the relay
    std::uint64_t padding_packets = 0;         ///< padding-only packets (the relay's probes and layer fills)
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
        /// The room service's play ticket (room_client::play), for relays that admit only
        /// ticketed hellos; empty otherwise.
        std::string ticket;
        std::chrono::milliseconds hello_interval{1000};
        /// Minimum spacing of the viewer's own keyframe requests.
        std::chrono::milliseconds keyframe_request_interval{300};
        /// How often lost video packets are looked for and requested.
        std::chrono::milliseconds nack_interval{10};
        qos::nack_generator::config nack{};
        /// Audio holes are requested too, for as long as a retransmission can still be
        /// played (the jitter buffer holds at most its max_delay).
        qos::nack_generator::config audio_nack = [] {
            qos::nack_generator::config c;
            c.give_up_after = std::chrono::milliseconds(400);
            return c;
        }();
        /// How often a receiver report goes to the relay (its FEC follows the loss in it).
        std::chrono::milliseconds report_interval{1000};
        /// The frame buffer asks for a key frame when nothing was decodable for its
        /// keyframe_timeout; while NACKs are still repairing (until nack.give_up_after) that
        /// would throw away frames about to be completed, so the viewer waits as long.
        qos::frame_buffer_config video_buffer = [] {
            qos::frame_buffer_config c;
            c.keyframe_timeout = std::chrono::milliseconds(1000);
            return c;
        }();
        qos::audio_jitter_config audio_buffer{};
        qos::lip_sync_config sync{};
        bool lip_sync = true;
        /// Other edges to play from, best first (dispatch::edge_selector): when nothing has
        /// come from the relay for failover_after, the viewer moves to the next one (the
        /// failed one goes to the end of the list) and goes on from its first key frame.
        std::vector<transport::endpoint> fallback_relays{};
        std::chrono::milliseconds failover_after{1200};
    };

    template <class... Args>
    basic_viewer(config cfg, Sink sink, Args&&... transport_args)
        : transport_(std::forward<Args>(transport_args)...), sink_(std::forward<Sink>(sink)), cfg_(std::move(cfg)),
          hello_timer_(transport_.get_executor()), nack_timer_(transport_.get_executor()),
          report_timer_(transport_.get_executor()), video_timer_(transport_.get_executor()),
          audio_timer_(transport_.get_executor()), ssrc_(detail::random_u32()), vdepack_(video_limits()), nack_(cfg_.nack), anack_(cfg_.audio_nack), fbuf_(cfg_.video_buffer), ajb_(audio_config(cfg_.audio_buffer)) {}
    basic_viewer(const basic_viewer&) = delete;
    basic_viewer& operator=(const basic_viewer&) = delete;
    ~basic_viewer() { worker_.join(); }

    std::error_code start() {
        if (cfg_.stream.empty() || cfg_.stream.size() > rtp::max_stream_name) return errc::unknown_stream;
        if (auto ec = vdec_.open()) return ec;
        if (auto ec = adec_.open()) return ec;
        running_ = true;
        last_heard_ = std::chrono::steady_clock::now(); // the first relay gets failover_after to answer
        receive();
        send_hello(rtp::session_type::play);
        arm_hello();
        arm_nack();
        arm_report();
        return {};
    }

    /// Stops receiving, decodes what has arrived, says goodbye to the relay.
    void stop() {
        if (!running_) return;
        running_ = false;
        hello_timer_.cancel();
        nack_timer_.cancel();
        report_timer_.cancel();
        video_timer_.cancel();
        audio_timer_.cancel();
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
        s.audio_played = audio_played_.load();
        if (last_render_) {
            const std::chrono::steady_clock::time_point last_packet{
                std::chrono::steady_clock::duration{last_video_packet_.load(std::memory_order_relaxed)}};
            const double open = std::chrono::duration<double>(last_packet - *last_render_).count();
            if (open > 0.5) {
                ++s.freezes;
                s.frozen_s += open;
                s.longest_freeze_s = std::max(s.longest_freeze_s, open);
                s.playback_s += open;
            }
        }
        if (first_packet_) s.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - *first_packet_).count();
        return s;
    }

    Transport& transport() noexcept { return transport_; }
    Sink& sink() noexcept { return sink_; }
    /// The relay played from now (on the network thread).
    const transport::endpoint& relay() const noexcept { return cfg_.relay; }

private:
    /// Failover: the relay has been silent for failover_after; the next one is asked.
    void check_relay(std::chrono::steady_clock::time_point t) {
        if (cfg_.fallback_relays.empty() || t - last_heard_ < cfg_.failover_after) return;
        send_hello(rtp::session_type::leave); // in case it is only unreachable one way
        cfg_.fallback_relays.push_back(cfg_.relay);
        cfg_.relay = cfg_.fallback_relays.front();
        cfg_.fallback_relays.erase(cfg_.fallback_relays.begin());
        last_heard_ = t;
        moved_ = true;
        {
            std::lock_guard lock(mu_);
            ++stats_.relay_moves;
        }
        send_hello(rtp::session_type::play);
    }

    void send_hello(rtp::session_type type) {
        rtp::session_message m;
        m.type = type;
        m.sender_ssrc = ssrc_;
        m.stream.name = cfg_.stream;
        m.ticket = cfg_.ticket;
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
            if (!ec && rx_from_ == cfg_.relay) {
                last_heard_ = std::chrono::steady_clock::now();
                on_datagram(rtp::bytes_view(rx_.data(), n));
            }
            receive();
        });
    }

    void on_datagram(rtp::bytes_view d) {
        if (rtp::is_rtcp(d)) {
            if (rtp::is_session_message(d)) return on_session(d);
            return on_rtcp(d);
        }
        rtp::packet_view p;
        if (rtp::parse(d, p)) {
            std::lock_guard lock(mu_);
            ++stats_.malformed;
            return;
        }
        // Every datagram of the leg is measured for the relay's estimate of this link.
        if (const auto tseq = p.transport_sequence()) twcc_.on_packet(*tseq, std::chrono::steady_clock::now());
        if (p.payload.empty() && p.padding > 0) return on_padding(p);
        if (live_ && desc_.video_fec_ssrc && p.ssrc == desc_.video_fec_ssrc && p.payload_type == desc_.video_fec_pt && fec_) {
            {
                std::lock_guard lock(mu_);
                ++stats_.fec_packets;
                stats_.bytes += d.size();
            }
            const auto before = fec_->stats().malformed;
            fec_->add_fec(d, [this](rtp::bytes_view r) { hold_recovered(r); });
            if (fec_->stats().malformed != before) {
                std::lock_guard lock(mu_);
                ++stats_.malformed;
            }
            return on_recovered();
        }
        const bool video_rtx = desc_.video_rtx_ssrc && p.ssrc == desc_.video_rtx_ssrc && p.payload_type == desc_.video_rtx_pt;
        const bool audio_rtx = desc_.audio_rtx_ssrc && p.ssrc == desc_.audio_rtx_ssrc && p.payload_type == desc_.audio_rtx_pt;
        if (live_ && (video_rtx || audio_rtx)) {
            std::size_t n = 0;
            const std::uint32_t ssrc = video_rtx ? desc_.video_ssrc : desc_.audio_ssrc;
            const std::uint8_t pt = video_rtx ? desc_.video_pt : (desc_.audio_red_pt ? desc_.audio_red_pt : desc_.audio_pt);
            if (qos::restore_rtx(p, ssrc, pt, restored_, n)) {
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
                ++(video_rtx ? stats_.retransmissions : stats_.audio_retransmissions);
                stats_.bytes += d.size();
            }
            return on_media(original, true);
        }
        {
            std::lock_guard lock(mu_);
            if (!live_ || (p.ssrc != desc_.video_ssrc && p.ssrc != desc_.audio_ssrc) ||
                (p.ssrc == desc_.video_ssrc && p.payload_type != desc_.video_pt) ||
                (p.ssrc == desc_.audio_ssrc && p.payload_type != desc_.audio_pt &&
                 (desc_.audio_red_pt == 0 || p.payload_type != desc_.audio_red_pt))) {
                ++stats_.unknown_packets;
                return;
            }
            ++stats_.packets;
            stats_.bytes += d.size();
            if (!first_packet_) first_packet_ = std::chrono::steady_clock::now();
        }
        reception_.on_packet(p, std::chrono::steady_clock::now());
        on_media(p);
    }

    /// A padding-only packet: a probe of the relay (on the RTX SSRC), or a place in the video
    /// numbering the relay filled for a packet of a layer this viewer does not get (no hole
    /// to request).
    void on_padding(const rtp::packet_view& p) {
        {
            std::lock_guard lock(mu_);
            ++stats_.padding_packets;
            stats_.bytes += p.whole.size();
        }
        if (live_ && desc_.video_ssrc && p.ssrc == desc_.video_ssrc)
            (void)nack_.on_packet(p.sequence, std::chrono::steady_clock::now());
    }

    /// FlexFEC hands out rebuilt packets inside its own calls: copied aside, then played.
    void hold_recovered(rtp::bytes_view r) {
        if (recovered_count_ == recovered_.size() || r.size() > max_datagram_size) return;
        auto& slot = recovered_[recovered_count_++];
        std::memcpy(slot.bytes.data(), r.data(), r.size());
        slot.size = r.size();
    }
    void on_recovered() {
        const std::size_t n = std::exchange(recovered_count_, 0);
        if (n == 0) return;
        {
            std::lock_guard lock(mu_);
            stats_.video_fec_recovered += n;
        }
        for (std::size_t i = 0; i < n; ++i) {
            rtp::packet_view p;
            if (rtp::parse(rtp::bytes_view(recovered_[i].bytes.data(), recovered_[i].size), p) || p.ssrc != desc_.video_ssrc) continue;
            on_media(p, false, true);
        }
    }

    /// A media packet of the stream (original, or rebuilt from a retransmission or FEC).
    void on_media(const rtp::packet_view& p, bool retransmission = false, bool from_fec = false) {
        const auto t = std::chrono::steady_clock::now();
        if (p.ssrc == desc_.video_ssrc) {
            last_video_packet_.store(t.time_since_epoch().count(), std::memory_order_relaxed);
            // FEC needs every packet held, however it came (not those it rebuilt: it has them).
            if (fec_ && !from_fec) fec_->add_media(p.whole, [this](rtp::bytes_view r) { hold_recovered(r); });
            const bool first = !video_started_;
            video_started_ = true;
            const auto arrival = nack_.on_packet(p.sequence, t, retransmission);
            if (arrival == qos::nack_generator::arrival::duplicate) return; // already had it (a late retransmission)
            // A packet that fills a requested hole completes its frame late because of repair
            // (here, or upstream: the relay forwards what it recovered from the host as
            // originals): that lateness is not network jitter, so it must not raise the
            // playout delay. A reordered packet (filled before any request) is jitter.
            const bool repaired = retransmission || arrival == qos::nack_generator::arrival::recovered;
            if (!find_stream_start(p, first, t)) return;
            vdepack_.push(p, media_kind::video, [&](encoded_frame&& f) { on_video_frame(std::move(f), repaired, t); });
            service_video(t);
            if (!from_fec) on_recovered();
        } else {
            const auto arrival = anack_.on_packet(p.sequence, t, retransmission);
            if (arrival == qos::nack_generator::arrival::duplicate) return;
            // As for video: filling a requested hole (a repair here or upstream) is not jitter.
            on_audio_packet(p, t, retransmission || arrival == qos::nack_generator::arrival::recovered);
        }
        std::lock_guard lock(mu_);
        stats_.depacketizer_dropped = vdepack_.dropped() + adepack_.dropped();
    }

    // ---- video playout ----

    /// The relay starts a subscriber's video at a key frame. When its first packets were
    /// lost nothing reveals them (there is no earlier packet to show the gap), so until a
    /// key frame's start is seen the packets before the oldest one are requested too, a few
    /// at a time (bounded).
    /// Returns false for a packet from before the stream's start (not for this viewer).
    bool find_stream_start(const rtp::packet_view& p, bool first, std::chrono::steady_clock::time_point t) {
        if (first) {
            start_search_ = !rtp::starts_keyframe(video_format_, p.payload) ? 1 : 0;
            start_ts_ = p.timestamp;
            start_seq_ = p.sequence;
            if (start_search_) nack_.extend_back(start_search_step, t);
            return true;
        }
        // Only packets from before the first one tell where the stream starts.
        if (!start_search_ || static_cast<std::int16_t>(p.sequence - start_seq_) >= 0) return true;
        if (rtp::starts_keyframe(video_format_, p.payload)) {
            start_search_ = 0;
            nack_.withdraw_before(p.sequence); // the stream starts here
            return true;
        }
        if (p.timestamp != start_ts_) {
            // The frame before the key frame: the key frame starts after it.
            start_search_ = 0;
            nack_.withdraw_before(static_cast<std::uint16_t>(p.sequence + 1));
            return false;
        }
        if (p.sequence == nack_.lowest() && start_search_ < start_search_limit) {
            ++start_search_;
            nack_.extend_back(start_search_step, t);
        }
        return true;
    }
    static constexpr std::size_t start_search_step = 8;
    static constexpr int start_search_limit = 8; // up to 64 packets back: a large key frame

    static rtp::assembler_limits video_limits() {
        rtp::assembler_limits l;
        if constexpr (signals_dependencies) {
            l.keep_incomplete = true; // the frame buffer orders frames and checks their references
            l.max_frames = 64;        // about 2 s at 30 fps: room for frames waiting on retransmissions
        }
        return l;
    }
    static constexpr bool signals_dependencies =
        std::is_same_v<typename video_codec::payload_format, rtp::vp8_payload> ||
        std::is_same_v<typename video_codec::payload_format, rtp::vp9_payload>;

    void on_video_frame(encoded_frame&& f, bool repaired, std::chrono::steady_clock::time_point t) {
        qos::frame_info info = qos::frame_info_from(f.dependency);
        if (!f.dependency.has_picture_id) {
            // A payload format without picture ids: frames come in order and stand alone.
            info.picture_id = synthetic_pid_;
            synthetic_pid_ = static_cast<std::uint16_t>((synthetic_pid_ + 1) & 0x7fff);
            f.keyframe = true;
        }
        info.retransmitted = repaired;
        if (sync_) sync_->on_packet(media_kind::video, f.rtp_timestamp, t);
        (void)fbuf_.insert(std::move(f), info, t);
    }

    /// Hands every frame that is due to the decoder, asks for a key frame when the buffer
    /// cannot go on without one, and wakes up for the next release.
    void service_video(std::chrono::steady_clock::time_point t) {
        qos::released_frame r;
        while (fbuf_.release(t, r)) {
            measure_skew(r.frame.rtp_timestamp);
            worker_.post([this, f = std::move(r.frame)] { decode_video(f); });
        }
        if (fbuf_.keyframe_needed()) request_keyframe();
        {
            std::lock_guard lock(mu_);
            const auto& fs = fbuf_.stats();
            stats_.video_frames_skipped = fs.skipped;
            stats_.video_target_delay_ms = static_cast<double>(fs.target_delay.count()) / 1000.0;
            stats_.video_current_delay_ms = static_cast<double>(fs.current_delay.count()) / 1000.0;
        }
        std::optional<std::chrono::steady_clock::time_point> next = fbuf_.next_release_time();
        if (!next && fbuf_.size() == 0) return;
        // Nothing decodable yet: look again soon (a repair may come, or a key frame is due).
        const auto at = next ? std::max(*next, t) : t + std::chrono::milliseconds(20);
        if (video_armed_ && video_due_ <= at && video_due_ > t) return; // an earlier wake-up is set
        video_armed_ = true;
        video_due_ = at;
        video_timer_.expires_at(at);
        video_timer_.async_wait([this](std::error_code ec) {
            if (ec || !running_) return;
            video_armed_ = false;
            service_video(std::chrono::steady_clock::now());
        });
    }

    // ---- audio playout ----

    static qos::audio_jitter_config audio_config(qos::audio_jitter_config c) {
        c.clock_rate = audio_codec::clock_rate;
        c.frame_samples = audio_codec::clock_rate / 50; // 20 ms frames
        return c;
    }
    static constexpr bool single_packet_audio = std::is_same_v<typename audio_codec::payload_format, rtp::opus_payload>;

    void on_audio_packet(const rtp::packet_view& p, std::chrono::steady_clock::time_point t, bool repaired = false) {
        timestamp capture{};
        if (auto ntp = p.abs_capture_time()) capture = from_ntp(*ntp);
        if (sync_) sync_->on_packet(media_kind::audio, p.timestamp, t);
        if (desc_.audio_red_pt && p.payload_type == desc_.audio_red_pt) {
            qos::red_payload red;
            if (qos::parse_red(p.payload, p.timestamp, red) != qos::red_status::ok) {
                std::lock_guard lock(mu_);
                ++stats_.malformed;
                return;
            }
            // Redundant blocks first (oldest first): each is the packet that many sequence
            // numbers back, and fills its place if that packet was lost.
            const auto n = red.redundant_count;
            std::uint64_t recovered = 0;
            for (std::size_t i = 0; i < n; ++i) {
                const auto& b = red.redundant_blocks[i];
                if (b.payload_type != desc_.audio_pt || b.data.empty()) continue;
                const auto seq = static_cast<std::uint16_t>(p.sequence - (n - i));
                const timestamp cap = capture == timestamp{} ? capture
                                      : capture - std::chrono::microseconds(std::int64_t{p.timestamp - b.timestamp} * 1'000'000 / audio_codec::clock_rate);
                const auto r = ajb_.insert(b.data, b.timestamp, seq, t, cap, repaired);
                if (r == qos::audio_jitter_buffer::insert_result::inserted) ++recovered;
                // Held now (or too late to matter): no retransmission needed.
                if (r == qos::audio_jitter_buffer::insert_result::inserted || r == qos::audio_jitter_buffer::insert_result::late)
                    (void)anack_.on_packet(seq, t);
            }
            if (red.primary.payload_type == desc_.audio_pt) ajb_.insert(red.primary.data, p.timestamp, p.sequence, t, capture, repaired);
            if (recovered) {
                std::lock_guard lock(mu_);
                stats_.audio_red_recovered += recovered;
            }
            return;
        }
        if constexpr (single_packet_audio) {
            if (p.payload.empty()) {
                std::lock_guard lock(mu_);
                ++stats_.malformed;
                return;
            }
            ajb_.insert(p.payload, p.timestamp, p.sequence, t, capture, repaired);
        } else {
            adepack_.push(p, media_kind::audio, [&](encoded_frame&& f) {
                ajb_.insert(f.bytes(), f.rtp_timestamp, audio_index_++, t, f.capture_time);
            });
        }
    }

    void arm_audio() {
        next_pull_ += std::chrono::milliseconds(20);
        const auto t = std::chrono::steady_clock::now();
        if (t - next_pull_ > std::chrono::milliseconds(200)) next_pull_ = t; // the thread stalled: do not burst
        audio_timer_.expires_at(next_pull_);
        audio_timer_.async_wait([this](std::error_code ec) {
            if (ec || !running_) return;
            pull_audio(std::chrono::steady_clock::now());
            arm_audio();
        });
    }

    /// One 20 ms period: what the jitter buffer says to play goes to the codec thread.
    void pull_audio(std::chrono::steady_clock::time_point t) {
        qos::audio_pull r = ajb_.pull(t, pulled_);
        if (r.action == qos::audio_action::decode_fec && !carries_inband_fec(pulled_)) {
            // Nothing to rebuild the lost frame from: the decoder would only conceal it.
            r.action = qos::audio_action::conceal;
            ++fec_as_plc_;
        }
        if (++pulls_ % 50 == 0) update_sync();
        {
            std::lock_guard lock(mu_);
            const auto& js = ajb_.stats();
            stats_.audio_target_delay_ms = static_cast<double>(js.target_delay.count()) / 1000.0;
            stats_.audio_current_delay_ms = static_cast<double>(js.current_delay.count()) / 1000.0;
            stats_.audio_late = js.late;
            stats_.audio_expanded = js.expanded;
            // The buffer's counts, not the actions: PLC played in a gap that turns out to be
            // a pause is moved to comfort noise afterwards.
            stats_.audio_concealed = js.concealed - ajb_.unresolved_concealment() + fec_as_plc_;
            stats_.comfort_noise = js.comfort_noise;
            stats_.audio_fec = js.fec - fec_as_plc_;
            stats_.audio_skipped = js.accelerated + js.flushed + js.overflow;
        }
        if (sync_ && (r.action == qos::audio_action::decode || r.action == qos::audio_action::decode_fec)) {
            if (const auto cap = sync_->capture_time(media_kind::audio, r.rtp_timestamp))
                audio_lateness_ = now() - *cap; // SR-mapped capture instant of what plays now
        }
        switch (r.action) {
        case qos::audio_action::buffering: return;
        case qos::audio_action::decode:
        case qos::audio_action::decode_fec:
            worker_.post([this, f = pulled_, fec = r.action == qos::audio_action::decode_fec] { decode_audio(f, fec); });
            return;
        case qos::audio_action::conceal:
        case qos::audio_action::comfort_noise:
            worker_.post([this, cn = r.action == qos::audio_action::comfort_noise] { conceal_audio(cn); });
            return;
        }
    }

    /// Whether `next` can rebuild the frame before it: the codec decodes in-band FEC, and
    /// for Opus the packet is in a mode that carries LBRR (SILK or hybrid: TOC config < 16;
    /// CELT-only packets never do).
    static bool carries_inband_fec(const encoded_frame& next) noexcept {
        if constexpr (!requires(typename audio_codec::decoder& d, audio_frame& o) { d.decode_fec(next, o); }) {
            return false;
        } else if constexpr (single_packet_audio) {
            return !next.data.empty() && (next.data[0] >> 3) < 16;
        } else {
            return true;
        }
    }

    /// A/V skew of what is played, from the sender reports' NTP <-> RTP mapping: how much
    /// later this video frame is shown than the audio of its capture instant.
    void measure_skew(std::uint32_t video_rtp_ts) {
        if (!sync_ || !audio_lateness_) return;
        const auto cap = sync_->capture_time(media_kind::video, video_rtp_ts);
        if (!cap) return;
        if (skews_.size() < 256) skews_.push_back((now() - *cap) - *audio_lateness_);
    }

    /// Once a second: the measured skew (lower quartile of the last second's frames) when there is
    /// one, else the buffers' targets, move the extra delays.
    void update_sync() {
        if (!sync_) return;
        std::optional<qos::sync_delays> d;
        // The audio buffer moves its delay by whole frames, at most 50 ms a second: until it
        // has reached its target the measured skew still shows the last correction undone,
        // and acting on it again would overshoot.
        const auto& js = ajb_.stats();
        const bool audio_settled = js.current_delay - js.target_delay < std::chrono::milliseconds(30) &&
                                   js.target_delay - js.current_delay < std::chrono::milliseconds(30);
        if (skews_.size() >= 5 && !audio_settled) {
            skews_.clear();
            return;
        }
        if (skews_.size() >= 5) {
            // The lower quartile: frames held for a repair are shown late and the ones after
            // them catch up at once; audio follows the video that plays on time, not those
            // transients (following them would move the audio delay, by PLC, every second).
            const auto q = static_cast<std::ptrdiff_t>(skews_.size() / 4);
            std::nth_element(skews_.begin(), skews_.begin() + q, skews_.end());
            d = sync_->update_measured(std::chrono::duration_cast<std::chrono::microseconds>(skews_[static_cast<std::size_t>(q)]));
        } else {
            d = sync_->update(ajb_.stats().target_delay, fbuf_.stats().target_delay);
        }
        skews_.clear();
        if (!d) return;
        ajb_.set_extra_delay(d->audio);
        fbuf_.set_extra_delay(d->video);
        std::lock_guard lock(mu_);
        stats_.audio_sync_delay_ms = static_cast<double>(d->audio.count()) / 1000.0;
        stats_.video_sync_delay_ms = static_cast<double>(d->video.count()) / 1000.0;
    }

    void on_rtcp(rtp::bytes_view d) {
        rtp::rtcp::parse_counts counts;
        (void)rtp::rtcp::parse_compound(d,
                                        overloaded{[this](const rtp::rtcp::sender_report& sr) {
                                            reception_.on_sender_report(sr, std::chrono::steady_clock::now());
                                            if (sync_) sync_->on_sender_report(sr);
                                        }},
                                        counts);
    }

    void arm_report() {
        report_timer_.expires_after(cfg_.report_interval);
        report_timer_.async_wait([this](std::error_code ec) {
            if (ec || !running_) return;
            send_report();
            arm_report();
        });
    }

    /// A receiver report to the relay: loss before repair on this leg, jitter, LSR/DLSR.
    void send_report() {
        if (!live_) return;
        std::array<rtp::rtcp::report_block, 2> blocks;
        const std::size_t n = reception_.report_blocks(std::chrono::steady_clock::now(), blocks);
        if (n == 0) return;
        for (std::size_t i = 0; i < n; ++i)
            if (blocks[i].ssrc == desc_.video_ssrc) loss_.on_report(blocks[i].fraction_lost);
        rtp::rtcp::receiver_report rr;
        rr.ssrc = ssrc_;
        rr.blocks = std::span(blocks.data(), n);
        std::array<std::uint8_t, 128> buf;
        if (const std::size_t len = rtp::rtcp::write_receiver_report(rr, buf))
            transport_.send_to(asio::buffer(buf.data(), len), cfg_.relay);
    }

    void arm_nack() {
        nack_timer_.expires_after(cfg_.nack_interval);
        nack_timer_.async_wait([this](std::error_code ec) {
            if (ec || !running_) return;
            send_nacks();
            check_relay(std::chrono::steady_clock::now());
            arm_nack();
        });
    }

    /// Requests the holes that are due, and a keyframe when video ones were given up.
    void send_nacks() {
        if (!live_) return;
        const auto t = std::chrono::steady_clock::now();
        send_transport_feedback(t);
        if (desc_.audio_ssrc && desc_.audio_rtx_ssrc) {
            request(anack_, desc_.audio_ssrc, t);
            (void)anack_.take_keyframe_request();
            const auto& as = anack_.stats();
            std::lock_guard lock(mu_);
            stats_.audio_packets_missing = as.missing;
            stats_.audio_nack_requests = as.requests;
        }
        if (!desc_.video_ssrc || !desc_.video_rtx_ssrc) return;
        request(nack_, desc_.video_ssrc, t);
        if (nack_.take_keyframe_request()) request_keyframe();
        const auto& ns = nack_.stats();
        std::lock_guard lock(mu_);
        stats_.video_packets_missing = ns.missing;
        stats_.video_packets_recovered = ns.recovered;
        stats_.video_packets_lost = ns.given_up;
        stats_.nack_requests = ns.requests;
        stats_.rtt_ms = std::chrono::duration<double, std::milli>(nack_.rtt_estimate()).count();
    }

    /// Transport-wide feedback on this leg's arrivals, every 50 ms while packets come.
    void send_transport_feedback(std::chrono::steady_clock::time_point t) {
        if (!twcc_.due(t)) return;
        std::uint64_t sent = 0;
        twcc_.build(t, ssrc_, desc_.video_ssrc ? desc_.video_ssrc : desc_.audio_ssrc, [&](rtp::bytes_view b) {
            transport_.send_to(asio::buffer(b.data(), b.size()), cfg_.relay);
            ++sent;
        });
        std::lock_guard lock(mu_);
        stats_.transport_feedback_sent += sent;
    }

    void request(qos::nack_generator& holes, std::uint32_t media_ssrc, std::chrono::steady_clock::time_point t) {
        lost_.clear();
        holes.collect(t, holes.rtt_estimate(), lost_);
        for (std::size_t done = 0; done < lost_.size();) {
            const std::size_t chunk = std::min<std::size_t>(lost_.size() - done, 250);
            std::array<std::uint8_t, 1200> buf;
            const std::size_t n = rtp::rtcp::write_nack(ssrc_, media_ssrc, std::span(lost_).subspan(done, chunk), buf);
            for (int c = 0; n && c < loss_.repair_copies(); ++c) transport_.send_to(asio::buffer(buf.data(), n), cfg_.relay);
            done += chunk;
        }
    }

    void on_session(rtp::bytes_view d) {
        rtp::session_message m;
        if (rtp::parse_session_message(d, m) || m.type != rtp::session_type::ack || m.stream.name != cfg_.stream) return;
        if (m.status != rtp::session_status::ok) return;
        std::lock_guard lock(mu_);
        // After a move the new relay's numbering is its own: start over, as for a new stream.
        if (live_ && m.stream == desc_ && !moved_) return;
        moved_ = false;
        if (m.stream.video_ssrc && m.stream.video_codec != video_codec::encoding_name) return; // not ours to decode
        if (m.stream.audio_ssrc && m.stream.audio_codec != audio_codec::encoding_name) return;
        const bool first = !live_;
        desc_ = m.stream;
        live_ = true;
        vdepack_ = typename video_codec::payload_format::depacketizer(video_limits());
        adepack_ = {};
        nack_.reset();
        anack_.reset();
        reception_ = {};
        loss_.reset();
        if (desc_.video_ssrc) reception_.add_stream(desc_.video_ssrc, video_codec::clock_rate);
        if (desc_.audio_ssrc) reception_.add_stream(desc_.audio_ssrc, audio_codec::clock_rate);
        fec_.reset();
        recovered_count_ = 0;
        if (desc_.video_ssrc && desc_.video_fec_ssrc) {
            qos::flexfec_decoder::config fc;
            fc.media_ssrc = desc_.video_ssrc;
            fc.fec_ssrc = desc_.video_fec_ssrc;
            fec_ = std::make_unique<qos::flexfec_decoder>(fc);
        }
        start_search_ = 0;
        video_started_ = false;
        video_format_ = rtp::video_format_of(desc_.video_codec);
        fbuf_.reset();
        ajb_.reset();
        fec_as_plc_ = 0;
        if (cfg_.lip_sync && desc_.audio_ssrc && desc_.video_ssrc)
            sync_.emplace(desc_.audio_ssrc, desc_.video_ssrc, sync_config());
        else
            sync_.reset();
        if (first) {
            next_pull_ = std::chrono::steady_clock::now();
            arm_audio();
        }
    }

    qos::lip_sync_config sync_config() const {
        qos::lip_sync_config c = cfg_.sync;
        c.audio_clock_rate = audio_codec::clock_rate;
        c.video_clock_rate = video_codec::clock_rate;
        return c;
    }

    void decode_video(const encoded_frame& f) {
        if constexpr (sink::encoded_sink<Sink>) sink_.on_encoded(f);
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
                stats_.longest_freeze_s = std::max(stats_.longest_freeze_s, gap);
            }
            stats_.playback_s += gap;
        }
        last_render_ = rendered;
        ++stats_.video_frames;
        if (f.capture_time != timestamp{}) {
            stats_.latency_ms.add(latency);
            if (audio_latency_) stats_.av_offset_ms.add(latency - *audio_latency_);
        }
    }

    void decode_audio(const encoded_frame& f, bool fec) {
        audio_frame out;
        std::error_code ec;
        if (fec) {
            if constexpr (requires { adec_.decode_fec(f, out); }) ec = adec_.decode_fec(f, out);
            else return conceal_audio(false);
        } else {
            if constexpr (sink::encoded_sink<Sink>) sink_.on_encoded(f);
            ec = adec_.decode(f, out);
        }
        if (ec) {
            std::lock_guard lock(mu_);
            ++stats_.decode_errors;
            return;
        }
        // An FEC frame is the one before `f`: 20 ms earlier.
        out.capture_time = f.capture_time == timestamp{} || !fec ? f.capture_time : f.capture_time - std::chrono::milliseconds(20);
        last_audio_capture_ = out.capture_time;
        sink_.on_audio(out);
        ++audio_played_;
        const double latency = static_cast<double>((now() - out.capture_time).count()) / 1000.0;
        std::lock_guard lock(mu_);
        ++stats_.audio_frames;
        if (out.capture_time != timestamp{}) {
            stats_.audio_latency_ms.add(latency);
            audio_latency_ = latency;
        }
    }

    /// A frame period with nothing to decode: loss concealment, or comfort noise in a pause.
    void conceal_audio(bool comfort_noise) {
        audio_frame out;
        if constexpr (requires { adec_.conceal(out); }) {
            if (adec_.conceal(out)) return;
        } else {
            out.channels = 2;
            out.samples.assign(static_cast<std::size_t>(audio_frame::sample_rate / 50 * 2), 0);
        }
        if (last_audio_capture_ != timestamp{}) last_audio_capture_ += std::chrono::milliseconds(20);
        out.capture_time = last_audio_capture_;
        sink_.on_audio(out);
        ++audio_played_;
        (void)comfort_noise; // counted by the jitter buffer
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
    steady_timer_for<typename Transport::executor_type> report_timer_;
    steady_timer_for<typename Transport::executor_type> video_timer_;
    steady_timer_for<typename Transport::executor_type> audio_timer_;
    std::uint32_t ssrc_;
    // Network thread state.
    typename video_codec::payload_format::depacketizer vdepack_;
    typename audio_codec::payload_format::depacketizer adepack_;
    std::array<std::uint8_t, max_datagram_size> rx_{};
    transport::endpoint rx_from_;
    std::optional<std::chrono::steady_clock::time_point> last_pli_;
    qos::nack_generator nack_;
    qos::nack_generator anack_;
    qos::transport_feedback_generator twcc_; ///< arrivals on this leg, reported to the relay's estimator
    qos::receive_statistics reception_; ///< originals only: loss before repair, for the receiver reports
    qos::loss_estimate loss_;           ///< this leg's video loss: NACKs go twice when it is high
    std::unique_ptr<qos::flexfec_decoder> fec_;
    struct recovered_packet {
        std::array<std::uint8_t, max_datagram_size> bytes;
        std::size_t size = 0;
    };
    std::array<recovered_packet, 40> recovered_{}; // rebuilt by one FEC call (at most one per repair packet held + 1)
    std::size_t recovered_count_ = 0;
    std::vector<std::uint16_t> lost_;
    std::array<std::uint8_t, max_datagram_size> restored_{};
    bool running_ = false;
    qos::frame_buffer fbuf_;
    qos::audio_jitter_buffer ajb_;
    std::optional<qos::lip_sync> sync_;
    encoded_frame pulled_;
    std::optional<std::chrono::microseconds> audio_lateness_; ///< play time - SR-mapped capture time, last audio frame
    std::vector<std::chrono::microseconds> skews_;            ///< measured this period
    std::chrono::steady_clock::time_point next_pull_{};
    std::uint64_t pulls_ = 0;
    std::uint64_t fec_as_plc_ = 0; ///< decode_fec turned into PLC: the successor had no FEC to give
    std::chrono::steady_clock::time_point video_due_{};
    bool video_armed_ = false;
    std::uint16_t synthetic_pid_ = 0;
    bool video_started_ = false;
    int start_search_ = 0; ///< > 0: looking for the first key frame's start, that many steps back
    std::uint32_t start_ts_ = 0; ///< RTP timestamp of the first video packet
    std::uint16_t start_seq_ = 0;
    rtp::video_format video_format_ = rtp::video_format::unknown;
    std::uint16_t audio_index_ = 0;
    // Codec thread state.
    typename video_codec::decoder vdec_;
    typename audio_codec::decoder adec_;
    timestamp last_audio_capture_{};
    std::atomic<std::uint64_t> audio_played_{0};
    std::optional<double> audio_latency_; // under mu_
    std::optional<std::chrono::steady_clock::time_point> last_render_; // under mu_
    std::atomic<std::chrono::steady_clock::rep> last_video_packet_{0}; ///< arrival of the newest video packet
    std::chrono::steady_clock::time_point last_heard_{}; ///< the newest datagram from the relay (network thread)
    bool moved_ = false; ///< moved to another relay; its first acknowledgement resets reception
    // Shared, under mu_.
    mutable std::mutex mu_;
    rtp::stream_description desc_;
    bool live_ = false;
    viewer_stats stats_;
    std::optional<std::chrono::steady_clock::time_point> first_packet_;
    worker worker_; // last member: stops before the state above is destroyed
};

} // namespace onair
