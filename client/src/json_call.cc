// Client::CallJson's machinery: the protocol schema (records.fbs + ops.fbs + protocol.fbs,
// embedded at build time) loaded once into a FlatBuffers parser, which turns JSON into
// argument tables and responses into JSON. One schema, so any operation added to the op
// table and the protocol is reachable without new client code.
#include "json_call.h"

#include <flatbuffers/idl.h>
#include <flatbuffers/reflection.h>

#include <mutex>

namespace agentstore::internal {
namespace {

constexpr char kSchema[] =
#include "protocol_schema.inc"
    ;

struct SchemaState {
  std::mutex mu;  // the parser keeps state between parses
  flatbuffers::Parser parser;
  std::string bfbs;  // the schema in binary form, for reflection::CopyTable
  std::string error;
  SchemaState() {
    parser.opts.strict_json = true;
    parser.opts.indent_step = -1;
    // false / 0 answers (LimitAnswer.allowed) must be printed, not left out as defaults.
    parser.opts.output_default_scalars_in_json = true;
    if (!parser.Parse(kSchema)) {
      error = parser.error_;
      return;
    }
    parser.Serialize();
    bfbs.assign(reinterpret_cast<const char*>(parser.builder_.GetBufferPointer()),
                parser.builder_.GetSize());
  }
};

SchemaState& State() {
  static SchemaState* s = new SchemaState();  // never destroyed: used by reader threads
  return *s;
}

}  // namespace

std::string_view ProtocolSchemaText() { return kSchema; }

Result<proto::Op> OpByName(std::string_view name) {
  const char* const* names = proto::EnumNamesOp();
  for (int i = 0; names[i]; ++i)
    if (name == names[i]) return static_cast<proto::Op>(i);
  return Status::InvalidArgument("unknown operation '" + std::string(name) + "'");
}

Result<JsonArgs> ParseJsonArgs(std::string_view args_type, std::string_view json) {
  JsonArgs out;
  if (args_type.empty()) return out;
  std::string member(args_type);
  for (auto& c : member)
    if (c == '.') c = '_';
  const char* const* names = proto::EnumNamesArgs();
  for (int i = 1; names[i]; ++i)
    if (member == names[i]) out.type = static_cast<proto::Args>(i);
  if (out.type == proto::Args::NONE)
    return Status::InvalidArgument("'" + std::string(args_type) + "' is no argument shape");
  SchemaState& s = State();
  std::lock_guard lock(s.mu);
  if (!s.error.empty()) return Status::Corruption("embedded protocol schema: " + s.error);
  // Resolve the name as the schema does (relative to agentstore.proto).
  std::string full(args_type);
  if (full.find('.') == std::string::npos) full = "agentstore.proto." + full;
  if (!s.parser.SetRootType(full.c_str()))
    return Status::InvalidArgument("no table '" + full + "' in the protocol schema");
  std::string text(json);
  if (!s.parser.Parse(text.c_str()))
    return Status::InvalidArgument("arguments: " + s.parser.error_);
  out.buffer.assign(reinterpret_cast<const char*>(s.parser.builder_.GetBufferPointer()),
                    s.parser.builder_.GetSize());
  out.table = full;
  return out;
}

flatbuffers::Offset<void> CopyJsonArgs(flatbuffers::FlatBufferBuilder& fbb, const JsonArgs& a) {
  SchemaState& s = State();
  const reflection::Schema* schema = reflection::GetSchema(s.bfbs.data());
  const reflection::Object* obj = schema->objects()->LookupByKey(a.table.c_str());
  const auto* table = flatbuffers::GetAnyRoot(reinterpret_cast<const uint8_t*>(a.buffer.data()));
  return flatbuffers::CopyTable(fbb, *schema, *obj, *table).Union();
}

Result<std::string> ResponseJson(const proto::Response* r) {
  SchemaState& s = State();
  std::lock_guard lock(s.mu);
  if (!s.error.empty()) return Status::Corruption("embedded protocol schema: " + s.error);
  std::string text;
  if (!flatbuffers::GenerateTextFromTable(s.parser, r, "agentstore.proto.Response", &text))
    return Status::Corruption("the answer cannot be printed as JSON");
  return text;
}

}  // namespace agentstore::internal
