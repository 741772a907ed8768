// Redis 7 peer over hiredis, modelled the way Redis users do: a hash per record, sorted
// sets for ordered lists (a user's chats by time, a chat's messages by time, a user's
// agents by pinned/favorite/sort_order), Lua scripts (EVALSHA) for reads that fetch a
// list's records and for multi-record writes (atomic), rollup hashes kept on write for
// usage summaries, a fixed-window counter for rate limits, and memory search done
// client-side over the user's vectors (HVALS of one hash). Pipelining by sending many
// commands before reading replies.
#include <hiredis/hiredis.h>

#include <chrono>
#include <cstring>
#include <ctime>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "driver.h"

namespace agentstore::bench {

namespace {

std::string Hex(const Uuid& u) { return u.ToString(); }

std::string Month(int64_t micros) {
  time_t t = static_cast<time_t>(micros / 1000000);
  tm g{};
  gmtime_r(&t, &g);
  char b[32];
  snprintf(b, sizeof b, "%04d%02d", g.tm_year + 1900, g.tm_mon + 1);
  return b;
}

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Scripts. KEYS are declared; record keys derived from ids inside a script are fine on
// a single (non-cluster) server, which is how the seeds' platforms run Redis.
const char* kFetchZ = R"LUA(
local ids
if ARGV[2] == 'rev' then ids = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
else ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1) end
local out = {}
for i, id in ipairs(ids) do out[i] = redis.call('HGETALL', ARGV[3] .. id) end
return out)LUA";

const char* kGetUserAgent = R"LUA(
local id = redis.call('HGET', KEYS[1], ARGV[1])
if not id then return nil end
return redis.call('HGETALL', 'ua:' .. id))LUA";

// KEYS: msg hash, msgs zset, chat hash. ARGV: id, ts, role, parts, model, in, out, cost
const char* kAppend = R"LUA(
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'role', ARGV[3], 'parts', ARGV[4],
  'model_used', ARGV[5], 'input_tokens', ARGV[6], 'output_tokens', ARGV[7], 'cost', ARGV[8],
  'created_at', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('HINCRBY', KEYS[3], 'message_count', 1)
redis.call('HINCRBY', KEYS[3], 'total_input_tokens', ARGV[6])
redis.call('HINCRBY', KEYS[3], 'total_output_tokens', ARGV[7])
redis.call('HINCRBY', KEYS[3], 'total_cost', ARGV[8])
redis.call('HSET', KEYS[3], 'updated_at', ARGV[2])
return 1)LUA";

// KEYS: ua hash, log hash, logs zset, user rollup, tenant rollup, quota hash, chat hash
// ARGV: log id, ts, in, out, in_cost, out_cost, model, provider, agent_type, duration,
//       user, tenant, chat, agent
const char* kTrack = R"LUA(
local tok = tonumber(ARGV[3]) + tonumber(ARGV[4])
local cost = tonumber(ARGV[5]) + tonumber(ARGV[6])
local n = redis.call('HINCRBY', KEYS[1], 'usage_count', 1)
redis.call('HINCRBY', KEYS[1], 'message_count', 1)
redis.call('HINCRBY', KEYS[1], 'success_count', 1)
redis.call('HINCRBY', KEYS[1], 'total_tokens_used', tok)
redis.call('HINCRBY', KEYS[1], 'total_cost', cost)
local avg = tonumber(redis.call('HGET', KEYS[1], 'avg_response_time_ms') or '0')
redis.call('HSET', KEYS[1], 'avg_response_time_ms', (avg * (n - 1) + tonumber(ARGV[10])) / n,
  'last_used_at', ARGV[2], 'updated_at', ARGV[2])
redis.call('HSETNX', KEYS[1], 'first_used_at', ARGV[2])
redis.call('HSET', KEYS[2], 'id', ARGV[1], 'user_id', ARGV[11], 'tenant_id', ARGV[12],
  'chat_id', ARGV[13], 'agent_id', ARGV[14], 'agent_type', ARGV[9], 'model', ARGV[7],
  'provider', ARGV[8], 'input_tokens', ARGV[3], 'output_tokens', ARGV[4], 'total_tokens', tok,
  'input_cost', ARGV[5], 'output_cost', ARGV[6], 'total_cost', cost, 'request_ts', ARGV[2],
  'duration_ms', ARGV[10], 'success', 1)
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
for _, k in ipairs({KEYS[4], KEYS[5]}) do
  redis.call('HINCRBY', k, ARGV[7] .. ':count', 1)
  redis.call('HINCRBY', k, ARGV[7] .. ':tokens', tok)
  redis.call('HINCRBY', k, ARGV[7] .. ':cost', cost)
end
local used = redis.call('HINCRBY', KEYS[6], 'tokens', tok)
redis.call('HINCRBY', KEYS[6], 'api_calls', 1)
local limit = tonumber(redis.call('HGET', KEYS[6], 'tokens_limit') or '1000000000000')
redis.call('HINCRBY', KEYS[7], 'total_input_tokens', ARGV[3])
redis.call('HINCRBY', KEYS[7], 'total_output_tokens', ARGV[4])
redis.call('HINCRBY', KEYS[7], 'total_cost', cost)
return {n, used, used > limit and 1 or 0})LUA";

// KEYS: counter. ARGV: limit, window seconds.
const char* kRate = R"LUA(
local c = redis.call('INCR', KEYS[1])
if c == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
if c > tonumber(ARGV[1]) then return 0 end
return c)LUA";

struct Scripts {
  std::string fetch_z, get_ua, append, track, rate;
};

Status Check(redisContext* c, redisReply* r, const char* what) {
  if (!r) return Status::IoError(std::string(what) + ": " + (c->errstr[0] ? c->errstr : "eof"));
  if (r->type == REDIS_REPLY_ERROR) {
    Status s = Status::IoError(std::string(what) + ": " + r->str);
    freeReplyObject(r);
    return s;
  }
  return Status::OK();
}

class Cmd {
 public:
  Cmd& operator<<(std::string s) {
    args_.push_back(std::move(s));
    return *this;
  }
  Cmd& operator<<(int64_t v) { return *this << std::to_string(v); }
  void Append(redisContext* c) const {
    std::vector<const char*> a;
    std::vector<size_t> l;
    for (auto& s : args_) {
      a.push_back(s.data());
      l.push_back(s.size());
    }
    redisAppendCommandArgv(c, static_cast<int>(a.size()), a.data(), l.data());
  }

 private:
  std::vector<std::string> args_;
};

class RedisSession : public Session {
 public:
  RedisSession(redisContext* c, const Dataset* d, Scripts s) : c_(c), d_(d), s_(std::move(s)) {}
  ~RedisSession() override { redisFree(c_); }

  void Send(const Request& r) override {
    const Dataset& d = *d_;
    const UserRec& u = d.users[r.user];
    std::string uid = Hex(u.id);
    Pend p{r, 1, 0};
    auto user_agent = [&]() -> const UserAgentRec& { return d.user_agents[r.user_agent]; };
    switch (r.op) {
      case Op::kGetUser:
        (Cmd() << "HGETALL"
               << "user:" + uid)
            .Append(c_);
        break;
      case Op::kListAgents:
        (Cmd() << "EVALSHA" << s_.fetch_z << "1"
               << "uas:" + uid << "1000"
               << "fwd"
               << "ua:")
            .Append(c_);
        p.want = d.ua_begin[r.user + 1] - d.ua_begin[r.user];
        break;
      case Op::kListChats:
        (Cmd() << "EVALSHA" << s_.fetch_z << "1"
               << "chats:" + uid << "20"
               << "rev"
               << "chat:")
            .Append(c_);
        p.want = std::min<size_t>(20, d.chat_begin[r.user + 1] - d.chat_begin[r.user]);
        break;
      case Op::kLast20Messages: {
        std::string chat = Hex(d.chats[r.chat].id);
        (Cmd() << "EVALSHA" << s_.fetch_z << "1"
               << "msgs:" + chat << "20"
               << "rev"
               << "msg:")
            .Append(c_);
        p.want = std::min<size_t>(20, d.message_begin[r.chat + 1] - d.message_begin[r.chat]);
        break;
      }
      case Op::kAppendMessage: {
        std::string chat = Hex(d.chats[r.chat].id), id = NewId();
        (Cmd() << "EVALSHA" << s_.append << "3"
               << "msg:" + id << "msgs:" + chat << "chat:" + chat << id << NowUs()
               << (r.seq % 2 ? "assistant" : "user") << MessageParts(r.seq)
               << (r.seq % 2 ? "gpt-4o-mini" : "") << int64_t(120 + r.seq % 50)
               << int64_t(r.seq % 2 ? 300 : 0) << int64_t(450))
            .Append(c_);
        break;
      }
      case Op::kGetUserAgent: {
        const UserAgentRec& ua = user_agent();
        (Cmd() << "EVALSHA" << s_.get_ua << "1"
               << "uaidx:" + Hex(d.users[ua.user].id) << Hex(d.agents[ua.agent].id))
            .Append(c_);
        break;
      }
      case Op::kTrackAgentUsage: {
        const UserAgentRec& ua = user_agent();
        int model = static_cast<int>(r.seq % 4);
        int64_t now = NowUs();
        std::string id = NewId(), month = Month(now), tenant = Hex(d.tenants[u.tenant].id),
                    chat = Hex(d.chats[r.chat].id);
        (Cmd() << "EVALSHA" << s_.track << "7"
               << "ua:" + Hex(ua.id) << "log:" + id << "logs:" + uid << "usage:" + uid + ":" + month
               << "tusage:" + tenant + ":" + month << "quota:" + tenant + ":" + month
               << "chat:" + chat << id << now << int64_t(200 + r.seq % 300)
               << int64_t(100 + r.seq % 700) << int64_t(600 + r.seq % 900)
               << int64_t(1200 + r.seq % 8400) << kModels[model] << kProviders[model]
               << kAgentTypes[r.seq % 5] << int64_t(300 + r.seq % 5000) << uid << tenant << chat
               << Hex(d.agents[ua.agent].id))
            .Append(c_);
        break;
      }
      case Op::kRateLimitCheck: {
        const UserAgentRec& ua = user_agent();
        (Cmd() << "EVALSHA" << s_.rate << "1"
               << "rl:" + uid + ":" + d.agents[ua.agent].type + ":" +
                      std::to_string(NowUs() / 3600000000)
               << "1000000000"
               << "3600")
            .Append(c_);
        break;
      }
      case Op::kMemoryTop5:
      case Op::kMemoryTop5Touch:
        (Cmd() << "HGETALL"
               << "mem:" + uid)
            .Append(c_);
        p.want = std::min<size_t>(5, d.memory_begin[r.user + 1] - d.memory_begin[r.user]);
        break;
      case Op::kUsageSummary:
        (Cmd() << "HGETALL"
               << "usage:" + uid + ":" + Month(d.spec.now_us))
            .Append(c_);
        break;
      case Op::kTenantUsage:
        (Cmd() << "HGETALL"
               << "tusage:" + Hex(d.tenants[r.tenant].id) + ":" + Month(d.spec.now_us))
            .Append(c_);
        break;
      case Op::kCount:
        break;
    }
    pending_.push_back(p);
  }

  Status Recv() override {
    Pend p = pending_.front();
    pending_.pop_front();
    void* v = nullptr;
    if (redisGetReply(c_, &v) != REDIS_OK) return Check(c_, nullptr, OpName(p.r.op));
    redisReply* r = static_cast<redisReply*>(v);
    Status s = Check(c_, r, OpName(p.r.op));
    if (!s.ok()) return s;
    switch (p.r.op) {
      case Op::kGetUser:
      case Op::kGetUserAgent:
        if (r->type != REDIS_REPLY_ARRAY || r->elements == 0)
          s = Status::NotFound(std::string(OpName(p.r.op)) + ": no record");
        break;
      case Op::kListAgents:
      case Op::kListChats:
      case Op::kLast20Messages:
        if (r->type != REDIS_REPLY_ARRAY || r->elements < p.want)
          s = Status::Corruption(std::string(OpName(p.r.op)) + ": " + std::to_string(r->elements) +
                                 " rows, want " + std::to_string(p.want));
        break;
      case Op::kMemoryTop5:
      case Op::kMemoryTop5Touch:
        s = Search(p, r);
        break;
      default:
        break;
    }
    freeReplyObject(r);
    return s;
  }

 private:
  struct Pend {
    Request r;
    int replies;
    size_t want;
  };

  std::string NewId() {
    Uuid u;
    uint64_t a = rng_(), b = rng_();
    memcpy(u.bytes.data(), &a, 8);
    memcpy(u.bytes.data() + 8, &b, 8);
    return Hex(u);
  }

  // Client-side exact top-5 over the user's vectors (field = memory id, value = floats).
  Status Search(const Pend& p, redisReply* r) {
    const Dataset& d = *d_;
    size_t n = r->elements / 2;
    vecs_.resize(n * d.spec.dim);
    for (size_t i = 0; i < n; ++i) {
      redisReply* val = r->element[2 * i + 1];
      if (val->len != size_t(d.spec.dim) * sizeof(float))
        return Status::Corruption("memory vector of the wrong size");
      memcpy(&vecs_[i * d.spec.dim], val->str, val->len);
    }
    std::vector<int> top = TopK(d.queries[p.r.query].vector.data(), vecs_.data(), n, d.spec.dim, 5);
    if (top.size() != p.want)
      return Status::Corruption("memory top-5: " + std::to_string(top.size()) + " results");
    if (p.r.op == Op::kMemoryTop5Touch && !top.empty()) {
      // Touch: access_count + 1 and last_accessed_at on each result, one round trip.
      std::string uid = Hex(d.users[p.r.user].id), now = std::to_string(NowUs());
      for (int i : top) {
        std::string id(r->element[2 * i]->str, r->element[2 * i]->len);
        (Cmd() << "HINCRBY"
               << "memacc:" + uid << id << "1")
            .Append(c_);
        (Cmd() << "HSET"
               << "memlast:" + uid << id << now)
            .Append(c_);
      }
      for (size_t i = 0; i < 2 * top.size(); ++i) {
        void* v = nullptr;
        if (redisGetReply(c_, &v) != REDIS_OK) return Check(c_, nullptr, "touch");
        freeReplyObject(v);
      }
    }
    return Status::OK();
  }

  redisContext* c_;
  const Dataset* d_;
  Scripts s_;
  std::deque<Pend> pending_;
  std::mt19937_64 rng_{std::random_device{}()};
  std::vector<float> vecs_;
};

class RedisDriver : public Driver {
 public:
  explicit RedisDriver(const DriverOptions& o) : o_(o) {}
  std::string Name() const override { return "redis"; }
  std::string Durability() const override { return durability_; }
  std::string Settings() const override {
    return "Redis " + version_ + ", " + durability_ +
           ", hashes per record, sorted sets for ordered lists, Lua (EVALSHA) for list reads "
           "and multi-record writes, rollup hashes for usage summaries, memory top-5 exact "
           "client-side over HGETALL of the user's vectors, pipelining when pipelined";
  }
  Status Supports(Op op) const override { return Status::OK(); }

  Result<redisContext*> Dial() {
    redisContext* c = redisConnect(o_.host.c_str(), o_.port);
    if (!c || c->err) {
      std::string e = c ? c->errstr : "out of memory";
      if (c) redisFree(c);
      return Status::Unavailable("redis: " + e);
    }
    return c;
  }

  Result<std::unique_ptr<Session>> Connect() override {
    auto c = Dial();
    if (!c.ok()) return c.status();
    if (scripts_.fetch_z.empty()) {
      auto load = [&](const char* src) -> std::string {
        redisReply* r = static_cast<redisReply*>(redisCommand(*c, "SCRIPT LOAD %s", src));
        std::string sha = r && r->type == REDIS_REPLY_STRING ? r->str : "";
        if (r) freeReplyObject(r);
        return sha;
      };
      scripts_ = {load(kFetchZ), load(kGetUserAgent), load(kAppend), load(kTrack), load(kRate)};
      auto info = [&](const char* what) {
        redisReply* r = static_cast<redisReply*>(redisCommand(*c, "CONFIG GET %s", what));
        std::string v =
            r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 ? r->element[1]->str : "?";
        if (r) freeReplyObject(r);
        return v;
      };
      durability_ = "appendonly " + info("appendonly") + ", appendfsync " + info("appendfsync");
      redisReply* r = static_cast<redisReply*>(redisCommand(*c, "INFO server"));
      if (r && r->str) {
        std::string s = r->str;
        auto p = s.find("redis_version:");
        if (p != std::string::npos) version_ = s.substr(p + 14, s.find('\r', p) - p - 14);
      }
      if (r) freeReplyObject(r);
      if (scripts_.fetch_z.empty() || scripts_.track.empty())
        return Status::InvalidArgument("redis: SCRIPT LOAD failed");
    }
    return std::unique_ptr<Session>(new RedisSession(*c, o_.data, scripts_));
  }

  Status Load(const Dataset& d, int connections, LoadProgress& progress) override {
    {
      auto c = Dial();
      if (!c.ok()) return c.status();
      redisReply* r = static_cast<redisReply*>(redisCommand(*c, "FLUSHALL"));
      Status s = Check(*c, r, "FLUSHALL");
      if (s.ok()) freeReplyObject(r);
      redisFree(*c);
      if (!s.ok()) return s;
    }
    // Each record becomes a few commands; records are split over the connections and
    // pipelined, replies read every 512 commands.
    using Emit = std::function<void(std::vector<Cmd>&, size_t)>;
    auto phase = [&](size_t n, const Emit& emit) -> Status {
      std::vector<std::thread> threads;
      std::mutex mu;
      Status first = Status::OK();
      int parts = static_cast<int>(std::min<size_t>(connections, std::max<size_t>(1, n / 500)));
      for (int t = 0; t < parts; ++t)
        threads.emplace_back([&, t] {
          Status s = LoadRange(n * t / parts, n * (t + 1) / parts, emit, progress);
          std::lock_guard l(mu);
          if (!s.ok() && first.ok()) first = s;
        });
      for (auto& th : threads) th.join();
      return first;
    };
    Status s = phase(d.tenants.size(), [&](std::vector<Cmd>& out, size_t i) {
      const TenantRec& t = d.tenants[i];
      out.push_back(Cmd() << "HSET"
                          << "tenant:" + Hex(t.id) << "id" << Hex(t.id) << "name" << t.name
                          << "slug" << t.slug << "plan" << t.plan);
      out.push_back(Cmd() << "HSET"
                          << "quota:" + Hex(t.id) + ":" + Month(NowUs()) << "tokens_limit"
                          << "1000000000000"
                          << "api_calls_limit"
                          << "1000000000000");
    });
    if (s.ok())
      s = phase(d.agents.size(), [&](std::vector<Cmd>& out, size_t i) {
        const AgentRec& a = d.agents[i];
        out.push_back(Cmd() << "HSET"
                            << "agent:" + Hex(a.id) << "id" << Hex(a.id) << "name" << a.name
                            << "description" << a.description << "type" << a.type << "system_prompt"
                            << a.system_prompt << "model" << a.model << "is_public"
                            << "1");
      });
    if (s.ok())
      s = phase(d.users.size(), [&](std::vector<Cmd>& out, size_t i) {
        const UserRec& u = d.users[i];
        std::string id = Hex(u.id);
        out.push_back(Cmd() << "HSET"
                            << "user:" + id << "id" << id << "tenant_id"
                            << Hex(d.tenants[u.tenant].id) << "email" << u.email << "full_name"
                            << u.full_name << "avatar_url" << u.avatar_url << "job_title"
                            << u.job_title << "department" << u.department << "organization"
                            << u.organization << "role"
                            << "user"
                            << "preferences" << u.preferences << "notification_settings"
                            << R"({"email": true, "in_app": true, "weekly_digest": true})"
                            << "is_active"
                            << "1"
                            << "onboarding_completed"
                            << "0"
                            << "created_at" << u.created_at << "updated_at" << u.created_at);
        out.push_back(Cmd() << "SET"
                            << "email:" + u.email << id);
      });
    if (s.ok())
      s = phase(d.user_agents.size(), [&](std::vector<Cmd>& out, size_t i) {
        const UserAgentRec& ua = d.user_agents[i];
        std::string id = Hex(ua.id), user = Hex(d.users[ua.user].id),
                    agent = Hex(d.agents[ua.agent].id);
        out.push_back(Cmd() << "HSET"
                            << "ua:" + id << "id" << id << "user_id" << user << "agent_id" << agent
                            << "is_favorite" << (ua.is_favorite ? "1" : "0") << "is_pinned"
                            << (ua.is_pinned ? "1" : "0") << "sort_order" << int64_t(ua.sort_order)
                            << "folder" << ua.folder << "usage_count"
                            << "0"
                            << "status"
                            << "active"
                            << "created_at" << ua.created_at);
        int64_t score =
            (ua.is_pinned ? 0 : 2000000) + (ua.is_favorite ? 0 : 1000000) + ua.sort_order;
        out.push_back(Cmd() << "ZADD"
                            << "uas:" + user << score << id);
        out.push_back(Cmd() << "HSET"
                            << "uaidx:" + user << agent << id);
      });
    if (s.ok())
      s = phase(d.chats.size(), [&](std::vector<Cmd>& out, size_t i) {
        const ChatRec& ch = d.chats[i];
        std::string id = Hex(ch.id), user = Hex(d.users[ch.user].id);
        int64_t in = 0, outt = 0, cost = 0;
        for (uint32_t m = d.message_begin[i]; m < d.message_begin[i + 1]; ++m) {
          in += d.messages[m].input_tokens;
          outt += d.messages[m].output_tokens;
          cost += d.messages[m].cost;
        }
        out.push_back(Cmd() << "HSET"
                            << "chat:" + id << "id" << id << "user_id" << user << "agent_id"
                            << Hex(d.agents[ch.agent].id) << "title" << ch.title << "visibility"
                            << "private"
                            << "message_count"
                            << int64_t(d.message_begin[i + 1] - d.message_begin[i])
                            << "total_input_tokens" << in << "total_output_tokens" << outt
                            << "total_cost" << cost << "created_at" << ch.created_at);
        out.push_back(Cmd() << "ZADD"
                            << "chats:" + user << ch.created_at << id);
      });
    if (s.ok())
      s = phase(d.messages.size(), [&](std::vector<Cmd>& out, size_t i) {
        const MessageRec& m = d.messages[i];
        std::string id = Hex(m.id), chat = Hex(d.chats[m.chat].id);
        out.push_back(Cmd() << "HSET"
                            << "msg:" + id << "id" << id << "chat_id" << chat << "role"
                            << (m.assistant ? "assistant" : "user") << "parts" << m.parts
                            << "model_used" << (m.assistant ? kModels[m.model] : "")
                            << "input_tokens" << m.input_tokens << "output_tokens"
                            << m.output_tokens << "cost" << m.cost << "created_at" << m.created_at);
        out.push_back(Cmd() << "ZADD"
                            << "msgs:" + chat << m.created_at << id);
      });
    if (s.ok())
      s = phase(d.usage_logs.size(), [&](std::vector<Cmd>& out, size_t i) {
        const UsageLogRec& g = d.usage_logs[i];
        std::string id = Hex(g.id), user = Hex(d.users[g.user].id),
                    tenant = Hex(d.tenants[d.users[g.user].tenant].id), month = Month(g.request_ts),
                    model = kModels[g.model];
        int64_t tok = g.input_tokens + g.output_tokens, cost = g.input_cost + g.output_cost;
        out.push_back(Cmd() << "HSET"
                            << "log:" + id << "id" << id << "user_id" << user << "tenant_id"
                            << tenant << "chat_id" << (g.chat >= 0 ? Hex(d.chats[g.chat].id) : "")
                            << "agent_id" << Hex(d.agents[g.agent].id) << "agent_type"
                            << kAgentTypes[g.agent_type] << "model" << model << "provider"
                            << kProviders[g.model] << "input_tokens" << g.input_tokens
                            << "output_tokens" << g.output_tokens << "total_tokens" << tok
                            << "input_cost" << g.input_cost << "output_cost" << g.output_cost
                            << "total_cost" << cost << "request_ts" << g.request_ts << "response_ts"
                            << g.response_ts << "success" << (g.success ? "1" : "0"));
        out.push_back(Cmd() << "ZADD"
                            << "logs:" + user << g.request_ts << id);
        for (const std::string& k :
             {"usage:" + user + ":" + month, "tusage:" + tenant + ":" + month}) {
          out.push_back(Cmd() << "HINCRBY" << k << model + ":count"
                              << "1");
          out.push_back(Cmd() << "HINCRBY" << k << model + ":tokens" << tok);
          out.push_back(Cmd() << "HINCRBY" << k << model + ":cost" << cost);
        }
      });
    if (s.ok())
      s = phase(d.memories.size(), [&](std::vector<Cmd>& out, size_t i) {
        const MemoryRec& m = d.memories[i];
        std::string id = Hex(m.id), user = Hex(d.users[m.user].id);
        std::string vec(reinterpret_cast<const char*>(d.Embedding(i)), d.spec.dim * sizeof(float));
        out.push_back(Cmd() << "HSET"
                            << "memory:" + id << "id" << id << "user_id" << user << "memory_type"
                            << kMemoryTypes[m.type] << "memory_key" << m.key << "memory_value"
                            << m.value << "importance_score" << std::to_string(m.importance));
        out.push_back(Cmd() << "HSET"
                            << "mem:" + user << id << vec);
      });
    return s;
  }

 private:
  Status LoadRange(size_t from, size_t to,
                   const std::function<void(std::vector<Cmd>&, size_t)>& emit,
                   LoadProgress& progress) {
    auto c = Dial();
    if (!c.ok()) return c.status();
    redisContext* ctx = *c;
    std::vector<Cmd> cmds;
    size_t outstanding = 0, records = 0;
    Status s = Status::OK();
    auto drain = [&] {
      for (; outstanding > 0; --outstanding) {
        void* v = nullptr;
        if (redisGetReply(ctx, &v) != REDIS_OK) {
          s = Check(ctx, nullptr, "load");
          return;
        }
        Status st = Check(ctx, static_cast<redisReply*>(v), "load");
        if (!st.ok()) {
          s = st;
          continue;
        }
        freeReplyObject(v);
      }
      progress.Add(records);
      records = 0;
    };
    for (size_t i = from; i < to && s.ok(); ++i) {
      cmds.clear();
      emit(cmds, i);
      for (auto& cmd : cmds) cmd.Append(ctx);
      outstanding += cmds.size();
      ++records;
      if (outstanding >= 512) drain();
    }
    if (s.ok()) drain();
    redisFree(ctx);
    return s;
  }

  DriverOptions o_;
  Scripts scripts_;
  std::string durability_ = "?", version_ = "?";
};

}  // namespace

std::unique_ptr<Driver> MakeRedisDriver(const DriverOptions& o) {
  return std::make_unique<RedisDriver>(o);
}

std::vector<int> TopK(const float* query, const float* vectors, size_t n, int dim, int k) {
  std::vector<std::pair<float, int>> scored(n);
  for (size_t i = 0; i < n; ++i) {
    const float* v = vectors + i * dim;
    float s = 0;
    for (int j = 0; j < dim; ++j) s += v[j] * query[j];
    scored[i] = {-s, static_cast<int>(i)};
  }
  size_t m = std::min<size_t>(k, n);
  std::partial_sort(scored.begin(), scored.begin() + m, scored.end());
  std::vector<int> out;
  for (size_t i = 0; i < m; ++i) out.push_back(scored[i].second);
  return out;
}

}  // namespace agentstore::bench
