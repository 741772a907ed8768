// Push frames of the change feed: turns a connection's subscriptions (Session::
// subscriptions) into `event` and `end` frames (docs/protocol.md, "Change feed"). Kept
// apart from the server's connection code, which only calls DrainSubscriptions when the
// feed wakes it and CancelSubscriptions when it closes.
#pragma once

#include <flatbuffers/flatbuffers.h>

#include <functional>

#include "dispatch.h"

namespace agentstore::net {

// Polls the subscriptions of `session` that have something to push (Session::to_drain and
// the ids the feed marked ready) and hands each frame (finished in the builder) to `emit`
// until the frames' bytes reach `max_bytes` (the last frame may pass it); a finished
// subscription gets its end frame and is dropped. What the budget cut short stays in
// to_drain for the next call. Returns the bytes emitted (frame headers included).
size_t DrainSubscriptions(Session& session, size_t max_bytes,
                          const std::function<void(flatbuffers::FlatBufferBuilder&)>& emit);
// Cancels every subscription of a closing connection.
void CancelSubscriptions(Session& session);

}  // namespace agentstore::net
