// PostgreSQL 15 peer over libpq: the seed schemas (000 user_profiles / user_agents /
// user_memory / quota_tracking, 001 chat / "Message_v2" / usage_logs /
// rate_limit_tracking with their indexes, 003 tenants), prepared statements, pipeline
// mode for pipelined workloads, each statement its own transaction with
// synchronous_commit on (the server's setting, checked at connect). Bulk load via COPY.
//
// Memory search: Debian 12 has no pgvector, so embeddings are real[] and the per-user
// exact top-5 is computed in SQL (inner product through unnest over the user's rows,
// found by a btree on user_id).
#include <libpq-fe.h>

#include <cmath>
#include <cstring>
#include <ctime>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "driver.h"

namespace agentstore::bench {

namespace {

const char* kSchema = R"SQL(
SET client_min_messages = warning;
DROP TABLE IF EXISTS tenants, user_profiles, agents, user_agents, chat, "Message_v2",
  usage_logs, user_memory, quota_tracking, rate_limit_tracking CASCADE;
-- 003: tenants
CREATE TABLE tenants (
  id UUID PRIMARY KEY, name TEXT NOT NULL, slug TEXT NOT NULL UNIQUE, plan TEXT,
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(), updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  deleted_at TIMESTAMPTZ);
-- 000: user_profiles (+ tenant_id, as the data model has it)
CREATE TABLE user_profiles (
  id UUID PRIMARY KEY, tenant_id UUID REFERENCES tenants(id), email TEXT NOT NULL UNIQUE,
  full_name TEXT, avatar_url TEXT, job_title TEXT, department TEXT, organization TEXT,
  preferences JSONB DEFAULT '{}'::jsonb,
  notification_settings JSONB DEFAULT '{"email": true, "in_app": true, "weekly_digest": true}'::jsonb,
  is_active BOOLEAN DEFAULT true, last_seen_at TIMESTAMPTZ,
  onboarding_completed BOOLEAN DEFAULT false,
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(), updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  deleted_at TIMESTAMPTZ);
CREATE TABLE agents (
  id UUID PRIMARY KEY, tenant_id UUID, creator_id UUID, name TEXT NOT NULL, description TEXT,
  type TEXT, system_prompt TEXT, model TEXT, temperature NUMERIC, max_tokens INTEGER,
  capabilities JSONB DEFAULT '{}', is_public BOOLEAN DEFAULT false,
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(), updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  deleted_at TIMESTAMPTZ);
-- 000: user_agents, all 54 columns
CREATE TABLE user_agents (
  id UUID PRIMARY KEY, user_id UUID NOT NULL REFERENCES user_profiles(id),
  agent_id UUID NOT NULL REFERENCES agents(id), original_agent_id UUID REFERENCES agents(id),
  is_user_copy BOOLEAN DEFAULT false,
  custom_name TEXT, custom_description TEXT, custom_avatar TEXT, custom_color TEXT,
  custom_system_prompt TEXT, custom_temperature NUMERIC, custom_max_tokens INTEGER,
  is_favorite BOOLEAN DEFAULT false, is_pinned BOOLEAN DEFAULT false, folder TEXT, tags TEXT[],
  sort_order INTEGER DEFAULT 0, display_position TEXT,
  usage_count INTEGER DEFAULT 0, message_count INTEGER DEFAULT 0,
  conversation_count INTEGER DEFAULT 0, success_count INTEGER DEFAULT 0,
  error_count INTEGER DEFAULT 0,
  user_rating NUMERIC(3,2), quality_score NUMERIC(3,2), last_rating_at TIMESTAMPTZ,
  avg_response_time_ms INTEGER, total_tokens_used BIGINT DEFAULT 0,
  total_cost_usd NUMERIC(10,2) DEFAULT 0,
  added_at TIMESTAMPTZ DEFAULT NOW(), first_used_at TIMESTAMPTZ, last_used_at TIMESTAMPTZ,
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(), updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  archived_at TIMESTAMPTZ, deleted_at TIMESTAMPTZ,
  is_active BOOLEAN DEFAULT true, is_enabled BOOLEAN DEFAULT true,
  is_visible BOOLEAN DEFAULT true, status TEXT DEFAULT 'active',
  settings JSONB DEFAULT '{}', preferences JSONB DEFAULT '{}', ui_config JSONB DEFAULT '{}',
  notification_settings JSONB DEFAULT '{"email": true, "in_app": true}',
  metadata JSONB DEFAULT '{}', source_details JSONB DEFAULT '{}',
  share_settings JSONB DEFAULT '{}', notifications_enabled BOOLEAN DEFAULT true,
  last_conversation_id UUID, notes TEXT, quick_notes TEXT, source TEXT,
  is_shared BOOLEAN DEFAULT false, shared_with UUID[], team_id UUID,
  UNIQUE(user_id, agent_id));
-- 001: chat (+ agent_id, message_count as the data model has them)
CREATE TABLE chat (
  id UUID PRIMARY KEY, user_id UUID NOT NULL REFERENCES user_profiles(id) ON DELETE CASCADE,
  agent_id UUID, title TEXT NOT NULL, createdAt TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  visibility VARCHAR NOT NULL DEFAULT 'private', lastContext JSONB,
  message_count INTEGER NOT NULL DEFAULT 0,
  total_input_tokens INTEGER DEFAULT 0, total_output_tokens INTEGER DEFAULT 0,
  total_cost DECIMAL DEFAULT 0, updated_at TIMESTAMPTZ DEFAULT NOW());
CREATE TABLE "Message_v2" (
  id UUID PRIMARY KEY, chatId UUID NOT NULL REFERENCES chat(id) ON DELETE CASCADE,
  role VARCHAR NOT NULL, parts JSON NOT NULL, attachments JSON NOT NULL DEFAULT '[]',
  createdAt TIMESTAMPTZ NOT NULL DEFAULT NOW(), model_used VARCHAR,
  input_tokens INTEGER, output_tokens INTEGER, cost DECIMAL);
-- 001: usage_logs (+ tenant_id, agent_id, success as the data model has them)
CREATE TABLE usage_logs (
  id UUID PRIMARY KEY, user_id UUID NOT NULL REFERENCES user_profiles(id) ON DELETE CASCADE,
  tenant_id UUID, chat_id UUID REFERENCES chat(id) ON DELETE SET NULL, agent_id UUID,
  agent_type VARCHAR NOT NULL, model_used VARCHAR, provider VARCHAR,
  input_tokens INTEGER, output_tokens INTEGER, total_tokens INTEGER,
  input_cost DECIMAL, output_cost DECIMAL, total_cost DECIMAL,
  request_timestamp TIMESTAMPTZ NOT NULL, response_timestamp TIMESTAMPTZ, duration_ms INTEGER,
  success BOOLEAN DEFAULT true, metadata JSONB);
-- 000: user_memory; embedding real[] because Debian 12 has no pgvector
CREATE TABLE user_memory (
  id UUID PRIMARY KEY, user_id UUID NOT NULL REFERENCES user_profiles(id),
  memory_type TEXT, memory_key TEXT NOT NULL, memory_value JSONB NOT NULL,
  importance_score NUMERIC CHECK (importance_score >= 0 AND importance_score <= 1),
  last_accessed_at TIMESTAMPTZ, access_count INTEGER DEFAULT 0, embedding REAL[],
  expires_at TIMESTAMPTZ, created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW());
-- 000: quota_tracking
CREATE TABLE quota_tracking (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(), tenant_id UUID NOT NULL REFERENCES tenants(id),
  quota_type TEXT NOT NULL, quota_limit BIGINT NOT NULL, current_usage BIGINT DEFAULT 0,
  period_start DATE NOT NULL, period_end DATE NOT NULL,
  alert_threshold_percentage NUMERIC DEFAULT 80, is_exceeded BOOLEAN DEFAULT false,
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(), updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW());
-- 001: rate_limit_tracking
CREATE TABLE rate_limit_tracking (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id UUID NOT NULL REFERENCES user_profiles(id) ON DELETE CASCADE,
  agent_type VARCHAR NOT NULL, period_start TIMESTAMPTZ NOT NULL,
  period_end TIMESTAMPTZ NOT NULL, request_count INTEGER NOT NULL DEFAULT 0,
  limit_type VARCHAR NOT NULL, limit_value INTEGER NOT NULL,
  created_at TIMESTAMPTZ DEFAULT NOW());
-- 001's indexes
CREATE INDEX idx_chat_user_created ON chat(user_id, createdAt DESC);
CREATE INDEX idx_message_chat ON "Message_v2"(chatId, createdAt ASC);
CREATE INDEX idx_usage_logs_user_timestamp ON usage_logs(user_id, request_timestamp DESC);
CREATE INDEX idx_usage_logs_agent_timestamp ON usage_logs(agent_type, request_timestamp DESC);
CREATE INDEX idx_usage_logs_date_range ON usage_logs(request_timestamp);
-- UNIQUE (001 has a plain index) so a check is one INSERT .. ON CONFLICT
CREATE UNIQUE INDEX idx_rate_limit_user_agent ON rate_limit_tracking(user_id, agent_type, period_start);
-- added: what the admin query and the per-user memory scan need
CREATE INDEX idx_usage_logs_tenant_timestamp ON usage_logs(tenant_id, request_timestamp DESC);
CREATE INDEX idx_user_memory_user ON user_memory(user_id);
CREATE INDEX idx_quota_tenant ON quota_tracking(tenant_id, quota_type);
)SQL";

struct Stmt {
  Op op;
  const char* name;
  const char* sql;
};

const Stmt kStmts[] = {
    {Op::kGetUser, "get_user", "SELECT * FROM user_profiles WHERE id = $1"},
    {Op::kListAgents, "list_agents",
     "SELECT * FROM user_agents WHERE user_id = $1 AND archived_at IS NULL AND deleted_at IS NULL "
     "ORDER BY is_pinned DESC, is_favorite DESC, sort_order"},
    {Op::kListChats, "list_chats",
     "SELECT * FROM chat WHERE user_id = $1 ORDER BY createdAt DESC LIMIT 20"},
    {Op::kLast20Messages, "last_20_messages",
     "SELECT * FROM \"Message_v2\" WHERE chatId = $1 ORDER BY createdAt DESC LIMIT 20"},
    {Op::kAppendMessage, "append_message",
     "WITH m AS (INSERT INTO \"Message_v2\" (id, chatId, role, parts, model_used, input_tokens, "
     "output_tokens, cost) VALUES (gen_random_uuid(), $1, $2, $3::json, $4, $5, $6, $7) "
     "RETURNING input_tokens, output_tokens, cost) "
     "UPDATE chat SET message_count = message_count + 1, total_input_tokens = total_input_tokens "
     "+ m.input_tokens, total_output_tokens = total_output_tokens + m.output_tokens, total_cost "
     "= total_cost + m.cost, updated_at = now() FROM m WHERE chat.id = $1 RETURNING chat.id"},
    {Op::kGetUserAgent, "get_user_agent",
     "SELECT * FROM user_agents WHERE user_id = $1 AND agent_id = $2"},
    // $1 user $2 agent $3 chat $4 tenant $5 in_tok $6 out_tok $7 in_cost $8 out_cost
    // $9 model $10 provider $11 agent_type $12 duration_ms
    {Op::kTrackAgentUsage, "track_agent_usage",
     "WITH ua AS (UPDATE user_agents SET usage_count = usage_count + 1, message_count = "
     "message_count + 1, success_count = success_count + 1, total_tokens_used = "
     "total_tokens_used + $5::bigint + $6::bigint, total_cost_usd = total_cost_usd + ($7::bigint + "
     "$8::bigint) / 1e6, "
     "avg_response_time_ms = ((coalesce(avg_response_time_ms, 0) * usage_count + $12::bigint) / "
     "(usage_count + 1))::int, first_used_at = coalesce(first_used_at, now()), last_used_at = "
     "now(), updated_at = now() WHERE user_id = $1 AND agent_id = $2 RETURNING usage_count), "
     "log AS (INSERT INTO usage_logs (id, user_id, tenant_id, chat_id, agent_id, agent_type, "
     "model_used, provider, input_tokens, output_tokens, total_tokens, input_cost, output_cost, "
     "total_cost, request_timestamp, response_timestamp, duration_ms, success) VALUES "
     "(gen_random_uuid(), $1, $4, $3, $2, $11, $9, $10, $5::bigint, $6::bigint, $5::bigint + "
     "$6::bigint, $7::bigint, $8::bigint, $7::bigint + $8::bigint, "
     "now() - make_interval(secs => $12::bigint / 1000.0), now(), $12::bigint, true)), "
     "ch AS (UPDATE chat SET total_input_tokens = total_input_tokens + $5::bigint, "
     "total_output_tokens = "
     "total_output_tokens + $6::bigint, total_cost = total_cost + $7::bigint + $8::bigint, "
     "updated_at = now() WHERE id = "
     "$3) "
     "UPDATE quota_tracking SET current_usage = current_usage + CASE quota_type WHEN 'tokens' "
     "THEN $5::bigint + $6::bigint ELSE 1 END, is_exceeded = current_usage + CASE quota_type WHEN "
     "'tokens' THEN "
     "$5::bigint + $6::bigint ELSE 1 END > quota_limit, updated_at = now() WHERE tenant_id = $4 "
     "AND quota_type "
     "IN ('tokens', 'api_calls') AND period_start <= current_date AND period_end >= "
     "current_date RETURNING current_usage, is_exceeded, (SELECT usage_count FROM ua)"},
    {Op::kRateLimitCheck, "rate_limit_check",
     "INSERT INTO rate_limit_tracking (user_id, agent_type, period_start, period_end, "
     "request_count, limit_type, limit_value) VALUES ($1, $2, date_trunc('hour', now()), "
     "date_trunc('hour', now()) + interval '1 hour', 1, 'hourly', 1000000000) ON CONFLICT "
     "(user_id, agent_type, period_start) DO UPDATE SET request_count = "
     "rate_limit_tracking.request_count + 1 WHERE rate_limit_tracking.request_count < "
     "rate_limit_tracking.limit_value RETURNING request_count"},
    {Op::kMemoryTop5, "memory_top5",
     "SELECT id, memory_key, memory_value FROM user_memory WHERE user_id = $1 AND (expires_at "
     "IS NULL OR expires_at > now()) ORDER BY (SELECT sum(a * b) FROM unnest(embedding, "
     "$2::real[]) AS t(a, b)) DESC LIMIT 5"},
    {Op::kMemoryTop5Touch, "memory_top5_touch",
     "WITH top AS (SELECT id FROM user_memory WHERE user_id = $1 AND (expires_at IS NULL OR "
     "expires_at > now()) ORDER BY (SELECT sum(a * b) FROM unnest(embedding, $2::real[]) AS "
     "t(a, b)) DESC LIMIT 5) UPDATE user_memory m SET access_count = access_count + 1, "
     "last_accessed_at = now() FROM top WHERE m.id = top.id RETURNING m.id, m.memory_value"},
    {Op::kUsageSummary, "usage_summary",
     "SELECT model_used, count(*), sum(total_tokens), sum(total_cost) FROM usage_logs WHERE "
     "user_id = $1 AND request_timestamp >= $2 AND request_timestamp < $3 GROUP BY model_used"},
    {Op::kTenantUsage, "tenant_usage",
     "SELECT model_used, count(*), sum(total_tokens), sum(total_cost) FROM usage_logs WHERE "
     "tenant_id = $1 AND request_timestamp >= $2 AND request_timestamp < $3 GROUP BY "
     "model_used"},
};

std::string Ts(int64_t micros) {
  time_t t = static_cast<time_t>(micros / 1000000);
  tm g{};
  gmtime_r(&t, &g);
  char b[64];
  snprintf(b, sizeof b, "%04d-%02d-%02d %02d:%02d:%02d.%06lld+00", g.tm_year + 1900, g.tm_mon + 1,
           g.tm_mday, g.tm_hour, g.tm_min, g.tm_sec, static_cast<long long>(micros % 1000000));
  return b;
}

std::string VectorLiteral(const float* v, int dim) {
  std::string s = "{";
  char b[32];
  for (int i = 0; i < dim; ++i) {
    snprintf(b, sizeof b, "%s%.7g", i ? "," : "", v[i]);
    s += b;
  }
  return s + "}";
}

// COPY text format: backslash, tab and newline escaped.
void CopyField(std::string& line, std::string_view v, bool last = false) {
  for (char c : v) {
    if (c == '\\')
      line += "\\\\";
    else if (c == '\t')
      line += "\\t";
    else if (c == '\n')
      line += "\\n";
    else
      line += c;
  }
  line += last ? '\n' : '\t';
}

class PgSession : public Session {
 public:
  PgSession(PGconn* c, const Dataset* d) : conn_(c), d_(d) {}
  ~PgSession() override { PQfinish(conn_); }

  void Send(const Request& r) override {
    const Dataset& d = *d_;
    std::vector<std::string> p;
    size_t want = 0;
    bool at_least = false;
    const UserRec& u = d.users[r.user];
    switch (r.op) {
      case Op::kGetUser:
        p = {u.id.ToString()};
        want = 1;
        break;
      case Op::kListAgents:
        p = {u.id.ToString()};
        want = d.ua_begin[r.user + 1] - d.ua_begin[r.user];
        break;
      case Op::kListChats:
        p = {u.id.ToString()};
        want = std::min<size_t>(20, d.chat_begin[r.user + 1] - d.chat_begin[r.user]);
        at_least = true;
        break;
      case Op::kLast20Messages:
        p = {d.chats[r.chat].id.ToString()};
        want = std::min<size_t>(20, d.message_begin[r.chat + 1] - d.message_begin[r.chat]);
        at_least = true;
        break;
      case Op::kAppendMessage:
        p = {d.chats[r.chat].id.ToString(),
             r.seq % 2 ? "assistant" : "user",
             MessageParts(r.seq),
             r.seq % 2 ? "gpt-4o-mini" : "",
             std::to_string(120 + r.seq % 50),
             std::to_string(r.seq % 2 ? 300 : 0),
             "450"};
        want = 1;
        break;
      case Op::kGetUserAgent: {
        const UserAgentRec& ua = d.user_agents[r.user_agent];
        p = {d.users[ua.user].id.ToString(), d.agents[ua.agent].id.ToString()};
        want = 1;
        break;
      }
      case Op::kTrackAgentUsage: {
        const UserAgentRec& ua = d.user_agents[r.user_agent];
        int model = static_cast<int>(r.seq % 4);
        p = {u.id.ToString(),
             d.agents[ua.agent].id.ToString(),
             d.chats[r.chat].id.ToString(),
             d.tenants[u.tenant].id.ToString(),
             std::to_string(200 + r.seq % 300),
             std::to_string(100 + r.seq % 700),
             std::to_string(600 + r.seq % 900),
             std::to_string(1200 + r.seq % 8400),
             kModels[model],
             kProviders[model],
             kAgentTypes[r.seq % 5],
             std::to_string(300 + r.seq % 5000)};
        want = 2;  // the tokens and api_calls quota rows
        break;
      }
      case Op::kRateLimitCheck: {
        const UserAgentRec& ua = d.user_agents[r.user_agent];
        p = {u.id.ToString(), d.agents[ua.agent].type};
        want = 1;
        break;
      }
      case Op::kMemoryTop5:
      case Op::kMemoryTop5Touch:
        p = {u.id.ToString(), VectorLiteral(d.queries[r.query].vector.data(), d.spec.dim)};
        want = std::min<size_t>(5, d.memory_begin[r.user + 1] - d.memory_begin[r.user]);
        break;
      case Op::kUsageSummary:
        p = {u.id.ToString(), Ts(d.MonthStart()), Ts(d.MonthEnd())};
        break;
      case Op::kTenantUsage:
        p = {d.tenants[r.tenant].id.ToString(), Ts(d.MonthStart()), Ts(d.MonthEnd())};
        break;
      case Op::kCount:
        break;
    }
    std::vector<const char*> v;
    for (auto& s : p) v.push_back(s.c_str());
    const char* name = nullptr;
    for (const Stmt& s : kStmts)
      if (s.op == r.op) name = s.name;
    if (!name ||
        !PQsendQueryPrepared(conn_, name, static_cast<int>(v.size()), v.data(), nullptr, nullptr,
                             0) ||
        !PQpipelineSync(conn_)) {
      expect_.push_back({r.op, want, at_least, false});
      return;
    }
    expect_.push_back({r.op, want, at_least, true});
  }

  Status Recv() override {
    Expect e = expect_.front();
    expect_.pop_front();
    if (!e.sent) return Status::IoError(std::string("send: ") + PQerrorMessage(conn_));
    Status s = Status::OK();
    for (;;) {
      PGresult* res = PQgetResult(conn_);
      if (!res) {  // end of one query's results in pipeline mode, or a dead connection
        if (PQstatus(conn_) == CONNECTION_BAD)
          return Status::IoError(std::string("postgres: ") + PQerrorMessage(conn_));
        continue;
      }
      ExecStatusType st = PQresultStatus(res);
      if (st == PGRES_PIPELINE_SYNC) {
        PQclear(res);
        break;
      }
      if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        size_t n = static_cast<size_t>(PQntuples(res));
        if (e.want && (e.at_least ? n < e.want : n != e.want) && s.ok())
          s = Status::Corruption(std::string(OpName(e.op)) + ": " + std::to_string(n) +
                                 " rows, want " + std::to_string(e.want));
      } else if (s.ok()) {
        s = Status::IoError(std::string(OpName(e.op)) + ": " + PQresultErrorMessage(res));
      }
      PQclear(res);
    }
    return s;
  }

 private:
  struct Expect {
    Op op;
    size_t want;
    bool at_least, sent;
  };
  PGconn* conn_;
  const Dataset* d_;
  std::deque<Expect> expect_;
};

class PgDriver : public Driver {
 public:
  explicit PgDriver(const DriverOptions& o) : o_(o) {
    conninfo_ = "host=" + o.host + " port=" + std::to_string(o.port) + " user=" + o.user +
                " dbname=" + o.database;
  }
  std::string Name() const override { return "postgres"; }
  std::string Durability() const override { return "synchronous_commit=" + sync_commit_; }
  std::string Settings() const override {
    return "PostgreSQL " + version_ + ", synchronous_commit " + sync_commit_ + ", fsync " + fsync_ +
           ", shared_buffers " + shared_buffers_ +
           ", seed schemas 000/001/003 with their indexes, prepared statements, pipeline mode "
           "when pipelined, one statement (CTEs) per multi-record operation, memory top-5 exact "
           "in SQL over real[] (no pgvector in Debian 12), bulk load by COPY";
  }
  Status Supports(Op op) const override { return Status::OK(); }

  Result<PGconn*> Dial(bool prepare) {
    PGconn* c = PQconnectdb(conninfo_.c_str());
    if (PQstatus(c) != CONNECTION_OK) {
      std::string e = PQerrorMessage(c);
      PQfinish(c);
      return Status::Unavailable("postgres: " + e);
    }
    if (prepare)
      for (const Stmt& s : kStmts) {
        PGresult* r = PQprepare(c, s.name, s.sql, 0, nullptr);
        bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        std::string e = PQresultErrorMessage(r);
        PQclear(r);
        if (!ok) {
          PQfinish(c);
          return Status::InvalidArgument(std::string("prepare ") + s.name + ": " + e);
        }
      }
    return c;
  }

  Result<std::unique_ptr<Session>> Connect() override {
    auto c = Dial(true);
    if (!c.ok()) return c.status();
    if (version_.empty()) {
      version_ = Show(*c, "server_version");
      sync_commit_ = Show(*c, "synchronous_commit");
      fsync_ = Show(*c, "fsync");
      shared_buffers_ = Show(*c, "shared_buffers");
    }
    if (!PQenterPipelineMode(*c)) {
      PQfinish(*c);
      return Status::Unavailable("postgres: cannot enter pipeline mode");
    }
    return std::unique_ptr<Session>(new PgSession(*c, o_.data));
  }

  Status Load(const Dataset& d, int connections, LoadProgress& progress) override {
    auto c = Dial(false);
    if (!c.ok()) return c.status();
    Status s = Exec(*c, kSchema);
    PQfinish(*c);
    if (!s.ok()) return s;
    using Row = std::function<void(std::string&, size_t)>;
    auto copy = [&](const char* table, size_t n, const Row& row) -> Status {
      int parts = static_cast<int>(std::min<size_t>(connections, std::max<size_t>(1, n / 1000)));
      std::vector<std::thread> threads;
      std::mutex mu;
      Status first = Status::OK();
      for (int t = 0; t < parts; ++t)
        threads.emplace_back([&, t] {
          Status st = CopyRange(table, n * t / parts, n * (t + 1) / parts, row, progress);
          std::lock_guard l(mu);
          if (!st.ok() && first.ok()) first = st;
        });
      for (auto& th : threads) th.join();
      return first;
    };
    auto id = [](std::string& l, const Uuid& u) { CopyField(l, u.ToString()); };
    auto num = [](std::string& l, int64_t v, bool last = false) {
      CopyField(l, std::to_string(v), last);
    };
    s = copy("tenants (id, name, slug, plan)", d.tenants.size(), [&](std::string& l, size_t i) {
      const TenantRec& t = d.tenants[i];
      id(l, t.id);
      CopyField(l, t.name);
      CopyField(l, t.slug);
      CopyField(l, t.plan, true);
    });
    if (s.ok())
      s = copy("agents (id, name, description, type, system_prompt, model, is_public)",
               d.agents.size(), [&](std::string& l, size_t i) {
                 const AgentRec& a = d.agents[i];
                 id(l, a.id);
                 CopyField(l, a.name);
                 CopyField(l, a.description);
                 CopyField(l, a.type);
                 CopyField(l, a.system_prompt);
                 CopyField(l, a.model);
                 CopyField(l, "t", true);
               });
    if (s.ok())
      s = copy(
          "user_profiles (id, tenant_id, email, full_name, avatar_url, job_title, department, "
          "organization, preferences, created_at)",
          d.users.size(), [&](std::string& l, size_t i) {
            const UserRec& u = d.users[i];
            id(l, u.id);
            id(l, d.tenants[u.tenant].id);
            CopyField(l, u.email);
            CopyField(l, u.full_name);
            CopyField(l, u.avatar_url);
            CopyField(l, u.job_title);
            CopyField(l, u.department);
            CopyField(l, u.organization);
            CopyField(l, u.preferences);
            CopyField(l, Ts(u.created_at), true);
          });
    if (s.ok())
      s = copy(
          "user_agents (id, user_id, agent_id, is_favorite, is_pinned, sort_order, folder, "
          "created_at)",
          d.user_agents.size(), [&](std::string& l, size_t i) {
            const UserAgentRec& ua = d.user_agents[i];
            id(l, ua.id);
            id(l, d.users[ua.user].id);
            id(l, d.agents[ua.agent].id);
            CopyField(l, ua.is_favorite ? "t" : "f");
            CopyField(l, ua.is_pinned ? "t" : "f");
            num(l, ua.sort_order);
            CopyField(l, ua.folder.empty() ? "\\N" : ua.folder);
            CopyField(l, Ts(ua.created_at), true);
          });
    if (s.ok())
      s = copy("chat (id, user_id, agent_id, title, createdAt, message_count)", d.chats.size(),
               [&](std::string& l, size_t i) {
                 const ChatRec& ch = d.chats[i];
                 id(l, ch.id);
                 id(l, d.users[ch.user].id);
                 id(l, d.agents[ch.agent].id);
                 CopyField(l, ch.title);
                 CopyField(l, Ts(ch.created_at));
                 num(l, d.message_begin[i + 1] - d.message_begin[i], true);
               });
    if (s.ok())
      s = copy(
          "\"Message_v2\" (id, chatId, role, parts, model_used, input_tokens, output_tokens, "
          "cost, createdAt)",
          d.messages.size(), [&](std::string& l, size_t i) {
            const MessageRec& m = d.messages[i];
            id(l, m.id);
            id(l, d.chats[m.chat].id);
            CopyField(l, m.assistant ? "assistant" : "user");
            CopyField(l, m.parts);
            CopyField(l, m.assistant ? kModels[m.model] : "");
            num(l, m.input_tokens);
            num(l, m.output_tokens);
            num(l, m.cost);
            CopyField(l, Ts(m.created_at), true);
          });
    if (s.ok())
      s = copy(
          "usage_logs (id, user_id, tenant_id, chat_id, agent_id, agent_type, model_used, "
          "provider, input_tokens, output_tokens, total_tokens, input_cost, output_cost, "
          "total_cost, request_timestamp, response_timestamp, duration_ms, success)",
          d.usage_logs.size(), [&](std::string& l, size_t i) {
            const UsageLogRec& g = d.usage_logs[i];
            id(l, g.id);
            id(l, d.users[g.user].id);
            id(l, d.tenants[d.users[g.user].tenant].id);
            if (g.chat >= 0)
              id(l, d.chats[g.chat].id);
            else
              CopyField(l, "\\N");
            id(l, d.agents[g.agent].id);
            CopyField(l, kAgentTypes[g.agent_type]);
            CopyField(l, kModels[g.model]);
            CopyField(l, kProviders[g.model]);
            num(l, g.input_tokens);
            num(l, g.output_tokens);
            num(l, g.input_tokens + g.output_tokens);
            num(l, g.input_cost);
            num(l, g.output_cost);
            num(l, g.input_cost + g.output_cost);
            CopyField(l, Ts(g.request_ts));
            CopyField(l, Ts(g.response_ts));
            num(l, (g.response_ts - g.request_ts) / 1000);
            CopyField(l, g.success ? "t" : "f", true);
          });
    if (s.ok())
      s = copy(
          "user_memory (id, user_id, memory_type, memory_key, memory_value, importance_score, "
          "embedding)",
          d.memories.size(), [&](std::string& l, size_t i) {
            const MemoryRec& m = d.memories[i];
            id(l, m.id);
            id(l, d.users[m.user].id);
            CopyField(l, kMemoryTypes[m.type]);
            CopyField(l, m.key);
            CopyField(l, m.value);
            char b[32];
            snprintf(b, sizeof b, "%.4f", m.importance);
            CopyField(l, b);
            CopyField(l, VectorLiteral(d.Embedding(i), d.spec.dim), true);
          });
    if (!s.ok()) return s;
    c = Dial(false);
    if (!c.ok()) return c.status();
    s = Exec(*c,
             "INSERT INTO quota_tracking (tenant_id, quota_type, quota_limit, period_start, "
             "period_end) SELECT t.id, q.qt, 1000000000000, date_trunc('month', current_date), "
             "date_trunc('month', current_date) + interval '1 month' - interval '1 day' FROM "
             "tenants t CROSS JOIN (VALUES ('tokens'), ('api_calls')) AS q(qt); ANALYZE;");
    PQfinish(*c);
    return s;
  }

 private:
  static std::string Show(PGconn* c, const char* what) {
    PGresult* r = PQexec(c, (std::string("SHOW ") + what).c_str());
    std::string v = PQresultStatus(r) == PGRES_TUPLES_OK ? PQgetvalue(r, 0, 0) : "?";
    PQclear(r);
    return v;
  }
  static Status Exec(PGconn* c, const char* sql) {
    PGresult* r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    std::string e = PQresultErrorMessage(r);
    PQclear(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return Status::IoError("postgres: " + e);
    return Status::OK();
  }
  Status CopyRange(const char* table, size_t from, size_t to,
                   const std::function<void(std::string&, size_t)>& row, LoadProgress& progress) {
    auto c = Dial(false);
    if (!c.ok()) return c.status();
    PGconn* conn = *c;
    PGresult* start = PQexec(conn, (std::string("COPY ") + table + " FROM STDIN").c_str());
    bool copying = PQresultStatus(start) == PGRES_COPY_IN;
    std::string err = PQresultErrorMessage(start);
    PQclear(start);
    if (!copying) {
      PQfinish(conn);
      return Status::IoError(std::string("COPY ") + table + ": " + err);
    }
    std::string buf;
    for (size_t i = from; i < to; ++i) {
      row(buf, i);
      if (buf.size() > (1 << 20) || i + 1 == to) {
        if (PQputCopyData(conn, buf.data(), static_cast<int>(buf.size())) != 1) break;
        buf.clear();
      }
    }
    PQputCopyEnd(conn, nullptr);
    Status out = Status::OK();
    while (PGresult* r = PQgetResult(conn)) {
      if (PQresultStatus(r) != PGRES_COMMAND_OK && out.ok())
        out = Status::IoError(std::string("COPY ") + table + ": " + PQresultErrorMessage(r));
      PQclear(r);
    }
    PQfinish(conn);
    progress.Add(to - from);
    return out;
  }

  DriverOptions o_;
  std::string conninfo_, version_, sync_commit_ = "?", fsync_ = "?", shared_buffers_ = "?";
};

}  // namespace

std::unique_ptr<Driver> MakePostgresDriver(const DriverOptions& o) {
  return std::make_unique<PgDriver>(o);
}

}  // namespace agentstore::bench
