// transport::udp's batched I/O over real sockets on 127.0.0.1, with UDP GSO on and off:
// queue_send / flush_sends deliver every datagram byte for byte and, per destination, in
// the order queued (runs of one size, the last shorter, go as GSO messages of at most
// udp_gso_segments datagrams and udp_gso_bytes); heads and copied tails may change right
// after queue_send, kept tails are sent from the caller's buffer; a full queue flushes by
// itself; receive_many takes what is waiting in one call, with sizes and sources; a bad
// destination, or a GSO message the kernel refuses, costs no other datagram. Each of those
// holds with send workers as well, which share a flush out by destination.
#include <onair/core/packet_buffer.hpp>
#include <onair/transport/udp.hpp>

#include <doctest/doctest.h>

#include <asio/io_context.hpp>

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace onair;
using namespace std::chrono_literals;
using transport::endpoint;
using transport::udp;

namespace {

using bytes = std::vector<std::uint8_t>;
using steady = std::chrono::steady_clock;

/// Longest any test waits for datagrams already sent.
constexpr auto patience = 2s;

endpoint loopback() { return {asio::ip::make_address_v4("127.0.0.1"), 0}; }

/// A datagram whose every byte depends on its destination, its place and its offset, so a
/// datagram delivered to the wrong socket, out of place, cut or merged shows.
bytes datagram(std::size_t dest, std::size_t seq, std::size_t size) {
    bytes d(size);
    for (std::size_t k = 0; k < size; ++k) {
        auto x = static_cast<std::uint32_t>(dest * 0x9e3779b9u ^ seq * 0x85ebca6bu ^ k * 0xc2b2ae35u);
        x ^= x >> 15;
        x *= 0x2c1b3c6du;
        x ^= x >> 12;
        d[k] = static_cast<std::uint8_t>(x);
    }
    return d;
}

/// Whether `fd` becomes readable within `limit`.
bool readable(int fd, std::chrono::milliseconds limit) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(limit.count())) > 0;
}

/// A transport::udp that receives with receive_many and keeps every datagram it took.
struct receiver {
    explicit receiver(asio::io_context& io) : sock(io, loopback(), 16 << 20) {}

    endpoint at() const { return sock.local_endpoint(); }
    int fd() { return sock.socket().native_handle(); }

    /// Takes every datagram waiting now.
    void take() {
        std::array<packet_ref, transport::udp_batch> bufs;
        std::array<endpoint, transport::udp_batch> src;
        for (auto& b : bufs) b = pool.acquire();
        while (const std::size_t n = sock.receive_many(bufs, src))
            for (std::size_t i = 0; i < n; ++i) {
                got.emplace_back(bufs[i].bytes().begin(), bufs[i].bytes().end());
                from.push_back(src[i]);
            }
    }

    udp sock;
    packet_pool pool{64};
    std::vector<bytes> got;
    std::vector<endpoint> from;
};

/// Takes from every receiver until receiver i holds want[i] datagrams (or `patience` ran
/// out), then once more, so that any extra datagram shows as well.
void await(std::deque<receiver>& rs, const std::vector<std::size_t>& want) {
    const auto deadline = steady::now() + patience;
    for (;;) {
        bool all = true;
        for (std::size_t i = 0; i < rs.size(); ++i) {
            rs[i].take();
            if (rs[i].got.size() < want[i]) all = false;
        }
        if (all || steady::now() > deadline) break;
        for (std::size_t i = 0; i < rs.size(); ++i)
            if (rs[i].got.size() < want[i]) (void)readable(rs[i].fd(), 10ms);
    }
    for (auto& r : rs) r.take();
}

/// The datagrams received equal those expected, one for one and in order.
void check_same(const std::vector<bytes>& got, const std::vector<bytes>& want, const std::string& who) {
    INFO(who);
    CHECK(got.size() == want.size());
    const std::size_t n = std::min(got.size(), want.size());
    std::size_t first = n;
    for (std::size_t i = 0; i < n && first == n; ++i)
        if (got[i] != want[i]) first = i;
    CHECK_MESSAGE(first == n, "first difference at datagram ", first, ": ", (first < n ? got[first].size() : 0), " bytes received, ",
                  (first < n ? want[first].size() : 0), " expected");
}

/// How a datagram is handed to queue_send.
enum class split {
    head_and_kept_tail,   ///< a 12-byte head (as an RTP header), the rest a tail kept until the flush
    head_and_copied_tail, ///< the same cut, the tail copied
    whole_head,           ///< all of it as the head, no tail
    whole_kept_tail,      ///< no head, all of it a kept tail
};
split split_for(std::size_t i) { return static_cast<split>(i % 4); }

/// Queues `d` to `to` cut as `how` says. What queue_send must copy (heads, tails not kept)
/// is overwritten right after the call, so a datagram sent from those bytes instead of the
/// copy shows; kept tails go into `kept`, unchanged until the flush.
void queue(udp& s, const endpoint& to, const bytes& d, split how, std::deque<bytes>& kept) {
    const auto cut = static_cast<std::ptrdiff_t>(std::min<std::size_t>(12, d.size()));
    bytes head(d.begin(), d.begin() + cut), tail(d.begin() + cut, d.end()), whole = d;
    switch (how) {
    case split::head_and_kept_tail:
        kept.push_back(tail);
        s.queue_send(to, head, kept.back(), true);
        break;
    case split::head_and_copied_tail: s.queue_send(to, head, tail, false); break;
    case split::whole_head: s.queue_send(to, whole, {}, false); break;
    case split::whole_kept_tail:
        kept.push_back(d);
        s.queue_send(to, {}, kept.back(), true);
        break;
    }
    std::fill(head.begin(), head.end(), std::uint8_t{0xee});
    std::fill(tail.begin(), tail.end(), std::uint8_t{0xee});
    std::fill(whole.begin(), whole.end(), std::uint8_t{0xee});
}

/// Puts `s` in the GSO mode asked for; returns whether GSO is on. Off although asked for
/// only where the kernel lacks UDP_SEGMENT or ONAIR_UDP_GSO=0: the plain path is checked.
bool gso_mode(udp& s, bool on, std::size_t workers = 1) {
    s.set_send_workers(workers);
    REQUIRE(s.send_workers() == workers);
    s.set_gso(on);
    static bool told = false;
    if (on && !s.gso() && !std::exchange(told, true)) MESSAGE("UDP GSO unavailable here (no kernel support, or ONAIR_UDP_GSO=0): checking the plain path");
    return s.gso();
}

std::size_t total_bytes(const std::vector<bytes>& ds) {
    std::size_t n = 0;
    for (const auto& d : ds) n += d.size();
    return n;
}

} // namespace

TEST_CASE("udp: GSO is on by default where the kernel has it, off with ONAIR_UDP_GSO=0, and set_gso switches it") {
    asio::io_context io;
    udp s(io, loopback());
    const char* env = std::getenv("ONAIR_UDP_GSO");
    const bool env_off = env && env[0] == '0';
    CHECK(transport::udp_gso_wanted() == !env_off);
    if (env_off) {
        CHECK_FALSE(s.gso());
        s.set_gso(true);
        CHECK_FALSE(s.gso());
    } else {
#ifdef UDP_SEGMENT
        CHECK(s.gso());
#endif
    }
    s.set_gso(false);
    CHECK_FALSE(s.gso());
}

TEST_CASE("udp: one flush delivers interleaved datagrams to three destinations, each in its queued order, byte for byte") {
    bool want_gso = true;
    std::size_t workers = 1;
    SUBCASE("GSO on") { want_gso = true; }
    SUBCASE("GSO off") { want_gso = false; }
    SUBCASE("GSO on, 3 send workers") { want_gso = true; workers = 3; }
    SUBCASE("GSO off, 3 send workers") { want_gso = false; workers = 3; }

    asio::io_context io;
    udp s(io, loopback());
    std::deque<receiver> rs;
    for (int i = 0; i < 3; ++i) rs.emplace_back(io);
    const bool gso = gso_mode(s, want_gso, workers);

    // Frame-like runs per destination: `run` datagrams, all of `full` bytes but the last.
    // Destination 0 ends on a partial run of 1200-byte datagrams and destination 1 starts
    // with some: a run must stop where its destination's datagrams do.
    constexpr std::array<std::size_t, 3> run{6, 4, 10}, full{1200, 1200, 1400}, last{300, 1, 700};
    constexpr std::size_t per_destination = 100;
    std::vector<std::vector<bytes>> expected(3);
    std::deque<bytes> kept;
    for (std::size_t i = 0; i < per_destination; ++i)
        for (std::size_t d = 0; d < 3; ++d) {
            const bytes dg = datagram(d, i, i % run[d] == run[d] - 1 ? last[d] : full[d]);
            queue(s, rs[d].at(), dg, split_for(i + d), kept);
            expected[d].push_back(dg);
        }
    CHECK(s.stats().datagrams_sent == 0); // nothing leaves before the flush
    for (auto& r : rs) r.take();
    for (auto& r : rs) CHECK(r.got.empty());

    s.flush_sends();
    await(rs, {per_destination, per_destination, per_destination});
    std::size_t bytes_queued = 0;
    for (std::size_t d = 0; d < 3; ++d) {
        check_same(rs[d].got, expected[d], "destination " + std::to_string(d));
        for (const auto& from : rs[d].from) CHECK(from == s.local_endpoint());
        bytes_queued += total_bytes(expected[d]);
    }
    const auto& st = s.stats();
    CHECK(st.datagrams_sent == 3 * per_destination);
    CHECK(st.bytes_sent == bytes_queued);
    CHECK(st.send_dropped == 0);
    if (gso) {
        // Every run is one GSO message (16 + 1 partial, 25, 10 of them), carrying all 300.
        CHECK(st.gso_sends > 0);
        CHECK(st.gso_datagrams > st.gso_sends);
        CHECK(st.gso_sends == 17 + 25 + 10);
        CHECK(st.gso_datagrams == 3 * per_destination);
        CHECK(st.gso_refused == 0);
        CHECK(s.gso());
    } else {
        CHECK(st.gso_sends == 0);
        CHECK(st.gso_datagrams == 0);
    }
}

TEST_CASE("udp: datagrams of mixed sizes to one destination split into runs where a larger one follows or a shorter one ends them") {
    bool want_gso = true;
    std::size_t workers = 1;
    SUBCASE("GSO on") { want_gso = true; }
    SUBCASE("GSO off") { want_gso = false; }
    SUBCASE("GSO on, 3 send workers") { want_gso = true; workers = 3; }
    SUBCASE("GSO off, 3 send workers") { want_gso = false; workers = 3; }

    asio::io_context io;
    udp s(io, loopback());
    std::deque<receiver> rs;
    rs.emplace_back(io);
    const bool gso = gso_mode(s, want_gso, workers);

    // Runs: [1000 1000 1000 600] [1000] [1200 1200] [1300 1300 1300 1300 50] [50 50]
    // [1400 1399] [1399] [1400]: a larger datagram never joins a run of smaller ones.
    const std::vector<std::size_t> sizes{1000, 1000, 1000, 600, 1000, 1200, 1200, 1300, 1300, 1300,
                                         1300, 50, 50, 50, 1400, 1399, 1399, 1400};
    std::vector<bytes> expected;
    std::deque<bytes> kept;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
        expected.push_back(datagram(0, i, sizes[i]));
        queue(s, rs[0].at(), expected.back(), split_for(i), kept);
    }
    s.flush_sends();
    await(rs, {sizes.size()});
    check_same(rs[0].got, expected, "mixed sizes");

    const auto& st = s.stats();
    CHECK(st.datagrams_sent == sizes.size());
    CHECK(st.send_dropped == 0);
    if (gso) {
        CHECK(st.gso_sends == 5);
        CHECK(st.gso_datagrams == 4 + 2 + 5 + 2 + 2);
    } else {
        CHECK(st.gso_sends == 0);
    }
}

TEST_CASE("udp: long runs of one size go as GSO messages of at most udp_gso_segments datagrams and udp_gso_bytes") {
    bool want_gso = true;
    std::size_t workers = 1;
    SUBCASE("GSO on") { want_gso = true; }
    SUBCASE("GSO off") { want_gso = false; }
    SUBCASE("GSO on, 3 send workers") { want_gso = true; workers = 3; }
    SUBCASE("GSO off, 3 send workers") { want_gso = false; workers = 3; }

    asio::io_context io;
    udp s(io, loopback());
    std::deque<receiver> rs;
    rs.emplace_back(io);
    rs.emplace_back(io);
    const bool gso = gso_mode(s, want_gso, workers);

    // 150 small datagrams: the segment limit binds; 100 of 1400 bytes: the byte limit does.
    constexpr std::array<std::size_t, 2> count{150, 100}, size{100, 1400};
    std::vector<std::vector<bytes>> expected(2);
    std::deque<bytes> kept;
    std::size_t messages = 0;
    for (std::size_t d = 0; d < 2; ++d) {
        for (std::size_t i = 0; i < count[d]; ++i) {
            expected[d].push_back(datagram(d, i, size[d]));
            queue(s, rs[d].at(), expected[d].back(), split_for(i), kept);
        }
        const std::size_t per_message = std::min(transport::udp_gso_segments, transport::udp_gso_bytes / size[d]);
        messages += (count[d] + per_message - 1) / per_message;
    }
    s.flush_sends();
    await(rs, {count[0], count[1]});
    check_same(rs[0].got, expected[0], "150 x 100 bytes");
    check_same(rs[1].got, expected[1], "100 x 1400 bytes");

    const auto& st = s.stats();
    CHECK(st.datagrams_sent == count[0] + count[1]);
    CHECK(st.send_dropped == 0);
    if (gso) {
        CHECK(st.gso_sends == messages); // 64 64 22, and 46 46 8
        CHECK(st.gso_datagrams == count[0] + count[1]);
    } else {
        CHECK(st.gso_sends == 0);
    }
}

namespace {

/// One datagram of a plan: its destination (receiver index) and bytes.
struct planned {
    std::size_t dest;
    bytes d;
};

/// A queue_send that flushed the queue by itself: which call (0-based), and datagrams_sent
/// right after it.
struct self_flush {
    std::size_t call;
    std::uint64_t sent;
};

/// Queues the plan in order (datagram j cut as split_of(j) says), never calling flush_sends.
/// Whenever a queue_send flushed by itself, waits until the receivers hold what it sent, so
/// their buffers only ever hold one queue's worth.
std::vector<self_flush> queue_plan(udp& s, std::deque<receiver>& rs, const std::vector<planned>& plan, std::deque<bytes>& kept,
                                   split (*split_of)(std::size_t) = split_for) {
    std::vector<self_flush> flushes;
    std::vector<std::size_t> queued(rs.size(), 0);
    for (std::size_t j = 0; j < plan.size(); ++j) {
        const std::uint64_t before = s.stats().datagrams_sent;
        const std::vector<std::size_t> queued_before = queued;
        queue(s, rs[plan[j].dest].at(), plan[j].d, split_of(j), kept);
        ++queued[plan[j].dest];
        if (s.stats().datagrams_sent != before) {
            flushes.push_back({j, s.stats().datagrams_sent});
            await(rs, queued_before); // the flush carried everything queued before this call
        }
    }
    return flushes;
}

} // namespace

TEST_CASE("udp: queue_send flushes by itself once udp_send_queue datagrams wait, losing and reordering nothing") {
    bool want_gso = true;
    std::size_t workers = 1;
    SUBCASE("GSO on") { want_gso = true; }
    SUBCASE("GSO off") { want_gso = false; }
    SUBCASE("GSO on, 3 send workers") { want_gso = true; workers = 3; }
    SUBCASE("GSO off, 3 send workers") { want_gso = false; workers = 3; }

    asio::io_context io;
    udp s(io, loopback());
    std::deque<receiver> rs;
    for (int i = 0; i < 4; ++i) rs.emplace_back(io);
    const bool gso = gso_mode(s, want_gso, workers);

    // Small datagrams (runs of four of 100 bytes and one of 40), round robin to four sockets.
    const std::size_t n = transport::udp_send_queue + 452;
    std::vector<planned> plan;
    std::vector<std::vector<bytes>> expected(rs.size());
    for (std::size_t j = 0; j < n; ++j) {
        const std::size_t d = j % rs.size(), seq = j / rs.size();
        plan.push_back({d, datagram(d, seq, seq % 5 == 4 ? 40 : 100)});
        expected[d].push_back(plan.back().d);
    }
    std::deque<bytes> kept;
    const auto flushes = queue_plan(s, rs, plan, kept);
    REQUIRE(flushes.size() == 1);
    CHECK(flushes[0].call == transport::udp_send_queue); // the call that found the queue full
    CHECK(flushes[0].sent == transport::udp_send_queue);

    s.flush_sends();
    std::vector<std::size_t> want;
    for (const auto& e : expected) want.push_back(e.size());
    await(rs, want);
    for (std::size_t d = 0; d < rs.size(); ++d) check_same(rs[d].got, expected[d], "destination " + std::to_string(d));

    const auto& st = s.stats();
    CHECK(st.datagrams_sent == n);
    CHECK(st.send_dropped == 0);
    if (gso) CHECK(st.gso_sends > 0);
    else CHECK(st.gso_sends == 0);
}

TEST_CASE("udp: more copied bytes queued than one queue holds are sent all the same, in order per destination") {
    bool want_gso = true;
    std::size_t workers = 1;
    SUBCASE("GSO on") { want_gso = true; }
    SUBCASE("GSO off") { want_gso = false; }
    SUBCASE("GSO on, 3 send workers") { want_gso = true; workers = 3; }
    SUBCASE("GSO off, 3 send workers") { want_gso = false; workers = 3; }

    asio::io_context io;
    udp s(io, loopback());
    std::deque<receiver> rs;
    for (int i = 0; i < 4; ++i) rs.emplace_back(io);
    const bool gso = gso_mode(s, want_gso, workers);

    // 1000 datagrams of 1400 bytes, every byte copied by queue_send (1.4 MB).
    constexpr std::size_t n = 1000;
    std::vector<planned> plan;
    std::vector<std::vector<bytes>> expected(rs.size());
    for (std::size_t j = 0; j < n; ++j) {
        const std::size_t d = j % rs.size(), seq = j / rs.size();
        plan.push_back({d, datagram(d, seq, 1400)});
        expected[d].push_back(plan.back().d);
    }
    // Only the splits queue_send copies: head and tail, and whole heads.
    std::deque<bytes> kept;
    (void)queue_plan(s, rs, plan, kept, [](std::size_t j) { return j % 2 ? split::whole_head : split::head_and_copied_tail; });
    CHECK(kept.empty());
    s.flush_sends();
    std::vector<std::size_t> want;
    for (const auto& e : expected) want.push_back(e.size());
    await(rs, want);
    for (std::size_t d = 0; d < rs.size(); ++d) check_same(rs[d].got, expected[d], "destination " + std::to_string(d));

    const auto& st = s.stats();
    CHECK(st.datagrams_sent == n);
    CHECK(st.bytes_sent == n * 1400);
    CHECK(st.send_dropped == 0);
    if (gso) CHECK(st.gso_sends > 0);
    else CHECK(st.gso_sends == 0);
}

TEST_CASE("udp: a tail queued with tail_stays is sent from the caller's buffer, not copied") {
    bool want_gso = true;
    std::size_t workers = 1;
    SUBCASE("GSO on") { want_gso = true; }
    SUBCASE("GSO off") { want_gso = false; }
    SUBCASE("GSO on, 3 send workers") { want_gso = true; workers = 3; }
    SUBCASE("GSO off, 3 send workers") { want_gso = false; workers = 3; }

    asio::io_context io;
    udp s(io, loopback());
    std::deque<receiver> rs;
    rs.emplace_back(io);
    (void)gso_mode(s, want_gso, workers);

    // The tails are changed after queue_send only to see where the flush reads them from.
    const bytes head(12, 0x80);
    std::vector<bytes> tails(3, bytes(500, 0x11));
    for (auto& t : tails) s.queue_send(rs[0].at(), head, t, true);
    std::vector<bytes> expected;
    for (std::size_t i = 0; i < tails.size(); ++i) {
        std::fill(tails[i].begin(), tails[i].end(), static_cast<std::uint8_t>(0x20 + i));
        expected.push_back(head);
        expected.back().insert(expected.back().end(), tails[i].begin(), tails[i].end());
    }
    s.flush_sends();
    await(rs, {tails.size()});
    check_same(rs[0].got, expected, "kept tails");
}

TEST_CASE("udp: empty datagrams are sent, each one, also at the end of a run of one size") {
    bool want_gso = true;
    std::size_t workers = 1;
    SUBCASE("GSO on") { want_gso = true; }
    SUBCASE("GSO off") { want_gso = false; }
    SUBCASE("GSO on, 3 send workers") { want_gso = true; workers = 3; }
    SUBCASE("GSO off, 3 send workers") { want_gso = false; workers = 3; }

    asio::io_context io;
    udp s(io, loopback());
    std::deque<receiver> rs;
    rs.emplace_back(io);
    (void)gso_mode(s, want_gso, workers);

    const std::vector<bytes> expected{{}, {}, {}, datagram(0, 3, 1000), datagram(0, 4, 1000), {}};
    for (const auto& d : expected) s.queue_send(rs[0].at(), d, {}, false);
    s.flush_sends();
    await(rs, {expected.size()});
    check_same(rs[0].got, expected, "empty datagrams");
    CHECK(s.stats().datagrams_sent == expected.size());
}

TEST_CASE("udp: receive_many returns the datagrams waiting in one call, with their sizes and sources, and 0 at once when none wait") {
    asio::io_context io;
    udp r(io, loopback(), 16 << 20), a(io, loopback()), b(io, loopback());
    packet_pool pool{16};
    std::array<packet_ref, 8> bufs;
    std::array<endpoint, 8> from;
    for (auto& p : bufs) p = pool.acquire();

    auto t0 = steady::now();
    CHECK(r.receive_many(bufs, from) == 0);
    CHECK(steady::now() - t0 < 500ms);

    struct sent_one {
        udp* by;
        bytes d;
    };
    const std::vector<sent_one> sent{{&a, datagram(0, 0, 10)}, {&b, datagram(1, 1, 1)}, {&a, datagram(0, 2, 1499)},
                                     {&b, datagram(1, 3, 700)}, {&a, datagram(0, 4, 200)}};
    std::size_t total = 0;
    for (const auto& x : sent) {
        REQUIRE_FALSE(x.by->send_to(asio::buffer(x.d), r.local_endpoint()));
        total += x.d.size();
    }
    // Loopback delivers within send_to; the short grace only covers a deferred softirq.
    REQUIRE(readable(r.socket().native_handle(), 2000ms));
    std::this_thread::sleep_for(10ms);
    const std::size_t got = r.receive_many(bufs, from);
    REQUIRE(got == sent.size());
    for (std::size_t i = 0; i < got; ++i) {
        INFO("datagram ", i);
        CHECK(bufs[i].size() == sent[i].d.size());
        CHECK(bytes(bufs[i].bytes().begin(), bufs[i].bytes().end()) == sent[i].d);
        CHECK(from[i] == sent[i].by->local_endpoint());
    }
    CHECK(r.stats().datagrams_received == sent.size());
    CHECK(r.stats().bytes_received == total);

    t0 = steady::now();
    CHECK(r.receive_many(bufs, from) == 0);
    CHECK(steady::now() - t0 < 500ms);
}

TEST_CASE("udp: receive_many cuts a datagram larger than its buffer to the buffer's capacity") {
    asio::io_context io;
    udp r(io, loopback(), 16 << 20), a(io, loopback());
    packet_pool pool{4};
    std::array<packet_ref, 4> bufs;
    std::array<endpoint, 4> from;
    for (auto& p : bufs) p = pool.acquire();

    const bytes big = datagram(0, 0, 2000), small = datagram(0, 1, 100);
    REQUIRE_FALSE(a.send_to(asio::buffer(big), r.local_endpoint()));
    REQUIRE_FALSE(a.send_to(asio::buffer(small), r.local_endpoint()));
    std::vector<bytes> got;
    const auto deadline = steady::now() + patience;
    while (got.size() < 2 && steady::now() < deadline) {
        (void)readable(r.socket().native_handle(), 10ms);
        const std::size_t n = r.receive_many(bufs, from);
        for (std::size_t i = 0; i < n; ++i) got.emplace_back(bufs[i].bytes().begin(), bufs[i].bytes().end());
    }
    REQUIRE(got.size() == 2);
    CHECK(got[0].size() == max_datagram_size); // the whole capacity: cut short
    CHECK(got[0] == bytes(big.begin(), big.begin() + static_cast<std::ptrdiff_t>(max_datagram_size)));
    CHECK(got[1] == small); // the next one is whole
}

TEST_CASE("udp: receive_many takes at most udp_batch datagrams, and no more than its buffers and sources hold") {
    asio::io_context io;
    udp r(io, loopback(), 16 << 20), a(io, loopback());
    packet_pool pool{128};
    std::vector<packet_ref> bufs(transport::udp_batch + 6);
    std::vector<endpoint> from(bufs.size());
    for (auto& p : bufs) p = pool.acquire();

    constexpr std::size_t n = transport::udp_batch + 6;
    for (std::size_t i = 0; i < n; ++i) REQUIRE_FALSE(a.send_to(asio::buffer(datagram(0, i, 20 + i)), r.local_endpoint()));
    REQUIRE(readable(r.socket().native_handle(), 2000ms));
    std::this_thread::sleep_for(10ms);

    std::vector<bytes> got;
    auto take = [&](std::size_t nbufs, std::size_t nfrom) {
        const std::size_t k = r.receive_many(std::span(bufs).first(nbufs), std::span(from).first(nfrom));
        for (std::size_t i = 0; i < k; ++i) got.emplace_back(bufs[i].bytes().begin(), bufs[i].bytes().end());
        return k;
    };
    CHECK(take(bufs.size(), from.size()) == transport::udp_batch);
    CHECK(take(8, 3) == 3);
    CHECK(take(bufs.size(), from.size()) == n - transport::udp_batch - 3);
    CHECK(take(bufs.size(), from.size()) == 0);
    REQUIRE(got.size() == n);
    for (std::size_t i = 0; i < n; ++i) CHECK(got[i] == datagram(0, i, 20 + i));
}

TEST_CASE("udp: datagrams to a closed port or an invalid destination cost only themselves in a flush") {
    bool want_gso = true;
    std::size_t workers = 1;
    SUBCASE("GSO on") { want_gso = true; }
    SUBCASE("GSO off") { want_gso = false; }
    SUBCASE("GSO on, 3 send workers") { want_gso = true; workers = 3; }
    SUBCASE("GSO off, 3 send workers") { want_gso = false; workers = 3; }

    asio::io_context io;
    udp s(io, loopback());
    std::deque<receiver> rs;
    rs.emplace_back(io);
    (void)gso_mode(s, want_gso, workers);

    endpoint closed;
    {
        udp gone(io, loopback());
        closed = gone.local_endpoint();
    } // its port is closed now: ICMP port unreachable comes back
    const endpoint port_zero(asio::ip::make_address_v4("127.0.0.1"), 0);      // refused by the kernel
    const endpoint other_family(asio::ip::make_address_v6("::1"), closed.port()); // not an IPv4 socket's
    const std::array<endpoint, 4> to{rs[0].at(), closed, port_zero, other_family};

    // Two flushes, interleaved runs of 900-byte datagrams ending in a 300-byte one to each:
    // an error the first flush caused comes back, at the latest, in the second.
    constexpr std::size_t per_flush = 40;
    std::vector<bytes> expected;
    std::deque<bytes> kept;
    std::uint64_t queued = 0;
    for (std::size_t round = 0; round < 2; ++round) {
        for (std::size_t i = 0; i < per_flush; ++i)
            for (std::size_t d = 0; d < to.size(); ++d) {
                const std::size_t seq = round * per_flush + i;
                const bytes dg = datagram(d, seq, i % 8 == 7 ? 300 : 900);
                queue(s, to[d], dg, split_for(seq + d), kept);
                ++queued;
                if (d == 0) expected.push_back(dg);
            }
        s.flush_sends();
    }
    await(rs, {expected.size()});
    check_same(rs[0].got, expected, "the live destination");

    const auto& st = s.stats();
    INFO("sent ", st.datagrams_sent, ", dropped ", st.send_dropped, ", GSO refused ", st.gso_refused, ", GSO now ", s.gso());
    CHECK(st.datagrams_sent + st.send_dropped == queued); // every datagram accounted once
    CHECK(st.send_dropped >= 2 * 2 * per_flush);          // port 0 and the wrong family: always refused
    CHECK(st.send_dropped <= 3 * 2 * per_flush);          // the live destination: never
    CHECK(st.datagrams_sent >= 2 * per_flush);
}

TEST_CASE("udp: a GSO message the kernel refuses turns GSO off and its datagrams go one by one") {
    std::size_t lead = 0; // plain datagrams before the refused GSO message in its sendmmsg call
    SUBCASE("the refused message first in its send call") { lead = 0; }
    SUBCASE("the refused message after one that was sent") { lead = 1; }

    asio::io_context io;
    udp s(io, loopback());
    std::deque<receiver> rs;
    rs.emplace_back(io);
    rs.emplace_back(io);
    if (!gso_mode(s, true)) return;
    // With UDP checksums off the kernel refuses every GSO send (EINVAL) and takes plain ones.
    int one = 1;
    if (::setsockopt(s.socket().native_handle(), SOL_SOCKET, SO_NO_CHECK, &one, sizeof one) != 0) {
        MESSAGE("SO_NO_CHECK unavailable: not checked");
        return;
    }

    std::vector<std::vector<bytes>> expected(2);
    std::deque<bytes> kept;
    for (std::size_t i = 0; i < lead; ++i) {
        expected[0].push_back(datagram(0, i, 300));
        queue(s, rs[0].at(), expected[0].back(), split::whole_head, kept);
    }
    for (std::size_t i = 0; i < 10; ++i) {
        expected[1].push_back(datagram(1, i, i == 9 ? 400 : 1000));
        queue(s, rs[1].at(), expected[1].back(), split_for(i), kept);
    }
    s.flush_sends();
    await(rs, {expected[0].size(), expected[1].size()});
    check_same(rs[0].got, expected[0], "the plain destination");
    check_same(rs[1].got, expected[1], "the refused run's destination");

    const auto& st = s.stats();
    CHECK(st.datagrams_sent == lead + 10);
    CHECK(st.send_dropped == 0);
    CHECK(st.gso_refused == 1);
    CHECK(st.gso_sends == 0);
    CHECK_FALSE(s.gso());

    // GSO stays off: the next run goes one by one as well.
    for (std::size_t i = 10; i < 20; ++i) {
        expected[1].push_back(datagram(1, i, 1000));
        queue(s, rs[1].at(), expected[1].back(), split_for(i), kept);
    }
    s.flush_sends();
    await(rs, {expected[0].size(), expected[1].size()});
    check_same(rs[1].got, expected[1], "the refused run's destination, second flush");
    CHECK(st.gso_refused == 1);
    CHECK(st.gso_sends == 0);
    CHECK(st.datagrams_sent == lead + 20);
}

TEST_CASE("udp: send workers share a flush to many destinations, each destination's datagrams in order on one thread") {
    bool want_gso = true;
    std::size_t workers = 2;
    SUBCASE("GSO on, 2 send workers") { want_gso = true; workers = 2; }
    SUBCASE("GSO off, 2 send workers") { want_gso = false; workers = 2; }
    SUBCASE("GSO on, 4 send workers") { want_gso = true; workers = 4; }
    SUBCASE("GSO off, 4 send workers") { want_gso = false; workers = 4; }

    // Three flushes, as a relay's batches: frames of 5 datagrams (the last shorter) to every
    // destination in turn, and uneven loads (destination d gets d % 3 datagrams more). Sent
    // once by the caller alone, for reference, then with the workers.
    constexpr std::size_t destinations = 40, per_destination = 25;
    auto run = [&](std::size_t threads) {
        asio::io_context io;
        udp s(io, loopback());
        std::deque<receiver> rs;
        for (std::size_t d = 0; d < destinations; ++d) rs.emplace_back(io);
        const bool gso = gso_mode(s, want_gso, threads);
        std::vector<std::vector<bytes>> expected(destinations);
        std::deque<bytes> kept;
        std::size_t queued = 0;
        for (int flush = 0; flush < 3; ++flush) {
            for (std::size_t i = 0; i < per_destination; ++i)
                for (std::size_t d = 0; d < destinations; ++d) {
                    if (i >= per_destination - 3 + d % 3) continue;
                    const std::size_t seq = expected[d].size();
                    const bytes dg = datagram(d, seq, seq % 5 == 4 ? 200 + d : 1100);
                    queue(s, rs[d].at(), dg, split_for(seq + d), kept);
                    expected[d].push_back(dg);
                    ++queued;
                }
            s.flush_sends();
        }
        std::vector<std::size_t> want;
        for (const auto& e : expected) want.push_back(e.size());
        await(rs, want);
        std::size_t bytes_queued = 0;
        for (std::size_t d = 0; d < destinations; ++d) {
            check_same(rs[d].got, expected[d], "destination " + std::to_string(d));
            bytes_queued += total_bytes(expected[d]);
        }
        const transport::transport_stats st = s.stats();
        CHECK(st.split_flushes == (threads > 1 ? 3 : 0));
        CHECK(st.datagrams_sent == queued); // the workers' counts are the transport's
        CHECK(st.bytes_sent == bytes_queued);
        CHECK(st.send_dropped == 0);
        if (gso) CHECK(st.gso_refused == 0);
        else CHECK(st.gso_sends == 0);
        return st;
    };
    const auto alone = run(1);
    const auto shared = run(workers);
    // Shares end where a destination does: the same GSO messages either way.
    CHECK(shared.gso_sends == alone.gso_sends);
    CHECK(shared.gso_datagrams == alone.gso_datagrams);
    if (want_gso && alone.gso_sends) CHECK(alone.gso_datagrams > alone.gso_sends);
}

TEST_CASE("udp: a flush below udp_split_min, to one destination, or without workers is sent by the caller alone") {
    asio::io_context io;
    udp s(io, loopback());
    std::deque<receiver> rs;
    rs.emplace_back(io);
    rs.emplace_back(io);
    std::vector<std::vector<bytes>> expected(2);
    std::deque<bytes> kept;
    auto put = [&](std::size_t d, std::size_t n) {
        for (std::size_t i = 0; i < n; ++i) {
            expected[d].push_back(datagram(d, expected[d].size(), 500));
            queue(s, rs[d].at(), expected[d].back(), split::whole_head, kept);
        }
    };
    CHECK(s.send_workers() == 1);
    put(0, 20);
    put(1, 20);
    s.flush_sends(); // no workers
    s.set_send_workers(2);
    CHECK(s.send_workers() == 2);
    put(0, transport::udp_split_min / 2 - 1);
    put(1, transport::udp_split_min / 2);
    s.flush_sends(); // one short of udp_split_min
    put(0, 100);
    s.flush_sends(); // one destination
    CHECK(s.stats().split_flushes == 0);
    put(0, transport::udp_split_min / 2);
    put(1, transport::udp_split_min / 2);
    s.flush_sends(); // udp_split_min to two destinations: shared
    CHECK(s.stats().split_flushes == 1);
    s.set_send_workers(1);
    CHECK(s.send_workers() == 1);
    s.set_send_workers(0); // at least the caller
    CHECK(s.send_workers() == 1);
    s.set_send_workers(1000);
    CHECK(s.send_workers() == transport::udp_max_send_workers);
    put(0, 30);
    put(1, 30);
    s.flush_sends();
    CHECK(s.stats().split_flushes == 2);
    await(rs, {expected[0].size(), expected[1].size()});
    check_same(rs[0].got, expected[0], "destination 0");
    check_same(rs[1].got, expected[1], "destination 1");
    CHECK(s.stats().datagrams_sent == expected[0].size() + expected[1].size());
}

TEST_CASE("udp: with send workers, GSO refused in every share turns GSO off once and loses nothing") {
    asio::io_context io;
    udp s(io, loopback());
    std::deque<receiver> rs;
    for (int d = 0; d < 4; ++d) rs.emplace_back(io);
    if (!gso_mode(s, true, 2)) return;
    int one = 1;
    if (::setsockopt(s.socket().native_handle(), SOL_SOCKET, SO_NO_CHECK, &one, sizeof one) != 0) {
        MESSAGE("SO_NO_CHECK unavailable: not checked");
        return;
    }
    std::vector<std::vector<bytes>> expected(4);
    std::deque<bytes> kept;
    for (std::size_t i = 0; i < 12; ++i)
        for (std::size_t d = 0; d < 4; ++d) {
            expected[d].push_back(datagram(d, i, i == 11 ? 300 : 900));
            queue(s, rs[d].at(), expected[d].back(), split_for(i), kept);
        }
    s.flush_sends();
    await(rs, {12, 12, 12, 12});
    for (std::size_t d = 0; d < 4; ++d) check_same(rs[d].got, expected[d], "destination " + std::to_string(d));
    const auto& st = s.stats();
    CHECK(st.split_flushes == 1);
    CHECK(st.datagrams_sent == 48);
    CHECK(st.send_dropped == 0);
    CHECK(st.gso_refused == 1);
    CHECK(st.gso_sends == 0);
    CHECK_FALSE(s.gso());
}
