// relay::downlink: a subscriber leg's own transport-wide numbers (in a copy of the packet's
// head, never in the shared packet), its estimator fed by the far end's feedback, probes.
#include <onair/qos/transport_feedback_generator.hpp>
#include <onair/relay/downlink.hpp>
#include <onair/rtp/rtcp.hpp>
#include <onair/core/overloaded.hpp>

#include <doctest/doctest.h>

#include <array>
#include <vector>

using namespace onair;
using namespace std::chrono_literals;

namespace {

using clock_type = std::chrono::steady_clock;

std::vector<std::uint8_t> media_packet(std::uint16_t seq, std::size_t payload, bool with_tseq = true) {
    rtp::header h;
    h.payload_type = 96;
    h.sequence = seq;
    h.timestamp = 1234;
    h.ssrc = 0x11223344;
    if (with_tseq) h.transport_sequence = 777; // the publisher's number: the leg replaces it
    std::vector<std::uint8_t> out(1500);
    const std::size_t n = rtp::write_header(h, out);
    for (std::size_t i = 0; i < payload; ++i) out[n + i] = static_cast<std::uint8_t>(i * 7 + 1);
    out.resize(n + payload);
    return out;
}

/// The FCI of each transport-wide feedback message in an RTCP compound.
template <class F>
void for_each_fci(rtp::bytes_view compound, F&& f) {
    rtp::rtcp::parse_counts counts;
    (void)rtp::rtcp::parse_compound(compound, overloaded{[&](const rtp::rtcp::feedback& fb) {
                                        if (fb.type == rtp::rtcp::type_rtpfb && fb.fmt == rtp::twcc::fmt) f(fb.fci);
                                    }},
                                    counts);
}

} // namespace

TEST_CASE("downlink: each datagram carries the leg's next number, written into a copy of its head") {
    relay::downlink leg;
    const auto t = clock_type::time_point{} + 1h;
    std::vector<std::vector<std::uint8_t>> sent;
    auto send = [&](rtp::bytes_view head, rtp::bytes_view tail) {
        sent.emplace_back(head.begin(), head.end());
        sent.back().insert(sent.back().end(), tail.begin(), tail.end());
    };
    const auto a = media_packet(100, 900), b = media_packet(101, 300);
    const auto a_before = a;
    leg.send_packet(send, a, t);
    leg.send_packet(send, b, t + 1ms);
    leg.send_packet(send, a, t + 2ms); // the same shared packet again (a second subscriber, say)
    REQUIRE(sent.size() == 3);
    CHECK(a == a_before); // the shared packet is never written to
    for (std::size_t i = 0; i < sent.size(); ++i) {
        rtp::packet_view p;
        REQUIRE_FALSE(static_cast<bool>(rtp::parse(sent[i], p)));
        REQUIRE(p.transport_sequence());
        CHECK(*p.transport_sequence() == i); // 0, 1, 2: the leg's own numbering
        // Everything else is the packet as it was.
        auto expect = i == 1 ? b : a;
        const std::size_t off = rtp::transport_sequence_offset(expect);
        REQUIRE(off != 0);
        expect[off] = sent[i][off];
        expect[off + 1] = sent[i][off + 1];
        CHECK(sent[i] == expect);
    }
    CHECK(leg.packets() == 3);
    CHECK(leg.bytes() == 2 * a.size() + b.size());
    CHECK(leg.unmeasured() == 0);
    // A packet without the element goes out as it is, unmeasured.
    const auto plain = media_packet(102, 50, false);
    leg.send_packet(send, plain, t + 3ms);
    CHECK(sent.back() == plain);
    CHECK(leg.unmeasured() == 1);
}

TEST_CASE("downlink: the far end's feedback raises the estimate, probes go out as numbered padding, garbage is counted") {
    relay::downlink leg;
    qos::transport_feedback_generator far_end; // what a viewer runs
    auto t = clock_type::time_point{} + 1h;
    const std::int64_t start = leg.target_bps();
    std::uint16_t media_seq = 0;
    std::size_t padding_seen = 0;
    // A clean 10 Mbps path with 20 ms one way: each datagram arrives 20 ms after it is sent.
    std::vector<std::pair<clock_type::time_point, std::uint16_t>> in_flight;
    auto deliver = [&](rtp::bytes_view d, clock_type::time_point at) {
        rtp::packet_view p;
        REQUIRE_FALSE(static_cast<bool>(rtp::parse(d, p)));
        REQUIRE(p.transport_sequence());
        if (p.payload.empty() && p.padding > 0) ++padding_seen;
        in_flight.emplace_back(at + 20ms, *p.transport_sequence());
    };
    auto send = [&](rtp::bytes_view head, rtp::bytes_view tail) {
        std::vector<std::uint8_t> d(head.begin(), head.end());
        d.insert(d.end(), tail.begin(), tail.end());
        deliver(d, t);
    };
    const auto media = media_packet(0, 1000);
    for (int ms = 0; ms < 4000; ++ms, t += 1ms) {
        // Media at a steady 800 kbit/s: one 1000-byte packet every 10 ms.
        if (ms % 10 == 0) {
            auto m = media;
            rtp::store_be16(m.data() + 2, media_seq++);
            leg.send_packet(send, m, t);
            leg.process(t, [&](std::size_t want, std::uint16_t tseq) -> std::size_t {
                rtp::header h;
                h.payload_type = 97;
                h.ssrc = 0x55667788;
                h.transport_sequence = tseq;
                std::array<std::uint8_t, 1500> buf{};
                const std::size_t n = rtp::write_header(h, buf);
                const std::size_t pad = std::min<std::size_t>(std::max<std::size_t>(want, n + 1) - n, 255);
                buf[0] |= 0x20;
                buf[n + pad - 1] = static_cast<std::uint8_t>(pad);
                deliver(rtp::bytes_view(buf.data(), n + pad), t);
                return n + pad;
            });
        }
        std::erase_if(in_flight, [&](const auto& f) {
            if (f.first > t) return false;
            far_end.on_packet(f.second, t);
            return true;
        });
        if (far_end.due(t))
            far_end.build(t, 1, 2, [&](rtp::bytes_view b) { for_each_fci(b, [&](rtp::bytes_view fci) { leg.on_feedback(fci, t + 20ms); }); });
    }
    const auto& st = leg.estimator().stats();
    MESSAGE("estimate " << leg.target_bps() / 1000 << " kbps from " << start / 1000 << ", feedback " << st.feedbacks << ", probes "
                        << st.probes_started << ", padding " << leg.padding_packets());
    CHECK(st.feedbacks > 50);
    CHECK(st.malformed == 0);
    CHECK(st.probes_started >= 1);
    CHECK(leg.padding_packets() > 0);
    CHECK(padding_seen == leg.padding_packets());
    CHECK(leg.target_bps() > 2 * start); // probing found the room the 800 kbit/s of media does not show
    // Garbage in place of feedback moves nothing and is counted.
    const std::int64_t before = leg.target_bps();
    const std::array<std::uint8_t, 7> junk{1, 2, 3, 4, 5, 6, 7};
    CHECK_FALSE(leg.on_feedback(junk, t));
    CHECK(leg.estimator().stats().malformed == 1);
    CHECK(leg.target_bps() == before);
}
