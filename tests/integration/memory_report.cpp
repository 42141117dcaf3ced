// relay::sfu's memory report against the heap. The bytes sfu::memory() reports for a
// stream and for its subscribers are the bytes allocated for them, a subscriber takes at
// most 16 KB on a one-encoding VP8 stream and on a three-encoding simulcast one, and the
// report and the heap come back down as subscribers leave. The heap is counted by replacing
// the global operator new (support/counting_new.hpp): a separate executable, so the
// replacement affects no other test.
#include <onair/relay/sfu.hpp>

#include <onair/core/packet_buffer.hpp>
#include <onair/rtp/vp8.hpp>

#include "support/rtp_builders.hpp"

#include "support/counting_new.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

using onair_test::live_bytes;

using namespace onair;
using namespace std::chrono_literals;
using relay::endpoint;

namespace {

/// What the sfu asks its node to do, counted and never kept: the context allocates nothing
/// while the heap is measured.
struct quiet_context {
    packet_pool& pool;
    std::chrono::steady_clock::time_point t = std::chrono::steady_clock::time_point{} + 1h;
    std::uint64_t sends = 0, sessions = 0, keyframe_requests = 0, delivered = 0;

    void send(const endpoint&, rtp::bytes_view) { ++sends; }
    void send(const endpoint&, rtp::bytes_view, rtp::bytes_view) { ++sends; }
    void send_session(const endpoint&, const rtp::session_message&) { ++sessions; }
    void request_keyframe(const endpoint&, std::uint32_t) { ++keyframe_requests; }
    void deliver(const rtp::stream_description&, media_kind, const rtp::packet_view&) { ++delivered; }
    std::chrono::steady_clock::time_point now() const { return t; }
    packet_ref acquire() { return pool.acquire(); }
};

endpoint publisher_at() { return {asio::ip::make_address_v4("127.0.0.1"), 5000}; }
endpoint viewer_at(std::size_t i) { return {asio::ip::make_address_v4("127.0.0.2"), static_cast<unsigned short>(20'000 + i)}; }

/// One encoding of VP8 with audio, RTX and FlexFEC (the stream keeps a FEC decoder and encoder).
rtp::session_message camera() {
    rtp::session_message m;
    m.type = rtp::session_type::publish;
    m.stream.name = "cam";
    m.stream.video_ssrc = 100;
    m.stream.audio_ssrc = 101;
    m.stream.video_codec = "VP8";
    m.stream.audio_codec = "opus";
    m.stream.video_rtx_ssrc = 102;
    m.stream.video_fec_ssrc = 103;
    m.stream.audio_rtx_ssrc = 104;
    return m;
}

/// Three simulcast encodings of VP8 (200 the top one), each with RTX, and audio.
rtp::session_message simulcast() {
    rtp::session_message m;
    m.type = rtp::session_type::publish;
    m.stream.name = "sim";
    m.stream.video_ssrc = 200;
    m.stream.video_lower_ssrcs = {201, 202};
    m.stream.video_rtx_ssrc = 210;
    m.stream.video_lower_rtx_ssrcs = {211, 212};
    m.stream.audio_ssrc = 205;
    m.stream.video_codec = "VP8";
    m.stream.audio_codec = "opus";
    return m;
}

rtp::session_message hello(rtp::session_type type, const std::string& name) {
    rtp::session_message m;
    m.type = type;
    m.stream.name = name;
    return m;
}

/// A second of video on each of the stream's encodings (a key frame first), so that its
/// caches hold packets and its meters know the rates.
void stream_a_second(relay::sfu& s, quiet_context& ctx, const rtp::stream_description& d) {
    std::vector<std::uint32_t> ssrcs{d.video_ssrc};
    for (std::uint32_t lower : d.video_lower_ssrcs)
        if (lower) ssrcs.push_back(lower);
    std::vector<rtp::vp8_payload::packetizer> packetizers(ssrcs.size());
    std::vector<std::uint16_t> seqs(ssrcs.size(), 1000);
    for (int frame = 0; frame < 30; ++frame) {
        for (std::size_t e = 0; e < ssrcs.size(); ++e) {
            const auto f = onair_test::fake_vp8_frame(frame == 0, 3000u * static_cast<std::uint32_t>(frame), 600 * (e + 1));
            for (const auto& bytes : onair_test::packetize<rtp::vp8_payload>(packetizers[e], f, ssrcs[e], seqs[e])) {
                packet_ref buf = ctx.acquire();
                std::copy(bytes.begin(), bytes.end(), buf.capacity().begin());
                buf.resize(bytes.size());
                rtp::packet_view p;
                REQUIRE_FALSE(rtp::parse(buf.bytes(), p));
                s.on_rtp(ctx, buf, p, publisher_at());
            }
        }
        ctx.t += 33ms;
        s.on_timer(ctx);
    }
}

std::int64_t reported(const relay::sfu_memory& m) { return static_cast<std::int64_t>(m.stream_bytes + m.subscriber_bytes); }

/// `a` within `tolerance` (a fraction) of `b`.
bool close_to(std::int64_t a, std::int64_t b, double tolerance) {
    return static_cast<double>(std::llabs(a - b)) <= tolerance * static_cast<double>(std::llabs(b));
}

// Tolerances. The report counts what was asked for (capacity x element size); the heap
// counter, the allocator's usable size of each block, which glibc rounds up by at most 15
// bytes for blocks of 24 bytes or more. A subscriber is eight blocks of 15 KB in all
// (0.1 %), so 1 % covers it. A stream's publish also allocates what the report leaves out,
// the SSRC index's nodes and buckets (about 250 bytes), and its FEC decoder's window is
// above glibc's mmap threshold (128 KB), rounded up to whole pages (up to 4 KB): under 1 %
// of a stream of more than 100 KB, so 2 % there.
constexpr double subscriber_tolerance = 0.01;
constexpr double stream_tolerance = 0.02;

/// Publishes `m`, then adds `n` subscribers, takes half of them away and then the rest,
/// checking the report against the heap at each step. Returns the bytes per subscriber.
std::size_t check_stream(const rtp::session_message& m, std::size_t n, std::size_t expected_encodings) {
    packet_pool pool;
    quiet_context ctx{pool};
    relay::sfu s;
    const std::string& name = m.stream.name;
    s.on_session(ctx, hello(rtp::session_type::play, "warm-up"), viewer_at(9999)); // the stream table exists
    const std::int64_t heap0 = live_bytes;
    const relay::sfu_memory m0 = s.memory(name);
    s.on_session(ctx, m, publisher_at());
    const std::int64_t heap1 = live_bytes;
    const relay::sfu_memory m1 = s.memory(name);
    CHECK(m0.streams == 0);
    REQUIRE(m1.streams == 1);
    REQUIRE(s.find(name));
    CHECK(s.find(name)->desc.video_encodings() == expected_encodings);
    MESSAGE(name << ": stream " << m1.stream_bytes << " bytes reported, " << heap1 - heap0 << " allocated");
    CHECK(close_to(reported(m1), heap1 - heap0, stream_tolerance));

    stream_a_second(s, ctx, m.stream);
    const relay::sfu_memory warm = s.memory(name);
    CHECK(warm.cached_packets > 0); // pooled buffers: reported apart, not in the bytes
    CHECK(warm.cached_packet_bytes == warm.cached_packets * sizeof(onair::detail::packet_block));

    // (a) n subscribers: what the report adds is what the heap grew by.
    const std::int64_t heap2 = live_bytes;
    const relay::sfu_memory m2 = s.memory(name);
    for (std::size_t i = 0; i < n; ++i) s.on_session(ctx, hello(rtp::session_type::play, name), viewer_at(i));
    const std::int64_t heap3 = live_bytes;
    const relay::sfu_memory m3 = s.memory(name);
    REQUIRE(m3.subscribers == n);
    REQUIRE(s.find(name)->subscribers.front().selector); // each one selects layers
    CHECK(s.find(name)->subscribers.front().selector->spatial_layers() == expected_encodings);
    const std::size_t per_subscriber = m3.subscriber_bytes / n;
    MESSAGE(name << ": " << n << " subscribers, " << reported(m3) - reported(m2) << " bytes reported, " << heap3 - heap2
                 << " allocated; " << per_subscriber << " bytes per subscriber, "
                 << (heap3 - heap2) / static_cast<std::int64_t>(n) << " allocated per subscriber with the list's spare room");
    CHECK(close_to(reported(m3) - reported(m2), heap3 - heap2, subscriber_tolerance));
    CHECK(m3.stream_bytes >= m2.stream_bytes); // the list's unused capacity is the stream's

    // (b) The bound.
    CHECK(per_subscriber <= 16 * 1024);

    // (c) Half of them leave: the report and the heap come down together (the list keeps
    // its storage while more than a quarter of it is used).
    for (std::size_t i = 0; i < n / 2; ++i) s.on_session(ctx, hello(rtp::session_type::leave, name), viewer_at(i));
    const std::int64_t heap4 = live_bytes;
    const relay::sfu_memory m4 = s.memory(name);
    CHECK(m4.subscribers == n - n / 2);
    CHECK(m4.subscriber_bytes == m3.subscriber_bytes / n * (n - n / 2));
    CHECK(close_to(reported(m3) - reported(m4), heap3 - heap4, subscriber_tolerance));
    CHECK(reported(m4) < reported(m3));

    // The rest leave: back to the stream alone, its list's storage given back.
    for (std::size_t i = n / 2; i < n; ++i) s.on_session(ctx, hello(rtp::session_type::leave, name), viewer_at(i));
    const std::int64_t heap5 = live_bytes;
    const relay::sfu_memory m5 = s.memory(name);
    CHECK(m5.subscribers == 0);
    CHECK(m5.subscriber_bytes == 0);
    CHECK(m5.stream_bytes == m2.stream_bytes);
    CHECK(heap5 == heap2);

    // The whole sfu's report is the sum of its streams' (the warm-up stream has a waiting viewer).
    const relay::sfu_memory all = s.memory();
    const relay::sfu_memory other = s.memory("warm-up");
    CHECK(all.streams == 2);
    CHECK(all.subscribers == other.subscribers);
    CHECK(all.stream_bytes == m5.stream_bytes + other.stream_bytes);
    CHECK(all.subscriber_bytes == other.subscriber_bytes);
    CHECK(s.memory("nothing").streams == 0);
    return per_subscriber;
}

} // namespace

TEST_CASE("sfu memory: a one-encoding VP8 stream and 1000 subscribers, reported as allocated, at most 16 KB each") {
    const std::size_t per = check_stream(camera(), 1000, 1);
    CHECK(per > 8 * 1024); // the leg and the selector are there
}

TEST_CASE("sfu memory: a three-encoding simulcast stream and 1000 subscribers, reported as allocated, at most 16 KB each") {
    const std::size_t per = check_stream(simulcast(), 1000, 3);
    CHECK(per > 8 * 1024);
}

TEST_CASE("sfu memory: a subscriber waiting for a stream not yet live has a leg and no selector") {
    packet_pool pool;
    quiet_context ctx{pool};
    relay::sfu s;
    const std::int64_t heap0 = live_bytes;
    s.on_session(ctx, hello(rtp::session_type::play, "later"), viewer_at(1));
    const std::int64_t heap1 = live_bytes;
    const relay::sfu_memory m = s.memory("later");
    CHECK(m.streams == 1);
    CHECK(m.subscribers == 1);
    CHECK(m.cached_packets == 0);
    REQUIRE(s.find("later"));
    CHECK_FALSE(s.find("later")->subscribers.front().selector); // made when the stream goes live
    CHECK(m.subscriber_bytes < 12 * 1024);                       // the leg alone
    // The first stream also makes the stream table's buckets: a few hundred bytes beyond the report.
    CHECK(reported(m) <= heap1 - heap0);
    CHECK(heap1 - heap0 - reported(m) < 1024);
}
