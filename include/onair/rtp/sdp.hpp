// onair — SDP (RFC 8866) for a stream pushed as plain RTP to fixed addresses, so standard
// receivers (ffmpeg/ffplay, GStreamer, VLC) can open it.
#pragma once

#include "onair/rtp/packet.hpp"
#include "onair/rtp/session_message.hpp"

#include <asio/ip/udp.hpp>

#include <string>

namespace onair::rtp {

/// SDP describing `d` as received on `video_to` (video) and `audio_to` (audio). Media
/// the stream does not have are left out.
inline std::string make_sdp(const stream_description& d, const asio::ip::udp::endpoint& video_to,
                            const asio::ip::udp::endpoint& audio_to) {
    const std::string family = video_to.address().is_v6() ? "IP6" : "IP4";
    std::string s;
    s += "v=0\r\n";
    s += "o=- " + std::to_string(d.video_ssrc ^ d.audio_ssrc) + " 1 IN " + family + " " +
         video_to.address().to_string() + "\r\n";
    s += "s=onair " + d.name + "\r\n";
    s += "c=IN " + family + " " + video_to.address().to_string() + "\r\n";
    s += "t=0 0\r\n";
    auto extmaps = [&s] {
        s += "a=extmap:" + std::to_string(ext::transport_sequence) + " " + ext::transport_sequence_uri + "\r\n";
        s += "a=extmap:" + std::to_string(ext::abs_capture_time) + " " + ext::abs_capture_time_uri + "\r\n";
    };
    if (d.video_ssrc) {
        const std::string pt = std::to_string(d.video_pt);
        s += "m=video " + std::to_string(video_to.port()) + " RTP/AVP " + pt + "\r\n";
        s += "a=rtpmap:" + pt + " " + d.video_codec + "/90000\r\n";
        extmaps();
        s += "a=ssrc:" + std::to_string(d.video_ssrc) + " cname:" + d.name + "\r\n";
        s += "a=recvonly\r\n";
    }
    if (d.audio_ssrc) {
        const std::string pt = std::to_string(d.audio_pt);
        s += "m=audio " + std::to_string(audio_to.port()) + " RTP/AVP " + pt + "\r\n";
        if (d.audio_codec == "opus") {
            s += "a=rtpmap:" + pt + " opus/48000/2\r\n";
            s += "a=fmtp:" + pt + " minptime=10;useinbandfec=1\r\n";
        } else {
            s += "a=rtpmap:" + pt + " " + d.audio_codec + "/48000\r\n";
        }
        extmaps();
        s += "a=ssrc:" + std::to_string(d.audio_ssrc) + " cname:" + d.name + "\r\n";
        s += "a=recvonly\r\n";
    }
    return s;
}

} // namespace onair::rtp
