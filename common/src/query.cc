// Record type names.
#include "agentstore/common/query.h"

namespace agentstore {

std::string_view RecordTypeName(RecordType t) {
  switch (t) {
    case RecordType::kTenant:
      return "tenants";
    case RecordType::kUser:
      return "users";
    case RecordType::kAgent:
      return "agents";
    case RecordType::kUserAgent:
      return "user_agents";
    case RecordType::kChat:
      return "chats";
    case RecordType::kMessage:
      return "messages";
    case RecordType::kVote:
      return "votes";
    case RecordType::kAdminConfig:
      return "admin_config";
    case RecordType::kApiKey:
      return "api_keys";
    case RecordType::kUserMemory:
      return "user_memory";
    case RecordType::kUsageLog:
      return "usage_logs";
    case RecordType::kRateLimitConfig:
      return "rate_limit_configs";
    case RecordType::kQuota:
      return "quotas";
    case RecordType::kUserUsageRollup:
      return "user_usage_rollups";
    case RecordType::kTenantUsageRollup:
      return "tenant_usage_rollups";
  }
  return "unknown";
}

bool BatchImportable(RecordType t) {
  switch (t) {
    case RecordType::kTenant:
    case RecordType::kUser:
    case RecordType::kAgent:
    case RecordType::kUserAgent:
    case RecordType::kChat:
    case RecordType::kMessage:
    case RecordType::kVote:
    case RecordType::kAdminConfig:
    case RecordType::kApiKey:
    case RecordType::kUsageLog:
    case RecordType::kUserMemory:
      return true;
    default:
      return false;
  }
}

std::optional<RecordType> RecordTypeFromName(std::string_view name) {
  for (int t = 1; t <= static_cast<int>(kLastRecordType); ++t)
    if (RecordTypeName(static_cast<RecordType>(t)) == name) return static_cast<RecordType>(t);
  return std::nullopt;
}

}  // namespace agentstore
