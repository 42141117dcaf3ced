// onair — fragmented MP4 (ISO/IEC 14496-12 ISO BMFF) for recordings and HLS fMP4 segments:
// VP9 video and Opus audio.
//
// Output is an init segment (ftyp + moov: one trak per track with empty sample tables, and
// mvex/trex announcing fragments) followed by fragments (an optional styp, then moof + mdat).
// A recording is the init segment with every fragment appended; an HLS fMP4 playlist serves
// the init segment as EXT-X-MAP and one fragment per media segment.
//
// Mappings
//   VP9  'vp09' sample entry with a version 1 'vpcC' box (VP Codec ISO Media File Format
//        Binding): profile 0, level from the picture size at 30 fps, 8 bits, chroma 4:2:0
//        "vertical" (value 0: libvpx I420 carries no siting, and 0 is what ffmpeg and
//        Chromium's own MP4 muxer write for such input), studio range, colour primaries,
//        transfer and matrix 2 (unspecified: the encoder signals no colour space).
//        VP8 has no standard ISO BMFF binding that players accept, so it is refused.
//   Opus 'Opus' sample entry with a 'dOps' box (Encapsulation of Opus in ISO Base Media File
//        Format), channel mapping family 0. Pre-skip is carried in dOps only, without an edit
//        list: ffmpeg and Chromium both read it from there.
// Time scales: video 90 kHz (the VP9 RTP clock, so times that came from RTP do not round),
// audio 48 kHz (one tick per Opus sample). A sample's decode time is its pts rounded to the
// track's time scale; there are no composition offsets because VP9 and Opus do not reorder.
#pragma once

#include "onair/core/error.hpp"
#include "onair/core/media_frame.hpp"
#include "onair/media/tracks.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace onair::media {

namespace detail {

/// Appends big-endian ISO BMFF fields to a byte vector.
class box_writer {
public:
    /// A box whose 32-bit size is patched when the scope ends, so children can be written
    /// without knowing their sizes first.
    class scope {
    public:
        scope(box_writer& w, std::string_view type) : w_(w), at_(w.size()) {
            w.u32(0);
            w.tag(type);
        }
        scope(box_writer& w, std::string_view type, std::uint8_t version, std::uint32_t flags) : scope(w, type) {
            w.u8(version);
            w.u24(flags);
        }
        scope(const scope&) = delete;
        scope& operator=(const scope&) = delete;
        ~scope() { w_.put32(at_, static_cast<std::uint32_t>(w_.size() - at_)); }

    private:
        box_writer& w_;
        std::size_t at_;
    };

    explicit box_writer(std::vector<std::uint8_t>& out) noexcept : out_(out) {}

    scope open(std::string_view type) { return scope(*this, type); }
    scope open_full(std::string_view type, std::uint8_t version, std::uint32_t flags) {
        return scope(*this, type, version, flags);
    }

    void u8(std::uint32_t v) { out_.push_back(static_cast<std::uint8_t>(v & 0xff)); }
    void u16(std::uint32_t v) {
        u8(v >> 8);
        u8(v);
    }
    void u24(std::uint32_t v) {
        u8(v >> 16);
        u16(v & 0xffff);
    }
    void u32(std::uint32_t v) {
        u16(v >> 16);
        u16(v & 0xffff);
    }
    void u64(std::uint64_t v) {
        u32(static_cast<std::uint32_t>(v >> 32));
        u32(static_cast<std::uint32_t>(v & 0xffff'ffffu));
    }
    /// A four-character code; `t` must hold exactly four characters.
    void tag(std::string_view t) {
        for (std::size_t i = 0; i < 4; ++i) u8(i < t.size() ? static_cast<unsigned char>(t[i]) : ' ');
    }
    void zeros(std::size_t n) { out_.insert(out_.end(), n, std::uint8_t{0}); }
    void bytes(std::span<const std::uint8_t> b) { out_.insert(out_.end(), b.begin(), b.end()); }
    void put32(std::size_t at, std::uint32_t v) noexcept {
        for (std::size_t i = 0; i < 4; ++i) out_[at + i] = static_cast<std::uint8_t>(v >> (24 - 8 * i));
    }
    std::size_t size() const noexcept { return out_.size(); }

private:
    std::vector<std::uint8_t>& out_;
};

/// VP9 level (10 = 1.0 ... 62 = 6.2) for a picture size and frame rate: the lowest level
/// whose luma picture size and luma sample rate limits hold (VP9 level definitions).
inline std::uint8_t vp9_level(int width, int height, int fps) noexcept {
    struct limit {
        std::uint8_t level;
        std::uint64_t picture_size;
        std::uint64_t sample_rate;
    };
    static constexpr std::array<limit, 14> levels{{
        {10, 36'864, 829'440},
        {11, 73'728, 2'764'800},
        {20, 122'880, 4'608'000},
        {21, 245'760, 9'216'000},
        {30, 552'960, 20'736'000},
        {31, 983'040, 36'864'000},
        {40, 2'228'224, 83'558'400},
        {41, 2'228'224, 160'432'128},
        {50, 8'912'896, 311'951'360},
        {51, 8'912'896, 588'251'136},
        {52, 8'912'896, 1'176'502'272},
        {60, 35'651'584, 1'176'502'272},
        {61, 35'651'584, 2'353'004'544},
        {62, 35'651'584, 4'706'009'088},
    }};
    const auto picture = static_cast<std::uint64_t>(std::max(width, 0)) * static_cast<std::uint64_t>(std::max(height, 0));
    const auto rate = picture * static_cast<std::uint64_t>(std::max(fps, 1));
    for (const auto& l : levels)
        if (picture <= l.picture_size && rate <= l.sample_rate) return l.level;
    return levels.back().level;
}

} // namespace detail

/// Turns VP9 and Opus samples into an fMP4 init segment and fragments held in memory.
///
/// Samples are buffered by add() until write_fragment() moves those before a time into one
/// moof + mdat (one traf per track, video first). A sample's duration is the distance to the
/// next sample of its track; the last sample of a track in a fragment takes it from the next
/// buffered sample of that track when there is one, else (video) the fragment's end time or
/// (audio) its Opus packet duration. Each fragment's tfdt carries the exact decode time of its
/// first sample, so a fragment decodes on its own after the init segment.
///
/// Bad samples are dropped and counted, never written: a sample for a track the muxer does
/// not have (errc::unknown_stream), empty data or a malformed Opus packet (errc::bad_frame),
/// more than max_sample_bytes (errc::oversized), a negative pts or one not after the previous
/// sample of its track in the track's time scale (errc::bad_frame: an MP4 track is a strictly
/// increasing sequence of decode times), video before the first key frame (errc::not_keyframe:
/// it could not be decoded), and samples beyond max_buffered_bytes (errc::queue_full).
///
/// Track ids: video is 1 and audio 2 when both exist, otherwise the only track is 1.
/// Thread safety: none; one thread per object.
class mp4_muxer {
public:
    static constexpr std::uint32_t video_timescale = 90'000;
    static constexpr std::uint32_t audio_timescale = 48'000;
    static constexpr std::size_t max_sample_bytes = std::size_t{64} << 20;
    /// Bounds a fragment well below 2 GiB, so trun's signed 32-bit data offsets always fit.
    static constexpr std::size_t max_buffered_bytes = std::size_t{256} << 20;
    /// Frame rate assumed when choosing the VP9 level (tracks do not carry one).
    static constexpr int assumed_fps = 30;
    /// write_fragment() end time that takes every buffered sample.
    static constexpr std::int64_t flush_all = std::numeric_limits<std::int64_t>::max();

    /// Sample flags (ISO/IEC 14496-12 8.8.3.1). Sync: sample_depends_on = 2 (depends on no
    /// other sample). Non-sync: sample_depends_on = 1 and sample_is_non_sync_sample.
    static constexpr std::uint32_t sync_sample_flags = 0x0200'0000;
    static constexpr std::uint32_t non_sync_sample_flags = 0x0101'0000;
    /// tfhd: data offsets are relative to the start of the moof box.
    static constexpr std::uint32_t tfhd_default_base_is_moof = 0x02'0000;
    /// trun: data-offset, sample-duration, sample-size and sample-flags present.
    static constexpr std::uint32_t trun_flags = 0x00'0001 | 0x00'0100 | 0x00'0200 | 0x00'0400;

    /// Checks the tracks; error() tells whether they can be muxed (VP8: errc::unsupported).
    explicit mp4_muxer(const tracks& t) : tracks_(t) {
        if (!t.video && !t.audio) {
            fail(errc::unsupported, "mp4: no video or audio track");
            return;
        }
        if (t.video) {
            if (t.video->format == video_format::vp8) {
                fail(errc::unsupported, "mp4: VP8 has no standard ISO BMFF mapping; record VP8 as WebM");
                return;
            }
            if (t.video->width <= 0 || t.video->height <= 0 || t.video->width > 0xffff || t.video->height > 0xffff) {
                fail(errc::bad_frame, "mp4: video width and height must be 1..65535");
                return;
            }
        }
        if (t.audio && t.audio->channels != 1 && t.audio->channels != 2) {
            fail(errc::unsupported, "mp4: Opus channel mapping family 0 carries 1 or 2 channels only");
            return;
        }
        if (t.audio && t.audio->sample_rate <= 0) {
            fail(errc::bad_frame, "mp4: audio input sample rate must be positive");
            return;
        }
        std::uint32_t id = 1;
        if (t.video) {
            track_[video_index].id = id++;
            track_[video_index].timescale = video_timescale;
            track_[video_index].last_interval = video_timescale / assumed_fps;
        }
        if (t.audio) {
            track_[audio_index].id = id++;
            track_[audio_index].timescale = audio_timescale;
            track_[audio_index].last_interval = audio_timescale / 50;
        }
    }

    /// Why the tracks cannot be muxed; empty when they can.
    std::error_code error() const noexcept { return error_; }
    std::string_view error_message() const noexcept { return message_; }
    const tracks& track_info() const noexcept { return tracks_; }
    std::uint32_t video_track_id() const noexcept { return track_[video_index].id; }
    std::uint32_t audio_track_id() const noexcept { return track_[audio_index].id; }

    /// RFC 6381 codecs of the tracks, for an HLS CODECS attribute or an MSE mime type:
    /// e.g. "vp09.00.20.08,opus". Empty after an error.
    std::string codecs() const {
        if (error_) return {};
        std::string s;
        if (tracks_.video) {
            const unsigned level = vp9_level();
            s = "vp09.00.";
            s += static_cast<char>('0' + level / 10);
            s += static_cast<char>('0' + level % 10);
            s += ".08";
        }
        if (tracks_.audio) {
            if (!s.empty()) s += ',';
            s += "opus";
        }
        return s;
    }

    /// Appends the init segment (ftyp + moov); nothing after an error.
    void write_init(std::vector<std::uint8_t>& out) const {
        if (error_) return;
        detail::box_writer w(out);
        {
            // iso6 as major brand: the fragments use tfdt version 1 and default-base-is-moof
            // (iso5). Not cmfc: CMAF tracks hold one track per file, these may hold two.
            const auto ftyp = w.open("ftyp");
            w.tag("iso6");
            w.u32(0);
            for (std::string_view b : {"iso6", "iso5", "mp41"}) w.tag(b);
        }
        const auto moov = w.open("moov");
        write_mvhd(w);
        if (tracks_.video) write_trak(w, video_index);
        if (tracks_.audio) write_trak(w, audio_index);
        const auto mvex = w.open("mvex");
        for (std::size_t k : {video_index, audio_index}) {
            if (track_[k].id == 0) continue;
            const auto trex = w.open_full("trex", 0, 0);
            w.u32(track_[k].id);
            w.u32(1); // default_sample_description_index: the one stsd entry
            w.u32(0); // every trun carries durations, sizes and flags itself
            w.u32(0);
            w.u32(0);
        }
    }

    /// Buffers one sample (its data is copied). Returns why a sample was dropped, if it was.
    std::error_code add(const sample& s) {
        const auto drop = [this](errc e) {
            ++dropped_;
            return make_error_code(e);
        };
        if (error_) {
            ++dropped_;
            return error_;
        }
        const std::size_t k = s.kind == media_kind::video ? video_index : audio_index;
        auto& t = track_[k];
        if (t.id == 0) return drop(errc::unknown_stream);
        if (s.data.empty()) return drop(errc::bad_frame);
        if (s.data.size() > max_sample_bytes) return drop(errc::oversized);
        if (s.pts_us < 0) return drop(errc::bad_frame);
        const std::uint64_t ticks = to_ticks(s.pts_us, t.timescale);
        if (t.last_ticks && ticks <= *t.last_ticks) return drop(errc::bad_frame);
        int opus_samples = 0;
        if (k == audio_index) {
            opus_samples = opus_packet_samples(s.data);
            if (opus_samples == 0) return drop(errc::bad_frame);
        } else if (!t.keyframe_seen && !s.keyframe) {
            return drop(errc::not_keyframe);
        }
        if (buffered_bytes_ + s.data.size() > max_buffered_bytes) return drop(errc::queue_full);

        pending p;
        p.pts_us = s.pts_us;
        p.ticks = ticks;
        p.opus_samples = static_cast<std::uint32_t>(opus_samples);
        p.sync = k == audio_index || s.keyframe;
        p.data.assign(s.data.begin(), s.data.end());
        t.queue.push_back(std::move(p));
        t.last_ticks = ticks;
        if (k == video_index && s.keyframe) t.keyframe_seen = true;
        buffered_bytes_ += s.data.size();
        return {};
    }

    /// Appends one fragment ([styp] moof mdat) holding every buffered sample whose pts is
    /// before `end_us` (flush_all: every buffered sample; the last video sample then lasts as
    /// long as the one before it). A media segment should start with a video key frame: cut
    /// at a key frame's pts. Returns the bytes appended; 0 (nothing appended) when no
    /// buffered sample is before `end_us`.
    std::size_t write_fragment(std::vector<std::uint8_t>& out, std::int64_t end_us, bool styp = false) {
        if (error_) return 0;
        std::array<std::size_t, 2> take{};
        bool any = false;
        for (std::size_t k = 0; k < 2; ++k) {
            const auto& q = track_[k].queue;
            while (take[k] < q.size() && q[take[k]].pts_us < end_us) ++take[k];
            any = any || take[k] > 0;
        }
        if (!any) return 0;
        for (std::size_t k = 0; k < 2; ++k) durations(k, take[k], end_us, duration_[k]);

        const std::size_t start = out.size();
        detail::box_writer w(out);
        if (styp) {
            // DASH media segment brands (ISO/IEC 23009-1), also accepted in HLS fMP4.
            const auto b = w.open("styp");
            w.tag("msdh");
            w.u32(0);
            w.tag("msdh");
            w.tag("msix");
        }
        const std::size_t moof_at = out.size();
        std::array<std::size_t, 2> data_offset_at{};
        std::array<std::size_t, 2> payload{};
        {
            const auto moof = w.open("moof");
            {
                const auto mfhd = w.open_full("mfhd", 0, 0);
                w.u32(sequence_);
            }
            for (std::size_t k = 0; k < 2; ++k) {
                if (take[k] == 0) continue;
                const auto& t = track_[k];
                const auto traf = w.open("traf");
                {
                    const auto tfhd = w.open_full("tfhd", 0, tfhd_default_base_is_moof);
                    w.u32(t.id);
                }
                {
                    // Version 1: a 64-bit decode time, so long recordings do not wrap.
                    const auto tfdt = w.open_full("tfdt", 1, 0);
                    w.u64(t.queue.front().ticks);
                }
                const auto trun = w.open_full("trun", 0, trun_flags);
                w.u32(static_cast<std::uint32_t>(take[k]));
                data_offset_at[k] = w.size();
                w.u32(0); // patched below, once the moof's size is known
                for (std::size_t i = 0; i < take[k]; ++i) {
                    const auto& p = t.queue[i];
                    w.u32(duration_[k][i]);
                    w.u32(static_cast<std::uint32_t>(p.data.size()));
                    w.u32(p.sync ? sync_sample_flags : non_sync_sample_flags);
                    payload[k] += p.data.size();
                }
            }
        }
        w.u32(static_cast<std::uint32_t>(8 + payload[0] + payload[1]));
        w.tag("mdat");
        std::size_t offset = w.size() - moof_at; // from the moof's first byte (default-base-is-moof)
        for (std::size_t k = 0; k < 2; ++k) {
            if (take[k] == 0) continue;
            w.put32(data_offset_at[k], static_cast<std::uint32_t>(offset));
            offset += payload[k];
        }
        out.reserve(out.size() + payload[0] + payload[1]);
        for (std::size_t k = 0; k < 2; ++k) {
            auto& t = track_[k];
            for (std::size_t i = 0; i < take[k]; ++i) {
                w.bytes(t.queue.front().data);
                buffered_bytes_ -= t.queue.front().data.size();
                t.queue.pop_front();
            }
            samples_written_ += take[k];
        }
        ++sequence_;
        ++fragments_;
        return out.size() - start;
    }

    /// write_fragment() with every buffered sample (end of a recording).
    std::size_t flush(std::vector<std::uint8_t>& out, bool styp = false) { return write_fragment(out, flush_all, styp); }

    /// pts of the earliest buffered sample of any track.
    std::optional<std::int64_t> earliest_pts_us() const noexcept {
        std::optional<std::int64_t> r;
        for (const auto& t : track_)
            if (!t.queue.empty() && (!r || t.queue.front().pts_us < *r)) r = t.queue.front().pts_us;
        return r;
    }
    std::size_t buffered_samples() const noexcept { return track_[0].queue.size() + track_[1].queue.size(); }
    std::size_t buffered_bytes() const noexcept { return buffered_bytes_; }
    std::uint64_t fragments_written() const noexcept { return fragments_; }
    std::uint64_t samples_written() const noexcept { return samples_written_; }
    std::uint64_t samples_dropped() const noexcept { return dropped_; }
    /// mfhd sequence number of the next fragment (the first is 1).
    std::uint32_t next_sequence_number() const noexcept { return sequence_; }

private:
    static constexpr std::size_t video_index = 0;
    static constexpr std::size_t audio_index = 1;

    struct pending {
        std::int64_t pts_us = 0;
        std::uint64_t ticks = 0;
        std::uint32_t opus_samples = 0;
        bool sync = true;
        std::vector<std::uint8_t> data;
    };
    struct track_state {
        std::uint32_t id = 0; ///< 0: the track does not exist
        std::uint32_t timescale = 0;
        std::deque<pending> queue;
        std::optional<std::uint64_t> last_ticks; ///< of the last accepted sample
        std::uint32_t last_interval = 0;        ///< last duration between two samples, in ticks
        bool keyframe_seen = false;
    };

    /// Rounds microseconds to ticks without overflowing for any non-negative pts.
    static std::uint64_t to_ticks(std::int64_t us, std::uint32_t scale) noexcept {
        const auto u = static_cast<std::uint64_t>(us);
        return u / 1'000'000 * scale + (u % 1'000'000 * scale + 500'000) / 1'000'000;
    }
    static std::uint32_t clamp_duration(std::uint64_t d) noexcept {
        return static_cast<std::uint32_t>(std::clamp<std::uint64_t>(d, 1, std::numeric_limits<std::uint32_t>::max()));
    }

    void durations(std::size_t k, std::size_t n, std::int64_t end_us, std::vector<std::uint32_t>& d) {
        auto& t = track_[k];
        d.resize(n);
        for (std::size_t i = 0; i < n; ++i) {
            if (i + 1 < t.queue.size()) {
                d[i] = clamp_duration(t.queue[i + 1].ticks - t.queue[i].ticks);
                t.last_interval = d[i];
            } else if (k == audio_index) {
                d[i] = t.queue[i].opus_samples * (audio_timescale / 48'000);
            } else if (end_us == flush_all) {
                d[i] = t.last_interval;
            } else {
                // pts < end_us, so end_us's ticks are not below this sample's.
                d[i] = clamp_duration(to_ticks(end_us, t.timescale) - t.queue[i].ticks);
            }
        }
    }

    std::uint8_t vp9_level() const noexcept {
        return detail::vp9_level(tracks_.video->width, tracks_.video->height, assumed_fps);
    }

    void fail(errc e, std::string_view why) {
        error_ = make_error_code(e);
        message_ = why;
    }

    static void write_matrix(detail::box_writer& w) {
        // Identity: 16.16 fixed point a, d and 2.30 w.
        for (std::uint32_t v : {0x0001'0000u, 0u, 0u, 0u, 0x0001'0000u, 0u, 0u, 0u, 0x4000'0000u}) w.u32(v);
    }

    void write_mvhd(detail::box_writer& w) const {
        const auto mvhd = w.open_full("mvhd", 0, 0);
        w.u32(0);     // creation_time
        w.u32(0);     // modification_time
        w.u32(1000);  // timescale
        w.u32(0);     // duration: unknown, fragments follow
        w.u32(0x0001'0000); // rate 1.0
        w.u16(0x0100);      // volume 1.0
        w.zeros(2 + 8);
        write_matrix(w);
        w.zeros(24); // pre_defined
        w.u32(std::max(track_[0].id, track_[1].id) + 1); // next_track_ID
    }

    void write_trak(detail::box_writer& w, std::size_t k) const {
        const bool video = k == video_index;
        const auto& t = track_[k];
        const auto trak = w.open("trak");
        {
            const auto tkhd = w.open_full("tkhd", 0, 0x000003); // track_enabled | track_in_movie
            w.u32(0); // creation_time
            w.u32(0); // modification_time
            w.u32(t.id);
            w.u32(0); // reserved
            w.u32(0); // duration
            w.zeros(8);
            w.u16(0); // layer
            w.u16(0); // alternate_group
            w.u16(video ? 0 : 0x0100); // volume
            w.u16(0);
            write_matrix(w);
            w.u32(video ? static_cast<std::uint32_t>(tracks_.video->width) << 16 : 0);
            w.u32(video ? static_cast<std::uint32_t>(tracks_.video->height) << 16 : 0);
        }
        const auto mdia = w.open("mdia");
        {
            const auto mdhd = w.open_full("mdhd", 0, 0);
            w.u32(0);
            w.u32(0);
            w.u32(t.timescale);
            w.u32(0);
            w.u16(0x55c4); // language "und", ISO 639-2/T packed in 3 x 5 bits
            w.u16(0);
        }
        {
            const auto hdlr = w.open_full("hdlr", 0, 0);
            w.u32(0);
            w.tag(video ? "vide" : "soun");
            w.zeros(12);
            const std::string_view name = video ? "VideoHandler" : "SoundHandler";
            for (char c : name) w.u8(static_cast<unsigned char>(c));
            w.u8(0);
        }
        const auto minf = w.open("minf");
        if (video) {
            const auto vmhd = w.open_full("vmhd", 0, 1); // flags 1 is mandatory for vmhd
            w.zeros(8); // graphicsmode, opcolor
        } else {
            const auto smhd = w.open_full("smhd", 0, 0);
            w.zeros(4); // balance, reserved
        }
        {
            const auto dinf = w.open("dinf");
            const auto dref = w.open_full("dref", 0, 0);
            w.u32(1);
            const auto url = w.open_full("url ", 0, 1); // media data is in this file
        }
        const auto stbl = w.open("stbl");
        {
            const auto stsd = w.open_full("stsd", 0, 0);
            w.u32(1);
            if (video) write_vp09(w);
            else write_opus(w);
        }
        // Empty sample tables: every sample lives in a fragment.
        for (std::string_view box : {"stts", "stsc", "stco"}) {
            const auto b = w.open_full(box, 0, 0);
            w.u32(0);
        }
        {
            const auto stsz = w.open_full("stsz", 0, 0);
            w.u32(0); // sample_size
            w.u32(0); // sample_count
        }
    }

    void write_vp09(detail::box_writer& w) const {
        const auto& v = *tracks_.video;
        const auto entry = w.open("vp09");
        w.zeros(6);
        w.u16(1); // data_reference_index
        w.zeros(2 + 2 + 12);
        w.u16(static_cast<std::uint32_t>(v.width));
        w.u16(static_cast<std::uint32_t>(v.height));
        w.u32(0x0048'0000); // 72 dpi
        w.u32(0x0048'0000);
        w.u32(0);
        w.u16(1); // frame_count
        w.zeros(32); // compressorname
        w.u16(0x0018); // depth: colour, no alpha
        w.u16(0xffff); // pre_defined = -1
        const auto vpcc = w.open_full("vpcC", 1, 0);
        w.u8(0); // profile 0 (the library's VP9 encoder: 8-bit 4:2:0)
        w.u8(vp9_level());
        constexpr std::uint32_t bit_depth = 8, chroma_420_vertical = 0, full_range = 0;
        w.u8(bit_depth << 4 | chroma_420_vertical << 1 | full_range);
        w.u8(2); // colour_primaries: unspecified
        w.u8(2); // transfer_characteristics: unspecified
        w.u8(2); // matrix_coefficients: unspecified
        w.u16(0); // codecInitializationDataSize: must be 0 for VP9
    }

    void write_opus(detail::box_writer& w) const {
        const auto& a = *tracks_.audio;
        const auto entry = w.open("Opus");
        w.zeros(6);
        w.u16(1); // data_reference_index
        w.zeros(8);
        w.u16(static_cast<std::uint32_t>(a.channels));
        w.u16(16); // samplesize
        w.zeros(4);
        w.u32(std::uint32_t{48'000} << 16); // Opus always decodes at 48 kHz, 16.16 fixed point
        const auto dops = w.open("dOps");
        w.u8(0); // Version
        w.u8(static_cast<std::uint32_t>(a.channels)); // OutputChannelCount
        w.u16(a.pre_skip);
        w.u32(static_cast<std::uint32_t>(a.sample_rate)); // InputSampleRate
        w.u16(0); // OutputGain
        w.u8(0);  // ChannelMappingFamily 0: mono or stereo, one stream
    }

    tracks tracks_;
    std::error_code error_;
    std::string message_;
    std::array<track_state, 2> track_{};
    std::array<std::vector<std::uint32_t>, 2> duration_; ///< scratch for write_fragment()
    std::size_t buffered_bytes_ = 0;
    std::uint32_t sequence_ = 1;
    std::uint64_t fragments_ = 0, samples_written_ = 0, dropped_ = 0;
};

/// Records VP9/Opus samples to a fragmented .mp4 file: the init segment on open(), then one
/// fragment per video key frame, or whenever the buffered samples would span
/// max_fragment_us or exceed max_fragment_bytes (so audio-only recordings and long GOPs get
/// ~1 s fragments). Each fragment is flushed to the OS as soon as it is written, so a killed
/// recording still plays up to its last complete fragment. close() writes the rest.
/// Samples are given in arrival order; each track's pts must increase (see mp4_muxer for
/// what is dropped).
/// Thread safety: none; one thread per object.
class mp4_file_writer {
public:
    static constexpr std::int64_t max_fragment_us = 1'000'000;
    static constexpr std::size_t max_fragment_bytes = std::size_t{4} << 20;

    mp4_file_writer() = default;
    mp4_file_writer(mp4_file_writer&& o) noexcept { *this = std::move(o); }
    mp4_file_writer& operator=(mp4_file_writer&& o) noexcept {
        if (this != &o) {
            close();
            out_ = std::move(o.out_);
            mux_ = std::move(o.mux_);
            o.mux_.reset();
            buf_ = std::move(o.buf_);
            bytes_ = std::exchange(o.bytes_, 0);
            error_ = std::exchange(o.error_, {});
            message_ = std::move(o.message_);
        }
        return *this;
    }
    ~mp4_file_writer() { close(); }

    /// Starts a recording: checks the tracks (VP8: errc::unsupported, no file created), then
    /// creates `path` and writes the init segment.
    std::error_code open(const std::filesystem::path& path, const tracks& t) {
        close();
        error_ = {};
        message_.clear();
        bytes_ = 0;
        mux_.emplace(t);
        if (auto ec = mux_->error()) {
            message_ = mux_->error_message();
            mux_.reset();
            return error_ = ec;
        }
        out_.open(path, std::ios::binary | std::ios::trunc);
        if (!out_) {
            mux_.reset();
            message_ = "mp4: cannot create the file";
            return error_ = make_error_code(errc::bad_file);
        }
        buf_.clear();
        mux_->write_init(buf_);
        emit();
        return error_;
    }

    /// Adds one sample, first writing the buffered ones as a fragment when this sample starts
    /// a new one. Returns why the sample was dropped, or the file's write error.
    std::error_code write(const sample& s) {
        if (!out_.is_open()) return make_error_code(errc::bad_file);
        if (error_) return error_;
        if (const auto first = mux_->earliest_pts_us()) {
            const bool key = s.kind == media_kind::video && s.keyframe && mux_->track_info().video;
            const bool too_long = s.pts_us - *first >= max_fragment_us;
            const bool too_big = mux_->buffered_bytes() + s.data.size() > max_fragment_bytes;
            if (key || too_long || too_big) {
                buf_.clear();
                if (mux_->write_fragment(buf_, s.pts_us) > 0) emit();
                if (error_) return error_;
            }
        }
        return mux_->add(s);
    }

    /// Writes the buffered samples and closes the file; returns the first write error, if any.
    std::error_code close() {
        if (!out_.is_open()) return error_;
        if (!error_) {
            buf_.clear();
            if (mux_->flush(buf_) > 0) emit();
        }
        out_.close();
        if (!out_ && !error_) error_ = make_error_code(errc::bad_file);
        out_.clear();
        return error_;
    }

    bool is_open() const noexcept { return out_.is_open(); }
    std::error_code error() const noexcept { return error_; }
    std::string_view error_message() const noexcept { return message_; }
    /// Bytes handed to the file so far (init segment and complete fragments).
    std::uint64_t bytes_written() const noexcept { return bytes_; }
    std::uint64_t fragments_written() const noexcept { return mux_ ? mux_->fragments_written() : 0; }
    std::uint64_t samples_written() const noexcept { return mux_ ? mux_->samples_written() : 0; }
    std::uint64_t samples_dropped() const noexcept { return mux_ ? mux_->samples_dropped() : 0; }
    /// Samples waiting for the next fragment.
    std::size_t buffered_samples() const noexcept { return mux_ ? mux_->buffered_samples() : 0; }

private:
    void emit() {
        out_.write(reinterpret_cast<const char*>(buf_.data()), static_cast<std::streamsize>(buf_.size()));
        out_.flush();
        if (!out_) {
            error_ = make_error_code(errc::bad_file);
            message_ = "mp4: write failed";
            return;
        }
        bytes_ += buf_.size();
    }

    std::ofstream out_;
    std::optional<mp4_muxer> mux_;
    std::vector<std::uint8_t> buf_;
    std::uint64_t bytes_ = 0;
    std::error_code error_;
    std::string message_;
};

} // namespace onair::media
