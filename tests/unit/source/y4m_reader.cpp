#include "onair/source/y4m_reader.hpp"

#include "onair/sink/y4m_writer.hpp"
#include "onair/source/test_pattern.hpp"
#include "unit/source/test_files.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

using onair::errc;
using onair::timestamp;
using onair::video_frame;
using onair::source::y4m_reader;
using onair::test::scratch;
using onair::test::write_file;

namespace {

const timestamp epoch{std::chrono::seconds{1'700'000'000}};

std::string frame_bytes(int w, int h, char fill) {
    return "FRAME\n" + std::string(video_frame::size_for(w, h), fill);
}

std::error_code open_text(y4m_reader& r, const std::string& name, const std::string& content) {
    const auto p = scratch(name);
    write_file(p, content);
    return r.open(p, epoch);
}

} // namespace

TEST_SUITE("source.y4m_reader") {
    TEST_CASE("y4m write -> read round trip is byte exact") {
        const auto p = scratch("roundtrip.y4m");
        onair::source::test_pattern tp(176, 144, 25, epoch);
        std::vector<video_frame> frames;
        {
            onair::sink::y4m_writer w(p, 25);
            for (int i = 0; i < 7; ++i) {
                frames.push_back(tp.next());
                w.on_video(frames.back());
            }
            CHECK(w.frames_written() == 7);
            CHECK_FALSE(w.close());
        }
        y4m_reader r;
        REQUIRE_FALSE(r.open(p, epoch));
        CHECK(r.width() == 176);
        CHECK(r.height() == 144);
        CHECK(r.fps_num() == 25);
        CHECK(r.fps_den() == 1);
        video_frame f;
        for (int i = 0; i < 7; ++i) {
            REQUIRE_FALSE(r.read(f));
            CHECK(f.data == frames[static_cast<std::size_t>(i)].data);
            CHECK(f.capture_time == epoch + std::chrono::milliseconds{40 * i});
        }
        CHECK(r.read(f) == errc::end_of_stream);
        CHECK(r.read(f) == errc::end_of_stream);
        CHECK(r.frames_read() == 7);
    }

    TEST_CASE("accepted 4:2:0 colour spaces and header tags") {
        for (const std::string c : {"", " C420", " C420jpeg", " C420mpeg2", " C420paldv"}) {
            CAPTURE(c);
            y4m_reader r;
            REQUIRE_FALSE(open_text(r, "cs.y4m",
                                    "YUV4MPEG2 W4 H2 F30000:1001 Ip A1:1" + c + " XCOMMENT=x\n" + frame_bytes(4, 2, 'a') +
                                        "FRAME Ixyz\n" + std::string(12, 'b')));
            CHECK(r.fps() == doctest::Approx(29.97).epsilon(0.001));
            video_frame f;
            REQUIRE_FALSE(r.read(f));
            CHECK(f.data == std::vector<std::uint8_t>(12, 'a'));
            REQUIRE_FALSE(r.read(f)); // frame parameters are ignored
            CHECK(f.data == std::vector<std::uint8_t>(12, 'b'));
            CHECK(f.capture_time == epoch + std::chrono::microseconds{33'366}); // 1001/30000 s
            CHECK(r.read(f) == errc::end_of_stream);
        }
        y4m_reader r;
        REQUIRE_FALSE(open_text(r, "nofps.y4m", "YUV4MPEG2 W2 H2\n"));
        CHECK(r.fps_num() == 25); // as ffmpeg assumes
    }

    TEST_CASE("other colour spaces are unsupported") {
        for (const std::string c : {"C444", "C422", "Cmono", "C420p10", "C444alpha"}) {
            CAPTURE(c);
            y4m_reader r;
            CHECK(open_text(r, "unsup.y4m", "YUV4MPEG2 W4 H2 F25:1 " + c + "\n" + frame_bytes(4, 2, 'a')) ==
                  errc::unsupported);
            CHECK(r.error_message().find(c) != std::string::npos);
            video_frame f;
            CHECK(r.read(f)); // not open
        }
    }

    TEST_CASE("malformed headers are bad_file") {
        const std::string bad[] = {
            "",
            "YUV4MPEG",
            "YUV4MPEG2 W4 H2",            // no newline
            "YUV4MPEG3 W4 H2\n",
            "YUV4MPEG2W4 H2\n",
            "YUV4MPEG2 H2\n",             // no width
            "YUV4MPEG2 W4\n",
            "YUV4MPEG2 W0 H2\n",
            "YUV4MPEG2 W-4 H2\n",
            "YUV4MPEG2 W4x H2\n",
            "YUV4MPEG2 W99999999999 H2\n",
            "YUV4MPEG2 W20000 H2\n",
            "YUV4MPEG2 W4 H2 F25\n",
            "YUV4MPEG2 W4 H2 F25:0\n",
            "YUV4MPEG2 W4 H2 F:1\n",
            "GIF89a garbage\n",
            std::string(10000, 'Y'),
        };
        for (const auto& h : bad) {
            CAPTURE(h.substr(0, 40));
            y4m_reader r;
            CHECK(open_text(r, "bad.y4m", h) == errc::bad_file);
            CHECK_FALSE(r.error_message().empty());
        }
        y4m_reader r;
        CHECK(r.open(scratch("does-not-exist.y4m")) == errc::bad_file);
    }

    TEST_CASE("truncated and corrupt frames") {
        const std::string hdr = "YUV4MPEG2 W4 H2 F25:1\n";
        y4m_reader r;
        video_frame f;
        REQUIRE_FALSE(open_text(r, "trunc.y4m", hdr + frame_bytes(4, 2, 'a') + "FRAME\n" + std::string(5, 'b')));
        REQUIRE_FALSE(r.read(f));
        CHECK(r.read(f) == errc::truncated);

        REQUIRE_FALSE(open_text(r, "trunc2.y4m", hdr + frame_bytes(4, 2, 'a') + "FRA"));
        REQUIRE_FALSE(r.read(f));
        CHECK(r.read(f) == errc::bad_file);

        REQUIRE_FALSE(open_text(r, "trunc3.y4m", hdr + "JUNK!\n" + std::string(12, 'a')));
        CHECK(r.read(f) == errc::bad_file);

        REQUIRE_FALSE(open_text(r, "trunc4.y4m", hdr + "FRAME" + std::string(5000, ' ')));
        CHECK(r.read(f) == errc::bad_file);

        // Every prefix of a valid file either opens and reads cleanly or fails cleanly.
        const std::string whole = hdr + frame_bytes(4, 2, 'a') + frame_bytes(4, 2, 'b');
        for (std::size_t n = 0; n <= whole.size(); ++n) {
            y4m_reader p;
            if (open_text(p, "prefix.y4m", whole.substr(0, n))) continue;
            int frames = 0;
            std::error_code ec;
            while (!(ec = p.read(f))) ++frames;
            CHECK(frames <= 2);
            if (n == whole.size()) CHECK(frames == 2);
            CHECK((ec == errc::end_of_stream || ec == errc::truncated || ec == errc::bad_file));
        }
    }

    TEST_CASE("reads ffmpeg's y4m output") {
        if (!onair::test::have_tool("ffmpeg")) {
            MESSAGE("ffmpeg not installed: skipped");
            return;
        }
        const auto p = scratch("ffmpeg.y4m");
        const std::string cmd = "ffmpeg -v error -y -f lavfi -i testsrc=size=96x64:rate=15 -frames:v 4 -pix_fmt yuv420p '" +
                                p.string() + "'";
        REQUIRE(std::system(cmd.c_str()) == 0);
        y4m_reader r;
        REQUIRE_FALSE(r.open(p, epoch));
        CHECK(r.width() == 96);
        CHECK(r.height() == 64);
        CHECK(r.fps_num() == 15);
        video_frame f;
        int n = 0;
        while (!r.read(f)) ++n;
        CHECK(n == 4);
        CHECK(f.capture_time == epoch + std::chrono::microseconds{200'000});
    }
}
