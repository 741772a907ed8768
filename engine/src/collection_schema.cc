// Collection declarations: parsing, record checks, the FlexBuffers encoding and the
// ordered key bytes (see collection_schema.h for why FlexBuffers).
#include "collection_schema.h"

#include <flatbuffers/flexbuffers.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <set>

#include "agentstore/common/uuid.h"
#include "keys.h"
#include "validate.h"

namespace agentstore::internal::coll {
namespace {

constexpr size_t kMaxNameBytes = 64;
constexpr size_t kMaxFields = 256;
constexpr size_t kMaxIndexes = 32;
constexpr uint32_t kDefaultMaxLength = 65536;
constexpr uint32_t kDefaultMaxItems = 1000;

Status Bad(std::string_view msg) { return Status::InvalidArgument(msg); }

void SetNameOrder(Schema& s) {
  s.name_order.resize(s.fields.size());
  for (size_t i = 0; i < s.fields.size(); ++i) s.name_order[i] = static_cast<int>(i);
  std::sort(s.name_order.begin(), s.name_order.end(), [&](int a, int b) {
    return std::strcmp(s.fields[a].name.c_str(), s.fields[b].name.c_str()) < 0;
  });
}

// Names are lowercase identifiers: they become RocksDB key bytes and JSON keys.
Status CheckName(std::string_view what, std::string_view n) {
  if (n.empty() || n.size() > kMaxNameBytes)
    return Bad(std::string(what) + " must be 1..64 characters");
  if (!(n[0] >= 'a' && n[0] <= 'z'))
    return Bad(std::string(what) + " '" + std::string(n) + "' must start with a-z");
  for (char c : n)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
      return Bad(std::string(what) + " '" + std::string(n) + "' may hold only a-z, 0-9 and _");
  return Status::OK();
}

std::optional<FieldType> TypeFromName(std::string_view n) {
  static const std::pair<std::string_view, FieldType> kTypes[] = {
      {"string", FieldType::kString},   {"integer", FieldType::kInteger},
      {"decimal", FieldType::kDecimal}, {"real", FieldType::kReal},
      {"bool", FieldType::kBool},       {"timestamp", FieldType::kTimestamp},
      {"uuid", FieldType::kUuid},       {"enum", FieldType::kEnum},
      {"json", FieldType::kJson},       {"string_list", FieldType::kStringList}};
  for (const auto& [name, t] : kTypes)
    if (name == n) return t;
  return std::nullopt;
}

size_t CodePoints(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

int64_t Pow10(int n) {
  int64_t p = 1;
  while (n-- > 0) p *= 10;
  return p;
}

// "-12.345" with at most `scale` decimals -> units of 10^-scale, exactly.
bool ParseDecimal(std::string_view t, int scale, int64_t* out) {
  bool neg = false;
  size_t i = 0;
  if (i < t.size() && (t[i] == '-' || t[i] == '+')) neg = t[i++] == '-';
  __int128 v = 0;
  int digits = 0, frac = -1;
  for (; i < t.size(); ++i) {
    char c = t[i];
    if (c == '.') {
      if (frac >= 0) return false;
      frac = 0;
      continue;
    }
    if (c < '0' || c > '9') return false;
    if (frac >= 0 && ++frac > scale) {
      if (c != '0') return false;  // more decimals than the scale (trailing zeros are fine)
      continue;
    }
    v = v * 10 + (c - '0');
    if (v > std::numeric_limits<int64_t>::max()) return false;
    ++digits;
  }
  if (digits == 0) return false;
  for (int k = frac < 0 ? 0 : frac; k < scale; ++k) {
    v *= 10;
    if (v > std::numeric_limits<int64_t>::max()) return false;
  }
  *out = static_cast<int64_t>(neg ? -v : v);
  return true;
}

std::string DecimalText(int64_t units, int scale) {
  if (scale == 0) return std::to_string(units);
  bool neg = units < 0;
  unsigned __int128 u = neg ? -static_cast<__int128>(units) : units;
  std::string digits;
  do {
    digits.insert(digits.begin(), static_cast<char>('0' + static_cast<int>(u % 10)));
    u /= 10;
  } while (u);
  while (digits.size() <= static_cast<size_t>(scale)) digits.insert(digits.begin(), '0');
  digits.insert(digits.end() - scale, '.');
  return (neg ? "-" : "") + digits;
}

Status CheckRange(const FieldSpec& f, double v) {
  if (f.min && v < *f.min)
    return Bad("field " + f.name + " is below its minimum " + Json(*f.min).dump());
  if (f.max && v > *f.max)
    return Bad("field " + f.name + " is above its maximum " + Json(*f.max).dump());
  return Status::OK();
}

Status CheckString(const FieldSpec& f, const std::string& s) {
  if (!IsValidUtf8(s)) return Bad("field " + f.name + " is not valid UTF-8");
  uint32_t cap = f.max_length ? f.max_length : kDefaultMaxLength;
  // A code point is at most 4 bytes: a longer text is over the cap without counting.
  if (s.size() > 4ull * cap || CodePoints(s) > cap)
    return Bad("field " + f.name + " is longer than " + std::to_string(cap) + " characters");
  return Status::OK();
}

FieldSpec System(std::string name, FieldType t) {
  FieldSpec f;
  f.name = std::move(name);
  f.type = t;
  f.system = true;
  return f;
}

Result<FieldSpec> ParseField(const Schema& s, const Json& j) {
  if (!j.is_object()) return Bad("each field must be an object");
  static const std::set<std::string> kKeys = {"name", "type", "required", "default", "max_length",
                                              "min",  "max",  "scale",    "values",  "max_items"};
  for (const auto& [k, v] : j.items())
    if (!kKeys.count(k)) return Bad("unknown field property '" + k + "'");
  FieldSpec f;
  if (!j.contains("name") || !j["name"].is_string()) return Bad("a field needs a name");
  f.name = j["name"].get<std::string>();
  AS_RETURN_IF_ERROR(CheckName("field name", f.name));
  if (!j.contains("type") || !j["type"].is_string())
    return Bad("field " + f.name + " needs a type");
  auto t = TypeFromName(j["type"].get<std::string>());
  if (!t)
    return Bad("field " + f.name + " has unknown type '" + j["type"].get<std::string>() +
               "' (string, integer, decimal, real, bool, timestamp, uuid, enum, json, "
               "string_list)");
  f.type = *t;
  if (j.contains("required")) {
    if (!j["required"].is_boolean()) return Bad("field " + f.name + ": required is a bool");
    f.required = j["required"].get<bool>();
  }
  auto u32 = [&](const char* key, uint32_t* out) -> Status {
    if (!j.contains(key)) return Status::OK();
    const Json& v = j[key];
    if (!v.is_number_unsigned() || v.get<uint64_t>() == 0 || v.get<uint64_t>() > (1u << 24))
      return Bad("field " + f.name + ": " + key + " must be an integer 1.." +
                 std::to_string(1u << 24));
    *out = static_cast<uint32_t>(v.get<uint64_t>());
    return Status::OK();
  };
  AS_RETURN_IF_ERROR(u32("max_length", &f.max_length));
  AS_RETURN_IF_ERROR(u32("max_items", &f.max_items));
  for (const char* key : {"min", "max"}) {
    if (!j.contains(key)) continue;
    if (!j[key].is_number()) return Bad("field " + f.name + ": " + key + " must be a number");
    (std::string_view(key) == "min" ? f.min : f.max) = j[key].get<double>();
  }
  if (f.type == FieldType::kDecimal) {
    if (!j.contains("scale") || !j["scale"].is_number_unsigned() || j["scale"].get<int>() > 18)
      return Bad("decimal field " + f.name + " needs a scale 0..18");
    f.scale = j["scale"].get<int>();
  } else if (j.contains("scale")) {
    return Bad("field " + f.name + ": only decimals have a scale");
  }
  if (f.type == FieldType::kEnum) {
    if (!j.contains("values") || !j["values"].is_array() || j["values"].empty())
      return Bad("enum field " + f.name + " needs a non-empty list of values");
    std::set<std::string> seen;
    for (const auto& v : j["values"]) {
      if (!v.is_string()) return Bad("enum field " + f.name + ": values are strings");
      AS_RETURN_IF_ERROR(CheckText("enum value", v.get<std::string>(), 256));
      if (!seen.insert(v.get<std::string>()).second)
        return Bad("enum field " + f.name + " lists a value twice");
      f.values.push_back(v.get<std::string>());
    }
  } else if (j.contains("values")) {
    return Bad("field " + f.name + ": only enums have values");
  }
  if (f.min && f.max && *f.min > *f.max) return Bad("field " + f.name + ": min is above max");
  if (j.contains("default") && !j["default"].is_null()) {
    Json canon;
    Status st = Canonical(s, f, j["default"], &canon);
    if (!st.ok()) return Bad("default of " + std::string(st.message()));
    f.default_value = std::move(canon);
  }
  return f;
}

Status ParseFieldList(Schema& s, const Json& list) {
  if (!list.is_array()) return Bad("fields must be a list");
  for (const auto& fj : list) {
    AS_ASSIGN_OR_RETURN(FieldSpec f, ParseField(s, fj));
    if (s.by_name.count(f.name))
      return Bad("field " + f.name + " is declared twice (or is a system field)");
    if (s.fields.size() >= kMaxFields) return Bad("a collection has at most 256 fields");
    s.by_name[f.name] = static_cast<int>(s.fields.size());
    s.fields.push_back(std::move(f));
  }
  return Status::OK();
}

bool Orderable(FieldType t) { return t != FieldType::kJson && t != FieldType::kStringList; }

Json FieldToJson(const FieldSpec& f) {
  Json j = {{"name", f.name}, {"type", FieldTypeName(f.type)}};
  if (f.system) j["system"] = true;
  if (f.required) j["required"] = true;
  if (!f.default_value.is_null()) {
    j["default"] = f.type == FieldType::kDecimal
                       ? Json(DecimalText(f.default_value.get<int64_t>(), f.scale))
                       : f.default_value;
  }
  if (f.max_length) j["max_length"] = f.max_length;
  if (f.max_items) j["max_items"] = f.max_items;
  if (f.min) j["min"] = *f.min;
  if (f.max) j["max"] = *f.max;
  if (f.type == FieldType::kDecimal) j["scale"] = f.scale;
  if (!f.values.empty()) j["values"] = f.values;
  return j;
}

}  // namespace

std::string_view FieldTypeName(FieldType t) {
  static const char* kNames[] = {"string",    "integer", "decimal", "real", "bool",
                                 "timestamp", "uuid",    "enum",    "json", "string_list"};
  return kNames[static_cast<int>(t)];
}

Status ParseIndexes(Schema& s, const Json& list) {
  if (!list.is_array()) return Bad("indexes must be a list");
  for (const auto& ij : list) {
    if (!ij.is_object()) return Bad("each index must be an object");
    for (const auto& [k, v] : ij.items())
      if (k != "name" && k != "fields" && k != "unique")
        return Bad("unknown index property '" + k + "'");
    IndexSpec idx;
    if (!ij.contains("name") || !ij["name"].is_string()) return Bad("an index needs a name");
    idx.name = ij["name"].get<std::string>();
    AS_RETURN_IF_ERROR(CheckName("index name", idx.name));
    if (idx.name == "primary" || s.Index(idx.name))
      return Bad("index " + idx.name + " is declared twice (or is the reserved 'primary')");
    if (!ij.contains("fields") || !ij["fields"].is_array() || ij["fields"].empty() ||
        ij["fields"].size() > 8)
      return Bad("index " + idx.name + " needs 1..8 fields");
    for (const auto& fn : ij["fields"]) {
      int fi = fn.is_string() ? s.Field(fn.get<std::string>()) : -1;
      if (fi < 0) return Bad("index " + idx.name + " names an unknown field " + fn.dump());
      if (!Orderable(s.fields[fi].type))
        return Bad("index " + idx.name + ": json and string_list fields cannot be indexed");
      idx.fields.push_back(fi);
    }
    if (ij.contains("unique")) {
      if (!ij["unique"].is_boolean()) return Bad("index " + idx.name + ": unique is a bool");
      idx.unique = ij["unique"].get<bool>();
    }
    if (s.indexes.size() >= kMaxIndexes) return Bad("a collection has at most 32 indexes");
    s.indexes.push_back(std::move(idx));
  }
  return Status::OK();
}

Result<Schema> ParseDeclaration(const Json& j, size_t max_json_bytes) {
  if (!j.is_object()) return Bad("a declaration is a JSON object");
  static const std::set<std::string> kKeys = {"name",      "owner",  "key",
                                              "ttl_field", "fields", "indexes"};
  for (const auto& [k, v] : j.items())
    if (!kKeys.count(k)) return Bad("unknown declaration property '" + k + "'");
  Schema s;
  s.max_json_bytes = max_json_bytes;
  if (!j.contains("name") || !j["name"].is_string()) return Bad("a collection needs a name");
  s.name = j["name"].get<std::string>();
  AS_RETURN_IF_ERROR(CheckName("collection name", s.name));
  for (auto f :
       {System("id", FieldType::kUuid), System("created_at", FieldType::kTimestamp),
        System("updated_at", FieldType::kTimestamp), System("deleted_at", FieldType::kTimestamp)}) {
    s.by_name[f.name] = static_cast<int>(s.fields.size());
    s.fields.push_back(std::move(f));
  }
  std::string owner = "none";
  if (j.contains("owner")) {
    if (!j["owner"].is_string()) return Bad("owner is \"user\", \"tenant\" or \"none\"");
    owner = j["owner"].get<std::string>();
  }
  if (owner == "user" || owner == "tenant") {
    s.owner = owner == "user" ? OwnerKind::kUser : OwnerKind::kTenant;
    FieldSpec f = System(owner + "_id", FieldType::kUuid);
    f.system = false;  // the client names it (a user scope's own id by default)
    f.required = true;
    s.owner_field = static_cast<int>(s.fields.size());
    s.by_name[f.name] = s.owner_field;
    s.fields.push_back(std::move(f));
  } else if (owner != "none") {
    return Bad("owner is \"user\", \"tenant\" or \"none\"");
  }
  if (j.contains("fields")) AS_RETURN_IF_ERROR(ParseFieldList(s, j["fields"]));
  s.key = {kIdField};
  if (j.contains("key")) {
    const Json& k = j["key"];
    if (!k.is_array() || k.empty() || k.size() > 4)
      return Bad("key must list 1..4 fields, the first being id");
    s.key.clear();
    for (const auto& fn : k) {
      int fi = fn.is_string() ? s.Field(fn.get<std::string>()) : -1;
      if (fi < 0) return Bad("key names an unknown field " + fn.dump());
      if (!Orderable(s.fields[fi].type)) return Bad("json and list fields cannot be in a key");
      if (fi == kUpdatedAtField || fi == kDeletedAtField)
        return Bad("updated_at and deleted_at change; they cannot be in a key");
      s.key.push_back(fi);
    }
    if (s.key[0] != kIdField) return Bad("key must start with id");
    for (int fi : s.key)
      if (!s.fields[fi].system) s.fields[fi].required = true;
  }
  if (j.contains("ttl_field")) {
    int fi = j["ttl_field"].is_string() ? s.Field(j["ttl_field"].get<std::string>()) : -1;
    if (fi < 0 || s.fields[fi].type != FieldType::kTimestamp || s.fields[fi].system)
      return Bad("ttl_field must name a declared timestamp field");
    s.ttl_field = fi;
  }
  if (j.contains("indexes")) AS_RETURN_IF_ERROR(ParseIndexes(s, j["indexes"]));
  SetNameOrder(s);
  return s;
}

Result<Schema> ParseAlter(const Schema& schema, const Json& change) {
  if (!change.is_object()) return Bad("a change is a JSON object");
  for (const auto& [k, v] : change.items())
    if (k != "add_fields" && k != "add_indexes")
      return Bad("unknown change '" + k + "' (add_fields, add_indexes)");
  Schema s = schema;
  if (change.contains("add_fields")) AS_RETURN_IF_ERROR(ParseFieldList(s, change["add_fields"]));
  if (change.contains("add_indexes")) AS_RETURN_IF_ERROR(ParseIndexes(s, change["add_indexes"]));
  SetNameOrder(s);
  return s;
}

Json Schema::ToJson() const {
  Json j = {{"name", name}};
  j["owner"] = owner == OwnerKind::kUser ? "user" : owner == OwnerKind::kTenant ? "tenant" : "none";
  Json k = Json::array();
  for (int fi : key) k.push_back(fields[fi].name);
  j["key"] = k;
  if (ttl_field >= 0) j["ttl_field"] = fields[ttl_field].name;
  Json fs = Json::array();
  for (size_t i = 0; i < fields.size(); ++i)
    if (!fields[i].system && static_cast<int>(i) != owner_field)
      fs.push_back(FieldToJson(fields[i]));
  j["fields"] = fs;
  Json is = Json::array();
  for (const auto& idx : indexes) {
    Json f = Json::array();
    for (int fi : idx.fields) f.push_back(fields[fi].name);
    is.push_back({{"name", idx.name}, {"fields", f}, {"unique", idx.unique}});
  }
  j["indexes"] = is;
  return j;
}

Status Canonical(const Schema& s, const FieldSpec& f, const Json& v, Json* out) {
  auto wrong = [&](const char* want) {
    return Bad("field " + f.name + " must be " + want + ", not " + v.type_name());
  };
  switch (f.type) {
    case FieldType::kString: {
      if (!v.is_string()) return wrong("a string");
      AS_RETURN_IF_ERROR(CheckString(f, v.get_ref<const std::string&>()));
      *out = v;
      return Status::OK();
    }
    case FieldType::kInteger:
    case FieldType::kTimestamp: {
      if (!v.is_number_integer()) return wrong("an integer");
      if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX))
        return Bad("field " + f.name + " is out of the int64 range");
      int64_t n = v.get<int64_t>();
      if (f.type == FieldType::kTimestamp && (n < 0 || n > kMaxTimeMicros))
        return Bad("field " + f.name + " must be a time in 0.." + std::to_string(kMaxTimeMicros) +
                   " (microseconds, 1970 to 9999), not " + std::to_string(n));
      AS_RETURN_IF_ERROR(CheckRange(f, static_cast<double>(n)));
      *out = n;
      return Status::OK();
    }
    case FieldType::kDecimal: {
      int64_t units;
      std::string text;
      if (v.is_string())
        text = v.get<std::string>();
      else if (v.is_number())
        text = v.dump();  // shortest round-trip text of the number the client wrote
      else
        return wrong("a decimal (number or string)");
      if (!ParseDecimal(text, f.scale, &units))
        return Bad("field " + f.name + " must be a decimal with at most " +
                   std::to_string(f.scale) + " decimals within the int64 range, not " + text);
      AS_RETURN_IF_ERROR(CheckRange(f, static_cast<double>(units) / Pow10(f.scale)));
      *out = units;
      return Status::OK();
    }
    case FieldType::kReal: {
      if (!v.is_number()) return wrong("a number");
      double d = v.get<double>();
      if (!std::isfinite(d)) return Bad("field " + f.name + " must be finite");
      AS_RETURN_IF_ERROR(CheckRange(f, d));
      *out = d;
      return Status::OK();
    }
    case FieldType::kBool:
      if (!v.is_boolean()) return wrong("true or false");
      *out = v;
      return Status::OK();
    case FieldType::kUuid: {
      if (!v.is_string()) return wrong("a uuid string");
      auto u = Uuid::Parse(v.get<std::string>());
      if (!u) return Bad("field " + f.name + " is not a uuid (8-4-4-4-12 hex)");
      *out = u->ToString();
      return Status::OK();
    }
    case FieldType::kEnum: {
      if (!v.is_string()) return wrong("a string");
      for (const auto& e : f.values)
        if (e == v.get_ref<const std::string&>()) {
          *out = v;
          return Status::OK();
        }
      return Bad("field " + f.name + " must be one of " + Json(f.values).dump() + ", not " +
                 v.dump());
    }
    case FieldType::kJson: {
      std::string text = v.dump();
      size_t cap = f.max_length ? f.max_length : s.max_json_bytes;
      if (text.size() > cap)
        return Bad("field " + f.name + " is larger than " + std::to_string(cap) + " bytes");
      AS_RETURN_IF_ERROR(CheckJsonDepth(f.name, text));
      *out = v;
      return Status::OK();
    }
    case FieldType::kStringList: {
      if (!v.is_array()) return wrong("a list of strings");
      uint32_t cap = f.max_items ? f.max_items : kDefaultMaxItems;
      if (v.size() > cap)
        return Bad("field " + f.name + " has more than " + std::to_string(cap) + " items");
      for (const auto& e : v) {
        if (!e.is_string()) return Bad("field " + f.name + " must hold only strings");
        AS_RETURN_IF_ERROR(CheckString(f, e.get_ref<const std::string&>()));
      }
      *out = v;
      return Status::OK();
    }
  }
  return Bad("unknown field type");
}

Status CanonicalRecord(const Schema& s, const Json& in, Json* out) {
  if (!in.is_object()) return Bad("a record is a JSON object");
  bool created_in_key = false;
  for (int fi : s.key) created_in_key |= fi == kCreatedAtField;
  Json rec = Json::object();
  for (const auto& [k, v] : in.items()) {
    int fi = s.Field(k);
    if (fi < 0) return Bad("unknown field " + k + " in collection " + s.name);
    const FieldSpec& f = s.fields[fi];
    if (fi == kUpdatedAtField || fi == kDeletedAtField ||
        (fi == kCreatedAtField && !created_in_key))
      return Bad("field " + k + " is maintained by the store");
    if (v.is_null()) continue;
    Json c;
    AS_RETURN_IF_ERROR(Canonical(s, f, v, &c));
    rec[k] = std::move(c);
  }
  for (const auto& f : s.fields) {
    if (f.system || rec.contains(f.name)) continue;
    if (!f.default_value.is_null())
      rec[f.name] = f.default_value;
    else if (f.required && static_cast<int>(&f - s.fields.data()) != s.owner_field)
      return Bad("field " + f.name + " is required");
  }
  *out = std::move(rec);
  return Status::OK();
}

std::string Encode(const Schema& s, const Json& record) {
  thread_local flexbuffers::Builder b(512);
  b.Clear();
  b.Map([&] {
    for (const auto& [k, v] : record.items()) {
      int fi = s.Field(k);
      if (fi < 0) continue;
      const char* key = k.c_str();
      switch (s.fields[fi].type) {
        case FieldType::kString:
        case FieldType::kEnum:
          b.String(key, v.get_ref<const std::string&>());
          break;
        case FieldType::kInteger:
        case FieldType::kTimestamp:
        case FieldType::kDecimal:
          b.Int(key, v.get<int64_t>());
          break;
        case FieldType::kReal:
          b.Double(key, v.get<double>());
          break;
        case FieldType::kBool:
          b.Bool(key, v.get<bool>());
          break;
        case FieldType::kUuid: {
          auto u = Uuid::Parse(v.get<std::string>());
          b.Key(key);
          b.Blob(u->bytes.data(), 16);
          break;
        }
        case FieldType::kJson:
          b.String(key, v.dump());
          break;
        case FieldType::kStringList:
          b.Vector(key, [&] {
            for (const auto& e : v) b.String(e.get_ref<const std::string&>());
          });
          break;
      }
    }
  });
  b.Finish();
  const auto& buf = b.GetBuffer();
  return std::string(reinterpret_cast<const char*>(buf.data()), buf.size());
}

Status Decode(const Schema& s, std::string_view bytes, Json* record) {
  auto data = reinterpret_cast<const uint8_t*>(bytes.data());
  if (!flexbuffers::VerifyBuffer(data, bytes.size()))
    return Status::Corruption("collection " + s.name + ": a stored record fails verification");
  auto root = flexbuffers::GetRoot(data, bytes.size());
  if (!root.IsMap()) return Status::Corruption("collection " + s.name + ": record is not a map");
  auto map = root.AsMap();
  auto keys = map.Keys();
  auto vals = map.Values();
  Json rec = Json::object();
  for (size_t i = 0; i < keys.size(); ++i) {
    std::string k = keys[i].AsKey();
    int fi = s.Field(k);
    if (fi < 0) return Status::Corruption("collection " + s.name + ": unknown stored field " + k);
    auto v = vals[i];
    switch (s.fields[fi].type) {
      case FieldType::kString:
      case FieldType::kEnum:
        rec[k] = v.AsString().str();
        break;
      case FieldType::kInteger:
      case FieldType::kTimestamp:
      case FieldType::kDecimal:
        rec[k] = v.AsInt64();
        break;
      case FieldType::kReal:
        rec[k] = v.AsDouble();
        break;
      case FieldType::kBool:
        rec[k] = v.AsBool();
        break;
      case FieldType::kUuid: {
        auto blob = v.AsBlob();
        if (blob.size() != 16) return Status::Corruption("collection " + s.name + ": bad uuid");
        rec[k] = Uuid::FromBytes(blob.data()).ToString();
        break;
      }
      case FieldType::kJson: {
        Json parsed = Json::parse(v.AsString().str(), nullptr, false);
        if (parsed.is_discarded())
          return Status::Corruption("collection " + s.name + ": bad json in " + k);
        rec[k] = std::move(parsed);
        break;
      }
      case FieldType::kStringList: {
        Json list = Json::array();
        auto vec = v.AsVector();
        for (size_t j = 0; j < vec.size(); ++j) list.push_back(vec[j].AsString().str());
        rec[k] = std::move(list);
        break;
      }
    }
  }
  *record = std::move(rec);
  return Status::OK();
}

Json ToApi(const Schema& s, const Json& record) {
  Json out = Json::object();
  for (const auto& f : s.fields) {
    auto it = record.find(f.name);
    const Json* v = it != record.end()          ? &*it
                    : f.default_value.is_null() ? nullptr
                                                : &f.default_value;
    if (!v) {
      if (&f - s.fields.data() == kDeletedAtField) out[f.name] = nullptr;
      continue;
    }
    out[f.name] =
        f.type == FieldType::kDecimal ? Json(DecimalText(v->get<int64_t>(), f.scale)) : *v;
  }
  return out;
}

namespace {

// True when one of the 8 bytes of `w` must be escaped in a JSON string (a control byte,
// '"' or '\'): exact SWAR tests for a byte below 0x20 and for a byte equal to each.
inline bool WordNeedsEscape(uint64_t w) {
  constexpr uint64_t k01 = 0x0101010101010101ULL, k80 = 0x8080808080808080ULL;
  auto has_zero = [](uint64_t v) { return (v - k01) & ~v & k80; };
  uint64_t below_space = (w - k01 * 0x20) & ~w & k80;
  return below_space | has_zero(w ^ (k01 * '"')) | has_zero(w ^ (k01 * '\\'));
}

// Appends `s` as a JSON string: runs that need no escape go in one append each, found 8
// bytes at a time (a record's text is mostly such runs).
void AppendJsonString(std::string_view s, std::string* out) {
  out->push_back('"');
  const char* p = s.data();
  const size_t n = s.size();
  size_t run = 0, i = 0;
  while (i < n) {
    if (i + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      if (!WordNeedsEscape(w)) {
        i += 8;
        continue;
      }
    }
    unsigned char c = static_cast<unsigned char>(p[i]);
    if (c >= 0x20 && c != '"' && c != '\\') {
      ++i;
      continue;
    }
    out->append(p + run, i - run);
    if (c == '"' || c == '\\') {
      char esc[2] = {'\\', static_cast<char>(c)};
      out->append(esc, 2);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out->append(buf, 6);
    }
    run = ++i;
  }
  out->append(p + run, n - run);
  out->push_back('"');
}

void AppendInt(int64_t v, std::string* out) {
  char buf[24];
  auto end = std::to_chars(buf, buf + sizeof buf, v).ptr;
  out->append(buf, end - buf);
}

// A 16-byte uuid as its quoted text, without a temporary string.
void AppendUuidString(const uint8_t* b, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  char t[38];
  size_t j = 0;
  t[j++] = '"';
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) t[j++] = '-';
    t[j++] = kHex[b[i] >> 4];
    t[j++] = kHex[b[i] & 15];
  }
  t[j++] = '"';
  out->append(t, j);
}

void AppendDefault(const FieldSpec& f, std::string* out) {
  if (f.type == FieldType::kDecimal)
    AppendJsonString(DecimalText(f.default_value.get<int64_t>(), f.scale), out);
  else
    out->append(f.default_value.dump());
}

}  // namespace

std::string ToApiText(const Schema& s, std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() + 64);
  AppendApiText(s, bytes, &out);
  return out;
}

void AppendApiText(const Schema& s, std::string_view bytes, std::string* out_ptr) {
  std::string& out = *out_ptr;
  auto map =
      flexbuffers::GetRoot(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()).AsMap();
  // Where each field's value sits in the map (kAbsent: not stored).
  constexpr uint16_t kAbsent = 0xFFFF;
  uint16_t slot[kMaxFields];
  const size_t nf = s.fields.size();
  std::fill(slot, slot + nf, kAbsent);
  auto keys = map.Keys();
  auto vals = map.Values();
  if (s.name_order.size() == nf) {
    size_t k = 0, nk = keys.size();
    for (int fi : s.name_order) {
      const char* name = s.fields[fi].name.c_str();
      while (k < nk) {
        int c = std::strcmp(keys[k].AsKey(), name);
        if (c > 0) break;
        if (c == 0) slot[fi] = static_cast<uint16_t>(k);
        ++k;
        if (c == 0) break;
      }
    }
  } else {
    for (size_t fi = 0; fi < nf; ++fi) {
      size_t n = keys.size(), lo = 0, hi = n;  // keys are sorted: binary search
      const char* name = s.fields[fi].name.c_str();
      while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = std::strcmp(keys[mid].AsKey(), name);
        if (c == 0) {
          slot[fi] = static_cast<uint16_t>(mid);
          break;
        }
        if (c < 0)
          lo = mid + 1;
        else
          hi = mid;
      }
    }
  }
  out.push_back('{');
  bool first = true;
  for (const auto& f : s.fields) {
    uint16_t at = slot[&f - s.fields.data()];
    bool absent = at == kAbsent;
    auto v = absent ? flexbuffers::Reference() : vals[at];
    if (absent && f.default_value.is_null() && &f - s.fields.data() != kDeletedAtField) continue;
    if (!first) out.push_back(',');
    first = false;
    out.push_back('"');  // a field name is an identifier (CheckName): nothing to escape
    out.append(f.name);
    out.append("\":", 2);
    if (absent) {
      if (f.default_value.is_null())
        out.append("null");
      else
        AppendDefault(f, &out);
      continue;
    }
    switch (f.type) {
      case FieldType::kString:
      case FieldType::kEnum: {
        auto str = v.AsString();
        AppendJsonString(std::string_view(str.c_str(), str.length()), &out);
        break;
      }
      case FieldType::kInteger:
      case FieldType::kTimestamp:
        AppendInt(v.AsInt64(), &out);
        break;
      case FieldType::kDecimal:
        AppendJsonString(DecimalText(v.AsInt64(), f.scale), &out);
        break;
      case FieldType::kReal:
        out.append(Json(v.AsDouble()).dump());
        break;
      case FieldType::kBool:
        out.append(v.AsBool() ? "true" : "false");
        break;
      case FieldType::kUuid:
        AppendUuidString(v.AsBlob().data(), &out);
        break;
      case FieldType::kJson: {
        auto str = v.AsString();
        out.append(str.c_str(), str.length());  // stored as the JSON text itself
        break;
      }
      case FieldType::kStringList: {
        auto vec = v.AsVector();
        out.push_back('[');
        for (size_t j = 0; j < vec.size(); ++j) {
          if (j) out.push_back(',');
          auto str = vec[j].AsString();
          AppendJsonString(std::string_view(str.c_str(), str.length()), &out);
        }
        out.push_back(']');
        break;
      }
    }
  }
  out.push_back('}');
}

void AppendKeyPart(const FieldSpec& f, const Json& v, std::string* out) {
  if (v.is_null()) {
    out->push_back('\0');
    return;
  }
  out->push_back('\1');
  switch (f.type) {
    case FieldType::kInteger:
    case FieldType::kTimestamp:
    case FieldType::kDecimal:
      AppendOrdered64(*out, v.get<int64_t>());
      return;
    case FieldType::kReal: {
      double d = v.get<double>();
      if (d == 0) d = 0;  // -0 and 0 are one key
      uint64_t u;
      std::memcpy(&u, &d, 8);
      u = (u & (uint64_t{1} << 63)) ? ~u : u | (uint64_t{1} << 63);
      for (int i = 7; i >= 0; --i) out->push_back(static_cast<char>((u >> (8 * i)) & 0xFF));
      return;
    }
    case FieldType::kBool:
      out->push_back(v.get<bool>() ? '\1' : '\0');
      return;
    case FieldType::kUuid: {
      auto u = Uuid::Parse(v.get<std::string>());
      out->append(reinterpret_cast<const char*>(u->bytes.data()), 16);
      return;
    }
    default: {
      // Strings: 0x00 escaped as 00 FF, terminated by 00 00, so a prefix sorts first.
      for (char c : v.get_ref<const std::string&>()) {
        out->push_back(c);
        if (c == '\0') out->push_back('\xFF');
      }
      out->push_back('\0');
      out->push_back('\0');
      return;
    }
  }
}

std::string KeyOf(const Schema& s, const std::vector<int>& fields, const Json& record) {
  static const Json kNull;
  std::string k;
  for (int fi : fields) {
    const FieldSpec& f = s.fields[fi];
    auto it = record.find(f.name);
    const Json& v = it != record.end() ? *it : f.default_value.is_null() ? kNull : f.default_value;
    AppendKeyPart(f, v, &k);
  }
  return k;
}

Status KeyObject(const Schema& s, std::string_view pk, Json* key) {
  auto bad = [&] { return Status::Corruption("collection " + s.name + ": malformed record key"); };
  auto u64 = [&](size_t at) {
    uint64_t u = 0;
    for (size_t i = 0; i < 8; ++i) u = (u << 8) | static_cast<uint8_t>(pk[at + i]);
    return u;
  };
  *key = Json::object();
  Json& out = *key;
  size_t at = 0;
  for (int fi : s.key) {
    const FieldSpec& f = s.fields[fi];
    if (at >= pk.size()) return bad();
    if (pk[at++] == '\0') {
      out[f.name] = nullptr;
      continue;
    }
    switch (f.type) {
      case FieldType::kInteger:
      case FieldType::kTimestamp:
      case FieldType::kDecimal: {
        if (pk.size() - at < 8) return bad();
        auto v = static_cast<int64_t>(u64(at) ^ (uint64_t{1} << 63));
        // Decimals in their API form (exact text), as ToApi writes them.
        out[f.name] = f.type == FieldType::kDecimal ? Json(DecimalText(v, f.scale)) : Json(v);
        at += 8;
        break;
      }
      case FieldType::kReal: {
        if (pk.size() - at < 8) return bad();
        uint64_t u = u64(at);
        u = (u & (uint64_t{1} << 63)) ? u & ~(uint64_t{1} << 63) : ~u;
        double d;
        std::memcpy(&d, &u, 8);
        out[f.name] = d;
        at += 8;
        break;
      }
      case FieldType::kBool:
        if (pk.size() - at < 1) return bad();
        out[f.name] = pk[at++] != '\0';
        break;
      case FieldType::kUuid:
        if (pk.size() - at < 16) return bad();
        out[f.name] = Uuid::FromBytes(reinterpret_cast<const uint8_t*>(pk.data() + at)).ToString();
        at += 16;
        break;
      default: {  // strings: 00 FF is a 0 byte, 00 00 ends it
        std::string v;
        while (true) {
          if (at >= pk.size()) return bad();
          char c = pk[at++];
          if (c != '\0') {
            v.push_back(c);
            continue;
          }
          if (at >= pk.size()) return bad();
          char next = pk[at++];
          if (next == '\0') break;
          if (next != '\xFF') return bad();
          v.push_back('\0');
        }
        out[f.name] = std::move(v);
        break;
      }
    }
  }
  if (at != pk.size()) return bad();
  return Status::OK();
}

}  // namespace agentstore::internal::coll
