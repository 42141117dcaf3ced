#include "onair/media/mp4_muxer.hpp"

#include "onair/codec/opus.hpp"
#include "onair/codec/vp9.hpp"
#include "onair/source/test_pattern.hpp"
#include "onair/source/tone.hpp"
#include "unit/source/test_files.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

using onair::encoded_frame;
using onair::errc;
using onair::media_kind;
using onair::media::mp4_file_writer;
using onair::media::mp4_muxer;
using onair::media::sample;
using onair::media::tracks;
using onair::test::scratch;
using bytes = std::vector<std::uint8_t>;

namespace {

constexpr int fps = 30;
constexpr int video_frames = 90; // 3 s
constexpr int audio_frames = 150; // 3 s of 20 ms packets
constexpr int gop = 30;          // a key frame every second

std::int64_t video_pts(int i) { return static_cast<std::int64_t>(i) * 1'000'000 / fps; }
std::int64_t audio_pts(int j) { return static_cast<std::int64_t>(j) * 20'000; }

/// 3 s of 320x240 VP9 (key frames at 0, 30, 60) and of Opus, encoded once.
struct media_set {
    std::vector<encoded_frame> video;
    std::vector<encoded_frame> audio;
    int audio_channels = 2;
};

media_set encode_media(int audio_channels) {
    media_set m;
    m.audio_channels = audio_channels;
    onair::codec::vp9::encoder venc;
    onair::codec::video_config vc;
    vc.width = 320;
    vc.height = 240;
    vc.fps = fps;
    vc.bitrate_kbps = 300;
    vc.keyframe_interval_s = 0; // key frames exactly where requested below
    REQUIRE_FALSE(venc.open(vc));
    onair::source::test_pattern tp(320, 240, fps);
    for (int i = 0; i < video_frames; ++i) {
        if (i % gop == 0) venc.request_keyframe();
        REQUIRE_FALSE(venc.encode(tp.next(), [&](encoded_frame&& e) { m.video.push_back(std::move(e)); }));
    }
    REQUIRE(m.video.size() == video_frames);
    for (int i = 0; i < video_frames; ++i) REQUIRE(m.video[static_cast<std::size_t>(i)].keyframe == (i % gop == 0));

    onair::codec::opus::encoder aenc;
    onair::codec::opus_config ac;
    ac.channels = audio_channels;
    ac.bitrate_kbps = 48;
    REQUIRE_FALSE(aenc.open(ac));
    onair::source::tone t({440.0, audio_channels, 0.4, {}});
    for (int j = 0; j < audio_frames; ++j)
        REQUIRE_FALSE(aenc.encode(t.next(), [&](encoded_frame&& e) { m.audio.push_back(std::move(e)); }));
    REQUIRE(m.audio.size() == audio_frames);
    return m;
}

const media_set& stereo_media() {
    static const media_set m = encode_media(2);
    return m;
}

tracks av_tracks(int channels = 2) {
    tracks t;
    t.video = onair::media::video_track{onair::media::video_format::vp9, 320, 240};
    t.audio = onair::media::audio_track{channels, 48'000, 312};
    return t;
}

sample video_sample(const media_set& m, int i) {
    const auto& f = m.video[static_cast<std::size_t>(i)];
    return {media_kind::video, f.keyframe, video_pts(i), f.bytes()};
}
sample audio_sample(const media_set& m, int j) {
    return {media_kind::audio, true, audio_pts(j), m.audio[static_cast<std::size_t>(j)].bytes()};
}

/// Every sample in pts order (video first on a tie), as a live recorder receives them.
std::vector<sample> interleaved(const media_set& m, bool with_video = true) {
    std::vector<sample> out;
    int i = with_video ? 0 : video_frames, j = 0;
    while (i < video_frames || j < audio_frames) {
        if (i < video_frames && (j >= audio_frames || video_pts(i) <= audio_pts(j))) out.push_back(video_sample(m, i++));
        else out.push_back(audio_sample(m, j++));
    }
    return out;
}

// --- reading boxes back -------------------------------------------------------------------

std::uint32_t be16(const bytes& b, std::size_t at) { return std::uint32_t{b.at(at)} << 8 | b.at(at + 1); }
std::uint32_t be32(const bytes& b, std::size_t at) { return be16(b, at) << 16 | be16(b, at + 2); }
std::uint64_t be64(const bytes& b, std::size_t at) { return std::uint64_t{be32(b, at)} << 32 | be32(b, at + 4); }
std::string fourcc(const bytes& b, std::size_t at) { return {b.begin() + static_cast<std::ptrdiff_t>(at), b.begin() + static_cast<std::ptrdiff_t>(at + 4)}; }

struct box {
    std::string type;
    std::size_t at = 0;   ///< first byte of the size field
    std::size_t size = 0; ///< whole box
    std::size_t body() const { return at + 8; }
    std::size_t end() const { return at + size; }
};

/// The boxes laid end to end in [from, to); fails the test when a size runs past `to`.
std::vector<box> children(const bytes& b, std::size_t from, std::size_t to) {
    std::vector<box> out;
    while (from + 8 <= to) {
        box x{fourcc(b, from + 4), from, be32(b, from)};
        REQUIRE(x.size >= 8);
        REQUIRE(x.end() <= to);
        out.push_back(x);
        from = x.end();
    }
    REQUIRE(from == to);
    return out;
}
std::vector<box> children(const bytes& b, const box& parent, std::size_t skip = 0) {
    return children(b, parent.body() + skip, parent.end());
}
/// The n-th child of `parent` with the given type (`skip` bytes of fields precede children).
box child(const bytes& b, const box& parent, const std::string& type, std::size_t skip = 0, int n = 0) {
    for (const auto& c : children(b, parent, skip))
        if (c.type == type && n-- == 0) return c;
    FAIL("no box " << type << " in " << parent.type);
    return {};
}
box top(const bytes& b, const std::string& type, int n = 0) {
    for (const auto& c : children(b, 0, b.size()))
        if (c.type == type && n-- == 0) return c;
    FAIL("no top-level box " << type);
    return {};
}

/// One traf read back: its track, decode time, and trun entries.
struct traf_info {
    std::uint32_t track_id = 0;
    std::uint64_t decode_time = 0;
    std::int32_t data_offset = 0;
    std::vector<std::uint32_t> duration, size, flags;
};
traf_info read_traf(const bytes& b, const box& traf) {
    traf_info t;
    const auto tfhd = child(b, traf, "tfhd");
    CHECK(be32(b, tfhd.body()) == mp4_muxer::tfhd_default_base_is_moof); // version 0, flags
    t.track_id = be32(b, tfhd.body() + 4);
    const auto tfdt = child(b, traf, "tfdt");
    CHECK(tfdt.size == 20);                  // version 1: 64-bit time
    CHECK(b[tfdt.body()] == 1);
    t.decode_time = be64(b, tfdt.body() + 4);
    const auto trun = child(b, traf, "trun");
    CHECK(be32(b, trun.body()) == 0x00000701); // version 0; data offset, duration, size, flags
    const auto n = be32(b, trun.body() + 4);
    t.data_offset = static_cast<std::int32_t>(be32(b, trun.body() + 8));
    CHECK(trun.size == 8 + 12 + 12 * std::size_t{n});
    for (std::uint32_t i = 0; i < n; ++i) {
        const auto at = trun.body() + 12 + 12 * std::size_t{i};
        t.duration.push_back(be32(b, at));
        t.size.push_back(be32(b, at + 4));
        t.flags.push_back(be32(b, at + 8));
    }
    return t;
}

// --- running ffmpeg ----------------------------------------------------------------------

using section = std::map<std::string, std::string>;

/// `ffprobe -v error ARGS FILE` output as its [SECTION] key=value blocks.
std::vector<std::pair<std::string, section>> probe(const std::filesystem::path& p, const std::string& args) {
    const auto out = std::filesystem::path(p).concat(".probe.txt");
    const std::string cmd = "ffprobe -v error " + args + " '" + p.string() + "' > '" + out.string() + "' 2>/dev/null";
    (void)std::system(cmd.c_str());
    const auto raw = onair::test::read_file(out);
    std::vector<std::pair<std::string, section>> r;
    std::string text(raw.begin(), raw.end()), line;
    std::size_t pos = 0;
    while (pos < text.size()) {
        const auto nl = text.find('\n', pos);
        line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
        pos = nl == std::string::npos ? text.size() : nl + 1;
        if (line.size() > 2 && line[0] == '[' && line[1] != '/') r.emplace_back(line.substr(1, line.size() - 2), section{});
        else if (const auto eq = line.find('='); eq != std::string::npos && !r.empty())
            r.back().second[line.substr(0, eq)] = line.substr(eq + 1);
    }
    return r;
}

/// Streams by codec_type, with frames counted by decoding, and "format" for the container.
std::map<std::string, section> probe_streams(const std::filesystem::path& p) {
    std::map<std::string, section> r;
    for (auto& [name, s] : probe(p, "-count_frames -show_streams -show_format")) {
        if (name == "STREAM") r[s["codec_type"]] = s;
        else if (name == "FORMAT") r["format"] = s;
    }
    return r;
}

/// What `ffmpeg -v error` prints while decoding every stream of `p` (empty: no error).
std::string decode_errors(const std::filesystem::path& p) {
    const auto out = std::filesystem::path(p).concat(".decode.txt");
    const std::string cmd =
        "ffmpeg -nostdin -v error -i '" + p.string() + "' -f null - > '" + out.string() + "' 2>&1";
    const int rc = std::system(cmd.c_str());
    const auto raw = onair::test::read_file(out);
    std::string text(raw.begin(), raw.end());
    if (rc != 0 && text.empty()) text = "ffmpeg failed";
    return text;
}

int as_int(const section& s, const std::string& key) {
    const auto it = s.find(key);
    return it == s.end() || it->second.empty() || it->second == "N/A" ? -1 : std::stoi(it->second);
}
double as_double(const section& s, const std::string& key) {
    const auto it = s.find(key);
    return it == s.end() || it->second.empty() || it->second == "N/A" ? -1e9 : std::stod(it->second);
}

bool have_ffmpeg() {
    if (onair::test::have_tool("ffprobe") && onair::test::have_tool("ffmpeg")) return true;
    MESSAGE("ffmpeg/ffprobe not installed: skipped");
    return false;
}

/// The recording every file test reads: 3 s of VP9 + stereo Opus through mp4_file_writer.
const std::filesystem::path& recording() {
    static const std::filesystem::path p = [] {
        const auto path = scratch("recording.mp4");
        mp4_file_writer w;
        REQUIRE_FALSE(w.open(path, av_tracks()));
        for (const auto& s : interleaved(stereo_media())) REQUIRE_FALSE(w.write(s));
        REQUIRE_FALSE(w.close());
        return path;
    }();
    return p;
}

} // namespace

TEST_SUITE("media.mp4_muxer") {
    TEST_CASE("init segment: ftyp, moov, vpcC and dOps fields") {
        const mp4_muxer m(av_tracks());
        REQUIRE_FALSE(m.error());
        CHECK(m.video_track_id() == 1);
        CHECK(m.audio_track_id() == 2);
        CHECK(m.codecs() == "vp09.00.20.08,opus"); // profile 0, level 2.0, 8 bits
        bytes b;
        m.write_init(b);
        const auto top_boxes = children(b, 0, b.size()); // sizes add up to the buffer exactly
        REQUIRE(top_boxes.size() == 2);

        // ftyp: major brand, minor version, compatible brands.
        const auto ftyp = top_boxes[0];
        REQUIRE(ftyp.type == "ftyp");
        CHECK(ftyp.size == 8 + 8 + 3 * 4);
        CHECK(fourcc(b, ftyp.body()) == "iso6");
        CHECK(be32(b, ftyp.body() + 4) == 0);
        CHECK(fourcc(b, ftyp.body() + 8) == "iso6");
        CHECK(fourcc(b, ftyp.body() + 12) == "iso5");
        CHECK(fourcc(b, ftyp.body() + 16) == "mp41");

        const auto moov = top_boxes[1];
        REQUIRE(moov.type == "moov");
        const auto mvhd = child(b, moov, "mvhd");
        CHECK(be32(b, mvhd.body()) == 0);          // version 0, no flags
        CHECK(be32(b, mvhd.body() + 12) == 1000);  // timescale
        CHECK(be32(b, mvhd.body() + 16) == 0);     // duration unknown: fragments follow
        CHECK(be32(b, mvhd.end() - 4) == 3);       // next_track_ID

        // Video trak.
        const auto vtrak = child(b, moov, "trak", 0, 0);
        const auto vtkhd = child(b, vtrak, "tkhd");
        CHECK(be32(b, vtkhd.body()) == 3);              // version 0, enabled | in movie
        CHECK(be32(b, vtkhd.body() + 12) == 1);          // track_ID
        CHECK(be32(b, vtkhd.end() - 8) == 320u << 16);   // width, 16.16
        CHECK(be32(b, vtkhd.end() - 4) == 240u << 16);
        const auto vmdia = child(b, vtrak, "mdia");
        CHECK(be32(b, child(b, vmdia, "mdhd").body() + 12) == 90000);
        CHECK(be16(b, child(b, vmdia, "mdhd").body() + 20) == 0x55c4); // "und"
        CHECK(fourcc(b, child(b, vmdia, "hdlr").body() + 8) == "vide");
        const auto vminf = child(b, vmdia, "minf");
        CHECK(be32(b, child(b, vminf, "vmhd").body()) == 1); // flags 1
        const auto vstbl = child(b, vminf, "stbl");
        for (const char* empty : {"stts", "stsc", "stco"}) CHECK(be32(b, child(b, vstbl, empty).body() + 4) == 0);
        CHECK(be32(b, child(b, vstbl, "stsz").body() + 8) == 0); // sample_count
        const auto vstsd = child(b, vstbl, "stsd");
        CHECK(be32(b, vstsd.body() + 4) == 1); // entry_count
        const auto vp09 = child(b, vstsd, "vp09", 8);
        CHECK(be16(b, vp09.body() + 6) == 1);     // data_reference_index
        CHECK(be16(b, vp09.body() + 24) == 320);  // width
        CHECK(be16(b, vp09.body() + 26) == 240);  // height
        CHECK(be16(b, vp09.body() + 74) == 0x18); // depth
        // vpcC after the 78-byte VisualSampleEntry fields: FullBox version 1, then
        // profile, level, bitDepth(4) chromaSubsampling(3) fullRange(1), colour x3, init size.
        const auto vpcc = child(b, vp09, "vpcC", 78);
        REQUIRE(vpcc.size == 8 + 4 + 8);
        CHECK(be32(b, vpcc.body()) == 0x01000000);
        CHECK(b[vpcc.body() + 4] == 0);    // profile 0
        CHECK(b[vpcc.body() + 5] == 20);   // level 2.0: 76800 luma samples > level 1.1's 73728
        CHECK(b[vpcc.body() + 6] == 0x80); // 8 bits, 4:2:0 vertical, studio range
        CHECK(b[vpcc.body() + 7] == 2);    // primaries, transfer, matrix: unspecified
        CHECK(b[vpcc.body() + 8] == 2);
        CHECK(b[vpcc.body() + 9] == 2);
        CHECK(be16(b, vpcc.body() + 10) == 0); // no codec initialization data

        // Audio trak.
        const auto atrak = child(b, moov, "trak", 0, 1);
        const auto atkhd = child(b, atrak, "tkhd");
        CHECK(be32(b, atkhd.body() + 12) == 2);
        CHECK(be16(b, atkhd.body() + 36) == 0x0100); // volume 1.0
        const auto amdia = child(b, atrak, "mdia");
        CHECK(be32(b, child(b, amdia, "mdhd").body() + 12) == 48000);
        CHECK(fourcc(b, child(b, amdia, "hdlr").body() + 8) == "soun");
        const auto aminf = child(b, amdia, "minf");
        (void)child(b, aminf, "smhd");
        const auto astsd = child(b, child(b, aminf, "stbl"), "stsd");
        const auto opus = child(b, astsd, "Opus", 8);
        CHECK(be16(b, opus.body() + 16) == 2);           // channelcount
        CHECK(be16(b, opus.body() + 18) == 16);          // samplesize
        CHECK(be32(b, opus.body() + 24) == 48000u << 16); // samplerate, 16.16
        // dOps (a plain Box, big-endian, no magic): Version, OutputChannelCount, PreSkip,
        // InputSampleRate, OutputGain, ChannelMappingFamily.
        const auto dops = child(b, opus, "dOps", 28);
        REQUIRE(dops.size == 8 + 11);
        CHECK(b[dops.body()] == 0);
        CHECK(b[dops.body() + 1] == 2);
        CHECK(be16(b, dops.body() + 2) == 312);
        CHECK(be32(b, dops.body() + 4) == 48000);
        CHECK(be16(b, dops.body() + 8) == 0);
        CHECK(b[dops.body() + 10] == 0);

        // mvex: one trex per track, sample description 1.
        const auto mvex = child(b, moov, "mvex");
        const auto trex = children(b, mvex);
        REQUIRE(trex.size() == 2);
        for (std::uint32_t k = 0; k < 2; ++k) {
            CHECK(trex[k].type == "trex");
            CHECK(be32(b, trex[k].body() + 4) == k + 1);
            CHECK(be32(b, trex[k].body() + 8) == 1);
        }
    }

    TEST_CASE("fragment boxes: styp, mfhd, tfhd, tfdt v1, trun flags, durations, data offsets") {
        const auto& m = stereo_media();
        mp4_muxer mux(av_tracks());
        for (int i = 0; i < 4; ++i) REQUIRE_FALSE(mux.add(video_sample(m, i)));
        for (int j = 0; j < 6; ++j) REQUIRE_FALSE(mux.add(audio_sample(m, j)));
        CHECK(mux.buffered_samples() == 10);
        CHECK(mux.earliest_pts_us() == 0);

        // First fragment: pts < 100 ms = video 0..2, audio 0..4. Their last samples take their
        // durations from the next buffered sample of their track (video 3, audio 5).
        bytes b;
        const auto n = mux.write_fragment(b, 100'000, true);
        REQUIRE(n == b.size());
        const auto boxes = children(b, 0, b.size());
        REQUIRE(boxes.size() == 3);
        CHECK(boxes[0].type == "styp");
        CHECK(boxes[0].size == 24); // header, major brand, minor version, two compatible brands
        CHECK(fourcc(b, 8) == "msdh");
        CHECK(fourcc(b, 16) == "msdh");
        CHECK(fourcc(b, 20) == "msix");
        const auto moof = boxes[1];
        const auto mdat = boxes[2];
        REQUIRE(moof.type == "moof");
        REQUIRE(mdat.type == "mdat");
        const auto mfhd = child(b, moof, "mfhd");
        CHECK(be32(b, mfhd.body()) == 0);
        CHECK(be32(b, mfhd.body() + 4) == 1); // sequence number
        const auto v = read_traf(b, child(b, moof, "traf", 0, 0));
        const auto a = read_traf(b, child(b, moof, "traf", 0, 1));
        CHECK(v.track_id == 1);
        CHECK(a.track_id == 2);
        CHECK(v.decode_time == 0);
        CHECK(a.decode_time == 0);
        CHECK(v.duration == std::vector<std::uint32_t>{3000, 3000, 3000}); // 1/30 s at 90 kHz
        CHECK(a.duration == std::vector<std::uint32_t>(5, 960));          // 20 ms at 48 kHz
        CHECK(v.flags == std::vector<std::uint32_t>{mp4_muxer::sync_sample_flags, mp4_muxer::non_sync_sample_flags,
                                                    mp4_muxer::non_sync_sample_flags});
        CHECK(mp4_muxer::sync_sample_flags == 0x02000000);     // sample_depends_on = 2
        CHECK(mp4_muxer::non_sync_sample_flags == 0x01010000); // depends_on = 1, non-sync bit
        CHECK(a.flags == std::vector<std::uint32_t>(5, mp4_muxer::sync_sample_flags));
        // Data offsets count from the moof's first byte: video right after the mdat header,
        // audio after the video; each points at its first sample's bytes.
        std::size_t video_bytes = 0, audio_bytes = 0;
        for (int i = 0; i < 3; ++i) {
            CHECK(v.size[static_cast<std::size_t>(i)] == m.video[static_cast<std::size_t>(i)].data.size());
            video_bytes += m.video[static_cast<std::size_t>(i)].data.size();
        }
        for (int j = 0; j < 5; ++j) audio_bytes += m.audio[static_cast<std::size_t>(j)].data.size();
        CHECK(static_cast<std::size_t>(v.data_offset) == moof.size + 8);
        CHECK(static_cast<std::size_t>(a.data_offset) == moof.size + 8 + video_bytes);
        CHECK(mdat.size == 8 + video_bytes + audio_bytes);
        const auto& v0 = m.video[0].data;
        CHECK(bytes(b.begin() + static_cast<std::ptrdiff_t>(moof.at) + v.data_offset,
                    b.begin() + static_cast<std::ptrdiff_t>(moof.at) + v.data_offset + static_cast<std::ptrdiff_t>(v0.size())) == v0);
        const auto& a0 = m.audio[0].data;
        CHECK(bytes(b.begin() + static_cast<std::ptrdiff_t>(moof.at) + a.data_offset,
                    b.begin() + static_cast<std::ptrdiff_t>(moof.at) + a.data_offset + static_cast<std::ptrdiff_t>(a0.size())) == a0);
        CHECK(mux.buffered_samples() == 2);
        CHECK(mux.samples_written() == 8);

        // Second fragment: video 3 and audio 5 have no successor. Video lasts until the end
        // time (150 ms = 13500 ticks, from 9000), audio its Opus duration. tfdt is exact.
        bytes b2;
        REQUIRE(mux.write_fragment(b2, 150'000) > 0);
        const auto moof2 = top(b2, "moof");
        CHECK(be32(b2, child(b2, moof2, "mfhd").body() + 4) == 2);
        const auto v2 = read_traf(b2, child(b2, moof2, "traf", 0, 0));
        const auto a2 = read_traf(b2, child(b2, moof2, "traf", 0, 1));
        CHECK(v2.decode_time == 9000);
        CHECK(v2.duration == std::vector<std::uint32_t>{4500});
        CHECK(v2.flags == std::vector<std::uint32_t>{mp4_muxer::non_sync_sample_flags});
        CHECK(a2.decode_time == 4800);
        CHECK(a2.duration == std::vector<std::uint32_t>{960});
        CHECK(mux.fragments_written() == 2);
        CHECK(mux.next_sequence_number() == 3);

        // Nothing buffered: nothing written.
        bytes b3;
        CHECK(mux.write_fragment(b3, 10'000'000) == 0);
        CHECK(mux.flush(b3) == 0);
        CHECK(b3.empty());
        CHECK(mux.fragments_written() == 2);
    }

    TEST_CASE("VP9 level from picture size") {
        using onair::media::detail::vp9_level;
        CHECK(vp9_level(192, 144, 30) == 10);
        CHECK(vp9_level(256, 144, 30) == 11); // 1.1 M luma samples/s: over level 1.0's 829440
        CHECK(vp9_level(320, 240, 30) == 20);
        CHECK(vp9_level(640, 360, 30) == 21);
        CHECK(vp9_level(1280, 720, 30) == 31);
        CHECK(vp9_level(1280, 720, 60) == 40);
        CHECK(vp9_level(1920, 1080, 30) == 40);
        CHECK(vp9_level(3840, 2160, 30) == 50);
    }

    TEST_CASE("VP8 refused with errc::unsupported") {
        tracks t = av_tracks();
        t.video->format = onair::media::video_format::vp8;
        mp4_muxer m(t);
        CHECK(m.error() == errc::unsupported);
        CHECK(std::string(m.error_message()).find("VP8") != std::string::npos);
        CHECK(m.codecs().empty());
        bytes b;
        m.write_init(b);
        CHECK(b.empty());
        const bytes data{0x10, 0x02, 0x00};
        CHECK(m.add({media_kind::video, true, 0, data}) == errc::unsupported);
        CHECK(m.samples_dropped() == 1);
        CHECK(m.write_fragment(b, mp4_muxer::flush_all) == 0);

        const auto p = scratch("vp8.mp4");
        std::filesystem::remove(p);
        mp4_file_writer w;
        CHECK(w.open(p, t) == errc::unsupported);
        CHECK(std::string(w.error_message()).find("VP8") != std::string::npos);
        CHECK_FALSE(w.is_open());
        CHECK_FALSE(std::filesystem::exists(p));
        CHECK(w.write({media_kind::video, true, 0, data}) == errc::bad_file);

        // Other tracks that cannot be muxed.
        CHECK(mp4_muxer(tracks{}).error() == errc::unsupported);
        tracks surround = av_tracks(6);
        CHECK(mp4_muxer(surround).error() == errc::unsupported);
        tracks tiny = av_tracks();
        tiny.video->width = 0;
        CHECK(mp4_muxer(tiny).error() == errc::bad_frame);
    }

    TEST_CASE("bad samples are dropped, counted and not written") {
        const auto& m = stereo_media();
        mp4_muxer mux(av_tracks());
        const bytes big(mp4_muxer::max_sample_bytes + 1, 0x55);
        const bytes bad_opus{0x03}; // code 3 packet without its frame count byte
        const sample k0 = video_sample(m, 0), p1 = video_sample(m, 1), p2 = video_sample(m, 2);

        CHECK(mux.add(p1) == errc::not_keyframe); // nothing decodable before the first key frame
        REQUIRE_FALSE(mux.add(k0));
        CHECK(mux.add({media_kind::video, false, 10'000, {}}) == errc::bad_frame);   // empty
        CHECK(mux.add({media_kind::video, false, 10'000, big}) == errc::oversized);  // > 64 MiB
        CHECK(mux.add({media_kind::video, false, -1, p1.data}) == errc::bad_frame);  // negative pts
        CHECK(mux.add({media_kind::video, true, 0, p1.data}) == errc::bad_frame);    // same pts again
        CHECK(mux.add({media_kind::video, false, 5, p1.data}) == errc::bad_frame);   // same 90 kHz tick
        REQUIRE_FALSE(mux.add(p1));
        CHECK(mux.add({media_kind::video, false, 20'000, p2.data}) == errc::bad_frame); // before p1
        REQUIRE_FALSE(mux.add(audio_sample(m, 0)));
        CHECK(mux.add({media_kind::audio, true, 20'000, bad_opus}) == errc::bad_frame);
        CHECK(mux.add(audio_sample(m, 0)) == errc::bad_frame); // repeated
        REQUIRE_FALSE(mux.add(audio_sample(m, 1)));
        CHECK(mux.samples_dropped() == 9);
        CHECK(mux.buffered_samples() == 4);
        CHECK(mux.buffered_bytes() == k0.data.size() + p1.data.size() + m.audio[0].data.size() + m.audio[1].data.size());

        mp4_muxer video_only(tracks{av_tracks().video, std::nullopt});
        CHECK(video_only.add(audio_sample(m, 0)) == errc::unknown_stream);
        CHECK(video_only.samples_dropped() == 1);
        CHECK(video_only.audio_track_id() == 0);

        bytes b;
        REQUIRE(mux.flush(b) > 0);
        const auto moof = top(b, "moof");
        const auto v = read_traf(b, child(b, moof, "traf", 0, 0));
        const auto a = read_traf(b, child(b, moof, "traf", 0, 1));
        CHECK(v.size == std::vector<std::uint32_t>{static_cast<std::uint32_t>(k0.data.size()),
                                                   static_cast<std::uint32_t>(p1.data.size())});
        CHECK(v.duration == std::vector<std::uint32_t>{3000, 3000}); // flush: last lasts like the one before
        CHECK(a.size.size() == 2);
        CHECK(top(b, "mdat").size ==
              8 + k0.data.size() + p1.data.size() + m.audio[0].data.size() + m.audio[1].data.size());
        CHECK(mux.samples_written() == 4);
        CHECK(mux.buffered_bytes() == 0);
    }

    TEST_CASE("recording: ffprobe and ffmpeg read init + fragments") {
        // The writer cuts a fragment at each key frame and flushes it to the file at once.
        const auto p = scratch("recording-live.mp4");
        {
            mp4_file_writer w;
            REQUIRE_FALSE(w.open(p, av_tracks()));
            const auto init_size = std::filesystem::file_size(p);
            CHECK(init_size == w.bytes_written());
            CHECK(init_size > 0);
            std::uint64_t fragments_seen = 0;
            for (const auto& s : interleaved(stereo_media())) {
                REQUIRE_FALSE(w.write(s));
                if (w.fragments_written() != fragments_seen) {
                    // A new fragment: already in the file, before close().
                    fragments_seen = w.fragments_written();
                    CHECK(s.kind == media_kind::video);
                    CHECK(s.keyframe);
                    CHECK(std::filesystem::file_size(p) == w.bytes_written());
                }
            }
            CHECK(w.fragments_written() == 2);
            CHECK(w.samples_dropped() == 0);
            REQUIRE_FALSE(w.close());
            CHECK(w.fragments_written() == 3);
            CHECK(w.samples_written() == video_frames + audio_frames);
            CHECK(std::filesystem::file_size(p) == w.bytes_written());
        }
        const auto b = onair::test::read_file(p);
        const auto boxes = children(b, 0, b.size());
        REQUIRE(boxes.size() == 2 + 3 * 2);
        CHECK(boxes[2].type == "moof");
        CHECK(boxes[3].type == "mdat");

        if (!have_ffmpeg()) return;
        const auto streams = probe_streams(p);
        REQUIRE(streams.count("video") == 1);
        REQUIRE(streams.count("audio") == 1);
        const auto& v = streams.at("video");
        const auto& a = streams.at("audio");
        CHECK(v.at("codec_name") == "vp9");
        CHECK(as_int(v, "width") == 320);
        CHECK(as_int(v, "height") == 240);
        CHECK(as_int(v, "nb_read_frames") == video_frames);
        CHECK(a.at("codec_name") == "opus");
        CHECK(as_int(a, "sample_rate") == 48000);
        CHECK(as_int(a, "channels") == 2);
        CHECK(as_int(a, "nb_read_frames") == audio_frames);
        // Both tracks start at pts 0; Opus pre-skip (6.5 ms) is all that may separate them.
        CHECK(std::abs(as_double(v, "start_time") - as_double(a, "start_time")) <= 0.040);
        CHECK(as_double(streams.at("format"), "duration") == doctest::Approx(3.0).epsilon(0.02));
        CHECK(decode_errors(p) == "");
    }

    TEST_CASE("HLS: init + 1 s segments, whole and from the middle") {
        const auto& m = stereo_media();
        mp4_muxer mux(av_tracks());
        bytes init;
        mux.write_init(init);
        std::vector<bytes> segments;
        // A segmenter cuts before each key frame after the first.
        for (const auto& s : interleaved(m)) {
            if (s.kind == media_kind::video && s.keyframe && mux.buffered_samples() > 0) {
                segments.emplace_back();
                REQUIRE(mux.write_fragment(segments.back(), s.pts_us, true) > 0);
            }
            REQUIRE_FALSE(mux.add(s));
        }
        segments.emplace_back();
        REQUIRE(mux.flush(segments.back(), true) > 0);
        REQUIRE(segments.size() == 3);
        for (std::size_t k = 0; k < segments.size(); ++k) {
            const auto& seg = segments[k];
            const auto boxes = children(seg, 0, seg.size());
            REQUIRE(boxes.size() == 3);
            CHECK(boxes[0].type == "styp");
            const auto v = read_traf(seg, child(seg, boxes[1], "traf", 0, 0));
            CHECK(v.decode_time == k * 90'000);             // tfdt: the segment's first video pts
            REQUIRE(v.flags.size() == gop);
            CHECK(v.flags[0] == mp4_muxer::sync_sample_flags); // starts with a key frame
            for (std::size_t i = 1; i < v.flags.size(); ++i) CHECK(v.flags[i] == mp4_muxer::non_sync_sample_flags);
            const auto a = read_traf(seg, child(seg, boxes[1], "traf", 0, 1));
            CHECK(a.decode_time == k * 48'000);
            CHECK(a.duration.size() == 50);
        }

        if (!have_ffmpeg()) return;
        bytes all = init;
        for (const auto& s : segments) all.insert(all.end(), s.begin(), s.end());
        const auto whole = scratch("hls-all.mp4");
        onair::test::write_file(whole, all);
        auto streams = probe_streams(whole);
        CHECK(as_int(streams["video"], "nb_read_frames") == video_frames);
        CHECK(as_int(streams["audio"], "nb_read_frames") == audio_frames);
        CHECK(decode_errors(whole) == "");

        // init + the middle segment alone: decodes from its key frame, at its own time.
        bytes middle = init;
        middle.insert(middle.end(), segments[1].begin(), segments[1].end());
        const auto mid = scratch("hls-mid.mp4");
        onair::test::write_file(mid, middle);
        streams = probe_streams(mid);
        CHECK(as_int(streams["video"], "nb_read_frames") == gop);
        CHECK(as_int(streams["audio"], "nb_read_frames") == 50);
        CHECK(as_double(streams["video"], "start_time") == doctest::Approx(1.0).epsilon(0.001));
        CHECK(std::abs(as_double(streams["audio"], "start_time") - 1.0) <= 0.040);
        CHECK(decode_errors(mid) == "");
    }

    TEST_CASE("a recording cut short decodes up to the cut") {
        const auto b = onair::test::read_file(recording());
        const auto boxes = children(b, 0, b.size());
        REQUIRE(boxes.size() == 8);
        REQUIRE(boxes[6].type == "moof");
        if (!have_ffmpeg()) return;

        // Killed between fragments: init + 2 whole fragments.
        const auto cut = scratch("cut-2.mp4");
        onair::test::write_file(cut, bytes(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(boxes[6].at)));
        auto streams = probe_streams(cut);
        CHECK(as_int(streams["video"], "nb_read_frames") == 2 * gop);
        CHECK(as_int(streams["audio"], "nb_read_frames") == 100);
        CHECK(decode_errors(cut) == "");

        // Killed while writing the third fragment's mdat: the first two still decode.
        const auto partial = scratch("cut-partial.mp4");
        const auto half = boxes[7].at + boxes[7].size / 2;
        onair::test::write_file(partial, bytes(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(half)));
        streams = probe_streams(partial);
        CHECK(as_int(streams["video"], "nb_read_frames") >= 2 * gop);
        CHECK(as_int(streams["video"], "nb_read_frames") < video_frames);
    }

    TEST_CASE("audio-only recording: ~1 s fragments") {
        const auto m = encode_media(1);
        const auto p = scratch("audio-only.mp4");
        {
            mp4_file_writer w;
            REQUIRE_FALSE(w.open(p, tracks{std::nullopt, onair::media::audio_track{1, 48'000, 312}}));
            // The small init segment is in the file already: flushed, not left in a buffer.
            CHECK(w.bytes_written() < 1024);
            CHECK(std::filesystem::file_size(p) == w.bytes_written());
            for (const auto& s : interleaved(m, false)) REQUIRE_FALSE(w.write(s));
            CHECK(w.fragments_written() == 2); // cut at 1 s and 2 s
            CHECK(w.write(video_sample(m, 0)) == errc::unknown_stream);
            CHECK(w.samples_dropped() == 1);
            mp4_file_writer moved = std::move(w); // the moved-to writer finishes the file
            CHECK_FALSE(w.is_open());
            REQUIRE_FALSE(moved.close());
            CHECK(moved.fragments_written() == 3);
        }
        const auto b = onair::test::read_file(p);
        const auto mdia = child(b, child(b, top(b, "moov"), "trak"), "mdia");
        CHECK(fourcc(b, child(b, mdia, "hdlr").body() + 8) == "soun");
        const auto first = read_traf(b, child(b, top(b, "moof", 0), "traf"));
        CHECK(first.track_id == 1);
        CHECK(first.duration.size() == 50);
        CHECK(read_traf(b, child(b, top(b, "moof", 2), "traf")).decode_time == 96'000);

        if (!have_ffmpeg()) return;
        auto streams = probe_streams(p);
        REQUIRE(streams.count("video") == 0);
        CHECK(streams["audio"]["codec_name"] == "opus");
        CHECK(as_int(streams["audio"], "channels") == 1);
        CHECK(as_int(streams["audio"], "nb_read_frames") == audio_frames);
        CHECK(as_double(streams["format"], "duration") == doctest::Approx(3.0).epsilon(0.02));
        CHECK(decode_errors(p) == "");
    }

    TEST_CASE("recording: a fragment is cut before it exceeds 4 MiB or 1 s") {
        const auto p = scratch("big-frames.mp4");
        mp4_file_writer w;
        REQUIRE_FALSE(w.open(p, tracks{av_tracks().video, std::nullopt}));
        const bytes key(1 << 20, 0x11), delta(3 << 19, 0x22); // 1 MiB, 1.5 MiB
        REQUIRE_FALSE(w.write({media_kind::video, true, 0, key}));
        REQUIRE_FALSE(w.write({media_kind::video, false, 33'333, delta}));
        REQUIRE_FALSE(w.write({media_kind::video, false, 66'667, delta})); // exactly 4 MiB buffered
        CHECK(w.fragments_written() == 0);
        REQUIRE_FALSE(w.write({media_kind::video, false, 100'000, delta}));
        CHECK(w.fragments_written() == 1);
        CHECK(w.buffered_samples() == 1);
        // A long GOP still gets a fragment per second.
        const bytes small(100, 0x33);
        REQUIRE_FALSE(w.write({media_kind::video, false, 1'099'000, small}));
        CHECK(w.fragments_written() == 1);
        REQUIRE_FALSE(w.write({media_kind::video, false, 1'100'000, small}));
        CHECK(w.fragments_written() == 2);
        REQUIRE_FALSE(w.close());
        CHECK(w.fragments_written() == 3);
        const auto b = onair::test::read_file(p);
        CHECK(b.size() == w.bytes_written());
        const auto second = read_traf(b, child(b, top(b, "moof", 1), "traf"));
        CHECK(second.decode_time == 9000);
        CHECK(second.size == std::vector<std::uint32_t>{3u << 19, 100});
        // The first lasts until the next buffered sample, the last until the cut (1.1 s).
        CHECK(second.duration == std::vector<std::uint32_t>{98'910 - 9000, 99'000 - 98'910});
    }
}
