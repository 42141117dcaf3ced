// onair — whole encoded frames out of one stream's RTP packets, for consumers at a relay
// that do not decode: recorders and the CDN egress.
//
// Video goes through the same depacketizer and qos::frame_buffer a viewer uses, so only
// decodable frames leave, in order: a frame whose reference was lost is skipped, and the
// frames after it until the next key frame are skipped with it (a gap, never a picture
// decoded against the wrong reference). The buffer waits at least `min_delay` (250 ms by
// default) before it gives a frame up, which leaves time for the relay's own repair of the
// publisher's leg: a retransmitted packet completes its frame late, and it is used.
// Audio is depacketized in sequence order (RED packets give their primary block; a
// redundant block the relay rebuilt arrives as its own packet); a frame that arrives after
// a newer one is late and skipped. Capture times come from the abs-capture-time extension
// every onair packet carries.
#pragma once

#include "onair/core/media_frame.hpp"
#include "onair/media/tracks.hpp"
#include "onair/qos/frame_buffer.hpp"
#include "onair/qos/red.hpp"
#include "onair/rtp/opus.hpp"
#include "onair/rtp/packet.hpp"
#include "onair/rtp/session_message.hpp"
#include "onair/rtp/vp8.hpp"
#include "onair/rtp/vp9.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <utility>

namespace onair::media {

struct rtp_frames_config {
    std::chrono::microseconds min_delay{250'000}; ///< how long a frame may wait for a repair
    std::chrono::microseconds max_delay{1'000'000};
};

struct rtp_frames_stats {
    std::uint64_t video_frames = 0;
    std::uint64_t audio_frames = 0;
    std::uint64_t video_skipped = 0;  ///< undecodable (a reference lost) or late
    std::uint64_t audio_late = 0;
    std::uint64_t malformed = 0;      ///< packets the depacketizers or RED parser refused
    std::uint64_t foreign = 0;        ///< packets of another SSRC or payload type
};

/// Thread safety: none; one object per stream, used from the relay's network thread.
class rtp_frames {
public:
    using clock = std::chrono::steady_clock;

    rtp_frames() : rtp_frames(rtp::stream_description{}) {}
    explicit rtp_frames(const rtp::stream_description& d, rtp_frames_config c = {})
        : desc_(d), video_format_(video_format_of(d.video_codec)), fbuf_(buffer_config(c)),
          vp8_(limits()), vp9_(limits()) {}

    const rtp::stream_description& description() const noexcept { return desc_; }
    /// The stream's video format; nullopt when it has no VP8/VP9 video.
    std::optional<video_format> format() const noexcept { return video_format_; }
    bool has_audio() const noexcept { return desc_.audio_ssrc != 0 && desc_.audio_codec == "opus"; }

    /// One accepted packet of the stream. `emit(encoded_frame&&)` gets audio frames at once
    /// and video frames once they are due (also from service()).
    template <class Emit>
    void push(media_kind kind, const rtp::packet_view& p, clock::time_point now, Emit&& emit) {
        if (kind == media_kind::video) {
            if (!video_format_ || p.ssrc != desc_.video_ssrc || p.payload_type != desc_.video_pt) {
                ++stats_.foreign;
                return;
            }
            auto take = [&](encoded_frame&& f) {
                const qos::frame_info info = qos::frame_info_from(f.dependency);
                if (fbuf_.insert(std::move(f), info, now) == qos::frame_buffer::insert_result::late) ++late_video_;
            };
            const auto before = dropped();
            if (*video_format_ == video_format::vp8) vp8_.push(p, kind, take);
            else vp9_.push(p, kind, take);
            stats_.malformed += dropped() - before;
            service(now, emit);
            return;
        }
        if (!has_audio() || p.ssrc != desc_.audio_ssrc) {
            ++stats_.foreign;
            return;
        }
        auto out = [&](encoded_frame&& f) {
            ++stats_.audio_frames;
            emit(std::move(f));
        };
        if (desc_.audio_red_pt && p.payload_type == desc_.audio_red_pt) {
            qos::red_payload red;
            if (qos::parse_red(p.payload, p.timestamp, red) != qos::red_status::ok) {
                ++stats_.malformed;
                return;
            }
            // The primary block as a packet of its own: same numbers, its own payload.
            rtp::packet_view primary = p;
            primary.payload = red.primary.data;
            primary.payload_type = desc_.audio_pt;
            return push_audio(primary, out);
        }
        if (p.payload_type != desc_.audio_pt) {
            ++stats_.foreign;
            return;
        }
        push_audio(p, out);
    }

    /// Releases the video frames that are due; call every few tens of milliseconds.
    template <class Emit>
    void service(clock::time_point now, Emit&& emit) {
        qos::released_frame r;
        while (fbuf_.release(now, r)) {
            ++stats_.video_frames;
            emit(std::move(r.frame));
        }
    }

    /// Whether only a key frame can get the video going again (a PLI would help).
    bool keyframe_needed() const noexcept { return fbuf_.keyframe_needed(); }

    rtp_frames_stats stats() const noexcept {
        rtp_frames_stats s = stats_;
        s.video_skipped = fbuf_.stats().skipped + late_video_;
        s.audio_late = opus_.dropped() - audio_malformed_;
        return s;
    }

private:
    static qos::frame_buffer_config buffer_config(const rtp_frames_config& c) {
        qos::frame_buffer_config b;
        b.min_delay = c.min_delay;
        b.max_delay = std::max(c.max_delay, c.min_delay);
        b.capacity = 128;
        return b;
    }
    static rtp::assembler_limits limits() {
        rtp::assembler_limits l;
        l.keep_incomplete = true; // the frame buffer orders frames and checks references
        l.max_frames = 64;
        return l;
    }
    std::uint64_t dropped() const noexcept { return vp8_.dropped() + vp9_.dropped(); }

    template <class Out>
    void push_audio(const rtp::packet_view& p, Out& out) {
        if (p.payload.empty()) {
            ++stats_.malformed;
            ++audio_malformed_;
        }
        opus_.push(p, media_kind::audio, out);
    }

    rtp::stream_description desc_;
    std::optional<video_format> video_format_;
    qos::frame_buffer fbuf_;
    rtp::vp8_payload::depacketizer vp8_;
    rtp::vp9_payload::depacketizer vp9_;
    rtp::opus_payload::depacketizer opus_;
    rtp_frames_stats stats_;
    std::uint64_t late_video_ = 0;
    std::uint64_t audio_malformed_ = 0;
};

} // namespace onair::media
