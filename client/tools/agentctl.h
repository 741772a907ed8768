// What agentctl's two halves share: the hand-kept conveniences (agentctl.cc) and the
// commands generated from the op table and the protocol schema (op_commands.cc):
// global flags, connecting, exit statuses and the one way records are printed.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "agentstore/client.h"

namespace agentctl {

using Json = nlohmann::ordered_json;

// Exit statuses (README, `agentctl --help`).
enum Exit : int {
  kOk = 0,
  kError = 1,   // the server answered an error, or a file could not be read/written
  kUsage = 2,   // bad command line: unknown command or flag, malformed value
  kDenied = 3,  // answered, but the answer is "no": a limit check denied, a quota exceeded
};

struct Globals {
  std::string addr;
  std::string key;
  bool json = false;
  std::string get;  // --get FIELD: print only this field of the answer
  int exit_code = kOk;
};

[[noreturn]] void Fail(const agentstore::Status& s);
[[noreturn]] void Fail(const std::string& usage_error);

agentstore::Client Connect(const Globals& g);

// Microseconds since the epoch as ISO-8601 UTC ("" for 0: unset).
std::string IsoTime(int64_t micros);
// Whether a field holds a time (int64 micros): the data model's *_at / *_ts names.
bool IsTimeField(const std::string& name);

// Prints an answer: --get FIELD, JSON with --json, else a table (an array of objects),
// or aligned "field  value" lines (one object). `cols` chooses table columns (empty:
// chosen from the records). Sets g.exit_code to kDenied for a denied/exceeded answer.
void PrintAnswer(Globals& g, const Json& answer, const std::vector<std::string>& cols = {});

// Adds one command per operation of the op table not already a command of `app`, with
// flags from the operation's argument table in the protocol schema.
void AddOperationCommands(CLI::App& app, Globals& g);

// Names the first word of argv that is not a command (exit kUsage), before CLI11 parses.
void CheckCommandWords(const CLI::App& app, int argc, char** argv);

}  // namespace agentctl
