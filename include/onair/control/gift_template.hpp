// onair — virtual gifts as structured template messages.
//
// A room holds templates (registered by a host or co-host): an icon, a text with {field}
// placeholders, typed fields and a style (colour, theme, layout). A gift names a template
// and fills its fields; the server checks every field against the template, renders the
// text and broadcasts both, so clients can draw the gift from the structure or show the
// text as it is.
#pragma once

#include "onair/control/error.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace onair::control {

struct gift_field {
    enum class kind { text, integer };
    std::string name;
    kind type = kind::text;
    bool optional = false;
    std::size_t max_len = 64;                    ///< text: bytes
    std::int64_t min = 0, max = 1'000'000;       ///< integer: inclusive range
};

struct gift_template {
    std::string id;
    std::string icon;  ///< URL or asset name
    std::string text;  ///< e.g. "{sender} sent {count} roses"; {sender} is the sender's user id
    std::vector<gift_field> fields;
    std::vector<std::pair<std::string, std::string>> style; ///< colour, theme, layout

    nlohmann::json to_json() const {
        nlohmann::json f = nlohmann::json::array();
        for (const auto& x : fields) {
            nlohmann::json j{{"name", x.name}, {"type", x.type == gift_field::kind::text ? "text" : "int"}, {"optional", x.optional}};
            if (x.type == gift_field::kind::text) j["max_len"] = x.max_len;
            else {
                j["min"] = x.min;
                j["max"] = x.max;
            }
            f.push_back(std::move(j));
        }
        nlohmann::json s = nlohmann::json::object();
        for (const auto& [k, v] : style) s[k] = v;
        return {{"id", id}, {"icon", icon}, {"text", text}, {"fields", std::move(f)}, {"style", std::move(s)}};
    }
};

namespace detail {
inline bool is_identifier(std::string_view s, std::size_t max) noexcept {
    if (s.empty() || s.size() > max) return false;
    for (char c : s)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return false;
    return true;
}
inline const std::string* string_field(const nlohmann::json& j, const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get_ptr<const std::string*>() : nullptr;
}
} // namespace detail

inline constexpr std::size_t max_gift_fields = 8;

/// Reads a template from its JSON form; errc::bad_request (with `why`) when it is not one.
inline errc parse_template(const nlohmann::json& j, gift_template& t, std::string& why) {
    auto bad = [&](std::string w) {
        why = std::move(w);
        return errc::bad_request;
    };
    if (!j.is_object()) return bad("template must be an object");
    const auto* id = detail::string_field(j, "id");
    const auto* icon = detail::string_field(j, "icon");
    const auto* text = detail::string_field(j, "text");
    if (!id || !detail::is_identifier(*id, 64)) return bad("id: 1-64 of [A-Za-z0-9_-]");
    if (!icon || icon->size() > 512) return bad("icon: a string of at most 512 bytes");
    if (!text || text->empty() || text->size() > 256) return bad("text: 1-256 bytes");
    t = {};
    t.id = *id;
    t.icon = *icon;
    t.text = *text;
    if (auto f = j.find("fields"); f != j.end()) {
        if (!f->is_array() || f->size() > max_gift_fields) return bad("fields: an array of at most 8");
        for (const auto& x : *f) {
            if (!x.is_object()) return bad("field must be an object");
            const auto* name = detail::string_field(x, "name");
            const auto* type = detail::string_field(x, "type");
            if (!name || !detail::is_identifier(*name, 32) || *name == "sender") return bad("field name: 1-32 of [A-Za-z0-9_-], not 'sender'");
            for (const auto& other : t.fields)
                if (other.name == *name) return bad("field '" + *name + "' twice");
            gift_field g;
            g.name = *name;
            if (auto o = x.find("optional"); o != x.end()) {
                if (!o->is_boolean()) return bad("optional must be true or false");
                g.optional = o->get<bool>();
            }
            if (type && *type == "text") {
                g.type = gift_field::kind::text;
                if (auto m = x.find("max_len"); m != x.end()) {
                    if (!m->is_number_unsigned() || m->get<std::uint64_t>() == 0 || m->get<std::uint64_t>() > 256) return bad("max_len: 1-256");
                    g.max_len = m->get<std::size_t>();
                }
            } else if (type && *type == "int") {
                g.type = gift_field::kind::integer;
                auto mn = x.find("min"), mx = x.find("max");
                if (mn != x.end()) {
                    if (!mn->is_number_integer()) return bad("min must be an integer");
                    g.min = mn->get<std::int64_t>();
                }
                if (mx != x.end()) {
                    if (!mx->is_number_integer()) return bad("max must be an integer");
                    g.max = mx->get<std::int64_t>();
                }
                if (g.min > g.max) return bad("min > max");
            } else {
                return bad("field type: 'text' or 'int'");
            }
            t.fields.push_back(std::move(g));
        }
    }
    if (auto s = j.find("style"); s != j.end()) {
        if (!s->is_object()) return bad("style must be an object");
        for (const auto& [k, v] : s->items()) {
            if (k != "colour" && k != "theme" && k != "layout") return bad("style keys: colour, theme, layout");
            if (!v.is_string() || v.get_ref<const std::string&>().size() > 64) return bad("style values: strings of at most 64 bytes");
            t.style.emplace_back(k, v.get<std::string>());
        }
    }
    // Every placeholder must name a field (or the sender), so rendering never guesses.
    for (std::size_t i = t.text.find('{'); i != std::string::npos; i = t.text.find('{', i + 1)) {
        const auto end = t.text.find('}', i);
        if (end == std::string::npos) return bad("text: unclosed '{'");
        const std::string_view name(t.text.data() + i + 1, end - i - 1);
        bool known = name == "sender";
        for (const auto& f : t.fields) known = known || f.name == name;
        if (!known) return bad("text: {" + std::string(name) + "} is not a field");
    }
    return errc::ok;
}

/// Checks a gift's `fields` against `t` and renders its text; errc::bad_fields with `why`.
/// On success `clean` holds exactly the template's fields (nothing the client added).
inline errc validate_gift(const gift_template& t, const nlohmann::json& fields, std::string_view sender,
                          nlohmann::json& clean, std::string& text, std::string& why) {
    auto bad = [&](std::string w) {
        why = std::move(w);
        return errc::bad_fields;
    };
    if (!fields.is_object()) return bad("fields must be an object");
    for (const auto& [k, v] : fields.items()) {
        bool known = false;
        for (const auto& f : t.fields) known = known || f.name == k;
        if (!known) return bad("unknown field '" + k + "'");
        (void)v;
    }
    clean = nlohmann::json::object();
    for (const auto& f : t.fields) {
        auto it = fields.find(f.name);
        if (it == fields.end()) {
            if (f.optional) continue;
            return bad("missing field '" + f.name + "'");
        }
        if (f.type == gift_field::kind::text) {
            if (!it->is_string() || it->get_ref<const std::string&>().size() > f.max_len)
                return bad("'" + f.name + "': text of at most " + std::to_string(f.max_len) + " bytes");
        } else {
            if (!it->is_number_integer() || it->get<std::int64_t>() < f.min || it->get<std::int64_t>() > f.max)
                return bad("'" + f.name + "': integer in " + std::to_string(f.min) + ".." + std::to_string(f.max));
        }
        clean[f.name] = *it;
    }
    text.clear();
    for (std::size_t i = 0; i < t.text.size();) {
        if (t.text[i] != '{') {
            text += t.text[i++];
            continue;
        }
        const auto end = t.text.find('}', i);
        const std::string name = t.text.substr(i + 1, end - i - 1);
        if (name == "sender") text += sender;
        else if (auto v = clean.find(name); v != clean.end()) text += v->is_string() ? v->get<std::string>() : v->dump();
        i = end + 1;
    }
    return errc::ok;
}

} // namespace onair::control
