// Valid request frames for every operation of the op table, built from a handful of ids:
// the seeds of the dispatch fuzzer and the requests of the in-process dispatch tests.
// An operation this file does not know yet still gets a frame (without arguments).
#pragma once

#include <flatbuffers/flatbuffers.h>

#include <string>
#include <vector>

#include "agentstore/common/row.h"
#include "agentstore/engine/operations.h"
#include "protocol_generated.h"

namespace agentstore::testing {

// The records the frames name.
struct FrameIds {
  Uuid tenant, user, agent, user_agent, chat, message, memory, limit, key;
  // Optional targets for the destructive operations (deletes, revoke), so a fuzzer's
  // seeds do not delete the records the other seeds name; nil: the ones above.
  Uuid doomed_tenant, doomed_user, doomed_agent, doomed_user_agent, doomed_chat, doomed_memory,
      doomed_key;
  std::string secret;  // for authenticate
  std::string slug = "t", email = "u@x.example";
  uint32_t dim = 8;  // the store's vector dimension
  // A collection declared with kFrameCollection and two records of `user` in it (ids as
  // text; the second is the one coll_delete removes). Put them with FrameCollectionRecord.
  // Optional: an agent `user` has no user_agent for (user_agent_create), a concurrent-limit
  // lease (limit_release; nil: `limit`), where backup_create writes (default: a refused path).
  Uuid spare_agent, lease;
  std::string backup_dir = "/nonexistent/agentstore-fuzz";
  std::string collection = "fz_notes";
  std::string coll_record = "0c0ffee0-0000-4000-8000-000000000001";
  std::string doomed_coll_record = "0c0ffee0-0000-4000-8000-000000000002";
};

// The declaration of FrameIds::collection: every field type, a TTL field, a user-owned
// index, a composite one and a unique one, so the coll_* seeds reach all of them.
inline constexpr const char* kFrameCollection = R"({"name": "fz_notes", "owner": "user",
  "ttl_field": "expires_at",
  "fields": [
    {"name": "title", "type": "string", "required": true, "max_length": 200},
    {"name": "status", "type": "enum", "values": ["open", "done"], "default": "open"},
    {"name": "score", "type": "integer", "min": 0, "max": 100, "default": 0},
    {"name": "amount", "type": "decimal", "scale": 2, "default": "0"},
    {"name": "ratio", "type": "real"},
    {"name": "pinned", "type": "bool", "default": false},
    {"name": "due", "type": "timestamp"},
    {"name": "expires_at", "type": "timestamp"},
    {"name": "ref", "type": "uuid"},
    {"name": "tags", "type": "string_list", "max_items": 8, "max_length": 40},
    {"name": "meta", "type": "json", "default": {}}],
  "indexes": [
    {"name": "by_user_due", "fields": ["user_id", "due"]},
    {"name": "by_status", "fields": ["status", "score"]},
    {"name": "by_ref", "fields": ["ref"], "unique": true}]})";

// A record of kFrameCollection for `user`; without `id` the store makes a new one. By
// default it expires at the last time the store holds (9999-12-31), i.e. never.
inline std::string FrameCollectionRecord(const Uuid& user, const std::string& id = "",
                                         int64_t expires_at = 253402300799999999) {
  std::string r = R"({"title": "note", "status": "open", "score": 42, "amount": "12.50",
    "ratio": 0.25, "pinned": true, "due": 1700000000000000, "tags": ["a", "b"],
    "meta": {"k": [1, {"x": null}]}, "expires_at": )" +
                  std::to_string(expires_at) + R"(, "user_id": ")" + user.ToString() + '"';
  if (!id.empty()) r += R"(, "id": ")" + id + '"';
  return r + "}";
}

inline std::vector<uint8_t> BytesOfBuilder(const flatbuffers::FlatBufferBuilder& fbb) {
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

// One request: `op` with `args` (built into `fbb` by `make`), optional act_as.
template <typename Make>
std::vector<uint8_t> RequestFrame(uint64_t id, Op op, const Uuid* act_as, Make make) {
  flatbuffers::FlatBufferBuilder fbb;
  auto [type, args] = make(fbb);
  fb::Uuid as = act_as ? ToFb(*act_as) : fb::Uuid();
  auto req =
      proto::CreateRequest(fbb, id, static_cast<proto::Op>(op), act_as ? &as : nullptr, type, args);
  fbb.Finish(req);
  return BytesOfBuilder(fbb);
}

using ArgsPair = std::pair<proto::Args, flatbuffers::Offset<void>>;

// The arguments a valid `op` request carries.
inline ArgsPair ArgsFor(Op op, flatbuffers::FlatBufferBuilder& fbb, const FrameIds& ids) {
  using A = proto::Args;
  auto pick = [](const Uuid& doomed, const Uuid& normal) {
    return doomed.IsNil() ? normal : doomed;
  };
  const std::string name(OperationOf(op).name);
  auto id = [&](const Uuid& u) { return ToFb(u); };
  auto idargs = [&](const Uuid& u, proto::DeleteMode m = proto::DeleteMode::soft) {
    fb::Uuid x = id(u);
    return ArgsPair{A::IdArgs, proto::CreateIdArgs(fbb, &x, m).Union()};
  };
  auto patch = [&](const Uuid& u, const char* p) {
    fb::Uuid x = id(u);
    return ArgsPair{A::PatchArgs, proto::CreatePatchArgsDirect(fbb, &x, p).Union()};
  };
  auto page = [&](const Uuid* owner) {
    fb::Uuid x = owner ? id(*owner) : fb::Uuid();
    return ArgsPair{A::PageArgs, proto::CreatePageArgs(fbb, owner ? &x : nullptr, 10).Union()};
  };
  auto key = [&](const char* k) {
    return ArgsPair{A::KeyArgs, proto::CreateKeyArgsDirect(fbb, k).Union()};
  };
  auto uid = [&](const Uuid& u) { return std::make_unique<fb::Uuid>(ToFb(u)); };
  std::vector<float> vec(ids.dim, 0.25f);
  vec[0] = 1.0f;
  auto search = [&](const char* text) {
    fb::Uuid u = id(ids.user);
    return ArgsPair{A::MemorySearchArgs,
                    proto::CreateMemorySearchArgsDirect(fbb, &u, &vec, text, 3).Union()};
  };

  if (name == "authenticate")
    return {A::AuthArgs, proto::CreateAuthArgsDirect(fbb, ids.secret.c_str()).Union()};
  if (name == "status" || name == "admin_config_list" || name == "key_list" ||
      name == "usage_expire" || name == "limit_config_list")
    return {A::NONE, 0};
  if (name == "tenant_create") {
    fb::TenantT t;
    t.name = "T";
    t.slug = "fuzz-tenant";
    return {A::agentstore_fb_Tenant, fb::Tenant::Pack(fbb, &t).Union()};
  }
  if (name == "tenant_get") return idargs(ids.tenant);
  if (name == "tenant_update") return patch(ids.tenant, R"({"plan":"pro"})");
  if (name == "tenant_delete") return idargs(pick(ids.doomed_tenant, ids.tenant));
  if (name == "tenant_list" || name == "user_list" || name == "agent_list") return page(nullptr);
  if (name == "user_create") {
    fb::UserT u;
    u.email = "fuzz@x.example";
    u.tenant_id = uid(ids.tenant);
    return {A::agentstore_fb_User, fb::User::Pack(fbb, &u).Union()};
  }
  if (name == "user_get") return idargs(ids.user);
  if (name == "user_update") return patch(ids.user, R"({"full_name":"Ada","role":"admin"})");
  if (name == "user_delete") return idargs(pick(ids.doomed_user, ids.user));
  if (name == "agent_create") {
    fb::AgentT a;
    a.name = "A";
    a.is_public = true;
    return {A::agentstore_fb_Agent, fb::Agent::Pack(fbb, &a).Union()};
  }
  if (name == "agent_get") return idargs(ids.agent);
  if (name == "agent_update") return patch(ids.agent, R"({"name":"B"})");
  if (name == "agent_delete")
    return idargs(pick(ids.doomed_agent, ids.agent), proto::DeleteMode::hard);
  if (name == "user_agent_create") {
    fb::UserAgentT ua;
    ua.user_id = uid(ids.user);
    ua.agent_id = uid(pick(ids.spare_agent, ids.agent));
    return {A::agentstore_fb_UserAgent, fb::UserAgent::Pack(fbb, &ua).Union()};
  }
  if (name == "user_agent_get") {
    fb::Uuid a = id(ids.user), b = id(ids.agent);
    return {A::PairArgs, proto::CreatePairArgs(fbb, &a, &b).Union()};
  }
  if (name == "user_agent_update") return patch(ids.user_agent, R"({"is_pinned":true})");
  if (name == "user_agent_delete") return idargs(pick(ids.doomed_user_agent, ids.user_agent));
  if (name == "user_agent_list") {
    fb::Uuid u = id(ids.user);
    return {A::UserAgentListArgs, proto::CreateUserAgentListArgs(fbb, &u).Union()};
  }
  if (name == "chat_create") {
    fb::ChatT c;
    c.user_id = uid(ids.user);
    c.title = "chat";
    return {A::agentstore_fb_Chat, fb::Chat::Pack(fbb, &c).Union()};
  }
  if (name == "chat_get") return idargs(ids.chat);
  if (name == "chat_update") return patch(ids.chat, R"({"title":"t2"})");
  if (name == "chat_delete")
    return idargs(pick(ids.doomed_chat, ids.chat), proto::DeleteMode::hard);
  if (name == "chat_list") return page(&ids.user);
  if (name == "message_append") {
    fb::MessageT m;
    m.chat_id = uid(ids.chat);
    m.parts = R"([{"type":"text","text":"hi"}])";
    m.input_tokens = 3;
    m.cost = 7;
    return {A::agentstore_fb_Message, fb::Message::Pack(fbb, &m).Union()};
  }
  if (name == "message_get") return idargs(ids.message);
  if (name == "message_list") return page(&ids.chat);
  if (name == "vote_put") {
    fb::Uuid a = id(ids.chat), b = id(ids.message);
    return {A::PairArgs, proto::CreatePairArgs(fbb, &a, &b, true).Union()};
  }
  if (name == "vote_list") return idargs(ids.chat);
  if (name == "admin_config_put")
    return {A::ConfigArgs, proto::CreateConfigArgsDirect(fbb, "site", R"({"a":1})").Union()};
  if (name == "admin_config_get" || name == "admin_config_delete") return key("site");
  if (name == "key_create") {
    fb::ApiKeyT k;
    k.role = fb::KeyRole::user;
    k.user_id = uid(ids.user);
    return {A::agentstore_fb_ApiKey, fb::ApiKey::Pack(fbb, &k).Union()};
  }
  if (name == "key_revoke") return idargs(pick(ids.doomed_key, ids.key));
  if (name == "record_export")
    return {A::ExportArgs, proto::CreateExportArgsDirect(fbb, "users", nullptr, 10).Union()};
  if (name == "record_import")
    return {A::ImportArgs,
            proto::CreateImportArgsDirect(
                fbb, "tenants",
                R"({"id":"0c0ffee0-0000-4000-8000-0000000000aa","name":"I","slug":"imp"})")
                .Union()};
  if (name == "backup_create")
    return {A::BackupArgs, proto::CreateBackupArgsDirect(fbb, ids.backup_dir.c_str()).Union()};
  if (name == "memory_upsert") {
    fb::UserMemoryT m;
    m.user_id = uid(ids.user);
    m.memory_key = "k";
    m.memory_value = R"({"content":"hello world"})";
    m.importance_score = 0.5;
    m.embedding = vec;
    return {A::agentstore_fb_UserMemory, fb::UserMemory::Pack(fbb, &m).Union()};
  }
  if (name == "memory_get") {
    fb::Uuid m = id(ids.memory);
    return {A::MemoryGetArgs, proto::CreateMemoryGetArgsDirect(fbb, &m).Union()};
  }
  if (name == "memory_delete") return idargs(pick(ids.doomed_memory, ids.memory));
  if (name == "memory_search" || name == "memory_global_search") return search(nullptr);
  if (name == "memory_hybrid_search") return search("hello");
  if (name == "memory_prune") {
    fb::Uuid u = id(ids.user);
    return {A::MemoryPruneArgs, proto::CreateMemoryPruneArgs(fbb, &u, 1).Union()};
  }
  if (name == "track_agent_usage") {
    fb::UsageLogT l;
    l.user_id = uid(ids.user);
    l.agent_id = uid(ids.agent);
    l.model = "m";
    l.provider = "p";
    l.input_tokens = 5;
    l.output_tokens = 6;
    l.input_cost = 7;
    l.success = true;
    auto call = fb::UsageLog::Pack(fbb, &l);
    return {A::TrackUsageArgs, proto::CreateTrackUsageArgs(fbb, call).Union()};
  }
  if (name == "rate_agent") {
    fb::Uuid u = id(ids.user), a = id(ids.agent);
    return {A::RateAgentArgs, proto::CreateRateAgentArgsDirect(fbb, &u, &a, 4.5, "ok").Union()};
  }
  if (name == "usage_list") {
    fb::Uuid u = id(ids.user);
    return {A::UsageListArgs, proto::CreateUsageListArgs(fbb, &u).Union()};
  }
  if (name == "usage_summary") {
    fb::Uuid u = id(ids.user);
    return {A::UsageSummaryArgs,
            proto::CreateUsageSummaryArgs(fbb, proto::SummaryOwner::user, &u, INT64_MIN, INT64_MAX)
                .Union()};
  }
  if (name == "quota_set") {
    fb::QuotaT q;
    q.tenant_id = uid(ids.tenant);
    q.quota_limit = 100;
    return {A::agentstore_fb_Quota, fb::Quota::Pack(fbb, &q).Union()};
  }
  if (name == "quota_get") {
    fb::Uuid t = id(ids.tenant);
    return {A::QuotaGetArgs, proto::CreateQuotaGetArgs(fbb, &t).Union()};
  }
  if (name == "limit_config_put") {
    fb::RateLimitConfigT c;
    c.scope = fb::LimitScope::user;
    c.scope_id = uid(ids.user);
    c.limit_type = fb::LimitType::concurrent;
    c.limit_value = 3;
    c.is_active = true;
    return {A::agentstore_fb_RateLimitConfig, fb::RateLimitConfig::Pack(fbb, &c).Union()};
  }
  if (name == "limit_check") {
    fb::Uuid u = id(ids.user), a = id(ids.agent);
    return {A::LimitCheckArgs, proto::CreateLimitCheckArgs(fbb, &u, &a).Union()};
  }
  if (name == "limit_release") return idargs(pick(ids.lease, ids.limit));
  if (name == "limit_config_delete") return idargs(ids.limit);
  auto coll = [&](const char* json, const std::string& key,
                  proto::DeleteMode m = proto::DeleteMode::soft) {
    return ArgsPair{A::CollectionArgs,
                    proto::CreateCollectionArgsDirect(fbb, ids.collection.c_str(), json,
                                                      key.empty() ? nullptr : key.c_str(), m)
                        .Union()};
  };
  auto query = [&](const char* index, const std::string& where) {
    return ArgsPair{A::CollectionQueryArgs,
                    proto::CreateCollectionQueryArgsDirect(fbb, ids.collection.c_str(), index,
                                                           where.c_str(), false, 10)
                        .Union()};
  };
  if (name == "coll_declare")
    return {A::CollectionArgs,
            proto::CreateCollectionArgsDirect(fbb, nullptr, kFrameCollection).Union()};
  if (name == "coll_alter")
    return coll(R"({"add_fields": [{"name": "extra", "type": "integer", "default": 1}],
                    "add_indexes": [{"name": "by_extra", "fields": ["extra", "score"]}]})",
                "");
  if (name == "coll_describe") return coll(nullptr, "");
  if (name == "coll_put") {
    std::string r = FrameCollectionRecord(ids.user);
    return coll(r.c_str(), "");
  }
  if (name == "coll_get") return coll(nullptr, ids.coll_record);
  if (name == "coll_update")
    return coll(R"({"title": "t2", "score": 7, "meta": {"k": null, "n": 1}, "tags": null})",
                R"({"id": ")" + ids.coll_record + R"("})");
  if (name == "coll_delete") return coll(nullptr, ids.doomed_coll_record);
  if (name == "coll_query")
    return query("by_user_due", R"({"user_id": ")" + ids.user.ToString() +
                                    R"(", "due": {"gte": 0, "lt": 9000000000000000}})");
  if (name == "coll_count") return query("by_status", R"({"status": "open", "score": {"gt": 1}})");
  if (name == "subscribe") {
    fb::Uuid u = id(ids.user);
    return {A::SubscribeArgs,
            proto::CreateSubscribeArgs(fbb, 0, &u, nullptr, 0, /*from_now=*/true).Union()};
  }
  if (name == "unsubscribe")
    return {A::UnsubscribeArgs, proto::CreateUnsubscribeArgs(fbb, 7).Union()};
  // No arguments: status, admin_config_list, key_list, usage_expire, limit_config_list
  // (above), coll_list, coll_sweep, memory_graphs_save, image_save, and an operation this file does
  // not know yet (the fuzzer's seed check names it).
  return {A::NONE, 0};
}

// A valid frame of `op`.
inline std::vector<uint8_t> FrameFor(Op op, const FrameIds& ids, uint64_t id = 7,
                                     const Uuid* act_as = nullptr) {
  return RequestFrame(id, op, act_as,
                      [&](flatbuffers::FlatBufferBuilder& fbb) { return ArgsFor(op, fbb, ids); });
}

}  // namespace agentstore::testing
