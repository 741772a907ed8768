// Collections: the Engine's calls for run-time declared record types (declare, alter,
// put / get / merge-patch update / soft and hard delete, query and count through an
// index, TTL sweep), their recovery at open, and the user-delete cascade into them.
#include "collections.h"

#include <algorithm>

#include "engine_impl.h"
#include "feed_notes.h"
#include "validate.h"

namespace agentstore {
namespace internal {
namespace {

using coll::FieldSpec;
using coll::FieldType;
using coll::IndexSpec;
using coll::Json;
using coll::OwnerKind;
using coll::Schema;

std::string DefKey(std::string_view name) {
  std::string k(1, kCollectionDefPrefix);  // appended, not operator+: GCC 12 -Wrestrict noise
  k.append(name);
  return k;
}
std::string RecPrefix(std::string_view name) {
  std::string k(1, kCollectionRecordPrefix);
  k.append(name);
  k.push_back('\0');
  return k;
}

std::string Hex(std::string_view b) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : b) {
    out.push_back(d[c >> 4]);
    out.push_back(d[c & 15]);
  }
  return out;
}
bool Unhex(std::string_view h, std::string* out) {
  if (h.size() % 2) return false;
  auto v = [](char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
  };
  out->clear();
  for (size_t i = 0; i < h.size(); i += 2) {
    int a = v(h[i]), b = v(h[i + 1]);
    if (a < 0 || b < 0) return false;
    out->push_back(static_cast<char>(a * 16 + b));
  }
  return true;
}
// The smallest string greater than every string that starts with `p` ("" = unbounded).
std::string PrefixEnd(std::string p) {
  while (!p.empty() && static_cast<unsigned char>(p.back()) == 0xFF) p.pop_back();
  if (!p.empty()) p.back() = static_cast<char>(static_cast<unsigned char>(p.back()) + 1);
  return p;
}

Uuid OwnerOf(const Schema& s, const Json& rec) {
  if (s.owner_field < 0) return Uuid();
  auto it = rec.find(s.fields[s.owner_field].name);
  if (it == rec.end()) return Uuid();
  return Uuid::Parse(it->get<std::string>()).value_or(Uuid());
}

CollectionRecord MetaOf(const Schema& s, const Json& rec, std::string bytes) {
  CollectionRecord r;
  r.bytes = std::move(bytes);
  r.owner = OwnerOf(s, rec);
  if (auto it = rec.find("deleted_at"); it != rec.end()) r.deleted_at = it->get<int64_t>();
  if (s.ttl_field >= 0)
    if (auto it = rec.find(s.fields[s.ttl_field].name); it != rec.end())
      r.expires_at = it->get<int64_t>();
  return r;
}

bool Expired(const CollectionRecord& r, int64_t now) { return r.expires_at && now >= r.expires_at; }

// Replaces (or removes, or inserts) one record in memory with its index entries.
void ApplyRecord(Collection& c, const std::string& pk, const Json* old_rec, const Json* new_rec,
                 std::string bytes) {
  const Schema& s = *c.schema;
  if (old_rec) {
    for (size_t i = 0; i < s.indexes.size(); ++i)
      c.indexes[i].erase(coll::KeyOf(s, s.indexes[i].fields, *old_rec) + pk);
    auto it = c.records.find(pk);
    if (it != c.records.end()) {
      auto o = c.by_owner.find(it->second.owner);
      if (o != c.by_owner.end()) {
        o->second.erase(pk);
        if (o->second.empty()) c.by_owner.erase(o);
      }
      if (it->second.expires_at) c.expiry.erase({it->second.expires_at, pk});
      c.records.erase(it);
    }
  }
  if (new_rec) {
    CollectionRecord meta = MetaOf(s, *new_rec, std::move(bytes));
    if (s.owner_field >= 0) c.by_owner[meta.owner].insert(pk);
    if (meta.expires_at) c.expiry.emplace(meta.expires_at, pk);
    auto it = c.records.insert_or_assign(pk, std::move(meta)).first;
    for (size_t i = 0; i < s.indexes.size(); ++i)
      c.indexes[i].emplace(coll::KeyOf(s, s.indexes[i].fields, *new_rec) + pk, &*it);
  }
}

// Notes the owner of the hard delete that follows in `batch`, for the change feed (a
// delete carries only its key): a user with its tenant, or a tenant; nothing when the
// collection's records have no owner.
void NoteDeleteOwner(const EngineState& impl, const Schema& s, const Uuid& owner,
                     storage::WriteBatch& batch) {
  if (s.owner == OwnerKind::kUser)
    batch.Note(impl.OwnerNoteFor(owner));
  else if (s.owner == OwnerKind::kTenant)
    batch.Note(OwnerNote(owner));
}

// already_exists when a unique index already holds `rec`'s values for another record
// that has not expired at `now` (an expired record is gone for every read; the sweep
// only frees its memory). Null values never conflict (as in SQL).
Status CheckUnique(const Collection& c, const std::string& pk, const Json& rec, int64_t now) {
  const Schema& s = *c.schema;
  for (size_t i = 0; i < s.indexes.size(); ++i) {
    const IndexSpec& idx = s.indexes[i];
    if (!idx.unique) continue;
    bool has_null = false;
    for (int fi : idx.fields) {
      auto it = rec.find(s.fields[fi].name);
      has_null |= (it == rec.end() || it->is_null()) && s.fields[fi].default_value.is_null();
    }
    if (has_null) continue;
    std::string prefix = coll::KeyOf(s, idx.fields, rec);
    for (auto it = c.indexes[i].lower_bound(prefix);
         it != c.indexes[i].end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it)
      if (it->second->first != pk && !Expired(it->second->second, now))
        return Status::AlreadyExists("unique index " + idx.name + " of " + s.name +
                                     " already holds these values");
  }
  return Status::OK();
}

Status ParseJsonText(std::string_view what, std::string_view text, Json* out) {
  if (text.size() > (4u << 20))
    return Status::InvalidArgument(std::string(what) + " is over 4 MiB");
  AS_RETURN_IF_ERROR(CheckJsonDepth(what, text));
  *out = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (out->is_discarded()) return Status::InvalidArgument(std::string(what) + " is not valid JSON");
  return Status::OK();
}

// A record's primary key from the client's key: {"id": ..., "created_at": ...} or, for
// collections keyed by id alone, the bare id.
Status PrimaryKey(const Schema& s, std::string_view text, std::string* pk) {
  Json key;
  if (!text.empty() && text.front() != '{') {
    if (s.key.size() != 1) return Status::InvalidArgument("this collection's key is an object");
    key = Json{{"id", std::string(text)}};
  } else {
    AS_RETURN_IF_ERROR(ParseJsonText("key", text, &key));
    if (!key.is_object()) return Status::InvalidArgument("key must be a JSON object");
  }
  if (key.size() != s.key.size())
    return Status::InvalidArgument("key must name exactly the key fields of " + s.name);
  pk->clear();
  for (int fi : s.key) {
    const FieldSpec& f = s.fields[fi];
    auto it = key.find(f.name);
    if (it == key.end() || it->is_null())
      return Status::InvalidArgument("key needs field " + f.name);
    Json c;
    AS_RETURN_IF_ERROR(coll::Canonical(s, f, *it, &c));
    coll::AppendKeyPart(f, c, pk);
  }
  return Status::OK();
}

// Who a scope may see in a collection, decided once per call before any collection lock.
struct Viewer {
  enum Kind { kAll, kOwner, kNothing, kTenantOfOwner } kind = kAll;
  Uuid owner;   // kOwner: the one owner whose records are visible
  Uuid tenant;  // kTenantOfOwner
};

std::optional<Uuid> TenantOfUser(EngineState& impl, const Uuid& user) {
  Partition& shard = impl.ShardOf(user);
  std::shared_lock lock(shard.mu);
  auto it = shard.users.find(user);
  if (it == shard.users.end()) return std::nullopt;
  const auto* u = View<fb::User>(shard, it->second);
  if (!u->tenant_id()) return Uuid();
  return ToUuid(u->tenant_id());
}

Viewer ViewerOf(EngineState& impl, const Scope& scope, const Schema& s) {
  Viewer v;
  if (scope.is_user()) {
    if (s.owner == OwnerKind::kUser) return {Viewer::kOwner, scope.user(), {}};
    if (s.owner == OwnerKind::kTenant) {
      std::optional<Uuid> t = scope.tenant();
      if (!t) t = TenantOfUser(impl, scope.user());
      if (!t || t->IsNil()) return {Viewer::kNothing, {}, {}};
      return {Viewer::kOwner, *t, {}};
    }
    return v;
  }
  if (scope.tenant()) {
    if (s.owner == OwnerKind::kTenant) return {Viewer::kOwner, *scope.tenant(), {}};
    if (s.owner == OwnerKind::kUser) return {Viewer::kTenantOfOwner, {}, *scope.tenant()};
  }
  return v;
}

// Visible without a lookup (kTenantOfOwner needs FinalVisible outside the lock).
bool QuickVisible(const Viewer& v, const CollectionRecord& r) {
  switch (v.kind) {
    case Viewer::kAll:
    case Viewer::kTenantOfOwner:
      return true;
    case Viewer::kOwner:
      return r.owner == v.owner;
    case Viewer::kNothing:
      return false;
  }
  return false;
}
bool FinalVisible(EngineState& impl, const Viewer& v, const Uuid& owner) {
  if (v.kind != Viewer::kTenantOfOwner) return true;
  auto t = TenantOfUser(impl, owner);
  return t && *t == v.tenant;
}

// Who may write: user-owned records the service or their user; tenant-owned and unowned
// ones the service and admins (unowned: not tenant-scoped ones).
Status CheckWriter(const Scope& scope, const Schema& s) {
  if (s.owner == OwnerKind::kUser) {
    if (scope.is_admin())
      return Status::PermissionDenied("admin keys do not write user-owned collections");
    return Status::OK();
  }
  if (scope.is_user()) return Status::PermissionDenied("users may not write collection " + s.name);
  if (s.owner == OwnerKind::kNone && scope.tenant())
    return Status::PermissionDenied("tenant-scoped keys may not write unowned collections");
  return Status::OK();
}

Status NoCollection(std::string_view name) {
  return Status::NotFound("collection " + std::string(name) + " not found");
}

// Writes the declaration (and nothing else) durably.
Status PersistSchema(EngineState& impl, const Schema& s) {
  storage::WriteBatch batch;
  batch.Put(DefKey(s.name), s.ToJson().dump());
  AS_ASSIGN_OR_RETURN(uint64_t ticket, impl.Log(batch));
  return impl.Durable(ticket);
}

std::shared_ptr<Collection> NewCollection(std::shared_ptr<const Schema> s) {
  auto c = std::make_shared<Collection>();
  c->indexes.resize(s->indexes.size());
  c->building.assign(s->indexes.size(), false);
  c->schema = std::move(s);
  return c;
}

// A record in its API form as JSON text.
Result<std::string> ApiText(const Schema& s, std::string_view bytes) {
  return coll::ToApiText(s, bytes);
}

// Applies an RFC 7386 merge patch to a canonical record: json fields merge recursively
// (unless replacing), every other field is replaced or (null) removed.
Status PatchRecord(const Schema& s, const Json& patch, JsonMode mode, Json* rec) {
  if (!patch.is_object()) return Status::InvalidArgument("patch must be a JSON object");
  for (const auto& [k, v] : patch.items()) {
    int fi = s.Field(k);
    if (fi < 0) return Status::InvalidArgument("unknown field " + k + " in collection " + s.name);
    const FieldSpec& f = s.fields[fi];
    if (f.system || fi == s.owner_field || std::find(s.key.begin(), s.key.end(), fi) != s.key.end())
      return Status::InvalidArgument("field " + k +
                                     " cannot be patched (store-maintained, key "
                                     "or owner)");
    if (v.is_null()) {
      if (f.required) return Status::InvalidArgument("field " + k + " is required");
      rec->erase(k);
      continue;
    }
    Json value = v;
    if (f.type == FieldType::kJson && mode == JsonMode::kMerge && rec->contains(k)) {
      value = (*rec)[k];
      value.merge_patch(v);
    }
    Json c;
    AS_RETURN_IF_ERROR(coll::Canonical(s, f, value, &c));
    (*rec)[k] = std::move(c);
  }
  return Status::OK();
}

// A query's key range over one index (or the primary key) from its `where` object.
struct Range {
  const IndexSpec* index = nullptr;  // null: primary key
  size_t index_pos = 0;
  std::string lower, upper;  // [lower, upper); upper "" = unbounded
};

Status PlanRange(const Schema& s, const Viewer& viewer, const CollectionQuery& q, Range* r,
                 bool* empty) {
  *empty = false;
  std::vector<int> fields = s.key;
  if (!q.index.empty() && q.index != "primary") {
    r->index = s.Index(q.index);
    if (!r->index)
      return Status::InvalidArgument("collection " + s.name + " has no index " + q.index);
    r->index_pos = static_cast<size_t>(r->index - s.indexes.data());
    fields = r->index->fields;
  }
  Json where;
  AS_RETURN_IF_ERROR(ParseJsonText("where", q.where.empty() ? "{}" : q.where, &where));
  if (!where.is_object()) return Status::InvalidArgument("where must be a JSON object");
  // A user sees only its own records: on an index that starts with the owner field the
  // condition is implied (and any other owner matches nothing).
  if (viewer.kind == Viewer::kOwner && !fields.empty() && fields[0] == s.owner_field) {
    const std::string& owner_name = s.fields[s.owner_field].name;
    if (!where.contains(owner_name)) {
      where[owner_name] = viewer.owner.ToString();
    } else if (where[owner_name].is_string()) {
      auto u = Uuid::Parse(where[owner_name].get<std::string>());
      if (u && *u != viewer.owner) *empty = true;
    }
  }
  std::string prefix;
  size_t used = 0;
  bool ranged = false;
  std::string lower, upper;
  for (int fi : fields) {
    const FieldSpec& f = s.fields[fi];
    auto it = where.find(f.name);
    if (it == where.end()) break;
    ++used;
    if (!it->is_object()) {  // equality
      Json c;
      if (!it->is_null()) AS_RETURN_IF_ERROR(coll::Canonical(s, f, *it, &c));
      coll::AppendKeyPart(f, c, &prefix);
      continue;
    }
    ranged = true;
    lower = prefix + '\1';  // a range never matches nulls
    upper = PrefixEnd(prefix);
    for (const auto& [op, v] : it->items()) {
      Json c;
      // Time ranges are clamped to the stored range, as every query range is (data model).
      if (f.type == FieldType::kTimestamp && v.is_number_integer())
        AS_RETURN_IF_ERROR(coll::Canonical(
            s, f,
            v.is_number_unsigned()
                ? static_cast<int64_t>(std::min<uint64_t>(v.get<uint64_t>(), kMaxTimeMicros))
                : std::clamp<int64_t>(v.get<int64_t>(), 0, kMaxTimeMicros),
            &c));
      else
        AS_RETURN_IF_ERROR(coll::Canonical(s, f, v, &c));
      std::string b = prefix;
      coll::AppendKeyPart(f, c, &b);
      if (op == "gte")
        lower = std::max(lower, b);
      else if (op == "gt")
        lower = std::max(lower, PrefixEnd(b));
      else if (op == "lt")
        upper = upper.empty() ? b : std::min(upper, b);
      else if (op == "lte")
        upper = upper.empty() ? PrefixEnd(b) : std::min(upper, PrefixEnd(b));
      else
        return Status::InvalidArgument("range operators are gt, gte, lt, lte; not " + op);
    }
    break;
  }
  if (used != where.size())
    return Status::InvalidArgument(
        "where may hold equality on a prefix of the index's fields, then one range; " +
        std::string(q.index.empty() ? "primary" : q.index) + " is (" +
        [&] {
          std::string n;
          for (int fi : fields) n += (n.empty() ? "" : ", ") + s.fields[fi].name;
          return n;
        }() +
        ")");
  if (ranged) {
    r->lower = lower;
    r->upper = upper;
  } else {
    r->lower = prefix;
    r->upper = PrefixEnd(prefix);
  }
  if (!r->upper.empty() && r->lower >= r->upper) *empty = true;
  return Status::OK();
}

// A record a query's walk found visible (so far: kTenantOfOwner still needs FinalVisible):
// its stored bytes are copied into the walk's one buffer under the collection's lock and
// rendered as JSON after it.
struct Candidate {
  Uuid owner;
  size_t offset = 0, size = 0;          // in the walk's buffer; offset 8-aligned for FlexBuffers
  size_t key_offset = 0, key_size = 0;  // its map entry in the walk's key buffer (a cursor)
};

// Up to `max` visible candidates in [lower, upper) after `cursor`, in order, under the
// collection's shared lock; their bytes appended to *bytes and their map entries to *keys
// unless null (counting), at most `max_bytes` of records (but at least one). Sets
// *last_entry to the last candidate's map entry (the next cursor) when any, and *more when
// the range holds further entries. `record_of` maps a map element to its record.
template <typename Map, typename RecordOf>
void Collect(const Map& m, RecordOf record_of, const Range& r, bool desc, const std::string& cursor,
             const Viewer& viewer, bool include_deleted, int64_t now, size_t max, size_t max_bytes,
             std::vector<Candidate>* out, std::string* bytes, std::string* keys,
             std::string* last_entry, bool* more) {
  *more = false;
  const std::string* last = nullptr;
  auto keep = [&](const std::string& entry, const RecordEntry& e) {
    const CollectionRecord& cr = e.second;
    if (!QuickVisible(viewer, cr) || Expired(cr, now) || (cr.deleted_at && !include_deleted))
      return true;
    if (out->size() == max ||
        (bytes && !out->empty() && bytes->size() + cr.bytes.size() > max_bytes)) {
      *more = true;
      return false;
    }
    Candidate cand{cr.owner};
    if (bytes) {
      bytes->resize((bytes->size() + 7) & ~size_t{7});
      cand.offset = bytes->size();
      cand.size = cr.bytes.size();
      bytes->append(cr.bytes);
    }
    if (keys) {
      cand.key_offset = keys->size();
      cand.key_size = entry.size();
      keys->append(entry);
    }
    out->push_back(cand);
    last = &entry;
    return true;
  };
  if (!desc) {
    auto it = m.lower_bound(r.lower);
    if (!cursor.empty() && cursor >= r.lower) it = m.upper_bound(cursor);
    for (; it != m.end() && (r.upper.empty() || it->first < r.upper); ++it)
      if (!keep(it->first, record_of(*it))) break;
  } else {
    auto it = r.upper.empty() ? m.end() : m.lower_bound(r.upper);
    if (!cursor.empty() && (r.upper.empty() || cursor < r.upper)) it = m.lower_bound(cursor);
    while (it != m.begin()) {
      --it;
      if (it->first < r.lower) break;
      if (!keep(it->first, record_of(*it))) break;
    }
  }
  if (last) *last_entry = *last;
}

}  // namespace

Status EngineState::RecoverCollections() {
  collections = std::make_shared<CollectionStore>();
  std::vector<std::shared_ptr<const Schema>> schemas;
  AS_RETURN_IF_ERROR(RecoveryScan(
      std::string(1, kCollectionDefPrefix), [&](std::string_view k, std::string_view v) {
        Json j = Json::parse(v, nullptr, false);
        if (j.is_discarded()) return Status::Corruption("collection declaration is not JSON");
        auto s = coll::ParseDeclaration(j, options.max_json_bytes);
        if (!s.ok())
          return Status::Corruption("collection declaration: " + std::string(s.status().message()));
        schemas.push_back(std::make_shared<const Schema>(*s));
        return Status::OK();
      }));
  for (auto& s : schemas) {
    auto c = NewCollection(s);
    std::string prefix = RecPrefix(s->name);
    AS_RETURN_IF_ERROR(RecoveryScan(prefix, [&](std::string_view k, std::string_view v) {
      Json rec;
      AS_RETURN_IF_ERROR(coll::Decode(*s, v, &rec));
      ApplyRecord(*c, std::string(k.substr(prefix.size())), nullptr, &rec, std::string(v));
      return Status::OK();
    }));
    collections->by_name[s->name] = c;
  }
  return Status::OK();
}

std::shared_ptr<CollectionCascade> EngineState::AddUserCollectionChanges(
    const Uuid& user, bool soft, storage::WriteBatch& batch) {
  auto cascade = std::make_shared<CollectionCascade>();
  int64_t now = Now();
  // The change feed's op of the soft deletes below, or owner of the hard ones (the user
  // delete's own note may be followed by others in its batch).
  batch.Note(soft ? CollectionOpNote(ChangeOp::kUpdate) : OwnerNoteFor(user));
  for (auto& c : collections->All()) {
    if (c->schema->owner != OwnerKind::kUser) continue;
    cascade->locks.emplace_back(c->mu);
    cascade->held.push_back(c);
    auto o = c->by_owner.find(user);
    if (o == c->by_owner.end()) continue;
    const Schema& s = *c->schema;
    for (const std::string& pk : o->second) {
      const CollectionRecord& r = c->records.at(pk);
      if (soft && r.deleted_at) continue;
      CollectionCascade::Change ch{c.get(), pk, {}, std::nullopt, {}};
      if (!coll::Decode(s, r.bytes, &ch.old_rec).ok()) continue;  // cannot happen: verified
      std::string key = RecPrefix(s.name) + pk;
      if (soft) {
        Json next = ch.old_rec;
        next["deleted_at"] = now;
        next["updated_at"] = now;
        ch.bytes = coll::Encode(s, next);
        ch.next = std::move(next);
        batch.Put(key, ch.bytes);
      } else {
        batch.Delete(key);
      }
      cascade->changes.push_back(std::move(ch));
    }
  }
  return cascade;
}

void EngineState::ApplyCollectionChanges(std::shared_ptr<CollectionCascade>& cascade) {
  if (!cascade) return;
  for (auto& ch : cascade->changes)
    ApplyRecord(*ch.coll, ch.pk, &ch.old_rec, ch.next ? &*ch.next : nullptr, std::move(ch.bytes));
  cascade.reset();  // releases the collections' locks
}

}  // namespace internal

using internal::Collection;
using internal::CollectionRecord;
using internal::coll::Json;
using internal::coll::OwnerKind;
using internal::coll::Schema;

Result<std::string> Engine::DeclareCollection(const Scope& scope, std::string_view declaration) {
  if (scope.is_user() || scope.tenant())
    return Status::PermissionDenied("only unscoped service and admin keys declare collections");
  Json j;
  AS_RETURN_IF_ERROR(internal::ParseJsonText("declaration", declaration, &j));
  AS_ASSIGN_OR_RETURN(Schema s, internal::coll::ParseDeclaration(j, impl_->options.max_json_bytes));
  // A key naming a field twice leaves records no key object can name (get, update and
  // delete refuse every key). Checked here, not in ParseDeclaration, so a store that
  // declared one before keeps opening.
  for (size_t i = 0; i < s.key.size(); ++i)
    for (size_t k = i + 1; k < s.key.size(); ++k)
      if (s.key[i] == s.key[k])
        return Status::InvalidArgument("key names field " + s.fields[s.key[i]].name + " twice");
  auto& reg = *impl_->collections;
  std::unique_lock lock(reg.mu);
  if (auto it = reg.by_name.find(s.name); it != reg.by_name.end()) {
    std::shared_lock cl(it->second->mu);
    if (it->second->schema->ToJson() == s.ToJson()) return s.ToJson().dump();  // idempotent
    return Status::AlreadyExists("collection " + s.name +
                                 " exists with another declaration (use collection_alter)");
  }
  AS_RETURN_IF_ERROR(internal::PersistSchema(*impl_, s));
  std::string out = s.ToJson().dump();
  std::string name = s.name;
  reg.by_name[name] = internal::NewCollection(std::make_shared<const Schema>(std::move(s)));
  return out;
}

Result<std::string> Engine::DescribeCollection(const Scope&, std::string_view name) {
  auto c = impl_->collections->Find(name);
  if (!c) return internal::NoCollection(name);
  std::shared_lock lock(c->mu);
  Json j = c->schema->ToJson();
  for (size_t i = 0; i < c->building.size(); ++i)
    if (c->building[i]) j["indexes"][i]["building"] = true;
  return j.dump();
}

Result<std::vector<std::string>> Engine::ListCollections(const Scope& scope) {
  std::vector<std::string> out;
  for (auto& c : impl_->collections->All()) {
    std::shared_lock lock(c->mu);
    out.push_back(c->schema->ToJson().dump());
  }
  (void)scope;
  return out;
}

Result<std::string> Engine::AlterCollection(const Scope& scope, std::string_view name,
                                            std::string_view change) {
  if (scope.is_user() || scope.tenant())
    return Status::PermissionDenied("only unscoped service and admin keys alter collections");
  Json j;
  AS_RETURN_IF_ERROR(internal::ParseJsonText("change", change, &j));
  auto c = impl_->collections->Find(name);
  if (!c) return internal::NoCollection(name);
  // One alter at a time per collection; record reads and writes never take alter_mu.
  std::lock_guard alter_lock(c->alter_mu);
  std::shared_ptr<const Schema> old_schema;
  {
    std::shared_lock l(c->mu);
    old_schema = c->schema;
  }
  AS_ASSIGN_OR_RETURN(Schema next, internal::coll::ParseAlter(*old_schema, j));
  size_t first_new_index = old_schema->indexes.size();
  // Step 1: the new fields (and the new indexes, empty and marked building) are
  // installed at once; from here every write maintains the new indexes.
  Schema fields_only = next;
  fields_only.indexes.resize(first_new_index);
  {
    std::unique_lock l(c->mu);
    for (size_t i = old_schema->fields.size(); i < next.fields.size(); ++i) {
      const auto& f = next.fields[i];
      if (f.required && f.default_value.is_null() && !c->records.empty())
        return Status::InvalidArgument(
            "new field " + f.name + " is required without a default, and " +
            std::to_string(c->records.size()) + " existing records have no value for it");
    }
    AS_RETURN_IF_ERROR(internal::PersistSchema(*impl_, fields_only));
    c->schema = std::make_shared<const Schema>(next);
    c->indexes.resize(next.indexes.size());
    c->building.resize(next.indexes.size(), true);
  }
  // Step 2: fill the new indexes from the existing records in chunks, releasing the lock
  // between chunks so writes continue. A unique index that existing values violate is
  // dropped again and the alter refused with the values' reason.
  std::vector<std::string> pks;
  {
    std::shared_lock l(c->mu);
    pks.reserve(c->records.size());
    for (const auto& [pk, r] : c->records) pks.push_back(pk);
  }
  Status failed;
  for (size_t start = 0; start < pks.size() && failed.ok(); start += 512) {
    std::unique_lock l(c->mu);
    const Schema& s = *c->schema;
    for (size_t k = start; k < std::min(pks.size(), start + 512) && failed.ok(); ++k) {
      auto it = c->records.find(pks[k]);
      if (it == c->records.end()) continue;
      Json rec;
      failed = internal::coll::Decode(s, it->second.bytes, &rec);
      for (size_t i = first_new_index; i < s.indexes.size() && failed.ok(); ++i) {
        const auto& idx = s.indexes[i];
        std::string prefix = internal::coll::KeyOf(s, idx.fields, rec);
        if (idx.unique) {
          bool has_null = false;
          for (int fi : idx.fields) {
            auto v = rec.find(s.fields[fi].name);
            has_null |= (v == rec.end() || v->is_null()) && s.fields[fi].default_value.is_null();
          }
          auto& m = c->indexes[i];
          for (auto e = m.lower_bound(prefix);
               !has_null && e != m.end() && e->first.compare(0, prefix.size(), prefix) == 0; ++e)
            if (e->second->first != pks[k])
              failed =
                  Status::InvalidArgument("unique index " + idx.name +
                                          " refused: existing records share the values " + [&] {
                                            Json vals = Json::array();
                                            for (int fi : idx.fields)
                                              vals.push_back(rec.value(s.fields[fi].name, Json()));
                                            return vals.dump();
                                          }());
        }
        c->indexes[i].emplace(prefix + pks[k], &*it);
      }
    }
  }
  std::unique_lock l(c->mu);
  if (!failed.ok()) {
    c->schema = std::make_shared<const Schema>(fields_only);
    c->indexes.resize(first_new_index);
    c->building.resize(first_new_index);
    return failed;
  }
  AS_RETURN_IF_ERROR(internal::PersistSchema(*impl_, next));
  std::fill(c->building.begin(), c->building.end(), false);
  return next.ToJson().dump();
}

Result<std::string> Engine::PutRecord(const Scope& scope, std::string_view collection,
                                      std::string_view record) {
  auto c = impl_->collections->Find(collection);
  if (!c) return internal::NoCollection(collection);
  Json in;
  AS_RETURN_IF_ERROR(internal::ParseJsonText("record", record, &in));
  if (!in.is_object()) return Status::InvalidArgument("a record is a JSON object");
  std::shared_ptr<const Schema> schema;
  {
    std::shared_lock l(c->mu);
    schema = c->schema;
  }
  AS_RETURN_IF_ERROR(internal::CheckWriter(scope, *schema));
  // The owner: a user writes its own records; others name the owner.
  Uuid owner;
  if (schema->owner_field >= 0) {
    const std::string& of = schema->fields[schema->owner_field].name;
    if (scope.is_user() && schema->owner == OwnerKind::kUser) {
      if (!in.contains(of) || in[of].is_null()) in[of] = scope.user().ToString();
    } else if (scope.tenant() && schema->owner == OwnerKind::kTenant) {
      if (!in.contains(of) || in[of].is_null()) in[of] = scope.tenant()->ToString();
    }
    if (!in.contains(of) || !in[of].is_string() || !Uuid::Parse(in[of].get<std::string>()))
      return Status::InvalidArgument("field " + of + " (the owner) is required: a uuid");
    owner = *Uuid::Parse(in[of].get<std::string>());
    if (scope.is_user() && owner != scope.user())
      return Status::PermissionDenied("a user writes only its own records");
    if (scope.tenant() && schema->owner == OwnerKind::kTenant && owner != *scope.tenant())
      return Status::PermissionDenied("a tenant-scoped key writes only its tenant's records");
  }
  if (!in.contains("id") || in["id"].is_null()) in["id"] = impl_->NewId().ToString();
  internal::Partition& g = impl_->global;
  std::shared_lock<std::shared_mutex> global_lock, shard_lock;
  if (schema->owner == OwnerKind::kUser) {
    internal::Partition& shard = impl_->ShardOf(owner);
    shard_lock = std::shared_lock(shard.mu);
    if (!impl_->UserLive(shard, owner)) return internal::MissingRef("user_id", "user");
    if (scope.tenant()) {
      const auto* u = internal::View<fb::User>(shard, shard.users.at(owner));
      if (!u->tenant_id() || ToUuid(u->tenant_id()) != *scope.tenant())
        return internal::MissingRef("user_id", "user");
    }
  } else if (schema->owner == OwnerKind::kTenant) {
    global_lock = std::shared_lock(g.mu);
    auto t = g.tenants.find(owner);
    if (t == g.tenants.end() || internal::View<fb::Tenant>(g, t->second)->deleted_at())
      return internal::MissingRef("tenant_id", "tenant");
  }
  std::unique_lock l(c->mu);
  const Schema& s = *c->schema;  // may be newer than `schema` (an alter added fields)
  Json rec;
  AS_RETURN_IF_ERROR(internal::coll::CanonicalRecord(s, in, &rec));
  int64_t now = impl_->Now();
  if (!rec.contains("created_at")) rec["created_at"] = now;
  std::string pk = internal::coll::KeyOf(s, s.key, rec);
  auto old = c->records.find(pk);
  Json old_rec;
  // A record past its TTL is gone for every read (the sweep has not come yet): a put of
  // its key is a new record, whoever owned the expired one.
  bool expired = old != c->records.end() && internal::Expired(old->second, now);
  bool moved = old != c->records.end() && old->second.owner != owner;
  if (old != c->records.end()) {
    // Only an unconfined service key may move a record to another owner; a tenant-scoped
    // one may not even touch a record of another tenant's owner.
    if (moved && !expired) {
      bool sees_old = schema->owner == OwnerKind::kUser ? impl_->Sees(scope, old->second.owner)
                      : schema->owner == OwnerKind::kTenant
                          ? internal::EngineState::SeesTenant(scope, old->second.owner)
                          : !scope.confined();
      if (!scope.is_service() || !sees_old)
        return sees_old
                   ? Status::AlreadyExists("a record with this key exists")
                   : Status::PermissionDenied("a record with this key belongs to another owner");
    }
    AS_RETURN_IF_ERROR(internal::coll::Decode(s, old->second.bytes, &old_rec));
    if (!expired) rec["created_at"] = old_rec["created_at"];  // a replace keeps its creation
  }
  rec["updated_at"] = now;
  AS_RETURN_IF_ERROR(internal::CheckUnique(*c, pk, rec, now));
  std::string bytes = internal::coll::Encode(s, rec);
  storage::WriteBatch batch;
  if (moved) {
    // A move to another owner: the old owner's subscriptions learn the record is gone
    // for them (a delete noting its owner), the new owner's that it is new to them.
    internal::NoteDeleteOwner(*impl_, s, old->second.owner, batch);
    batch.Delete(internal::RecPrefix(s.name) + pk);
  }
  batch.Note(internal::CollectionOpNote(old_rec.is_null() || moved || expired ? ChangeOp::kCreate
                                                                              : ChangeOp::kUpdate));
  batch.Put(internal::RecPrefix(s.name) + pk, bytes);
  AS_ASSIGN_OR_RETURN(uint64_t ticket, impl_->Log(batch));
  std::string out = internal::coll::ToApiText(s, bytes);
  internal::ApplyRecord(*c, pk, old_rec.is_null() ? nullptr : &old_rec, &rec, std::move(bytes));
  l.unlock();
  if (shard_lock) shard_lock.unlock();
  if (global_lock) global_lock.unlock();
  AS_RETURN_IF_ERROR(impl_->Durable(ticket));
  return out;
}

Result<std::string> Engine::GetRecord(const Scope& scope, std::string_view collection,
                                      std::string_view key) {
  auto c = impl_->collections->Find(collection);
  if (!c) return internal::NoCollection(collection);
  std::shared_ptr<const Schema> schema;
  {
    std::shared_lock l(c->mu);
    schema = c->schema;
  }
  internal::Viewer viewer = internal::ViewerOf(*impl_, scope, *schema);
  std::string pk;
  AS_RETURN_IF_ERROR(internal::PrimaryKey(*schema, key, &pk));
  CollectionRecord copy;
  {
    std::shared_lock l(c->mu);
    auto it = c->records.find(pk);
    if (it == c->records.end() || it->second.deleted_at ||
        internal::Expired(it->second, impl_->Now()) || !internal::QuickVisible(viewer, it->second))
      return Status::NotFound("record not found");
    copy = it->second;
    schema = c->schema;
  }
  if (!internal::FinalVisible(*impl_, viewer, copy.owner))
    return Status::NotFound("record not found");
  return internal::ApiText(*schema, copy.bytes);
}

namespace {
// Finds a record the caller may change and checks tenant scoping outside the lock.
Status FindForWrite(internal::EngineState& impl, const Scope& scope, Collection& c,
                    std::string_view key, std::string* pk, Uuid* owner) {
  std::shared_ptr<const Schema> schema;
  {
    std::shared_lock l(c.mu);
    schema = c.schema;
  }
  AS_RETURN_IF_ERROR(internal::CheckWriter(scope, *schema));
  AS_RETURN_IF_ERROR(internal::PrimaryKey(*schema, key, pk));
  internal::Viewer viewer = internal::ViewerOf(impl, scope, *schema);
  {
    std::shared_lock l(c.mu);
    auto it = c.records.find(*pk);
    if (it == c.records.end() || it->second.deleted_at ||
        internal::Expired(it->second, impl.Now()) || !internal::QuickVisible(viewer, it->second))
      return Status::NotFound("record not found");
    *owner = it->second.owner;
  }
  if (!internal::FinalVisible(impl, viewer, *owner)) return Status::NotFound("record not found");
  return Status::OK();
}
}  // namespace

Result<std::string> Engine::UpdateRecord(const Scope& scope, std::string_view collection,
                                         std::string_view key, std::string_view patch,
                                         JsonMode mode) {
  auto c = impl_->collections->Find(collection);
  if (!c) return internal::NoCollection(collection);
  Json p;
  AS_RETURN_IF_ERROR(internal::ParseJsonText("patch", patch, &p));
  std::string pk;
  Uuid owner;
  AS_RETURN_IF_ERROR(FindForWrite(*impl_, scope, *c, key, &pk, &owner));
  std::unique_lock l(c->mu);
  const Schema& s = *c->schema;
  auto it = c->records.find(pk);
  // Gone or changed hands between the check and the lock: answered as missing.
  if (it == c->records.end() || it->second.deleted_at || it->second.owner != owner)
    return Status::NotFound("record not found");
  Json old_rec, rec;
  AS_RETURN_IF_ERROR(internal::coll::Decode(s, it->second.bytes, &old_rec));
  rec = old_rec;
  AS_RETURN_IF_ERROR(internal::PatchRecord(s, p, mode, &rec));
  int64_t now = impl_->Now();
  rec["updated_at"] = now;
  AS_RETURN_IF_ERROR(internal::CheckUnique(*c, pk, rec, now));
  std::string bytes = internal::coll::Encode(s, rec);
  storage::WriteBatch batch;
  batch.Note(internal::CollectionOpNote(ChangeOp::kUpdate));
  batch.Put(internal::RecPrefix(s.name) + pk, bytes);
  AS_ASSIGN_OR_RETURN(uint64_t ticket, impl_->Log(batch));
  std::string out = internal::coll::ToApiText(s, bytes);
  internal::ApplyRecord(*c, pk, &old_rec, &rec, std::move(bytes));
  l.unlock();
  AS_RETURN_IF_ERROR(impl_->Durable(ticket));
  return out;
}

Status Engine::DeleteRecord(const Scope& scope, std::string_view collection, std::string_view key,
                            DeleteMode mode) {
  auto c = impl_->collections->Find(collection);
  if (!c) return internal::NoCollection(collection);
  std::string pk;
  Uuid owner;
  AS_RETURN_IF_ERROR(FindForWrite(*impl_, scope, *c, key, &pk, &owner));
  std::unique_lock l(c->mu);
  const Schema& s = *c->schema;
  auto it = c->records.find(pk);
  if (it == c->records.end() || it->second.deleted_at || it->second.owner != owner)
    return Status::NotFound("record not found");
  Json old_rec;
  AS_RETURN_IF_ERROR(internal::coll::Decode(s, it->second.bytes, &old_rec));
  storage::WriteBatch batch;
  std::string rkey = internal::RecPrefix(s.name) + pk;
  if (mode == DeleteMode::kSoft) {
    Json rec = old_rec;
    rec["deleted_at"] = rec["updated_at"] = impl_->Now();
    std::string bytes = internal::coll::Encode(s, rec);
    batch.Note(internal::CollectionOpNote(ChangeOp::kUpdate));
    batch.Put(rkey, bytes);
    AS_ASSIGN_OR_RETURN(uint64_t ticket, impl_->Log(batch));
    internal::ApplyRecord(*c, pk, &old_rec, &rec, std::move(bytes));
    l.unlock();
    return impl_->Durable(ticket);
  }
  internal::NoteDeleteOwner(*impl_, s, owner, batch);
  batch.Delete(rkey);
  AS_ASSIGN_OR_RETURN(uint64_t ticket, impl_->Log(batch));
  internal::ApplyRecord(*c, pk, &old_rec, nullptr, {});
  l.unlock();
  return impl_->Durable(ticket);
}

namespace {
// Runs a query: pages of candidates under the shared lock, the tenant check outside it.
Status RunQuery(internal::EngineState& impl, const Scope& scope, const CollectionQuery& q,
                bool counting, size_t max_bytes, CollectionPage* page, uint64_t* count) {
  auto c = impl.collections->Find(q.collection);
  if (!c) return internal::NoCollection(q.collection);
  if (!counting) AS_RETURN_IF_ERROR(internal::CheckLimit(q.limit));
  std::shared_ptr<const Schema> schema;
  {
    std::shared_lock l(c->mu);
    schema = c->schema;
  }
  internal::Viewer viewer = internal::ViewerOf(impl, scope, *schema);
  internal::Range range;
  bool empty = false;
  AS_RETURN_IF_ERROR(internal::PlanRange(*schema, viewer, q, &range, &empty));
  std::string cursor;
  if (!q.cursor.empty() && !internal::Unhex(q.cursor, &cursor))
    return Status::InvalidArgument("malformed cursor");
  if (empty || viewer.kind == internal::Viewer::kNothing) return Status::OK();
  int64_t now = impl.Now();
  size_t want = counting ? SIZE_MAX : q.limit;
  size_t got = 0;
  std::vector<internal::Candidate> cands;
  // The candidates' stored records, copied under the lock; the thread's buffer is reused
  // by its next query (and let go when a large answer grew it).
  thread_local std::string bytes, keys;
  struct Release {
    ~Release() {
      if (bytes.capacity() > (1 << 20)) std::string().swap(bytes);
      if (keys.capacity() > (1 << 20)) std::string().swap(keys);
    }
  } release;
  if (max_bytes == 0) max_bytes = SIZE_MAX;
  size_t text_bytes = 0;  // of the page's records so far
  while (true) {
    cands.clear();
    bytes.clear();
    keys.clear();
    bool more = false;
    size_t batch = counting ? 4096 : want - got;
    std::string* copy_to = counting ? nullptr : &bytes;
    std::string* keys_to = counting ? nullptr : &keys;
    // Stored bytes are bounded like the text (no more copied than one page may answer).
    size_t copy_budget = max_bytes - std::min(max_bytes, text_bytes);
    const std::string batch_start = cursor;
    {
      std::shared_lock l(c->mu);
      // An alter may have changed the schema since the plan; it still holds: indexes only
      // grow.
      if (range.index && c->building[range.index_pos])
        return Status::Unavailable("index " + q.index + " is still being built; retry");
      if (range.index) {
        internal::Collect(
            c->indexes[range.index_pos],
            [](const auto& e) -> const internal::RecordEntry& { return *e.second; }, range, q.desc,
            cursor, viewer, q.include_deleted, now, batch, copy_budget, &cands, copy_to, keys_to,
            &cursor, &more);
      } else {
        internal::Collect(
            c->records, [](const auto& e) -> const internal::RecordEntry& { return e; }, range,
            q.desc, cursor, viewer, q.include_deleted, now, batch, copy_budget, &cands, copy_to,
            keys_to, &cursor, &more);
      }
      schema = c->schema;
    }
    bool full = false;
    for (size_t i = 0; i < cands.size(); ++i) {
      const auto& cand = cands[i];
      if (!internal::FinalVisible(impl, viewer, cand.owner)) continue;
      if (counting) {
        ++got;
        continue;
      }
      std::string text;
      text.reserve(cand.size + 64);
      internal::coll::AppendApiText(*schema, std::string_view(bytes).substr(cand.offset, cand.size),
                                    &text);
      if (got > 0 && text_bytes + text.size() > max_bytes) {
        // The page is full before this record: continue from the entry before it.
        cursor = i == 0 ? batch_start : keys.substr(cands[i - 1].key_offset, cands[i - 1].key_size);
        full = more = true;
        break;
      }
      ++got;
      text_bytes += text.size();
      page->records.push_back(std::move(text));
    }
    if (!more) break;
    if (full || (!counting && text_bytes >= max_bytes)) {
      page->next_cursor = internal::Hex(cursor);
      break;
    }
    if (!counting && got == want) {
      page->next_cursor = internal::Hex(cursor);
      break;
    }
  }
  if (count) *count = got;
  return Status::OK();
}
}  // namespace

Result<CollectionPage> Engine::QueryRecords(const Scope& scope, const CollectionQuery& query,
                                            size_t max_bytes) {
  CollectionPage page;
  AS_RETURN_IF_ERROR(RunQuery(*impl_, scope, query, false, max_bytes, &page, nullptr));
  return page;
}

Result<uint64_t> Engine::CountRecords(const Scope& scope, const CollectionQuery& query) {
  uint64_t n = 0;
  AS_RETURN_IF_ERROR(RunQuery(*impl_, scope, query, true, 0, nullptr, &n));
  return n;
}

namespace internal {

// Removes up to `max_batch` expired records of `c` in one logged batch (the collection
// locked only for that batch); true when more may be expired. The caller waits for
// `*ticket` before reporting them gone.
Result<bool> SweepSome(EngineState& impl, Collection& c, int64_t now, size_t max_batch,
                       uint64_t* removed, uint64_t* ticket) {
  std::unique_lock l(c.mu);
  const Schema& s = *c.schema;
  std::vector<std::pair<std::string, Json>> gone;
  storage::WriteBatch batch;
  auto it = c.expiry.begin();
  for (; it != c.expiry.end() && it->first <= now && gone.size() < max_batch; ++it) {
    auto rec_it = c.records.find(it->second);
    if (rec_it == c.records.end()) continue;
    Json rec;
    AS_RETURN_IF_ERROR(coll::Decode(s, rec_it->second.bytes, &rec));
    NoteDeleteOwner(impl, s, rec_it->second.owner, batch);
    batch.Delete(RecPrefix(s.name) + it->second);
    gone.emplace_back(it->second, std::move(rec));
  }
  bool more = it != c.expiry.end() && it->first <= now;
  if (gone.empty()) return more;
  AS_ASSIGN_OR_RETURN(*ticket, impl.Log(batch));
  for (auto& [pk, rec] : gone) ApplyRecord(c, pk, &rec, nullptr, {});
  *removed += gone.size();
  return more;
}

// Every collection's expired records, in batches of at most 1,000 (each its own atomic
// write, the collection unlocked between them so reads and writes go on).
Result<uint64_t> EngineState::SweepCollections() {
  uint64_t removed = 0;
  Status first_error;
  int64_t now = Now();
  for (auto& c : collections->All()) {
    {
      std::shared_lock l(c->mu);
      if (c->schema->ttl_field < 0 || c->expiry.empty() || c->expiry.begin()->first > now) continue;
    }
    bool more = true;
    while (more) {
      uint64_t ticket = 0;
      Result<bool> r = SweepSome(*this, *c, now, 1000, &removed, &ticket);
      Status st = r.ok() ? (ticket ? Durable(ticket) : Status::OK()) : r.status();
      if (!st.ok()) {
        // One collection's failure (an unreadable record, a full disk) does not stop
        // the others' sweeps; the first error is reported.
        if (first_error.ok()) first_error = st;
        break;
      }
      more = *r;
    }
  }
  if (!first_error.ok()) return first_error;
  return removed;
}

}  // namespace internal

Result<uint64_t> Engine::SweepExpiredRecords(const Scope& scope) {
  if (scope.is_user() || scope.tenant())
    return Status::PermissionDenied("only unscoped service and admin keys sweep collections");
  return impl_->SweepCollections();
}

// ---- export / import (agentctl export / import): records in their stored form ----

namespace {

// A record as export writes it: the canonical JSON of its stored bytes (ids and uuids as
// text, decimals as int64 units, the store's timestamps included), so import can encode
// exactly the same bytes.
Status CheckExported(const Schema& s, const Json& rec) {
  if (!rec.is_object()) return Status::InvalidArgument("a record is a JSON object");
  for (int fi : {internal::coll::kCreatedAtField, internal::coll::kUpdatedAtField,
                 internal::coll::kDeletedAtField}) {
    auto it = rec.find(s.fields[fi].name);
    if (it == rec.end()) {
      if (fi != internal::coll::kDeletedAtField)
        return Status::InvalidArgument("field " + s.fields[fi].name + " is required on import");
      continue;
    }
    if (!it->is_number_integer() || it->get<int64_t>() < 0)
      return Status::InvalidArgument("field " + s.fields[fi].name +
                                     " must be microseconds since the epoch");
  }
  // ToApi reads decimals as their stored integer units.
  for (const auto& [k, v] : rec.items()) {
    int fi = s.Field(k);
    if (fi < 0) return Status::InvalidArgument("unknown field " + k);
    if (s.fields[fi].type == internal::coll::FieldType::kDecimal && !v.is_number_integer())
      return Status::InvalidArgument("field " + k +
                                     " must be in its stored form: integer units of its scale");
  }
  // Every other field is checked as a put checks it, and must already be in its
  // canonical form (what the API form of the record canonicalizes back to).
  Json api = internal::coll::ToApi(s, rec);
  bool created_in_key = false;
  for (int fi : s.key) created_in_key |= fi == internal::coll::kCreatedAtField;
  api.erase(s.fields[internal::coll::kUpdatedAtField].name);
  api.erase(s.fields[internal::coll::kDeletedAtField].name);
  if (!created_in_key) api.erase(s.fields[internal::coll::kCreatedAtField].name);
  Json check;
  AS_RETURN_IF_ERROR(internal::coll::CanonicalRecord(s, api, &check));
  for (int fi : {internal::coll::kCreatedAtField, internal::coll::kUpdatedAtField,
                 internal::coll::kDeletedAtField})
    if (auto it = rec.find(s.fields[fi].name); it != rec.end()) check[s.fields[fi].name] = *it;
  // Fields added by an alter after the record was written are absent from it: their
  // defaults are what reads show, not part of the stored record.
  for (const auto& f : s.fields)
    if (!rec.contains(f.name) && check.contains(f.name) && check[f.name] == f.default_value)
      check.erase(f.name);
  if (check != rec)
    return Status::InvalidArgument("the record is not in its stored form (as export writes it)");
  return Status::OK();
}

}  // namespace

Result<Engine::ExportPage> Engine::ExportCollectionRecords(const Scope& scope,
                                                           std::string_view collection,
                                                           std::string_view cursor, uint32_t limit,
                                                           size_t max_bytes) {
  if (scope.is_user()) return Status::PermissionDenied("export needs a service or admin key");
  AS_RETURN_IF_ERROR(internal::CheckLimit(limit));
  auto c = impl_->collections->Find(collection);
  if (!c) return internal::NoCollection(collection);
  std::string after;
  if (!cursor.empty() && !internal::Unhex(cursor, &after))
    return Status::InvalidArgument("malformed cursor");
  ExportPage page;
  std::shared_lock lock(c->mu);
  const Schema& s = *c->schema;
  // A tenant-scoped key exports its tenant's records: tenant-owned ones of its tenant and
  // user-owned ones of its users; unowned collections belong to no tenant.
  if (scope.confined() && s.owner == OwnerKind::kNone) return page;
  auto it = cursor.empty() ? c->records.begin() : c->records.upper_bound(after);
  std::string last;  // the primary key of the page's last record
  size_t text_bytes = 0;
  for (; it != c->records.end(); ++it) {
    const CollectionRecord& r = it->second;
    if (scope.confined()) {
      Uuid tenant = s.owner == OwnerKind::kTenant ? r.owner : impl_->TenantOfUser(r.owner);
      if (tenant != *scope.tenant()) continue;
    }
    if (page.records.size() == limit) {
      page.next_cursor = internal::Hex(last);
      break;
    }
    Json rec;
    AS_RETURN_IF_ERROR(internal::coll::Decode(s, r.bytes, &rec));
    std::string text = rec.dump();
    if (max_bytes && !page.records.empty() && text_bytes + text.size() > max_bytes) {
      page.next_cursor = internal::Hex(last);  // the page is full before this record
      break;
    }
    text_bytes += text.size();
    last = it->first;
    page.records.push_back(std::move(text));
  }
  return page;
}

Status Engine::ImportCollectionRecords(const Scope& scope, std::string_view collection,
                                       std::span<const std::string_view> records,
                                       std::span<const uint64_t> lines) {
  AS_RETURN_IF_ERROR(internal::CheckImportBatch(scope, records.size(), lines.size()));
  auto c = impl_->collections->Find(collection);
  if (!c) return internal::NoCollection(collection);
  internal::EngineState& st = *impl_;
  // The order DeleteUser takes: the global partition, the shards, then the collection;
  // shared, as a put takes them (owners may not disappear meanwhile).
  std::shared_lock global(st.global.mu);
  std::vector<std::shared_lock<std::shared_mutex>> shards;
  for (auto& sh : st.shards) shards.emplace_back(sh->mu);
  std::unique_lock l(c->mu);
  const Schema& s = *c->schema;
  struct Staged {
    std::string pk, bytes;
    Json rec;
  };
  std::vector<Staged> staged;
  std::map<std::string, std::string> by_pk;  // pk -> bytes staged by this batch
  std::set<std::pair<size_t, std::string>> unique_keys;
  storage::WriteBatch batch;
  batch.Note(internal::CollectionOpNote(ChangeOp::kCreate));  // only new keys are written
  for (size_t n = 0; n < records.size(); ++n) {
    auto fail = [&](const Status& e) {
      if (!lines.empty())
        return Status(e.code(), "line " + std::to_string(lines[n]) + ": " + e.message());
      if (records.size() > 1)
        return Status(e.code(), "record " + std::to_string(n + 1) + ": " + e.message());
      return e;
    };
    Json rec = Json::parse(records[n], nullptr, false);
    if (rec.is_discarded()) return fail(Status::InvalidArgument("the record is not JSON"));
    if (Status e = CheckExported(s, rec); !e.ok()) return fail(e);
    Uuid owner = internal::OwnerOf(s, rec);
    if (s.owner == OwnerKind::kUser && !st.ShardOf(owner).users.count(owner))
      return fail(internal::MissingRef("user_id", "user"));
    if (s.owner == OwnerKind::kTenant && !st.global.tenants.count(owner))
      return fail(internal::MissingRef("tenant_id", "tenant"));
    std::string pk = internal::coll::KeyOf(s, s.key, rec);
    std::string bytes = internal::coll::Encode(s, rec);
    std::optional<std::string_view> existing;
    if (auto b = by_pk.find(pk); b != by_pk.end())
      existing = b->second;
    else if (auto r = c->records.find(pk); r != c->records.end())
      existing = r->second.bytes;
    if (existing) {
      if (*existing == bytes) continue;  // already there, identical
      return fail(Status::AlreadyExists("a different record with this key exists"));
    }
    if (Status e = internal::CheckUnique(*c, pk, rec, impl_->Now()); !e.ok()) return fail(e);
    for (size_t i = 0; i < s.indexes.size(); ++i) {
      if (!s.indexes[i].unique) continue;
      bool has_null = false;
      for (int fi : s.indexes[i].fields) has_null |= !rec.contains(s.fields[fi].name);
      if (has_null) continue;
      if (!unique_keys.emplace(i, internal::coll::KeyOf(s, s.indexes[i].fields, rec)).second)
        return fail(Status::AlreadyExists("unique index " + s.indexes[i].name + " of " + s.name +
                                          " already holds these values"));
    }
    batch.Put(internal::RecPrefix(s.name) + pk, bytes);
    by_pk[pk] = bytes;
    staged.push_back({std::move(pk), std::move(bytes), std::move(rec)});
  }
  if (staged.empty()) return Status::OK();
  AS_ASSIGN_OR_RETURN(uint64_t ticket, st.Log(batch));
  for (auto& r : staged) internal::ApplyRecord(*c, r.pk, nullptr, &r.rec, std::move(r.bytes));
  l.unlock();
  shards.clear();
  global.unlock();
  return st.Durable(ticket);
}

}  // namespace agentstore
