// onair — binding media to the control plane: the room service's grants, as the relay's
// media path takes them.
//
// The room service runs on its own thread; the relay node on another. Grants cross with
// asio::post, so each side's state stays on its own thread, and a grant is on the media
// thread's queue before the client has the reply that carries its ticket.
#pragma once

#include "onair/control/room.hpp"
#include "onair/relay/sfu.hpp"

#include <asio/post.hpp>

#include <utility>

namespace onair::control {

/// The relay's form of a room grant (stream named "room/stream").
inline relay::ticket_grant to_ticket_grant(const media_grant& g) {
    relay::ticket_grant t;
    switch (g.what) {
    case media_grant::kind::publish: t.what = relay::ticket_grant::kind::publish; break;
    case media_grant::kind::unpublish: t.what = relay::ticket_grant::kind::unpublish; break;
    case media_grant::kind::play: t.what = relay::ticket_grant::kind::play; break;
    case media_grant::kind::stop: t.what = relay::ticket_grant::kind::stop; break;
    }
    t.stream = media_stream_name(g.room, g.stream);
    t.ticket = g.ticket;
    return t;
}

/// A room_service_config::on_media that hands each grant to `node`'s sfu on `node_executor`.
/// `node` must outlive the service.
template <class Node, class Executor>
auto grant_to(Node& node, Executor node_executor) {
    return [&node, node_executor](const media_grant& g) {
        asio::post(node_executor, [&node, t = to_ticket_grant(g)] { node.relay().apply(t); });
    };
}

} // namespace onair::control
