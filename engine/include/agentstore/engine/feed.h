// The change feed's public types: what a subscriber receives (ChangeEvent), what it asks
// for (FeedFilter) and the handle it holds (Subscription). Engine::Subscribe opens one;
// engine/src/change_feed.h is the machinery behind it.
//
// Every durable change has a sequence number (RocksDB's, increasing in commit order
// across restarts). A subscription names the last sequence it has (the resume point) and
// gets every later change that passes its filter, in commit order, none twice; only
// changes that are durable per the store's mode are delivered.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agentstore/common/query.h"
#include "agentstore/common/status.h"
#include "agentstore/common/uuid.h"

namespace agentstore {

namespace internal {
class ChangeFeed;
}

enum class ChangeOp : uint8_t { kCreate = 1, kUpdate = 2, kDelete = 3 };

// FeedFilter::types' bit for collection records (RecordType numbers stay below 31).
inline constexpr uint32_t kCollectionsBit = 1u << 31;

struct ChangeEvent {
  uint64_t sequence = 0;
  int64_t commit_time = 0;  // engine clock (micros) when the change was logged
  ChangeOp op = ChangeOp::kCreate;
  RecordType type = RecordType::kUser;  // kCollectionRecordType for collection records
  Uuid id;            // the record's id (a vote: its message; admin_config: nil, see key)
  Uuid user;          // the owning user, nil when the record has none
  Uuid tenant;        // the owning tenant, nil when none or unknown
  std::string key;    // the record's storage key (type byte + key), identifies deletes
  std::string bytes;  // the record's FlatBuffers bytes after the change; empty for delete
  // Collection records only (type kCollectionRecordType): the collection's name, the
  // record's key as coll_get / coll_delete take it (a JSON object), and the record after
  // the change as coll_get answers it (JSON text; empty for a hard delete).
  std::string collection;
  std::string record_key;
  std::string json;

  // What the event holds in memory (subscriber buffers are bounded by it).
  size_t size() const {
    return sizeof(ChangeEvent) + key.size() + bytes.size() + collection.size() + record_key.size() +
           json.size();
  }
};

// What a subscription asks for. A user scope is always narrowed to what its user may read
// (its own records; of collections, as coll_get lets it read them); a tenant-scoped admin
// to its tenant.
struct FeedFilter {
  // Bit (1 << RecordType) per built-in type, kCollectionsBit for every collection's
  // records. 0 with no collection named: every type the feed carries, collections too.
  uint32_t types = 0;
  // Records of these collections (besides the types above); empty: none unless
  // kCollectionsBit is set. Each must be declared.
  std::vector<std::string> collections;
  std::optional<Uuid> user;    // records owned by this user
  std::optional<Uuid> tenant;  // records of this tenant (unowned collections' are of none)
};

// The record types the feed carries (kCollectionRecordType included). API keys (their
// hashes) and the derived usage rollups and memory touches never appear; deletes of keys
// and users end subscriptions.
bool FeedCarries(RecordType type);

struct FeedOptions {
  // Events a subscriber may have waiting; past it the subscription ends (resource_
  // exhausted) with its resume point, and writers never wait for it.
  size_t max_queued_events = 100'000;
  size_t max_queued_bytes = 64u << 20;
  // Changes read per step while catching up or following (bounds the feed's memory).
  size_t read_chunk = 4096;
  // Open subscriptions the store holds at most (each buffer is bounded on its own, their
  // number here); past it a subscribe is refused with resource_exhausted.
  size_t max_subscriptions = 65536;
};

// One subscriber's handle. The feed thread fills its bounded queue; the holder drains it
// with Poll. Thread-safe.
class Subscription {
 public:
  using Event = std::shared_ptr<const ChangeEvent>;
  ~Subscription();

  // Moves up to `max` waiting events into `out`, oldest first; returns how many.
  size_t Poll(std::vector<Event>* out, size_t max);
  // Poll for a pusher, under one lock: moves waiting events into `out`, oldest first,
  // until `max_events` or until they hold `max_bytes` (ChangeEvent::size; at least one
  // event however large), and says whether more wait and whether it has finished.
  struct Drained {
    size_t events = 0;      // moved into `out`
    bool more = false;      // events still wait (a limit stopped it)
    bool finished = false;  // ended, and every event before the end was moved out
  };
  Drained Drain(std::vector<Event>* out, size_t max_events, size_t max_bytes);
  // Waits up to `timeout_ms` for an event or the end.
  void Wait(int timeout_ms);
  // True once the subscription has ended and every event before the end was polled.
  bool Finished();
  // Why it ended (OK after Cancel) and where to resume: every change up to resume_point
  // that passes the filter was delivered (or queued before the end).
  Status end_status();
  uint64_t resume_point();
  // The sequence it started after (`after`, or the durable end for from-now): events come
  // from above it. Unlike resume_point() it does not move as events are queued.
  uint64_t start() const { return start_; }
  // Ends it at once (idempotent); the feed forgets it.
  void Cancel();
  uint64_t id() const { return id_; }

 private:
  friend class internal::ChangeFeed;
  Subscription() = default;

  uint64_t id_ = 0;
  uint64_t start_ = 0;  // set before the feed sees it
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Event> queue_;    // guarded by mu_
  size_t queued_bytes_ = 0;    // guarded by mu_
  bool ended_ = false;         // guarded by mu_
  Status end_status_;          // guarded by mu_
  uint64_t resume_point_ = 0;  // guarded by mu_: the last sequence passed to the queue
  // Guarded by mu_: still reading the log behind the live end. Only then does a drain
  // tell the feed there is room (a live subscription is pushed to as changes commit, so
  // kicking the feed thread on its every drain would only wake it for nothing).
  bool catching_up_ = true;
  std::function<void()> wake_;  // called (outside mu_) when events arrive or it ends
  internal::ChangeFeed* feed_ = nullptr;
};

}  // namespace agentstore
