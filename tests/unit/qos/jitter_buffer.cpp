#include "onair/qos/jitter_buffer.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <vector>

using namespace onair;
using namespace std::chrono_literals;
using qos::audio_action;
using qos::audio_jitter_buffer;
using qos::audio_jitter_config;

namespace {

using time_point = std::chrono::steady_clock::time_point;
using us = std::chrono::microseconds;
const time_point t0{std::chrono::seconds{1000}};

/// Packet i of a 20 ms stream: sequence seq0 + i, timestamp ts0 + 960 i, payload names i.
struct packet {
    int index = 0;
    us at{0};     ///< arrival, after t0
    int seq = 0;  ///< sequence offset (the index unless the sender paused: DTX)
};

/// What a pull produced; `index` is the packet decoded (or whose FEC was used), else -1.
struct outcome {
    audio_action action = audio_action::buffering;
    int index = -1;
    std::uint32_t rtp_timestamp = 0;
    us at{0};
};

int index_of(const encoded_frame& f) { return f.data.size() >= 2 ? (f.data[0] << 8) | f.data[1] : -1; }

/// Drives a buffer in simulated time: packets arrive at their times, the playout side pulls
/// every 20 ms starting 5 ms after t0 (so pulls and sends are out of phase).
struct sim {
    audio_jitter_buffer jb;
    std::uint32_t ts0 = 12'345;
    std::uint16_t seq0 = 1'000;
    std::vector<packet> net; ///< sorted by arrival before run()
    std::size_t next = 0;
    us clock{5'000};
    encoded_frame out;
    std::vector<outcome> played;

    explicit sim(audio_jitter_config c = {}) : jb(c) {}

    void send(int index, us at, int seq) { net.push_back({index, at, seq}); }
    void send(int index, us at) { send(index, at, index); }
    /// Packet i sent at 20 ms * i and delayed by `delay`.
    void send_at_delay(int index, us delay) { send(index, us{20'000} * index + delay); }

    void deliver(int index, us at) { deliver(index, at, index); }
    void deliver(int index, us at, int seq) {
        std::array<std::uint8_t, 40> payload{};
        payload[0] = static_cast<std::uint8_t>(index >> 8);
        payload[1] = static_cast<std::uint8_t>(index);
        jb.insert(payload, static_cast<std::uint32_t>(ts0 + 960u * static_cast<std::uint32_t>(index)),
                  static_cast<std::uint16_t>(seq0 + seq), t0 + at);
    }

    /// Pulls until `until` (after t0), delivering packets due before each pull.
    void run(us until) {
        std::stable_sort(net.begin() + static_cast<std::ptrdiff_t>(next), net.end(),
                         [](const packet& a, const packet& b) { return a.at < b.at; });
        while (clock <= until) {
            while (next < net.size() && net[next].at <= clock) {
                deliver(net[next].index, net[next].at, net[next].seq);
                ++next;
            }
            const auto r = jb.pull(t0 + clock, out);
            outcome o{r.action, -1, r.rtp_timestamp, clock};
            if (r.action == audio_action::decode || r.action == audio_action::decode_fec) o.index = index_of(out);
            played.push_back(o);
            clock += 20ms;
        }
    }

    std::vector<int> decoded() const {
        std::vector<int> v;
        for (const auto& o : played)
            if (o.action == audio_action::decode) v.push_back(o.index);
        return v;
    }
    std::size_t count(audio_action a) const {
        return static_cast<std::size_t>(
            std::count_if(played.begin(), played.end(), [a](const outcome& o) { return o.action == a; }));
    }
};

std::vector<int> range(int from, int to) {
    std::vector<int> v;
    for (int i = from; i < to; ++i) v.push_back(i);
    return v;
}

/// True when `v` starts with `head` (a run stops with a few frames still buffered).
bool begins_with(const std::vector<int>& v, const std::vector<int>& head) {
    return v.size() >= head.size() && std::equal(head.begin(), head.end(), v.begin());
}

/// Deterministic uniform jitter in [0, max_ms] ms.
struct lcg {
    std::uint32_t s = 12345;
    us next(int max_ms) {
        s = s * 1664525u + 1013904223u;
        return us{static_cast<std::int64_t>((s >> 8) % static_cast<std::uint32_t>(max_ms * 1000 + 1))};
    }
};

} // namespace

TEST_SUITE_BEGIN("qos.jitter_buffer");

TEST_CASE("steady network: buffers to the target, then decodes every frame in order") {
    // Every packet takes 30 ms; no jitter, so the target stays at one 10 ms bucket.
    sim s;
    for (int i = 0; i < 100; ++i) s.send_at_delay(i, 30ms);
    s.run(2'000ms);
    CHECK(s.played.front().action == audio_action::buffering);
    CHECK(s.decoded() == range(0, 98));
    CHECK(s.count(audio_action::conceal) == 0);
    const auto& st = s.jb.stats();
    CHECK(st.target_delay <= 10ms);
    CHECK(st.current_delay <= 30ms); // target + less than one pull period
    CHECK(st.playout_delay <= 30ms);
    CHECK(st.late == 0);
}

TEST_CASE("reordering within the buffer is delivered in order; duplicates are dropped") {
    // Pairs arrive swapped (odd before even, 10 ms apart); every even packet comes twice.
    // A 40 ms minimum delay covers the swap.
    audio_jitter_config c;
    c.min_delay = 40ms;
    sim s(c);
    for (int i = 0; i < 120; i += 2) {
        s.send_at_delay(i + 1, 5ms); // arrives 20 i + 25 ms...
        s.send_at_delay(i, 35ms);    // ...before its predecessor at 20 i + 35 ms
        s.send_at_delay(i, 36ms);
    }
    s.run(2'100ms);
    CHECK(s.decoded() == range(0, 103));
    CHECK(s.count(audio_action::conceal) == 0);
    CHECK(s.jb.stats().duplicates == 52);
}

TEST_CASE("a lost frame is concealed once and the next one decoded") {
    // 30 ms network delay, nothing buffered beyond the target: packet 10 never arrives. When
    // it is due the buffer is empty (PLC); packet 11 then arrives and plays in its own slot.
    sim s;
    for (int i = 0; i < 60; ++i)
        if (i != 10) s.send_at_delay(i, 30ms);
    s.run(900ms);
    std::vector<int> want = range(0, 10);
    for (int i = 11; i < 40; ++i) want.push_back(i);
    CHECK(begins_with(s.decoded(), want));
    CHECK(s.count(audio_action::conceal) == 1);
    const auto& st = s.jb.stats();
    CHECK(st.concealed == 1);
    CHECK(st.expanded == 0); // the PLC frame took the lost frame's place: no delay added
    CHECK(st.fec == 0);
    // The conceal sits between decodes of 9 and 11 and stands for packet 10's timestamp.
    const auto it = std::find_if(s.played.begin(), s.played.end(),
                                 [](const outcome& o) { return o.action == audio_action::conceal; });
    REQUIRE(it != s.played.end());
    CHECK(it->rtp_timestamp == s.ts0 + 960u * 10);
    CHECK((it - 1)->index == 9);
    CHECK((it + 1)->index == 11);
}

TEST_CASE("the next packet's in-band FEC rebuilds a lost frame when it is already buffered") {
    // A 60 ms minimum delay keeps ~3 frames buffered, so packet 11 waits when 10 is due.
    // Packets 20 and 21 are both lost: 20 is concealed (21 is not there), 21 comes from 22's FEC.
    audio_jitter_config c;
    c.min_delay = 60ms;
    sim s(c);
    for (int i = 0; i < 60; ++i)
        if (i != 10 && i != 20 && i != 21) s.send_at_delay(i, 30ms);
    s.run(900ms);
    std::vector<outcome> notable;
    for (const auto& o : s.played)
        if (o.action == audio_action::decode_fec || o.action == audio_action::conceal) notable.push_back(o);
    REQUIRE(notable.size() == 3);
    CHECK(notable[0].action == audio_action::decode_fec);
    CHECK(notable[0].rtp_timestamp == s.ts0 + 960u * 10); // the frame rebuilt
    CHECK(notable[0].index == 11);                       // from packet 11
    CHECK(notable[1].action == audio_action::conceal);
    CHECK(notable[1].rtp_timestamp == s.ts0 + 960u * 20);
    CHECK(notable[2].action == audio_action::decode_fec);
    CHECK(notable[2].index == 22);
    std::vector<int> want;
    for (int i = 0; i < 38; ++i)
        if (i != 10 && i != 20 && i != 21) want.push_back(i);
    CHECK(begins_with(s.decoded(), want));
    CHECK(s.jb.stats().fec == 2);
    CHECK(s.jb.stats().concealed == 1);
}

TEST_CASE("target rises at once with jitter and falls back slowly after calm") {
    // 5 s calm (20 ms), then 10 s of 0..120 ms uniform jitter (packets reorder), then 40 s calm.
    sim s;
    lcg rnd;
    const int calm1 = 250, jitter = 500, calm2 = 2'000;
    for (int i = 0; i < calm1; ++i) s.send_at_delay(i, 20ms);
    for (int i = calm1; i < calm1 + jitter; ++i) s.send_at_delay(i, 20ms + rnd.next(120));
    for (int i = calm1 + jitter; i < calm1 + jitter + calm2; ++i) s.send_at_delay(i, 20ms);

    s.run(5'000ms);
    CHECK(s.jb.stats().target_delay <= 10ms);
    CHECK(s.jb.stats().concealed == 0);

    s.run(5'500ms); // half a second into the jitter: the first late packets lift the target
    CHECK(s.jb.stats().target_delay >= 80ms);

    s.run(15'000ms);
    const auto at_jitter_end = s.jb.stats();
    CHECK(at_jitter_end.target_delay >= 100ms);
    CHECK(at_jitter_end.target_delay <= 130ms);
    CHECK(at_jitter_end.current_delay >= 60ms); // the buffer grew to absorb the jitter
    CHECK(at_jitter_end.concealed < 15);        // < 3% of the jittery frames: it waited for late ones
    CHECK(at_jitter_end.late < 10);

    s.run(17'000ms); // 2 s into the calm: still high, it shrinks slowly
    CHECK(s.jb.stats().target_delay >= 80ms);

    s.run(55'000ms);
    const auto end = s.jb.stats();
    CHECK(end.target_delay <= 30ms);
    CHECK(end.current_delay <= 50ms);               // followed the target down...
    CHECK(end.accelerated > at_jitter_end.accelerated); // ...by skipping frames
    CHECK(end.concealed == at_jitter_end.concealed);    // and the calm lost nothing
    CHECK(end.late == at_jitter_end.late);
}

TEST_CASE("a delay spike: PLC while waiting, the late packets are decoded, none lost") {
    // Packets 50..54 are held up and arrive together with 55 (a 100 ms spike).
    sim s;
    for (int i = 0; i < 200; ++i) s.send_at_delay(i, 20ms);
    for (int i = 50; i < 55; ++i) s.net[static_cast<std::size_t>(i)].at = us{20'000} * 55 + 20ms;
    s.run(1'150ms);
    CHECK(s.jb.stats().target_delay >= 100ms); // grew immediately with the late packets
    s.run(3'000ms);
    CHECK(begins_with(s.decoded(), range(0, 140)));
    const auto& st = s.jb.stats();
    CHECK(st.concealed >= 4);
    CHECK(st.concealed == st.expanded); // every PLC frame was waiting time, no frame was lost
    CHECK(st.late == 0);
}

TEST_CASE("a burst after a stall does not grow the delay beyond max_delay") {
    // 1 s of normal packets, then the network stalls for 2 s and delivers the backlog at
    // once (100 packets), then normal again.
    audio_jitter_config c;
    c.max_delay = 300ms;
    sim s(c);
    for (int i = 0; i < 500; ++i) s.send_at_delay(i, 20ms);
    for (int i = 50; i < 150; ++i) s.net[static_cast<std::size_t>(i)].at = 3'020ms;
    us worst{0};
    std::size_t most = 0;
    for (us t = 0ms; t < 9'000ms; t += 20ms) {
        s.run(t);
        worst = std::max(worst, s.jb.stats().current_delay);
        most = std::max(most, s.jb.size());
    }
    CHECK(most <= c.capacity);
    CHECK(worst <= c.max_delay + 20ms);
    const auto& st = s.jb.stats();
    CHECK(st.overflow + st.flushed > 0); // the stale backlog was dropped, not played
    CHECK(st.current_delay <= st.target_delay + 20ms);
    // After the stall, playout restarted and kept going to the end.
    const auto d = s.decoded();
    CHECK(d.back() >= 440);
    CHECK(std::is_sorted(d.begin(), d.end()));
}

TEST_CASE("an early burst (sender catching up) is bounded by capacity") {
    // 3 s of audio arrive within 30 ms: the buffer keeps at most `capacity` frames.
    audio_jitter_config c;
    c.capacity = 20;
    sim s(c);
    for (int i = 0; i < 150; ++i) s.send(i, 20ms + us{200} * i);
    std::size_t most = 0;
    for (us t = 0ms; t < 100ms; t += 20ms) {
        s.run(t);
        most = std::max(most, s.jb.size());
    }
    CHECK(most <= 20);
    const auto& st = s.jb.stats();
    CHECK(st.overflow > 0);
    CHECK(st.overflow + st.flushed + st.decoded + s.jb.size() == 150); // every packet accounted for
}

TEST_CASE("timestamp and sequence numbers wrap") {
    // Starts 25 frames before the 32-bit timestamp wraps and 6 before the sequence does.
    sim s;
    s.ts0 = 0xffff'ffffu - 960u * 25 + 1;
    s.seq0 = 65'530;
    lcg rnd;
    for (int i = 0; i < 120; ++i) s.send_at_delay(i, 20ms + rnd.next(10));
    s.run(2'100ms);
    CHECK(begins_with(s.decoded(), range(0, 100)));
    CHECK(s.jb.stats().concealed == 0);
    CHECK(s.jb.stats().restarts == 0);
}

TEST_CASE("a pause in transmission (DTX) plays comfort noise and restarts at the target delay") {
    // Talk spurt 0..49, then silence: the encoder sends nothing for 1.6 s (timestamps go on,
    // sequence numbers do not), then a second spurt at timestamps 130..179 with sequence
    // numbers 50..99. Longer than idle_reset, so playout goes back to buffering meanwhile.
    sim s;
    for (int i = 0; i < 50; ++i) s.send_at_delay(i, 20ms);
    for (int i = 130; i < 200; ++i) s.send(i, us{20'000} * i + 20ms, i - 80);
    s.run(3'700ms);
    const auto& st = s.jb.stats();
    CHECK(st.concealed == 0); // nothing was lost
    CHECK(st.comfort_noise > 0);
    CHECK(st.decoded >= 100);
    CHECK(st.restarts == 1);
    // The first frame of the second spurt (sent at 2.6 s, arrived 2.62 s) plays within one
    // pull period of arrival + target, and the rest follow without gaps.
    const auto first = std::find_if(s.played.begin(), s.played.end(), [](const outcome& o) { return o.index == 130; });
    REQUIRE(first != s.played.end());
    CHECK(first->at >= 2'620ms);
    CHECK(first->at < 2'620ms + st.target_delay + 20ms);
    CHECK((first + 49)->index == 179);
}

TEST_CASE("a short pause (shorter than idle_reset) is also silence, not loss") {
    // Frames 0..49, a 200 ms pause (timestamps 50..59 never sent), frames 60..99 with
    // sequence numbers 50..89.
    sim s;
    for (int i = 0; i < 50; ++i) s.send_at_delay(i, 20ms);
    for (int i = 60; i < 120; ++i) s.send(i, us{20'000} * i + 20ms, i - 10);
    s.run(2'000ms);
    const auto& st = s.jb.stats();
    CHECK(st.concealed == 0);
    CHECK(st.comfort_noise >= 9);
    std::vector<int> want = range(0, 50);
    for (int i = 60; i < 97; ++i) want.push_back(i);
    CHECK(begins_with(s.decoded(), want));
}

TEST_CASE("late and duplicate packets are counted apart") {
    sim s;
    for (int i = 0; i < 20; ++i) s.send_at_delay(i, 20ms);
    s.run(300ms); // frames 0..12 played, 13 is being... (13 arrives at 280 ms)
    const auto before = s.jb.stats();
    s.deliver(3, 301ms); // played already: a duplicate
    CHECK(s.jb.stats().duplicates == before.duplicates + 1);
    CHECK(s.jb.stats().late == before.late);
    // A frame given up as lost (rebuilt from its successor's FEC), arriving afterwards, is late.
    sim t;
    for (int i = 0; i < 20; ++i)
        if (i != 5) t.send_at_delay(i, 20ms);
    t.run(300ms);
    CHECK(t.jb.stats().fec == 1);
    t.deliver(5, 301ms);
    CHECK(t.jb.stats().late == 1);
}

TEST_CASE("extra delay (lip sync) is realised by inserting PLC frames gradually") {
    sim s;
    for (int i = 0; i < 600; ++i) s.send_at_delay(i, 20ms);
    s.run(2'000ms);
    const auto before = s.jb.stats();
    CHECK(before.current_delay <= 30ms);
    s.jb.set_extra_delay(100ms);
    s.run(7'000ms);
    const auto after = s.jb.stats();
    CHECK(after.target_delay >= 100ms);
    CHECK(after.current_delay >= after.target_delay - 20ms);
    CHECK(after.expanded >= 4);
    CHECK(after.late == 0);
    // Back to no extra: frames are skipped until the delay is down again.
    s.jb.set_extra_delay(0ms);
    s.run(10'000ms);
    CHECK(s.jb.stats().current_delay <= 30ms);
    CHECK(s.jb.stats().accelerated >= 4);
}

TEST_CASE("a timestamp jump (new stream) restarts playout") {
    sim s;
    for (int i = 0; i < 50; ++i) s.send_at_delay(i, 20ms);
    s.run(1'000ms);
    s.net.erase(s.net.begin() + static_cast<std::ptrdiff_t>(s.next), s.net.end());
    s.ts0 += 0x4000'0000u; // hours away
    s.seq0 = 7;
    for (int i = 60; i < 110; ++i) s.send_at_delay(i, 20ms);
    s.run(2'200ms);
    CHECK(s.jb.stats().restarts >= 1);
    const auto d = s.decoded();
    CHECK(std::count_if(d.begin(), d.end(), [](int i) { return i >= 60; }) >= 40);
}

TEST_CASE("the sender stops: after idle_reset of underrun the PLC played counts as comfort noise") {
    // Packets 0..49 arrive 20 ms after sending, then nothing at all. Once 49 is played the
    // buffer is empty: each pull plays PLC (conceal) while the outage is shorter than
    // idle_reset (500 ms = 25 pulls of 20 ms). At the 26th empty pull the buffer gives up
    // (back to buffering), and those 25 PLC frames are recounted as comfort noise: the
    // sender stopped, nothing was lost.
    sim s;
    for (int i = 0; i < 50; ++i) s.send_at_delay(i, 20ms);
    s.run(1'200ms);
    REQUIRE(begins_with(s.decoded(), range(0, 50)));
    const auto last = std::find_if(s.played.begin(), s.played.end(), [](const outcome& o) { return o.index == 49; });
    REQUIRE(last != s.played.end());
    const auto plc = static_cast<std::uint64_t>(std::count_if(
        last + 1, s.played.end(), [](const outcome& o) { return o.action == audio_action::conceal; }));
    REQUIRE(plc > 0);
    REQUIRE(plc < 25); // still within idle_reset
    CHECK(s.played.back().action == audio_action::conceal);
    CHECK(s.jb.stats().concealed == plc);
    CHECK(s.jb.stats().expanded == plc);
    CHECK(s.jb.stats().comfort_noise == 0);
    CHECK(s.jb.unresolved_concealment() == plc);

    s.run(2'000ms);
    const auto& st = s.jb.stats();
    CHECK(s.count(audio_action::conceal) == 25); // as played at the time
    CHECK(st.concealed == 0);                    // ...but recounted
    CHECK(st.expanded == 0);
    CHECK(st.comfort_noise == 25);
    CHECK(s.jb.unresolved_concealment() == 0);
    // Back to buffering: every pull after the 25th PLC frame.
    const auto first_plc = std::find_if(s.played.begin(), s.played.end(),
                                        [](const outcome& o) { return o.action == audio_action::conceal; });
    REQUIRE(first_plc + 25 < s.played.end());
    CHECK(std::all_of(first_plc + 25, s.played.end(),
                      [](const outcome& o) { return o.action == audio_action::buffering; }));

    // The sender comes back (next sequence number, 1 s of media later): playout restarts.
    // (Run to 2.3 s, before the 20 packets run out and the buffer underruns again.)
    for (int i = 100; i < 120; ++i) s.send(i, us{20'000} * i + 20ms, i - 50);
    s.run(2'300ms);
    CHECK(s.jb.stats().restarts == 1);
    CHECK(s.jb.stats().concealed == 0);
    CHECK(begins_with(s.decoded(), [] {
        auto v = range(0, 50);
        v.push_back(100);
        return v;
    }()));
}

TEST_CASE("unresolved_concealment counts the PLC of an underrun until a packet arrives") {
    // Packets 0..99 arrive 20 ms after sending, except that 20..24 are held up and arrive
    // together with 25 (at 25 x 20 + 20 = 520 ms). After 19 plays, the buffer is empty:
    // PLC frames pile up as unresolved (lost or just late? not known yet). As soon as 20..24
    // are inserted (before the next pull) the buffer is no longer empty and nothing is
    // unresolved; they are then decoded (the PLC was waiting time, not loss).
    sim s;
    for (int i = 0; i < 100; ++i)
        if (i < 20 || i > 24) s.send_at_delay(i, 20ms);
    s.run(400ms); // steady so far: no PLC
    CHECK(s.jb.unresolved_concealment() == 0);
    CHECK(s.jb.stats().concealed == 0);
    // Pull by pull through the outage (last pull before 520 ms: 505 ms): while the buffer
    // is empty and PLC plays, the count is the PLC frames played since 19.
    std::uint64_t most = 0;
    while (s.clock < 520ms) {
        s.run(s.clock);
        const auto& o = s.played.back();
        if (o.action == audio_action::conceal) {
            CHECK(s.jb.size() == 0);
            CHECK(s.jb.unresolved_concealment() == s.jb.stats().concealed);
            most = std::max(most, s.jb.unresolved_concealment());
        } else {
            CHECK(s.jb.unresolved_concealment() == 0);
        }
    }
    CHECK(most > 0);
    CHECK(most == s.count(audio_action::conceal));
    CHECK(s.played.back().action == audio_action::conceal); // still in the underrun at 505 ms
    CHECK(s.jb.unresolved_concealment() == most);
    for (int i = 20; i <= 24; ++i) s.deliver(i, 520ms);
    CHECK(s.jb.size() == 5);
    CHECK(s.jb.unresolved_concealment() == 0); // a packet is here: resolved as delay
    s.run(1'400ms);
    CHECK(s.jb.unresolved_concealment() == 0);
    CHECK(begins_with(s.decoded(), range(0, 55)));
    const auto& st = s.jb.stats();
    CHECK(st.concealed == most);  // the PLC stays concealment (the packets came: a delay)
    CHECK(st.expanded == most);   // and it added delay, nothing was lost
    CHECK(st.comfort_noise == 0);
}

TEST_CASE("the first start plays from the oldest frame even when several are due") {
    // Packets 0, 1, 2 (media 0, 20, 40 ms) all arrive at t0: the earliest-arrival reference
    // is packet 2's, so they are due at t0 - 40 ms, t0 - 20 ms and t0 (+ target). At the
    // first pull (t0 + 100 ms) all three are due. A restart would begin with the newest;
    // the first start does not flush: it decodes 0, then 1, then 2.
    audio_jitter_buffer jb;
    const std::uint32_t ts0 = 48'000;
    for (std::uint32_t i = 0; i < 3; ++i) {
        const std::array<std::uint8_t, 3> payload{0, static_cast<std::uint8_t>(i), 0xaa};
        REQUIRE(jb.insert(payload, ts0 + 960 * i, static_cast<std::uint16_t>(500 + i), t0) ==
                audio_jitter_buffer::insert_result::inserted);
    }
    encoded_frame out;
    const auto r = jb.pull(t0 + 100ms, out);
    REQUIRE(jb.stats().target_delay <= 60ms); // premise: even packet 2 is due by t0 + 100 ms
    CHECK(r.action == audio_action::decode);
    CHECK(r.rtp_timestamp == ts0);
    CHECK(index_of(out) == 0);
    CHECK(jb.stats().flushed == 0);
    CHECK(jb.stats().restarts == 0);
    CHECK(jb.size() == 2);
    for (int i = 1; i < 3; ++i) {
        const auto n = jb.pull(t0 + 100ms + 20ms * i, out);
        CHECK(n.action == audio_action::decode);
        CHECK(n.rtp_timestamp == ts0 + 960u * static_cast<std::uint32_t>(i));
        CHECK(index_of(out) == i);
    }
    CHECK(jb.stats().flushed == 0);
    CHECK(jb.stats().decoded == 3);
}

TEST_CASE("a restart, unlike the first start, begins with the newest frame due") {
    // Packets 0..9 arrive 20 ms after sending (the last at 200 ms) and play; the sender
    // stops, and after idle_reset the buffer is back to buffering. Packets 130, 131, 132
    // (media 2 600..2 640 ms, sequence 10, 11, 12: nothing lost, a pause) then arrive
    // together at 2 646 ms. More than the 2 s reference window after the last packet, so
    // the reference is theirs again (packet 132's: all three relative delays 0) and they
    // are due at 2 606, 2 626 and 2 646 ms + the ~10 ms target: all three by the pull at
    // 2 665 ms. The restart flushes 130 and 131 and decodes 132.
    sim s;
    for (int i = 0; i < 10; ++i) s.send_at_delay(i, 20ms);
    s.run(1'100ms);
    REQUIRE(s.played.back().action == audio_action::buffering);
    for (int i = 130; i < 133; ++i) s.send(i, 2'646ms, i - 120);
    s.run(2'665ms);
    REQUIRE(s.jb.stats().target_delay <= 19ms); // premise: 132 is due at 2 646 ms + target
    const auto first = std::find_if(s.played.begin(), s.played.end(), [](const outcome& o) { return o.index >= 130; });
    REQUIRE(first != s.played.end());
    CHECK(first->at == 2'665ms);
    CHECK(first->index == 132);
    CHECK(s.jb.stats().flushed == 2);
    CHECK(s.jb.stats().restarts == 1);
}

TEST_SUITE_END();
