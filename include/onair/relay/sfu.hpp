// onair — relay::sfu: a selective forwarding unit.
//
// Forwards each published stream to all of its subscribers without touching the payload.
// Clients announce themselves with a session hello (publish or play, stream name) from the
// socket they will use; the sfu answers to that address. A subscriber receives video only
// from a keyframe on, and the sfu asks the publisher for one (PLI) while any subscriber
// waits, at most once per stream per 300 ms whatever the number of subscribers.
#pragma once

#include "onair/relay/concepts.hpp"
#include "onair/qos/nack_generator.hpp"
#include "onair/qos/retransmission_cache.hpp"
#include "onair/qos/rtx.hpp"
#include "onair/rtp/keyframe.hpp"
#include "onair/core/overloaded.hpp"
#include "onair/rtp/rtcp.hpp"

#include <algorithm>
#include <array>
#include <span>
#include <chrono>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

namespace onair::relay {

struct sfu_config {
    /// Minimum spacing of keyframe requests sent upstream for one stream.
    std::chrono::milliseconds keyframe_request_interval{300};
    /// A client not heard from (hello keepalive or media) for this long is dropped.
    std::chrono::milliseconds session_timeout{10'000};
    /// Plain-RTP targets (add_forward) cannot ask for keyframes, so a stream that has them
    /// gets a keyframe at least this often: a receiver started late decodes within it.
    std::chrono::milliseconds forward_keyframe_interval{2'000};
    /// Called (on the node's thread) when a stream goes live or its description changes.
    std::function<void(const rtp::stream_description&)> on_stream_live;
};

/// Selective forwarding: every packet of a stream to every subscriber of it.
///
/// Thread safety: owned by one relay node; called on its thread only.
class sfu {
public:
    using clock = std::chrono::steady_clock;

    struct subscriber {
        endpoint video_to;
        endpoint audio_to;
        bool fixed = false;           ///< a --forward target: never times out, sends no hellos
        bool waiting_keyframe = true; ///< video held back until a keyframe starts
        clock::time_point last_seen{};
        std::uint16_t rtx_sequence = 0; ///< this leg's RFC 4588 sequence numbers
    };

    struct stream {
        rtp::stream_description desc;
        rtp::video_format format = rtp::video_format::unknown;
        bool live = false;
        endpoint publisher;
        clock::time_point last_seen{};
        clock::time_point last_keyframe_request{};
        clock::time_point last_keyframe{}; ///< when a keyframe last passed through
        std::vector<subscriber> subscribers;
        std::uint64_t packets_in = 0;
        /// Recent video packets, to answer subscribers' NACKs without bothering the host.
        qos::retransmission_cache video_cache;
        /// Holes in the host -> relay leg, requested from the host.
        qos::nack_generator upstream;

        stream() : video_cache(1024) {}
    };

    sfu() = default;
    explicit sfu(sfu_config cfg) : cfg_(std::move(cfg)) {}

    /// Adds a fixed plain-RTP target for `name` (video to `video_to`, audio to `audio_to`).
    void add_forward(const std::string& name, const endpoint& video_to, const endpoint& audio_to) {
        auto& s = streams_[name];
        s.desc.name = name;
        s.subscribers.push_back(subscriber{video_to, audio_to, true, true, {}, 0});
    }

    template <class Ctx>
    void on_session(Ctx& ctx, const rtp::session_message& m, const endpoint& from) {
        const auto now = ctx.now();
        if (m.stream.name.empty()) {
            ++stats_.refused_sessions;
            return reply(ctx, from, rtp::session_status::invalid, rtp::stream_description{});
        }
        switch (m.type) {
        case rtp::session_type::publish: return on_publish(ctx, m, from, now);
        case rtp::session_type::play: return on_play(ctx, m, from, now);
        case rtp::session_type::leave: return on_leave(m, from);
        case rtp::session_type::ack: return; // clients do not send acks
        }
    }

    template <class Ctx>
    void on_rtp(Ctx& ctx, const packet_ref& pkt, const rtp::packet_view& p, const endpoint& from) {
        auto it = by_ssrc_.find(p.ssrc);
        if (it == by_ssrc_.end()) {
            ++stats_.unknown_stream;
            return;
        }
        stream& s = *it->second;
        if (from != s.publisher) {
            ++stats_.unauthorized;
            return;
        }
        ++s.packets_in;
        s.last_seen = ctx.now();
        if (p.ssrc == s.desc.video_rtx_ssrc) return on_upstream_rtx(ctx, s, p);
        if (p.ssrc == s.desc.video_ssrc) {
            if (!s.video_cache.store(p.sequence, pkt, s.last_seen)) {
                ++stats_.duplicates;
                return;
            }
            s.upstream.on_packet(p.sequence, s.last_seen);
        }
        forward(ctx, s, p);
    }

    template <class Ctx>
    void on_rtcp(Ctx& ctx, rtp::bytes_view compound, const endpoint& from) {
        stream* reported = nullptr; // stream whose publisher sent a sender report in here
        bool video_report = false;
        const std::error_code ec = rtp::rtcp::parse_compound(
            compound,
            overloaded{
                [&](const rtp::rtcp::pli& pli) { on_pli(ctx, pli.media_ssrc, from); },
                [&](const rtp::rtcp::nack& nack) { on_nack(ctx, nack, from); },
                [&](const rtp::rtcp::sender_report& sr) {
                    auto it = by_ssrc_.find(sr.ssrc);
                    if (it == by_ssrc_.end() || it->second->publisher != from) return;
                    reported = it->second;
                    video_report = sr.ssrc == reported->desc.video_ssrc;
                },
            },
            rtcp_counts_);
        if (ec) ++stats_.malformed_rtcp;
        // The publisher's compound (SR + SDES) goes on to subscribers unchanged: they need
        // the NTP <-> RTP mapping for lip sync. Receiver reports and feedback end here:
        // the relay terminates RTCP per leg.
        if (reported) {
            for (auto& sub : reported->subscribers) {
                if (sub.fixed) continue; // plain-RTP targets listen for RTCP on another port
                ctx.send(video_report ? sub.video_to : sub.audio_to, compound);
            }
        }
    }

    template <class Ctx>
    void on_timer(Ctx& ctx) {
        const auto now = ctx.now();
        for (auto& [name, s] : streams_) {
            if (s.live && now - s.last_seen > cfg_.session_timeout) unpublish(s);
            std::erase_if(s.subscribers, [&](const subscriber& sub) {
                return !sub.fixed && now - sub.last_seen > cfg_.session_timeout;
            });
            const bool someone_waits = std::any_of(s.subscribers.begin(), s.subscribers.end(),
                                                   [](const subscriber& sub) { return sub.waiting_keyframe; });
            const bool refresh = s.live && now - s.last_keyframe >= cfg_.forward_keyframe_interval &&
                                 std::any_of(s.subscribers.begin(), s.subscribers.end(),
                                             [](const subscriber& sub) { return sub.fixed; });
            if (someone_waits || refresh) request_keyframe(ctx, s, now);
            if (s.live && s.desc.video_rtx_ssrc) request_upstream(ctx, s, now);
        }
        std::erase_if(streams_, [](const auto& kv) { return !kv.second.live && kv.second.subscribers.empty(); });
    }

    const relay_stats& stats() const noexcept { return stats_; }
    const stream* find(const std::string& name) const {
        auto it = streams_.find(name);
        return it == streams_.end() ? nullptr : &it->second;
    }
    std::size_t stream_count() const noexcept { return streams_.size(); }

private:
    template <class Ctx>
    void reply(Ctx& ctx, const endpoint& to, rtp::session_status status, const rtp::stream_description& d) {
        rtp::session_message ack;
        ack.type = rtp::session_type::ack;
        ack.status = status;
        ack.sender_ssrc = relay_ssrc;
        ack.stream = d;
        ctx.send_session(to, ack);
    }

    template <class Ctx>
    void on_publish(Ctx& ctx, const rtp::session_message& m, const endpoint& from, clock::time_point now) {
        auto& s = streams_[m.stream.name];
        if (s.live && s.publisher != from) {
            ++stats_.refused_sessions;
            rtp::stream_description name_only;
            name_only.name = m.stream.name;
            return reply(ctx, from, rtp::session_status::refused, name_only);
        }
        const auto& d = m.stream;
        const bool distinct = d.video_ssrc != d.audio_ssrc &&
                              (d.video_rtx_ssrc == 0 || (d.video_rtx_ssrc != d.video_ssrc && d.video_rtx_ssrc != d.audio_ssrc));
        if (!distinct || claimed_by_other(m.stream, s)) {
            ++stats_.refused_sessions;
            return reply(ctx, from, rtp::session_status::invalid, m.stream);
        }
        const bool changed = !s.live || s.desc != m.stream;
        if (changed) {
            unindex(s);
            s.desc = m.stream;
            s.format = rtp::video_format_of(s.desc.video_codec);
            s.publisher = from;
            s.live = true;
            if (s.desc.video_ssrc) by_ssrc_[s.desc.video_ssrc] = &s;
            if (s.desc.audio_ssrc) by_ssrc_[s.desc.audio_ssrc] = &s;
            if (s.desc.video_rtx_ssrc) by_ssrc_[s.desc.video_rtx_ssrc] = &s;
            s.video_cache.clear();
            s.upstream.reset();
            for (auto& sub : s.subscribers) {
                sub.waiting_keyframe = true;
                if (!sub.fixed) reply(ctx, sub.video_to, rtp::session_status::ok, s.desc);
            }
            if (cfg_.on_stream_live) cfg_.on_stream_live(s.desc);
        }
        s.last_seen = now;
        reply(ctx, from, rtp::session_status::ok, s.desc);
    }

    template <class Ctx>
    void on_play(Ctx& ctx, const rtp::session_message& m, const endpoint& from, clock::time_point now) {
        auto& s = streams_[m.stream.name];
        s.desc.name = m.stream.name;
        auto it = std::find_if(s.subscribers.begin(), s.subscribers.end(),
                               [&](const subscriber& sub) { return !sub.fixed && sub.video_to == from; });
        if (it == s.subscribers.end()) {
            s.subscribers.push_back(subscriber{from, from, false, true, now, 0});
            if (s.live) request_keyframe(ctx, s, now);
        } else {
            it->last_seen = now;
        }
        reply(ctx, from, s.live ? rtp::session_status::ok : rtp::session_status::waiting, s.desc);
    }

    void on_leave(const rtp::session_message& m, const endpoint& from) {
        auto it = streams_.find(m.stream.name);
        if (it == streams_.end()) return;
        stream& s = it->second;
        if (s.live && s.publisher == from) unpublish(s);
        std::erase_if(s.subscribers, [&](const subscriber& sub) { return !sub.fixed && sub.video_to == from; });
    }

    /// Sends an accepted media packet of `s` to every subscriber that can use it.
    template <class Ctx>
    void forward(Ctx& ctx, stream& s, const rtp::packet_view& p) {
        const bool video = p.ssrc == s.desc.video_ssrc;
        const media_kind kind = video ? media_kind::video : media_kind::audio;
        ctx.deliver(s.desc, kind, p);
        const bool key_start = video && rtp::starts_keyframe(s.format, p.payload);
        if (key_start) s.last_keyframe = s.last_seen;
        for (auto& sub : s.subscribers) {
            if (video) {
                if (sub.waiting_keyframe) {
                    if (!key_start) continue;
                    sub.waiting_keyframe = false;
                }
                ctx.send(sub.video_to, p.whole);
            } else {
                ctx.send(sub.audio_to, p.whole);
            }
            ++stats_.rtp_forwarded;
            stats_.bytes_forwarded += p.whole.size();
        }
    }

    /// A retransmission from the host for a hole in the host -> relay leg: restored to the
    /// original packet, cached, and forwarded like any media packet (late).
    template <class Ctx>
    void on_upstream_rtx(Ctx& ctx, stream& s, const rtp::packet_view& rtx) {
        packet_ref restored = ctx.acquire();
        std::size_t n = 0;
        if (qos::restore_rtx(rtx, s.desc.video_ssrc, s.desc.video_pt, restored.capacity(), n)) {
            ++stats_.malformed_rtx;
            return;
        }
        restored.resize(n);
        rtp::packet_view p;
        if (rtp::parse(restored.bytes(), p)) {
            ++stats_.malformed_rtx;
            return;
        }
        // Only holes the relay is waiting for are filled: a retransmission of anything else
        // (never sent, long gone, or already here) must not displace cached packets.
        if (!s.upstream.is_missing(p.sequence)) {
            ++stats_.unsolicited_rtx;
            return;
        }
        if (!s.video_cache.store(p.sequence, restored, s.last_seen)) {
            ++stats_.duplicates;
            return;
        }
        ++stats_.upstream_recovered;
        s.upstream.on_packet(p.sequence, s.last_seen, true);
        forward(ctx, s, p);
    }

    /// A subscriber's NACK: answered from the cache with RFC 4588 retransmissions on that
    /// leg. What the cache lacks is on its way from the host (the relay asked already).
    template <class Ctx>
    void on_nack(Ctx& ctx, const rtp::rtcp::nack& nack, const endpoint& from) {
        auto it = by_ssrc_.find(nack.media_ssrc);
        if (it == by_ssrc_.end() || nack.media_ssrc != it->second->desc.video_ssrc) return;
        stream& s = *it->second;
        auto sub = std::find_if(s.subscribers.begin(), s.subscribers.end(),
                                [&](const subscriber& x) { return !x.fixed && x.video_to == from; });
        if (sub == s.subscribers.end() || s.desc.video_rtx_ssrc == 0) return;
        const auto now = ctx.now();
        nack.for_each([&](std::uint16_t seq) {
            ++stats_.nack_requests;
            // No resend suppression here: each subscriber paces its own requests.
            packet_ref original = s.video_cache.take_for_resend(seq, now, clock::duration::zero());
            if (!original) return;
            rtp::packet_view p;
            if (rtp::parse(original.bytes(), p)) return;
            std::array<std::uint8_t, max_datagram_size> buf;
            const std::size_t n = qos::write_rtx(p, s.desc.video_rtx_ssrc, s.desc.video_rtx_pt, sub->rtx_sequence++, buf);
            if (n == 0) return;
            ctx.send(sub->video_to, rtp::bytes_view(buf.data(), n));
            ++stats_.retransmissions;
            stats_.retransmission_bytes += n;
        });
    }

    /// Requests the holes of the host -> relay leg.
    template <class Ctx>
    void request_upstream(Ctx& ctx, stream& s, clock::time_point now) {
        lost_.clear();
        s.upstream.collect(now, s.upstream.rtt_estimate(), lost_);
        if (!lost_.empty()) {
            std::array<std::uint8_t, 1200> buf;
            std::size_t done = 0;
            while (done < lost_.size()) { // at most ~250 items per NACK packet
                const std::size_t chunk = std::min<std::size_t>(lost_.size() - done, 250);
                const std::size_t n = rtp::rtcp::write_nack(relay_ssrc, s.desc.video_ssrc,
                                                            std::span(lost_).subspan(done, chunk), buf);
                if (n) ctx.send(s.publisher, rtp::bytes_view(buf.data(), n));
                done += chunk;
            }
            stats_.upstream_nacks += lost_.size();
        }
        if (s.upstream.take_keyframe_request()) request_keyframe(ctx, s, now);
    }

    template <class Ctx>
    void on_pli(Ctx& ctx, std::uint32_t media_ssrc, const endpoint& from) {
        // A subscriber lost its picture: ask the publisher, rate-limited per stream.
        auto it = by_ssrc_.find(media_ssrc);
        if (it == by_ssrc_.end()) return;
        stream& s = *it->second;
        if (!is_subscriber(s, from)) return;
        request_keyframe(ctx, s, ctx.now());
    }

    template <class Ctx>
    void request_keyframe(Ctx& ctx, stream& s, clock::time_point now) {
        if (!s.live || s.desc.video_ssrc == 0) return;
        if (s.last_keyframe_request != clock::time_point{} &&
            now - s.last_keyframe_request < cfg_.keyframe_request_interval) {
            ++stats_.keyframe_requests_suppressed;
            return;
        }
        s.last_keyframe_request = now;
        ++stats_.keyframe_requests;
        ctx.request_keyframe(s.publisher, s.desc.video_ssrc);
    }

    static bool is_subscriber(const stream& s, const endpoint& from) {
        return std::any_of(s.subscribers.begin(), s.subscribers.end(),
                           [&](const subscriber& sub) { return sub.video_to == from || sub.audio_to == from; });
    }
    bool claimed_by_other(const rtp::stream_description& d, const stream& self) const {
        for (std::uint32_t ssrc : {d.video_ssrc, d.audio_ssrc, d.video_rtx_ssrc}) {
            if (!ssrc) continue;
            auto it = by_ssrc_.find(ssrc);
            if (it != by_ssrc_.end() && it->second != &self) return true;
        }
        return false;
    }
    void unindex(stream& s) {
        for (std::uint32_t ssrc : {s.desc.video_ssrc, s.desc.audio_ssrc, s.desc.video_rtx_ssrc}) {
            auto it = by_ssrc_.find(ssrc);
            if (it != by_ssrc_.end() && it->second == &s) by_ssrc_.erase(it);
        }
    }
    void unpublish(stream& s) {
        unindex(s);
        s.live = false;
        for (auto& sub : s.subscribers) sub.waiting_keyframe = true;
    }

    static constexpr std::uint32_t relay_ssrc = 0x6f6e6169; // "onai"
    sfu_config cfg_;
    std::unordered_map<std::string, stream> streams_; // node-based: stream addresses are stable
    std::unordered_map<std::uint32_t, stream*> by_ssrc_;
    relay_stats stats_;
    rtp::rtcp::parse_counts rtcp_counts_;
    std::vector<std::uint16_t> lost_; // reused for upstream NACKs
};

} // namespace onair::relay
