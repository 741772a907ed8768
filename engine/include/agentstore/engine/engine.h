// Engine: agentstore's records held in memory, made durable through storage::KvStore.
//
// Every call takes the caller's Scope and applies the data model's access table: a
// record the caller may not see is answered exactly like a missing one (not_found);
// a write the caller may not make is permission_denied. Nothing throws; every failure
// is a Status, and a failed call changes nothing.
//
// Writes: each operation's changes (e.g. a message plus its chat's totals) go into one
// RocksDB batch, are applied to memory, and are acknowledged only once durable per the
// store's Durability. Reads see applied writes; under `always` a reader may see a write
// up to one group commit before its writer is acknowledged.
//
// Concurrency: records are partitioned into shards by owning user (a user's profile,
// user_agents, chats, messages, votes, memories and usage all live in one shard, which
// later lets us shard users across machines); records without an owning user (tenants,
// agents, admin_config, api keys, the email index) live in a global partition. Each
// partition has a reader-writer lock; a write locks the global partition (when it needs
// it) before its shard. All methods are safe to call from any number of threads.
//
// Updates take an RFC 7386 merge patch over the record's fields as JSON text, e.g.
// {"full_name":"Ada","preferences":{"theme":"dark"}}. JSON-typed fields are merged
// recursively (or replaced, with JsonMode::kReplace); naming a field the store
// maintains (ids, created_at, usage counters) is invalid_argument; a field only
// privileged callers may change (a user's role) is permission_denied for others.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "agentstore/common/clock.h"
#include "agentstore/common/collection_query.h"
#include "agentstore/common/memory_query.h"
#include "agentstore/common/query.h"
#include "agentstore/common/row.h"
#include "agentstore/common/status.h"
#include "agentstore/common/usage.h"
#include "agentstore/common/uuid.h"
#include "agentstore/engine/feed.h"
#include "agentstore/engine/scope.h"
#include "agentstore/index/hnsw_graph.h"
#include "agentstore/storage/kv_store.h"

namespace agentstore {

namespace internal {
struct EngineState;
}

// user_memory search. The vector dimension and metric are fixed when a store is created
// (kept in the data directory); the rest may change between runs.
struct MemoryOptions {
  // 0 / empty: the store's own, or 384 / "cosine" for a new store. A value that differs
  // from an existing store's is refused at open.
  uint32_t dim = 0;
  std::string metric;  // "cosine" or "l2"
  // A user's memories are searched by an exact scan up to this many, through an HNSW
  // graph above it (benchmarks/README.md: "Exact or graph" has the measurement).
  uint32_t exact_threshold = 10000;
  index::GraphParams user_graph{16, 200, 256, 100};
  index::GraphParams global_graph{16, 200, 200, 100};
  // A graph is rebuilt once its tombstones (deleted or changed vectors) pass this
  // fraction of its live vectors.
  double rebuild_tombstone_fraction = 0.25;
  // Background maintenance: the indexer (global graph, per-user graph builds) and the
  // expiry sweeper (expired memories and collection records, every sweep_interval_ms).
  // Off in tests that drive them with DrainMemoryIndex / SweepExpiredMemories.
  bool background = true;
  int sweep_interval_ms = 1000;
  // The HNSW graphs are saved to <data_dir>/graphs (when changed) this often by the
  // background thread, on a clean stop and on SaveMemoryGraphs, so a restart loads them
  // instead of rebuilding; 0: only on a clean stop and on demand.
  int graph_save_interval_ms = 60000;
  // Off: never load or save graphs (every start rebuilds them).
  bool save_graphs = true;
  // A start that loaded the saved global graph inserts the memories it lacks (written
  // after it was saved: after kill -9, at most graph_save_interval_ms of writes) before
  // it opens, on every core, for at most this long; the rest go to the background
  // indexer (searches stay complete meanwhile, scanning them exactly). 0: all background.
  int open_catch_up_ms = 5000;
};

struct EngineOptions {
  std::string data_dir = "./data";
  storage::Durability durability = storage::Durability::kAlways;
  int shards = 16;
  const Clock* clock = SystemClock::Default();
  // 0: seed ids from std::random_device.
  uint64_t random_seed = 0;
  // Cap for each JSON field, in bytes (data model default 64 KiB).
  size_t max_json_bytes = 64 << 10;
  MemoryOptions memory;
  // Usage logs older than this (by request_ts) leave memory on ExpireUsageLogs and at
  // open; 0 keeps them forever. Rollups, counters and quotas always stay.
  int64_t usage_log_retention_micros = 0;
  // With retention: also delete the expired logs from RocksDB (else they stay on disk,
  // for export, and are skipped when the store opens).
  bool usage_log_retention_purge_store = false;
  // A concurrent-limit lease never released expires this long after it was taken.
  int64_t lease_ttl_micros = 300'000'000;
  // Open even when the WAL is damaged before its end, from the last consistent point
  // (dropping the writes after the damage; agentstored --recover-damaged-wal). Without
  // it such a store refuses to open with an error naming the file and offset.
  bool recover_damaged_wal = false;
  // Tests: makes the store's file writes fail as a full disk does.
  std::shared_ptr<storage::StorageFaults> faults;
  // Change feed: how long its log is kept (storage::StoreOptions::log_retention_*) and
  // each subscriber's buffer.
  uint64_t feed_retention_seconds = 86400;
  uint64_t feed_retention_mb = 4096;
  FeedOptions feed;
  // The table image (<data_dir>/image, docs/data-model.md "Start and the table image"):
  // a start maps it and reads from RocksDB only the keys the log changed after it,
  // instead of scanning the whole store. A new one is written in the background once
  // max(`image_min_changes`, a quarter of the last image's records) changes were logged
  // since the last (checked every `image_check_ms`), at a clean stop when there is none
  // yet, the log no longer reaches it or `image_min_changes` changed, and on demand
  // (Engine::SaveImage). false: no image is read or written.
  bool table_image = true;
  uint64_t image_min_changes = 100000;
  int image_check_ms = 60000;
};

// A new API key: the secret is shown once, only its hash is stored.
struct NewApiKey {
  Row<fb::ApiKey> key;
  std::string secret;
};

// What a successful authentication grants, and what a session needs to recheck it.
struct AuthenticatedKey {
  Scope scope;
  Uuid key_id;
  int64_t expires_at = 0;  // 0: never
  uint64_t epoch = 0;      // Engine::auth_epoch() when the key was checked
};

struct EngineStats {
  uint64_t records[16] = {};  // indexed by RecordType
  // Live record bytes in the arenas (embeddings of memories referred to in the table
  // image not counted: they are the vectors' one copy).
  uint64_t arena_live_bytes = 0;
  uint64_t arena_dead_bytes = 0;
  uint64_t wal_syncs = 0;
  uint64_t writes = 0;
};

// Lets a server acknowledge writes without parking a thread per write: while one of
// these lives on a thread, the engine's writes on that thread return as soon as they are
// logged and applied (visible to readers) without waiting for durability. The caller
// must not acknowledge them before Engine::WhenDurable(ticket()) reports. Not nestable.
class DeferDurability {
 public:
  DeferDurability();
  ~DeferDurability();
  DeferDurability(const DeferDurability&) = delete;
  DeferDurability& operator=(const DeferDurability&) = delete;
  // The highest durability ticket of the writes made so far; 0 if none.
  uint64_t ticket() const;
};

class Engine {
 public:
  // Opens the data directory and rebuilds every table and index from RocksDB.
  static Result<std::unique_ptr<Engine>> Open(const EngineOptions& options);
  // A clean stop: stops the memory thread (a graph build in progress is abandoned, not
  // finished), saves the graphs that changed, writes the table image when there is none
  // or EngineOptions::image_min_changes changed since it, flushes RocksDB's memtable and
  // closes it.
  // Afterwards every write is on disk and the data directory is free; the engine must
  // not be used again, only destroyed (which frees its memory; a process about to exit
  // may skip that). The destructor closes an engine not closed yet.
  Status Close();
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // ---- tenants (write: service, admin; read: service, admin, members) ----
  Result<Row<fb::Tenant>> CreateTenant(const Scope& scope, const fb::TenantT& tenant);
  Result<Row<fb::Tenant>> GetTenant(const Scope& scope, const Uuid& id);
  Result<Row<fb::Tenant>> GetTenantBySlug(const Scope& scope, std::string_view slug);
  Result<Row<fb::Tenant>> UpdateTenant(const Scope& scope, const Uuid& id, std::string_view patch,
                                       JsonMode mode = JsonMode::kMerge);
  Status DeleteTenant(const Scope& scope, const Uuid& id, DeleteMode mode);
  Result<Page<fb::Tenant>> ListTenants(const Scope& scope, const PageRequest& page);

  // ---- users (create: service; update: service, or the user for its profile) ----
  // Applies every default of the data model in one step (the seeds' handle_new_user).
  Result<Row<fb::User>> CreateUser(const Scope& scope, const fb::UserT& user);
  Result<Row<fb::User>> GetUser(const Scope& scope, const Uuid& id);
  Result<Row<fb::User>> GetUserByEmail(const Scope& scope, std::string_view email);
  Result<Row<fb::User>> UpdateUser(const Scope& scope, const Uuid& id, std::string_view patch,
                                   JsonMode mode = JsonMode::kMerge);
  // Soft: sets deleted_at on the user. Hard: removes the user and cascades to every
  // record it owns (chats -> messages -> votes, user_agents, usage logs, memories,
  // rate-limit state, its API keys); admin_config.updated_by is kept.
  Status DeleteUser(const Scope& scope, const Uuid& id, DeleteMode mode);
  Result<Page<fb::User>> ListUsers(const Scope& scope, const PageRequest& page);

  // ---- agents (write: service, admin, or a user for agents it creates) ----
  Result<Row<fb::Agent>> CreateAgent(const Scope& scope, const fb::AgentT& agent);
  Result<Row<fb::Agent>> GetAgent(const Scope& scope, const Uuid& id);
  Result<Row<fb::Agent>> UpdateAgent(const Scope& scope, const Uuid& id, std::string_view patch,
                                     JsonMode mode = JsonMode::kMerge);
  Status DeleteAgent(const Scope& scope, const Uuid& id, DeleteMode mode);
  // Agents the caller may see (public ones and its own for a user), oldest first.
  Result<Page<fb::Agent>> ListAgents(const Scope& scope, const PageRequest& page);

  // ---- user_agents (unique per (user_id, agent_id)) ----
  Result<Row<fb::UserAgent>> CreateUserAgent(const Scope& scope, const fb::UserAgentT& ua);
  Result<Row<fb::UserAgent>> GetUserAgent(const Scope& scope, const Uuid& id);
  Result<Row<fb::UserAgent>> GetUserAgentFor(const Scope& scope, const Uuid& user,
                                             const Uuid& agent);
  // Usage, quality and performance fields are not patchable (track_agent_usage and
  // rate_agent own them).
  Result<Row<fb::UserAgent>> UpdateUserAgent(const Scope& scope, const Uuid& id,
                                             std::string_view patch,
                                             JsonMode mode = JsonMode::kMerge);
  Status DeleteUserAgent(const Scope& scope, const Uuid& id, DeleteMode mode);
  // Pinned first, then favorites, then sort_order, then added_at.
  Result<std::vector<Row<fb::UserAgent>>> ListUserAgents(const Scope& scope, const Uuid& user,
                                                         const UserAgentFilter& filter);

  // ---- chats, messages, votes ----
  Result<Row<fb::Chat>> CreateChat(const Scope& scope, const fb::ChatT& chat);
  Result<Row<fb::Chat>> GetChat(const Scope& scope, const Uuid& id);
  Result<Row<fb::Chat>> UpdateChat(const Scope& scope, const Uuid& id, std::string_view patch,
                                   JsonMode mode = JsonMode::kMerge);
  // Soft: hides the chat. Hard: removes the chat, its messages and votes; usage logs keep
  // their row with chat_id cleared.
  Status DeleteChat(const Scope& scope, const Uuid& id, DeleteMode mode);
  // A user's chats, newest first.
  Result<Page<fb::Chat>> ListChats(const Scope& scope, const Uuid& user, const PageRequest& page);

  // Appends a message and updates its chat's message_count, token totals, cost and
  // updated_at in one atomic step. Returns the message; `chat_out`, if given, receives
  // the updated chat.
  Result<Row<fb::Message>> AppendMessage(const Scope& scope, const fb::MessageT& message,
                                         Row<fb::Chat>* chat_out = nullptr);
  Result<Row<fb::Message>> GetMessage(const Scope& scope, const Uuid& id);
  Result<Page<fb::Message>> ListMessages(const Scope& scope, const Uuid& chat,
                                         const MessagePageRequest& page);

  // Upsert keyed by (chat_id, message_id).
  Result<Row<fb::Vote>> Vote(const Scope& scope, const Uuid& chat, const Uuid& message,
                             bool is_upvoted);
  Result<std::vector<Row<fb::Vote>>> ListVotes(const Scope& scope, const Uuid& chat);

  // ---- admin_config (service, admin; never users) ----
  Result<Row<fb::AdminConfig>> PutAdminConfig(const Scope& scope, std::string_view key,
                                              std::string_view config_json);
  Result<Row<fb::AdminConfig>> GetAdminConfig(const Scope& scope, std::string_view key);
  Result<std::vector<Row<fb::AdminConfig>>> ListAdminConfig(const Scope& scope);
  Status DeleteAdminConfig(const Scope& scope, std::string_view key);

  // ---- user_memory (a user's own; service for anyone; admin reads only) ----
  // Writes a memory by (user_id, memory_key): a new key creates it, an existing key
  // updates that memory (value, type, importance, expiry and vector; its id, counters and
  // created_at stay). The embedding must have the store's dimension, finite values and,
  // for cosine, non-zero length; cosine stores keep it normalized to unit length.
  Result<Row<fb::UserMemory>> UpsertMemory(const Scope& scope, const fb::UserMemoryT& memory);
  // Records leave out the embedding unless `with_vector`.
  Result<Row<fb::UserMemory>> GetMemory(const Scope& scope, const Uuid& id,
                                        bool with_vector = false);
  Result<Row<fb::UserMemory>> GetMemoryByKey(const Scope& scope, const Uuid& user,
                                             std::string_view key, bool with_vector = false);
  Status DeleteMemory(const Scope& scope, const Uuid& id);
  // The k memories of query.user nearest query.vector that pass the filters: exact
  // (recall 1.0) while the user has at most exact_threshold memories, HNSW above, and
  // always min(k, matching) results. Expired memories never come back. With
  // query.touch, each result's access_count and last_accessed_at are updated in the same
  // call (logged to the WAL before the answer, not waited on for fsync: a power loss may
  // lose the touches of the last group commit; a process crash loses none).
  Result<std::vector<MemoryHit>> SearchMemories(const Scope& scope, const MemoryQuery& query);
  // Vector ranking fused with BM25 keyword ranking over memory_value.content by
  // reciprocal rank fusion (index/text_index.h has the formula).
  Result<std::vector<MemoryHit>> HybridSearchMemories(const Scope& scope, const MemoryQuery& query);
  // Across every user (service and admin): one HNSW graph, optionally filtered by
  // memory_type; query.user is ignored.
  Result<std::vector<MemoryHit>> GlobalSearchMemories(const Scope& scope, const MemoryQuery& query);
  // Keeps at most `keep` memories of `user`, removing the lowest importance first (then
  // the least recently used). Returns how many were removed.
  Result<uint64_t> PruneMemories(const Scope& scope, const Uuid& user, uint32_t keep);
  // Removes every expired memory now (the background sweeper calls this). Returns how
  // many were removed.
  Result<uint64_t> SweepExpiredMemories();
  // Runs the memory indexer on this thread until nothing is pending (tests, benchmarks).
  void DrainMemoryIndex();
  struct MemoryIndexStats {
    uint32_t dim = 0;
    std::string metric;
    uint64_t memories = 0;
    uint64_t global_indexed = 0;
    uint64_t global_pending = 0;
    uint64_t users_on_graph = 0;
    // Reused from saved graphs at the last open (the rest was rebuilt).
    uint64_t global_loaded = 0;
    uint64_t user_graphs_loaded = 0;
    // Inserted into the loaded global graph before the open returned (open_catch_up_ms).
    uint64_t global_caught_up = 0;
  };
  MemoryIndexStats MemoryStats() const;
  // Saves the vector graphs changed since their last save now (service or admin; also
  // done periodically and on a clean stop: MemoryOptions::graph_save_interval_ms).
  Status SaveMemoryGraphs(const Scope& scope);
  // Writes the table image now (service or admin, not tenant-scoped: it holds every
  // tenant's records), then the vector graphs changed since their last save. Also done
  // in the background and on a clean stop (EngineOptions::image_*).
  Status SaveImage(const Scope& scope);
  // What this open started from, and the newest image.
  struct ImageStats {
    bool used = false;            // started from the table image
    uint64_t changed_keys = 0;    // ... reading these keys from RocksDB instead
    std::string rebuilt_because;  // else why the start scanned RocksDB (empty: no image)
    uint64_t mapped_bytes = 0;    // the image in use since open
    uint64_t sequence = 0;        // the newest image's sequence (0: none)
  };
  ImageStats Image() const;
  // ---- usage accounting, quotas, rate limits ----
  // The seeds' agent usage tracking flow in one atomic, durable write. `call` carries
  // user_id, agent_id, chat_id (optional), agent_type, provider, model, tokens, costs,
  // request_ts / response_ts (0: now) and success; totals and duration are derived. The
  // user_agent (user, agent) gets usage_count + 1, message_count + `messages`, success or
  // error + 1, tokens, cost, first/last_used_at, the running avg_response_time_ms and
  // quality_score; the log is appended; the chat's totals advance when a chat is given;
  // the user's and tenant's daily rollups and the tenant's tokens / api_calls quotas
  // advance. Errors change nothing.
  Result<TrackResult> TrackAgentUsage(const Scope& scope, const fb::UsageLogT& call,
                                      int32_t messages = 1);
  // Rates the user's user_agent for `agent` (1..5); `review`, if given, is kept in the
  // user_agent's metadata as {"last_review": {"rating", "review", "at"}}.
  Result<Row<fb::UserAgent>> RateAgent(const Scope& scope, const Uuid& user, const Uuid& agent,
                                       double rating, std::string_view review = {});
  // Usage logs newest first (see UsageQuery). A user sees only its own.
  Result<Page<fb::UsageLog>> ListUsage(const Scope& scope, const UsageQuery& query);
  // Sums from rollups, in time proportional to the days in range. A user may summarize
  // only itself; tenants and everyone need service or admin.
  Result<UsageSummary> SummarizeUsage(const Scope& scope, const UsageSummaryRequest& request);
  // Drops usage logs older than the retention age from memory (and RocksDB if so
  // configured); returns how many. Service and admin only.
  Result<uint64_t> ExpireUsageLogs(const Scope& scope);

  // Sets a tenant quota (tenant_id, quota_type, quota_limit, alert_threshold_pct,
  // period); the current period keeps its usage. Service and admin only.
  Result<Row<fb::Quota>> SetQuota(const Scope& scope, const fb::QuotaT& quota);
  // A tenant's current quota periods (every type, or one), or with `history` every
  // period ever kept, oldest first. A period that ended reads as a new one at zero.
  Result<std::vector<Row<fb::Quota>>> GetQuotas(const Scope& scope, const Uuid& tenant,
                                                std::optional<fb::QuotaType> type = std::nullopt,
                                                bool history = false);

  // Creates a config, or changes the one with the same id or the same (scope, scope_id,
  // limit_type): limit_value and is_active. Service and admin only.
  Result<Row<fb::RateLimitConfig>> PutLimitConfig(const Scope& scope,
                                                  const fb::RateLimitConfigT& config);
  Result<std::vector<Row<fb::RateLimitConfig>>> ListLimitConfigs(const Scope& scope);
  Status DeleteLimitConfig(const Scope& scope, const Uuid& id);
  // Checks every active limit that applies to the request and consumes one unit of each
  // only if all allow. A user may check only itself.
  Result<LimitDecision> CheckLimits(const Scope& scope, const LimitCheckRequest& request);
  // Releases a concurrent-limit lease; not_found when unknown or already expired.
  Status ReleaseLimit(const Scope& scope, const Uuid& lease);

  // ---- api keys ----
  // Service may create any key; admin may create admin and user keys.
  Result<NewApiKey> CreateApiKey(const Scope& scope, const fb::ApiKeyT& key);
  // Keys the caller may see (a user sees its own).
  Result<std::vector<Row<fb::ApiKey>>> ListApiKeys(const Scope& scope);
  Status RevokeApiKey(const Scope& scope, const Uuid& id);
  // Checks a secret and returns the scope it grants; permission_denied for unknown,
  // revoked or expired keys (one message for all, so nothing leaks). Records last_used_at.
  Result<Scope> Authenticate(std::string_view secret);
  // The same, with what an open session needs to revalidate the key later.
  Result<AuthenticatedKey> AuthenticateKey(std::string_view secret);
  // Checks again a key authenticated before (revoked, expired, its user deleted, its
  // tenant gone: permission_denied), for a session whose auth_epoch() moved.
  Result<AuthenticatedKey> RecheckKey(const Uuid& key_id);
  // Moves whenever a key may have lost rights (key_revoke; a user's deletion, role,
  // is_active or tenant change; a tenant's deletion). A session compares it with the
  // epoch it authenticated at: one atomic load per request.
  const std::atomic<uint64_t>& auth_epoch() const;
  // The engine's clock (key expiry is judged by it).
  int64_t NowMicros() const;
  // `scope` acting as `user` (Scope::ActAs), refused when a tenant-scoped service names
  // a user outside its tenant (not_found, as for a missing user).
  Result<Scope> ActAs(const Scope& scope, const Uuid& user);

  // Calls `done` once every write up to `ticket` (from DeferDurability) is durable; at
  // once when it already is. `done` runs on this thread or the store's sync thread and
  // must not block.
  void WhenDurable(uint64_t ticket, std::function<void(Status)> done);

  // ---- export / import (agentctl) ----
  // Up to `limit` records of one type in RocksDB key order, after `cursor` (opaque; from
  // the previous page). Soft-deleted records are included. Not a snapshot across pages:
  // use Checkpoint for a consistent copy.
  struct ExportPage {
    std::vector<std::string> records;  // encoded records of `type`
    std::string next_cursor;
  };
  // `max_bytes` (0: no cap) ends a page before the record that would take its records'
  // bytes past it (a page holds at least one record); the cursor goes on from there.
  Result<ExportPage> ExportRecords(const Scope& scope, RecordType type, std::string_view cursor,
                                   uint32_t limit, size_t max_bytes = 0);
  // Restores one record from its JSON form exactly as exported (timestamps and counters
  // included), after the same validation and reference checks as a create. Importing a
  // record whose id already exists is OK when it is identical, else already_exists.
  // Service scope only. Parents first: tenants, users, agents, user_agents, chats,
  // messages, votes, admin_config, api_keys, then usage_logs, user and tenant usage
  // rollups, quotas and rate_limit_configs (restored as is: an export carries the
  // rollups and counters that agree with its logs).
  Status ImportRecord(const Scope& scope, RecordType type, std::string_view json);
  // Restores many records of one type as one atomic write (one WriteBatch, one wait for
  // durability): each is checked as ImportRecord checks it, seeing the records before it
  // in the batch, and if any fails nothing of the batch is applied and the error names
  // it ("line N: ..." with `lines`, one line number per record, else "record i: ...").
  // Built for every type but usage rollups, quota periods and rate-limit configs, which go
  // one per call (a larger batch of them is not_implemented). Records are parsed and
  // checked on their own before any lock; while the batch is checked against the store
  // and applied it holds every partition.
  Status ImportRecords(const Scope& scope, RecordType type,
                       std::span<const std::string_view> records,
                       std::span<const uint64_t> lines = {});

  // ---- collections: record types declared at run time (docs/data-model.md, Collections) ----
  // Declarations are JSON (engine/src/collection_schema.h has the format); records go in
  // and come out as JSON objects. Access follows the owner: a user-owned collection's
  // records are its user's (service: anyone's; admin: read only), tenant-owned ones are
  // written by service/admin and read by the tenant's users, unowned ones are readable by
  // all and written by service/admin. Writes are durable like every other record.
  // Declares a collection (service, admin). Declaring the same declaration again is OK.
  Result<std::string> DeclareCollection(const Scope& scope, std::string_view declaration);
  // Adds fields and indexes ({"add_fields": [...], "add_indexes": [...]}). Writes continue
  // while a new index is built; a change existing records violate (a required field
  // without a default, a unique index over duplicates) is refused with the reason.
  Result<std::string> AlterCollection(const Scope& scope, std::string_view name,
                                      std::string_view change);
  Result<std::string> DescribeCollection(const Scope& scope, std::string_view name);
  Result<std::vector<std::string>> ListCollections(const Scope& scope);
  // Creates or replaces the record with the record's key (id generated when absent).
  Result<std::string> PutRecord(const Scope& scope, std::string_view collection,
                                std::string_view record);
  // `key`: {"id": ...[, other key fields]} or, for collections keyed by id, the bare id.
  Result<std::string> GetRecord(const Scope& scope, std::string_view collection,
                                std::string_view key);
  Result<std::string> UpdateRecord(const Scope& scope, std::string_view collection,
                                   std::string_view key, std::string_view patch,
                                   JsonMode mode = JsonMode::kMerge);
  Status DeleteRecord(const Scope& scope, std::string_view collection, std::string_view key,
                      DeleteMode mode);
  // `max_bytes` (0: no cap) bounds the records' JSON text in one page, as the server's
  // --max-response-bytes bounds every listing: a page is cut short (never below one record)
  // and its next_cursor continues after its last record.
  Result<CollectionPage> QueryRecords(const Scope& scope, const CollectionQuery& query,
                                      size_t max_bytes = 0);
  Result<uint64_t> CountRecords(const Scope& scope, const CollectionQuery& query);
  // Removes every record whose TTL field has passed (reads already hide them).
  Result<uint64_t> SweepExpiredRecords(const Scope& scope);
  // Export and import of a collection's records (agentctl export / import; the
  // declarations move through ListCollections / DeclareCollection). Export pages hold
  // each record's stored form as JSON text (canonical: decimals as units, the store's
  // timestamps included), in primary-key order, soft-deleted and expired ones included;
  // service and admin keys; a tenant-scoped key gets only its tenant's records (its
  // users' in a user-owned collection, its own in a tenant-owned one, none of an unowned
  // one). Import takes such records (unscoped service key), checks each as a put does plus
  // its owner's existence, and writes them exactly, all or nothing as ImportRecords.
  // `max_bytes` (0: no cap) bounds a page's JSON text as QueryRecords' does.
  Result<ExportPage> ExportCollectionRecords(const Scope& scope, std::string_view collection,
                                             std::string_view cursor, uint32_t limit,
                                             size_t max_bytes = 0);
  Status ImportCollectionRecords(const Scope& scope, std::string_view collection,
                                 std::span<const std::string_view> records,
                                 std::span<const uint64_t> lines = {});
  // ---- change feed (feed.h) ----
  // Opens a subscription to the changes after sequence `after` (nullopt: from now) that
  // pass `filter`, narrowed by the scope: a user scope sees only its own records (naming
  // another user or a tenant is permission_denied) and its subscription ends when the
  // user is deleted; `key_id` (the caller's API key) ends it when the key is revoked.
  // out_of_range names the oldest kept sequence when `after` is older. `wake` is called
  // from the feed thread (must not block) when events arrive or the subscription ends.
  Result<std::shared_ptr<Subscription>> Subscribe(const Scope& scope, FeedFilter filter,
                                                  std::optional<uint64_t> after,
                                                  std::optional<Uuid> key_id = std::nullopt,
                                                  std::function<void()> wake = nullptr);
  // The feed's positions: the latest durable sequence and the oldest still kept.
  struct FeedPositions {
    uint64_t durable = 0;
    uint64_t oldest = 0;
    size_t subscribers = 0;
  };
  FeedPositions FeedInfo() const;

  // ---- operators ----
  EngineStats Stats() const;
  // A consistent online copy of the data directory (RocksDB checkpoint) in `dir`.
  Status Checkpoint(const std::string& dir);
  storage::Durability durability() const;
  // OK while the store accepts writes; else the error writes get (a full disk:
  // resource_exhausted) until they recover by themselves.
  Status WriteHealth() const;

 private:
  Status ImportOne(RecordType type, std::string_view json);  // rollups, quotas, limits
  explicit Engine(std::unique_ptr<internal::EngineState> impl);
  Result<AuthenticatedKey> CheckKey(const Uuid& key_id, const std::vector<uint8_t>* hash);
  std::unique_ptr<internal::EngineState> impl_;
};

}  // namespace agentstore
