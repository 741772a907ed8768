// The protocol schema at run time: requests built from JSON and answers printed as JSON,
// for Client::CallJson (tools that follow the op table rather than typed calls).
#pragma once

#include <flatbuffers/flatbuffers.h>

#include <string>
#include <string_view>

#include "agentstore/common/status.h"
#include "protocol_generated.h"

namespace agentstore::internal {

// A member of the Args union parsed from JSON, as a standalone FlatBuffer.
struct JsonArgs {
  proto::Args type = proto::Args::NONE;
  std::string buffer;
  std::string table;  // the table's full schema name
};

// `args_type` is an Args member by schema name ("IdArgs", "agentstore.fb.User"); empty
// for none.
Result<JsonArgs> ParseJsonArgs(std::string_view args_type, std::string_view json);
// Copies the parsed table into `fbb` (the request being built).
flatbuffers::Offset<void> CopyJsonArgs(flatbuffers::FlatBufferBuilder& fbb, const JsonArgs& a);
// The response as FlatBuffers JSON.
Result<std::string> ResponseJson(const proto::Response* r);
// The op's number by its op-table name.
Result<proto::Op> OpByName(std::string_view name);
// The embedded schema text.
std::string_view ProtocolSchemaText();

}  // namespace agentstore::internal
