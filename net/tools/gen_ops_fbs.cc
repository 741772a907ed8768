// Build tool: writes the protocol's `Op` enum (ops.fbs) from AGENTSTORE_OPERATIONS, so
// the wire numbering follows the one operation table and cannot drift from it.
#include <cstdio>

#include "agentstore/engine/operations.h"

int main() {
  std::printf("// Generated from engine/include/agentstore/engine/operations.h. Do not edit.\n");
  std::printf("namespace agentstore.proto;\n\nenum Op : ushort {\n");
  for (const auto& op : agentstore::Operations())
    std::printf("  %.*s = %d,\n", static_cast<int>(op.name.size()), op.name.data(),
                static_cast<int>(op.op));
  std::printf("}\n");
  return 0;
}
