// The request handlers, one per implemented operation, and the table that routes each
// protocol Op to its handler. An operation declared but not built answers
// not_implemented; one built but missing here fails to compile (see kHandlers).
#include "dispatch.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "agentstore/net/frame.h"
#include "protocol_generated.h"

namespace agentstore::net {
namespace {

using proto::Args;
using FbbOffset = flatbuffers::Offset<void>;

// Everything one handler needs. A handler returns a Status; on success it may have set
// a result with SetRecords / SetResult.
struct Call {
  Engine& engine;
  const Scope& scope;
  Session& session;
  const proto::Request* req;
  flatbuffers::FlatBufferBuilder& fbb;
  ServerCounters* server;
  const Dispatcher* dispatcher;
  proto::Result result_type = proto::Result::NONE;
  FbbOffset result;

  template <typename A>
  const A* Args() const {
    return req->args_type() == proto::ArgsTraits<A>::enum_value ? static_cast<const A*>(req->args())
                                                                : nullptr;
  }
  void SetResult(proto::Result type, FbbOffset off) {
    result_type = type;
    result = off;
  }
  flatbuffers::Offset<proto::Blob> Blob(std::string_view bytes) {
    // Records are 8-byte aligned inside the response so a client may read them in place.
    fbb.ForceVectorAlignment(bytes.size(), 1, 8);
    auto data = fbb.CreateVector(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    return proto::CreateBlob(fbb, data);
  }
  template <typename Rows>
  void SetRecords(const Rows& rows, std::string_view next_cursor = {}) {
    // Reused per thread: answering a read allocates nothing here in steady state.
    thread_local std::vector<flatbuffers::Offset<proto::Blob>> items;
    items.clear();
    for (const auto& r : rows) items.push_back(Blob(r.bytes()));
    auto vec = fbb.CreateVector(items);
    auto cursor = next_cursor.empty() ? 0 : fbb.CreateString(next_cursor);
    SetResult(proto::Result::Records, proto::CreateRecords(fbb, vec, cursor).Union());
  }
  template <typename T>
  void SetRecord(const Row<T>& row) {
    auto item = Blob(row.bytes());
    auto vec = fbb.CreateVector(&item, 1);
    SetResult(proto::Result::Records, proto::CreateRecords(fbb, vec).Union());
  }
};

Status ArgsError(const Call& c, const char* want) {
  return Status::InvalidArgument(std::string("operation ") +
                                 std::string(OperationOf(static_cast<Op>(c.req->op())).name) +
                                 " takes " + want);
}

Status NeedId(const fb::Uuid* id, const char* what) {
  if (!id) return Status::InvalidArgument(std::string(what) + " is required");
  return Status::OK();
}

PageRequest ToPage(const proto::PageArgs* a) {
  PageRequest p;
  p.limit = a->limit();
  p.cursor = a->cursor() ? a->cursor()->str() : "";
  p.include_deleted = a->include_deleted();
  return p;
}

DeleteMode ToMode(proto::DeleteMode m) {
  return m == proto::DeleteMode::hard ? DeleteMode::kHard : DeleteMode::kSoft;
}

// ---- answers within the byte budget ----

// How many of `rows` fit the answer budget, counted from the front (from the back for a
// page read from the end, whose rows come oldest first). At least 1.
template <typename Rows>
size_t RowsWithinBudget(const Rows& rows, size_t budget, bool from_back) {
  size_t total = 0, n = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    total += rows[from_back ? rows.size() - 1 - i : i].bytes().size() + 16;  // blob overhead
    if (total > budget) break;
    ++n;
  }
  return std::max<size_t>(n, 1);
}

// Runs `fetch(limit)` and, when its rows would not fit one answer, again with a limit
// that fits: the page is cut short and the engine's own cursor continues after it (a
// client asking for 1000 large messages gets as many as fit, never an unbounded answer).
template <typename Fetch>
auto FetchWithinBudget(const Call& c, uint32_t limit, bool from_end, Fetch fetch)
    -> decltype(fetch(limit)) {
  auto r = fetch(limit);
  if (!r.ok()) return r;
  size_t fit = RowsWithinBudget(r->rows, c.dispatcher->max_response_bytes(), from_end);
  if (fit < r->rows.size()) r = fetch(static_cast<uint32_t>(fit));
  return r;
}

// ---- generic handler shapes ----

template <typename Rec>
using CreateFn = Result<Row<Rec>> (Engine::*)(const Scope&, const typename Rec::NativeTableType&);
template <typename Rec>
Status DoCreate(Call& c, CreateFn<Rec> fn) {
  const Rec* a = c.Args<Rec>();
  if (!a) return ArgsError(c, "a record");
  typename Rec::NativeTableType obj;
  a->UnPackTo(&obj);
  auto r = (c.engine.*fn)(c.scope, obj);
  if (!r.ok()) return r.status();
  c.SetRecord(*r);
  return Status::OK();
}

template <typename Rec>
using GetFn = Result<Row<Rec>> (Engine::*)(const Scope&, const Uuid&);
template <typename Rec>
Status DoGet(Call& c, GetFn<Rec> fn) {
  const auto* a = c.Args<proto::IdArgs>();
  if (!a) return ArgsError(c, "IdArgs");
  AS_RETURN_IF_ERROR(NeedId(a->id(), "id"));
  auto r = (c.engine.*fn)(c.scope, ToUuid(a->id()));
  if (!r.ok()) return r.status();
  c.SetRecord(*r);
  return Status::OK();
}

template <typename Rec>
using UpdateFn = Result<Row<Rec>> (Engine::*)(const Scope&, const Uuid&, std::string_view,
                                              JsonMode);
template <typename Rec>
Status DoUpdate(Call& c, UpdateFn<Rec> fn) {
  const auto* a = c.Args<proto::PatchArgs>();
  if (!a) return ArgsError(c, "PatchArgs");
  AS_RETURN_IF_ERROR(NeedId(a->id(), "id"));
  if (!a->patch()) return Status::InvalidArgument("patch is required");
  auto r = (c.engine.*fn)(c.scope, ToUuid(a->id()), a->patch()->string_view(),
                          a->replace_json() ? JsonMode::kReplace : JsonMode::kMerge);
  if (!r.ok()) return r.status();
  c.SetRecord(*r);
  return Status::OK();
}

using DeleteFn = Status (Engine::*)(const Scope&, const Uuid&, DeleteMode);
Status DoDelete(Call& c, DeleteFn fn) {
  const auto* a = c.Args<proto::IdArgs>();
  if (!a) return ArgsError(c, "IdArgs");
  AS_RETURN_IF_ERROR(NeedId(a->id(), "id"));
  return (c.engine.*fn)(c.scope, ToUuid(a->id()), ToMode(a->mode()));
}

template <typename Rec>
using ListFn = Result<Page<Rec>> (Engine::*)(const Scope&, const PageRequest&);
template <typename Rec>
Status DoList(Call& c, ListFn<Rec> fn) {
  const auto* a = c.Args<proto::PageArgs>();
  PageRequest page = a ? ToPage(a) : PageRequest{};
  auto r = FetchWithinBudget(c, page.limit, false, [&](uint32_t limit) {
    page.limit = limit;
    return (c.engine.*fn)(c.scope, page);
  });
  if (!r.ok()) return r.status();
  c.SetRecords(r->rows, r->next_cursor);
  return Status::OK();
}

template <typename Rec>
Status SetRows(Call& c, Result<std::vector<Row<Rec>>> r) {
  if (!r.ok()) return r.status();
  c.SetRecords(*r);
  return Status::OK();
}

// ---- handlers: the primary template answers not_implemented ----

template <Op op>
Status Handle(Call& c) {
  return Status::NotImplemented(std::string(OperationOf(op).name) + " is not implemented yet");
}

template <>
Status Handle<Op::authenticate>(Call& c) {
  const auto* a = c.Args<proto::AuthArgs>();
  if (!a || !a->key()) return ArgsError(c, "AuthArgs with a key");
  auto key = c.engine.AuthenticateKey(a->key()->string_view());
  if (!key.ok()) return key.status();
  c.session.scope = key->scope;
  c.session.key_id = key->key_id;
  c.session.expires_at = key->expires_at;
  c.session.auth_epoch = key->epoch;
  const Scope* scope = &key->scope;
  const char* role = scope->is_service() ? "service" : scope->is_admin() ? "admin" : "user";
  auto role_off = c.fbb.CreateString(role);
  fb::Uuid user = ToFb(scope->user());
  c.SetResult(
      proto::Result::Authenticated,
      proto::CreateAuthenticated(c.fbb, role_off, scope->is_user() ? &user : nullptr).Union());
  return Status::OK();
}

// ---- change feed: subscribe answers where it starts; pushes follow (feed_push.cc) ----

// Why a connection may hold kMaxSubscriptionsPerConnection (frame.h, 1024): one push write
// carries the events of all of them, while spreading 1,000 subscribers over connections
// of 64 cost a share of a push write and of a client thread's wake-up per event, 25-38%
// of the 8 x 16 durable write rate (benchmarks/README.md "Session 12"). Each
// subscription's buffer is bounded on its own, their number by the feed
// (--feed-max-subscriptions).

template <>
Status Handle<Op::subscribe>(Call& c) {
  const auto* a = c.Args<proto::SubscribeArgs>();
  if (!a) return ArgsError(c, "SubscribeArgs");
  if (!c.session.feed_wake)
    return Status::NotImplemented("this connection cannot carry push frames");
  if (c.req->id() == 0)
    return Status::InvalidArgument("a subscription needs a non-zero request id");
  if (c.session.subscriptions.size() >= kMaxSubscriptionsPerConnection)
    return Status::ResourceExhausted("at most " + std::to_string(kMaxSubscriptionsPerConnection) +
                                     " subscriptions per connection");
  if (c.session.subscriptions.contains(c.req->id()))
    return Status::InvalidArgument("request id " + std::to_string(c.req->id()) +
                                   " already names a subscription on this connection");
  FeedFilter f;
  if (a->types())
    for (uint8_t t : *a->types()) {
      if (t == static_cast<uint8_t>(kCollectionRecordType)) {
        f.types |= kCollectionsBit;
        continue;
      }
      if (t >= 31)
        return Status::InvalidArgument("record type " + std::to_string(t) + " is unknown");
      f.types |= 1u << t;
    }
  if (a->collections())
    for (const auto* name : *a->collections()) f.collections.push_back(name->str());
  if (a->user()) f.user = ToUuid(a->user());
  if (a->tenant()) f.tenant = ToUuid(a->tenant());
  std::optional<uint64_t> after;
  if (!a->from_now()) after = a->after();
  std::optional<Uuid> key_id;
  if (!c.session.key_id.IsNil()) key_id = c.session.key_id;
  auto sub = c.engine.Subscribe(c.scope, f, after, key_id, c.session.FeedWakeFor(c.req->id()));
  if (!sub.ok()) return sub.status();
  c.session.subscriptions.emplace(c.req->id(), *sub);
  c.session.to_drain.push_back(c.req->id());
  auto info = c.engine.FeedInfo();
  // Its start, not resume_point(): the feed thread may have queued events already, and a
  // client taking a later sequence as its start drops those as seen.
  c.SetResult(proto::Result::FeedPosition,
              proto::CreateFeedPosition(c.fbb, (*sub)->start(), info.oldest, info.durable).Union());
  // Events may already wait (a resume from the past): let the connection push them.
  c.session.feed_wake();
  return Status::OK();
}

template <>
Status Handle<Op::unsubscribe>(Call& c) {
  const auto* a = c.Args<proto::UnsubscribeArgs>();
  if (!a) return ArgsError(c, "UnsubscribeArgs");
  if (auto it = c.session.subscriptions.find(a->subscription());
      it != c.session.subscriptions.end()) {
    it->second->Cancel();  // its end frame (with the resume point) follows what it had queued
    c.session.to_drain.push_back(it->first);
    if (c.session.feed_wake) c.session.feed_wake();
    return Status::OK();
  }
  return Status::NotFound("no subscription " + std::to_string(a->subscription()) +
                          " on this connection");
}

uint64_t RssBytes() {
  std::ifstream f("/proc/self/statm");
  uint64_t pages = 0, rss = 0;
  f >> pages >> rss;
  return rss * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

template <>
Status Handle<Op::status>(Call& c) {
  if (c.scope.confined())
    return Status::PermissionDenied("status counts every tenant: not for tenant-scoped keys");
  EngineStats s = c.engine.Stats();
  auto& fbb = c.fbb;
  std::vector<flatbuffers::Offset<proto::Counter>> records;
  for (int t = 1; t <= static_cast<int>(kLastRecordType); ++t)
    records.push_back(proto::CreateCounter(
        fbb, fbb.CreateString(RecordTypeName(static_cast<RecordType>(t))), s.records[t]));
  std::vector<flatbuffers::Offset<proto::OpStat>> ops;
  for (const auto& info : Operations()) {
    const OpCounters& oc = c.dispatcher->counters(info.op);
    if (oc.calls.load() == 0) continue;
    ops.push_back(proto::CreateOpStat(fbb, fbb.CreateString(info.name), oc.calls.load(),
                                      oc.errors.load(), oc.latency.Quantile(0.5),
                                      oc.latency.Quantile(0.99), oc.latency.max()));
  }
  Engine::MemoryIndexStats mem = c.engine.MemoryStats();
  auto metric = fbb.CreateString(mem.metric);
  auto version = fbb.CreateString(AGENTSTORE_VERSION);
  auto durability = fbb.CreateString(storage::DurabilityName(c.engine.durability()));
  auto rec = fbb.CreateVector(records);
  auto opv = fbb.CreateVector(ops);
  auto uptime = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now() - c.server->started)
                    .count();
  proto::StatusInfoBuilder b(fbb);
  b.add_version(version);
  b.add_uptime_ms(uptime);
  b.add_durability(durability);
  b.add_records(rec);
  b.add_memory_rss_bytes(RssBytes());
  b.add_arena_live_bytes(s.arena_live_bytes);
  b.add_arena_dead_bytes(s.arena_dead_bytes);
  b.add_connections(static_cast<uint32_t>(c.server->connections_open.load()));
  b.add_operations_served(c.server->requests.load());
  b.add_wal_syncs(s.wal_syncs);
  b.add_ops(opv);
  b.add_memory_dim(mem.dim);
  b.add_memory_metric(metric);
  b.add_memory_global_indexed(mem.global_indexed);
  b.add_memory_global_pending(mem.global_pending);
  b.add_memory_users_on_graph(mem.users_on_graph);
  c.SetResult(proto::Result::StatusInfo, b.Finish().Union());
  return Status::OK();
}

// tenants
template <>
Status Handle<Op::tenant_create>(Call& c) {
  return DoCreate<fb::Tenant>(c, &Engine::CreateTenant);
}
template <>
Status Handle<Op::tenant_get>(Call& c) {
  if (const auto* k = c.Args<proto::KeyArgs>()) {
    if (!k->key()) return Status::InvalidArgument("key is required");
    auto r = c.engine.GetTenantBySlug(c.scope, k->key()->string_view());
    if (!r.ok()) return r.status();
    c.SetRecord(*r);
    return Status::OK();
  }
  return DoGet<fb::Tenant>(c, &Engine::GetTenant);
}
template <>
Status Handle<Op::tenant_update>(Call& c) {
  return DoUpdate<fb::Tenant>(c, &Engine::UpdateTenant);
}
template <>
Status Handle<Op::tenant_delete>(Call& c) {
  return DoDelete(c, &Engine::DeleteTenant);
}
template <>
Status Handle<Op::tenant_list>(Call& c) {
  return DoList<fb::Tenant>(c, &Engine::ListTenants);
}

// users
template <>
Status Handle<Op::user_create>(Call& c) {
  return DoCreate<fb::User>(c, &Engine::CreateUser);
}
template <>
Status Handle<Op::user_get>(Call& c) {
  if (const auto* k = c.Args<proto::KeyArgs>()) {
    if (!k->key()) return Status::InvalidArgument("key is required");
    auto r = c.engine.GetUserByEmail(c.scope, k->key()->string_view());
    if (!r.ok()) return r.status();
    c.SetRecord(*r);
    return Status::OK();
  }
  return DoGet<fb::User>(c, &Engine::GetUser);
}
template <>
Status Handle<Op::user_update>(Call& c) {
  return DoUpdate<fb::User>(c, &Engine::UpdateUser);
}
template <>
Status Handle<Op::user_delete>(Call& c) {
  return DoDelete(c, &Engine::DeleteUser);
}
template <>
Status Handle<Op::user_list>(Call& c) {
  return DoList<fb::User>(c, &Engine::ListUsers);
}

// agents
template <>
Status Handle<Op::agent_create>(Call& c) {
  return DoCreate<fb::Agent>(c, &Engine::CreateAgent);
}
template <>
Status Handle<Op::agent_get>(Call& c) {
  return DoGet<fb::Agent>(c, &Engine::GetAgent);
}
template <>
Status Handle<Op::agent_update>(Call& c) {
  return DoUpdate<fb::Agent>(c, &Engine::UpdateAgent);
}
template <>
Status Handle<Op::agent_delete>(Call& c) {
  return DoDelete(c, &Engine::DeleteAgent);
}
template <>
Status Handle<Op::agent_list>(Call& c) {
  return DoList<fb::Agent>(c, &Engine::ListAgents);
}

// user_agents
template <>
Status Handle<Op::user_agent_create>(Call& c) {
  return DoCreate<fb::UserAgent>(c, &Engine::CreateUserAgent);
}
template <>
Status Handle<Op::user_agent_get>(Call& c) {
  if (const auto* p = c.Args<proto::PairArgs>()) {
    AS_RETURN_IF_ERROR(NeedId(p->a(), "user (a)"));
    AS_RETURN_IF_ERROR(NeedId(p->b(), "agent (b)"));
    auto r = c.engine.GetUserAgentFor(c.scope, ToUuid(p->a()), ToUuid(p->b()));
    if (!r.ok()) return r.status();
    c.SetRecord(*r);
    return Status::OK();
  }
  return DoGet<fb::UserAgent>(c, &Engine::GetUserAgent);
}
template <>
Status Handle<Op::user_agent_update>(Call& c) {
  return DoUpdate<fb::UserAgent>(c, &Engine::UpdateUserAgent);
}
template <>
Status Handle<Op::user_agent_delete>(Call& c) {
  return DoDelete(c, &Engine::DeleteUserAgent);
}
template <>
Status Handle<Op::user_agent_list>(Call& c) {
  const auto* a = c.Args<proto::UserAgentListArgs>();
  if (!a) return ArgsError(c, "UserAgentListArgs");
  AS_RETURN_IF_ERROR(NeedId(a->user(), "user"));
  UserAgentFilter f;
  if (a->folder()) f.folder = a->folder()->str();
  if (a->tag()) f.tag = a->tag()->str();
  if (a->favorite()) f.favorite = *a->favorite();
  f.archived = a->archived();
  return SetRows(c, c.engine.ListUserAgents(c.scope, ToUuid(a->user()), f));
}

// chats, messages, votes
template <>
Status Handle<Op::chat_create>(Call& c) {
  return DoCreate<fb::Chat>(c, &Engine::CreateChat);
}
template <>
Status Handle<Op::chat_get>(Call& c) {
  return DoGet<fb::Chat>(c, &Engine::GetChat);
}
template <>
Status Handle<Op::chat_update>(Call& c) {
  return DoUpdate<fb::Chat>(c, &Engine::UpdateChat);
}
template <>
Status Handle<Op::chat_delete>(Call& c) {
  return DoDelete(c, &Engine::DeleteChat);
}
template <>
Status Handle<Op::chat_list>(Call& c) {
  const auto* a = c.Args<proto::PageArgs>();
  if (!a) return ArgsError(c, "PageArgs");
  AS_RETURN_IF_ERROR(NeedId(a->owner(), "owner (the user)"));
  PageRequest page = ToPage(a);
  auto r = FetchWithinBudget(c, page.limit, false, [&](uint32_t limit) {
    page.limit = limit;
    return c.engine.ListChats(c.scope, ToUuid(a->owner()), page);
  });
  if (!r.ok()) return r.status();
  c.SetRecords(r->rows, r->next_cursor);
  return Status::OK();
}
template <>
Status Handle<Op::message_append>(Call& c) {
  const auto* a = c.Args<fb::Message>();
  if (!a) return ArgsError(c, "a Message");
  fb::MessageT m;
  a->UnPackTo(&m);
  Row<fb::Chat> chat;
  auto r = c.engine.AppendMessage(c.scope, m, &chat);
  if (!r.ok()) return r.status();
  // The message, then its chat with the new totals.
  std::vector<std::string_view> both = {r->bytes(), chat.bytes()};
  std::vector<flatbuffers::Offset<proto::Blob>> items = {c.Blob(both[0]), c.Blob(both[1])};
  auto vec = c.fbb.CreateVector(items);
  c.SetResult(proto::Result::Records, proto::CreateRecords(c.fbb, vec).Union());
  return Status::OK();
}
template <>
Status Handle<Op::message_get>(Call& c) {
  return DoGet<fb::Message>(c, &Engine::GetMessage);
}
template <>
Status Handle<Op::message_list>(Call& c) {
  const auto* a = c.Args<proto::PageArgs>();
  if (!a) return ArgsError(c, "PageArgs");
  AS_RETURN_IF_ERROR(NeedId(a->owner(), "owner (the chat)"));
  MessagePageRequest p;
  p.limit = a->limit();
  p.cursor = a->cursor() ? a->cursor()->str() : "";
  p.from_end = a->from_end();
  auto r = FetchWithinBudget(c, p.limit, p.from_end, [&](uint32_t limit) {
    p.limit = limit;
    return c.engine.ListMessages(c.scope, ToUuid(a->owner()), p);
  });
  if (!r.ok()) return r.status();
  c.SetRecords(r->rows, r->next_cursor);
  return Status::OK();
}
template <>
Status Handle<Op::vote_put>(Call& c) {
  const auto* a = c.Args<proto::PairArgs>();
  if (!a) return ArgsError(c, "PairArgs (chat, message, up)");
  AS_RETURN_IF_ERROR(NeedId(a->a(), "chat (a)"));
  AS_RETURN_IF_ERROR(NeedId(a->b(), "message (b)"));
  auto r = c.engine.Vote(c.scope, ToUuid(a->a()), ToUuid(a->b()), a->flag());
  if (!r.ok()) return r.status();
  c.SetRecord(*r);
  return Status::OK();
}
template <>
Status Handle<Op::vote_list>(Call& c) {
  const auto* a = c.Args<proto::IdArgs>();
  if (!a) return ArgsError(c, "IdArgs (the chat)");
  AS_RETURN_IF_ERROR(NeedId(a->id(), "id"));
  return SetRows(c, c.engine.ListVotes(c.scope, ToUuid(a->id())));
}

// admin_config
template <>
Status Handle<Op::admin_config_put>(Call& c) {
  const auto* a = c.Args<proto::ConfigArgs>();
  if (!a || !a->key() || !a->data()) return ArgsError(c, "ConfigArgs with key and data");
  auto r = c.engine.PutAdminConfig(c.scope, a->key()->string_view(), a->data()->string_view());
  if (!r.ok()) return r.status();
  c.SetRecord(*r);
  return Status::OK();
}
template <>
Status Handle<Op::admin_config_get>(Call& c) {
  const auto* a = c.Args<proto::KeyArgs>();
  if (!a || !a->key()) return ArgsError(c, "KeyArgs");
  auto r = c.engine.GetAdminConfig(c.scope, a->key()->string_view());
  if (!r.ok()) return r.status();
  c.SetRecord(*r);
  return Status::OK();
}
template <>
Status Handle<Op::admin_config_list>(Call& c) {
  return SetRows(c, c.engine.ListAdminConfig(c.scope));
}
template <>
Status Handle<Op::admin_config_delete>(Call& c) {
  const auto* a = c.Args<proto::KeyArgs>();
  if (!a || !a->key()) return ArgsError(c, "KeyArgs");
  return c.engine.DeleteAdminConfig(c.scope, a->key()->string_view());
}

// api keys
template <>
Status Handle<Op::key_create>(Call& c) {
  const auto* a = c.Args<fb::ApiKey>();
  if (!a) return ArgsError(c, "an ApiKey");
  fb::ApiKeyT k;
  a->UnPackTo(&k);
  auto r = c.engine.CreateApiKey(c.scope, k);
  if (!r.ok()) return r.status();
  auto blob = c.Blob(r->key.bytes());
  auto secret = c.fbb.CreateString(r->secret);
  c.SetResult(proto::Result::NewKey, proto::CreateNewKey(c.fbb, blob, secret).Union());
  return Status::OK();
}
template <>
Status Handle<Op::key_list>(Call& c) {
  return SetRows(c, c.engine.ListApiKeys(c.scope));
}
template <>
Status Handle<Op::key_revoke>(Call& c) {
  const auto* a = c.Args<proto::IdArgs>();
  if (!a) return ArgsError(c, "IdArgs");
  AS_RETURN_IF_ERROR(NeedId(a->id(), "id"));
  return c.engine.RevokeApiKey(c.scope, ToUuid(a->id()));
}

// export / import / backup
template <>
Status Handle<Op::record_export>(Call& c) {
  const auto* a = c.Args<proto::ExportArgs>();
  if (!a || !a->type() == !a->collection())
    return ArgsError(c, "ExportArgs with either a type or a collection");
  std::string_view after = a->cursor() ? a->cursor()->string_view() : "";
  Result<Engine::ExportPage> r = Status::OK();
  if (a->collection()) {
    r = c.engine.ExportCollectionRecords(c.scope, a->collection()->string_view(), after, a->limit(),
                                         c.dispatcher->max_response_bytes());
  } else {
    auto type = RecordTypeFromName(a->type()->string_view());
    if (!type) return Status::InvalidArgument("unknown record type '" + a->type()->str() + "'");
    r = c.engine.ExportRecords(c.scope, *type, after, a->limit(),
                               c.dispatcher->max_response_bytes());
  }
  if (!r.ok()) return r.status();
  std::vector<flatbuffers::Offset<proto::Blob>> items;
  for (const auto& rec : r->records) items.push_back(c.Blob(rec));
  auto vec = c.fbb.CreateVector(items);
  auto cursor = r->next_cursor.empty() ? 0 : c.fbb.CreateString(r->next_cursor);
  c.SetResult(proto::Result::Records, proto::CreateRecords(c.fbb, vec, cursor).Union());
  return Status::OK();
}
template <>
Status Handle<Op::record_import>(Call& c) {
  const auto* a = c.Args<proto::ImportArgs>();
  if (!a || !a->type() == !a->collection() || (!a->json() == !a->records()))
    return ArgsError(c, "ImportArgs with a type or a collection, and either json or records");
  std::optional<RecordType> type;
  if (a->type()) {
    type = RecordTypeFromName(a->type()->string_view());
    if (!type) return Status::InvalidArgument("unknown record type '" + a->type()->str() + "'");
  }
  if (a->json()) {
    std::string_view one = a->json()->string_view();
    if (a->collection())
      return c.engine.ImportCollectionRecords(c.scope, a->collection()->string_view(),
                                              std::span<const std::string_view>(&one, 1));
    return c.engine.ImportRecord(c.scope, *type, one);
  }
  if (a->records()->size() > kMaxImportBatch)
    return Status::InvalidArgument("an import batch holds at most " +
                                   std::to_string(kMaxImportBatch) + " records");
  std::vector<std::string_view> records;
  records.reserve(a->records()->size());
  for (const auto* r : *a->records()) records.push_back(r ? r->string_view() : "");
  std::span<const uint64_t> lines;
  if (a->lines()) lines = {a->lines()->data(), a->lines()->size()};
  if (a->collection())
    return c.engine.ImportCollectionRecords(c.scope, a->collection()->string_view(), records,
                                            lines);
  return c.engine.ImportRecords(c.scope, *type, records, lines);
}
template <>
Status Handle<Op::backup_create>(Call& c) {
  if (c.scope.is_user()) return Status::PermissionDenied("backups need a service or admin key");
  // A checkpoint copies every tenant's data: never for a tenant-scoped key.
  if (c.scope.confined())
    return Status::PermissionDenied("a backup holds every tenant: not for tenant-scoped keys");
  const auto* a = c.Args<proto::BackupArgs>();
  if (!a || !a->dir() || a->dir()->size() == 0) return ArgsError(c, "BackupArgs with a dir");
  // Named here rather than as RocksDB's mkdir error (issue 13).
  std::filesystem::path dir(a->dir()->str());
  std::error_code ec;
  if (!dir.is_absolute()) return Status::InvalidArgument("backup dir must be an absolute path");
  if (!std::filesystem::is_directory(dir.parent_path(), ec))
    return Status::InvalidArgument("cannot back up into " + dir.string() +
                                   ": its parent directory does not exist");
  if (std::filesystem::exists(dir, ec))
    return Status::AlreadyExists("cannot back up into " + dir.string() + ": it exists already");
  return c.engine.Checkpoint(a->dir()->str());
}

// ---- usage accounting, quotas, rate limits ----
template <>
Status Handle<Op::track_agent_usage>(Call& c) {
  const auto* a = c.Args<proto::TrackUsageArgs>();
  if (!a || !a->call()) return ArgsError(c, "TrackUsageArgs with a call");
  fb::UsageLogT call;
  a->call()->UnPackTo(&call);
  auto r = c.engine.TrackAgentUsage(c.scope, call, a->messages());
  if (!r.ok()) return r.status();
  // The user_agent with its new counters, the log, then the tenant's quotas.
  std::vector<flatbuffers::Offset<proto::Blob>> items = {c.Blob(r->user_agent.bytes()),
                                                         c.Blob(r->log.bytes())};
  for (const auto& q : r->quotas) items.push_back(c.Blob(q.bytes()));
  auto vec = c.fbb.CreateVector(items);
  c.SetResult(proto::Result::Records, proto::CreateRecords(c.fbb, vec).Union());
  return Status::OK();
}
template <>
Status Handle<Op::rate_agent>(Call& c) {
  const auto* a = c.Args<proto::RateAgentArgs>();
  if (!a) return ArgsError(c, "RateAgentArgs");
  AS_RETURN_IF_ERROR(NeedId(a->user(), "user"));
  AS_RETURN_IF_ERROR(NeedId(a->agent(), "agent"));
  auto r = c.engine.RateAgent(c.scope, ToUuid(a->user()), ToUuid(a->agent()), a->rating(),
                              a->review() ? a->review()->string_view() : std::string_view());
  if (!r.ok()) return r.status();
  c.SetRecord(*r);
  return Status::OK();
}
template <>
Status Handle<Op::usage_list>(Call& c) {
  const auto* a = c.Args<proto::UsageListArgs>();
  if (!a) return ArgsError(c, "UsageListArgs");
  UsageQuery q;
  if (a->user()) q.user = ToUuid(a->user());
  if (a->agent_type() != -1) {
    if (a->agent_type() < 0 || a->agent_type() > static_cast<int8_t>(fb::AgentType::MAX))
      return Status::InvalidArgument("unknown agent_type " + std::to_string(a->agent_type()));
    q.agent_type = static_cast<fb::AgentType>(a->agent_type());
  }
  q.from = a->from();
  q.to = a->to();
  q.limit = a->limit();
  if (a->cursor()) q.cursor = a->cursor()->str();
  auto r = FetchWithinBudget(c, q.limit, false, [&](uint32_t limit) {
    q.limit = limit;
    return c.engine.ListUsage(c.scope, q);
  });
  if (!r.ok()) return r.status();
  c.SetRecords(r->rows, r->next_cursor);
  return Status::OK();
}
template <>
Status Handle<Op::usage_summary>(Call& c) {
  const auto* a = c.Args<proto::UsageSummaryArgs>();
  if (!a) return ArgsError(c, "UsageSummaryArgs");
  if (a->owner() > proto::SummaryOwner::MAX) return Status::InvalidArgument("unknown owner");
  if (a->bucket() > proto::SummaryBucket::MAX) return Status::InvalidArgument("unknown bucket");
  if (a->group() > proto::SummaryGroup::MAX) return Status::InvalidArgument("unknown group");
  UsageSummaryRequest req;
  req.owner = static_cast<SummaryOwner>(a->owner());
  if (req.owner != SummaryOwner::kEveryone)
    AS_RETURN_IF_ERROR(NeedId(a->id(), "id (the user or tenant)"));
  if (a->id()) req.id = ToUuid(a->id());
  req.from = a->from();
  req.to = a->to();
  req.bucket = static_cast<SummaryBucket>(a->bucket());
  req.group = static_cast<SummaryGroup>(a->group());
  auto r = c.engine.SummarizeUsage(c.scope, req);
  if (!r.ok()) return r.status();
  std::vector<flatbuffers::Offset<proto::SummaryRow>> rows;
  for (const auto& row : r->rows) {
    const UsageTotals& t = row.totals;
    rows.push_back(proto::CreateSummaryRow(
        c.fbb, row.period_start, c.fbb.CreateString(row.group), t.requests, t.success_count,
        t.error_count, t.input_tokens, t.output_tokens, t.total_tokens, t.input_cost, t.output_cost,
        t.total_cost, t.duration_ms));
  }
  auto vec = c.fbb.CreateVector(rows);
  c.SetResult(proto::Result::UsageSummaryResult,
              proto::CreateUsageSummaryResult(c.fbb, vec).Union());
  return Status::OK();
}
template <>
Status Handle<Op::quota_set>(Call& c) {
  const auto* a = c.Args<fb::Quota>();
  if (!a) return ArgsError(c, "a Quota");
  fb::QuotaT q;
  a->UnPackTo(&q);
  auto r = c.engine.SetQuota(c.scope, q);
  if (!r.ok()) return r.status();
  c.SetRecord(*r);
  return Status::OK();
}
template <>
Status Handle<Op::quota_get>(Call& c) {
  const auto* a = c.Args<proto::QuotaGetArgs>();
  if (!a) return ArgsError(c, "QuotaGetArgs");
  AS_RETURN_IF_ERROR(NeedId(a->tenant(), "tenant"));
  std::optional<fb::QuotaType> type;
  if (a->quota_type() != -1) {
    if (a->quota_type() < 0 || a->quota_type() > static_cast<int8_t>(fb::QuotaType::MAX))
      return Status::InvalidArgument("unknown quota_type " + std::to_string(a->quota_type()));
    type = static_cast<fb::QuotaType>(a->quota_type());
  }
  return SetRows(c, c.engine.GetQuotas(c.scope, ToUuid(a->tenant()), type, a->history()));
}
template <>
Status Handle<Op::limit_config_put>(Call& c) {
  const auto* a = c.Args<fb::RateLimitConfig>();
  if (!a) return ArgsError(c, "a RateLimitConfig");
  fb::RateLimitConfigT cfg;
  a->UnPackTo(&cfg);
  auto r = c.engine.PutLimitConfig(c.scope, cfg);
  if (!r.ok()) return r.status();
  c.SetRecord(*r);
  return Status::OK();
}
template <>
Status Handle<Op::limit_config_list>(Call& c) {
  return SetRows(c, c.engine.ListLimitConfigs(c.scope));
}
template <>
Status Handle<Op::limit_check>(Call& c) {
  const auto* a = c.Args<proto::LimitCheckArgs>();
  if (!a) return ArgsError(c, "LimitCheckArgs");
  AS_RETURN_IF_ERROR(NeedId(a->user(), "user"));
  LimitCheckRequest req;
  req.user = ToUuid(a->user());
  if (a->agent()) req.agent = ToUuid(a->agent());
  if (a->tenant()) req.tenant = ToUuid(a->tenant());
  auto r = c.engine.CheckLimits(c.scope, req);
  if (!r.ok()) return r.status();
  fb::Uuid denied = ToFb(r->denied_by.value_or(Uuid()));
  fb::Uuid lease = ToFb(r->lease.value_or(Uuid()));
  auto type = r->denied_type.empty() ? 0 : c.fbb.CreateString(r->denied_type);
  proto::LimitAnswerBuilder b(c.fbb);
  b.add_allowed(r->allowed);
  b.add_remaining(r->remaining);
  b.add_reset_at(r->reset_at);
  if (r->denied_by) b.add_denied_by(&denied);
  if (!r->denied_type.empty()) b.add_denied_type(type);
  if (r->lease) b.add_lease(&lease);
  c.SetResult(proto::Result::LimitAnswer, b.Finish().Union());
  return Status::OK();
}
template <>
Status Handle<Op::limit_release>(Call& c) {
  const auto* a = c.Args<proto::IdArgs>();
  if (!a) return ArgsError(c, "IdArgs (the lease)");
  AS_RETURN_IF_ERROR(NeedId(a->id(), "id"));
  return c.engine.ReleaseLimit(c.scope, ToUuid(a->id()));
}
template <>
Status Handle<Op::limit_config_delete>(Call& c) {
  const auto* a = c.Args<proto::IdArgs>();
  if (!a) return ArgsError(c, "IdArgs");
  AS_RETURN_IF_ERROR(NeedId(a->id(), "id"));
  return c.engine.DeleteLimitConfig(c.scope, ToUuid(a->id()));
}
template <>
Status Handle<Op::usage_expire>(Call& c) {
  auto r = c.engine.ExpireUsageLogs(c.scope);
  if (!r.ok()) return r.status();
  c.SetResult(proto::Result::CountResult, proto::CreateCountResult(c.fbb, *r).Union());
  return Status::OK();
}

// user_memory
template <>
Status Handle<Op::memory_graphs_save>(Call& c) {
  return c.engine.SaveMemoryGraphs(c.scope);
}
template <>
Status Handle<Op::image_save>(Call& c) {
  return c.engine.SaveImage(c.scope);
}
Status SetHits(Call& c, Result<std::vector<MemoryHit>> r) {
  if (!r.ok()) return r.status();
  std::vector<flatbuffers::Offset<proto::Blob>> items;
  std::vector<float> distances;
  std::vector<double> scores;
  for (const auto& h : *r) {
    items.push_back(c.Blob(h.memory.bytes()));
    distances.push_back(h.distance);
    scores.push_back(h.score);
  }
  auto iv = c.fbb.CreateVector(items);
  auto dv = c.fbb.CreateVector(distances);
  auto sv = c.fbb.CreateVector(scores);
  c.SetResult(proto::Result::MemoryHits, proto::CreateMemoryHits(c.fbb, iv, dv, sv).Union());
  return Status::OK();
}
Status ToQuery(const Call& c, bool need_user, MemoryQuery* q) {
  const auto* a = c.Args<proto::MemorySearchArgs>();
  if (!a) return ArgsError(c, "MemorySearchArgs");
  if (need_user) AS_RETURN_IF_ERROR(NeedId(a->user(), "user"));
  if (a->user()) q->user = ToUuid(a->user());
  if (!a->vector()) return Status::InvalidArgument("vector is required");
  q->vector.assign(a->vector()->begin(), a->vector()->end());
  if (a->text()) q->text = a->text()->str();
  q->k = a->k();
  if (a->memory_type()) {
    auto t = *a->memory_type();
    if (t < fb::MemoryType::MIN || t > fb::MemoryType::MAX)
      return Status::InvalidArgument("unknown memory_type " + std::to_string(static_cast<int>(t)));
    q->memory_type = t;
  }
  if (a->min_importance()) {
    double m = *a->min_importance();
    if (!(m >= 0.0 && m <= 1.0)) return Status::InvalidArgument("min_importance must be in [0, 1]");
    q->min_importance = m;
  }
  if (a->tags())
    for (const auto* t : *a->tags()) q->tags.push_back(t ? t->str() : "");
  q->touch = a->touch();
  q->with_vectors = a->with_vectors();
  q->breadth = a->breadth();
  if (q->breadth > 100000) return Status::InvalidArgument("breadth must be <= 100000");
  return Status::OK();
}
template <>
Status Handle<Op::memory_upsert>(Call& c) {
  return DoCreate<fb::UserMemory>(c, &Engine::UpsertMemory);
}
template <>
Status Handle<Op::memory_get>(Call& c) {
  const auto* a = c.Args<proto::MemoryGetArgs>();
  if (!a) return ArgsError(c, "MemoryGetArgs");
  Result<Row<fb::UserMemory>> r =
      Status::InvalidArgument("memory_get needs an id, or a user and a key");
  if (a->id())
    r = c.engine.GetMemory(c.scope, ToUuid(a->id()), a->with_vector());
  else if (a->user() && a->key())
    r = c.engine.GetMemoryByKey(c.scope, ToUuid(a->user()), a->key()->string_view(),
                                a->with_vector());
  if (!r.ok()) return r.status();
  c.SetRecord(*r);
  return Status::OK();
}
template <>
Status Handle<Op::memory_delete>(Call& c) {
  const auto* a = c.Args<proto::IdArgs>();
  if (!a) return ArgsError(c, "IdArgs");
  AS_RETURN_IF_ERROR(NeedId(a->id(), "id"));
  return c.engine.DeleteMemory(c.scope, ToUuid(a->id()));
}
template <>
Status Handle<Op::memory_search>(Call& c) {
  MemoryQuery q;
  AS_RETURN_IF_ERROR(ToQuery(c, /*need_user=*/true, &q));
  return SetHits(c, c.engine.SearchMemories(c.scope, q));
}
template <>
Status Handle<Op::memory_hybrid_search>(Call& c) {
  MemoryQuery q;
  AS_RETURN_IF_ERROR(ToQuery(c, /*need_user=*/true, &q));
  return SetHits(c, c.engine.HybridSearchMemories(c.scope, q));
}
template <>
Status Handle<Op::memory_global_search>(Call& c) {
  MemoryQuery q;
  AS_RETURN_IF_ERROR(ToQuery(c, /*need_user=*/false, &q));
  return SetHits(c, c.engine.GlobalSearchMemories(c.scope, q));
}
template <>
Status Handle<Op::memory_prune>(Call& c) {
  const auto* a = c.Args<proto::MemoryPruneArgs>();
  if (!a) return ArgsError(c, "MemoryPruneArgs");
  AS_RETURN_IF_ERROR(NeedId(a->user(), "user"));
  auto r = c.engine.PruneMemories(c.scope, ToUuid(a->user()), a->keep());
  if (!r.ok()) return r.status();
  c.SetResult(proto::Result::CountResult, proto::CreateCountResult(c.fbb, *r).Union());
  return Status::OK();
}
// ---- collections: records and declarations travel as JSON text ----

std::string_view Text(const flatbuffers::String* s) { return s ? s->string_view() : ""; }

Status SetJson(Call& c, const std::vector<std::string>& items, std::string_view next_cursor = {}) {
  auto vec = c.fbb.CreateVectorOfStrings(items);
  auto cursor = next_cursor.empty() ? 0 : c.fbb.CreateString(next_cursor);
  c.SetResult(proto::Result::JsonRecords, proto::CreateJsonRecords(c.fbb, vec, cursor).Union());
  return Status::OK();
}
Status SetJson(Call& c, Result<std::string> r) {
  if (!r.ok()) return r.status();
  return SetJson(c, std::vector<std::string>{std::move(r).value()});
}
Status CollArgs(const Call& c, const proto::CollectionArgs** a, bool need_collection = true) {
  *a = c.Args<proto::CollectionArgs>();
  if (!*a) return ArgsError(c, "CollectionArgs");
  if (need_collection && !(*a)->collection())
    return Status::InvalidArgument("collection is required");
  return Status::OK();
}
Status CollQuery(const Call& c, CollectionQuery* q) {
  const auto* a = c.Args<proto::CollectionQueryArgs>();
  if (!a) return ArgsError(c, "CollectionQueryArgs");
  if (!a->collection()) return Status::InvalidArgument("collection is required");
  q->collection = a->collection()->str();
  q->index = Text(a->index());
  q->where = a->where() ? a->where()->str() : "{}";
  q->desc = a->desc();
  q->limit = a->limit();
  q->cursor = Text(a->cursor());
  q->include_deleted = a->include_deleted();
  return Status::OK();
}

template <>
Status Handle<Op::coll_declare>(Call& c) {
  const proto::CollectionArgs* a;
  AS_RETURN_IF_ERROR(CollArgs(c, &a, /*need_collection=*/false));
  return SetJson(c, c.engine.DeclareCollection(c.scope, Text(a->json())));
}
template <>
Status Handle<Op::coll_alter>(Call& c) {
  const proto::CollectionArgs* a;
  AS_RETURN_IF_ERROR(CollArgs(c, &a));
  return SetJson(c, c.engine.AlterCollection(c.scope, Text(a->collection()), Text(a->json())));
}
template <>
Status Handle<Op::coll_describe>(Call& c) {
  const proto::CollectionArgs* a;
  AS_RETURN_IF_ERROR(CollArgs(c, &a));
  return SetJson(c, c.engine.DescribeCollection(c.scope, Text(a->collection())));
}
template <>
Status Handle<Op::coll_list>(Call& c) {
  auto r = c.engine.ListCollections(c.scope);
  if (!r.ok()) return r.status();
  return SetJson(c, *r);
}
template <>
Status Handle<Op::coll_put>(Call& c) {
  const proto::CollectionArgs* a;
  AS_RETURN_IF_ERROR(CollArgs(c, &a));
  return SetJson(c, c.engine.PutRecord(c.scope, Text(a->collection()), Text(a->json())));
}
template <>
Status Handle<Op::coll_get>(Call& c) {
  const proto::CollectionArgs* a;
  AS_RETURN_IF_ERROR(CollArgs(c, &a));
  return SetJson(c, c.engine.GetRecord(c.scope, Text(a->collection()), Text(a->key())));
}
template <>
Status Handle<Op::coll_update>(Call& c) {
  const proto::CollectionArgs* a;
  AS_RETURN_IF_ERROR(CollArgs(c, &a));
  return SetJson(
      c, c.engine.UpdateRecord(c.scope, Text(a->collection()), Text(a->key()), Text(a->json()),
                               a->replace_json() ? JsonMode::kReplace : JsonMode::kMerge));
}
template <>
Status Handle<Op::coll_delete>(Call& c) {
  const proto::CollectionArgs* a;
  AS_RETURN_IF_ERROR(CollArgs(c, &a));
  return c.engine.DeleteRecord(c.scope, Text(a->collection()), Text(a->key()), ToMode(a->mode()));
}
template <>
Status Handle<Op::coll_query>(Call& c) {
  CollectionQuery q;
  AS_RETURN_IF_ERROR(CollQuery(c, &q));
  auto r = c.engine.QueryRecords(c.scope, q, c.dispatcher->max_response_bytes());
  if (!r.ok()) return r.status();
  return SetJson(c, r->records, r->next_cursor);
}
template <>
Status Handle<Op::coll_count>(Call& c) {
  CollectionQuery q;
  AS_RETURN_IF_ERROR(CollQuery(c, &q));
  auto r = c.engine.CountRecords(c.scope, q);
  if (!r.ok()) return r.status();
  c.SetResult(proto::Result::CountResult, proto::CreateCountResult(c.fbb, *r).Union());
  return Status::OK();
}
template <>
Status Handle<Op::coll_sweep>(Call& c) {
  auto r = c.engine.SweepExpiredRecords(c.scope);
  if (!r.ok()) return r.status();
  c.SetResult(proto::Result::CountResult, proto::CreateCountResult(c.fbb, *r).Union());
  return Status::OK();
}

using HandlerFn = Status (*)(Call&);
constexpr HandlerFn kHandlers[] = {
#define AS_HANDLER(name, kind, roles, implemented, summary) &Handle<Op::name>,
    AGENTSTORE_OPERATIONS(AS_HANDLER)
#undef AS_HANDLER
};
static_assert(std::size(kHandlers) == kOperationCount);

bool RoleAllowed(const OperationInfo& info, const Scope& scope) {
  uint8_t bit = scope.is_service() ? kService : scope.is_admin() ? kAdmin : kUser;
  return (info.roles & bit) != 0;
}

}  // namespace

Dispatcher::Dispatcher(Engine* engine, ServerCounters* counters, uint32_t slow_op_us)
    : engine_(engine),
      auth_epoch_(&engine->auth_epoch()),
      server_(counters),
      slow_op_us_(slow_op_us) {}

void Dispatcher::EncodeError(uint64_t id, const Status& status,
                             flatbuffers::FlatBufferBuilder& out) {
  out.Clear();
  auto msg = out.CreateString(status.message());
  out.Finish(proto::CreateResponse(out, id, static_cast<proto::ErrorCode>(status.code()), msg));
}

uint64_t Dispatcher::Handle(Session& session, const uint8_t* data, size_t size,
                            flatbuffers::FlatBufferBuilder& out) {
  auto start = std::chrono::steady_clock::now();
  server_->requests.fetch_add(1, std::memory_order_relaxed);
  flatbuffers::Verifier verifier(data, size, /*max_depth=*/32, /*max_tables=*/100000);
  if (!verifier.VerifyBuffer<proto::Request>(nullptr)) {
    server_->errors.fetch_add(1, std::memory_order_relaxed);
    EncodeError(0, Status::InvalidArgument("malformed request: not a valid Request FlatBuffer"),
                out);
    return 0;
  }
  const auto* req = flatbuffers::GetRoot<proto::Request>(data);
  auto op_index = static_cast<size_t>(req->op());
  if (op_index >= kOperationCount) {
    server_->errors.fetch_add(1, std::memory_order_relaxed);
    EncodeError(req->id(), Status::InvalidArgument("unknown operation " + std::to_string(op_index)),
                out);
    return 0;
  }
  const OperationInfo& info = Operations()[op_index];
  Status status;
  uint64_t ticket = 0;
  std::optional<Scope> acting;
  out.Clear();
  proto::Result result_type = proto::Result::NONE;
  FbbOffset result;
  if (info.op != Op::authenticate && session.scope &&
      (auth_epoch_->load(std::memory_order_acquire) != session.auth_epoch ||
       (session.expires_at != 0 && engine_->NowMicros() >= session.expires_at))) {
    // Rights may have changed since the key was checked: check it again. Costs one atomic
    // load per request while nothing changes (and a clock read for expiring keys).
    auto again = engine_->RecheckKey(session.key_id);
    if (again.ok()) {
      session.scope = again->scope;
      session.expires_at = again->expires_at;
      session.auth_epoch = again->epoch;
    } else {
      session.scope.reset();
      status = Status::PermissionDenied(
          "the API key was revoked or expired, or its user deleted: authenticate again");
    }
  }
  if (!status.ok()) {
    // the session just lost its key
  } else if (info.op != Op::authenticate && !session.scope) {
    status = Status::PermissionDenied("authenticate first");
  } else if (info.op != Op::authenticate && req->act_as()) {
    auto as = engine_->ActAs(*session.scope, ToUuid(req->act_as()));
    if (as.ok())
      acting = *as;
    else
      status = as.status();
  }
  if (status.ok()) {
    // Before authentication only `authenticate` runs, and it ignores the scope.
    static const Scope kNobody = Scope::ForUser(Uuid());
    const Scope& scope = acting ? *acting : session.scope ? *session.scope : kNobody;
    if (info.op != Op::authenticate && !RoleAllowed(info, scope)) {
      status = Status::PermissionDenied(std::string(info.name) + " is not allowed for this key");
    } else {
      Call c{*engine_, scope, session, req, out, server_, this, proto::Result::NONE, {}};
      // Nothing below is expected to throw (the engine reports Status); an exception
      // from a dependency (allocation, a library) still must not take down an I/O thread.
      try {
        if (info.kind == OpKind::kWrite) {
          DeferDurability defer;
          status = kHandlers[op_index](c);
          ticket = defer.ticket();
        } else {
          status = kHandlers[op_index](c);
        }
      } catch (const std::exception& e) {
        spdlog::error("{} threw: {}", info.name, e.what());
        status = Status::Unavailable(std::string("internal error in ") + std::string(info.name));
        ticket = 0;
      }
      result_type = c.result_type;
      result = c.result;
    }
  }
  OpCounters& oc = ops_[op_index];
  oc.calls.fetch_add(1, std::memory_order_relaxed);
  if (!status.ok()) {
    oc.errors.fetch_add(1, std::memory_order_relaxed);
    server_->errors.fetch_add(1, std::memory_order_relaxed);
    EncodeError(req->id(), status, out);
  } else {
    proto::ResponseBuilder b(out);
    b.add_id(req->id());
    if (result_type != proto::Result::NONE) {
      b.add_result_type(result_type);
      b.add_result(result);
    }
    out.Finish(b.Finish());
  }
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                                  start)
                .count();
  oc.latency.Record(static_cast<uint64_t>(us));
  if (static_cast<uint64_t>(us) > slow_op_us_)
    spdlog::warn("slow operation: {} took {} us ({})", info.name, us, status.ToString());
  return ticket;
}

}  // namespace agentstore::net
