// onair — room-service access tokens: who may enter which room, and do what, until when.
//
// The application's backend mints a token with a secret it shares with the room service and
// hands it to its client; the service checks it at login without calling anyone back.
//
//   token   = "v1." payload "." signature
//   payload = base64url(JSON {"app": str, "room": str, "user": str, "priv": u32 mask, "exp": i64})
//   signature = base64url(HMAC-SHA256(secret, "v1." payload))
//
// base64url is RFC 4648 §5 without padding. The MAC covers the encoded text, not the JSON,
// so the service never parses bytes it has not authenticated; decoding is canonical (no
// padding, no stray trailing bits), so one set of signed bytes has exactly one spelling.
// "exp" is in unix seconds: tokens assume the minting and checking clocks roughly agree.
// Keys other than those five are ignored, so later versions can add claims to v1 tokens.
#pragma once

#include "onair/control/error.hpp"

#include <nlohmann/json.hpp>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace onair::control {

enum class privilege : std::uint32_t { login = 1, publish = 2, play = 4, message = 8 };
constexpr std::uint32_t all_privileges = 15;

constexpr std::uint32_t privilege_bit(privilege p) noexcept { return static_cast<std::uint32_t>(p); }

/// The names used on command lines and in logs, in bit order.
inline constexpr std::array<std::pair<privilege, std::string_view>, 4> privilege_names{{
    {privilege::login, "login"}, {privilege::publish, "publish"}, {privilege::play, "play"}, {privilege::message, "message"},
}};

/// "login,publish" -> mask. Spaces around names are allowed and "" is no privilege at all;
/// an unknown or empty name refuses the whole list, since a typo must not silently narrow it.
inline std::optional<std::uint32_t> parse_privileges(std::string_view csv) {
    std::uint32_t mask = 0;
    if (csv.find_first_not_of(' ') == std::string_view::npos) return mask;
    for (;;) {
        const auto comma = csv.find(',');
        std::string_view name = csv.substr(0, comma);
        const auto b = name.find_first_not_of(' ');
        name = b == std::string_view::npos ? std::string_view{} : name.substr(b, name.find_last_not_of(' ') - b + 1);
        bool known = false;
        for (const auto& [p, n] : privilege_names) {
            if (n != name) continue;
            mask |= privilege_bit(p);
            known = true;
        }
        if (!known) return std::nullopt;
        if (comma == std::string_view::npos) return mask;
        csv.remove_prefix(comma + 1);
    }
}

/// mask -> "login,publish"; bits this build has no name for are left out.
inline std::string privileges_to_string(std::uint32_t mask) {
    std::string out;
    for (const auto& [p, n] : privilege_names) {
        if (!(mask & privilege_bit(p))) continue;
        if (!out.empty()) out += ',';
        out += n;
    }
    return out;
}

struct token_claims {
    std::string app;
    std::string room;
    std::string user;
    std::uint32_t privileges = 0;
    std::int64_t expires = 0; ///< unix seconds; the token is refused from this second on
    friend bool operator==(const token_claims&, const token_claims&) = default;
};

/// Tokens above this are refused unread: a login frame stays small whatever a client sends.
constexpr std::size_t max_token_size = 2048;
constexpr std::size_t max_user_size = 128;

inline std::int64_t unix_now() {
    using namespace std::chrono;
    return duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
}

namespace detail {

inline constexpr std::string_view token_prefix = "v1.";

inline std::string base64url_encode(std::span<const std::uint8_t> bytes) {
    static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    out.reserve((bytes.size() * 4 + 2) / 3);
    std::uint32_t acc = 0;
    int bits = 0;
    for (const std::uint8_t b : bytes) {
        acc = (acc << 8) | b;
        for (bits += 8; bits >= 6; bits -= 6) out += alphabet[(acc >> (bits - 6)) & 63];
        acc &= (1u << bits) - 1;
    }
    if (bits > 0) out += alphabet[(acc << (6 - bits)) & 63];
    return out;
}

inline std::string base64url_encode(std::string_view bytes) {
    return base64url_encode({reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()});
}

/// Strict: no padding, nothing outside the alphabet, and the bits past the last whole byte
/// must be zero (otherwise "Zg" and "Zh" would both mean "f").
inline std::optional<std::string> base64url_decode(std::string_view text) {
    if (text.size() % 4 == 1) return std::nullopt;
    std::string out;
    out.reserve(text.size() * 3 / 4);
    std::uint32_t acc = 0;
    int bits = 0;
    for (const char c : text) {
        std::uint32_t v;
        if (c >= 'A' && c <= 'Z') v = static_cast<std::uint32_t>(c - 'A');
        else if (c >= 'a' && c <= 'z') v = static_cast<std::uint32_t>(c - 'a' + 26);
        else if (c >= '0' && c <= '9') v = static_cast<std::uint32_t>(c - '0' + 52);
        else if (c == '-') v = 62;
        else if (c == '_') v = 63;
        else return std::nullopt;
        acc = (acc << 6) | v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((acc >> bits) & 0xff);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) return std::nullopt;
    return out;
}

/// False only if libcrypto fails (e.g. SHA-256 unavailable under a restrictive provider).
inline bool hmac_sha256_into(std::string_view key, std::string_view data, std::array<std::uint8_t, 32>& out) noexcept {
    if (key.size() > static_cast<std::size_t>(INT_MAX)) return false;
    // OpenSSL reads a null key as "keep the previous key"; an empty one must still be a key.
    static const unsigned char empty = 0;
    const auto* k = key.empty() ? &empty : reinterpret_cast<const unsigned char*>(key.data());
    const auto* d = data.empty() ? &empty : reinterpret_cast<const unsigned char*>(data.data());
    unsigned int len = 0;
    return HMAC(EVP_sha256(), k, static_cast<int>(key.size()), d, data.size(), out.data(), &len) != nullptr &&
           len == out.size();
}

/// HMAC-SHA256(key, data); throws std::runtime_error if libcrypto fails.
inline std::array<std::uint8_t, 32> hmac_sha256(std::string_view key, std::string_view data) {
    std::array<std::uint8_t, 32> mac{};
    if (!hmac_sha256_into(key, data, mac)) throw std::runtime_error("HMAC-SHA256 failed");
    return mac;
}

} // namespace detail

/// Signs `c`. It does not apply verify_token's limits, so it can mint tokens that will be
/// refused (tests rely on that); throws nlohmann::json::type_error if a string is not UTF-8.
inline std::string mint_token(std::string_view secret, const token_claims& c) {
    const nlohmann::json j = {{"app", c.app}, {"room", c.room}, {"user", c.user}, {"priv", c.privileges}, {"exp", c.expires}};
    std::string signed_part = std::string(detail::token_prefix) + detail::base64url_encode(j.dump());
    const auto mac = detail::hmac_sha256(secret, signed_part);
    return signed_part + '.' + detail::base64url_encode(mac);
}

struct token_check {
    errc error = errc::ok;
    /// Filled once the token is authentic and well formed, so a refusal for app, room,
    /// expiry or privilege can still be logged against the user; empty otherwise.
    token_claims claims;
    explicit operator bool() const noexcept { return error == errc::ok; }
};

/// Whether `token` lets a user into `room` of `app` with every privilege in `required` at
/// `now_unix`. Never throws on any input (only std::bad_alloc could escape).
inline token_check verify_token(std::string_view secret, std::string_view token, std::string_view app,
                                std::string_view room, std::uint32_t required, std::int64_t now_unix) {
    token_check r;
    auto refuse = [&r](errc e) {
        r.error = e;
        return r;
    };
    if (token.size() > max_token_size || !token.starts_with(detail::token_prefix)) return refuse(errc::token_malformed);
    const auto dot = token.find('.', detail::token_prefix.size());
    if (dot == std::string_view::npos || token.find('.', dot + 1) != std::string_view::npos)
        return refuse(errc::token_malformed);
    const std::string_view signed_part = token.substr(0, dot);
    const auto payload = detail::base64url_decode(signed_part.substr(detail::token_prefix.size()));
    const auto signature = detail::base64url_decode(token.substr(dot + 1));
    if (!payload || payload->empty() || !signature || signature->size() != 32) return refuse(errc::token_malformed);

    std::array<std::uint8_t, 32> expected{};
    if (!detail::hmac_sha256_into(secret, signed_part, expected) ||
        CRYPTO_memcmp(expected.data(), signature->data(), expected.size()) != 0)
        return refuse(errc::token_forged);

    token_claims c;
    try {
        const auto j = nlohmann::json::parse(*payload, nullptr, false);
        if (j.is_discarded() || !j.is_object()) return refuse(errc::token_malformed);
        auto string_field = [&j](const char* key, std::string& to) {
            const auto it = j.find(key);
            if (it == j.end() || !it->is_string()) return false;
            to = it->get<std::string>();
            return true;
        };
        if (!string_field("app", c.app) || !string_field("room", c.room) || !string_field("user", c.user))
            return refuse(errc::token_malformed);
        const auto priv = j.find("priv");
        const auto exp = j.find("exp");
        if (priv == j.end() || !priv->is_number_unsigned() ||
            priv->get<std::uint64_t>() > std::numeric_limits<std::uint32_t>::max())
            return refuse(errc::token_malformed);
        if (exp == j.end() || !exp->is_number_integer() ||
            (exp->is_number_unsigned() &&
             exp->get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())))
            return refuse(errc::token_malformed);
        c.privileges = static_cast<std::uint32_t>(priv->get<std::uint64_t>());
        c.expires = exp->get<std::int64_t>();
    } catch (const nlohmann::json::exception&) {
        return refuse(errc::token_malformed);
    }
    if (c.room.empty() || c.user.empty() || c.user.size() > max_user_size) return refuse(errc::token_malformed);

    r.claims = std::move(c);
    if (r.claims.app != app) return refuse(errc::token_wrong_app);
    if (r.claims.room != room) return refuse(errc::token_wrong_room);
    if (now_unix >= r.claims.expires) return refuse(errc::token_expired);
    if ((r.claims.privileges & required) != required) return refuse(errc::no_privilege);
    return r;
}

} // namespace onair::control
