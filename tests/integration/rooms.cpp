// The room service over real TCP on loopback, through the client library: every message
// type end to end, heartbeat expiry, and media bound to the control plane (a relay that
// admits only ticketed hellos, and drops a stream when its publisher leaves the room).
#include <onair/codec/opus.hpp>
#include <onair/codec/vp8.hpp>
#include <onair/control/media_binding.hpp>
#include <onair/control/room_client.hpp>
#include <onair/control/room_service.hpp>
#include <onair/control/token.hpp>
#include <onair/host.hpp>
#include <onair/relay_node.hpp>
#include <onair/source/test_pattern.hpp>
#include <onair/source/tone.hpp>
#include <onair/viewer.hpp>

#include "support/on_io.hpp"

#include <doctest/doctest.h>

#include <asio/io_context.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using namespace onair;
using namespace std::chrono_literals;
using onair_test::on_io;
using json = nlohmann::json;

namespace {

constexpr const char* secret = "rooms-test-secret";

std::string token_for(const std::string& user, const std::string& room = "show", std::uint32_t privileges = control::all_privileges) {
    return control::mint_token(secret, {"onair", room, user, privileges, control::unix_now() + 600});
}

/// The service and its clients on one io_context thread.
struct fixture {
    asio::io_context io{1};
    std::unique_ptr<control::room_service> service;
    std::vector<std::unique_ptr<control::room_client>> clients;
    std::map<std::string, std::vector<json>> events; // per user: every event, in order
    std::jthread thread;
    asio::executor_work_guard<asio::io_context::executor_type> work = asio::make_work_guard(io);

    explicit fixture(control::room_service_config cfg = {}) {
        cfg.secret = secret;
        if (cfg.room.heartbeat_ms == 5000) cfg.room.heartbeat_ms = 1000;
        service = std::make_unique<control::room_service>(io.get_executor(), asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0), std::move(cfg));
        service->start();
        thread = std::jthread([this] { io.run(); });
    }
    ~fixture() {
        on_io(io, [&] {
            clients.clear();
            service->stop();
        });
        work.reset();
        io.stop();
    }

    /// Logs `user` in (as `r`) and returns its client once the login is answered.
    control::room_client& join(const std::string& user, control::role r = control::role::audience, control::room_client_handlers h = {}) {
        auto done = std::make_shared<std::promise<std::error_code>>();
        control::room_client* c = on_io(io, [&] {
            h.on_event = [this, user](const json& m) { events[user].push_back(m); };
            clients.push_back(std::make_unique<control::room_client>(io.get_executor(),
                                                                     control::room_client_config{service->local_endpoint(), token_for(user), "show", r}, h));
            auto* p = clients.back().get();
            p->connect([done](std::error_code ec, const json&) { done->set_value(ec); });
            return p;
        });
        REQUIRE(done->get_future().get() == std::error_code{});
        return *c;
    }

    /// Sends a request on the io thread and waits for its outcome.
    std::pair<std::error_code, json> call(control::room_client& c, json req) {
        auto p = std::make_shared<std::promise<std::pair<std::error_code, json>>>();
        asio::post(io, [&c, req = std::move(req), p]() mutable {
            c.request(std::move(req), [p](std::error_code ec, const json& r) { p->set_value({ec, r}); });
        });
        return p->get_future().get();
    }

    /// The events `user` got of `type`, copied on the io thread.
    std::vector<json> of(const std::string& user, const std::string& type) {
        return on_io(io, [&] {
            std::vector<json> out;
            for (const auto& m : events[user])
                if (m.value("type", "") == type) out.push_back(m);
            return out;
        });
    }

    template <class Pred>
    bool wait(Pred pred, std::chrono::milliseconds limit = 5s) {
        const auto end = std::chrono::steady_clock::now() + limit;
        while (std::chrono::steady_clock::now() < end) {
            if (pred()) return true;
            std::this_thread::sleep_for(10ms);
        }
        return pred();
    }
};

} // namespace

TEST_CASE("chat reaches every member in one order, with history for late joiners") {
    fixture f;
    auto& host = f.join("host", control::role::host);
    auto& ann = f.join("ann");
    auto& ben = f.join("ben");
    // Three senders at once; every member must see the same sequence.
    for (int i = 0; i < 5; ++i) {
        asio::post(f.io, [&, i] {
            host.chat("h" + std::to_string(i));
            ann.chat("a" + std::to_string(i));
            ben.chat("b" + std::to_string(i));
        });
    }
    REQUIRE(f.wait([&] { return f.of("host", "chat").size() == 15 && f.of("ann", "chat").size() == 15 && f.of("ben", "chat").size() == 15; }));
    auto order = [&](const std::string& u) {
        std::vector<std::pair<std::uint64_t, std::string>> v;
        for (const auto& m : f.of(u, "chat")) v.emplace_back(m["seq"].get<std::uint64_t>(), m["text"].get<std::string>());
        return v;
    };
    const auto seen = order("host");
    CHECK(seen == order("ann"));
    CHECK(seen == order("ben"));
    for (std::size_t i = 0; i < seen.size(); ++i) CHECK(seen[i].first == i + 1);
    // Per sender, its own order is kept.
    std::vector<std::string> from_ann;
    for (const auto& [seq, text] : seen)
        if (text[0] == 'a') from_ann.push_back(text);
    CHECK(from_ann == std::vector<std::string>{"a0", "a1", "a2", "a3", "a4"});

    // A late joiner gets the history in the login reply, in order.
    json login;
    control::room_client_handlers h;
    h.on_login = [&](const json& r) { login = r; };
    f.join("cat", control::role::audience, h);
    const json history = on_io(f.io, [&] { return login["history"]; });
    REQUIRE(history.size() == 15);
    for (std::size_t i = 0; i < 15; ++i) CHECK(history[i]["text"] == seen[i].second);
    CHECK(on_io(f.io, [&] { return login["user_count"].get<int>(); }) == 4);
    // ...and the others learn it joined.
    CHECK(f.wait([&] { return !f.of("ann", "user_joined").empty() && f.of("ann", "user_joined").back()["user"] == "cat"; }));
}

TEST_CASE("commands, barrage, likes, gifts and a quiz over TCP") {
    fixture f;
    auto& host = f.join("host", control::role::host);
    auto& ann = f.join("ann");
    f.join("ben");

    // A command to one user reaches only that user.
    auto [ec, r] = f.call(host, {{"type", "command"}, {"to", {"ann", "nobody"}}, {"data", {{"op", "mute"}}}});
    REQUIRE_FALSE(ec);
    CHECK(r["delivered"] == 1);
    CHECK(r["missing"] == json::array({"nobody"}));
    REQUIRE(f.wait([&] { return f.of("ann", "command").size() == 1; }));
    CHECK(f.of("ann", "command")[0]["data"]["op"] == "mute");
    CHECK(f.of("ben", "command").empty());

    // Barrage and likes (aggregated into one update per 200 ms).
    asio::post(f.io, [&] {
        ann.barrage("wow");
        for (int i = 0; i < 30; ++i) ann.like();
    });
    REQUIRE(f.wait([&] { return !f.of("ben", "barrage").empty(); }));
    CHECK(f.of("ben", "barrage")[0]["items"][0]["text"] == "wow");
    REQUIRE(f.wait([&] {
        auto l = f.of("ben", "likes");
        return !l.empty() && l.back()["total"] == 30;
    }));
    CHECK(f.of("ben", "likes").size() <= 3); // aggregated: 30 likes, a few updates at most

    // A gift template, then a gift that fills it.
    json rose = {{"id", "rose"}, {"icon", "rose.png"}, {"text", "{sender} sent {count} roses"},
                 {"fields", {{{"name", "count"}, {"type", "int"}, {"min", 1}, {"max", 99}}}},
                 {"style", {{"colour", "#ff0066"}, {"layout", "banner"}}}};
    REQUIRE_FALSE(f.call(host, {{"type", "add_template"}, {"template", rose}}).first);
    REQUIRE(f.wait([&] { return f.of("ann", "template").size() == 1; }));
    auto [gec, greply] = f.call(ann, {{"type", "gift"}, {"template", "rose"}, {"fields", {{"count", 3}}}});
    REQUIRE_FALSE(gec);
    REQUIRE(f.wait([&] { return f.of("ben", "gift").size() == 1; }));
    CHECK(f.of("ben", "gift")[0]["text"] == "ann sent 3 roses");
    CHECK(f.call(ann, {{"type", "gift"}, {"template", "rose"}, {"fields", {{"count", 300}}}}).first == control::errc::bad_fields);
    CHECK(f.call(ann, {{"type", "gift"}, {"template", "tulip"}}).first == control::errc::unknown_template);

    // A quiz: two answers, a live tally, the result at the deadline.
    auto [qec, q] = f.call(host, {{"type", "quiz"}, {"question", "2+2?"}, {"options", {"3", "4"}}, {"duration_ms", 1000}, {"answer", 1}});
    REQUIRE_FALSE(qec);
    const auto quiz = q["quiz"].get<std::uint64_t>();
    CHECK_FALSE(f.call(ann, {{"type", "quiz_answer"}, {"quiz", quiz}, {"option", 1}}).first);
    CHECK(f.call(ann, {{"type", "quiz_answer"}, {"quiz", quiz}, {"option", 0}}).first == control::errc::already_answered);
    REQUIRE(f.wait([&] { return !f.of("ben", "quiz_tally").empty(); }));
    CHECK(f.of("ben", "quiz_tally").back()["counts"] == json::array({0, 1}));
    REQUIRE(f.wait([&] { return f.of("ben", "quiz_result").size() == 1; }));
    CHECK(f.of("ben", "quiz_result")[0]["correct"] == 1);
    CHECK(f.call(ann, {{"type", "quiz_answer"}, {"quiz", quiz}, {"option", 1}}).first == control::errc::unknown_quiz);
}

TEST_CASE("co-hosting: invite and accept, request and reject, end") {
    fixture f;
    auto& host = f.join("host", control::role::host);
    auto& ann = f.join("ann");
    auto& ben = f.join("ben");

    auto [iec, inv] = f.call(host, {{"type", "cohost_invite"}, {"user", "ann"}});
    REQUIRE_FALSE(iec);
    REQUIRE(f.wait([&] { return f.of("ann", "cohost_invited").size() == 1; }));
    const auto invite = f.of("ann", "cohost_invited")[0]["invite"].get<std::uint64_t>();
    CHECK(invite == inv["invite"].get<std::uint64_t>());
    CHECK(f.call(ben, {{"type", "cohost_answer"}, {"invite", invite}, {"accept", true}}).first == control::errc::no_invitation);
    CHECK_FALSE(f.call(ann, {{"type", "cohost_answer"}, {"invite", invite}, {"accept", true}}).first);
    REQUIRE(f.wait([&] { return on_io(f.io, [&] { return ann.current_role() == control::role::cohost; }); }));
    REQUIRE(f.wait([&] { return f.of("host", "cohost_answered").size() == 1; }));
    CHECK(f.of("host", "cohost_answered")[0]["accept"] == true);
    // The co-host may publish now; an audience member may not.
    CHECK_FALSE(f.call(ann, {{"type", "publish"}, {"stream", "ann-cam"}}).first);
    CHECK(f.call(ben, {{"type", "publish"}, {"stream", "ben-cam"}}).first == control::errc::not_allowed);

    // Ben asks; the host says no.
    REQUIRE_FALSE(f.call(ben, {{"type", "cohost_request"}}).first);
    REQUIRE(f.wait([&] { return f.of("host", "cohost_requested").size() == 1; }));
    const auto request = f.of("host", "cohost_requested")[0]["invite"].get<std::uint64_t>();
    CHECK_FALSE(f.call(host, {{"type", "cohost_answer"}, {"invite", request}, {"accept", false}}).first);
    REQUIRE(f.wait([&] { return f.of("ben", "cohost_answered").size() == 1; }));
    CHECK(f.of("ben", "cohost_answered")[0]["accept"] == false);
    CHECK(on_io(f.io, [&] { return ben.current_role(); }) == control::role::audience);

    // The host ends ann's co-hosting: her stream goes, she is audience again.
    CHECK_FALSE(f.call(host, {{"type", "cohost_end"}, {"user", "ann"}}).first);
    REQUIRE(f.wait([&] { return f.of("ann", "cohost_ended").size() == 1; }));
    REQUIRE(f.wait([&] { return f.of("ben", "stream_removed").size() == 1; }));
    CHECK(f.of("ben", "stream_removed")[0]["stream"] == "ann-cam");
    CHECK(on_io(f.io, [&] { return ann.current_role(); }) == control::role::audience);
    CHECK(f.call(ann, {{"type", "publish"}, {"stream", "ann-cam"}}).first == control::errc::not_allowed);
}

TEST_CASE("a member that stops sending heartbeats is logged out and its streams removed") {
    control::room_service_config cfg;
    cfg.room.heartbeat_ms = 200;
    fixture f(cfg);
    auto& host = f.join("host", control::role::host);
    // A raw connection that logs in, publishes, and then goes silent.
    asio::io_context raw_io;
    asio::ip::tcp::socket raw(raw_io);
    raw.connect(f.service->local_endpoint());
    auto send = [&](const json& j) {
        std::string frame;
        control::append_frame(frame, j.dump());
        asio::write(raw, asio::buffer(frame));
    };
    f.call(host, {{"type", "heartbeat"}});
    send({{"type", "login"}, {"token", token_for("quiet")}, {"room", "show"}, {"role", "audience"}});
    REQUIRE(f.wait([&] { return !f.of("host", "user_joined").empty(); }));
    // Promote it so it can publish, accept for it, publish.
    auto [iec, inv] = f.call(host, {{"type", "cohost_invite"}, {"user", "quiet"}});
    REQUIRE_FALSE(iec);
    send({{"type", "cohost_answer"}, {"invite", inv["invite"]}, {"accept", true}});
    send({{"type", "publish"}, {"stream", "quiet-cam"}});
    REQUIRE(f.wait([&] { return f.of("host", "stream_added").size() == 1; }));
    // Host keeps beating (its client does, every 200 ms); quiet says nothing more.
    const auto silent_since = std::chrono::steady_clock::now();
    REQUIRE(f.wait([&] { return !f.of("host", "user_left").empty(); }, 5s));
    const auto took = std::chrono::steady_clock::now() - silent_since;
    CHECK(f.of("host", "user_left")[0]["reason"] == "timeout");
    CHECK(took >= 500ms); // three heartbeats of 200 ms, less what passed before
    CHECK(f.of("host", "stream_removed").size() == 1);
    CHECK(f.service->room_size("show") == 1);
    CHECK(on_io(f.io, [&] { return host.logged_in(); }));
}

namespace {
using av = codec::av<codec::vp8, codec::opus>;
using host_t = basic_host<av, transport::udp>;
using viewer_t = basic_viewer<av, transport::udp>;
} // namespace

TEST_CASE("media needs the room service's ticket, and leaves with its publisher") {
    // A relay node that admits only granted hellos; grants come from the room service.
    asio::io_context media_io(1);
    relay::sfu_config rc;
    rc.require_tickets = true;
    relay_node node(relay::sfu(std::move(rc)), {}, {}, media_io, transport::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    node.start();
    control::room_service_config cfg;
    cfg.on_media = control::grant_to(node, media_io.get_executor());
    fixture f(cfg);
    auto media_work = asio::make_work_guard(media_io);
    std::jthread media_thread([&] { media_io.run(); });

    auto& host = f.join("host", control::role::host);
    auto& ann = f.join("ann");
    auto [pec, pub] = f.call(host, {{"type", "publish"}, {"stream", "cam"}});
    REQUIRE_FALSE(pec);
    CHECK(pub["media_stream"] == "show/cam");
    CHECK(pub["ticket"].get<std::string>().size() == 32);

    auto host_config = [&](std::string ticket) {
        host_t::config hc;
        hc.relay = node.local_endpoint();
        hc.stream = "show/cam";
        hc.ticket = std::move(ticket);
        hc.video.width = 160;
        hc.video.height = 96;
        hc.video.fps = 15;
        return hc;
    };
    // An unticketed host, and one with a made-up ticket, are refused and their media dropped.
    host_t intruder(host_config(std::string(32, 'a')), sink::null{}, media_io, transport::endpoint{});
    host_t rightful(host_config(pub["ticket"].get<std::string>()), sink::null{}, media_io, transport::endpoint{});
    REQUIRE_FALSE(on_io(media_io, [&] { return intruder.start(); }));
    REQUIRE(f.wait([&] { return intruder.stats().unauthorized; }));
    CHECK_FALSE(intruder.stats().published);
    REQUIRE_FALSE(on_io(media_io, [&] { return rightful.start(); }));
    REQUIRE(f.wait([&] { return rightful.stats().published; }));

    // A viewer with the play ticket gets the stream; one without is refused.
    auto [vec_, play] = f.call(ann, {{"type", "play"}, {"stream", "cam"}});
    REQUIRE_FALSE(vec_);
    viewer_t::config vc;
    vc.relay = node.local_endpoint();
    vc.stream = "show/cam";
    vc.ticket = play["ticket"].get<std::string>();
    viewer_t viewer(vc, sink::null{}, media_io, transport::endpoint{});
    vc.ticket.clear();
    viewer_t gatecrasher(vc, sink::null{}, media_io, transport::endpoint{});
    REQUIRE_FALSE(on_io(media_io, [&] { return viewer.start(); }));
    REQUIRE_FALSE(on_io(media_io, [&] { return gatecrasher.start(); }));

    std::atomic<bool> feeding{true};
    std::jthread feeder([&] {
        source::test_pattern pattern(160, 96, 15);
        while (feeding) {
            const auto t = now();
            rightful.push_video(pattern.next(t));
            intruder.push_video(pattern.next(t));
            std::this_thread::sleep_for(66ms);
        }
    });
    REQUIRE(f.wait([&] { return viewer.stats().video_frames >= 10; }));
    CHECK(gatecrasher.stats().packets == 0);
    const auto refused = on_io(media_io, [&] { return node.relay().stats().unticketed_sessions; });
    CHECK(refused >= 2); // the intruder's and the gatecrasher's hellos

    // The publisher logs out of the room: the relay drops the stream at once, so its media
    // no longer reaches the viewer although the host keeps sending.
    auto [lec, bye] = f.call(host, {{"type", "logout"}});
    CHECK_FALSE(lec);
    REQUIRE(f.wait([&] { return on_io(media_io, [&] { return node.relay().find("show/cam") == nullptr || !node.relay().find("show/cam")->live; }); }));
    std::this_thread::sleep_for(300ms); // in flight before the drop
    const auto frames_then = viewer.stats().video_frames;
    const auto dropped_then = on_io(media_io, [&] { return node.relay().stats().unknown_stream; });
    std::this_thread::sleep_for(700ms);
    CHECK(viewer.stats().video_frames <= frames_then + 1);
    CHECK(on_io(media_io, [&] { return node.relay().stats().unknown_stream; }) > dropped_then);
    // And the hellos it keeps sending with the withdrawn ticket are refused.
    CHECK(f.wait([&] { return on_io(media_io, [&] { return node.relay().stats().unticketed_sessions; }) > refused; }));

    feeding = false;
    feeder.join();
    on_io(media_io, [&] {
        rightful.stop();
        intruder.stop();
        viewer.stop();
        gatecrasher.stop();
    });
    std::this_thread::sleep_for(100ms);
    media_work.reset();
    on_io(media_io, [&] { node.stop(); });
    media_io.stop();
}
