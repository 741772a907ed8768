// Bad input gets a clear error and changes nothing. Every refused call below is followed
// by a re-read of the whole world through the service scope, compared byte for byte,
// and by a comparison of Engine::Stats() record counts and write counter.
// Field caps and rules come from common/records/record_fields.cc.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "agentstore/engine/engine.h"
#include "test_util.h"

namespace agentstore {
namespace {

using ::agentstore::testing::CodeOf;
using ::agentstore::testing::Id;
using ::agentstore::testing::TextOf;

using ::agentstore::testing::BytesOf;
using ::agentstore::testing::Describe;
using ::agentstore::testing::FbId;
Uuid Missing() { return *Uuid::Parse("0badc0de-0000-7000-8000-000000000002"); }

// A JSON string literal body of n bytes.
std::string Xs(size_t n) { return std::string(n, 'x'); }
// {"field": <json>}
std::string Patch(const std::string& field, const std::string& json) {
  return "{\"" + field + "\":" + json + "}";
}
std::string Quoted(const std::string& s) { return "\"" + s + "\""; }
// A JSON string literal for arbitrary (valid UTF-8) text.
std::string JsonQuote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// Expects `expr` to fail with `code` and the world to be byte-for-byte unchanged.
#define EXPECT_REJECTED(expr, code_name) \
  do {                                   \
    EXPECT_CODE(expr, code_name);        \
    ExpectUnchanged(#expr);              \
  } while (0)

// Expects `expr` to fail with invalid_argument, its message to name `word` (the field,
// or what is wrong), and nothing to change.
#define EXPECT_INVALID_NAMING(expr, word)                                               \
  do {                                                                                  \
    auto _r = (expr);                                                                   \
    EXPECT_EQ(StatusCodeName(CodeOf(_r)), StatusCodeName(StatusCode::kInvalidArgument)) \
        << #expr << " -> " << TextOf(_r);                                               \
    EXPECT_NE(TextOf(_r).find(word), std::string::npos)                                 \
        << #expr << " -> " << TextOf(_r) << " (does not mention '" << (word) << "')";   \
    ExpectUnchanged(#expr);                                                             \
  } while (0)

class ValidationTest : public agentstore::testing::EngineFixture {
 protected:
  void SetUp() override {
    EngineFixture::SetUp();
    fb::TenantT t;
    t.name = "Acme";
    t.slug = "acme";
    auto acme = e().CreateTenant(Scope::Service(), t);
    ASSERT_OK(acme.status());
    acme_ = Id(acme.value()->id());
    t.name = "Beta";
    t.slug = "beta";
    auto beta = e().CreateTenant(Scope::Service(), t);
    ASSERT_OK(beta.status());
    beta_ = Id(beta.value()->id());

    ada_ = Id(MakeUser("ada@example.com", acme_)->id());
    bob_ = Id(MakeUser("bob@example.com")->id());
    agent_ = Id(MakeAgent("helper")->id());
    agent2_ = Id(MakeAgent("second")->id());

    fb::UserAgentT ua;
    ua.user_id = FbId(ada_);
    ua.agent_id = FbId(agent_);
    auto r = e().CreateUserAgent(Scope::Service(), ua);
    ASSERT_OK(r.status());
    ua_ = Id(r.value()->id());

    chat_ = Id(MakeChat(ada_, "first chat")->id());
    auto m = Append(Scope::Service(), chat_, "hello", 10, 20, 30);
    ASSERT_OK(m.status());
    ASSERT_OK(e().PutAdminConfig(Scope::Admin(), "site", R"({"banner":"hi"})").status());
    Baseline();
  }

  std::map<std::string, std::string> Capture() {
    Scope svc = Scope::Service();
    std::map<std::string, std::string> w;
    w["ada"] = BytesOf(e().GetUser(svc, ada_));
    w["bob"] = BytesOf(e().GetUser(svc, bob_));
    w["ada by email"] = BytesOf(e().GetUserByEmail(svc, "ada@example.com"));
    w["bob by email"] = BytesOf(e().GetUserByEmail(svc, "bob@example.com"));
    w["users"] = BytesOf(e().ListUsers(svc, PageRequest{1000, "", true}));
    w["acme"] = BytesOf(e().GetTenant(svc, acme_));
    w["beta"] = BytesOf(e().GetTenant(svc, beta_));
    w["acme by slug"] = BytesOf(e().GetTenantBySlug(svc, "acme"));
    w["beta by slug"] = BytesOf(e().GetTenantBySlug(svc, "beta"));
    w["tenants"] = BytesOf(e().ListTenants(svc, PageRequest{1000, "", true}));
    w["agent"] = BytesOf(e().GetAgent(svc, agent_));
    w["agents"] = BytesOf(e().ListAgents(svc, PageRequest{1000, "", true}));
    w["user_agent"] = BytesOf(e().GetUserAgent(svc, ua_));
    w["ada's user_agents"] = BytesOf(e().ListUserAgents(svc, ada_, {}));
    w["bob's user_agents"] = BytesOf(e().ListUserAgents(svc, bob_, {}));
    w["chat"] = BytesOf(e().GetChat(svc, chat_));
    w["ada's chats"] = BytesOf(e().ListChats(svc, ada_, PageRequest{1000, "", true}));
    w["bob's chats"] = BytesOf(e().ListChats(svc, bob_, PageRequest{1000, "", true}));
    w["messages"] = BytesOf(e().ListMessages(svc, chat_, {1000, "", true}));
    w["votes"] = BytesOf(e().ListVotes(svc, chat_));
    w["admin_config"] = BytesOf(e().ListAdminConfig(svc));
    w["api_keys"] = BytesOf(e().ListApiKeys(svc));
    w["stats"] = Describe(e().Stats());
    return w;
  }
  void Baseline() { baseline_ = Capture(); }
  void ExpectUnchanged(const std::string& after) {
    auto now = Capture();
    for (const auto& [name, bytes] : baseline_) {
      if (name == "stats") {
        EXPECT_EQ(now[name], bytes) << "counters changed after " << after;
      } else {
        EXPECT_TRUE(now[name] == bytes) << name << " changed after " << after;
      }
    }
  }

  // Runs `patch` through every Update* method with the scope allowed to write each
  // record (the service), expecting invalid_argument and no change.
  void ExpectEveryUpdateRejects(const std::string& patch) {
    SCOPED_TRACE("patch: " + patch);
    Scope svc = Scope::Service();
    EXPECT_REJECTED(e().UpdateTenant(svc, acme_, patch), kInvalidArgument);
    EXPECT_REJECTED(e().UpdateUser(svc, ada_, patch), kInvalidArgument);
    EXPECT_REJECTED(e().UpdateAgent(svc, agent_, patch), kInvalidArgument);
    EXPECT_REJECTED(e().UpdateUserAgent(svc, ua_, patch), kInvalidArgument);
    EXPECT_REJECTED(e().UpdateChat(svc, chat_, patch), kInvalidArgument);
    EXPECT_REJECTED(e().UpdateChat(svc, chat_, patch, JsonMode::kReplace), kInvalidArgument);
    // The owner's own scope gets the same answer.
    Scope ada = Scope::ForUser(ada_);
    EXPECT_REJECTED(e().UpdateUser(ada, ada_, patch), kInvalidArgument);
    EXPECT_REJECTED(e().UpdateUserAgent(ada, ua_, patch), kInvalidArgument);
    EXPECT_REJECTED(e().UpdateChat(ada, chat_, patch), kInvalidArgument);
  }

  fb::MessageT Message(const std::string& parts) {
    fb::MessageT m;
    m.chat_id = FbId(chat_);
    m.role = fb::MessageRole::assistant;
    m.parts = parts;
    return m;
  }

  Uuid acme_, beta_, ada_, bob_, agent_, agent2_, ua_, chat_;
  std::map<std::string, std::string> baseline_;
};

// ------------------------------------------------------------------ patch syntax

TEST_F(ValidationTest, PatchesThatAreNotJsonAreRejected) {
  for (const std::string& patch :
       {std::string(""), std::string(" "), std::string("{"), std::string("}"),
        std::string("not json"), std::string(R"({"title":})"), std::string("{'title':'x'}"),
        std::string(R"({"title":"x"}})"), std::string(R"({"title":"x"} trailing)"),
        std::string(R"({"title":"x",})"), std::string(R"({title:"x"})"),
        std::string("{\"title\":\"unterminated}")}) {
    ExpectEveryUpdateRejects(patch);
  }
  // The message says what is wrong.
  auto r = e().UpdateUser(Scope::Service(), ada_, "{");
  EXPECT_NE(TextOf(r).find("JSON"), std::string::npos) << TextOf(r);
}

TEST_F(ValidationTest, PatchesThatAreNotObjectsAreRejected) {
  for (const std::string& patch :
       {std::string("[]"), std::string(R"([{"title":"x"}])"), std::string("1"),
        std::string("\"title\""), std::string("null"), std::string("true")}) {
    ExpectEveryUpdateRejects(patch);
  }
  auto r = e().UpdateChat(Scope::Service(), chat_, R"([{"title":"x"}])");
  EXPECT_NE(TextOf(r).find("object"), std::string::npos) << TextOf(r);
}

TEST_F(ValidationTest, UnknownFieldsInPatchesAreRejected) {
  for (const std::string& patch :
       {std::string(R"({"nope":1})"), std::string(R"({"Title":"x"})"),
        std::string(R"({"password":"hunter2"})"), std::string(R"({"":1})")}) {
    ExpectEveryUpdateRejects(patch);
  }
  // A known field does not carry an unknown one through, and the error names it.
  EXPECT_INVALID_NAMING(e().UpdateUser(Scope::Service(), ada_, R"({"full_name":"New","nope":1})"),
                        "nope");
  EXPECT_INVALID_NAMING(
      e().UpdateChat(Scope::Service(), chat_, R"({"title":"New","colour":"red"})"), "colour");
  EXPECT_INVALID_NAMING(e().UpdateUserAgent(Scope::Service(), ua_, R"({"nickname":"x"})"),
                        "nickname");
  EXPECT_INVALID_NAMING(e().UpdateAgent(Scope::Service(), agent_, R"({"owner":"x"})"), "owner");
  EXPECT_INVALID_NAMING(e().UpdateTenant(Scope::Service(), acme_, R"({"domain":"x"})"), "domain");
}

TEST_F(ValidationTest, StoreMaintainedFieldsInPatchesAreRejected) {
  const std::string uuid = Quoted(Missing().ToString());
  const std::map<std::string, std::string> common = {{"id", Quoted(ua_.ToString())},
                                                     {"created_at", "1"},
                                                     {"updated_at", "1"},
                                                     {"deleted_at", "0"}};
  Scope svc = Scope::Service();
  for (const auto& [field, value] : common) {
    SCOPED_TRACE(field);
    EXPECT_INVALID_NAMING(e().UpdateTenant(svc, acme_, Patch(field, value)), field);
    EXPECT_INVALID_NAMING(e().UpdateUser(svc, ada_, Patch(field, value)), field);
    EXPECT_INVALID_NAMING(e().UpdateAgent(svc, agent_, Patch(field, value)), field);
    EXPECT_INVALID_NAMING(e().UpdateUserAgent(svc, ua_, Patch(field, value)), field);
    EXPECT_INVALID_NAMING(e().UpdateChat(svc, chat_, Patch(field, value)), field);
  }
  EXPECT_INVALID_NAMING(e().UpdateAgent(svc, agent_, Patch("creator_id", Quoted(ada_.ToString()))),
                        "creator_id");
  // user_agents: identity plus every usage, quality and performance field (only
  // track_agent_usage and rate_agent change them), even when the value is the current one.
  for (const auto& [field, value] :
       std::map<std::string, std::string>{{"user_id", Quoted(bob_.ToString())},
                                          {"agent_id", Quoted(agent2_.ToString())},
                                          {"usage_count", "0"},
                                          {"message_count", "5"},
                                          {"conversation_count", "1"},
                                          {"success_count", "1"},
                                          {"error_count", "0"},
                                          {"user_rating", "5.0"},
                                          {"quality_score", "1.0"},
                                          {"last_rating_at", "1"},
                                          {"avg_response_time_ms", "10.5"},
                                          {"total_tokens_used", "100"},
                                          {"total_cost", "100"},
                                          {"added_at", "1"},
                                          {"first_used_at", "1"},
                                          {"last_used_at", "1"}}) {
    SCOPED_TRACE(field);
    EXPECT_INVALID_NAMING(e().UpdateUserAgent(svc, ua_, Patch(field, value)), field);
    EXPECT_INVALID_NAMING(e().UpdateUserAgent(Scope::ForUser(ada_), ua_, Patch(field, value)),
                          field);
  }
  // chats: owner and the totals AppendMessage keeps.
  for (const auto& [field, value] :
       std::map<std::string, std::string>{{"user_id", Quoted(bob_.ToString())},
                                          {"message_count", "0"},
                                          {"total_input_tokens", "0"},
                                          {"total_output_tokens", "0"},
                                          {"total_cost", "0"}}) {
    SCOPED_TRACE(field);
    EXPECT_INVALID_NAMING(e().UpdateChat(svc, chat_, Patch(field, value)), field);
    EXPECT_INVALID_NAMING(e().UpdateChat(Scope::ForUser(ada_), chat_, Patch(field, value)), field);
  }
  // Mixed with an allowed field: all or nothing.
  EXPECT_REJECTED(e().UpdateChat(svc, chat_, R"({"title":"renamed","message_count":99})"),
                  kInvalidArgument);
  EXPECT_REJECTED(e().UpdateUser(svc, ada_, R"({"full_name":"New Name","created_at":5})"),
                  kInvalidArgument);
}

// ------------------------------------------------------------------ field values

TEST_F(ValidationTest, InvalidUuidTextInPatchesIsRejected) {
  Scope svc = Scope::Service();
  const std::string good = Missing().ToString();
  for (const std::string& bad :
       {Quoted("nope"), Quoted(""), Quoted("123"), Quoted(good.substr(1)), Quoted(good + "0"),
        Quoted("{" + good + "}"), Quoted(good.substr(0, 8) + good.substr(9)),  // no dash
        Quoted("g" + good.substr(1)), std::string("5"), std::string("true"),
        std::string("[\"" + good + "\"]"), std::string("{}")}) {
    SCOPED_TRACE(bad);
    EXPECT_INVALID_NAMING(e().UpdateChat(svc, chat_, Patch("agent_id", bad)), "agent_id");
    EXPECT_INVALID_NAMING(e().UpdateChat(Scope::ForUser(ada_), chat_, Patch("agent_id", bad)),
                          "agent_id");
    EXPECT_INVALID_NAMING(e().UpdateUser(svc, ada_, Patch("tenant_id", bad)), "tenant_id");
    EXPECT_INVALID_NAMING(e().UpdateAgent(svc, agent_, Patch("tenant_id", bad)), "tenant_id");
    EXPECT_INVALID_NAMING(e().UpdateUserAgent(svc, ua_, Patch("last_conversation_id", bad)),
                          "last_conversation_id");
    EXPECT_INVALID_NAMING(e().UpdateUserAgent(svc, ua_, Patch("original_agent_id", bad)),
                          "original_agent_id");
    EXPECT_INVALID_NAMING(e().UpdateUserAgent(svc, ua_, Patch("team_id", bad)), "team_id");
  }
  // A list of ids with one bad entry is rejected as a whole.
  EXPECT_INVALID_NAMING(
      e().UpdateUserAgent(svc, ua_, Patch("shared_with", "[\"" + good + "\",\"nope\"]")),
      "shared_with");
  EXPECT_INVALID_NAMING(e().UpdateUserAgent(svc, ua_, Patch("shared_with", Quoted(good))),
                        "shared_with");
}

// The one error rule (docs/protocol.md): a reference to a missing record is not_found
// naming the field.
TEST_F(ValidationTest, ReferencesToMissingRecordsAreRejected) {
  Scope svc = Scope::Service();
  const std::string missing = Quoted(Missing().ToString());
  EXPECT_REJECTED(e().UpdateChat(svc, chat_, Patch("agent_id", missing)), kNotFound);
  EXPECT_REJECTED(e().UpdateUser(svc, ada_, Patch("tenant_id", missing)), kNotFound);
  EXPECT_REJECTED(e().UpdateAgent(svc, agent_, Patch("tenant_id", missing)), kNotFound);

  fb::UserT u;
  u.email = "carol@example.com";
  u.tenant_id = FbId(Missing());
  EXPECT_REJECTED(e().CreateUser(svc, u), kNotFound);
  fb::ChatT c;
  c.user_id = FbId(Missing());
  c.title = "orphan";
  EXPECT_REJECTED(e().CreateChat(svc, c), kNotFound);
  fb::ChatT c2;
  c2.user_id = FbId(ada_);
  c2.agent_id = FbId(Missing());
  EXPECT_REJECTED(e().CreateChat(svc, c2), kNotFound);
  fb::UserAgentT ua;
  ua.user_id = FbId(Missing());
  ua.agent_id = FbId(agent2_);
  EXPECT_REJECTED(e().CreateUserAgent(svc, ua), kNotFound);
  fb::UserAgentT ua2;
  ua2.user_id = FbId(ada_);
  ua2.agent_id = FbId(Missing());
  EXPECT_REJECTED(e().CreateUserAgent(svc, ua2), kNotFound);
  fb::AgentT a;
  a.name = "orphan";
  a.creator_id = FbId(Missing());
  EXPECT_REJECTED(e().CreateAgent(Scope::Admin(), a), kNotFound);
  fb::AgentT a2;
  a2.name = "orphan";
  a2.tenant_id = FbId(Missing());
  EXPECT_REJECTED(e().CreateAgent(Scope::Admin(), a2), kNotFound);
  fb::ApiKeyT k;
  k.role = fb::KeyRole::user;
  k.user_id = FbId(Missing());
  EXPECT_REJECTED(e().CreateApiKey(svc, k), kNotFound);
  // Messages and votes need an existing chat/message.
  fb::MessageT m = Message(R"([{"type":"text","text":"x"}])");
  m.chat_id = FbId(Missing());
  EXPECT_REJECTED(e().AppendMessage(svc, m), kNotFound);
  EXPECT_REJECTED(e().Vote(svc, chat_, Missing(), true), kNotFound);
  // A tenant that users still name is not purged.
  EXPECT_REJECTED(e().DeleteTenant(svc, acme_, DeleteMode::kHard), kInvalidArgument);
}

TEST_F(ValidationTest, UnknownEnumNamesAreRejected) {
  Scope svc = Scope::Service();
  for (const std::string& bad : {Quoted("god"), Quoted("Admin"), Quoted("ADMIN"), Quoted(""),
                                 Quoted("admin "), std::string("1"), std::string("null")}) {
    SCOPED_TRACE(bad);
    EXPECT_INVALID_NAMING(e().UpdateUser(svc, ada_, Patch("role", bad)), "role");
  }
  for (const std::string& bad : {Quoted("secret"), Quoted("PUBLIC"), Quoted("Private"),
                                 std::string("1"), std::string("true"), std::string("null")}) {
    SCOPED_TRACE(bad);
    EXPECT_INVALID_NAMING(e().UpdateChat(svc, chat_, Patch("visibility", bad)), "visibility");
    EXPECT_INVALID_NAMING(e().UpdateChat(Scope::ForUser(ada_), chat_, Patch("visibility", bad)),
                          "visibility");
  }
  // The message lists the closed set.
  auto r = e().UpdateUser(svc, ada_, R"({"role":"god"})");
  EXPECT_NE(TextOf(r).find("superadmin"), std::string::npos) << TextOf(r);

  // Out-of-range enum values in records handed to Create*.
  fb::UserT u;
  u.email = "carol@example.com";
  u.role = static_cast<fb::UserRole>(7);
  EXPECT_INVALID_NAMING(e().CreateUser(svc, u), "role");
  fb::ChatT c;
  c.user_id = FbId(ada_);
  c.visibility = static_cast<fb::ChatVisibility>(-1);
  EXPECT_INVALID_NAMING(e().CreateChat(svc, c), "visibility");
  fb::MessageT m = Message(R"([{"type":"text","text":"x"}])");
  m.role = static_cast<fb::MessageRole>(4);
  EXPECT_INVALID_NAMING(e().AppendMessage(svc, m), "role");
  fb::ApiKeyT k;
  k.role = static_cast<fb::KeyRole>(3);
  EXPECT_INVALID_NAMING(e().CreateApiKey(svc, k), "role");

  // The valid names work.
  ASSERT_OK(e().UpdateChat(svc, chat_, R"({"visibility":"public"})").status());
  ASSERT_OK(e().UpdateUser(svc, ada_, R"({"role":"superadmin"})").status());
}

TEST_F(ValidationTest, OutOfRangeNumbersAreRejected) {
  Scope svc = Scope::Service();
  for (const char* v : {"9.0", "2.0000001", "-0.1", "-1", "1e300"}) {
    SCOPED_TRACE(v);
    EXPECT_INVALID_NAMING(e().UpdateUserAgent(svc, ua_, Patch("custom_temperature", v)),
                          "custom_temperature");
    EXPECT_INVALID_NAMING(e().UpdateAgent(svc, agent_, Patch("temperature", v)), "temperature");
  }
  for (const char* v : {"2147483648", "-2147483649", "4294967296", "9223372036854775807",
                        "-9223372036854775808", "18446744073709551615"}) {
    SCOPED_TRACE(v);
    EXPECT_INVALID_NAMING(e().UpdateUserAgent(svc, ua_, Patch("sort_order", v)), "sort_order");
    EXPECT_INVALID_NAMING(e().UpdateUserAgent(Scope::ForUser(ada_), ua_, Patch("sort_order", v)),
                          "sort_order");
  }
  for (const char* v : {"0", "-5", "10000001", "4294967297", "18446744073709551615"}) {
    SCOPED_TRACE(v);
    EXPECT_INVALID_NAMING(e().UpdateUserAgent(svc, ua_, Patch("custom_max_tokens", v)),
                          "custom_max_tokens");
    EXPECT_INVALID_NAMING(e().UpdateAgent(svc, agent_, Patch("max_tokens", v)), "max_tokens");
  }
  // Times are microseconds since the epoch: never negative.
  EXPECT_INVALID_NAMING(e().UpdateUser(svc, ada_, Patch("last_seen_at", "-1")), "last_seen_at");
  EXPECT_INVALID_NAMING(e().UpdateUserAgent(svc, ua_, Patch("archived_at", "-1")), "archived_at");
  // Out-of-range values handed to Create* are checked too.
  fb::UserAgentT ua;
  ua.user_id = FbId(ada_);
  ua.agent_id = FbId(agent2_);
  ua.custom_temperature = 9.0;
  EXPECT_INVALID_NAMING(e().CreateUserAgent(svc, ua), "custom_temperature");
  fb::AgentT a;
  a.name = "hot";
  a.temperature = 2.5;
  EXPECT_INVALID_NAMING(e().CreateAgent(Scope::Admin(), a), "temperature");
  fb::AgentT a2;
  a2.name = "nan";
  a2.temperature = std::numeric_limits<double>::quiet_NaN();
  EXPECT_INVALID_NAMING(e().CreateAgent(Scope::Admin(), a2), "temperature");

  // The bounds themselves are accepted.
  auto lo = e().UpdateUserAgent(svc, ua_, R"({"sort_order":-2147483648,"custom_temperature":0})");
  ASSERT_OK(lo.status());
  EXPECT_EQ(lo.value()->sort_order(), std::numeric_limits<int32_t>::min());
  auto hi = e().UpdateUserAgent(svc, ua_, R"({"sort_order":2147483647,"custom_temperature":2.0})");
  ASSERT_OK(hi.status());
  EXPECT_EQ(hi.value()->sort_order(), std::numeric_limits<int32_t>::max());
  EXPECT_EQ(hi.value()->custom_temperature().value(), 2.0);
}

TEST_F(ValidationTest, ValuesOfTheWrongJsonTypeAreRejected) {
  Scope svc = Scope::Service();
  EXPECT_INVALID_NAMING(e().UpdateUser(svc, ada_, R"({"full_name":5})"), "full_name");
  EXPECT_INVALID_NAMING(e().UpdateUser(svc, ada_, R"({"full_name":["a"]})"), "full_name");
  EXPECT_INVALID_NAMING(e().UpdateUser(svc, ada_, R"({"onboarding_completed":"yes"})"),
                        "onboarding_completed");
  EXPECT_INVALID_NAMING(e().UpdateUser(svc, ada_, R"({"onboarding_completed":1})"),
                        "onboarding_completed");
  EXPECT_INVALID_NAMING(e().UpdateUser(svc, ada_, R"({"last_seen_at":1.5})"), "last_seen_at");
  EXPECT_INVALID_NAMING(e().UpdateUser(svc, ada_, R"({"last_seen_at":"1"})"), "last_seen_at");
  EXPECT_INVALID_NAMING(e().UpdateUserAgent(svc, ua_, R"({"sort_order":"3"})"), "sort_order");
  EXPECT_INVALID_NAMING(e().UpdateUserAgent(svc, ua_, R"({"sort_order":1.5})"), "sort_order");
  EXPECT_INVALID_NAMING(e().UpdateUserAgent(svc, ua_, R"({"is_favorite":1})"), "is_favorite");
  EXPECT_INVALID_NAMING(e().UpdateUserAgent(svc, ua_, R"({"custom_temperature":"0.5"})"),
                        "custom_temperature");
  EXPECT_INVALID_NAMING(e().UpdateUserAgent(svc, ua_, R"({"tags":"a"})"), "tags");
  EXPECT_INVALID_NAMING(e().UpdateUserAgent(svc, ua_, R"({"tags":["a",1]})"), "tags");
  EXPECT_INVALID_NAMING(e().UpdateUserAgent(svc, ua_, R"({"tags":["a",""]})"), "tags");
  EXPECT_INVALID_NAMING(e().UpdateChat(svc, chat_, R"({"title":{"t":1}})"), "title");
  EXPECT_INVALID_NAMING(e().UpdateAgent(svc, agent_, R"({"is_public":"false"})"), "is_public");
}

// ------------------------------------------------------------------ text

TEST_F(ValidationTest, OverLongStringsAreRejectedAtTheCap) {
  Scope svc = Scope::Service(), ada = Scope::ForUser(ada_);
  // full_name: 200 characters.
  const std::string huge = Xs(10'000);
  EXPECT_INVALID_NAMING(e().UpdateUser(svc, ada_, Patch("full_name", Quoted(huge))), "full_name");
  EXPECT_INVALID_NAMING(e().UpdateUser(ada, ada_, Patch("full_name", Quoted(huge))), "full_name");
  EXPECT_INVALID_NAMING(e().UpdateUser(ada, ada_, Patch("full_name", Quoted(Xs(201)))),
                        "full_name");
  // Caps count characters (code points, as varchar(n)), not bytes: 200 two-byte
  // characters fit, one more character does not.
  std::string e_acute;
  for (int i = 0; i < 200; ++i) e_acute += "\xC3\xA9";
  EXPECT_INVALID_NAMING(e().UpdateUser(ada, ada_, Patch("full_name", Quoted(e_acute + "x"))),
                        "full_name");
  EXPECT_OK(e().UpdateUser(ada, ada_, Patch("full_name", Quoted(e_acute))));
  EXPECT_OK(e().UpdateUser(ada, ada_, Patch("full_name", Quoted("Ada"))));
  Baseline();
  fb::UserT u;
  u.email = "carol@example.com";
  u.full_name = huge;
  EXPECT_INVALID_NAMING(e().CreateUser(svc, u), "full_name");

  EXPECT_INVALID_NAMING(e().UpdateUser(svc, ada_, Patch("job_title", Quoted(Xs(201)))),
                        "job_title");
  EXPECT_INVALID_NAMING(e().UpdateUser(svc, ada_, Patch("avatar_url", Quoted(Xs(2049)))),
                        "avatar_url");
  EXPECT_INVALID_NAMING(e().UpdateChat(ada, chat_, Patch("title", Quoted(Xs(1001)))), "title");
  EXPECT_INVALID_NAMING(e().UpdateTenant(svc, acme_, Patch("name", Quoted(Xs(201)))), "name");
  EXPECT_INVALID_NAMING(e().UpdateTenant(svc, acme_, Patch("slug", Quoted(Xs(65)))), "slug");
  EXPECT_INVALID_NAMING(e().UpdateAgent(svc, agent_, Patch("name", Quoted(Xs(201)))), "name");
  EXPECT_INVALID_NAMING(e().UpdateAgent(svc, agent_, Patch("type", Quoted(Xs(51)))), "type");
  EXPECT_INVALID_NAMING(e().UpdateAgent(svc, agent_, Patch("system_prompt", Quoted(Xs(65537)))),
                        "system_prompt");
  EXPECT_INVALID_NAMING(e().UpdateUserAgent(ada, ua_, Patch("custom_color", Quoted(Xs(65)))),
                        "custom_color");
  EXPECT_INVALID_NAMING(e().UpdateUserAgent(ada, ua_, Patch("notes", Quoted(Xs(65537)))), "notes");
  EXPECT_INVALID_NAMING(e().UpdateUserAgent(ada, ua_, Patch("tags", "[\"" + Xs(65) + "\"]")),
                        "tags");
  std::string many_tags = "[";
  for (int i = 0; i < 65; ++i) many_tags += (i ? ",\"t" : "\"t") + std::to_string(i) + "\"";
  many_tags += "]";
  EXPECT_INVALID_NAMING(e().UpdateUserAgent(ada, ua_, Patch("tags", many_tags)), "tags");

  fb::ChatT c;
  c.user_id = FbId(ada_);
  c.title = Xs(1001);
  EXPECT_INVALID_NAMING(e().CreateChat(svc, c), "title");
  fb::TenantT t;
  t.name = Xs(201);
  t.slug = "gamma";
  EXPECT_INVALID_NAMING(e().CreateTenant(svc, t), "name");
  fb::AgentT a;
  a.name = Xs(201);
  EXPECT_INVALID_NAMING(e().CreateAgent(Scope::Admin(), a), "name");
  fb::MessageT m = Message(R"([{"type":"text","text":"x"}])");
  m.model_used = Xs(201);
  EXPECT_INVALID_NAMING(e().AppendMessage(svc, m), "model_used");
  EXPECT_INVALID_NAMING(e().PutAdminConfig(svc, Xs(201), "{}"), "config_key");
  fb::ApiKeyT k;
  k.role = fb::KeyRole::admin;
  k.name = Xs(201);
  EXPECT_INVALID_NAMING(e().CreateApiKey(svc, k), "name");

  // Exactly at the cap is fine.
  auto at_cap = e().UpdateUser(ada, ada_, Patch("full_name", Quoted(Xs(200))));
  ASSERT_OK(at_cap.status());
  EXPECT_EQ(Str(at_cap.value()->full_name()).size(), 200u);
  ASSERT_OK(e().UpdateUser(ada, ada_, Patch("full_name", Quoted(e_acute))).status());
  ASSERT_OK(e().UpdateChat(ada, chat_, Patch("title", Quoted(Xs(1000)))).status());
  ASSERT_OK(e().UpdateTenant(svc, acme_, Patch("slug", Quoted(Xs(64)))).status());
}

// Raw bytes that are not UTF-8: a bad continuation byte, an encoded surrogate (U+D800),
// an overlong '/', a code point above U+10FFFF, a truncated sequence, stray bytes.
const std::vector<std::string>& BadUtf8() {
  static const std::vector<std::string> v = {
      "\xC3\x28", "\xED\xA0\x80", "\xC0\xAF", "\xF4\x90\x80\x80",
      "\xE2\x82", "\xFF",         "\x80",     "ok\xC3"};
  return v;
}

TEST_F(ValidationTest, InvalidUtf8IsRejectedInPatches) {
  Scope svc = Scope::Service(), ada = Scope::ForUser(ada_);
  for (const std::string& bad : BadUtf8()) {
    SCOPED_TRACE(::testing::PrintToString(bad));
    const std::string s = Quoted("a" + bad + "b");
    EXPECT_REJECTED(e().UpdateUser(ada, ada_, Patch("full_name", s)), kInvalidArgument);
    EXPECT_REJECTED(e().UpdateUser(svc, ada_, Patch("preferences", "{\"k\":" + s + "}")),
                    kInvalidArgument);
    EXPECT_REJECTED(e().UpdateChat(ada, chat_, Patch("title", s)), kInvalidArgument);
    EXPECT_REJECTED(e().UpdateUserAgent(ada, ua_, Patch("tags", "[" + s + "]")), kInvalidArgument);
    EXPECT_REJECTED(e().UpdateAgent(svc, agent_, Patch("description", s)), kInvalidArgument);
    EXPECT_REJECTED(e().UpdateTenant(svc, acme_, Patch("plan", s)), kInvalidArgument);
    // In a field name too.
    EXPECT_REJECTED(e().UpdateUser(ada, ada_, "{\"full" + bad + "\":\"x\"}"), kInvalidArgument);
  }
  // Escaped lone surrogates are not characters either.
  for (const std::string& esc :
       {std::string("\\ud800"), std::string("\\udc00"), std::string("\\ud800\\u0041")}) {
    SCOPED_TRACE(esc);
    EXPECT_REJECTED(e().UpdateUser(ada, ada_, Patch("full_name", Quoted(esc))), kInvalidArgument);
  }
  // A valid escaped pair is fine and stored as UTF-8.
  auto ok = e().UpdateUser(ada, ada_, Patch("full_name", Quoted("\\ud83d\\ude00")));
  ASSERT_OK(ok.status());
  EXPECT_EQ(Str(ok.value()->full_name()), "\xF0\x9F\x98\x80");
}

TEST_F(ValidationTest, InvalidUtf8IsRejectedOnCreate) {
  Scope svc = Scope::Service();
  for (const std::string& bad : BadUtf8()) {
    SCOPED_TRACE(::testing::PrintToString(bad));
    fb::UserT u;
    u.email = "carol@example.com";
    u.full_name = "Carol" + bad;
    EXPECT_INVALID_NAMING(e().CreateUser(svc, u), "full_name");
    fb::UserT u2;
    u2.email = "carol" + bad + "@example.com";
    EXPECT_INVALID_NAMING(e().CreateUser(svc, u2), "email");
    fb::UserT u3;
    u3.email = "carol@example.com";
    u3.preferences = "{\"k\":\"" + bad + "\"}";
    EXPECT_INVALID_NAMING(e().CreateUser(svc, u3), "preferences");
    fb::TenantT t;
    t.name = "Gamma" + bad;
    t.slug = "gamma";
    EXPECT_INVALID_NAMING(e().CreateTenant(svc, t), "name");
    fb::AgentT a;
    a.name = "agent" + bad;
    EXPECT_INVALID_NAMING(e().CreateAgent(Scope::Admin(), a), "name");
    fb::ChatT c;
    c.title = "title" + bad;
    EXPECT_INVALID_NAMING(e().CreateChat(Scope::ForUser(ada_), c), "title");
    fb::UserAgentT ua;
    ua.agent_id = FbId(agent2_);
    ua.custom_name = "name" + bad;
    EXPECT_INVALID_NAMING(e().CreateUserAgent(Scope::ForUser(ada_), ua), "custom_name");
    fb::UserAgentT ua2;
    ua2.agent_id = FbId(agent2_);
    ua2.tags = {"fine", "tag" + bad};
    EXPECT_INVALID_NAMING(e().CreateUserAgent(Scope::ForUser(ada_), ua2), "tags");
    fb::MessageT m = Message(R"([{"type":"text","text":"x"}])");
    m.model_used = "gpt" + bad;
    EXPECT_INVALID_NAMING(e().AppendMessage(svc, m), "model_used");
    EXPECT_INVALID_NAMING(e().AppendMessage(svc, Message("[\"" + bad + "\"]")), "parts");
    EXPECT_INVALID_NAMING(e().PutAdminConfig(svc, "key" + bad, "{}"), "config_key");
    EXPECT_INVALID_NAMING(e().PutAdminConfig(svc, "site", "{\"v\":\"" + bad + "\"}"),
                          "config_data");
  }
}

// ------------------------------------------------------------------ uniqueness

TEST_F(ValidationTest, MalformedEmailsAreRejected) {
  Scope svc = Scope::Service();
  for (const std::string& email :
       {std::string(""), std::string("no-at-sign"), std::string("no-at-sign.example.com"),
        std::string("@example.com"), std::string("carol@"), std::string("carol@@example.com"),
        std::string("a@b@example.com"), std::string("carol smith@example.com"),
        std::string(" carol@example.com"), std::string("carol@example.com\n"),
        std::string("carol\t@example.com"), Xs(243) + "@example.com" /* 255 bytes */}) {
    SCOPED_TRACE(::testing::PrintToString(email));
    fb::UserT u;
    u.email = email;
    EXPECT_INVALID_NAMING(e().CreateUser(svc, u), "email");
    EXPECT_INVALID_NAMING(e().UpdateUser(svc, bob_, Patch("email", JsonQuote(email))), "email");
  }
  EXPECT_INVALID_NAMING(e().UpdateUser(svc, bob_, R"({"email":null})"), "email");
  // 254 bytes is the longest allowed.
  fb::UserT u;
  u.email = Xs(242) + "@example.com";
  ASSERT_OK(e().CreateUser(svc, u).status());
}

TEST_F(ValidationTest, EmailsDifferingOnlyInCaseAreDuplicates) {
  Scope svc = Scope::Service();
  for (const std::string& email :
       {std::string("ada@example.com"), std::string("ADA@EXAMPLE.COM"),
        std::string("Ada@Example.com"), std::string("aDa@eXample.CoM")}) {
    SCOPED_TRACE(email);
    fb::UserT u;
    u.email = email;
    u.full_name = "Impostor";
    EXPECT_REJECTED(e().CreateUser(svc, u), kAlreadyExists);
    EXPECT_REJECTED(e().UpdateUser(svc, bob_, Patch("email", Quoted(email))), kAlreadyExists);
  }
  // Lookups ignore case too, and a user may change the case of its own address.
  auto found = e().GetUserByEmail(svc, "ADA@example.COM");
  ASSERT_OK(found.status());
  EXPECT_EQ(Id(found.value()->id()), ada_);
  auto recased = e().UpdateUser(svc, ada_, R"({"email":"Ada@Example.com"})");
  ASSERT_OK(recased.status());
  EXPECT_EQ(Str(recased.value()->email()), "Ada@Example.com");
  EXPECT_EQ(Id(e().GetUserByEmail(svc, "ada@example.com").value()->id()), ada_);
  // The old spelling still blocks others.
  fb::UserT u;
  u.email = "ada@example.com";
  EXPECT_CODE(e().CreateUser(svc, u), kAlreadyExists);
}

TEST_F(ValidationTest, DuplicateTenantSlugsAreRejected) {
  Scope svc = Scope::Service();
  fb::TenantT t;
  t.name = "Another Acme";
  t.slug = "acme";
  EXPECT_REJECTED(e().CreateTenant(svc, t), kAlreadyExists);
  EXPECT_REJECTED(e().CreateTenant(Scope::Admin(), t), kAlreadyExists);
  EXPECT_REJECTED(e().UpdateTenant(svc, beta_, R"({"slug":"acme"})"), kAlreadyExists);
  // Slugs are a-z, 0-9, '-' and '_'.
  for (const std::string& slug :
       {std::string("Acme"), std::string("ACME"), std::string("a b"), std::string("a/b"),
        std::string("caf\xC3\xA9"), std::string("")}) {
    SCOPED_TRACE(slug);
    fb::TenantT bad;
    bad.name = "Bad";
    bad.slug = slug;
    EXPECT_INVALID_NAMING(e().CreateTenant(svc, bad), "slug");
  }
  // A tenant may keep its own slug.
  ASSERT_OK(e().UpdateTenant(svc, acme_, R"({"slug":"acme","name":"Acme Inc"})").status());
}

TEST_F(ValidationTest, TenantSlugRulesApplyToUpdatesToo) {
  Scope svc = Scope::Service();
  for (const std::string& slug :
       {std::string("Beta"), std::string("BETA"), std::string("beta corp"),
        std::string("beta/corp"), std::string("b\\u00e9ta")}) {
    SCOPED_TRACE(slug);
    EXPECT_INVALID_NAMING(e().UpdateTenant(svc, beta_, Patch("slug", Quoted(slug))), "slug");
  }
}

TEST_F(ValidationTest, DuplicateUserAgentsAreRejected) {
  fb::UserAgentT ua;
  ua.user_id = FbId(ada_);
  ua.agent_id = FbId(agent_);
  ua.custom_name = "second copy";
  EXPECT_REJECTED(e().CreateUserAgent(Scope::Service(), ua), kAlreadyExists);
  EXPECT_REJECTED(e().CreateUserAgent(Scope::ForUser(ada_), ua), kAlreadyExists);
  ua.id = FbId(Missing());  // a fresh client id does not make it a different row
  EXPECT_REJECTED(e().CreateUserAgent(Scope::Service(), ua), kAlreadyExists);
  // The same agent for another user is fine.
  fb::UserAgentT bobs;
  bobs.user_id = FbId(bob_);
  bobs.agent_id = FbId(agent_);
  ASSERT_OK(e().CreateUserAgent(Scope::Service(), bobs).status());
}

// ------------------------------------------------------------------ JSON fields

TEST_F(ValidationTest, JsonFieldsOverTheCapAreRejected) {
  Scope svc = Scope::Service(), ada = Scope::ForUser(ada_);
  const size_t cap = 64 << 10;
  // {"k":"<n x>"} is n + 8 bytes.
  auto doc = [](size_t n) { return "{\"k\":\"" + Xs(n) + "\"}"; };
  EXPECT_INVALID_NAMING(e().UpdateUser(ada, ada_, Patch("preferences", doc(cap - 7))),
                        "preferences");
  EXPECT_INVALID_NAMING(
      e().UpdateUser(ada, ada_, Patch("preferences", doc(cap)), JsonMode::kReplace), "preferences");
  EXPECT_INVALID_NAMING(e().UpdateUserAgent(ada, ua_, Patch("metadata", doc(cap))), "metadata");
  EXPECT_INVALID_NAMING(e().UpdateChat(ada, chat_, Patch("last_context", doc(cap))),
                        "last_context");
  EXPECT_INVALID_NAMING(e().UpdateAgent(svc, agent_, Patch("capabilities", doc(cap))),
                        "capabilities");

  fb::UserT u;
  u.email = "carol@example.com";
  u.notification_settings = doc(cap);
  EXPECT_INVALID_NAMING(e().CreateUser(svc, u), "notification_settings");
  fb::AgentT a;
  a.name = "big";
  a.capabilities = doc(cap);
  EXPECT_INVALID_NAMING(e().CreateAgent(Scope::Admin(), a), "capabilities");
  EXPECT_INVALID_NAMING(e().AppendMessage(svc, Message("[\"" + Xs(cap) + "\"]")), "parts");
  fb::MessageT m = Message("[]");
  m.attachments = "[\"" + Xs(cap) + "\"]";
  EXPECT_INVALID_NAMING(e().AppendMessage(svc, m), "attachments");
  EXPECT_INVALID_NAMING(e().PutAdminConfig(svc, "site", doc(cap)), "config_data");
  EXPECT_INVALID_NAMING(e().PutAdminConfig(svc, "new", doc(cap)), "config_data");

  // Exactly 64 KiB is accepted.
  auto at_cap = e().UpdateUser(ada, ada_, Patch("preferences", doc(cap - 8)));
  ASSERT_OK(at_cap.status());
  EXPECT_EQ(Str(at_cap.value()->preferences()).size(), cap);

  // A merge that would grow a document past the cap is refused, keeping the old one.
  ASSERT_OK(
      e().UpdateUser(ada, ada_, Patch("preferences", "{\"k\":null,\"a\":\"" + Xs(40'000) + "\"}"))
          .status());
  Baseline();
  EXPECT_INVALID_NAMING(
      e().UpdateUser(ada, ada_, Patch("preferences", "{\"b\":\"" + Xs(30'000) + "\"}")),
      "preferences");
}

// A deeply nested document is refused with a status, like any other bad document, and
// does not take the process down.
TEST_F(ValidationTest, DeeplyNestedJsonIsRejectedWithoutCrashing) {
  const std::string deep = std::string(200'000, '[') + std::string(200'000, ']');
  EXPECT_REJECTED(
      e().UpdateUser(Scope::ForUser(ada_), ada_, Patch("preferences", "{\"k\":" + deep + "}")),
      kInvalidArgument);
  EXPECT_REJECTED(e().UpdateChat(Scope::ForUser(ada_), chat_, Patch("last_context", deep)),
                  kInvalidArgument);
  EXPECT_REJECTED(e().AppendMessage(Scope::Service(), Message(deep)), kInvalidArgument);
  EXPECT_REJECTED(e().PutAdminConfig(Scope::Service(), "deep", deep), kInvalidArgument);
}

TEST_F(ValidationTest, JsonFieldsOfTheWrongShapeAreRejected) {
  Scope svc = Scope::Service(), ada = Scope::ForUser(ada_);
  for (const std::string& v :
       {std::string("[1]"), std::string("\"dark\""), std::string("5"), std::string("true")}) {
    SCOPED_TRACE(v);
    EXPECT_INVALID_NAMING(e().UpdateUser(ada, ada_, Patch("preferences", v)), "preferences");
    EXPECT_INVALID_NAMING(e().UpdateUser(ada, ada_, Patch("preferences", v), JsonMode::kReplace),
                          "preferences");
    EXPECT_INVALID_NAMING(e().UpdateUser(ada, ada_, Patch("notification_settings", v)),
                          "notification_settings");
    EXPECT_INVALID_NAMING(e().UpdateUserAgent(ada, ua_, Patch("settings", v)), "settings");
    EXPECT_INVALID_NAMING(e().UpdateUserAgent(ada, ua_, Patch("share_settings", v)),
                          "share_settings");
  }
  for (const std::string& text : {std::string("[]"), std::string("\"x\""), std::string("{"),
                                  std::string("{\"a\":}"), std::string("nope")}) {
    SCOPED_TRACE(text);
    fb::UserT u;
    u.email = "carol@example.com";
    u.preferences = text;
    EXPECT_INVALID_NAMING(e().CreateUser(svc, u), "preferences");
    fb::UserAgentT ua;
    ua.user_id = FbId(ada_);
    ua.agent_id = FbId(agent2_);
    ua.settings = text;
    EXPECT_INVALID_NAMING(e().CreateUserAgent(svc, ua), "settings");
  }
  // Free-form JSON fields still need to be JSON.
  fb::AgentT a;
  a.name = "broken";
  a.capabilities = "{tools:[]}";
  EXPECT_INVALID_NAMING(e().CreateAgent(Scope::Admin(), a), "capabilities");
  EXPECT_INVALID_NAMING(e().PutAdminConfig(svc, "site", "{'banner':'x'}"), "config_data");
  fb::ChatT c;
  c.user_id = FbId(ada_);
  c.last_context = "{";
  EXPECT_INVALID_NAMING(e().CreateChat(svc, c), "last_context");
}

// ------------------------------------------------------------------ messages

TEST_F(ValidationTest, MessagePartsMustBeAJsonArray) {
  Scope svc = Scope::Service(), ada = Scope::ForUser(ada_);
  for (const std::string& parts :
       {std::string("{}"), std::string(R"({"type":"text","text":"hi"})"), std::string("\"hi\""),
        std::string("42"), std::string("null"), std::string("not json"), std::string("["),
        std::string("[1,]"), std::string("[] []")}) {
    SCOPED_TRACE(parts);
    EXPECT_INVALID_NAMING(e().AppendMessage(svc, Message(parts)), "parts");
    EXPECT_INVALID_NAMING(e().AppendMessage(ada, Message(parts)), "parts");
  }
  EXPECT_INVALID_NAMING(e().AppendMessage(svc, Message("")), "parts");
  fb::MessageT m = Message(R"([{"type":"text","text":"hi"}])");
  m.attachments = R"({"file":"a.png"})";
  EXPECT_INVALID_NAMING(e().AppendMessage(svc, m), "attachments");
  fb::MessageT no_chat = Message("[]");
  no_chat.chat_id.reset();
  EXPECT_INVALID_NAMING(e().AppendMessage(svc, no_chat), "chat_id");
}

TEST_F(ValidationTest, NegativeTokensOrCostAreRejected) {
  Scope svc = Scope::Service(), ada = Scope::ForUser(ada_);
  const int64_t min = std::numeric_limits<int64_t>::min();
  EXPECT_INVALID_NAMING(Append(svc, chat_, "x", -1, 0, 0), "tokens");
  EXPECT_INVALID_NAMING(Append(svc, chat_, "x", 0, -1, 0), "tokens");
  EXPECT_INVALID_NAMING(Append(ada, chat_, "x", min, 0, 0), "tokens");
  EXPECT_INVALID_NAMING(Append(svc, chat_, "x", 0, 0, -1), "cost");
  EXPECT_INVALID_NAMING(Append(ada, chat_, "x", 0, 0, min), "cost");
  EXPECT_INVALID_NAMING(Append(svc, chat_, "x", 5, 5, -5), "cost");
}

// Seed 001: message tokens are INTEGER, cost DECIMAL(10,6) (micro-USD here). A message
// past either range is refused naming the field; the chat's int64 totals still refuse to
// overflow, which no realistic number of messages in range can reach.
TEST_F(ValidationTest, MessageTokensAndCostKeepTheSeedRanges) {
  const int64_t max = std::numeric_limits<int64_t>::max();
  EXPECT_INVALID_NAMING(Append(Scope::Service(), chat_, "x", max, 0, 0), "input_tokens");
  EXPECT_INVALID_NAMING(Append(Scope::Service(), chat_, "x", 0, 2147483648, 0), "output_tokens");
  EXPECT_INVALID_NAMING(Append(Scope::Service(), chat_, "x", 0, 0, 10'000'000'000), "cost");
  // The largest values of the ranges are fine. The chat already holds 10 input tokens.
  Row<fb::Chat> chat;
  fb::MessageT m = Message("[]");
  m.input_tokens = 2147483647;
  m.cost = 9'999'999'999;
  ASSERT_OK(e().AppendMessage(Scope::Service(), m, &chat).status());
  EXPECT_EQ(chat->total_input_tokens(), 10 + 2147483647LL);
  EXPECT_EQ(chat->message_count(), 2);
}

// ------------------------------------------------------------------ listings

TEST_F(ValidationTest, PagingLimitsOutsideOneToThousandAreRejected) {
  Scope svc = Scope::Service();
  for (uint32_t limit : {0u, 1001u, 100000u, std::numeric_limits<uint32_t>::max()}) {
    SCOPED_TRACE(limit);
    PageRequest p;
    p.limit = limit;
    EXPECT_INVALID_NAMING(e().ListTenants(svc, p), "limit");
    EXPECT_INVALID_NAMING(e().ListUsers(svc, p), "limit");
    EXPECT_INVALID_NAMING(e().ListAgents(svc, p), "limit");
    EXPECT_INVALID_NAMING(e().ListAgents(Scope::ForUser(ada_), p), "limit");
    EXPECT_INVALID_NAMING(e().ListChats(svc, ada_, p), "limit");
    EXPECT_INVALID_NAMING(e().ListChats(Scope::ForUser(ada_), ada_, p), "limit");
    for (bool from_end : {true, false}) {
      MessagePageRequest mp;
      mp.limit = limit;
      mp.from_end = from_end;
      EXPECT_INVALID_NAMING(e().ListMessages(svc, chat_, mp), "limit");
    }
  }
  for (uint32_t limit : {1u, 1000u}) {
    SCOPED_TRACE(limit);
    PageRequest p;
    p.limit = limit;
    EXPECT_OK(e().ListTenants(svc, p).status());
    EXPECT_OK(e().ListUsers(svc, p).status());
    EXPECT_OK(e().ListAgents(svc, p).status());
    EXPECT_OK(e().ListChats(svc, ada_, p).status());
    EXPECT_OK(e().ListMessages(svc, chat_, {limit, "", true}).status());
  }
  EXPECT_EQ(e().ListTenants(svc, {1, "", false})->rows.size(), 1u);
}

TEST_F(ValidationTest, MalformedCursorsAreRejected) {
  Scope svc = Scope::Service();
  const std::string id = Missing().ToString();
  // Tenants and users page by id.
  for (const std::string& cursor :
       {std::string("nope"), std::string("123"), id + "x", " " + id, id.substr(1), "1:" + id}) {
    SCOPED_TRACE(cursor);
    EXPECT_INVALID_NAMING(e().ListTenants(svc, {10, cursor, false}), "cursor");
    EXPECT_INVALID_NAMING(e().ListUsers(svc, {10, cursor, false}), "cursor");
  }
  // Agents, chats and messages page by (time, id).
  for (const std::string& cursor :
       {std::string("nope"), std::string("123"), id, ":" + id, "abc:" + id, "-5:" + id, "+5:" + id,
        "1.5:" + id, std::string("12:nope"), std::string("12:"), "99999999999999999999:" + id,
        "1:" + id + ":x", "1:" + id + " ", "1 :" + id}) {
    SCOPED_TRACE(cursor);
    EXPECT_INVALID_NAMING(e().ListAgents(svc, {10, cursor, false}), "cursor");
    EXPECT_INVALID_NAMING(e().ListChats(svc, ada_, {10, cursor, false}), "cursor");
    EXPECT_INVALID_NAMING(e().ListChats(Scope::ForUser(ada_), ada_, {10, cursor, false}), "cursor");
    EXPECT_INVALID_NAMING(e().ListMessages(svc, chat_, {10, cursor, true}), "cursor");
    EXPECT_INVALID_NAMING(e().ListMessages(svc, chat_, {10, cursor, false}), "cursor");
  }
  // Cursors the engine hands out work.
  auto first = e().ListTenants(svc, {1, "", false});
  ASSERT_OK(first.status());
  ASSERT_FALSE(first->next_cursor.empty());
  auto second = e().ListTenants(svc, {1, first->next_cursor, false});
  ASSERT_OK(second.status());
  ASSERT_EQ(second->rows.size(), 1u);
  EXPECT_NE(Id(second->rows[0]->id()), Id(first->rows[0]->id()));
  auto agents = e().ListAgents(svc, {1, "", false});
  ASSERT_OK(agents.status());
  ASSERT_FALSE(agents->next_cursor.empty());
  EXPECT_OK(e().ListAgents(svc, {1, agents->next_cursor, false}).status());
}

// ------------------------------------------------------------------ required fields

TEST_F(ValidationTest, RequiredFieldsAreEnforced) {
  Scope svc = Scope::Service();
  fb::TenantT no_name;
  no_name.slug = "gamma";
  EXPECT_INVALID_NAMING(e().CreateTenant(svc, no_name), "name");
  fb::TenantT no_slug;
  no_slug.name = "Gamma";
  EXPECT_INVALID_NAMING(e().CreateTenant(svc, no_slug), "slug");
  fb::AgentT a;
  EXPECT_INVALID_NAMING(e().CreateAgent(Scope::Admin(), a), "name");
  EXPECT_INVALID_NAMING(e().UpdateAgent(svc, agent_, R"({"name":null})"), "name");
  EXPECT_INVALID_NAMING(e().UpdateAgent(svc, agent_, R"({"name":""})"), "name");
  EXPECT_INVALID_NAMING(e().UpdateTenant(svc, acme_, R"({"name":""})"), "name");
  EXPECT_INVALID_NAMING(e().UpdateTenant(svc, acme_, R"({"slug":null})"), "slug");
  EXPECT_INVALID_NAMING(e().UpdateTenant(svc, acme_, R"({"slug":""})"), "slug");
  fb::UserAgentT ua;
  ua.user_id = FbId(ada_);
  EXPECT_INVALID_NAMING(e().CreateUserAgent(svc, ua), "agent_id");
  fb::UserAgentT ua2;
  ua2.agent_id = FbId(agent2_);
  EXPECT_INVALID_NAMING(e().CreateUserAgent(svc, ua2), "user_id");
  fb::ChatT c;
  c.title = "nobody's";
  EXPECT_INVALID_NAMING(e().CreateChat(svc, c), "user_id");
  EXPECT_INVALID_NAMING(e().PutAdminConfig(svc, "", "{}"), "config_key");
  EXPECT_INVALID_NAMING(e().PutAdminConfig(svc, "site", ""), "config_data");
  fb::UserT u;
  EXPECT_INVALID_NAMING(e().CreateUser(svc, u), "email");
}

TEST_F(ValidationTest, ApiKeyInputsAreChecked) {
  Scope svc = Scope::Service();
  fb::ApiKeyT user_without_user;
  user_without_user.role = fb::KeyRole::user;
  EXPECT_INVALID_NAMING(e().CreateApiKey(svc, user_without_user), "user_id");
  for (fb::KeyRole role : {fb::KeyRole::service, fb::KeyRole::admin}) {
    fb::ApiKeyT k;
    k.role = role;
    k.user_id = FbId(ada_);
    EXPECT_INVALID_NAMING(e().CreateApiKey(svc, k), "user_id");
  }
  for (int64_t expires : {clock_.NowMicros(), clock_.NowMicros() - 1, int64_t{-1}}) {
    fb::ApiKeyT k;
    k.role = fb::KeyRole::admin;
    k.expires_at = expires;
    EXPECT_INVALID_NAMING(e().CreateApiKey(svc, k), "expires_at");
  }
  // Secrets that were never issued do not authenticate, whatever their shape.
  for (const std::string& secret : {std::string(""), std::string("ask_"), std::string("nope"),
                                    "ask_" + std::string(32, '0') + "_" + std::string(64, '0')}) {
    EXPECT_CODE(e().Authenticate(secret), kPermissionDenied);
  }
  ExpectUnchanged("Authenticate with unknown secrets");
}

// References the data model's sources make foreign keys: seed 000 declares
// user_agents.original_agent_id REFERENCES agents(id), and every other tenant_id the
// engine accepts must name a live tenant.
TEST_F(ValidationTest, OriginalAgentIdMustNameAnAgent) {
  const std::string missing = Quoted(Missing().ToString());
  EXPECT_REJECTED(
      e().UpdateUserAgent(Scope::ForUser(ada_), ua_, Patch("original_agent_id", missing)),
      kNotFound);
  fb::UserAgentT ua;
  ua.agent_id = FbId(agent2_);
  ua.original_agent_id = FbId(Missing());
  EXPECT_REJECTED(e().CreateUserAgent(Scope::ForUser(ada_), ua), kNotFound);
}

TEST_F(ValidationTest, ApiKeyTenantMustNameATenant) {
  fb::ApiKeyT k;
  k.role = fb::KeyRole::admin;
  k.tenant_id = FbId(Missing());
  EXPECT_REJECTED(e().CreateApiKey(Scope::Service(), k), kNotFound);
}

}  // namespace
}  // namespace agentstore
