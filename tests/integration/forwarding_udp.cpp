// host -> relay -> two viewers over real UDP sockets on loopback.
#include "support/forwarding_checks.hpp"

TEST_CASE_TEMPLATE("UDP loopback: 640x360@30 1 Mbps for 5 s reaches two viewers intact", Video, onair::codec::vp8,
                   onair::codec::vp9) {
    onair_test::udp_env env;
    onair_test::check_forwarding<Video>(env);
}
