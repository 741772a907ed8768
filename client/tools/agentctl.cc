// agentctl: the operators' CLI. Talks to agentstored with the client library (address
// and key from flags or AGENTSTORE_ADDR / AGENTSTORE_KEY), prints tables for people and
// JSON with --json, and exits non-zero with the error's message when a call fails.
#include "agentctl.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>

#include "agentstore/client.h"
#include "agentstore/common/record_json.h"

namespace fs = std::filesystem;
using agentstore::Client;
using agentstore::RecordType;
using agentstore::Row;
using agentstore::Status;
using agentstore::Uuid;
using Json = nlohmann::ordered_json;
namespace fb = agentstore::fb;

namespace agentctl {

void Fail(const Status& s) {
  std::cerr << "agentctl: " << s.ToString() << "\n";
  std::exit(kError);
}
void Fail(const std::string& msg) {
  std::cerr << "agentctl: " << msg << "\n";
  std::exit(kUsage);
}

Client Connect(const Globals& g) {
  agentstore::ClientOptions o;
  std::string addr = g.addr;
  if (addr.empty() && getenv("AGENTSTORE_ADDR")) addr = getenv("AGENTSTORE_ADDR");
  if (addr.empty()) addr = "127.0.0.1:7420";
  auto colon = addr.rfind(':');
  if (colon == std::string::npos) Fail("address must be host:port, not " + addr);
  o.host = addr.substr(0, colon);
  try {
    o.port = static_cast<uint16_t>(std::stoi(addr.substr(colon + 1)));
  } catch (const std::exception&) {
    Fail("address must be host:port, not " + addr);
  }
  o.key = g.key.empty() && getenv("AGENTSTORE_KEY") ? getenv("AGENTSTORE_KEY") : g.key;
  if (o.key.empty()) Fail("no API key: use --key or AGENTSTORE_KEY");
  o.timeout = std::chrono::milliseconds(120000);  // a large import batch or backup
  auto c = Client::Connect(o);
  if (!c.ok()) Fail(c.status());
  return std::move(c).value();
}

}  // namespace agentctl

namespace {

using agentctl::Connect;
using agentctl::Fail;
using agentctl::Globals;

template <typename T>
T Must(agentstore::Result<T> r) {
  if (!r.ok()) Fail(r.status());
  return std::move(r).value();
}

Uuid ParseId(const std::string& text, const char* what) {
  auto id = Uuid::Parse(text);
  if (!id) Fail(std::string(what) + " is not a UUID: " + text);
  return *id;
}

template <typename T>
Json ToJson(const Row<T>& r) {
  return Json::parse(agentstore::RecordToJson(*r.get()));
}

// Prints records as a table of the chosen columns, or as JSON (one array).
template <typename T>
void Print(Globals& g, const std::vector<Row<T>>& rows, const std::vector<std::string>& cols) {
  Json out = Json::array();
  for (const auto& r : rows) out.push_back(ToJson(r));
  agentctl::PrintAnswer(g, out, cols);
}

template <typename T>
void Print(Globals& g, const Row<T>& row, const std::vector<std::string>& cols) {
  agentctl::PrintAnswer(g, ToJson(row), cols);
}

// A one-line outcome: {"key": value} with --json, else the sentence.
void Say(Globals& g, const Json& j, const std::string& sentence) {
  if (g.json || !g.get.empty()) return agentctl::PrintAnswer(g, j);
  std::cout << sentence << "\n";
}

// Progress on a TTY (stderr): "\r<what> <n> records [<pct>%]".
struct Progress {
  bool tty = isatty(STDERR_FILENO);
  std::string what;
  uint64_t total = 0;  // 0: unknown
  std::chrono::steady_clock::time_point last{};
  void Show(uint64_t n, uint64_t of_bytes = 0, bool done = false) {
    if (!tty) return;
    auto now = std::chrono::steady_clock::now();
    if (!done && now - last < std::chrono::milliseconds(100)) return;
    last = now;
    std::cerr << "\r" << what << " " << n << " records";
    if (total) std::cerr << " [" << (100 * of_bytes / total) << "%]";
    std::cerr << (done ? "\n" : "") << std::flush;
  }
};

// The export order: parents before children, so an import can follow it line by line.
constexpr RecordType kExportOrder[] = {RecordType::kTenant,
                                       RecordType::kUser,
                                       RecordType::kAgent,
                                       RecordType::kUserAgent,
                                       RecordType::kChat,
                                       RecordType::kMessage,
                                       RecordType::kVote,
                                       RecordType::kUserMemory,
                                       RecordType::kAdminConfig,
                                       RecordType::kApiKey,
                                       RecordType::kUsageLog,
                                       RecordType::kUserUsageRollup,
                                       RecordType::kTenantUsageRollup,
                                       RecordType::kQuota,
                                       RecordType::kRateLimitConfig};

std::string ToJsonOf(RecordType t, const std::string& bytes) {
  const void* p = bytes.data();
  switch (t) {
    case RecordType::kTenant:
      return agentstore::RecordToJson(*flatbuffers::GetRoot<fb::Tenant>(p));
    case RecordType::kUser:
      return agentstore::RecordToJson(*flatbuffers::GetRoot<fb::User>(p));
    case RecordType::kAgent:
      return agentstore::RecordToJson(*flatbuffers::GetRoot<fb::Agent>(p));
    case RecordType::kUserAgent:
      return agentstore::RecordToJson(*flatbuffers::GetRoot<fb::UserAgent>(p));
    case RecordType::kChat:
      return agentstore::RecordToJson(*flatbuffers::GetRoot<fb::Chat>(p));
    case RecordType::kMessage:
      return agentstore::RecordToJson(*flatbuffers::GetRoot<fb::Message>(p));
    case RecordType::kVote:
      return agentstore::RecordToJson(*flatbuffers::GetRoot<fb::Vote>(p));
    case RecordType::kAdminConfig:
      return agentstore::RecordToJson(*flatbuffers::GetRoot<fb::AdminConfig>(p));
    case RecordType::kApiKey:
      return agentstore::RecordToJson(*flatbuffers::GetRoot<fb::ApiKey>(p));
    case RecordType::kUsageLog:
      return agentstore::RecordToJson(*flatbuffers::GetRoot<fb::UsageLog>(p));
    case RecordType::kUserMemory:
      return agentstore::RecordToJson(*flatbuffers::GetRoot<fb::UserMemory>(p));
    case RecordType::kUserUsageRollup:
    case RecordType::kTenantUsageRollup:
      return agentstore::RecordToJson(*flatbuffers::GetRoot<fb::UsageRollup>(p));
    case RecordType::kQuota:
      return agentstore::RecordToJson(*flatbuffers::GetRoot<fb::Quota>(p));
    case RecordType::kRateLimitConfig:
      return agentstore::RecordToJson(*flatbuffers::GetRoot<fb::RateLimitConfig>(p));
    default:
      return "{}";
  }
}

void Export(Globals& g, const std::string& out_path) {
  Client c = Connect(g);
  std::ofstream file;
  if (out_path != "-") {
    file.open(out_path);
    if (!file) Fail(Status::IoError("cannot write " + out_path));
  }
  std::ostream& out = out_path == "-" ? std::cout : file;
  uint64_t total = 0;
  Progress progress{.what = "exported"};
  Json counts = Json::object();
  for (RecordType t : kExportOrder) {
    std::string cursor;
    uint64_t n = 0;
    do {
      auto chunk = Must(c.ExportRecords(t, cursor, 1000).get());
      for (const auto& bytes : chunk.records) {
        // The record's JSON is embedded as is: {"type":"users","record":{...}}
        out << R"({"type":")" << agentstore::RecordTypeName(t) << R"(","record":)"
            << ToJsonOf(t, bytes) << "}\n";
        ++total;
        ++n;
      }
      progress.Show(total);
      cursor = chunk.next_cursor;
    } while (!cursor.empty());
    if (n) counts[std::string(agentstore::RecordTypeName(t))] = n;
  }
  // Collections: their declarations, then each one's records in their stored form.
  std::vector<std::string> names;
  for (const auto& decl : Must(c.ListCollections().get())) {
    out << R"({"type":"collections","record":)" << decl << "}\n";
    names.push_back(Json::parse(decl).value("name", ""));
    ++total;
  }
  if (!names.empty()) counts["collections"] = names.size();
  for (const auto& name : names) {
    std::string cursor;
    uint64_t n = 0;
    std::string head = Json{{"type", "collection_records"}, {"collection", name}}.dump();
    head.pop_back();  // {"type":...,"collection":"<name>"  + ,"record":{...}}
    do {
      auto chunk = Must(c.ExportCollectionRecords(name, cursor, 1000).get());
      for (const auto& rec : chunk.records) {
        out << head << R"(,"record":)" << rec << "}\n";
        ++total;
        ++n;
      }
      progress.Show(total);
      cursor = chunk.next_cursor;
    } while (!cursor.empty());
    if (n) counts["collection_records"][name] = n;
  }
  out.flush();
  if (!out) Fail(Status::IoError("write failed"));
  progress.Show(total, 0, true);
  if (g.json) {
    std::cout << Json{{"exported", total}, {"by_type", counts}}.dump(2) << "\n";
  } else {
    std::cerr << "exported " << total << " records\n";
  }
}

// Imports JSON Lines. Consecutive lines of one record type go in batches (`batch`
// records per request, one WriteBatch and one fsync each on the server, all or nothing),
// pipelined over several connections; types without a batched form (usage rollups,
// quotas, rate-limit configs) go one record per request, pipelined likewise. Parents come first in
// an export; at each change of type the calls in flight are awaited, so a child never overtakes its
// parent. A failed batch is reported with its bad line and the lines it left out; the rest goes on
// (import is idempotent: fix the file and run it again).
void Import(Globals& g, const std::string& in_path, size_t batch_size) {
  constexpr size_t kWindowRecords = 2048;  // single-record calls in flight
  constexpr size_t kWindowBatches = 8;     // batches in flight
  constexpr size_t kBatchBytes = 4 << 20;  // well under the server's 16 MiB frame
  std::vector<Client> conns;
  for (int i = 0; i < 4; ++i) conns.push_back(Connect(g));
  std::ifstream file;
  if (in_path != "-") {
    file.open(in_path);
    if (!file) Fail(Status::IoError("cannot read " + in_path));
  }
  std::istream& in = in_path == "-" ? std::cin : file;
  std::error_code ec;
  uint64_t total_bytes = in_path == "-" ? 0 : fs::file_size(in_path, ec);
  uint64_t read_bytes = 0;
  bool tty = isatty(STDERR_FILENO);
  Progress progress{.what = "imported", .total = total_bytes};
  std::string line;
  uint64_t lineno = 0, ok = 0, bad = 0;
  struct InFlight {
    uint64_t first_line, last_line, count;
    agentstore::Pending<agentstore::Done> call;
  };
  std::deque<InFlight> window;
  size_t batches_in_flight = 0;
  auto settle_one = [&] {
    InFlight f = std::move(window.front());
    window.pop_front();
    if (f.count > 1) --batches_in_flight;
    Status s = f.call.get().status();
    if (s.ok()) {
      ok += f.count;
    } else if (f.count == 1) {
      ++bad;
      std::cerr << (tty ? "\n" : "") << "line " << f.first_line << ": skipped: " << s.ToString()
                << "\n";
    } else {
      bad += f.count;
      std::cerr << (tty ? "\n" : "") << s.ToString() << "\n  (lines " << f.first_line << "-"
                << f.last_line << ", " << f.count << " records, not imported)\n";
    }
  };
  auto drain = [&] {
    while (!window.empty()) settle_one();
  };
  // The group of lines being batched: a built-in record type, collection declarations
  // (one per request), or one collection's records.
  struct Group {
    std::optional<RecordType> type;
    bool declarations = false;
    std::string collection;
    bool operator==(const Group& o) const {
      return type.has_value() == o.type.has_value() && (!type || *type == *o.type) &&
             declarations == o.declarations && collection == o.collection;
    }
  };
  std::optional<Group> current;
  std::vector<std::string> records;
  std::vector<uint64_t> lines;
  size_t pending_bytes = 0;
  size_t next = 0;
  auto flush = [&] {
    if (records.empty()) return;
    const Group& grp = *current;
    bool batched = !grp.declarations &&
                   (grp.type ? agentstore::BatchImportable(*grp.type) : true) && records.size() > 1;
    if (grp.declarations) {
      // Few, and every record of a collection waits for its declaration: one at a time.
      for (size_t i = 0; i < records.size(); ++i) {
        Status s = conns[0].DeclareCollection(records[i]).get().status();
        if (s.ok()) {
          ++ok;
        } else {
          ++bad;
          std::cerr << (tty ? "\n" : "") << "line " << lines[i] << ": skipped: " << s.ToString()
                    << "\n";
        }
      }
    } else if (!batched) {
      for (size_t i = 0; i < records.size(); ++i) {
        if (window.size() >= kWindowRecords) settle_one();
        Client& conn = conns[next++ % conns.size()];
        window.push_back({lines[i], lines[i], 1,
                          grp.type
                              ? conn.ImportRecord(*grp.type, records[i])
                              : conn.ImportCollectionRecords(
                                    grp.collection, std::span<const std::string>(&records[i], 1))});
      }
    } else {
      while (batches_in_flight >= kWindowBatches) settle_one();
      Client& conn = conns[next++ % conns.size()];
      window.push_back({lines.front(), lines.back(), records.size(),
                        grp.type ? conn.ImportRecords(*grp.type, records, lines)
                                 : conn.ImportCollectionRecords(grp.collection, records, lines)});
      ++batches_in_flight;
    }
    records.clear();
    lines.clear();
    pending_bytes = 0;
  };
  while (std::getline(in, line)) {
    ++lineno;
    read_bytes += line.size() + 1;
    if (line.empty()) continue;
    // An export's own line shape, {"type":"<t>","record":{...}}, is split without a
    // parse (the server parses the record anyway); anything else is parsed.
    std::optional<Group> group;
    std::string record;
    constexpr std::string_view kHead = R"({"type":")", kMid = R"(","record":)";
    if (std::string_view(line).substr(0, kHead.size()) == kHead) {
      size_t mid = line.find(kMid, kHead.size());
      if (mid != std::string::npos && line.back() == '}') {
        if (auto t = agentstore::RecordTypeFromName(
                std::string_view(line).substr(kHead.size(), mid - kHead.size())))
          group = Group{t, false, {}};
        record = line.substr(mid + kMid.size(), line.size() - mid - kMid.size() - 1);
      }
    }
    if (!group) {
      auto j = Json::parse(line, nullptr, false);
      if (!j.is_discarded() && j.is_object() && j.contains("type") && j["type"].is_string() &&
          j.contains("record")) {
        std::string t = j["type"].get<std::string>();
        if (t == "collections") {
          group = Group{std::nullopt, true, {}};
        } else if (t == "collection_records" && j.contains("collection") &&
                   j["collection"].is_string()) {
          group = Group{std::nullopt, false, j["collection"].get<std::string>()};
        } else if (auto rt = agentstore::RecordTypeFromName(t)) {
          group = Group{rt, false, {}};
        }
        record = j["record"].dump();
      }
    }
    if (!group) {
      ++bad;
      std::cerr << (tty ? "\n" : "") << "line " << lineno
                << ": skipped: expected {\"type\": <record type>, \"record\": {...}}\n";
      continue;
    }
    if (group != current) {
      flush();
      drain();
      current = group;
    }
    pending_bytes += record.size();
    records.push_back(std::move(record));
    lines.push_back(lineno);
    if (records.size() >= batch_size || pending_bytes >= kBatchBytes) flush();
    progress.Show(ok, read_bytes);
  }
  flush();
  drain();
  progress.Show(ok, read_bytes, true);
  if (g.json) {
    std::cout << Json{{"imported", ok}, {"skipped", bad}}.dump(2) << "\n";
  } else {
    std::cerr << "imported " << ok << " records, skipped " << bad << "\n";
  }
  if (bad) std::exit(agentctl::kError);
}

// A query or memory vector: a JSON array of numbers, or an object with "embedding" or
// "vector", from a file or stdin ("-").
std::vector<float> ReadVector(const std::string& path) {
  std::ifstream file;
  if (path != "-") {
    file.open(path);
    if (!file) Fail("cannot read " + path);
  }
  std::istream& in = path == "-" ? std::cin : file;
  Json j = Json::parse(in, nullptr, false);
  if (!j.is_discarded() && j.is_object())
    j = j.contains("embedding") ? j["embedding"] : j.contains("vector") ? j["vector"] : Json();
  if (j.is_discarded() || !j.is_array()) Fail(path + ": expected a JSON array of numbers");
  std::vector<float> v;
  for (const auto& x : j) {
    if (!x.is_number()) Fail(path + ": expected a JSON array of numbers");
    v.push_back(x.get<float>());
  }
  return v;
}

fb::MemoryType ParseMemoryType(const std::string& name) {
  for (int t = static_cast<int>(fb::MemoryType::MIN); t <= static_cast<int>(fb::MemoryType::MAX);
       ++t)
    if (name == fb::EnumNameMemoryType(static_cast<fb::MemoryType>(t)))
      return static_cast<fb::MemoryType>(t);
  Fail("unknown memory type '" + name + "' (preference, context, fact, instruction)");
}

// Search hits: distance and score, then the memory's columns.
void PrintHits(Globals& g, const std::vector<agentstore::MemoryHit>& hits) {
  Json out = Json::array();
  for (const auto& h : hits) {
    Json m = ToJson(h.memory);
    Json row = {{"distance", h.distance}, {"score", h.score}};
    if (g.json) {
      row["memory"] = m;
    } else {
      row["id"] = m["id"];
      row["memory_type"] = m["memory_type"];
      row["importance_score"] = m["importance_score"];
      std::string content = m["memory_value"].is_object() &&
                                    m["memory_value"].contains("content") &&
                                    m["memory_value"]["content"].is_string()
                                ? m["memory_value"]["content"].get<std::string>()
                                : "";
      row["key: content"] = m["memory_key"].get<std::string>() + ": " + content;
    }
    out.push_back(row);
  }
  agentctl::PrintAnswer(g, out);
}

// Restores a backup (a RocksDB checkpoint) into a new, empty data directory. Offline:
// copies files; the server is then started on the new directory.
void Restore(const std::string& from, const std::string& to) {
  if (!fs::exists(fs::path(from) / "CURRENT")) Fail(from + " is not a backup (no CURRENT file)");
  if (fs::exists(to) && !fs::is_empty(to))
    Fail(to + " is not empty; restore only into an empty directory");
  fs::create_directories(to);
  std::error_code ec;
  fs::copy(from, to, fs::copy_options::recursive, ec);
  if (ec) Fail("copy failed: " + ec.message());
  std::cerr << "restored " << from << " into " << to << "\n";
}

// ---- usage accounting, quotas, rate limits: agentctl usage / quotas / limits ----

// Index of `name` in `names`, or exit with the choices.
int8_t EnumIndex(const std::string& name, std::initializer_list<const char*> names,
                 const char* what) {
  int8_t i = 0;
  std::string all;
  for (const char* n : names) {
    if (name == n) return i;
    all += (all.empty() ? "" : ", ") + std::string(n);
    ++i;
  }
  Fail(std::string(what) + " must be one of: " + all);
}

void PrintQuotas(Globals& g, const std::vector<Row<fb::Quota>>& quotas, const std::string& tenant) {
  Json out = Json::array();
  for (const auto& q : quotas) {
    Json j = ToJson(q);
    auto st = agentstore::QuotaStateOf(*q.get());
    j["used"] = st.used;
    j["limit"] = st.limit;
    j["percent"] = std::round(st.percent * 10) / 10;
    j["alert"] = st.alert;
    j["exceeded"] = st.exceeded;
    out.push_back(j);
  }
  if (out.empty() && !g.json && g.get.empty()) {
    std::cout << "tenant " << tenant << " has no quotas (set one with: agentctl quotas set)\n";
    return;
  }
  agentctl::PrintAnswer(g, out,
                        {"quota_type", "used", "limit", "percent", "alert", "exceeded", "period",
                         "period_start", "period_end"});
}

void AddUsageCommands(CLI::App& app, Globals& g) {
  struct Opts {
    std::string user, agent, chat, tenant, model, provider, agent_type, by = "month",
                                                                        group = "none";
    std::string quota_type = "tokens", period = "month", scope = "global", scope_id, limit_type,
                lease, id;
    int64_t input_tokens = 0, output_tokens = 0, input_cost = 0, output_cost = 0, duration_ms = 0,
            from = 0, to = INT64_MAX, value = 0;
    int32_t messages = 1, alert_pct = 80;
    uint32_t limit = 50;
    bool failed = false, everyone = false, history = false, inactive = false;
  };
  static Opts o;
  auto uuid = [](const std::string& s, const char* what) {
    return std::make_unique<fb::Uuid>(agentstore::ToFb(ParseId(s, what)));
  };
  auto type_names = {"routing", "chat", "artifact", "git_mcp", "other"};

  auto* usage = app.add_subcommand("usage", "usage accounting")->require_subcommand(1);
  auto* ut = usage->add_subcommand("track", "record one LLM call (track_agent_usage)");
  ut->add_option("--user", o.user)->required();
  ut->add_option("--agent", o.agent)->required();
  ut->add_option("--chat", o.chat);
  ut->add_option("--model", o.model);
  ut->add_option("--provider", o.provider);
  ut->add_option("--agent-type", o.agent_type, "routing | chat | artifact | git_mcp | other");
  ut->add_option("--input-tokens", o.input_tokens);
  ut->add_option("--output-tokens", o.output_tokens);
  ut->add_option("--input-cost", o.input_cost, "micro-USD");
  ut->add_option("--output-cost", o.output_cost, "micro-USD");
  ut->add_option("--duration-ms", o.duration_ms, "response time (request_ts = now - this)");
  ut->add_option("--messages", o.messages)->capture_default_str();
  ut->add_flag("--failed", o.failed, "the call failed (error_count)");
  ut->callback([&g, uuid, type_names] {
    fb::UsageLogT l;
    l.user_id = uuid(o.user, "--user");
    l.agent_id = uuid(o.agent, "--agent");
    if (!o.chat.empty()) l.chat_id = uuid(o.chat, "--chat");
    l.model = o.model;
    l.provider = o.provider;
    if (!o.agent_type.empty())
      l.agent_type =
          static_cast<fb::AgentType>(EnumIndex(o.agent_type, type_names, "--agent-type"));
    l.input_tokens = o.input_tokens;
    l.output_tokens = o.output_tokens;
    l.input_cost = o.input_cost;
    l.output_cost = o.output_cost;
    l.success = !o.failed;
    if (o.duration_ms < 0) Fail("--duration-ms must be >= 0");
    auto now = std::chrono::duration_cast<std::chrono::microseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
    l.response_ts = now;
    l.request_ts = now - o.duration_ms * 1000;
    auto r = Must(Connect(g).TrackAgentUsage(l, o.messages).get());
    if (g.json || !g.get.empty()) {
      Json j = {
          {"user_agent", ToJson(r.user_agent)}, {"log", ToJson(r.log)}, {"quotas", Json::array()}};
      for (const auto& q : r.quotas) j["quotas"].push_back(ToJson(q));
      return agentctl::PrintAnswer(g, j);
    }
    Print(g, r.user_agent,
          {"usage_count", "success_count", "error_count", "message_count", "total_tokens_used",
           "total_cost", "avg_response_time_ms", "quality_score"});
    Print(g, r.log, {"id", "model", "total_tokens", "total_cost", "duration_ms"});
    PrintQuotas(g, r.quotas, "of this user");
  });
  auto* ul = usage->add_subcommand("list", "usage logs, newest first");
  ul->add_option("--user", o.user);
  ul->add_option("--agent-type", o.agent_type);
  ul->add_option("--from", o.from, "micros since the epoch (inclusive)");
  ul->add_option("--to", o.to, "micros since the epoch (exclusive)");
  ul->add_option("--limit", o.limit)->capture_default_str();
  ul->callback([&g, type_names] {
    agentstore::UsageQuery q;
    if (!o.user.empty()) q.user = ParseId(o.user, "--user");
    if (!o.agent_type.empty())
      q.agent_type =
          static_cast<fb::AgentType>(EnumIndex(o.agent_type, type_names, "--agent-type"));
    q.from = o.from;
    q.to = o.to;
    q.limit = o.limit;
    Print(g, Must(Connect(g).ListUsage(q).get()).rows,
          {"request_ts", "user_id", "agent_type", "provider", "model", "total_tokens", "total_cost",
           "duration_ms", "success"});
  });
  auto* us =
      usage->add_subcommand("summary", "usage sums from rollups (--user, --tenant or --everyone)");
  us->add_option("--user", o.user);
  us->add_option("--tenant", o.tenant);
  us->add_flag("--everyone", o.everyone);
  us->add_option("--by", o.by, "day | month | total")->capture_default_str();
  us->add_option("--group", o.group, "none | model | provider | agent_type")->capture_default_str();
  us->add_option("--from", o.from);
  us->add_option("--to", o.to);
  us->callback([&g] {
    agentstore::UsageSummaryRequest req;
    if (!o.user.empty()) {
      req.id = ParseId(o.user, "--user");
    } else if (!o.tenant.empty()) {
      req.owner = agentstore::SummaryOwner::kTenant;
      req.id = ParseId(o.tenant, "--tenant");
    } else if (o.everyone) {
      req.owner = agentstore::SummaryOwner::kEveryone;
    } else {
      Fail("give --user, --tenant or --everyone");
    }
    req.bucket =
        static_cast<agentstore::SummaryBucket>(EnumIndex(o.by, {"day", "month", "total"}, "--by"));
    req.group = static_cast<agentstore::SummaryGroup>(
        EnumIndex(o.group, {"none", "model", "provider", "agent_type"}, "--group"));
    req.from = o.from;
    req.to = o.to;
    auto sum = Must(Connect(g).SummarizeUsage(req).get());
    Json out = Json::array();
    for (const auto& r : sum.rows) {
      const auto& t = r.totals;
      out.push_back({{"period_start", r.period_start},
                     {"group", r.group},
                     {"requests", t.requests},
                     {"success_count", t.success_count},
                     {"error_count", t.error_count},
                     {"input_tokens", t.input_tokens},
                     {"output_tokens", t.output_tokens},
                     {"total_tokens", t.total_tokens},
                     {"input_cost", t.input_cost},
                     {"output_cost", t.output_cost},
                     {"total_cost", t.total_cost},
                     {"duration_ms", t.duration_ms}});
    }
    agentctl::PrintAnswer(g, out,
                          {"period_start", "group", "requests", "success_count", "error_count",
                           "total_tokens", "total_cost", "duration_ms"});
  });
  usage->add_subcommand("expire", "drop logs past the server's retention age")->callback([&g] {
    uint64_t n = Must(Connect(g).ExpireUsageLogs().get());
    Say(g, Json{{"expired", n}}, std::to_string(n) + " logs expired");
  });

  auto* quotas = app.add_subcommand("quotas", "tenant quotas")->require_subcommand(1);
  auto* qs = quotas->add_subcommand("set", "set a tenant's quota");
  qs->add_option("--tenant", o.tenant)->required();
  qs->add_option("--type", o.quota_type, "tokens | api_calls | storage_bytes | users")
      ->capture_default_str();
  qs->add_option("--limit", o.value)->required();
  qs->add_option("--alert-pct", o.alert_pct)->capture_default_str();
  qs->add_option("--period", o.period, "month | day | none")->capture_default_str();
  qs->callback([&g, uuid] {
    fb::QuotaT q;
    q.tenant_id = uuid(o.tenant, "--tenant");
    q.quota_type = static_cast<fb::QuotaType>(
        EnumIndex(o.quota_type, {"tokens", "api_calls", "storage_bytes", "users"}, "--type"));
    q.quota_limit = o.value;
    q.alert_threshold_pct = o.alert_pct;
    q.period =
        static_cast<fb::QuotaPeriod>(EnumIndex(o.period, {"month", "day", "none"}, "--period"));
    PrintQuotas(g, {Must(Connect(g).SetQuota(q).get())}, o.tenant);
  });
  auto* qg = quotas->add_subcommand("get", "a tenant's quotas: used / limit / percent / alert");
  qg->add_option("--tenant", o.tenant)->required();
  qg->add_option("--type", o.quota_type, "one type (default: all)");
  qg->add_flag("--history", o.history, "every period kept");
  qg->callback([&g, qg] {
    std::optional<fb::QuotaType> type;
    if (qg->count("--type"))
      type = static_cast<fb::QuotaType>(
          EnumIndex(o.quota_type, {"tokens", "api_calls", "storage_bytes", "users"}, "--type"));
    PrintQuotas(g, Must(Connect(g).GetQuotas(ParseId(o.tenant, "--tenant"), type, o.history).get()),
                o.tenant);
  });

  const std::vector<std::string> limit_cols = {
      "id", "scope", "scope_id", "limit_type", "limit_value", "is_active", "updated_at"};
  auto* limits = app.add_subcommand("limits", "rate limits")->require_subcommand(1);
  auto* lp = limits->add_subcommand("put", "create or change a rate-limit config");
  lp->add_option("--id", o.id, "change this config");
  lp->add_option("--scope", o.scope, "global | tenant | user | agent")->capture_default_str();
  lp->add_option("--scope-id", o.scope_id, "the tenant, user or agent");
  lp->add_option("--type", o.limit_type,
                 "requests_per_minute | requests_per_hour | requests_per_day | concurrent")
      ->required();
  lp->add_option("--value", o.value)->required();
  lp->add_flag("--inactive", o.inactive);
  lp->callback([&g, uuid, limit_cols] {
    fb::RateLimitConfigT c;
    if (!o.id.empty()) c.id = uuid(o.id, "--id");
    c.scope = static_cast<fb::LimitScope>(
        EnumIndex(o.scope, {"global", "tenant", "user", "agent"}, "--scope"));
    if (!o.scope_id.empty()) c.scope_id = uuid(o.scope_id, "--scope-id");
    c.limit_type = static_cast<fb::LimitType>(EnumIndex(
        o.limit_type,
        {"requests_per_minute", "requests_per_hour", "requests_per_day", "concurrent"}, "--type"));
    c.limit_value = o.value;
    c.is_active = !o.inactive;
    Print(g, Must(Connect(g).PutLimitConfig(c).get()), limit_cols);
  });
  limits->add_subcommand("list", "every rate-limit config")->callback([&g, limit_cols] {
    Print(g, Must(Connect(g).ListLimitConfigs().get()), limit_cols);
  });
  auto* lc = limits->add_subcommand("check", "check and consume every applicable limit");
  lc->add_option("--user", o.user)->required();
  lc->add_option("--agent", o.agent);
  lc->add_option("--tenant", o.tenant);
  lc->callback([&g] {
    agentstore::LimitCheckRequest req;
    req.user = ParseId(o.user, "--user");
    if (!o.agent.empty()) req.agent = ParseId(o.agent, "--agent");
    if (!o.tenant.empty()) req.tenant = ParseId(o.tenant, "--tenant");
    auto d = Must(Connect(g).CheckLimits(req).get());
    Json j = {{"allowed", d.allowed}, {"remaining", d.remaining}, {"reset_at", d.reset_at}};
    j["denied_by"] = d.denied_by ? Json(d.denied_by->ToString()) : Json(nullptr);
    j["denied_type"] = d.denied_type.empty() ? Json(nullptr) : Json(d.denied_type);
    j["lease"] = d.lease ? Json(d.lease->ToString()) : Json(nullptr);
    if (!d.allowed) g.exit_code = agentctl::kDenied;  // answered "no": exit 3
    if (g.json || !g.get.empty()) return agentctl::PrintAnswer(g, j);
    std::cout << (d.allowed ? "allowed" : "denied") << ", remaining " << d.remaining
              << ", resets at " << agentctl::IsoTime(d.reset_at);
    if (d.denied_by)
      std::cout << ", denied by " << d.denied_by->ToString() << " (" << d.denied_type << ")";
    if (d.lease) std::cout << ", lease " << d.lease->ToString();
    std::cout << "\n";
  });
  auto* lr = limits->add_subcommand("release", "release a concurrent-limit lease");
  lr->add_option("lease", o.lease)->required();
  lr->callback([&g] {
    Must(Connect(g).ReleaseLimit(ParseId(o.lease, "lease")).get());
    std::cout << "released " << o.lease << "\n";
  });
  auto* ld = limits->add_subcommand("delete", "remove a rate-limit config");
  ld->add_option("id", o.id)->required();
  ld->callback([&g] {
    Must(Connect(g).DeleteLimitConfig(ParseId(o.id, "id")).get());
    std::cout << "deleted " << o.id << "\n";
  });
}

}  // namespace

// ---- watch: the change feed, like tail -f ----

template <typename T>
Json RecordJsonOf(const std::string& bytes) {
  flatbuffers::Verifier v(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  if (!v.VerifyBuffer<T>(nullptr)) return "<undecodable>";
  return Json::parse(agentstore::RecordToJson(*flatbuffers::GetRoot<T>(bytes.data())));
}

Json ChangeRecordJson(const agentstore::FeedChange& c) {
  if (c.type == agentstore::kCollectionRecordType)  // the record as coll_get answers it
    return c.json.empty() ? Json(nullptr) : Json::parse(c.json, nullptr, false);
  if (c.record.empty()) return nullptr;
  switch (c.type) {
    case RecordType::kTenant:
      return RecordJsonOf<fb::Tenant>(c.record);
    case RecordType::kUser:
      return RecordJsonOf<fb::User>(c.record);
    case RecordType::kAgent:
      return RecordJsonOf<fb::Agent>(c.record);
    case RecordType::kUserAgent:
      return RecordJsonOf<fb::UserAgent>(c.record);
    case RecordType::kChat:
      return RecordJsonOf<fb::Chat>(c.record);
    case RecordType::kMessage:
      return RecordJsonOf<fb::Message>(c.record);
    case RecordType::kVote:
      return RecordJsonOf<fb::Vote>(c.record);
    case RecordType::kAdminConfig:
      return RecordJsonOf<fb::AdminConfig>(c.record);
    case RecordType::kUserMemory:
      return RecordJsonOf<fb::UserMemory>(c.record);
    case RecordType::kUsageLog:
      return RecordJsonOf<fb::UsageLog>(c.record);
    case RecordType::kRateLimitConfig:
      return RecordJsonOf<fb::RateLimitConfig>(c.record);
    case RecordType::kQuota:
      return RecordJsonOf<fb::Quota>(c.record);
    default:
      return nullptr;
  }
}

void AddWatchCommand(CLI::App& app, Globals& g) {
  struct Opts {
    int64_t from = -1;
    std::vector<std::string> types, collections;
    std::string user, tenant;
    uint64_t count = 0;
  };
  auto o = std::make_shared<Opts>();
  auto* w = app.add_subcommand(
      "watch", "follow changes as they commit (like tail -f); resumes across reconnects");
  w->add_option("--from", o->from, "print changes after this sequence (default: from now)");
  w->add_option("--type", o->types,
                "record type to follow, e.g. messages; collections: every collection's records "
                "(repeatable)");
  w->add_option("--collection", o->collections,
                "records of this collection to follow (repeatable; with no --type, only these)");
  w->add_option("--user", o->user, "only this user's records");
  w->add_option("--tenant", o->tenant, "only this tenant's records");
  w->add_option("--count", o->count, "exit after this many changes (default: follow forever)");
  w->callback([&g, o] {
    Client client = Connect(g);
    agentstore::SubscribeFilter f;
    for (const auto& t : o->types) {
      auto rt = t == "collections" ? std::optional(agentstore::kCollectionRecordType)
                                   : agentstore::RecordTypeFromName(t);
      if (!rt) Fail("unknown record type: " + t);
      f.types.push_back(*rt);
    }
    f.collections = o->collections;
    if (!o->user.empty()) f.user = ParseId(o->user, "--user");
    if (!o->tenant.empty()) f.tenant = ParseId(o->tenant, "--tenant");
    std::optional<uint64_t> after;
    if (o->from >= 0) after = static_cast<uint64_t>(o->from);
    std::mutex mu;
    std::condition_variable cv;
    uint64_t seen = 0;
    bool ended = false;
    Status end;
    static const char* kOps[] = {"?", "create", "update", "delete"};
    auto sub = Must(client.Subscribe(
        f, after,
        [&](const agentstore::FeedChange& c) {
          std::lock_guard lock(mu);
          if (o->count && seen >= o->count) return;
          const char* op = kOps[static_cast<int>(c.op) & 3];
          bool coll = c.type == agentstore::kCollectionRecordType;
          // A collection's records print under the collection's name.
          std::string type = coll ? c.collection : std::string(agentstore::RecordTypeName(c.type));
          if (g.json) {
            Json j{{"sequence", c.sequence},
                   {"commit_time", c.commit_time},
                   {"op", op},
                   {"type", coll ? std::string("collection") : type},
                   {"id", c.id.ToString()}};
            if (coll) {
              j["collection"] = c.collection;
              j["key"] = Json::parse(c.record_key, nullptr, false);
            }
            if (!c.user.IsNil()) j["user_id"] = c.user.ToString();
            if (!c.tenant.IsNil()) j["tenant_id"] = c.tenant.ToString();
            j["record"] = ChangeRecordJson(c);
            std::cout << j.dump() << std::endl;
          } else {
            std::cout << c.sequence << "  " << op << "  " << type << "  "
                      << (coll ? c.record_key : c.id.ToString());
            if (!c.user.IsNil()) std::cout << "  user=" << c.user.ToString();
            if (coll && !c.tenant.IsNil()) std::cout << "  tenant=" << c.tenant.ToString();
            if (coll && !c.json.empty()) std::cout << "  " << c.json;
            std::cout << std::endl;
          }
          if (++seen == o->count) cv.notify_all();
        },
        [&](const Status& s) {
          std::lock_guard lock(mu);
          ended = true;
          end = s;
          cv.notify_all();
        }));
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return ended || (o->count && seen >= o->count); });
    lock.unlock();
    sub->Stop();
    if (ended && !(o->count && seen >= o->count)) Fail(end);
  });
}

int main(int argc, char** argv) {
  CLI::App app{"agentctl - operate an agentstore server"};
  app.require_subcommand(1);
  app.fallthrough();  // global flags may follow the subcommand
  Globals g;
  app.add_option("--addr", g.addr, "host:port (default $AGENTSTORE_ADDR or 127.0.0.1:7420)");
  app.add_option("--key", g.key, "API key (default $AGENTSTORE_KEY)");
  app.add_flag("--json", g.json, "print JSON instead of tables");
  app.add_option("--get", g.get, "print only this field of the answer (e.g. --get id)");

  auto* status = app.add_subcommand("status", "server version, uptime, counts, per-op latency");
  status->callback([&] {
    auto s = Must(Connect(g).GetStatus().get());
    if (g.json) {
      Json j = {{"version", s.version},
                {"uptime_ms", s.uptime_ms},
                {"durability", s.durability},
                {"memory_rss_bytes", s.memory_rss_bytes},
                {"arena_live_bytes", s.arena_live_bytes},
                {"connections", s.connections},
                {"operations_served", s.operations_served},
                {"wal_syncs", s.wal_syncs},
                {"memory",
                 {{"dim", s.memory_dim},
                  {"metric", s.memory_metric},
                  {"global_indexed", s.memory_global_indexed},
                  {"global_pending", s.memory_global_pending},
                  {"users_on_graph", s.memory_users_on_graph}}}};
      for (const auto& [name, n] : s.records) j["records"][name] = n;
      for (const auto& o : s.ops)
        j["ops"][o.name] = {{"calls", o.calls},
                            {"errors", o.errors},
                            {"p50_us", o.p50_us},
                            {"p99_us", o.p99_us},
                            {"max_us", o.max_us}};
      std::cout << j.dump(2) << "\n";
      return;
    }
    std::cout << "agentstored " << s.version << ", up " << s.uptime_ms / 1000 << " s, durability "
              << s.durability << ", " << s.connections << " connections, " << s.operations_served
              << " operations, rss " << s.memory_rss_bytes / (1 << 20) << " MiB\n";
    for (const auto& [name, n] : s.records)
      if (n) std::cout << "  " << name << ": " << n << "\n";
    std::cout << "  memory vectors: " << s.memory_dim << "-d " << s.memory_metric
              << ", global graph " << s.memory_global_indexed << " indexed + "
              << s.memory_global_pending << " pending, " << s.memory_users_on_graph
              << " users on a graph\n";
    for (const auto& o : s.ops)
      std::cout << "  op " << o.name << ": " << o.calls << " calls, " << o.errors << " errors, p50 "
                << o.p50_us << " us, p99 " << o.p99_us << " us\n";
  });

  auto* keys = app.add_subcommand("keys", "API keys")->require_subcommand(1);
  std::string role = "user", user_id, tenant_id, key_name, key_id;
  int64_t expires_at = 0;
  auto* kc = keys->add_subcommand("create", "create a key; prints the secret once");
  kc->add_option("--role", role, "service | admin | user")
      ->check(CLI::IsMember({"service", "admin", "user"}));
  kc->add_option("--user", user_id, "user id (user keys)");
  kc->add_option("--tenant", tenant_id, "tenant id scope");
  kc->add_option("--name", key_name, "label");
  kc->add_option("--expires-at", expires_at, "expiry, microseconds since the epoch");
  kc->callback([&] {
    fb::ApiKeyT k;
    k.role = role == "service" ? fb::KeyRole::service
             : role == "admin" ? fb::KeyRole::admin
                               : fb::KeyRole::user;
    if (!user_id.empty())
      k.user_id = std::make_unique<fb::Uuid>(agentstore::ToFb(ParseId(user_id, "--user")));
    if (!tenant_id.empty())
      k.tenant_id = std::make_unique<fb::Uuid>(agentstore::ToFb(ParseId(tenant_id, "--tenant")));
    k.name = key_name;
    k.expires_at = expires_at;
    auto created = Must(Connect(g).CreateApiKey(k).get());
    if (g.json) {
      Json j = Json::parse(agentstore::RecordToJson(*created.key.get()));
      j["secret"] = created.secret;
      std::cout << j.dump(2) << "\n";
    } else {
      std::cout << "id:     " << agentstore::ToUuid(created.key->id()).ToString()
                << "\nsecret: " << created.secret << "\n(the secret is shown only now)\n";
    }
  });
  keys->add_subcommand("list", "keys this key may see")->callback([&] {
    Print(g, Must(Connect(g).ListApiKeys().get()),
          {"id", "role", "user_id", "name", "created_at", "expires_at", "revoked_at",
           "last_used_at"});
  });
  auto* kr = keys->add_subcommand("revoke", "revoke a key");
  kr->add_option("id", key_id)->required();
  kr->callback([&] {
    Must(Connect(g).RevokeApiKey(ParseId(key_id, "id")).get());
    std::cout << "revoked " << key_id << "\n";
  });

  const std::vector<std::string> user_cols = {"id",   "email",     "full_name",
                                              "role", "is_active", "created_at"};
  auto* users = app.add_subcommand("users", "users")->require_subcommand(1);
  std::string id_arg, email, full_name, record_json;
  uint32_t limit = 50;
  auto* ug = users->add_subcommand("get", "a user by id or --email");
  ug->add_option("id", id_arg);
  ug->add_option("--email", email);
  ug->callback([&] {
    Client c = Connect(g);
    if (!email.empty()) return Print(g, Must(c.GetUserByEmail(email).get()), user_cols);
    if (id_arg.empty()) Fail("give an id or --email");
    Print(g, Must(c.GetUser(ParseId(id_arg, "id")).get()), user_cols);
  });
  auto* uc = users->add_subcommand("create", "create a user");
  uc->add_option("--email", email)->required();
  uc->add_option("--name", full_name);
  uc->add_option("--record", record_json, "further fields as JSON, e.g. '{\"job_title\":\"CTO\"}'");
  uc->callback([&] {
    fb::UserT u;
    if (!record_json.empty()) {
      Status s = agentstore::RecordFromJson<fb::User>(record_json, &u);
      if (!s.ok()) Fail(s);
    }
    u.email = email;
    if (!full_name.empty()) u.full_name = full_name;
    Print(g, Must(Connect(g).CreateUser(u).get()), user_cols);
  });
  auto* ul = users->add_subcommand("list", "users by id");
  ul->add_option("--limit", limit)->capture_default_str();
  ul->callback([&] {
    agentstore::PageRequest p;
    p.limit = limit;
    Print(g, Must(Connect(g).ListUsers(p).get()).rows, user_cols);
  });

  auto* agents = app.add_subcommand("agents", "agents")->require_subcommand(1);
  auto* al = agents->add_subcommand("list", "agents this key may see");
  al->add_option("--limit", limit)->capture_default_str();
  al->callback([&] {
    agentstore::PageRequest p;
    p.limit = limit;
    Print(g, Must(Connect(g).ListAgents(p).get()).rows,
          {"id", "name", "type", "model", "is_public", "creator_id", "created_at"});
  });

  auto* chats = app.add_subcommand("chats", "chats")->require_subcommand(1);
  auto* cl = chats->add_subcommand("list", "a user's chats, newest first");
  cl->add_option("--user", user_id)->required();
  cl->add_option("--limit", limit)->capture_default_str();
  cl->callback([&] {
    agentstore::PageRequest p;
    p.limit = limit;
    Print(g, Must(Connect(g).ListChats(ParseId(user_id, "--user"), p).get()).rows,
          {"id", "title", "visibility", "message_count", "total_cost", "created_at", "updated_at"});
  });

  auto* messages = app.add_subcommand("messages", "messages")->require_subcommand(1);
  std::string chat_id;
  uint32_t count = 20;
  auto* mt = messages->add_subcommand("tail", "the last messages of a chat");
  mt->add_option("--chat", chat_id)->required();
  mt->add_option("-n", count, "how many")->capture_default_str();
  mt->callback([&] {
    agentstore::MessagePageRequest p;
    p.limit = count;
    Print(g, Must(Connect(g).ListMessages(ParseId(chat_id, "--chat"), p).get()).rows,
          {"created_at", "role", "model_used", "input_tokens", "output_tokens", "parts"});
  });

  // memory: upsert / get / delete / search (hybrid with --text) / global / prune
  auto* memory =
      app.add_subcommand("memory", "user memories and semantic search")->require_subcommand(1);
  const std::vector<std::string> memory_cols = {
      "id",           "memory_key",   "memory_type", "importance_score",
      "access_count", "memory_value", "expires_at"};
  std::string vector_path = "-", mem_key, mem_type, mem_content, query_text, mem_source,
              mem_context;
  double mem_confidence = -1;
  std::vector<std::string> mem_tags;
  double importance = 0.5;
  double min_importance = -1;
  int64_t mem_expires_at = 0;
  uint32_t k = 5, keep = 0;
  bool touch = false, with_vector = false;
  auto* mu = memory->add_subcommand("upsert", "write a memory by (user, key); vector from JSON");
  mu->add_option("--user", user_id)->required();
  mu->add_option("--key", mem_key)->required();
  mu->add_option("--type", mem_type, "preference, context, fact (default), instruction");
  mu->add_option("--content", mem_content);
  mu->add_option("--source", mem_source, "where it came from (memory_value.source)");
  mu->add_option("--confidence", mem_confidence, "0..1 (memory_value.confidence)");
  mu->add_option("--context", mem_context, "JSON (memory_value.context), or plain text");
  mu->add_option("--tag", mem_tags, "a tag (repeatable)");
  mu->add_option("--importance", importance)->capture_default_str();
  mu->add_option("--expires-at", mem_expires_at, "microseconds since the epoch (0: never)");
  mu->add_option("--vector", vector_path, "JSON file with the embedding, or - for stdin")
      ->capture_default_str();
  mu->callback([&] {
    fb::UserMemoryT m;
    m.user_id = std::make_unique<fb::Uuid>(agentstore::ToFb(ParseId(user_id, "--user")));
    m.memory_key = mem_key;
    m.memory_type = mem_type.empty() ? fb::MemoryType::fact : ParseMemoryType(mem_type);
    Json value = {{"content", mem_content}};
    if (!mem_tags.empty()) value["tags"] = mem_tags;
    if (!mem_source.empty()) value["source"] = mem_source;
    if (mem_confidence >= 0) value["confidence"] = mem_confidence;
    if (!mem_context.empty()) {
      Json ctx = Json::parse(mem_context, nullptr, false);
      value["context"] = ctx.is_discarded() ? Json(mem_context) : ctx;
    }
    m.memory_value = value.dump();
    m.importance_score = importance;
    m.expires_at = mem_expires_at;
    m.embedding = ReadVector(vector_path);
    Print(g, Must(Connect(g).UpsertMemory(m).get()), memory_cols);
  });
  auto* mg = memory->add_subcommand("get", "a memory by id, or by --user and --key");
  mg->add_option("id", id_arg);
  mg->add_option("--user", user_id);
  mg->add_option("--key", mem_key);
  mg->add_flag("--with-vector", with_vector, "include the embedding");
  mg->callback([&] {
    Client c = Connect(g);
    auto cols = memory_cols;
    if (with_vector) cols.push_back("embedding");
    if (!id_arg.empty())
      return Print(g, Must(c.GetMemory(ParseId(id_arg, "id"), with_vector).get()), cols);
    if (user_id.empty() || mem_key.empty()) Fail("give an id, or --user and --key");
    Print(g, Must(c.GetMemoryByKey(ParseId(user_id, "--user"), mem_key, with_vector).get()), cols);
  });
  auto* md = memory->add_subcommand("delete", "remove a memory");
  md->add_option("id", id_arg)->required();
  md->callback([&] {
    Must(Connect(g).DeleteMemory(ParseId(id_arg, "id")).get());
    std::cout << "deleted " << id_arg << "\n";
  });
  auto search_query = [&](bool need_user) {
    agentstore::MemoryQuery q;
    if (need_user) q.user = ParseId(user_id, "--user");
    q.vector = ReadVector(vector_path);
    q.k = k;
    q.text = query_text;
    if (!mem_type.empty()) q.memory_type = ParseMemoryType(mem_type);
    if (min_importance >= 0) q.min_importance = min_importance;
    q.tags = mem_tags;
    q.touch = touch;
    return q;
  };
  auto* ms = memory->add_subcommand(
      "search", "a user's top-k memories nearest a vector; with --text, hybrid search");
  ms->add_option("--user", user_id)->required();
  ms->add_option("--vector", vector_path, "JSON file with the query vector, or - for stdin")
      ->capture_default_str();
  ms->add_option("-k", k)->capture_default_str();
  ms->add_option("--text", query_text, "keywords: vector + BM25 fused by reciprocal rank");
  ms->add_option("--type", mem_type, "only this memory type");
  ms->add_option("--min-importance", min_importance);
  ms->add_option("--tag", mem_tags, "only memories with this tag (repeatable)");
  ms->add_flag("--touch", touch, "count the read (access_count, last_accessed_at)");
  ms->callback([&] {
    Client c = Connect(g);
    auto q = search_query(true);
    PrintHits(g, Must((q.text.empty() ? c.SearchMemories(q) : c.HybridSearchMemories(q)).get()));
  });
  auto* mgl = memory->add_subcommand("global", "top-k across every user (service, admin)");
  mgl->add_option("--vector", vector_path, "JSON file with the query vector, or - for stdin")
      ->capture_default_str();
  mgl->add_option("-k", k)->capture_default_str();
  mgl->add_option("--type", mem_type, "only this memory type");
  mgl->callback(
      [&] { PrintHits(g, Must(Connect(g).GlobalSearchMemories(search_query(false)).get())); });
  auto* mp =
      memory->add_subcommand("prune", "keep at most N memories of a user (lowest importance go)");
  mp->add_option("--user", user_id)->required();
  mp->add_option("--keep", keep)->required();
  mp->callback([&] {
    auto removed = Must(Connect(g).PruneMemories(ParseId(user_id, "--user"), keep).get());
    Say(g, Json{{"removed", removed}}, "removed " + std::to_string(removed) + " memories");
  });
  memory->add_subcommand("save-graphs", "save the vector graphs now (also periodic and on stop)")
      ->callback([&] {
        Must(Connect(g).SaveMemoryGraphs().get());
        std::cout << "vector graphs saved\n";
      });
  app.add_subcommand("save-image",
                     "write the table image and the changed vector graphs now, so the next "
                     "start maps them (also in the background and on a clean stop)")
      ->callback([&] {
        Must(Connect(g).SaveImage().get());
        std::cout << "table image written\n";
      });

  std::string path = "-";
  auto* ex = app.add_subcommand("export", "every record as JSON Lines, parents first");
  ex->add_option("--out", path, "file (default stdout)");
  ex->callback([&] { Export(g, path); });
  auto* im = app.add_subcommand("import", "JSON Lines from export; idempotent by id");
  im->add_option("file", path, "file or - for stdin")->required();
  size_t batch_size = 1000;
  im->add_option("--batch", batch_size,
                 "records per request, each batch all or nothing (1: one per request)")
      ->check(CLI::Range(size_t{1}, agentstore::kMaxImportBatch))
      ->capture_default_str();
  im->callback([&] { Import(g, path, batch_size); });

  auto* backup = app.add_subcommand("backup", "backups")->require_subcommand(1);
  std::string dir, from, data_dir;
  auto* bc = backup->add_subcommand("create", "consistent online backup on the server's machine");
  bc->add_option("--dir", dir, "a new directory on the server's machine")->required();
  bc->callback([&] {
    std::string target = fs::absolute(dir).lexically_normal().string();
    // The server checks too (it may run elsewhere); this names the problem early.
    if (fs::path parent = fs::path(target).parent_path(); !fs::is_directory(parent))
      Fail(Status::InvalidArgument("cannot back up into " + target + ": its parent directory " +
                                   parent.string() + " does not exist"));
    Progress progress{.what = "backing up"};
    if (progress.tty) std::cerr << "backing up into " << target << " ..." << std::flush;
    auto started = std::chrono::steady_clock::now();
    Must(Connect(g).CreateBackup(target).get());
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (progress.tty) std::cerr << " done\n";
    uint64_t bytes = 0;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(target, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
      if (it->is_regular_file(ec)) bytes += it->file_size(ec);
    Say(g, Json{{"dir", target}, {"bytes", bytes}, {"seconds", secs}},
        "backup written to " + target);
  });
  auto* br =
      backup->add_subcommand("restore", "copy a backup into an empty data directory (offline)");
  br->add_option("--from", from)->required();
  br->add_option("--data-dir", data_dir)->required();
  br->callback([&] { Restore(from, data_dir); });

  AddUsageCommands(app, g);
  AddWatchCommand(app, g);

  agentctl::AddOperationCommands(app, g);
  app.footer(
      "Exit status: 0 ok; 1 error (the server's or a file's; the message says which); 2 bad "
      "command line; 3 answered but denied or exceeded (limits check denied, a quota "
      "exceeded).\nEvery operation of the op table is a command of its name (agentctl "
      "<operation> --help lists its fields, types and enum values).");
  agentctl::CheckCommandWords(app, argc, argv);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : agentctl::kUsage;
  }
  return g.exit_code;
}
