// agentctl as issue 13 asks: every operation of the op table is a command with generated
// flags and help; exit statuses (2 usage, 3 denied/exceeded); ISO times and --json; the
// README's "Using it" walkthrough runs as written; an export of every record type
// (cosine and l2 stores) round-trips through import byte for byte.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "agentstore/engine/operations.h"
#include "server_process.h"
#include "test_util.h"

namespace agentstore::testing {
namespace {

using Json = nlohmann::json;

std::string ReadAll(const std::string& path) {
  std::ifstream f(path);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// Runs agentctl and returns stdout only (stderr dropped), for --json / --get.
CtlRun Out(const ServerProcess& s, const std::string& key, const std::string& args) {
  return RunCommand(std::string(AGENTCTL_PATH) + " --addr " + s.addr() + " --key " + key + " " +
                    args + " 2>/dev/null");
}

std::string Trim(std::string s) {
  while (!s.empty() && isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  return s;
}

class AgentctlOps : public ServerTest {
 protected:
  std::string svc_key() { return server_.Key("service"); }
  CtlRun Ctl(const std::string& args) { return Agentctl(server_, svc_key(), args); }
  std::string IdOf(const std::string& args) {
    CtlRun r = Out(server_, svc_key(), args + " --get id");
    EXPECT_EQ(r.code, 0) << args << "\n" << r.out;
    return Trim(r.out);
  }
};

TEST_F(AgentctlOps, UnknownWordsAreNamed) {
  CtlRun r = Ctl("frobnicate");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("unknown command 'frobnicate'"), std::string::npos) << r.out;
  CtlRun sub = Ctl("users frobnicate");
  EXPECT_EQ(sub.code, 2);
  EXPECT_NE(sub.out.find("unknown command 'frobnicate' for 'agentctl users'"), std::string::npos)
      << sub.out;
  CtlRun flag = Ctl("tenant_create --frobnicate 1");
  EXPECT_EQ(flag.code, 2) << flag.out;
  EXPECT_NE(flag.out.find("frobnicate"), std::string::npos) << flag.out;
}

TEST_F(AgentctlOps, EveryOperationIsACommandWithFieldsTypesAndEnums) {
  for (const auto& op : Operations()) {
    if (op.op == Op::authenticate) continue;
    CtlRun r = RunCommand(std::string(AGENTCTL_PATH) + " " + std::string(op.name) + " --help");
    EXPECT_EQ(r.code, 0) << op.name << ": " << r.out;
    EXPECT_NE(r.out.find(std::string(op.name)), std::string::npos) << r.out;
  }
  CtlRun user = RunCommand(std::string(AGENTCTL_PATH) + " user_create --help");
  EXPECT_NE(user.out.find("--email"), std::string::npos) << user.out;
  EXPECT_NE(user.out.find("user | admin | superadmin"), std::string::npos) << user.out;
  EXPECT_NE(user.out.find("--tenant-id"), std::string::npos) << user.out;
  CtlRun top = RunCommand(std::string(AGENTCTL_PATH) + " --help");
  EXPECT_NE(top.out.find("track_agent_usage"), std::string::npos) << top.out;
  EXPECT_NE(top.out.find("Exit status"), std::string::npos) << top.out;
}

// A flag's default is printed as a value it takes: an enum's name, a bool's true/false
// (help said "--agent-type enum: routing | chat | ..., default 1").
TEST_F(AgentctlOps, HelpShowsDefaultsAsValuesTheFlagTakes) {
  CtlRun track = RunCommand(std::string(AGENTCTL_PATH) + " track_agent_usage --help");
  EXPECT_NE(track.out.find("git_mcp | other, default chat"), std::string::npos) << track.out;
  EXPECT_NE(track.out.find("bool, default true"), std::string::npos) << track.out;
  EXPECT_EQ(track.out.find("bool, default 1"), std::string::npos) << track.out;
  CtlRun summary = RunCommand(std::string(AGENTCTL_PATH) + " usage_summary --help");
  EXPECT_NE(summary.out.find("day | month | total, default month"), std::string::npos)
      << summary.out;
  CtlRun key = RunCommand(std::string(AGENTCTL_PATH) + " key_create --help");
  EXPECT_NE(key.out.find("service | admin | user, default user"), std::string::npos) << key.out;
}

// net/schema/op_shapes.json is the one declaration of what each operation takes and
// answers (agentctl and the TypeScript client follow it): it names every operation of the
// op table and nothing else, and each argument it names is a member of the Args union.
TEST_F(AgentctlOps, EveryOperationDeclaresItsArgumentsAndAnswer) {
  Json shapes =
      Json::parse(ReadAll(std::string(AGENTSTORE_SOURCE_DIR) + "/net/schema/op_shapes.json"));
  std::string protocol = ReadAll(std::string(AGENTSTORE_SOURCE_DIR) + "/net/schema/protocol.fbs");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(protocol, m, std::regex(R"(union Args \{([^}]*)\})")));
  std::string members = m[1];
  std::set<std::string> declared;
  for (const auto& op : Operations()) {
    std::string name(op.name);
    declared.insert(name);
    ASSERT_TRUE(shapes["ops"].contains(name)) << name << " is not in op_shapes.json";
    const Json& d = shapes["ops"][name];
    EXPECT_TRUE(d["answer"].is_string() && !d["answer"].get<std::string>().empty()) << name;
    for (const auto& a : d["args"]) {
      std::regex member("(^|[\\s,.])" + a.get<std::string>() + "\\s*(,|$)");
      EXPECT_TRUE(std::regex_search(members, member))
          << name << ": " << a << " is not in union Args";
    }
  }
  for (const auto& [name, d] : shapes["ops"].items())
    EXPECT_TRUE(declared.count(name)) << name << " is declared but not in the op table";
}

// Collections through the generated commands: the declared CollectionArgs give the flags.
TEST_F(AgentctlOps, CollectionCommandsTakeTheirDeclaredArguments) {
  std::string user = IdOf("user_create --email col@x.com");
  ASSERT_EQ(Ctl("coll_declare --json \"$(cat " + std::string(AGENTSTORE_SOURCE_DIR) +
                "/examples/collections/journal_entries.json)\"")
                .code,
            0);
  for (int day = 1; day <= 3; ++day)
    ASSERT_EQ(Ctl("coll_put --collection journal_entries --json '{\"user_id\":\"" + user +
                  "\",\"content\":\"day " + std::to_string(day) +
                  "\",\"entry_date\":" + std::to_string(day * 1000) + "}'")
                  .code,
              0);
  CtlRun q = Out(server_, svc_key(),
                 "coll_query --collection journal_entries --index by_user_date --where "
                 "'{\"user_id\":\"" +
                     user + "\"}' --desc --limit 2 --json");
  ASSERT_EQ(q.code, 0) << q.out;
  EXPECT_NE(q.out.find("day 3"), std::string::npos) << q.out;
  EXPECT_NE(q.out.find("day 2"), std::string::npos) << q.out;
  EXPECT_EQ(q.out.find("day 1"), std::string::npos) << q.out;
}

// Collection records print like built-in ones: --get reads a field of the record, the
// default table has its columns, --json gives objects (they were JSON text in strings:
// --get id failed and the table printed blank lines).
TEST_F(AgentctlOps, CollectionRecordsPrintAsRecords) {
  std::string user = IdOf("user_create --email rows@x.com");
  ASSERT_EQ(Ctl("coll_declare --json \"$(cat " + std::string(AGENTSTORE_SOURCE_DIR) +
                "/examples/collections/goals.json)\"")
                .code,
            0);
  std::string goal = IdOf("coll_put --collection user_goals --json '{\"user_id\":\"" + user +
                          "\",\"title\":\"Run 5k\"}'");
  EXPECT_TRUE(std::regex_match(goal, std::regex("[0-9a-f-]{36}"))) << goal;
  CtlRun title =
      Out(server_, svc_key(), "coll_get --collection user_goals --key " + goal + " --get title");
  EXPECT_EQ(title.code, 0) << title.out;
  EXPECT_EQ(Trim(title.out), "Run 5k");
  CtlRun table = Out(server_, svc_key(), "coll_query --collection user_goals");
  ASSERT_EQ(table.code, 0) << table.out;
  EXPECT_NE(table.out.find("TITLE"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("Run 5k"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find(goal), std::string::npos) << table.out;
  CtlRun json = Out(server_, svc_key(), "coll_query --collection user_goals --json");
  ASSERT_EQ(json.code, 0) << json.out;
  Json j = Json::parse(json.out);
  ASSERT_TRUE(j.is_array() || j.contains("items")) << json.out;
  const Json& rows = j.is_array() ? j : j["items"];
  ASSERT_EQ(rows.size(), 1u) << json.out;
  EXPECT_EQ(rows[0]["title"], "Run 5k") << json.out;
  CtlRun decl = Out(server_, svc_key(), "coll_describe --collection user_goals --get owner");
  EXPECT_EQ(Trim(decl.out), "user") << decl.out;
}

TEST_F(AgentctlOps, GeneratedCommandsReachWhatTheHandKeptOnesCouldNot) {
  std::string tenant = IdOf("tenant_create --name Acme --slug acme");
  std::string user = IdOf("user_create --email ada@x.com --full-name Ada --tenant-id " + tenant);
  std::string agent = IdOf("agent_create --name Helper --model m --is-public");
  std::string ua = IdOf("user_agent_create --user-id " + user + " --agent-id " + agent);
  std::string chat = IdOf("chat_create --user-id " + user + " --agent-id " + agent +
                          " --title First --visibility public");
  CtlRun msg = Out(server_, svc_key(),
                   "message_append --chat-id " + chat +
                       " --role assistant --parts '[{\"type\":\"text\",\"text\":\"hi\"}]' "
                       "--output-tokens 4 --json");
  ASSERT_EQ(msg.code, 0) << msg.out;
  Json m = Json::parse(msg.out);
  EXPECT_EQ(m["chat"]["message_count"], 1);
  std::string message = m["message"]["id"];
  EXPECT_EQ(Ctl("vote_put --a " + chat + " --b " + message + " --flag").code, 0);
  EXPECT_EQ(Ctl("admin_config_put --key flags --data '{\"beta\":true}'").code, 0);
  CtlRun rated =
      Out(server_, svc_key(),
          "rate_agent --user " + user + " --agent " + agent + " --rating 4 --get user_rating");
  EXPECT_EQ(Trim(rated.out), "4.0") << rated.out;
  EXPECT_EQ(Ctl("user_update --id " + user + " --patch '{\"job_title\":\"CTO\"}'").code, 0);
  CtlRun conv = Out(server_, svc_key(), "user_agent_get --id " + ua + " --get conversation_count");
  EXPECT_EQ(Trim(conv.out), "1") << conv.out;
  // Lookups by another shape of the same operation: user_get by email.
  CtlRun by_email = Out(server_, svc_key(), "user_get --key ada@x.com --get id");
  EXPECT_EQ(Trim(by_email.out), user);
  // Whole arguments as JSON (UUIDs as text), and a bad enum named with its choices.
  EXPECT_EQ(
      Ctl("chat_update --args '{\"id\":\"" + chat + "\",\"patch\":\"{\\\"title\\\":\\\"T\\\"}\"}'")
          .code,
      0);
  CtlRun bad = Ctl("chat_create --user-id " + user + " --visibility secret");
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.out.find("private | public"), std::string::npos) << bad.out;
  EXPECT_EQ(Ctl("user_delete --id " + user + " --mode hard").code, 0);
  EXPECT_EQ(Ctl("user_get --id " + user).code, 1);
}

// A flag its help calls "repeatable" (a string or UUID list field) takes every value
// given: `--tags a --tags b` was refused with "At Most 1 required but received 2".
TEST_F(AgentctlOps, RepeatableFlagsTakeEveryValue) {
  std::string user = IdOf("user_create --email rep@x.com");
  std::string friend1 = IdOf("user_create --email f1@x.com");
  std::string friend2 = IdOf("user_create --email f2@x.com");
  std::string agent = IdOf("agent_create --name Helper --is-public");
  CtlRun r = Out(server_, svc_key(),
                 "user_agent_create --user-id " + user + " --agent-id " + agent +
                     " --tags work --tags daily --shared-with " + friend1 + " --shared-with " +
                     friend2 + " --json");
  ASSERT_EQ(r.code, 0) << r.out;
  Json ua = Json::parse(r.out);
  EXPECT_EQ(ua["tags"], Json::array({"work", "daily"})) << r.out;
  EXPECT_EQ(ua["shared_with"], Json::array({friend1, friend2})) << r.out;
}

// record_export answers records of the type asked for: agentctl prints them (and the
// cursor of the next page), not only their size ("bytes 224").
TEST_F(AgentctlOps, RecordExportPrintsTheRecordsAndTheCursor) {
  NewUserId("exp1@x.com");
  NewUserId("exp2@x.com");
  CtlRun all = Out(server_, svc_key(), "record_export --type users --json");
  ASSERT_EQ(all.code, 0) << all.out;
  Json j = Json::parse(all.out);  // one page: the records; more: {items, next_cursor}
  ASSERT_TRUE(j.is_array()) << all.out;
  ASSERT_EQ(j.size(), 2u) << all.out;
  // In id order: two users made in one millisecond have v7 ids in either order.
  std::set<std::string> emails = {j[0]["email"], j[1]["email"]};
  EXPECT_EQ(emails, (std::set<std::string>{"exp1@x.com", "exp2@x.com"})) << all.out;
  CtlRun page = Out(server_, svc_key(), "record_export --type users --limit 1 --get next_cursor");
  EXPECT_EQ(page.code, 0) << page.out;
  EXPECT_FALSE(Trim(page.out).empty());
  CtlRun table = Ctl("record_export --type users");
  EXPECT_EQ(table.code, 0) << table.out;
  EXPECT_NE(table.out.find("exp2@x.com"), std::string::npos) << table.out;
}

// Collection answers (JSON records) print as records: a table or fields for people, JSON
// objects with --json, also when --json follows a command whose arguments have a `json`
// field (coll_get, coll_put). They printed as blank lines, and `coll_get ... --json` was
// refused ("--json: 1 required missing").
TEST_F(AgentctlOps, CollectionAnswersPrintAsRecords) {
  std::string user = IdOf("user_create --email goals@x.com");
  CtlRun decl = Ctl("coll_declare --json \"$(cat " + std::string(AGENTSTORE_SOURCE_DIR) +
                    "/examples/collections/goals.json)\"");
  ASSERT_EQ(decl.code, 0) << decl.out;
  EXPECT_NE(decl.out.find("user_goals"), std::string::npos) << decl.out;
  CtlRun put = Ctl("coll_put --collection user_goals --json '{\"user_id\":\"" + user +
                   "\",\"title\":\"run a marathon\"}'");
  ASSERT_EQ(put.code, 0) << put.out;
  EXPECT_NE(put.out.find("run a marathon"), std::string::npos) << put.out;
  CtlRun id = Out(server_, svc_key(),
                  "coll_query --collection user_goals --index by_status --where "
                  "'{\"status\":\"active\"}' --get id");
  ASSERT_EQ(id.code, 0) << id.out;
  CtlRun got =
      Out(server_, svc_key(), "coll_get --collection user_goals --key " + Trim(id.out) + " --json");
  ASSERT_EQ(got.code, 0) << got.out;
  Json g = Json::parse(got.out, nullptr, false);
  ASSERT_TRUE(g.is_object()) << got.out;
  EXPECT_EQ(g["title"], "run a marathon") << got.out;
  CtlRun list = Ctl("coll_list");
  EXPECT_EQ(list.code, 0) << list.out;
  EXPECT_NE(list.out.find("user_goals"), std::string::npos) << list.out;
  CtlRun query =
      Ctl("coll_query --collection user_goals --index by_status --where "
          "'{\"status\":\"active\"}'");
  EXPECT_EQ(query.code, 0) << query.out;
  EXPECT_NE(query.out.find("run a marathon"), std::string::npos) << query.out;
}

TEST_F(AgentctlOps, TablesShowIsoTimesInAlignedColumns) {
  NewUserId("t1@x.com");
  NewUserId("t2-longer-address@x.com");
  CtlRun r = Ctl("users list");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex(R"(20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)")))
      << r.out;
  std::istringstream lines(r.out);
  std::string header, row;
  std::getline(lines, header);
  size_t col = header.find("EMAIL");
  ASSERT_NE(col, std::string::npos) << header;
  ASSERT_GT(col, 0u);
  while (std::getline(lines, row)) {
    ASSERT_GT(row.size(), col) << row;
    EXPECT_EQ(row[col - 1], ' ') << row;
    EXPECT_NE(row[col], ' ') << row;
  }
  // usage summary: columns aligned under their headers.
  CtlRun sum = Ctl("usage summary --everyone --by total");
  EXPECT_EQ(sum.code, 0) << sum.out;
}

// The generated commands' tables say when: records without created_at show their own
// time (a usage log's request_ts, a summary row's period_start), not no time at all.
TEST_F(AgentctlOps, GeneratedTablesShowTheRecordsOwnTime) {
  std::string user = IdOf("user_create --email when@x.com");
  std::string agent = IdOf("agent_create --name Helper --is-public");
  ASSERT_EQ(Ctl("user_agent_create --user-id " + user + " --agent-id " + agent).code, 0);
  ASSERT_EQ(Ctl("track_agent_usage --user-id " + user + " --agent-id " + agent +
                " --model m --input-tokens 3")
                .code,
            0);
  CtlRun logs = Ctl("usage_list --user " + user);
  EXPECT_EQ(logs.code, 0) << logs.out;
  EXPECT_NE(logs.out.find("REQUEST_TS"), std::string::npos) << logs.out;
  CtlRun sum = Ctl("usage_summary --owner user --id " + user);
  EXPECT_EQ(sum.code, 0) << sum.out;
  EXPECT_NE(sum.out.find("PERIOD_START"), std::string::npos) << sum.out;
}

// Search hits printed as a table name the memory each found (id, key, content): the
// generated memory_search / memory_hybrid_search / memory_global_search tables held only
// DISTANCE and SCORE.
TEST_F(AgentctlOps, SearchHitTablesNameTheMemoryFound) {
  std::string user = IdOf("user_create --email hits@x.com");
  std::string vec = "[1";
  for (int i = 1; i < 384; ++i) vec += ",0";
  vec += "]";
  ASSERT_EQ(Ctl("memory_upsert --user-id " + user +
                " --memory-key diet --memory-value '{\"content\":\"vegetarian\"}' --embedding '" +
                vec + "'")
                .code,
            0);
  CtlRun hits = Ctl("memory_search --user " + user + " --vector '" + vec + "'");
  EXPECT_EQ(hits.code, 0) << hits.out;
  EXPECT_NE(hits.out.find("diet"), std::string::npos) << hits.out;
  EXPECT_NE(hits.out.find("vegetarian"), std::string::npos) << hits.out;
  EXPECT_TRUE(std::regex_search(hits.out, std::regex(R"([0-9a-f]{8}-[0-9a-f]{4}-)"))) << hits.out;
}

TEST_F(AgentctlOps, DeniedAndExceededExitThree) {
  Uuid user = NewUserId("lim@x.com");
  ASSERT_EQ(Ctl("limits put --scope user --scope-id " + user.ToString() +
                " --type requests_per_minute --value 1")
                .code,
            0);
  CtlRun first = Ctl("limits check --user " + user.ToString());
  EXPECT_EQ(first.code, 0) << first.out;
  CtlRun second = Ctl("limits check --user " + user.ToString());
  EXPECT_EQ(second.code, 3) << second.out;
  EXPECT_NE(second.out.find("denied"), std::string::npos) << second.out;
  CtlRun generated = Ctl("limit_check --user " + user.ToString());
  EXPECT_EQ(generated.code, 3) << generated.out;

  std::string tenant = IdOf("tenant_create --name Q --slug q");
  CtlRun none = Ctl("quotas get --tenant " + tenant);
  EXPECT_EQ(none.code, 0);
  EXPECT_NE(none.out.find("has no quotas"), std::string::npos) << none.out;
  IdOf("user_create --email q1@x.com --tenant-id " + tenant);
  IdOf("user_create --email q2@x.com --tenant-id " + tenant);
  CtlRun set = Ctl("quotas set --tenant " + tenant + " --type users --limit 1 --period none");
  EXPECT_EQ(set.code, 3) << "2 users over a limit of 1: " << set.out;
  CtlRun get = Out(server_, svc_key(), "quotas get --tenant " + tenant + " --json");
  EXPECT_EQ(get.code, 3);
  Json q = Json::parse(get.out);
  EXPECT_EQ(q[0]["used"], 2) << get.out;
  EXPECT_EQ(q[0]["exceeded"], true);
}

TEST_F(AgentctlOps, JsonEverywhereAndClearBackupErrors) {
  Uuid user = NewUserId("j@x.com");
  CtlRun prune =
      Out(server_, svc_key(), "memory prune --user " + user.ToString() + " --keep 1 --json");
  ASSERT_EQ(prune.code, 0) << prune.out;
  EXPECT_EQ(Json::parse(prune.out)["removed"], 0);
  CtlRun expire = Out(server_, server_.Key("admin"), "usage expire --json");
  ASSERT_EQ(expire.code, 0) << expire.out;
  EXPECT_TRUE(Json::parse(expire.out).contains("expired"));
  CtlRun backup = Out(server_, svc_key(), "backup create --dir " + dir_.sub("b1") + " --json");
  ASSERT_EQ(backup.code, 0) << backup.out;
  EXPECT_EQ(Json::parse(backup.out)["dir"], dir_.sub("b1"));
  CtlRun missing = Ctl("backup create --dir " + dir_.sub("no/such/parent/b2"));
  EXPECT_EQ(missing.code, 1);
  EXPECT_NE(missing.out.find("parent directory"), std::string::npos) << missing.out;
  // The server says so too (a client on another machine cannot check).
  CtlRun remote = Ctl("backup_create --dir " + dir_.sub("no/such/parent/b3"));
  EXPECT_EQ(remote.code, 1);
  EXPECT_NE(remote.out.find("parent directory does not exist"), std::string::npos) << remote.out;
}

TEST_F(AgentctlOps, MemoryUpsertSetsSourceConfidenceAndContext) {
  Uuid user = NewUserId("m@x.com");
  std::ofstream(dir_.sub("v.json")) << "[" << [] {
    std::string s;
    for (int i = 0; i < 384; ++i) s += (i ? "," : "") + std::to_string((i % 5) * 0.1);
    return s;
  }() << "]";
  CtlRun r = Out(server_, svc_key(),
                 "memory upsert --user " + user.ToString() +
                     " --key diet --content veg --source chat --confidence 0.7 "
                     "--context '{\"chat\":\"c1\"}' --vector " +
                     dir_.sub("v.json") + " --json");
  ASSERT_EQ(r.code, 0) << r.out;
  Json v = Json::parse(r.out)["memory_value"];
  EXPECT_EQ(v["source"], "chat");
  EXPECT_DOUBLE_EQ(v["confidence"].get<double>(), 0.7);
  EXPECT_EQ(v["context"]["chat"], "c1");
}

// The README's "Using it" block, run as a script against a fresh server.
TEST_F(AgentctlOps, ReadmeWalkthroughRunsAsWritten) {
  std::string readme = ReadAll(std::string(AGENTSTORE_SOURCE_DIR) + "/README.md");
  size_t at = readme.find("## Using it");
  ASSERT_NE(at, std::string::npos);
  size_t start = readme.find("```sh\n", at);
  ASSERT_NE(start, std::string::npos);
  start += 6;
  size_t end = readme.find("```", start);
  std::string script = readme.substr(start, end - start);
  std::string work = dir_.sub("readme");
  std::filesystem::create_directories(work);
  // build/ and data/ as in a checkout where the server runs with its default data dir.
  std::filesystem::path agentctl(AGENTCTL_PATH);
  std::filesystem::create_directory_symlink(agentctl.parent_path().parent_path(), work + "/build");
  std::filesystem::create_directory_symlink(server_.data_dir(), work + "/data");
  std::ofstream(work + "/walkthrough.sh") << "set -euo pipefail\nset -x\n" << script;
  CtlRun r =
      RunCommand("cd " + work + " && AGENTSTORE_ADDR=" + server_.addr() + " bash walkthrough.sh");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(std::filesystem::exists(work + "/dump.jsonl"));
  EXPECT_TRUE(std::filesystem::exists(work + "/backup-1/CURRENT"));
}

// Every record type, with touches, through agentctl export -> import -> export.
class RoundTrip : public ::testing::TestWithParam<const char*> {};

TEST_P(RoundTrip, ExportImportExportIsByteForByte) {
  TempDir dir;
  ServerProcess a, b;
  std::vector<std::string> flags = {"--memory-metric", GetParam()};
  ASSERT_TRUE(a.Start(dir.sub("a"), flags));
  ASSERT_TRUE(b.Start(dir.sub("b"), flags));
  std::string key = a.Key("service");
  auto id = [&](const std::string& args) {
    CtlRun r = Out(a, key, args + " --get id");
    EXPECT_EQ(r.code, 0) << args << "\n" << r.out;
    return Trim(r.out);
  };
  std::string tenant = id("tenant_create --name T --slug t");
  std::string agent = id("agent_create --name A --is-public");
  std::ofstream(dir.sub("v.json")) << "[" << [] {
    std::string s;
    for (int i = 0; i < 384; ++i) s += (i ? "," : "") + std::to_string(std::sin(0.3 * i) + 0.01);
    return s;
  }() << "]";
  for (int u = 0; u < 3; ++u) {
    std::string user =
        id("user_create --email u" + std::to_string(u) + "@x.com --tenant-id " + tenant);
    id("user_agent_create --user-id " + user + " --agent-id " + agent);
    std::string chat = id("chat_create --user-id " + user + " --agent-id " + agent);
    std::string msg =
        id("message_append --chat-id " + chat + " --role user --parts '[]' --input-tokens 2");
    ASSERT_EQ(Out(a, key, "vote_put --a " + chat + " --b " + msg + " --flag").code, 0);
    ASSERT_EQ(Out(a, key,
                  "usage track --user " + user + " --agent " + agent + " --chat " + chat +
                      " --model m --input-tokens 5 --output-tokens 6 --input-cost 7")
                  .code,
              0);
    ASSERT_EQ(
        Out(a, key,
            "memory upsert --user " + user + " --key k --content c --vector " + dir.sub("v.json"))
            .code,
        0);
    ASSERT_EQ(
        Out(a, key, "memory search --user " + user + " --vector " + dir.sub("v.json") + " --touch")
            .code,
        0);
  }
  ASSERT_EQ(Out(a, key, "quotas set --tenant " + tenant + " --type tokens --limit 100").code, 0);
  ASSERT_EQ(Out(a, key, "limits put --scope global --type requests_per_day --value 9").code, 0);
  ASSERT_EQ(Out(a, key, "admin_config_put --key k --data '{\"x\":1}'").code, 0);

  ASSERT_EQ(Out(a, key, "export --out " + dir.sub("one.jsonl")).code, 0);
  CtlRun im = Agentctl(b, b.Key("service"), "import " + dir.sub("one.jsonl"));
  ASSERT_EQ(im.code, 0) << im.out;
  ASSERT_EQ(Out(b, b.Key("service"), "export --out " + dir.sub("two.jsonl")).code, 0);
  std::string one = ReadAll(dir.sub("one.jsonl"));
  // b's own two initial keys are the only lines a's export cannot hold.
  std::istringstream lines(ReadAll(dir.sub("two.jsonl")));
  std::string line, two;
  size_t own_keys = 0;
  while (std::getline(lines, line)) {
    if (line.find("\"type\":\"api_keys\"") != std::string::npos &&
        one.find(line) == std::string::npos) {
      ++own_keys;
      continue;
    }
    two += line + "\n";
  }
  EXPECT_EQ(own_keys, 2u);
  EXPECT_EQ(two, one);
  for (const char* type :
       {"tenants", "users", "agents", "user_agents", "chats", "messages", "votes", "user_memory",
        "admin_config", "usage_logs", "quotas", "rate_limit_configs"})
    EXPECT_NE(one.find(std::string("\"type\":\"") + type + "\""), std::string::npos) << type;
  EXPECT_NE(one.find("\"access_count\":1"), std::string::npos) << "touches are exported";
}

INSTANTIATE_TEST_SUITE_P(Metrics, RoundTrip, ::testing::Values("cosine", "l2"));

}  // namespace
}  // namespace agentstore::testing
