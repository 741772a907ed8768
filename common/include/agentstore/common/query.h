// The shapes of requests shared by the engine, the protocol and the client: record
// types, delete and JSON-update modes, paging and list filters.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace agentstore {

enum class RecordType : uint8_t {
  kTenant = 1,
  kUser = 2,
  kAgent = 3,
  kUserAgent = 4,
  kChat = 5,
  kMessage = 6,
  kVote = 7,
  kAdminConfig = 8,
  kApiKey = 9,
  kUserMemory = 10,
  kUsageLog = 11,
  kRateLimitConfig = 12,
  kQuota = 13,
  kUserUsageRollup = 14,    // per (user, day, agent_type, provider, model)
  kTenantUsageRollup = 15,  // per (tenant, day, ...); the nil tenant is everyone
};
inline constexpr RecordType kLastRecordType = RecordType::kTenantUsageRollup;
// The change feed's type of a change to a record of a run-time declared collection (113,
// the first byte of such a record's storage key). Not an enumerator above: no built-in
// table has it, and every collection shares it (the change names its collection).
inline constexpr RecordType kCollectionRecordType = static_cast<RecordType>(0x71);
// Lower-case plural table name ("users"); RecordTypeFromName is its inverse.
std::string_view RecordTypeName(RecordType t);
std::optional<RecordType> RecordTypeFromName(std::string_view name);
// Whether record_import takes many records of this type in one request: every type but
// usage rollups, quota periods and rate-limit configs (one per request; few, and kept in
// usage accounting's own structures).
bool BatchImportable(RecordType t);
// The most records one record_import batch may hold.
inline constexpr size_t kMaxImportBatch = 10000;

enum class DeleteMode : uint8_t {
  kSoft,  // sets deleted_at; reads hide the record
  kHard,  // removes the record and cascades to what it owns
};

enum class JsonMode : uint8_t { kMerge, kReplace };

struct PageRequest {
  uint32_t limit = 50;           // 1..1000
  std::string cursor;            // from a previous Page::next_cursor
  bool include_deleted = false;  // soft-deleted rows too (service/admin only)
};

struct UserAgentFilter {
  std::optional<std::string> folder;
  std::optional<std::string> tag;
  std::optional<bool> favorite;
  // false (default): only rows without archived_at; true: only archived rows.
  bool archived = false;
};

struct MessagePageRequest {
  uint32_t limit = 20;
  std::string cursor;
  // true: newest first from the end ("last 20 messages"); false: oldest first.
  bool from_end = true;
};

}  // namespace agentstore
