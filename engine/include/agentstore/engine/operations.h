// The operation table: every operation agentstore offers, declared once with whether it
// reads or writes, who may call it and whether it is built yet. The protocol's
// dispatch, agentctl's help and docs/protocol.md follow from this list.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace agentstore {

enum class OpKind : uint8_t { kRead, kWrite };

// Which scopes may call an operation at all (row-level rules apply on top).
enum RoleBits : uint8_t { kService = 1, kAdmin = 2, kUser = 4, kAnyRole = 7 };

// X(name, kind, roles, implemented, summary)
#define AGENTSTORE_OPERATIONS(X)                                                                   \
  X(authenticate, kRead, 0, true, "present an API key; the first request of a connection")         \
  X(status, kRead, kService | kAdmin, true, "server version, uptime, counts, durability")          \
  X(tenant_create, kWrite, kService | kAdmin, true, "create a tenant (unique slug)")               \
  X(tenant_get, kRead, kAnyRole, true, "a tenant by id or slug")                                   \
  X(tenant_update, kWrite, kService | kAdmin, true, "merge-patch a tenant")                        \
  X(tenant_delete, kWrite, kService | kAdmin, true, "soft or hard delete a tenant")                \
  X(tenant_list, kRead, kService | kAdmin, true, "tenants by id")                                  \
  X(user_create, kWrite, kService, true, "create a user with every default")                       \
  X(user_get, kRead, kAnyRole, true, "a user by id or email")                                      \
  X(user_update, kWrite, kService | kUser, true, "merge-patch a user")                             \
  X(user_delete, kWrite, kService | kUser, true, "soft delete, or hard delete with cascade")       \
  X(user_list, kRead, kService | kAdmin, true, "users by id")                                      \
  X(agent_create, kWrite, kAnyRole, true, "create an agent")                                       \
  X(agent_get, kRead, kAnyRole, true, "an agent (public or own; others' creator_id hidden)")       \
  X(agent_update, kWrite, kAnyRole, true, "merge-patch an agent")                                  \
  X(agent_delete, kWrite, kAnyRole, true, "soft or hard delete an agent")                          \
  X(agent_list, kRead, kAnyRole, true, "agents the caller may see")                                \
  X(user_agent_create, kWrite, kService | kUser, true, "add an agent to a user's list")            \
  X(user_agent_get, kRead, kAnyRole, true, "a user_agent by id or (user, agent)")                  \
  X(user_agent_update, kWrite, kService | kUser, true, "merge-patch customization/state")          \
  X(user_agent_delete, kWrite, kService | kUser, true, "soft or hard delete a user_agent")         \
  X(user_agent_list, kRead, kAnyRole, true, "a user's agents: pinned, favorites, sort_order")      \
  X(chat_create, kWrite, kService | kUser, true, "create a chat")                                  \
  X(chat_get, kRead, kAnyRole, true, "a chat by id")                                               \
  X(chat_update, kWrite, kService | kUser, true, "merge-patch title/visibility/last_context")      \
  X(chat_delete, kWrite, kService | kUser, true, "delete a chat with its messages and votes")      \
  X(chat_list, kRead, kAnyRole, true, "a user's chats, newest first")                              \
  X(message_append, kWrite, kService | kUser, true, "append a message, update chat totals")        \
  X(message_get, kRead, kAnyRole, true, "a message by id")                                         \
  X(message_list, kRead, kAnyRole, true, "a chat's messages, paged from either end")               \
  X(vote_put, kWrite, kService | kUser, true, "upsert a vote on a message")                        \
  X(vote_list, kRead, kAnyRole, true, "a chat's votes")                                            \
  X(admin_config_put, kWrite, kService | kAdmin, true, "upsert a config document")                 \
  X(admin_config_get, kRead, kService | kAdmin, true, "a config document by key")                  \
  X(admin_config_list, kRead, kService | kAdmin, true, "all config documents")                     \
  X(admin_config_delete, kWrite, kService | kAdmin, true, "remove a config document")              \
  X(key_create, kWrite, kService | kAdmin, true, "create an API key (secret shown once)")          \
  X(key_list, kRead, kAnyRole, true, "API keys the caller may see")                                \
  X(key_revoke, kWrite, kAnyRole, true, "revoke an API key")                                       \
  X(record_export, kRead, kService | kAdmin, true, "a page of one record type, in key order")      \
  X(record_import, kWrite, kService, true, "restore one record exactly (idempotent by id)")        \
  X(backup_create, kWrite, kService | kAdmin, true, "consistent online checkpoint on the server")  \
  X(memory_upsert, kWrite, kService | kUser, true, "write a memory by (user, memory_key)")         \
  X(memory_get, kRead, kAnyRole, true, "a memory by id or (user, key)")                            \
  X(memory_delete, kWrite, kService | kUser, true, "remove a memory")                              \
  X(memory_search, kRead, kAnyRole, true, "a user's top-k memories nearest a vector")              \
  X(memory_hybrid_search, kRead, kAnyRole, true, "vector + keyword search of memories")            \
  X(memory_global_search, kRead, kService | kAdmin, true, "top-k across all users")                \
  X(memory_prune, kWrite, kService | kUser, true, "keep at most N memories of a user")             \
  X(track_agent_usage, kWrite, kService | kUser, true, "atomic usage accounting for a call")       \
  X(rate_agent, kWrite, kService | kUser, true, "rate a user_agent 1-5")                           \
  X(usage_list, kRead, kAnyRole, true, "usage logs by user/agent_type/time")                       \
  X(usage_summary, kRead, kAnyRole, true, "usage rollups by day or month")                         \
  X(quota_set, kWrite, kService | kAdmin, true, "set a tenant quota")                              \
  X(quota_get, kRead, kService | kAdmin, true, "a tenant quota's state")                           \
  X(limit_config_put, kWrite, kService | kAdmin, true, "create or change a rate-limit config")     \
  X(limit_config_list, kRead, kService | kAdmin, true, "rate-limit configs")                       \
  X(limit_check, kWrite, kService | kUser, true, "check and consume every applicable limit")       \
  X(limit_release, kWrite, kService | kUser, true, "release a concurrent-limit lease")             \
  X(limit_config_delete, kWrite, kService | kAdmin, true, "remove a rate-limit config")            \
  X(usage_expire, kWrite, kService | kAdmin, true, "drop usage logs past the retention age")       \
  X(coll_declare, kWrite, kService | kAdmin, true, "declare a collection: fields, owner, indexes") \
  X(coll_alter, kWrite, kService | kAdmin, true, "add fields or indexes to a collection")          \
  X(coll_describe, kRead, kAnyRole, true, "a collection's declaration")                            \
  X(coll_list, kRead, kAnyRole, true, "every collection's declaration")                            \
  X(coll_put, kWrite, kAnyRole, true, "create or replace a collection record")                     \
  X(coll_get, kRead, kAnyRole, true, "a collection record by key")                                 \
  X(coll_update, kWrite, kAnyRole, true, "merge-patch a collection record")                        \
  X(coll_delete, kWrite, kAnyRole, true, "soft or hard delete a collection record")                \
  X(coll_query, kRead, kAnyRole, true, "collection records by an index: where, order, cursor")     \
  X(coll_count, kRead, kAnyRole, true, "how many collection records a query matches")              \
  X(coll_sweep, kWrite, kService | kAdmin, true, "remove collection records past their TTL")       \
  X(memory_graphs_save, kWrite, kService | kAdmin, true, "save the vector graphs to disk now")     \
  X(subscribe, kRead, kAnyRole, true, "follow changes after a sequence as push frames")            \
  X(unsubscribe, kRead, kAnyRole, true, "end a subscription; its end frame has the resume point") \
  X(image_save, kWrite, kService | kAdmin, true, "write the table image and changed graphs now")

enum class Op : uint16_t {
#define AS_OP_ENUM(name, kind, roles, implemented, summary) name,
  AGENTSTORE_OPERATIONS(AS_OP_ENUM)
#undef AS_OP_ENUM
};

#define AS_OP_COUNT(name, kind, roles, implemented, summary) +1
inline constexpr size_t kOperationCount = 0 AGENTSTORE_OPERATIONS(AS_OP_COUNT);
#undef AS_OP_COUNT

struct OperationInfo {
  Op op;
  std::string_view name;
  OpKind kind;
  uint8_t roles;  // RoleBits
  bool implemented;
  std::string_view summary;
};

// Every operation, in declaration order.
std::span<const OperationInfo> Operations();
const OperationInfo& OperationOf(Op op);

}  // namespace agentstore
