// The seam between agentstore-bench's load generator and the systems it measures: a
// Driver loads a Dataset and opens Sessions; a Session is one connection that can carry
// several requests in flight (Send many, then Recv completes the oldest). Each system
// (agentstore, PostgreSQL, Redis) implements the same operations on the same data.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "agentstore/common/status.h"
#include "dataset.h"

namespace agentstore::bench {

// Single operations. Mixes are sequences of these (see workloads.cc).
enum class Op {
  kGetUser,
  kListAgents,       // the user's agents: pinned, favorites first, then sort_order
  kListChats,        // 20 most recent chats of a user
  kLast20Messages,   // last 20 messages of a chat
  kAppendMessage,    // one message, the chat's totals updated in the same step
  kTrackAgentUsage,  // user_agents counters + a usage log + the tenant's quotas, atomic
  kRateLimitCheck,   // consume one request of the user's per-agent hourly limit
  kMemoryTop5,       // exact top-5 of the user's memories
  kMemoryTop5Touch,  // the same, then access_count + 1 on the results (chat turn)
  kGetUserAgent,     // the (user, agent) row
  kUsageSummary,     // one user's usage this month, grouped by model
  kTenantUsage,      // one tenant's usage this month, grouped by model (admin)
  kCount
};
const char* OpName(Op op);

// What to do: indexes into the Dataset. `seq` is unique per request of a run (used for
// message text and ids the driver has to invent).
struct Request {
  Op op;
  uint32_t user = 0, chat = 0, user_agent = 0, query = 0, tenant = 0;
  uint64_t seq = 0;
};

struct LoadProgress {
  virtual ~LoadProgress() = default;
  virtual void Add(uint64_t records) = 0;  // thread-safe
};

class Session {
 public:
  virtual ~Session() = default;
  // Starts a request; several may be outstanding (pipelining).
  virtual void Send(const Request& r) = 0;
  // Completes the oldest outstanding request: OK, or why it failed (a wrong answer,
  // e.g. fewer rows than the dataset holds, is a failure too).
  virtual Status Recv() = 0;
};

class Driver {
 public:
  virtual ~Driver() = default;
  virtual std::string Name() const = 0;
  // Every setting a reader needs to judge the numbers (durability, pipelining, model).
  virtual std::string Settings() const = 0;
  virtual std::string Durability() const = 0;
  // OK if this system can run `op` today; NotImplemented (with why) if not.
  virtual Status Supports(Op op) const = 0;
  // Loads the dataset through the system's bulk path, `connections` in parallel.
  virtual Status Load(const Dataset& d, int connections, LoadProgress& progress) = 0;
  virtual Result<std::unique_ptr<Session>> Connect() = 0;
};

// Connection settings shared by all drivers ("host:port" etc. per system).
struct DriverOptions {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string key;       // agentstore: service key
  std::string user;      // postgres: role
  std::string database;  // postgres: database
  const Dataset* data = nullptr;
};

std::unique_ptr<Driver> MakeAgentstoreDriver(const DriverOptions& o);
std::unique_ptr<Driver> MakePostgresDriver(const DriverOptions& o);
std::unique_ptr<Driver> MakeRedisDriver(const DriverOptions& o);

// agentstore's support of `op` today (peers run mixes with only these steps too, so the
// mix comparison is like for like; see workloads.cc).
Status AgentstoreSupports(Op op);

// A memory search agentstore answered, sampled for recall: the result ids mapped to
// dataset memory indexes (UINT32_MAX: not a dataset memory).
struct RecallSample {
  uint32_t user = 0, query = 0;
  std::vector<uint32_t> got;
};
// The samples taken since the last call (the harness calls it after each workload).
std::vector<RecallSample> TakeRecallSamples();

// Top-5 by inner product over `n` candidates (client-side exact search for peers).
std::vector<int> TopK(const float* query, const float* vectors, size_t n, int dim, int k);

}  // namespace agentstore::bench
