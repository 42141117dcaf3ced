// onair tests — scratch files for the source and sink tests, and running ffmpeg tools.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace onair::test {

/// A path in the build tree's scratch directory (created on demand).
inline std::filesystem::path scratch(const std::string& name) {
    const auto dir = std::filesystem::path(ONAIR_TEST_DATA_DIR) / "media-scratch";
    std::filesystem::create_directories(dir);
    return dir / name;
}

inline void write_file(const std::filesystem::path& p, const std::vector<std::uint8_t>& bytes) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

inline void write_file(const std::filesystem::path& p, const std::string& text) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << text;
}

inline std::vector<std::uint8_t> read_file(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline bool have_tool(const char* tool) {
    return std::system((std::string(tool) + " -version > /dev/null 2>&1").c_str()) == 0;
}

/// What the shell command `cmd` prints on its standard output ("" when it cannot start).
inline std::string command_output(const std::string& cmd) {
    std::string out;
    if (FILE* p = ::popen(cmd.c_str(), "r")) {
        char buf[4096];
        std::size_t n;
        while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
        ::pclose(p);
    }
    return out;
}

/// Runs `ffprobe -v error -show_streams` on `p`; returns its output, or "" when it fails.
inline std::string ffprobe_streams(const std::filesystem::path& p) {
    const auto out = std::filesystem::path(p).concat(".probe.txt");
    const std::string cmd = "ffprobe -v error -show_streams '" + p.string() + "' > '" + out.string() + "' 2>&1";
    if (std::system(cmd.c_str()) != 0) return {};
    const auto bytes = read_file(out);
    return {bytes.begin(), bytes.end()};
}

} // namespace onair::test
