// agentstore through its real client library: every call returns a Pending, so a
// Session pipelines by keeping the Pendings of its outstanding requests in order; each
// request's waiter checks the answer (row counts, quota rows, summary totals against
// the dataset, top-5 size) and memory searches are sampled for recall.
#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>

#include "agentstore/client.h"
#include "driver.h"

namespace agentstore::bench {

namespace {

using Waiter = std::function<Status()>;

std::unique_ptr<fb::Uuid> FbId(const Uuid& u) { return std::make_unique<fb::Uuid>(ToFb(u)); }

template <typename T>
Waiter Wait(Pending<T> p, std::function<Status(T&)> check = nullptr) {
  return [p = std::move(p), check]() mutable -> Status {
    auto r = p.get();
    if (!r.ok()) return r.status();
    return check ? check(*r) : Status::OK();
  };
}

Status Expect(size_t got, size_t want, const char* what) {
  if (got == want) return Status::OK();
  return Status::Corruption(std::string(what) + ": got " + std::to_string(got) + " rows, want " +
                            std::to_string(want));
}

struct NullProgress : LoadProgress {
  void Add(uint64_t) override {}
};

// ---- usage, rate limits, memory search ----

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// What the dataset says a summary of [MonthStart, MonthEnd) must count: logs per user
// and per tenant (requests made during a run are stamped now, outside that month).
struct Expected {
  std::vector<int64_t> user_month_logs, tenant_month_logs;
  std::unordered_map<Uuid, uint32_t, UuidHash> memory_index;  // id -> dataset index
};
const Expected& ExpectedOf(const Dataset& d) {
  static std::once_flag once;
  static Expected e;
  std::call_once(once, [&] {
    e.user_month_logs.assign(d.users.size(), 0);
    e.tenant_month_logs.assign(d.tenants.size(), 0);
    for (const UsageLogRec& g : d.usage_logs)
      if (g.request_ts >= d.MonthStart() && g.request_ts < d.MonthEnd()) {
        ++e.user_month_logs[g.user];
        ++e.tenant_month_logs[d.users[g.user].tenant];
      }
    e.memory_index.reserve(d.memories.size());
    for (uint32_t i = 0; i < d.memories.size(); ++i) e.memory_index[d.memories[i].id] = i;
  });
  return e;
}

// Memory searches sampled for recall: (user, query, result ids); recall is computed
// after the workload (TakeRecallSamples), outside the measured time.
std::mutex recall_mu;
std::vector<RecallSample> recall_samples;
std::atomic<uint64_t> recall_counter{0};

// track_agent_usage(user, agent, chat, success, tokens, costs, model, provider, type,
// times): user_agents counters + a usage log + the tenant's quotas in one step. The same
// values as the peers' (postgres_driver.cc, redis_driver.cc).
Waiter TrackAgentUsage(Client& c, const Dataset& d, const Request& r) {
  const UserRec& u = d.users[r.user];
  const UserAgentRec& ua = d.user_agents[r.user_agent];
  int model = static_cast<int>(r.seq % 4);
  int64_t duration_ms = 300 + r.seq % 5000, now = NowMicros();
  fb::UsageLogT t;
  t.user_id = FbId(u.id);
  t.agent_id = FbId(d.agents[ua.agent].id);
  t.chat_id = FbId(d.chats[r.chat].id);
  t.agent_type = static_cast<fb::AgentType>(r.seq % 5);
  t.model = kModels[model];
  t.provider = kProviders[model];
  t.input_tokens = 200 + r.seq % 300;
  t.output_tokens = 100 + r.seq % 700;
  t.input_cost = 600 + r.seq % 900;
  t.output_cost = 1200 + r.seq % 8400;
  t.request_ts = now - duration_ms * 1000;
  t.response_ts = now;
  t.success = true;
  return Wait<TrackResult>(c.TrackAgentUsage(t, 1), [](TrackResult& tr) {
    // The tenant's tokens and api_calls quotas, as the peers' want 2 quota rows.
    return Expect(tr.quotas.size(), 2, "track_agent_usage quotas");
  });
}
// Rate-limit check: consume one request of the user's hourly limit (a user-scope
// requests_per_hour config of 1e9 per user, as the peers' per-user hourly counters).
Waiter RateLimitCheck(Client& c, const Dataset& d, const Request& r) {
  const UserRec& u = d.users[r.user];
  const UserAgentRec& ua = d.user_agents[r.user_agent];
  LimitCheckRequest q;
  q.user = u.id;
  q.agent = d.agents[ua.agent].id;
  q.tenant = d.tenants[u.tenant].id;
  return Wait<LimitDecision>(c.CheckLimits(q), [](LimitDecision& dec) {
    if (!dec.allowed) return Status::Corruption("rate_limit_check: denied");
    if (dec.remaining < 0) return Status::Corruption("rate_limit_check: no limit applied");
    return Status::OK();
  });
}
// Top-5 of the user's memories nearest d.queries[r.query].vector; `touch` bumps
// access_count of the results (the chat-turn flow). Checks the count; samples ids for
// recall against ExactTopK.
Waiter MemoryTop5(Client& c, const Dataset& d, const Request& r, bool touch) {
  MemoryQuery q;
  q.user = d.users[r.user].id;
  q.vector = d.queries[r.query].vector;
  q.k = 5;
  q.touch = touch;
  size_t want = std::min<size_t>(5, d.memory_begin[r.user + 1] - d.memory_begin[r.user]);
  uint32_t user = r.user, query = r.query;
  const Dataset* dp = &d;
  return Wait<std::vector<MemoryHit>>(
      c.SearchMemories(q), [want, user, query, dp](std::vector<MemoryHit>& hits) {
        Status s = Expect(hits.size(), want, "memory top-5");
        if (!s.ok() || want == 0) return s;
        if (recall_counter.fetch_add(1, std::memory_order_relaxed) % 4 == 0) {
          const Expected& e = ExpectedOf(*dp);
          RecallSample rs{user, query, {}};
          for (auto& h : hits) {
            auto it = e.memory_index.find(ToUuid(h.memory->id()));
            rs.got.push_back(it == e.memory_index.end() ? UINT32_MAX : it->second);
          }
          std::lock_guard l(recall_mu);
          if (recall_samples.size() < 4000) recall_samples.push_back(std::move(rs));
        }
        return Status::OK();
      });
}
// One user's (kUser) or tenant's (kTenant) usage in [d.MonthStart(), d.MonthEnd())
// grouped by model; the requests must add up to the dataset's logs in that month.
Waiter Summary(Client& c, const Dataset& d, SummaryOwner owner, const Uuid& id, int64_t want) {
  UsageSummaryRequest q;
  q.owner = owner;
  q.id = id;
  q.from = d.MonthStart();
  q.to = d.MonthEnd();
  q.bucket = SummaryBucket::kTotal;
  q.group = SummaryGroup::kModel;
  return Wait<agentstore::UsageSummary>(c.SummarizeUsage(q), [want](agentstore::UsageSummary& s) {
    int64_t n = 0;
    for (auto& row : s.rows) n += row.totals.requests;
    return Expect(static_cast<size_t>(n), static_cast<size_t>(want), "usage summary requests");
  });
}
Waiter UsageSummary(Client& c, const Dataset& d, const Request& r) {
  return Summary(c, d, SummaryOwner::kUser, d.users[r.user].id,
                 ExpectedOf(d).user_month_logs[r.user]);
}
// One tenant's usage in [d.MonthStart(), d.MonthEnd()) grouped by model.
Waiter TenantUsage(Client& c, const Dataset& d, const Request& r) {
  return Summary(c, d, SummaryOwner::kTenant, d.tenants[r.tenant].id,
                 ExpectedOf(d).tenant_month_logs[r.tenant]);
}

// ---- available today ----

fb::MessageT NewMessage(const Dataset& d, const Request& r) {
  fb::MessageT m;
  m.chat_id = FbId(d.chats[r.chat].id);
  m.role = r.seq % 2 ? fb::MessageRole::assistant : fb::MessageRole::user;
  m.parts = MessageParts(r.seq);
  m.model_used = r.seq % 2 ? "gpt-4o-mini" : "";
  m.input_tokens = 120 + r.seq % 50;
  m.output_tokens = r.seq % 2 ? 300 : 0;
  m.cost = 450;
  return m;
}

Waiter Issue(Client& c, const Dataset& d, const Request& r) {
  switch (r.op) {
    case Op::kGetUser:
      return Wait(c.GetUser(d.users[r.user].id));
    case Op::kListAgents: {
      size_t want = d.ua_begin[r.user + 1] - d.ua_begin[r.user];
      return Wait<std::vector<Row<fb::UserAgent>>>(
          c.ListUserAgents(d.users[r.user].id),
          [want](auto& rows) { return Expect(rows.size(), want, "list agents"); });
    }
    case Op::kListChats: {
      PageRequest p;
      p.limit = 20;
      size_t want = std::min<size_t>(20, d.chat_begin[r.user + 1] - d.chat_begin[r.user]);
      return Wait<Page<fb::Chat>>(c.ListChats(d.users[r.user].id, p), [want](auto& page) {
        return page.rows.size() >= want ? Status::OK()
                                        : Expect(page.rows.size(), want, "list chats");
      });
    }
    case Op::kLast20Messages: {
      MessagePageRequest p;
      p.limit = 20;
      size_t want = std::min<size_t>(20, d.message_begin[r.chat + 1] - d.message_begin[r.chat]);
      return Wait<Page<fb::Message>>(c.ListMessages(d.chats[r.chat].id, p), [want](auto& page) {
        return page.rows.size() >= want ? Status::OK()
                                        : Expect(page.rows.size(), want, "last 20 messages");
      });
    }
    case Op::kAppendMessage:
      return Wait(c.AppendMessage(NewMessage(d, r)));
    case Op::kGetUserAgent: {
      const UserAgentRec& ua = d.user_agents[r.user_agent];
      return Wait(c.GetUserAgentFor(d.users[ua.user].id, d.agents[ua.agent].id));
    }
    case Op::kTrackAgentUsage:
      return TrackAgentUsage(c, d, r);
    case Op::kRateLimitCheck:
      return RateLimitCheck(c, d, r);
    case Op::kMemoryTop5:
      return MemoryTop5(c, d, r, false);
    case Op::kMemoryTop5Touch:
      return MemoryTop5(c, d, r, true);
    case Op::kUsageSummary:
      return UsageSummary(c, d, r);
    case Op::kTenantUsage:
      return TenantUsage(c, d, r);
    case Op::kCount:
      break;
  }
  return [] { return Status::InvalidArgument("not an operation"); };
}

class AgentstoreSession : public Session {
 public:
  AgentstoreSession(Client c, const Dataset* d) : client_(std::move(c)), data_(d) {}
  void Send(const Request& r) override { pending_.push_back(Issue(client_, *data_, r)); }
  Status Recv() override {
    Waiter w = std::move(pending_.front());
    pending_.pop_front();
    return w();
  }

 private:
  Client client_;
  const Dataset* data_;
  std::deque<Waiter> pending_;
};

// Runs make(i) for i in [0, n) over `connections` clients, each keeping up to 256
// creates in flight; stops at the first failure.
Status Pipelined(std::vector<Client>& clients, size_t n, LoadProgress& progress,
                 const std::function<Waiter(Client&, size_t)>& make) {
  std::atomic<size_t> next{0};
  std::mutex mu;
  Status first = Status::OK();
  std::vector<std::thread> threads;
  for (auto& c : clients)
    threads.emplace_back([&, cp = &c] {
      std::deque<Waiter> window;
      auto drain_one = [&] {
        Status s = window.front()();
        window.pop_front();
        if (!s.ok()) {
          std::lock_guard l(mu);
          if (first.ok()) first = s;
        }
        progress.Add(1);
      };
      for (size_t i; (i = next.fetch_add(1)) < n;) {
        window.push_back(make(*cp, i));
        if (window.size() >= 256) drain_one();
      }
      while (!window.empty()) drain_one();
    });
  for (auto& t : threads) t.join();
  return first;
}

// Usage logs, quotas, rate-limit configs and memories: the rows the peers load too.
// Logs go through track_agent_usage with the dataset's ids and timestamps, so the user
// and tenant rollups are built the way production builds them (it also advances the
// user_agent counters and chat totals, which the peers' COPY / HSET loads leave alone).
// Quotas (tokens, api_calls; 1e12 a month per tenant, as the peers') are set after the
// logs, so they start at zero like the peers'. Rate limits: one user-scope
// requests_per_hour config of 1e9 per user (the peers count per user and agent type).
// Memories through memory_upsert; then waits until the memory indexer has caught up.
Status LoadLogsAndMemories(std::vector<Client>& clients, const Dataset& d, LoadProgress& progress) {
  Status s = Pipelined(clients, d.usage_logs.size(), progress, [&](Client& c, size_t i) {
    const UsageLogRec& g = d.usage_logs[i];
    fb::UsageLogT t;
    t.id = FbId(g.id);
    t.user_id = FbId(d.users[g.user].id);
    t.agent_id = FbId(d.agents[g.agent].id);
    if (g.chat >= 0) t.chat_id = FbId(d.chats[g.chat].id);
    t.agent_type = static_cast<fb::AgentType>(g.agent_type);
    t.model = kModels[g.model];
    t.provider = kProviders[g.model];
    t.input_tokens = g.input_tokens;
    t.output_tokens = g.output_tokens;
    t.input_cost = g.input_cost;
    t.output_cost = g.output_cost;
    t.request_ts = g.request_ts;
    t.response_ts = g.response_ts;
    t.success = g.success;
    return Wait(c.TrackAgentUsage(t, 1));
  });
  if (!s.ok()) return s;
  NullProgress none;
  s = Pipelined(clients, d.tenants.size() * 2, none, [&](Client& c, size_t i) {
    fb::QuotaT q;
    q.tenant_id = FbId(d.tenants[i / 2].id);
    q.quota_type = i % 2 ? fb::QuotaType::api_calls : fb::QuotaType::tokens;
    q.quota_limit = 1000000000000;
    q.period = fb::QuotaPeriod::month;
    return Wait(c.SetQuota(q));
  });
  if (!s.ok()) return s;
  s = Pipelined(clients, d.users.size(), none, [&](Client& c, size_t i) {
    fb::RateLimitConfigT l;
    l.scope = fb::LimitScope::user;
    l.scope_id = FbId(d.users[i].id);
    l.limit_type = fb::LimitType::requests_per_hour;
    l.limit_value = 1000000000;
    return Wait(c.PutLimitConfig(l));
  });
  if (!s.ok()) return s;
  s = Pipelined(clients, d.memories.size(), progress, [&](Client& c, size_t i) {
    const MemoryRec& m = d.memories[i];
    fb::UserMemoryT t;
    t.id = FbId(m.id);
    t.user_id = FbId(d.users[m.user].id);
    t.memory_type = static_cast<fb::MemoryType>(m.type);
    t.memory_key = m.key;
    t.memory_value = m.value;
    t.importance_score = m.importance;
    t.embedding.assign(d.Embedding(i), d.Embedding(i) + d.spec.dim);
    return Wait(c.UpsertMemory(t));
  });
  if (!s.ok()) return s;
  for (int tries = 0; tries < 1200; ++tries) {
    auto st = clients[0].GetStatus().get();
    if (!st.ok()) return st.status();
    if (st->memory_global_pending == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return Status::OK();
}

class AgentstoreDriver : public Driver {
 public:
  explicit AgentstoreDriver(const DriverOptions& o) : o_(o) {
    options_.host = o.host;
    options_.port = static_cast<uint16_t>(o.port);
    options_.key = o.key;
    options_.timeout = std::chrono::milliseconds(60000);
  }
  std::string Name() const override { return "agentstore"; }
  std::string Durability() const override { return durability_; }
  std::string Settings() const override {
    return "agentstored " + version_ + ", durability " + durability_ +
           " (every ack durable when 'always', group commit), binary protocol over the C++ "
           "client library, one client connection per session, service key";
  }
  Status Supports(Op op) const override { return AgentstoreSupports(op); }

  Result<std::unique_ptr<Session>> Connect() override {
    auto c = Client::Connect(options_);
    if (!c.ok()) return c.status();
    if (durability_.empty()) {
      auto st = c->GetStatus().get();
      if (!st.ok()) return st.status();
      durability_ = st->durability;
      version_ = st->version;
    }
    return std::unique_ptr<Session>(new AgentstoreSession(std::move(c).value(), o_.data));
  }

  Status Load(const Dataset& d, int connections, LoadProgress& progress) override {
    std::vector<Client> clients;
    for (int i = 0; i < connections; ++i) {
      auto c = Client::Connect(options_);
      if (!c.ok()) return c.status();
      clients.push_back(std::move(c).value());
    }
    Status s = Pipelined(clients, d.tenants.size(), progress, [&](Client& c, size_t i) {
      fb::TenantT t;
      t.id = FbId(d.tenants[i].id);
      t.name = d.tenants[i].name;
      t.slug = d.tenants[i].slug;
      t.plan = d.tenants[i].plan;
      return Wait(c.CreateTenant(t));
    });
    if (!s.ok()) return s;
    s = Pipelined(clients, d.agents.size(), progress, [&](Client& c, size_t i) {
      const AgentRec& a = d.agents[i];
      fb::AgentT t;
      t.id = FbId(a.id);
      t.name = a.name;
      t.description = a.description;
      t.type = a.type;
      t.system_prompt = a.system_prompt;
      t.model = a.model;
      t.is_public = true;
      return Wait(c.CreateAgent(t));
    });
    if (!s.ok()) return s;
    s = Pipelined(clients, d.users.size(), progress, [&](Client& c, size_t i) {
      const UserRec& u = d.users[i];
      fb::UserT t;
      t.id = FbId(u.id);
      t.tenant_id = FbId(d.tenants[u.tenant].id);
      t.email = u.email;
      t.full_name = u.full_name;
      t.avatar_url = u.avatar_url;
      t.job_title = u.job_title;
      t.department = u.department;
      t.organization = u.organization;
      t.preferences = u.preferences;
      return Wait(c.CreateUser(t));
    });
    if (!s.ok()) return s;
    s = Pipelined(clients, d.user_agents.size(), progress, [&](Client& c, size_t i) {
      const UserAgentRec& ua = d.user_agents[i];
      fb::UserAgentT t;
      t.id = FbId(ua.id);
      t.user_id = FbId(d.users[ua.user].id);
      t.agent_id = FbId(d.agents[ua.agent].id);
      t.is_favorite = ua.is_favorite;
      t.is_pinned = ua.is_pinned;
      t.sort_order = ua.sort_order;
      t.folder = ua.folder;
      return Wait(c.CreateUserAgent(t));
    });
    if (!s.ok()) return s;
    s = Pipelined(clients, d.chats.size(), progress, [&](Client& c, size_t i) {
      const ChatRec& ch = d.chats[i];
      fb::ChatT t;
      t.id = FbId(ch.id);
      t.user_id = FbId(d.users[ch.user].id);
      t.agent_id = FbId(d.agents[ch.agent].id);
      t.title = ch.title;
      return Wait(c.CreateChat(t));
    });
    if (!s.ok()) return s;
    // Messages of one chat in order: each client takes whole chats.
    s = Pipelined(clients, d.chats.size(), progress, [&](Client& c, size_t chat) {
      std::vector<Waiter> ws;
      for (uint32_t m = d.message_begin[chat]; m < d.message_begin[chat + 1]; ++m) {
        const MessageRec& r = d.messages[m];
        fb::MessageT t;
        t.id = FbId(r.id);
        t.chat_id = FbId(d.chats[chat].id);
        t.role = r.assistant ? fb::MessageRole::assistant : fb::MessageRole::user;
        t.parts = r.parts;
        t.model_used = r.assistant ? kModels[r.model] : "";
        t.input_tokens = r.input_tokens;
        t.output_tokens = r.output_tokens;
        t.cost = r.cost;
        ws.push_back(Wait(c.AppendMessage(t)));
      }
      return Waiter([ws, &progress]() mutable {
        Status first = Status::OK();
        for (auto& w : ws) {
          Status s = w();
          if (!s.ok() && first.ok()) first = s;
        }
        progress.Add(ws.size() ? ws.size() - 1 : 0);
        return first;
      });
    });
    if (!s.ok()) return s;
    return LoadLogsAndMemories(clients, d, progress);
  }

 private:
  DriverOptions o_;
  ClientOptions options_;
  std::string durability_, version_;
};

}  // namespace

Status AgentstoreSupports(Op op) {
  return op == Op::kCount ? Status::InvalidArgument("not an operation") : Status::OK();
}

std::vector<RecallSample> TakeRecallSamples() {
  std::lock_guard l(recall_mu);
  return std::exchange(recall_samples, {});
}

std::unique_ptr<Driver> MakeAgentstoreDriver(const DriverOptions& o) {
  return std::make_unique<AgentstoreDriver>(o);
}

}  // namespace agentstore::bench
