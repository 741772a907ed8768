// The change feed: one thread follows the durable end of the store's log and fans each
// change out to the subscriptions whose filter it passes (see change_feed.h).
#include "change_feed.h"

#include <pthread.h>

#include <cstring>
#include <iostream>

#include "agentstore/common/row.h"
#include "collections.h"

namespace agentstore {

bool FeedCarries(RecordType type) {
  if (type == kCollectionRecordType) return true;
  switch (type) {
    case RecordType::kApiKey:           // secret hashes never leave the store
    case RecordType::kUserUsageRollup:  // derived sums, rewritten on every usage call
    case RecordType::kTenantUsageRollup:
      return false;
    default:
      return static_cast<uint8_t>(type) >= 1 &&
             static_cast<uint8_t>(type) <= static_cast<uint8_t>(kLastRecordType);
  }
}

Subscription::~Subscription() = default;

size_t Subscription::Poll(std::vector<Event>* out, size_t max) {
  return Drain(out, max, SIZE_MAX).events;
}

Subscription::Drained Subscription::Drain(std::vector<Event>* out, size_t max_events,
                                          size_t max_bytes) {
  Drained d;
  bool room = false;
  internal::ChangeFeed* feed = nullptr;
  {
    std::lock_guard lock(mu_);
    size_t bytes = 0;
    while (d.events < max_events && !queue_.empty() && (d.events == 0 || bytes < max_bytes)) {
      size_t size = queue_.front()->size();
      queued_bytes_ -= size;
      bytes += size;
      out->push_back(std::move(queue_.front()));
      queue_.pop_front();
      ++d.events;
    }
    d.more = !queue_.empty();
    d.finished = ended_ && queue_.empty();
    room = d.events > 0 && queue_.empty() && !ended_ && catching_up_;
    feed = feed_;
  }
  // A subscription catching up waits for room; tell the feed there is some.
  if (room && feed) feed->Kick();
  return d;
}

void Subscription::Wait(int timeout_ms) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
               [&] { return !queue_.empty() || ended_; });
}

bool Subscription::Finished() {
  std::lock_guard lock(mu_);
  return ended_ && queue_.empty();
}

Status Subscription::end_status() {
  std::lock_guard lock(mu_);
  return end_status_;
}

uint64_t Subscription::resume_point() {
  std::lock_guard lock(mu_);
  return resume_point_;
}

void Subscription::Cancel() {
  internal::ChangeFeed* feed;
  {
    std::lock_guard lock(mu_);
    feed = feed_;
  }
  if (feed) feed->Remove(id_);
  std::lock_guard lock(mu_);
  if (!ended_) {
    ended_ = true;
    end_status_ = Status::OK();
  }
  feed_ = nullptr;
  cv_.notify_all();
}

namespace internal {

namespace {

// FlatBuffers reads scalars in place; log values come at any address.
std::string_view Aligned(std::string_view value) {
  thread_local std::vector<uint64_t> buf;
  buf.resize((value.size() + 7) / 8 + 1);
  std::memcpy(buf.data(), value.data(), value.size());
  return std::string_view(reinterpret_cast<const char*>(buf.data()), value.size());
}

template <typename T>
const T* Root(std::string_view aligned) {
  flatbuffers::Verifier v(reinterpret_cast<const uint8_t*>(aligned.data()), aligned.size());
  if (!v.VerifyBuffer<T>(nullptr)) return nullptr;
  return flatbuffers::GetRoot<T>(aligned.data());
}

Uuid KeyId(std::string_view key, size_t at) {
  if (key.size() < at + 16) return Uuid();
  return Uuid::FromBytes(reinterpret_cast<const uint8_t*>(key.data() + at));
}

// Create or update, from the record's own times: the engine sets created_at and
// updated_at to the same instant when it creates a record and moves updated_at on every
// later change.
template <typename T>
ChangeOp OpOf(const T* r) {
  return r->created_at() == r->updated_at() ? ChangeOp::kCreate : ChangeOp::kUpdate;
}

}  // namespace

std::string CommitTimeNote(int64_t micros) {
  std::string n(1, 'T');
  n.append(reinterpret_cast<const char*>(&micros), sizeof(micros));
  return n;
}

std::string OwnerNote(const Uuid& user) {
  std::string n(1, 'O');
  n.append(reinterpret_cast<const char*>(user.bytes.data()), 16);
  return n;
}

std::string OwnerNote(const Uuid& user, const Uuid& tenant) {
  std::string n = OwnerNote(user);
  if (!tenant.IsNil()) n.append(reinterpret_cast<const char*>(tenant.bytes.data()), 16);
  return n;
}

std::string CollectionOpNote(ChangeOp op) {
  std::string n(1, 'C');
  n.push_back(static_cast<char>(op));
  return n;
}

static_assert(static_cast<char>(kCollectionRecordType) == kCollectionRecordPrefix,
              "a collection change's type is its storage key's first byte");

struct ChangeFeed::Sub {
  uint64_t id = 0;
  std::weak_ptr<Subscription> handle;
  // Normalized by Open: `types` 0 means no built-in type (an empty filter became every
  // bit), and `wanted` is `types` with kCollectionsBit when some collection is named.
  FeedFilter filter;
  uint32_t wanted = 0;
  CollectionAccess access;
  uint64_t cursor = 0;  // the last sequence considered (catching up)
  // The durable sequence when it opened: `access` was read then, so only a user record
  // logged after it can move its user away from access.tenant.
  uint64_t opened_at = 0;
  bool live = false;
  bool removed = false;
  FeedEnds ends;
};

struct ChangeFeed::Meta {
  bool carried = false;
  RecordType type = RecordType::kUser;
  ChangeOp op = ChangeOp::kCreate;
  Uuid id, user, tenant;
  bool user_gone = false;    // a user was deleted (hard or soft): id
  bool key_revoked = false;  // an API key was revoked or deleted: id
  bool tenant_gone = false;  // a tenant was deleted (hard or soft): id
  bool user_put = false;     // a user record was written: id, with its tenant
  // Collection records: the declaration read for it, its name, its primary key (a view
  // into the log entry's key: valid only while that entry is read) and who owns its
  // records.
  std::shared_ptr<const coll::Schema> schema;
  std::string collection;
  std::string_view pk;
  coll::OwnerKind owner_kind = coll::OwnerKind::kNone;
};

ChangeFeed::ChangeFeed(storage::KvStore* store, FeedOptions options,
                       std::function<Uuid(const Uuid&)> tenant_of, SchemaOf schema_of,
                       std::function<int64_t()> now)
    : store_(store),
      options_(options),
      tenant_of_(std::move(tenant_of)),
      schema_of_(std::move(schema_of)),
      now_(std::move(now)) {}

ChangeFeed::~ChangeFeed() { Stop(); }

void ChangeFeed::Start() {
  durable_.store(store_->DurableSequence());
  published_.store(durable_.load());
  store_->SetDurableListener([this](uint64_t seq) { OnDurable(seq); });
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "change-feed");  // for top -H and perf
    Run();
  });
}

void ChangeFeed::Stop() {
  {
    std::lock_guard w(wake_mu_);
    stopping_.store(true);
  }
  wake_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::lock_guard lock(mu_);
  for (auto& [id, s] : subs_)
    End(*s, Status::Unavailable("the server is stopping"), s->live ? published_.load() : s->cursor);
  for (auto& [id, s] : subs_) {
    if (auto h = s->handle.lock()) {
      std::lock_guard hl(h->mu_);
      h->feed_ = nullptr;
    }
  }
  subs_.clear();
  open_ = 0;
  behind_.clear();
  live_by_user_.clear();
  live_broad_.clear();
  live_coll_users_.clear();
  live_types_ = 0;
}

void ChangeFeed::OnDurable(uint64_t seq) {
  uint64_t cur = durable_.load(std::memory_order_relaxed);
  while (seq > cur && !durable_.compare_exchange_weak(cur, seq)) {
  }
  // Writers pay one relaxed load when nobody subscribes.
  if (has_subs_.load(std::memory_order_relaxed)) {
    { std::lock_guard w(wake_mu_); }
    wake_cv_.notify_one();
  }
}

void ChangeFeed::Kick() {
  {
    std::lock_guard w(wake_mu_);
    kicked_.store(true);
  }
  wake_cv_.notify_one();
}

size_t ChangeFeed::subscriber_count() const {
  std::lock_guard lock(mu_);
  return subs_.size();
}

Result<std::shared_ptr<Subscription>> ChangeFeed::Open(const FeedFilter& filter,
                                                       std::optional<uint64_t> after, FeedEnds ends,
                                                       std::function<void()> wake,
                                                       CollectionAccess access) {
  // The store's durable sequence (FeedInfo, a subscribe answer) may be ahead of what the
  // listener has told the feed yet; a client may name it at once.
  OnDurable(store_->DurableSequence());
  uint64_t durable = durable_.load(std::memory_order_acquire);
  uint64_t start = after.value_or(durable);
  if (start > durable) {
    return Status::InvalidArgument("sequence " + std::to_string(start) +
                                   " is beyond the latest durable change (" +
                                   std::to_string(durable) + ")");
  }
  if (start < durable) {
    AS_ASSIGN_OR_RETURN(uint64_t oldest, store_->OldestLogSequence());
    if (start + 1 < oldest) {
      return Status::OutOfRange("changes after sequence " + std::to_string(start) +
                                " are no longer kept; the oldest kept is " +
                                std::to_string(oldest) + " (resume from " +
                                std::to_string(oldest - 1) + " or later)");
    }
  }
  auto handle = std::shared_ptr<Subscription>(new Subscription());
  auto sub = std::make_shared<Sub>();
  sub->filter = filter;
  // Nothing asked for: everything the feed carries, collection records included.
  if (!filter.types && filter.collections.empty()) sub->filter.types = ~0u;
  sub->wanted = sub->filter.types | (filter.collections.empty() ? 0 : kCollectionsBit);
  sub->access = access;
  sub->cursor = start;
  sub->opened_at = durable;
  sub->ends = std::move(ends);
  sub->handle = handle;
  handle->wake_ = std::move(wake);
  handle->feed_ = this;
  {
    std::lock_guard lock(mu_);
    if (stopping_.load()) return Status::Unavailable("the server is stopping");
    // Those ended or cancelled no longer count, though the feed thread forgets them later;
    // nor do those whose holder let go without Cancel (found here, at the limit: a
    // Subscription's destructor may run on the feed thread, under mu_, so it cannot tell
    // the feed itself).
    if (open_ >= options_.max_subscriptions)
      for (auto& [id, s] : subs_)
        if (!s->removed && s->handle.expired()) MarkRemoved(*s);
    if (open_ >= options_.max_subscriptions)
      return Status::ResourceExhausted("the server holds its most subscriptions (" +
                                       std::to_string(options_.max_subscriptions) +
                                       ", --feed-max-subscriptions)");
    sub->id = next_id_++;
    handle->id_ = sub->id;
    handle->start_ = handle->resume_point_ = start;
    subs_[sub->id] = sub;
    ++open_;
    behind_.push_back(sub);
    has_subs_.store(true, std::memory_order_relaxed);
    if (int64_t x = sub->ends.expires_at; x != 0) {
      int64_t next = next_expiry_.load(std::memory_order_relaxed);
      if (next == 0 || x < next) next_expiry_.store(x, std::memory_order_relaxed);
    }
  }
  Kick();
  return handle;
}

void ChangeFeed::Remove(uint64_t id) {
  {
    std::lock_guard lock(mu_);
    auto it = subs_.find(id);
    if (it == subs_.end()) return;
    MarkRemoved(*it->second);
  }
  Kick();  // the feed thread forgets it
}

void ChangeFeed::MarkRemoved(Sub& s) {
  if (s.removed) return;
  s.removed = true;
  removals_ = true;
  --open_;
}

void ChangeFeed::FillTenant(Meta* m) {
  if (m->tenant.IsNil() && !m->user.IsNil() && m->carried) m->tenant = TenantOf(m->user);
}

const std::vector<ChangeFeed::Sub*>* ChangeFeed::LiveFollowers(const Meta& m) const {
  if (m.user.IsNil()) return nullptr;
  auto it = live_by_user_.find(m.user);
  return it == live_by_user_.end() ? nullptr : &it->second;
}

Uuid ChangeFeed::TenantOf(const Uuid& user) {
  auto it = tenant_cache_.find(user);
  if (it != tenant_cache_.end()) return it->second;
  Uuid t = tenant_of_ ? tenant_of_(user) : Uuid();
  if (tenant_cache_.size() > 1'000'000) tenant_cache_.clear();  // a cache, never unbounded
  tenant_cache_[user] = t;
  return t;
}

bool ChangeFeed::InspectCollection(const storage::LogEntry& e, Meta* m) {
  size_t end = e.key.find('\0', 1);
  if (end == std::string_view::npos) return false;
  m->collection = e.key.substr(1, end - 1);
  m->pk = e.key.substr(end + 1);
  m->schema = schema_of_ ? schema_of_(m->collection) : nullptr;
  if (!m->schema) return false;  // collections are never dropped: cannot happen
  const coll::Schema& s = *m->schema;
  m->type = kCollectionRecordType;
  m->owner_kind = s.owner;
  // Every key starts with the id (a uuid): [1][16 bytes].
  if (m->pk.size() >= 17 && m->pk[0] == '\1') m->id = KeyId(m->pk, 1);
  Uuid owner;
  if (e.is_delete) {
    m->op = ChangeOp::kDelete;
    if ((e.note.size() == 17 || e.note.size() == 33) && e.note[0] == 'O') {
      owner = KeyId(e.note, 1);
      if (e.note.size() == 33 && s.owner == coll::OwnerKind::kUser) m->tenant = KeyId(e.note, 17);
    }
  } else {
    coll::Json rec;
    if (Status st = coll::Decode(s, Aligned(e.value), &rec); !st.ok()) {
      std::cerr << "change feed: sequence " << e.sequence << ": " << st.ToString() << "\n";
      return false;
    }
    if (s.owner_field >= 0)
      if (auto it = rec.find(s.fields[s.owner_field].name); it != rec.end() && it->is_string())
        owner = Uuid::Parse(it->get<std::string>()).value_or(Uuid());
    // The writer says whether the key was new (CollectionOpNote); without that note (an
    // import), the record's own times do, as for built-in records.
    if (e.note.size() == 2 && e.note[0] == 'C') {
      m->op = static_cast<ChangeOp>(e.note[1]);
    } else {
      auto created = rec.find("created_at"), updated = rec.find("updated_at");
      m->op = created != rec.end() && updated != rec.end() && *created == *updated
                  ? ChangeOp::kCreate
                  : ChangeOp::kUpdate;
    }
  }
  if (s.owner == coll::OwnerKind::kUser) m->user = owner;
  if (s.owner == coll::OwnerKind::kTenant) m->tenant = owner;
  m->carried = true;
  return true;
}

bool ChangeFeed::Inspect(const storage::LogEntry& e, Meta* m, bool live) {
  if (e.key.empty()) return false;
  uint8_t t = static_cast<uint8_t>(e.key[0]);
  if (t == static_cast<uint8_t>(kCollectionRecordType)) return InspectCollection(e, m);
  if (t < 1 || t > static_cast<uint8_t>(kLastRecordType)) return false;
  m->type = static_cast<RecordType>(t);
  m->carried = FeedCarries(m->type);
  if (e.is_delete) {
    m->op = ChangeOp::kDelete;
    m->id = KeyId(e.key, m->type == RecordType::kVote ? 17 : 1);
    if ((e.note.size() == 17 || e.note.size() == 33) && e.note[0] == 'O') {
      m->user = KeyId(e.note, 1);
      // OwnerNote(user, tenant): every delete of a user's record names the tenant too.
      if (e.note.size() == 33) m->tenant = KeyId(e.note, 17);
    }
    switch (m->type) {
      case RecordType::kTenant:
        m->tenant = m->id;
        m->tenant_gone = true;
        break;
      case RecordType::kUser:
        m->user = m->id;
        m->user_gone = true;
        break;
      case RecordType::kApiKey:
        m->key_revoked = true;
        break;
      case RecordType::kQuota:
        m->tenant = KeyId(e.key, 1);
        m->id = Uuid();
        break;
      case RecordType::kAdminConfig:
        m->id = Uuid();
        break;
      default:
        break;
    }
  } else {
    std::string_view v = Aligned(e.value);
    switch (m->type) {
      case RecordType::kTenant:
        if (auto r = Root<fb::Tenant>(v)) {
          m->id = m->tenant = ToUuid(r->id());
          m->op = OpOf(r);
          m->tenant_gone = r->deleted_at() != 0;
        }
        break;
      case RecordType::kUser:
        if (auto r = Root<fb::User>(v)) {
          m->id = m->user = ToUuid(r->id());
          m->tenant = ToUuid(r->tenant_id());
          m->op = OpOf(r);
          m->user_gone = r->deleted_at() != 0;
          m->user_put = true;
          // Only the live step: a catch-up reading an old put would route the user's
          // next live changes to a tenant the user has left.
          if (live) tenant_cache_[m->id] = m->tenant;
        }
        break;
      case RecordType::kAgent:
        if (auto r = Root<fb::Agent>(v)) {
          m->id = ToUuid(r->id());
          m->user = ToUuid(r->creator_id());
          m->tenant = ToUuid(r->tenant_id());
          m->op = OpOf(r);
        }
        break;
      case RecordType::kUserAgent:
        if (auto r = Root<fb::UserAgent>(v)) {
          m->id = ToUuid(r->id());
          m->user = ToUuid(r->user_id());
          m->op = OpOf(r);
        }
        break;
      case RecordType::kChat:
        if (auto r = Root<fb::Chat>(v)) {
          m->id = ToUuid(r->id());
          m->user = ToUuid(r->user_id());
          m->op = OpOf(r);
        }
        break;
      case RecordType::kMessage:
        if (auto r = Root<fb::Message>(v)) {
          m->id = ToUuid(r->id());
          m->user = ToUuid(r->user_id());
          m->op = ChangeOp::kCreate;  // messages are append-only
        }
        break;
      case RecordType::kVote:
        if (auto r = Root<fb::Vote>(v)) {
          m->id = ToUuid(r->message_id());
          m->user = ToUuid(r->user_id());
          m->op = OpOf(r);
        }
        break;
      case RecordType::kAdminConfig:
        m->op = ChangeOp::kUpdate;  // an upsert: the record keeps no creation time
        break;
      case RecordType::kApiKey:
        if (auto r = Root<fb::ApiKey>(v)) {
          m->id = ToUuid(r->id());
          m->user = ToUuid(r->user_id());
          m->key_revoked = r->revoked_at() != 0;
        }
        break;
      case RecordType::kUserMemory:
        if (auto r = Root<fb::UserMemory>(v)) {
          m->id = ToUuid(r->id());
          m->user = ToUuid(r->user_id());
          m->op = OpOf(r);
        }
        break;
      case RecordType::kUsageLog:
        if (auto r = Root<fb::UsageLog>(v)) {
          m->id = ToUuid(r->id());
          m->user = ToUuid(r->user_id());
          m->tenant = ToUuid(r->tenant_id());
          m->op = ChangeOp::kCreate;  // logs are written once (a chat's hard delete
                                      // rewrites them with chat_id cleared: also create)
        }
        break;
      case RecordType::kRateLimitConfig:
        if (auto r = Root<fb::RateLimitConfig>(v)) {
          m->id = ToUuid(r->id());
          if (r->scope() == fb::LimitScope::user) m->user = ToUuid(r->scope_id());
          if (r->scope() == fb::LimitScope::tenant) m->tenant = ToUuid(r->scope_id());
          m->op = OpOf(r);
        }
        break;
      case RecordType::kQuota:
        if (auto r = Root<fb::Quota>(v)) {
          m->tenant = ToUuid(r->tenant_id());
          m->op = ChangeOp::kUpdate;
        }
        break;
      default:
        break;
    }
  }
  return m->carried;
}

namespace {

// The filter bit of a log entry's record type (its key's first byte): kCollectionsBit for
// collection records; every bit for other keys past the built-in types (never filtered
// out here; Inspect skips them).
uint32_t TypeBit(const storage::LogEntry& e) {
  auto t = static_cast<uint8_t>(e.key[0]);
  if (t == static_cast<uint8_t>(kCollectionRecordType)) return kCollectionsBit;
  return t < 31 ? 1u << t : ~0u;
}

// Users and tenants (a delete) and API keys (a revocation) can end subscriptions whatever
// they filter.
bool MayEndSubscriptions(const storage::LogEntry& e) {
  auto t = static_cast<uint8_t>(e.key[0]);
  return t == static_cast<uint8_t>(RecordType::kUser) ||
         t == static_cast<uint8_t>(RecordType::kApiKey) ||
         t == static_cast<uint8_t>(RecordType::kTenant);
}

}  // namespace

std::shared_ptr<const ChangeEvent> ChangeFeed::Build(const storage::LogEntry& e, const Meta& m) {
  // A reused event, reset to a fresh one (its strings keep their capacity).
  std::shared_ptr<ChangeEvent> ev = events_.Take(e.key.size() + e.value.size());
  EventRing::Reset(*ev);
  ev->sequence = e.sequence;
  if (e.batch_note.size() == 9) std::memcpy(&ev->commit_time, e.batch_note.data() + 1, 8);
  ev->op = m.op;
  ev->type = m.type;
  ev->id = m.id;
  ev->user = m.user;
  ev->tenant = m.tenant;
  ev->key.assign(e.key);
  if (!m.schema) {
    ev->bytes.assign(e.value);
    return ev;
  }
  // A collection record: named, keyed and rendered as coll_get answers it, once for
  // every subscriber.
  ev->collection.assign(m.collection);
  coll::Json key;
  if (coll::KeyObject(*m.schema, m.pk, &key).ok()) ev->record_key = key.dump();
  if (!e.is_delete) ev->json = coll::ToApiText(*m.schema, Aligned(e.value));
  return ev;
}

bool ChangeFeed::Matches(const Sub& s, const Meta& m) {
  const FeedFilter& f = s.filter;
  if (!m.schema) {
    if (!(f.types & (1u << static_cast<uint8_t>(m.type)))) return false;
    if (f.user && !(m.user == *f.user)) return false;
    if (f.tenant && !(m.tenant == *f.tenant)) return false;
    return true;
  }
  if (!(f.types & kCollectionsBit) &&
      std::find(f.collections.begin(), f.collections.end(), m.collection) == f.collections.end())
    return false;
  // Who may read the record: as coll_get decides (collections.cc, ViewerOf).
  using coll::OwnerKind;
  const CollectionAccess& a = s.access;
  switch (a.kind) {
    case CollectionAccess::kUser:
      if (m.owner_kind == OwnerKind::kUser) return m.user == a.user;
      if (m.owner_kind == OwnerKind::kTenant) return !a.tenant.IsNil() && m.tenant == a.tenant;
      return true;
    case CollectionAccess::kTenant:
      if (m.owner_kind != OwnerKind::kNone && !(m.tenant == a.tenant)) return false;
      break;
    case CollectionAccess::kAll:
      if (f.tenant && !(m.tenant == *f.tenant)) return false;
      break;
  }
  if (f.user && !(m.user == *f.user)) return false;
  return true;
}

void ChangeFeed::AddLive(Sub* s) {
  if (s->filter.user)
    live_by_user_[*s->filter.user].push_back(s);
  else
    live_broad_.push_back(s);
  if (s->access.kind == CollectionAccess::kUser && (s->wanted & kCollectionsBit))
    live_coll_users_.push_back(s);
  live_types_ |= s->wanted;
}

void ChangeFeed::End(Sub& s, Status why, uint64_t resume_point) {
  // A removed subscription was cancelled by its holder (a connection closing): its wake
  // may point into an event loop that is going away, so it is never called again.
  if (s.removed) return;
  MarkRemoved(s);
  auto h = s.handle.lock();
  if (!h) return;
  std::lock_guard lock(h->mu_);
  if (h->ended_) return;
  h->ended_ = true;
  h->end_status_ = std::move(why);
  h->resume_point_ = resume_point;
  h->feed_ = nullptr;
  h->cv_.notify_all();
  // Called under the handle's lock: once feed_ is null, Cancel (which takes this lock)
  // has no other way to know the wake is done, and the holder may free what the wake
  // touches (a connection's event loop) right after Cancel returns. A wake only posts.
  if (h->wake_) h->wake_();
}

bool ChangeFeed::Push(Sub& s, const std::shared_ptr<const ChangeEvent>& ev, bool end_if_full) {
  auto h = s.handle.lock();
  if (!h) {  // the holder let go without Cancel
    MarkRemoved(s);
    return false;
  }
  bool was_empty = false, full = false;
  {
    std::lock_guard lock(h->mu_);
    if (h->ended_) return false;
    full = h->queue_.size() >= options_.max_queued_events ||
           h->queued_bytes_ >= options_.max_queued_bytes;
    if (!full) {
      was_empty = h->queue_.empty();
      h->queue_.push_back(ev);
      h->queued_bytes_ += ev->size();
      h->resume_point_ = ev->sequence;
    }
  }
  if (full && !end_if_full) return false;
  if (full) {
    End(s,
        Status::ResourceExhausted("the subscriber fell behind by more than its buffer (" +
                                  std::to_string(options_.max_queued_events) +
                                  " events); resume from the resume point"),
        ev->sequence - 1);
    return false;
  }
  if (was_empty) {
    h->cv_.notify_all();
    if (h->wake_) to_wake_.emplace_back(&s, std::move(h));
  }
  return true;
}

void ChangeFeed::WakePushed() {
  // Under mu_, like End's wake: a holder's Cancel (Remove takes mu_) returns only once
  // no wake of it can run any more; a removed subscription is not woken.
  for (auto& [s, h] : to_wake_)
    if (!s->removed) h->wake_();
  to_wake_.clear();
}

bool ChangeFeed::MovedAway(const Sub& s, const Meta& m, uint64_t seq) {
  // Its tenant-owned collection records were read as the old tenant's user. Ended as a
  // slow subscriber is, so clients resubscribe by themselves and read as the new
  // tenant's. Only user records logged after the subscription opened count: catching up
  // reads the user's older tenants.
  return m.user_put && seq > s.opened_at && s.access.follows_user_tenant && s.access.user == m.id &&
         !(s.access.tenant == m.tenant);
}

Status ChangeFeed::MovedAwayStatus() {
  return Status::ResourceExhausted("the user's tenant changed: subscribe again");
}

std::optional<Status> ChangeFeed::EndedBy(const Sub& s, const Meta& m) {
  const FeedEnds& e = s.ends;
  if (m.user_gone && e.user && *e.user == m.id)
    return Status::PermissionDenied("the user was deleted");
  if (m.key_revoked && e.key && *e.key == m.id)
    return Status::PermissionDenied("the API key was revoked");
  if (m.tenant_gone && e.tenant && *e.tenant == m.id)
    return Status::PermissionDenied("the API key's tenant was deleted");
  return std::nullopt;
}

void ChangeFeed::EndExpired() {
  int64_t now = now_ ? now_() : 0;
  for (auto& [id, s] : subs_) {
    int64_t x = s->ends.expires_at;
    // Everything up to its position passed Deliver's check (committed before the expiry)
    // or its filter.
    if (!s->removed && x != 0 && now >= x)
      End(*s, Status::PermissionDenied("the API key expired"),
          s->live ? published_.load(std::memory_order_relaxed) : s->cursor);
  }
  removals_ = true;  // Run's cleanup recomputes next_expiry_ from the ones left
}

bool ChangeFeed::Deliver(Sub& s, const std::shared_ptr<const ChangeEvent>& ev, bool end_if_full) {
  // An expiry is no change in the log: it is judged by the commit time of the first
  // change the key would be sent (the engine's clock, as the key's own checks).
  if (s.ends.expires_at && ev->commit_time >= s.ends.expires_at) {
    End(s, Status::PermissionDenied("the API key expired"), ev->sequence - 1);
    return false;
  }
  return Push(s, ev, end_if_full);
}

void ChangeFeed::ApplyControl(const Meta& m, uint64_t seq) {
  if (!m.user_gone && !m.key_revoked && !m.tenant_gone && !m.user_put) return;
  for (auto& [id, s] : subs_) {
    if (s->removed) continue;
    // A live change ends subscriptions still catching up too (at once, not when their
    // read reaches it), but their resume point is only what they have read: `seq` would
    // claim the changes between their cursor and it were delivered.
    uint64_t resume = s->live ? seq : s->cursor;
    if (auto why = EndedBy(*s, m)) {
      End(*s, std::move(*why), resume);
    } else if (MovedAway(*s, m, seq + 1)) {
      // A subscription still catching up too: it would read the old tenant's records up
      // to the live end and on.
      End(*s, MovedAwayStatus(), resume);
    }
  }
}

bool ChangeFeed::LiveStep(std::unique_lock<std::mutex>& lock) {
  uint64_t target = durable_.load(std::memory_order_acquire);
  uint64_t from = published_.load(std::memory_order_relaxed) + 1;
  if (target < from) return false;
  if (live_broad_.empty() && live_by_user_.empty() && live_coll_users_.empty()) {
    // Nobody follows the live end: subscriptions behind it read the log themselves.
    published_.store(target, std::memory_order_release);
    return true;
  }
  struct Item {
    Meta meta;
    std::shared_ptr<const ChangeEvent> ev;
    uint64_t seq;
    // live_by_user_'s entry for the change's user, found once while reading (nullptr:
    // none). Only this thread changes the live sets, and not before the fan-out below.
    const std::vector<Sub*>* followers = nullptr;
    // A collection record no user owns: user-scoped subscriptions may read it too.
    bool to_user_scopes = false;
  };
  std::vector<Item> items;
  const uint32_t wanted = live_types_;
  lock.unlock();
  auto read = store_->ReadLog(from, target, options_.read_chunk, [&](const storage::LogEntry& e) {
    // A type no live subscription takes is skipped undecoded, unless it may end one.
    if (!e.key.empty() && !MayEndSubscriptions(e) && !(wanted & TypeBit(e))) return Status::OK();
    Item it;
    it.seq = e.sequence;
    // A change of a user no live subscription follows (and none follows every user) is
    // not built: no event, no tenant lookup, no copies.
    bool carried = Inspect(e, &it.meta, /*live=*/true);
    if (carried) it.followers = LiveFollowers(it.meta);
    it.to_user_scopes =
        carried && it.meta.schema && it.meta.user.IsNil() && !live_coll_users_.empty();
    if (carried && (it.followers || !live_broad_.empty() || it.to_user_scopes)) {
      FillTenant(&it.meta);
      it.ev = Build(e, it.meta);
    }
    if (it.ev || it.meta.user_gone || it.meta.key_revoked || it.meta.tenant_gone ||
        it.meta.user_put)
      items.push_back(std::move(it));
    return Status::OK();
  });
  lock.lock();
  if (!read.ok()) {
    std::cerr << "change feed: " << read.status().ToString() << "\n";
    for (auto& [id, s] : subs_)
      if (s->live) End(*s, read.status(), published_.load());
    published_.store(target, std::memory_order_release);
    return true;
  }
  uint64_t last = *read < from ? target : *read;
  for (const Item& it : items) {
    ApplyControl(it.meta, it.seq - 1);
    if (!it.ev) continue;
    auto deliver = [&](Sub* s) {
      if (!s->removed && Matches(*s, it.meta)) Deliver(*s, it.ev, /*end_if_full=*/true);
    };
    if (it.followers)
      for (Sub* s : *it.followers) deliver(s);
    for (Sub* s : live_broad_) deliver(s);
    if (it.to_user_scopes)
      for (Sub* s : live_coll_users_) deliver(s);
  }
  WakePushed();
  // Live subscriptions have seen everything up to `last`: their resume point is published_.
  published_.store(last, std::memory_order_release);
  return true;
}

bool ChangeFeed::CatchUpStep(std::unique_lock<std::mutex>& lock) {
  bool did = false;
  std::vector<std::shared_ptr<Sub>> behind;  // those to read for now (their buffers have room)
  // Only subscriptions behind the live end are visited (not every subscription per step).
  std::vector<std::shared_ptr<Sub>> still_behind;
  for (auto& s : behind_) {
    if (s->live || s->removed) continue;
    still_behind.push_back(s);
    uint64_t pub = published_.load(std::memory_order_relaxed);
    // A start past what the live read has fanned out (the durable end moves ahead of it)
    // waits for it: joining now would deliver the changes in (pub, cursor] the
    // subscriber said it has.
    if (s->cursor > pub) continue;
    if (s->cursor == pub) {
      s->live = true;
      still_behind.pop_back();
      if (auto h = s->handle.lock()) {
        std::lock_guard hl(h->mu_);
        h->catching_up_ = false;
      }
      AddLive(s.get());
      did = true;
      continue;
    }
    auto h = s->handle.lock();
    if (!h) {
      MarkRemoved(*s);
      still_behind.pop_back();
      continue;
    }
    std::lock_guard hl(h->mu_);
    if (h->queue_.size() < options_.max_queued_events / 2 &&
        h->queued_bytes_ < options_.max_queued_bytes / 2)
      behind.push_back(s);
  }
  behind_ = std::move(still_behind);
  for (auto& s : behind) {
    uint64_t from = s->cursor + 1;
    uint64_t to = published_.load(std::memory_order_relaxed);
    const uint32_t wanted = s->wanted;  // the filter and access are set once, at Open
    struct Item {
      Meta meta;
      std::shared_ptr<const ChangeEvent> ev;  // null: a control (revocation, user delete)
      uint64_t seq;
    };
    std::vector<Item> items;
    lock.unlock();
    auto read = store_->ReadLog(from, to, options_.read_chunk, [&](const storage::LogEntry& e) {
      // A type the filter leaves out is skipped undecoded, unless it may end the
      // subscription (a user deleted, a key revoked).
      if (!e.key.empty() && !MayEndSubscriptions(e) && !(wanted & TypeBit(e))) return Status::OK();
      Item it;
      it.seq = e.sequence;
      bool carried = Inspect(e, &it.meta, /*live=*/false);
      if (carried) FillTenant(&it.meta);
      if (carried && Matches(*s, it.meta)) it.ev = Build(e, it.meta);
      if (it.ev || it.meta.user_gone || it.meta.key_revoked || it.meta.tenant_gone ||
          it.meta.user_put)
        items.push_back(std::move(it));
      return Status::OK();
    });
    lock.lock();
    did = true;
    if (s->removed) continue;
    if (!read.ok()) {
      End(*s, read.status(), s->cursor);
      continue;
    }
    std::optional<uint64_t> stopped_at;
    for (const Item& it : items) {
      if (auto why = EndedBy(*s, it.meta)) {
        End(*s, std::move(*why), it.seq - 1);
        break;
      }
      // The live read ends it for a move only while some subscription follows the live
      // end; this read may be the first to pass the move.
      if (MovedAway(*s, it.meta, it.seq)) {
        End(*s, MovedAwayStatus(), it.seq - 1);
        break;
      }
      // Catching up is pulled by the subscriber: a full buffer pauses it, never ends it.
      if (it.ev && !Deliver(*s, it.ev, /*end_if_full=*/false)) {
        stopped_at = it.seq - 1;
        break;
      }
    }
    if (!s->removed) s->cursor = stopped_at ? *stopped_at : *read < from ? to : *read;
    WakePushed();
  }
  return did;
}

void ChangeFeed::Run() {
  while (true) {
    bool did;
    {
      std::unique_lock lock(mu_);
      if (stopping_.load()) break;
      did = LiveStep(lock);
      did = CatchUpStep(lock) || did;
      int64_t expiry = next_expiry_.load(std::memory_order_relaxed);
      if (expiry != 0 && now_ && now_() >= expiry) EndExpired();
      // Forget removed subscriptions (a walk over all of them only when some went).
      bool any_removed = removals_;
      removals_ = false;
      if (any_removed) {
        std::erase_if(subs_, [](const auto& kv) { return kv.second->removed; });
        std::erase_if(behind_, [](const auto& s) { return s->removed; });
        live_broad_.clear();
        live_by_user_.clear();
        live_coll_users_.clear();
        live_types_ = 0;
        int64_t next_expiry = 0;  // the earliest expiry left (the gone ones may have had it)
        for (auto& [id, s] : subs_) {
          if (s->live) AddLive(s.get());
          int64_t x = s->ends.expires_at;
          if (x != 0 && (next_expiry == 0 || x < next_expiry)) next_expiry = x;
        }
        next_expiry_.store(next_expiry, std::memory_order_relaxed);
      }
      has_subs_.store(!subs_.empty(), std::memory_order_relaxed);
    }
    if (did) continue;
    // Writers notify under wake_mu_ only (never mu_, which fan-out holds), so a change
    // that lands between the checks above and this wait still wakes us.
    std::unique_lock w(wake_mu_);
    auto ready = [&] {
      return stopping_.load() || kicked_.exchange(false) ||
             (has_subs_.load(std::memory_order_relaxed) &&
              durable_.load(std::memory_order_acquire) >
                  published_.load(std::memory_order_relaxed));
    };
    // A key that expires ends its subscription at its expiry, not at the next change:
    // look again every 100 ms while one is due (the engine's clock may be a test's).
    if (next_expiry_.load(std::memory_order_relaxed) != 0)
      wake_cv_.wait_for(w, std::chrono::milliseconds(100), ready);
    else
      wake_cv_.wait(w, ready);
  }
}

}  // namespace internal
}  // namespace agentstore
