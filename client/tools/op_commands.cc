// agentctl's generated half: one command per operation of the op table, named as the
// operation (`agentctl tenant_create`, `agentctl user_agent_list`), whose flags, types,
// enum values and help come from the operation's argument table in the protocol schema
// (read at run time from the schema the client embeds), and which arguments it takes from
// net/schema/op_shapes.json (embedded too). An operation added to the op table,
// protocol.fbs and op_shapes.json appears here with no CLI edit.
#include <flatbuffers/idl.h>
#include <time.h>

#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "agentctl.h"
#include "agentstore/common/record_json.h"
#include "agentstore/engine/operations.h"

namespace agentctl {

using agentstore::Client;
namespace fb = agentstore::fb;

namespace {

// ---------------------------------------------------------------- the schema

const flatbuffers::Parser& Schema() {
  static flatbuffers::Parser* p = [] {
    auto* parser = new flatbuffers::Parser();
    parser->opts.strict_json = true;  // records printed through the schema are JSON
    parser->opts.indent_step = -1;
    std::string text(Client::ProtocolSchema());
    if (!parser->Parse(text.c_str())) {
      std::cerr << "agentctl: the embedded protocol schema does not parse: " << parser->error_
                << "\n";
      std::exit(kError);
    }
    return parser;
  }();
  return *p;
}

const flatbuffers::StructDef* Table(const std::string& name) {
  std::string full = name.find('.') == std::string::npos ? "agentstore.proto." + name : name;
  return Schema().structs_.Lookup(full);
}

// What each operation takes (Args union members, first match wins) and answers:
// net/schema/op_shapes.json, the one declaration the TypeScript client follows too,
// embedded at build time.
struct OpShape {
  std::vector<std::string> args;
  std::string answer;  // record:T | records:T | page:T | a named shape
};
const std::map<std::string, OpShape>& Shapes() {
  static const auto* shapes = [] {
    auto* m = new std::map<std::string, OpShape>();
    const auto j = nlohmann::json::parse(std::string_view(
#include "agentstore/proto/op_shapes.inc"
        ));
    for (const auto& [op, d] : j.at("ops").items())
      (*m)[op] = {d.at("args").get<std::vector<std::string>>(), d.at("answer").get<std::string>()};
    return m;
  }();
  return *shapes;
}

const OpShape* ShapeEntry(const std::string& op) {
  auto it = Shapes().find(op);
  return it == Shapes().end() ? nullptr : &it->second;
}

// The record table whose blobs an operation answers: T of record:T / records:T / page:T,
// and the first record of the named shapes that carry records.
std::string RecordTableOf(const std::string& op) {
  const OpShape* s = ShapeEntry(op);
  if (!s) return "";
  if (auto colon = s->answer.find(':'); colon != std::string::npos) {
    std::string kind = s->answer.substr(0, colon);
    if (kind == "record" || kind == "records" || kind == "page") return s->answer.substr(colon + 1);
    return "";
  }
  static const std::map<std::string, std::string> kNamed = {{"message_append", "Message"},
                                                            {"track", "UserAgent"},
                                                            {"new_key", "ApiKey"},
                                                            {"hits", "UserMemory"}};
  auto it = kNamed.find(s->answer);
  return it == kNamed.end() ? "" : it->second;
}

// The argument tables of an operation: its declared Args members, as schema names (a
// protocol table, else a record table).
std::vector<std::string> ShapesOf(const std::string& op) {
  std::vector<std::string> out;
  if (const OpShape* s = ShapeEntry(op))
    for (const auto& a : s->args) out.push_back(Table(a) ? a : "agentstore.fb." + a);
  return out;
}

// ---------------------------------------------------------------- flags

bool IsUuid(const flatbuffers::Type& t) {
  return t.base_type == flatbuffers::BASE_TYPE_STRUCT && t.struct_def && t.struct_def->fixed &&
         t.struct_def->name == "Uuid";
}

// One flag: a field of the argument table (or of a table nested in it, e.g.
// TrackUsageArgs.call), how to read it and where it goes.
struct Flag {
  std::string shape;  // which argument table
  std::vector<std::string> path;
  const flatbuffers::FieldDef* field;
  std::vector<std::string> values;  // as given
  CLI::Option* option = nullptr;
};

std::string TypeText(const flatbuffers::Type& t) {
  using namespace flatbuffers;  // NOLINT
  if (IsUuid(t)) return "uuid";
  if (t.enum_def && t.base_type != BASE_TYPE_UNION && t.base_type != BASE_TYPE_UTYPE &&
      t.base_type != BASE_TYPE_VECTOR) {
    std::string s = "enum:";
    for (const auto* v : t.enum_def->Vals()) s += (s.back() == ':' ? " " : " | ") + v->name;
    return s;
  }
  switch (t.base_type) {
    case BASE_TYPE_BOOL:
      return "bool";
    case BASE_TYPE_FLOAT:
    case BASE_TYPE_DOUBLE:
      return "number";
    case BASE_TYPE_STRING:
      return "string";
    case BASE_TYPE_VECTOR:
      if (t.element == BASE_TYPE_STRING) return "string, repeatable";
      if (t.element == BASE_TYPE_STRUCT && t.struct_def && t.struct_def->name == "Uuid")
        return "uuid, repeatable";
      if (t.element == BASE_TYPE_FLOAT) return "vector: JSON array of numbers, or @FILE";
      return "JSON array";
    default:
      if (!IsInteger(t.base_type)) return "value";
      return t.base_type == BASE_TYPE_LONG || t.base_type == BASE_TYPE_ULONG ? "integer (64-bit)"
                                                                             : "integer";
  }
}

bool Flaggable(const flatbuffers::Type& t) {
  using namespace flatbuffers;  // NOLINT
  if (t.base_type == BASE_TYPE_UNION || t.base_type == BASE_TYPE_UTYPE) return false;
  if (t.base_type == BASE_TYPE_STRUCT) return IsUuid(t);
  return true;
}

std::string FlagName(const std::string& field) {
  std::string s = field;
  for (auto& c : s)
    if (c == '_') c = '-';
  return s;
}

Json UuidJson(const std::string& text, const std::string& flag) {
  auto id = agentstore::Uuid::Parse(text);
  if (!id) Fail("--" + flag + " is not a UUID: '" + text + "'");
  Json b = Json::array();
  for (uint8_t x : id->bytes) b.push_back(static_cast<int>(x));
  return Json{{"b", b}};
}

std::string ReadArg(const std::string& v) {
  if (v.empty() || v[0] != '@') return v;
  std::string path = v.substr(1);
  std::ifstream f(path);
  if (path == "-") return std::string(std::istreambuf_iterator<char>(std::cin), {});
  if (!f) Fail("cannot read " + path);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// A flag's value in FlatBuffers JSON.
Json FlagValue(const Flag& f) {
  using namespace flatbuffers;  // NOLINT
  const Type& t = f.field->value.type;
  std::string name = FlagName(f.field->name);
  const std::string& v = f.values.empty() ? std::string() : f.values.back();
  if (IsUuid(t)) return UuidJson(v, name);
  if (t.base_type == BASE_TYPE_VECTOR) {
    Json arr = Json::array();
    if (t.element == BASE_TYPE_STRING) {
      for (const auto& x : f.values) arr.push_back(x);
    } else if (t.element == BASE_TYPE_STRUCT) {
      for (const auto& x : f.values) arr.push_back(UuidJson(x, name));
    } else {
      Json j = Json::parse(ReadArg(v), nullptr, false);
      if (!j.is_discarded() && j.is_object())
        j = j.contains("embedding") ? j["embedding"] : j.contains("vector") ? j["vector"] : Json();
      if (j.is_discarded() || !j.is_array())
        Fail("--" + name + ": expected a JSON array (or @FILE holding one)");
      arr = j;
    }
    return arr;
  }
  if (t.base_type == BASE_TYPE_BOOL) {
    if (v.empty() || v == "true" || v == "1") return true;
    if (v == "false" || v == "0") return false;
    Fail("--" + name + " takes true or false, not '" + v + "'");
  }
  if (t.enum_def) {
    for (const auto* e : t.enum_def->Vals())
      if (e->name == v) return v;
    Fail("--" + name + " must be one of:" + TypeText(t).substr(5) + " (not '" + v + "')");
  }
  if (t.base_type == BASE_TYPE_STRING) return ReadArg(v);
  // numbers: checked here so the message names the flag
  try {
    size_t used = 0;
    if (IsFloat(t.base_type)) {
      double d = std::stod(v, &used);
      if (used == v.size()) return d;
    } else {
      long long n = std::stoll(v, &used);
      if (used == v.size()) return n;
    }
  } catch (const std::exception&) {
  }
  Fail("--" + name + " takes a number, not '" + v + "'");
}

// Converts a user's --args JSON into the schema's form: UUID text to Uuid structs, JSON
// objects given for string (JSON-typed) fields to their text.
void FixArgs(const flatbuffers::StructDef& table, Json& j) {
  using namespace flatbuffers;  // NOLINT
  if (!j.is_object()) return;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const FieldDef* f = table.fields.Lookup(it.key());
    if (!f) continue;
    const Type& t = f->value.type;
    if (IsUuid(t) && it->is_string()) {
      *it = UuidJson(it->get<std::string>(), it.key());
    } else if (t.base_type == BASE_TYPE_VECTOR && t.element == BASE_TYPE_STRUCT && it->is_array()) {
      for (auto& x : *it)
        if (x.is_string()) x = UuidJson(x.get<std::string>(), it.key());
    } else if (t.base_type == BASE_TYPE_STRING && (it->is_object() || it->is_array())) {
      *it = it->dump();
    } else if (t.base_type == BASE_TYPE_STRUCT && t.struct_def && !t.struct_def->fixed) {
      FixArgs(*t.struct_def, *it);
    }
  }
}

// ---------------------------------------------------------------- answers

// {"b":[16 bytes]} -> UUID text, everywhere in `j`.
void UuidsToText(Json& j) {
  if (j.is_object()) {
    if (j.size() == 1 && j.contains("b") && j["b"].is_array() && j["b"].size() == 16) {
      uint8_t bytes[16];
      for (size_t i = 0; i < 16; ++i) bytes[i] = j["b"][i].get<uint8_t>();
      j = agentstore::Uuid::FromBytes(bytes).ToString();
      return;
    }
    for (auto& [k, v] : j.items()) UuidsToText(v);
  } else if (j.is_array()) {
    for (auto& v : j) UuidsToText(v);
  }
}

template <typename T>
std::optional<std::string> As(const std::string& bytes) {
  flatbuffers::Verifier v(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  if (!v.VerifyBuffer<T>(nullptr)) return std::nullopt;
  return agentstore::RecordToJson(*flatbuffers::GetRoot<T>(bytes.data()));
}

// The record table of a record type's name ("users": User), for record_export's answer.
std::string TableOfTypeName(const std::string& name) {
  using agentstore::RecordType;
  auto t = agentstore::RecordTypeFromName(name);
  if (!t) return "";
  switch (*t) {
    case RecordType::kTenant:
      return "Tenant";
    case RecordType::kUser:
      return "User";
    case RecordType::kAgent:
      return "Agent";
    case RecordType::kUserAgent:
      return "UserAgent";
    case RecordType::kChat:
      return "Chat";
    case RecordType::kMessage:
      return "Message";
    case RecordType::kVote:
      return "Vote";
    case RecordType::kAdminConfig:
      return "AdminConfig";
    case RecordType::kApiKey:
      return "ApiKey";
    case RecordType::kUserMemory:
      return "UserMemory";
    case RecordType::kUsageLog:
      return "UsageLog";
    case RecordType::kRateLimitConfig:
      return "RateLimitConfig";
    case RecordType::kQuota:
      return "Quota";
    case RecordType::kUserUsageRollup:
    case RecordType::kTenantUsageRollup:
      return "UsageRollup";
  }
  return "";
}

// A JSON text as JSON (the text itself when it does not parse).
Json TextJson(const std::string& text) {
  Json j = Json::parse(text, nullptr, false);
  return j.is_discarded() ? Json(text) : j;
}

// A record blob as the data model's JSON (the record field tables), or through the
// schema for a record type agentctl has no field table for.
Json BlobJson(const Json& blob, const std::string& table) {
  std::string bytes;
  if (blob.is_object() && blob.contains("data"))
    for (const auto& b : blob["data"]) bytes.push_back(static_cast<char>(b.get<int>()));
  if (table == "json") return TextJson(bytes);  // a collection record: its JSON text
  std::optional<std::string> text;
  if (table == "Tenant") text = As<fb::Tenant>(bytes);
  if (table == "User") text = As<fb::User>(bytes);
  if (table == "Agent") text = As<fb::Agent>(bytes);
  if (table == "UserAgent") text = As<fb::UserAgent>(bytes);
  if (table == "Chat") text = As<fb::Chat>(bytes);
  if (table == "Message") text = As<fb::Message>(bytes);
  if (table == "Vote") text = As<fb::Vote>(bytes);
  if (table == "AdminConfig") text = As<fb::AdminConfig>(bytes);
  if (table == "ApiKey") text = As<fb::ApiKey>(bytes);
  if (table == "UserMemory") text = As<fb::UserMemory>(bytes);
  if (table == "UsageLog") text = As<fb::UsageLog>(bytes);
  if (table == "RateLimitConfig") text = As<fb::RateLimitConfig>(bytes);
  if (table == "Quota") text = As<fb::Quota>(bytes);
  if (table == "UsageRollup") text = As<fb::UsageRollup>(bytes);
  if (text) return Json::parse(*text);
  std::string out;
  // 8-aligned copy: FlatBuffers reads scalars in place.
  std::vector<uint64_t> aligned((bytes.size() + 7) / 8);
  memcpy(aligned.data(), bytes.data(), bytes.size());
  if (!table.empty() && Table("agentstore.fb." + table) &&
      flatbuffers::GenerateTextFromTable(Schema(),
                                         flatbuffers::GetRoot<flatbuffers::Table>(aligned.data()),
                                         "agentstore.fb." + table, &out)) {
    Json j = Json::parse(out, nullptr, false);
    UuidsToText(j);
    return j;
  }
  return Json{{"bytes", bytes.size()}};
}

// A response (FlatBuffers JSON) as what agentctl prints: records decoded, UUIDs as text.
// `args` are the request's arguments (record_export's records are of the type it names).
Json AnswerOf(const std::string& op, const std::string& response_json, const Json& args) {
  Json r = Json::parse(response_json, nullptr, false);
  if (r.is_discarded()) Fail(agentstore::Status::Corruption("unreadable answer"));
  std::string type = r.value("result_type", "NONE");
  Json res = r.contains("result") ? r["result"] : Json::object();
  std::string table = RecordTableOf(op);
  bool listing = op.size() > 5 && op.substr(op.size() - 5) == "_list";
  if (op == "record_export") {
    listing = true;
    table = args.contains("collection") ? "json"
            : args.contains("type") && args["type"].is_string()
                ? TableOfTypeName(args["type"].get<std::string>())
                : "";
  }
  if (type == "JsonRecords") {
    // Collection records and declarations, each a JSON text.
    Json items = Json::array();
    if (res.contains("items"))
      for (const auto& text : res["items"])
        items.push_back(text.is_string() ? TextJson(text.get<std::string>()) : text);
    const OpShape* shape = ShapeEntry(op);
    if (shape && shape->answer == "json" && items.size() == 1) return items[0];
    if (res.contains("next_cursor"))
      return Json{{"items", items}, {"next_cursor", res["next_cursor"]}};
    return items;
  }
  if (type == "Records") {
    Json items = Json::array();
    const Json& blobs = res.contains("items") ? res["items"] : Json::array();
    // Operations that answer several record types (message_append: message, chat;
    // track_agent_usage: user_agent, log, quotas) say so here.
    for (size_t i = 0; i < blobs.size(); ++i) {
      std::string t = table;
      if (op == "message_append" && i == 1) t = "Chat";
      if (op == "track_agent_usage") t = i == 0 ? "UserAgent" : i == 1 ? "UsageLog" : "Quota";
      items.push_back(BlobJson(blobs[i], t));
    }
    if (op == "track_agent_usage" && items.size() >= 2) {
      Json out = {{"user_agent", items[0]}, {"log", items[1]}, {"quotas", Json::array()}};
      for (size_t i = 2; i < items.size(); ++i) out["quotas"].push_back(items[i]);
      return out;
    }
    if (op == "message_append" && items.size() == 2)
      return Json{{"message", items[0]}, {"chat", items[1]}};
    if (!listing && items.size() == 1 && !res.contains("next_cursor")) return items[0];
    if (res.contains("next_cursor"))
      return Json{{"items", items}, {"next_cursor", res["next_cursor"]}};
    return items;
  }
  if (type == "MemoryHits") {
    Json hits = Json::array();
    const Json& blobs = res.contains("items") ? res["items"] : Json::array();
    for (size_t i = 0; i < blobs.size(); ++i) {
      Json h = {{"distance", res["distances"][i]}, {"score", res["scores"][i]}};
      h["memory"] = BlobJson(blobs[i], "UserMemory");
      hits.push_back(h);
    }
    return hits;
  }
  if (type == "NewKey") {
    Json k = BlobJson(res["key"], "ApiKey");
    k["secret"] = res["secret"];
    return k;
  }
  UuidsToText(res);
  if (type == "NONE") return Json{{"ok", true}};
  return res;
}

// ---------------------------------------------------------------- commands

struct OpCommand {
  std::string op;
  std::vector<std::string> shapes;
  std::vector<Flag> flags;
  std::string args_json;  // --args
};

void AddFlags(CLI::App* sub, OpCommand& cmd, const std::string& shape,
              const flatbuffers::StructDef& table, std::vector<std::string> path) {
  for (const auto* f : table.fields.vec) {
    if (f->deprecated) continue;
    const auto& t = f->value.type;
    if (t.base_type == flatbuffers::BASE_TYPE_STRUCT && t.struct_def && !t.struct_def->fixed &&
        path.empty()) {
      auto sub_path = path;
      sub_path.push_back(f->name);
      AddFlags(sub, cmd, shape, *t.struct_def, sub_path);  // e.g. TrackUsageArgs.call
      continue;
    }
    if (!Flaggable(t)) continue;
    // Shapes of one operation share a flag of the same name (tenant_get: IdArgs.id).
    bool shared = false;
    for (auto& other : cmd.flags)
      if (other.field->name == f->name) shared = true;
    Flag flag{shape, path, f, {}, nullptr};
    if (shared) {
      cmd.flags.push_back(flag);
      continue;
    }
    std::string dash = FlagName(f->name);
    std::string names = "--" + dash;
    if (dash != f->name) names += ",--" + f->name;
    std::string desc = TypeText(t);
    if (!f->value.constant.empty() && f->value.constant != "0" && IsScalar(t.base_type) &&
        !f->IsOptional()) {
      // As a value the flag takes: an enum's name, a bool's true / false.
      std::string value = f->value.constant;
      if (t.base_type == flatbuffers::BASE_TYPE_BOOL) value = value == "1" ? "true" : value;
      if (t.enum_def)
        if (const auto* e = t.enum_def->FindByValue(value)) value = e->name;
      desc += ", default " + value;
    }
    if (!f->doc_comment.empty()) desc += " -" + f->doc_comment[0];
    cmd.flags.push_back(flag);
    cmd.flags.back().option = sub->add_option(names)->description(desc);
    // A `json` field (coll_put's record, record_import's) shares its name with
    // agentctl's own --json: given a value it is the field, given none the output flag.
    if (t.base_type == flatbuffers::BASE_TYPE_BOOL || f->name == "json")
      cmd.flags.back().option->expected(0, 1);
    // "string, repeatable" / "uuid, repeatable": `--tags a --tags b` gives both.
    if (t.base_type == flatbuffers::BASE_TYPE_VECTOR &&
        (t.element == flatbuffers::BASE_TYPE_STRING || t.element == flatbuffers::BASE_TYPE_STRUCT))
      cmd.flags.back().option->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  }
}

void Run(Globals& g, OpCommand& cmd) {
  // Each flag's value (options are shared across shapes by name).
  std::map<std::string, std::vector<std::string>> given;
  std::map<std::string, bool> seen;
  for (auto& f : cmd.flags) {
    if (!f.option) continue;
    if (f.option->count() == 0) continue;
    auto res = f.option->results();
    if (f.field->name == "json" && f.field->value.type.base_type == flatbuffers::BASE_TYPE_STRING &&
        (res.empty() || (res.size() == 1 && res[0].empty()))) {
      g.json = true;  // `--json` with no value: print JSON (see AddFlags)
      continue;
    }
    seen[f.field->name] = true;
    given[f.field->name] = res.empty() ? std::vector<std::string>{""} : res;
  }
  // The first shape holding every given flag.
  std::string shape;
  for (const auto& s : cmd.shapes) {
    bool all = true;
    for (const auto& [name, _] : seen) {
      bool has = false;
      for (const auto& f : cmd.flags)
        if (f.shape == s && f.field->name == name) has = true;
      all = all && has;
    }
    if (all) {
      shape = s;
      break;
    }
  }
  if (shape.empty() && !cmd.shapes.empty()) {
    if (!seen.empty()) Fail("these flags do not go together; see agentctl " + cmd.op + " --help");
    shape = cmd.shapes[0];
  }
  Json args = Json::object();
  if (!cmd.args_json.empty()) {
    args = Json::parse(ReadArg(cmd.args_json), nullptr, false);
    if (args.is_discarded() || !args.is_object()) Fail("--args takes a JSON object (or @FILE)");
    if (const auto* t = Table(shape)) FixArgs(*t, args);
  }
  for (auto& f : cmd.flags) {
    if (f.shape != shape || !given.count(f.field->name)) continue;
    f.values = given[f.field->name];
    Json* at = &args;
    for (const auto& p : f.path) at = &(*at)[p];
    (*at)[f.field->name] = FlagValue(f);
  }
  Client c = Connect(g);
  auto r = c.CallJson(cmd.op, shape, shape.empty() ? "" : args.dump()).get();
  if (!r.ok()) Fail(r.status());
  PrintAnswer(g, AnswerOf(cmd.op, *r, args));
}

}  // namespace

void AddOperationCommands(CLI::App& app, Globals& g) {
  auto* group_name = "Operations (one per op-table entry; flags from its argument table)";
  for (const agentstore::OperationInfo& info : agentstore::Operations()) {
    std::string op(info.name);
    if (op == "authenticate") continue;  // every connection does it
    // A hand-kept command of the same name wins (status).
    bool taken = false;
    for (const auto* sub : app.get_subcommands([](CLI::App*) { return true; }))
      if (sub->get_name() == op) taken = true;
    if (taken) continue;
    // Owned by a static for the process's lifetime (CLI11's callbacks hold plain pointers
    // to it): a bare `new` was reported by LeakSanitizer once main returned.
    static std::vector<std::unique_ptr<OpCommand>> commands;
    auto* cmd = commands.emplace_back(new OpCommand{op, ShapesOf(op), {}, {}}).get();
    std::string summary(info.summary);
    std::string roles;
    if (info.roles & agentstore::kService) roles += " service";
    if (info.roles & agentstore::kAdmin) roles += " admin";
    if (info.roles & agentstore::kUser) roles += " user";
    if (!info.implemented) summary += " (not implemented yet)";
    auto* sub = app.add_subcommand(op, summary);
    sub->group(group_name);
    std::string dashed = FlagName(op);
    if (dashed != op) sub->alias(dashed);
    std::string shapes;
    for (const auto& s : cmd->shapes) {
      shapes += (shapes.empty() ? "" : " or ") + s;
      if (const auto* t = Table(s)) AddFlags(sub, *cmd, s, *t, {});
    }
    sub->add_option("--args", cmd->args_json,
                    "the arguments as one JSON object" +
                        (shapes.empty() ? std::string() : " (" + shapes + ")") +
                        ", or @FILE; flags override its fields");
    sub->footer(std::string(info.kind == agentstore::OpKind::kWrite ? "A write" : "A read") +
                "; keys:" + roles + ". Takes " +
                (shapes.empty() ? std::string("no arguments") : shapes) +
                " (net/schema/protocol.fbs). Times are microseconds since the epoch, money "
                "micro-USD; JSON-typed fields take JSON text.");
    sub->callback([&g, cmd] { Run(g, *cmd); });
  }
}

// ---------------------------------------------------------------- printing

std::string IsoTime(int64_t micros) {
  if (micros == 0) return "";
  time_t secs = static_cast<time_t>(micros / 1000000);
  int64_t frac = micros % 1000000;
  if (frac < 0) {
    frac += 1000000;
    --secs;
  }
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[64];
  size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, sizeof buf - n, ".%06lldZ", static_cast<long long>(frac));
  return buf;
}

bool IsTimeField(const std::string& name) {
  auto ends = [&](const char* s) {
    size_t n = strlen(s);
    return name.size() >= n && name.compare(name.size() - n, n, s) == 0;
  };
  return ends("_at") || ends("_ts") || name == "period_start" || name == "period_end";
}

namespace {

std::string Cell(const std::string& key, const Json& v, size_t max = 60) {
  std::string s;
  if (v.is_null()) return "";
  if (v.is_number_integer() && IsTimeField(key))
    s = IsoTime(v.get<int64_t>());
  else if (v.is_string())
    s = v.get<std::string>();
  else
    s = v.dump();
  if (s.size() > max) s = s.substr(0, max - 3) + "...";
  return s;
}

// Columns worth a table: short scalar fields, at most 8; ids first, one time last:
// created_at, or for records without it their first time field (a usage log's
// request_ts, a summary row's period_start).
std::vector<std::string> ChooseColumns(const Json& rows) {
  std::vector<std::string> cols;
  if (rows.empty() || !rows[0].is_object()) return cols;
  std::string time_col;
  if (rows[0].contains("created_at")) {
    time_col = "created_at";
  } else {
    for (const auto& [k, v] : rows[0].items())
      if (IsTimeField(k) && v.is_number_integer()) {
        time_col = k;
        break;
      }
  }
  std::vector<std::string> keys;
  if (rows[0].contains("id")) keys.push_back("id");
  for (const auto& [k, v] : rows[0].items())
    if (k != "id" && !IsTimeField(k)) keys.push_back(k);
  if (!time_col.empty()) keys.push_back(time_col);
  for (const auto& k : keys) {
    if (cols.size() == (time_col.empty() ? 8u : 7u) && k != time_col) continue;
    bool useful = false;
    for (const auto& r : rows) {
      const Json& x = r.contains(k) ? r[k] : Json();
      if (x.is_object() || x.is_array()) {
        useful = false;
        break;
      }
      if (!x.is_null() && !(x.is_string() && x.get<std::string>().empty())) useful = true;
    }
    if (useful) cols.push_back(k);
  }
  return cols;
}

// Search hits ({distance, score, memory}) as table rows: the memory found beside them.
Json HitRows(const Json& hits) {
  Json rows = Json::array();
  for (const auto& h : hits) {
    Json row = {{"distance", h["distance"]}, {"score", h["score"]}};
    const Json& m = h["memory"];
    for (const char* k : {"id", "memory_key", "memory_type", "importance_score"})
      if (m.contains(k)) row[k] = m[k];
    if (m.contains("memory_value") && m["memory_value"].is_object() &&
        m["memory_value"].contains("content"))
      row["content"] = m["memory_value"]["content"];
    rows.push_back(row);
  }
  return rows;
}

void PrintTable(const Json& rows, std::vector<std::string> cols) {
  if (rows.empty()) {
    std::cout << "(none)\n";
    return;
  }
  if (cols.empty()) cols = ChooseColumns(rows);
  std::vector<std::vector<std::string>> cells;
  std::vector<size_t> width;
  std::vector<std::string> header;
  for (auto c : cols) {
    for (auto& ch : c) ch = static_cast<char>(toupper(ch));
    header.push_back(c);
    width.push_back(c.size());
  }
  for (const auto& r : rows) {
    std::vector<std::string> line;
    for (size_t i = 0; i < cols.size(); ++i) {
      std::string s = Cell(cols[i], r.is_object() && r.contains(cols[i]) ? r[cols[i]] : Json());
      width[i] = std::max(width[i], s.size());
      line.push_back(s);
    }
    cells.push_back(line);
  }
  auto row = [&](const std::vector<std::string>& line) {
    std::string out;
    for (size_t i = 0; i < line.size(); ++i) {
      out += line[i];
      if (i + 1 < line.size()) out += std::string(width[i] - line[i].size() + 2, ' ');
    }
    std::cout << out << "\n";
  };
  row(header);
  for (const auto& line : cells) row(line);
}

void PrintObject(const Json& obj, const std::string& indent = "") {
  size_t w = 0;
  for (const auto& [k, v] : obj.items()) w = std::max(w, k.size());
  for (const auto& [k, v] : obj.items()) {
    if (v.is_array() && !v.empty() && v[0].is_object()) {
      std::cout << indent << k << ":\n";
      PrintTable(v, {});
      continue;
    }
    if (v.is_object() && !v.empty()) {
      std::cout << indent << k << ":\n";
      PrintObject(v, indent + "  ");
      continue;
    }
    std::cout << indent << k << std::string(w - k.size() + 2, ' ') << Cell(k, v, 200) << "\n";
  }
}

bool DeniedOrExceeded(const Json& j) {
  if (j.is_object()) {
    if (j.contains("allowed") && j["allowed"].is_boolean() && !j["allowed"].get<bool>())
      return true;
    if (j.contains("is_exceeded") && j["is_exceeded"].is_boolean() && j["is_exceeded"].get<bool>())
      return true;
    for (const auto& [k, v] : j.items())
      if (DeniedOrExceeded(v)) return true;
  } else if (j.is_array()) {
    for (const auto& v : j)
      if (DeniedOrExceeded(v)) return true;
  }
  return false;
}

}  // namespace

void PrintAnswer(Globals& g, const Json& answer, const std::vector<std::string>& cols) {
  if (DeniedOrExceeded(answer)) g.exit_code = kDenied;
  if (!g.get.empty()) {
    const Json* at = &answer;
    if (at->is_array()) {
      if (at->empty()) Fail(agentstore::Status::NotFound("no record to --get " + g.get + " from"));
      at = &(*at)[0];
    }
    if (at->is_object() && !at->contains(g.get) && at->contains("items") &&
        (*at)["items"].is_array() && !(*at)["items"].empty())  // a page: next_cursor, else items[0]
      at = &(*at)["items"][0];
    if (at->is_object() && !at->contains(g.get)) {
      // An answer of several records (message_append: message, chat): the first has it.
      for (const auto& [k, v] : at->items())
        if (v.is_object() && v.contains(g.get)) {
          at = &v;
          break;
        }
    }
    if (!at->is_object() || !at->contains(g.get)) Fail("the answer has no field '" + g.get + "'");
    const Json& v = (*at)[g.get];
    std::cout << (v.is_string() ? v.get<std::string>() : v.dump()) << "\n";
    return;
  }
  if (g.json) {
    std::cout << answer.dump(2) << "\n";
    return;
  }
  if (answer.is_array()) {
    bool hits = !answer.empty() && answer[0].is_object() && answer[0].contains("memory") &&
                answer[0]["memory"].is_object();
    return PrintTable(hits ? HitRows(answer) : answer, cols);
  }
  if (answer.is_object() && answer.contains("items") && answer["items"].is_array()) {
    PrintTable(answer["items"], cols);
    if (answer.contains("next_cursor") && answer["next_cursor"].is_string())
      std::cout << "next cursor: " << answer["next_cursor"].get<std::string>() << "\n";
    return;
  }
  if (answer.is_object()) return PrintObject(answer);
  std::cout << answer.dump() << "\n";
}

void CheckCommandWords(const CLI::App& app, int argc, char** argv) {
  const CLI::App* at = &app;
  std::string path = "agentctl";
  for (int i = 1; i < argc; ++i) {
    std::string w = argv[i];
    if (w == "--") return;
    if (!w.empty() && w[0] == '-') {
      // An option of this level: skip its value when it takes one.
      if (w.find('=') != std::string::npos) continue;
      const CLI::Option* o = nullptr;
      try {
        o = at->get_option_no_throw(w);
        if (!o) o = app.get_option_no_throw(w);
      } catch (...) {
      }
      if (o && o->get_type_size() != 0 && o->get_expected_min() > 0) ++i;
      continue;
    }
    auto subs = at->get_subcommands([](const CLI::App*) { return true; });
    if (subs.empty()) return;  // this level takes positionals
    const CLI::App* next = nullptr;
    for (const auto* s : subs)
      if (s->check_name(w)) next = s;
    if (!next) {
      std::cerr << "agentctl: unknown command '" << w << "'"
                << (at == &app ? "" : " for '" + path + "'") << " (see " << path << " --help)\n";
      std::exit(kUsage);
    }
    at = next;
    path += " " + w;
  }
}

}  // namespace agentctl
