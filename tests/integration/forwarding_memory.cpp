// host -> relay -> two viewers over the in-process memory transport.
#include "support/forwarding_checks.hpp"

TEST_CASE_TEMPLATE("memory transport: 640x360@30 1 Mbps for 5 s reaches two viewers intact", Video, onair::codec::vp8,
                   onair::codec::vp9) {
    onair_test::memory_env env;
    onair_test::check_forwarding<Video>(env);
}
