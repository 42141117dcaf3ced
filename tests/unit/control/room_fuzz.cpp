// Every request field of every request type, with values of every JSON type: the room
// never throws, never crashes, and still works afterwards.
#include <onair/control/room.hpp>

#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

using namespace onair::control;
using json = nlohmann::json;

namespace {

struct counting_output {
    std::size_t frames = 0, closes = 0;
    std::vector<std::string> last; // bodies of the last broadcast buffer to the observer
    session_id observer = 0;
    void send(session_id s, const shared_frames& f) {
        ++frames;
        if (s == observer) last.push_back(*f);
    }
    void close(session_id, errc) { ++closes; }
    std::string make_ticket() { return "t"; }
    void on_media(const media_grant&) {}
};

json random_value(std::mt19937& rng, int depth = 0) {
    switch (std::uniform_int_distribution<int>(0, depth > 2 ? 6 : 8)(rng)) {
    case 0: return nullptr;
    case 1: return rng() % 2 == 0;
    case 2: return static_cast<std::int64_t>(rng()) - (1ll << 31);
    case 3: return static_cast<std::uint64_t>(rng()) << 32 | rng();
    case 4: return std::uniform_real_distribution<double>(-1e6, 1e6)(rng);
    case 5: return std::string(std::uniform_int_distribution<std::size_t>(0, 3)(rng), 'x');
    case 6: return std::string(std::uniform_int_distribution<std::size_t>(0, 3000)(rng), "a\xc3\xa9"[rng() % 3]);
    case 7: {
        json a = json::array();
        for (int i = 0, n = static_cast<int>(rng() % 12); i < n; ++i) a.push_back(random_value(rng, depth + 1));
        return a;
    }
    default: {
        json o = json::object();
        for (int i = 0, n = static_cast<int>(rng() % 6); i < n; ++i) o[std::to_string(rng() % 8)] = random_value(rng, depth + 1);
        return o;
    }
    }
}

} // namespace

TEST_CASE("random requests of every known type neither throw nor break the room") {
    const std::vector<std::string> types{"chat", "barrage", "like", "command", "gift", "publish", "unpublish", "play",
                                         "add_template", "quiz", "quiz_answer", "cohost_invite", "cohost_request",
                                         "cohost_answer", "cohost_end", "heartbeat", "bogus"};
    const std::vector<std::string> keys{"text", "to", "data", "count", "template", "fields", "question", "options", "duration_ms",
                                        "answer", "quiz", "option", "invite", "accept", "user", "stream", "id"};
    room_config cfg;
    cfg.flood_refusals = 1'000'000; // keep the fuzzing members in
    counting_output out;
    room<counting_output> r("fuzz", cfg, out, 0);
    REQUIRE(r.join(1, "host", 15, role::host, 1, 0) == errc::ok);
    for (session_id s = 2; s < 6; ++s) REQUIRE(r.join(s, "m" + std::to_string(s), 15, role::audience, 1, 0) == errc::ok);
    std::mt19937 rng(20261201);
    std::int64_t now = 0;
    for (int i = 0; i < 40'000; ++i) {
        json req = json::object();
        const std::string& type = types[rng() % types.size()];
        req["type"] = type;
        for (int k = 0, n = static_cast<int>(rng() % 5); k < n; ++k) req[keys[rng() % keys.size()]] = random_value(rng);
        const session_id s = 1 + rng() % 5;
        now += rng() % 5;
        REQUIRE_NOTHROW(r.handle(s, type, json::parse(req.dump(-1, ' ', false, json::error_handler_t::replace)), now));
        if (i % 100 == 0) {
            REQUIRE_NOTHROW(r.tick(now));
            REQUIRE_NOTHROW(r.flush());
        }
    }
    // Still a working room: a new member's chat reaches an observer, in one frame.
    now += 10'000;
    for (session_id s = 1; s < 6; ++s) r.touch(s, now);
    r.tick(now);
    r.flush();
    REQUIRE(r.join(50, "late", 15, role::audience, 1, now) == errc::ok);
    out.observer = 3;
    out.last.clear();
    r.handle(50, "chat", {{"type", "chat"}, {"text", "still here"}}, now);
    r.flush();
    bool seen = false;
    for (const auto& b : out.last) seen = seen || b.find("still here") != std::string::npos;
    CHECK(seen);
    CHECK(r.size() == 6);
}
