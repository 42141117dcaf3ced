// onair — relay::sfu: a selective forwarding unit.
//
// Forwards each published stream to all of its subscribers without touching the payload.
// Clients announce themselves with a session hello (publish or play, stream name) from the
// socket they will use; the sfu answers to that address. A subscriber receives video only
// from a keyframe on, and the sfu asks the publisher for one (PLI) while any subscriber
// waits, at most once per stream per 300 ms whatever the number of subscribers.
//
// Each leg is its own RTP session for repair: the sfu answers subscribers' NACKs (video and
// audio) from its caches, asks the publisher for what the publisher leg lost, rebuilds
// video packets from the publisher's FlexFEC packets, and protects what it forwards with
// FlexFEC packets of its own (one encoder per stream, on the same FEC SSRC), at the level
// the subscribers' receiver reports call for; a renumbered leg that reports loss gets an
// encoder of its own, over its own numbers. It sends the publisher receiver reports, so
// the publisher's FEC follows the publisher leg's loss.
#pragma once

#include "onair/relay/concepts.hpp"
#include "onair/relay/downlink.hpp"
#include "onair/relay/layer_meter.hpp"
#include "onair/relay/layer_selector.hpp"
#include "onair/qos/flexfec.hpp"
#include "onair/qos/nack_generator.hpp"
#include "onair/qos/receive_statistics.hpp"
#include "onair/qos/red.hpp"
#include "onair/qos/retransmission_cache.hpp"
#include "onair/qos/rtx.hpp"
#include "onair/qos/transport_feedback_generator.hpp"
#include "onair/rtp/keyframe.hpp"
#include "onair/core/overloaded.hpp"
#include "onair/rtp/rtcp.hpp"

#include <algorithm>
#include <array>
#include <span>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
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
    /// How long the FEC encoder waits for a hole in the publisher leg's sequence before it
    /// goes on without that packet (a reordered packet usually fills it sooner).
    std::chrono::milliseconds fec_reorder_wait{20};
    /// How often each publisher gets a receiver report (its FEC follows the loss in it).
    std::chrono::milliseconds report_interval{1000};
    /// A subscriber's NACK for a number the relay retransmitted to it less than this long
    /// ago is a copy of one already answered (lossy paths send each NACK twice or three
    /// times), not a retry: subscribers retry after at least 20 ms.
    std::chrono::milliseconds nack_copy_interval{10};
    /// Each subscriber leg's congestion control (its estimator starts here).
    downlink_config downlink{};
    /// Choose each subscriber's layers from its leg's estimate (VP8/VP9 streams). Off: every
    /// subscriber gets every layer, byte for byte.
    bool select_layers = true;
    /// A layer is added when its rate fits this share of the leg's estimate (what is left
    /// after audio); dropped as soon as it no longer fits the whole of it.
    double layer_up_margin = 0.85;
    /// A leg whose next layer up does not fit its estimate (but needs at most 1.5 times it)
    /// probes at that layer's rate (the estimate grows only a few percent a second from what
    /// the leg carries, so without a probe a viewer may stay below a layer its link would
    /// carry; a probe that comes back short also brings an estimate that grew past the link
    /// back down): first this long after
    /// the leg started or last went up, then twice as long after each probe that did not
    /// lift it, up to layer_probe_max_interval.
    std::chrono::milliseconds layer_probe_interval{2'000};
    std::chrono::milliseconds layer_probe_max_interval{32'000};
    /// Admit only hellos whose ticket the room service granted (sfu::apply): media from
    /// anyone else is refused at the hello and dropped after it.
    bool require_tickets = false;
    /// Called (on the node's thread) when a stream goes live or its description changes.
    std::function<void(const rtp::stream_description&)> on_stream_live;
};

/// A media grant from the room service: who may publish or play a stream, with the ticket
/// their hello carries, and its withdrawal.
struct ticket_grant {
    enum class kind { publish, unpublish, play, stop };
    kind what = kind::publish;
    std::string stream, ticket;
};

/// The memory an sfu's streams and subscribers take (sfu::memory()), in bytes of objects
/// and of the heap storage they own: containers by capacity, strings beyond their inline
/// buffer. A stream counts its entry in the stream table (name and state, not the table's
/// nodes and buckets), its description, caches (their slots), holes, reception statistics,
/// FEC decoder and encoder, transport-wide feedback, layer meters, the lower encodings'
/// caches and holes, and its subscriber list's unused capacity. A subscriber counts its
/// place in that list, its leg (estimator history and window, probe pacer), its layer
/// selector and its ticket. Not counted: the packets the caches hold (pooled buffers, shared
/// with whatever else holds them: cached_packets of them), and what the sfu keeps once for
/// all streams (the SSRC index, tickets, scratch buffers).
struct sfu_memory {
    std::size_t streams = 0;          ///< streams (live or awaited)
    std::size_t subscribers = 0;
    std::size_t stream_bytes = 0;     ///< the streams' own state
    std::size_t subscriber_bytes = 0; ///< the subscribers' state
    std::size_t cached_packets = 0;   ///< pooled packet buffers the caches hold (not in the bytes above)
    std::size_t cached_packet_bytes = 0; ///< their size: cached_packets pool blocks
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
        std::uint16_t rtx_sequence = 0; ///< this leg's RFC 4588 sequence numbers (video)
        std::uint16_t audio_rtx_sequence = 0;
        qos::loss_estimate loss;        ///< video loss this subscriber reports (smoothed)
        /// This leg's transport-wide numbering and bandwidth estimate (not for fixed targets:
        /// plain-RTP receivers send no feedback).
        downlink leg;
        std::uint64_t transport_feedback = 0; ///< feedback messages the leg's estimator took
        /// Which layers this subscriber gets, renumbered as one stream (VP8/VP9 video, not
        /// for fixed targets).
        std::unique_ptr<layer_selector> selector;
        /// The subscriber's numbers differ from the publisher's (a layer was dropped): the
        /// stream's FEC, computed over the publisher's numbers, is not for it.
        bool rewritten = false;
        /// FlexFEC over this leg's own numbers, for a renumbered leg that reports loss (made
        /// at the first such report, on the stream's FEC SSRC; each viewer sees only its own
        /// leg's repair packets). Its protection follows this subscriber's loss alone.
        std::unique_ptr<qos::flexfec_encoder> fec{};
        /// Retransmissions may take at most half of the leg's estimate (a 1 s bucket, bytes):
        /// on a congested leg repairs would otherwise add to the loss they repair.
        double rtx_allowance = 0;
        clock::time_point rtx_refilled{};
        /// The sequence numbers (of this leg) last retransmitted, by number modulo their
        /// count: on lossy paths each NACK comes twice or three times, and every copy that
        /// arrives must not be answered again (each answer is already sent repair_copies()
        /// times; answering every copy doubled the repair traffic and drained the allowance).
        struct resend_mark {
            std::uint32_t at_ms = 0; ///< when (steady clock, milliseconds, wrapping)
            std::uint16_t seq = 0;
            std::uint8_t kind = 0;   ///< 0: unused, 1: video, 2: audio
        };
        std::array<resend_mark, 16> resent{}; // 128 bytes
        static std::uint32_t mark_ms(clock::time_point t) noexcept {
            return static_cast<std::uint32_t>(std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count());
        }
        /// True when `seq` was retransmitted to this subscriber less than `interval` ago
        /// (a copy of a NACK already answered: the subscriber's own retries come later).
        bool resent_within(bool video, std::uint16_t seq, clock::time_point now, std::chrono::milliseconds interval) const noexcept {
            const resend_mark& m = resent[seq % resent.size()];
            return m.kind == (video ? 1 : 2) && m.seq == seq &&
                   static_cast<std::uint32_t>(mark_ms(now) - m.at_ms) < static_cast<std::uint32_t>(interval.count());
        }
        void mark_resent(bool video, std::uint16_t seq, clock::time_point now) noexcept {
            resent[seq % resent.size()] = resend_mark{mark_ms(now), seq, static_cast<std::uint8_t>(video ? 1 : 2)};
        }
        /// The next probe for the layer above the current one, and the wait after it.
        clock::time_point next_layer_probe{};
        std::chrono::milliseconds layer_probe_wait{0};
        std::string ticket{}; ///< the play ticket it was admitted with (require_tickets)
        /// Another relay node pulling the stream (cascade): every encoding as published,
        /// from the first packet (its own subscribers wait for key frames), with repairs of
        /// each encoding.
        bool relay_leg = false;
        std::array<std::uint16_t, 2> lower_rtx_sequence{}; ///< RTX numbering of the lower encodings (relay legs)
        /// How many of `copies` copies of a `bytes`-byte retransmission the allowance takes
        /// now (0: none). Fewer copies rather than none: a large packet asked for twice would
        /// otherwise wait for the bucket to hold both while smaller repairs keep draining it.
        int take_rtx_allowance(std::size_t bytes, int copies, clock::time_point now) {
            const double per_s = static_cast<double>(leg.target_bps()) / 16.0; // half the estimate, in bytes
            if (rtx_refilled != clock::time_point{})
                rtx_allowance = std::min(per_s, rtx_allowance + per_s * std::chrono::duration<double>(now - rtx_refilled).count());
            else
                rtx_allowance = per_s;
            rtx_refilled = now;
            if (fixed || relay_leg) return copies; // inter-node links are not estimated for layers
            const double size = static_cast<double>(std::max<std::size_t>(bytes, 1));
            const int granted = std::clamp(static_cast<int>(rtx_allowance / size), 0, copies);
            rtx_allowance -= size * granted;
            return granted;
        }
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
        qos::retransmission_cache audio_cache;
        qos::nack_generator audio_upstream;
        /// Reception on the publisher leg (originals only: loss before repair), reported
        /// to the publisher.
        qos::receive_statistics reception;
        clock::time_point last_report{};
        qos::loss_estimate upstream_loss; ///< of the publisher leg's video (as reported to the publisher)
        /// FlexFEC of the publisher leg (rebuilds what it lost) and of the subscriber legs
        /// (protects what the sfu forwards); made when the stream announces a FEC SSRC.
        std::unique_ptr<qos::flexfec_decoder> fec_in;
        std::unique_ptr<qos::flexfec_encoder> fec_out;
        std::uint32_t key_timestamp = 0;   ///< RTP timestamp of the last key frame
        bool fec_started = false;
        std::uint16_t fec_next = 0;        ///< next sequence number for fec_out
        std::uint16_t fec_high = 0;        ///< newest forwarded
        clock::time_point fec_blocked{};   ///< since when fec_next is awaited (zero: not waiting)
        /// Arrival times of the publisher's packets by transport-wide sequence number, reported
        /// back every 50 ms: its congestion controller's measurements of this leg.
        qos::transport_feedback_generator transport_feedback;
        /// Rate of each video layer, and of audio, as forwarded: what a subscriber's choice costs.
        layer_meter layers;
        layer_meter audio_rate;
        /// Simulcast: each lower encoding's own cache and publisher-leg holes (the top one's
        /// are video_cache / upstream).
        struct lower_state {
            qos::retransmission_cache cache{512};
            qos::nack_generator upstream;
        };
        std::array<std::unique_ptr<lower_state>, 2> lower{};
        /// Key frame requests sent upstream, per encoding (spatial index).
        std::array<clock::time_point, max_spatial_layers> last_keyframe_requests{};
        /// The publisher is another relay node (cascade::adopt), not a client here.
        bool pulled = false;
        /// Encoding index of a video SSRC (the top one is video_encodings() - 1), or -1.
        int spatial_of(std::uint32_t ssrc) const noexcept {
            if (!ssrc) return -1;
            if (ssrc == desc.video_ssrc) return static_cast<int>(desc.video_encodings()) - 1;
            for (std::size_t i = 0; i + 1 < desc.video_encodings(); ++i)
                if (ssrc == desc.video_lower_ssrcs[i]) return static_cast<int>(i);
            return -1;
        }
        std::uint32_t ssrc_of_spatial(std::size_t spatial) const noexcept {
            return spatial + 1 >= desc.video_encodings() ? desc.video_ssrc : desc.video_lower_ssrcs[spatial];
        }
        bool top(int spatial) const noexcept { return spatial == static_cast<int>(desc.video_encodings()) - 1; }

        stream() : video_cache(1024), audio_cache(256) {}
    };

    sfu() = default;
    explicit sfu(sfu_config cfg) : cfg_(std::move(cfg)) {}

    /// Adds a fixed plain-RTP target for `name` (video to `video_to`, audio to `audio_to`).
    void add_forward(const std::string& name, const endpoint& video_to, const endpoint& audio_to) {
        auto& s = streams_[name];
        s.desc.name = name;
        s.subscribers.push_back(subscriber{video_to, audio_to, true, true, {}, 0, 0, {}, downlink(cfg_.downlink), 0, nullptr, false});
    }

    /// Takes a grant or withdrawal from the room service (on the node's thread). A withdrawn
    /// publish ends the stream at once; a stopped play removes that subscriber.
    void apply(const ticket_grant& g) {
        if (g.stream.empty()) return;
        auto& t = tickets_[g.stream];
        switch (g.what) {
        case ticket_grant::kind::publish: t.publish = g.ticket; break;
        case ticket_grant::kind::play:
            if (t.play.size() < max_play_tickets) t.play.insert(g.ticket);
            break;
        case ticket_grant::kind::unpublish:
            t.publish.clear();
            if (auto it = streams_.find(g.stream); it != streams_.end() && it->second.live) unpublish(it->second);
            break;
        case ticket_grant::kind::stop:
            t.play.erase(g.ticket);
            if (auto it = streams_.find(g.stream); it != streams_.end())
                if (remove_subscribers(it->second, [&](const subscriber& sub) { return !sub.fixed && sub.ticket == g.ticket; }))
                    refresh_protection(it->second);
            break;
        }
        if (t.publish.empty() && t.play.empty()) tickets_.erase(g.stream);
    }

    template <class Ctx>
    void on_session(Ctx& ctx, const rtp::session_message& m, const endpoint& from) {
        on_session(ctx, m, from, false);
    }
    /// `trusted`: the caller has admitted the hello itself (a relay leg with the cluster's
    /// cascade ticket), whatever require_tickets says.
    template <class Ctx>
    void on_session(Ctx& ctx, const rtp::session_message& m, const endpoint& from, bool trusted) {
        const auto now = ctx.now();
        if (m.stream.name.empty()) {
            ++stats_.refused_sessions;
            return reply(ctx, from, rtp::session_status::invalid, rtp::stream_description{});
        }
        if (cfg_.require_tickets && !trusted && (m.type == rtp::session_type::publish || m.type == rtp::session_type::play) && !ticketed(m)) {
            ++stats_.unticketed_sessions;
            rtp::stream_description name_only;
            name_only.name = m.stream.name;
            return reply(ctx, from, rtp::session_status::unauthorized, name_only);
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
        // Every datagram of the publisher leg is measured, whatever it turns out to be.
        if (const auto tseq = p.transport_sequence()) s.transport_feedback.on_packet(*tseq, s.last_seen);
        if (p.payload.empty() && p.padding > 0) { // padding only: the publisher probing the path
            ++stats_.padding_received;
            return;
        }
        if (p.ssrc == s.desc.video_rtx_ssrc) return on_upstream_rtx(ctx, s, p, true);
        if (p.ssrc == s.desc.audio_rtx_ssrc) return on_upstream_rtx(ctx, s, p, false);
        if (p.ssrc == s.desc.video_fec_ssrc) return on_upstream_fec(ctx, s, p);
        for (std::size_t i = 0; i + 1 < s.desc.video_encodings(); ++i) {
            if (!s.lower[i]) continue;
            if (p.ssrc == s.desc.video_lower_rtx_ssrcs[i]) return on_upstream_rtx(ctx, s, p, true, static_cast<int>(i));
            if (p.ssrc == s.desc.video_lower_ssrcs[i]) {
                if (!s.lower[i]->cache.store(p.sequence, pkt, s.last_seen)) {
                    ++stats_.duplicates;
                    return;
                }
                s.lower[i]->upstream.on_packet(p.sequence, s.last_seen);
                return forward(ctx, s, p);
            }
        }
        const bool video = p.ssrc == s.desc.video_ssrc;
        // Every original counts for the publisher's receiver report, also one that FEC or
        // RED had already rebuilt here (it was not lost, only late).
        s.reception.on_packet(p, s.last_seen);
        if (!(video ? s.video_cache : s.audio_cache).store(p.sequence, pkt, s.last_seen)) {
            ++stats_.duplicates;
            return;
        }
        (video ? s.upstream : s.audio_upstream).on_packet(p.sequence, s.last_seen);
        if (video && s.fec_in) {
            s.fec_in->add_media(p.whole, [&](rtp::bytes_view r) { hold_recovered(ctx, r); });
            forward(ctx, s, p);
            return forward_recovered(ctx, s);
        }
        forward(ctx, s, p);
        if (!video && s.desc.audio_red_pt && p.payload_type == s.desc.audio_red_pt) rebuild_from_red(ctx, s, p);
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
                    reported->reception.on_sender_report(sr, ctx.now());
                },
                [&](const rtp::rtcp::receiver_report& rr) {
                    for (const auto& b : rr.blocks) on_subscriber_report(b, from);
                },
                [&](const rtp::rtcp::feedback& f) {
                    if (f.type == rtp::rtcp::type_rtpfb && f.fmt == rtp::twcc::fmt) on_subscriber_feedback(ctx, f, from);
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
            if (remove_subscribers(s, [&](const subscriber& sub) {
                    return !sub.fixed && now - sub.last_seen > cfg_.session_timeout;
                }))
                refresh_protection(s); // the lossy one may have gone
            if (s.live) choose_layers(s, now);
            const bool someone_waits = std::any_of(s.subscribers.begin(), s.subscribers.end(),
                                                   [](const subscriber& sub) { return !sub.selector && sub.waiting_keyframe; });
            const bool refresh = s.live && now - s.last_keyframe >= cfg_.forward_keyframe_interval &&
                                 std::any_of(s.subscribers.begin(), s.subscribers.end(),
                                             [](const subscriber& sub) { return sub.fixed; });
            if (someone_waits || refresh) request_keyframe(ctx, s, now);
            if (s.live) request_selected_keyframes(ctx, s, now);
            if (s.live && s.desc.video_rtx_ssrc) request_upstream(ctx, s, s.upstream, s.desc.video_ssrc, now);
            for (std::size_t i = 0; s.live && i + 1 < s.desc.video_encodings(); ++i)
                if (s.lower[i] && s.desc.video_lower_rtx_ssrcs[i])
                    request_upstream(ctx, s, s.lower[i]->upstream, s.desc.video_lower_ssrcs[i], now);
            if (s.live && s.desc.audio_rtx_ssrc) request_upstream(ctx, s, s.audio_upstream, s.desc.audio_ssrc, now);
            if (s.live && now - s.last_report >= cfg_.report_interval) report_upstream(ctx, s, now);
            if (s.live && s.transport_feedback.due(now)) {
                s.transport_feedback.build(now, relay_ssrc, s.desc.video_ssrc ? s.desc.video_ssrc : s.desc.audio_ssrc,
                                           [&](rtp::bytes_view b) {
                                               ctx.send(s.publisher, b);
                                               ++stats_.transport_feedback_sent;
                                           });
            }
            if (s.live) feed_fec(ctx, s, now);
            if (s.live) probe_legs(ctx, s, now);
        }
        std::erase_if(streams_, [](const auto& kv) { return !kv.second.live && kv.second.subscribers.empty(); });
    }

    /// A stream pulled from another relay node: `desc` as that node acknowledged the relay
    /// leg, `upstream` its media address. Makes the stream live here with `upstream` as its
    /// publisher; a stream already pulled moves to the new upstream, keeping its caches and
    /// every subscriber's numbering (the upstream forwards the publisher's numbers), with a
    /// key frame asked for. False (and nothing changes) when a client publishes it here.
    template <class Ctx>
    bool adopt(Ctx& ctx, const rtp::stream_description& desc, const endpoint& upstream) {
        const auto now = ctx.now();
        auto& s = streams_[desc.name];
        if (s.live && !s.pulled) return false;
        if (desc.name.empty() || !distinct_ssrcs(desc) || claimed_by_other(desc, s)) {
            ++stats_.refused_sessions;
            return false;
        }
        if (s.live && s.desc == desc && s.publisher != upstream) {
            s.publisher = upstream;
            s.upstream.reset();
            s.audio_upstream.reset();
            for (auto& l : s.lower)
                if (l) l->upstream.reset();
            s.transport_feedback = {};
            s.last_keyframe_request = {};
            s.last_keyframe_requests = {};
            s.last_seen = now;
            request_keyframe(ctx, s, now);
            return true;
        }
        if (!s.live || s.desc != desc) {
            rtp::session_message m;
            m.type = rtp::session_type::publish;
            m.stream = desc;
            s.pulled = true;
            publish(ctx, s, m, upstream);
        }
        s.last_seen = now;
        return true;
    }
    /// Ends a pulled stream here (its subscribers wait, as for a publisher gone).
    void drop(const std::string& name) {
        auto it = streams_.find(name);
        if (it != streams_.end() && it->second.live && it->second.pulled) unpublish(it->second);
    }
    /// Subscribers of `name` here (0 when there is no such stream).
    std::size_t subscriber_count(const std::string& name) const {
        auto it = streams_.find(name);
        return it == streams_.end() ? 0 : it->second.subscribers.size();
    }
    /// Calls f(const stream&) for every stream (live or awaited).
    template <class F>
    void for_each_stream(F&& f) const {
        for (const auto& [name, st] : streams_) f(st);
    }

    const relay_stats& stats() const noexcept { return stats_; }
    /// What all streams and their subscribers take (see sfu_memory). Walks every stream and
    /// cache: for diagnostics, not for every packet.
    sfu_memory memory() const {
        sfu_memory m;
        for (const auto& [name, st] : streams_) add_memory(m, name, st);
        return m;
    }
    /// The same for one stream (all zero when there is no such stream).
    sfu_memory memory(const std::string& name) const {
        sfu_memory m;
        if (auto it = streams_.find(name); it != streams_.end()) add_memory(m, it->first, it->second);
        return m;
    }
    const stream* find(const std::string& name) const {
        auto it = streams_.find(name);
        return it == streams_.end() ? nullptr : &it->second;
    }
    std::size_t stream_count() const noexcept { return streams_.size(); }

private:
    /// Heap bytes a string owns (none while it fits its inline buffer: an empty string's
    /// capacity).
    static std::size_t heap_bytes(const std::string& str) noexcept {
        return str.capacity() > std::string().capacity() ? str.capacity() + 1 : 0;
    }
    /// Heap bytes a member owns: its memory_bytes() less the object, counted with its owner.
    template <class T>
    static std::size_t heap_bytes(const T& member) noexcept {
        return member.memory_bytes() - sizeof(T);
    }
    static std::size_t subscriber_bytes(const subscriber& sub) noexcept {
        return sizeof(subscriber) + heap_bytes(sub.leg) + (sub.selector ? sub.selector->memory_bytes() : 0) + heap_bytes(sub.ticket) +
               (sub.fec ? sub.fec->memory_bytes() : 0);
    }
    static void add_memory(sfu_memory& m, const std::string& name, const stream& s) noexcept {
        std::size_t n = sizeof(std::string) + heap_bytes(name) + sizeof(stream);
        n += heap_bytes(s.desc.name) + heap_bytes(s.desc.video_codec) + heap_bytes(s.desc.audio_codec);
        n += (s.subscribers.capacity() - s.subscribers.size()) * sizeof(subscriber);
        n += heap_bytes(s.video_cache) + heap_bytes(s.upstream) + heap_bytes(s.audio_cache) + heap_bytes(s.audio_upstream);
        n += heap_bytes(s.reception) + heap_bytes(s.transport_feedback);
        if (s.fec_in) n += s.fec_in->memory_bytes();
        if (s.fec_out) n += s.fec_out->memory_bytes();
        std::size_t held = s.video_cache.held() + s.audio_cache.held();
        for (const auto& l : s.lower) {
            if (!l) continue;
            n += sizeof(stream::lower_state) + heap_bytes(l->cache) + heap_bytes(l->upstream);
            held += l->cache.held();
        }
        ++m.streams;
        m.stream_bytes += n;
        m.subscribers += s.subscribers.size();
        for (const auto& sub : s.subscribers) m.subscriber_bytes += subscriber_bytes(sub);
        m.cached_packets += held;
        m.cached_packet_bytes += held * sizeof(onair::detail::packet_block);
    }

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
        if (!distinct_ssrcs(d) || claimed_by_other(m.stream, s)) {
            ++stats_.refused_sessions;
            return reply(ctx, from, rtp::session_status::invalid, m.stream);
        }
        s.pulled = false;
        if (!s.live || s.desc != m.stream) publish(ctx, s, m, from);
        s.last_seen = now;
        reply(ctx, from, rtp::session_status::ok, s.desc);
    }

    /// Makes `s` live as `m` describes it, published from `from`.
    template <class Ctx>
    void publish(Ctx& ctx, stream& s, const rtp::session_message& m, const endpoint& from) {
        {
            unindex(s);
            s.desc = m.stream;
            s.format = rtp::video_format_of(s.desc.video_codec);
            s.publisher = from;
            s.live = true;
            for (std::uint32_t ssrc : ssrcs_of(s.desc))
                if (ssrc) by_ssrc_[ssrc] = &s;
            s.video_cache.clear();
            s.audio_cache.clear();
            s.upstream.reset();
            s.audio_upstream.reset();
            s.reception = {};
            s.upstream_loss.reset();
            if (s.desc.video_ssrc) s.reception.add_stream(s.desc.video_ssrc, 90'000);
            if (s.desc.audio_ssrc) s.reception.add_stream(s.desc.audio_ssrc, 48'000);
            setup_fec(s);
            s.layers.reset();
            s.audio_rate.reset();
            for (std::size_t i = 0; i < s.lower.size(); ++i)
                s.lower[i] = i + 1 < s.desc.video_encodings() ? std::make_unique<stream::lower_state>() : nullptr;
            s.last_keyframe_requests = {};
            for (auto& sub : s.subscribers) {
                sub.waiting_keyframe = !sub.relay_leg;
                attach_selector(s, sub);
                if (!sub.fixed) reply(ctx, sub.video_to, rtp::session_status::ok, s.desc);
            }
            if (cfg_.on_stream_live) cfg_.on_stream_live(s.desc);
        }
    }

    template <class Ctx>
    void on_play(Ctx& ctx, const rtp::session_message& m, const endpoint& from, clock::time_point now) {
        auto& s = streams_[m.stream.name];
        s.desc.name = m.stream.name;
        auto it = std::find_if(s.subscribers.begin(), s.subscribers.end(),
                               [&](const subscriber& sub) { return !sub.fixed && sub.video_to == from; });
        if (it == s.subscribers.end()) {
            s.subscribers.push_back(subscriber{from, from, false, !m.relay_leg, now, 0, 0, {}, downlink(cfg_.downlink), 0, nullptr, false});
            auto& sub = s.subscribers.back();
            sub.ticket = m.ticket;
            sub.relay_leg = m.relay_leg;
            if (s.live) attach_selector(s, sub);
            if (s.live && !sub.relay_leg) request_keyframe(ctx, s, now);
        } else {
            it->last_seen = now;
        }
        reply(ctx, from, s.live ? rtp::session_status::ok : rtp::session_status::waiting, s.desc);
    }

    bool ticketed(const rtp::session_message& m) const {
        if (m.ticket.empty()) return false;
        auto it = tickets_.find(m.stream.name);
        if (it == tickets_.end()) return false;
        if (m.type == rtp::session_type::publish) return it->second.publish == m.ticket;
        return it->second.play.contains(m.ticket);
    }

    void on_leave(const rtp::session_message& m, const endpoint& from) {
        auto it = streams_.find(m.stream.name);
        if (it == streams_.end()) return;
        stream& s = it->second;
        if (s.live && s.publisher == from) unpublish(s);
        if (remove_subscribers(s, [&](const subscriber& sub) { return !sub.fixed && sub.video_to == from; }))
            refresh_protection(s);
    }

    /// Removes the subscribers `pred` picks; true when there were any. The list gives its
    /// storage back once three quarters of it are unused (a crowd that left).
    template <class Pred>
    static bool remove_subscribers(stream& s, Pred&& pred) {
        if (std::erase_if(s.subscribers, pred) == 0) return false;
        if (s.subscribers.size() <= s.subscribers.capacity() / 4) s.subscribers.shrink_to_fit();
        return true;
    }

    /// Sends an accepted media packet of `s` to every subscriber that can use it.
    template <class Ctx>
    void forward(Ctx& ctx, stream& s, const rtp::packet_view& p) {
        const int spatial = s.spatial_of(p.ssrc);
        if (spatial >= 0 && !s.top(spatial)) return forward_lower(ctx, s, p, spatial);
        const bool video = p.ssrc == s.desc.video_ssrc;
        const media_kind kind = video ? media_kind::video : media_kind::audio;
        const bool key_start = video && rtp::starts_keyframe(s.format, p.payload);
        if (key_start) {
            s.last_keyframe = s.last_seen;
            s.key_timestamp = p.timestamp;
        }
        layered_packet lp;
        const std::size_t tseq_offset = rtp::transport_sequence_offset(p); // once for every subscriber
        if (video) {
            lp = layered_packet_of(s, p, spatial);
            // One encoding: its spatial layers (VP9 SIDs) are what is metered and chosen from.
            s.layers.add(s.desc.video_encodings() > 1 ? lp.info.spatial : lp.info.svc_layer, lp.info.temporal,
                         p.whole.size(), s.last_seen);
        } else {
            s.audio_rate.add(0, 0, p.whole.size(), s.last_seen);
        }
        for (auto& sub : s.subscribers) {
            if (video && sub.selector) {
                if (lp.ok) send_layered(ctx, s, sub, p, lp);
                else ++stats_.layer_unparsed; // no descriptor to renumber: not for a selecting leg
                sub.waiting_keyframe = !sub.selector->started();
                continue;
            }
            if (video) {
                if (sub.waiting_keyframe) {
                    if (!key_start) continue;
                    sub.waiting_keyframe = false;
                }
                send_to(ctx, sub, sub.video_to, p.whole, tseq_offset, s.last_seen);
            } else {
                if (sub.fixed && s.desc.audio_red_pt && p.payload_type == s.desc.audio_red_pt) {
                    // A plain-RTP target's SDP announces Opus alone: it gets RED's primary.
                    if (!send_primary(ctx, sub.audio_to, s.desc, p)) continue;
                } else {
                    send_to(ctx, sub, sub.audio_to, p.whole, tseq_offset, s.last_seen);
                }
            }
            ++stats_.rtp_forwarded;
            stats_.bytes_forwarded += p.whole.size();
        }
        if (video && s.fec_out) protect(ctx, s, p.sequence);
        // The packet sink (recorders, CDN egress) after the subscribers: its work never
        // delays forwarding.
        ctx.deliver(s.desc, kind, p);
    }

    /// A video packet's layer and where its descriptor's renumbered fields are.
    struct layered_packet {
        bool ok = false;
        layer_info info;
        descriptor_layout layout;
        std::size_t tseq_offset = 0;
    };
    static layered_packet layered_packet_of(const stream& s, const rtp::packet_view& p, int spatial) noexcept {
        layered_packet lp;
        const auto sp = static_cast<std::uint8_t>(std::max(spatial, 0));
        if (s.format == rtp::video_format::vp8) {
            rtp::vp8_descriptor d;
            if (rtp::parse_vp8_descriptor(p.payload, d)) return lp;
            lp.info = layer_info_of(sp, d, p.payload);
            lp.layout = layout_of(d);
        } else if (s.format == rtp::video_format::vp9) {
            rtp::vp9_descriptor d;
            if (rtp::parse_vp9_descriptor(p.payload, d)) return lp;
            lp.info = layer_info_of(sp, d);
            lp.layout = layout_of(d);
        } else {
            return lp;
        }
        lp.ok = true;
        lp.tseq_offset = rtp::transport_sequence_offset(p);
        return lp;
    }

    /// Selecting subscribers get VP8/VP9 video through a layer_selector (not fixed targets:
    /// their receivers expect the publisher's stream as it is).
    void attach_selector(const stream& s, subscriber& sub) const {
        sub.rewritten = false;
        sub.selector.reset();
        sub.fec.reset();
        if (sub.fixed || sub.relay_leg || !cfg_.select_layers || !s.desc.video_ssrc) return;
        if (s.format != rtp::video_format::vp8 && s.format != rtp::video_format::vp9) return;
        sub.selector = std::make_unique<layer_selector>(s.desc.video_ssrc, static_cast<std::uint8_t>(s.desc.video_encodings()),
                                                        static_cast<std::uint8_t>(max_temporal_layers));
        sub.selector->set_target(0, 0); // raised as soon as the leg's estimate allows
    }

    /// One video packet for a selecting subscriber: dropped, a fill, or forwarded under this
    /// leg's numbers (the publisher's bytes as long as nothing was dropped yet).
    template <class Ctx>
    void send_layered(Ctx& ctx, stream& s, subscriber& sub, const rtp::packet_view& p, const layered_packet& lp) {
        layer_selector& sel = *sub.selector;
        const bool started = sel.started();
        const auto now = s.last_seen;
        const auto now_us = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
        const layer_decision d = sel.on_packet(p, lp.info, now_us);
        const auto send2 = [&](rtp::bytes_view head, rtp::bytes_view tail) { ctx.send(sub.video_to, head, tail); };
        switch (d.action) {
        case layer_action::drop:
            // A packet of the forwarded encoding withheld: from now on the numbers differ.
            if (started && lp.info.spatial == sel.spatial()) sub.rewritten = true;
            ++stats_.layer_dropped;
            return;
        case layer_action::fill: {
            sub.rewritten = true;
            std::array<std::uint8_t, max_rewritten_head> buf;
            if (const std::size_t n = write_fill_packet(p, s.desc.video_ssrc, d, buf)) {
                sub.leg.send_packet(send2, rtp::bytes_view(buf.data(), n), now);
                ++stats_.layer_fills;
                protect_leg(ctx, sub, rtp::bytes_view(buf.data(), n), {}, false);
            }
            return;
        }
        case layer_action::forward: break;
        }
        if (p.ssrc != s.desc.video_ssrc || d.sequence != p.sequence || d.timestamp != p.timestamp || d.marker != p.marker ||
            (lp.info.has_picture_id && d.picture_id != lp.info.picture_id) ||
            (lp.info.has_tl0picidx && d.tl0picidx != lp.info.tl0picidx))
            sub.rewritten = true;
        ++stats_.rtp_forwarded;
        stats_.bytes_forwarded += p.whole.size();
        if (!sub.rewritten) return send_to(ctx, sub, sub.video_to, p.whole, lp.tseq_offset, now);
        std::array<std::uint8_t, max_rewritten_head> head;
        const std::size_t n = write_rewritten_prefix(p, lp.layout, s.desc.video_ssrc, d, head);
        if (n == 0) {
            ++stats_.layer_unparsed;
            return;
        }
        sub.leg.send(send2, std::span<std::uint8_t>(head.data(), n), p.whole.subspan(n), lp.tseq_offset, now);
        protect_leg(ctx, sub, rtp::bytes_view(head.data(), n), p.whole.subspan(n), p.timestamp == s.key_timestamp);
    }

    /// A renumbered leg's packet, as sent (`head` then `tail`), into the leg's own FEC; its
    /// repair packets go to this subscriber only. Fills count: fixed layouts need every number.
    template <class Ctx>
    void protect_leg(Ctx& ctx, subscriber& sub, rtp::bytes_view head, rtp::bytes_view tail, bool keyframe) {
        if (!sub.fec) return;
        std::array<std::uint8_t, qos::detail::fec_max_media> whole;
        if (head.size() + tail.size() > whole.size()) return; // the encoder would skip it too
        std::memcpy(whole.data(), head.data(), head.size());
        if (!tail.empty()) std::memcpy(whole.data() + head.size(), tail.data(), tail.size());
        (void)sub.fec->add(rtp::bytes_view(whole.data(), head.size() + tail.size()), keyframe, [&](rtp::bytes_view repair) {
            send_to(ctx, sub, sub.video_to, repair);
            ++stats_.fec_sent;
            ++stats_.leg_fec_sent;
            stats_.fec_bytes += repair.size();
        });
    }

    /// A packet of a lower simulcast encoding: for selecting subscribers only (everyone
    /// else gets the top encoding, the stream as described).
    template <class Ctx>
    void forward_lower(Ctx& ctx, stream& s, const rtp::packet_view& p, int spatial) {
        const layered_packet lp = layered_packet_of(s, p, spatial);
        s.layers.add(lp.info.spatial, lp.info.temporal, p.whole.size(), s.last_seen);
        const std::size_t tseq_offset = rtp::transport_sequence_offset(p);
        for (auto& sub : s.subscribers) {
            if (sub.relay_leg) { // every encoding, as published
                send_to(ctx, sub, sub.video_to, p.whole, tseq_offset, s.last_seen);
                ++stats_.rtp_forwarded;
                stats_.bytes_forwarded += p.whole.size();
                continue;
            }
            if (!sub.selector) continue;
            if (!lp.ok) {
                ++stats_.layer_unparsed;
                continue;
            }
            send_layered(ctx, s, sub, p, lp);
            sub.waiting_keyframe = !sub.selector->started();
        }
    }

    /// Each selecting subscriber's layers from its leg's estimate: of the encodings and
    /// their temporal layers, ordered from the lowest encoding's base layer up, the highest
    /// whose rate (with audio) fits; a higher one than the current only with a margin, a
    /// lower one at once. A stream of one encoding with spatial layers (VP9 SVC) is chosen
    /// from the same way, its spatial layers in place of encodings, each costing its rate
    /// and that of every layer below it (which it is forwarded with).
    void choose_layers(stream& s, clock::time_point now) {
        const bool svc = s.desc.video_encodings() == 1 && s.layers.temporal_layers(1) > 0;
        std::size_t encodings = s.desc.video_encodings();
        if (svc) encodings = s.layers.temporal_layers(2) > 0 ? 3 : 2;
        std::array<std::array<std::int64_t, max_temporal_layers>, max_spatial_layers> cost{};
        std::array<std::size_t, max_spatial_layers> layers{};
        bool any = false;
        for (std::size_t e = 0; e < encodings; ++e) {
            layers[e] = s.layers.temporal_layers(svc ? 0 : e);
            for (std::size_t t = 0; t < layers[e]; ++t)
                cost[e][t] = s.layers.rate_bps(e, t, now) + (svc && e > 0 ? cost[e - 1][t] : 0);
            any = any || (layers[e] > 0 && cost[e][0] > 0);
        }
        if (!any) return;
        const std::int64_t audio = s.audio_rate.rate_bps(0, 0, now);
        for (auto& sub : s.subscribers) {
            if (!sub.selector) continue;
            const double budget = static_cast<double>(std::max<std::int64_t>(sub.leg.target_bps() - audio, 0));
            const std::size_t cur_e = svc ? std::min<std::size_t>(sub.selector->target_svc_layer(), encodings - 1)
                                          : sub.selector->target_spatial();
            const std::size_t cur_t = sub.selector->target_temporal();
            // The lowest encoding's base layer is the floor, whatever the budget.
            std::size_t pick_e = 0, pick_t = 0;
            bool found = false;
            for (std::size_t e = 0; e < encodings; ++e) {
                for (std::size_t t = 0; t < layers[e]; ++t) {
                    if (cost[e][t] <= 0) continue; // not being sent (an encoding stopped)
                    const bool higher = e > cur_e || (e == cur_e && t > cur_t);
                    const double need = static_cast<double>(cost[e][t]) / (higher ? cfg_.layer_up_margin : 1.0);
                    if (!found || need <= budget) {
                        pick_e = e;
                        pick_t = t;
                        found = true;
                    }
                }
            }
            const bool up = pick_e > cur_e || (pick_e == cur_e && pick_t > cur_t);
            if (pick_e != cur_e || pick_t != cur_t) {
                if (svc) {
                    sub.selector->set_target(0, static_cast<std::uint8_t>(pick_t));
                    sub.selector->set_svc_target(static_cast<std::uint8_t>(pick_e));
                } else {
                    sub.selector->set_target(static_cast<std::uint8_t>(pick_e), static_cast<std::uint8_t>(pick_t));
                }
                ++stats_.layer_changes;
            }
            // Simulcast: every spatial layer of the encoding chosen (none is sent).
            if (s.desc.video_encodings() > 1 && sub.selector->target_svc_layer() == 0)
                sub.selector->set_svc_target(max_spatial_layers);
            probe_next_layer(sub, cost, layers, encodings, pick_e, pick_t, audio, up, now);
        }
    }

    /// When the layer after (pick_e, pick_t) in choose_layers' order does not fit the leg's
    /// estimate, a probe at what it needs (with margin and audio), spaced as
    /// layer_probe_interval says. A step up restarts the spacing.
    void probe_next_layer(subscriber& sub, const std::array<std::array<std::int64_t, max_temporal_layers>, max_spatial_layers>& cost,
                          const std::array<std::size_t, max_spatial_layers>& layers, std::size_t encodings, std::size_t pick_e,
                          std::size_t pick_t, std::int64_t audio, bool up, clock::time_point now) {
        if (sub.next_layer_probe == clock::time_point{} || up) {
            sub.next_layer_probe = now + cfg_.layer_probe_interval;
            sub.layer_probe_wait = cfg_.layer_probe_interval;
            return;
        }
        if (now < sub.next_layer_probe) return;
        std::int64_t next = 0;
        for (std::size_t e = pick_e; e < encodings && next == 0; ++e)
            for (std::size_t t = e == pick_e ? pick_t + 1 : 0; t < layers[e] && next == 0; ++t) next = cost[e][t];
        if (next <= 0) return; // on the top layer
        const auto need = static_cast<std::int64_t>(static_cast<double>(next) / cfg_.layer_up_margin) + audio;
        if (sub.leg.target_bps() >= need) return; // it fits: choose_layers takes it
        // Far above the estimate: a probe that high would overrun a link the estimate is
        // right about (a 6 KB burst is 160 ms of a 300 kbps link) and freeze its video; the
        // estimate climbs towards it first.
        if (need > sub.leg.target_bps() * 3 / 2) return;
        if (!sub.leg.request_probe(need + need / 10)) return; // another probe is on its way
        ++stats_.layer_probes;
        sub.next_layer_probe = now + sub.layer_probe_wait;
        sub.layer_probe_wait = std::min(sub.layer_probe_wait * 2, cfg_.layer_probe_max_interval);
    }

    /// Sends a packet on a subscriber's leg: numbered and measured by the leg's estimator
    /// (plain-RTP targets get it as it is).
    template <class Ctx>
    static void send_to(Ctx& ctx, subscriber& sub, const endpoint& to, rtp::bytes_view packet) {
        if (sub.fixed) return ctx.send(to, packet);
        sub.leg.send_packet([&](rtp::bytes_view head, rtp::bytes_view tail) { ctx.send(to, head, tail); }, packet, ctx.now());
    }
    /// The same for a forwarded packet whose number's place is known.
    template <class Ctx>
    static void send_to(Ctx& ctx, subscriber& sub, const endpoint& to, rtp::bytes_view packet, std::size_t tseq_offset,
                        clock::time_point now) {
        if (sub.fixed) return ctx.send(to, packet);
        sub.leg.send_packet([&](rtp::bytes_view head, rtp::bytes_view tail) { ctx.send(to, head, tail); }, packet, tseq_offset, now);
    }

    /// A subscriber's transport-wide feedback: its leg's estimator takes it (or counts why not).
    template <class Ctx>
    void on_subscriber_feedback(Ctx& ctx, const rtp::rtcp::feedback& f, const endpoint& from) {
        auto it = by_ssrc_.find(f.media_ssrc);
        if (it == by_ssrc_.end()) return;
        stream& s = *it->second;
        auto sub = std::find_if(s.subscribers.begin(), s.subscribers.end(),
                                [&](const subscriber& x) { return !x.fixed && x.video_to == from; });
        if (sub == s.subscribers.end()) return;
        ++stats_.subscriber_feedback;
        if (sub->leg.on_feedback(f.fci, ctx.now())) ++sub->transport_feedback;
    }

    /// Each subscriber leg's probes: padding-only packets on the stream's RTX SSRC, in the
    /// leg's RTX numbering.
    template <class Ctx>
    void probe_legs(Ctx& ctx, stream& s, clock::time_point now) {
        if (!s.desc.video_rtx_ssrc) return; // padding needs a stream of its own
        for (auto& sub : s.subscribers) {
            if (sub.fixed || sub.relay_leg || sub.waiting_keyframe) continue;
            sub.leg.process(now, [&](std::size_t want, std::uint16_t tseq) -> std::size_t {
                rtp::header h;
                h.payload_type = s.desc.video_rtx_pt;
                h.sequence = sub.rtx_sequence++;
                h.timestamp = s.key_timestamp;
                h.ssrc = s.desc.video_rtx_ssrc;
                h.transport_sequence = tseq;
                std::array<std::uint8_t, max_datagram_size> buf;
                const std::size_t n = rtp::write_header(h, buf);
                if (n == 0) return 0;
                const std::size_t pad = std::clamp<std::size_t>(want > n ? want - n : 1, 1, 255);
                buf[0] = static_cast<std::uint8_t>(buf[0] | 0x20);
                std::memset(buf.data() + n, 0, pad - 1);
                buf[n + pad - 1] = static_cast<std::uint8_t>(pad);
                ctx.send(sub.video_to, rtp::bytes_view(buf.data(), n + pad));
                ++stats_.padding_sent;
                return n + pad;
            });
        }
    }

    /// The packet with its RED payload replaced by the primary block (payload type: the
    /// audio codec's), for receivers that do not speak RFC 2198. False when it has none.
    template <class Ctx>
    bool send_primary(Ctx& ctx, const endpoint& to, const rtp::stream_description& d, const rtp::packet_view& p) {
        qos::red_payload red;
        if (qos::parse_red(p.payload, p.timestamp, red) != qos::red_status::ok || red.primary.payload_type != d.audio_pt)
            return false; // counted once, in rebuild_from_red
        const std::size_t header = static_cast<std::size_t>(p.payload.data() - p.whole.data());
        std::array<std::uint8_t, max_datagram_size> buf;
        if (header + red.primary.data.size() > buf.size()) return false;
        std::memcpy(buf.data(), p.whole.data(), header);
        buf[1] = static_cast<std::uint8_t>((buf[1] & 0x80) | (d.audio_pt & 0x7f));
        buf[0] &= static_cast<std::uint8_t>(~0x20u); // no padding: the payload ends with the primary
        std::memcpy(buf.data() + header, red.primary.data.data(), red.primary.data.size());
        ctx.send(to, rtp::bytes_view(buf.data(), header + red.primary.data.size()));
        return true;
    }

    /// Protects forwarded video with the stream's FlexFEC encoder in sequence order: the
    /// publisher leg reorders packets, and a group built in arrival order would leave out
    /// every packet that overtook another. Packets are taken from the cache as soon as the
    /// next one is there; a hole is waited for at most fec_reorder_wait (then left to NACK),
    /// and a packet behind the encoder (a late repair of the publisher leg) too. Media is
    /// never held back: only the repair packets wait. They go to every subscriber receiving
    /// video.
    template <class Ctx>
    void protect(Ctx& ctx, stream& s, std::uint16_t seq) {
        if (!s.fec_started) {
            s.fec_started = true;
            s.fec_next = s.fec_high = seq;
        }
        const auto ahead = static_cast<std::int16_t>(seq - s.fec_next);
        if (ahead < -fec_restart_span || ahead > fec_restart_span) { // the publisher renumbered
            s.fec_next = s.fec_high = seq;
            s.fec_blocked = {};
        } else if (ahead < 0) {
            return; // behind: NACK repairs it
        }
        if (static_cast<std::int16_t>(seq - s.fec_high) > 0) s.fec_high = seq;
        feed_fec(ctx, s, ctx.now());
    }
    template <class Ctx>
    void feed_fec(Ctx& ctx, stream& s, clock::time_point now) {
        if (!s.fec_out || !s.fec_started) return;
        while (static_cast<std::int16_t>(s.fec_high - s.fec_next) >= 0) {
            const packet_ref* pkt = s.video_cache.find(s.fec_next);
            if (!pkt) {
                if (s.fec_blocked == clock::time_point{}) s.fec_blocked = now;
                if (now - s.fec_blocked < cfg_.fec_reorder_wait) return;
                ++s.fec_next; // lost on the publisher leg, or very late; the rest of a burst
                continue;     // is given up with it (the wait has expired for all of it)
            }
            s.fec_blocked = {};
            ++s.fec_next;
            rtp::packet_view p;
            if (rtp::parse(pkt->bytes(), p)) continue;
            (void)s.fec_out->add(p.whole, p.timestamp == s.key_timestamp, [&](rtp::bytes_view repair) {
                for (auto& sub : s.subscribers) {
                    if (sub.fixed || sub.waiting_keyframe || sub.rewritten) continue;
                    send_to(ctx, sub, sub.video_to, repair);
                    ++stats_.fec_sent;
                    stats_.fec_bytes += repair.size();
                }
            });
        }
        s.fec_blocked = {};
    }

    /// A FlexFEC packet from the publisher: may rebuild video packets the publisher leg
    /// lost, which then go on like late originals.
    template <class Ctx>
    void on_upstream_fec(Ctx& ctx, stream& s, const rtp::packet_view& p) {
        if (!s.fec_in) return;
        const auto before = s.fec_in->stats().malformed;
        s.fec_in->add_fec(p.whole, [&](rtp::bytes_view r) { hold_recovered(ctx, r); });
        if (s.fec_in->stats().malformed != before) ++stats_.malformed_fec;
        forward_recovered(ctx, s);
    }

    /// The decoder hands out packets inside its own calls: they are copied aside and
    /// forwarded once it returns.
    template <class Ctx>
    void hold_recovered(Ctx& ctx, rtp::bytes_view r) {
        if (recovered_count_ == recovered_.size()) return; // bounded by the repair packets held
        packet_ref pkt = ctx.acquire();
        if (r.size() > pkt.capacity().size()) return;
        std::memcpy(pkt.capacity().data(), r.data(), r.size());
        pkt.resize(r.size());
        recovered_[recovered_count_++] = std::move(pkt);
    }
    template <class Ctx>
    void forward_recovered(Ctx& ctx, stream& s) {
        for (std::size_t i = 0; i < recovered_count_; ++i) {
            packet_ref pkt = std::move(recovered_[i]);
            rtp::packet_view p;
            if (rtp::parse(pkt.bytes(), p) || p.ssrc != s.desc.video_ssrc) continue;
            if (!s.video_cache.store(p.sequence, pkt, s.last_seen)) continue; // already here
            ++stats_.fec_recovered;
            s.upstream.on_packet(p.sequence, s.last_seen);
            forward(ctx, s, p);
        }
        recovered_count_ = 0;
    }

    void setup_fec(stream& s) {
        s.fec_out.reset();
        s.fec_in.reset();
        s.fec_started = false;
        s.fec_blocked = {};
        if (!s.desc.video_fec_ssrc || !s.desc.video_ssrc) return;
        qos::flexfec_decoder::config dc;
        dc.media_ssrc = s.desc.video_ssrc;
        dc.fec_ssrc = s.desc.video_fec_ssrc;
        s.fec_in = std::make_unique<qos::flexfec_decoder>(dc);
        s.fec_out = make_fec_encoder(s, qos::protection_for_loss(0));
    }
    /// An encoder of the stream's FEC SSRC with its own random first number; each
    /// subscriber leg numbers its repair packets (transport-wide) as it sends them.
    std::unique_ptr<qos::flexfec_encoder> make_fec_encoder(const stream& s, const qos::fec_protection& protection) {
        qos::flexfec_encoder::config ec;
        ec.media_ssrc = s.desc.video_ssrc;
        ec.fec_ssrc = s.desc.video_fec_ssrc;
        ec.payload_type = s.desc.video_fec_pt;
        ec.first_sequence = fec_sequence_seed_ = static_cast<std::uint16_t>(fec_sequence_seed_ * 75 + 74);
        ec.protection = protection;
        ec.transport_sequence = true;
        return std::make_unique<qos::flexfec_encoder>(ec);
    }

    /// A subscriber's report block on a stream's video: the stream's protection follows
    /// the most lossy subscriber.
    void on_subscriber_report(const rtp::rtcp::report_block& b, const endpoint& from) {
        auto it = by_ssrc_.find(b.ssrc);
        if (it == by_ssrc_.end() || b.ssrc != it->second->desc.video_ssrc) return;
        stream& s = *it->second;
        auto sub = std::find_if(s.subscribers.begin(), s.subscribers.end(),
                                [&](const subscriber& x) { return !x.fixed && x.video_to == from; });
        if (sub == s.subscribers.end()) return;
        sub->loss.on_report(b.fraction_lost);
        refresh_protection(s);
        protect_renumbered(s, *sub);
    }
    /// The stream's FEC protects the legs that get the publisher's numbers; it follows the
    /// most lossy of them.
    static void refresh_protection(stream& s) {
        if (!s.fec_out) return;
        double worst = 0;
        for (const auto& x : s.subscribers)
            if (!x.rewritten) worst = std::max(worst, x.loss.value());
        const auto p = qos::protection_for_loss(worst);
        if (p != s.fec_out->protection()) s.fec_out->set_protection(p);
    }
    /// A renumbered leg's own FEC follows its loss; made at the first report that asks for it.
    void protect_renumbered(const stream& s, subscriber& sub) {
        if (!sub.rewritten || !s.desc.video_fec_ssrc || !s.desc.video_ssrc) return;
        const auto p = qos::protection_for_loss(sub.loss.value());
        if (!sub.fec) {
            if (!p.delta.enabled() && !p.key.enabled()) return;
            sub.fec = make_fec_encoder(s, p);
        } else if (p != sub.fec->protection()) {
            sub.fec->set_protection(p);
        }
    }

    /// A receiver report on the publisher leg: loss before repair, jitter, LSR/DLSR.
    template <class Ctx>
    void report_upstream(Ctx& ctx, stream& s, clock::time_point now) {
        s.last_report = now;
        std::array<rtp::rtcp::report_block, 2> blocks;
        const std::size_t n = s.reception.report_blocks(now, blocks);
        if (n == 0) return;
        for (std::size_t i = 0; i < n; ++i)
            if (blocks[i].ssrc == s.desc.video_ssrc) s.upstream_loss.on_report(blocks[i].fraction_lost);
        rtp::rtcp::receiver_report rr;
        rr.ssrc = relay_ssrc;
        rr.blocks = std::span(blocks.data(), n);
        std::array<std::uint8_t, 128> buf;
        if (const std::size_t len = rtp::rtcp::write_receiver_report(rr, buf)) {
            ctx.send(s.publisher, rtp::bytes_view(buf.data(), len));
            ++stats_.receiver_reports;
        }
    }

    /// A retransmission from the host for a hole in the host -> relay leg: restored to the
    /// original packet, cached, and forwarded like any media packet (late).
    template <class Ctx>
    void on_upstream_rtx(Ctx& ctx, stream& s, const rtp::packet_view& rtx, bool video, int lower = -1) {
        packet_ref restored = ctx.acquire();
        std::size_t n = 0;
        const std::uint32_t media_ssrc = lower >= 0 ? s.desc.video_lower_ssrcs[static_cast<std::size_t>(lower)]
                                         : video    ? s.desc.video_ssrc
                                                    : s.desc.audio_ssrc;
        if (qos::restore_rtx(rtx, media_ssrc, video ? s.desc.video_pt : audio_original_pt(s.desc), restored.capacity(), n)) {
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
        auto& holes = lower >= 0 ? s.lower[static_cast<std::size_t>(lower)]->upstream : video ? s.upstream : s.audio_upstream;
        auto& cache = lower >= 0 ? s.lower[static_cast<std::size_t>(lower)]->cache : video ? s.video_cache : s.audio_cache;
        if (cache.contains(p.sequence)) {
            ++stats_.duplicates; // a second copy, or the hole was filled meanwhile (FEC, RED, reordering)
            return;
        }
        if (!holes.is_missing(p.sequence)) {
            ++stats_.unsolicited_rtx;
            return;
        }
        if (!cache.store(p.sequence, restored, s.last_seen)) {
            ++stats_.duplicates;
            return;
        }
        ++stats_.upstream_recovered;
        holes.on_packet(p.sequence, s.last_seen, true);
        if (video && lower < 0 && s.fec_in) {
            s.fec_in->add_media(p.whole, [&](rtp::bytes_view r) { hold_recovered(ctx, r); });
            forward(ctx, s, p);
            return forward_recovered(ctx, s);
        }
        forward(ctx, s, p);
    }

    /// The redundant blocks of a RED packet are the audio packets one and two sequence
    /// numbers back: one the publisher leg lost is rebuilt (a RED packet with that block as
    /// its primary, capture time moved back by the timestamp offset) and forwarded, so
    /// subscribers see only the loss of their own leg.
    template <class Ctx>
    void rebuild_from_red(Ctx& ctx, stream& s, const rtp::packet_view& p) {
        qos::red_payload red;
        if (qos::parse_red(p.payload, p.timestamp, red) != qos::red_status::ok) {
            ++stats_.malformed_red;
            return;
        }
        const auto n = red.redundant_count;
        for (std::size_t i = 0; i < n; ++i) {
            const auto& b = red.redundant_blocks[i];
            const auto seq = static_cast<std::uint16_t>(p.sequence - (n - i));
            if (b.payload_type != s.desc.audio_pt || b.data.empty() || !s.audio_upstream.is_missing(seq)) continue;
            rtp::header h;
            h.payload_type = s.desc.audio_red_pt;
            h.sequence = seq;
            h.timestamp = b.timestamp;
            h.ssrc = p.ssrc;
            if (const auto ntp = p.abs_capture_time()) {
                const std::uint64_t back = (std::uint64_t{p.timestamp - b.timestamp} << 32) / 48'000;
                h.abs_capture_time = *ntp - back;
            }
            packet_ref pkt = ctx.acquire();
            auto buf = pkt.capacity();
            const std::size_t hn = rtp::write_header(h, buf);
            if (hn == 0 || buf.size() - hn < b.data.size() + 1) continue;
            buf[hn] = b.payload_type & 0x7f; // RFC 2198: the primary block's one-byte header
            std::memcpy(buf.data() + hn + 1, b.data.data(), b.data.size());
            pkt.resize(hn + 1 + b.data.size());
            rtp::packet_view rebuilt;
            if (rtp::parse(pkt.bytes(), rebuilt)) continue;
            if (!s.audio_cache.store(seq, pkt, s.last_seen)) continue;
            s.audio_upstream.on_packet(seq, s.last_seen);
            ++stats_.red_rebuilt;
            forward(ctx, s, rebuilt);
        }
    }

    /// Audio RTX stands for the payload type every audio packet of the stream has.
    static std::uint8_t audio_original_pt(const rtp::stream_description& d) noexcept {
        return d.audio_red_pt ? d.audio_red_pt : d.audio_pt;
    }

    /// A subscriber's NACK: answered from the cache with RFC 4588 retransmissions on that
    /// leg. What the cache lacks is on its way from the host (the relay asked already).
    template <class Ctx>
    void on_nack(Ctx& ctx, const rtp::rtcp::nack& nack, const endpoint& from) {
        auto it = by_ssrc_.find(nack.media_ssrc);
        if (it == by_ssrc_.end()) return;
        stream& s = *it->second;
        auto sub = std::find_if(s.subscribers.begin(), s.subscribers.end(),
                                [&](const subscriber& x) { return !x.fixed && x.video_to == from; });
        if (const int spatial = s.spatial_of(nack.media_ssrc); spatial >= 0 && !s.top(spatial)) {
            // A lower encoding: only relay legs see those SSRCs.
            if (sub != s.subscribers.end() && sub->relay_leg) resend_lower(ctx, s, *sub, static_cast<std::size_t>(spatial), nack);
            return;
        }
        const bool video = nack.media_ssrc == s.desc.video_ssrc;
        if (!video && nack.media_ssrc != s.desc.audio_ssrc) return;
        const std::uint32_t rtx_ssrc = video ? s.desc.video_rtx_ssrc : s.desc.audio_rtx_ssrc;
        if (sub == s.subscribers.end() || rtx_ssrc == 0) return;
        const std::uint8_t rtx_pt = video ? s.desc.video_rtx_pt : s.desc.audio_rtx_pt;
        auto& cache = video ? s.video_cache : s.audio_cache;
        const auto now = ctx.now();
        nack.for_each([&](std::uint16_t seq) {
            ++stats_.nack_requests;
            // Resend suppression per subscriber (the cache is shared by all of them): a copy
            // of a NACK already answered is not answered again.
            if (sub->resent_within(video, seq, now, cfg_.nack_copy_interval)) {
                ++stats_.retransmissions_suppressed;
                return;
            }
            // A renumbered leg asks for its own numbers: the selector knows which packet each was.
            std::optional<forwarded_packet> sent;
            if (video && sub->rewritten && sub->selector) {
                sent = sub->selector->history(seq);
                if (!sent) return; // a fill, or nothing this leg was sent
            }
            auto* from_cache = &cache;
            if (sent && !s.top(sent->spatial)) {
                if (sent->spatial >= s.lower.size() || !s.lower[sent->spatial]) return;
                from_cache = &s.lower[sent->spatial]->cache;
            }
            packet_ref original = from_cache->take_for_resend(sent ? sent->sequence : seq, now, clock::duration::zero());
            if (!original) return;
            rtp::packet_view p;
            if (rtp::parse(original.bytes(), p)) return;
            std::array<std::uint8_t, max_datagram_size> renumbered;
            if (sent) {
                // The packet as this leg had it, then wrapped like any other.
                const layered_packet lp = layered_packet_of(s, p, sent->spatial);
                if (!lp.ok) return;
                const std::size_t head = write_rewritten_prefix(p, lp.layout, s.desc.video_ssrc, sent->decision, renumbered);
                if (head == 0 || p.whole.size() > renumbered.size()) return;
                std::memcpy(renumbered.data() + head, p.whole.data() + head, p.whole.size() - head);
                if (rtp::parse(rtp::bytes_view(renumbered.data(), p.whole.size()), p)) return;
            }
            std::array<std::uint8_t, max_datagram_size> buf;
            const std::size_t n =
                qos::write_rtx(p, rtx_ssrc, rtx_pt, video ? sub->rtx_sequence++ : sub->audio_rtx_sequence++, buf);
            if (n == 0) return;
            const int copies = sub->take_rtx_allowance(n, sub->loss.repair_copies(), now);
            if (copies <= 0) {
                ++stats_.retransmissions_limited;
                return;
            }
            sub->mark_resent(video, seq, now);
            for (int c = 0; c < copies; ++c) send_to(ctx, *sub, video ? sub->video_to : sub->audio_to, rtp::bytes_view(buf.data(), n));
            stats_.retransmissions += static_cast<std::uint64_t>(copies);
            stats_.retransmission_bytes += n * static_cast<std::uint64_t>(copies);
        });
    }

    /// A relay leg's NACK of a lower simulcast encoding: answered from that encoding's
    /// cache on its own RTX SSRC.
    template <class Ctx>
    void resend_lower(Ctx& ctx, stream& s, subscriber& sub, std::size_t spatial, const rtp::rtcp::nack& nack) {
        if (spatial >= s.lower.size() || !s.lower[spatial] || !s.desc.video_lower_rtx_ssrcs[spatial]) return;
        const auto now = ctx.now();
        nack.for_each([&](std::uint16_t seq) {
            ++stats_.nack_requests;
            packet_ref original = s.lower[spatial]->cache.take_for_resend(seq, now, clock::duration::zero());
            if (!original) return;
            rtp::packet_view p;
            if (rtp::parse(original.bytes(), p)) return;
            std::array<std::uint8_t, max_datagram_size> buf;
            const std::size_t n = qos::write_rtx(p, s.desc.video_lower_rtx_ssrcs[spatial], s.desc.video_rtx_pt,
                                                 sub.lower_rtx_sequence[spatial]++, buf);
            if (n == 0) return;
            send_to(ctx, sub, sub.video_to, rtp::bytes_view(buf.data(), n));
            ++stats_.retransmissions;
            stats_.retransmission_bytes += n;
        });
    }

    /// Requests the holes of the host -> relay leg.
    template <class Ctx>
    void request_upstream(Ctx& ctx, stream& s, qos::nack_generator& holes, std::uint32_t media_ssrc, clock::time_point now) {
        lost_.clear();
        holes.collect(now, holes.rtt_estimate(), lost_);
        if (!lost_.empty()) {
            std::array<std::uint8_t, 1200> buf;
            std::size_t done = 0;
            while (done < lost_.size()) { // at most ~250 items per NACK packet
                const std::size_t chunk = std::min<std::size_t>(lost_.size() - done, 250);
                const std::size_t n = rtp::rtcp::write_nack(relay_ssrc, media_ssrc,
                                                            std::span(lost_).subspan(done, chunk), buf);
                for (int c = 0; n && c < s.upstream_loss.repair_copies(); ++c) ctx.send(s.publisher, rtp::bytes_view(buf.data(), n));
                done += chunk;
            }
            stats_.upstream_nacks += lost_.size();
        }
        if (holes.take_keyframe_request() && &holes == &s.upstream) request_keyframe(ctx, s, now);
    }

    template <class Ctx>
    void on_pli(Ctx& ctx, std::uint32_t media_ssrc, const endpoint& from) {
        // A subscriber lost its picture: ask the publisher, rate-limited per stream.
        auto it = by_ssrc_.find(media_ssrc);
        if (it == by_ssrc_.end()) return;
        stream& s = *it->second;
        if (!is_subscriber(s, from)) return;
        // A relay leg names the encoding it needs a key frame of.
        if (const int spatial = s.spatial_of(media_ssrc); spatial >= 0 && !s.top(spatial))
            return request_keyframe(ctx, s, static_cast<std::size_t>(spatial), ctx.now());
        // A selecting subscriber decodes the encoding it is forwarded.
        for (const auto& sub : s.subscribers)
            if (!sub.fixed && sub.video_to == from && sub.selector && sub.selector->started())
                return request_keyframe(ctx, s, sub.selector->spatial(), ctx.now());
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
    /// A key frame of one encoding (simulcast), rate-limited per encoding.
    template <class Ctx>
    void request_keyframe(Ctx& ctx, stream& s, std::size_t spatial, clock::time_point now) {
        if (s.top(static_cast<int>(spatial))) return request_keyframe(ctx, s, now);
        if (!s.live || spatial >= max_spatial_layers) return;
        auto& last = s.last_keyframe_requests[spatial];
        if (last != clock::time_point{} && now - last < cfg_.keyframe_request_interval) {
            ++stats_.keyframe_requests_suppressed;
            return;
        }
        last = now;
        ++stats_.keyframe_requests;
        ctx.request_keyframe(s.publisher, s.ssrc_of_spatial(spatial));
    }
    /// The encodings selecting subscribers wait for (to start, or to switch to).
    template <class Ctx>
    void request_selected_keyframes(Ctx& ctx, stream& s, clock::time_point now) {
        std::array<bool, max_spatial_layers> wanted{};
        for (const auto& sub : s.subscribers)
            if (sub.selector)
                if (const auto e = sub.selector->wants_keyframe(); e && *e < wanted.size()) wanted[*e] = true;
        for (std::size_t e = 0; e < wanted.size(); ++e)
            if (wanted[e]) request_keyframe(ctx, s, e, now);
    }

    static bool is_subscriber(const stream& s, const endpoint& from) {
        return std::any_of(s.subscribers.begin(), s.subscribers.end(),
                           [&](const subscriber& sub) { return sub.video_to == from || sub.audio_to == from; });
    }
    static std::array<std::uint32_t, 9> ssrcs_of(const rtp::stream_description& d) noexcept {
        return {d.video_ssrc, d.audio_ssrc, d.video_rtx_ssrc, d.video_fec_ssrc, d.audio_rtx_ssrc,
                d.video_lower_ssrcs[0], d.video_lower_ssrcs[1], d.video_lower_rtx_ssrcs[0], d.video_lower_rtx_ssrcs[1]};
    }
    /// Every SSRC a stream announces is its own (0 = absent), and repair streams need the
    /// stream they repair.
    static bool distinct_ssrcs(const rtp::stream_description& d) noexcept {
        const auto all = ssrcs_of(d);
        for (std::size_t i = 0; i < all.size(); ++i)
            for (std::size_t j = i + 1; j < all.size(); ++j)
                if (all[i] && all[i] == all[j]) return false;
        if ((d.video_rtx_ssrc || d.video_fec_ssrc) && !d.video_ssrc) return false;
        if (d.audio_rtx_ssrc && !d.audio_ssrc) return false;
        // Lower encodings need the top one, lowest first; their RTX needs them.
        if ((d.video_lower_ssrcs[0] || d.video_lower_ssrcs[1]) && !d.video_ssrc) return false;
        if (d.video_lower_ssrcs[1] && !d.video_lower_ssrcs[0]) return false;
        for (std::size_t i = 0; i < 2; ++i)
            if (d.video_lower_rtx_ssrcs[i] && !d.video_lower_ssrcs[i]) return false;
        return true;
    }
    bool claimed_by_other(const rtp::stream_description& d, const stream& self) const {
        for (std::uint32_t ssrc : ssrcs_of(d)) {
            if (!ssrc) continue;
            auto it = by_ssrc_.find(ssrc);
            if (it != by_ssrc_.end() && it->second != &self) return true;
        }
        return false;
    }
    void unindex(stream& s) {
        for (std::uint32_t ssrc : ssrcs_of(s.desc)) {
            auto it = by_ssrc_.find(ssrc);
            if (it != by_ssrc_.end() && it->second == &s) by_ssrc_.erase(it);
        }
    }
    void unpublish(stream& s) {
        unindex(s);
        s.live = false;
        for (auto& sub : s.subscribers) sub.waiting_keyframe = !sub.relay_leg;
    }

    static constexpr std::uint32_t relay_ssrc = 0x6f6e6169; // "onai"
    static constexpr std::int16_t fec_restart_span = 512;   ///< a jump this far is a renumbering, not loss
    sfu_config cfg_;
    std::unordered_map<std::string, stream> streams_; // node-based: stream addresses are stable
    std::unordered_map<std::uint32_t, stream*> by_ssrc_;
    struct stream_tickets {
        std::string publish;
        std::unordered_set<std::string> play;
    };
    static constexpr std::size_t max_play_tickets = 100'000; ///< per stream; the room issues one per member

    std::unordered_map<std::string, stream_tickets> tickets_;
    relay_stats stats_;
    rtp::rtcp::parse_counts rtcp_counts_;
    std::vector<std::uint16_t> lost_; // reused for upstream NACKs
    std::array<packet_ref, 40> recovered_{}; // FEC recoveries of one call (at most one per repair packet held + 1)
    std::size_t recovered_count_ = 0;
    std::uint16_t fec_sequence_seed_ = 0x1d2b;
};

} // namespace onair::relay
