// Test support: headless Chromium on a page, and a listener for the report the page sends
// (examples/cdn/player.html: GET /report?t0=..&t1=..&w=..). Chromium may talk to 127.0.0.1
// only. Even with --disable-background-networking and --disable-component-update, Chromium
// 156 asks accounts.google.com, update.googleapis.com and clients2.google.com (network time);
// those services are pointed at a closed loopback port, anything else goes to a proxy that
// does not exist (loopback bypasses proxies), and no host name resolves. What remains is the
// resolver's UDP connect() to a public address to learn the local route (no packet is sent).
#pragma once

#include "support/http.hpp"
#include "support/process.hpp"
#include "support/tools.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <poll.h>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace onair_test {

using query_map = std::map<std::string, std::string>;

/// A tiny HTTP server on 127.0.0.1 (ephemeral port) that collects the query parameters of
/// every GET to `path` and answers a 1x1 GIF (any other path: 404). Connections are served
/// from one thread with poll(), so a connection that sends nothing does not block others.
class report_listener {
public:
    explicit report_listener(std::string path = "/report")
        : path_(std::move(path)), listen_(tcp_listen_loopback(0)), port_(local_port(listen_.get())) {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
        wake_read_ = socket_fd(fds[0]);
        wake_write_ = socket_fd(fds[1]);
        thread_ = std::thread([this] { serve(); });
    }
    report_listener(const report_listener&) = delete;
    report_listener& operator=(const report_listener&) = delete;
    ~report_listener() {
        (void)!::write(wake_write_.get(), "x", 1);
        thread_.join();
    }

    std::uint16_t port() const { return port_; }
    /// "http://127.0.0.1:PORT/report": the page's report= parameter.
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + path_; }

    /// The query parameters of the first report; nullopt if none arrives within `timeout`.
    std::optional<query_map> wait(std::chrono::milliseconds timeout) {
        std::unique_lock lock(mutex_);
        if (!cv_.wait_for(lock, timeout, [&] { return !reports_.empty(); })) return std::nullopt;
        return reports_.front();
    }
    std::vector<query_map> reports() const {
        std::lock_guard lock(mutex_);
        return reports_;
    }
    /// Request lines of everything received (diagnostics).
    std::vector<std::string> requests() const {
        std::lock_guard lock(mutex_);
        return requests_;
    }

private:
    struct client {
        socket_fd fd;
        std::string buf;
        std::chrono::steady_clock::time_point deadline;
    };

    void serve() {
        std::vector<std::unique_ptr<client>> clients;
        for (;;) {
            std::vector<pollfd> fds{{wake_read_.get(), POLLIN, 0}, {listen_.get(), POLLIN, 0}};
            for (const auto& c : clients) fds.push_back({c->fd.get(), POLLIN, 0});
            if (::poll(fds.data(), fds.size(), 200) < 0 && errno != EINTR) return;
            if (fds[0].revents) return;
            if (fds[1].revents & POLLIN) {
                socket_fd c(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
                if (c) clients.push_back(std::make_unique<client>(
                    client{std::move(c), {}, std::chrono::steady_clock::now() + std::chrono::seconds(10)}));
            }
            const auto now = std::chrono::steady_clock::now();
            for (std::size_t i = 0; i < clients.size(); ++i) {
                auto& c = *clients[i];
                bool done = now > c.deadline;
                if (!done && fds[2 + i].revents) {
                    const long n = recv_some(c.fd.get(), c.buf, std::chrono::milliseconds(0));
                    if (n <= 0 && n != -2) done = true;
                    else if (c.buf.find("\r\n\r\n") != std::string::npos) {
                        answer(c);
                        done = true;
                    } else if (c.buf.size() > (4u << 20)) done = true;
                }
                if (done) clients[i].reset();
            }
            std::erase_if(clients, [](const auto& c) { return !c; });
        }
    }

    void answer(client& c) {
        const std::string line = c.buf.substr(0, c.buf.find("\r\n"));
        const auto sp1 = line.find(' ');
        const auto sp2 = line.rfind(' ');
        const std::string target = sp1 != std::string::npos && sp2 > sp1 ? line.substr(sp1 + 1, sp2 - sp1 - 1) : "";
        const auto q = target.find('?');
        const bool is_report = line.rfind("GET ", 0) == 0 && target.substr(0, q) == path_;
        {
            std::lock_guard lock(mutex_);
            requests_.push_back(line);
            if (is_report) reports_.push_back(q == std::string::npos ? query_map{} : parse_query(target.substr(q + 1)));
        }
        if (is_report) {
            cv_.notify_all();
            static const char gif[] = "GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff\x21\xf9\x04\x01\x00\x00\x00"
                                      "\x00\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00\x3b";
            send_response(c.fd.get(), 200, "image/gif", std::string_view(gif, sizeof gif - 1),
                          {"Cache-Control: no-store", "Access-Control-Allow-Origin: *"});
        } else {
            send_response(c.fd.get(), 404, "text/plain", "not found\n");
        }
    }

    std::string path_;
    socket_fd listen_;
    std::uint16_t port_;
    socket_fd wake_read_, wake_write_;
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<query_map> reports_;
    std::vector<std::string> requests_;
    std::thread thread_;
};

/// The number under `key` in a report, or `fallback` when absent or not a number.
inline double report_number(const query_map& r, const std::string& key, double fallback = -1) {
    const auto it = r.find(key);
    if (it == r.end() || it->second.empty()) return fallback;
    try {
        return std::stod(it->second);
    } catch (...) {
        return fallback;
    }
}
inline std::string report_text(const query_map& r, const std::string& key) {
    const auto it = r.find(key);
    return it == r.end() ? std::string() : it->second;
}
/// "key=value key=value ..." of a whole report, for failure messages.
inline std::string describe(const query_map& r) {
    std::string s;
    for (const auto& [k, v] : r) s += (s.empty() ? "" : " ") + k + "=" + v;
    return s;
}

/// Headless Chromium showing one URL, in its own session (so stopping it takes its helper
/// processes too) with a fresh profile, home and cache below `dir`.
class chromium {
public:
    /// $ONAIR_CHROMIUM, else the binary behind Debian's /usr/bin/chromium wrapper (the wrapper
    /// itself adds --enable-remote-extensions and API keys from /etc/chromium.d), else
    /// chromium or chromium-browser on PATH; "" when there is none.
    static std::string executable() {
        if (const char* e = std::getenv("ONAIR_CHROMIUM"); e && *e) return find_executable(e);
        for (const char* c : {"/usr/lib/chromium/chromium", "chromium", "chromium-browser"})
            if (auto p = find_executable(c); !p.empty()) return p;
        return "";
    }
    static bool available() { return !executable().empty() && !find_executable("setsid").empty(); }

    /// The flags every launch gets (before `extra_args` and the URL).
    static std::vector<std::string> default_args(const std::filesystem::path& profile) {
        return {"--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--autoplay-policy=no-user-gesture-required",
                "--user-data-dir=" + profile.string(),
                "--disable-extensions",
                "--disable-default-apps",
                "--disable-domain-reliability",
                "--disable-client-side-phishing-detection",
                "--disable-breakpad",
                "--metrics-recording-only",
                "--disable-features=MediaRouter,OptimizationHints,Translate,AutofillServerCommunication,"
                "NetworkTimeServiceQuerying",
                // Google services it contacts anyway: a closed loopback port instead.
                "--gaia-url=http://127.0.0.1:9",
                "--lso-url=http://127.0.0.1:9",
                "--google-apis-url=http://127.0.0.1:9",
                "--component-updater=url-source=http://127.0.0.1:9",
                "--disable-dev-shm-usage",
                "--password-store=basic",
                "--mute-audio",
                // Timers and media keep running in a page nobody looks at.
                "--disable-background-timer-throttling",
                "--disable-renderer-backgrounding",
                "--disable-backgrounding-occluded-windows",
                // Nothing but loopback: other hosts go to a proxy that does not exist (127.0.0.1
                // and localhost bypass proxies), and no name resolves.
                "--proxy-server=http://127.0.0.1:9",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
                "--window-size=640,480"};
    }

    /// Starts Chromium on `url`; output goes to dir/chromium.out and dir/chromium.err.
    chromium(const std::string& url, const std::filesystem::path& dir, const std::vector<std::string>& extra_args = {})
        : dir_(dir), profile_(std::filesystem::absolute(dir) / "chromium-profile") {
        const std::string exe = executable();
        if (exe.empty()) throw std::runtime_error("no Chromium found");
        std::filesystem::remove_all(profile_);
        std::filesystem::create_directories(profile_ / "home");
        std::vector<std::string> argv{"setsid", "env", "-u", "GOOGLE_API_KEY", "-u", "GOOGLE_DEFAULT_CLIENT_ID",
                                      "-u", "GOOGLE_DEFAULT_CLIENT_SECRET",
                                      "HOME=" + (profile_ / "home").string(),
                                      "XDG_CONFIG_HOME=" + (profile_ / "home" / ".config").string(),
                                      "XDG_CACHE_HOME=" + (profile_ / "home" / ".cache").string(), exe};
        for (auto& a : default_args(profile_)) argv.push_back(std::move(a));
        argv.insert(argv.end(), extra_args.begin(), extra_args.end());
        argv.push_back(url);
        proc_ = std::make_unique<process>(argv, dir, "chromium");
    }
    chromium(const chromium&) = delete;
    chromium& operator=(const chromium&) = delete;
    ~chromium() { stop(); }

    /// SIGTERM to Chromium's process group, SIGKILL after `grace`; removes the profile.
    void stop(std::chrono::milliseconds grace = std::chrono::seconds(5)) {
        if (!proc_) return;
        const pid_t pid = proc_->pid();
        // setsid (not a group leader when spawned) execs in place: Chromium leads its own
        // group. Only then signal the group, never the test's own.
        const bool own_group = pid > 0 && ::getpgid(pid) == pid;
        auto signal_all = [&](int sig) {
            if (own_group) ::kill(-pid, sig);
            else proc_->signal(sig);
        };
        if (!proc_->wait(std::chrono::milliseconds(0))) {
            signal_all(SIGTERM);
            if (!proc_->wait(grace)) signal_all(SIGKILL);
        }
        if (own_group) ::kill(-pid, SIGKILL); // helpers that outlived the browser process
        proc_->wait(std::chrono::seconds(10));
        kill_profile_processes();
        log_ = proc_->err();
        proc_.reset();
        std::error_code ec;
        std::filesystem::remove_all(profile_, ec);
    }

    /// Still running (false once it exited or was stopped).
    bool running() { return proc_ && !proc_->wait(std::chrono::milliseconds(0)); }
    /// Chromium's stderr (its log).
    std::string log() const { return proc_ ? proc_->err() : log_; }

private:
    /// chrome_crashpad_handler starts its own process group and normally exits with the
    /// browser; whatever still names this instance's profile in its command line is killed.
    void kill_profile_processes() {
        const std::string mark = profile_.string();
        for (int round = 0; round < 50; ++round) {
            bool any = false;
            std::error_code ec;
            for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
                const std::string name = e.path().filename().string();
                if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
                std::string cmdline = read_file(e.path() / "cmdline");
                std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
                const std::string stat = read_file(e.path() / "stat");
                const auto paren = stat.rfind(") ");
                const bool zombie = paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z';
                if (zombie || !names(cmdline, mark)) continue;
                ::kill(static_cast<pid_t>(std::stol(name)), SIGKILL);
                any = true;
            }
            if (!any) return;
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
    }

    /// `path` occurs in `cmdline` as a whole path or a directory prefix.
    static bool names(const std::string& cmdline, const std::string& path) {
        for (auto pos = cmdline.find(path); pos != std::string::npos; pos = cmdline.find(path, pos + 1)) {
            const auto end = pos + path.size();
            if (end == cmdline.size() || cmdline[end] == '/' || cmdline[end] == ' ') return true;
        }
        return false;
    }

    std::filesystem::path dir_, profile_;
    std::unique_ptr<process> proc_;
    std::string log_;
};

/// http://127.0.0.1:PORT/player.html?src=SRC&report=REPORT&seconds=S (examples/cdn/player.html
/// as served by nginx_instance from its doc root).
inline std::string player_url(std::uint16_t port, const std::string& src, const std::string& report, double seconds) {
    char s[32];
    std::snprintf(s, sizeof s, "%g", seconds);
    return "http://127.0.0.1:" + std::to_string(port) + "/player.html?src=" + url_encode(src) +
           "&report=" + url_encode(report) + "&seconds=" + s;
}

/// Opens `page_url` (which must carry report=<listener.url()>) in Chromium and waits up to
/// `timeout` for its report; Chromium is stopped before returning. `log`, if given, receives
/// Chromium's stderr.
inline std::optional<query_map> browse_and_report(const std::string& page_url, report_listener& listener,
                                                  const std::filesystem::path& dir, std::chrono::milliseconds timeout,
                                                  std::string* log = nullptr) {
    chromium browser(page_url, dir);
    auto report = listener.wait(timeout);
    browser.stop();
    if (log) *log = browser.log();
    return report;
}

} // namespace onair_test
