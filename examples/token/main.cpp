// onair-token — mints and checks room-service access tokens (include/onair/control/token.hpp).
//
// An application backend would mint its tokens in-process; this tool stands in for it in
// scripts and demos. Minting prints only the token, so `TOKEN=$(onair-token ...)` works.
// With --verify it checks a token as the room service would and prints either
// "ok user=... room=... privileges=... expires=..." (exit 0) or the refusal's wire name
// (exit 1); usage errors exit 2.
#include "common/cli.hpp"

#include <onair/control/token.hpp>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

using namespace onair_examples;
namespace control = onair::control;

namespace {

/// The secret from --secret or --secret-file; a file's one trailing newline is not part of
/// it, since editors and `echo` add one.
std::string read_secret(const command_line& cli) {
    if (cli.has("secret") == cli.has("secret-file")) throw usage_error("give exactly one of --secret and --secret-file");
    std::string secret = cli.get("secret");
    if (cli.has("secret-file")) {
        const std::string path = cli.get("secret-file");
        std::ifstream f(path, std::ios::binary);
        if (!f) throw usage_error("--secret-file: cannot read " + path);
        secret.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
        if (secret.ends_with('\n')) secret.pop_back();
        if (secret.ends_with('\r')) secret.pop_back();
    }
    if (secret.empty()) throw usage_error("the secret is empty");
    return secret;
}

std::uint32_t read_privileges(const command_line& cli) {
    const std::string text = cli.get("privileges", control::privileges_to_string(control::all_privileges));
    const auto mask = control::parse_privileges(text);
    if (!mask) throw usage_error("--privileges: '" + text + "' is not a list of login,publish,play,message");
    return *mask;
}

} // namespace

int main(int argc, char** argv) {
    command_line cli("onair-token", "mints or checks a room-service access token",
                     {{"secret", "S", "the secret shared with the room service"},
                      {"secret-file", "FILE", "read the secret from FILE instead (one of the two is required)"},
                      {"app", "ID", "application id (required)"},
                      {"room", "NAME", "room name (required)"},
                      {"user", "ID", "user id (required to mint)"},
                      {"privileges", "LIST", "login,publish,play,message: granted, or with --verify required (default all)"},
                      {"ttl", "SECONDS", "lifetime of a minted token (default 3600)"},
                      {"verify", "TOKEN", "check TOKEN instead of minting one"}});
    return guarded_main(cli, argc, argv, [&]() -> int {
        const std::string secret = read_secret(cli);
        const std::string app = cli.require("app");
        const std::string room = cli.require("room");
        const std::uint32_t privileges = read_privileges(cli);

        if (cli.has("verify")) {
            if (cli.has("user") || cli.has("ttl")) throw usage_error("--user and --ttl are for minting, not --verify");
            const auto r = control::verify_token(secret, cli.get("verify"), app, room, privileges, control::unix_now());
            if (!r) {
                std::printf("%s\n", std::string(control::wire_name(r.error)).c_str());
                return 1;
            }
            std::printf("ok user=%s room=%s privileges=%s expires=%lld\n", r.claims.user.c_str(), r.claims.room.c_str(),
                        control::privileges_to_string(r.claims.privileges).c_str(),
                        static_cast<long long>(r.claims.expires));
            return 0;
        }

        control::token_claims claims;
        claims.app = app;
        claims.room = room;
        claims.user = cli.require("user");
        claims.privileges = privileges;
        claims.expires = control::unix_now() + cli.number<std::int64_t>("ttl", 3600, 1, 10LL * 366 * 86400);
        // Refuse here what the room service would refuse at login, rather than hand out a dud.
        if (room.empty()) throw usage_error("--room must not be empty");
        if (claims.user.empty() || claims.user.size() > control::max_user_size)
            throw usage_error("--user must be 1 to " + std::to_string(control::max_user_size) + " bytes");
        std::string token;
        try {
            token = control::mint_token(secret, claims);
        } catch (const nlohmann::json::type_error&) {
            throw usage_error("--app, --room and --user must be UTF-8");
        }
        if (token.size() > control::max_token_size)
            throw usage_error("the token would be " + std::to_string(token.size()) + " bytes, over the limit of " +
                              std::to_string(control::max_token_size) + "; shorten --app, --room or --user");
        std::printf("%s\n", token.c_str());
        return 0;
    });
}
