// agentstore through its real client library: every call returns a Pending, so a
// Session pipelines by keeping the Pendings of its outstanding requests in order.
//
// Operations the client library does not have yet (memory search, track_agent_usage,
// rate limits, usage summaries) are each ONE function below, marked "TO FILL IN":
// they answer NotImplemented today and AgentstoreSupports() reports them unavailable,
// so the harness skips them and says so. Filling one in = issue the client call and
// return a waiter that checks its answer; then flip its line in AgentstoreSupports().
#include <atomic>
#include <deque>
#include <functional>
#include <thread>

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

Waiter NotAvailable(Op op) {
  return [op] { return Status::NotImplemented(std::string(OpName(op)) + ": not in the client"); };
}

// ---- TO FILL IN when the client library has them (see the file comment) ----

// track_agent_usage(user, agent, chat, success, tokens, costs, model, provider, type,
// times): user_agents counters + a usage log + the tenant's quotas in one step.
Waiter TrackAgentUsage(Client& c, const Dataset& d, const Request& r) {
  return NotAvailable(Op::kTrackAgentUsage);
}
// Rate-limit check: consume one request of the user's hourly limit for the agent.
Waiter RateLimitCheck(Client& c, const Dataset& d, const Request& r) {
  return NotAvailable(Op::kRateLimitCheck);
}
// Top-5 of the user's memories nearest d.queries[r.query].vector; `touch` bumps
// access_count of the results (the chat-turn flow). Check the ids against
// ExactTopK(d, user, query, 5) for recall (RecallAtK in dataset.h).
Waiter MemoryTop5(Client& c, const Dataset& d, const Request& r, bool touch) {
  return NotAvailable(touch ? Op::kMemoryTop5Touch : Op::kMemoryTop5);
}
// One user's usage in [d.MonthStart(), d.MonthEnd()) grouped by model.
Waiter UsageSummary(Client& c, const Dataset& d, const Request& r) {
  return NotAvailable(Op::kUsageSummary);
}
// One tenant's usage in [d.MonthStart(), d.MonthEnd()) grouped by model (admin key).
Waiter TenantUsage(Client& c, const Dataset& d, const Request& r) {
  return NotAvailable(Op::kTenantUsage);
}
// Loads usage logs and memories once the client can write them (track_agent_usage or
// an import path for logs; a memory upsert for memories). Until then agentstore holds
// the same users, agents, user_agents, chats and messages as the peers, without these.
Status LoadLogsAndMemories(Client& c, const Dataset& d, int connections, LoadProgress& progress) {
  return Status::OK();
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
  return NotAvailable(r.op);
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
    return LoadLogsAndMemories(clients[0], d, connections, progress);
  }

 private:
  DriverOptions o_;
  ClientOptions options_;
  std::string durability_, version_;
};

}  // namespace

Status AgentstoreSupports(Op op) {
  switch (op) {
    case Op::kTrackAgentUsage:
    case Op::kRateLimitCheck:
    case Op::kMemoryTop5:
    case Op::kMemoryTop5Touch:
    case Op::kUsageSummary:
    case Op::kTenantUsage:
      return Status::NotImplemented("not in the client library yet (not_implemented)");
    default:
      return Status::OK();
  }
}

std::unique_ptr<Driver> MakeAgentstoreDriver(const DriverOptions& o) {
  return std::make_unique<AgentstoreDriver>(o);
}

}  // namespace agentstore::bench
