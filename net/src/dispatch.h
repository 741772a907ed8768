// Dispatch: one verified request in, one encoded response out, through the operation
// table. Checks authentication, the op's allowed roles and act_as, decodes the
// arguments, calls the Engine, and encodes the result. Knows nothing of sockets.
#pragma once

#include <absl/container/flat_hash_map.h>
#include <flatbuffers/flatbuffers.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <vector>

#include "agentstore/common/latency_histogram.h"
#include "agentstore/common/uuid.h"
#include "agentstore/engine/engine.h"
#include "agentstore/engine/operations.h"

namespace agentstore::net {

// Hashes a request id the client chose. Keyed with a per-process random value: with
// std::hash (the identity) a client could pick ids that share one bucket and make every
// push to its connection scan all its subscriptions, on a thread other connections share.
struct RequestIdHash {
  size_t operator()(uint64_t id) const {
    static const uint64_t key = [] {
      std::random_device rd;
      return uint64_t{rd()} << 32 | rd();
    }();
    return static_cast<size_t>(UuidHash::Mix(id ^ key));
  }
};

// What one connection knows about its caller.
struct Session {
  std::optional<Scope> scope;  // set by a successful authenticate
  // What revalidation needs: the key, its expiry (0: never) and the engine's auth epoch
  // when the key was last checked. A request whose epoch differs (a key was revoked, a
  // user deleted or changed, ...) or that comes after expires_at rechecks the key first.
  Uuid key_id;
  int64_t expires_at = 0;
  uint64_t auth_epoch = 0;
  // Change feed: how the feed wakes the connection to push (unset: no pushes on this
  // transport), and its subscriptions by the id of their subscribe request. Revoking
  // key_id ends them. A flat hash table: every push looks its subscription up in a table
  // gone cold since the last one; with a thousand on one connection a tree walk was ~80%
  // of the drain's time (perf: a cache miss per level), and a flat probe is one miss
  // where unordered_map's bucket and node were two or three.
  std::function<void()> feed_wake;
  absl::flat_hash_map<uint64_t, std::shared_ptr<Subscription>, RequestIdHash> subscriptions;
  // Which subscriptions have something to push, so a wake drains those and does not poll
  // them all: the feed's thread adds ids (through FeedWakeFor), the connection's thread
  // moves them into `to_drain` (which only it touches) and drains them.
  struct FeedReady {
    std::mutex mu;
    std::vector<uint64_t> ids;
  };
  std::shared_ptr<FeedReady> feed_ready = std::make_shared<FeedReady>();
  std::vector<uint64_t> to_drain;
  // The wake of subscription `id`: marks it ready, then wakes the connection.
  std::function<void()> FeedWakeFor(uint64_t id) const {
    return [ready = feed_ready, wake = feed_wake, id] {
      {
        std::lock_guard lock(ready->mu);
        ready->ids.push_back(id);
      }
      wake();
    };
  }
};

// Counters the status operation reports.
struct ServerCounters {
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  std::atomic<uint64_t> connections_open{0};
  std::atomic<uint64_t> connections_total{0};
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> errors{0};
};

struct OpCounters {
  std::atomic<uint64_t> calls{0};
  std::atomic<uint64_t> errors{0};
  LatencyHistogram latency;
};

class Dispatcher {
 public:
  Dispatcher(Engine* engine, ServerCounters* counters, uint32_t slow_op_us);

  // Handles one frame body. Always writes exactly one Response into `out` (finished).
  // Returns the durability ticket the response must wait for (0: send at once).
  uint64_t Handle(Session& session, const uint8_t* data, size_t size,
                  flatbuffers::FlatBufferBuilder& out);
  // A response carrying only an error, for frames that never reach Handle.
  static void EncodeError(uint64_t id, const Status& status, flatbuffers::FlatBufferBuilder& out);

  const OpCounters& counters(Op op) const { return ops_[static_cast<size_t>(op)]; }

  // The most bytes of records one answer may hold: a longer page is cut short and its
  // cursor continues after the last row it holds.
  void set_max_response_bytes(size_t n) { max_response_bytes_ = n; }
  size_t max_response_bytes() const { return max_response_bytes_; }

 private:
  Engine* engine_;
  const std::atomic<uint64_t>* auth_epoch_;  // engine_->auth_epoch(), read per request
  ServerCounters* server_;
  uint32_t slow_op_us_;
  size_t max_response_bytes_ = 4u << 20;
  OpCounters ops_[kOperationCount];
};

}  // namespace agentstore::net
