// The operation table's storage, built from the AGENTSTORE_OPERATIONS declaration.
#include "agentstore/engine/operations.h"

namespace agentstore {
namespace {
constexpr OperationInfo kOperations[] = {
#define AS_OP_INFO(name, kind, roles, implemented, summary) \
  {Op::name, #name, OpKind::kind, static_cast<uint8_t>(roles), implemented, summary},
    AGENTSTORE_OPERATIONS(AS_OP_INFO)
#undef AS_OP_INFO
};
}  // namespace

std::span<const OperationInfo> Operations() { return kOperations; }
const OperationInfo& OperationOf(Op op) { return kOperations[static_cast<size_t>(op)]; }

}  // namespace agentstore
