// Build tool: prints the operation table and which record fields hold JSON documents as
// one JSON object, so clients in other languages (clients/typescript) generate their
// operation list and field conversions from the same declarations the server uses.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "agentstore/common/query.h"
#include "agentstore/common/row.h"
#include "agentstore/engine/operations.h"
#include "record_fields.h"

namespace {

using nlohmann::json;

// A field holds a JSON document when its own from_json (the one the server's merge
// patches run) accepts a JSON object or a mixed array ([1, "x"]): text, id, number and
// typed list fields (strings, ids, floats) refuse both. Asking the field table keeps this list from
// drifting.
template <typename T>
void JsonFields(json& out, const char* table) {
  json names = json::array();
  agentstore::internal::FieldContext ctx;
  for (const auto& f : agentstore::internal::FieldsOf<T>()) {
    T probe;
    bool is_json = f.from_json(probe, json{{"a", 1}}, f, ctx).ok() ||
                   f.from_json(probe, json::array({1, "x"}), f, ctx).ok();
    if (is_json) names.push_back(f.name);
  }
  out[table] = names;
}

}  // namespace

int main() {
  namespace fb = agentstore::fb;
  json ops = json::array();
  for (const auto& op : agentstore::Operations()) {
    json roles = json::array();
    if (op.roles & agentstore::kService) roles.push_back("service");
    if (op.roles & agentstore::kAdmin) roles.push_back("admin");
    if (op.roles & agentstore::kUser) roles.push_back("user");
    ops.push_back({{"name", op.name},
                   {"op", static_cast<int>(op.op)},
                   {"kind", op.kind == agentstore::OpKind::kRead ? "read" : "write"},
                   {"roles", roles},
                   {"implemented", op.implemented},
                   {"summary", op.summary}});
  }
  json fields = json::object();
  JsonFields<fb::TenantT>(fields, "Tenant");
  JsonFields<fb::UserT>(fields, "User");
  JsonFields<fb::AgentT>(fields, "Agent");
  JsonFields<fb::UserAgentT>(fields, "UserAgent");
  JsonFields<fb::ChatT>(fields, "Chat");
  JsonFields<fb::MessageT>(fields, "Message");
  JsonFields<fb::VoteT>(fields, "Vote");
  JsonFields<fb::AdminConfigT>(fields, "AdminConfig");
  JsonFields<fb::ApiKeyT>(fields, "ApiKey");
  JsonFields<fb::UserMemoryT>(fields, "UserMemory");
  JsonFields<fb::UsageLogT>(fields, "UsageLog");
  JsonFields<fb::RateLimitConfigT>(fields, "RateLimitConfig");
  JsonFields<fb::QuotaT>(fields, "Quota");
  JsonFields<fb::UsageRollupT>(fields, "UsageRollup");
  // Record type numbers (the change feed's Change.type, SubscribeArgs.types) and names.
  json types = json::array();
  for (int t = 1; t <= static_cast<int>(agentstore::kLastRecordType); ++t) {
    auto type = static_cast<agentstore::RecordType>(t);
    types.push_back({{"number", t}, {"name", std::string(agentstore::RecordTypeName(type))}});
  }
  json out = {{"operations", ops}, {"json_fields", fields}, {"record_types", types}};
  std::printf("%s\n", out.dump(1).c_str());
  return 0;
}
