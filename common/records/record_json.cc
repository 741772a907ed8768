// Public JSON conversion of records, instantiated for every record type.
#include "agentstore/common/record_json.h"

#include "record_fields.h"

namespace agentstore {

template <typename T>
std::string RecordToJson(const T& record) {
  typename T::NativeTableType obj;
  record.UnPackTo(&obj);
  return internal::RecordToJson(obj).dump();
}

template <typename T>
Status RecordFromJson(std::string_view json, typename T::NativeTableType* out) {
  AS_RETURN_IF_ERROR(internal::CheckJsonDepth("record", json));
  auto j = internal::Json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::InvalidArgument("not valid JSON");
  internal::FieldContext ctx;
  AS_RETURN_IF_ERROR(internal::RecordFromJson(*out, j, ctx));
  return internal::CheckRecord(*out, ctx);
}

#define AS_INSTANTIATE(T)                                 \
  template std::string RecordToJson<fb::T>(const fb::T&); \
  template Status RecordFromJson<fb::T>(std::string_view, fb::T::NativeTableType*);
AS_INSTANTIATE(Tenant)
AS_INSTANTIATE(User)
AS_INSTANTIATE(Agent)
AS_INSTANTIATE(UserAgent)
AS_INSTANTIATE(Chat)
AS_INSTANTIATE(Message)
AS_INSTANTIATE(Vote)
AS_INSTANTIATE(AdminConfig)
AS_INSTANTIATE(ApiKey)
AS_INSTANTIATE(UserMemory)
AS_INSTANTIATE(UsageLog)
AS_INSTANTIATE(RateLimitConfig)
AS_INSTANTIATE(Quota)
AS_INSTANTIATE(UsageRollup)
#undef AS_INSTANTIATE

}  // namespace agentstore
