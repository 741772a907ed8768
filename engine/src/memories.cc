// user_memory: writes, searches (per user, hybrid, global), pruning, expiry, recovery,
// and the background thread that builds graphs and sweeps expired memories.
//
// Encoding: RocksDB holds each memory's full record (embedding included; unit length for
// cosine stores). The shard's arena holds the record without its embedding, written with
// every scalar present so a touch can bump access_count in place; the vector itself
// lives once in the user's UserMemories block (and in graphs). Touches are logged under
// their own small key, [0x40][memory id] -> (access_count, last_accessed_at), so a touch
// never rewrites a 1.5 KiB vector; recovery applies them over the records.
#include <malloc.h>
#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <thread>
#include <unordered_set>

#include "engine_impl.h"
#include "graph_file.h"

namespace agentstore {

using namespace internal;  // NOLINT

namespace internal {
namespace {

constexpr std::string_view kMemoryConfigKey("\x00meta/memory_vectors", 20);
constexpr char kTouchPrefix = 0x40;

std::string TouchKey(const Uuid& id) {
  std::string k(1, kTouchPrefix);
  k.append(reinterpret_cast<const char*>(id.bytes.data()), 16);
  return k;
}

std::string TouchValue(int64_t count, int64_t at) {
  std::string v(16, '\0');
  std::memcpy(v.data(), &count, 8);
  std::memcpy(v.data() + 8, &at, 8);
  return v;
}

// Packs `m` with `embedding` (or none), every scalar written so that in-place mutation
// of access_count and last_accessed_at always finds its field.
std::string PackMemory(const fb::UserMemory& m, const float* embedding, uint32_t dim) {
  thread_local flatbuffers::FlatBufferBuilder fbb(2048);
  fbb.Clear();
  fbb.ForceDefaults(true);
  auto key = fbb.CreateString(Str(m.memory_key()));
  auto value = fbb.CreateString(Str(m.memory_value()));
  flatbuffers::Offset<flatbuffers::Vector<float>> emb = 0;
  if (embedding) emb = fbb.CreateVector(embedding, dim);
  fb::UserMemoryBuilder b(fbb);
  b.add_id(m.id());
  b.add_user_id(m.user_id());
  b.add_memory_type(m.memory_type());
  b.add_memory_key(key);
  b.add_memory_value(value);
  b.add_importance_score(m.importance_score());
  b.add_access_count(m.access_count());
  b.add_last_accessed_at(m.last_accessed_at());
  if (embedding) b.add_embedding(emb);
  b.add_expires_at(m.expires_at());
  b.add_created_at(m.created_at());
  b.add_updated_at(m.updated_at());
  fbb.Finish(b.Finish());
  std::string out(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
  fbb.ForceDefaults(false);
  return out;
}

// The bytes of a memory record's embedding (its length word and floats).
size_t EmbeddedBytes(const fb::UserMemory& m) {
  return m.embedding() ? sizeof(uint32_t) + m.embedding()->size() * sizeof(float) : 0;
}

void FreeMemoryRecord(Partition& shard, Loc loc) {
  shard.memory_embedded_bytes -= EmbeddedBytes(*View<fb::UserMemory>(shard, loc));
  shard.arena.Free(loc);
}

fb::UserMemory* MutableMemory(Partition& shard, Loc loc) {
  return flatbuffers::GetMutableRoot<fb::UserMemory>(
      const_cast<char*>(shard.arena.Get(loc).data()));
}

// memory_value's `content` (keyword search) and `tags` (filters).
struct ValueParts {
  std::string content;
  std::vector<uint64_t> tags;
};

Status ParseValue(std::string_view json, ValueParts* out) {
  out->content.clear();
  out->tags.clear();
  if (json.empty()) return Status::OK();
  Json v = Json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (v.is_discarded() || !v.is_object())
    return Status::InvalidArgument("memory_value must be a JSON object");
  if (auto c = v.find("content"); c != v.end()) {
    if (!c->is_string()) return Status::InvalidArgument("memory_value.content must be a string");
    out->content = c->get<std::string>();
  }
  if (auto t = v.find("tags"); t != v.end()) {
    if (!t->is_array()) return Status::InvalidArgument("memory_value.tags must be an array");
    for (const auto& tag : *t) {
      if (!tag.is_string()) return Status::InvalidArgument("memory_value.tags must hold strings");
      out->tags.push_back(TagHash(tag.get<std::string>()));
    }
  }
  return Status::OK();
}

std::string ContentOf(const fb::UserMemory* m) {
  ValueParts parts;
  (void)ParseValue(Str(m->memory_value()), &parts);  // validated when written
  return parts.content;
}

MemoryMeta MetaOf(const fb::UserMemory* m, Loc loc, uint64_t label, std::vector<uint64_t> tags) {
  MemoryMeta meta;
  meta.id = ToUuid(m->id());
  meta.loc = loc;
  meta.label = label;
  meta.expires_at = m->expires_at();
  meta.importance = m->importance_score();
  meta.type = m->memory_type();
  meta.tags = std::move(tags);
  return meta;
}

Status CheckK(uint32_t k) {
  if (k < 1 || k > 1000) return Status::InvalidArgument("k must be 1..1000");
  return Status::OK();
}

// Holds a shard's lock shared, or exclusively when the call will write (touch).
class ShardLock {
 public:
  ShardLock(std::shared_mutex& mu, bool exclusive) : mu_(mu), exclusive_(exclusive) {
    exclusive ? mu_.lock() : mu_.lock_shared();
  }
  ~ShardLock() { exclusive_ ? mu_.unlock() : mu_.unlock_shared(); }

 private:
  std::shared_mutex& mu_;
  bool exclusive_;
};

}  // namespace

Status EngineState::OpenMemoryStore() {
  const MemoryOptions& mo = options.memory;
  uint32_t dim = 384;
  index::Metric metric = index::Metric::kCosine;
  std::string stored;
  Status s = store->Get(kMemoryConfigKey, &stored);
  bool fresh = s.code() == StatusCode::kNotFound;
  if (!fresh) {
    AS_RETURN_IF_ERROR(s);
    auto space_at = stored.find(' ');
    auto m = space_at == std::string::npos ? std::nullopt
                                           : index::MetricFromName(stored.substr(space_at + 1));
    if (!m) return Status::Corruption("unreadable memory vector configuration: " + stored);
    dim = static_cast<uint32_t>(std::stoul(stored.substr(0, space_at)));
    metric = *m;
    if (mo.dim != 0 && mo.dim != dim)
      return Status::InvalidArgument("this store's memory vectors have dimension " +
                                     std::to_string(dim) + ", not " + std::to_string(mo.dim));
  } else if (mo.dim != 0) {
    dim = mo.dim;
  }
  if (!mo.metric.empty()) {
    auto m = index::MetricFromName(mo.metric);
    if (!m) return Status::InvalidArgument("memory metric must be cosine or l2");
    if (!fresh && *m != metric)
      return Status::InvalidArgument("this store's memory metric is " +
                                     std::string(index::MetricName(metric)));
    metric = *m;
  }
  if (mo.exact_threshold < 1) return Status::InvalidArgument("exact_threshold must be >= 1");
  AS_ASSIGN_OR_RETURN(memory.space, index::Space::Make(dim, metric));
  if (fresh) {
    storage::WriteBatch batch;
    batch.Put(kMemoryConfigKey, std::to_string(dim) + " " + std::string(index::MetricName(metric)));
    AS_ASSIGN_OR_RETURN(uint64_t ticket, store->Write(batch));
    AS_RETURN_IF_ERROR(store->AwaitDurable(ticket));
  }
  memory.vectors = std::make_unique<VectorStore>(dim);
  memory.global = std::make_unique<GlobalMemoryIndex>(memory.space, mo.global_graph);
  memory.graph_dir = options.data_dir + "/graphs";
  return Status::OK();
}

void EngineState::IndexMemory(Partition& shard, Loc loc, const float* vec) {
  const auto* m = View<fb::UserMemory>(shard, loc);
  Uuid id = ToUuid(m->id()), user = ToUuid(m->user_id());
  ValueParts parts;
  (void)ParseValue(Str(m->memory_value()), &parts);
  auto& slot = shard.memories_by_user[user];
  if (!slot) slot = std::make_unique<UserMemories>(memory.vectors.get(), &shard.arena);
  std::string old_content;
  if (auto s = slot->SlotOfId(id)) {
    const MemoryMeta& old = slot->meta(*s);
    old_content = ContentOf(View<fb::UserMemory>(shard, old.loc));
    memory.global->Remove(old.label);
    FreeMemoryRecord(shard, old.loc);
  }
  uint64_t label = memory.next_label.fetch_add(1, std::memory_order_relaxed);
  slot->Put(MetaOf(m, loc, label, std::move(parts.tags)), std::string(Str(m->memory_key())), vec,
            parts.content, old_content);
  shard.memories[id] = loc;
  if (memory.recovering)
    memory.global->PutRecovered(label, {user, id, m->memory_type(), m->expires_at()});
  else  // the VectorStore's copy, which the global graph borrows
    memory.global->Put(label, {user, id, m->memory_type(), m->expires_at()},
                       slot->vector(*slot->SlotOfId(id)));
  QueueGraphWork(shard, user, *slot);
}

void EngineState::UnindexMemory(Partition& shard, const Uuid& id) {
  auto it = shard.memories.find(id);
  if (it == shard.memories.end()) return;
  const auto* m = View<fb::UserMemory>(shard, it->second);
  Uuid user = ToUuid(m->user_id());
  auto mems = shard.memories_by_user.find(user);
  if (mems != shard.memories_by_user.end()) {
    if (auto s = mems->second->SlotOfId(id)) memory.global->Remove(mems->second->meta(*s).label);
    mems->second->Erase(id, ContentOf(m));
    if (mems->second->size() == 0)
      shard.memories_by_user.erase(mems);
    else
      QueueGraphWork(shard, user, *mems->second);
  }
  FreeMemoryRecord(shard, it->second);
  shard.memories.erase(it);
}

void EngineState::AddUserMemoryDeletes(const Partition& shard, const Uuid& user,
                                       storage::WriteBatch& batch) {
  auto mems = shard.memories_by_user.find(user);
  if (mems == shard.memories_by_user.end()) return;
  batch.Note(OwnerNoteFor(user));  // the change feed's owner of these deletes
  for (size_t i = 0; i < mems->second->size(); ++i) {
    const Uuid& id = mems->second->meta(static_cast<uint32_t>(i)).id;
    batch.Delete(RecordKey(RecordType::kUserMemory, id));
    batch.Delete(TouchKey(id));
  }
}

void EngineState::DropUserMemories(Partition& shard, const Uuid& user) {
  auto mems = shard.memories_by_user.find(user);
  if (mems == shard.memories_by_user.end()) return;
  std::vector<Uuid> ids;
  for (size_t i = 0; i < mems->second->size(); ++i)
    ids.push_back(mems->second->meta(static_cast<uint32_t>(i)).id);
  for (const Uuid& id : ids) UnindexMemory(shard, id);
}

bool EngineState::NeedsGraphWork(const UserMemories& mems) const {
  const MemoryOptions& mo = options.memory;
  const index::HnswGraph* g = mems.graph();
  return g ? (g->tombstones() > mo.rebuild_tombstone_fraction * (g->live() + 1) ||
              mems.size() < mo.exact_threshold / 2)
           : mems.size() > mo.exact_threshold;
}

void EngineState::QueueGraphWork(Partition& shard, const Uuid& user, UserMemories& mems) {
  if (!NeedsGraphWork(mems) || mems.graph_queued) return;
  mems.graph_queued = true;
  {
    std::lock_guard lock(memory.queue_mu);
    memory.graph_queue.push_back({ShardIndex(user), user});
  }
  memory.wake.notify_one();
}

bool EngineState::MemoryIndexStep() {
  std::lock_guard step(memory.step_mu);
  const MemoryOptions& mo = options.memory;
  std::optional<std::pair<size_t, Uuid>> job;
  {
    std::lock_guard lock(memory.queue_mu);
    if (!memory.graph_queue.empty()) {
      job = memory.graph_queue.back();
      memory.graph_queue.pop_back();
    }
  }
  if (job) {
    Partition& shard = *shards[job->first];
    std::vector<uint64_t> labels;
    std::vector<const float*> vectors;
    bool build = false;
    {
      std::unique_lock lock(shard.mu);
      auto mems = shard.memories_by_user.find(job->second);
      if (mems == shard.memories_by_user.end()) return true;
      UserMemories& um = *mems->second;
      if (!NeedsGraphWork(um)) {  // e.g. a graph loaded at open since this was queued
        um.graph_queued = false;
        return true;
      }
      if (um.size() < mo.exact_threshold / 2) {
        um.DropGraph();
        um.graph_queued = false;
        return true;
      }
      um.Snapshot(&labels, &vectors);
      build = true;
    }
    if (build) {
      // Built outside the shard lock (a 10k-vector graph takes on the order of a second);
      // InstallGraph then replays what changed meanwhile.
      auto g = std::make_unique<index::HnswGraph>(memory.space, mo.user_graph,
                                                  labels.size() + labels.size() / 4 + 16,
                                                  index::VectorStorage::kBorrow);
      for (size_t i = 0; i < labels.size(); ++i) {
        // A stop abandons the build (the user stays on exact scans; the next start
        // queues it again) rather than keep the stop waiting up to seconds.
        if (i % 256 == 0 && memory.stop_builds.load(std::memory_order_relaxed)) return false;
        (void)g->Add(labels[i], vectors[i]);
      }
      std::unique_lock lock(shard.mu);
      auto mems = shard.memories_by_user.find(job->second);
      if (mems == shard.memories_by_user.end()) return true;
      // Still queued while building, so writes meanwhile did not queue a second build;
      // afterwards, look again (the user may have shrunk or churned during the build).
      mems->second->graph_queued = false;
      if (mems->second->size() >= mo.exact_threshold / 2) mems->second->InstallGraph(std::move(g));
      QueueGraphWork(shard, job->second, *mems->second);
    }
    return true;
  }
  if (memory.global->Step(256, mo.rebuild_tombstone_fraction, memory.stop_builds)) {
    memory.trimmed = false;
    return true;
  }
  if (!memory.trimmed) {
    // The indexer just caught up: the vector copies it queued (1.5 KiB each at 384-d,
    // up to every vector after a burst of writes) are freed, but glibc keeps freed
    // chunks inside its heap; give their pages back to the OS once per idle period.
    malloc_trim(0);
    memory.trimmed = true;
  }
  return false;
}

void EngineState::StartMemoryThread() {
  if (!options.memory.background) return;
  memory.thread = std::thread([this] {
    pthread_setname_np(pthread_self(), "memory-index");  // for top -H and perf
    auto next_sweep = std::chrono::steady_clock::now();
    auto next_save = std::chrono::steady_clock::now() +
                     std::chrono::milliseconds(options.memory.graph_save_interval_ms);
    std::unique_lock lock(memory.thread_mu);
    while (!memory.stopping) {
      lock.unlock();
      bool busy = MemoryIndexStep();
      if (options.memory.sweep_interval_ms > 0 && std::chrono::steady_clock::now() >= next_sweep) {
        next_sweep = std::chrono::steady_clock::now() +
                     std::chrono::milliseconds(options.memory.sweep_interval_ms);
        // Sweep failures (a full disk) are retried at the next interval.
        (void)SweepExpired();
        (void)SweepCollections();
      }
      if (options.memory.save_graphs && options.memory.graph_save_interval_ms > 0 &&
          std::chrono::steady_clock::now() >= next_save) {
        next_save = std::chrono::steady_clock::now() +
                    std::chrono::milliseconds(options.memory.graph_save_interval_ms);
        // A failed save (a full disk) leaves the previous one; retried next interval.
        (void)SaveMemoryGraphs();
      }
      lock.lock();
      if (!busy) memory.wake.wait_for(lock, std::chrono::milliseconds(20));
    }
  });
}

void EngineState::StopMemoryThread() {
  // A graph build in progress gives up at its next check (memory.stop_builds).
  memory.stop_builds.store(true);
  {
    std::lock_guard lock(memory.thread_mu);
    memory.stopping = true;
  }
  memory.wake.notify_all();
  if (memory.thread.joinable()) memory.thread.join();
}

Result<uint64_t> EngineState::SweepExpired() {
  uint64_t removed = 0;
  const int64_t now = Now();
  for (auto& shard_ptr : shards) {
    Partition& shard = *shard_ptr;
    std::unique_lock lock(shard.mu);
    std::vector<Uuid> expired;
    for (const auto& [user, mems] : shard.memories_by_user)
      for (size_t i = 0; i < mems->size(); ++i) {
        const MemoryMeta& m = mems->meta(static_cast<uint32_t>(i));
        if (m.expires_at != 0 && m.expires_at <= now) expired.push_back(m.id);
      }
    if (expired.empty()) continue;
    storage::WriteBatch batch;
    for (const Uuid& id : expired) {
      if (auto m = shard.memories.find(id); m != shard.memories.end())  // the feed's owner
        batch.Note(OwnerNoteFor(ToUuid(View<fb::UserMemory>(shard, m->second)->user_id())));
      batch.Delete(RecordKey(RecordType::kUserMemory, id));
      batch.Delete(TouchKey(id));
    }
    AS_ASSIGN_OR_RETURN(uint64_t ticket, Log(batch));
    for (const Uuid& id : expired) UnindexMemory(shard, id);
    MaybeCompact(shard);
    lock.unlock();
    AS_RETURN_IF_ERROR(Durable(ticket));
    removed += expired.size();
  }
  return removed;
}

std::string EngineState::MemoryArenaBytes(std::string_view record) const {
  const auto* m = flatbuffers::GetRoot<fb::UserMemory>(record.data());
  if (!m->embedding()) return std::string(record);
  return PackMemory(*m, nullptr, memory.space->dim());
}

Status EngineState::RecoverMemories() {
  const uint32_t dim = memory.space->dim();
  memory.recovering = true;
  AS_RETURN_IF_ERROR(RecoveryScan(KeyPrefix(RecordType::kUserMemory), [&](std::string_view k,
                                                                          std::string_view v) {
    flatbuffers::Verifier verifier(reinterpret_cast<const uint8_t*>(v.data()), v.size());
    if (!verifier.VerifyBuffer<fb::UserMemory>(nullptr))
      return Status::Corruption("a user_memory record fails verification");
    const auto* m = flatbuffers::GetRoot<fb::UserMemory>(v.data());
    if (!m->embedding() || m->embedding()->size() != dim)
      return Status::Corruption("a user_memory record's embedding is not " + std::to_string(dim) +
                                "-dimensional");
    Partition& shard = ShardOf(ToUuid(m->user_id()));
    // A record in the table image is referred to in place, embedding and all (the
    // VectorStore refers to the same bytes), when it carries the touch counters that
    // are updated in place; any other is copied without its embedding.
    const auto* table = reinterpret_cast<const flatbuffers::Table*>(m);
    if (shard.arena.WouldRefer(v) && table->CheckField(fb::UserMemory::VT_ACCESS_COUNT) &&
        table->CheckField(fb::UserMemory::VT_LAST_ACCESSED_AT)) {
      shard.memory_embedded_bytes += EmbeddedBytes(*m);
      IndexMemory(shard, shard.arena.Append(v), m->embedding()->data());
    } else {
      IndexMemory(shard, shard.arena.Append(PackMemory(*m, nullptr, dim)), m->embedding()->data());
    }
    return Status::OK();
  }));
  return RecoveryScan(std::string(1, kTouchPrefix), [&](std::string_view k, std::string_view v) {
    if (k.size() != 17 || v.size() != 16) return Status::Corruption("malformed memory touch");
    Uuid id = Uuid::FromBytes(reinterpret_cast<const uint8_t*>(k.data() + 1));
    int64_t count, at;
    std::memcpy(&count, v.data(), 8);
    std::memcpy(&at, v.data() + 8, 8);
    for (auto& shard : shards) {
      auto it = shard->memories.find(id);
      if (it == shard->memories.end()) continue;
      auto* m = MutableMemory(*shard, it->second);
      m->mutate_access_count(count);
      m->mutate_last_accessed_at(at);
      break;
    }
    return Status::OK();
  });
}

void EngineState::FinishMemoryRecovery() {
  for (auto& shard : shards)
    for (auto& [user, mems] : shard->memories_by_user) mems->ShrinkToFit();
  LoadSavedGraphs();
  memory.recovering = false;
}

namespace {

// A saved graph element's new label and vector: the label recovery gave its memory and
// that memory's vector in the VectorStore, when RocksDB still holds that memory with the
// vector the element was built from (same hash).
std::optional<index::HnswGraph::Relabelled> CheckedLabel(const UserMemories& mems,
                                                         const GraphElementKey& key, uint32_t dim,
                                                         uint64_t (*hash)(const float*, uint32_t),
                                                         std::unordered_set<uint64_t>* used) {
  auto slot = mems.SlotOfId(key.id);
  if (!slot || hash(mems.vector(*slot), dim) != key.vector_hash) return std::nullopt;
  uint64_t label = mems.meta(*slot).label;
  if (!used->insert(label).second) return std::nullopt;  // named twice: keep one
  return index::HnswGraph::Relabelled{label, mems.vector(*slot)};
}

std::string UserGraphBase(const std::string& dir, const Uuid& user) {
  return dir + "/users/" + user.ToString();
}

}  // namespace

void EngineState::LoadSavedGraphs() {
  const MemoryOptions& mo = options.memory;
  const uint32_t dim = memory.space->dim();
  auto mems_of = [&](const Uuid& user) -> const UserMemories* {
    Partition& shard = ShardOf(user);
    auto it = shard.memories_by_user.find(user);
    return it == shard.memories_by_user.end() ? nullptr : it->second.get();
  };
  std::unique_ptr<index::HnswGraph> global;
  bool global_old_format = false;
  if (mo.save_graphs) {
    // What a crash while saving left (.hnsw.tmp, .meta.tmp: as large as the graphs); no
    // saver runs yet.
    for (const std::string& dir : {memory.graph_dir, memory.graph_dir + "/users"}) {
      std::error_code ec;
      for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
        if (std::error_code rm; it->path().extension() == ".tmp")
          std::filesystem::remove(it->path(), rm);
    }
    // Anything unreadable, torn, foreign or stale is simply not used: every vector the
    // graph lacks is queued for the indexer, as on a first start.
    auto saved = memory.global_file.valid()
                     ? memory.global_file.get()
                     : LoadGraphFile(memory.graph_dir + "/global", memory.space, mo.global_graph);
    if (saved.ok()) {
      std::unordered_set<uint64_t> used;
      SavedGraph& sg = *saved;
      sg.graph->Relabel([&](size_t i) -> std::optional<index::HnswGraph::Relabelled> {
        const UserMemories* mems = mems_of(sg.keys[i].user);
        if (!mems) return std::nullopt;
        return CheckedLabel(*mems, sg.keys[i], dim, sg.hash, &used);
      });
      memory.global_loaded = sg.graph->live();
      global = std::move(sg.graph);
      global_old_format = !sg.current_format;
    }
  }
  memory.global->AttachRecovered(std::move(global),
                                 [&](const GlobalMemoryIndex::Entry& e) -> const float* {
                                   const UserMemories* mems = mems_of(e.user);
                                   auto slot = mems ? mems->SlotOfId(e.id) : std::nullopt;
                                   return slot ? mems->vector(*slot) : nullptr;
                                 });
  if (global_old_format) memory.global->MarkChanged();  // saved again in the current format
  if (mo.open_catch_up_ms > 0) {
    memory.global_caught_up = memory.global->CatchUp(
        std::max(1u, std::thread::hardware_concurrency()),
        std::chrono::steady_clock::now() + std::chrono::milliseconds(mo.open_catch_up_ms));
  }
  if (!mo.save_graphs) return;
  for (auto& shard : shards)
    for (auto& [user, mems] : shard->memories_by_user) {
      if (mems->size() < mo.exact_threshold / 2) continue;
      auto saved =
          LoadGraphFile(UserGraphBase(memory.graph_dir, user), memory.space, mo.user_graph);
      if (!saved.ok()) continue;
      std::unordered_set<uint64_t> used;
      SavedGraph& sg = *saved;
      sg.graph->Relabel([&](size_t i) -> std::optional<index::HnswGraph::Relabelled> {
        if (sg.keys[i].user != user) return std::nullopt;
        return CheckedLabel(*mems, sg.keys[i], dim, sg.hash, &used);
      });
      mems->InstallGraph(std::move(sg.graph));
      // An older format stays "changed", so the next save rewrites it.
      if (sg.current_format) mems->saved_graph_changes = mems->graph_changes();
      ++memory.user_graphs_loaded;
    }
}

Status EngineState::SaveMemoryGraphs() {
  if (!options.memory.save_graphs) return Status::OK();
  std::lock_guard lock(memory.save_mu);
  // The sequence before naming the elements: the graph covers at least these writes.
  const uint64_t sequence = store->LatestSequence();
  AS_RETURN_IF_ERROR(memory.global->Save(memory.graph_dir + "/global", sequence));
  std::unordered_set<std::string> keep;
  for (auto& shard_ptr : shards) {
    Partition& shard = *shard_ptr;
    // Shared: readers go on; writers to this shard wait for one user's graph at a time.
    std::vector<Uuid> users;
    {
      std::shared_lock slock(shard.mu);
      for (const auto& [user, mems] : shard.memories_by_user)
        if (mems->graph()) users.push_back(user);
    }
    for (const Uuid& user : users) {
      std::shared_lock slock(shard.mu);
      auto it = shard.memories_by_user.find(user);
      if (it == shard.memories_by_user.end() || !it->second->graph()) continue;
      UserMemories& mems = *it->second;
      std::string base = UserGraphBase(memory.graph_dir, user);
      keep.insert(user.ToString());
      if (mems.saved_graph_changes == mems.graph_changes()) continue;
      const index::HnswGraph& g = *mems.graph();
      std::vector<GraphElementKey> keys(g.elements());
      for (size_t i = 0; i < keys.size(); ++i) {
        if (g.DeletedAt(i)) continue;
        if (auto slot = mems.SlotOfLabel(g.LabelAt(i)))
          keys[i] = {user, mems.meta(*slot).id, VectorHash(g.VectorAt(i), g.space().dim())};
      }
      AS_RETURN_IF_ERROR(SaveGraphFile(base, g, keys, sequence));
      mems.saved_graph_changes = mems.graph_changes();
    }
  }
  // Graphs of users who no longer have one.
  std::error_code ec;
  std::filesystem::directory_iterator it(memory.graph_dir + "/users", ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    std::string stem = name.substr(0, name.find('.'));
    if (!keep.count(stem)) std::filesystem::remove(it->path(), ec);
  }
  return Status::OK();
}

Status EngineState::PrepareMemoryImport(fb::UserMemoryT m, int64_t now, MemoryImport* out) const {
  if (!m.id || !m.user_id) return Status::InvalidArgument("id and user_id are required");
  if (m.memory_key.empty()) return Status::InvalidArgument("memory_key is required");
  if (m.memory_value.empty()) m.memory_value = "{}";
  if (m.created_at == 0) m.created_at = now;
  if (m.updated_at == 0) m.updated_at = m.created_at;
  {
    // Checked like a create; a cosine vector already of unit length (as every exported
    // one is, up to float rounding) is kept bit for bit rather than normalized again.
    std::vector<float> prepared = m.embedding;
    AS_RETURN_IF_ERROR(memory.space->Prepare(prepared));
    double norm2 = 0;
    for (float x : m.embedding) norm2 += double{x} * x;
    if (std::abs(norm2 - 1.0) > 1e-5) m.embedding = std::move(prepared);
  }
  ValueParts parts;
  AS_RETURN_IF_ERROR(ParseValue(m.memory_value, &parts));
  AS_RETURN_IF_ERROR(CheckRecord(m, Ctx()));
  out->id = ToUuid(m.id.get());
  out->user = ToUuid(m.user_id.get());
  out->key = m.memory_key;
  out->full = PackEveryScalar(m);
  const auto* view = flatbuffers::GetRoot<fb::UserMemory>(out->full.data());
  out->bytes = PackMemory(*view, nullptr, memory.space->dim());
  out->embedding = std::move(m.embedding);
  return Status::OK();
}

}  // namespace internal

// ---------------------------------------------------------------- writes

Result<Row<fb::UserMemory>> Engine::UpsertMemory(const Scope& scope, const fb::UserMemoryT& in) {
  if (scope.is_admin()) return Status::PermissionDenied("admin keys do not write memories");
  EngineState& st = *impl_;
  fb::UserMemoryT m = in;
  if (!m.user_id) {
    if (!scope.is_user()) return Status::InvalidArgument("user_id is required");
    m.user_id = FbId(scope.user());
  }
  Uuid user = ToUuid(m.user_id.get());
  if (scope.is_user() && user != scope.user())
    return Status::PermissionDenied("a user writes only its own memories");
  if (!st.Sees(scope, user)) return MissingRef("user_id", "user");
  if (m.memory_key.empty()) return Status::InvalidArgument("memory_key is required");
  if (m.embedding.empty()) return Status::InvalidArgument("embedding is required");
  AS_RETURN_IF_ERROR(st.memory.space->Prepare(m.embedding));
  if (!(m.importance_score >= 0.0 && m.importance_score <= 1.0))
    return Status::InvalidArgument("importance_score must be in [0, 1]");
  if (m.memory_value.empty()) m.memory_value = "{}";
  ValueParts parts;
  AS_RETURN_IF_ERROR(ParseValue(m.memory_value, &parts));
  int64_t now = st.Now();
  if (m.expires_at < 0 || (m.expires_at != 0 && m.expires_at <= now))
    return Status::InvalidArgument("expires_at must be in the future (or 0 for never)");
  bool id_given = m.id != nullptr;

  Partition& shard = st.ShardOf(user);
  auto claim = st.ClaimId(id_given ? ToUuid(m.id.get()) : Uuid(), id_given);
  if (id_given && st.InOtherShard(&Partition::memories, ToUuid(m.id.get()), st.ShardIndex(user)))
    return Status::AlreadyExists("memory id is in use");
  std::unique_lock lock(shard.mu);
  if (!st.UserLive(shard, user)) return MissingRef("user_id", "user");
  // An existing key updates that memory: its identity, counters and created_at stay.
  std::optional<Uuid> existing;
  if (auto mems = shard.memories_by_user.find(user); mems != shard.memories_by_user.end())
    existing = mems->second->IdOfKey(m.memory_key);
  if (existing) {
    if (id_given && ToUuid(m.id.get()) != *existing)
      return Status::InvalidArgument("memory_key belongs to another memory id");
    const auto* cur = View<fb::UserMemory>(shard, shard.memories.at(*existing));
    m.id = FbId(*existing);
    m.created_at = cur->created_at();
    m.access_count = cur->access_count();
    m.last_accessed_at = cur->last_accessed_at();
  } else {
    Uuid id = id_given ? ToUuid(m.id.get()) : st.NewId();
    if (id_given && shard.memories.count(id))
      return Status::AlreadyExists("memory id is in use with another memory_key");
    m.id = FbId(id);
    m.created_at = now;
    m.access_count = 0;
    m.last_accessed_at = 0;
  }
  m.updated_at = now;
  AS_RETURN_IF_ERROR(CheckRecord(m, st.Ctx()));
  Uuid id = ToUuid(m.id.get());
  std::string full = PackEveryScalar(m);
  storage::WriteBatch batch;
  batch.Put(RecordKey(RecordType::kUserMemory, id), full);
  if (existing) batch.Delete(TouchKey(id));
  AS_ASSIGN_OR_RETURN(uint64_t ticket, st.Log(batch));
  const auto* view = flatbuffers::GetRoot<fb::UserMemory>(full.data());
  std::string bytes = PackMemory(*view, nullptr, st.memory.space->dim());
  st.IndexMemory(shard, shard.arena.Append(bytes), m.embedding.data());
  st.MaybeCompact(shard);
  lock.unlock();
  AS_RETURN_IF_ERROR(st.Durable(ticket));
  return Row<fb::UserMemory>(bytes);
}

Status Engine::DeleteMemory(const Scope& scope, const Uuid& id) {
  if (scope.is_admin()) return Status::PermissionDenied("admin keys do not write memories");
  EngineState& st = *impl_;
  int s = ShardFor(st, scope, &Partition::memories, id);
  if (s < 0) return NotFound("memory");
  Partition& shard = *st.shards[s];
  std::unique_lock lock(shard.mu);
  auto it = shard.memories.find(id);
  if (it == shard.memories.end() ||
      !st.Sees(scope, ToUuid(View<fb::UserMemory>(shard, it->second)->user_id())))
    return NotFound("memory");
  storage::WriteBatch batch;
  batch.Note(impl_->OwnerNoteFor(ToUuid(View<fb::UserMemory>(shard, it->second)->user_id())));
  batch.Delete(RecordKey(RecordType::kUserMemory, id));
  batch.Delete(TouchKey(id));
  AS_ASSIGN_OR_RETURN(uint64_t ticket, st.Log(batch));
  st.UnindexMemory(shard, id);
  st.MaybeCompact(shard);
  lock.unlock();
  return st.Durable(ticket);
}

Result<uint64_t> Engine::PruneMemories(const Scope& scope, const Uuid& user, uint32_t keep) {
  if (scope.is_admin()) return Status::PermissionDenied("admin keys do not write memories");
  if (!impl_->Sees(scope, user)) return NotFound("user");
  EngineState& st = *impl_;
  Partition& shard = st.ShardOf(user);
  std::unique_lock lock(shard.mu);
  if (!st.UserLive(shard, user)) return NotFound("user");
  auto mems = shard.memories_by_user.find(user);
  if (mems == shard.memories_by_user.end() || mems->second->size() <= keep) return uint64_t{0};
  // Lowest importance first; among equals the least recently used (accessed or written),
  // then the oldest id.
  struct Candidate {
    double importance;
    int64_t used;
    Uuid id;
  };
  std::vector<Candidate> all;
  for (size_t i = 0; i < mems->second->size(); ++i) {
    const MemoryMeta& meta = mems->second->meta(static_cast<uint32_t>(i));
    const auto* m = View<fb::UserMemory>(shard, meta.loc);
    all.push_back({meta.importance, std::max(m->last_accessed_at(), m->updated_at()), meta.id});
  }
  size_t drop = all.size() - keep;
  std::partial_sort(all.begin(), all.begin() + drop, all.end(), [](const auto& a, const auto& b) {
    if (a.importance != b.importance) return a.importance < b.importance;
    if (a.used != b.used) return a.used < b.used;
    return a.id < b.id;
  });
  storage::WriteBatch batch;
  batch.Note(impl_->OwnerNoteFor(user));  // the change feed's owner of these deletes
  for (size_t i = 0; i < drop; ++i) {
    batch.Delete(RecordKey(RecordType::kUserMemory, all[i].id));
    batch.Delete(TouchKey(all[i].id));
  }
  AS_ASSIGN_OR_RETURN(uint64_t ticket, st.Log(batch));
  for (size_t i = 0; i < drop; ++i) st.UnindexMemory(shard, all[i].id);
  st.MaybeCompact(shard);
  lock.unlock();
  AS_RETURN_IF_ERROR(st.Durable(ticket));
  return uint64_t{drop};
}

Result<uint64_t> Engine::SweepExpiredMemories() { return impl_->SweepExpired(); }

void Engine::DrainMemoryIndex() {
  while (impl_->MemoryIndexStep()) {
  }
}

// ---------------------------------------------------------------- reads

namespace {

Row<fb::UserMemory> MemoryRow(const EngineState& st, const Partition& shard,
                              const UserMemories& mems, uint32_t slot, bool with_vector) {
  Loc loc = mems.meta(slot).loc;
  if (!with_vector) {
    // A record referred to in the table image still carries its embedding: left out.
    const auto* m = View<fb::UserMemory>(shard, loc);
    if (!m->embedding()) return RowAt<fb::UserMemory>(shard, loc);
    return Row<fb::UserMemory>(PackMemory(*m, nullptr, st.memory.space->dim()));
  }
  return Row<fb::UserMemory>(
      PackMemory(*View<fb::UserMemory>(shard, loc), mems.vector(slot), st.memory.space->dim()));
}

// The shard lock held, finds `user`'s memories if the scope may read them.
Status VisibleMemories(const EngineState& st, const Partition& shard, const Scope& scope,
                       const Uuid& user, const UserMemories** out) {
  *out = nullptr;
  if (!st.Sees(scope, user) || !st.UserLive(shard, user)) return NotFound("user");
  auto it = shard.memories_by_user.find(user);
  if (it != shard.memories_by_user.end()) *out = it->second.get();
  return Status::OK();
}

// Bumps access_count and last_accessed_at of each hit (exclusive shard lock held) and
// logs the new values. Not waited on for fsync (see Engine::SearchMemories).
Status Touch(EngineState& st, Partition& shard, const UserMemories& mems,
             const std::vector<uint32_t>& slots, int64_t now) {
  if (slots.empty()) return Status::OK();
  storage::WriteBatch batch;
  for (uint32_t slot : slots) {
    auto* m = MutableMemory(shard, mems.meta(slot).loc);
    m->mutate_access_count(m->access_count() + 1);
    m->mutate_last_accessed_at(now);
    batch.Put(TouchKey(mems.meta(slot).id), TouchValue(m->access_count(), now));
  }
  // Not awaited for fsync, but handed to the OS before the answer: kill -9 loses none.
  AS_RETURN_IF_ERROR(st.Log(batch).status());
  return st.store->HandToOs();
}

}  // namespace

Result<Row<fb::UserMemory>> Engine::GetMemory(const Scope& scope, const Uuid& id,
                                              bool with_vector) {
  EngineState& st = *impl_;
  int s = ShardFor(st, scope, &Partition::memories, id);
  if (s < 0) return NotFound("memory");
  Partition& shard = *st.shards[s];
  std::shared_lock lock(shard.mu);
  auto it = shard.memories.find(id);
  if (it == shard.memories.end()) return NotFound("memory");
  Uuid user = ToUuid(View<fb::UserMemory>(shard, it->second)->user_id());
  const UserMemories* mems;
  if (!VisibleMemories(st, shard, scope, user, &mems).ok() || !mems) return NotFound("memory");
  uint32_t slot = *mems->SlotOfId(id);
  if (mems->meta(slot).expires_at != 0 && mems->meta(slot).expires_at <= st.Now())
    return NotFound("memory");
  return MemoryRow(st, shard, *mems, slot, with_vector);
}

Result<Row<fb::UserMemory>> Engine::GetMemoryByKey(const Scope& scope, const Uuid& user,
                                                   std::string_view key, bool with_vector) {
  EngineState& st = *impl_;
  Partition& shard = st.ShardOf(user);
  std::optional<Uuid> id;
  {
    std::shared_lock lock(shard.mu);
    const UserMemories* mems;
    if (!VisibleMemories(st, shard, scope, user, &mems).ok() || !mems) return NotFound("memory");
    id = mems->IdOfKey(key);
    if (!id) return NotFound("memory");
  }
  return GetMemory(scope, *id, with_vector);
}

namespace {

// One user's search, plain or hybrid: the shared checks, the lock (exclusive when the
// call touches), the ranking, the touches and the rows.
Result<std::vector<MemoryHit>> SearchUser(EngineState& st, const Scope& scope, const MemoryQuery& q,
                                          bool hybrid) {
  AS_RETURN_IF_ERROR(CheckK(q.k));
  if (hybrid && q.text.empty()) return Status::InvalidArgument("hybrid search needs query text");
  if (q.text.size() > 4096) return Status::InvalidArgument("query text is over 4 KiB");
  if (q.touch && scope.is_admin()) return Status::PermissionDenied("admin keys do not touch");
  std::vector<float> vec = q.vector;
  AS_RETURN_IF_ERROR(st.memory.space->Prepare(vec));
  const int64_t now = st.Now();
  MemoryFilter filter = MakeFilter(q, now);
  Partition& shard = st.ShardOf(q.user);
  ShardLock lock(shard.mu, q.touch);
  const UserMemories* mems;
  AS_RETURN_IF_ERROR(VisibleMemories(st, shard, scope, q.user, &mems));
  std::vector<MemoryHit> out;
  if (!mems) return out;
  const index::Space& space = *st.memory.space;
  size_t breadth = q.breadth ? q.breadth : st.options.memory.user_graph.ef_search;
  struct Ranked {
    uint32_t slot;
    float distance;
    double score;
  };
  std::vector<Ranked> ranked;
  if (!hybrid) {
    for (const auto& h :
         mems->Search(space, vec.data(), q.k, filter, breadth, st.options.memory.exact_threshold))
      ranked.push_back({static_cast<uint32_t>(h.label), h.distance, space.Similarity(h.distance)});
  } else {
    // Each ranking contributes its best `depth` candidates to the fusion.
    size_t depth = std::max<size_t>(50, size_t{4} * q.k);
    std::vector<uint64_t> by_vector, by_text;
    for (const auto& h :
         mems->Search(space, vec.data(), depth, filter, breadth, st.options.memory.exact_threshold))
      by_vector.push_back(h.label);
    for (const auto& t : mems->KeywordSearch(q.text, depth, filter)) by_text.push_back(t.label);
    auto fused = index::FuseRankings(by_vector, by_text);
    if (fused.size() > q.k) fused.resize(q.k);
    for (const auto& f : fused) {
      auto slot = static_cast<uint32_t>(f.label);
      ranked.push_back({slot, space.Distance(vec.data(), mems->vector(slot)), f.score});
    }
  }
  if (q.touch) {
    std::vector<uint32_t> slots;
    for (const auto& r : ranked) slots.push_back(r.slot);
    AS_RETURN_IF_ERROR(Touch(st, shard, *mems, slots, now));
  }
  out.reserve(ranked.size());
  for (const auto& r : ranked)
    out.push_back({MemoryRow(st, shard, *mems, r.slot, q.with_vectors), r.distance, r.score});
  return out;
}

}  // namespace

Result<std::vector<MemoryHit>> Engine::SearchMemories(const Scope& scope, const MemoryQuery& q) {
  return SearchUser(*impl_, scope, q, /*hybrid=*/false);
}

Result<std::vector<MemoryHit>> Engine::HybridSearchMemories(const Scope& scope,
                                                            const MemoryQuery& q) {
  return SearchUser(*impl_, scope, q, /*hybrid=*/true);
}

Result<std::vector<MemoryHit>> Engine::GlobalSearchMemories(const Scope& scope,
                                                            const MemoryQuery& q) {
  if (scope.is_user())
    return Status::PermissionDenied("global search needs a service or admin key");
  // The global graph spans every tenant; filtering it afterwards would shorten answers.
  if (scope.confined())
    return Status::PermissionDenied(
        "global search spans every tenant: a tenant-scoped key searches per user");
  EngineState& st = *impl_;
  AS_RETURN_IF_ERROR(CheckK(q.k));
  if (q.min_importance || !q.tags.empty() || q.touch)
    return Status::InvalidArgument("global search filters by memory_type only and does not touch");
  std::vector<float> vec = q.vector;
  AS_RETURN_IF_ERROR(st.memory.space->Prepare(vec));
  const int64_t now = st.Now();
  size_t breadth = q.breadth ? q.breadth : st.options.memory.global_graph.ef_search;
  // A hit whose memory changed between the index and the shard read is skipped; ask for
  // a few extra so that such races do not shorten the answer.
  size_t ask = q.k + 8;
  auto hits = st.memory.global->Search(vec.data(), ask, q.memory_type, now, breadth);
  std::vector<MemoryHit> out;
  for (const auto& [hit, entry] : hits) {
    if (out.size() == q.k) break;
    Partition& shard = st.ShardOf(entry.user);
    std::shared_lock lock(shard.mu);
    auto mems = shard.memories_by_user.find(entry.user);
    if (mems == shard.memories_by_user.end() || !st.UserLive(shard, entry.user)) continue;
    auto slot = mems->second->SlotOfId(entry.id);
    if (!slot || mems->second->meta(*slot).label != hit.label) continue;
    out.push_back({MemoryRow(st, shard, *mems->second, *slot, q.with_vectors), hit.distance,
                   st.memory.space->Similarity(hit.distance)});
  }
  return out;
}

Engine::MemoryIndexStats Engine::MemoryStats() const {
  const EngineState& st = *impl_;
  MemoryIndexStats s;
  s.dim = st.memory.space->dim();
  s.metric = std::string(index::MetricName(st.memory.space->metric()));
  for (const auto& shard : st.shards) {
    std::shared_lock lock(shard->mu);
    s.memories += shard->memories.size();
    for (const auto& [user, mems] : shard->memories_by_user)
      s.users_on_graph += mems->graph() != nullptr;
  }
  s.global_indexed = st.memory.global->indexed();
  s.global_pending = st.memory.global->pending();
  s.global_loaded = st.memory.global_loaded;
  s.global_caught_up = st.memory.global_caught_up;
  s.user_graphs_loaded = st.memory.user_graphs_loaded;
  return s;
}

Status Engine::SaveMemoryGraphs(const Scope& scope) {
  if (!scope.is_service() && !scope.is_admin())
    return Status::PermissionDenied("saving the vector graphs needs a service or admin key");
  // The graphs hold every tenant's vectors: a store-wide act, like a backup.
  if (scope.confined())
    return Status::PermissionDenied("a tenant-scoped key may not save the store's graphs");
  return impl_->SaveMemoryGraphs();
}

}  // namespace agentstore
