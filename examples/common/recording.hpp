// onair examples — the --record option: a file name whose extension names the container.
#pragma once

#include "common/cli.hpp"

#include <onair/media/recorder.hpp>

#include <filesystem>
#include <string>

namespace onair_examples {

/// FILE.webm or FILE.mp4 to recording options (the tracks are filled in by the caller).
inline onair::media::recording_options recording_options_for(const std::string& file, const std::string& what) {
    const std::filesystem::path p(file);
    const auto ext = p.extension().string();
    const auto format = onair::media::container_of(ext.empty() ? std::string() : ext.substr(1));
    if (!format) throw usage_error(what + ": expected a .webm or .mp4 file name, got '" + file + "'");
    if (p.has_parent_path() && !std::filesystem::is_directory(p.parent_path()))
        throw usage_error(what + ": no directory " + p.parent_path().string());
    onair::media::recording_options o;
    o.path = p;
    o.format = *format;
    return o;
}

} // namespace onair_examples
