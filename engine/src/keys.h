// RocksDB key layout. One byte of record type, then the record's key:
//   [type][id:16]                     most records
//   [Vote][chat_id:16][message_id:16] votes
//   [AdminConfig][config_key bytes]   admin_config
//   [Quota][tenant_id:16][quota_type] quotas
// Type 0 is reserved for the store's meta keys (format version).
// Other first bytes in use: 0x40 memory touches (memories.cc); 0x70 / 0x71 collection
// declarations / records (collections.h).
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

// Big-endian with the sign bit flipped, so keys sort like the signed numbers.
inline void AppendOrdered64(std::string& k, int64_t v) {
  uint64_t u = static_cast<uint64_t>(v) ^ (uint64_t{1} << 63);
  for (int i = 7; i >= 0; --i) k.push_back(static_cast<char>((u >> (8 * i)) & 0xFF));
}

inline std::string QuotaKeyOf(const Uuid& tenant, int8_t type, int64_t period_start) {
  std::string k = RecordKey(RecordType::kQuota, tenant);
  k.push_back(static_cast<char>(type));
  AppendOrdered64(k, period_start);
  return k;
}

inline std::string RollupKeyOf(RecordType t, const Uuid& owner, int64_t day, int8_t agent_type,
                               std::string_view provider, std::string_view model) {
  std::string k = RecordKey(t, owner);
  AppendOrdered64(k, day);
  k.push_back(static_cast<char>(agent_type));
  k.append(provider);
  k.push_back('\0');
  k.append(model);
  return k;
}

}  // namespace agentstore::internal
