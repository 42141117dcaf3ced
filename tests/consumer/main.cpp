// Uses the codecs (onair::media): encodes one frame and decodes it back.
#include <onair/onair.hpp>

int main() {
    onair::codec::vp8::encoder enc;
    onair::codec::vp8::decoder dec;
    onair::codec::video_config cfg;
    cfg.width = 160;
    cfg.height = 120;
    if (enc.open(cfg) || dec.open()) return 1;
    int decoded = 0;
    const auto ec = enc.encode(onair::source::test_pattern(160, 120).next(), [&](onair::encoded_frame&& f) {
        onair::video_frame out;
        if (!dec.decode(f, out) && out.width == 160) ++decoded;
    });
    return !ec && decoded == 1 ? 0 : 1;
}
