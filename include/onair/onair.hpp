// onair — umbrella header: every role, policy and tool, plus the ready-made aliases.
#pragma once

#include "onair/codec/av.hpp"
#include "onair/codec/null.hpp"
#include "onair/codec/opus.hpp"
#include "onair/codec/passthrough.hpp"
#include "onair/codec/vp8.hpp"
#include "onair/codec/vp9.hpp"
#include "onair/core/error.hpp"
#include "onair/core/ids.hpp"
#include "onair/core/media_frame.hpp"
#include "onair/core/packet_buffer.hpp"
#include "onair/core/psnr.hpp"
#include "onair/core/stats.hpp"
#include "onair/core/time.hpp"
#include "onair/host.hpp"
#include "onair/qos/flexfec.hpp"
#include "onair/qos/frame_buffer.hpp"
#include "onair/qos/jitter_buffer.hpp"
#include "onair/qos/lip_sync.hpp"
#include "onair/qos/nack_generator.hpp"
#include "onair/qos/receive_statistics.hpp"
#include "onair/qos/red.hpp"
#include "onair/qos/retransmission_cache.hpp"
#include "onair/qos/rtx.hpp"
#include "onair/query_stream.hpp"
#include "onair/relay/sfu.hpp"
#include "onair/relay_node.hpp"
#include "onair/rtp/packet.hpp"
#include "onair/rtp/rtcp.hpp"
#include "onair/rtp/sdp.hpp"
#include "onair/sink/callback.hpp"
#include "onair/sink/null.hpp"
#include "onair/sink/packet_sink.hpp"
#include "onair/sink/tee.hpp"
#include "onair/sink/wav_writer.hpp"
#include "onair/sink/y4m_writer.hpp"
#include "onair/source/barcode.hpp"
#include "onair/source/test_pattern.hpp"
#include "onair/source/tone.hpp"
#include "onair/source/wav_reader.hpp"
#include "onair/source/y4m_reader.hpp"
#include "onair/transport/emulated_link.hpp"
#include "onair/transport/memory.hpp"
#include "onair/transport/null.hpp"
#include "onair/transport/udp.hpp"
#include "onair/viewer.hpp"

namespace onair {

/// VP8 video + Opus audio over UDP: the common host.
using host = basic_host<codec::av<codec::vp8, codec::opus>, transport::udp>;
/// Plays what `host` publishes.
using viewer = basic_viewer<codec::av<codec::vp8, codec::opus>, transport::udp>;

} // namespace onair
