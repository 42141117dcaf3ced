#include "onair/sink/y4m_writer.hpp"

#include "onair/sink/concepts.hpp"
#include "onair/source/test_pattern.hpp"
#include "unit/source/test_files.hpp"

#include <doctest/doctest.h>

#include <string>

using onair::video_frame;
using onair::sink::y4m_writer;
using onair::test::scratch;

TEST_SUITE("sink.y4m_writer") {
    TEST_CASE("header on first frame, then FRAME records") {
        static_assert(onair::sink::media_sink<y4m_writer>);
        const auto p = scratch("w.y4m");
        onair::source::test_pattern tp(6, 4);
        const auto a = tp.next(), b = tp.next();
        {
            y4m_writer w(p, 30);
            REQUIRE(w.is_open());
            w.on_audio(onair::audio_frame{}); // ignored
            w.on_video(a);
            w.on_video(video_frame(8, 4)); // other size: dropped
            w.on_video(b);
            CHECK(w.frames_written() == 2);
            CHECK(w.frames_dropped() == 1);
            CHECK_FALSE(w.close());
            CHECK_FALSE(w.is_open());
        }
        const auto bytes = onair::test::read_file(p);
        const std::string hdr = "YUV4MPEG2 W6 H4 F30:1 Ip A1:1 C420jpeg\n";
        REQUIRE(bytes.size() == hdr.size() + 2 * (6 + 36));
        CHECK(std::string(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(hdr.size())) == hdr);
        CHECK(std::string(bytes.begin() + static_cast<std::ptrdiff_t>(hdr.size()),
                          bytes.begin() + static_cast<std::ptrdiff_t>(hdr.size() + 6)) == "FRAME\n");
        CHECK(std::equal(a.data.begin(), a.data.end(), bytes.begin() + static_cast<std::ptrdiff_t>(hdr.size() + 6)));
    }

    TEST_CASE("unwritable path reports an error and ignores frames") {
        y4m_writer w;
        CHECK(w.open(scratch("no-such-dir") / "x" / "w.y4m") == onair::errc::bad_file);
        w.on_video(video_frame(4, 4));
        CHECK(w.frames_written() == 0);
        CHECK(w.error() == onair::errc::bad_file);
    }

    TEST_CASE("ffprobe reads the y4m file") {
        if (!onair::test::have_tool("ffprobe")) {
            MESSAGE("ffprobe not installed: skipped");
            return;
        }
        const auto p = scratch("probe.y4m");
        {
            y4m_writer w(p, 25);
            onair::source::test_pattern tp(160, 120);
            for (int i = 0; i < 5; ++i) w.on_video(tp.next());
        }
        const auto out = onair::test::ffprobe_streams(p);
        REQUIRE_FALSE(out.empty());
        CHECK(out.find("codec_name=rawvideo") != std::string::npos);
        CHECK(out.find("width=160") != std::string::npos);
        CHECK(out.find("height=120") != std::string::npos);
        CHECK(out.find("pix_fmt=yuv420p") != std::string::npos);
        CHECK(out.find("r_frame_rate=25/1") != std::string::npos);
        // The probe really fails on a broken file.
        onair::test::write_file(scratch("broken.y4m"), std::string("YUV4MPEG2 garbage\n"));
        CHECK(onair::test::ffprobe_streams(scratch("broken.y4m")).empty());
    }
}
