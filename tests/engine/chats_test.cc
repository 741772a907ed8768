// Chats, messages and votes: atomic append with chat totals, ordering and paging from
// either end, cascade on delete.
#include "test_util.h"

namespace agentstore::testing {
namespace {

class Chats : public EngineFixture {};

TEST_F(Chats, AppendUpdatesChatTotalsAtomically) {
  auto u = MakeUser("a@x.com");
  auto chat = MakeChat(Id(u->id()));
  clock_.Advance(10);
  Row<fb::Chat> after;
  fb::MessageT m;
  m.chat_id = FbId(Id(chat->id()));
  m.role = fb::MessageRole::assistant;
  m.parts = R"([{"type":"text","text":"hello"}])";
  m.model_used = "gpt-4o";
  m.input_tokens = 100;
  m.output_tokens = 20;
  m.cost = 1500;
  auto msg = e().AppendMessage(Scope::ForUser(Id(u->id())), m, &after);
  ASSERT_OK(msg);
  EXPECT_EQ(Id(msg->get()->user_id()), Id(u->id())) << "a message belongs to the chat's owner";
  EXPECT_EQ(after->message_count(), 1);
  EXPECT_EQ(after->total_input_tokens(), 100);
  EXPECT_EQ(after->total_output_tokens(), 20);
  EXPECT_EQ(after->total_cost(), 1500);
  EXPECT_EQ(after->updated_at(), msg->get()->created_at());
  ASSERT_OK(Append(Scope::Service(), Id(chat->id()), "more", 1, 2, 3));
  auto c = e().GetChat(Scope::Service(), Id(chat->id()));
  ASSERT_OK(c);
  EXPECT_EQ(c->get()->message_count(), 2);
  EXPECT_EQ(c->get()->total_input_tokens(), 101);
  EXPECT_EQ(c->get()->total_cost(), 1503);
}

TEST_F(Chats, RetriedAppendWithSameIdChangesNothing) {
  auto u = MakeUser("b@x.com");
  auto chat = MakeChat(Id(u->id()));
  fb::MessageT m;
  m.id = FbId(*Uuid::Parse("0190f3a2-7b1c-7def-8123-456789abcdef"));
  m.chat_id = FbId(Id(chat->id()));
  m.parts = "[]";
  m.input_tokens = 5;
  auto first = e().AppendMessage(Scope::Service(), m);
  ASSERT_OK(first);
  auto again = e().AppendMessage(Scope::Service(), m);
  ASSERT_OK(again);
  EXPECT_EQ(again->bytes(), first->bytes());
  EXPECT_EQ(e().GetChat(Scope::Service(), Id(chat->id()))->get()->message_count(), 1);
}

TEST_F(Chats, MessagesStayInAppendOrderEvenWhenTheClockStepsBack) {
  auto u = MakeUser("c@x.com");
  auto chat = MakeChat(Id(u->id()));
  std::vector<Uuid> ids;
  for (int i = 0; i < 5; ++i) {
    if (i == 3) clock_.Set(clock_.NowMicros() - 1'000'000);  // NTP step backwards
    auto m = Append(Scope::Service(), Id(chat->id()), "m" + std::to_string(i));
    ASSERT_OK(m);
    ids.push_back(Id(m->get()->id()));
  }
  MessagePageRequest req;
  req.from_end = false;
  auto page = e().ListMessages(Scope::Service(), Id(chat->id()), req);
  ASSERT_OK(page);
  ASSERT_EQ(page->rows.size(), 5u);
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(Id(page->rows[i]->id()), ids[i]);
}

TEST_F(Chats, PagesFromEitherEnd) {
  auto u = MakeUser("d@x.com");
  auto chat = MakeChat(Id(u->id()));
  std::vector<Uuid> ids;
  for (int i = 0; i < 45; ++i) {
    clock_.Advance(1);
    ids.push_back(Id(Append(Scope::Service(), Id(chat->id()), "m")->get()->id()));
  }
  // Last 20, then the 20 before, then the first 5: each page oldest first.
  MessagePageRequest back;
  std::vector<Uuid> seen;
  for (int i = 0; i < 5; ++i) {
    auto p = e().ListMessages(Scope::Service(), Id(chat->id()), back);
    ASSERT_OK(p);
    std::vector<Uuid> chunk;
    for (const auto& r : p->rows) chunk.push_back(Id(r->id()));
    seen.insert(seen.begin(), chunk.begin(), chunk.end());
    if (i == 0) {
      ASSERT_EQ(chunk.size(), 20u);
      EXPECT_EQ(chunk.back(), ids.back());
    }
    if (p->next_cursor.empty()) break;
    back.cursor = p->next_cursor;
  }
  EXPECT_EQ(seen, ids);
  // Forward from the start.
  MessagePageRequest fwd;
  fwd.from_end = false;
  fwd.limit = 17;
  seen.clear();
  for (int i = 0; i < 5; ++i) {
    auto p = e().ListMessages(Scope::Service(), Id(chat->id()), fwd);
    ASSERT_OK(p);
    for (const auto& r : p->rows) seen.push_back(Id(r->id()));
    if (p->next_cursor.empty()) break;
    fwd.cursor = p->next_cursor;
  }
  EXPECT_EQ(seen, ids);
}

TEST_F(Chats, UserChatsListNewestFirstWithCursor) {
  auto u = MakeUser("e@x.com");
  std::vector<Uuid> ids;
  for (int i = 0; i < 25; ++i) {
    clock_.Advance(1000);
    ids.push_back(Id(MakeChat(Id(u->id()), "chat " + std::to_string(i))->id()));
  }
  std::reverse(ids.begin(), ids.end());
  PageRequest req;
  req.limit = 10;
  std::vector<Uuid> seen;
  for (int i = 0; i < 5; ++i) {
    auto p = e().ListChats(Scope::ForUser(Id(u->id())), Id(u->id()), req);
    ASSERT_OK(p);
    for (const auto& r : p->rows) seen.push_back(Id(r->id()));
    if (p->next_cursor.empty()) break;
    req.cursor = p->next_cursor;
  }
  EXPECT_EQ(seen, ids);
}

TEST_F(Chats, VotesUpsertPerMessage) {
  auto u = MakeUser("f@x.com");
  auto chat = MakeChat(Id(u->id()));
  auto m1 = Append(Scope::Service(), Id(chat->id()), "one");
  auto m2 = Append(Scope::Service(), Id(chat->id()), "two");
  Scope us = Scope::ForUser(Id(u->id()));
  ASSERT_OK(e().Vote(us, Id(chat->id()), Id(m1->get()->id()), true));
  ASSERT_OK(e().Vote(us, Id(chat->id()), Id(m1->get()->id()), false));
  ASSERT_OK(e().Vote(us, Id(chat->id()), Id(m2->get()->id()), true));
  auto votes = e().ListVotes(us, Id(chat->id()));
  ASSERT_OK(votes);
  ASSERT_EQ(votes->size(), 2u);
  for (const auto& v : *votes) {
    bool is_m1 = Id(v->message_id()) == Id(m1->get()->id());
    EXPECT_EQ(v->is_upvoted(), !is_m1);
  }
  // A message of another chat cannot be voted on through this chat.
  auto other = MakeChat(Id(u->id()));
  auto m3 = Append(Scope::Service(), Id(other->id()), "three");
  EXPECT_CODE(e().Vote(us, Id(chat->id()), Id(m3->get()->id()), true), kNotFound);
}

TEST_F(Chats, HardDeleteTakesMessagesAndVotesSoftDeleteHides) {
  auto u = MakeUser("g@x.com");
  auto keep = MakeChat(Id(u->id()));
  auto gone = MakeChat(Id(u->id()));
  ASSERT_OK(Append(Scope::Service(), Id(keep->id()), "k"));
  for (int i = 0; i < 3; ++i) {
    auto m = Append(Scope::Service(), Id(gone->id()), "g");
    ASSERT_OK(e().Vote(Scope::Service(), Id(gone->id()), Id(m->get()->id()), true));
  }
  ASSERT_OK(e().DeleteChat(Scope::ForUser(Id(u->id())), Id(gone->id()), DeleteMode::kHard));
  auto s = e().Stats();
  EXPECT_EQ(s.records[int(RecordType::kChat)], 1u);
  EXPECT_EQ(s.records[int(RecordType::kMessage)], 1u);
  EXPECT_EQ(s.records[int(RecordType::kVote)], 0u);
  EXPECT_CODE(e().GetChat(Scope::Service(), Id(gone->id())), kNotFound);

  ASSERT_OK(e().DeleteChat(Scope::Service(), Id(keep->id()), DeleteMode::kSoft));
  EXPECT_CODE(e().GetChat(Scope::Service(), Id(keep->id())), kNotFound);
  EXPECT_CODE(e().ListMessages(Scope::Service(), Id(keep->id()), {}), kNotFound);
  auto list = e().ListChats(Scope::Service(), Id(u->id()), {});
  ASSERT_OK(list);
  EXPECT_TRUE(list->rows.empty());
  PageRequest with_deleted;
  with_deleted.include_deleted = true;
  list = e().ListChats(Scope::Service(), Id(u->id()), with_deleted);
  ASSERT_OK(list);
  EXPECT_EQ(list->rows.size(), 1u);
}

TEST_F(Chats, ChatNeedsALiveUserAndRealAgent) {
  fb::ChatT c;
  c.user_id = FbId(MakeUuidV7(1, 1, 1));
  EXPECT_CODE(e().CreateChat(Scope::Service(), c), kNotFound);  // user_id names no user
  auto u = MakeUser("h@x.com");
  c.user_id = FbId(Id(u->id()));
  c.agent_id = FbId(MakeUuidV7(1, 2, 2));
  EXPECT_CODE(e().CreateChat(Scope::Service(), c), kNotFound);  // agent_id names no agent
  c.agent_id = FbId(Id(MakeAgent("a")->id()));
  c.visibility = fb::ChatVisibility::public_;
  auto ok = e().CreateChat(Scope::Service(), c);
  ASSERT_OK(ok);
  EXPECT_EQ(ok->get()->visibility(), fb::ChatVisibility::public_);
  auto upd = e().UpdateChat(Scope::ForUser(Id(u->id())), Id(ok->get()->id()),
                            R"({"title":"renamed","visibility":"private","last_context":{"k":1}})");
  ASSERT_OK(upd);
  EXPECT_EQ(Str(upd->get()->title()), "renamed");
  EXPECT_EQ(upd->get()->visibility(), fb::ChatVisibility::private_);
}

}  // namespace
}  // namespace agentstore::testing

namespace agentstore::testing {
namespace {

TEST_F(Chats, ArenaCompactionKeepsEveryRecordAndIndexIntact) {
  auto u = MakeUser("compact@x.com");
  auto chat = MakeChat(Id(u->id()));
  std::vector<std::string> texts;
  for (int i = 0; i < 30; ++i) {
    texts.push_back("message " + std::to_string(i));
    ASSERT_OK(Append(Scope::Service(), Id(chat->id()), texts.back()));
  }
  ASSERT_OK(e().Vote(Scope::Service(), Id(chat->id()),
                     Id(Must(e().ListMessages(Scope::Service(), Id(chat->id()), {})).rows[0]->id()),
                     true));
  // Rewrite a large JSON field until dead space passes the compaction threshold
  // (8 MiB and more than the live bytes) in this user's shard.
  std::string big(60000, 'x');
  uint64_t prev_dead = 0, max_dead = 0;
  int compactions = 0;
  for (int i = 0; i < 200; ++i) {
    ASSERT_OK(e().UpdateChat(Scope::Service(), Id(chat->id()),
                             R"({"last_context":{"blob":")" + big + std::to_string(i) + R"("}})",
                             JsonMode::kReplace));
    uint64_t dead = e().Stats().arena_dead_bytes;
    if (dead < prev_dead) ++compactions;  // dead space only ever shrinks by compaction
    max_dead = std::max(max_dead, dead);
    prev_dead = dead;
  }
  EXPECT_GT(max_dead, 7u << 20);
  EXPECT_GE(compactions, 1) << "200 x 60 KB of dead versions must trigger compaction";
  MessagePageRequest all;
  all.limit = 100;
  all.from_end = false;
  auto page = Must(e().ListMessages(Scope::Service(), Id(chat->id()), all));
  ASSERT_EQ(page.rows.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i)
    EXPECT_NE(Str(page.rows[i]->parts()).find(texts[i]), std::string_view::npos);
  EXPECT_EQ(Must(e().ListVotes(Scope::Service(), Id(chat->id()))).size(), 1u);
  EXPECT_OK(e().GetUser(Scope::Service(), Id(u->id())));
  EXPECT_NE(Str(Must(e().GetChat(Scope::Service(), Id(chat->id())))->last_context()).find("199"),
            std::string_view::npos);
}

}  // namespace
}  // namespace agentstore::testing
