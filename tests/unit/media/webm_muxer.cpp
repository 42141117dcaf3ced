#include "onair/media/webm_muxer.hpp"

#include "onair/codec/opus.hpp"
#include "onair/codec/vp8.hpp"
#include "onair/codec/vp9.hpp"
#include "onair/source/test_pattern.hpp"
#include "onair/source/tone.hpp"
#include "unit/source/test_files.hpp"

#include <doctest/doctest.h>
#include <webm/buffer_reader.h>
#include <webm/callback.h>
#include <webm/webm_parser.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

using onair::encoded_frame;
using onair::errc;
using onair::media_kind;
using onair::media::memory_output;
using onair::media::sample;
using onair::media::webm_mode;
using onair::media::webm_muxer;
using onair::test::scratch;
namespace ebml = onair::media::ebml;
namespace media = onair::media;

namespace {

using bytes = std::vector<std::uint8_t>;

constexpr int fps = 30;
constexpr int video_frames = 90; // 3 s
constexpr int keyframe_every = 30;
constexpr int audio_frames = 150; // 3 s of 20 ms packets

std::int64_t video_pts(int i) { return std::int64_t{i} * 1'000'000 / fps; }
std::int64_t audio_pts(int i) { return std::int64_t{i} * 20'000; }
std::int64_t ms_of(std::int64_t us) { return (us + 500) / 1000; }

// ---- real encoded media, made once -------------------------------------------------

template <class C>
std::vector<encoded_frame> encode_video() {
    onair::codec::video_config c;
    c.width = 320;
    c.height = 240;
    c.fps = fps;
    c.bitrate_kbps = 300;
    c.keyframe_interval_s = 0; // key frames exactly where requested below
    typename C::encoder enc;
    REQUIRE_FALSE(enc.open(c));
    onair::source::test_pattern tp(320, 240, fps, {});
    std::vector<encoded_frame> out;
    for (int i = 0; i < video_frames; ++i) {
        if (i % keyframe_every == 0) enc.request_keyframe();
        REQUIRE_FALSE(enc.encode(tp.next(), [&](encoded_frame&& e) { out.push_back(std::move(e)); }));
    }
    REQUIRE(out.size() == video_frames);
    for (int i = 0; i < video_frames; ++i) REQUIRE(out[static_cast<std::size_t>(i)].keyframe == (i % keyframe_every == 0));
    return out;
}

const std::vector<encoded_frame>& vp8_frames() {
    static const auto f = encode_video<onair::codec::vp8>();
    return f;
}
const std::vector<encoded_frame>& vp9_frames() {
    static const auto f = encode_video<onair::codec::vp9>();
    return f;
}
const std::vector<encoded_frame>& opus_frames() {
    static const auto f = [] {
        onair::codec::opus::encoder enc;
        onair::codec::opus_config c;
        c.channels = 2;
        c.bitrate_kbps = 64;
        REQUIRE_FALSE(enc.open(c));
        onair::source::tone t({440.0, 2, 0.3, {}});
        std::vector<encoded_frame> out;
        for (int i = 0; i < audio_frames; ++i)
            REQUIRE_FALSE(enc.encode(t.next(), [&](encoded_frame&& e) { out.push_back(std::move(e)); }));
        REQUIRE(out.size() == audio_frames);
        return out;
    }();
    return f;
}

/// Samples of the given video and audio frames in time order (video first at equal times).
std::vector<sample> interleave(const std::vector<encoded_frame>* video, const std::vector<encoded_frame>* audio) {
    std::vector<sample> out;
    std::size_t v = 0, a = 0;
    const std::size_t nv = video ? video->size() : 0, na = audio ? audio->size() : 0;
    while (v < nv || a < na) {
        const bool take_video = v < nv && (a >= na || video_pts(static_cast<int>(v)) <= audio_pts(static_cast<int>(a)));
        sample s;
        if (take_video) {
            const auto& f = (*video)[v];
            s = {media_kind::video, f.keyframe, video_pts(static_cast<int>(v)), f.bytes()};
            ++v;
        } else {
            const auto& f = (*audio)[a];
            s = {media_kind::audio, true, audio_pts(static_cast<int>(a)), f.bytes()};
            ++a;
        }
        out.push_back(s);
    }
    return out;
}

media::tracks av_tracks(std::optional<media::video_format> video, bool audio) {
    media::tracks t;
    if (video) t.video = media::video_track{*video, 320, 240};
    if (audio) t.audio = media::audio_track{2, 48'000, 312};
    return t;
}

// ---- the libwebm parser as a judge -------------------------------------------------

struct block_info {
    std::uint64_t track = 0, position = 0, size = 0;
    std::int16_t relative = 0;
    bool key = false;
};
struct cluster_info {
    std::uint64_t position = 0, header_size = 0, size = 0, timecode = 0;
    std::vector<block_info> blocks;
};

/// Everything the tests look at in a parsed WebM stream.
class census final : public webm::Callback {
public:
    std::string doc_type;
    std::uint64_t doc_type_version = 0;
    std::uint64_t segment_data = 0, segment_size = 0;
    std::optional<double> duration;
    std::uint64_t timecode_scale = 0;
    std::string muxing_app, writing_app;
    std::vector<webm::TrackEntry> tracks;
    std::vector<webm::Seek> seeks;
    std::vector<cluster_info> clusters;
    std::vector<webm::CuePoint> cues;

    std::size_t blocks_of(std::uint64_t track) const {
        std::size_t n = 0;
        for (const auto& c : clusters)
            for (const auto& b : c.blocks) n += b.track == track;
        return n;
    }
    std::size_t keyframes_of(std::uint64_t track) const {
        std::size_t n = 0;
        for (const auto& c : clusters)
            for (const auto& b : c.blocks) n += b.track == track && b.key;
        return n;
    }
    /// Absolute block times (ms) of a track, in stream order.
    std::vector<std::int64_t> times_of(std::uint64_t track) const {
        std::vector<std::int64_t> t;
        for (const auto& c : clusters)
            for (const auto& b : c.blocks)
                if (b.track == track) t.push_back(static_cast<std::int64_t>(c.timecode) + b.relative);
        return t;
    }
    std::vector<std::uint64_t> cluster_times() const {
        std::vector<std::uint64_t> t;
        for (const auto& c : clusters) t.push_back(c.timecode);
        return t;
    }

    webm::Status OnEbml(const webm::ElementMetadata&, const webm::Ebml& e) override {
        doc_type = e.doc_type.value();
        doc_type_version = e.doc_type_version.value();
        return ok();
    }
    webm::Status OnSegmentBegin(const webm::ElementMetadata& m, webm::Action* a) override {
        segment_data = m.position + m.header_size;
        segment_size = m.size;
        *a = webm::Action::kRead;
        return ok();
    }
    webm::Status OnSeek(const webm::ElementMetadata&, const webm::Seek& s) override {
        seeks.push_back(s);
        return ok();
    }
    webm::Status OnInfo(const webm::ElementMetadata&, const webm::Info& i) override {
        if (i.duration.is_present()) duration = i.duration.value();
        timecode_scale = i.timecode_scale.value();
        muxing_app = i.muxing_app.value();
        writing_app = i.writing_app.value();
        return ok();
    }
    webm::Status OnTrackEntry(const webm::ElementMetadata&, const webm::TrackEntry& t) override {
        tracks.push_back(t);
        return ok();
    }
    webm::Status OnClusterBegin(const webm::ElementMetadata& m, const webm::Cluster& c, webm::Action* a) override {
        clusters.push_back({m.position, m.header_size, m.size, c.timecode.value(), {}});
        *a = webm::Action::kRead;
        return ok();
    }
    webm::Status OnSimpleBlockBegin(const webm::ElementMetadata& m, const webm::SimpleBlock& b, webm::Action* a) override {
        if (!clusters.empty())
            clusters.back().blocks.push_back({b.track_number, m.position, m.header_size + m.size, b.timecode, b.is_key_frame});
        *a = webm::Action::kRead;
        return ok();
    }
    webm::Status OnCuePoint(const webm::ElementMetadata&, const webm::CuePoint& c) override {
        cues.push_back(c);
        return ok();
    }

private:
    static webm::Status ok() { return webm::Status(webm::Status::kOkCompleted); }
};

/// Parses `b` with libwebm; `complete` is whether the parser reached the end without error.
census parse(const bytes& b, bool* complete = nullptr) {
    census c;
    webm::BufferReader reader(b);
    webm::WebmParser parser;
    const webm::Status st = parser.Feed(&c, &reader);
    if (complete) *complete = st.completed_ok();
    else CHECK(st.completed_ok());
    return c;
}

// ---- ffmpeg tools --------------------------------------------------------------------

struct run_result {
    int status = -1;
    std::string out, err;
};

run_result run(const std::string& cmd) {
    const auto o = scratch("webm-cmd.out"), e = scratch("webm-cmd.err");
    run_result r;
    r.status = std::system((cmd + " > '" + o.string() + "' 2> '" + e.string() + "'").c_str());
    const auto ob = onair::test::read_file(o), eb = onair::test::read_file(e);
    r.out.assign(ob.begin(), ob.end());
    r.err.assign(eb.begin(), eb.end());
    return r;
}

bool have_ffmpeg() {
    static const bool have = onair::test::have_tool("ffprobe") && onair::test::have_tool("ffmpeg");
    return have;
}

/// The ffmpeg input for `p`: the file itself, or its bytes through a pipe (unseekable).
std::string input(const std::filesystem::path& p, bool pipe = false) {
    return pipe ? "pipe:0 < '" + p.string() + "'" : "'" + p.string() + "'";
}

/// What ffprobe says about a file: `key=value` fields of its video stream, its audio
/// stream and the format section.
struct probed {
    std::map<std::string, std::string> video, audio, format;
};

probed probe(const std::string& in) {
    const auto r = run("ffprobe -v error -show_entries "
                       "stream=codec_type,codec_name,width,height,channels,sample_rate,start_time:"
                       "format=duration -of compact=p=0 " + in);
    CHECK(r.status == 0);
    CHECK(r.err == "");
    probed p;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) {
        std::map<std::string, std::string> m; // one section per line: "k=v|k=v|..."
        std::istringstream fields(line);
        for (std::string f; std::getline(fields, f, '|');)
            if (const auto eq = f.find('='); eq != std::string::npos) m[f.substr(0, eq)] = f.substr(eq + 1);
        const auto type = m.find("codec_type");
        if (type == m.end()) p.format = std::move(m);
        else if (type->second == "video") p.video = std::move(m);
        else if (type->second == "audio") p.audio = std::move(m);
    }
    return p;
}

/// A full decode by ffmpeg: what it printed at -v error, and the frames it decoded per
/// stream index (framecrc writes one line per decoded frame, "index, dts, pts, ...").
struct decoded {
    int status = -1;
    std::string err;
    std::map<int, int> frames;
};

decoded decode(const std::string& in) {
    const auto r = run("ffmpeg -nostdin -v error -i " + in + " -map 0 -f framecrc -");
    decoded d{r.status, r.err, {}};
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);)
        if (!line.empty() && line[0] != '#') ++d.frames[std::atoi(line.c_str())];
    return d;
}

double number(const std::map<std::string, std::string>& m, const std::string& key) {
    const auto it = m.find(key);
    REQUIRE(it != m.end());
    return std::atof(it->second.c_str());
}

// ---- muxing helpers --------------------------------------------------------------------

bytes mux_file(const media::tracks& t, const std::vector<sample>& samples, media::webm_options o = {}) {
    webm_muxer<memory_output> m(memory_output{}, t, webm_mode::file, o);
    for (const auto& s : samples) REQUIRE_FALSE(m.write(s));
    REQUIRE_FALSE(m.finish());
    CHECK(m.stats().dropped() == 0);
    return std::move(m.output().bytes);
}

/// Live output that also notes where each cluster starts.
struct live_capture {
    bytes data;
    std::vector<std::pair<std::size_t, bool>> clusters; // offset, a player can start there

    void write(std::span<const std::uint8_t> b) { data.insert(data.end(), b.begin(), b.end()); }
    void on_cluster_start(bool keyframe) { clusters.emplace_back(data.size(), keyframe); }
};

bool contains(const bytes& hay, const bytes& needle) {
    return std::search(hay.begin(), hay.end(), needle.begin(), needle.end()) != hay.end();
}

std::size_t find(const bytes& hay, const bytes& needle, std::size_t from = 0) {
    const auto it = std::search(hay.begin() + static_cast<std::ptrdiff_t>(from), hay.end(), needle.begin(), needle.end());
    return static_cast<std::size_t>(it - hay.begin());
}

bytes fake_frame(std::size_t n, std::uint8_t fill = 0x55) { return bytes(n, fill); }

/// The common checks on a finished 3 s file with `video` (VP8/VP9) and/or Opus audio.
void check_finished_file(const std::filesystem::path& p, const bytes& b, const char* codec, bool audio) {
    const bool video = codec != nullptr;
    const std::uint64_t vtrack = video ? 1 : 0, atrack = audio ? (video ? 2 : 1) : 0;

    // libwebm: structure, counts and cues.
    const census c = parse(b);
    CHECK(c.doc_type == "webm");
    CHECK(c.doc_type_version == 4);
    CHECK(c.segment_data + c.segment_size == b.size()); // size patched by finish()
    CHECK(c.timecode_scale == 1'000'000);
    CHECK(c.muxing_app == "onair");
    CHECK(c.writing_app == "onair");
    REQUIRE(c.duration.has_value());
    CHECK(*c.duration == doctest::Approx(3000.0).epsilon(0.001));
    REQUIRE(c.tracks.size() == (video ? 1u : 0u) + (audio ? 1u : 0u));
    if (video) {
        const auto& t = c.tracks[0];
        CHECK(t.track_number.value() == 1);
        CHECK(t.track_type.value() == webm::TrackType::kVideo);
        CHECK(t.codec_id.value() == (std::string(codec) == "vp9" ? "V_VP9" : "V_VP8"));
        CHECK(t.video.value().pixel_width.value() == 320);
        CHECK(t.video.value().pixel_height.value() == 240);
        CHECK(c.blocks_of(vtrack) == video_frames);
        CHECK(c.keyframes_of(vtrack) == video_frames / keyframe_every);
        std::vector<std::int64_t> want;
        for (int i = 0; i < video_frames; ++i) want.push_back(ms_of(video_pts(i)));
        CHECK(c.times_of(vtrack) == want);
    }
    if (audio) {
        const auto& t = c.tracks.back();
        CHECK(t.track_number.value() == atrack);
        CHECK(t.track_type.value() == webm::TrackType::kAudio);
        CHECK(t.codec_id.value() == "A_OPUS");
        CHECK(t.codec_delay.value() == 6'500'000);    // 312 samples at 48 kHz
        CHECK(t.seek_pre_roll.value() == 80'000'000); // 80 ms
        CHECK(t.codec_private.value() == media::opus_head({2, 48'000, 312}));
        CHECK(t.audio.value().channels.value() == 2);
        CHECK(t.audio.value().sampling_frequency.value() == 48000.0);
        CHECK(c.blocks_of(atrack) == audio_frames);
        CHECK(c.keyframes_of(atrack) == audio_frames); // every audio block is flagged key
        std::vector<std::int64_t> want;
        for (int i = 0; i < audio_frames; ++i) want.push_back(ms_of(audio_pts(i)));
        CHECK(c.times_of(atrack) == want);
    }
    // One cluster per second: at the key frames, or every 1 s for audio only.
    CHECK(c.cluster_times() == std::vector<std::uint64_t>{0, 1000, 2000});
    // A cue per cluster, pointing at the cluster and its first (key) block.
    REQUIRE(c.cues.size() == c.clusters.size());
    for (std::size_t i = 0; i < c.cues.size(); ++i) {
        const auto& cue = c.cues[i];
        const auto& cl = c.clusters[i];
        CHECK(cue.time.value() == cl.timecode);
        REQUIRE(cue.cue_track_positions.size() == 1);
        const auto& pos = cue.cue_track_positions[0].value();
        CHECK(pos.track.value() == (video ? vtrack : atrack));
        CHECK(pos.cluster_position.value() + c.segment_data == cl.position);
        REQUIRE_FALSE(cl.blocks.empty());
        CHECK(pos.relative_position.value() == cl.blocks[0].position - (cl.position + cl.header_size));
        CHECK(cl.blocks[0].track == (video ? vtrack : atrack));
        CHECK(cl.blocks[0].key);
        CHECK(cl.blocks[0].relative == 0);
    }
    // The seek head names Info, Tracks and Cues where they are.
    REQUIRE(c.seeks.size() == 3);
    CHECK(c.seeks[0].id.value() == webm::Id::kInfo);
    CHECK(c.seeks[1].id.value() == webm::Id::kTracks);
    CHECK(c.seeks[2].id.value() == webm::Id::kCues);
    const auto at = [&](const webm::Seek& s) { return b[c.segment_data + s.position.value()]; };
    CHECK(at(c.seeks[0]) == 0x15);
    CHECK(at(c.seeks[1]) == 0x16);
    CHECK(at(c.seeks[2]) == 0x1C);

    if (!have_ffmpeg()) {
        MESSAGE("ffmpeg/ffprobe not installed: the ffmpeg checks are skipped");
        return;
    }
    const std::string in = input(p);
    // ffprobe: codecs, size, duration, start times.
    const probed pr = probe(in);
    CHECK(number(pr.format, "duration") == doctest::Approx(3.0).epsilon(0.02));
    std::optional<double> vstart, astart;
    CHECK(pr.video.empty() == !video);
    CHECK(pr.audio.empty() == !audio);
    if (video) {
        CHECK(pr.video.at("codec_name") == codec);
        CHECK(pr.video.at("width") == "320");
        CHECK(pr.video.at("height") == "240");
        vstart = number(pr.video, "start_time");
    }
    if (audio) {
        CHECK(pr.audio.at("codec_name") == "opus");
        CHECK(pr.audio.at("channels") == "2");
        CHECK(pr.audio.at("sample_rate") == "48000");
        astart = number(pr.audio, "start_time");
    }
    if (vstart && astart) CHECK(std::abs(*vstart - *astart) <= 0.040);
    // A full decode prints nothing at -v error and gives every frame written.
    const decoded dec = decode(in);
    CHECK(dec.status == 0);
    CHECK(dec.err == "");
    std::map<int, int> want;
    if (video) want[0] = video_frames;
    if (audio) want[video ? 1 : 0] = audio_frames;
    CHECK(dec.frames == want);
    // Seeking: ffprobe jumps to 2 s through the cues and decodes from the key frame there.
    if (video) {
        const auto seek = run("ffprobe -v error -read_intervals 2.0%+#1 -select_streams v:0 -show_entries "
                              "frame=pts_time,key_frame -of csv=p=0 " + in);
        CHECK(seek.status == 0);
        CHECK(seek.err == "");
        CHECK(seek.out == "1,2.000000\n"); // key_frame, pts_time
    }
}

} // namespace

TEST_SUITE("media.webm_muxer") {
    TEST_CASE("EBML encodings byte by byte") {
        // Sizes: the count of leading zero bits in the first byte, plus one, is the length;
        // the marker bit after them is not part of the value. n bytes carry 7n value bits,
        // and the all-ones value is reserved for "unknown", so 127 needs two bytes.
        CHECK(ebml::size_length(0) == 1);
        CHECK(ebml::size_length(126) == 1);
        CHECK(ebml::size_length(127) == 2);
        CHECK(ebml::size_length(16382) == 2);
        CHECK(ebml::size_length(16383) == 3);
        CHECK(ebml::size_length(ebml::max_size) == 8);
        CHECK(ebml::size_length(ebml::max_size + 1) == 0);
        auto enc = [](auto f) {
            bytes b;
            f(b);
            return b;
        };
        CHECK(enc([](bytes& b) { ebml::put_size(b, 0); }) == bytes{0x80});
        CHECK(enc([](bytes& b) { ebml::put_size(b, 5); }) == bytes{0x85});
        CHECK(enc([](bytes& b) { ebml::put_size(b, 127); }) == bytes{0x40, 0x7F});
        CHECK(enc([](bytes& b) { ebml::put_size(b, 300); }) == bytes{0x41, 0x2C}); // 0x4000 | 300
        // A fixed 8-byte size (what finish() patches into the Segment): 0x01 then 7 bytes.
        CHECK(enc([](bytes& b) { ebml::put_size(b, 5, 8); }) == bytes{0x01, 0, 0, 0, 0, 0, 0, 0x05});
        // Unknown size: all seven value bytes set.
        CHECK(enc([](bytes& b) { ebml::put_unknown_size(b); }) ==
              bytes{0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF});
        // Ids carry their own length marker: written as they are, 1 to 4 bytes.
        CHECK(enc([](bytes& b) { ebml::put_id(b, ebml::id::segment); }) == bytes{0x18, 0x53, 0x80, 0x67});
        CHECK(enc([](bytes& b) { ebml::put_id(b, ebml::id::timecode); }) == bytes{0xE7});
        // Unsigned integers: id, size, big-endian value in as few bytes as it needs.
        CHECK(enc([](bytes& b) { ebml::put_uint(b, ebml::id::track_number, 1); }) == bytes{0xD7, 0x81, 0x01});
        CHECK(enc([](bytes& b) { ebml::put_uint(b, ebml::id::timecode_scale, 1'000'000); }) ==
              bytes{0x2A, 0xD7, 0xB1, 0x83, 0x0F, 0x42, 0x40});
        CHECK(enc([](bytes& b) { ebml::put_uint(b, ebml::id::seek_position, 0x1234, 8); }) ==
              bytes{0x53, 0xAC, 0x88, 0, 0, 0, 0, 0, 0, 0x12, 0x34});
        // Floats: IEEE 754 big-endian; 3000.0 = 0x40A7700000000000, 48000.0f = 0x473B8000.
        CHECK(enc([](bytes& b) { ebml::put_double(b, ebml::id::duration, 3000.0); }) ==
              bytes{0x44, 0x89, 0x88, 0x40, 0xA7, 0x70, 0, 0, 0, 0, 0});
        CHECK(enc([](bytes& b) { ebml::put_float(b, ebml::id::sampling_frequency, 48000.0f); }) ==
              bytes{0xB5, 0x84, 0x47, 0x3B, 0x80, 0x00});
        CHECK(enc([](bytes& b) { ebml::put_string(b, ebml::id::doc_type, "webm"); }) ==
              bytes{0x42, 0x82, 0x84, 'w', 'e', 'b', 'm'});
        // Void of an exact total length: 11 bytes is a Duration's room, 2 the smallest.
        CHECK(enc([](bytes& b) { ebml::put_void(b, 11); }) == bytes{0xEC, 0x89, 0, 0, 0, 0, 0, 0, 0, 0, 0});
        CHECK(enc([](bytes& b) { ebml::put_void(b, 2); }) == bytes{0xEC, 0x80});
        const bytes v200 = enc([](bytes& b) { ebml::put_void(b, 200); });
        REQUIRE(v200.size() == 200);
        CHECK(v200[0] == 0xEC);
        CHECK(v200[1] == 0x40); // 197 body bytes do not fit a 1-byte size: 0x40C5
        CHECK(v200[2] == 0xC5);
        // OpusHead (RFC 7845 5.1): magic, version 1, channels, pre-skip LE16, rate LE32,
        // gain LE16, mapping family 0.
        CHECK(media::opus_head({2, 48'000, 312}) ==
              bytes{'O', 'p', 'u', 's', 'H', 'e', 'a', 'd', 1, 2, 0x38, 0x01, 0x80, 0xBB, 0, 0, 0, 0, 0});
    }

    TEST_CASE("file layout: header, placeholders, patched sizes, SimpleBlock bytes") {
        webm_muxer<memory_output> m(memory_output{}, av_tracks(media::video_format::vp8, false), webm_mode::file);
        REQUIRE_FALSE(m.start());
        const bytes head(m.header().begin(), m.header().end());
        CHECK(m.output().bytes == head);
        REQUIRE(head.size() > 60);
        CHECK(bytes(head.begin(), head.begin() + 4) == bytes{0x1A, 0x45, 0xDF, 0xA3});
        CHECK(contains(head, {0x42, 0x82, 0x84, 'w', 'e', 'b', 'm'}));
        const std::size_t seg = find(head, {0x18, 0x53, 0x80, 0x67});
        REQUIRE(seg < head.size());
        // Before finish(): unknown Segment size, a Void where the seek head goes, a Void
        // in Info where the Duration goes.
        CHECK(bytes(head.begin() + static_cast<std::ptrdiff_t>(seg) + 4, head.begin() + static_cast<std::ptrdiff_t>(seg) + 12) ==
              bytes{0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF});
        const std::size_t data = seg + 12;
        CHECK(head[data] == 0xEC);
        CHECK_FALSE(contains(head, {0x44, 0x89, 0x88}));
        CHECK(contains(head, {0xEC, 0x89, 0, 0, 0, 0, 0, 0, 0, 0, 0}));
        CHECK(contains(head, {0x86, 0x85, 'V', '_', 'V', 'P', '8'}));
        CHECK(contains(head, {0xB0, 0x82, 0x01, 0x40})); // PixelWidth 320
        CHECK(contains(head, {0xBA, 0x81, 0xF0}));       // PixelHeight 240

        const bytes key = fake_frame(10, 0xAA), delta = fake_frame(3, 0xBB);
        REQUIRE_FALSE(m.write({media_kind::video, true, 0, key}));
        REQUIRE_FALSE(m.write({media_kind::video, false, 33'333, delta}));
        // Nothing of the cluster is out before it closes.
        CHECK(m.output().bytes.size() == head.size());
        REQUIRE_FALSE(m.finish());
        const bytes& b = m.output().bytes;
        // Cluster: id, size 1-byte (body = Timecode 3 + blocks 16 + 9 = 28), Timecode 0.
        const bytes cluster_head{0x1F, 0x43, 0xB6, 0x75, 0x80 | 28, 0xE7, 0x81, 0x00};
        const std::size_t cl = find(b, cluster_head);
        REQUIRE(cl == head.size());
        // SimpleBlock: id A3, size, track 1 (vint 0x81), timecode int16 BE, flags (0x80 key).
        bytes block1{0xA3, 0x80 | 14, 0x81, 0x00, 0x00, 0x80};
        block1.insert(block1.end(), key.begin(), key.end());
        bytes block2{0xA3, 0x80 | 7, 0x81, 0x00, 0x21, 0x00}; // 33 ms, not a key frame
        block2.insert(block2.end(), delta.begin(), delta.end());
        CHECK(bytes(b.begin() + static_cast<std::ptrdiff_t>(cl + cluster_head.size()),
                    b.begin() + static_cast<std::ptrdiff_t>(cl + cluster_head.size() + block1.size())) == block1);
        CHECK(bytes(b.begin() + static_cast<std::ptrdiff_t>(cl + cluster_head.size() + block1.size()),
                    b.begin() + static_cast<std::ptrdiff_t>(cl + cluster_head.size() + block1.size() + block2.size())) ==
              block2);
        // After finish(): Segment size 8 bytes, the seek head in the Void's place, Duration
        // (last frame 33.333 ms + its interval) in the Duration's.
        const std::uint64_t seg_size = b.size() - data;
        bytes size_field{0x01};
        for (int i = 6; i >= 0; --i) size_field.push_back(static_cast<std::uint8_t>(seg_size >> (8 * i)));
        CHECK(bytes(b.begin() + static_cast<std::ptrdiff_t>(seg) + 4, b.begin() + static_cast<std::ptrdiff_t>(data)) ==
              size_field);
        CHECK(bytes(b.begin() + static_cast<std::ptrdiff_t>(data), b.begin() + static_cast<std::ptrdiff_t>(data) + 4) ==
              bytes{0x11, 0x4D, 0x9B, 0x74});
        const std::size_t dur = find(b, {0x44, 0x89, 0x88});
        REQUIRE(dur + 11 <= head.size());
        std::uint64_t bits = 0;
        for (std::size_t i = 0; i < 8; ++i) bits = (bits << 8) | b[dur + 3 + i];
        CHECK(std::bit_cast<double>(bits) == doctest::Approx(66.666).epsilon(1e-6));
        // Cues after the cluster: CueTime 0, CueTrack 1, CueClusterPosition, CueRelativePosition 3.
        const std::size_t cues = find(b, {0x1C, 0x53, 0xBB, 0x6B}, cl);
        REQUIRE(cues < b.size());
        const std::uint64_t cluster_pos = cl - data;
        REQUIRE(cluster_pos < 256);
        CHECK(contains(b, {0xBB, 0x8E, 0xB3, 0x81, 0x00, 0xB7, 0x89, 0xF7, 0x81, 0x01, 0xF1, 0x81,
                           static_cast<std::uint8_t>(cluster_pos), 0xF0, 0x81, 0x03}));
        CHECK(m.stats().clusters == 1);
        CHECK(m.stats().blocks == 2);
        CHECK(m.stats().cues == 1);
        CHECK(m.stats().bytes == b.size());
        // libwebm agrees.
        const census c = parse(b);
        CHECK(c.segment_data == data);
        CHECK(c.blocks_of(1) == 2);
        REQUIRE(c.duration.has_value());
        CHECK(*c.duration == doctest::Approx(66.666).epsilon(1e-6));
    }

    TEST_CASE("VP8 + Opus file: libwebm, ffprobe and ffmpeg read it whole and seek") {
        const auto p = scratch("av-vp8.webm");
        const auto samples = interleave(&vp8_frames(), &opus_frames());
        const bytes b = mux_file(av_tracks(media::video_format::vp8, true), samples);
        onair::test::write_file(p, b);
        check_finished_file(p, b, "vp8", true);
    }

    TEST_CASE("VP9 + Opus file through webm_file_writer") {
        const auto p = scratch("av-vp9.webm");
        {
            media::webm_file_writer w;
            REQUIRE_FALSE(w.open(p, av_tracks(media::video_format::vp9, true)));
            CHECK(w.is_open());
            for (const auto& s : interleave(&vp9_frames(), &opus_frames())) REQUIRE_FALSE(w.write(s));
            CHECK(w.stats().blocks == video_frames + audio_frames);
            CHECK_FALSE(w.close());
            CHECK_FALSE(w.is_open());
        }
        check_finished_file(p, onair::test::read_file(p), "vp9", true);
    }

    TEST_CASE("video-only and audio-only files") {
        SUBCASE("VP8 only") {
            const auto p = scratch("v-vp8.webm");
            const bytes b = mux_file(av_tracks(media::video_format::vp8, false), interleave(&vp8_frames(), nullptr));
            onair::test::write_file(p, b);
            check_finished_file(p, b, "vp8", false);
        }
        SUBCASE("Opus only: a cluster and a cue every second") {
            const auto p = scratch("a-opus.webm");
            const bytes b = mux_file(av_tracks(std::nullopt, true), interleave(nullptr, &opus_frames()));
            onair::test::write_file(p, b);
            check_finished_file(p, b, nullptr, true);
        }
    }

    TEST_CASE("a file cut short plays up to the cut") {
        const auto p = scratch("cut.webm");
        const auto samples = interleave(&vp8_frames(), &opus_frames());
        media::file_output out;
        REQUIRE_FALSE(out.open(p));
        webm_muxer<media::file_output&> m(out, av_tracks(media::video_format::vp8, true), webm_mode::file);
        std::size_t i = 0;
        for (; i < samples.size() && samples[i].pts_us < 2'500'000; ++i) REQUIRE_FALSE(m.write(samples[i]));
        // As a killed process leaves it: the clusters of 0-1 s and 1-2 s are complete on
        // disk (written whole and flushed), the one from 2 s is still in memory.
        const bytes crashed = onair::test::read_file(p);
        const auto cp = scratch("cut-crash.webm");
        onair::test::write_file(cp, crashed);
        {
            const census c = parse(crashed);
            CHECK(c.segment_size == webm::kUnknownElementSize);
            CHECK_FALSE(c.duration.has_value()); // still the Void
            CHECK(c.seeks.empty());
            CHECK(c.cues.empty());
            CHECK(c.cluster_times() == std::vector<std::uint64_t>{0, 1000});
            CHECK(c.blocks_of(1) == 60);
            CHECK(c.blocks_of(2) == 100); // audio 0..1980 ms; 2000 follows the 2 s key frame
            CHECK(c.clusters.back().position + c.clusters.back().header_size + c.clusters.back().size == crashed.size());
        }
        for (; i < samples.size(); ++i) REQUIRE_FALSE(m.write(samples[i]));
        REQUIRE_FALSE(m.finish());
        REQUIRE_FALSE(out.close());
        const bytes whole = onair::test::read_file(p);
        REQUIRE(whole.size() > crashed.size());
        CHECK(m.stats().clusters == 3);
        // finish() changed the header only: the clusters on disk stay as they were.
        const auto head = static_cast<std::ptrdiff_t>(m.header().size());
        CHECK(bytes(whole.begin() + head, whole.begin() + static_cast<std::ptrdiff_t>(crashed.size())) ==
              bytes(crashed.begin() + head, crashed.end()));
        CHECK_FALSE(bytes(whole.begin(), whole.begin() + head) == bytes(crashed.begin(), crashed.begin() + head));

        // Cut in the middle of the third cluster: blocks wholly before the cut survive.
        const census full = parse(whole);
        REQUIRE(full.clusters.size() == 3);
        const auto& third = full.clusters[2];
        const std::uint64_t cut = third.position + third.header_size + third.size / 2;
        const bytes truncated(whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(cut));
        const auto tp = scratch("cut-truncated.webm");
        onair::test::write_file(tp, truncated);
        int whole_video_blocks = 0, whole_audio_blocks = 0;
        for (const auto& cl : full.clusters)
            for (const auto& blk : cl.blocks)
                if (blk.position + blk.size <= cut) ++(blk.track == 1 ? whole_video_blocks : whole_audio_blocks);
        CHECK(whole_video_blocks > 60);
        CHECK(whole_video_blocks < 90);
        {
            bool complete = true;
            const census c = parse(truncated, &complete);
            CHECK_FALSE(complete); // libwebm reports the missing end
            CHECK(c.clusters.size() == 3);
        }

        if (!have_ffmpeg()) {
            MESSAGE("ffmpeg/ffprobe not installed: the decode checks are skipped");
            return;
        }
        // Complete clusters only: ffmpeg sees a clean stream that ends early.
        const decoded dec = decode(input(cp));
        CHECK(dec.status == 0);
        CHECK(dec.err == "");
        CHECK(dec.frames == std::map<int, int>{{0, 60}, {1, 100}});
        // Cut inside a cluster: every whole block decodes; the block the cut splits
        // is lost, and ffmpeg says so once and nothing else:
        // "[matroska,webm @ 0x...] File ended prematurely".
        const decoded tdec = decode(input(tp));
        CHECK(tdec.status == 0);
        CHECK(std::count(tdec.err.begin(), tdec.err.end(), '\n') == 1);
        CHECK(tdec.err.ends_with("] File ended prematurely\n"));
        CHECK(tdec.frames == std::map<int, int>{{0, whole_video_blocks}, {1, whole_audio_blocks}});
    }

    TEST_CASE("live stream: unknown sizes, whole stream and late joiners decode") {
        const auto samples = interleave(&vp8_frames(), &opus_frames());
        live_capture cap;
        webm_muxer<live_capture&> m(cap, av_tracks(media::video_format::vp8, true), webm_mode::live);
        CHECK(m.since_keyframe().empty());
        REQUIRE_FALSE(m.start());
        const bytes head(m.header().begin(), m.header().end());
        CHECK(cap.data == head);
        bytes joiner;
        std::size_t join_from = 0;
        for (const auto& s : samples) {
            REQUIRE_FALSE(m.write(s));
            // Each block goes out with its write().
            REQUIRE(cap.data.size() >= s.data.size());
            CHECK(std::equal(s.data.begin(), s.data.end(), cap.data.end() - static_cast<std::ptrdiff_t>(s.data.size())));
            if (s.pts_us == 1'500'000 && s.kind == media_kind::video) {
                // A viewer arriving at 1.5 s: header + the stream since the 1 s key frame.
                REQUIRE_FALSE(cap.clusters.empty());
                const auto [at, key] = cap.clusters.back();
                CHECK(key);
                const bytes since(m.since_keyframe().begin(), m.since_keyframe().end());
                CHECK(since == bytes(cap.data.begin() + static_cast<std::ptrdiff_t>(at), cap.data.end()));
                CHECK(bytes(m.current_cluster().begin(), m.current_cluster().end()) == since);
                joiner = head;
                joiner.insert(joiner.end(), since.begin(), since.end());
                join_from = cap.data.size();
            }
        }
        CHECK(m.stats().bytes == cap.data.size());
        REQUIRE_FALSE(m.finish());
        CHECK(cap.data.size() == m.stats().bytes); // nothing to patch or add
        REQUIRE(join_from > 0);
        joiner.insert(joiner.end(), cap.data.begin() + static_cast<std::ptrdiff_t>(join_from), cap.data.end());

        // Clusters at each key frame, each announced as a place to start.
        REQUIRE(cap.clusters.size() == 3);
        for (const auto& [at, key] : cap.clusters) {
            CHECK(key);
            CHECK(bytes(cap.data.begin() + static_cast<std::ptrdiff_t>(at), cap.data.begin() + static_cast<std::ptrdiff_t>(at) + 12) ==
                  bytes{0x1F, 0x43, 0xB6, 0x75, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF});
        }
        const std::size_t seg = find(head, {0x18, 0x53, 0x80, 0x67});
        REQUIRE(seg + 12 <= head.size());
        CHECK(bytes(head.begin() + static_cast<std::ptrdiff_t>(seg) + 4, head.begin() + static_cast<std::ptrdiff_t>(seg) + 12) ==
              bytes{0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF});
        CHECK(head[seg + 12] == 0x15); // Info right away: no seek head, no Void

        const census c = parse(cap.data);
        CHECK(c.segment_size == webm::kUnknownElementSize);
        CHECK_FALSE(c.duration.has_value());
        CHECK(c.seeks.empty());
        CHECK(c.cues.empty());
        CHECK(c.cluster_times() == std::vector<std::uint64_t>{0, 1000, 2000});
        for (const auto& cl : c.clusters) CHECK(cl.size == webm::kUnknownElementSize);
        CHECK(c.blocks_of(1) == video_frames);
        CHECK(c.blocks_of(2) == audio_frames);
        const census j = parse(joiner);
        CHECK(j.cluster_times() == std::vector<std::uint64_t>{1000, 2000});
        CHECK(j.blocks_of(1) == 60);
        CHECK(j.blocks_of(2) == 100);
        REQUIRE_FALSE(j.clusters.empty());
        CHECK(j.clusters[0].blocks.at(0).key);

        if (!have_ffmpeg()) {
            MESSAGE("ffmpeg/ffprobe not installed: the decode checks are skipped");
            return;
        }
        const auto lp = scratch("live.webm"), jp = scratch("live-joiner.webm");
        onair::test::write_file(lp, cap.data);
        onair::test::write_file(jp, joiner);
        // Through a pipe, as an HTTP client reads it.
        const decoded dec = decode(input(lp, true));
        CHECK(dec.status == 0);
        CHECK(dec.err == "");
        CHECK(dec.frames == std::map<int, int>{{0, video_frames}, {1, audio_frames}});
        const probed lpr = probe(input(lp, true));
        CHECK(lpr.video.at("codec_name") == "vp8");
        CHECK(lpr.video.at("width") == "320");
        CHECK(lpr.audio.at("codec_name") == "opus");
        // The late joiner decodes from the 1 s key frame to the end, without an error.
        const decoded jdec = decode(input(jp, true));
        CHECK(jdec.status == 0);
        CHECK(jdec.err == "");
        CHECK(jdec.frames == std::map<int, int>{{0, 60}, {1, 100}}); // audio 1000..2980 ms
        const auto first = run("ffprobe -v error -select_streams v:0 -show_entries frame=pts_time,key_frame "
                               "-read_intervals %+#1 -of csv=p=0 " + input(jp, true));
        CHECK(first.status == 0);
        CHECK(first.out == "1,1.000000\n"); // key_frame, pts_time
    }

    TEST_CASE("live: a long GOP is split every 5 s and since_keyframe() spans the pieces") {
        const bytes frame = fake_frame(100);
        live_capture cap;
        webm_muxer<live_capture&> m(cap, av_tracks(media::video_format::vp9, false), webm_mode::live);
        std::size_t since_at_end = 0;
        for (int i = 0; i < 12 * fps; ++i) {
            REQUIRE_FALSE(m.write({media_kind::video, i == 0, video_pts(i), frame}));
            if (i == 11 * fps) {
                since_at_end = m.since_keyframe().size();
                // The open cluster (from 10 s) is the tail of since_keyframe().
                CHECK(m.current_cluster().size() < since_at_end);
                CHECK(std::equal(m.current_cluster().begin(), m.current_cluster().end(),
                                 m.since_keyframe().end() - static_cast<std::ptrdiff_t>(m.current_cluster().size())));
            }
        }
        REQUIRE(cap.clusters.size() == 3);
        CHECK(cap.clusters[0] == std::pair<std::size_t, bool>{m.header().size(), true});
        CHECK_FALSE(cap.clusters[1].second);
        CHECK_FALSE(cap.clusters[2].second);
        // Since the only key frame: everything after the header.
        CHECK(m.since_keyframe().size() == cap.data.size() - m.header().size());
        CHECK(since_at_end < m.since_keyframe().size());
        const census c = parse(cap.data);
        CHECK(c.cluster_times() == std::vector<std::uint64_t>{0, 5000, 10000});
        CHECK(c.blocks_of(1) == 12 * fps);
        CHECK(c.keyframes_of(1) == 1);
    }

    TEST_CASE("cluster rules: long GOP, size limit, int16 range, audio behind the cluster start") {
        SUBCASE("file: a key frame only at 0 still gives a cluster per second, one cue") {
            const bytes frame = fake_frame(50);
            std::vector<sample> s;
            for (int i = 0; i < video_frames; ++i) s.push_back({media_kind::video, i == 0, video_pts(i), frame});
            const census c = parse(mux_file(av_tracks(media::video_format::vp8, false), s));
            CHECK(c.cluster_times() == std::vector<std::uint64_t>{0, 1000, 2000});
            CHECK(c.cues.size() == 1);
            CHECK(c.blocks_of(1) == video_frames);
        }
        SUBCASE("file: clusters stay under 4 MiB") {
            const bytes big = fake_frame(1'500'000);
            std::vector<sample> s;
            for (int i = 0; i < 6; ++i) s.push_back({media_kind::video, i == 0, video_pts(i), big});
            const census c = parse(mux_file(av_tracks(media::video_format::vp8, false), s));
            REQUIRE(c.clusters.size() == 3); // two 1.5 MB frames fit, a third would not
            for (const auto& cl : c.clusters) {
                CHECK(cl.blocks.size() == 2);
                CHECK(cl.size <= 4u << 20);
            }
            CHECK(c.cues.size() == 1);
        }
        SUBCASE("relative timecodes stay within int16") {
            media::webm_options o;
            o.live_cluster_ms = 1'000'000; // clamped to 32767 ms
            live_capture cap;
            webm_muxer<live_capture&> m(cap, av_tracks(std::nullopt, true), webm_mode::live, o);
            const auto& opus = opus_frames();
            for (std::int64_t at_ms : {0, 20'000, 32'766, 40'000, 72'767, 72'768})
                REQUIRE_FALSE(m.write({media_kind::audio, true, at_ms * 1000, opus[0].bytes()}));
            const census c = parse(cap.data);
            CHECK(c.cluster_times() == std::vector<std::uint64_t>{0, 40'000, 72'768});
            CHECK(c.times_of(1) == std::vector<std::int64_t>{0, 20'000, 32'766, 40'000, 72'767, 72'768});
        }
        SUBCASE("audio behind a key frame's cluster opens a new cluster, not a negative timecode") {
            const bytes frame = fake_frame(50);
            const auto& opus = opus_frames();
            std::vector<sample> s{
                {media_kind::video, true, 0, frame},           {media_kind::audio, true, 0, opus[0].bytes()},
                {media_kind::video, true, 1'000'000, frame},   {media_kind::audio, true, 990'000, opus[1].bytes()},
                {media_kind::video, false, 1'033'333, frame},
            };
            const census c = parse(mux_file(av_tracks(media::video_format::vp8, true), s));
            CHECK(c.cluster_times() == std::vector<std::uint64_t>{0, 1000, 990});
            for (const auto& cl : c.clusters)
                for (const auto& b : cl.blocks) CHECK(b.relative >= 0);
            CHECK(c.times_of(1) == std::vector<std::int64_t>{0, 1000, 1033});
            CHECK(c.times_of(2) == std::vector<std::int64_t>{0, 990});
            CHECK(c.cues.size() == 2); // the clusters that open with key frames
        }
        SUBCASE("audio first at equal times, then the key frame: the key frame still opens a cluster") {
            const bytes frame = fake_frame(50);
            const auto& opus = opus_frames();
            std::vector<sample> s{
                {media_kind::audio, true, 0, opus[0].bytes()},
                {media_kind::video, true, 0, frame},
                {media_kind::audio, true, 20'000, opus[1].bytes()},
            };
            const census c = parse(mux_file(av_tracks(media::video_format::vp8, true), s));
            REQUIRE(c.clusters.size() == 2);
            CHECK(c.clusters[1].blocks.at(0).track == 1);
            CHECK(c.clusters[1].blocks.at(0).key);
            REQUIRE(c.cues.size() == 1);
            CHECK(c.cues[0].cue_track_positions.at(0).value().cluster_position.value() + c.segment_data ==
                  c.clusters[1].position);
        }
    }

    TEST_CASE("bad input is counted and not written") {
        const bytes frame = fake_frame(40);
        webm_muxer<memory_output> m(memory_output{}, av_tracks(media::video_format::vp8, false), webm_mode::file);
        REQUIRE_FALSE(m.write({media_kind::video, true, 0, frame}));
        CHECK(m.write({media_kind::audio, true, 0, frame}) == errc::bad_frame); // no audio track
        CHECK(m.write({media_kind::video, false, 33'333, {}}) == errc::bad_frame);
        {
            const bytes huge((64u << 20) + 1, 0);
            CHECK(m.write({media_kind::video, false, 33'333, huge}) == errc::bad_frame);
        }
        CHECK(m.write({media_kind::video, false, -1, frame}) == errc::bad_frame);
        REQUIRE_FALSE(m.write({media_kind::video, false, 200'000, frame}));
        CHECK(m.write({media_kind::video, false, 100'000, frame}) == errc::bad_frame); // 100 ms back
        REQUIRE_FALSE(m.write({media_kind::video, false, 199'500, frame}));            // within 1 ms: kept at 200
        REQUIRE_FALSE(m.write({media_kind::video, false, 233'333, frame}));
        const auto& st = m.stats();
        CHECK(st.dropped_no_track == 1);
        CHECK(st.dropped_empty == 1);
        CHECK(st.dropped_oversized == 1);
        CHECK(st.dropped_timestamp == 2);
        CHECK(st.dropped() == 5);
        CHECK(st.blocks == 4);
        CHECK_FALSE(m.error()); // drops leave the muxer usable
        REQUIRE_FALSE(m.finish());
        CHECK(m.write({media_kind::video, false, 300'000, frame}) == errc::end_of_stream);
        CHECK(m.stats().blocks == 4);
        const census c = parse(m.output().bytes);
        CHECK(c.blocks_of(1) == 4);
        CHECK(c.blocks_of(2) == 0);
        CHECK(c.times_of(1) == std::vector<std::int64_t>{0, 200, 200, 233});
    }

    TEST_CASE("bad tracks and outputs") {
        SUBCASE("video size must be known") {
            media::tracks t;
            t.video = media::video_track{media::video_format::vp8, 0, 240};
            webm_muxer<memory_output> m(memory_output{}, t, webm_mode::file);
            CHECK(m.start() == errc::bad_frame);
            CHECK(m.write({media_kind::video, true, 0, fake_frame(4)}) == errc::bad_frame);
            CHECK(m.error() == errc::bad_frame); // sticky
            CHECK(m.output().bytes.empty());
        }
        SUBCASE("no tracks, or audio the header cannot describe") {
            webm_muxer<memory_output> none(memory_output{}, media::tracks{}, webm_mode::live);
            CHECK(none.start() == errc::unsupported);
            media::tracks t;
            t.audio = media::audio_track{3, 48'000, 312};
            webm_muxer<memory_output> three(memory_output{}, t, webm_mode::file);
            CHECK(three.start() == errc::unsupported);
        }
        SUBCASE("file mode needs an output that can overwrite") {
            struct write_only {
                bytes data;
                void write(std::span<const std::uint8_t> b) { data.insert(data.end(), b.begin(), b.end()); }
            };
            webm_muxer<write_only> file(write_only{}, av_tracks(std::nullopt, true), webm_mode::file);
            CHECK(file.start() == errc::unsupported);
            webm_muxer<write_only> live(write_only{}, av_tracks(std::nullopt, true), webm_mode::live);
            CHECK_FALSE(live.start());
            CHECK(live.output().data.size() == live.header().size());
        }
        SUBCASE("a file that cannot be created") {
            const auto p = scratch("no-such-dir") / "x" / "f.webm";
            media::file_output out;
            CHECK(out.open(p) == errc::bad_file);
            media::webm_file_writer w;
            CHECK(w.open(p, av_tracks(std::nullopt, true)) == errc::bad_file);
            CHECK_FALSE(w.is_open());
            CHECK(w.write({media_kind::audio, true, 0, fake_frame(4)}) == errc::bad_file);
        }
        SUBCASE("an output error is sticky") {
            struct failing {
                int writes = 0;
                void write(std::span<const std::uint8_t>) { ++writes; }
                std::error_code error() const { return writes > 1 ? make_error_code(errc::bad_file) : std::error_code{}; }
            };
            webm_muxer<failing> m(failing{}, av_tracks(std::nullopt, true), webm_mode::live);
            REQUIRE_FALSE(m.start());
            const auto& opus = opus_frames();
            CHECK(m.write({media_kind::audio, true, 0, opus[0].bytes()}) == errc::bad_file);
            CHECK(m.write({media_kind::audio, true, 20'000, opus[1].bytes()}) == errc::bad_file);
            CHECK(m.output().writes == 2);
            CHECK(m.finish() == errc::bad_file);
        }
    }
}
