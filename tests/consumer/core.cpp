// Uses only the core (onair::onair): RTP without any codec library.
#include <onair/rtp/packet.hpp>

#include <array>

int main() {
    onair::rtp::header h;
    h.sequence = 7;
    h.ssrc = 42;
    std::array<std::uint8_t, 64> buf;
    const auto n = onair::rtp::write_header(h, buf);
    onair::rtp::packet_view p;
    return n && !onair::rtp::parse(std::span(buf.data(), n), p) && p.ssrc == 42 ? 0 : 1;
}
