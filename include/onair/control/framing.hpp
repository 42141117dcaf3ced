// onair — control-plane framing: each message is a 4-byte big-endian length and that many
// bytes of JSON (docs/protocol.md). The reader takes bytes from an untrusted stream in any
// split, keeps at most one frame's worth, and refuses a zero or oversized length before
// buffering it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace onair::control {

inline constexpr std::size_t frame_header_size = 4;

/// Appends `body` to `out` as one frame.
inline void append_frame(std::string& out, std::string_view body) {
    const auto n = static_cast<std::uint32_t>(body.size());
    const char h[4] = {static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8), static_cast<char>(n)};
    out.append(h, 4);
    out.append(body);
}

/// A frame ready to send, shared by every connection it goes to.
using shared_frames = std::shared_ptr<const std::string>;

inline shared_frames make_frame(std::string_view body) {
    std::string s;
    s.reserve(frame_header_size + body.size());
    append_frame(s, body);
    return std::make_shared<const std::string>(std::move(s));
}

/// Splits a byte stream into frames.
///
/// Usage: read into prepare(), commit() what arrived, then call next() until it returns
/// need_more. After error the stream has lost its framing: close it.
class frame_reader {
public:
    enum class status { frame, need_more, error };

    explicit frame_reader(std::size_t max_frame) : max_frame_(max_frame) {}

    /// Room for at least `min` more bytes. The buffer stays under about twice one frame +
    /// `min`: consumed bytes are moved out once they are half of it.
    std::span<char> prepare(std::size_t min = 4096) {
        if (begin_ > 0 && (begin_ == end_ || begin_ > buf_.size() / 2)) {
            std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
            end_ -= begin_;
            begin_ = 0;
        }
        if (buf_.size() - end_ < min) buf_.resize(end_ + min);
        return {buf_.data() + end_, buf_.size() - end_};
    }
    void commit(std::size_t n) noexcept { end_ += n; }

    /// The next whole frame's body in `body` (valid until the next prepare()).
    status next(std::string_view& body) noexcept {
        if (failed_) return status::error;
        const std::size_t have = end_ - begin_;
        if (have < frame_header_size) return status::need_more;
        const auto* p = reinterpret_cast<const unsigned char*>(buf_.data() + begin_);
        const std::size_t len = (std::size_t{p[0]} << 24) | (std::size_t{p[1]} << 16) | (std::size_t{p[2]} << 8) | p[3];
        if (len == 0 || len > max_frame_) {
            failed_ = true;
            return status::error;
        }
        if (have < frame_header_size + len) return status::need_more;
        body = {buf_.data() + begin_ + frame_header_size, len};
        begin_ += frame_header_size + len;
        return status::frame;
    }

    /// Bytes of an unfinished frame are waiting.
    bool mid_frame() const noexcept { return end_ > begin_; }
    std::size_t buffered() const noexcept { return end_ - begin_; }
    std::size_t max_frame() const noexcept { return max_frame_; }
    /// A new limit for the frames from now on (a connection that turns out to be a trunk).
    void set_max_frame(std::size_t n) noexcept { max_frame_ = n; }

private:
    std::vector<char> buf_;
    std::size_t begin_ = 0, end_ = 0;
    std::size_t max_frame_;
    bool failed_ = false;
};

} // namespace onair::control
