// onair examples — a minimal JSON object writer for stats files (numbers, strings, nesting).
#pragma once

#include <cmath>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>

namespace onair_examples {

class json_object {
public:
    json_object& add(const std::string& key, double v) {
        char buf[64];
        if (!std::isfinite(v)) v = 0;
        if (v == std::floor(v) && std::fabs(v) < 1e15) std::snprintf(buf, sizeof buf, "%.0f", v);
        else std::snprintf(buf, sizeof buf, "%.3f", v);
        return raw(key, buf);
    }
    json_object& add(const std::string& key, const std::string& v) { return raw(key, quote(v)); }
    json_object& add(const std::string& key, const char* v) { return raw(key, quote(v)); }
    json_object& add(const std::string& key, bool v) { return raw(key, v ? "true" : "false"); }
    json_object& add(const std::string& key, const json_object& v) { return raw(key, v.str()); }

    std::string str() const { return "{" + body_ + "}"; }

    void write(const std::string& path) const {
        std::ofstream f(path, std::ios::trunc);
        if (!f) throw std::runtime_error("cannot write " + path);
        f << str() << "\n";
    }

private:
    json_object& raw(const std::string& key, const std::string& v) {
        if (!body_.empty()) body_ += ", ";
        body_ += quote(key) + ": " + v;
        return *this;
    }
    static std::string quote(const std::string& s) {
        std::string out = "\"";
        for (char c : s) {
            if (c == '"' || c == '\\') out += '\\', out += c;
            else if (static_cast<unsigned char>(c) < 0x20) {
                char buf[8];
                std::snprintf(buf, sizeof buf, "\\u%04x", c);
                out += buf;
            } else out += c;
        }
        return out + "\"";
    }
    std::string body_;
};

} // namespace onair_examples
