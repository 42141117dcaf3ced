// The FlexFEC encoder fed in sending order that differs from sequence order (a relay
// forwards in arrival order), and the loss estimate that picks protection and repair copies.
#include "onair/qos/flexfec.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <random>
#include <vector>

using namespace onair;
using namespace onair::qos;
using bytes = std::vector<std::uint8_t>;
namespace fd = onair::qos::detail;

namespace {

constexpr std::uint32_t media_ssrc = 0x11223344;
constexpr std::uint32_t fec_ssrc = 0x55667788;

/// A media datagram whose shape depends on `seq` (as in flexfec.cpp): payload 1..1100
/// bytes, and by turns CSRCs, a one-byte header extension and RTP padding, so recovery has
/// to restore every header field and every length. The marker bit is the caller's.
bytes media_packet(std::uint16_t seq, bool marker = false, std::uint32_t seed = 1) {
    std::mt19937 rng(seq * 7919u + seed);
    const std::size_t csrcs = seq % 5 == 1 ? 2 : 0;
    const bool ext = seq % 4 != 2;
    const std::size_t pad = seq % 7 == 3 ? 1 + rng() % 8 : 0;
    const std::size_t payload = 1 + rng() % 1100;
    bytes d;
    d.push_back(static_cast<std::uint8_t>(0x80 | (pad ? 0x20 : 0) | (ext ? 0x10 : 0) | csrcs));
    d.push_back(static_cast<std::uint8_t>((marker ? 0x80 : 0) | 96));
    d.resize(12);
    rtp::store_be16(&d[2], seq);
    rtp::store_be32(&d[4], 90000u + seq / 3 * 3000u);
    rtp::store_be32(&d[8], media_ssrc);
    for (std::size_t i = 0; i < csrcs; ++i) {
        d.resize(d.size() + 4);
        rtp::store_be32(&d[d.size() - 4], 0xc0000000u + static_cast<std::uint32_t>(i));
    }
    if (ext) {
        const std::uint8_t e[8] = {0xBE, 0xDE, 0x00, 0x01, 0x11, static_cast<std::uint8_t>(seq >> 8),
                                   static_cast<std::uint8_t>(seq), 0x00};
        d.insert(d.end(), e, e + 8);
    }
    for (std::size_t i = 0; i < payload; ++i) d.push_back(static_cast<std::uint8_t>(rng()));
    for (std::size_t i = 0; i + 1 < pad; ++i) d.push_back(0);
    if (pad) d.push_back(static_cast<std::uint8_t>(pad));
    rtp::packet_view p;
    REQUIRE_FALSE(rtp::parse(d, p));
    return d;
}

struct sent {
    std::map<std::uint16_t, bytes> media; ///< every distinct packet handed to the encoder
    std::vector<bytes> fec;
};

fec_params flexible(std::uint8_t k, std::uint8_t m, std::uint8_t max_frames = 0) {
    fec_params p;
    p.scheme = fec_scheme::flexible;
    p.group_size = k;
    p.fec_packets = m;
    p.max_frames = max_frames;
    return p;
}

/// An encoder fed packet by packet in whatever order the test gives.
struct feeder {
    flexfec_encoder enc;
    sent s;
    explicit feeder(fec_params params)
        : enc(flexfec_encoder::config{media_ssrc, fec_ssrc, flexfec_payload_type, 500, false, {params, params}}) {}
    /// Adds media packet `seq`; returns how many repair packets that emitted.
    std::size_t add(std::uint16_t seq, bool marker = false) {
        const bytes m = media_packet(seq, marker);
        const std::size_t before = s.fec.size();
        REQUIRE_FALSE(enc.add(m, false, [&](rtp::bytes_view d) { s.fec.emplace_back(d.begin(), d.end()); }));
        s.media.emplace(seq, m);
        return s.fec.size() - before;
    }
    std::size_t flush() {
        const std::size_t before = s.fec.size();
        enc.flush([&](rtp::bytes_view d) { s.fec.emplace_back(d.begin(), d.end()); });
        return s.fec.size() - before;
    }
};

/// The media sequence numbers a repair packet says it protects (from its mask).
std::vector<std::uint16_t> protected_by(const bytes& fec) {
    rtp::packet_view p;
    REQUIRE_FALSE(rtp::parse(fec, p));
    fd::fec_packet_view f;
    REQUIRE(fd::parse_fec_packet(p, f) == fd::fec_parse_status::ok);
    std::vector<std::uint16_t> v;
    f.cover.for_each([&](std::int64_t seq) {
        v.push_back(static_cast<std::uint16_t>(seq));
        return true;
    });
    return v;
}

struct receiver {
    flexfec_decoder dec;
    std::map<std::uint16_t, bytes> recovered;
    explicit receiver(std::size_t window = 64, std::size_t max_fec = 32)
        : dec(flexfec_decoder::config{media_ssrc, fec_ssrc, window, max_fec}) {}
    auto sink() {
        return [this](rtp::bytes_view d) {
            rtp::packet_view p;
            REQUIRE_FALSE(rtp::parse(d, p));
            CHECK(recovered.count(p.sequence) == 0);
            recovered[p.sequence] = bytes(d.begin(), d.end());
        };
    }
    void media(const bytes& d) { dec.add_media(d, sink()); }
    void fec(const bytes& d) { dec.add_fec(d, sink()); }
};

/// Delivers everything but the `lost` media packets, media first, and checks that exactly
/// the expected ones come back, byte for byte.
void check_recovery(const sent& s, const std::vector<std::uint16_t>& lost, const std::vector<std::uint16_t>& expect) {
    CAPTURE(lost);
    receiver r;
    for (const auto& [seq, d] : s.media)
        if (std::find(lost.begin(), lost.end(), seq) == lost.end()) r.media(d);
    for (const auto& f : s.fec) r.fec(f);
    REQUIRE(r.recovered.size() == expect.size());
    for (auto seq : expect) {
        REQUIRE(r.recovered.count(seq) == 1);
        CHECK(r.recovered[seq] == s.media.at(seq));
    }
    for (auto seq : lost)
        if (std::find(expect.begin(), expect.end(), seq) == expect.end()) CHECK_FALSE(r.dec.has(seq));
    CHECK(r.dec.stats().malformed == 0);
}

std::uint16_t seq_at(std::uint16_t first, int i) { return static_cast<std::uint16_t>(first + i); }

} // namespace

TEST_SUITE_BEGIN("qos.flexfec");

TEST_CASE("flexfec order: a group sent out of sequence order still gets one full repair set") {
    // Group of 4 starting at 65534 (crossing the sequence wrap), sent as offsets 0,2,1,3 or
    // 0,3,1,2: each later packet of the group is older than the newest one placed but its
    // place in the open group is free, so it joins. The group closes only with its 4th
    // packet (not when an "older" packet shows up), and its repair packets protect all 4:
    // with m = 1 any single loss, with m = 2 (residues 0/2 and 1/3) any two losses in
    // different residue classes, are rebuilt byte for byte.
    const std::uint16_t first = 65534;
    const std::array<std::array<int, 4>, 2> orders{{{0, 2, 1, 3}, {0, 3, 1, 2}}};
    for (std::uint8_t m : std::array<std::uint8_t, 2>{1, 2})
        for (const auto& order : orders) {
            CAPTURE(m);
            CAPTURE(order[1]);
            feeder f(flexible(4, m));
            for (std::size_t i = 0; i < 3; ++i) CHECK(f.add(seq_at(first, order[i])) == 0); // still open
            CHECK(f.add(seq_at(first, order[3])) == m); // full: closed with m repair packets
            CHECK(f.flush() == 0);
            CHECK(f.enc.stats().late == 0);
            CHECK(f.enc.stats().media_packets == 4);
            REQUIRE(f.s.fec.size() == m);
            std::vector<std::uint16_t> covered;
            for (const auto& r : f.s.fec)
                for (auto seq : protected_by(r)) covered.push_back(seq);
            std::sort(covered.begin(), covered.end());
            CHECK(covered == std::vector<std::uint16_t>{0, 1, 65534, 65535});
            for (int lost = 0; lost < 4; ++lost) check_recovery(f.s, {seq_at(first, lost)}, {seq_at(first, lost)});
            if (m == 2) {
                check_recovery(f.s, {seq_at(first, 0), seq_at(first, 1)}, {seq_at(first, 0), seq_at(first, 1)});
                check_recovery(f.s, {seq_at(first, 2), seq_at(first, 3)}, {seq_at(first, 2), seq_at(first, 3)});
                check_recovery(f.s, {seq_at(first, 0), seq_at(first, 2)}, {}); // one class twice
            } else {
                check_recovery(f.s, {seq_at(first, 1), seq_at(first, 2)}, {});
            }
        }
}

TEST_CASE("flexfec order: a packet whose group has closed is left out, counted late, and closes nothing") {
    // Groups of 4, 1 repair packet, max_frames = 1 (any frame end closes the group).
    // Sent: 10 11 13 | 14 | 12 15 16 17, markers only on 12.
    // - 14 does not fit the group based at 10 (index 4), so that group closes with 10 11 13
    //   (repair R0) and a group based at 14 opens.
    // - 12 is older than the newest protected packet (14) and its group is gone: late. It
    //   is left out: no repair packet goes out for it, and though it ends a frame it does
    //   not close the open group (it is not part of it).
    // - 15 16 17 fill the group based at 14 (repair R1 with all four).
    feeder f(flexible(4, 1, 1));
    CHECK(f.add(10) == 0);
    CHECK(f.add(11) == 0);
    CHECK(f.add(13) == 0);
    CHECK(f.add(14) == 1); // R0: 10 11 13
    CHECK(f.add(12, true) == 0);
    CHECK(f.enc.stats().late == 1);
    CHECK(f.add(15) == 0);
    CHECK(f.add(16) == 0);
    CHECK(f.add(17) == 1); // R1: the group in progress when 12 came, complete
    CHECK(f.flush() == 0);
    const auto& st = f.enc.stats();
    CHECK(st.late == 1);
    CHECK(st.media_packets == 7);
    CHECK(st.fec_packets == 2);
    REQUIRE(f.s.fec.size() == 2);
    CHECK(protected_by(f.s.fec[0]) == std::vector<std::uint16_t>{10, 11, 13});
    CHECK(protected_by(f.s.fec[1]) == std::vector<std::uint16_t>{14, 15, 16, 17});

    // A receiver missing 12 gets nothing from the repair packets (neither claims 12, so
    // nothing is "recovered" from parity that never included it); losses they do cover
    // come back exactly, also next to the loss of 12.
    check_recovery(f.s, {12}, {});
    check_recovery(f.s, {13}, {13});
    check_recovery(f.s, {14}, {14});
    check_recovery(f.s, {12, 16}, {16});
    check_recovery(f.s, {10, 12, 17}, {10, 17});
    receiver r;
    for (const auto& [seq, d] : f.s.media)
        if (seq != 12) r.media(d);
    for (const auto& d : f.s.fec) r.fec(d);
    CHECK(r.dec.stats().fec_unused == 2); // both complete already: 12 is in neither set
    CHECK(r.dec.stats().unrecoverable == 0);
}

TEST_CASE("flexfec order: duplicates are not protected twice") {
    // Group of 4 at 20, 1 repair packet. Sent: 20 21 21 23 21 22 22: 21 again right away
    // (the newest packet), 21 again after 23 (an older packet whose place is taken), then
    // 22 completes the group, then 22 again (its group closed). Each duplicate is counted
    // late and left out: XORed in twice, 21 would cancel out of the parity and every
    // rebuilt packet would be garbage; counted as a group member, it would close the group
    // before 22 came.
    feeder f(flexible(4, 1));
    CHECK(f.add(20) == 0);
    CHECK(f.add(21) == 0);
    CHECK(f.add(21) == 0);
    CHECK(f.add(23) == 0);
    CHECK(f.add(21) == 0);
    CHECK(f.add(22) == 1);
    CHECK(f.add(22) == 0);
    CHECK(f.flush() == 0);
    CHECK(f.enc.stats().late == 3);
    CHECK(f.enc.stats().media_packets == 4);
    REQUIRE(f.s.fec.size() == 1);
    CHECK(protected_by(f.s.fec[0]) == std::vector<std::uint16_t>{20, 21, 22, 23});
    for (std::uint16_t lost = 20; lost < 24; ++lost) check_recovery(f.s, {lost}, {lost});

    // The next group is unaffected: 24..27 in order, one repair packet.
    for (std::uint16_t seq = 24; seq < 27; ++seq) CHECK(f.add(seq) == 0);
    CHECK(f.add(27) == 1);
    REQUIRE(f.s.fec.size() == 2);
    CHECK(protected_by(f.s.fec[1]) == std::vector<std::uint16_t>{24, 25, 26, 27});
    check_recovery(f.s, {21, 25}, {21, 25});
}

TEST_CASE("flexfec order: loss_estimate takes the first report as is, rises fast, falls slowly") {
    loss_estimate e;
    CHECK_FALSE(e.seen());
    CHECK(e.value() == 0);

    // First report: the estimate is that report (200/256), not a step towards it from 0.
    CHECK(e.on_report(200) == doctest::Approx(200 / 256.0));
    CHECK(e.seen());
    CHECK(e.value() == doctest::Approx(200 / 256.0));

    // From 0.25 (64/256), a report 0.25 higher moves it by 0.6 x 0.25 = 0.15 and a report
    // 0.25 lower by 0.2 x 0.25 = 0.05: a rise is followed three times as fast as a fall.
    loss_estimate up, down;
    up.on_report(64);
    down.on_report(64);
    CHECK(up.on_report(128) == doctest::Approx(0.40));
    CHECK(down.on_report(0) == doctest::Approx(0.20));
    CHECK(up.value() - 0.25 > 2 * (0.25 - down.value()));

    // Within two reports of a rise from 0 to 0.5 it is past 0.4: 0.3, then 0.42.
    loss_estimate rise;
    rise.on_report(0);
    CHECK(rise.on_report(128) == doctest::Approx(0.30));
    CHECK(rise.on_report(128) == doctest::Approx(0.42));

    CHECK(rise.on_report(128) == doctest::Approx(0.42 + 0.6 * 0.08));
    // A report equal to the estimate leaves it there.
    loss_estimate flat;
    flat.on_report(51);
    CHECK(flat.on_report(51) == doctest::Approx(51 / 256.0));

    // reset forgets everything: the next report is a first report again.
    e.reset();
    CHECK_FALSE(e.seen());
    CHECK(e.value() == 0);
    CHECK(e.on_report(10) == doctest::Approx(10 / 256.0));
}

TEST_CASE("flexfec order: loss_estimate sends repairs twice from 10 % loss and three times from 30 %") {
    static_assert(loss_estimate::duplicate_repairs_from == 0.10);
    static_assert(loss_estimate::triplicate_repairs_from == 0.30);
    // Before any report: one copy.
    loss_estimate none;
    CHECK(none.repair_copies() == 1);

    // 25/256 = 0.098 is below 0.10, 26/256 = 0.102 above; 76/256 = 0.297 is below 0.30,
    // 77/256 = 0.301 above.
    auto first = [](int k) {
        loss_estimate e;
        e.on_report(static_cast<std::uint8_t>(k));
        return e;
    };
    CHECK(first(0).repair_copies() == 1);
    CHECK(first(25).repair_copies() == 1);
    CHECK(first(26).repair_copies() == 2);
    CHECK(first(76).repair_copies() == 2);
    CHECK(first(77).repair_copies() == 3);
    // Every first report: one copy below the threshold, more at or above it.
    for (int k = 0; k < 256; ++k) {
        CAPTURE(k);
        const loss_estimate e = first(k);
        const double v = k / 256.0;
        CHECK(e.repair_copies() == (v >= loss_estimate::triplicate_repairs_from ? 3
                                    : v >= loss_estimate::duplicate_repairs_from ? 2
                                                                                 : 1));
    }

    // A lossy path (0.5) going quiet: 0.4, 0.32 (three copies), 0.256, 0.205, 0.164, 0.131,
    // 0.105 (still two copies after seven loss-free reports), then 0.084: one copy.
    loss_estimate quiet;
    quiet.on_report(128);
    const std::array<int, 8> copies{3, 3, 2, 2, 2, 2, 2, 1};
    for (std::size_t i = 0; i < copies.size(); ++i) {
        CAPTURE(i);
        quiet.on_report(0);
        CHECK(quiet.repair_copies() == copies[i]);
    }
    CHECK(quiet.value() == doctest::Approx(0.5 * 0.8 * 0.8 * 0.8 * 0.8 * 0.8 * 0.8 * 0.8 * 0.8));
    // And back up: one report of 0.25 lifts 0.084 to 0.183, two copies again.
    quiet.on_report(64);
    CHECK(quiet.value() == doctest::Approx(0.18355));
    CHECK(quiet.repair_copies() == 2);
    quiet.reset();
    CHECK(quiet.repair_copies() == 1);
}

TEST_SUITE_END();

TEST_CASE("flexfec order: with delta protection off for more than half the sequence space, a key frame is still protected") {
    // protection_for_loss(0): delta frames get no repair packets, key frames one per 10. The
    // encoder's idea of the newest packet must move with every packet, protected or not:
    // 40000 unprotected delta packets (past the 16-bit half-way point) and then a key frame
    // of 10 packets must give one repair packet, and nothing counted late.
    flexfec_encoder::config c;
    c.media_ssrc = media_ssrc;
    c.fec_ssrc = fec_ssrc;
    c.protection = protection_for_loss(0);
    flexfec_encoder enc(c);
    std::size_t repairs = 0;
    auto count = [&](rtp::bytes_view) { ++repairs; };
    std::uint16_t seq = 100;
    const bytes delta = media_packet(7, true);
    for (int i = 0; i < 40000; ++i) {
        bytes d = delta;
        rtp::store_be16(&d[2], seq++);
        REQUIRE_FALSE(enc.add(d, false, count));
    }
    CHECK(repairs == 0);
    for (int i = 0; i < 10; ++i) {
        bytes k = media_packet(seq, i == 9);
        REQUIRE_FALSE(enc.add(k, true, count));
        ++seq;
    }
    CHECK(repairs == 1);
    CHECK(enc.stats().late == 0);
    // A jump far back (the sender restarted its numbering) is not lateness either.
    bytes back = media_packet(5, true);
    REQUIRE_FALSE(enc.add(back, true, count));
    CHECK(enc.stats().late == 0);
    CHECK(repairs == 2);
}
