// onair — the HTTP face of a relay node's egress: what onair-relay --http serves.
//
//   GET  /live/STREAM.webm            live WebM, chunked, from the latest key frame (no-cache)
//   GET  /live/STREAM/index.m3u8      HLS media playlist (max-age=0: it changes every segment)
//   GET  /live/STREAM/init.mp4        fMP4 initialisation segment (cacheable)
//   GET  /live/STREAM/N.m4s           fMP4 media segment N (immutable: cache it)
//   GET  /streams                     JSON: the streams here, their clients, HLS state
//   POST /record/STREAM?format=webm   start recording STREAM (format webm or mp4)
//   POST /record/STREAM/stop          stop it; JSON with the file and its counts
//   GET  /record                      JSON: the recordings in progress
// The /record endpoints need `Authorization: Bearer TOKEN` with the node's record token
// (401 without, 403 when the node has none): a recording writes to the node's disk.
// Unknown streams get 404, HLS of a VP8 stream 415 (fMP4 carries VP9 only).
#pragma once

#include "onair/cdn/egress.hpp"
#include "onair/http/server.hpp"

#include <openssl/crypto.h>

#include <charconv>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace onair::cdn {

/// A live WebM client: one streaming HTTP response.
struct http_client {
    std::shared_ptr<http::stream> s;
    bool open() const { return s && s->open(); }
    bool send(const http::shared_bytes& b) { return s->send(b); }
    void close() {
        if (s) s->close();
    }
};

using egress = basic_egress<http_client>;

struct http_egress_config {
    std::string record_token; ///< empty: recordings cannot be controlled over HTTP
};

namespace detail {

inline std::string json_escape(std::string_view s) {
    std::string out;
    for (const char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        if (static_cast<unsigned char>(c) < 0x20) continue;
        out += c;
    }
    return out;
}

inline std::string json_of(const recording_info& r) {
    char num[256];
    std::snprintf(num, sizeof num, "\"video_frames\":%llu,\"audio_frames\":%llu,\"duration_s\":%.3f,\"late\":%llu",
                  static_cast<unsigned long long>(r.stats.video_frames), static_cast<unsigned long long>(r.stats.audio_frames),
                  r.stats.duration_s, static_cast<unsigned long long>(r.stats.late));
    return "{\"stream\":\"" + json_escape(r.stream) + "\",\"path\":\"" + json_escape(r.path.string()) + "\",\"format\":\"" +
           (r.format == media::container::webm ? "webm" : "mp4") + "\",\"started\":" + (r.started ? "true" : "false") + "," + num + "}";
}

inline void text(http::response& res, int status, std::string body) {
    res.status = status;
    res.content_type = "text/plain; charset=utf-8";
    res.body = std::move(body) + "\n";
    res.add_header("Cache-Control", "no-store");
}

/// Constant-time comparison of a bearer token.
inline bool token_matches(const http::request& req, const std::string& token) {
    const auto auth = req.header("authorization");
    if (!auth || auth->substr(0, 7) != "Bearer ") return false;
    const std::string_view given = auth->substr(7);
    return given.size() == token.size() && CRYPTO_memcmp(given.data(), token.data(), token.size()) == 0;
}

} // namespace detail

/// Answers one request from `e`. Runs on the relay's network thread (the server's).
inline void serve(egress& e, const http_egress_config& cfg, const http::request& req, http::response& res) {
    using detail::text;
    std::string_view path = req.path;
    const bool read = req.method == http::method::get || req.method == http::method::head;

    if (path.starts_with("/live/")) {
        if (!read) return text(res, 405, "GET or HEAD");
        std::string_view rest = path.substr(6);
        if (rest.ends_with(".webm") && rest.find('/') == std::string_view::npos) {
            const std::string name(rest.substr(0, rest.size() - 5));
            if (!e.has_stream(name)) return text(res, 404, "no stream " + name + " here");
            res.content_type = "video/webm";
            res.add_header("Cache-Control", "no-cache, no-store");
            res.add_header("X-Accel-Buffering", "no"); // a proxy in front must not buffer it
            auto s = res.start_stream();
            if (s->open()) e.add_webm_client(name, http_client{std::move(s)});
            return;
        }
        const auto slash = rest.find('/');
        if (slash == std::string_view::npos) return text(res, 404, "unknown path");
        const std::string name(rest.substr(0, slash));
        const std::string_view file = rest.substr(slash + 1);
        if (!e.has_stream(name)) return text(res, 404, "no stream " + name + " here");
        if (e.hls_refused(name)) return text(res, 415, "HLS here carries VP9 only (fMP4); this stream is VP8: use /live/" + name + ".webm");
        const hls_packager* h = e.hls(name);
        if (!h) return text(res, 404, "stream " + name + " has not started yet");
        if (file == "index.m3u8") {
            std::string pl = h->playlist();
            if (pl.empty()) return text(res, 404, "no segment yet");
            res.content_type = "application/vnd.apple.mpegurl";
            res.add_header("Cache-Control", "max-age=0, no-cache");
            res.body = std::move(pl);
            return;
        }
        if (file == "init.mp4") {
            res.content_type = "video/mp4";
            res.add_header("Cache-Control", "max-age=60");
            res.shared_body = h->init();
            return;
        }
        if (file.ends_with(".m4s")) {
            std::uint64_t n = 0;
            const auto digits = file.substr(0, file.size() - 4);
            const auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
            if (ec != std::errc{} || p != digits.data() + digits.size() || digits.empty()) return text(res, 404, "unknown segment");
            auto seg = h->segment(n);
            if (!seg) return text(res, 404, "segment " + std::string(digits) + " is not (or no longer) here");
            res.content_type = "video/iso.segment";
            res.add_header("Cache-Control", "max-age=3600, immutable");
            res.shared_body = std::move(seg);
            return;
        }
        return text(res, 404, "unknown path");
    }

    if (path == "/streams") {
        if (!read) return text(res, 405, "GET or HEAD");
        res.content_type = "application/json";
        res.add_header("Cache-Control", "no-store");
        res.body = "{\"streams\":" + std::to_string(e.streams()) + ",\"webm_clients\":" + std::to_string(e.webm_clients()) + "}";
        return;
    }

    if (path == "/record" || path.starts_with("/record/")) {
        if (cfg.record_token.empty()) return text(res, 403, "recording control is not enabled on this node (--record-token-file)");
        if (!detail::token_matches(req, cfg.record_token)) {
            res.add_header("WWW-Authenticate", "Bearer");
            return text(res, 401, "a bearer token is needed");
        }
        if (path == "/record") {
            if (!read) return text(res, 405, "GET or HEAD");
            std::string body = "[";
            for (const auto& r : e.recordings()) body += (body.size() > 1 ? "," : "") + detail::json_of(r);
            res.content_type = "application/json";
            res.body = body + "]";
            return;
        }
        if (req.method != http::method::post) return text(res, 405, "POST");
        std::string_view rest = path.substr(8);
        if (rest.ends_with("/stop")) {
            const std::string name(rest.substr(0, rest.size() - 5));
            const auto info = e.stop_recording(name);
            if (!info) return text(res, 404, "no recording of " + name);
            res.content_type = "application/json";
            res.body = detail::json_of(*info);
            return;
        }
        const std::string name(rest);
        const auto format = media::container_of(req.query_param("format").value_or("webm"));
        if (!format) return text(res, 400, "format must be webm or mp4");
        const auto ec = e.start_recording(name, *format);
        if (ec == errc::unknown_stream) return text(res, 400, "bad stream name");
        if (ec == errc::queue_full) return text(res, 409, name + " is already being recorded");
        if (ec == errc::unsupported) return text(res, 415, "MP4 holds VP9 video only; " + name + " is VP8: record it as webm");
        if (ec) return text(res, 500, "cannot record: " + ec.message());
        for (const auto& r : e.recordings())
            if (r.stream == name) {
                res.content_type = "application/json";
                res.body = detail::json_of(r);
            }
        return;
    }
    text(res, 404, "unknown path");
}

} // namespace onair::cdn
