// Derived values: counters and totals that other records determine. Kept here so that
// the write paths (chat create/delete) and import agree on one definition of each:
// a chat's totals, a user_agent's conversation_count, a tenant's users / storage gauges.
#include "engine_impl.h"

namespace agentstore::internal {

std::optional<UserAgentRewrite> AddConversation(Partition& shard, const Uuid& user,
                                                const Uuid& agent, int64_t delta,
                                                storage::WriteBatch& batch) {
  auto pair = shard.user_agent_by_pair.find({user, agent});
  if (pair == shard.user_agent_by_pair.end()) return std::nullopt;
  auto it = shard.user_agents.find(pair->second);
  if (it == shard.user_agents.end()) return std::nullopt;
  fb::UserAgentT ua;
  View<fb::UserAgent>(shard, it->second)->UnPackTo(&ua);
  ua.conversation_count = std::max<int64_t>(0, ua.conversation_count + delta);
  UserAgentRewrite w{pair->second, Pack(ua)};
  batch.Put(RecordKey(RecordType::kUserAgent, w.id), w.bytes);
  return w;
}

void ApplyUserAgentRewrite(Partition& shard, const UserAgentRewrite& w) {
  auto it = shard.user_agents.find(w.id);
  if (it == shard.user_agents.end()) return;
  shard.arena.Free(it->second);
  it->second = shard.arena.Append(w.bytes);
}

int64_t CountConversations(const Partition& shard, const Uuid& user, const Uuid& agent) {
  auto list = shard.chats_by_user.find(user);
  if (list == shard.chats_by_user.end()) return 0;
  int64_t n = 0;
  for (const auto& [created, id] : list->second) {
    auto it = shard.chats.find(id);
    if (it == shard.chats.end()) continue;
    const auto* c = View<fb::Chat>(shard, it->second);
    if (c->agent_id() && ToUuid(c->agent_id()) == agent) ++n;
  }
  return n;
}

void ChatTotalsFromRecords(const Partition& shard, const Uuid& chat, fb::ChatT* c) {
  c->message_count = c->total_input_tokens = c->total_output_tokens = c->total_cost = 0;
  if (auto idx = shard.chat_index.find(chat); idx != shard.chat_index.end()) {
    for (const auto& ref : idx->second.messages) {
      const auto* m = View<fb::Message>(shard, ref.loc);
      c->message_count += 1;
      c->total_input_tokens += m->input_tokens();
      c->total_output_tokens += m->output_tokens();
      c->total_cost += m->cost();
    }
  }
  if (auto logs = shard.usage_by_chat.find(chat); logs != shard.usage_by_chat.end()) {
    for (const Uuid& id : logs->second) {
      auto it = shard.usage_logs.find(id);
      if (it == shard.usage_logs.end()) continue;
      const auto* l = View<fb::UsageLog>(shard, it->second);
      c->total_input_tokens += l->input_tokens();
      c->total_output_tokens += l->output_tokens();
      c->total_cost += l->total_cost();
    }
  }
}

TenantGauges MeasureTenant(EngineState& st, const Uuid& tenant) {
  TenantGauges g;
  size_t vector_bytes = size_t{st.memory.space->dim()} * sizeof(float);
  for (auto& shard_ptr : st.shards) {
    const Partition& shard = *shard_ptr;
    std::shared_lock lock(shard.mu);
    for (const auto& [id, loc] : shard.users) {
      const auto* u = View<fb::User>(shard, loc);
      if (!u->tenant_id() || ToUuid(u->tenant_id()) != tenant || u->deleted_at()) continue;
      g.users += 1;
      if (auto chats = shard.chats_by_user.find(id); chats != shard.chats_by_user.end()) {
        for (const auto& [created, chat] : chats->second) {
          auto idx = shard.chat_index.find(chat);
          if (idx == shard.chat_index.end()) continue;
          for (const auto& ref : idx->second.messages)
            g.storage_bytes += static_cast<int64_t>(shard.arena.Get(ref.loc).size());
        }
      }
      if (auto mems = shard.memories_by_user.find(id); mems != shard.memories_by_user.end()) {
        const UserMemories& m = *mems->second;
        for (uint32_t slot = 0; slot < m.size(); ++slot)
          g.storage_bytes +=
              static_cast<int64_t>(shard.arena.Get(m.meta(slot).loc).size() + vector_bytes);
      }
    }
  }
  return g;
}

}  // namespace agentstore::internal
