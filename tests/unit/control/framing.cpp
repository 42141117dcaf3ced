#include <onair/control/framing.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <ostream> // doctest prints std::string through it
#include <random>
#include <string>
#include <string_view>
#include <vector>

using namespace onair::control;
using status = frame_reader::status;

namespace {

/// What a reader made of the bytes fed so far.
struct fed {
    std::vector<std::string> frames;
    bool error = false;
};

/// Drains every whole frame (copied: a body lives only until the next prepare()).
void drain(frame_reader& r, fed& out) {
    std::string_view body;
    for (;;) {
        const auto st = r.next(body);
        if (st == status::frame) out.frames.emplace_back(body);
        else {
            if (st == status::error) out.error = true;
            return;
        }
    }
}

/// Feeds `bytes` as one arrival: as many prepare()/commit() rounds as it takes.
void feed(frame_reader& r, std::string_view bytes, fed& out, std::size_t min = 4096) {
    while (!bytes.empty()) {
        auto room = r.prepare(min);
        REQUIRE(room.size() >= min);
        const std::size_t n = std::min(room.size(), bytes.size());
        std::memcpy(room.data(), bytes.data(), n);
        r.commit(n);
        bytes.remove_prefix(n);
        drain(r, out);
    }
}

std::string header(std::uint32_t n) {
    return {static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8), static_cast<char>(n)};
}

/// Bodies of assorted sizes, up to `max_frame`, each one distinguishable.
std::vector<std::string> sample_bodies(std::size_t max_frame) {
    std::vector<std::string> b = {"{}", "x", R"({"type":"chat","text":"hello"})", std::string(max_frame, 'm'), "y",
                                  std::string(300, 'q'), std::string(max_frame - 1, 'n')};
    b[5][150] = '!';
    return b;
}

std::string stream_of(const std::vector<std::string>& bodies) {
    std::string s;
    for (const auto& b : bodies) append_frame(s, b);
    return s;
}

} // namespace

TEST_CASE("framing: append_frame writes a 4-byte big-endian length, then the body") {
    std::string out = "prefix";
    append_frame(out, "hello");
    CHECK(out == std::string("prefix") + std::string("\x00\x00\x00\x05", 4) + "hello");

    // 0x00010203 = 66051: every header byte is distinct, so the byte order shows.
    const std::string big(0x010203, 'b');
    std::string f;
    append_frame(f, big);
    REQUIRE(f.size() == 4 + big.size());
    CHECK(static_cast<unsigned char>(f[0]) == 0x00);
    CHECK(static_cast<unsigned char>(f[1]) == 0x01);
    CHECK(static_cast<unsigned char>(f[2]) == 0x02);
    CHECK(static_cast<unsigned char>(f[3]) == 0x03);
    CHECK(f.compare(4, std::string::npos, big) == 0);

    // 0x80 in the low byte: the header bytes are not sign-extended.
    std::string g;
    append_frame(g, std::string(0x180, 'c'));
    CHECK(g.substr(0, 4) == std::string("\x00\x00\x01\x80", 4));

    // make_frame is the same bytes, shared.
    const auto m = make_frame("hello");
    REQUIRE(m);
    CHECK(*m == std::string("\x00\x00\x00\x05", 4) + "hello");
    CHECK(frame_header_size == 4);
}

TEST_CASE("framing: several frames in one chunk come out in order, then need_more") {
    frame_reader r(1024);
    std::string s;
    append_frame(s, "one");
    append_frame(s, "two!");
    append_frame(s, "three");
    auto room = r.prepare(s.size());
    REQUIRE(room.size() >= s.size());
    std::memcpy(room.data(), s.data(), s.size());
    r.commit(s.size());
    CHECK(r.buffered() == s.size());

    std::string_view body;
    REQUIRE(r.next(body) == status::frame);
    CHECK(body == "one");
    REQUIRE(r.next(body) == status::frame);
    CHECK(body == "two!");
    REQUIRE(r.next(body) == status::frame);
    CHECK(body == "three");
    CHECK(r.next(body) == status::need_more);
    CHECK(r.buffered() == 0);
    CHECK_FALSE(r.mid_frame());
    CHECK(r.max_frame() == 1024);
}

TEST_CASE("framing: a stream split byte by byte and at every single point gives the same frames") {
    const std::size_t max_frame = 512;
    const auto bodies = sample_bodies(max_frame);
    const auto s = stream_of(bodies);

    SUBCASE("byte by byte, with small and large prepare sizes") {
        for (std::size_t min : {std::size_t{1}, std::size_t{7}, std::size_t{4096}}) {
            frame_reader r(max_frame);
            fed out;
            for (char c : s) feed(r, std::string_view(&c, 1), out, min);
            CHECK_FALSE(out.error);
            CHECK(out.frames == bodies);
            CHECK_FALSE(r.mid_frame());
        }
    }
    SUBCASE("every two-part split") {
        for (std::size_t k = 0; k <= s.size(); ++k) {
            frame_reader r(max_frame);
            fed out;
            feed(r, std::string_view(s).substr(0, k), out, 64);
            feed(r, std::string_view(s).substr(k), out, 64);
            REQUIRE_FALSE(out.error);
            REQUIRE(out.frames == bodies);
        }
    }
    SUBCASE("random splits (fixed seed)") {
        std::mt19937 rng(20240611);
        for (int trial = 0; trial < 300; ++trial) {
            frame_reader r(max_frame);
            fed out;
            const std::size_t min = 1 + rng() % 600;
            for (std::size_t pos = 0; pos < s.size();) {
                const std::size_t n = std::min<std::size_t>(s.size() - pos, 1 + rng() % 700);
                feed(r, std::string_view(s).substr(pos, n), out, min);
                pos += n;
            }
            REQUIRE_FALSE(out.error);
            REQUIRE(out.frames == bodies);
        }
    }
}

TEST_CASE("framing: a zero length is an error") {
    frame_reader r(100);
    fed out;
    feed(r, header(0), out);
    CHECK(out.error);
    CHECK(out.frames.empty());
}

TEST_CASE("framing: a length over the limit is refused from the header alone") {
    frame_reader r(100);
    std::string_view body;

    SUBCASE("exactly the limit is a frame") {
        fed out;
        feed(r, header(100) + std::string(100, 'z'), out);
        CHECK_FALSE(out.error);
        REQUIRE(out.frames.size() == 1);
        CHECK(out.frames[0] == std::string(100, 'z'));
    }
    SUBCASE("one over the limit: error with only the header buffered") {
        fed out;
        feed(r, header(101), out);
        CHECK(out.error);
        CHECK(r.buffered() == 4); // nothing of the body was waited for
        CHECK(r.next(body) == status::error);
    }
    SUBCASE("a huge length (4 GiB - 1) is refused before any body byte") {
        fed out;
        feed(r, header(0xffffffffu), out);
        CHECK(out.error);
        CHECK(r.buffered() == 4);
        // The prepare size the caller asks for stays what it asked: nothing was sized for the body.
        CHECK(r.prepare(16).size() < 4096 + 16);
    }
    SUBCASE("the error shows as soon as the fourth header byte arrives") {
        const std::string h = header(5000);
        fed out;
        feed(r, h.substr(0, 3), out);
        CHECK_FALSE(out.error);
        CHECK(r.next(body) == status::need_more);
        feed(r, h.substr(3), out);
        CHECK(out.error);
    }
}

TEST_CASE("framing: an error is sticky") {
    frame_reader r(100);
    fed out;
    std::string s;
    append_frame(s, "before");
    s += header(0);
    feed(r, s, out);
    REQUIRE(out.error);
    REQUIRE(out.frames == std::vector<std::string>{"before"});

    // Valid frames after the bad header do not revive the stream.
    std::string more;
    append_frame(more, "after");
    append_frame(more, "again");
    out = {};
    feed(r, more, out);
    CHECK(out.error);
    CHECK(out.frames.empty());
    std::string_view body;
    CHECK(r.next(body) == status::error);
    CHECK(r.next(body) == status::error);
}

TEST_CASE("framing: mid_frame() tells whether a frame is half-received") {
    frame_reader r(100);
    fed out;
    CHECK_FALSE(r.mid_frame());
    CHECK(r.buffered() == 0);

    std::string s;
    append_frame(s, "abcdef");
    feed(r, s.substr(0, 2), out); // half a header
    CHECK(r.mid_frame());
    CHECK(r.buffered() == 2);
    feed(r, s.substr(2, 5), out); // header and part of the body
    CHECK(r.mid_frame());
    CHECK(r.buffered() == 7);
    CHECK(out.frames.empty());
    feed(r, s.substr(7), out); // the rest: drained by feed()
    REQUIRE(out.frames == std::vector<std::string>{"abcdef"});
    CHECK_FALSE(r.mid_frame());
    CHECK(r.buffered() == 0);

    // A whole frame and the first byte of the next one.
    std::string t;
    append_frame(t, "gh");
    append_frame(t, "ij");
    feed(r, t.substr(0, 7), out);
    CHECK(out.frames.back() == "gh");
    CHECK(r.mid_frame());
    CHECK(r.buffered() == 1);
}

TEST_CASE("framing: the buffer stays bounded over a long stream read in random chunks") {
    const std::size_t max_frame = 200, min = 64;
    frame_reader r(max_frame);
    std::mt19937 rng(7);
    std::string s;
    std::vector<std::size_t> lengths;
    for (int i = 0; i < 20000; ++i) {
        const std::size_t n = 1 + rng() % max_frame;
        lengths.push_back(n);
        std::string body(n, static_cast<char>('a' + i % 26));
        append_frame(s, body);
    }

    std::size_t pos = 0, frames = 0, largest = 0;
    bool order_ok = true;
    std::string_view body;
    while (pos < s.size()) {
        auto room = r.prepare(min);
        REQUIRE(room.size() >= min);
        // The reader holds at most one unfinished frame plus what it was asked to make room for.
        // (Without a compaction before each resize it can reach about twice that; see below.)
        largest = std::max(largest, room.size() + r.buffered());
        REQUIRE(room.size() + r.buffered() <= 2 * (frame_header_size + max_frame + min));
        const std::size_t n = std::min<std::size_t>({room.size(), s.size() - pos, 1 + rng() % room.size()});
        std::memcpy(room.data(), s.data() + pos, n);
        r.commit(n);
        pos += n;
        for (status st; (st = r.next(body)) != status::need_more;) {
            REQUIRE(st == status::frame);
            order_ok = order_ok && frames < lengths.size() && body.size() == lengths[frames] &&
                       body.front() == static_cast<char>('a' + frames % 26);
            ++frames;
        }
        REQUIRE(r.buffered() < frame_header_size + max_frame); // only an unfinished frame waits
    }
    CHECK(order_ok);
    CHECK(frames == lengths.size());
    CHECK_FALSE(r.mid_frame());
    CHECK(largest >= max_frame); // the biggest frames did pass through the buffer whole
}
