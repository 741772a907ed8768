// Records as JSON text: the form of exports, imports, patches and the CLI's display.
// Field names are the data model's; ids are UUID text, times are integer microseconds,
// money integer micro-USD, enums their lower-case names, JSON fields nested JSON.
#pragma once

#include <string>
#include <string_view>

#include "agentstore/common/row.h"
#include "agentstore/common/status.h"

namespace agentstore {

// T is a generated record type: fb::Tenant, fb::User, fb::Agent, fb::UserAgent, fb::Chat,
// fb::Message, fb::Vote, fb::AdminConfig, fb::ApiKey, fb::UserMemory, fb::UsageLog,
// fb::RateLimitConfig, fb::Quota or fb::UsageRollup.
template <typename T>
std::string RecordToJson(const T& record);

// Parses and validates every field of a JSON record into `out` (store-maintained fields
// included: this is the restore path).
template <typename T>
Status RecordFromJson(std::string_view json, typename T::NativeTableType* out);

}  // namespace agentstore
