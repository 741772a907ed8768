// Push frames of the change feed: turns a connection's subscriptions (Session::
// subscriptions) into `event` and `end` frames (docs/protocol.md, "Change feed"). Kept
// apart from the server's connection code, which only calls DrainSubscriptions when the
// feed wakes it and CancelSubscriptions when it closes.
#pragma once

#include <flatbuffers/flatbuffers.h>

#include <functional>

#include "dispatch.h"

namespace agentstore::net {

// Polls each subscription of `session` and hands each frame (finished in the builder) to
// `emit`, at most `max_frames`; a finished subscription gets its end frame and is
// dropped. Returns the number of frames emitted.
size_t DrainSubscriptions(Session& session, size_t max_frames,
                          const std::function<void(flatbuffers::FlatBufferBuilder&)>& emit);
// Cancels every subscription of a closing connection.
void CancelSubscriptions(Session& session);

}  // namespace agentstore::net
