// The relay node's whole forwarding path over real UDP allocates nothing per packet once
// warmed up: an onair::relay_node (transport::udp: recvmmsg into pooled buffers, sendmmsg,
// the sfu in its default configuration) on 127.0.0.1 forwards one published stream (VP8 in
// three temporal layers with key frames, Opus, RTX announced) from a POSIX socket to 20
// viewer sockets that keep their hellos up and send transport-wide feedback, with 1 and 2
// send workers and UDP GSO on and off. Every operator new of the process (node thread, send
// workers, the test's own thread) is counted over 10 s of streaming after a fast
// warm-up that fills the stream's caches and the packet pool. A separate executable.
#include <onair/relay_node.hpp>

#include <onair/core/media_frame.hpp>
#include <onair/qos/transport_feedback_generator.hpp>
#include <onair/rtp/opus.hpp>
#include <onair/rtp/packet.hpp>
#include <onair/rtp/session_message.hpp>
#include <onair/rtp/vp8.hpp>

#include "support/packet_templates.hpp"
#include "support/rtp_builders.hpp"

#include "support/counting_new.hpp"

#include <doctest/doctest.h>

#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <future>
#include <limits>
#include <span>
#include <string>
#include <thread>
#include <vector>

using onair_test::allocations;

using namespace onair;
using onair_test::packet_template;
using onair_test::templates_of;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr std::uint32_t video_ssrc = 0x1000, audio_ssrc = 0x2000, rtx_ssrc = 0x3000;
constexpr std::size_t viewer_count = 20;
constexpr std::size_t max_frame_packets = 64;
/// Warm-up video goes in small packets (the same bitrate in 2-3 times the packets) so that
/// the 1024-packet video cache fills in under 2.5 s; warm-up audio goes 4 times as often.
constexpr std::size_t warm_payload = 400;

int udp_socket() {
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    REQUIRE(fd >= 0);
    const int buf = 1 << 20;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0);
    return fd;
}

sockaddr_in to_sockaddr(const transport::endpoint& e) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(e.address().to_v4().to_uint());
    a.sin_port = htons(e.port());
    return a;
}

/// A datagram built once, sent many times.
struct fixed_datagram {
    std::array<std::uint8_t, 1024> bytes{};
    std::size_t size = 0;
};

fixed_datagram hello(rtp::session_type type) {
    rtp::session_message m;
    m.type = type;
    m.sender_ssrc = type == rtp::session_type::publish ? video_ssrc : 0;
    m.stream.name = "cam";
    if (type == rtp::session_type::publish) {
        m.stream.video_ssrc = video_ssrc;
        m.stream.audio_ssrc = audio_ssrc;
        m.stream.video_codec = "VP8";
        m.stream.audio_codec = "opus";
        m.stream.video_rtx_ssrc = rtx_ssrc; // the legs' probes go out on it
    }
    fixed_datagram d;
    d.size = rtp::write_session_message(m, d.bytes);
    REQUIRE(d.size > 0);
    return d;
}

/// Sends `n` bytes, waiting while the socket buffer is full (nothing is dropped here).
void send_all(int fd, const sockaddr_in& to, const std::uint8_t* b, std::size_t n) {
    while (::sendto(fd, b, n, 0, reinterpret_cast<const sockaddr*>(&to), sizeof to) < 0 && errno == EAGAIN) std::this_thread::yield();
}

/// The publisher: a VP8 L1T3 stream at 30 frames/s (about 1.5 Mbit/s; a key frame every
/// 2 s and on request), Opus every 20 ms, from packets built once and renumbered as they
/// go out. Each frame leaves in one sendmmsg, as a host's pacer burst would.
class publisher {
public:
    publisher() : fd_(udp_socket()) {
        auto make = [&](std::size_t max_payload) {
            rtp::vp8_payload::packetizer vp8;
            auto frame = [&](bool key, std::uint8_t tid, bool sync, std::size_t size) {
                auto f = onair_test::fake_vp8_frame(key, 0, size);
                f.temporal_layer = tid;
                f.layer_sync = sync;
                f.non_reference = tid == 2;
                auto t = templates_of(vp8, f, video_ssrc, 96, max_payload);
                REQUIRE(t.size() <= max_frame_packets);
                return t;
            };
            frame_set s;
            s.key = frame(true, 0, false, 18'000);
            s.layers[0] = frame(false, 0, false, 10'000);
            s.layers[1] = frame(false, 1, true, 6'500);
            s.layers[2] = frame(false, 2, true, 4'000);
            return s;
        };
        normal_ = make(rtp::max_payload_size);
        small_ = make(warm_payload);
        rtp::opus_payload::packetizer opus;
        encoded_frame a;
        a.kind = media_kind::audio;
        a.data.assign(90, 0x3c);
        audio_ = templates_of(opus, a, audio_ssrc, 111).at(0);
        hello_ = hello(rtp::session_type::publish);
    }
    ~publisher() { ::close(fd_); }
    publisher(const publisher&) = delete;
    publisher& operator=(const publisher&) = delete;

    void aim(const sockaddr_in& node) noexcept { to_ = node; }
    int fd() const noexcept { return fd_; }

    void send_hello() { send_all(fd_, to_, hello_.bytes.data(), hello_.size); }

    void video_frame(bool small) {
        constexpr std::array<std::uint8_t, 4> pattern{0, 2, 1, 2};
        const bool key = keyframe_wanted_ || frame_ % 60 == 0;
        keyframe_wanted_ = false;
        const std::uint8_t tid = key ? 0 : pattern[frame_ % pattern.size()];
        if (tid == 0) ++tl0_;
        const frame_set& set = small ? small_ : normal_;
        const auto& packets = key ? set.key : set.layers[tid];
        std::size_t n = 0;
        for (const auto& t : packets) {
            std::uint8_t* b = out_[n].data();
            std::memcpy(b, t.bytes.data(), t.bytes.size());
            rtp::store_be16(b + 2, video_seq_++);
            rtp::store_be32(b + 4, static_cast<std::uint32_t>(frame_ * 3000));
            rtp::store_be16(b + t.tseq, transport_seq_++);
            rtp::store_be16(b + t.payload + 2, static_cast<std::uint16_t>(0x8000 | (frame_ & 0x7fff)));
            b[t.payload + 4] = tl0_;
            iov_[n] = {b, t.bytes.size()};
            msgs_[n] = {};
            msgs_[n].msg_hdr.msg_name = &to_;
            msgs_[n].msg_hdr.msg_namelen = sizeof to_;
            msgs_[n].msg_hdr.msg_iov = &iov_[n];
            msgs_[n].msg_hdr.msg_iovlen = 1;
            ++n;
        }
        for (std::size_t done = 0; done < n;) {
            const int sent = ::sendmmsg(fd_, msgs_.data() + done, static_cast<unsigned>(n - done), 0);
            if (sent > 0) done += static_cast<std::size_t>(sent);
            else if (errno == EAGAIN) std::this_thread::yield();
            else {
                ++send_errors;
                ++done;
            }
        }
        video_packets += n;
        ++frame_;
    }

    void audio_packet() {
        std::uint8_t* b = out_[0].data();
        std::memcpy(b, audio_.bytes.data(), audio_.bytes.size());
        rtp::store_be16(b + 2, audio_seq_++);
        rtp::store_be32(b + 4, audio_ts_);
        rtp::store_be16(b + audio_.tseq, transport_seq_++);
        send_all(fd_, to_, b, audio_.bytes.size());
        audio_ts_ += 960;
        ++audio_packets;
    }

    /// Reads what the node sent the publisher (acks, receiver reports, feedback); a PLI
    /// makes the next frame a key frame.
    void drain() noexcept {
        for (;;) {
            const ssize_t n = ::recv(fd_, in_.data(), in_.size(), MSG_DONTWAIT);
            if (n < 0) return;
            ++received;
            if (n >= 12 && (in_[0] >> 6) == 2 && in_[1] == 206 && (in_[0] & 0x1f) == 1) {
                keyframe_wanted_ = true;
                ++keyframe_requests;
            }
        }
    }

    std::uint64_t video_packets = 0, audio_packets = 0, received = 0, keyframe_requests = 0, send_errors = 0;

private:
    struct frame_set {
        std::vector<packet_template> key;
        std::array<std::vector<packet_template>, 3> layers;
    };
    int fd_;
    sockaddr_in to_{};
    frame_set normal_, small_;
    packet_template audio_;
    fixed_datagram hello_;
    std::array<std::array<std::uint8_t, max_datagram_size>, max_frame_packets> out_{};
    std::array<iovec, max_frame_packets> iov_{};
    std::array<mmsghdr, max_frame_packets> msgs_{};
    std::array<std::uint8_t, max_datagram_size> in_{};
    std::uint64_t frame_ = 0;
    std::uint8_t tl0_ = 0xff;
    bool keyframe_wanted_ = false;
    std::uint16_t video_seq_ = 31'000, audio_seq_ = 7'000, transport_seq_ = 900;
    std::uint32_t audio_ts_ = 48'000;
};

/// A viewer: a socket that plays the stream, and the transport-wide feedback it sends back.
struct viewer {
    int fd = -1;
    qos::transport_feedback_generator feedback{};
    std::uint64_t video = 0, audio = 0, padding = 0, rtcp = 0, other = 0, feedback_sent = 0;
};

/// Every socket of the test, served by one thread (this one): the publisher's sending and
/// the viewers' draining and feedback, in real time. Nothing here allocates once built.
class audience {
public:
    audience() : play_(hello(rtp::session_type::play)) {
        viewers_.reserve(viewer_count);
        for (std::size_t i = 0; i < viewer_count; ++i) {
            viewers_.emplace_back();
            viewers_.back().fd = udp_socket();
        }
        for (std::size_t i = 0; i < viewer_count; ++i) polls_[i] = {viewers_[i].fd, POLLIN, 0};
        polls_[viewer_count] = {pub.fd(), POLLIN, 0};
        for (std::size_t j = 0; j < batch; ++j) {
            iov_[j] = {bufs_[j].data(), bufs_[j].size()};
            msgs_[j] = {};
        }
    }
    ~audience() {
        for (auto& v : viewers_) ::close(v.fd);
    }
    audience(const audience&) = delete;
    audience& operator=(const audience&) = delete;

    void aim(const transport::endpoint& node) noexcept {
        to_ = to_sockaddr(node);
        pub.aim(to_);
    }

    void send_plays() {
        for (auto& v : viewers_) send_all(v.fd, to_, play_.bytes.data(), play_.size);
    }

    /// Streams for `d`: a frame every 1/30 s (small packets when `warm`), audio every 20 ms
    /// (5 ms when `warm`), hellos every second.
    void stream(clock_type::duration d, bool warm) {
        const auto start = clock_type::now(), end = start + d;
        const auto frame_every = std::chrono::duration_cast<clock_type::duration>(std::chrono::microseconds(33'333));
        const auto audio_every = std::chrono::duration_cast<clock_type::duration>(warm ? 5ms : 20ms);
        auto next_frame = start, next_audio = start;
        for (auto now = start; now < end; now = clock_type::now()) {
            if (now >= next_hello_) {
                pub.send_hello();
                send_plays();
                next_hello_ = now + 1s;
            }
            for (int k = 0; now >= next_frame && k < 3; ++k) { // catching up at most 3 frames
                pub.video_frame(warm);
                next_frame += frame_every;
            }
            for (int k = 0; now >= next_audio && k < 3; ++k) {
                pub.audio_packet();
                next_audio += audio_every;
            }
            if (now > next_frame + 100ms) next_frame = now; // descheduled for long: no burst
            if (now > next_audio + 100ms) next_audio = now;
            drain(now);
            const auto wake = std::min({next_frame, next_audio, next_hello_, end});
            const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(wake - clock_type::now()).count();
            ::poll(polls_.data(), polls_.size(), static_cast<int>(std::clamp<long long>(wait, 0, 2)));
        }
        drain(clock_type::now());
    }

    std::span<const viewer> viewers() const noexcept { return viewers_; }

    publisher pub;

private:
    static constexpr std::size_t batch = 32;

    void drain(clock_type::time_point now) {
        pub.drain();
        for (std::size_t i = 0; i < viewers_.size(); ++i) {
            viewer& v = viewers_[i];
            for (;;) {
                for (std::size_t j = 0; j < batch; ++j) {
                    msgs_[j] = {};
                    msgs_[j].msg_hdr.msg_iov = &iov_[j];
                    msgs_[j].msg_hdr.msg_iovlen = 1;
                }
                const int got = ::recvmmsg(v.fd, msgs_.data(), batch, MSG_DONTWAIT, nullptr);
                if (got <= 0) break;
                const auto arrival = clock_type::now();
                for (std::size_t j = 0; j < static_cast<std::size_t>(got); ++j) count(v, {bufs_[j].data(), msgs_[j].msg_len}, arrival);
                if (static_cast<std::size_t>(got) < batch) break;
            }
            if (v.feedback.due(now))
                v.feedback.build(now, static_cast<std::uint32_t>(0x5eed + i), video_ssrc, [&](rtp::bytes_view b) {
                    send_all(v.fd, to_, b.data(), b.size());
                    ++v.feedback_sent;
                });
        }
    }

    static void count(viewer& v, rtp::bytes_view d, clock_type::time_point arrival) {
        if (rtp::is_rtcp(d)) {
            ++v.rtcp;
            return;
        }
        rtp::packet_view p;
        if (rtp::parse(d, p)) {
            ++v.other;
            return;
        }
        if (const auto tseq = p.transport_sequence()) v.feedback.on_packet(*tseq, arrival);
        if (p.payload.empty() && p.padding > 0) ++v.padding; // probes and fills
        else if (p.ssrc == video_ssrc) ++v.video;
        else if (p.ssrc == audio_ssrc) ++v.audio;
        else ++v.other;
    }

    std::vector<viewer> viewers_;
    fixed_datagram play_;
    sockaddr_in to_{};
    clock_type::time_point next_hello_{};
    std::array<pollfd, viewer_count + 1> polls_{};
    std::array<std::array<std::uint8_t, max_datagram_size>, batch> bufs_{};
    std::array<iovec, batch> iov_{};
    std::array<mmsghdr, batch> msgs_{};
};

/// What the node knows, read on its thread.
struct node_figures {
    relay_node_stats node;
    transport::transport_stats udp;
    relay::relay_stats relay;
    std::size_t subscribers = 0;
    bool live = false, gso = false;
    std::int64_t min_estimate_kbps = 0;
};

node_figures read_node(relay_node& node, asio::io_context& io) {
    std::promise<node_figures> p;
    auto f = p.get_future();
    asio::post(io, [&] {
        node_figures r;
        r.node = node.stats();
        r.udp = node.transport().stats();
        r.relay = node.relay().stats();
        r.gso = node.transport().gso();
        r.min_estimate_kbps = std::numeric_limits<std::int64_t>::max();
        if (const auto* s = node.relay().find("cam")) {
            r.live = s->live;
            r.subscribers = s->subscribers.size();
            for (const auto& sub : s->subscribers) r.min_estimate_kbps = std::min(r.min_estimate_kbps, sub.leg.target_bps() / 1000);
        }
        p.set_value(r);
    });
    return f.get();
}

void check_steady_state(std::size_t workers, bool gso) {
    const std::string mode = std::to_string(workers) + (workers > 1 ? " send workers, GSO " : " send worker, GSO ") + (gso ? "on" : "off");
    INFO(mode);
    asio::io_context io(1);
    relay_node_config nc;
    nc.workers = workers;
    relay_node node(relay::sfu{}, sink::null_packets{}, nc, io, transport::endpoint(asio::ip::make_address_v4("127.0.0.1"), 0));
    node.transport().set_gso(gso);
    node.start();
    REQUIRE(node.transport().send_workers() == workers);
    const bool gso_expected = node.transport().gso(); // read before the node's thread runs
    if (gso && !gso_expected) MESSAGE("UDP GSO is not available here: GSO on runs as GSO off");
    if (!gso) REQUIRE_FALSE(gso_expected);
    std::thread runner([&] { io.run(); });
    struct joiner { // stops the node on its thread, whatever happens below
        asio::io_context& io;
        relay_node& node;
        std::thread& t;
        ~joiner() {
            asio::post(io, [this] {
                node.stop();
                io.stop();
            });
            t.join();
        }
    } join{io, node, runner};

    audience a;
    a.aim(node.local_endpoint());
    a.pub.send_hello();
    for (int i = 0; i < 100 && !read_node(node, io).live; ++i) std::this_thread::sleep_for(10ms);
    a.send_plays();
    for (int i = 0; i < 100 && read_node(node, io).subscribers < viewer_count; ++i) std::this_thread::sleep_for(10ms);
    REQUIRE(read_node(node, io).subscribers == viewer_count);

    // Warm-up: 3 s of small packets fill the video cache (1024 packets) and the audio cache
    // (256) and grow the packet pool to hold them; 1.5 s of the real stream after that, so
    // the legs' estimates and layers settle on it.
    a.stream(3s, true);
    a.stream(1500ms, false);

    const node_figures before = read_node(node, io);
    std::array<std::uint64_t, viewer_count> video0{}, audio0{};
    for (std::size_t i = 0; i < viewer_count; ++i) {
        video0[i] = a.viewers()[i].video;
        audio0[i] = a.viewers()[i].audio;
    }
    const std::uint64_t sent_video0 = a.pub.video_packets, sent_audio0 = a.pub.audio_packets;

    const std::uint64_t at_start = allocations.load();
    a.stream(10s, false);
    const std::uint64_t during = allocations.load() - at_start;

    std::this_thread::sleep_for(50ms); // what is in flight
    const std::uint64_t sent_video = a.pub.video_packets - sent_video0, sent_audio = a.pub.audio_packets - sent_audio0;
    a.stream(0ms, false); // drains what arrived since
    const node_figures after = read_node(node, io);

    std::uint64_t min_video = std::numeric_limits<std::uint64_t>::max(), min_audio = min_video;
    for (std::size_t i = 0; i < viewer_count; ++i) {
        const viewer& v = a.viewers()[i];
        min_video = std::min(min_video, v.video - video0[i]);
        min_audio = std::min(min_audio, v.audio - audio0[i]);
    }
    const std::uint64_t rtp_in = after.node.rtp - before.node.rtp;
    const std::uint64_t split = after.udp.split_flushes - before.udp.split_flushes;
    const std::uint64_t gso_sends = after.udp.gso_sends - before.udp.gso_sends;
    const std::uint64_t gso_datagrams = after.udp.gso_datagrams - before.udp.gso_datagrams;
    const std::uint64_t datagrams_out = after.udp.datagrams_sent - before.udp.datagrams_sent;
    const std::uint64_t dropped = after.udp.send_dropped - before.udp.send_dropped;
    MESSAGE(mode << ": " << sent_video << " video + " << sent_audio << " audio packets sent, " << rtp_in << " RTP in at the node, "
                 << datagrams_out << " datagrams out (" << dropped << " dropped); least a viewer got: " << min_video << " video, "
                 << min_audio << " audio; " << split << " split flushes, " << gso_sends << " GSO sends (" << gso_datagrams
                 << " datagrams, " << after.udp.gso_refused - before.udp.gso_refused << " refused); "
                 << after.relay.layer_dropped - before.relay.layer_dropped << " layer drops, "
                 << after.relay.padding_sent - before.relay.padding_sent << " probe packets, "
                 << after.relay.subscriber_feedback - before.relay.subscriber_feedback
                 << " feedback messages taken; lowest leg estimate " << after.min_estimate_kbps
                 << " kbps; allocations while measured: " << during);

    CHECK(a.pub.send_errors == 0);
    CHECK(after.node.malformed == 0);
    CHECK(after.node.oversized == 0);
    CHECK(after.relay.unknown_stream == 0);
    CHECK(after.relay.duplicates == 0);
    CHECK(after.relay.layer_unparsed == 0);
    CHECK(after.subscribers == viewer_count); // nobody timed out
    CHECK(after.live);
    // Not vacuous: the stream went through the node to every viewer while counted.
    CHECK(sent_video > 1500);
    CHECK(rtp_in >= sent_video + sent_audio);
    CHECK(after.relay.subscriber_feedback > before.relay.subscriber_feedback); // the legs' estimators ran
    CHECK(min_audio * 100 >= sent_audio * 98);
    CHECK(min_video * 100 >= sent_video * 90);
    CHECK(min_video + min_audio > 2000);
    if (workers > 1) CHECK(split > 0);
    else CHECK(split == 0);
    if (gso_expected && after.gso) CHECK(gso_sends > 0);
    if (!gso) CHECK(gso_sends == 0);
    CHECK(during == 0);
}

} // namespace

TEST_CASE("relay_node on UDP: no allocation per packet in steady state, 1 send worker, GSO off") { check_steady_state(1, false); }
TEST_CASE("relay_node on UDP: no allocation per packet in steady state, 1 send worker, GSO on") { check_steady_state(1, true); }
TEST_CASE("relay_node on UDP: no allocation per packet in steady state, 2 send workers, GSO off") { check_steady_state(2, false); }
TEST_CASE("relay_node on UDP: no allocation per packet in steady state, 2 send workers, GSO on") { check_steady_state(2, true); }
