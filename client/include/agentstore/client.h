// agentstore C++ client: typed calls for every operation over the binary protocol.
//
//   agentstore::ClientOptions o;
//   o.port = 7420;
//   o.key = "ask_...";                               // an API key secret
//   auto client = agentstore::Client::Connect(o);   // Result<Client>
//   auto user = client->GetUser(id).get();          // Result<Row<fb::User>>
//
// Every call returns at once with a Pending<T> (the request is written by the calling
// thread); get() waits for the answer (up to the call timeout), reading it on the
// calling thread, and then() registers a callback instead. Issuing many calls before
// waiting pipelines them over the connection; concurrent callers on one connection share
// its reads (whoever waits reads for everyone). Errors are Status values with the
// server's code and message; nothing throws. A Client is a cheap handle: copies share
// the connections, and all methods are thread-safe. Broken connections are re-dialed
// (with back-off, re-authenticating) by the next call.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "agentstore/common/collection_query.h"
#include "agentstore/common/memory_query.h"
#include "agentstore/common/query.h"
#include "agentstore/common/row.h"
#include "agentstore/common/status.h"
#include "agentstore/common/usage.h"
#include "agentstore/common/uuid.h"
#include "agentstore/feed_client.h"

namespace agentstore {

struct ClientOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 7420;
  std::string key;  // API key secret; every connection authenticates with it
  // A pool: each calling thread keeps to one of these connections (thread i uses
  // connection i mod N), so with N >= the app's threads each thread has its own.
  int connections = 1;
  std::chrono::milliseconds timeout{10000};         // per call, for get()
  std::chrono::milliseconds connect_timeout{5000};  // dialing, including retries
  uint32_t max_frame_bytes = 16u << 20;
};

// The value of operations that answer nothing but success.
using Done = std::monostate;

namespace internal {
// What a pending call waits on: the connection that reads its answer. get() asks it to
// read on the calling thread (the waiting caller reads for everyone on that connection,
// as libpq and hiredis do: no reader thread hands the answer over); then() asks it to
// have answers read for callbacks even when nobody waits.
class CallWaiter {
 public:
  virtual ~CallWaiter() = default;
  // Returns once `ready` is set or `deadline` has passed.
  virtual void Await(const std::atomic<bool>& ready,
                     std::chrono::steady_clock::time_point deadline) = 0;
  // A callback was registered on a call of this connection that is not answered yet.
  virtual void WantCallback() = 0;
};
}  // namespace internal

// The answer of a call that has not necessarily arrived yet.
template <typename T>
class Pending {
 public:
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<Result<T>> result;
    std::function<void(Result<T>)> callback;
    std::chrono::milliseconds timeout{10000};
    std::atomic<bool> ready{false};                // result set or callback handed its answer
    std::shared_ptr<internal::CallWaiter> waiter;  // reads the answer; may be null

    // Stores the answer, or, when a callback is registered, returns the callback bound to
    // it for the caller to run once it holds no lock of its own.
    std::function<void()> Settle(Result<T> r) {
      std::lock_guard lock(mu);
      if (ready.load(std::memory_order_relaxed)) return nullptr;
      if (callback) {
        ready.store(true, std::memory_order_release);
        return [cb = std::move(callback), r = std::move(r)]() mutable { cb(std::move(r)); };
      }
      result.emplace(std::move(r));
      ready.store(true, std::memory_order_release);
      cv.notify_all();
      return nullptr;
    }
    void Complete(Result<T> r) {
      if (auto run = Settle(std::move(r))) run();
    }
  };
  explicit Pending(std::shared_ptr<State> s) : s_(std::move(s)) {}

  // Waits for the answer (reading it on this thread when nobody else is reading that
  // connection); unavailable after the call timeout.
  Result<T> get() {
    auto deadline = std::chrono::steady_clock::now() + s_->timeout;
    if (s_->waiter && !s_->ready.load(std::memory_order_acquire))
      s_->waiter->Await(s_->ready, deadline);
    std::unique_lock lock(s_->mu);
    if (!s_->cv.wait_until(lock, deadline, [&] { return s_->result.has_value(); }))
      return Status::Unavailable("no answer within the call timeout");
    return std::move(*s_->result);
  }
  // Calls `cb` with the answer (at once if it is already here) on the thread that reads
  // it: a caller waiting in get() on the same connection, or the connection's background
  // reader. `cb` must not block for long; it may make calls. Use either then() or get(),
  // once.
  void then(std::function<void(Result<T>)> cb) {
    std::unique_lock lock(s_->mu);
    if (s_->result) {
      Result<T> r = std::move(*s_->result);
      lock.unlock();
      cb(std::move(r));
      return;
    }
    s_->callback = std::move(cb);
    auto waiter = s_->waiter;
    lock.unlock();
    if (waiter) waiter->WantCallback();
  }

 private:
  std::shared_ptr<State> s_;
};

struct NewKey {
  Row<fb::ApiKey> key;
  std::string secret;  // shown once
};

struct AppendResult {
  Row<fb::Message> message;
  Row<fb::Chat> chat;  // with the new totals
};

struct ExportChunk {
  std::vector<std::string> records;  // encoded records of the requested type
  std::string next_cursor;
};

struct OpStatus {
  std::string name;
  uint64_t calls = 0, errors = 0, p50_us = 0, p99_us = 0, max_us = 0;
};

struct ServerStatus {
  std::string version;
  int64_t uptime_ms = 0;
  std::string durability;
  std::vector<std::pair<std::string, uint64_t>> records;  // per record type
  uint64_t memory_rss_bytes = 0, arena_live_bytes = 0, arena_dead_bytes = 0;
  uint32_t connections = 0;
  uint64_t operations_served = 0, wal_syncs = 0;
  std::vector<OpStatus> ops;
  uint32_t memory_dim = 0;
  std::string memory_metric;
  uint64_t memory_global_indexed = 0, memory_global_pending = 0, memory_users_on_graph = 0;
};

class Client {
 public:
  // Dials `options.connections` connections and authenticates each.
  static Result<Client> Connect(const ClientOptions& options);

  // The same connections, with every call made for `user` (service keys only): the
  // server applies that user's rules.
  Client ActingAs(const Uuid& user) const;
  // The role the key authenticated as: "service", "admin" or "user".
  const std::string& role() const;

  Pending<ServerStatus> GetStatus();

  // tenants
  Pending<Row<fb::Tenant>> CreateTenant(const fb::TenantT& tenant);
  Pending<Row<fb::Tenant>> GetTenant(const Uuid& id);
  Pending<Row<fb::Tenant>> GetTenantBySlug(std::string_view slug);
  Pending<Row<fb::Tenant>> UpdateTenant(const Uuid& id, std::string_view patch,
                                        JsonMode mode = JsonMode::kMerge);
  Pending<Done> DeleteTenant(const Uuid& id, DeleteMode mode = DeleteMode::kSoft);
  Pending<Page<fb::Tenant>> ListTenants(const PageRequest& page = {});

  // users
  Pending<Row<fb::User>> CreateUser(const fb::UserT& user);
  Pending<Row<fb::User>> GetUser(const Uuid& id);
  Pending<Row<fb::User>> GetUserByEmail(std::string_view email);
  Pending<Row<fb::User>> UpdateUser(const Uuid& id, std::string_view patch,
                                    JsonMode mode = JsonMode::kMerge);
  Pending<Done> DeleteUser(const Uuid& id, DeleteMode mode = DeleteMode::kSoft);
  Pending<Page<fb::User>> ListUsers(const PageRequest& page = {});

  // agents
  Pending<Row<fb::Agent>> CreateAgent(const fb::AgentT& agent);
  Pending<Row<fb::Agent>> GetAgent(const Uuid& id);
  Pending<Row<fb::Agent>> UpdateAgent(const Uuid& id, std::string_view patch,
                                      JsonMode mode = JsonMode::kMerge);
  Pending<Done> DeleteAgent(const Uuid& id, DeleteMode mode = DeleteMode::kSoft);
  Pending<Page<fb::Agent>> ListAgents(const PageRequest& page = {});

  // user_agents
  Pending<Row<fb::UserAgent>> CreateUserAgent(const fb::UserAgentT& ua);
  Pending<Row<fb::UserAgent>> GetUserAgent(const Uuid& id);
  Pending<Row<fb::UserAgent>> GetUserAgentFor(const Uuid& user, const Uuid& agent);
  Pending<Row<fb::UserAgent>> UpdateUserAgent(const Uuid& id, std::string_view patch,
                                              JsonMode mode = JsonMode::kMerge);
  Pending<Done> DeleteUserAgent(const Uuid& id, DeleteMode mode = DeleteMode::kSoft);
  Pending<std::vector<Row<fb::UserAgent>>> ListUserAgents(const Uuid& user,
                                                          const UserAgentFilter& filter = {});

  // chats, messages, votes
  Pending<Row<fb::Chat>> CreateChat(const fb::ChatT& chat);
  Pending<Row<fb::Chat>> GetChat(const Uuid& id);
  Pending<Row<fb::Chat>> UpdateChat(const Uuid& id, std::string_view patch,
                                    JsonMode mode = JsonMode::kMerge);
  Pending<Done> DeleteChat(const Uuid& id, DeleteMode mode = DeleteMode::kSoft);
  Pending<Page<fb::Chat>> ListChats(const Uuid& user, const PageRequest& page = {});
  Pending<AppendResult> AppendMessage(const fb::MessageT& message);
  Pending<Row<fb::Message>> GetMessage(const Uuid& id);
  Pending<Page<fb::Message>> ListMessages(const Uuid& chat, const MessagePageRequest& page = {});
  Pending<Row<fb::Vote>> Vote(const Uuid& chat, const Uuid& message, bool is_upvoted);
  Pending<std::vector<Row<fb::Vote>>> ListVotes(const Uuid& chat);

  // admin_config
  Pending<Row<fb::AdminConfig>> PutAdminConfig(std::string_view key, std::string_view json);
  Pending<Row<fb::AdminConfig>> GetAdminConfig(std::string_view key);
  Pending<std::vector<Row<fb::AdminConfig>>> ListAdminConfig();
  Pending<Done> DeleteAdminConfig(std::string_view key);

  // api keys
  Pending<NewKey> CreateApiKey(const fb::ApiKeyT& key);
  Pending<std::vector<Row<fb::ApiKey>>> ListApiKeys();
  Pending<Done> RevokeApiKey(const Uuid& id);

  // user_memory (see Engine::SearchMemories for the search contract)
  Pending<Row<fb::UserMemory>> UpsertMemory(const fb::UserMemoryT& memory);
  Pending<Row<fb::UserMemory>> GetMemory(const Uuid& id, bool with_vector = false);
  Pending<Row<fb::UserMemory>> GetMemoryByKey(const Uuid& user, std::string_view key,
                                              bool with_vector = false);
  Pending<Done> DeleteMemory(const Uuid& id);
  Pending<std::vector<MemoryHit>> SearchMemories(const MemoryQuery& query);
  Pending<std::vector<MemoryHit>> HybridSearchMemories(const MemoryQuery& query);
  Pending<std::vector<MemoryHit>> GlobalSearchMemories(const MemoryQuery& query);
  // Returns how many memories were removed.
  Pending<uint64_t> PruneMemories(const Uuid& user, uint32_t keep);
  // usage accounting, quotas, rate limits (see Engine for each call's contract)
  Pending<TrackResult> TrackAgentUsage(const fb::UsageLogT& call, int32_t messages = 1);
  Pending<Row<fb::UserAgent>> RateAgent(const Uuid& user, const Uuid& agent, double rating,
                                        std::string_view review = {});
  Pending<Page<fb::UsageLog>> ListUsage(const UsageQuery& query = {});
  Pending<UsageSummary> SummarizeUsage(const UsageSummaryRequest& request);
  Pending<uint64_t> ExpireUsageLogs();
  // Saves the server's vector graphs now (service/admin), so a restart loads them.
  Pending<Done> SaveMemoryGraphs();
  // Writes the table image and the changed vector graphs now (service or admin).
  Pending<Done> SaveImage();
  Pending<Row<fb::Quota>> SetQuota(const fb::QuotaT& quota);
  Pending<std::vector<Row<fb::Quota>>> GetQuotas(const Uuid& tenant,
                                                 std::optional<fb::QuotaType> type = std::nullopt,
                                                 bool history = false);
  Pending<Row<fb::RateLimitConfig>> PutLimitConfig(const fb::RateLimitConfigT& config);
  Pending<std::vector<Row<fb::RateLimitConfig>>> ListLimitConfigs();
  Pending<Done> DeleteLimitConfig(const Uuid& id);
  Pending<LimitDecision> CheckLimits(const LimitCheckRequest& request);
  Pending<Done> ReleaseLimit(const Uuid& lease);

  // collections: declarations, records and patches as JSON text (Engine::DeclareCollection
  // and the calls after it have the contract; docs/protocol.md, Collections)
  Pending<std::string> DeclareCollection(std::string_view declaration);
  Pending<std::string> AlterCollection(std::string_view name, std::string_view change);
  Pending<std::string> DescribeCollection(std::string_view name);
  Pending<std::vector<std::string>> ListCollections();
  Pending<std::string> PutRecord(std::string_view collection, std::string_view record);
  // `key`: {"id": ...[, more key fields]} or a bare id.
  Pending<std::string> GetRecord(std::string_view collection, std::string_view key);
  Pending<std::string> UpdateRecord(std::string_view collection, std::string_view key,
                                    std::string_view patch, JsonMode mode = JsonMode::kMerge);
  Pending<Done> DeleteRecord(std::string_view collection, std::string_view key,
                             DeleteMode mode = DeleteMode::kSoft);
  Pending<CollectionPage> QueryRecords(const CollectionQuery& query);
  Pending<uint64_t> CountRecords(const CollectionQuery& query);
  Pending<uint64_t> SweepExpiredRecords();

  // operators
  Pending<ExportChunk> ExportRecords(RecordType type, std::string_view cursor = {},
                                     uint32_t limit = 500);
  Pending<Done> ImportRecord(RecordType type, std::string_view json);
  // Many records of one type in one request, applied all or nothing (Engine::ImportRecords);
  // `lines`, when given, numbers each record for the error message.
  Pending<Done> ImportRecords(RecordType type, std::span<const std::string> records,
                              std::span<const uint64_t> lines = {});
  // A collection's records in their stored form (JSON text), and their import
  // (Engine::ExportCollectionRecords / ImportCollectionRecords).
  Pending<ExportChunk> ExportCollectionRecords(std::string_view collection,
                                               std::string_view cursor = {}, uint32_t limit = 500);
  Pending<Done> ImportCollectionRecords(std::string_view collection,
                                        std::span<const std::string> records,
                                        std::span<const uint64_t> lines = {});
  // A consistent, online copy of the store into `dir` on the server's machine.
  Pending<Done> CreateBackup(std::string_view dir);

  // Any operation of the op table by its name, for tools that follow the table rather
  // than typed calls (agentctl). `args_type` names a member of the protocol's Args union
  // ("IdArgs", "agentstore.fb.User"; empty: none) and `args_json` is its value in
  // FlatBuffers JSON over net/schema/protocol.fbs (a Uuid is {"b":[16 bytes]}). Answers
  // the Response as FlatBuffers JSON; an error answer is the Status, as for typed calls.
  Pending<std::string> CallJson(std::string_view op, std::string_view args_type,
                                std::string_view args_json);
  // The schema CallJson follows: records.fbs, ops.fbs and protocol.fbs as one text.
  static std::string_view ProtocolSchema();

  // Change feed (feed_client.h): calls `on_change` for every change after sequence
  // `after` (nullopt: from now) that passes `filter`, in commit order, once each, on a
  // connection and thread of its own; resumes by itself across reconnects.
  Result<std::unique_ptr<FeedSubscription>> Subscribe(
      const SubscribeFilter& filter, std::optional<uint64_t> after,
      FeedSubscription::Callback on_change, FeedSubscription::EndCallback on_end = nullptr);

  struct Impl;

 private:
  Client(std::shared_ptr<Impl> impl, std::optional<Uuid> act_as);
  std::shared_ptr<Impl> impl_;
  std::optional<Uuid> act_as_;
};

}  // namespace agentstore
