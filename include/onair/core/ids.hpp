// onair — strong identifiers so a room name is never passed where a user name belongs.
#pragma once

#include <compare>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <utility>

namespace onair {

/// A named identifier distinguished by its Tag type.
template <class Tag>
class basic_id {
public:
    basic_id() = default;
    explicit basic_id(std::string v) : value_(std::move(v)) {}
    explicit basic_id(std::string_view v) : value_(v) {}
    explicit basic_id(const char* v) : value_(v) {}

    const std::string& str() const noexcept { return value_; }
    bool empty() const noexcept { return value_.empty(); }
    friend auto operator<=>(const basic_id&, const basic_id&) = default;

private:
    std::string value_;
};

struct stream_tag {};
struct room_tag {};
struct user_tag {};

using stream_id = basic_id<stream_tag>; ///< Name a stream is published under.
using room_id = basic_id<room_tag>;
using user_id = basic_id<user_tag>;

} // namespace onair

template <class Tag>
struct std::hash<onair::basic_id<Tag>> {
    std::size_t operator()(const onair::basic_id<Tag>& id) const noexcept {
        return std::hash<std::string>{}(id.str());
    }
};
