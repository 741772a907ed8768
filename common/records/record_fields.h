// Field tables: each record type's fields declared once, as data: name, who may write
// it, and how to check it and convert it to and from JSON. Create-time validation,
// merge-patch updates, JSON export/import and the CLI's display all run from these
// tables, so a field's rules live in exactly one place (record_fields.cc).
#pragma once

#include <nlohmann/json.hpp>
#include <span>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "agentstore/common/query.h"
#include "agentstore/common/status.h"
#include "validate.h"

namespace agentstore::internal {

using Json = nlohmann::json;

// Who may set a field through a patch.
enum class Writable : uint8_t {
  kNever,       // identity, store-maintained (timestamps, counters) or set only at create
  kOwner,       // anyone who may write the record
  kPrivileged,  // service (and admin where admin writes the table), not a user
};

struct FieldContext {
  size_t max_json_bytes = 64 << 10;
  JsonMode json_mode = JsonMode::kMerge;
};

template <typename T>
struct FieldDef {
  const char* name;
  Writable writable;
  // Sets j[name] to the field's JSON value (null when unset).
  void (*to_json)(const T& record, Json& j, const FieldDef& def);
  // Assigns from a JSON value (merge-patching JSON-typed fields per ctx), validated.
  Status (*from_json)(T& record, const Json& value, const FieldDef& def, const FieldContext& ctx);
  // Validates the field's current value.
  Status (*check)(const T& record, const FieldDef& def, const FieldContext& ctx);
  int64_t lo = 0;  // numeric lower bound
  int64_t hi = 0;  // numeric upper bound, max bytes of text, or max list items
  double dlo = 0, dhi = 0;
  std::span<const std::string_view> enum_names;
  JsonShape shape = JsonShape::kAny;
};

// The field table of a record type (T is a generated object type such as fb::UserT).
template <typename T>
std::span<const FieldDef<T>> FieldsOf();

// By name, through a map built once per type (a record of the 55-field user_agent would
// otherwise cost ~1,500 name comparisons to import).
template <typename T>
const FieldDef<T>* FindField(std::string_view name) {
  static const auto by_name = [] {
    std::unordered_map<std::string_view, const FieldDef<T>*> m;
    for (const auto& f : FieldsOf<T>()) m.emplace(f.name, &f);
    return m;
  }();
  auto it = by_name.find(name);
  return it == by_name.end() ? nullptr : it->second;
}

// Validates every field of `record`.
template <typename T>
Status CheckRecord(const T& record, const FieldContext& ctx) {
  for (const auto& f : FieldsOf<T>()) AS_RETURN_IF_ERROR(f.check(record, f, ctx));
  return Status::OK();
}

template <typename T>
Json RecordToJson(const T& record) {
  Json j = Json::object();
  for (const auto& f : FieldsOf<T>()) f.to_json(record, j, f);
  return j;
}

// Applies a merge patch (a JSON object of field -> value). `privileged` callers may set
// kPrivileged fields. Store-maintained fields are refused.
template <typename T>
Status ApplyPatch(T& record, const Json& patch, bool privileged, const FieldContext& ctx) {
  if (!patch.is_object()) return Status::InvalidArgument("a patch must be a JSON object");
  for (auto it = patch.begin(); it != patch.end(); ++it) {
    const FieldDef<T>* f = FindField<T>(it.key());
    if (!f) return Status::InvalidArgument("unknown field '" + it.key() + "'");
    if (f->writable == Writable::kNever) {
      return Status::InvalidArgument("field '" + it.key() + "' cannot be changed by an update");
    }
    if (f->writable == Writable::kPrivileged && !privileged) {
      return Status::PermissionDenied("field '" + it.key() + "' may not be changed by this caller");
    }
    AS_RETURN_IF_ERROR(f->from_json(record, it.value(), *f, ctx));
  }
  return Status::OK();
}

// As RecordFromJson below, then `defaults(record)` (the defaults a create gives, which
// need no check), then the check of every field not read: each field is checked once (a
// field is checked as it is read). The import path.
template <typename T, typename Defaults>
Status RecordFromJsonChecked(T& record, const Json& j, const FieldContext& ctx,
                             Defaults&& defaults) {
  if (!j.is_object()) return Status::InvalidArgument("a record must be a JSON object");
  FieldContext replace = ctx;
  replace.json_mode = JsonMode::kReplace;
  std::span<const FieldDef<T>> fields = FieldsOf<T>();
  std::vector<bool> read(fields.size());
  for (auto it = j.begin(); it != j.end(); ++it) {
    const FieldDef<T>* f = FindField<T>(it.key());
    if (!f) return Status::InvalidArgument("unknown field '" + it.key() + "'");
    AS_RETURN_IF_ERROR(f->from_json(record, it.value(), *f, replace));
    read[f - fields.data()] = true;
  }
  AS_RETURN_IF_ERROR(defaults(record));
  for (size_t i = 0; i < fields.size(); ++i)
    if (!read[i]) AS_RETURN_IF_ERROR(fields[i].check(record, fields[i], ctx));
  return Status::OK();
}

// Reads every field present in `j` (any writability): the import/restore path.
template <typename T>
Status RecordFromJson(T& record, const Json& j, const FieldContext& ctx) {
  if (!j.is_object()) return Status::InvalidArgument("a record must be a JSON object");
  FieldContext replace = ctx;
  replace.json_mode = JsonMode::kReplace;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const FieldDef<T>* f = FindField<T>(it.key());
    if (!f) return Status::InvalidArgument("unknown field '" + it.key() + "'");
    AS_RETURN_IF_ERROR(f->from_json(record, it.value(), *f, replace));
  }
  return Status::OK();
}

}  // namespace agentstore::internal
