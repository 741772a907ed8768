// The benchmark datasets of ../shared/design/targets.md (scale S and M), generated in
// memory from a seed so every system under test, and every test that wants realistic
// data, loads exactly the same records. Plain structs, no store types: each driver
// (agentstore, PostgreSQL, Redis) maps them to its own model.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "agentstore/common/uuid.h"

namespace agentstore::bench {

struct DatasetSpec {
  std::string scale = "S";  // "S" or "M"
  uint64_t seed = 42;
  int tenants = 10;
  int users = 1000;
  int agents = 50;  // platform agents
  int user_agents_per_user = 10;
  int chats_per_user = 1;
  // At least 20 at scale S, so last_20_messages reads 20 rows (M keeps targets.md's 1M
  // messages in 100k chats).
  int messages_per_chat = 24;
  int usage_logs_per_user = 50;
  // Memories: a fraction of users hold memories (log-normal count, median ~55), plus a
  // few heavy users with 5-10k; ~250k in all at scale M.
  double memory_user_fraction = 0.035;
  int heavy_memory_users = 1;
  int dim = 384;
  int clusters = 1000;
  int subspace_dim = 8;
  int queries = 1000;  // held out, drawn from the memory users' distributions
  // The dataset's "now" (unix micros): logs spread over the 90 days before it; usage
  // summaries ask for its month. Fixed, so a dataset is the same on every run.
  int64_t now_us = 1763596800000000;  // 2025-11-20T00:00:00Z

  static DatasetSpec ForScale(const std::string& scale, uint64_t seed = 42);
};

struct TenantRec {
  Uuid id;
  std::string name, slug, plan;
};
struct UserRec {
  Uuid id;
  uint32_t tenant;
  std::string email, full_name, avatar_url, job_title, department, organization, preferences;
  int64_t created_at;
};
struct AgentRec {
  Uuid id;
  std::string name, description, type, system_prompt, model;
};
struct UserAgentRec {
  Uuid id;
  uint32_t user, agent;
  bool is_favorite, is_pinned;
  int sort_order;
  std::string folder;
  int64_t created_at;
};
struct ChatRec {
  Uuid id;
  uint32_t user, agent;
  std::string title;
  int64_t created_at;
};
struct MessageRec {
  Uuid id;
  uint32_t chat;
  bool assistant;
  std::string parts;
  uint8_t model;                              // index into kModels
  int64_t input_tokens, output_tokens, cost;  // cost in micro-USD
  int64_t created_at;
};
struct UsageLogRec {
  Uuid id;
  uint32_t user, agent;
  int64_t chat;        // -1: none
  uint8_t agent_type;  // index into kAgentTypes
  uint8_t model;       // index into kModels (provider follows)
  int64_t input_tokens, output_tokens, input_cost, output_cost;  // micro-USD
  int64_t request_ts, response_ts;
  bool success;
};
struct MemoryRec {
  Uuid id;
  uint32_t user;
  uint8_t type;  // index into kMemoryTypes
  std::string key, value;
  double importance;
  // The embedding: Dataset::embeddings[index * dim, (index + 1) * dim).
};
struct QueryRec {
  uint32_t user;
  std::vector<float> vector;  // unit length
};

inline constexpr const char* kModels[] = {"gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet",
                                          "gemini-2.0-flash"};
inline constexpr const char* kProviders[] = {"openai", "openai", "anthropic", "google"};
inline constexpr const char* kAgentTypes[] = {"routing", "chat", "artifact", "git_mcp", "other"};
inline constexpr const char* kMemoryTypes[] = {"preference", "context", "fact", "instruction"};

// Records of one kind for one owner are contiguous; `*_begin[i]..*_begin[i+1]` indexes
// the owner's records (users for user_agents, chats, logs, memories; chats for messages).
struct Dataset {
  DatasetSpec spec;
  std::vector<TenantRec> tenants;
  std::vector<UserRec> users;
  std::vector<AgentRec> agents;
  std::vector<UserAgentRec> user_agents;
  std::vector<ChatRec> chats;
  std::vector<MessageRec> messages;
  std::vector<UsageLogRec> usage_logs;
  std::vector<MemoryRec> memories;
  std::vector<float> embeddings;
  std::vector<QueryRec> queries;
  std::vector<uint32_t> ua_begin, chat_begin, log_begin, memory_begin, message_begin;
  std::vector<uint32_t> memory_users;  // users holding at least one memory
  // Queries of users with a typical memory count (< 1000), and of the heavy users.
  std::vector<uint32_t> light_queries, heavy_queries;

  const float* Embedding(size_t memory) const { return &embeddings[memory * spec.dim]; }
  size_t RecordCount() const {
    return tenants.size() + users.size() + agents.size() + user_agents.size() + chats.size() +
           messages.size() + usage_logs.size() + memories.size();
  }
  // First day of the month holding spec.now_us, and of the next one (unix micros).
  int64_t MonthStart() const;
  int64_t MonthEnd() const;
};

Dataset GenerateDataset(const DatasetSpec& spec);

// Exact top-k of `user`'s memories by inner product (= cosine, vectors are unit length):
// memory indexes, best first. The ground truth for recall.
std::vector<uint32_t> ExactTopK(const Dataset& d, uint32_t user, const float* query, int k);

// Recall of `got` (memory indexes) against ExactTopK(d, user, query, k): the fraction of
// the exact top-k found; 1.0 when the user has no memories and nothing came back.
double RecallAtK(const Dataset& d, uint32_t user, const float* query, int k,
                 const std::vector<uint32_t>& got);

// A message body like the ones a chat turn appends (~150 bytes of JSON parts).
std::string MessageParts(uint64_t n);

}  // namespace agentstore::bench
