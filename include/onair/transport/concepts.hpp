// onair — the transport policy family: datagrams in and out on an Asio executor.
//
// Requirements on a transport T (see docs/concepts/Transport.md):
//   T::executor_type                         the executor its handlers run on
//   t.get_executor() -> executor_type
//   t.send_to(Buffers, const endpoint&) -> std::error_code
//       Buffers is an Asio ConstBufferSequence gathered into ONE datagram. Never blocks:
//       a datagram the network cannot take now is dropped and counted (UDP semantics).
//   t.async_receive_from(asio::mutable_buffer, endpoint& from, Handler&&)
//       Handler is void(std::error_code, std::size_t); one receive outstanding at a time.
//   t.local_endpoint() -> endpoint
//   t.close()
//   t.stats() -> const transport_stats&
// Layers (emulated_link<Next>) wrap a transport and expose next_layer().
#pragma once

#include <asio/buffer.hpp>
#include <asio/ip/udp.hpp>

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <system_error>

namespace onair::transport {

/// Every transport addresses peers with UDP endpoints (the in-memory one uses made-up ones).
using endpoint = asio::ip::udp::endpoint;

struct transport_stats {
    std::uint64_t datagrams_sent = 0;
    std::uint64_t bytes_sent = 0;
    std::uint64_t datagrams_received = 0;
    std::uint64_t bytes_received = 0;
    std::uint64_t send_dropped = 0; ///< refused by the socket (buffer full, unreachable, ...)
    std::uint64_t gso_sends = 0;     ///< UDP GSO messages (several datagrams to one destination)
    std::uint64_t gso_datagrams = 0; ///< datagrams they carried
    std::uint64_t gso_refused = 0;   ///< GSO messages the kernel refused (GSO turned off)
    std::uint64_t split_flushes = 0; ///< flushes shared with send workers
};

namespace detail {
struct receive_handler_archetype {
    void operator()(std::error_code, std::size_t) const noexcept {}
};
} // namespace detail

template <class T>
concept transport = requires(T& t, const T& ct, const endpoint& to, endpoint& from,
                             asio::const_buffer one, std::array<asio::const_buffer, 2> two,
                             asio::mutable_buffer into) {
    typename T::executor_type;
    { t.get_executor() } -> std::same_as<typename T::executor_type>;
    { t.send_to(one, to) } -> std::same_as<std::error_code>;
    { t.send_to(two, to) } -> std::same_as<std::error_code>;
    t.async_receive_from(into, from, detail::receive_handler_archetype{});
    { ct.local_endpoint() } -> std::convertible_to<endpoint>;
    t.close();
    { ct.stats() } -> std::convertible_to<const transport_stats&>;
};

} // namespace onair::transport
