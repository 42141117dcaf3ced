// relay::sfu repair paths: FlexFEC in (rebuild) and out (protection), RED rebuild, audio
// NACK/RTX on both legs, and the receiver reports that drive FEC levels.
#include <onair/relay/sfu.hpp>

#include "support/rtp_builders.hpp"

#include <onair/qos/flexfec.hpp>
#include <onair/qos/red.hpp>
#include <onair/qos/rtx.hpp>
#include <onair/rtp/rtcp.hpp>
#include <onair/rtp/vp8.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <random>
#include <vector>

using namespace onair;
using namespace std::chrono_literals;
using relay::endpoint;

namespace {

using packet = std::vector<std::uint8_t>;

constexpr std::uint32_t video_ssrc = 100, audio_ssrc = 101, video_rtx = 102, fec_ssrc = 103, audio_rtx = 104;
constexpr std::uint8_t red_pt = 63, opus_pt = 111, audio_rtx_pt = 98;

/// Records what the sfu asks its node to do; time is simulated (as in sfu.cpp).
struct fake_context {
    struct sent { endpoint to; packet bytes; };
    std::vector<sent> sends;
    std::vector<std::pair<endpoint, rtp::session_message>> sessions;
    std::vector<std::pair<endpoint, std::uint32_t>> keyframe_requests;
    std::chrono::steady_clock::time_point t = std::chrono::steady_clock::time_point{} + 1h;

    void send(const endpoint& to, rtp::bytes_view b) { sends.push_back({to, {b.begin(), b.end()}}); }
    void send(const endpoint& to, rtp::bytes_view head, rtp::bytes_view tail) {
        sends.push_back({to, {head.begin(), head.end()}});
        sends.back().bytes.insert(sends.back().bytes.end(), tail.begin(), tail.end());
    }
    void send_session(const endpoint& to, const rtp::session_message& m) { sessions.emplace_back(to, m); }
    void request_keyframe(const endpoint& p, std::uint32_t ssrc) { keyframe_requests.emplace_back(p, ssrc); }
    void deliver(const rtp::stream_description&, media_kind, const rtp::packet_view&) {}
    std::chrono::steady_clock::time_point now() const { return t; }
    static packet_pool& pool() { // outlives every sfu here (the sfu keeps packets in its caches)
        static packet_pool p;
        return p;
    }
    packet_ref acquire() { return pool().acquire(); }
};

endpoint ep(unsigned short port) { return {asio::ip::make_address_v4("127.0.0.1"), port}; }

rtp::session_message hello(rtp::session_type type, const std::string& name, std::uint32_t vssrc = 0, std::uint32_t assrc = 0) {
    rtp::session_message m;
    m.type = type;
    m.stream.name = name;
    m.stream.video_ssrc = vssrc;
    m.stream.audio_ssrc = assrc;
    m.stream.video_codec = vssrc ? "VP8" : "";
    m.stream.audio_codec = assrc ? "opus" : "";
    return m;
}
rtp::session_message play(const std::string& name) { return hello(rtp::session_type::play, name); }
/// A publisher with every repair stream: video RTX and FlexFEC, audio RED and RTX.
rtp::session_message publish_all(const std::string& name) {
    auto m = hello(rtp::session_type::publish, name, video_ssrc, audio_ssrc);
    m.stream.video_rtx_ssrc = video_rtx;
    m.stream.video_rtx_pt = 97;
    m.stream.video_fec_ssrc = fec_ssrc;
    m.stream.video_fec_pt = 118;
    m.stream.audio_red_pt = red_pt;
    m.stream.audio_rtx_ssrc = audio_rtx;
    m.stream.audio_rtx_pt = audio_rtx_pt;
    return m;
}

rtp::packet_view view(const packet& b) {
    rtp::packet_view p;
    REQUIRE_FALSE(rtp::parse(b, p));
    return p;
}
bool is_rtp(const packet& b) { return b.size() >= 12 && (b[0] >> 6) == 2 && !(b[1] >= 200 && b[1] <= 206); }
std::uint32_t ssrc_of(const packet& b) { return rtp::load_be32(b.data() + 8); }
std::uint16_t seq_of(const packet& b) { return rtp::load_be16(b.data() + 2); }

/// Hands `pkt` to the sfu as the node does (a pooled buffer the sfu may keep); packets that
/// do not parse as RTP never reach on_rtp, so they are skipped (returns false).
bool try_feed(relay::sfu& s, fake_context& ctx, const packet& pkt, const endpoint& from) {
    packet_ref buf = ctx.acquire();
    std::copy(pkt.begin(), pkt.end(), buf.capacity().begin());
    buf.resize(pkt.size());
    rtp::packet_view p;
    if (rtp::parse(buf.bytes(), p)) return false;
    s.on_rtp(ctx, buf, p, from);
    return true;
}
void feed(relay::sfu& s, fake_context& ctx, const packet& pkt, const endpoint& from) { REQUIRE(try_feed(s, ctx, pkt, from)); }

packet make_rtp(std::uint32_t ssrc, std::uint8_t pt, std::uint16_t seq, std::uint32_t ts, const packet& payload, bool marker = false) {
    rtp::header h;
    h.marker = marker;
    h.payload_type = pt;
    h.sequence = seq;
    h.timestamp = ts;
    h.ssrc = ssrc;
    packet out(rtp::header_size(h) + payload.size());
    out.resize(rtp::serialize(h, payload, out));
    return out;
}

/// RTP packets sent to `to` on `ssrc`, in sending order.
std::vector<packet> rtp_to(const fake_context& ctx, const endpoint& to, std::uint32_t ssrc) {
    std::vector<packet> out;
    for (auto& s : ctx.sends)
        if (s.to == to && is_rtp(s.bytes) && ssrc_of(s.bytes) == ssrc) out.push_back(s.bytes);
    return out;
}
std::size_t count_ssrc(const fake_context& ctx, std::uint32_t ssrc) {
    return static_cast<std::size_t>(std::count_if(ctx.sends.begin(), ctx.sends.end(), [&](const auto& s) {
        return is_rtp(s.bytes) && ssrc_of(s.bytes) == ssrc;
    }));
}

void nack_from(relay::sfu& s, fake_context& ctx, const endpoint& from, std::uint32_t media, std::vector<std::uint16_t> lost) {
    std::array<std::uint8_t, 256> buf;
    const auto n = rtp::rtcp::write_nack(4242, media, lost, buf);
    REQUIRE(n > 0);
    s.on_rtcp(ctx, rtp::bytes_view(buf.data(), n), from);
}
void report_from(relay::sfu& s, fake_context& ctx, const endpoint& from, std::uint32_t media, std::uint8_t fraction_lost) {
    rtp::rtcp::report_block b;
    b.ssrc = media;
    b.fraction_lost = fraction_lost;
    rtp::rtcp::receiver_report rr;
    rr.ssrc = 4242;
    rr.blocks = std::span(&b, 1);
    std::array<std::uint8_t, 64> buf;
    const auto n = rtp::rtcp::write_receiver_report(rr, buf);
    REQUIRE(n > 0);
    s.on_rtcp(ctx, rtp::bytes_view(buf.data(), n), from);
}
/// Sequence numbers NACKed to `to` for `media`.
std::vector<std::uint16_t> nacked(const fake_context& ctx, const endpoint& to, std::uint32_t media) {
    std::vector<std::uint16_t> asked;
    for (auto& sent : ctx.sends) {
        if (sent.to != to || is_rtp(sent.bytes)) continue;
        rtp::rtcp::parse_counts counts;
        (void)rtp::rtcp::parse_compound(sent.bytes, [&](const rtp::rtcp::nack& nk) {
            if (nk.media_ssrc == media) nk.for_each([&](std::uint16_t q) { asked.push_back(q); });
        }, counts);
    }
    return asked;
}
/// The original packet an RTX packet stands for.
packet restore(const packet& rtx, std::uint32_t media_ssrc, std::uint8_t media_pt) {
    std::array<std::uint8_t, 1500> buf;
    std::size_t n = 0;
    REQUIRE_FALSE(qos::restore_rtx(view(rtx), media_ssrc, media_pt, buf, n));
    return packet(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
}

/// Feeds `media` except the packet with sequence number `drop`, then `fec`, to a fresh
/// receiver-side decoder; returns what it rebuilt.
std::vector<packet> decode_without(const std::vector<packet>& media, std::uint16_t drop, const std::vector<packet>& fec) {
    qos::flexfec_decoder::config c;
    c.media_ssrc = video_ssrc;
    c.fec_ssrc = fec_ssrc;
    auto dec = std::make_unique<qos::flexfec_decoder>(c); // ~430 KB: not on the stack
    std::vector<packet> out;
    auto keep = [&](rtp::bytes_view r) { out.emplace_back(r.begin(), r.end()); };
    for (auto& m : media)
        if (seq_of(m) != drop) dec->add_media(m, keep);
    for (auto& f : fec) dec->add_fec(f, keep);
    return out;
}

std::vector<packet> vp8_frame(bool key, std::uint32_t ts, std::size_t size, std::uint16_t& seq) {
    return onair_test::packetize<rtp::vp8_payload>(onair_test::fake_vp8_frame(key, ts, size), video_ssrc, seq);
}

/// Opus-looking payload of audio packet `seq` (distinct per packet).
packet opus_payload(std::uint16_t seq) {
    packet p(20 + seq % 7u);
    for (std::size_t i = 0; i < p.size(); ++i) p[i] = static_cast<std::uint8_t>(seq * 7u + i);
    return p;
}
std::uint32_t audio_ts(std::uint16_t seq) { return 960u * seq; }
/// A publisher's RED audio (redundancy 2): encode() every packet, sent or lost.
struct red_source {
    qos::red_encoder enc{2};
    packet next(std::uint16_t seq) {
        std::array<std::uint8_t, 1500> buf;
        const auto n = enc.encode(opus_pt, audio_ts(seq), opus_payload(seq), buf);
        REQUIRE(n > 0);
        return make_rtp(audio_ssrc, red_pt, seq, audio_ts(seq), packet(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n)));
    }
};

} // namespace

TEST_CASE("sfu repair: a video packet the publisher leg lost is rebuilt from the publisher's FlexFEC") {
    // Key frame K0..K4 (seq 200..204); the publisher's FEC protects groups of 4, so FEC#0
    // covers K0..K3. K2 is lost on the way in: K0, K1, K3, K4 arrive, then FEC#0. The relay
    // rebuilds K2, forwards it byte for byte to the subscriber, keeps it in its cache (the
    // subscriber's NACK for 202 is answered by RTX), and the late original K2 is a duplicate.
    relay::sfu s;
    fake_context ctx;
    s.on_session(ctx, publish_all("cam"), ep(1));
    s.on_session(ctx, play("cam"), ep(10));
    std::uint16_t seq = 200;
    auto key = vp8_frame(true, 0, 6000, seq);
    REQUIRE(key.size() >= 5);

    qos::flexfec_encoder::config ec;
    ec.media_ssrc = video_ssrc;
    ec.fec_ssrc = fec_ssrc;
    ec.payload_type = 118;
    qos::fec_params g4;
    g4.group_size = 4;
    g4.fec_packets = 1;
    ec.protection = {g4, g4};
    qos::flexfec_encoder enc(ec);
    std::vector<packet> fec;
    for (auto& p : key) REQUIRE_FALSE(enc.add(p, true, [&](rtp::bytes_view r) { fec.emplace_back(r.begin(), r.end()); }));
    REQUIRE(fec.size() == 1);

    ctx.sends.clear();
    for (std::size_t i = 0; i < key.size(); ++i)
        if (i != 2) feed(s, ctx, key[i], ep(1));
    auto forwarded = rtp_to(ctx, ep(10), video_ssrc);
    CHECK(forwarded.size() == key.size() - 1);
    CHECK(std::count(forwarded.begin(), forwarded.end(), key[2]) == 0);
    feed(s, ctx, fec[0], ep(1));
    forwarded = rtp_to(ctx, ep(10), video_ssrc);
    CHECK(forwarded.size() == key.size());
    CHECK(std::count(forwarded.begin(), forwarded.end(), key[2]) == 1);
    CHECK(s.stats().fec_recovered == 1);
    CHECK(s.stats().malformed_fec == 0);

    // In the cache: a NACK for 202 is answered with K2 as RTX.
    ctx.sends.clear();
    nack_from(s, ctx, ep(10), video_ssrc, {202});
    auto rtx = rtp_to(ctx, ep(10), video_rtx);
    REQUIRE(rtx.size() == 1);
    CHECK(restore(rtx[0], video_ssrc, 96) == key[2]);

    // The original arriving late is not forwarded a second time.
    ctx.sends.clear();
    const auto dups = s.stats().duplicates;
    feed(s, ctx, key[2], ep(1));
    CHECK(rtp_to(ctx, ep(10), video_ssrc).empty());
    CHECK(s.stats().duplicates == dups + 1);
    CHECK(s.stats().fec_recovered == 1);
}

TEST_CASE("sfu repair: the relay protects what it forwards with its own FlexFEC, in sequence order") {
    // ep(10) subscribes; key frame K0..K(n-1) (seq 300..) arrives with its last two packets
    // swapped: K(n-1) (the marker, which closes a key group) before K(n-2). With no loss
    // reported, key frames get one repair packet and delta frames none. ep(10) gets FEC on
    // SSRC 103 that covers both swapped packets: the forwarded key frame minus K(n-2), or
    // minus K(n-1), plus that FEC rebuilds the missing one. Then ep(10) reports 25 % loss
    // (delta frames protected too), ep(11) subscribes (waiting for a key frame) and three
    // delta frames follow: ep(10) gets their FEC, ep(11) none. fec_sent counts all of it.
    relay::sfu s;
    fake_context ctx;
    s.on_session(ctx, publish_all("cam"), ep(1));
    s.on_session(ctx, play("cam"), ep(10));
    std::uint16_t seq = 300;
    auto key = vp8_frame(true, 0, 5000, seq);
    const std::size_t n = key.size();
    REQUIRE(n >= 4);
    REQUIRE(view(key[n - 1]).marker);
    ctx.sends.clear();
    for (std::size_t i = 0; i + 2 < n; ++i) feed(s, ctx, key[i], ep(1));
    feed(s, ctx, key[n - 1], ep(1));
    feed(s, ctx, key[n - 2], ep(1));

    const auto media10 = rtp_to(ctx, ep(10), video_ssrc);
    const auto fec10 = rtp_to(ctx, ep(10), fec_ssrc);
    CHECK(media10.size() == n);
    REQUIRE(fec10.size() == 1);
    CHECK(view(fec10[0]).payload_type == 118);
    CHECK(decode_without(media10, seq_of(key[n - 2]), fec10) == std::vector<packet>{key[n - 2]});
    CHECK(decode_without(media10, seq_of(key[n - 1]), fec10) == std::vector<packet>{key[n - 1]});
    CHECK(decode_without(media10, seq_of(key[0]), fec10) == std::vector<packet>{key[0]});
    CHECK(s.stats().fec_sent == 1);

    report_from(s, ctx, ep(10), video_ssrc, 64);
    s.on_session(ctx, play("cam"), ep(11));
    std::vector<packet> deltas;
    for (std::uint32_t f = 1; f <= 3; ++f)
        for (auto& p : vp8_frame(false, 3000 * f, 3000, seq)) deltas.push_back(p);
    REQUIRE(deltas.size() >= 3);
    for (auto& p : deltas) feed(s, ctx, p, ep(1));

    const auto all10 = rtp_to(ctx, ep(10), video_ssrc);
    const auto allfec10 = rtp_to(ctx, ep(10), fec_ssrc);
    CHECK(all10.size() == n + deltas.size());
    CHECK(allfec10.size() > 1); // the delta frames' repair packets
    CHECK(decode_without(all10, seq_of(deltas[1]), allfec10) == std::vector<packet>{deltas[1]});
    CHECK(rtp_to(ctx, ep(11), fec_ssrc).empty()); // still waiting for a key frame
    CHECK(s.stats().fec_sent == count_ssrc(ctx, fec_ssrc));
    CHECK(s.stats().fec_sent == allfec10.size());
}

TEST_CASE("sfu repair: subscribers' receiver reports set the relay's FEC protection, the worst one wins") {
    // ep(10) and ep(11) subscribe. ep(10) reports fraction_lost 64 (25 %), then 0 twice:
    // each time the stream's protection is protection_for_loss() of ep(10)'s smoothed loss
    // (loss_estimate). ep(11) reporting 0 lowers nothing (the most lossy subscriber
    // counts); 255 from a non-subscriber, or for the audio SSRC, changes nothing either.
    relay::sfu s;
    fake_context ctx;
    s.on_session(ctx, publish_all("cam"), ep(1));
    s.on_session(ctx, play("cam"), ep(10));
    s.on_session(ctx, play("cam"), ep(11));
    auto protection = [&] {
        REQUIRE(s.find("cam") != nullptr);
        REQUIRE(s.find("cam")->fec_out != nullptr);
        return s.find("cam")->fec_out->protection();
    };
    CHECK(protection() == qos::protection_for_loss(0));

    qos::loss_estimate est;
    report_from(s, ctx, ep(10), video_ssrc, 64);
    est.on_report(64);
    CHECK(protection() == qos::protection_for_loss(est.value()));
    CHECK(protection() != qos::protection_for_loss(0));
    CHECK(protection().delta.fec_packets > 0);
    for (int i = 0; i < 2; ++i) {
        report_from(s, ctx, ep(10), video_ssrc, 0);
        est.on_report(0);
        CHECK(protection() == qos::protection_for_loss(est.value()));
    }
    const auto after = protection();
    CHECK(after != qos::protection_for_loss(0.25)); // it did come down
    CHECK(after != qos::protection_for_loss(0));

    report_from(s, ctx, ep(11), video_ssrc, 0);
    CHECK(protection() == after);
    report_from(s, ctx, ep(99), video_ssrc, 255);
    CHECK(protection() == after);
    report_from(s, ctx, ep(10), audio_ssrc, 255);
    CHECK(protection() == after);
}

TEST_CASE("sfu repair: an audio packet the publisher leg lost is rebuilt from RED redundancy") {
    // RED audio (PT 63, redundancy 2: packet S carries S-2 and S-1). The publisher sent 8
    // and 9 before the relay heard from it: 10 (blocks 8, 9) rebuilds nothing, those were
    // never missing. 11 arrives, 12 is lost, 13 (blocks 11, 12) arrives: 12 is rebuilt right after 13 is forwarded, with its
    // own sequence number and timestamp, PT 63 and payload = primary header (111) + its
    // Opus bytes. 14 (blocks 12, 13) rebuilds nothing: neither is missing any more. 15 and
    // 16 are lost, 17 (blocks 15, 16) rebuilds both, oldest first.
    relay::sfu s;
    fake_context ctx;
    s.on_session(ctx, publish_all("cam"), ep(1));
    s.on_session(ctx, play("cam"), ep(10));
    red_source red;
    std::array<packet, 18> a;
    for (std::uint16_t q = 8; q < 18; ++q) a[q] = red.next(q);
    REQUIRE(view(a[10]).payload.size() > 8 + opus_payload(10).size()); // 10 does carry 8 and 9
    ctx.sends.clear();
    feed(s, ctx, a[10], ep(1));
    CHECK(rtp_to(ctx, ep(10), audio_ssrc).size() == 1);
    feed(s, ctx, a[11], ep(1));
    feed(s, ctx, a[13], ep(1));
    auto expected_rebuild = [](std::uint16_t q) {
        packet payload{opus_pt};
        const auto opus = opus_payload(q);
        payload.insert(payload.end(), opus.begin(), opus.end());
        return make_rtp(audio_ssrc, red_pt, q, audio_ts(q), payload);
    };
    auto got = rtp_to(ctx, ep(10), audio_ssrc);
    REQUIRE(got.size() == 4);
    CHECK(got[2] == a[13]);
    CHECK(seq_of(got[3]) == 12);
    CHECK(view(got[3]).timestamp == audio_ts(12));
    CHECK(view(got[3]).payload_type == red_pt);
    CHECK(got[3] == expected_rebuild(12));
    CHECK(s.stats().red_rebuilt == 1);

    feed(s, ctx, a[14], ep(1));
    got = rtp_to(ctx, ep(10), audio_ssrc);
    REQUIRE(got.size() == 5);
    CHECK(got[4] == a[14]);
    CHECK(s.stats().red_rebuilt == 1);
    CHECK(std::count_if(got.begin(), got.end(), [](const packet& p) { return seq_of(p) == 12; }) == 1);

    feed(s, ctx, a[17], ep(1));
    got = rtp_to(ctx, ep(10), audio_ssrc);
    REQUIRE(got.size() == 8);
    CHECK(got[5] == a[17]);
    CHECK(got[6] == expected_rebuild(15));
    CHECK(got[7] == expected_rebuild(16));
    CHECK(s.stats().red_rebuilt == 3);
    // The late original of a rebuilt packet is a duplicate, not forwarded again.
    feed(s, ctx, a[12], ep(1));
    CHECK(rtp_to(ctx, ep(10), audio_ssrc).size() == 8);
}

TEST_CASE("sfu repair: a subscriber's audio NACK is answered from the audio cache with RTX") {
    // RED audio 20, 21, 23 arrives (22 rebuilt from 23's redundancy). ep(10) NACKs 21 and
    // 22 on the audio SSRC: two RTX packets on SSRC 104 / PT 98, numbered 0 and 1 on this
    // leg, whose restored form (audio SSRC, PT 63) is the original 21 and the rebuilt 22.
    // 19 (never received) gets nothing; a non-subscriber's NACK gets nothing.
    relay::sfu s;
    fake_context ctx;
    s.on_session(ctx, publish_all("cam"), ep(1));
    s.on_session(ctx, play("cam"), ep(10));
    red_source red;
    std::array<packet, 24> a;
    for (std::uint16_t q = 20; q < 24; ++q) a[q] = red.next(q);
    for (std::uint16_t q : std::array<std::uint16_t, 3>{20, 21, 23}) feed(s, ctx, a[q], ep(1));
    const auto forwarded = rtp_to(ctx, ep(10), audio_ssrc);
    REQUIRE(forwarded.size() == 4);
    const packet rebuilt22 = forwarded[3];
    REQUIRE(seq_of(rebuilt22) == 22);

    ctx.sends.clear();
    nack_from(s, ctx, ep(10), audio_ssrc, {19, 21, 22});
    const auto rtx = rtp_to(ctx, ep(10), audio_rtx);
    REQUIRE(rtx.size() == 2);
    CHECK(ctx.sends.size() == 2);
    CHECK(view(rtx[0]).payload_type == audio_rtx_pt);
    CHECK(view(rtx[0]).sequence == 0);
    CHECK(view(rtx[1]).sequence == 1);
    CHECK(restore(rtx[0], audio_ssrc, red_pt) == a[21]);
    CHECK(restore(rtx[1], audio_ssrc, red_pt) == rebuilt22);
    CHECK(s.stats().retransmissions == 2);

    ctx.sends.clear();
    nack_from(s, ctx, ep(99), audio_ssrc, {21});
    CHECK(ctx.sends.empty());
}

TEST_CASE("sfu repair: an audio hole on the publisher leg is NACKed upstream and the RTX forwarded") {
    // Plain Opus audio (PT 111) with audio RTX announced. Audio 1, 2, 4 arrive; 100 ms later
    // the timer sends the publisher a NACK for media SSRC 101 listing 3 (and nothing for
    // video). The publisher's RTX for 3 (SSRC 104) is restored and forwarded as the original.
    relay::sfu s;
    fake_context ctx;
    auto pub = hello(rtp::session_type::publish, "cam", video_ssrc, audio_ssrc);
    pub.stream.audio_rtx_ssrc = audio_rtx;
    pub.stream.audio_rtx_pt = audio_rtx_pt;
    s.on_session(ctx, pub, ep(1));
    s.on_session(ctx, play("cam"), ep(10));
    std::array<packet, 5> a;
    for (std::uint16_t q = 1; q < 5; ++q) a[q] = make_rtp(audio_ssrc, opus_pt, q, audio_ts(q), opus_payload(q));
    for (std::uint16_t q : std::array<std::uint16_t, 3>{1, 2, 4}) feed(s, ctx, a[q], ep(1));
    ctx.sends.clear();
    ctx.t += 100ms;
    s.on_timer(ctx);
    CHECK(nacked(ctx, ep(1), audio_ssrc) == std::vector<std::uint16_t>{3});
    CHECK(nacked(ctx, ep(1), video_ssrc).empty());
    CHECK(s.stats().upstream_nacks == 1);

    std::array<std::uint8_t, 1500> buf;
    const auto n = qos::write_rtx(view(a[3]), audio_rtx, audio_rtx_pt, 0, buf);
    REQUIRE(n > 0);
    ctx.sends.clear();
    feed(s, ctx, packet(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n)), ep(1));
    CHECK(rtp_to(ctx, ep(10), audio_ssrc) == std::vector<packet>{a[3]});
    CHECK(s.stats().upstream_recovered == 1);
}

TEST_CASE("sfu repair: the publisher gets receiver reports with the publisher leg's loss") {
    // Video 1..10 arrive without 5 (1 of 10 lost). The timer sends the publisher an RR with
    // a block for SSRC 100: fraction_lost 25/256 (26 with rounding up), 1 lost in total,
    // highest 10. Video 11..20 arrive complete; 500 ms later: no report yet (report_interval
    // 1 s); 600 ms later the next report says fraction_lost 0, still 1 lost in total.
    relay::sfu s;
    fake_context ctx;
    s.on_session(ctx, hello(rtp::session_type::publish, "cam", video_ssrc, audio_ssrc), ep(1));
    auto feed_video = [&](std::uint16_t from, std::uint16_t to, std::uint16_t skip) {
        for (std::uint16_t q = from; q <= to; ++q)
            if (q != skip) feed(s, ctx, make_rtp(video_ssrc, 96, q, 3000u * q, packet(100, 0x11), true), ep(1));
    };
    auto reports = [&] {
        std::vector<rtp::rtcp::report_block> blocks;
        for (auto& sent : ctx.sends) {
            if (sent.to != ep(1) || is_rtp(sent.bytes)) continue;
            rtp::rtcp::parse_counts counts;
            (void)rtp::rtcp::parse_compound(sent.bytes, [&](const rtp::rtcp::receiver_report& rr) {
                blocks.insert(blocks.end(), rr.blocks.begin(), rr.blocks.end());
            }, counts);
        }
        return blocks;
    };
    feed_video(1, 10, 5);
    ctx.sends.clear();
    ctx.t += 1s;
    s.on_timer(ctx);
    auto blocks = reports();
    REQUIRE(blocks.size() == 1);
    CHECK(blocks[0].ssrc == video_ssrc);
    CHECK(blocks[0].fraction_lost >= 25);
    CHECK(blocks[0].fraction_lost <= 26);
    CHECK(blocks[0].cumulative_lost == 1);
    CHECK(blocks[0].extended_highest_seq == 10);
    CHECK(s.stats().receiver_reports == 1);

    ctx.sends.clear();
    feed_video(11, 20, 0);
    ctx.t += 500ms;
    s.on_timer(ctx);
    CHECK(reports().empty());
    CHECK(s.stats().receiver_reports == 1);

    ctx.t += 600ms;
    s.on_timer(ctx);
    blocks = reports();
    REQUIRE(blocks.size() == 1);
    CHECK(blocks[0].fraction_lost == 0);
    CHECK(blocks[0].cumulative_lost == 1);
    CHECK(blocks[0].extended_highest_seq == 20);
    CHECK(s.stats().receiver_reports == 2);
}

TEST_CASE("sfu repair: malformed FlexFEC and RED from the publisher are counted and change nothing") {
    // After a key frame (seq 1000..) and RED audio 50, 51: FlexFEC packets (SSRC 103) that
    // are truncated, have CC = 0, an empty mask, then 2000 random ones: counted in
    // malformed_fec, nothing sent for them. RED packets 52..56 with broken block headers
    // are forwarded as they are and counted in malformed_red. Packet 58 (57 lost) carries a
    // block of another PT, 59 an empty block for 57: 57 is not rebuilt. Afterwards NACKs for
    // video 1001 and audio 51 still return the original packets.
    relay::sfu s;
    fake_context ctx;
    s.on_session(ctx, publish_all("cam"), ep(1));
    s.on_session(ctx, play("cam"), ep(10));
    std::uint16_t seq = 1000;
    auto key = vp8_frame(true, 0, 6000, seq);
    REQUIRE(key.size() >= 4);
    for (auto& p : key) feed(s, ctx, p, ep(1));
    red_source red;
    const packet a50 = red.next(50), a51 = red.next(51);
    feed(s, ctx, a50, ep(1));
    feed(s, ctx, a51, ep(1));

    // A well-formed FEC packet for the key frame, to break in different ways.
    qos::flexfec_encoder::config ec;
    ec.media_ssrc = video_ssrc;
    ec.fec_ssrc = fec_ssrc;
    qos::flexfec_encoder enc(ec);
    std::vector<packet> fec;
    for (auto& p : key) REQUIRE_FALSE(enc.add(p, true, [&](rtp::bytes_view r) { fec.emplace_back(r.begin(), r.end()); }));
    REQUIRE(!fec.empty());
    const std::size_t fec_header_at = rtp::fixed_header_size + 4; // after the CSRC
    ctx.sends.clear();
    packet truncated(fec[0].begin(), fec[0].begin() + static_cast<std::ptrdiff_t>(fec_header_at + 5));
    feed(s, ctx, truncated, ep(1));
    packet no_csrc = make_rtp(fec_ssrc, 118, 7, 0, packet(40, 0x80));
    feed(s, ctx, no_csrc, ep(1));
    packet empty_mask = fec[0];
    empty_mask[fec_header_at + 10] = 0x80; // k = 1, no bit set
    empty_mask[fec_header_at + 11] = 0;
    feed(s, ctx, empty_mask, ep(1));
    CHECK(s.stats().malformed_fec == 3);

    std::mt19937 rng(2024);
    for (int i = 0; i < 2000; ++i) {
        packet r(std::uniform_int_distribution<std::size_t>(12, 80)(rng));
        for (auto& x : r) x = static_cast<std::uint8_t>(rng());
        r[0] = static_cast<std::uint8_t>(0x80 | (r[0] & 0x0f)); // V=2, no padding or extension, any CC
        r[1] = 118;
        rtp::store_be32(&r[8], fec_ssrc);
        (void)try_feed(s, ctx, r, ep(1));
    }
    CHECK(s.stats().malformed_fec > 3);
    CHECK(ctx.sends.empty()); // nothing forwarded, no repair packets made
    CHECK(s.stats().fec_recovered == 0);

    const std::vector<packet> bad_red{
        {},                                               // empty
        {0xef},                                           // a redundant block header cut short
        {0xef, 0x00, 0x00, 0x10, 0x6f, 1, 2},             // block length 16 past the end
        {0xef, 0x00, 0x3c, 0x02, 0x6f, 9, 9},             // nothing left for the primary
        packet(8 * 4, 0xef),                              // too many blocks
    };
    for (std::size_t i = 0; i < bad_red.size(); ++i)
        feed(s, ctx, make_rtp(audio_ssrc, red_pt, static_cast<std::uint16_t>(52 + i), audio_ts(52), bad_red[i]), ep(1));
    CHECK(s.stats().malformed_red == bad_red.size());
    CHECK(rtp_to(ctx, ep(10), audio_ssrc).size() == bad_red.size()); // forwarded as they are
    // 58: one block (for 57) of PT 34; 59: blocks for 57 (PT 111, empty) and 58.
    feed(s, ctx, make_rtp(audio_ssrc, red_pt, 58, audio_ts(58), {0xa2, 0x00, 0x3c, 0x03, 0x6f, 1, 2, 3, 4}), ep(1));
    feed(s, ctx, make_rtp(audio_ssrc, red_pt, 59, audio_ts(59),
                          {0xef, 0x00, 0x78, 0x00, 0xef, 0x00, 0x3c, 0x01, 0x6f, 5, 6}), ep(1));
    CHECK(s.stats().malformed_red == bad_red.size());
    CHECK(s.stats().red_rebuilt == 0);
    auto audio = rtp_to(ctx, ep(10), audio_ssrc);
    CHECK(std::none_of(audio.begin(), audio.end(), [](const packet& p) { return seq_of(p) == 57; }));

    ctx.sends.clear();
    nack_from(s, ctx, ep(10), video_ssrc, {1001});
    auto vrtx = rtp_to(ctx, ep(10), video_rtx);
    REQUIRE(vrtx.size() == 1);
    CHECK(restore(vrtx[0], video_ssrc, 96) == key[1]);
    nack_from(s, ctx, ep(10), audio_ssrc, {51});
    auto artx = rtp_to(ctx, ep(10), audio_rtx);
    REQUIRE(artx.size() == 1);
    CHECK(restore(artx[0], audio_ssrc, red_pt) == a51);
}

TEST_CASE("sfu repair: a burst lost on the publisher leg holds the relay's FEC back one reorder wait, not one per packet") {
    // ep(10) subscribes and reports 25 % loss (delta frames protected). A key frame passes,
    // then a delta frame of which the publisher leg lost six packets in a row; the packets
    // after the burst arrive. The encoder waits fec_reorder_wait (20 ms) for the first hole,
    // then gives up the whole burst at once: one tick after the wait, the packets after the
    // burst are protected (FEC for them reaches ep(10)). Giving up one hole per wait would
    // hold them back 6 x 20 ms.
    relay::sfu s;
    fake_context ctx;
    s.on_session(ctx, publish_all("cam"), ep(1));
    s.on_session(ctx, play("cam"), ep(10));
    report_from(s, ctx, ep(10), video_ssrc, 64);
    std::uint16_t seq = 500;
    for (auto& p : vp8_frame(true, 0, 3000, seq)) feed(s, ctx, p, ep(1));
    auto delta = vp8_frame(false, 3000, 14000, seq);
    REQUIRE(delta.size() >= 10);
    ctx.sends.clear();
    for (std::size_t i = 0; i < delta.size(); ++i)
        if (i < 2 || i >= 8) feed(s, ctx, delta[i], ep(1)); // 2..7 lost
    const auto fec_before = rtp_to(ctx, ep(10), fec_ssrc).size();
    ctx.t += 25ms; // past the reorder wait for the first hole
    s.on_timer(ctx);
    const auto fec = rtp_to(ctx, ep(10), fec_ssrc);
    REQUIRE(fec.size() > fec_before);
    // The FEC after the burst protects the packets after it.
    const auto media = rtp_to(ctx, ep(10), video_ssrc);
    CHECK(decode_without(media, seq_of(delta[delta.size() - 1]), fec) == std::vector<packet>{delta[delta.size() - 1]});
}

TEST_CASE("sfu repair: a plain-RTP target gets RED audio as plain Opus, the primary block alone") {
    // A --forward target (add_forward) has an SDP that announces Opus (PT 111) only. The
    // publisher sends RED (PT 63, two redundant blocks): the target gets each packet with
    // PT 111 and the primary Opus payload, header otherwise unchanged; a session subscriber
    // ep(10) gets the RED packet unchanged.
    relay::sfu s;
    fake_context ctx;
    s.add_forward("cam", ep(5000), ep(5002));
    s.on_session(ctx, publish_all("cam"), ep(1));
    s.on_session(ctx, play("cam"), ep(10));
    red_source red;
    std::vector<packet> sent;
    for (std::uint16_t q = 30; q < 33; ++q) sent.push_back(red.next(q));
    ctx.sends.clear();
    for (const auto& p : sent) feed(s, ctx, p, ep(1));
    const auto plain = rtp_to(ctx, ep(5002), audio_ssrc);
    REQUIRE(plain.size() == sent.size());
    for (std::size_t i = 0; i < sent.size(); ++i) {
        const auto v = view(plain[i]);
        const auto q = static_cast<std::uint16_t>(30 + i);
        CHECK(v.payload_type == opus_pt);
        CHECK(v.sequence == q);
        CHECK(v.timestamp == audio_ts(q));
        CHECK(packet(v.payload.begin(), v.payload.end()) == opus_payload(q));
    }
    CHECK(rtp_to(ctx, ep(10), audio_ssrc) == sent);
}
