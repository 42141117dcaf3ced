// Tests: run a callable on an io_context's thread and wait for its result.
#pragma once

#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include <future>
#include <utility>

namespace onair_test {

/// Posts `f` to `io` and returns what it returns (void too), once it has run there.
template <class F>
auto on_io(asio::io_context& io, F&& f) {
    std::packaged_task<decltype(f())()> task(std::forward<F>(f));
    auto fut = task.get_future();
    asio::post(io, [&task] { task(); });
    return fut.get();
}

} // namespace onair_test
