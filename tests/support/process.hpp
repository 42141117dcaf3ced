// Test support: start a real program with its output captured to files, wait for it with a
// timeout, stop it. POSIX only.
#pragma once

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <spawn.h>
#include <sstream>
#include <stdexcept>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace onair_test {

inline std::string read_file(const std::filesystem::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

/// A child process whose stdout/stderr go to files in `dir`.
class process {
public:
    process(const std::vector<std::string>& argv, const std::filesystem::path& dir, const std::string& name)
        : out_(dir / (name + ".out")), err_(dir / (name + ".err")) {
        std::filesystem::create_directories(dir);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 1, out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        posix_spawn_file_actions_addopen(&fa, 2, err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        const int rc = posix_spawnp(&pid_, args[0], &fa, nullptr, args.data(), environ);
        posix_spawn_file_actions_destroy(&fa);
        if (rc != 0) throw std::runtime_error("cannot start " + argv[0]);
    }
    process(const process&) = delete;
    process& operator=(const process&) = delete;
    ~process() {
        if (!status_) {
            ::kill(pid_, SIGKILL);
            int st;
            ::waitpid(pid_, &st, 0);
        }
    }

    /// Exit code, or nullopt if still running after `timeout` (the process is left running).
    /// A process killed by a signal reports 128 + signal.
    std::optional<int> wait(std::chrono::milliseconds timeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (!status_) {
            int st = 0;
            const pid_t r = ::waitpid(pid_, &st, WNOHANG);
            if (r == pid_) status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            else if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
            else std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        return status_;
    }
    void signal(int sig) { ::kill(pid_, sig); }
    pid_t pid() const { return pid_; }

    std::string out() const { return read_file(out_); }
    std::string err() const { return read_file(err_); }

private:
    std::filesystem::path out_, err_;
    pid_t pid_ = -1;
    std::optional<int> status_;
};

/// Runs to completion (or kills after `timeout`); returns the exit code (-1 on timeout).
inline int run(const std::vector<std::string>& argv, const std::filesystem::path& dir, const std::string& name,
               std::chrono::milliseconds timeout = std::chrono::seconds(60), std::string* out = nullptr,
               std::string* err = nullptr) {
    process p(argv, dir, name);
    const auto rc = p.wait(timeout);
    if (out) *out = p.out();
    if (err) *err = p.err();
    return rc ? *rc : -1;
}

/// Polls `pred` every 20 ms until true or `timeout`.
template <class Pred>
bool eventually(Pred&& pred, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return true;
}

/// The first capture of `pattern` in `p`'s output once it appears; empty when `p` exits or
/// `timeout` passes first.
inline std::string output_match(process& p, const std::string& pattern, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    const std::regex re(pattern);
    std::string found;
    eventually([&] {
        std::smatch m;
        const std::string out = p.out();
        if (std::regex_search(out, m, re)) found = m[1];
        return !found.empty() || p.wait(std::chrono::milliseconds(0)).has_value();
    }, timeout);
    return found;
}

/// A scratch directory for one test, emptied first.
inline std::filesystem::path scratch_dir(const std::string& name) {
    auto p = std::filesystem::path(ONAIR_TEST_DATA_DIR) / "scratch" / name;
    std::filesystem::remove_all(p);
    std::filesystem::create_directories(p);
    return p;
}

inline std::string bin(const std::string& program) { return std::string(ONAIR_BIN_DIR) + "/" + program; }

/// The number stored under "key" in a flat JSON text (the programs' stats.json files).
inline double json_number(const std::string& json, const std::string& key) {
    const std::regex re("\"" + key + "\": ([-0-9.e]+)");
    std::smatch m;
    if (!std::regex_search(json, m, re)) throw std::runtime_error("no " + key + " in " + json);
    return std::stod(m[1]);
}

} // namespace onair_test
