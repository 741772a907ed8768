// ChangeFeed: follows the store's change log (RocksDB's WAL, read back with
// KvStore::ReadLog) up to the durable sequence and fans the changes out to
// subscriptions. Writers only bump an atomic and notify; one feed thread reads each
// durable change once, decodes it once, and hands a shared pointer to every matching
// subscriber's bounded queue, so a slow subscriber costs writers nothing and is cut off
// (with its resume point) when its queue is full. Subscribers starting behind the live
// point catch up from the log in chunks on the same thread, then join the live set.
#pragma once

#include <absl/container/flat_hash_map.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agentstore/engine/feed.h"
#include "agentstore/storage/kv_store.h"
#include "collection_schema.h"
#include "event_ring.h"
#include "feed_notes.h"

namespace agentstore::internal {

// How a subscription's scope reads collection records: the Viewer rules of coll_get and
// coll_query (collections.cc), decided once at subscribe.
struct CollectionAccess {
  enum Kind : uint8_t {
    kAll,     // service and unscoped admin keys: every record (narrowed by the filter)
    kUser,    // a user: its user-owned records, its tenant's tenant-owned ones, unowned ones
    kTenant,  // a tenant-scoped key: records owned by the tenant or its users, unowned ones
  } kind = kAll;
  Uuid user;    // kUser
  Uuid tenant;  // kUser: the user's tenant (nil: none, so no tenant-owned record); kTenant
  // kUser, with a key not bound to a tenant: `tenant` is the user's tenant when the
  // subscription opened, and a live change of that tenant ends the subscription
  // (resource_exhausted with its resume point, so the clients subscribe again and read
  // as the new tenant's user).
  bool follows_user_tenant = false;
};

// When a subscription's scope stops granting anything, so the subscription ends
// (permission_denied): a key's rights are checked on open subscriptions as on requests
// (docs/data-model.md, "Who may see what").
struct FeedEnds {
  std::optional<Uuid> user;    // that user is deleted (soft or hard)
  std::optional<Uuid> key;     // that API key is revoked or deleted
  std::optional<Uuid> tenant;  // that tenant (the key's) is deleted: its keys grant nothing
  int64_t expires_at = 0;      // the key expires: no change committed from then on (0: never)
};

class ChangeFeed {
 public:
  // `tenant_of` answers a user's tenant (nil if none) for changes whose record does not
  // carry it; called on the feed thread, at most once per user until it changes.
  // `schema_of` answers a collection's current declaration (null: none), read on the feed
  // thread for each collection change it decodes.
  using SchemaOf = std::function<std::shared_ptr<const coll::Schema>(std::string_view)>;
  // `now` is the engine's clock (micros), the one keys' expiries are checked against.
  ChangeFeed(storage::KvStore* store, FeedOptions options,
             std::function<Uuid(const Uuid&)> tenant_of, SchemaOf schema_of,
             std::function<int64_t()> now);
  ~ChangeFeed();

  // Registers the durable listener and starts the feed thread.
  void Start();
  // Ends every subscription (unavailable) and joins the thread.
  void Stop();

  // Opens a subscription with an already scope-checked filter. `after`: deliver changes
  // with sequences above it (nullopt: from the current durable point). `ends`: when it
  // ends by itself. `access`: which collection records the scope may read.
  Result<std::shared_ptr<Subscription>> Open(const FeedFilter& filter,
                                             std::optional<uint64_t> after, FeedEnds ends,
                                             std::function<void()> wake,
                                             CollectionAccess access = {});
  void Remove(uint64_t id);
  // A subscriber drained its queue: a catching-up subscription may read on.
  void Kick();

  uint64_t published() const { return published_.load(std::memory_order_acquire); }
  size_t subscriber_count() const;
  const FeedOptions& options() const { return options_; }

 private:
  struct Sub;
  struct Meta;
  void Run();
  void OnDurable(uint64_t seq);
  // Decodes what the filters need (type, op, ids, owner); false for changes the feed
  // does not carry (meta keys, rollups, touches) — `control` still applies to those.
  // `live`: `e` is the newest change the feed has read (the live step, in log order),
  // so a user's put may update what the feed knows of the user's tenant; a catch-up
  // reads the past and must not.
  bool Inspect(const storage::LogEntry& e, Meta* m, bool live);
  // Inspect for a collection record: its collection, owner and op.
  bool InspectCollection(const storage::LogEntry& e, Meta* m);
  Uuid TenantOf(const Uuid& user);
  // Sets a user-owned change's tenant from its user when the record does not carry it.
  void FillTenant(Meta* m);
  // The live subscriptions that follow the change's user (nullptr: none). Feed thread,
  // also without mu_: the live sets are written only by the feed thread.
  const std::vector<Sub*>* LiveFollowers(const Meta& m) const;
  std::shared_ptr<const ChangeEvent> Build(const storage::LogEntry& e, const Meta& m);
  static bool Matches(const Sub& s, const Meta& m);
  // Adds a live subscription to the sets the fan-out reads (feed thread, under mu_).
  void AddLive(Sub* s);
  // Pushes one event; false when its queue is full (ending the sub if `end_if_full`).
  // A queue that was empty is woken by WakePushed, once the step's fan-out is done.
  bool Push(Sub& s, const std::shared_ptr<const ChangeEvent>& ev, bool end_if_full = true);
  void WakePushed();
  void End(Sub& s, Status why, uint64_t resume_point);
  // Marks `s` removed (under mu_): the feed thread forgets it at its next cleanup, and it
  // no longer counts as open.
  void MarkRemoved(Sub& s);
  void ApplyControl(const Meta& m, uint64_t seq);  // revocations, user and tenant deletes
  // Whether a user record (`m`, at `seq`) moved a user key's subscription's user to
  // another tenant than the one it reads collection records as.
  static bool MovedAway(const Sub& s, const Meta& m, uint64_t seq);
  static Status MovedAwayStatus();
  // Why a control change (`m`) ends `s`, if it does.
  static std::optional<Status> EndedBy(const Sub& s, const Meta& m);
  // Pushes a matching event, or ends `s` when its key expired before the event's commit.
  // Returns Push's answer (false once ended).
  bool Deliver(Sub& s, const std::shared_ptr<const ChangeEvent>& ev, bool end_if_full);
  // Ends the subscriptions whose key has expired by now, also when no change comes to
  // judge them by (Deliver). Under mu_, before Run's cleanup (which sets next_expiry_).
  void EndExpired();
  bool LiveStep(std::unique_lock<std::mutex>& lock);
  bool CatchUpStep(std::unique_lock<std::mutex>& lock);

  storage::KvStore* store_;
  FeedOptions options_;
  std::function<Uuid(const Uuid&)> tenant_of_;
  SchemaOf schema_of_;

  std::atomic<uint64_t> durable_{0};
  std::atomic<uint64_t> published_{0};  // every change up to here was fanned out
  std::atomic<bool> has_subs_{false};

  // The feed thread sleeps on wake_cv_; writers, subscribers and Stop wake it.
  std::mutex wake_mu_;
  std::condition_variable wake_cv_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> kicked_{false};
  // The earliest expiry (engine micros) of an open subscription's key; 0: none. Written
  // under mu_, read by the feed thread's wait, which then wakes to check it.
  std::atomic<int64_t> next_expiry_{0};
  std::function<int64_t()> now_;

  mutable std::mutex mu_;
  uint64_t next_id_ = 1;                           // guarded by mu_
  std::map<uint64_t, std::shared_ptr<Sub>> subs_;  // guarded by mu_
  // Those not following the live end yet (catching up from a sequence).
  std::vector<std::shared_ptr<Sub>> behind_;  // guarded by mu_
  bool removals_ = false;  // some Sub was marked removed since the last cleanup; by mu_
  size_t open_ = 0;        // subscriptions not marked removed; guarded by mu_
  // Live subscriptions by the user they filter on, and those without a user filter.
  // Guarded by mu_ and written only on the feed thread (Stop clears them after joining
  // it), so the feed thread also reads them while reading the log without mu_.
  // It and tenant_cache_ are flat tables: their probe per change, into a table gone cold
  // between group commits, is a cache miss or two rather than a walk of linked nodes
  // (perf: the two lookups were a quarter of this thread's time). Pointers into it
  // (LiveStep's followers) stay valid as nothing is inserted before the fan-out.
  absl::flat_hash_map<Uuid, std::vector<Sub*>, UuidHash> live_by_user_;
  std::vector<Sub*> live_broad_;
  // Live user-scoped subscriptions that take collection records: they may read records of
  // tenant-owned and unowned collections too, which no user owns (so no live_by_user_ key
  // finds them).
  std::vector<Sub*> live_coll_users_;
  // Record types some live subscription takes (every bit: one takes any); a superset
  // after removals until the next cleanup. The live read builds events of these only.
  uint32_t live_types_ = 0;  // guarded by mu_
  // Subscriptions whose empty queue got events in this step (feed thread, under mu_). Their
  // wakes wait until the step has fanned out all its events, so a connection carrying
  // several of them is woken (and drains, and writes) once per step, not once per event.
  std::vector<std::pair<Sub*, std::shared_ptr<Subscription>>> to_wake_;
  // Feed thread only: the events Build fills, reused.
  EventRing events_;
  // Feed thread only: users' tenants seen in the log or looked up.
  absl::flat_hash_map<Uuid, Uuid, UuidHash> tenant_cache_;
  std::thread thread_;
};

}  // namespace agentstore::internal
