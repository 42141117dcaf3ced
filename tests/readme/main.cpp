// Runs the README's composition example against a real relay node on loopback and checks
// the viewer rendered pictures into cam.y4m.
#include "readme_example.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

int main() {
    asio::io_context relay_io(1);
    onair::relay_node relay(onair::relay::sfu{}, {}, {}, relay_io,
                            onair::transport::endpoint(asio::ip::make_address_v4("127.0.0.1"), 0));
    relay.start();
    std::thread t([&] { relay_io.run(); });
    std::filesystem::remove("cam.y4m");
    {
        asio::io_context io(1);
        watch(io, relay.local_endpoint());
    }
    asio::post(relay_io, [&] { relay.stop(); });
    t.join();
    std::ifstream f("cam.y4m", std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::size_t frames = 0;
    for (std::size_t p = text.find("FRAME"); p != std::string::npos; p = text.find("FRAME", p + 5)) ++frames;
    std::printf("README example: %zu pictures rendered\n", frames);
    return frames >= 20 ? 0 : 1; // 30 pushed; all but a slow start should arrive
}
