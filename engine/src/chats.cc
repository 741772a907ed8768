// Chats, their messages and votes, all in the chat owner's shard, so that appending a
// message and updating the chat's totals is one lock and one RocksDB batch.
#include <algorithm>

#include "engine_impl.h"

namespace agentstore {

using namespace internal;  // NOLINT

namespace {

// The chat at `id` if `scope` may see it (exists, not soft-deleted, owner live).
const fb::Chat* VisibleChat(const EngineState& impl, const Partition& shard, const Scope& scope,
                            const Uuid& id, Loc* loc_out = nullptr) {
  auto it = shard.chats.find(id);
  if (it == shard.chats.end()) return nullptr;
  const auto* c = View<fb::Chat>(shard, it->second);
  Uuid owner = ToUuid(c->user_id());
  if (!impl.Sees(scope, owner) || c->deleted_at() || !impl.UserLive(shard, owner)) return nullptr;
  if (loc_out) *loc_out = it->second;
  return c;
}

Status AddChecked(int64_t& total, int64_t delta, const char* what) {
  if (__builtin_add_overflow(total, delta, &total))
    return Status::InvalidArgument(std::string(what) + " would overflow");
  return Status::OK();
}

}  // namespace

Result<Row<fb::Chat>> Engine::CreateChat(const Scope& scope, const fb::ChatT& in) {
  if (scope.is_admin()) return Status::PermissionDenied("admin keys do not write chats");
  fb::ChatT c = in;
  if (!c.user_id) {
    if (!scope.is_user()) return Status::InvalidArgument("user_id is required");
    c.user_id = FbId(scope.user());
  }
  Uuid user = ToUuid(c.user_id.get());
  if (scope.is_user() && user != scope.user())
    return Status::PermissionDenied("a user creates chats only for itself");
  if (!impl_->Sees(scope, user)) return MissingRef("user_id", "user");
  bool id_given = c.id != nullptr;
  Uuid id = id_given ? ToUuid(c.id.get()) : impl_->NewId();
  c.id = FbId(id);
  c.message_count = c.total_input_tokens = c.total_output_tokens = c.total_cost = 0;
  c.created_at = c.updated_at = impl_->Now();
  c.deleted_at = 0;
  AS_RETURN_IF_ERROR(CheckRecord(c, impl_->Ctx()));

  Partition& g = impl_->global;
  Partition& shard = impl_->ShardOf(user);
  auto claim = impl_->ClaimId(id, id_given);
  if (id_given && impl_->InOtherShard(&Partition::chats, id, impl_->ShardIndex(user)))
    return Status::AlreadyExists("chat id is in use");
  ReadGlobalWriteShard lock(g, shard);
  if (auto it = shard.chats.find(id); it != shard.chats.end()) {
    if (ToUuid(View<fb::Chat>(shard, it->second)->user_id()) != user)
      return Status::AlreadyExists("chat id is in use");
    return RowAt<fb::Chat>(shard, it->second);
  }
  if (!impl_->UserLive(shard, user)) return MissingRef("user_id", "user");
  if (c.agent_id)
    AS_RETURN_IF_ERROR(CheckAgentUsableBy(g, ToUuid(c.agent_id.get()), user, "agent_id"));
  std::string bytes = Pack(c);
  storage::WriteBatch batch;
  batch.Put(RecordKey(RecordType::kChat, id), bytes);
  // A chat with an agent is one more conversation of the user's user_agent for it.
  std::optional<UserAgentRewrite> ua;
  if (c.agent_id) ua = AddConversation(shard, user, ToUuid(c.agent_id.get()), +1, batch);
  AS_ASSIGN_OR_RETURN(uint64_t ticket, impl_->Log(batch));
  impl_->IndexChat(shard, shard.arena.Append(bytes));
  if (ua) ApplyUserAgentRewrite(shard, *ua);
  lock.Unlock();
  AS_RETURN_IF_ERROR(impl_->Durable(ticket));
  return Row<fb::Chat>(bytes);
}

Result<Row<fb::Chat>> Engine::GetChat(const Scope& scope, const Uuid& id) {
  int s = ShardFor(*impl_, scope, &Partition::chats, id);
  if (s < 0) return NotFound("chat");
  Partition& shard = *impl_->shards[s];
  std::shared_lock lock(shard.mu);
  Loc loc;
  if (!VisibleChat(*impl_, shard, scope, id, &loc)) return NotFound("chat");
  return RowAt<fb::Chat>(shard, loc);
}

Result<Row<fb::Chat>> Engine::UpdateChat(const Scope& scope, const Uuid& id,
                                         std::string_view patch_text, JsonMode mode) {
  if (scope.is_admin()) return Status::PermissionDenied("admin keys do not write chats");
  Json patch;
  AS_RETURN_IF_ERROR(ParsePatch(patch_text, &patch));
  int s = ShardFor(*impl_, scope, &Partition::chats, id);
  if (s < 0) return NotFound("chat");
  Partition& g = impl_->global;
  Partition& shard = *impl_->shards[s];
  ReadGlobalWriteShard lock(g, shard);
  Loc loc;
  const fb::Chat* cur = VisibleChat(*impl_, shard, scope, id, &loc);
  if (!cur) return NotFound("chat");
  fb::ChatT c;
  cur->UnPackTo(&c);
  AS_RETURN_IF_ERROR(ApplyPatch(c, patch, /*privileged=*/scope.is_service(), impl_->Ctx(mode)));
  if (c.agent_id && patch.contains("agent_id"))
    AS_RETURN_IF_ERROR(
        CheckAgentUsableBy(g, ToUuid(c.agent_id.get()), ToUuid(c.user_id.get()), "agent_id"));
  c.updated_at = std::max(impl_->Now(), c.updated_at);
  std::string bytes = Pack(c);
  storage::WriteBatch batch;
  batch.Put(RecordKey(RecordType::kChat, id), bytes);
  // Moving a chat to another agent moves its conversation between user_agents.
  std::optional<UserAgentRewrite> ua_old, ua_new;
  Uuid owner = ToUuid(c.user_id.get());
  std::optional<Uuid> old_agent, new_agent;
  if (cur->agent_id()) old_agent = ToUuid(cur->agent_id());
  if (c.agent_id) new_agent = ToUuid(c.agent_id.get());
  if (old_agent != new_agent) {
    if (old_agent) ua_old = AddConversation(shard, owner, *old_agent, -1, batch);
    if (new_agent) ua_new = AddConversation(shard, owner, *new_agent, +1, batch);
  }
  AS_ASSIGN_OR_RETURN(uint64_t ticket, impl_->Log(batch));
  if (ua_old) ApplyUserAgentRewrite(shard, *ua_old);
  if (ua_new) ApplyUserAgentRewrite(shard, *ua_new);
  shard.arena.Free(loc);
  shard.chats[id] = shard.arena.Append(bytes);
  impl_->MaybeCompact(shard);
  lock.Unlock();
  AS_RETURN_IF_ERROR(impl_->Durable(ticket));
  return Row<fb::Chat>(bytes);
}

Status Engine::DeleteChat(const Scope& scope, const Uuid& id, DeleteMode mode) {
  if (scope.is_admin()) return Status::PermissionDenied("admin keys do not write chats");
  int s = ShardFor(*impl_, scope, &Partition::chats, id);
  if (s < 0) return NotFound("chat");
  Partition& shard = *impl_->shards[s];
  std::unique_lock lock(shard.mu);
  auto it = shard.chats.find(id);
  if (it == shard.chats.end()) return NotFound("chat");
  const auto* cur = View<fb::Chat>(shard, it->second);
  if (!impl_->Sees(scope, ToUuid(cur->user_id())) ||
      (mode == DeleteMode::kSoft && cur->deleted_at()))
    return NotFound("chat");
  storage::WriteBatch batch;
  if (mode == DeleteMode::kSoft) {
    fb::ChatT c;
    cur->UnPackTo(&c);
    c.deleted_at = c.updated_at = impl_->Now();
    std::string bytes = Pack(c);
    batch.Put(RecordKey(RecordType::kChat, id), bytes);
    AS_ASSIGN_OR_RETURN(uint64_t ticket, impl_->Log(batch));
    shard.arena.Free(it->second);
    it->second = shard.arena.Append(bytes);
    lock.unlock();
    return impl_->Durable(ticket);
  }
  // Messages and votes go with the chat; usage logs keep their row with chat_id cleared
  // (seed 001's ON DELETE SET NULL).
  impl_->AddChatDeletes(shard, id, batch);
  std::vector<std::string> cleared_logs;
  impl_->AddChatUsageClears(shard, id, batch, &cleared_logs);
  std::optional<UserAgentRewrite> ua;
  if (cur->agent_id())
    ua = AddConversation(shard, ToUuid(cur->user_id()), ToUuid(cur->agent_id()), -1, batch);
  AS_ASSIGN_OR_RETURN(uint64_t ticket, impl_->Log(batch));
  if (ua) ApplyUserAgentRewrite(shard, *ua);
  impl_->DropChat(shard, id);
  impl_->ApplyChatUsageClears(shard, id, cleared_logs);
  impl_->MaybeCompact(shard);
  lock.unlock();
  return impl_->Durable(ticket);
}

Result<Page<fb::Chat>> Engine::ListChats(const Scope& scope, const Uuid& user,
                                         const PageRequest& req) {
  AS_RETURN_IF_ERROR(CheckLimit(req.limit));
  TimeKey before{INT64_MAX, Uuid()};
  if (!req.cursor.empty()) AS_RETURN_IF_ERROR(DecodeTimeCursor(req.cursor, &before));
  Page<fb::Chat> page;
  if (!impl_->Sees(scope, user)) return page;
  bool deleted_too = req.include_deleted && !scope.is_user();
  Partition& shard = impl_->ShardOf(user);
  std::shared_lock lock(shard.mu);
  if (!impl_->UserLive(shard, user) && !deleted_too) return page;
  auto list = shard.chats_by_user.find(user);
  if (list == shard.chats_by_user.end()) return page;
  // Newest first: walk backwards from just before the cursor.
  const auto& set = list->second;
  auto it = req.cursor.empty() ? set.end() : set.lower_bound(before);
  while (it != set.begin()) {
    --it;
    Loc loc = shard.chats.at(it->second);
    if (View<fb::Chat>(shard, loc)->deleted_at() && !deleted_too) continue;
    if (page.rows.size() == req.limit) {
      const auto* last = page.rows.back().get();
      page.next_cursor = EncodeTimeCursor({last->created_at(), ToUuid(last->id())});
      break;
    }
    page.rows.push_back(RowAt<fb::Chat>(shard, loc));
  }
  return page;
}

// ---------------------------------------------------------------- messages

Result<Row<fb::Message>> Engine::AppendMessage(const Scope& scope, const fb::MessageT& in,
                                               Row<fb::Chat>* chat_out) {
  if (scope.is_admin()) return Status::PermissionDenied("admin keys do not write messages");
  if (!in.chat_id) return Status::InvalidArgument("chat_id is required");
  fb::MessageT m = in;
  Uuid chat_id = ToUuid(m.chat_id.get());
  bool id_given = m.id != nullptr;
  Uuid id = id_given ? ToUuid(m.id.get()) : impl_->NewId();
  m.id = FbId(id);
  if (m.parts.empty()) return Status::InvalidArgument("parts is required");
  if (m.input_tokens < 0 || m.output_tokens < 0)
    return Status::InvalidArgument("tokens must be >= 0");
  if (m.cost < 0) return Status::InvalidArgument("cost must be >= 0");
  m.created_at = 0;  // set below, under the lock
  AS_RETURN_IF_ERROR(CheckRecord(m, impl_->Ctx()));

  int s = ShardFor(*impl_, scope, &Partition::chats, chat_id);
  if (s < 0) return MissingRef("chat_id", "chat");
  Partition& shard = *impl_->shards[s];
  auto claim = impl_->ClaimId(id, id_given);
  if (id_given && impl_->InOtherShard(&Partition::messages, id, s))
    return Status::AlreadyExists("message id is in use");
  std::unique_lock lock(shard.mu);
  Loc chat_loc;
  const fb::Chat* chat = VisibleChat(*impl_, shard, scope, chat_id, &chat_loc);
  if (!chat) return MissingRef("chat_id", "chat");
  if (auto it = shard.messages.find(id); it != shard.messages.end()) {
    // A retried append with the same id: answer the stored message, change nothing.
    if (ToUuid(View<fb::Message>(shard, it->second)->chat_id()) != chat_id)
      return Status::AlreadyExists("message id is in use");
    if (chat_out) *chat_out = RowAt<fb::Chat>(shard, chat_loc);
    return RowAt<fb::Message>(shard, it->second);
  }
  m.user_id = FbId(ToUuid(chat->user_id()));
  // created_at strictly increases within a chat, so its order is the append order even
  // if the wall clock steps back.
  const auto& list = shard.chat_index[chat_id].messages;
  int64_t now = impl_->Now();
  m.created_at = list.empty() ? now : std::max(now, list.back().key.first + 1);

  fb::ChatT c;
  chat->UnPackTo(&c);
  c.message_count += 1;
  AS_RETURN_IF_ERROR(AddChecked(c.total_input_tokens, m.input_tokens, "total_input_tokens"));
  AS_RETURN_IF_ERROR(AddChecked(c.total_output_tokens, m.output_tokens, "total_output_tokens"));
  AS_RETURN_IF_ERROR(AddChecked(c.total_cost, m.cost, "total_cost"));
  c.updated_at = m.created_at;

  std::string msg_bytes = Pack(m);
  std::string chat_bytes = Pack(c);
  storage::WriteBatch batch;
  batch.Put(RecordKey(RecordType::kMessage, id), msg_bytes);
  batch.Put(RecordKey(RecordType::kChat, chat_id), chat_bytes);
  AS_ASSIGN_OR_RETURN(uint64_t ticket, impl_->Log(batch));
  impl_->IndexMessage(shard, shard.arena.Append(msg_bytes), /*keep_sorted=*/true);
  shard.arena.Free(chat_loc);
  shard.chats[chat_id] = shard.arena.Append(chat_bytes);
  impl_->MaybeCompact(shard);
  lock.unlock();
  AS_RETURN_IF_ERROR(impl_->Durable(ticket));
  if (chat_out) *chat_out = Row<fb::Chat>(chat_bytes);
  return Row<fb::Message>(msg_bytes);
}

Result<Row<fb::Message>> Engine::GetMessage(const Scope& scope, const Uuid& id) {
  int s = ShardFor(*impl_, scope, &Partition::messages, id);
  if (s < 0) return NotFound("message");
  Partition& shard = *impl_->shards[s];
  std::shared_lock lock(shard.mu);
  auto it = shard.messages.find(id);
  if (it == shard.messages.end()) return NotFound("message");
  const auto* m = View<fb::Message>(shard, it->second);
  if (!VisibleChat(*impl_, shard, scope, ToUuid(m->chat_id()))) return NotFound("message");
  return RowAt<fb::Message>(shard, it->second);
}

Result<Page<fb::Message>> Engine::ListMessages(const Scope& scope, const Uuid& chat_id,
                                               const MessagePageRequest& req) {
  AS_RETURN_IF_ERROR(CheckLimit(req.limit));
  TimeKey cursor{};
  if (!req.cursor.empty()) AS_RETURN_IF_ERROR(DecodeTimeCursor(req.cursor, &cursor));
  int s = ShardFor(*impl_, scope, &Partition::chats, chat_id);
  if (s < 0) return NotFound("chat");
  Partition& shard = *impl_->shards[s];
  std::shared_lock lock(shard.mu);
  if (!VisibleChat(*impl_, shard, scope, chat_id)) return NotFound("chat");
  Page<fb::Message> page;
  auto ci = shard.chat_index.find(chat_id);
  if (ci == shard.chat_index.end()) return page;
  const auto& list = ci->second.messages;
  // Rows always come oldest first; from_end picks the page just before the cursor.
  size_t begin, end;
  if (req.from_end) {
    end = req.cursor.empty() ? list.size()
                             : std::lower_bound(list.begin(), list.end(), cursor) - list.begin();
    begin = end > req.limit ? end - req.limit : 0;
    if (begin > 0) page.next_cursor = EncodeTimeCursor(list[begin].key);
  } else {
    begin =
        req.cursor.empty() ? 0 : std::upper_bound(list.begin(), list.end(), cursor) - list.begin();
    end = std::min(list.size(), begin + req.limit);
    if (end < list.size()) page.next_cursor = EncodeTimeCursor(list[end - 1].key);
  }
  page.rows.reserve(end - begin);
  for (size_t i = begin; i < end; ++i) page.rows.push_back(RowAt<fb::Message>(shard, list[i].loc));
  return page;
}

// ---------------------------------------------------------------- votes

Result<Row<fb::Vote>> Engine::Vote(const Scope& scope, const Uuid& chat_id, const Uuid& message_id,
                                   bool is_upvoted) {
  if (scope.is_admin()) return Status::PermissionDenied("admin keys do not vote");
  int s = ShardFor(*impl_, scope, &Partition::chats, chat_id);
  if (s < 0) return NotFound("chat");
  Partition& shard = *impl_->shards[s];
  std::unique_lock lock(shard.mu);
  const fb::Chat* chat = VisibleChat(*impl_, shard, scope, chat_id);
  if (!chat) return NotFound("chat");
  auto m = shard.messages.find(message_id);
  if (m == shard.messages.end() ||
      ToUuid(View<fb::Message>(shard, m->second)->chat_id()) != chat_id)
    return NotFound("message");
  auto& votes = shard.chat_index[chat_id].votes;
  auto existing = votes.find(message_id);
  fb::VoteT v;
  int64_t now = impl_->Now();
  if (existing != votes.end()) {
    View<fb::Vote>(shard, existing->second)->UnPackTo(&v);
  } else {
    v.chat_id = FbId(chat_id);
    v.message_id = FbId(message_id);
    v.user_id = FbId(ToUuid(chat->user_id()));
    v.created_at = now;
  }
  v.is_upvoted = is_upvoted;
  v.updated_at = now;
  std::string bytes = Pack(v);
  storage::WriteBatch batch;
  batch.Put(VoteKey(chat_id, message_id), bytes);
  AS_ASSIGN_OR_RETURN(uint64_t ticket, impl_->Log(batch));
  if (existing != votes.end()) shard.arena.Free(existing->second);
  votes[message_id] = shard.arena.Append(bytes);
  lock.unlock();
  AS_RETURN_IF_ERROR(impl_->Durable(ticket));
  return Row<fb::Vote>(bytes);
}

Result<std::vector<Row<fb::Vote>>> Engine::ListVotes(const Scope& scope, const Uuid& chat_id) {
  int s = ShardFor(*impl_, scope, &Partition::chats, chat_id);
  if (s < 0) return NotFound("chat");
  Partition& shard = *impl_->shards[s];
  std::shared_lock lock(shard.mu);
  if (!VisibleChat(*impl_, shard, scope, chat_id)) return NotFound("chat");
  std::vector<Row<fb::Vote>> out;
  auto ci = shard.chat_index.find(chat_id);
  if (ci == shard.chat_index.end()) return out;
  for (const auto& [msg, loc] : ci->second.votes) out.push_back(RowAt<fb::Vote>(shard, loc));
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return ToUuid(a->message_id()) < ToUuid(b->message_id());
  });
  return out;
}

}  // namespace agentstore
