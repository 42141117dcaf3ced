// onair — a move-only, type-erased completion handler with inline storage, so that keeping
// the caller's pending receive handler allocates nothing (unless it is unusually large).
#pragma once

#include <cstddef>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace onair::transport::detail {

template <class Signature, std::size_t Capacity = 64>
class small_handler;

template <class... Args, std::size_t Capacity>
class small_handler<void(Args...), Capacity> {
public:
    small_handler() = default;
    small_handler(const small_handler&) = delete;
    small_handler& operator=(const small_handler&) = delete;
    small_handler(small_handler&& o) noexcept { take_from(o); }
    small_handler& operator=(small_handler&& o) noexcept {
        if (this != &o) {
            reset();
            take_from(o);
        }
        return *this;
    }
    ~small_handler() { reset(); }

    template <class F>
    void emplace(F&& f) {
        using T = std::decay_t<F>;
        reset();
        if constexpr (fits<T>) {
            ::new (static_cast<void*>(storage_)) T(std::forward<F>(f));
        } else {
            ::new (static_cast<void*>(storage_)) T*(new T(std::forward<F>(f)));
        }
        ops_ = &ops_for<T>;
    }

    explicit operator bool() const noexcept { return ops_ != nullptr; }

    /// Moves the handler out, leaves this empty, then calls it (so it may emplace a new one).
    void take_and_call(Args... args) {
        const ops* o = std::exchange(ops_, nullptr);
        o->call(storage_, args...);
    }

    void reset() noexcept {
        if (const ops* o = std::exchange(ops_, nullptr)) o->destroy(storage_);
    }

private:
    struct ops {
        void (*call)(void* storage, Args... args);      // consumes the stored object
        void (*move)(void* dst, void* src) noexcept;     // src is left destroyed
        void (*destroy)(void* storage) noexcept;
    };
    template <class T>
    static constexpr bool fits = sizeof(T) <= Capacity && alignof(T) <= alignof(std::max_align_t) &&
                                 std::is_nothrow_move_constructible_v<T>;

    template <class T>
    static T& object(void* s) noexcept {
        if constexpr (fits<T>) return *std::launder(static_cast<T*>(s));
        else return **std::launder(static_cast<T**>(s));
    }
    template <class T>
    static void destroy_object(void* s) noexcept {
        if constexpr (fits<T>) std::launder(static_cast<T*>(s))->~T();
        else delete *std::launder(static_cast<T**>(s));
    }
    template <class T>
    static constexpr ops ops_for{
        [](void* s, Args... args) {
            T f(std::move(object<T>(s)));
            destroy_object<T>(s);
            f(args...);
        },
        [](void* d, void* s) noexcept {
            if constexpr (fits<T>) {
                ::new (d) T(std::move(object<T>(s)));
                destroy_object<T>(s);
            } else {
                ::new (d) T*(*std::launder(static_cast<T**>(s)));
            }
        },
        [](void* s) noexcept { destroy_object<T>(s); },
    };

    void take_from(small_handler& o) noexcept {
        if (o.ops_) {
            o.ops_->move(storage_, o.storage_);
            ops_ = std::exchange(o.ops_, nullptr);
        }
    }

    alignas(std::max_align_t) unsigned char storage_[Capacity];
    const ops* ops_ = nullptr;
};

} // namespace onair::transport::detail
