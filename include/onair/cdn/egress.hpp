// onair — a relay node's CDN egress and cloud recording: the packet sink of onair-relay.
//
// Every RTP packet the relay accepts for a stream (published at the node or pulled through
// it) is also given here. Per stream, media::rtp_frames turns them into decodable frames
// (waiting up to 250 ms for the relay's own repairs, skipping from a lost reference to the
// next key frame), then
//   - a recording, when one was asked for (media::recorder: one file per stream);
//   - live WebM for HTTP clients (cdn::live_webm), started at the stream's first key frame;
//   - HLS (cdn::hls_packager) when the video is VP9 (fMP4 carries no VP8) or there is none.
// Everything runs on the relay's network thread: no locks, and no decoding.
//
// Recording control: start_recording / stop_recording (onair-relay maps them to its
// --record flag and to POST requests on its HTTP server). A recording asked for before its
// stream is live starts when the stream comes; it is finalised when stopped, when the
// stream ends (no packet for `stream_timeout`) and when the node stops.
#pragma once

#include "onair/cdn/hls.hpp"
#include "onair/cdn/live_webm.hpp"
#include "onair/core/media_frame.hpp"
#include "onair/media/interleaver.hpp"
#include "onair/media/recorder.hpp"
#include "onair/media/rtp_frames.hpp"
#include "onair/media/timeline.hpp"
#include "onair/rtp/packet.hpp"
#include "onair/rtp/session_message.hpp"

#include <cctype>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace onair::cdn {

struct egress_config {
    std::filesystem::path record_dir = ".";            ///< where recordings go
    std::chrono::milliseconds stream_timeout{5000};     ///< silence that ends a stream here
    /// Live WebM and HLS of every stream (a CDN origin: onair-relay --http). Off: only the
    /// streams asked to be recorded are looked at, and a node asked for nothing pays one
    /// branch per packet.
    bool live_outputs = true;
    media::rtp_frames_config frames{};
    hls_config hls{};
};

struct recording_info {
    std::string stream;
    std::filesystem::path path;
    media::container format = media::container::webm;
    bool started = false; ///< the file exists (the stream's first key frame came)
    media::recorder_stats stats;
    std::error_code error; ///< why it could not start (errc::unsupported: MP4 of a VP8 stream)
};

/// @tparam Client a live WebM client handle (see live_webm.hpp)
/// Thread safety: none; the relay's network thread only.
template <class Client>
class basic_egress {
public:
    using clock = std::chrono::steady_clock;

    explicit basic_egress(egress_config c = {}) : cfg_(std::move(c)) {}
    basic_egress(const basic_egress&) = delete;
    basic_egress& operator=(const basic_egress&) = delete;
    ~basic_egress() { stop(); }

    // packet sink
    void on_packet(const rtp::stream_description& d, media_kind k, const rtp::packet_view& p) {
        on_packet(d, k, p, clock::now());
    }
    void on_packet(const rtp::stream_description& d, media_kind k, const rtp::packet_view& p, clock::time_point now) {
        if (!cfg_.live_outputs && recordings_.empty()) return; // nothing asked of this node: one branch per packet
        if (!cfg_.live_outputs && !recordings_.contains(d.name) && !streams_.contains(d.name)) return;
        stream& s = stream_of(d, now);
        s.last_packet = now;
        s.frames.push(k, p, now, [&](encoded_frame&& f) { take(s, std::move(f)); });
    }

    /// Releases due video frames and ends silent streams; call every 20 ms or so.
    void tick(clock::time_point now = clock::now()) {
        for (auto it = streams_.begin(); it != streams_.end();) {
            stream& s = *it->second;
            s.frames.service(now, [&](encoded_frame&& f) { take(s, std::move(f)); });
            if (now - s.last_packet > cfg_.stream_timeout) {
                finish(s);
                it = streams_.erase(it);
            } else {
                ++it;
            }
        }
    }

    /// Records `name` to a new file in record_dir (now, or when the stream comes).
    std::error_code start_recording(const std::string& name, media::container format) {
        if (!valid_name(name)) return errc::unknown_stream;
        if (recordings_.contains(name)) return errc::queue_full; // one recording per stream at a time
        recording_request r{format, file_for(name, format)};
        if (auto it = streams_.find(name); it != streams_.end()) {
            if (const auto ec = open_recording(*it->second, r)) return ec;
        }
        recordings_.emplace(name, std::move(r));
        return {};
    }

    /// Stops and finalises the recording of `name`; its last state.
    std::optional<recording_info> stop_recording(const std::string& name) {
        auto r = recordings_.find(name);
        if (r == recordings_.end()) return std::nullopt;
        recording_info info = info_of(name, r->second);
        if (auto it = streams_.find(name); it != streams_.end() && it->second->rec.is_open()) {
            info.started = it->second->rec.started();
            it->second->rec.close();
            info.stats = it->second->rec.stats();
            if (info.started) finished_.push_back(info);
        }
        recordings_.erase(r);
        return info;
    }

    /// Recordings whose files were finalised since the last call (stopped, their stream
    /// ended, or the node stops), with their final counts; and those that could not start
    /// (`error` set).
    std::vector<recording_info> take_finished() { return std::exchange(finished_, {}); }

    std::vector<recording_info> recordings() const {
        std::vector<recording_info> out;
        for (const auto& [name, r] : recordings_) out.push_back(info_of(name, r));
        return out;
    }

    /// Serves `name` as live WebM to `c`; false when the stream is not here.
    bool add_webm_client(const std::string& name, Client c) {
        auto it = streams_.find(name);
        if (it == streams_.end()) return false;
        it->second->webm.add(std::move(c));
        return true;
    }

    /// The HLS packager of `name`, or null (not here, or not packaged: VP8 video).
    const hls_packager* hls(const std::string& name) const {
        auto it = streams_.find(name);
        if (it == streams_.end() || !it->second->hls.started()) return nullptr;
        return &it->second->hls;
    }
    /// Whether `name` is here and why HLS is not offered (VP8).
    bool has_stream(const std::string& name) const { return streams_.contains(name); }
    bool hls_refused(const std::string& name) const {
        auto it = streams_.find(name);
        return it != streams_.end() && it->second->hls_refused;
    }

    /// Finalises every recording and ends every live client (the node stops).
    void stop() {
        for (auto& [name, s] : streams_) finish(*s);
        streams_.clear();
    }

    std::size_t streams() const noexcept { return streams_.size(); }
    std::size_t webm_clients() const noexcept {
        std::size_t n = 0;
        for (const auto& [name, s] : streams_) n += s->webm.clients();
        return n;
    }
    const egress_config& config() const noexcept { return cfg_; }

    static bool valid_name(const std::string& name) {
        if (name.empty() || name.size() > 128) return false;
        for (const char c : name)
            if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
        return name.front() != '.';
    }

private:
    struct recording_request {
        media::container format;
        std::filesystem::path path;
    };

    struct stream {
        explicit stream(const rtp::stream_description& d, const egress_config& c)
            : frames(d, c.frames), il(media::video_format_of(d.video_codec).has_value(), d.audio_ssrc != 0 && d.audio_codec == "opus"),
              hls(c.hls) {}
        media::rtp_frames frames;
        media::interleaver il;
        live_webm<Client> webm;
        hls_packager hls;
        bool hls_refused = false;
        bool live_started = false;
        media::timeline times;
        int audio_channels = 2;
        media::recorder rec;
        clock::time_point last_packet{};
    };

    stream& stream_of(const rtp::stream_description& d, clock::time_point now) {
        auto it = streams_.find(d.name);
        if (it != streams_.end() && it->second->frames.description() == d) return *it->second;
        if (it != streams_.end()) { // published again with other SSRCs: start over
            finish(*it->second);
            streams_.erase(it);
        }
        auto s = std::make_unique<stream>(d, cfg_);
        s->last_packet = now;
        if (auto r = recordings_.find(d.name); r != recordings_.end()) {
            r->second.path = file_for(d.name, r->second.format); // a new file for the new stream
            if (const auto ec = open_recording(*s, r->second)) {
                recording_info info = info_of(d.name, r->second);
                info.error = ec;
                finished_.push_back(std::move(info)); // reported, and asked again with the next session
            }
        }
        return *streams_.emplace(d.name, std::move(s)).first->second;
    }

    std::error_code open_recording(stream& s, const recording_request& r) {
        media::recording_options o;
        o.path = r.path;
        o.format = r.format;
        o.video = s.frames.format().has_value();
        o.audio = s.frames.has_audio();
        o.video_codec = s.frames.format();
        return s.rec.open(o);
    }

    void take(stream& s, encoded_frame&& f) {
        if (s.rec.is_open()) s.rec.write(f);
        if (!cfg_.live_outputs) return;
        s.il.push(std::move(f), [&](encoded_frame&& g) { live(s, g); });
    }

    /// The live outputs, in capture order across tracks.
    void live(stream& s, const encoded_frame& f) {
        const bool video = f.kind == media_kind::video;
        if (!video && !f.data.empty()) s.audio_channels = (f.data[0] & 0x04) ? 2 : 1;
        if (!s.live_started) {
            const bool has_video = s.frames.format().has_value();
            if (has_video && !(video && f.keyframe && f.width > 0 && f.height > 0)) return;
            media::tracks t;
            if (has_video) t.video = media::video_track{*s.frames.format(), f.width, f.height};
            if (s.frames.has_audio()) {
                media::audio_track a;
                a.channels = s.audio_channels;
                t.audio = a;
            }
            if (s.webm.start(t)) return;
            if (const auto ec = s.hls.start(t)) s.hls_refused = ec == errc::unsupported;
            s.times.start(f.capture_time);
            s.live_started = true;
        }
        const auto pts = s.times.place(f);
        if (!pts) return;
        media::sample smp;
        smp.kind = f.kind;
        smp.keyframe = video ? f.keyframe : true;
        smp.pts_us = *pts;
        smp.data = f.bytes();
        s.webm.push(smp);
        s.hls.push(smp);
    }

    void finish(stream& s) {
        // What the frame buffer still holds for repairs goes out first: nothing more comes.
        s.frames.service(s.last_packet + std::chrono::seconds(10), [&](encoded_frame&& f) { take(s, std::move(f)); });
        s.il.flush([&](encoded_frame&& g) { live(s, g); });
        if (s.rec.is_open()) {
            const bool started = s.rec.started();
            s.rec.close();
            if (started) {
                recording_info info;
                info.stream = s.frames.description().name;
                info.path = s.rec.options().path;
                info.format = s.rec.options().format;
                info.started = true;
                info.stats = s.rec.stats();
                finished_.push_back(std::move(info));
            }
        }
        s.webm.end([](Client& c) { c.close(); });
    }

    std::filesystem::path file_for(const std::string& name, media::container f) const {
        const std::time_t t = std::time(nullptr);
        std::tm tm{};
        gmtime_r(&t, &tm);
        char when[32];
        std::strftime(when, sizeof when, "%Y%m%dT%H%M%SZ", &tm);
        std::filesystem::path p = cfg_.record_dir / (name + "-" + when + media::extension_of(f));
        for (int i = 2; std::filesystem::exists(p); ++i)
            p = cfg_.record_dir / (name + "-" + when + "-" + std::to_string(i) + media::extension_of(f));
        return p;
    }

    recording_info info_of(const std::string& name, const recording_request& r) const {
        recording_info info;
        info.stream = name;
        info.path = r.path;
        info.format = r.format;
        if (auto it = streams_.find(name); it != streams_.end()) {
            info.started = it->second->rec.started();
            info.stats = it->second->rec.stats();
        }
        return info;
    }

    egress_config cfg_;
    std::map<std::string, std::unique_ptr<stream>> streams_;
    std::map<std::string, recording_request> recordings_;
    std::vector<recording_info> finished_;
};

} // namespace onair::cdn
