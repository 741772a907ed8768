// Build tool: writes the protocol's `Op` enum (ops.fbs) from AGENTSTORE_OPERATIONS, so
// the wire numbering follows the one operation table and cannot drift from it.
#include <cstdio>
#include <string>

#include "agentstore/engine/operations.h"

static std::string Roles(uint8_t r) {
  std::string out;
  if (r & agentstore::kService) out += "service ";
  if (r & agentstore::kAdmin) out += "admin ";
  if (r & agentstore::kUser) out += "user ";
  if (out.empty()) return "anyone (unauthenticated)";
  out.pop_back();
  return out;
}

// With --markdown: the operation table for docs/protocol.md.
static int Markdown() {
  std::printf(
      "| # | operation | kind | roles | built | what it does |\n|---|---|---|---|---|---|\n");
  for (const auto& op : agentstore::Operations())
    std::printf("| %d | `%.*s` | %s | %s | %s | %.*s |\n", static_cast<int>(op.op),
                static_cast<int>(op.name.size()), op.name.data(),
                op.kind == agentstore::OpKind::kRead ? "read" : "write", Roles(op.roles).c_str(),
                op.implemented ? "yes" : "not_implemented", static_cast<int>(op.summary.size()),
                op.summary.data());
  return 0;
}

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--markdown") return Markdown();
  std::printf("// Generated from engine/include/agentstore/engine/operations.h. Do not edit.\n");
  std::printf("namespace agentstore.proto;\n\nenum Op : ushort {\n");
  for (const auto& op : agentstore::Operations())
    std::printf("  %.*s = %d,\n", static_cast<int>(op.name.size()), op.name.data(),
                static_cast<int>(op.op));
  std::printf("}\n");
  return 0;
}
