// onair — error codes. Every fallible operation reports a std::error_code in onair's category.
#pragma once

#include <string>
#include <system_error>

namespace onair {

enum class errc {
    ok = 0,
    truncated,            ///< fewer bytes than the header or a length field promises
    bad_version,          ///< RTP/RTCP version is not 2
    bad_padding,          ///< padding length is zero or longer than the payload
    bad_extension,        ///< malformed RFC 8285 header extension block
    bad_payload,          ///< payload format descriptor cannot be parsed
    unknown_stream,       ///< SSRC or stream name not known here
    oversized,            ///< frame or packet larger than the configured limit
    codec_init_failed,    ///< the encoder/decoder library refused its configuration
    codec_failed,         ///< encode or decode call failed
    not_keyframe,         ///< decoder needs a keyframe first
    bad_frame,            ///< raw frame with an unexpected size or format
    unsupported,          ///< valid input this build does not handle
    bad_file,             ///< Y4M/WAV input that cannot be read
    end_of_stream,        ///< a source ran out of frames
    queue_full,           ///< a bounded queue refused an item
};

class error_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "onair"; }
    std::string message(int ev) const override {
        switch (static_cast<errc>(ev)) {
        case errc::ok: return "success";
        case errc::truncated: return "truncated input";
        case errc::bad_version: return "bad RTP/RTCP version";
        case errc::bad_padding: return "bad padding";
        case errc::bad_extension: return "malformed header extension";
        case errc::bad_payload: return "malformed payload descriptor";
        case errc::unknown_stream: return "unknown stream";
        case errc::oversized: return "oversized frame or packet";
        case errc::codec_init_failed: return "codec initialisation failed";
        case errc::codec_failed: return "codec call failed";
        case errc::not_keyframe: return "decoder needs a keyframe";
        case errc::bad_frame: return "bad raw frame";
        case errc::unsupported: return "unsupported";
        case errc::bad_file: return "bad media file";
        case errc::end_of_stream: return "end of stream";
        case errc::queue_full: return "queue full";
        }
        return "unknown onair error";
    }
};

inline const std::error_category& error_category() noexcept {
    static const error_category_impl cat;
    return cat;
}

inline std::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), error_category()};
}

} // namespace onair

template <>
struct std::is_error_code_enum<onair::errc> : std::true_type {};
