// Engine internals shared by the engine's source files: the partitions (shards by
// owning user plus one global partition), their indexes, and the write path.
#pragma once

#include <flatbuffers/flatbuffers.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "agentstore/engine/engine.h"
#include "arena.h"
#include "feed_notes.h"
#include "graph_file.h"
#include "id_directory.h"
#include "keys.h"
#include "memory_index.h"
#include "record_fields.h"
#include "table_image.h"
#include "usage_state.h"

namespace agentstore::internal {

struct CollectionStore;    // collections.h
struct CollectionCascade;  // collections.h
class ChangeFeed;          // change_feed.h

// (time, id): the order of time-sorted listings; the id breaks ties.
using TimeKey = std::pair<int64_t, Uuid>;

struct UuidPairHash {
  size_t operator()(const std::pair<Uuid, Uuid>& p) const {
    return UuidHash()(p.first) * 31 + UuidHash()(p.second);
  }
};

// A chat's message in order, (created_at, id), with where its bytes are: a page of
// messages reads the arena directly, with no id lookups (messages never change after
// they are appended, so the location stays valid until compaction rewrites it).
struct MessageRef {
  TimeKey key;
  Loc loc;
  friend bool operator<(const MessageRef& a, const MessageRef& b) { return a.key < b.key; }
  friend bool operator<(const MessageRef& a, const TimeKey& b) { return a.key < b; }
  friend bool operator<(const TimeKey& a, const MessageRef& b) { return a < b.key; }
};

// Per-chat indexes: its messages in (created_at, id) order and its votes.
struct ChatIndex {
  std::vector<MessageRef> messages;
  IdMap votes;  // message id -> vote
};

// One lockable unit of records. User shards use the per-user members; the global
// partition uses the global ones. Every member is guarded by `mu`.
struct Partition {
  mutable std::shared_mutex mu;
  Arena arena;

  // --- shards: records owned by a user ---
  IdMap users;
  IdMap user_agents;
  IdMap chats;
  IdMap messages;
  std::unordered_map<Uuid, std::vector<Uuid>, UuidHash> user_agents_by_user;
  std::unordered_map<std::pair<Uuid, Uuid>, Uuid, UuidPairHash> user_agent_by_pair;
  std::unordered_map<Uuid, std::set<TimeKey>, UuidHash> chats_by_user;  // (created_at, id)
  std::unordered_map<Uuid, ChatIndex, UuidHash> chat_index;
  // user_memory: id -> record (without its embedding, which lives in UserMemories; a
  // record referred to in the table image keeps its embedding, which is then the vector's
  // one copy: those bytes are counted here, not as arena bytes).
  IdMap memories;
  size_t memory_embedded_bytes = 0;
  std::unordered_map<Uuid, std::unique_ptr<UserMemories>, UuidHash> memories_by_user;

  // --- shards: usage accounting (usage.cc) ---
  IdMap usage_logs;
  std::unordered_map<Uuid, UsageIndex, UuidHash> usage_by_user;  // newest last
  UsageIndex usage_by_type[5];                                   // by fb::AgentType
  std::unordered_map<Uuid, std::vector<Uuid>, UuidHash> usage_by_chat;
  std::unordered_map<Uuid, RollupMap, UuidHash> user_rollups;
  // What this shard's users added to tenant rollups (nil: everyone) since the store
  // opened; the rest is in Ledger::tenant_rollups (usage_state.h).
  std::unordered_map<Uuid, RollupMap, UuidHash> tenant_rollup_parts;

  // --- global partition ---
  IdMap tenants;
  IdMap agents;
  IdMap api_keys;
  std::set<Uuid> tenant_ids;  // listing order
  std::set<Uuid> user_ids;    // listing order, across all shards
  std::set<TimeKey> agent_order;
  std::unordered_map<std::string, Uuid> user_by_email;  // lowercased
  std::unordered_map<std::string, Uuid> tenant_by_slug;
  std::map<std::string, Loc> admin_config;
  std::unordered_map<Uuid, std::vector<Uuid>, UuidHash> api_keys_by_user;
};

// Packs an object-API record into its FlatBuffers bytes; `every_scalar` writes default
// scalars too, so that one can later be changed in place (user_memory's touch counters,
// in its record in the table image).
template <typename NT>
std::string Pack(const NT& obj, bool every_scalar = false) {
  thread_local flatbuffers::FlatBufferBuilder fbb(1024);
  fbb.Clear();
  fbb.ForceDefaults(every_scalar);
  fbb.Finish(NT::TableType::Pack(fbb, &obj));
  return std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
}
template <typename NT>
std::string PackEveryScalar(const NT& obj) {
  return Pack(obj, /*every_scalar=*/true);
}

template <typename T>
const T* View(const Partition& p, Loc loc) {
  return flatbuffers::GetRoot<T>(p.arena.Get(loc).data());
}

template <typename T>
Row<T> RowAt(const Partition& p, Loc loc) {
  return Row<T>(p.arena.Get(loc));
}

inline std::unique_ptr<fb::Uuid> FbId(const Uuid& u) { return std::make_unique<fb::Uuid>(ToFb(u)); }

// The memory search machinery shared by the shards: the store's vector space, the
// global graph, and the background indexer/sweeper thread.
struct MemoryState {
  std::shared_ptr<const index::Space> space;
  // Every memory's vector, once; declared before everything that points into it (the
  // global graph here, users' memories in the shards, declared after MemoryState), so it
  // is destroyed last.
  std::unique_ptr<VectorStore> vectors;
  std::unique_ptr<GlobalMemoryIndex> global;
  std::atomic<uint64_t> next_label{1};
  // Users whose graph should be built or rebuilt: (shard, user).
  std::mutex queue_mu;
  std::vector<std::pair<size_t, Uuid>> graph_queue;
  // One indexing step at a time (the background thread or DrainMemoryIndex).
  std::mutex step_mu;
  std::mutex thread_mu;
  std::condition_variable wake;
  bool stopping = false;
  std::atomic<bool> stop_builds{false};  // set by StopMemoryThread; builds give up
  std::thread thread;
  // Saved graphs (graph_file.h): where, one saver at a time, and what the last open
  // reused (elements of the global graph, users' graphs).
  std::string graph_dir;
  std::mutex save_mu;
  bool recovering = false;
  bool trimmed = false;  // malloc_trim done since the indexer last worked
  uint64_t global_loaded = 0;
  uint64_t global_caught_up = 0;
  uint64_t user_graphs_loaded = 0;
  // The saved global graph, read from its files on another thread while recovery
  // indexes the records (the two take about as long; the machine has more than one core).
  std::future<Result<SavedGraph>> global_file;
};

// The table image (table_image.h): the one in use since open, and the thread that
// writes a new one when enough has changed.
struct ImageState {
  std::string dir;                           // <data_dir>/image
  std::shared_ptr<const TableImage> mapped;  // what this open started from (may be null)
  std::mutex save_mu;                        // one writer at a time
  std::atomic<uint64_t> sequence{0};         // the newest image's (0: none)
  std::atomic<uint64_t> entries{0};          // ... and how many records it holds
  std::mutex thread_mu;
  std::condition_variable wake;
  bool stopping = false;
  std::thread thread;
  // What the last open did: started from an image, and how many keys it read from
  // RocksDB because the log changed them after the image; or why it rebuilt.
  bool used = false;
  uint64_t changed_keys = 0;
  std::string rebuilt_because;
};

struct EngineState {
  EngineOptions options;
  MemoryState memory;
  std::unique_ptr<storage::KvStore> store;
  ImageState image;
  // What recovery reads at open (RocksDB, or the image and the keys changed after it).
  std::unique_ptr<RecordSource> source;
  std::unique_ptr<ChangeFeed> feed;  // follows `store`'s log; stopped before it closes
  std::vector<std::unique_ptr<Partition>> shards;
  Partition global;
  // Store-wide: which shard holds each id of the user-owned tables whose ids must be
  // unique across shards (id_directory.h). Attached to every shard's map at open.
  IdDirectory user_agent_dir, chat_dir, message_dir, usage_log_dir, memory_dir;
  std::atomic<uint64_t> writes{0};
  Ledger ledger;        // tenant rollups, the everyone rollup, quotas (quotas.cc)
  RateLimiter limiter;  // rate-limit configs and windows (rate_limits.cc)
  std::atomic<uint64_t> id_counter{0};
  uint64_t id_seed = 0;

  int64_t Now() const { return options.clock->NowMicros(); }
  // Who belongs to which tenant, for tenant-confined scopes (Sees). Kept by IndexUser /
  // UnindexUser. A leaf lock: nothing else is taken while it is held, so it may be read
  // under any partition lock.
  mutable std::shared_mutex user_tenant_mu;
  std::unordered_map<Uuid, Uuid, UuidHash> user_tenant;  // nil: the user has no tenant
  // Bumped after any change that may take rights from a key (revoke; a user's deletion,
  // role, activity or tenant; a tenant's deletion). Open sessions revalidate their key
  // when it moved, so the request path pays one atomic load.
  std::atomic<uint64_t> auth_epoch{1};
  void BumpAuthEpoch() { auth_epoch.fetch_add(1, std::memory_order_release); }

  Uuid TenantOfUser(const Uuid& user) const {
    std::shared_lock lock(user_tenant_mu);
    auto it = user_tenant.find(user);
    return it == user_tenant.end() ? Uuid() : it->second;
  }
  // The change feed's note naming the owner of the deletes after it: the user and its
  // tenant, since the feed reads a delete once the record (maybe the user) is gone and
  // could no longer look the tenant up.
  std::string OwnerNoteFor(const Uuid& user) const { return OwnerNote(user, TenantOfUser(user)); }
  // The access rule for records owned by a user: a user scope sees its own, a confined
  // service/admin scope the users of its tenant, an unconfined one everyone.
  bool Sees(const Scope& scope, const Uuid& owner) const {
    if (scope.is_user()) return owner == scope.user();
    if (!scope.confined()) return true;
    return TenantOfUser(owner) == *scope.tenant();
  }
  // For records that carry their own tenant_id (nil: none): a confined scope sees only
  // its tenant's.
  static bool SeesTenant(const Scope& scope, const Uuid& tenant) {
    return !scope.confined() || tenant == *scope.tenant();
  }

  Uuid NewId();
  size_t ShardIndex(const Uuid& user) const { return UuidHash()(user) % shards.size(); }
  Partition& ShardOf(const Uuid& user) { return *shards[ShardIndex(user)]; }
  FieldContext Ctx(JsonMode mode = JsonMode::kMerge) const {
    return FieldContext{options.max_json_bytes, mode};
  }

  // Logs `batch` to RocksDB (the caller holds the partition locks, so memory and log
  // order agree) and returns the durability ticket.
  Result<uint64_t> Log(storage::WriteBatch& batch) {
    batch.Note(CommitTimeNote(Now()));  // the change feed's commit time
    auto r = store->Write(batch);
    if (r.ok()) writes.fetch_add(1, std::memory_order_relaxed);
    return r;
  }
  // Waits, outside every lock, until the write is durable (or, under DeferDurability,
  // records the ticket for the caller to wait on).
  Status Durable(uint64_t ticket);

  // Creates that name their own id for a user-owned record (chat, user_agent, message)
  // hold the id's claim while they check every shard and insert, so two callers can
  // never own one id in two shards. Generated ids need no claim. Taken before any
  // partition lock.
  std::mutex id_claims[64];
  std::unique_lock<std::mutex> ClaimId(const Uuid& id, bool client_given) {
    if (!client_given) return {};
    return std::unique_lock<std::mutex>(id_claims[UuidHash()(id) % 64]);
  }
  // True when `id` is in `table` of a shard other than `own`. `locked`: the caller holds
  // every shard's lock (an import batch), so the shards are read without taking them.
  bool InOtherShard(IdMap Partition::*table, const Uuid& id, size_t own, bool locked = false) const;

  // Finds the shard holding a record of a user-owned table when the owner is unknown
  // (service/admin by id). -1 when absent everywhere. One directory lookup for the tables
  // that have one (id_directory.h), else a search shard by shard.
  int FindShard(IdMap Partition::*table, const Uuid& id) const;

  // True when the user exists and is not soft-deleted (caller holds the shard lock).
  bool UserLive(const Partition& shard, const Uuid& user) const;

  // Index maintenance shared by recovery and the write paths (caller holds locks).
  void IndexUser(Partition& shard, Loc loc);
  void UnindexUser(Partition& shard, const Uuid& id);
  void IndexUserAgent(Partition& shard, Loc loc);
  void UnindexUserAgent(Partition& shard, const Uuid& id);
  void IndexChat(Partition& shard, Loc loc);
  void IndexMessage(Partition& shard, Loc loc, bool keep_sorted);
  void IndexVote(Partition& shard, Loc loc);
  void IndexTenant(Loc loc);
  void IndexAgent(Loc loc);
  void IndexApiKey(Loc loc);

  // Adds the deletes of a chat, its messages and votes to `batch`; DropChat then removes
  // them from memory once the batch is logged (caller holds the shard lock).
  void AddChatDeletes(const Partition& shard, const Uuid& chat_id, storage::WriteBatch& batch);
  void DropChat(Partition& shard, const Uuid& chat_id);

  // Usage accounting (usage.cc, quotas.cc, rate_limits.cc).
  void IndexUsageLog(Partition& shard, Loc loc);
  void UnindexUsageLog(Partition& shard, const Uuid& id);
  // A hard-deleted user's logs, rollups and user-scope limit configs: deletes into
  // `batch` (caller holds the global and shard locks); DropUserUsage forgets them.
  void AddUserUsageDeletes(const Partition& shard, const Uuid& user, storage::WriteBatch& batch);
  void DropUserUsage(Partition& shard, const Uuid& user);
  // A purged tenant's quotas, rollups and tenant-scoped limit configs (caller holds the
  // global partition, Ledger::mu and RateLimiter::config_mu).
  void AddTenantUsageDeletes(const Uuid& tenant, storage::WriteBatch& batch);
  void DropTenantUsage(const Uuid& tenant);
  // The shards' parts of a tenant's rollups (usage_state.h, Ledger): deletes into
  // `batch`, then forgetting them. Each takes the shard locks itself, so the caller may
  // hold the global partition but not Ledger::mu.
  void AddTenantRollupPartDeletes(const Uuid& tenant, storage::WriteBatch& batch);
  void DropTenantRollupParts(const Uuid& tenant);
  // Forgets the rate-limit configs of `scope` whose scope_id is `subject` (memory only).
  void DropLimitConfigsOf(const Uuid& subject, fb::LimitScope scope);
  // A hard-deleted chat's logs keep their row with chat_id cleared.
  void AddChatUsageClears(Partition& shard, const Uuid& chat, storage::WriteBatch& batch,
                          std::vector<std::string>* rewritten);
  void ApplyChatUsageClears(Partition& shard, const Uuid& chat,
                            std::vector<std::string>& rewritten);
  Status RecoverUsage();
  // Restores one rollup, quota period or limit config exactly as exported
  // (record_import); `ticket` receives the write's durability ticket (0: unchanged).
  Status ImportUsageRecord(RecordType type, std::string_view json, uint64_t* ticket);

  Status Recover();
  std::function<void(const char*)> open_trace;  // AGENTSTORE_OPEN_TRACE (Engine::Open)
  // Recovery's reads: every record under `prefix` in key order, each value 8-aligned
  // (FlatBuffers reads scalars in place); image values are passed where they are mapped,
  // so arenas and the vector store refer to them instead of copying.
  Status RecoveryScan(std::string_view prefix,
                      const std::function<Status(std::string_view, std::string_view)>& visit);
  // Chooses the recovery source at open: the table image if it is usable, else RocksDB.
  void OpenTableImage();
  // Writes a new table image now (the image thread, Close, Engine::SaveImage).
  Status SaveTableImage();
  void StartImageThread();
  void StopImageThread();
  void MaybeCompact(Partition& p);

  // Collections (collections.cc): run-time declared record types, kept behind their own
  // module. RecoverCollections creates the store and loads it at open.
  std::shared_ptr<CollectionStore> collections;
  Status RecoverCollections();
  // DeleteUser's cascade into every user-owned collection (caller holds the global and
  // shard locks): soft-deletes or removes the user's records into `batch`, holding each
  // collection's lock until ApplyCollectionChanges applies them after the batch is logged.
  std::shared_ptr<CollectionCascade> AddUserCollectionChanges(const Uuid& user, bool soft,
                                                              storage::WriteBatch& batch);
  void ApplyCollectionChanges(std::shared_ptr<CollectionCascade>& cascade);
  // Removes every collection record whose TTL field has passed (reads already hide them);
  // run by the background sweep and coll_sweep. Returns how many.
  Result<uint64_t> SweepCollections();

  // user_memory (memories.cc). Caller holds the shard lock exclusively.
  Status OpenMemoryStore();
  void IndexMemory(Partition& shard, Loc loc, const float* vec);
  void UnindexMemory(Partition& shard, const Uuid& id);
  void AddUserMemoryDeletes(const Partition& shard, const Uuid& user, storage::WriteBatch& batch);
  void DropUserMemories(Partition& shard, const Uuid& user);
  void QueueGraphWork(Partition& shard, const Uuid& user, UserMemories& mems);
  Result<uint64_t> SweepExpired();
  Status RecoverMemories();
  // After RecoverMemories: trims growth slack and attaches (or queues) the graphs.
  void FinishMemoryRecovery();
  // An exported memory checked (as a create checks it) and encoded for import, before
  // any lock: what the import batch then checks against the store (transfer.cc).
  struct MemoryImport {
    Uuid id, user;
    std::string key;    // memory_key
    std::string full;   // RocksDB's bytes, embedding included
    std::string bytes;  // the arena's (no embedding, every scalar present)
    std::vector<float> embedding;
  };
  Status PrepareMemoryImport(fb::UserMemoryT m, int64_t now, MemoryImport* out) const;
  // A memory's arena record as MemoryImport::bytes has it (without its embedding, which
  // a record referred to in the table image still carries).
  std::string MemoryArenaBytes(std::string_view record) const;
  bool MemoryIndexStep();
  bool NeedsGraphWork(const UserMemories& mems) const;
  // Loads the saved graphs after recovery, keeping only elements whose memory RocksDB
  // still holds with the same vector; anything else is rebuilt.
  void LoadSavedGraphs();
  // Saves every graph changed since its last save (graph_file.h).
  Status SaveMemoryGraphs();
  void StartMemoryThread();
  void StopMemoryThread();
  // Change feed (subscribe.cc).
  void StartFeed();
};

// Locks the global partition and then one shard, exclusively, in the fixed order.
struct GlobalAndShardLock {
  GlobalAndShardLock(Partition& g, Partition& s) : global(g.mu), shard(s.mu) {}
  std::unique_lock<std::shared_mutex> global;
  std::unique_lock<std::shared_mutex> shard;
};

// The store's merge (StoreOptions::merge) for the records that concurrent calls add to:
// tenant/everyone rollups (totals add up) and quota periods (usage adds up, the rest
// from the earlier value). usage.cc.
bool MergeUsageRecord(std::string_view key, const std::string_view* existing,
                      std::string_view operand, std::string* out);

Status ParsePatch(std::string_view text, Json* out);
// RocksDB hands out values at any address; FlatBuffers reads scalars in place and needs
// them aligned. Returns an 8-aligned copy valid until the next call on this thread.
std::string_view AlignedCopy(std::string_view value);
Status CheckLimit(uint32_t limit);
std::string EncodeTimeCursor(const TimeKey& k);
Status DecodeTimeCursor(std::string_view cursor, TimeKey* out);

}  // namespace agentstore::internal

namespace agentstore::internal {

// The shard to look in for a user-owned record: the caller's own for a user scope (a
// record elsewhere is invisible to it anyway), else wherever the id lives.
inline int ShardFor(const EngineState& impl, const Scope& scope, IdMap Partition::*table,
                    const Uuid& id) {
  if (scope.is_user()) return static_cast<int>(impl.ShardIndex(scope.user()));
  return impl.FindShard(table, id);
}

// Global partition shared (for reading agents/tenants), then one shard exclusively.
struct ReadGlobalWriteShard {
  ReadGlobalWriteShard(Partition& g, Partition& s) : global(g.mu), shard(s.mu) {}
  void Unlock() {
    shard.unlock();
    global.unlock();
  }
  std::shared_lock<std::shared_mutex> global;
  std::unique_lock<std::shared_mutex> shard;
};

// Whether `scope` may see agent `a` (public or its own for users; deleted never).
// A confined service/admin scope sees its tenant's agents and the public platform agents
// (no tenant); another tenant's agents answer as missing.
inline bool AgentVisibleTo(const Scope& scope, const fb::Agent* a) {
  if (a->deleted_at()) return false;
  if (scope.confined()) {
    Uuid tenant = ToUuid(a->tenant_id());
    return tenant == *scope.tenant() || (tenant.IsNil() && a->is_public());
  }
  if (!scope.is_user()) return true;
  return a->is_public() || ToUuid(a->creator_id()) == scope.user();
}

// The one rule for references (docs/protocol.md, "Errors"): a field naming a record that
// does not exist, or that the caller may not see, is not_found naming the field.
inline Status MissingRef(std::string_view field, std::string_view what) {
  return Status::NotFound(std::string(field) + " names no " + std::string(what));
}

// not_found (naming `field`) unless `agent` exists and user `owner` may use it (caller holds the
// global partition).
inline Status CheckAgentUsableBy(const Partition& g, const Uuid& agent, const Uuid& owner,
                                 const char* field) {
  auto a = g.agents.find(agent);
  if (a == g.agents.end() || !AgentVisibleTo(Scope::ForUser(owner), View<fb::Agent>(g, a->second)))
    return MissingRef(field, "agent this user may use");
  return Status::OK();
}

// ---- derived values (derived.cc): kept consistent by every write and by import ----

// A user_agent re-encoded with a changed derived counter; Apply once the batch holding
// it is logged (caller holds the shard lock).
struct UserAgentRewrite {
  Uuid id;
  std::string bytes;
};
// conversation_count: the number of the user's chats (soft-deleted included, hard-deleted
// not) whose agent_id is the user_agent's agent. Adds `delta` to the count of the
// user's user_agent for `agent` (if it has one) into `batch`.
std::optional<UserAgentRewrite> AddConversation(Partition& shard, const Uuid& user,
                                                const Uuid& agent, int64_t delta,
                                                storage::WriteBatch& batch);
void ApplyUserAgentRewrite(Partition& shard, const UserAgentRewrite& w);
// Counts the user's chats with `agent` (caller holds the shard lock).
int64_t CountConversations(const Partition& shard, const Uuid& user, const Uuid& agent);
// A chat's totals as its messages and tracked usage logs add up (caller holds the
// shard lock): message_count, total_input_tokens, total_output_tokens, total_cost.
void ChatTotalsFromRecords(const Partition& shard, const Uuid& chat, fb::ChatT* c);

// Tenant gauges read by quota_get for the `users` and `storage_bytes` quota types
// (docs/data-model.md): live users of the tenant, and the stored bytes of their
// messages and memories (embeddings included). Takes each shard's lock shared.
struct TenantGauges {
  int64_t users = 0;
  int64_t storage_bytes = 0;
};
TenantGauges MeasureTenant(EngineState& st, const Uuid& tenant);
// Whether a quota type is such a gauge, and its usage set from `g` (quotas.cc).
bool IsGaugeQuota(int8_t type);
void ApplyGauge(const TenantGauges& g, QuotaRec* q);

// The notification_settings a create gives a user / a user_agent (import gives the same).
inline constexpr char kDefaultUserNotifications[] =
    R"({"email":true,"in_app":true,"weekly_digest":true})";
inline constexpr char kDefaultUserAgentNotifications[] = R"({"email":true,"in_app":true})";

// Fills an unset JSON field with its data-model default.
inline void DefaultJson(std::string& field, std::string_view value) {
  if (field.empty()) field = value;
}

// The defaults user_agent_create gives what the caller left unset (import gives the same).
inline void DefaultUserAgent(fb::UserAgentT& ua) {
  if (ua.status.empty()) ua.status = "active";
  DefaultJson(ua.settings, "{}");
  DefaultJson(ua.preferences, "{}");
  DefaultJson(ua.ui_config, "{}");
  DefaultJson(ua.notification_settings, kDefaultUserAgentNotifications);
  DefaultJson(ua.metadata, "{}");
  DefaultJson(ua.source_details, "{}");
  DefaultJson(ua.share_settings, "{}");
}

inline Status NotFound(std::string_view what) {
  return Status::NotFound(std::string(what) + " not found");
}

// The rules every import batch obeys (built-in records and collection records alike):
// a service key that is not tenant-scoped, 1..kMaxImportBatch records, and either no
// line numbers or one per record.
inline Status CheckImportBatch(const Scope& scope, size_t records, size_t lines) {
  if (!scope.is_service()) return Status::PermissionDenied("import needs a service key");
  if (scope.confined())
    return Status::PermissionDenied("import restores whole stores: not for tenant-scoped keys");
  if (records == 0) return Status::InvalidArgument("an import batch needs at least one record");
  if (records > kMaxImportBatch)
    return Status::InvalidArgument("an import batch holds at most " +
                                   std::to_string(kMaxImportBatch) + " records");
  if (lines != 0 && lines != records)
    return Status::InvalidArgument("lines must give one line number per record");
  return Status::OK();
}

}  // namespace agentstore::internal
