// onair examples — a small command-line parser shared by the example programs:
// "--name value" options and "--flag" switches, strict about unknown or malformed input.
#pragma once

#include <asio/ip/address.hpp>
#include <asio/ip/udp.hpp>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace onair_examples {

/// Thrown for bad command lines; main() prints it with the usage and exits with 2.
struct usage_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct option_spec {
    std::string name;   ///< without the leading "--"
    std::string arg;    ///< value placeholder; empty for a switch
    std::string help;
    bool repeatable = false;
};

class command_line {
public:
    command_line(std::string program, std::string summary, std::vector<option_spec> specs)
        : program_(std::move(program)), summary_(std::move(summary)), specs_(std::move(specs)) {
        specs_.push_back({"help", "", "print this help and exit"});
    }

    /// Parses argv; returns false when --help was given (usage already printed).
    bool parse(int argc, char** argv) {
        for (int i = 1; i < argc; ++i) {
            std::string_view a = argv[i];
            if (a.size() < 3 || a.substr(0, 2) != "--") throw usage_error("unexpected argument '" + std::string(a) + "'");
            std::string name(a.substr(2));
            std::optional<std::string> inline_value;
            if (auto eq = name.find('='); eq != std::string::npos) {
                inline_value = name.substr(eq + 1);
                name.resize(eq);
            }
            const option_spec* spec = find(name);
            if (!spec) throw usage_error("unknown option --" + name);
            if (name == "help") {
                print_usage(stdout);
                return false;
            }
            std::string value;
            if (!spec->arg.empty()) {
                if (inline_value) value = *inline_value;
                else if (i + 1 < argc) value = argv[++i];
                else throw usage_error("option --" + name + " needs a value (" + spec->arg + ")");
            } else if (inline_value) {
                throw usage_error("option --" + name + " takes no value");
            }
            auto& slot = values_[name];
            if (!slot.empty() && !spec->repeatable) throw usage_error("option --" + name + " given twice");
            slot.push_back(value);
        }
        return true;
    }

    bool has(const std::string& name) const { return values_.count(name) != 0; }
    std::string get(const std::string& name, std::string fallback = {}) const {
        auto it = values_.find(name);
        return it == values_.end() ? fallback : it->second.back();
    }
    std::vector<std::string> all(const std::string& name) const {
        auto it = values_.find(name);
        return it == values_.end() ? std::vector<std::string>{} : it->second;
    }
    std::string require(const std::string& name) const {
        if (!has(name)) throw usage_error("missing required option --" + name);
        return get(name);
    }
    template <class T>
    T number(const std::string& name, T fallback, T min, T max) const {
        if (!has(name)) return fallback;
        return parse_number<T>(get(name), "--" + name, min, max);
    }

    void print_usage(std::FILE* f) const {
        std::fprintf(f, "%s — %s\n\nusage: %s [options]\n\n", program_.c_str(), summary_.c_str(), program_.c_str());
        for (const auto& s : specs_) {
            std::string left = "--" + s.name + (s.arg.empty() ? "" : " " + s.arg);
            std::fprintf(f, "  %-30s %s\n", left.c_str(), s.help.c_str());
        }
    }

    template <class T>
    static T parse_number(const std::string& text, const std::string& what, T min, T max) {
        T v{};
        const char* b = text.data();
        const char* e = b + text.size();
        auto [p, ec] = std::from_chars(b, e, v);
        if (ec == std::errc::result_out_of_range) throw usage_error(what + ": " + text + " is out of range");
        if (ec != std::errc{} || p != e) throw usage_error(what + ": '" + text + "' is not a number");
        if (v < min || v > max) throw usage_error(what + ": " + text + " is out of range");
        return v;
    }

private:
    const option_spec* find(const std::string& name) const {
        for (const auto& s : specs_)
            if (s.name == name) return &s;
        return nullptr;
    }

    std::string program_;
    std::string summary_;
    std::vector<option_spec> specs_;
    std::map<std::string, std::vector<std::string>> values_;
};

/// "IP:PORT" (IPv6 as "[::1]:PORT").
inline asio::ip::udp::endpoint parse_endpoint(const std::string& text, const std::string& what) {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0) throw usage_error(what + ": expected IP:PORT, got '" + text + "'");
    std::string host = text.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    std::error_code ec;
    const auto addr = asio::ip::make_address(host, ec);
    if (ec) throw usage_error(what + ": '" + host + "' is not an IP address");
    const auto port = command_line::parse_number<unsigned short>(text.substr(colon + 1), what + " port", 0, 65535);
    return {addr, port};
}

/// "WxH" with even, positive dimensions.
/// The secret in the file given to `option`, without the trailing newline editors and
/// `echo` add; refuses an unreadable file or an empty secret.
inline std::string read_secret_file(const std::string& path, const std::string& option) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw usage_error(option + ": cannot read " + path);
    std::string s{std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    if (s.empty()) throw usage_error(option + ": the secret is empty");
    return s;
}

inline std::pair<int, int> parse_size(const std::string& text) {
    const auto x = text.find('x');
    if (x == std::string::npos) throw usage_error("--size: expected WxH, got '" + text + "'");
    const int w = command_line::parse_number<int>(text.substr(0, x), "--size width", 16, 7680);
    const int h = command_line::parse_number<int>(text.substr(x + 1), "--size height", 16, 4320);
    if (w % 2 || h % 2) throw usage_error("--size: width and height must be even");
    return {w, h};
}

/// Runs `body`, turning usage errors into exit code 2 and other failures into 1.
template <class Body>
int guarded_main(command_line& cli, int argc, char** argv, Body&& body) {
    try {
        if (!cli.parse(argc, argv)) return 0;
        return body();
    } catch (const usage_error& e) {
        std::fprintf(stderr, "error: %s\n\n", e.what());
        cli.print_usage(stderr);
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}

} // namespace onair_examples
