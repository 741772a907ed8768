// RocksDB key layout. One byte of record type, then the record's key:
//   [type][id:16]                     most records
//   [Vote][chat_id:16][message_id:16] votes
//   [AdminConfig][config_key bytes]   admin_config
//   [Quota][tenant_id:16][quota_type] quotas
// Type 0 is reserved for the store's meta keys (format version).
#pragma once

#include <string>
#include <string_view>

#include "agentstore/common/uuid.h"
#include "agentstore/engine/engine.h"

namespace agentstore::internal {

inline std::string KeyPrefix(RecordType t) { return std::string(1, static_cast<char>(t)); }

inline std::string RecordKey(RecordType t, const Uuid& id) {
  std::string k = KeyPrefix(t);
  k.append(reinterpret_cast<const char*>(id.bytes.data()), 16);
  return k;
}

inline std::string VoteKey(const Uuid& chat, const Uuid& message) {
  std::string k = RecordKey(RecordType::kVote, chat);
  k.append(reinterpret_cast<const char*>(message.bytes.data()), 16);
  return k;
}

inline std::string AdminConfigKey(std::string_view config_key) {
  return KeyPrefix(RecordType::kAdminConfig) + std::string(config_key);
}

}  // namespace agentstore::internal
