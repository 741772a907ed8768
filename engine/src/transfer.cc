// Export and import: moving records out and back in their exact form (agentctl export /
// import). Export reads RocksDB in key order; import validates like a create but keeps
// the record's own timestamps and counters, and maintains every index.
#include <functional>
#include <set>
#include <unordered_set>
#include <variant>

#include "agentstore/common/record_json.h"
#include "engine_impl.h"

namespace agentstore {

using namespace internal;  // NOLINT

namespace {

// A memory as RocksDB holds it, with what searches' touches recorded since (kept in
// memory and under the memory's touch key): access_count and last_accessed_at.
std::string WithTouches(EngineState& st, std::string_view stored) {
  std::string_view v = AlignedCopy(stored);
  const auto* rec = flatbuffers::GetRoot<fb::UserMemory>(v.data());
  if (!rec->id() || !rec->user_id()) return std::string(stored);
  Partition& shard = st.ShardOf(ToUuid(rec->user_id()));
  std::shared_lock lock(shard.mu);
  auto it = shard.memories.find(ToUuid(rec->id()));
  if (it == shard.memories.end()) return std::string(stored);
  const auto* live = View<fb::UserMemory>(shard, it->second);
  if (live->access_count() == rec->access_count() &&
      live->last_accessed_at() == rec->last_accessed_at())
    return std::string(stored);
  fb::UserMemoryT m;
  rec->UnPackTo(&m);
  m.access_count = live->access_count();
  m.last_accessed_at = live->last_accessed_at();
  return Pack(m);
}

}  // namespace

Result<Engine::ExportPage> Engine::ExportRecords(const Scope& scope, RecordType type,
                                                 std::string_view cursor, uint32_t limit,
                                                 size_t max_bytes) {
  if (scope.is_user()) return Status::PermissionDenied("export needs a service or admin key");
  // Export and import move whole stores (every tenant); a tenant-scoped key may do neither.
  if (scope.confined())
    return Status::PermissionDenied("export covers every tenant: not for tenant-scoped keys");
  AS_RETURN_IF_ERROR(CheckLimit(limit));
  std::string prefix = KeyPrefix(type);
  std::string after;
  if (!cursor.empty()) {
    // The cursor is the hex of the last key returned.
    if (cursor.size() % 2) return Status::InvalidArgument("malformed cursor");
    for (size_t i = 0; i < cursor.size(); i += 2) {
      int v = 0;
      for (int j = 0; j < 2; ++j) {
        char c = cursor[i + j];
        int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
        if (d < 0) return Status::InvalidArgument("malformed cursor");
        v = v * 16 + d;
      }
      after.push_back(static_cast<char>(v));
    }
    if (after.empty() || after[0] != prefix[0]) return Status::InvalidArgument("malformed cursor");
  }
  ExportPage page;
  std::string last;
  bool more = false;
  size_t page_bytes = 0;
  if (max_bytes == 0) max_bytes = SIZE_MAX;
  Status s = impl_->store->Scan(
      prefix,
      [&](std::string_view k, std::string_view v) {
        // A page ends at `limit` records or before the record that would take it past
        // `max_bytes` (but holds at least one): 1,000 large messages must not become one
        // answer of a gigabyte.
        // Each record costs its bytes plus ~16 of framing in the answer (as the
        // dispatcher's budget for listings counts it); a memory's touches are added to
        // its bytes before it is counted.
        constexpr size_t kFraming = 16;
        if (page.records.size() == limit) {
          more = true;
          return Status::Unavailable("page full");  // stops the scan
        }
        std::string rec = type == RecordType::kUserMemory ? WithTouches(*impl_, v) : std::string(v);
        if (!page.records.empty() && page_bytes + rec.size() + kFraming > max_bytes) {
          more = true;
          return Status::Unavailable("page full");
        }
        page_bytes += rec.size() + kFraming;
        page.records.push_back(std::move(rec));
        last.assign(k);
        return Status::OK();
      },
      after);
  if (!s.ok() && !more) return s;
  if (more) {
    static constexpr char kHex[] = "0123456789abcdef";
    for (unsigned char c : last) {
      page.next_cursor.push_back(kHex[c >> 4]);
      page.next_cursor.push_back(kHex[c & 15]);
    }
  }
  return page;
}

namespace {

// One record of an import batch as phase 1 leaves it: parsed, defaulted and checked on
// its own, before any lock (so two batches parse in parallel and the locks are held only
// for the store's checks and the writes).
using Incoming = std::variant<fb::TenantT, fb::UserT, fb::AgentT, fb::UserAgentT, fb::ChatT,
                              fb::MessageT, fb::VoteT, fb::AdminConfigT, fb::ApiKeyT, fb::UsageLogT,
                              EngineState::MemoryImport>;

// One import batch in the making. Every check of the batch runs before anything is
// applied, so a batch is all or nothing: `staged` lets a record see the records before
// it in the same batch (an id given twice), `chats` the chat totals the batch's messages
// and usage logs have added to so far, `steps` holds the memory changes to make, in
// order, once the batch's one WriteBatch is logged.
struct Staging {
  // A memory change: most are "append these staged bytes to the shard's arena and index
  // them" (a function pointer and the bytes in `staged`, no copy and no allocation per
  // record); the rare others are a closure.
  using IndexFn = void (*)(EngineState&, Partition&, Loc);
  struct Step {
    IndexFn index = nullptr;
    Partition* shard = nullptr;
    const std::string* bytes = nullptr;
    std::function<void()> other;
  };

  explicit Staging(size_t records) {
    staged.reserve(records);
    steps.reserve(records);
  }

  storage::WriteBatch batch;
  // RocksDB key -> bytes. A node's string never moves, so steps point at it.
  std::unordered_map<std::string, std::string> staged;
  std::unordered_set<std::string> emails, slugs;       // unique keys claimed by the batch
  std::set<std::pair<Uuid, Uuid>> pairs;               // (user, agent) of new user_agents
  std::set<std::pair<Uuid, std::string>> memory_keys;  // (user, memory_key) of new memories
  // Chats whose totals the batch changes, unpacked once and written once at the end.
  struct ChatTotals {
    Partition* shard;
    fb::ChatT chat;
    std::string bytes;  // packed by FinishChats
  };
  std::unordered_map<Uuid, ChatTotals, UuidHash> chats;
  std::vector<Step> steps;

  // The record under `key` as the batch so far leaves it: staged, else `stored`.
  std::optional<std::string_view> Existing(const std::string& key,
                                           std::optional<std::string_view> stored) const {
    auto it = staged.find(key);
    if (it != staged.end()) return std::string_view(it->second);
    return stored;
  }
  // Stages `bytes` under `key` unless an identical record is there; on success `*fresh`
  // (when not null) points at the staged bytes, which the caller must index.
  Status PutIfNew(std::string key, std::string bytes, std::optional<std::string_view> existing,
                  const std::string** fresh) {
    *fresh = nullptr;
    if (existing) {
      if (*existing == bytes) return Status::OK();
      return Status::AlreadyExists("a different record with this id exists");
    }
    batch.Put(key, bytes);
    *fresh = &staged.emplace(std::move(key), std::move(bytes)).first->second;
    return Status::OK();
  }
  // After the batch is logged: append `bytes` to `shard`'s arena and index it there.
  void Index(Partition& shard, const std::string* bytes, IndexFn fn) {
    steps.push_back(Step{fn, &shard, bytes, {}});
  }
  void Then(std::function<void()> f) {
    steps.push_back(Step{nullptr, nullptr, nullptr, std::move(f)});
  }
  void Apply(EngineState& st) {
    for (auto& step : steps) {
      if (step.index)
        step.index(st, *step.shard, step.shard->arena.Append(*step.bytes));
      else
        step.other();
    }
  }
  // The chat's totals as the batch so far leaves them (caller holds the shard lock).
  fb::ChatT& Totals(Partition& shard, const Uuid& id, Loc loc) {
    auto it = chats.find(id);
    if (it == chats.end()) {
      it = chats.emplace(id, ChatTotals{&shard, {}, {}}).first;
      View<fb::Chat>(shard, loc)->UnPackTo(&it->second.chat);
    }
    return it->second.chat;
  }
  // Writes each chat whose totals changed, once.
  void FinishChats() {
    for (auto& [id, t] : chats) {
      t.bytes = Pack(t.chat);
      batch.Put(RecordKey(RecordType::kChat, id), t.bytes);
      Index(*t.shard, &t.bytes, [](EngineState&, Partition& shard, Loc loc) {
        auto it = shard.chats.find(ToUuid(View<fb::Chat>(shard, loc)->id()));
        shard.arena.Free(it->second);
        it->second = loc;
      });
    }
  }
};

// The batch holds the global partition and every shard exclusively (in the fixed order:
// global, then shards by index), so nothing it checked can change before it is applied.
// Import is a bulk restore; a batch holds them for milliseconds.
struct LockEverything {
  explicit LockEverything(EngineState& st) : global(st.global.mu) {
    for (auto& s : st.shards) shards.emplace_back(s->mu);
  }
  std::unique_lock<std::shared_mutex> global;
  std::vector<std::unique_lock<std::shared_mutex>> shards;
};

// InOtherShard without its locks (the batch holds them all).
bool InOtherShardLocked(const EngineState& st, IdMap Partition::*table, const Uuid& id,
                        size_t own) {
  return st.InOtherShard(table, id, own, /*locked=*/true);
}

Result<Json> ParseJson(std::string_view json) {
  AS_RETURN_IF_ERROR(CheckJsonDepth("record", json));
  auto j = Json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::InvalidArgument("not valid JSON");
  return j;
}

std::optional<std::string_view> At(const Partition& p, const IdMap& m, const Uuid& id) {
  auto it = m.find(id);
  if (it == m.end()) return std::nullopt;
  return p.arena.Get(it->second);
}

// A hand-written record gets what a create would give it: store-maintained times the
// record lacks come from the stored copy (so re-importing the same file is a no-op) or
// are set to now; updated_at defaults to created_at. (Times in range need no re-check.)
template <typename NT>
void DefaultTimes(NT& r, std::optional<std::string_view> existing, int64_t now) {
  using T = typename NT::TableType;
  const T* have = existing ? flatbuffers::GetRoot<T>(existing->data()) : nullptr;
  if constexpr (requires { r.created_at; }) {
    if (r.created_at == 0) r.created_at = have ? have->created_at() : now;
  }
  if constexpr (requires { r.added_at; }) {
    if (r.added_at == 0) r.added_at = have ? have->added_at() : r.created_at;
  }
  if constexpr (requires { r.updated_at; }) {
    if (r.updated_at == 0) {
      if constexpr (requires { r.created_at; })
        r.updated_at = have ? have->updated_at() : r.created_at;
      else
        r.updated_at = have ? have->updated_at() : now;
    }
  }
}

Status AddTotals(fb::ChatT& c, int64_t messages, int64_t in, int64_t out, int64_t cost) {
  if (__builtin_add_overflow(c.message_count, messages, &c.message_count) ||
      __builtin_add_overflow(c.total_input_tokens, in, &c.total_input_tokens) ||
      __builtin_add_overflow(c.total_output_tokens, out, &c.total_output_tokens) ||
      __builtin_add_overflow(c.total_cost, cost, &c.total_cost))
    return Status::InvalidArgument("the chat's totals would overflow");
  return Status::OK();
}

Status NeedId(const std::unique_ptr<fb::Uuid>& ptr, const char* what) {
  if (!ptr) return Status::InvalidArgument(std::string(what) + " is required");
  return Status::OK();
}

// Phase 1, no locks: parses one record of a built-in type, fills the defaults a create
// gives that need nothing from the store, and checks it on its own.
Status Prepare(const EngineState& st, RecordType type, std::string_view json, int64_t now,
               Incoming* out) {
  const FieldContext ctx = st.Ctx();
  // Every field read is checked as it is read, the rest once the defaults are in.
  auto parse = [&]<typename NT>(NT& r, auto&& defaults) -> Status {
    AS_ASSIGN_OR_RETURN(Json j, ParseJson(json));
    return RecordFromJsonChecked(r, j, ctx, defaults);
  };
  switch (type) {
    case RecordType::kTenant:
      return parse(out->emplace<fb::TenantT>(), [](fb::TenantT& t) { return NeedId(t.id, "id"); });
    case RecordType::kUser:
      return parse(out->emplace<fb::UserT>(), [](fb::UserT& u) {
        AS_RETURN_IF_ERROR(NeedId(u.id, "id"));
        AS_RETURN_IF_ERROR(CheckEmail(u.email));
        DefaultJson(u.preferences, "{}");
        DefaultJson(u.notification_settings, kDefaultUserNotifications);
        return Status::OK();
      });
    case RecordType::kAgent:
      return parse(out->emplace<fb::AgentT>(), [](fb::AgentT& a) {
        AS_RETURN_IF_ERROR(NeedId(a.id, "id"));
        DefaultJson(a.capabilities, "{}");
        return Status::OK();
      });
    case RecordType::kUserAgent:
      return parse(out->emplace<fb::UserAgentT>(), [](fb::UserAgentT& ua) {
        AS_RETURN_IF_ERROR(NeedId(ua.id, "id"));
        AS_RETURN_IF_ERROR(NeedId(ua.user_id, "user_id"));
        AS_RETURN_IF_ERROR(NeedId(ua.agent_id, "agent_id"));
        DefaultUserAgent(ua);  // the defaults of user_agent_create
        return Status::OK();
      });
    case RecordType::kChat:
      return parse(out->emplace<fb::ChatT>(), [](fb::ChatT& c) {
        AS_RETURN_IF_ERROR(NeedId(c.id, "id"));
        return NeedId(c.user_id, "user_id");
      });
    case RecordType::kMessage:
      return parse(out->emplace<fb::MessageT>(), [](fb::MessageT& m) {
        AS_RETURN_IF_ERROR(NeedId(m.id, "id"));
        AS_RETURN_IF_ERROR(NeedId(m.chat_id, "chat_id"));
        AS_RETURN_IF_ERROR(NeedId(m.user_id, "user_id"));
        DefaultJson(m.parts, "[]");
        return Status::OK();
      });
    case RecordType::kVote:
      return parse(out->emplace<fb::VoteT>(), [](fb::VoteT& v) {
        AS_RETURN_IF_ERROR(NeedId(v.chat_id, "chat_id"));
        AS_RETURN_IF_ERROR(NeedId(v.message_id, "message_id"));
        return NeedId(v.user_id, "user_id");
      });
    case RecordType::kAdminConfig:
      return parse(out->emplace<fb::AdminConfigT>(), [](fb::AdminConfigT& c) {
        if (c.config_key.empty()) return Status::InvalidArgument("config_key is required");
        DefaultJson(c.config_data, "{}");
        return Status::OK();
      });
    case RecordType::kApiKey:
      return parse(out->emplace<fb::ApiKeyT>(), [](fb::ApiKeyT& k) {
        AS_RETURN_IF_ERROR(NeedId(k.id, "id"));
        if (k.secret_hash.size() != 32)
          return Status::InvalidArgument("secret_hash must be 32 bytes");
        return Status::OK();
      });
    case RecordType::kUsageLog:
      // Restored exactly as exported (no defaults), as usage_logs always were.
      return parse(out->emplace<fb::UsageLogT>(), [](fb::UsageLogT& l) {
        if (!l.id || !l.user_id) return Status::InvalidArgument("id and user_id are required");
        return Status::OK();
      });
    case RecordType::kUserMemory: {
      fb::UserMemoryT m;
      AS_ASSIGN_OR_RETURN(Json j, ParseJson(json));
      AS_RETURN_IF_ERROR(RecordFromJson(m, j, ctx));
      return st.PrepareMemoryImport(std::move(m), now, &out->emplace<EngineState::MemoryImport>());
    }
    default:
      return Status::NotImplemented(std::string(RecordTypeName(type)) +
                                    ": no batched import (one record per request)");
  }
}

// Phase 1, no locks: the bytes of the records whose bytes depend on nothing in the store
// (usage logs, and messages that carry their created_at, as every exported one does), so
// the batch's serialized section (phase 2, under every partition's lock) does not pack
// them. Others are packed in phase 2 (`*out` stays empty).
void Prepack(RecordType type, const Incoming& in, std::string* out) {
  if (type == RecordType::kMessage) {
    const auto& m = std::get<fb::MessageT>(in);
    if (m.created_at != 0) *out = Pack(m);  // DefaultTimes would change nothing
  } else if (type == RecordType::kUsageLog) {
    *out = Pack(std::get<fb::UsageLogT>(in));
  }
}

// Phase 2: checks one prepared record against the store and the batch so far, and
// stages its writes and memory changes (caller holds LockEverything). Changes nothing
// in the store or in memory.
Status Stage(EngineState& st, Staging& b, RecordType type, Incoming& in, std::string& packed,
             int64_t now) {
  Partition& g = st.global;
  const std::string* fresh = nullptr;
  std::string bytes;
  switch (type) {
    case RecordType::kTenant: {
      auto& t = std::get<fb::TenantT>(in);
      Uuid id = ToUuid(t.id.get());
      std::string key = RecordKey(type, id);
      auto existing = b.Existing(key, At(g, g.tenants, id));
      if (!existing && (g.tenant_by_slug.count(t.slug) || b.slugs.count(t.slug)))
        return Status::AlreadyExists("slug is taken");
      DefaultTimes(t, existing, now);
      bytes = Pack(t);
      AS_RETURN_IF_ERROR(b.PutIfNew(std::move(key), std::move(bytes), existing, &fresh));
      if (fresh) {
        b.slugs.insert(t.slug);
        b.Index(g, fresh, [](EngineState& st, Partition&, Loc loc) { st.IndexTenant(loc); });
      }
      return Status::OK();
    }
    case RecordType::kUser: {
      auto& u = std::get<fb::UserT>(in);
      Uuid id = ToUuid(u.id.get());
      Partition& shard = st.ShardOf(id);
      std::string key = RecordKey(type, id);
      auto existing = b.Existing(key, At(shard, shard.users, id));
      std::string email = LowerAscii(u.email);
      if (!existing && (g.user_by_email.count(email) || b.emails.count(email)))
        return Status::AlreadyExists("email is taken");
      if (u.tenant_id && !g.tenants.count(ToUuid(u.tenant_id.get())))
        return MissingRef("tenant_id", "tenant");
      DefaultTimes(u, existing, now);
      bytes = Pack(u);
      AS_RETURN_IF_ERROR(b.PutIfNew(std::move(key), std::move(bytes), existing, &fresh));
      if (fresh) {
        b.emails.insert(std::move(email));
        b.Index(shard, fresh, [](EngineState& st, Partition& p, Loc loc) { st.IndexUser(p, loc); });
      }
      return Status::OK();
    }
    case RecordType::kAgent: {
      auto& a = std::get<fb::AgentT>(in);
      Uuid id = ToUuid(a.id.get());
      std::string key = RecordKey(type, id);
      auto existing = b.Existing(key, At(g, g.agents, id));
      DefaultTimes(a, existing, now);
      bytes = Pack(a);
      AS_RETURN_IF_ERROR(b.PutIfNew(std::move(key), std::move(bytes), existing, &fresh));
      if (fresh)
        b.Index(g, fresh, [](EngineState& st, Partition&, Loc loc) { st.IndexAgent(loc); });
      return Status::OK();
    }
    case RecordType::kUserAgent: {
      auto& ua = std::get<fb::UserAgentT>(in);
      Uuid id = ToUuid(ua.id.get()), user = ToUuid(ua.user_id.get()),
           agent = ToUuid(ua.agent_id.get());
      Partition& shard = st.ShardOf(user);
      std::string key = RecordKey(type, id);
      if (InOtherShardLocked(st, &Partition::user_agents, id, st.ShardIndex(user)))
        return Status::AlreadyExists("user_agent id is in use");
      if (!shard.users.count(user)) return MissingRef("user_id", "user");
      if (!g.agents.count(agent)) return MissingRef("agent_id", "agent");
      auto existing = b.Existing(key, At(shard, shard.user_agents, id));
      if (!existing &&
          (shard.user_agent_by_pair.count({user, agent}) || b.pairs.count({user, agent})))
        return Status::AlreadyExists("this user already has this agent");
      // Derived: the chats with this agent that are in the store (chats import after
      // user_agents, and each adds one).
      ua.conversation_count = CountConversations(shard, user, agent);
      DefaultTimes(ua, existing, now);
      bytes = Pack(ua);
      AS_RETURN_IF_ERROR(b.PutIfNew(std::move(key), std::move(bytes), existing, &fresh));
      if (fresh) {
        b.pairs.insert({user, agent});
        b.Index(shard, fresh,
                [](EngineState& st, Partition& p, Loc loc) { st.IndexUserAgent(p, loc); });
      }
      return Status::OK();
    }
    case RecordType::kChat: {
      auto& c = std::get<fb::ChatT>(in);
      Uuid id = ToUuid(c.id.get()), user = ToUuid(c.user_id.get());
      Partition& shard = st.ShardOf(user);
      if (InOtherShardLocked(st, &Partition::chats, id, st.ShardIndex(user)))
        return Status::AlreadyExists("chat id is in use");
      if (!shard.users.count(user)) return MissingRef("user_id", "user");
      std::string key = RecordKey(type, id);
      auto existing = b.Existing(key, At(shard, shard.chats, id));
      // Derived: the totals are what the chat's messages and usage logs in the store add
      // up to (messages and logs import after their chat, and each adds itself).
      ChatTotalsFromRecords(shard, id, &c);
      DefaultTimes(c, existing, now);
      bytes = Pack(c);
      AS_RETURN_IF_ERROR(b.PutIfNew(std::move(key), std::move(bytes), existing, &fresh));
      if (!fresh) return Status::OK();
      b.Index(shard, fresh, [](EngineState& st, Partition& p, Loc loc) { st.IndexChat(p, loc); });
      // A new chat is one more conversation of the user's user_agent for its agent (as
      // the batch so far left that user_agent).
      if (!c.agent_id) return Status::OK();
      auto pair = shard.user_agent_by_pair.find({user, ToUuid(c.agent_id.get())});
      if (pair == shard.user_agent_by_pair.end()) return Status::OK();
      Uuid ua_id = pair->second;
      std::string ua_key = RecordKey(RecordType::kUserAgent, ua_id);
      auto ua_bytes = b.Existing(ua_key, At(shard, shard.user_agents, ua_id));
      if (!ua_bytes) return Status::OK();
      fb::UserAgentT ua;
      flatbuffers::GetRoot<fb::UserAgent>(ua_bytes->data())->UnPackTo(&ua);
      ua.conversation_count += 1;
      UserAgentRewrite w{ua_id, Pack(ua)};
      b.batch.Put(ua_key, w.bytes);
      b.staged[ua_key] = w.bytes;
      b.Then([&shard, w] { ApplyUserAgentRewrite(shard, w); });
      return Status::OK();
    }
    case RecordType::kMessage: {
      auto& m = std::get<fb::MessageT>(in);
      Uuid id = ToUuid(m.id.get()), chat = ToUuid(m.chat_id.get()), user = ToUuid(m.user_id.get());
      Partition& shard = st.ShardOf(user);
      if (InOtherShardLocked(st, &Partition::messages, id, st.ShardIndex(user)))
        return Status::AlreadyExists("message id is in use");
      auto c = shard.chats.find(chat);
      if (c == shard.chats.end() || ToUuid(View<fb::Chat>(shard, c->second)->user_id()) != user)
        return MissingRef("chat_id", "chat of this user");
      std::string key = RecordKey(type, id);
      auto existing = b.Existing(key, At(shard, shard.messages, id));
      if (packed.empty()) {
        DefaultTimes(m, existing, now);
        bytes = Pack(m);
      } else {
        bytes = std::move(packed);
      }
      AS_RETURN_IF_ERROR(b.PutIfNew(std::move(key), std::move(bytes), existing, &fresh));
      if (!fresh) return Status::OK();
      // A new message adds itself to its chat's totals (as the batch so far left them).
      AS_RETURN_IF_ERROR(
          AddTotals(b.Totals(shard, chat, c->second), 1, m.input_tokens, m.output_tokens, m.cost));
      b.Index(shard, fresh, [](EngineState& st, Partition& p, Loc loc) {
        st.IndexMessage(p, loc, /*keep_sorted=*/true);
      });
      return Status::OK();
    }
    case RecordType::kVote: {
      auto& v = std::get<fb::VoteT>(in);
      Uuid chat = ToUuid(v.chat_id.get()), msg = ToUuid(v.message_id.get());
      Partition& shard = st.ShardOf(ToUuid(v.user_id.get()));
      auto m = shard.messages.find(msg);
      if (!shard.chats.count(chat) || m == shard.messages.end() ||
          ToUuid(View<fb::Message>(shard, m->second)->chat_id()) != chat)
        return MissingRef("vote", "message of this chat");
      std::optional<std::string_view> stored;
      if (auto ci = shard.chat_index.find(chat); ci != shard.chat_index.end())
        if (auto it = ci->second.votes.find(msg); it != ci->second.votes.end())
          stored = shard.arena.Get(it->second);
      std::string key = VoteKey(chat, msg);
      auto existing = b.Existing(key, stored);
      DefaultTimes(v, existing, now);
      bytes = Pack(v);
      AS_RETURN_IF_ERROR(b.PutIfNew(std::move(key), std::move(bytes), existing, &fresh));
      if (fresh)
        b.Index(shard, fresh, [](EngineState& st, Partition& p, Loc loc) { st.IndexVote(p, loc); });
      return Status::OK();
    }
    case RecordType::kAdminConfig: {
      auto& c = std::get<fb::AdminConfigT>(in);
      std::optional<std::string_view> stored;
      if (auto it = g.admin_config.find(c.config_key); it != g.admin_config.end())
        stored = g.arena.Get(it->second);
      std::string key = AdminConfigKey(c.config_key);
      auto existing = b.Existing(key, stored);
      DefaultTimes(c, existing, now);
      bytes = Pack(c);
      AS_RETURN_IF_ERROR(b.PutIfNew(std::move(key), std::move(bytes), existing, &fresh));
      if (fresh)
        b.Index(g, fresh, [](EngineState&, Partition& g, Loc loc) {
          g.admin_config[std::string(Str(View<fb::AdminConfig>(g, loc)->config_key()))] = loc;
        });
      return Status::OK();
    }
    case RecordType::kApiKey: {
      auto& k = std::get<fb::ApiKeyT>(in);
      Uuid id = ToUuid(k.id.get());
      if (k.user_id && !st.ShardOf(ToUuid(k.user_id.get())).users.count(ToUuid(k.user_id.get())))
        return MissingRef("user_id", "user");
      std::string key = RecordKey(type, id);
      auto existing = b.Existing(key, At(g, g.api_keys, id));
      DefaultTimes(k, existing, now);
      bytes = Pack(k);
      AS_RETURN_IF_ERROR(b.PutIfNew(std::move(key), std::move(bytes), existing, &fresh));
      if (fresh)
        b.Index(g, fresh, [](EngineState& st, Partition&, Loc loc) { st.IndexApiKey(loc); });
      return Status::OK();
    }
    case RecordType::kUsageLog: {
      auto& l = std::get<fb::UsageLogT>(in);
      Uuid id = ToUuid(l.id.get()), user = ToUuid(l.user_id.get());
      Partition& shard = st.ShardOf(user);
      if (InOtherShardLocked(st, &Partition::usage_logs, id, st.ShardIndex(user)))
        return Status::AlreadyExists("usage log id is in use");
      if (!shard.users.count(user)) return MissingRef("user_id", "user");
      std::string key = RecordKey(type, id);
      auto existing = b.Existing(key, At(shard, shard.usage_logs, id));
      bytes = packed.empty() ? Pack(l) : std::move(packed);
      AS_RETURN_IF_ERROR(b.PutIfNew(std::move(key), std::move(bytes), existing, &fresh));
      if (!fresh) return Status::OK();
      b.Index(shard, fresh,
              [](EngineState& st, Partition& p, Loc loc) { st.IndexUsageLog(p, loc); });
      // A tracked call counts in its chat's totals (docs/data-model.md): it adds itself,
      // as the batch so far left them.
      if (!l.chat_id) return Status::OK();
      Uuid chat = ToUuid(l.chat_id.get());
      auto c = shard.chats.find(chat);
      if (c == shard.chats.end()) return Status::OK();
      return AddTotals(b.Totals(shard, chat, c->second), 0, l.input_tokens, l.output_tokens,
                       l.total_cost);
    }
    case RecordType::kUserMemory: {
      auto& m = std::get<EngineState::MemoryImport>(in);
      Partition& shard = st.ShardOf(m.user);
      if (InOtherShardLocked(st, &Partition::memories, m.id, st.ShardIndex(m.user)))
        return Status::AlreadyExists("memory id is in use");
      if (!shard.users.count(m.user)) return MissingRef("user_id", "user");
      std::string key = RecordKey(type, m.id);
      // The same memory again (in the store, compared without the embedding, or earlier
      // in the batch) is a no-op; a different one under its id is refused.
      if (auto it = b.staged.find(key); it != b.staged.end()) {
        if (it->second == m.full) return Status::OK();
        return Status::AlreadyExists("a different memory with this id exists");
      }
      if (auto stored = At(shard, shard.memories, m.id)) {
        if (st.MemoryArenaBytes(*stored) == m.bytes) return Status::OK();
        return Status::AlreadyExists("a different memory with this id exists");
      }
      auto mems = shard.memories_by_user.find(m.user);
      if ((mems != shard.memories_by_user.end() && mems->second->IdOfKey(m.key)) ||
          !b.memory_keys.insert({m.user, m.key}).second)
        return Status::AlreadyExists("this user already has a memory with this memory_key");
      b.batch.Put(key, m.full);
      b.staged.emplace(key, m.full);
      b.Then([&st, &shard, bytes = std::move(m.bytes), vec = std::move(m.embedding)] {
        st.IndexMemory(shard, shard.arena.Append(bytes), vec.data());
      });
      return Status::OK();
    }
    default:
      return Status::NotImplemented(std::string(RecordTypeName(type)) +
                                    ": no batched import (one record per request)");
  }
}

// The error of record i of a batch, naming it by its line (or 1-based position).
Status AtRecord(const Status& s, size_t i, size_t n, std::span<const uint64_t> lines) {
  if (!lines.empty())
    return Status(s.code(), "line " + std::to_string(lines[i]) + ": " + s.message());
  if (n > 1) return Status(s.code(), "record " + std::to_string(i + 1) + ": " + s.message());
  return s;
}

}  // namespace

Status Engine::ImportRecords(const Scope& scope, RecordType type,
                             std::span<const std::string_view> records,
                             std::span<const uint64_t> lines) {
  AS_RETURN_IF_ERROR(CheckImportBatch(scope, records.size(), lines.size()));
  if (!BatchImportable(type)) {
    if (records.size() == 1) return ImportOne(type, records[0]);
    return Status::NotImplemented(std::string(RecordTypeName(type)) +
                                  " are imported one record per request (no batched form yet)");
  }
  EngineState& st = *impl_;
  int64_t now = st.Now();
  std::vector<Incoming> parsed(records.size());
  std::vector<std::string> packed(records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    Status s = Prepare(st, type, records[i], now, &parsed[i]);
    // Nothing of the batch was applied; the error names the record that failed.
    if (!s.ok()) return AtRecord(s, i, records.size(), lines);
    Prepack(type, parsed[i], &packed[i]);
  }
  Staging b(records.size());
  uint64_t ticket = 0;
  {
    LockEverything lock(st);
    for (size_t i = 0; i < records.size(); ++i) {
      Status s = Stage(st, b, type, parsed[i], packed[i], now);
      if (!s.ok()) return AtRecord(s, i, records.size(), lines);
    }
    b.FinishChats();
    if (b.steps.empty()) return Status::OK();  // every record already there, identical
    AS_ASSIGN_OR_RETURN(ticket, st.Log(b.batch));
    b.Apply(st);
  }
  return st.Durable(ticket);
}

Status Engine::ImportRecord(const Scope& scope, RecordType type, std::string_view json) {
  return ImportRecords(scope, type, std::span<const std::string_view>(&json, 1), {});
}

// The types restored by usage accounting's own module, one at a time (rollups, quota
// periods and limit configs: few, and kept in structures of their own).
Status Engine::ImportOne(RecordType type, std::string_view json) {
  EngineState& st = *impl_;
  uint64_t ticket = 0;
  switch (type) {
    case RecordType::kUserUsageRollup:
    case RecordType::kTenantUsageRollup:
    case RecordType::kQuota:
    case RecordType::kRateLimitConfig:
      AS_RETURN_IF_ERROR(st.ImportUsageRecord(type, json, &ticket));
      break;
    default:
      return Status::NotImplemented(std::string(RecordTypeName(type)) + " cannot be imported yet");
  }
  return ticket ? st.Durable(ticket) : Status::OK();
}

}  // namespace agentstore
