// A collection's declaration (its schema as data) and what follows from it: checking a
// record against it, the one stored encoding of a record (a FlexBuffers map), and the
// order-preserving key bytes its primary key and secondary indexes sort by.
//
// Why FlexBuffers: it is FlatBuffers' schemaless sibling (same packaged library, same
// verifier discipline as every built-in record), keeps values typed (int64, double,
// bool, 16-byte uuid blobs, string vectors) without a per-collection generated schema,
// and lets recovery read single fields in place. JSON is only the wire/API form.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "agentstore/common/status.h"

namespace agentstore::internal::coll {

using Json = nlohmann::json;

enum class FieldType : uint8_t {
  kString,
  kInteger,
  kDecimal,  // exact: int64 units of 10^-scale; JSON out as a string "12.34"
  kReal,
  kBool,
  kTimestamp,  // int64 microseconds since the Unix epoch, UTC
  kUuid,
  kEnum,
  kJson,
  kStringList,
};
std::string_view FieldTypeName(FieldType t);

struct FieldSpec {
  std::string name;
  FieldType type = FieldType::kString;
  bool required = false;
  bool system = false;             // id, created_at, updated_at, deleted_at: the store sets them
  Json default_value;              // canonical form; null when none
  uint32_t max_length = 0;         // string / list items: code points; json: bytes (0: default cap)
  uint32_t max_items = 0;          // string_list (0: 1000)
  std::optional<double> min, max;  // integer, decimal (in units of the value), real, timestamp
  int scale = 0;                   // decimal
  std::vector<std::string> values;  // enum
};

struct IndexSpec {
  std::string name;
  std::vector<int> fields;  // positions in Schema::fields
  bool unique = false;
};

enum class OwnerKind : uint8_t { kNone, kUser, kTenant };

struct Schema {
  std::string name;
  OwnerKind owner = OwnerKind::kNone;
  int owner_field = -1;           // user_id or tenant_id
  std::vector<FieldSpec> fields;  // system fields first
  std::unordered_map<std::string, int> by_name;
  std::vector<int> key;  // primary key fields; ["id"] unless declared
  int ttl_field = -1;    // a timestamp: the record expires once now >= its value
  std::vector<IndexSpec> indexes;
  size_t max_json_bytes = 64 << 10;
  // Field positions sorted by name as strcmp sorts (the order of a FlexBuffers map's
  // keys), so a stored record's fields are matched in one merge pass. Set by
  // ParseDeclaration and ParseAlter; empty: look each field up instead.
  std::vector<int> name_order;

  int Field(std::string_view n) const {
    auto it = by_name.find(std::string(n));
    return it == by_name.end() ? -1 : it->second;
  }
  const IndexSpec* Index(std::string_view n) const {
    for (const auto& i : indexes)
      if (i.name == n) return &i;
    return nullptr;
  }
  // The declaration as stored and as answered to collection_describe.
  Json ToJson() const;
};

inline constexpr int kIdField = 0, kCreatedAtField = 1, kUpdatedAtField = 2, kDeletedAtField = 3;

// Parses and checks a declaration:
//   {"name": "journal_entries", "owner": "user" | "tenant" | "none",
//    "key": ["id"], "ttl_field": "expires_at",
//    "fields": [{"name": "title", "type": "string", "required": true, "max_length": 200},
//               {"name": "mood", "type": "enum", "values": ["good", "bad"]}, ...],
//    "indexes": [{"name": "by_user_date", "fields": ["user_id", "created_at"],
//                 "unique": false}]}
Result<Schema> ParseDeclaration(const Json& j, size_t max_json_bytes);
// Fields and indexes to add to `schema` ({"add_fields": [...], "add_indexes": [...]}),
// parsed as in a declaration; the result is the new schema (indexes at the end).
Result<Schema> ParseAlter(const Schema& schema, const Json& change);
// Index specs parsed against `schema` (shared by declarations and alters).
Status ParseIndexes(Schema& schema, const Json& list);

// A record in canonical form: a JSON object holding only set fields, uuid as text,
// decimal as int64 units, json fields as their value.
// Checks `value` against `f` and writes its canonical form.
Status Canonical(const Schema& s, const FieldSpec& f, const Json& value, Json* out);
// Checks a whole client record (unknown fields, types, caps, store-maintained fields,
// required) and fills defaults. `allow_created_at`: created_at may be given (it is part
// of the key).
Status CanonicalRecord(const Schema& s, const Json& in, Json* out);

// The one stored encoding.
std::string Encode(const Schema& s, const Json& record);
// Verifies and decodes stored bytes; corruption when they do not fit the schema.
Status Decode(const Schema& s, std::string_view bytes, Json* record);
// The API form: decimals as exact strings, defaults of fields added later filled in.
Json ToApi(const Schema& s, const Json& record);
// The same as JSON text, written straight from stored bytes (reads: no JSON tree is
// built), fields in declaration order. `bytes` must come from Encode (or a verified
// Decode at recovery) and start 8-aligned.
std::string ToApiText(const Schema& s, std::string_view bytes);
// The same, appended to *out (a query writes many records without a string each).
void AppendApiText(const Schema& s, std::string_view bytes, std::string* out);

// Order-preserving bytes of the fields (null sorts first); keys compare with memcmp.
void AppendKeyPart(const FieldSpec& f, const Json& v, std::string* out);
std::string KeyOf(const Schema& s, const std::vector<int>& fields, const Json& record);
// The inverse of KeyOf over the primary key: the key object coll_get and coll_delete take
// ({"id": ..., more key fields}, in API form). Corruption when `pk` is not such a key.
Status KeyObject(const Schema& s, std::string_view pk, Json* key);

}  // namespace agentstore::internal::coll
