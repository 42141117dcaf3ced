#include <onair/control/token.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <ostream> // doctest prints std::string through it
#include <random>
#include <string>
#include <vector>

using namespace onair::control;

namespace {

constexpr std::string_view secret = "room-service-secret";
constexpr std::int64_t now = 1'700'000'000;

token_claims sample() {
    token_claims c;
    c.app = "app-1";
    c.room = "lobby";
    c.user = "alice";
    c.privileges = all_privileges;
    c.expires = now + 3600;
    return c;
}

std::string code(const token_check& r) { return std::string(wire_name(r.error)); }

token_check check(std::string_view token, std::uint32_t required = all_privileges, std::int64_t at = now) {
    return verify_token(secret, token, "app-1", "lobby", required, at);
}

/// A correctly signed token around any payload text, to reach the checks after the signature.
std::string sign_payload(std::string_view key, std::string_view payload) {
    std::string signed_part = "v1." + detail::base64url_encode(payload);
    return signed_part + '.' + detail::base64url_encode(detail::hmac_sha256(key, signed_part));
}

std::string hex(const std::array<std::uint8_t, 32>& b) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (const auto x : b) {
        out += digits[x >> 4];
        out += digits[x & 15];
    }
    return out;
}

} // namespace

TEST_CASE("token: HMAC-SHA256 known answers (RFC 4231 test case 2, and the empty key)") {
    CHECK(hex(detail::hmac_sha256("Jefe", "what do ya want for nothing?")) ==
          "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    CHECK(hex(detail::hmac_sha256("", "")) == "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

TEST_CASE("token: base64url known answers (RFC 4648 vectors without padding)") {
    const std::vector<std::pair<std::string, std::string>> vectors = {
        {"", ""},           {"f", "Zg"},          {"fo", "Zm8"},         {"foo", "Zm9v"},
        {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"}, {"\xfb\xff", "-_8"},
    };
    for (const auto& [plain, encoded] : vectors) {
        CHECK(detail::base64url_encode(plain) == encoded);
        const auto back = detail::base64url_decode(encoded);
        REQUIRE(back.has_value());
        CHECK(*back == plain);
    }
    for (int b = 0; b < 256; ++b) {
        const std::string one(1, static_cast<char>(b));
        CHECK(detail::base64url_decode(detail::base64url_encode(one)) == one);
    }
}

TEST_CASE("token: base64url decoding is strict") {
    CHECK_FALSE(detail::base64url_decode("Zg==").has_value()); // padding
    CHECK_FALSE(detail::base64url_decode("Z").has_value());    // no length leaves 6 bits
    CHECK_FALSE(detail::base64url_decode("Zm9vY").has_value());
    CHECK_FALSE(detail::base64url_decode("+/8").has_value()); // the standard alphabet
    CHECK_FALSE(detail::base64url_decode("Zm 9").has_value());
    CHECK_FALSE(detail::base64url_decode(std::string("Zm\0v", 4)).has_value());
    CHECK_FALSE(detail::base64url_decode("Zh").has_value());  // "f" with a stray trailing bit
    CHECK_FALSE(detail::base64url_decode("Zm9").has_value()); // "fo" with stray trailing bits
}

TEST_CASE("token: a minted token verifies and carries its claims") {
    const auto t = mint_token(secret, sample());
    CHECK(t.starts_with("v1."));
    CHECK(t.find_first_of("=+/") == std::string::npos);
    const auto r = check(t);
    CHECK(code(r) == "ok");
    CHECK(static_cast<bool>(r));
    CHECK(r.claims == sample());
    CHECK(check(t, 0, now + 3599));

    token_claims c = sample();
    c.user = "\xc3\xa9lodie \"quoted\" \\ \u4e2d";
    c.privileges = privilege_bit(privilege::play);
    c.expires = -5;
    const auto r2 = verify_token(secret, mint_token(secret, c), "app-1", "lobby", privilege_bit(privilege::play), -6);
    CHECK(code(r2) == "ok");
    CHECK(r2.claims == c);
}

TEST_CASE("token: malformed tokens are refused as token_malformed") {
    const auto t = mint_token(secret, sample());
    const auto dot = t.rfind('.');
    const std::vector<std::string> bad = {
        "",
        "v1",
        "v1.",
        "v1..",
        "v1abc",
        "v2" + t.substr(2),                                  // unknown version
        t.substr(0, dot),                                    // no signature
        t.substr(0, dot + 1),                                // empty signature
        t.substr(0, t.size() - 1),                           // truncated signature
        t.substr(0, t.size() - 2),                           // truncated further
        t + "A",                                             // signature one character long
        t + ".",                                             // an extra part
        "v1." + t.substr(dot),                               // empty payload
        t.substr(0, 5) + "*" + t.substr(6),                  // outside the alphabet in the payload
        t.substr(0, t.size() - 3) + "+" + t.substr(t.size() - 2), // standard-alphabet character
        t.substr(0, dot) + "=" + t.substr(dot),              // padding
        t + "==",
        std::string(t.size(), 'A'),
    };
    for (const auto& b : bad) {
        CAPTURE(b);
        CHECK(code(check(b)) == "token_malformed");
    }

    token_claims big = sample();
    big.room = std::string(max_token_size, 'r');
    const auto oversized = mint_token(secret, big);
    CHECK(oversized.size() > max_token_size);
    CHECK(code(verify_token(secret, oversized, "app-1", big.room, 0, now)) == "token_malformed");
}

TEST_CASE("token: signed but malformed claims are refused as token_malformed") {
    const std::vector<std::string> payloads = {
        "not json",
        "[1,2,3]",
        "\"string\"",
        "{}",
        R"({"app":"app-1","room":"lobby","user":"alice","priv":15})",                   // no exp
        R"({"app":"app-1","room":"lobby","user":"alice","exp":1800000000})",            // no priv
        R"({"app":"app-1","room":"lobby","priv":15,"exp":1800000000})",                 // no user
        R"({"app":1,"room":"lobby","user":"alice","priv":15,"exp":1800000000})",
        R"({"app":"app-1","room":["lobby"],"user":"alice","priv":15,"exp":1800000000})",
        R"({"app":"app-1","room":"lobby","user":null,"priv":15,"exp":1800000000})",
        R"({"app":"app-1","room":"lobby","user":"alice","priv":"15","exp":1800000000})",
        R"({"app":"app-1","room":"lobby","user":"alice","priv":-1,"exp":1800000000})",
        R"({"app":"app-1","room":"lobby","user":"alice","priv":4294967296,"exp":1800000000})",
        R"({"app":"app-1","room":"lobby","user":"alice","priv":15.0,"exp":1800000000})",
        R"({"app":"app-1","room":"lobby","user":"alice","priv":15,"exp":1.8e9})",
        R"({"app":"app-1","room":"lobby","user":"alice","priv":15,"exp":9223372036854775808})",
        R"({"app":"app-1","room":"lobby","user":"","priv":15,"exp":1800000000})",
        R"({"app":"app-1","room":"","user":"alice","priv":15,"exp":1800000000})",
        R"({"app":"app-1","room":"lobby","user":"alice","priv":15,"exp":1800000000)",  // truncated JSON
        "{\"app\":\"app-1\",\"room\":\"lobby\",\"user\":\"\xff\",\"priv\":15,\"exp\":1800000000}", // not UTF-8
    };
    for (const auto& p : payloads) {
        CAPTURE(p);
        CHECK(code(check(sign_payload(secret, p), 0)) == "token_malformed");
    }

    token_claims c = sample();
    c.user = std::string(max_user_size, 'u');
    CHECK(code(check(mint_token(secret, c))) == "ok");
    c.user += 'u';
    CHECK(code(check(mint_token(secret, c))) == "token_malformed");

    // Unknown keys are someone else's future, not an error.
    CHECK(code(check(sign_payload(secret, R"({"app":"app-1","room":"lobby","user":"alice","priv":15,"exp":1800000000,"x":[]})"))) == "ok");
}

TEST_CASE("token: tampering or the wrong secret is refused as token_forged") {
    const auto t = mint_token(secret, sample());
    const auto dot = t.rfind('.');
    auto flip = [](std::string s, std::size_t i) {
        s[i] = s[i] == 'A' ? 'B' : 'A';
        return s;
    };
    CHECK(code(check(flip(t, 3))) == "token_forged");       // first payload character
    CHECK(code(check(flip(t, dot - 2))) == "token_forged"); // inside the payload
    CHECK(code(check(flip(t, dot + 1))) == "token_forged"); // first signature character
    CHECK(code(verify_token("other-secret", t, "app-1", "lobby", 0, now)) == "token_forged");
    CHECK(code(verify_token("", t, "app-1", "lobby", 0, now)) == "token_forged");
    CHECK(code(check(sign_payload("other-secret", R"({"app":"app-1","room":"lobby","user":"alice","priv":15,"exp":1800000000})"))) ==
          "token_forged");

    // Claims are only read once the signature holds, so unsigned garbage is forged, not malformed.
    CHECK(code(check("v1." + detail::base64url_encode("not json at all") + t.substr(dot))) == "token_forged");
    CHECK(code(check("v1." + detail::base64url_encode("{\"app\":") + t.substr(dot))) == "token_forged");
    CHECK(check(flip(t, 3)).claims == token_claims{});
}

TEST_CASE("token: expiry is exclusive") {
    const auto t = mint_token(secret, sample());
    CHECK(code(check(t, all_privileges, sample().expires - 1)) == "ok");
    const auto at_exp = check(t, all_privileges, sample().expires);
    CHECK(code(at_exp) == "token_expired");
    CHECK(at_exp.claims.user == "alice"); // still there, for the log
    CHECK(code(check(t, all_privileges, sample().expires + 1)) == "token_expired");
    CHECK(code(check(t, all_privileges, std::numeric_limits<std::int64_t>::max())) == "token_expired");
}

TEST_CASE("token: another app or room is refused, app before room before expiry") {
    const auto t = mint_token(secret, sample());
    CHECK(code(verify_token(secret, t, "app-2", "lobby", 0, now)) == "token_wrong_app");
    CHECK(code(verify_token(secret, t, "", "lobby", 0, now)) == "token_wrong_app");
    CHECK(code(verify_token(secret, t, "app-1", "stage", 0, now)) == "token_wrong_room");
    CHECK(code(verify_token(secret, t, "app-1", "lobby2", 0, now)) == "token_wrong_room");
    CHECK(code(verify_token(secret, t, "app-2", "stage", 0, now + 7200)) == "token_wrong_app");
    CHECK(code(verify_token(secret, t, "app-1", "stage", 0, now + 7200)) == "token_wrong_room");
    token_claims c = sample();
    c.privileges = 0;
    CHECK(code(check(mint_token(secret, c), all_privileges, now + 7200)) == "token_expired");
}

TEST_CASE("token: each missing privilege is refused as no_privilege") {
    for (const auto& [p, name] : privilege_names) {
        CAPTURE(name);
        token_claims c = sample();
        c.privileges = all_privileges & ~privilege_bit(p);
        const auto t = mint_token(secret, c);
        CHECK(code(check(t, privilege_bit(p))) == "no_privilege");
        CHECK(code(check(t, all_privileges)) == "no_privilege");
        CHECK(code(check(t, c.privileges)) == "ok");
        CHECK(code(check(t, 0)) == "ok");
    }
}

TEST_CASE("token: privilege lists round-trip and unknown names are refused") {
    for (std::uint32_t m = 0; m <= all_privileges; ++m) {
        CAPTURE(m);
        CHECK(parse_privileges(privileges_to_string(m)) == m);
    }
    CHECK(privileges_to_string(all_privileges) == "login,publish,play,message");
    CHECK(privileges_to_string(0) == "");
    CHECK(privileges_to_string(16 | privilege_bit(privilege::play)) == "play");
    CHECK(parse_privileges("login,publish,play,message") == all_privileges);
    CHECK(parse_privileges("play") == privilege_bit(privilege::play));
    CHECK(parse_privileges(" play , login ") == (privilege_bit(privilege::play) | privilege_bit(privilege::login)));
    CHECK(parse_privileges("play,play") == privilege_bit(privilege::play));
    CHECK(parse_privileges("") == 0u);
    CHECK_FALSE(parse_privileges("admin").has_value());
    CHECK_FALSE(parse_privileges("play,admin").has_value());
    CHECK_FALSE(parse_privileges("Play").has_value());
    CHECK_FALSE(parse_privileges("play,").has_value());
    CHECK_FALSE(parse_privileges(",play").has_value());
    CHECK_FALSE(parse_privileges("play,,login").has_value());
    CHECK_FALSE(parse_privileges("play;login").has_value());
}

TEST_CASE("token: random strings and mutated tokens never crash and never verify") {
    std::mt19937 rng(20240611);
    const auto t = mint_token(secret, sample());
    const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.v1=+/";
    int accepted = 0, unchanged = 0, forged = 0;
    std::string first_accepted;
    auto try_token = [&](const std::string& s) {
        const auto r = check(s, 0);
        forged += r.error == errc::token_forged;
        if (s == t) {
            ++unchanged;
            if (!r) first_accepted = "original refused";
            return;
        }
        if (r) {
            if (accepted++ == 0) first_accepted = s;
        }
    };

    try_token(t);
    for (int i = 0; i < 3000; ++i) {
        std::string s(rng() % 300, '\0');
        const bool bytes = i % 3 == 0;
        for (auto& ch : s) ch = bytes ? static_cast<char>(rng()) : alphabet[rng() % alphabet.size()];
        if (i % 3 == 2) s = "v1." + s.substr(0, s.size() / 2) + "." + s.substr(s.size() / 2);
        try_token(s);
    }
    for (int i = 0; i < 3000; ++i) {
        std::string s = t;
        const int edits = 1 + static_cast<int>(rng() % 3);
        for (int e = 0; e < edits; ++e) {
            const auto pos = rng() % (s.size() + 1);
            switch (rng() % 4) {
            case 0: if (pos < s.size()) s[pos] = static_cast<char>(rng()); break;
            case 1: if (pos < s.size()) s[pos] = alphabet[rng() % alphabet.size()]; break;
            case 2: if (pos < s.size()) s.erase(pos, 1); break;
            case 3: s.insert(pos, 1, alphabet[rng() % alphabet.size()]); break;
            }
        }
        try_token(s);
    }
    CAPTURE(first_accepted);
    CHECK(accepted == 0);
    CHECK(first_accepted.empty());
    CHECK(unchanged >= 1);
    CHECK(forged > 100); // many mutations get as far as the signature
}
