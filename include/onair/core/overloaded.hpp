// onair — overloaded: one visitor from several lambdas (for RTCP and other visitors).
#pragma once

namespace onair {

template <class... Fs>
struct overloaded : Fs... {
    using Fs::operator()...;
};
template <class... Fs>
overloaded(Fs...) -> overloaded<Fs...>;

} // namespace onair
