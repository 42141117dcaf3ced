// onair — control-plane error codes: what the room service refuses and why.
//
// Each code has a stable wire name (the "code" of an error message, docs/protocol.md) and
// is a std::error_code in its own category, so a client sees the same value the server
// decided.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

namespace onair::control {

enum class errc {
    ok = 0,
    bad_frame,            ///< a length prefix of 0 or beyond the frame limit
    bad_json,             ///< the frame is not a JSON object
    bad_request,          ///< a field is missing, of the wrong type or out of range
    unknown_type,         ///< no such request type
    too_large,            ///< a message or field is over its size limit
    token_malformed,      ///< the token cannot be decoded
    token_forged,         ///< the token's signature does not match
    token_expired,        ///< the token's expiry has passed
    token_wrong_app,      ///< the token is for another application
    token_wrong_room,     ///< the token is for another room
    no_privilege,         ///< the token does not grant what the request needs
    not_logged_in,        ///< the request needs a login first
    already_logged_in,    ///< a second login on one connection
    not_allowed,          ///< the member's role does not allow the request
    stream_taken,         ///< another user is publishing under that stream name
    unknown_stream,       ///< no such stream in the room
    unknown_user,         ///< no such member in the room
    unknown_template,     ///< no such gift template in the room
    bad_fields,           ///< a gift's fields do not match its template
    unknown_quiz,         ///< no such quiz, or it has ended
    already_answered,     ///< one answer per member per quiz
    no_invitation,        ///< nothing to accept, reject or end
    rate_limited,         ///< over a per-user or per-room rate limit
    room_full,            ///< the room is at its member limit
    replaced,             ///< the same user logged in elsewhere
    timed_out,            ///< heartbeats missed, or a frame left half-sent
    unavailable,          ///< the room lives on another node, which cannot be reached now
};

/// The wire name of `e` (snake_case, as in the enum).
constexpr std::string_view wire_name(errc e) noexcept {
    switch (e) {
    case errc::ok: return "ok";
    case errc::bad_frame: return "bad_frame";
    case errc::bad_json: return "bad_json";
    case errc::bad_request: return "bad_request";
    case errc::unknown_type: return "unknown_type";
    case errc::too_large: return "too_large";
    case errc::token_malformed: return "token_malformed";
    case errc::token_forged: return "token_forged";
    case errc::token_expired: return "token_expired";
    case errc::token_wrong_app: return "token_wrong_app";
    case errc::token_wrong_room: return "token_wrong_room";
    case errc::no_privilege: return "no_privilege";
    case errc::not_logged_in: return "not_logged_in";
    case errc::already_logged_in: return "already_logged_in";
    case errc::not_allowed: return "not_allowed";
    case errc::stream_taken: return "stream_taken";
    case errc::unknown_stream: return "unknown_stream";
    case errc::unknown_user: return "unknown_user";
    case errc::unknown_template: return "unknown_template";
    case errc::bad_fields: return "bad_fields";
    case errc::unknown_quiz: return "unknown_quiz";
    case errc::already_answered: return "already_answered";
    case errc::no_invitation: return "no_invitation";
    case errc::rate_limited: return "rate_limited";
    case errc::room_full: return "room_full";
    case errc::replaced: return "replaced";
    case errc::timed_out: return "timed_out";
    case errc::unavailable: return "unavailable";
    }
    return "unknown";
}

/// The code named `name` on the wire; errc::bad_request for a name this build does not know.
inline errc from_wire_name(std::string_view name) noexcept {
    for (int i = 0; i <= static_cast<int>(errc::unavailable); ++i)
        if (wire_name(static_cast<errc>(i)) == name) return static_cast<errc>(i);
    return errc::bad_request;
}

class error_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "onair.control"; }
    std::string message(int ev) const override {
        switch (static_cast<errc>(ev)) {
        case errc::ok: return "success";
        case errc::bad_frame: return "bad frame length";
        case errc::bad_json: return "frame is not a JSON object";
        case errc::bad_request: return "bad request";
        case errc::unknown_type: return "unknown request type";
        case errc::too_large: return "message or field too large";
        case errc::token_malformed: return "malformed token";
        case errc::token_forged: return "token signature does not match";
        case errc::token_expired: return "token expired";
        case errc::token_wrong_app: return "token is for another application";
        case errc::token_wrong_room: return "token is for another room";
        case errc::no_privilege: return "token does not grant this";
        case errc::not_logged_in: return "not logged in";
        case errc::already_logged_in: return "already logged in";
        case errc::not_allowed: return "not allowed for this role";
        case errc::stream_taken: return "stream published by another user";
        case errc::unknown_stream: return "unknown stream";
        case errc::unknown_user: return "unknown user";
        case errc::unknown_template: return "unknown gift template";
        case errc::bad_fields: return "gift fields do not match the template";
        case errc::unknown_quiz: return "unknown or finished quiz";
        case errc::already_answered: return "already answered";
        case errc::no_invitation: return "no such invitation or co-host";
        case errc::rate_limited: return "rate limited";
        case errc::room_full: return "room full";
        case errc::replaced: return "logged in elsewhere";
        case errc::timed_out: return "timed out";
        case errc::unavailable: return "the room's node cannot be reached";
        }
        return "unknown control error";
    }
};

inline const std::error_category& error_category() noexcept {
    static const error_category_impl cat;
    return cat;
}

inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), error_category()}; }

} // namespace onair::control

template <>
struct std::is_error_code_enum<onair::control::errc> : std::true_type {};
