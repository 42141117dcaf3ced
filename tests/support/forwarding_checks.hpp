// Test support: the checks every forwarding scenario must pass.
#pragma once

#include "support/forwarding_scenario.hpp"

#include <onair/codec/vp8.hpp>
#include <onair/codec/vp9.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <unordered_set>

namespace onair_test {

template <class Video, class Env>
void check_forwarding(Env& env) {
    const auto r = run_forwarding<Video>(env, 640, 360, 30, 1000, 5.0, 2);
    INFO("codec " << Video::encoding_name);
    REQUIRE(r.frames_pushed == 150);
    CHECK(r.host.video_frames_dropped == 0);
    CHECK(r.host.video_frames_encoded == r.frames_pushed);
    CHECK(r.host.audio_frames_encoded == r.audio_pushed);
    CHECK(r.host.published);

    // FlexFEC is per leg (the relay decodes the host's and sends its own): media is compared
    // without it.
    const std::uint32_t fec_ssrc = r.description.video_fec_ssrc;
    REQUIRE(fec_ssrc != 0);
    // Each leg numbers its datagrams for its own congestion control (the transport-wide
    // sequence element): media is compared with that number cleared, and the relay's
    // padding-only probes are not media.
    auto split = [fec_ssrc](const std::vector<std::vector<std::uint8_t>>& all, std::size_t& fec) {
        std::vector<std::vector<std::uint8_t>> media;
        fec = 0;
        for (auto d : all) {
            onair::rtp::packet_view p;
            if (!onair::rtp::parse(d, p) && p.payload.empty() && p.padding > 0) continue;
            if (d.size() >= 12 && onair::rtp::load_be32(d.data() + 8) == fec_ssrc) {
                ++fec;
                continue;
            }
            if (const std::size_t off = onair::rtp::transport_sequence_offset(d)) d[off] = d[off + 1] = 0;
            media.push_back(std::move(d));
        }
        return media;
    };
    std::size_t host_fec = 0;
    const auto host_rtp = split(rtp_only(r.host_log.sent), host_fec);
    // With no loss reported, only key frames are protected.
    CHECK(host_fec == r.host.fec_packets);
    CHECK(host_fec > 0);
    std::unordered_set<std::string> sent_set;
    for (const auto& d : host_rtp) sent_set.emplace(d.begin(), d.end());
    REQUIRE(host_rtp.size() > 150);

    for (std::size_t i = 0; i < r.viewers.size(); ++i) {
        INFO("viewer " << i);
        const auto& st = r.viewers[i];
        auto& view = *r.views[i];
        // Every frame delivered, once, in order, and decodable.
        CHECK(st.video_frames == r.frames_pushed);
        CHECK(st.decode_errors == 0);
        CHECK(view.unreadable == 0);
        std::vector<std::uint32_t> expected(r.frames_pushed);
        for (std::uint32_t n = 0; n < expected.size(); ++n) expected[n] = n;
        CHECK(view.frame_numbers == expected);
        // Picture quality against what the host encoded.
        CHECK(view.psnr_checked == r.frames_pushed);
        CHECK(view.min_psnr >= 32.0);
        // Audio without gaps: every 20 ms frame, full size, in capture order.
        INFO("audio skipped " << st.audio_skipped << ", concealed " << st.audio_concealed << ", comfort noise "
                              << st.comfort_noise << ", target " << st.audio_target_delay_ms << " ms");
        // Every frame decoded, but for the odd one the jitter buffer drops to take a start-up
        // burst's extra delay off (whole-frame time compression).
        CHECK(st.audio_frames + st.audio_skipped == r.audio_pushed);
        CHECK(st.audio_skipped <= 2);
        CHECK(view.audio_sizes_ok);
        // The sink hears every 20 ms played: decoded frames, and comfort noise once the
        // stream has ended (nothing was concealed, see below).
        CHECK(view.audio_samples == st.audio_played * 960);
        CHECK(st.audio_played >= st.audio_frames);
        CHECK(std::is_sorted(view.audio_capture_times.begin(), view.audio_capture_times.end()));
        CHECK(std::adjacent_find(view.audio_capture_times.begin(), view.audio_capture_times.end()) ==
              view.audio_capture_times.end());
        // The relay forwarded the host's datagrams byte for byte but for the leg's number:
        // each one the viewer got is one the host sent, and it got all of them.
        std::size_t viewer_fec = 0;
        const auto got = split(rtp_only(r.viewer_logs[i]->received), viewer_fec);
        CHECK(got.size() == host_rtp.size());
        CHECK(viewer_fec > 0); // the relay protects the key frames it forwards
        CHECK(st.fec_packets == viewer_fec);
        std::size_t unchanged = 0;
        for (const auto& d : got) unchanged += sent_set.count(std::string(d.begin(), d.end()));
        CHECK(unchanged == got.size());
        // The relay numbered everything it sent this viewer 0, 1, 2, ... (loopback keeps the
        // order), and the viewer's feedback on those numbers reached the relay's estimator.
        std::size_t numbered = 0, in_order = 0;
        for (const auto& d : rtp_only(r.viewer_logs[i]->received)) {
            onair::rtp::packet_view p;
            if (onair::rtp::parse(d, p)) continue;
            if (const auto t = p.transport_sequence()) in_order += *t == static_cast<std::uint16_t>(numbered++);
        }
        CHECK(numbered == rtp_only(r.viewer_logs[i]->received).size());
        CHECK(in_order == numbered);
        CHECK(st.transport_feedback_sent > 10);
        // Nothing was lost: every frame pushed was decoded (checked above), so concealment
        // never stood in for a frame; what there is of it only stretched time, when a busy
        // machine ran the playout late (seen: 1 frame in 250, once, in CI). Nothing froze.
        CHECK(st.audio_concealed <= 3);
        CHECK(st.freezes == 0);
        CHECK(st.freeze_ratio() == 0);
        // Latency was measured on every frame.
        CHECK(st.latency_ms.count() == r.frames_pushed);
    }
    CHECK(r.relay.subscriber_feedback > 20);
    CHECK(r.relay.unknown_stream == 0);
    CHECK(r.relay.unauthorized == 0);
}

} // namespace onair_test
