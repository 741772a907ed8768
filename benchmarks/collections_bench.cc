// collections_bench: seed 004's journal_entries as an agentstore collection beside the same
// table and index in PostgreSQL, through each one's real client (agentstore's C++ client,
// libpq), same connections, by default one request in flight per connection (--depth N:
// N in flight, PostgreSQL in libpq pipeline mode with one sync, so one transaction, per
// statement). Three workloads: put (a new entry), get (an entry by id), query (a user's 20
// newest entries by entry_date, through the (user_id, entry_date) index). --workloads and
// --systems pick a subset (e.g. one workload on agentstore alone, to profile the server).
// benchmarks/compare.sh --collections runs it.
#include <libpq-fe.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <deque>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "agentstore/client.h"

namespace {

using Clock = std::chrono::steady_clock;
using agentstore::Uuid;

struct Options {
  int as_port = 0, pg_port = 0;
  std::string key, pg_user = "postgres", pg_db = "bench", declaration;
  int users = 200, entries = 20, connections = 8, depth = 1;
  double seconds = 5;
  std::string workloads = "get,query_by_index,put", systems = "agentstore,postgres";
};

bool Listed(const std::string& list, const std::string& name) {
  std::stringstream in(list);
  for (std::string item; std::getline(in, item, ',');)
    if (item == name) return true;
  return false;
}

struct Data {
  std::vector<Uuid> users;
  std::vector<Uuid> entries;            // existing entry ids
  std::vector<std::string> entry_json;  // their records (without user for pg)
  std::vector<uint32_t> entry_user;
};

std::string EntryJson(const Uuid& id, const Uuid& user, int64_t date, uint64_t n) {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                R"({"id":"%s","user_id":"%s","title":"day %llu","content":"Today I practised )"
                R"(the breathing exercise and felt calmer at work. Entry %llu.","mood":"good",)"
                R"("tags":["work","calm"],"is_private":true,"entry_date":%lld})",
                id.ToString().c_str(), user.ToString().c_str(), (unsigned long long)n,
                (unsigned long long)n, (long long)date);
  return buf;
}

Uuid RandomId(std::mt19937_64& rng) {
  return agentstore::MakeUuidV7(1'700'000'000'000'000, rng(), rng());
}

// One request of a workload.
struct Request {
  enum Kind { kPut, kGet, kQuery } kind;
  Uuid id, user;
  int64_t date = 0;
  uint64_t n = 0;
};

// One system's three operations on one connection: Send queues a request, Recv waits for
// the oldest one's answer (false on an error or, for a query, unless 20 rows came back).
class Conn {
 public:
  virtual ~Conn() = default;
  virtual void Send(const Request& r) = 0;
  virtual bool Recv() = 0;
};

class AsConn : public Conn {
 public:
  explicit AsConn(agentstore::Client c) : c_(std::move(c)) {}
  void Send(const Request& r) override {
    switch (r.kind) {
      case Request::kPut:
        puts_.push_back(c_.PutRecord("journal_entries", EntryJson(r.id, r.user, r.date, r.n)));
        break;
      case Request::kGet:
        puts_.push_back(c_.GetRecord("journal_entries", r.id.ToString()));
        break;
      case Request::kQuery: {
        agentstore::CollectionQuery q;
        q.collection = "journal_entries";
        q.index = "by_user_date";
        q.where = "{\"user_id\":\"" + r.user.ToString() + "\"}";
        q.desc = true;
        q.limit = 20;
        queries_.push_back(c_.QueryRecords(q));
        break;
      }
    }
    kinds_.push_back(r.kind);
  }
  bool Recv() override {
    Request::Kind k = kinds_.front();
    kinds_.pop_front();
    if (k == Request::kQuery) {
      auto r = queries_.front().get();
      queries_.pop_front();
      return r.ok() && r->records.size() == 20;
    }
    bool ok = puts_.front().get().ok();
    puts_.pop_front();
    return ok;
  }

 private:
  agentstore::Client c_;
  std::deque<Request::Kind> kinds_;
  std::deque<agentstore::Pending<std::string>> puts_;  // puts and gets
  std::deque<agentstore::Pending<agentstore::CollectionPage>> queries_;
};

// Depth 1: PQexecPrepared. Deeper: pipeline mode, PQsendQueryPrepared + PQpipelineSync per
// statement (each its own transaction and commit, as each agentstore put is durable alone).
class PgConn : public Conn {
 public:
  PgConn(PGconn* c, bool pipelined) : c_(c), pipelined_(pipelined) {
    Prepare("put",
            "INSERT INTO journal_entries (id, user_id, title, content, mood, tags, is_private, "
            "entry_date, created_at, updated_at) VALUES ($1, $2, $3, $4, 'good', "
            "ARRAY['work','calm'], true, $5, now(), now()) "
            "ON CONFLICT (id) DO UPDATE SET title = excluded.title, content = excluded.content, "
            "entry_date = excluded.entry_date, updated_at = now() RETURNING *");
    Prepare("get", "SELECT * FROM journal_entries WHERE id = $1 AND deleted_at IS NULL");
    Prepare("query",
            "SELECT * FROM journal_entries WHERE user_id = $1 AND deleted_at IS NULL "
            "ORDER BY entry_date DESC LIMIT 20");
    if (pipelined_ && !PQenterPipelineMode(c_))
      std::fprintf(stderr, "postgres: cannot enter pipeline mode\n");
  }
  ~PgConn() override { PQfinish(c_); }
  void Send(const Request& r) override {
    std::string p[5];
    const char* name;
    int n, want;
    switch (r.kind) {
      case Request::kPut:
        p[0] = r.id.ToString();
        p[1] = r.user.ToString();
        p[2] = "day " + std::to_string(r.n);
        p[3] = "Today I practised the breathing exercise and felt calmer at work. Entry " +
               std::to_string(r.n) + ".";
        p[4] = std::to_string(r.date);
        name = "put", n = 5, want = 1;
        break;
      case Request::kGet:
        p[0] = r.id.ToString();
        name = "get", n = 1, want = 1;
        break;
      case Request::kQuery:
      default:
        p[0] = r.user.ToString();
        name = "query", n = 1, want = 20;
        break;
    }
    const char* v[5];
    for (int i = 0; i < n; ++i) v[i] = p[i].c_str();
    if (!pipelined_) {
      PGresult* res = PQexecPrepared(c_, name, n, v, nullptr, nullptr, 0);
      done_.push_back(Check(name, res, want));
      return;
    }
    bool sent = PQsendQueryPrepared(c_, name, n, v, nullptr, nullptr, 0) && PQpipelineSync(c_);
    if (!sent) std::fprintf(stderr, "%s: %s\n", name, PQerrorMessage(c_));
    expect_.push_back({name, want, sent});
  }
  bool Recv() override {
    if (!pipelined_) {
      bool ok = done_.front();
      done_.pop_front();
      return ok;
    }
    Expect e = expect_.front();
    expect_.pop_front();
    if (!e.sent) return false;
    bool ok = false;
    for (;;) {  // the statement's result, a null, then its sync
      PGresult* res = PQgetResult(c_);
      if (!res) {
        if (PQstatus(c_) == CONNECTION_BAD) return false;
        continue;
      }
      if (PQresultStatus(res) == PGRES_PIPELINE_SYNC) {
        PQclear(res);
        return ok;
      }
      ok = Check(e.name, res, e.want);
    }
  }

 private:
  struct Expect {
    const char* name;
    int want;
    bool sent;
  };
  void Prepare(const char* name, const char* sql) {
    PGresult* r = PQprepare(c_, name, sql, 0, nullptr);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
      std::fprintf(stderr, "prepare %s: %s\n", name, PQresultErrorMessage(r));
    PQclear(r);
  }
  static bool Check(const char* name, PGresult* r, int want_rows) {
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == want_rows;
    if (!ok && PQresultStatus(r) != PGRES_TUPLES_OK)
      std::fprintf(stderr, "%s: %s\n", name, PQresultErrorMessage(r));
    PQclear(r);
    return ok;
  }
  PGconn* c_;
  bool pipelined_;
  std::deque<bool> done_;  // depth 1: answers already read
  std::deque<Expect> expect_;
};

std::string PgConninfo(const Options& o) {
  return "host=127.0.0.1 port=" + std::to_string(o.pg_port) + " user=" + o.pg_user +
         " dbname=" + o.pg_db;
}

bool PgExec(PGconn* c, const std::string& sql) {
  PGresult* r = PQexec(c, sql.c_str());
  bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
  if (!ok) std::fprintf(stderr, "postgres: %s\n", PQresultErrorMessage(r));
  PQclear(r);
  return ok;
}

struct Stats {
  double ops_per_s = 0, p50_us = 0, p99_us = 0;
  uint64_t errors = 0;
};

// Runs `next` on every connection for `seconds`, closed loop, `depth` requests in flight
// on each; a request's latency is from its Send to its answer.
template <typename Next>
Stats Run(std::vector<std::unique_ptr<Conn>>& conns, double seconds, int depth, Next next) {
  std::atomic<bool> stop{false};
  std::vector<std::vector<uint32_t>> lat(conns.size());
  std::vector<uint64_t> errors(conns.size());
  std::vector<std::thread> threads;
  auto start = Clock::now();
  for (size_t t = 0; t < conns.size(); ++t)
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t * 7919 + 1);
      std::deque<Clock::time_point> sent;
      Conn& c = *conns[t];
      for (int i = 0; i < depth; ++i) {
        sent.push_back(Clock::now());
        c.Send(next(rng));
      }
      while (!sent.empty()) {
        bool ok = c.Recv();
        lat[t].push_back(static_cast<uint32_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - sent.front())
                .count()));
        sent.pop_front();
        if (!ok) ++errors[t];
        if (!stop.load(std::memory_order_relaxed)) {
          sent.push_back(Clock::now());
          c.Send(next(rng));
        }
      }
    });
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& th : threads) th.join();
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<uint32_t> all;
  Stats st;
  for (size_t t = 0; t < conns.size(); ++t) {
    all.insert(all.end(), lat[t].begin(), lat[t].end());
    st.errors += errors[t];
  }
  std::sort(all.begin(), all.end());
  st.ops_per_s = all.size() / elapsed;
  if (!all.empty()) {
    st.p50_us = all[all.size() / 2];
    st.p99_us = all[std::min(all.size() - 1, all.size() * 99 / 100)];
  }
  return st;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"journal_entries collection vs PostgreSQL: put, get, query by index"};
  app.add_option("--port", o.as_port, "agentstored port")->required();
  app.add_option("--key", o.key, "agentstore service key")->required();
  app.add_option("--pg-port", o.pg_port, "PostgreSQL port (needed unless --systems agentstore)");
  app.add_option("--pg-user", o.pg_user);
  app.add_option("--pg-database", o.pg_db);
  app.add_option("--declaration", o.declaration, "examples/collections/journal_entries.json")
      ->required();
  app.add_option("--users", o.users);
  app.add_option("--entries-per-user", o.entries);
  app.add_option("--connections", o.connections);
  app.add_option("--seconds", o.seconds);
  app.add_option("--depth", o.depth, "requests in flight per connection")
      ->check(CLI::Range(1, 1024));
  app.add_option("--workloads", o.workloads, "of get,query_by_index,put")->capture_default_str();
  app.add_option("--systems", o.systems, "of agentstore,postgres")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  const bool with_as = Listed(o.systems, "agentstore"), with_pg = Listed(o.systems, "postgres");
  if (with_pg && !o.pg_port) {
    std::fprintf(stderr, "--pg-port is required unless --systems agentstore\n");
    return 2;
  }

  // ---- agentstore: the collection, users, entries ----
  agentstore::ClientOptions co;
  co.port = static_cast<uint16_t>(o.as_port);
  co.key = o.key;
  auto client = agentstore::Client::Connect(co);
  if (!client.ok()) {
    std::fprintf(stderr, "agentstore: %s\n", client.status().ToString().c_str());
    return 1;
  }
  std::ifstream in(o.declaration);
  std::stringstream decl;
  decl << in.rdbuf();
  if (auto d = client->DeclareCollection(decl.str()).get(); !d.ok()) {
    std::fprintf(stderr, "declare: %s\n", d.status().ToString().c_str());
    return 1;
  }
  std::mt19937_64 rng(42);
  Data data;
  for (int u = 0; u < o.users; ++u) {
    agentstore::fb::UserT user;
    user.email = "journal" + std::to_string(u) + "@example.com";
    auto r = client->CreateUser(user).get();
    if (!r.ok()) {
      std::fprintf(stderr, "user: %s\n", r.status().ToString().c_str());
      return 1;
    }
    data.users.push_back(agentstore::ToUuid(r.value()->id()));
  }
  PGconn* pg = nullptr;
  if (with_pg) {
    pg = PQconnectdb(PgConninfo(o).c_str());
    if (PQstatus(pg) != CONNECTION_OK) {
      std::fprintf(stderr, "postgres: %s\n", PQerrorMessage(pg));
      return 1;
    }
  }
  // The same table and index as the declaration (seed 004's journal_entries).
  if (pg &&
      (!PgExec(pg, "DROP TABLE IF EXISTS journal_entries") ||
       !PgExec(pg,
               "CREATE TABLE journal_entries (id uuid PRIMARY KEY, user_id uuid NOT NULL, "
               "title varchar(200), content text NOT NULL, mood text CHECK (mood IN "
               "('great','good','okay','low','bad')), tags text[], is_private boolean NOT NULL "
               "DEFAULT true, entry_date bigint NOT NULL, created_at timestamptz NOT NULL, "
               "updated_at timestamptz NOT NULL, deleted_at timestamptz)") ||
       !PgExec(pg, "CREATE INDEX journal_by_user_date ON journal_entries (user_id, entry_date)")))
    return 1;
  std::vector<agentstore::Pending<std::string>> pending;
  uint64_t seq = 0;
  for (int u = 0; u < o.users; ++u)
    for (int k = 0; k < o.entries; ++k) {
      Uuid id = RandomId(rng);
      int64_t date = 1'700'000'000'000'000 + int64_t(k) * 86'400'000'000;
      data.entries.push_back(id);
      data.entry_user.push_back(u);
      pending.push_back(
          client->PutRecord("journal_entries", EntryJson(id, data.users[u], date, ++seq)));
      std::string i = id.ToString(), us = data.users[u].ToString(), d = std::to_string(date);
      std::string sql = "INSERT INTO journal_entries VALUES ('" + i + "','" + us + "','day " +
                        std::to_string(seq) +
                        "','Today I practised the breathing exercise and felt calmer at work. "
                        "Entry " +
                        std::to_string(seq) + ".','good',ARRAY['work','calm'],true," + d +
                        ",now(),now(),NULL)";
      if (pg && !PgExec(pg, sql)) return 1;
    }
  for (auto& p : pending)
    if (auto r = p.get(); !r.ok()) {
      std::fprintf(stderr, "load: %s\n", r.status().ToString().c_str());
      return 1;
    }
  if (pg) {
    PgExec(pg, "ANALYZE journal_entries");
    PQfinish(pg);
  }

  std::vector<std::unique_ptr<Conn>> as, pq;
  for (int c = 0; c < o.connections; ++c) {
    if (with_as) {
      auto cl = agentstore::Client::Connect(co);
      if (!cl.ok()) return 1;
      as.push_back(std::make_unique<AsConn>(std::move(cl).value()));
    }
    if (with_pg) {
      PGconn* pc = PQconnectdb(PgConninfo(o).c_str());
      if (PQstatus(pc) != CONNECTION_OK) return 1;
      pq.push_back(std::make_unique<PgConn>(pc, o.depth > 1));
    }
  }
  if (o.depth == 1)
    std::printf(
        "journal_entries: %d users x %d entries, %d connections, %.1f s per workload, "
        "one request in flight per connection\n\n",
        o.users, o.entries, o.connections, o.seconds);
  else
    std::printf(
        "journal_entries: %d users x %d entries, %d connections, %.1f s per workload, "
        "%d requests in flight per connection (%d in all; PostgreSQL in libpq pipeline mode, "
        "one sync - one transaction - per statement)\n\n",
        o.users, o.entries, o.connections, o.seconds, o.depth, o.depth * o.connections);
  std::printf(
      "| workload | agentstore ops/s | p50 us | p99 us | PostgreSQL ops/s | p50 us | "
      "p99 us | ratio | errors (as/pg) |\n|---|---|---|---|---|---|---|---|---|\n");
  std::atomic<uint64_t> put_seq{1'000'000};
  auto put = [&](std::mt19937_64& r) {
    uint32_t u = r() % data.users.size();
    Request q{Request::kPut, RandomId(r), data.users[u]};
    q.date = 1'800'000'000'000'000 + int64_t(r() % 1000000);
    q.n = put_seq++;
    return q;
  };
  auto get = [&](std::mt19937_64& r) {
    return Request{Request::kGet, data.entries[r() % data.entries.size()], {}};
  };
  auto query = [&](std::mt19937_64& r) {
    return Request{Request::kQuery, {}, data.users[r() % data.users.size()]};
  };
  auto row = [&](const char* name, auto next) {
    if (!Listed(o.workloads, name)) return;
    Stats a = with_as ? Run(as, o.seconds, o.depth, next) : Stats{};
    Stats p = with_pg ? Run(pq, o.seconds, o.depth, next) : Stats{};
    std::printf("| %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.1fx | %llu/%llu |\n", name,
                a.ops_per_s, a.p50_us, a.p99_us, p.ops_per_s, p.p50_us, p.p99_us,
                p.ops_per_s > 0 ? a.ops_per_s / p.ops_per_s : 0.0, (unsigned long long)a.errors,
                (unsigned long long)p.errors);
    std::fflush(stdout);
  };
  row("get", get);
  row("query_by_index", query);
  row("put", put);
  return 0;
}
