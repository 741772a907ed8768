// The field tables and the operation table: every record field has exactly one entry,
// and the JSON form of every record type round-trips.
#include <nlohmann/json.hpp>

#include "agentstore/common/record_json.h"
#include "agentstore/engine/operations.h"
#include "test_util.h"
#include "validate.h"

namespace agentstore::testing {
namespace {

// The number of fields FlatBuffers generated for a table equals the field table's size,
// so a field added to records.fbs without a rule fails here.
template <typename T>
size_t SchemaFieldCount() {
  return T::MiniReflectTypeTable()->num_elems;
}

template <typename T>
size_t JsonFieldCount() {
  typename T::NativeTableType obj;
  return nlohmann::json::parse(RecordToJson(*PackRow(obj).get())).size();
}

TEST(Fields, EveryRecordFieldHasARule) {
  EXPECT_EQ(JsonFieldCount<fb::Tenant>(), SchemaFieldCount<fb::Tenant>());
  EXPECT_EQ(JsonFieldCount<fb::User>(), SchemaFieldCount<fb::User>());
  EXPECT_EQ(JsonFieldCount<fb::Agent>(), SchemaFieldCount<fb::Agent>());
  EXPECT_EQ(JsonFieldCount<fb::UserAgent>(), SchemaFieldCount<fb::UserAgent>());
  EXPECT_EQ(JsonFieldCount<fb::Chat>(), SchemaFieldCount<fb::Chat>());
  EXPECT_EQ(JsonFieldCount<fb::Message>(), SchemaFieldCount<fb::Message>());
  EXPECT_EQ(JsonFieldCount<fb::Vote>(), SchemaFieldCount<fb::Vote>());
  EXPECT_EQ(JsonFieldCount<fb::AdminConfig>(), SchemaFieldCount<fb::AdminConfig>());
  EXPECT_EQ(JsonFieldCount<fb::ApiKey>(), SchemaFieldCount<fb::ApiKey>());
  EXPECT_EQ(JsonFieldCount<fb::UserMemory>(), SchemaFieldCount<fb::UserMemory>());
  EXPECT_EQ(JsonFieldCount<fb::UsageLog>(), SchemaFieldCount<fb::UsageLog>());
  EXPECT_EQ(JsonFieldCount<fb::RateLimitConfig>(), SchemaFieldCount<fb::RateLimitConfig>());
  EXPECT_EQ(JsonFieldCount<fb::Quota>(), SchemaFieldCount<fb::Quota>());
  EXPECT_EQ(JsonFieldCount<fb::UsageRollup>(), SchemaFieldCount<fb::UsageRollup>());
  EXPECT_EQ(SchemaFieldCount<fb::UserAgent>(), 55u) << "seed 000's user_agents columns";
}

TEST(Fields, UserAgentJsonRoundTripsEveryGroup) {
  const char* json = R"({
    "id":"0190f3a2-7b1c-7def-8123-456789abcdef","user_id":"0190f3a2-7b1c-7def-8123-456789abcde0",
    "agent_id":"0190f3a2-7b1c-7def-8123-456789abcde1","custom_temperature":0.7,"tags":["a","b"],
    "usage_count":12,"user_rating":4.5,"total_cost":1234567,"status":"active",
    "settings":{"x":[1,2]},"shared_with":["0190f3a2-7b1c-7def-8123-456789abcde2"],"is_pinned":true})";
  fb::UserAgentT ua;
  ASSERT_OK(RecordFromJson<fb::UserAgent>(json, &ua));
  EXPECT_EQ(ua.usage_count, 12);
  EXPECT_EQ(ua.total_cost, 1234567);
  auto back = nlohmann::json::parse(RecordToJson(*PackRow(ua).get()));
  auto in = nlohmann::json::parse(json);
  for (auto it = in.begin(); it != in.end(); ++it)
    EXPECT_EQ(back[it.key()], it.value()) << it.key();
}

TEST(Fields, ImportRejectsBadRecords) {
  fb::UserT u;
  EXPECT_CODE(RecordFromJson<fb::User>(R"({"role":"god"})", &u), kInvalidArgument);
  EXPECT_CODE(RecordFromJson<fb::User>(R"({"nope":1})", &u), kInvalidArgument);
  EXPECT_CODE(RecordFromJson<fb::User>(R"({"id":"not-a-uuid"})", &u), kInvalidArgument);
  EXPECT_CODE(RecordFromJson<fb::User>(R"([1])", &u), kInvalidArgument);
  fb::UserMemoryT m;
  EXPECT_CODE(RecordFromJson<fb::UserMemory>(R"({"importance_score":1.5})", &m), kInvalidArgument);
}

TEST(Operations, TableIsCompleteAndNamesAreUnique) {
  std::set<std::string_view> names;
  size_t implemented = 0;
  for (const auto& op : Operations()) {
    EXPECT_TRUE(names.insert(op.name).second) << op.name;
    EXPECT_EQ(&OperationOf(op.op), &op);
    implemented += op.implemented;
    EXPECT_FALSE(op.summary.empty());
  }
  EXPECT_GT(implemented, 30u);
  EXPECT_TRUE(OperationOf(Op::track_agent_usage).implemented);
  EXPECT_EQ(OperationOf(Op::admin_config_get).roles & kUser, 0) << "users never read admin_config";
}

}  // namespace
}  // namespace agentstore::testing

namespace agentstore::testing {
namespace {

// The depth rule (64 levels) as the records' JSON is checked: the bracket count decides
// when brackets are few, the exact walk (brackets in strings do not nest) when many.
TEST(Fields, JsonDepthRuleCountsNestingNotBrackets) {
  using internal::CheckJsonDepth;
  auto nested = [](int n) { return std::string(n, '[') + std::string(n, ']'); };
  EXPECT_TRUE(CheckJsonDepth("f", nested(64)).ok());
  EXPECT_EQ(CheckJsonDepth("f", nested(65)).code(), StatusCode::kInvalidArgument);
  // Many brackets, none nesting deeper than 2: fine.
  std::string flat = "[";
  for (int i = 0; i < 100; ++i) flat += std::string(i ? "," : "") + "[1]";
  EXPECT_TRUE(CheckJsonDepth("f", flat + "]").ok());
  // Brackets inside strings (and escaped quotes) do not nest.
  std::string in_string = "[\"" + std::string(200, '{') + "\\\"" + std::string(100, '[') + "\"]";
  EXPECT_TRUE(CheckJsonDepth("f", in_string).ok());
  EXPECT_EQ(CheckJsonDepth("f", "[\"x\"," + nested(64) + "]").code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace agentstore::testing
