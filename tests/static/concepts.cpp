// Every shipped policy model satisfies its concept; types that break one requirement do not.
#include <onair/codec/av.hpp>
#include <onair/codec/null.hpp>
#include <onair/codec/opus.hpp>
#include <onair/codec/passthrough.hpp>
#include <onair/codec/vp8.hpp>
#include <onair/codec/vp9.hpp>
#include <onair/relay/concepts.hpp>
#include <onair/relay/sfu.hpp>
#include <onair/rtp/generic.hpp>
#include <onair/rtp/opus.hpp>
#include <onair/rtp/vp8.hpp>
#include <onair/rtp/vp9.hpp>
#include <onair/sink/callback.hpp>
#include <onair/sink/concepts.hpp>
#include <onair/sink/null.hpp>
#include <onair/sink/tee.hpp>
#include <onair/sink/wav_writer.hpp>
#include <onair/sink/y4m_writer.hpp>
#include <onair/sink/packet_sink.hpp>
#include <onair/transport/emulated_link.hpp>
#include <onair/transport/memory.hpp>
#include <onair/transport/null.hpp>
#include <onair/transport/udp.hpp>

using namespace onair;

// ---- codec ----------------------------------------------------------------------------
static_assert(codec::video_codec<codec::vp8>);
static_assert(codec::video_codec<codec::vp9>);
static_assert(codec::video_codec<codec::passthrough_video>);
static_assert(codec::video_codec<codec::null_video>);
static_assert(codec::audio_codec<codec::opus>);
static_assert(codec::audio_codec<codec::passthrough_audio>);
static_assert(codec::audio_codec<codec::null_audio>);
static_assert(!codec::audio_codec<codec::vp8>);
static_assert(!codec::video_codec<codec::opus>);
static_assert(codec::av_codec<codec::av<codec::vp8, codec::opus>>);
static_assert(codec::av_codec<codec::av<codec::vp9, codec::opus>>);
static_assert(codec::av_codec<codec::av<codec::passthrough_video, codec::passthrough_audio>>);
static_assert(!codec::av_codec<codec::vp8>);

namespace broken {
// A codec whose encoder lacks request_keyframe().
struct no_keyframe_request : codec::null_video {
    struct encoder {
        std::error_code open(const config&) { return {}; }
        template <class E> std::error_code encode(const video_frame&, E&&) { return {}; }
        void set_bitrate(int) {}
    };
};
// A codec whose decoder returns nothing.
struct void_decode : codec::null_video {
    struct decoder {
        std::error_code open() { return {}; }
        void decode(const encoded_frame&, video_frame&) {}
    };
};
// A codec with no payload format.
struct no_payload {
    static constexpr media_kind kind = media_kind::video;
    static constexpr std::string_view encoding_name = "X";
    static constexpr std::uint32_t clock_rate = 90000;
    static constexpr int channels = 1;
    using raw_type = video_frame;
    using config = codec::null_video::config;
    using encoder = codec::null_video::encoder;
    using decoder = codec::null_video::decoder;
};
} // namespace broken
static_assert(!codec::codec<broken::no_keyframe_request>);
static_assert(!codec::codec<broken::void_decode>);
static_assert(!codec::codec<broken::no_payload>);

// ---- payload formats ------------------------------------------------------------------
static_assert(rtp::payload_format<rtp::vp8_payload>);
static_assert(rtp::payload_format<rtp::vp9_payload>);
static_assert(rtp::payload_format<rtp::opus_payload>);
static_assert(rtp::payload_format<rtp::generic_payload>);
namespace broken {
struct no_depacketizer {
    struct packetizer {
        template <class E> void packetize(const encoded_frame&, std::size_t, E&&) {}
    };
};
} // namespace broken
static_assert(!rtp::payload_format<broken::no_depacketizer>);

// ---- transport ------------------------------------------------------------------------
static_assert(transport::transport<transport::udp>);
static_assert(transport::transport<transport::memory>);
static_assert(transport::transport<transport::null>);
static_assert(transport::transport<transport::emulated_link<transport::udp>>);
static_assert(transport::transport<transport::emulated_link<transport::memory, sim_clock>>);
namespace broken {
// Sends without reporting errors.
struct silent_send : transport::null {
    using transport::null::null;
    template <class B> void send_to(const B&, const transport::endpoint&) {}
};
// No receive operation.
struct deaf {
    using executor_type = asio::io_context::executor_type;
    executor_type get_executor() const;
    template <class B> std::error_code send_to(const B&, const transport::endpoint&);
    transport::endpoint local_endpoint() const;
    void close();
    const transport::transport_stats& stats() const;
};
} // namespace broken
static_assert(!transport::transport<broken::silent_send>);
static_assert(!transport::transport<broken::deaf>);

// ---- relay ----------------------------------------------------------------------------
static_assert(relay::relay_policy<relay::sfu>);
static_assert(relay::relay_policy<relay::null>);
namespace broken {
struct no_timer {
    template <class C> void on_session(C&, const rtp::session_message&, const relay::endpoint&) {}
    template <class C> void on_rtp(C&, const packet_ref&, const rtp::packet_view&, const relay::endpoint&) {}
    template <class C> void on_rtcp(C&, rtp::bytes_view, const relay::endpoint&) {}
    const relay::relay_stats& stats() const;
};
} // namespace broken
static_assert(!relay::relay_policy<broken::no_timer>);

// ---- sinks ----------------------------------------------------------------------------
static_assert(sink::packet_sink<sink::null_packets>);
static_assert(!sink::packet_sink<int>);
static_assert(sink::media_sink<sink::null>);
static_assert(sink::media_sink<sink::y4m_writer>);
static_assert(sink::media_sink<sink::wav_writer>);
static_assert(sink::media_sink<sink::tee<sink::y4m_writer, sink::wav_writer>>);
namespace broken {
struct video_only_sink {
    void on_video(const video_frame&) {}
};
inline auto video_callback = [](const video_frame&) {};
} // namespace broken
static_assert(sink::media_sink<sink::callback<decltype(broken::video_callback)>>);
static_assert(!sink::media_sink<broken::video_only_sink>);
static_assert(!sink::media_sink<int>);
