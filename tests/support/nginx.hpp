// Test support: nginx as the CDN egress (examples/cdn) in front of relays, on 127.0.0.1 with
// a free port, started by examples/cdn/start-nginx.sh and stopped by stop-nginx.sh.
// Needs ONAIR_SOURCE_DIR (the project source directory) to find the scripts.
#pragma once

#include "support/http.hpp"
#include "support/process.hpp"
#include "support/tools.hpp"

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <unistd.h>
#include <vector>

#ifndef ONAIR_SOURCE_DIR
#error "support/nginx.hpp needs ONAIR_SOURCE_DIR, the project source directory (for examples/cdn)"
#endif

namespace onair_test {

/// A running nginx from examples/cdn/nginx.conf.in. The constructor picks a free port and
/// retries with another one when that port was taken before nginx bound it; the destructor
/// stops nginx (stop-nginx.sh: SIGTERM, then SIGKILL for anything left).
class nginx_instance {
public:
    /// The nginx binary start-nginx.sh will use ($NGINX, else /usr/sbin/nginx, else PATH), or
    /// "" when there is none.
    static std::string executable() {
        if (const char* e = std::getenv("NGINX"); e && *e && ::access(e, X_OK) == 0) return e;
        if (::access("/usr/sbin/nginx", X_OK) == 0) return "/usr/sbin/nginx";
        return find_executable("nginx");
    }
    static std::filesystem::path script_dir() { return std::filesystem::path(ONAIR_SOURCE_DIR) / "examples" / "cdn"; }
    /// nginx and the example scripts are there.
    static bool available() {
        return !executable().empty() && std::filesystem::exists(script_dir() / "start-nginx.sh") &&
               !find_executable("bash").empty();
    }

    /// Starts nginx with its runtime files (config, logs, cache, pid) in `runtime_dir` and
    /// `relays` ("127.0.0.1:N") as upstreams; the doc root is runtime_dir/www (player.html is
    /// copied there). Throws with the script's output if nginx does not start.
    nginx_instance(const std::filesystem::path& runtime_dir, const std::vector<std::string>& relays, int attempts = 8)
        : dir_(std::filesystem::absolute(runtime_dir)) {
        if (relays.empty()) throw std::invalid_argument("nginx_instance needs at least one relay address");
        std::string list;
        for (const auto& r : relays) list += (list.empty() ? "" : ",") + r;
        std::filesystem::create_directories(dir_);
        std::string last_error;
        for (int attempt = 0; attempt < attempts; ++attempt) {
            const std::uint16_t candidate = free_tcp_port();
            std::string out, err;
            const int rc = run({"bash", (script_dir() / "start-nginx.sh").string(), dir_.string(), std::to_string(candidate), list},
                               dir_, "start-nginx", std::chrono::seconds(60), &out, &err);
            if (rc == 0) {
                try {
                    pid_ = static_cast<pid_t>(std::stol(out));
                } catch (...) {
                    pid_ = -1;
                }
                port_ = candidate;
                return;
            }
            last_error = "start-nginx.sh exited with " + std::to_string(rc) + ": " + err;
            if (rc == -1) stop(); // the script was killed: an nginx it started may be left
            if (rc != 3) break;   // 3: the port was taken, try another
        }
        throw std::runtime_error(last_error + "\n" + diagnostics());
    }
    nginx_instance(const nginx_instance&) = delete;
    nginx_instance& operator=(const nginx_instance&) = delete;
    ~nginx_instance() { stop(); }

    /// Stops nginx (idempotent); false if something survived.
    bool stop() noexcept {
        if (stopped_) return true;
        try {
            const int rc = run({"bash", (script_dir() / "stop-nginx.sh").string(), dir_.string()}, dir_, "stop-nginx",
                               std::chrono::seconds(30));
            if (rc == 0) {
                stopped_ = true;
                return true;
            }
        } catch (...) {
        }
        if (pid_ > 0) ::kill(pid_, SIGKILL); // last resort: the master at least
        stopped_ = true;
        return false;
    }

    std::uint16_t port() const { return port_; }
    /// The master's pid (-1 if unknown).
    pid_t pid() const { return pid_; }
    const std::filesystem::path& runtime_dir() const { return dir_; }
    /// Static files served at /.
    std::filesystem::path doc_root() const { return dir_ / "www"; }
    /// "http://127.0.0.1:PORT" + path.
    std::string url(const std::string& path = "/") const { return "http://127.0.0.1:" + std::to_string(port_) + path; }
    std::string error_log() const { return read_file(dir_ / "logs" / "error.log"); }
    std::string access_log() const { return read_file(dir_ / "logs" / "access.log"); }
    /// The tails of the error and access logs, for failure messages.
    std::string diagnostics(std::size_t max_bytes = 4000) const {
        auto tail = [&](const std::string& s) { return s.size() > max_bytes ? s.substr(s.size() - max_bytes) : s; };
        return "nginx error.log (" + (dir_ / "logs" / "error.log").string() + "):\n" + tail(error_log()) +
               "\nnginx access.log:\n" + tail(access_log());
    }

private:
    std::filesystem::path dir_;
    std::uint16_t port_ = 0;
    pid_t pid_ = -1;
    bool stopped_ = false;
};

} // namespace onair_test
