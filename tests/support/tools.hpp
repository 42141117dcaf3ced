// Test support: finding external programs (nginx, Chromium, ffmpeg) so tests that need one
// can skip with a message where it is missing.
#pragma once

#include "support/process.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <unistd.h>

namespace onair_test {

/// `name` if it is a path to an executable, else the first executable `name` on PATH; ""
/// when there is none.
inline std::string find_executable(const std::string& name) {
    if (name.find('/') != std::string::npos) return ::access(name.c_str(), X_OK) == 0 ? name : "";
    const char* path = std::getenv("PATH");
    const std::string dirs = path ? path : "/usr/bin:/bin";
    for (std::size_t pos = 0; pos <= dirs.size();) {
        const auto colon = std::min(dirs.find(':', pos), dirs.size());
        const std::string candidate = dirs.substr(pos, colon - pos) + "/" + name;
        if (colon > pos && ::access(candidate.c_str(), X_OK) == 0) return candidate;
        pos = colon + 1;
    }
    return "";
}

/// ffmpeg is on PATH and has the encoder `encoder` (e.g. "libvpx", "libvpx-vp9", "libopus").
inline bool ffmpeg_has_encoder(const std::string& encoder) {
    if (find_executable("ffmpeg").empty()) return false;
    std::string out;
    const auto dir = std::filesystem::temp_directory_path() / ("onair-ffmpeg-probe-" + std::to_string(::getpid()));
    const int rc = run({"ffmpeg", "-hide_banner", "-nostdin", "-encoders"}, dir, "encoders", std::chrono::seconds(30), &out);
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    return rc == 0 && out.find(" " + encoder + " ") != std::string::npos;
}

} // namespace onair_test
