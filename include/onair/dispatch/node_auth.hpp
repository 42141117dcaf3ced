// onair — signed node messages: what relay nodes tell the dispatch center (registration,
// heartbeats with load, link measurements) is signed with the cluster's secret and
// numbered, so a forged message fails its signature and a replayed one its number.
//
// A message is a JSON object with "node" (its id), "counter" (strictly increasing per node;
// a restarted node starts from its clock, see next_counter) and "ts" (Unix ms when sent);
// "sig" is base64url(HMAC-SHA256(secret, the object without "sig", dumped with sorted keys
// as nlohmann/json does)). The dispatch center accepts a message only when its signature
// matches, its time is within `window_ms` of its own, and its counter is above the last one
// it accepted from that node.
#pragma once

#include "onair/control/token.hpp"

#include <nlohmann/json.hpp>
#include <openssl/crypto.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

namespace onair::dispatch {

enum class auth_result { ok, malformed, forged, stale, replayed };

constexpr std::string_view to_string(auth_result r) noexcept {
    switch (r) {
    case auth_result::ok: return "ok";
    case auth_result::malformed: return "malformed";
    case auth_result::forged: return "forged";
    case auth_result::stale: return "stale";
    case auth_result::replayed: return "replayed";
    }
    return "?";
}

/// A counter for a node's next message: microseconds since the epoch, so a restarted node
/// (which forgot its last counter) still counts above what it sent before.
inline std::uint64_t next_counter(std::uint64_t& last) {
    const auto now = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
    last = std::max(last + 1, now);
    return last;
}

/// Adds "sig" to `m` (which must hold node, counter and ts).
inline void sign(nlohmann::json& m, std::string_view secret) {
    m.erase("sig");
    m["sig"] = control::detail::base64url_encode(control::detail::hmac_sha256(secret, m.dump()));
}

/// Checks signatures and numbers of node messages. Thread safety: none.
class message_guard {
public:
    message_guard(std::string secret, std::int64_t window_ms = 30'000) : secret_(std::move(secret)), window_ms_(window_ms) {}

    /// Checks `m` at the dispatch center's time `now_ms`; on ok, remembers its counter.
    auth_result check(const nlohmann::json& m, std::int64_t now_ms) {
        if (!m.is_object()) return auth_result::malformed;
        auto node = m.find("node");
        auto counter = m.find("counter");
        auto ts = m.find("ts");
        auto sig = m.find("sig");
        if (node == m.end() || !node->is_string() || node->get_ref<const std::string&>().empty() ||
            node->get_ref<const std::string&>().size() > 64 || counter == m.end() || !counter->is_number_unsigned() ||
            ts == m.end() || !ts->is_number_integer() || sig == m.end() || !sig->is_string())
            return auth_result::malformed;
        auto body = m;
        body.erase("sig");
        std::array<std::uint8_t, 32> expected{};
        const auto given = control::detail::base64url_decode(sig->get_ref<const std::string&>());
        if (!given || given->size() != expected.size()) return auth_result::forged;
        if (!control::detail::hmac_sha256_into(secret_, body.dump(), expected) ||
            CRYPTO_memcmp(expected.data(), given->data(), expected.size()) != 0)
            return auth_result::forged;
        const std::int64_t t = ts->get<std::int64_t>();
        if (t < now_ms - window_ms_ || t > now_ms + window_ms_) return auth_result::stale;
        const std::uint64_t c = counter->get<std::uint64_t>();
        auto [it, fresh] = last_.try_emplace(node->get<std::string>(), c);
        if (!fresh) {
            if (c <= it->second) return auth_result::replayed;
            it->second = c;
        }
        return auth_result::ok;
    }

    // Counters are kept for nodes that were taken out too: a replay of their last messages
    // must not bring them back. (Only holders of the secret can make new node ids.)

private:
    std::string secret_;
    std::int64_t window_ms_;
    std::unordered_map<std::string, std::uint64_t> last_;
};

} // namespace onair::dispatch
