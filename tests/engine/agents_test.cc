// Agents and user_agents: visibility, the (user, agent) constraint, the list order and
// filters, and the counters that plain updates may not touch.
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace agentstore::testing {
namespace {

class Agents : public EngineFixture {
 protected:
  Result<Row<fb::UserAgent>> AddAgent(const Uuid& user, const Uuid& agent,
                                      const std::string& extra_patch = "") {
    fb::UserAgentT ua;
    ua.user_id = FbId(user);
    ua.agent_id = FbId(agent);
    auto r = e().CreateUserAgent(Scope::ForUser(user), ua);
    if (!r.ok() || extra_patch.empty()) return r;
    return e().UpdateUserAgent(Scope::ForUser(user), Id(r->get()->id()), extra_patch);
  }
};

TEST_F(Agents, UsersSeePublicAndOwnAgentsOnly) {
  auto u = MakeUser("a@x.com");
  auto v = MakeUser("b@x.com");
  Scope us = Scope::ForUser(Id(u->id()));
  auto pub = MakeAgent("public", true);
  auto priv = MakeAgent("platform-private", false);
  fb::AgentT mine;
  mine.name = "my agent";
  auto own = e().CreateAgent(us, mine);
  ASSERT_OK(own);
  EXPECT_EQ(Id(own->get()->creator_id()), Id(u->id())) << "a user's agent names it as creator";

  EXPECT_OK(e().GetAgent(us, Id(pub->id())));
  EXPECT_OK(e().GetAgent(us, Id(own->get()->id())));
  EXPECT_CODE(e().GetAgent(us, Id(priv->id())), kNotFound);
  EXPECT_CODE(e().GetAgent(Scope::ForUser(Id(v->id())), Id(own->get()->id())), kNotFound);
  auto list = e().ListAgents(us, PageRequest{});
  ASSERT_OK(list);
  EXPECT_EQ(list->rows.size(), 2u);
  auto all = e().ListAgents(Scope::Admin(), PageRequest{});
  ASSERT_OK(all);
  EXPECT_EQ(all->rows.size(), 3u);
  // Only the creator (or service/admin) changes an agent.
  EXPECT_CODE(e().UpdateAgent(us, Id(pub->id()), R"({"name":"mine now"})"), kPermissionDenied);
  EXPECT_OK(e().UpdateAgent(us, Id(own->get()->id()), R"({"name":"renamed"})"));
}

TEST_F(Agents, UserAgentIsUniquePerUserAndAgent) {
  auto u = MakeUser("c@x.com");
  auto a = MakeAgent("writer");
  auto first = AddAgent(Id(u->id()), Id(a->id()));
  ASSERT_OK(first);
  EXPECT_CODE(AddAgent(Id(u->id()), Id(a->id())), kAlreadyExists);
  auto by_pair = e().GetUserAgentFor(Scope::Service(), Id(u->id()), Id(a->id()));
  ASSERT_OK(by_pair);
  EXPECT_EQ(by_pair->bytes(), first->bytes());
  // Defaults from seed 000.
  const auto* ua = first->get();
  EXPECT_EQ(Str(ua->status()), "active");
  EXPECT_TRUE(ua->is_active() && ua->is_enabled() && ua->is_visible() &&
              ua->notifications_enabled());
  EXPECT_EQ(nlohmann::json::parse(Str(ua->notification_settings())),
            nlohmann::json::parse(R"({"email":true,"in_app":true})"));
  EXPECT_EQ(ua->usage_count(), 0);
  EXPECT_EQ(ua->added_at(), clock_.NowMicros());
  // A private agent of someone else cannot be added.
  auto priv = MakeAgent("secret", false);
  EXPECT_CODE(AddAgent(Id(u->id()), Id(priv->id())), kNotFound);  // as a missing agent
}

TEST_F(Agents, UsageCountersAreNotPlainUpdatable) {
  auto u = MakeUser("d@x.com");
  auto a = MakeAgent("coder");
  auto ua = AddAgent(Id(u->id()), Id(a->id()));
  ASSERT_OK(ua);
  for (const char* patch :
       {R"({"usage_count":99})", R"({"total_cost":1})", R"({"user_rating":5})",
        R"({"quality_score":1})", R"({"avg_response_time_ms":3})", R"({"first_used_at":1})",
        R"({"user_id":"0190f3a2-7b1c-7def-8123-456789abcdef"})"}) {
    EXPECT_CODE(e().UpdateUserAgent(Scope::Service(), Id(ua->get()->id()), patch), kInvalidArgument)
        << patch;
  }
  auto now = e().GetUserAgent(Scope::Service(), Id(ua->get()->id()));
  ASSERT_OK(now);
  EXPECT_EQ(now->bytes(), ua->bytes());
  // Customization fields are.
  auto ok =
      e().UpdateUserAgent(Scope::ForUser(Id(u->id())), Id(ua->get()->id()),
                          R"({"custom_name":"My Coder","tags":["dev","go"],"custom_temperature":0.3,
                                    "settings":{"verbose":true},"shared_with":["0190f3a2-7b1c-7def-8123-456789abcdef"]})");
  ASSERT_OK(ok);
  EXPECT_EQ(Str(ok->get()->custom_name()), "My Coder");
  EXPECT_EQ(ok->get()->tags()->size(), 2u);
  EXPECT_DOUBLE_EQ(*ok->get()->custom_temperature(), 0.3);
  EXPECT_EQ(ok->get()->shared_with()->size(), 1u);
}

TEST_F(Agents, ListOrdersPinnedThenFavoritesThenSortOrderAndFilters) {
  auto u = MakeUser("e@x.com");
  Uuid uid = Id(u->id());
  std::vector<Uuid> agents;
  for (int i = 0; i < 6; ++i) agents.push_back(Id(MakeAgent("agent" + std::to_string(i))->id()));
  ASSERT_OK(AddAgent(uid, agents[0], R"({"sort_order":5})"));
  ASSERT_OK(AddAgent(uid, agents[1], R"({"is_favorite":true,"sort_order":9,"folder":"work"})"));
  ASSERT_OK(AddAgent(uid, agents[2], R"({"is_pinned":true,"sort_order":7,"tags":["x"]})"));
  ASSERT_OK(AddAgent(uid, agents[3], R"({"sort_order":1,"folder":"work","tags":["x","y"]})"));
  ASSERT_OK(AddAgent(uid, agents[4], R"({"is_favorite":true,"sort_order":2})"));
  ASSERT_OK(AddAgent(uid, agents[5], R"({"archived_at":5})"));

  auto order = [&](const UserAgentFilter& f) {
    std::vector<Uuid> out;
    auto l = e().ListUserAgents(Scope::ForUser(uid), uid, f);
    EXPECT_TRUE(l.ok());
    if (l.ok())
      for (const auto& r : *l) out.push_back(Id(r->agent_id()));
    return out;
  };
  EXPECT_EQ(order({}), (std::vector<Uuid>{agents[2], agents[4], agents[1], agents[3], agents[0]}));
  UserAgentFilter work;
  work.folder = "work";
  EXPECT_EQ(order(work), (std::vector<Uuid>{agents[1], agents[3]}));
  UserAgentFilter tag;
  tag.tag = "x";
  EXPECT_EQ(order(tag), (std::vector<Uuid>{agents[2], agents[3]}));
  UserAgentFilter fav;
  fav.favorite = true;
  EXPECT_EQ(order(fav), (std::vector<Uuid>{agents[4], agents[1]}));
  UserAgentFilter archived;
  archived.archived = true;
  EXPECT_EQ(order(archived), (std::vector<Uuid>{agents[5]}));
}

TEST_F(Agents, HardDeletingAnAgentRemovesEveryUsersCopy) {
  auto a = MakeAgent("doomed");
  std::vector<Uuid> users;
  for (int i = 0; i < 5; ++i) {
    users.push_back(Id(MakeUser("f" + std::to_string(i) + "@x.com")->id()));
    ASSERT_OK(AddAgent(users.back(), Id(a->id())));
  }
  ASSERT_OK(e().DeleteAgent(Scope::Admin(), Id(a->id()), DeleteMode::kHard));
  EXPECT_EQ(e().Stats().records[int(RecordType::kUserAgent)], 0u);
  for (const Uuid& u : users) {
    auto l = e().ListUserAgents(Scope::Service(), u, {});
    ASSERT_OK(l);
    EXPECT_TRUE(l->empty());
  }
  Reopen();
  EXPECT_EQ(e().Stats().records[int(RecordType::kUserAgent)], 0u);
  EXPECT_EQ(e().Stats().records[int(RecordType::kAgent)], 0u);
}

TEST_F(Agents, SoftDeletedUserAgentIsHiddenAndFreesNothingElse) {
  auto u = MakeUser("g@x.com");
  auto a = MakeAgent("temp");
  auto ua = AddAgent(Id(u->id()), Id(a->id()));
  ASSERT_OK(ua);
  ASSERT_OK(
      e().DeleteUserAgent(Scope::ForUser(Id(u->id())), Id(ua->get()->id()), DeleteMode::kSoft));
  EXPECT_CODE(e().GetUserAgent(Scope::Service(), Id(ua->get()->id())), kNotFound);
  auto l = e().ListUserAgents(Scope::Service(), Id(u->id()), {});
  ASSERT_OK(l);
  EXPECT_TRUE(l->empty());
}

}  // namespace
}  // namespace agentstore::testing
