// onair — a steady timer on a concrete executor (no any_io_executor type erasure).
#pragma once

#include <asio/basic_waitable_timer.hpp>
#include <asio/wait_traits.hpp>

#include <chrono>

namespace onair {

template <class Executor>
using steady_timer_for =
    asio::basic_waitable_timer<std::chrono::steady_clock, asio::wait_traits<std::chrono::steady_clock>, Executor>;

} // namespace onair
