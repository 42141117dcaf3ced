// onair — worker: one thread running its own io_context, for codec work off the network thread.
#pragma once

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include <optional>
#include <thread>
#include <utility>

namespace onair {

/// A thread that runs the tasks posted to it in order. Roles encode and decode on a worker
/// so their network thread never waits for a codec.
///
/// Thread safety: post() and get_executor() may be called from any thread; join() once.
class worker {
public:
    using executor_type = asio::io_context::executor_type;

    worker() : guard_(asio::make_work_guard(ctx_)), thread_([this] { ctx_.run(); }) {}
    worker(const worker&) = delete;
    worker& operator=(const worker&) = delete;
    ~worker() { join(); }

    executor_type get_executor() noexcept { return ctx_.get_executor(); }

    template <class F>
    void post(F&& f) {
        asio::post(ctx_, std::forward<F>(f));
    }

    /// Runs every task already posted, then ends the thread.
    void join() {
        guard_.reset();
        if (thread_.joinable()) thread_.join();
    }

private:
    asio::io_context ctx_{1};
    std::optional<asio::executor_work_guard<executor_type>> guard_;
    std::thread thread_;
};

} // namespace onair
