// collections_bench: seed 004's journal_entries as an agentstore collection beside the same
// table and index in PostgreSQL, through each one's real client (agentstore's C++ client,
// libpq), same connections, one request in flight per connection. Three workloads: put
// (a new entry), get (an entry by id), query (a user's 20 newest entries by entry_date,
// through the (user_id, entry_date) index). benchmarks/compare.sh --collections runs it.
#include <libpq-fe.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
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
  int users = 200, entries = 20, connections = 8;
  double seconds = 5;
};

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

// One system's three operations on one connection.
class Conn {
 public:
  virtual ~Conn() = default;
  virtual bool Put(const Uuid& id, const Uuid& user, int64_t date, uint64_t n) = 0;
  virtual bool Get(const Uuid& id) = 0;
  virtual bool Query(const Uuid& user) = 0;  // the 20 newest; false unless 20 rows came back
};

class AsConn : public Conn {
 public:
  explicit AsConn(agentstore::Client c) : c_(std::move(c)) {}
  bool Put(const Uuid& id, const Uuid& user, int64_t date, uint64_t n) override {
    return c_.PutRecord("journal_entries", EntryJson(id, user, date, n)).get().ok();
  }
  bool Get(const Uuid& id) override {
    return c_.GetRecord("journal_entries", id.ToString()).get().ok();
  }
  bool Query(const Uuid& user) override {
    agentstore::CollectionQuery q;
    q.collection = "journal_entries";
    q.index = "by_user_date";
    q.where = "{\"user_id\":\"" + user.ToString() + "\"}";
    q.desc = true;
    q.limit = 20;
    auto r = c_.QueryRecords(q).get();
    return r.ok() && r->records.size() == 20;
  }

 private:
  agentstore::Client c_;
};

class PgConn : public Conn {
 public:
  explicit PgConn(PGconn* c) : c_(c) {
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
  }
  ~PgConn() override { PQfinish(c_); }
  bool Put(const Uuid& id, const Uuid& user, int64_t date, uint64_t n) override {
    std::string i = id.ToString(), u = user.ToString(), t = "day " + std::to_string(n),
                c = "Today I practised the breathing exercise and felt calmer at work. Entry " +
                    std::to_string(n) + ".",
                d = std::to_string(date);
    const char* v[] = {i.c_str(), u.c_str(), t.c_str(), c.c_str(), d.c_str()};
    return Exec("put", 5, v, 1);
  }
  bool Get(const Uuid& id) override {
    std::string i = id.ToString();
    const char* v[] = {i.c_str()};
    return Exec("get", 1, v, 1);
  }
  bool Query(const Uuid& user) override {
    std::string u = user.ToString();
    const char* v[] = {u.c_str()};
    return Exec("query", 1, v, 20);
  }

 private:
  void Prepare(const char* name, const char* sql) {
    PGresult* r = PQprepare(c_, name, sql, 0, nullptr);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
      std::fprintf(stderr, "prepare %s: %s\n", name, PQresultErrorMessage(r));
    PQclear(r);
  }
  bool Exec(const char* name, int n, const char* const* v, int want_rows) {
    PGresult* r = PQexecPrepared(c_, name, n, v, nullptr, nullptr, 0);
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == want_rows;
    if (!ok && PQresultStatus(r) != PGRES_TUPLES_OK)
      std::fprintf(stderr, "%s: %s\n", name, PQresultErrorMessage(r));
    PQclear(r);
    return ok;
  }
  PGconn* c_;
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

// Runs `op` on every connection for `seconds`; closed loop, one in flight each.
template <typename Op>
Stats Run(std::vector<std::unique_ptr<Conn>>& conns, double seconds, Op op) {
  std::atomic<bool> stop{false};
  std::vector<std::vector<uint32_t>> lat(conns.size());
  std::vector<uint64_t> errors(conns.size());
  std::vector<std::thread> threads;
  auto start = Clock::now();
  for (size_t t = 0; t < conns.size(); ++t)
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t * 7919 + 1);
      uint64_t n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        auto s = Clock::now();
        bool ok = op(*conns[t], rng, t, n++);
        lat[t].push_back(static_cast<uint32_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - s).count()));
        if (!ok) ++errors[t];
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
  app.add_option("--pg-port", o.pg_port, "PostgreSQL port")->required();
  app.add_option("--pg-user", o.pg_user);
  app.add_option("--pg-database", o.pg_db);
  app.add_option("--declaration", o.declaration, "examples/collections/journal_entries.json")
      ->required();
  app.add_option("--users", o.users);
  app.add_option("--entries-per-user", o.entries);
  app.add_option("--connections", o.connections);
  app.add_option("--seconds", o.seconds);
  CLI11_PARSE(app, argc, argv);

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
  PGconn* pg = PQconnectdb(PgConninfo(o).c_str());
  if (PQstatus(pg) != CONNECTION_OK) {
    std::fprintf(stderr, "postgres: %s\n", PQerrorMessage(pg));
    return 1;
  }
  // The same table and index as the declaration (seed 004's journal_entries).
  if (!PgExec(pg, "DROP TABLE IF EXISTS journal_entries") ||
      !PgExec(pg,
              "CREATE TABLE journal_entries (id uuid PRIMARY KEY, user_id uuid NOT NULL, "
              "title varchar(200), content text NOT NULL, mood text CHECK (mood IN "
              "('great','good','okay','low','bad')), tags text[], is_private boolean NOT NULL "
              "DEFAULT true, entry_date bigint NOT NULL, created_at timestamptz NOT NULL, "
              "updated_at timestamptz NOT NULL, deleted_at timestamptz)") ||
      !PgExec(pg, "CREATE INDEX journal_by_user_date ON journal_entries (user_id, entry_date)"))
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
      if (!PgExec(pg, sql)) return 1;
    }
  for (auto& p : pending)
    if (auto r = p.get(); !r.ok()) {
      std::fprintf(stderr, "load: %s\n", r.status().ToString().c_str());
      return 1;
    }
  PgExec(pg, "ANALYZE journal_entries");
  PQfinish(pg);

  std::vector<std::unique_ptr<Conn>> as, pq;
  for (int c = 0; c < o.connections; ++c) {
    auto cl = agentstore::Client::Connect(co);
    if (!cl.ok()) return 1;
    as.push_back(std::make_unique<AsConn>(std::move(cl).value()));
    PGconn* pc = PQconnectdb(PgConninfo(o).c_str());
    if (PQstatus(pc) != CONNECTION_OK) return 1;
    pq.push_back(std::make_unique<PgConn>(pc));
  }
  std::printf(
      "journal_entries: %d users x %d entries, %d connections, %.1f s per workload, "
      "one request in flight per connection\n\n",
      o.users, o.entries, o.connections, o.seconds);
  std::printf(
      "| workload | agentstore ops/s | p50 us | p99 us | PostgreSQL ops/s | p50 us | "
      "p99 us | ratio | errors (as/pg) |\n|---|---|---|---|---|---|---|---|---|\n");
  std::atomic<uint64_t> put_seq{1'000'000};
  auto put = [&](Conn& c, std::mt19937_64& r, size_t, uint64_t) {
    uint32_t u = r() % data.users.size();
    return c.Put(RandomId(r), data.users[u], 1'800'000'000'000'000 + int64_t(r() % 1000000),
                 put_seq++);
  };
  auto get = [&](Conn& c, std::mt19937_64& r, size_t, uint64_t) {
    return c.Get(data.entries[r() % data.entries.size()]);
  };
  auto query = [&](Conn& c, std::mt19937_64& r, size_t, uint64_t) {
    return c.Query(data.users[r() % data.users.size()]);
  };
  auto row = [&](const char* name, auto op) {
    Stats a = Run(as, o.seconds, op);
    Stats p = Run(pq, o.seconds, op);
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
