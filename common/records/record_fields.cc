// The field tables of every record type, and the per-kind rules (text, JSON, numbers,
// enums, ids, lists) they are built from. Text caps count characters (code points);
// times are microseconds in [0, kMaxTimeMicros]; client-supplied numbers keep the seeds'
// column ranges (INTEGER tokens, DECIMAL(10,6) costs in micro-USD).
#include "record_fields.h"

#include <cmath>
#include <limits>

#include "agentstore/common/row.h"

namespace agentstore::internal {
namespace {

template <auto M>
struct MemberOf;
template <typename C, typename V, V C::*P>
struct MemberOf<P> {
  using Class = C;
  using Value = V;
};

constexpr int64_t kMaxI64 = std::numeric_limits<int64_t>::max();
constexpr int64_t kMaxI32 = std::numeric_limits<int32_t>::max();
constexpr int64_t kMinI32 = std::numeric_limits<int32_t>::min();

Status TypeError(const char* field, const char* want) {
  return Status::InvalidArgument(std::string(field) + " must be " + want);
}
// Integer ranges are printed exactly (a %g would print 9999999999 as 1e+10).
Status RangeError(const char* field, int64_t lo, int64_t hi) {
  std::string unit = hi == kMaxMicroUsd     ? " micro-USD (DECIMAL(10,6): at most 9999.999999 USD)"
                     : hi == kMaxTimeMicros ? " (microseconds since 1970, up to year 9999)"
                     : hi == kMaxInt32      ? " (INTEGER)"
                                            : "";
  return Status::InvalidArgument(std::string(field) + " must be between " + std::to_string(lo) +
                                 " and " + std::to_string(hi) + unit);
}
Status RangeError(const char* field, double lo, double hi) {
  char buf[160];
  snprintf(buf, sizeof buf, "%s must be between %g and %g", field, lo, hi);
  return Status::InvalidArgument(buf);
}

template <auto M, typename T = typename MemberOf<M>::Class>
FieldDef<T> Base(const char* name, Writable w) {
  FieldDef<T> f{};
  f.name = name;
  f.writable = w;
  return f;
}

template <auto M, typename T = typename MemberOf<M>::Class>
FieldDef<T> Text(const char* name, Writable w, int64_t max_bytes) {
  FieldDef<T> f = Base<M>(name, w);
  f.hi = max_bytes;
  f.to_json = [](const T& r, Json& j, const FieldDef<T>& d) {
    if ((r.*M).empty())
      j[d.name] = nullptr;
    else
      j[d.name] = r.*M;
  };
  f.from_json = [](T& r, const Json& v, const FieldDef<T>& d, const FieldContext&) -> Status {
    if (v.is_null()) {
      (r.*M).clear();
      return Status::OK();
    }
    if (!v.is_string()) return TypeError(d.name, "a string");
    r.*M = v.template get<std::string>();
    return CheckText(d.name, r.*M, static_cast<size_t>(d.hi));
  };
  f.check = [](const T& r, const FieldDef<T>& d, const FieldContext&) {
    return CheckText(d.name, r.*M, static_cast<size_t>(d.hi));
  };
  return f;
}

// A JSON field's text dumped from a parsed document: valid JSON (and UTF-8) by
// construction, so only CheckJsonText's size, depth and shape rules are left to check
// (not a second parse, which import would otherwise pay for every JSON field).
Status CheckDumpedJson(const char* field, const std::string& text, const Json& doc,
                       size_t max_bytes, JsonShape shape) {
  if (text.size() > max_bytes)
    return Status::InvalidArgument(std::string(field) + " is larger than " +
                                   std::to_string(max_bytes) + " bytes");
  AS_RETURN_IF_ERROR(CheckJsonDepth(field, text));
  if ((shape == JsonShape::kObject && !doc.is_object()) ||
      (shape == JsonShape::kArray && !doc.is_array()))
    return Status::InvalidArgument(std::string(field) + " must be a JSON " +
                                   (shape == JsonShape::kObject ? "object" : "array"));
  return Status::OK();
}

template <auto M, typename T = typename MemberOf<M>::Class>
FieldDef<T> JsonDoc(const char* name, Writable w, JsonShape shape = JsonShape::kAny) {
  FieldDef<T> f = Base<M>(name, w);
  f.shape = shape;
  f.to_json = [](const T& r, Json& j, const FieldDef<T>& d) {
    if ((r.*M).empty())
      j[d.name] = nullptr;
    else
      j[d.name] = Json::parse(r.*M, nullptr, /*allow_exceptions=*/false);
  };
  f.from_json = [](T& r, const Json& v, const FieldDef<T>& d, const FieldContext& ctx) -> Status {
    if (ctx.json_mode == JsonMode::kReplace) {  // the value as given, without a copy
      if (v.is_null()) {
        (r.*M).clear();
        return Status::OK();
      }
      r.*M = v.dump();
      return CheckDumpedJson(d.name, r.*M, v, ctx.max_json_bytes, d.shape);
    }
    Json next;
    if (!(r.*M).empty()) {
      next = Json::parse(r.*M, nullptr, false);
      if (next.is_discarded()) next = Json();
      next.merge_patch(v);
    } else {
      next.merge_patch(v);  // drops nulls inside, as RFC 7386 does for a new target
    }
    if (next.is_null()) {
      (r.*M).clear();
      return Status::OK();
    }
    r.*M = next.dump();
    return CheckDumpedJson(d.name, r.*M, next, ctx.max_json_bytes, d.shape);
  };
  f.check = [](const T& r, const FieldDef<T>& d, const FieldContext& ctx) -> Status {
    if ((r.*M).empty()) return Status::OK();
    return CheckJsonText(d.name, r.*M, ctx.max_json_bytes, d.shape);
  };
  return f;
}

template <auto M, typename T = typename MemberOf<M>::Class>
FieldDef<T> Bool(const char* name, Writable w) {
  FieldDef<T> f = Base<M>(name, w);
  f.to_json = [](const T& r, Json& j, const FieldDef<T>& d) { j[d.name] = r.*M; };
  f.from_json = [](T& r, const Json& v, const FieldDef<T>& d, const FieldContext&) -> Status {
    if (!v.is_boolean()) return TypeError(d.name, "true or false");
    r.*M = v.template get<bool>();
    return Status::OK();
  };
  f.check = [](const T&, const FieldDef<T>&, const FieldContext&) { return Status::OK(); };
  return f;
}

// Integers: int32_t or int64_t members, bounded.
template <auto M, typename T = typename MemberOf<M>::Class>
FieldDef<T> Int(const char* name, Writable w, int64_t lo, int64_t hi) {
  using V = typename MemberOf<M>::Value;
  FieldDef<T> f = Base<M>(name, w);
  f.lo = lo;
  f.hi = hi;
  f.to_json = [](const T& r, Json& j, const FieldDef<T>& d) { j[d.name] = r.*M; };
  f.from_json = [](T& r, const Json& v, const FieldDef<T>& d, const FieldContext&) -> Status {
    if (!v.is_number_integer()) return TypeError(d.name, "an integer");
    if (v.is_number_unsigned() && v.template get<uint64_t>() > static_cast<uint64_t>(kMaxI64))
      return RangeError(d.name, d.lo, d.hi);
    int64_t x = v.template get<int64_t>();
    if (x < d.lo || x > d.hi) return RangeError(d.name, d.lo, d.hi);
    r.*M = static_cast<V>(x);
    return Status::OK();
  };
  f.check = [](const T& r, const FieldDef<T>& d, const FieldContext&) -> Status {
    int64_t x = static_cast<int64_t>(r.*M);
    if (x < d.lo || x > d.hi) return RangeError(d.name, d.lo, d.hi);
    return Status::OK();
  };
  return f;
}

template <auto M, typename T = typename MemberOf<M>::Class>
FieldDef<T> Time(const char* name, Writable w) {
  return Int<M>(name, w, 0, kMaxTimeMicros);
}

// flatbuffers::Optional<int32_t> members.
template <auto M, typename T = typename MemberOf<M>::Class>
FieldDef<T> OptInt(const char* name, Writable w, int64_t lo, int64_t hi) {
  FieldDef<T> f = Base<M>(name, w);
  f.lo = lo;
  f.hi = hi;
  f.to_json = [](const T& r, Json& j, const FieldDef<T>& d) {
    if ((r.*M).has_value())
      j[d.name] = (r.*M).value();
    else
      j[d.name] = nullptr;
  };
  f.from_json = [](T& r, const Json& v, const FieldDef<T>& d, const FieldContext&) -> Status {
    if (v.is_null()) {
      r.*M = flatbuffers::nullopt;
      return Status::OK();
    }
    if (!v.is_number_integer()) return TypeError(d.name, "an integer or null");
    int64_t x = v.is_number_unsigned() && v.template get<uint64_t>() > uint64_t(kMaxI64)
                    ? kMaxI64
                    : v.template get<int64_t>();
    if (x < d.lo || x > d.hi) return RangeError(d.name, d.lo, d.hi);
    r.*M = static_cast<int32_t>(x);
    return Status::OK();
  };
  f.check = [](const T& r, const FieldDef<T>& d, const FieldContext&) -> Status {
    if (!(r.*M).has_value()) return Status::OK();
    int64_t x = (r.*M).value();
    if (x < d.lo || x > d.hi) return RangeError(d.name, d.lo, d.hi);
    return Status::OK();
  };
  return f;
}

inline bool InRange(double x, double lo, double hi) {
  return std::isfinite(x) && x >= lo && x <= hi;
}

// flatbuffers::Optional<double> members.
template <auto M, typename T = typename MemberOf<M>::Class>
FieldDef<T> OptReal(const char* name, Writable w, double lo, double hi) {
  FieldDef<T> f = Base<M>(name, w);
  f.dlo = lo;
  f.dhi = hi;
  f.to_json = [](const T& r, Json& j, const FieldDef<T>& d) {
    if ((r.*M).has_value())
      j[d.name] = (r.*M).value();
    else
      j[d.name] = nullptr;
  };
  f.from_json = [](T& r, const Json& v, const FieldDef<T>& d, const FieldContext&) -> Status {
    if (v.is_null()) {
      r.*M = flatbuffers::nullopt;
      return Status::OK();
    }
    if (!v.is_number()) return TypeError(d.name, "a number or null");
    double x = v.template get<double>();
    if (!InRange(x, d.dlo, d.dhi)) return RangeError(d.name, d.dlo, d.dhi);
    r.*M = x;
    return Status::OK();
  };
  f.check = [](const T& r, const FieldDef<T>& d, const FieldContext&) -> Status {
    if ((r.*M).has_value() && !InRange((r.*M).value(), d.dlo, d.dhi))
      return RangeError(d.name, d.dlo, d.dhi);
    return Status::OK();
  };
  return f;
}

// Plain double members.
template <auto M, typename T = typename MemberOf<M>::Class>
FieldDef<T> Real(const char* name, Writable w, double lo, double hi) {
  FieldDef<T> f = Base<M>(name, w);
  f.dlo = lo;
  f.dhi = hi;
  f.to_json = [](const T& r, Json& j, const FieldDef<T>& d) { j[d.name] = r.*M; };
  f.from_json = [](T& r, const Json& v, const FieldDef<T>& d, const FieldContext&) -> Status {
    if (!v.is_number()) return TypeError(d.name, "a number");
    double x = v.template get<double>();
    if (!InRange(x, d.dlo, d.dhi)) return RangeError(d.name, d.dlo, d.dhi);
    r.*M = x;
    return Status::OK();
  };
  f.check = [](const T& r, const FieldDef<T>& d, const FieldContext&) -> Status {
    if (!InRange(r.*M, d.dlo, d.dhi)) return RangeError(d.name, d.dlo, d.dhi);
    return Status::OK();
  };
  return f;
}

// Enum members; names are the closed set, in value order.
template <auto M, typename T = typename MemberOf<M>::Class>
FieldDef<T> Enum(const char* name, Writable w, std::span<const std::string_view> names) {
  using E = typename MemberOf<M>::Value;
  FieldDef<T> f = Base<M>(name, w);
  f.enum_names = names;
  f.to_json = [](const T& r, Json& j, const FieldDef<T>& d) {
    size_t i = static_cast<size_t>(r.*M);
    if (i < d.enum_names.size())
      j[d.name] = d.enum_names[i];
    else
      j[d.name] = static_cast<int>(r.*M);
  };
  f.from_json = [](T& r, const Json& v, const FieldDef<T>& d, const FieldContext&) -> Status {
    if (v.is_string()) {
      const auto& s = v.template get_ref<const std::string&>();
      for (size_t i = 0; i < d.enum_names.size(); ++i) {
        if (s == d.enum_names[i]) {
          r.*M = static_cast<E>(i);
          return Status::OK();
        }
      }
    }
    std::string all;
    for (auto n : d.enum_names) all += (all.empty() ? "" : ", ") + std::string(n);
    return Status::InvalidArgument(std::string(d.name) + " must be one of: " + all);
  };
  f.check = [](const T& r, const FieldDef<T>& d, const FieldContext&) -> Status {
    auto i = static_cast<int64_t>(r.*M);
    if (i < 0 || i >= static_cast<int64_t>(d.enum_names.size())) {
      return Status::InvalidArgument(std::string(d.name) + " has an unknown value " +
                                     std::to_string(i));
    }
    return Status::OK();
  };
  return f;
}

Status UuidFromJson(const Json& v, const char* field, Uuid* out) {
  if (!v.is_string()) return TypeError(field, "a UUID string");
  auto u = Uuid::Parse(v.get_ref<const std::string&>());
  if (!u) return Status::InvalidArgument(std::string(field) + " is not a valid UUID");
  *out = *u;
  return Status::OK();
}

// std::unique_ptr<fb::Uuid> members (a nullable reference).
template <auto M, typename T = typename MemberOf<M>::Class>
FieldDef<T> Ref(const char* name, Writable w) {
  FieldDef<T> f = Base<M>(name, w);
  f.to_json = [](const T& r, Json& j, const FieldDef<T>& d) {
    if (r.*M)
      j[d.name] = ToUuid((r.*M).get()).ToString();
    else
      j[d.name] = nullptr;
  };
  f.from_json = [](T& r, const Json& v, const FieldDef<T>& d, const FieldContext&) -> Status {
    if (v.is_null()) {
      (r.*M).reset();
      return Status::OK();
    }
    Uuid u;
    AS_RETURN_IF_ERROR(UuidFromJson(v, d.name, &u));
    r.*M = std::make_unique<fb::Uuid>(ToFb(u));
    return Status::OK();
  };
  f.check = [](const T&, const FieldDef<T>&, const FieldContext&) { return Status::OK(); };
  return f;
}

template <auto M, typename T = typename MemberOf<M>::Class>
FieldDef<T> TextList(const char* name, Writable w, int64_t max_items, int64_t max_item_bytes) {
  FieldDef<T> f = Base<M>(name, w);
  f.lo = max_item_bytes;
  f.hi = max_items;
  f.to_json = [](const T& r, Json& j, const FieldDef<T>& d) { j[d.name] = r.*M; };
  f.from_json = [](T& r, const Json& v, const FieldDef<T>& d, const FieldContext& ctx) -> Status {
    if (v.is_null()) {
      (r.*M).clear();
      return Status::OK();
    }
    if (!v.is_array()) return TypeError(d.name, "an array of strings");
    std::vector<std::string> items;
    for (const auto& e : v) {
      if (!e.is_string()) return TypeError(d.name, "an array of strings");
      items.push_back(e.template get<std::string>());
    }
    r.*M = std::move(items);
    return d.check(r, d, ctx);
  };
  f.check = [](const T& r, const FieldDef<T>& d, const FieldContext&) -> Status {
    if (static_cast<int64_t>((r.*M).size()) > d.hi)
      return Status::InvalidArgument(std::string(d.name) + " has more than " +
                                     std::to_string(d.hi) + " items");
    for (const auto& s : r.*M) {
      if (s.empty()) return Status::InvalidArgument(std::string(d.name) + " has an empty item");
      AS_RETURN_IF_ERROR(CheckText(d.name, s, static_cast<size_t>(d.lo)));
    }
    return Status::OK();
  };
  return f;
}

template <auto M, typename T = typename MemberOf<M>::Class>
FieldDef<T> RefList(const char* name, Writable w, int64_t max_items) {
  FieldDef<T> f = Base<M>(name, w);
  f.hi = max_items;
  f.to_json = [](const T& r, Json& j, const FieldDef<T>& d) {
    Json a = Json::array();
    for (const auto& u : r.*M) a.push_back(ToUuid(&u).ToString());
    j[d.name] = std::move(a);
  };
  f.from_json = [](T& r, const Json& v, const FieldDef<T>& d, const FieldContext& ctx) -> Status {
    if (v.is_null()) {
      (r.*M).clear();
      return Status::OK();
    }
    if (!v.is_array()) return TypeError(d.name, "an array of UUIDs");
    std::vector<fb::Uuid> items;
    for (const auto& e : v) {
      Uuid u;
      AS_RETURN_IF_ERROR(UuidFromJson(e, d.name, &u));
      items.push_back(ToFb(u));
    }
    r.*M = std::move(items);
    return d.check(r, d, ctx);
  };
  f.check = [](const T& r, const FieldDef<T>& d, const FieldContext&) -> Status {
    if (static_cast<int64_t>((r.*M).size()) > d.hi)
      return Status::InvalidArgument(std::string(d.name) + " has more than " +
                                     std::to_string(d.hi) + " items");
    return Status::OK();
  };
  return f;
}

// std::vector<uint8_t> members, as lowercase hex (API key hashes in exports).
template <auto M, typename T = typename MemberOf<M>::Class>
FieldDef<T> Hex(const char* name, Writable w, int64_t max_bytes) {
  FieldDef<T> f = Base<M>(name, w);
  f.hi = max_bytes;
  f.to_json = [](const T& r, Json& j, const FieldDef<T>& d) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string s;
    for (uint8_t b : r.*M) {
      s.push_back(kHex[b >> 4]);
      s.push_back(kHex[b & 15]);
    }
    j[d.name] = s;
  };
  f.from_json = [](T& r, const Json& v, const FieldDef<T>& d, const FieldContext&) -> Status {
    if (!v.is_string()) return TypeError(d.name, "a hex string");
    const auto& s = v.template get_ref<const std::string&>();
    if (s.size() % 2 || static_cast<int64_t>(s.size() / 2) > d.hi)
      return TypeError(d.name, "a hex string of bounded length");
    std::vector<uint8_t> out;
    for (size_t i = 0; i < s.size(); i += 2) {
      auto nib = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        return -1;
      };
      int hi = nib(s[i]), lo = nib(s[i + 1]);
      if (hi < 0 || lo < 0) return TypeError(d.name, "a lowercase hex string");
      out.push_back(static_cast<uint8_t>(hi << 4 | lo));
    }
    r.*M = std::move(out);
    return Status::OK();
  };
  f.check = [](const T& r, const FieldDef<T>& d, const FieldContext&) -> Status {
    if (static_cast<int64_t>((r.*M).size()) > d.hi) return TypeError(d.name, "bounded");
    return Status::OK();
  };
  return f;
}

// std::vector<float> members (embeddings): finite values; the dimension is checked by
// the store, which knows its configuration.
template <auto M, typename T = typename MemberOf<M>::Class>
FieldDef<T> Floats(const char* name, Writable w, int64_t max_items) {
  FieldDef<T> f = Base<M>(name, w);
  f.hi = max_items;
  f.to_json = [](const T& r, Json& j, const FieldDef<T>& d) { j[d.name] = r.*M; };
  f.from_json = [](T& r, const Json& v, const FieldDef<T>& d, const FieldContext& ctx) -> Status {
    if (!v.is_array()) return TypeError(d.name, "an array of numbers");
    std::vector<float> out;
    for (const auto& e : v) {
      if (!e.is_number()) return TypeError(d.name, "an array of numbers");
      out.push_back(e.template get<float>());
    }
    r.*M = std::move(out);
    return d.check(r, d, ctx);
  };
  f.check = [](const T& r, const FieldDef<T>& d, const FieldContext&) -> Status {
    if (static_cast<int64_t>((r.*M).size()) > d.hi) return TypeError(d.name, "bounded");
    for (float x : r.*M)
      if (!std::isfinite(x))
        return Status::InvalidArgument(std::string(d.name) + " has NaN or infinity");
    return Status::OK();
  };
  return f;
}

constexpr auto N = Writable::kNever;
constexpr auto O = Writable::kOwner;
constexpr auto P = Writable::kPrivileged;

constexpr int64_t kName = 200;  // names, titles, slugs
constexpr int64_t kShort = 64;  // colors, statuses, plans, providers
constexpr int64_t kUrl = 2048;
constexpr int64_t kLong = 64 << 10;  // descriptions, prompts, notes

constexpr std::string_view kUserRoles[] = {"user", "admin", "superadmin"};
constexpr std::string_view kVisibility[] = {"private", "public"};
constexpr std::string_view kMessageRoles[] = {"user", "assistant", "system", "tool"};
constexpr std::string_view kKeyRoles[] = {"service", "admin", "user"};
constexpr std::string_view kAgentTypes[] = {"routing", "chat", "artifact", "git_mcp", "other"};
constexpr std::string_view kMemoryTypes[] = {"preference", "context", "fact", "instruction"};
constexpr std::string_view kLimitScopes[] = {"global", "tenant", "user", "agent"};
constexpr std::string_view kLimitTypes[] = {"requests_per_minute", "requests_per_hour",
                                            "requests_per_day", "concurrent"};
constexpr std::string_view kQuotaTypes[] = {"tokens", "api_calls", "storage_bytes", "users"};
constexpr std::string_view kQuotaPeriods[] = {"month", "day", "none"};

using namespace fb;  // NOLINT: the tables below name dozens of generated members

}  // namespace

#define AS_FIELDS(T, ...)                                         \
  template <>                                                     \
  std::span<const FieldDef<T>> FieldsOf<T>() {                    \
    static const std::vector<FieldDef<T>> fields = {__VA_ARGS__}; \
    return fields;                                                \
  }

AS_FIELDS(TenantT, Ref<&TenantT::id>("id", N), Text<&TenantT::name>("name", O, kName),
          Text<&TenantT::slug>("slug", O, kShort), Text<&TenantT::plan>("plan", O, kShort),
          Time<&TenantT::created_at>("created_at", N), Time<&TenantT::updated_at>("updated_at", N),
          Time<&TenantT::deleted_at>("deleted_at", N))

AS_FIELDS(UserT, Ref<&UserT::id>("id", N), Ref<&UserT::tenant_id>("tenant_id", P),
          Text<&UserT::email>("email", P, 254), Text<&UserT::full_name>("full_name", O, kName),
          Text<&UserT::avatar_url>("avatar_url", O, kUrl),
          Text<&UserT::job_title>("job_title", O, kName),
          Text<&UserT::department>("department", O, kName),
          Text<&UserT::organization>("organization", O, kName),
          Enum<&UserT::role>("role", P, kUserRoles),
          JsonDoc<&UserT::preferences>("preferences", O, JsonShape::kObject),
          JsonDoc<&UserT::notification_settings>("notification_settings", O, JsonShape::kObject),
          Bool<&UserT::is_active>("is_active", P),
          Bool<&UserT::onboarding_completed>("onboarding_completed", O),
          Time<&UserT::last_seen_at>("last_seen_at", O),
          Time<&UserT::last_sign_in_at>("last_sign_in_at", P),
          Time<&UserT::created_at>("created_at", N), Time<&UserT::updated_at>("updated_at", N),
          Time<&UserT::deleted_at>("deleted_at", N))

AS_FIELDS(AgentT, Ref<&AgentT::id>("id", N), Ref<&AgentT::tenant_id>("tenant_id", P),
          Ref<&AgentT::creator_id>("creator_id", N), Text<&AgentT::name>("name", O, kName),
          Text<&AgentT::description>("description", O, kLong), Text<&AgentT::type>("type", O, 50),
          Text<&AgentT::system_prompt>("system_prompt", O, kLong),
          Text<&AgentT::model>("model", O, kName),
          OptReal<&AgentT::temperature>("temperature", O, 0.0, 2.0),
          OptInt<&AgentT::max_tokens>("max_tokens", O, 1, 10'000'000),
          JsonDoc<&AgentT::capabilities>("capabilities", O),
          Bool<&AgentT::is_public>("is_public", O), Time<&AgentT::created_at>("created_at", N),
          Time<&AgentT::updated_at>("updated_at", N), Time<&AgentT::deleted_at>("deleted_at", N))

AS_FIELDS(
    UserAgentT, Ref<&UserAgentT::id>("id", N), Ref<&UserAgentT::user_id>("user_id", N),
    Ref<&UserAgentT::agent_id>("agent_id", N),
    Ref<&UserAgentT::original_agent_id>("original_agent_id", O),
    Bool<&UserAgentT::is_user_copy>("is_user_copy", O),
    Text<&UserAgentT::custom_name>("custom_name", O, kName),
    Text<&UserAgentT::custom_description>("custom_description", O, kLong),
    Text<&UserAgentT::custom_avatar>("custom_avatar", O, kUrl),
    Text<&UserAgentT::custom_color>("custom_color", O, kShort),
    Text<&UserAgentT::custom_system_prompt>("custom_system_prompt", O, kLong),
    OptReal<&UserAgentT::custom_temperature>("custom_temperature", O, 0.0, 2.0),
    OptInt<&UserAgentT::custom_max_tokens>("custom_max_tokens", O, 1, 10'000'000),
    Bool<&UserAgentT::is_favorite>("is_favorite", O), Bool<&UserAgentT::is_pinned>("is_pinned", O),
    Text<&UserAgentT::folder>("folder", O, kName),
    TextList<&UserAgentT::tags>("tags", O, 64, kShort),
    Int<&UserAgentT::sort_order>("sort_order", O, kMinI32, kMaxI32),
    Text<&UserAgentT::display_position>("display_position", O, kShort),
    Int<&UserAgentT::usage_count>("usage_count", N, 0, kMaxI64),
    Int<&UserAgentT::message_count>("message_count", N, 0, kMaxI64),
    Int<&UserAgentT::conversation_count>("conversation_count", N, 0, kMaxI64),
    Int<&UserAgentT::success_count>("success_count", N, 0, kMaxI64),
    Int<&UserAgentT::error_count>("error_count", N, 0, kMaxI64),
    OptReal<&UserAgentT::user_rating>("user_rating", N, 1.0, 5.0),
    OptReal<&UserAgentT::quality_score>("quality_score", N, 0.0, 1.0),
    Time<&UserAgentT::last_rating_at>("last_rating_at", N),
    OptReal<&UserAgentT::avg_response_time_ms>("avg_response_time_ms", N, 0.0, 1e12),
    Int<&UserAgentT::total_tokens_used>("total_tokens_used", N, 0, kMaxI64),
    Int<&UserAgentT::total_cost>("total_cost", N, 0, kMaxI64),
    Time<&UserAgentT::added_at>("added_at", N),
    Time<&UserAgentT::first_used_at>("first_used_at", N),
    Time<&UserAgentT::last_used_at>("last_used_at", N),
    Time<&UserAgentT::created_at>("created_at", N), Time<&UserAgentT::updated_at>("updated_at", N),
    Time<&UserAgentT::archived_at>("archived_at", O),
    Time<&UserAgentT::deleted_at>("deleted_at", N), Bool<&UserAgentT::is_active>("is_active", O),
    Bool<&UserAgentT::is_enabled>("is_enabled", O), Bool<&UserAgentT::is_visible>("is_visible", O),
    Text<&UserAgentT::status>("status", O, kShort),
    JsonDoc<&UserAgentT::settings>("settings", O, JsonShape::kObject),
    JsonDoc<&UserAgentT::preferences>("preferences", O, JsonShape::kObject),
    JsonDoc<&UserAgentT::ui_config>("ui_config", O, JsonShape::kObject),
    JsonDoc<&UserAgentT::notification_settings>("notification_settings", O, JsonShape::kObject),
    JsonDoc<&UserAgentT::metadata>("metadata", O, JsonShape::kObject),
    JsonDoc<&UserAgentT::source_details>("source_details", O, JsonShape::kObject),
    JsonDoc<&UserAgentT::share_settings>("share_settings", O, JsonShape::kObject),
    Bool<&UserAgentT::notifications_enabled>("notifications_enabled", O),
    Ref<&UserAgentT::last_conversation_id>("last_conversation_id", O),
    Text<&UserAgentT::notes>("notes", O, kLong),
    Text<&UserAgentT::quick_notes>("quick_notes", O, kLong),
    Text<&UserAgentT::source>("source", O, kShort), Bool<&UserAgentT::is_shared>("is_shared", O),
    RefList<&UserAgentT::shared_with>("shared_with", O, 1000),
    Ref<&UserAgentT::team_id>("team_id", O))

AS_FIELDS(ChatT, Ref<&ChatT::id>("id", N), Ref<&ChatT::user_id>("user_id", N),
          Ref<&ChatT::agent_id>("agent_id", O), Text<&ChatT::title>("title", O, kName * 5),
          Enum<&ChatT::visibility>("visibility", O, kVisibility),
          JsonDoc<&ChatT::last_context>("last_context", O),
          Int<&ChatT::message_count>("message_count", N, 0, kMaxI64),
          Int<&ChatT::total_input_tokens>("total_input_tokens", N, 0, kMaxI64),
          Int<&ChatT::total_output_tokens>("total_output_tokens", N, 0, kMaxI64),
          Int<&ChatT::total_cost>("total_cost", N, 0, kMaxI64),
          Time<&ChatT::created_at>("created_at", N), Time<&ChatT::updated_at>("updated_at", N),
          Time<&ChatT::deleted_at>("deleted_at", N))

AS_FIELDS(MessageT, Ref<&MessageT::id>("id", N), Ref<&MessageT::chat_id>("chat_id", N),
          Ref<&MessageT::user_id>("user_id", N), Enum<&MessageT::role>("role", N, kMessageRoles),
          JsonDoc<&MessageT::parts>("parts", N, JsonShape::kArray),
          JsonDoc<&MessageT::attachments>("attachments", N, JsonShape::kArray),
          Text<&MessageT::model_used>("model_used", N, kName),
          Int<&MessageT::input_tokens>("input_tokens", N, 0, kMaxInt32),
          Int<&MessageT::output_tokens>("output_tokens", N, 0, kMaxInt32),
          Int<&MessageT::cost>("cost", N, 0, kMaxMicroUsd),
          Time<&MessageT::created_at>("created_at", N))

AS_FIELDS(VoteT, Ref<&VoteT::chat_id>("chat_id", N), Ref<&VoteT::message_id>("message_id", N),
          Ref<&VoteT::user_id>("user_id", N), Bool<&VoteT::is_upvoted>("is_upvoted", O),
          Time<&VoteT::created_at>("created_at", N), Time<&VoteT::updated_at>("updated_at", N))

AS_FIELDS(AdminConfigT, Text<&AdminConfigT::config_key>("config_key", N, kName),
          JsonDoc<&AdminConfigT::config_data>("config_data", O),
          Ref<&AdminConfigT::updated_by>("updated_by", N),
          Time<&AdminConfigT::updated_at>("updated_at", N))

AS_FIELDS(ApiKeyT, Ref<&ApiKeyT::id>("id", N), Hex<&ApiKeyT::secret_hash>("secret_hash", N, 64),
          Enum<&ApiKeyT::role>("role", N, kKeyRoles), Ref<&ApiKeyT::user_id>("user_id", N),
          Ref<&ApiKeyT::tenant_id>("tenant_id", N), Text<&ApiKeyT::name>("name", O, kName),
          Time<&ApiKeyT::created_at>("created_at", N), Time<&ApiKeyT::expires_at>("expires_at", O),
          Time<&ApiKeyT::revoked_at>("revoked_at", N),
          Time<&ApiKeyT::last_used_at>("last_used_at", N))

AS_FIELDS(UserMemoryT, Ref<&UserMemoryT::id>("id", N), Ref<&UserMemoryT::user_id>("user_id", N),
          Enum<&UserMemoryT::memory_type>("memory_type", O, kMemoryTypes),
          Text<&UserMemoryT::memory_key>("memory_key", N, kName),
          JsonDoc<&UserMemoryT::memory_value>("memory_value", O, JsonShape::kObject),
          Real<&UserMemoryT::importance_score>("importance_score", O, 0.0, 1.0),
          Int<&UserMemoryT::access_count>("access_count", N, 0, kMaxI64),
          Time<&UserMemoryT::last_accessed_at>("last_accessed_at", N),
          Floats<&UserMemoryT::embedding>("embedding", O, 65536),
          Time<&UserMemoryT::expires_at>("expires_at", O),
          Time<&UserMemoryT::created_at>("created_at", N),
          Time<&UserMemoryT::updated_at>("updated_at", N))

AS_FIELDS(UsageLogT, Ref<&UsageLogT::id>("id", N), Ref<&UsageLogT::user_id>("user_id", N),
          Ref<&UsageLogT::tenant_id>("tenant_id", N), Ref<&UsageLogT::chat_id>("chat_id", N),
          Ref<&UsageLogT::agent_id>("agent_id", N),
          Enum<&UsageLogT::agent_type>("agent_type", N, kAgentTypes),
          Text<&UsageLogT::provider>("provider", N, kShort),
          Text<&UsageLogT::model>("model", N, kName),
          Int<&UsageLogT::input_tokens>("input_tokens", N, 0, kMaxInt32),
          Int<&UsageLogT::output_tokens>("output_tokens", N, 0, kMaxInt32),
          Int<&UsageLogT::total_tokens>("total_tokens", N, 0, kMaxInt32),
          Int<&UsageLogT::input_cost>("input_cost", N, 0, kMaxMicroUsd),
          Int<&UsageLogT::output_cost>("output_cost", N, 0, kMaxMicroUsd),
          Int<&UsageLogT::total_cost>("total_cost", N, 0, kMaxMicroUsd),
          Time<&UsageLogT::request_ts>("request_ts", N),
          Time<&UsageLogT::response_ts>("response_ts", N),
          Int<&UsageLogT::duration_ms>("duration_ms", N, 0, kMaxInt32),
          Bool<&UsageLogT::success>("success", N),
          JsonDoc<&UsageLogT::metadata>("metadata", N, JsonShape::kObject))

AS_FIELDS(RateLimitConfigT, Ref<&RateLimitConfigT::id>("id", N),
          Enum<&RateLimitConfigT::scope>("scope", N, kLimitScopes),
          Ref<&RateLimitConfigT::scope_id>("scope_id", N),
          Enum<&RateLimitConfigT::limit_type>("limit_type", N, kLimitTypes),
          Int<&RateLimitConfigT::limit_value>("limit_value", O, 0, kMaxInt32),
          Bool<&RateLimitConfigT::is_active>("is_active", O),
          Time<&RateLimitConfigT::created_at>("created_at", N),
          Time<&RateLimitConfigT::updated_at>("updated_at", N))

AS_FIELDS(QuotaT, Ref<&QuotaT::tenant_id>("tenant_id", N),
          Enum<&QuotaT::quota_type>("quota_type", N, kQuotaTypes),
          Int<&QuotaT::quota_limit>("quota_limit", O, 0, kMaxI64),
          Int<&QuotaT::current_usage>("current_usage", N, 0, kMaxI64),
          Time<&QuotaT::period_start>("period_start", N),
          Time<&QuotaT::period_end>("period_end", N),
          Int<&QuotaT::alert_threshold_pct>("alert_threshold_pct", O, 0, 100),
          Bool<&QuotaT::is_exceeded>("is_exceeded", N), Time<&QuotaT::updated_at>("updated_at", N),
          Enum<&QuotaT::period>("period", O, kQuotaPeriods))

AS_FIELDS(UsageRollupT, Ref<&UsageRollupT::owner_id>("owner_id", N),
          Time<&UsageRollupT::day>("day", N),
          Enum<&UsageRollupT::agent_type>("agent_type", N, kAgentTypes),
          Text<&UsageRollupT::provider>("provider", N, kShort),
          Text<&UsageRollupT::model>("model", N, kName),
          Int<&UsageRollupT::requests>("requests", N, 0, kMaxI64),
          Int<&UsageRollupT::success_count>("success_count", N, 0, kMaxI64),
          Int<&UsageRollupT::error_count>("error_count", N, 0, kMaxI64),
          Int<&UsageRollupT::input_tokens>("input_tokens", N, 0, kMaxI64),
          Int<&UsageRollupT::output_tokens>("output_tokens", N, 0, kMaxI64),
          Int<&UsageRollupT::total_tokens>("total_tokens", N, 0, kMaxI64),
          Int<&UsageRollupT::input_cost>("input_cost", N, 0, kMaxI64),
          Int<&UsageRollupT::output_cost>("output_cost", N, 0, kMaxI64),
          Int<&UsageRollupT::total_cost>("total_cost", N, 0, kMaxI64),
          Int<&UsageRollupT::duration_ms>("duration_ms", N, 0, kMaxI64))

#undef AS_FIELDS

}  // namespace agentstore::internal
