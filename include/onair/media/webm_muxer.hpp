// onair — WebM muxer: VP8/VP9 video and Opus audio in SimpleBlocks, written by a small
// EBML writer of its own.
//
// Two layouts:
//  - webm_mode::file, for a seekable output. Header, then clusters of known size: each
//    cluster is built in memory and written whole (and flushed) when it closes, so a file
//    cut short by a crash holds complete clusters only and plays up to the cut. Until
//    finish() the Segment size is "unknown" and the places of the seek head and the
//    duration are Void elements; finish() writes the last cluster and the Cues, then
//    patches the Segment size, the Duration and a SeekHead (Info, Tracks, Cues) in place.
//  - webm_mode::live, for an unseekable stream (HTTP). Segment and clusters of unknown
//    size, no seek head, cues or duration; every block goes out as soon as it is written.
//    A new viewer gets header() + since_keyframe() and then every byte written after.
//
// Layout rules shared by both: video is track 1 and audio track 2 when both exist,
// otherwise the one track is 1; block timestamps are milliseconds (TimecodeScale 1 ms),
// rounded from the samples' microseconds. A video key frame always starts a cluster, so
// every cue (file) and every join point (live) is a cluster start.
#pragma once

#include "onair/core/error.hpp"
#include "onair/media/tracks.hpp"

#include <algorithm>
#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <optional>
#include <span>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace onair::media {

/// EBML (RFC 8794) primitives, as far as WebM needs them. Element ids are written as their
/// raw bytes (the length marker is part of the id); sizes are variable-length integers
/// whose first byte's leading zeros say how many bytes follow.
namespace ebml {

using buffer = std::vector<std::uint8_t>;

/// Element ids (Matroska specification, RFC 9559).
namespace id {
inline constexpr std::uint32_t ebml = 0x1A45DFA3;
inline constexpr std::uint32_t ebml_version = 0x4286;
inline constexpr std::uint32_t ebml_read_version = 0x42F7;
inline constexpr std::uint32_t ebml_max_id_length = 0x42F2;
inline constexpr std::uint32_t ebml_max_size_length = 0x42F3;
inline constexpr std::uint32_t doc_type = 0x4282;
inline constexpr std::uint32_t doc_type_version = 0x4287;
inline constexpr std::uint32_t doc_type_read_version = 0x4285;
inline constexpr std::uint32_t void_element = 0xEC;
inline constexpr std::uint32_t segment = 0x18538067;
inline constexpr std::uint32_t seek_head = 0x114D9B74;
inline constexpr std::uint32_t seek = 0x4DBB;
inline constexpr std::uint32_t seek_id = 0x53AB;
inline constexpr std::uint32_t seek_position = 0x53AC;
inline constexpr std::uint32_t info = 0x1549A966;
inline constexpr std::uint32_t timecode_scale = 0x2AD7B1;
inline constexpr std::uint32_t duration = 0x4489;
inline constexpr std::uint32_t muxing_app = 0x4D80;
inline constexpr std::uint32_t writing_app = 0x5741;
inline constexpr std::uint32_t tracks = 0x1654AE6B;
inline constexpr std::uint32_t track_entry = 0xAE;
inline constexpr std::uint32_t track_number = 0xD7;
inline constexpr std::uint32_t track_uid = 0x73C5;
inline constexpr std::uint32_t track_type = 0x83;
inline constexpr std::uint32_t flag_lacing = 0x9C;
inline constexpr std::uint32_t codec_id = 0x86;
inline constexpr std::uint32_t codec_private = 0x63A2;
inline constexpr std::uint32_t codec_delay = 0x56AA;
inline constexpr std::uint32_t seek_pre_roll = 0x56BB;
inline constexpr std::uint32_t video = 0xE0;
inline constexpr std::uint32_t pixel_width = 0xB0;
inline constexpr std::uint32_t pixel_height = 0xBA;
inline constexpr std::uint32_t audio = 0xE1;
inline constexpr std::uint32_t sampling_frequency = 0xB5;
inline constexpr std::uint32_t channels = 0x9F;
inline constexpr std::uint32_t cluster = 0x1F43B675;
inline constexpr std::uint32_t timecode = 0xE7;
inline constexpr std::uint32_t simple_block = 0xA3;
inline constexpr std::uint32_t cues = 0x1C53BB6B;
inline constexpr std::uint32_t cue_point = 0xBB;
inline constexpr std::uint32_t cue_time = 0xB3;
inline constexpr std::uint32_t cue_track_positions = 0xB7;
inline constexpr std::uint32_t cue_track = 0xF7;
inline constexpr std::uint32_t cue_cluster_position = 0xF1;
inline constexpr std::uint32_t cue_relative_position = 0xF0;
} // namespace id

/// Largest size an 8-byte size field holds (all value bits set means "unknown").
inline constexpr std::uint64_t max_size = (std::uint64_t{1} << 56) - 2;

/// Bytes of the shortest size field for `v` (1..8); 0 when `v` > max_size. A value with all
/// its bits set in n bytes is reserved ("unknown"), hence the - 1.
constexpr int size_length(std::uint64_t v) noexcept {
    for (int n = 1; n <= 8; ++n)
        if (v < (std::uint64_t{1} << (7 * n)) - 1) return n;
    return 0;
}

/// Appends `v` as a size field of `len` bytes (the shortest when 0).
inline void put_size(buffer& b, std::uint64_t v, int len = 0) {
    if (len == 0) len = size_length(v);
    const std::uint64_t coded = v | (std::uint64_t{1} << (7 * len)); // length marker bit
    for (int i = len - 1; i >= 0; --i) b.push_back(static_cast<std::uint8_t>(coded >> (8 * i)));
}

/// The 8-byte "unknown size" (01 FF FF FF FF FF FF FF): the element ends where an element
/// that cannot be its child begins. Live streams use it; files use it until patched.
inline void put_unknown_size(buffer& b) {
    b.push_back(0x01);
    b.insert(b.end(), 7, 0xFF);
}

inline void put_id(buffer& b, std::uint32_t element) {
    int bytes = 4;
    while (bytes > 1 && (element >> (8 * (bytes - 1))) == 0) --bytes;
    for (int i = bytes - 1; i >= 0; --i) b.push_back(static_cast<std::uint8_t>(element >> (8 * i)));
}

inline void put_uint(buffer& b, std::uint32_t element, std::uint64_t v, int bytes = 0) {
    if (bytes == 0) {
        bytes = 1;
        while (bytes < 8 && (v >> (8 * bytes)) != 0) ++bytes;
    }
    put_id(b, element);
    put_size(b, static_cast<std::uint64_t>(bytes));
    for (int i = bytes - 1; i >= 0; --i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

/// A float element of 8 bytes (IEEE 754 double, big-endian).
inline void put_double(buffer& b, std::uint32_t element, double v) {
    put_id(b, element);
    put_size(b, 8);
    const auto bits = std::bit_cast<std::uint64_t>(v);
    for (int i = 7; i >= 0; --i) b.push_back(static_cast<std::uint8_t>(bits >> (8 * i)));
}

/// A float element of 4 bytes (IEEE 754 single, big-endian).
inline void put_float(buffer& b, std::uint32_t element, float v) {
    put_id(b, element);
    put_size(b, 4);
    const auto bits = std::bit_cast<std::uint32_t>(v);
    for (int i = 3; i >= 0; --i) b.push_back(static_cast<std::uint8_t>(bits >> (8 * i)));
}

inline void put_binary(buffer& b, std::uint32_t element, std::span<const std::uint8_t> v) {
    put_id(b, element);
    put_size(b, v.size());
    b.insert(b.end(), v.begin(), v.end());
}

inline void put_string(buffer& b, std::uint32_t element, std::string_view v) {
    put_binary(b, element, {reinterpret_cast<const std::uint8_t*>(v.data()), v.size()});
}

inline void put_master(buffer& b, std::uint32_t element, const buffer& body) {
    put_binary(b, element, body);
}

/// A Void element of exactly `total` bytes (>= 2; nothing for 0): reserved space readers skip.
inline void put_void(buffer& b, std::size_t total) {
    for (int len = 1; len <= 8; ++len) {
        const std::size_t body = total - 1 - static_cast<std::size_t>(len);
        if (total >= 1 + static_cast<std::size_t>(len) && size_length(body) <= len) {
            put_id(b, id::void_element);
            put_size(b, body, len);
            b.insert(b.end(), body, 0);
            return;
        }
    }
}

} // namespace ebml

/// Opus identification header (RFC 7845 section 5.1), WebM's Opus CodecPrivate: channel
/// mapping family 0 (mono or stereo), no output gain.
inline ebml::buffer opus_head(const audio_track& a) {
    ebml::buffer h = {'O', 'p', 'u', 's', 'H', 'e', 'a', 'd', 1};
    h.push_back(static_cast<std::uint8_t>(a.channels));
    h.push_back(static_cast<std::uint8_t>(a.pre_skip & 0xff));
    h.push_back(static_cast<std::uint8_t>(a.pre_skip >> 8));
    const auto rate = static_cast<std::uint32_t>(a.sample_rate);
    for (int i = 0; i < 4; ++i) h.push_back(static_cast<std::uint8_t>(rate >> (8 * i)));
    h.insert(h.end(), {0, 0, 0}); // output gain (Q7.8 dB), mapping family
    return h;
}

enum class webm_mode : std::uint8_t { file, live };

/// Byte sink every mode needs: `void write(std::span<const std::uint8_t>)`. Optional
/// members the muxer uses when present:
///  - `std::error_code error() const`: checked after each write; a failure is sticky.
///  - `void on_cluster_start(bool keyframe)`: called just before the first byte of each
///    cluster is written; `keyframe` is true when a player can start there (the cluster
///    opens with a video key frame, or any cluster of an audio-only stream).
template <class O>
concept webm_output = requires(O& o, std::span<const std::uint8_t> b) { o.write(b); };

/// What file mode needs besides: `overwrite(at, bytes)` of bytes written before (`at`
/// counts from the first byte this muxer wrote), and `flush()` after each cluster.
template <class O>
concept seekable_webm_output = webm_output<O> && requires(O& o, std::uint64_t at, std::span<const std::uint8_t> b) {
    o.overwrite(at, b);
    o.flush();
};

/// Cluster and input limits. The defaults suit recordings and HTTP live streams.
struct webm_options {
    /// File: the longest cluster, timed by the video track (when key frames are further
    /// apart) or, for audio only, by the audio track.
    int file_cluster_ms = 1000;
    /// File: a cluster closes before it would grow past this.
    std::size_t file_cluster_bytes = 4u << 20;
    /// Live: the longest cluster when key frames are further apart. Both modes: how far
    /// audio goes on in one cluster beside a stalled video track.
    int live_cluster_ms = 5000;
    /// Larger samples are dropped.
    std::size_t max_sample_bytes = 64u << 20;
    /// A sample at most this far behind its track's previous one is written at the previous
    /// one's time; further behind, it is dropped.
    std::int64_t reorder_tolerance_us = 1000;
    /// Live: the most since_keyframe() keeps for late joiners.
    std::size_t max_join_bytes = 32u << 20;
};

struct webm_stats {
    std::uint64_t clusters = 0;       ///< started
    std::uint64_t blocks = 0;         ///< SimpleBlocks written (file: including the open cluster's)
    std::uint64_t video_blocks = 0;
    std::uint64_t audio_blocks = 0;
    std::uint64_t cues = 0;           ///< file: CuePoints written by finish()
    std::uint64_t bytes = 0;          ///< given to the output's write()
    std::uint64_t dropped_no_track = 0;    ///< kind of a track the stream does not have
    std::uint64_t dropped_timestamp = 0;   ///< negative, or behind the track's previous sample
    std::uint64_t dropped_empty = 0;
    std::uint64_t dropped_oversized = 0;
    std::uint64_t dropped() const noexcept {
        return dropped_no_track + dropped_timestamp + dropped_empty + dropped_oversized;
    }
};

/// Muxes samples of the given tracks into WebM bytes for `Out`.
/// @tparam Out a webm_output (for webm_mode::file a seekable_webm_output), held by value;
///         a reference type (`T&`) leaves the output with the caller.
/// Samples come per track in non-decreasing pts order, interleaved across tracks roughly in
/// time order. A sample the muxer cannot take (see webm_stats) is dropped, counted and
/// answered with errc::bad_frame; the muxer stays usable. Any other error (a failing
/// output, bad tracks) is sticky: every later call returns it.
/// Destruction does not finish(): a file left so is what a crash leaves (whole clusters,
/// playable up to the last).
/// Thread safety: none; one thread per object (a live server reads header(),
/// since_keyframe() and output() on the thread that writes).
template <class Out>
    requires webm_output<std::remove_reference_t<Out>>
class webm_muxer {
    using out_type = std::remove_reference_t<Out>;
    static constexpr bool seekable = seekable_webm_output<out_type>;
    static constexpr bool reports_errors = requires(const out_type& o) {
        { o.error() } -> std::convertible_to<std::error_code>;
    };
    static constexpr bool notifies_clusters = requires(out_type& o) { o.on_cluster_start(true); };

public:
    webm_muxer(Out out, media::tracks t, webm_mode mode, webm_options o = {})
        : out_(std::forward<Out>(out)), tracks_(t), mode_(mode), opts_(o) {
        // A span of max_relative_ms + 1 still fits every relative timecode in int16.
        opts_.file_cluster_ms = std::clamp(opts_.file_cluster_ms, 1, max_relative_ms + 1);
        opts_.live_cluster_ms = std::clamp(opts_.live_cluster_ms, 1, max_relative_ms + 1);
        if (tracks_.video) video_.number = 1;
        if (tracks_.audio) audio_.number = tracks_.video ? 2 : 1;
    }

    /// Writes the header (EBML header, Segment start, Info, Tracks). Called by the first
    /// write() if not before. errc::bad_frame: a video size that is not > 0;
    /// errc::unsupported: no track, an audio track that is not 1-2 channels at a positive
    /// rate, or file mode on an output that cannot overwrite.
    std::error_code start() {
        if (started_ || error_) return error_;
        if (!tracks_.video && !tracks_.audio) return fail(errc::unsupported);
        if (tracks_.video && (tracks_.video->width <= 0 || tracks_.video->height <= 0)) return fail(errc::bad_frame);
        if (tracks_.audio && ((tracks_.audio->channels != 1 && tracks_.audio->channels != 2) ||
                              tracks_.audio->sample_rate <= 0))
            return fail(errc::unsupported);
        if (mode_ == webm_mode::file && !seekable) return fail(errc::unsupported);
        started_ = true;
        build_header();
        emit(header_);
        flush();
        return error_;
    }

    /// Adds one sample; may close a cluster (file: written whole) or stream its block (live).
    std::error_code write(const sample& s) {
        if (error_) return error_;
        if (finished_) return errc::end_of_stream;
        if (!started_)
            if (auto ec = start()) return ec;
        const bool is_video = s.kind == media_kind::video;
        track_state* tr = is_video ? (tracks_.video ? &video_ : nullptr) : (tracks_.audio ? &audio_ : nullptr);
        if (!tr) return drop(stats_.dropped_no_track);
        if (s.data.empty()) return drop(stats_.dropped_empty);
        if (s.data.size() > opts_.max_sample_bytes) return drop(stats_.dropped_oversized);
        if (s.pts_us < 0 || (tr->any && s.pts_us < tr->last_us - opts_.reorder_tolerance_us))
            return drop(stats_.dropped_timestamp);

        const std::int64_t pts_us = tr->any ? std::max(s.pts_us, tr->last_us) : s.pts_us;
        const std::int64_t ms = std::max((pts_us + 500) / 1000, tr->any ? tr->last_ms : 0);
        const bool key = is_video ? s.keyframe : true;
        const std::size_t block_bytes = block_size(s.data.size());

        if (needs_cluster(ms, is_video, key, block_bytes)) open_cluster(ms, is_video ? key : !tracks_.video);
        put_block(*tr, ms, key, s.data);

        // Frame durations are not given: a video frame lasts until the next one, estimated
        // for the last by the interval before it; an Opus packet says its own length.
        const std::int64_t dur_us = is_video ? (tr->any ? pts_us - tr->last_us : 0)
                                             : std::int64_t{opus_packet_samples(s.data)} * 1'000'000 / 48'000;
        end_us_ = std::max(end_us_, pts_us + dur_us);
        tr->any = true;
        tr->last_us = pts_us;
        tr->last_ms = ms;
        ++stats_.blocks;
        ++(is_video ? stats_.video_blocks : stats_.audio_blocks);
        return error_;
    }

    /// File: writes the open cluster and the Cues, patches the Segment size, Duration and
    /// SeekHead, flushes. Live: flushes when the output can. Later writes: end_of_stream.
    std::error_code finish() {
        if (finished_ || error_) return error_;
        if (!started_)
            if (auto ec = start()) return ec;
        finished_ = true;
        if (mode_ == webm_mode::live) {
            flush();
            return error_;
        }
        if constexpr (seekable) {
            write_cluster();
            std::optional<std::uint64_t> cues_at;
            if (!cues_.empty()) {
                cues_at = pos_ - segment_data_;
                ebml::buffer body;
                for (const auto& c : cues_) {
                    ebml::buffer pos, point;
                    ebml::put_uint(pos, ebml::id::cue_track, c.track);
                    ebml::put_uint(pos, ebml::id::cue_cluster_position, c.cluster_position);
                    ebml::put_uint(pos, ebml::id::cue_relative_position, c.relative_position);
                    ebml::put_uint(point, ebml::id::cue_time, c.time_ms);
                    ebml::put_master(point, ebml::id::cue_track_positions, pos);
                    ebml::put_master(body, ebml::id::cue_point, point);
                }
                ebml::buffer cues;
                ebml::put_master(cues, ebml::id::cues, body);
                emit(cues);
                stats_.cues = cues_.size();
            }
            ebml::buffer patch;
            ebml::put_size(patch, pos_ - segment_data_, 8);
            patch_at(segment_size_at_, patch);
            patch.clear();
            ebml::put_double(patch, ebml::id::duration, static_cast<double>(end_us_) / 1000.0);
            patch_at(duration_at_, patch); // same 11 bytes as the Void it replaces
            patch = seek_head(cues_at);
            ebml::put_void(patch, seek_reserve_ - patch.size());
            patch_at(seek_at_, patch);
            flush();
        }
        return error_;
    }

    /// Header bytes as start() wrote them (EBML header, Segment start, Info, Tracks); empty
    /// before start(). Live: what every viewer gets first. File: the seek head and duration
    /// are still Void here (finish() patches the output, not this copy).
    std::span<const std::uint8_t> header() const noexcept { return header_; }

    /// Live: bytes written since the open cluster began (its head included); empty in file
    /// mode, before the first sample, and once the cluster grew past max_join_bytes.
    std::span<const std::uint8_t> current_cluster() const noexcept {
        if (!current_valid_) return {};
        return std::span<const std::uint8_t>(live_).subspan(current_at_);
    }
    /// Live: bytes written since the start of the latest cluster a player can start at (a
    /// video key frame, any cluster of audio-only), spanning clusters split from a long
    /// GOP; empty when there is none yet or it grew past max_join_bytes. header() + this,
    /// followed by every later write, is a stream that plays from that key frame.
    std::span<const std::uint8_t> since_keyframe() const noexcept {
        if (!join_valid_) return {};
        return live_;
    }

    Out& output() noexcept { return out_; }
    const out_type& output() const noexcept { return out_; }
    const webm_stats& stats() const noexcept { return stats_; }
    std::error_code error() const noexcept { return error_; }
    webm_mode mode() const noexcept { return mode_; }
    const media::tracks& tracks() const noexcept { return tracks_; }
    bool started() const noexcept { return started_; }
    bool finished() const noexcept { return finished_; }
    /// Track numbers in the file (0 when the track is absent).
    std::uint64_t video_track_number() const noexcept { return video_.number; }
    std::uint64_t audio_track_number() const noexcept { return audio_.number; }

private:
    static constexpr int max_relative_ms = std::numeric_limits<std::int16_t>::max();
    static constexpr std::size_t cluster_head_room = 12; // cluster id (4) + the longest size field (8)

    struct track_state {
        std::uint64_t number = 0;
        bool any = false;
        std::int64_t last_us = 0;
        std::int64_t last_ms = 0;
    };
    struct cue {
        std::uint64_t time_ms, track, cluster_position, relative_position;
    };

    std::error_code fail(errc e) {
        error_ = make_error_code(e);
        return error_;
    }
    std::error_code drop(std::uint64_t& counter) {
        ++counter;
        return errc::bad_frame;
    }

    void emit(std::span<const std::uint8_t> b) {
        if (b.empty() || error_) return;
        out_.write(b);
        pos_ += b.size();
        stats_.bytes += b.size();
        check_output();
    }
    void patch_at(std::uint64_t at, std::span<const std::uint8_t> b) {
        if constexpr (seekable) {
            if (error_) return;
            out_.overwrite(at, b);
            check_output();
        }
    }
    void flush() {
        if constexpr (requires(out_type& o) { o.flush(); }) {
            if (error_) return;
            out_.flush();
            check_output();
        }
    }
    void check_output() {
        if constexpr (reports_errors)
            if (const std::error_code ec = out_.error(); ec && !error_) error_ = ec;
    }

    static std::size_t block_size(std::size_t data) noexcept {
        const std::size_t body = 4 + data; // track number (1 byte), int16 timecode, flags
        return 1 + static_cast<std::size_t>(ebml::size_length(body)) + body;
    }

    bool needs_cluster(std::int64_t ms, bool is_video, bool key, std::size_t block_bytes) const noexcept {
        if (!cluster_open_) return true;
        const std::int64_t rel = ms - cluster_ms_;
        // Relative timecodes are int16; negative ones are legal but trip some players.
        if (rel < 0 || rel > max_relative_ms) return true;
        if (is_video && key) return true; // key frames start clusters: cues and join points
        const bool lead = is_video || !tracks_.video;
        const int span_ms = mode_ == webm_mode::file ? opts_.file_cluster_ms : opts_.live_cluster_ms;
        if (lead && rel >= span_ms) return true;
        if (!lead && rel >= opts_.live_cluster_ms) return true; // video stalled: audio goes on
        return mode_ == webm_mode::file && cluster_.size() - cluster_head_room + block_bytes > opts_.file_cluster_bytes;
    }

    void open_cluster(std::int64_t ms, bool join) {
        if (mode_ == webm_mode::file) write_cluster();
        cluster_open_ = true;
        cluster_ms_ = ms;
        cluster_join_ = join;
        ++stats_.clusters;
        ebml::buffer timecode;
        ebml::put_uint(timecode, ebml::id::timecode, static_cast<std::uint64_t>(ms));
        cluster_first_block_ = timecode.size();
        if (mode_ == webm_mode::file) {
            cluster_.assign(cluster_head_room, 0); // the head goes here once the size is known
            cluster_.insert(cluster_.end(), timecode.begin(), timecode.end());
            return;
        }
        if constexpr (notifies_clusters) out_.on_cluster_start(join);
        if (join) {
            live_.clear();
            join_valid_ = true;
            current_at_ = 0;
        } else if (!join_valid_) {
            live_.clear();
            current_at_ = 0;
        } else {
            current_at_ = live_.size();
        }
        current_valid_ = true;
        scratch_.clear();
        ebml::put_id(scratch_, ebml::id::cluster);
        ebml::put_unknown_size(scratch_);
        scratch_.insert(scratch_.end(), timecode.begin(), timecode.end());
    }

    void put_block(const track_state& tr, std::int64_t ms, bool key, std::span<const std::uint8_t> data) {
        ebml::buffer& b = mode_ == webm_mode::file ? cluster_ : scratch_;
        ebml::put_id(b, ebml::id::simple_block);
        ebml::put_size(b, 4 + data.size());
        ebml::put_size(b, tr.number); // track number, itself a vint
        const auto rel = static_cast<std::uint16_t>(static_cast<std::int16_t>(ms - cluster_ms_));
        b.push_back(static_cast<std::uint8_t>(rel >> 8));
        b.push_back(static_cast<std::uint8_t>(rel & 0xff));
        b.push_back(key ? 0x80 : 0x00);
        b.insert(b.end(), data.begin(), data.end());
        if (mode_ == webm_mode::live) {
            keep_for_joiners(scratch_);
            emit(scratch_);
            scratch_.clear();
        }
    }

    void keep_for_joiners(std::span<const std::uint8_t> b) {
        if (!current_valid_) return;
        if (live_.size() + b.size() > opts_.max_join_bytes) {
            // Too long to replay to a newcomer: nothing kept until the next cluster starts.
            live_.clear();
            live_.shrink_to_fit();
            join_valid_ = current_valid_ = false;
            current_at_ = 0;
            return;
        }
        live_.insert(live_.end(), b.begin(), b.end());
    }

    /// File: writes the open cluster whole, with its size, and flushes it.
    void write_cluster() {
        if (!cluster_open_) return;
        cluster_open_ = false;
        const std::uint64_t body = cluster_.size() - cluster_head_room;
        ebml::buffer head;
        ebml::put_id(head, ebml::id::cluster);
        ebml::put_size(head, body);
        const std::size_t from = cluster_head_room - head.size();
        std::copy(head.begin(), head.end(), cluster_.begin() + static_cast<std::ptrdiff_t>(from));
        if (cluster_join_)
            cues_.push_back({static_cast<std::uint64_t>(cluster_ms_), tracks_.video ? video_.number : audio_.number,
                             pos_ - segment_data_, cluster_first_block_});
        emit(std::span<const std::uint8_t>(cluster_).subspan(from));
        flush();
        cluster_.clear();
    }

    void build_header() {
        using namespace ebml;
        buffer h, body;
        put_uint(body, id::ebml_version, 1);
        put_uint(body, id::ebml_read_version, 1);
        put_uint(body, id::ebml_max_id_length, 4);
        put_uint(body, id::ebml_max_size_length, 8);
        put_string(body, id::doc_type, "webm");
        put_uint(body, id::doc_type_version, 4); // CodecDelay and SeekPreRoll are version 4
        put_uint(body, id::doc_type_read_version, 2);
        put_master(h, id::ebml, body);

        put_id(h, id::segment);
        segment_size_at_ = h.size();
        put_unknown_size(h);
        segment_data_ = h.size();

        if (mode_ == webm_mode::file) {
            // Room for the seek head finish() writes: its size with all three entries
            // (positions take 8 bytes each, so it does not depend on them).
            seek_at_ = h.size();
            seek_reserve_ = seek_head(std::uint64_t{0}).size();
            put_void(h, seek_reserve_);
        }

        body.clear();
        put_uint(body, id::timecode_scale, 1'000'000); // ns per block timestamp unit: 1 ms
        const std::size_t duration_in_info = body.size();
        if (mode_ == webm_mode::file) {
            // Duration comes at finish(): a crashed file then has none, and players work it
            // out from the clusters instead of trusting a wrong one.
            put_void(body, 11); // a Duration element: 2-byte id, 1-byte size, 8-byte double
        }
        put_string(body, id::muxing_app, "onair");
        put_string(body, id::writing_app, "onair");
        info_at_ = h.size() - segment_data_;
        put_master(h, id::info, body);
        duration_at_ = h.size() - body.size() + duration_in_info; // Info's body starts at h.size() - body.size()

        body.clear();
        if (tracks_.video) {
            buffer entry, video;
            put_uint(entry, id::track_number, video_.number);
            put_uint(entry, id::track_uid, video_.number);
            put_uint(entry, id::track_type, 1);
            put_uint(entry, id::flag_lacing, 0);
            put_string(entry, id::codec_id, tracks_.video->format == video_format::vp9 ? "V_VP9" : "V_VP8");
            put_uint(video, id::pixel_width, static_cast<std::uint64_t>(tracks_.video->width));
            put_uint(video, id::pixel_height, static_cast<std::uint64_t>(tracks_.video->height));
            put_master(entry, id::video, video);
            put_master(body, id::track_entry, entry);
        }
        if (tracks_.audio) {
            const audio_track& a = *tracks_.audio;
            buffer entry, audio;
            put_uint(entry, id::track_number, audio_.number);
            put_uint(entry, id::track_uid, audio_.number);
            put_uint(entry, id::track_type, 2);
            put_uint(entry, id::flag_lacing, 0);
            put_string(entry, id::codec_id, "A_OPUS");
            put_binary(entry, id::codec_private, opus_head(a));
            // Both in ns: the pre-skip at 48 kHz, and the 80 ms Opus needs to converge after a seek.
            put_uint(entry, id::codec_delay, std::uint64_t{a.pre_skip} * 1'000'000'000 / 48'000);
            put_uint(entry, id::seek_pre_roll, 80'000'000);
            put_float(audio, id::sampling_frequency, 48'000.0f); // Opus always decodes at 48 kHz
            put_uint(audio, id::channels, static_cast<std::uint64_t>(a.channels));
            put_master(entry, id::audio, audio);
            put_master(body, id::track_entry, entry);
        }
        tracks_at_ = h.size() - segment_data_;
        put_master(h, id::tracks, body);
        header_ = std::move(h);
    }

    /// SeekHead pointing at Info, Tracks and (when given) Cues, positions relative to the
    /// Segment's data.
    ebml::buffer seek_head(std::optional<std::uint64_t> cues_at) const {
        using namespace ebml;
        buffer body;
        auto entry = [&](std::uint32_t element, std::uint64_t at) {
            buffer seek, element_id;
            put_id(element_id, element);
            put_binary(seek, id::seek_id, element_id);
            put_uint(seek, id::seek_position, at, 8);
            put_master(body, id::seek, seek);
        };
        entry(id::info, info_at_);
        entry(id::tracks, tracks_at_);
        if (cues_at) entry(id::cues, *cues_at);
        buffer h;
        put_master(h, id::seek_head, body);
        return h;
    }

    Out out_;
    media::tracks tracks_;
    webm_mode mode_;
    webm_options opts_;
    track_state video_, audio_;
    bool started_ = false, finished_ = false;
    std::error_code error_;
    webm_stats stats_;
    std::uint64_t pos_ = 0; // bytes written so far: every position below counts from the first
    std::uint64_t segment_size_at_ = 0, segment_data_ = 0, seek_at_ = 0, duration_at_ = 0;
    std::uint64_t info_at_ = 0, tracks_at_ = 0; // relative to segment_data_
    std::size_t seek_reserve_ = 0;
    ebml::buffer header_;
    std::int64_t end_us_ = 0;

    bool cluster_open_ = false, cluster_join_ = false;
    std::int64_t cluster_ms_ = 0;
    std::uint64_t cluster_first_block_ = 0; // the Timecode element's size
    ebml::buffer cluster_;                  // file: the open cluster, behind head room
    std::vector<cue> cues_;

    ebml::buffer scratch_;       // live: bytes of one write() call
    ebml::buffer live_;          // live: since_keyframe() bytes (or just the open cluster's)
    std::size_t current_at_ = 0; // where the open cluster starts in live_
    bool join_valid_ = false, current_valid_ = false;
};

/// Seekable output on a stdio file. Errors are remembered: the first one is error(), and
/// nothing is written after it.
/// Thread safety: none.
class file_output {
public:
    file_output() = default;
    explicit file_output(const std::filesystem::path& path) { open(path); }
    file_output(file_output&& o) noexcept : file_(std::exchange(o.file_, nullptr)), error_(std::exchange(o.error_, {})) {}
    file_output& operator=(file_output&& o) noexcept {
        if (this != &o) {
            close();
            file_ = std::exchange(o.file_, nullptr);
            error_ = std::exchange(o.error_, {});
        }
        return *this;
    }
    ~file_output() { close(); }

    /// Creates (or truncates) `path`.
    std::error_code open(const std::filesystem::path& path) {
        close();
        error_ = {};
        file_ = std::fopen(path.c_str(), "wb");
        if (!file_) error_ = make_error_code(errc::bad_file);
        return error_;
    }
    bool is_open() const noexcept { return file_ != nullptr; }

    void write(std::span<const std::uint8_t> b) {
        if (!file_ || error_) return;
        if (std::fwrite(b.data(), 1, b.size(), file_) != b.size()) error_ = make_error_code(errc::bad_file);
    }
    /// Rewrites bytes at `at` (from the start of the file) and goes back to its end.
    void overwrite(std::uint64_t at, std::span<const std::uint8_t> b) {
        if (!file_ || error_) return;
        if (::fseeko(file_, static_cast<off_t>(at), SEEK_SET) != 0 ||
            std::fwrite(b.data(), 1, b.size(), file_) != b.size() || ::fseeko(file_, 0, SEEK_END) != 0)
            error_ = make_error_code(errc::bad_file);
    }
    /// Hands buffered bytes to the OS: they survive the process being killed.
    void flush() {
        if (!file_ || error_) return;
        if (std::fflush(file_) != 0) error_ = make_error_code(errc::bad_file);
    }
    std::error_code close() {
        if (!file_) return error_;
        if (std::fclose(std::exchange(file_, nullptr)) != 0 && !error_) error_ = make_error_code(errc::bad_file);
        return error_;
    }
    std::error_code error() const noexcept { return error_; }

private:
    std::FILE* file_ = nullptr;
    std::error_code error_;
};

/// Seekable output into memory (tests, small files, building a file before upload).
/// Thread safety: none.
struct memory_output {
    std::vector<std::uint8_t> bytes;
    std::error_code failed; ///< an overwrite outside the bytes written

    void write(std::span<const std::uint8_t> b) { bytes.insert(bytes.end(), b.begin(), b.end()); }
    void overwrite(std::uint64_t at, std::span<const std::uint8_t> b) {
        if (at > bytes.size() || b.size() > bytes.size() - at) {
            failed = make_error_code(errc::bad_file);
            return;
        }
        std::copy(b.begin(), b.end(), bytes.begin() + static_cast<std::ptrdiff_t>(at));
    }
    void flush() noexcept {}
    std::error_code error() const noexcept { return failed; }
};

/// A WebM file: open(path, tracks), write(sample)..., close(). Destruction closes.
/// Thread safety: none; one thread per object.
class webm_file_writer {
public:
    webm_file_writer() = default;
    webm_file_writer(webm_file_writer&& o) noexcept : muxer_(std::exchange(o.muxer_, std::nullopt)) {}
    webm_file_writer& operator=(webm_file_writer&& o) noexcept {
        if (this != &o) {
            close();
            muxer_ = std::exchange(o.muxer_, std::nullopt);
        }
        return *this;
    }
    ~webm_file_writer() { close(); }

    /// Creates the file and writes its header; errors as file_output::open and webm_muxer::start.
    std::error_code open(const std::filesystem::path& path, const tracks& t, webm_options o = {}) {
        close();
        file_output f;
        if (auto ec = f.open(path)) return ec;
        muxer_.emplace(std::move(f), t, webm_mode::file, o);
        if (auto ec = muxer_->start()) {
            muxer_->output().close();
            muxer_.reset();
            return ec;
        }
        return {};
    }
    bool is_open() const noexcept { return muxer_.has_value(); }

    std::error_code write(const sample& s) {
        if (!muxer_) return errc::bad_file;
        return muxer_->write(s);
    }

    /// Finishes the file (cues, duration, sizes) and closes it.
    std::error_code close() {
        if (!muxer_) return {};
        std::error_code ec = muxer_->finish();
        const std::error_code closed = muxer_->output().close();
        if (!ec) ec = closed;
        muxer_.reset();
        return ec;
    }

    /// Counters of the open file (zero when none is open).
    webm_stats stats() const noexcept { return muxer_ ? muxer_->stats() : webm_stats{}; }

private:
    std::optional<webm_muxer<file_output>> muxer_;
};

} // namespace onair::media
