// Uses the control plane (onair::control): a token minted and checked, a frame read back.
#include <onair/control/framing.hpp>
#include <onair/control/token.hpp>

#include <cstring>

int main() {
    namespace control = onair::control;
    const auto token = control::mint_token("secret", {"app", "room", "user", control::all_privileges, control::unix_now() + 60});
    if (!control::verify_token("secret", token, "app", "room", 1, control::unix_now())) return 1;
    std::string wire;
    control::append_frame(wire, R"({"type":"heartbeat"})");
    control::frame_reader reader(1024);
    auto room = reader.prepare(wire.size());
    std::memcpy(room.data(), wire.data(), wire.size());
    reader.commit(wire.size());
    std::string_view body;
    return reader.next(body) == control::frame_reader::status::frame && body == R"({"type":"heartbeat"})" ? 0 : 1;
}
