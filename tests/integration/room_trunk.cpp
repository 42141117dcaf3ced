// Room trunks between two room services in one process, over loopback TCP: a home H and an
// edge E whose locate_room names H. Bad frames on a trunk are counted and change nothing;
// when the home goes away, the edge's members are told `unavailable` and closed.
#include <onair/control/room_client.hpp>
#include <onair/control/room_service.hpp>
#include <onair/control/token.hpp>
#include <onair/dispatch/node_auth.hpp>

#include "support/on_io.hpp"

#include <doctest/doctest.h>

#include <asio/io_context.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <thread>

using namespace onair;
using namespace std::chrono_literals;
using onair_test::on_io;
using json = nlohmann::json;
using tcp = asio::ip::tcp;

namespace {

constexpr const char* app_secret = "app", *cluster = "cluster";

struct two_nodes {
    asio::io_context io{1};
    asio::executor_work_guard<asio::io_context::executor_type> work = asio::make_work_guard(io);
    std::unique_ptr<control::room_service> home, edge;
    std::map<std::string, std::unique_ptr<control::room_client>> clients;
    std::map<std::string, std::vector<json>> events;
    std::map<std::string, std::error_code> closed;
    std::jthread thread;

    two_nodes() {
        control::room_service_config h;
        h.secret = app_secret;
        h.cluster_secret = cluster;
        h.node_id = "H";
        h.locate_room = [](const std::string&, auto done) { done(std::nullopt); };
        home = std::make_unique<control::room_service>(io.get_executor(), tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0), h);
        control::room_service_config e = h;
        e.node_id = "E";
        e.locate_room = [this](const std::string&, auto done) { done(home->local_endpoint()); };
        edge = std::make_unique<control::room_service>(io.get_executor(), tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0), e);
        home->start();
        edge->start();
        thread = std::jthread([this] { io.run(); });
    }
    ~two_nodes() {
        on_io(io, [&] {
            clients.clear();
            edge->stop();
            home->stop();
        });
        work.reset();
        io.stop();
    }
    void join(const std::string& user, control::room_service& at) {
        auto done = std::make_shared<std::promise<std::error_code>>();
        on_io(io, [&] {
            control::room_client_handlers hs;
            hs.on_event = [this, user](const json& m) { events[user].push_back(m); };
            hs.on_closed = [this, user](std::error_code ec) { closed[user] = ec; };
            const auto token = control::mint_token(app_secret, {"onair", "show", user, control::all_privileges, control::unix_now() + 600});
            clients[user] = std::make_unique<control::room_client>(io.get_executor(),
                                                                   control::room_client_config{at.local_endpoint(), token, "show", control::role::audience}, hs);
            clients[user]->connect([done](std::error_code ec, const json&) { done->set_value(ec); });
        });
        REQUIRE(done->get_future().get() == std::error_code{});
    }
    std::size_t count(const std::string& user, const std::string& type) {
        return on_io(io, [&] {
            std::size_t n = 0;
            for (const auto& m : events[user]) n += m.value("type", "") == type;
            return n;
        });
    }
};

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > end) return false;
        std::this_thread::sleep_for(10ms);
    }
    return true;
}

std::string frame(const std::string& body) {
    std::string f(4, '\0');
    f[0] = static_cast<char>(body.size() >> 24);
    f[1] = static_cast<char>(body.size() >> 16);
    f[2] = static_cast<char>(body.size() >> 8);
    f[3] = static_cast<char>(body.size());
    return f + body;
}

} // namespace

TEST_CASE("a trunk carries the edge's members; bad trunk frames are counted and change nothing") {
    two_nodes n;
    n.join("hana", *n.home);
    n.join("eve", *n.edge);
    n.join("eli", *n.edge);
    CHECK(on_io(n.io, [&] { return n.home->room_size("show"); }) == 3);
    CHECK(on_io(n.io, [&] { return n.edge->remote_rooms(); }) == 1);
    CHECK(on_io(n.io, [&] { return n.home->stats().trunks_in; }) == 1); // one trunk for both members

    // A node with the cluster's secret opens a trunk of its own and sends garbage on it.
    asio::io_context io;
    tcp::socket s(io);
    s.connect(on_io(n.io, [&] { return n.home->local_endpoint(); }));
    std::uint64_t counter = 0;
    json hello{{"type", "trunk"}, {"room", "show"}, {"node", "X"}, {"counter", dispatch::next_counter(counter)}, {"ts", control::unix_now() * 1000}};
    dispatch::sign(hello, cluster);
    std::string bytes = frame(hello.dump());
    for (const char* bad : {"not json", "[]", R"({"type":"m"})", R"({"type":"m","m":"x","f":"{}"})", R"({"type":"m","m":5})",
                            R"({"type":"mystery","m":1})", R"({"type":"m","m":6,"f":"not json either"})"})
        bytes += frame(bad);
    // A member behind it that asks before logging in is refused like any client.
    bytes += frame(json{{"type", "m"}, {"m", 7}, {"f", R"({"type":"chat","text":"hi"})"}}.dump());
    asio::write(s, asio::buffer(bytes));
    std::string got;
    REQUIRE(eventually([&] {
        std::array<char, 4096> buf;
        s.non_blocking(true);
        std::error_code ec;
        const std::size_t k = s.read_some(asio::buffer(buf), ec);
        if (!ec) got.append(buf.data(), k);
        return got.find("not_logged_in") != std::string::npos;
    }, 5s));
    CHECK(on_io(n.io, [&] { return n.home->stats().bad_trunk_frames; }) >= 5);
    CHECK(on_io(n.io, [&] { return n.home->stats().trunks_in; }) == 2);

    // The room goes on for everyone, in one order.
    asio::post(n.io, [&] {
        n.clients.at("hana")->chat("one");
        n.clients.at("eve")->chat("two");
    });
    for (const char* u : {"hana", "eve", "eli"}) CHECK(eventually([&] { return n.count(u, "chat") == 2; }, 5s));
    CHECK(on_io(n.io, [&] { return n.home->room_size("show"); }) == 3);
}

TEST_CASE("when the home goes away, the edge's members are told unavailable and closed") {
    two_nodes n;
    n.join("hana", *n.home);
    n.join("eve", *n.edge);
    on_io(n.io, [&] { n.home->stop(); });
    REQUIRE(eventually([&] { return on_io(n.io, [&] { return n.closed.contains("eve"); }); }, 5s));
    CHECK(on_io(n.io, [&] { return n.closed.at("eve"); }) == control::errc::unavailable);
    CHECK(on_io(n.io, [&] { return n.edge->stats().trunk_failures; }) == 1);
    CHECK(on_io(n.io, [&] { return n.edge->remote_rooms(); }) == 0);
}
