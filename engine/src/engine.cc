// Engine lifecycle: opening the store, rebuilding every table and index from RocksDB,
// the index maintenance shared by recovery and writes, and operator statistics.
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>

#include "change_feed.h"
#include "engine_impl.h"

namespace agentstore {

using namespace internal;  // NOLINT

namespace internal {
namespace {
struct DeferredTickets {
  bool active = false;
  uint64_t max_ticket = 0;
};
thread_local DeferredTickets deferred;
}  // namespace

Status EngineState::Durable(uint64_t ticket) {
  if (deferred.active) {
    deferred.max_ticket = std::max(deferred.max_ticket, ticket);
    return Status::OK();
  }
  return store->AwaitDurable(ticket);
}

Uuid EngineState::NewId() {
  // SplitMix64 over a seeded counter: unique per process, reproducible with a fixed seed.
  auto mix = [](uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  uint64_t n = id_counter.fetch_add(1, std::memory_order_relaxed);
  return MakeUuidV7(Now(), mix(id_seed + 2 * n), mix(id_seed + 2 * n + 1));
}

namespace {

// The shards a directory says may hold `id` (confirmed by the caller in their maps).
const std::vector<uint16_t>& CandidateShards(const IdDirectory& dir, const Uuid& id) {
  thread_local std::vector<uint16_t> shards;
  dir.Candidates(id, &shards);
  return shards;
}

}  // namespace

int EngineState::FindShard(IdMap Partition::*table, const Uuid& id) const {
  if (const IdDirectory* dir = (shards[0].get()->*table).directory()) {
    for (uint16_t i : CandidateShards(*dir, id)) {
      std::shared_lock lock(shards[i]->mu);
      if ((shards[i].get()->*table).count(id)) return static_cast<int>(i);
    }
    return -1;
  }
  for (size_t i = 0; i < shards.size(); ++i) {
    std::shared_lock lock(shards[i]->mu);
    if ((shards[i].get()->*table).count(id)) return static_cast<int>(i);
  }
  return -1;
}

bool EngineState::InOtherShard(IdMap Partition::*table, const Uuid& id, size_t own,
                               bool locked) const {
  if (!locked) {
    int s = FindShard(table, id);
    return s >= 0 && static_cast<size_t>(s) != own;
  }
  if (const IdDirectory* dir = (shards[0].get()->*table).directory()) {
    for (uint16_t i : CandidateShards(*dir, id))
      if (i != own && (shards[i].get()->*table).count(id)) return true;
    return false;
  }
  for (size_t i = 0; i < shards.size(); ++i)
    if (i != own && (shards[i].get()->*table).count(id)) return true;
  return false;
}

bool EngineState::UserLive(const Partition& shard, const Uuid& user) const {
  auto it = shard.users.find(user);
  return it != shard.users.end() && View<fb::User>(shard, it->second)->deleted_at() == 0;
}

void EngineState::IndexUser(Partition& shard, Loc loc) {
  const auto* u = View<fb::User>(shard, loc);
  Uuid id = ToUuid(u->id());
  shard.users[id] = loc;
  {
    std::unique_lock lock(user_tenant_mu);
    user_tenant[id] = ToUuid(u->tenant_id());
  }
  global.user_ids.insert(id);
  global.user_by_email[LowerAscii(Str(u->email()))] = id;
}

void EngineState::UnindexUser(Partition& shard, const Uuid& id) {
  auto it = shard.users.find(id);
  if (it == shard.users.end()) return;
  global.user_by_email.erase(LowerAscii(Str(View<fb::User>(shard, it->second)->email())));
  global.user_ids.erase(id);
  {
    std::unique_lock lock(user_tenant_mu);
    user_tenant.erase(id);
  }
  shard.arena.Free(it->second);
  shard.users.erase(it);
}

void EngineState::IndexUserAgent(Partition& shard, Loc loc) {
  const auto* ua = View<fb::UserAgent>(shard, loc);
  Uuid id = ToUuid(ua->id()), user = ToUuid(ua->user_id()), agent = ToUuid(ua->agent_id());
  auto [it, fresh] = shard.user_agents.insert_or_assign(id, loc);
  if (fresh) {
    shard.user_agents_by_user[user].push_back(id);
    shard.user_agent_by_pair[{user, agent}] = id;
  }
}

void EngineState::UnindexUserAgent(Partition& shard, const Uuid& id) {
  auto it = shard.user_agents.find(id);
  if (it == shard.user_agents.end()) return;
  const auto* ua = View<fb::UserAgent>(shard, it->second);
  Uuid user = ToUuid(ua->user_id()), agent = ToUuid(ua->agent_id());
  shard.user_agent_by_pair.erase({user, agent});
  auto& list = shard.user_agents_by_user[user];
  std::erase(list, id);
  if (list.empty()) shard.user_agents_by_user.erase(user);
  shard.arena.Free(it->second);
  shard.user_agents.erase(it);
}

void EngineState::IndexChat(Partition& shard, Loc loc) {
  const auto* c = View<fb::Chat>(shard, loc);
  Uuid id = ToUuid(c->id());
  auto [it, fresh] = shard.chats.insert_or_assign(id, loc);
  if (fresh) {
    shard.chats_by_user[ToUuid(c->user_id())].insert({c->created_at(), id});
    shard.chat_index[id];
  }
}

void EngineState::IndexMessage(Partition& shard, Loc loc, bool keep_sorted) {
  const auto* m = View<fb::Message>(shard, loc);
  Uuid id = ToUuid(m->id());
  shard.messages[id] = loc;
  auto& list = shard.chat_index[ToUuid(m->chat_id())].messages;
  MessageRef ref{{m->created_at(), id}, loc};
  if (keep_sorted && !list.empty() && ref < list.back()) {
    list.insert(std::upper_bound(list.begin(), list.end(), ref), ref);
  } else {
    list.push_back(ref);
  }
}

void EngineState::IndexVote(Partition& shard, Loc loc) {
  const auto* v = View<fb::Vote>(shard, loc);
  auto& slot = shard.chat_index[ToUuid(v->chat_id())].votes[ToUuid(v->message_id())];
  slot = loc;
}

void EngineState::IndexTenant(Loc loc) {
  const auto* t = View<fb::Tenant>(global, loc);
  Uuid id = ToUuid(t->id());
  global.tenants[id] = loc;
  global.tenant_ids.insert(id);
  global.tenant_by_slug[std::string(Str(t->slug()))] = id;
}

void EngineState::IndexAgent(Loc loc) {
  const auto* a = View<fb::Agent>(global, loc);
  Uuid id = ToUuid(a->id());
  auto [it, fresh] = global.agents.insert_or_assign(id, loc);
  if (fresh) global.agent_order.insert({a->created_at(), id});
}

void EngineState::IndexApiKey(Loc loc) {
  const auto* k = View<fb::ApiKey>(global, loc);
  Uuid id = ToUuid(k->id());
  auto [it, fresh] = global.api_keys.insert_or_assign(id, loc);
  if (fresh && k->user_id()) global.api_keys_by_user[ToUuid(k->user_id())].push_back(id);
}

void EngineState::AddChatDeletes(const Partition& shard, const Uuid& chat_id,
                                 storage::WriteBatch& batch) {
  if (auto c = shard.chats.find(chat_id); c != shard.chats.end())  // the feed's owner
    batch.Note(OwnerNoteFor(ToUuid(View<fb::Chat>(shard, c->second)->user_id())));
  batch.Delete(RecordKey(RecordType::kChat, chat_id));
  auto ci = shard.chat_index.find(chat_id);
  if (ci == shard.chat_index.end()) return;
  for (const auto& ref : ci->second.messages)
    batch.Delete(RecordKey(RecordType::kMessage, ref.key.second));
  for (const auto& [msg, loc] : ci->second.votes) batch.Delete(VoteKey(chat_id, msg));
}

void EngineState::DropChat(Partition& shard, const Uuid& chat_id) {
  auto ci = shard.chat_index.find(chat_id);
  if (ci != shard.chat_index.end()) {
    for (const auto& ref : ci->second.messages) {
      auto m = shard.messages.find(ref.key.second);
      if (m != shard.messages.end()) {
        shard.arena.Free(m->second);
        shard.messages.erase(m);
      }
    }
    for (const auto& [msg, loc] : ci->second.votes) shard.arena.Free(loc);
    shard.chat_index.erase(ci);
  }
  auto c = shard.chats.find(chat_id);
  if (c != shard.chats.end()) {
    const auto* chat = View<fb::Chat>(shard, c->second);
    auto owner = shard.chats_by_user.find(ToUuid(chat->user_id()));
    if (owner != shard.chats_by_user.end()) {
      owner->second.erase({chat->created_at(), chat_id});
      if (owner->second.empty()) shard.chats_by_user.erase(owner);
    }
    shard.arena.Free(c->second);
    shard.chats.erase(c);
  }
}

void EngineState::MaybeCompact(Partition& p) {
  if (!p.arena.ShouldCompact()) return;
  // Copy every live record into a fresh arena, rewriting locations in place (records in
  // the table image stay where they are).
  Arena fresh;
  fresh.SetStableRegion(p.arena.stable_region());
  auto move = [&](Loc& loc) { loc = fresh.Append(p.arena.Get(loc)); };
  for (IdMap* m : {&p.users, &p.user_agents, &p.chats, &p.messages, &p.tenants, &p.agents,
                   &p.api_keys, &p.memories, &p.usage_logs})
    for (auto& [id, loc] : *m) move(loc);
  for (auto& [user, mems] : p.memories_by_user)
    for (size_t i = 0; i < mems->size(); ++i)
      mems->SetLoc(static_cast<uint32_t>(i),
                   p.memories.at(mems->meta(static_cast<uint32_t>(i)).id));
  for (auto& [user, index] : p.usage_by_user)
    for (auto& [ref, loc] : index) loc = p.usage_logs.at(ref.id);
  for (auto& index : p.usage_by_type)
    for (auto& [ref, loc] : index) loc = p.usage_logs.at(ref.id);
  for (auto& [id, ci] : p.chat_index) {
    for (auto& [msg, loc] : ci.votes) move(loc);
    for (auto& ref : ci.messages) ref.loc = p.messages.at(ref.key.second);
  }
  for (auto& [key, loc] : p.admin_config) move(loc);
  p.arena = std::move(fresh);
}

namespace {}  // namespace

std::string_view AlignedCopy(std::string_view value) {
  thread_local std::vector<uint64_t> buf;
  buf.resize((value.size() + 7) / 8);
  std::memcpy(buf.data(), value.data(), value.size());
  return std::string_view(reinterpret_cast<const char*>(buf.data()), value.size());
}

namespace {

template <typename T>
Status Verified(std::string_view key, std::string_view value) {
  flatbuffers::Verifier v(reinterpret_cast<const uint8_t*>(value.data()), value.size());
  if (!v.VerifyBuffer<T>(nullptr)) {
    return Status::Corruption("record under key of type " +
                              std::to_string(static_cast<int>(key[0])) + " fails verification");
  }
  return Status::OK();
}

}  // namespace

Status EngineState::RecoveryScan(
    std::string_view prefix,
    const std::function<Status(std::string_view, std::string_view)>& visit) {
  const TableImage* img = source ? source->image() : nullptr;
  auto aligned = [&](std::string_view k, std::string_view v) {
    return visit(k, img && img->Holds(v.data()) ? v : AlignedCopy(v));
  };
  if (source) return source->Scan(prefix, aligned);
  return store->Scan(prefix, aligned);
}

Status EngineState::Recover() {
  if (options.memory.save_graphs) {
    memory.global_file = std::async(std::launch::async, [this] {
      return LoadGraphFile(memory.graph_dir + "/global", memory.space, options.memory.global_graph);
    });
  }
  auto scan = [&](RecordType t, auto&& fn) { return RecoveryScan(KeyPrefix(t), fn); };
  // Each shard's tables sized once for what the image holds (growing a hash table
  // rehashes every entry each time it doubles).
  auto reserve = [&](RecordType t, IdMap Partition::*table) {
    size_t n = source ? source->CountHint(KeyPrefix(t)) : 0;
    if (n == 0) return;
    for (auto& shard : shards) ((*shard).*table).reserve(n / shards.size() * 9 / 8 + 16);
  };
  reserve(RecordType::kUser, &Partition::users);
  reserve(RecordType::kChat, &Partition::chats);
  reserve(RecordType::kMessage, &Partition::messages);
  reserve(RecordType::kUserAgent, &Partition::user_agents);
  reserve(RecordType::kUserMemory, &Partition::memories);
  reserve(RecordType::kUsageLog, &Partition::usage_logs);
  AS_RETURN_IF_ERROR(scan(RecordType::kTenant, [&](std::string_view k, std::string_view v) {
    AS_RETURN_IF_ERROR(Verified<fb::Tenant>(k, v));
    IndexTenant(global.arena.Append(v));
    return Status::OK();
  }));
  AS_RETURN_IF_ERROR(scan(RecordType::kUser, [&](std::string_view k, std::string_view v) {
    AS_RETURN_IF_ERROR(Verified<fb::User>(k, v));
    Uuid id = ToUuid(flatbuffers::GetRoot<fb::User>(v.data())->id());
    Partition& shard = ShardOf(id);
    IndexUser(shard, shard.arena.Append(v));
    return Status::OK();
  }));
  AS_RETURN_IF_ERROR(scan(RecordType::kAgent, [&](std::string_view k, std::string_view v) {
    AS_RETURN_IF_ERROR(Verified<fb::Agent>(k, v));
    IndexAgent(global.arena.Append(v));
    return Status::OK();
  }));
  AS_RETURN_IF_ERROR(scan(RecordType::kUserAgent, [&](std::string_view k, std::string_view v) {
    AS_RETURN_IF_ERROR(Verified<fb::UserAgent>(k, v));
    Partition& shard = ShardOf(ToUuid(flatbuffers::GetRoot<fb::UserAgent>(v.data())->user_id()));
    IndexUserAgent(shard, shard.arena.Append(v));
    return Status::OK();
  }));
  AS_RETURN_IF_ERROR(scan(RecordType::kChat, [&](std::string_view k, std::string_view v) {
    AS_RETURN_IF_ERROR(Verified<fb::Chat>(k, v));
    Partition& shard = ShardOf(ToUuid(flatbuffers::GetRoot<fb::Chat>(v.data())->user_id()));
    IndexChat(shard, shard.arena.Append(v));
    return Status::OK();
  }));
  AS_RETURN_IF_ERROR(scan(RecordType::kMessage, [&](std::string_view k, std::string_view v) {
    AS_RETURN_IF_ERROR(Verified<fb::Message>(k, v));
    Partition& shard = ShardOf(ToUuid(flatbuffers::GetRoot<fb::Message>(v.data())->user_id()));
    IndexMessage(shard, shard.arena.Append(v), /*keep_sorted=*/false);
    return Status::OK();
  }));
  // Messages arrive in id order; a chat's list is ordered by (created_at, id). Each list
  // then gives back its growth slack (a chat gets new messages one at a time, so the
  // first append after the start is the only copy this costs).
  for (auto& shard : shards)
    for (auto& [chat, ci] : shard->chat_index) {
      std::sort(ci.messages.begin(), ci.messages.end());
      ci.messages.shrink_to_fit();
    }
  AS_RETURN_IF_ERROR(scan(RecordType::kVote, [&](std::string_view k, std::string_view v) {
    AS_RETURN_IF_ERROR(Verified<fb::Vote>(k, v));
    Partition& shard = ShardOf(ToUuid(flatbuffers::GetRoot<fb::Vote>(v.data())->user_id()));
    IndexVote(shard, shard.arena.Append(v));
    return Status::OK();
  }));
  AS_RETURN_IF_ERROR(scan(RecordType::kAdminConfig, [&](std::string_view k, std::string_view v) {
    AS_RETURN_IF_ERROR(Verified<fb::AdminConfig>(k, v));
    global.admin_config[std::string(k.substr(1))] = global.arena.Append(v);
    return Status::OK();
  }));
  AS_RETURN_IF_ERROR(scan(RecordType::kApiKey, [&](std::string_view k, std::string_view v) {
    AS_RETURN_IF_ERROR(Verified<fb::ApiKey>(k, v));
    IndexApiKey(global.arena.Append(v));
    return Status::OK();
  }));
  open_trace("records indexed");
  AS_RETURN_IF_ERROR(RecoverMemories());
  open_trace("memories indexed");
  FinishMemoryRecovery();
  open_trace("graphs loaded");
  AS_RETURN_IF_ERROR(RecoverUsage());
  open_trace("usage recovered");
  // The tables were sized from the image's counts spread evenly over the shards; a
  // shard that got fewer gives back what a table half its size would hold.
  for (auto& shard : shards)
    for (IdMap* m : {&shard->users, &shard->user_agents, &shard->chats, &shard->messages,
                     &shard->memories, &shard->usage_logs})
      m->ShrinkToFit();
  return Status::OK();
}

void EngineState::OpenTableImage() {
  image.dir = options.data_dir + "/image";
  if (!options.table_image) return;
  // What a crash while writing an image left (as large as the store): no writer runs
  // yet, and the data directory is this process's alone.
  std::error_code ignored;
  std::filesystem::remove(image.dir + "/table.image.tmp", ignored);
  auto rebuild = [&](const std::string& why) {
    image.rebuilt_because = why;
    std::fprintf(stderr, "agentstore: %s: starting from RocksDB: %s\n", options.data_dir.c_str(),
                 why.c_str());
  };
  if (!store->OpenReport().empty()) {
    // Writes the image holds may be among those the damaged log dropped, and the log
    // would reuse their sequence numbers: the image can never be trusted again.
    RemoveTableImage(image.dir);
    return rebuild("the log was damaged; table image removed");
  }
  auto mapped = TableImage::Map(image.dir, ImageIdentity(store->Identity(), options.data_dir));
  if (!mapped.ok()) {
    if (mapped.status().code() != StatusCode::kNotFound) rebuild(mapped.status().ToString());
    return;
  }
  auto src = RecordSource::WithImage(store.get(), *mapped);
  if (!src.ok()) return rebuild(src.status().ToString());
  source = std::move(*src);
  image.mapped = *mapped;
  image.used = true;
  image.changed_keys = source->changed_keys();
  image.entries = image.mapped->entries();
  image.sequence = image.mapped->sequence();
  // Arenas and the vector store refer to the image's records and vectors in place.
  const TableImage& img = *image.mapped;
  Arena::StableRegion region{image.mapped, img.begin(), img.bytes()};
  global.arena.SetStableRegion(region);
  for (auto& shard : shards) shard->arena.SetStableRegion(region);
  memory.vectors->SetStableRegion(image.mapped, img.begin(), img.bytes());
}

Status EngineState::SaveTableImage() {
  std::lock_guard lock(image.save_mu);
  AS_ASSIGN_OR_RETURN(
      WrittenImage written,
      WriteTableImage(*store, image.dir, ImageIdentity(store->Identity(), options.data_dir)));
  image.entries = written.entries;
  image.sequence = written.sequence;
  return Status::OK();
}

void EngineState::StartImageThread() {
  if (!options.table_image || options.image_check_ms <= 0) return;
  image.thread = std::thread([this] {
    pthread_setname_np(pthread_self(), "table-image");  // for top -H and perf
    std::unique_lock lock(image.thread_mu);
    while (!image.stopping) {
      image.wake.wait_for(lock, std::chrono::milliseconds(options.image_check_ms));
      if (image.stopping) break;
      // Each image is a pass over the whole store: the bigger the store, the more changes
      // wait for the next one (a start after a crash reads them from RocksDB, ~1 s for a
      // quarter of a million-record store).
      const uint64_t at = image.sequence.load();
      const uint64_t due = std::max<uint64_t>(options.image_min_changes, image.entries.load() / 4);
      if (store->LatestSequence() - at < due) continue;
      lock.unlock();
      if (Status s = SaveTableImage(); !s.ok())
        std::fprintf(stderr, "agentstore: table image not written: %s\n", s.ToString().c_str());
      lock.lock();
    }
  });
}

void EngineState::StopImageThread() {
  {
    std::lock_guard lock(image.thread_mu);
    image.stopping = true;
  }
  image.wake.notify_all();
  if (image.thread.joinable()) image.thread.join();
}

Status ParsePatch(std::string_view text, Json* out) {
  // Far above any record's fields (each JSON field is capped at 64 KiB).
  if (text.size() > (4u << 20)) return Status::InvalidArgument("patch is larger than 4 MiB");
  AS_RETURN_IF_ERROR(CheckJsonDepth("patch", text));
  *out = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (out->is_discarded()) return Status::InvalidArgument("patch is not valid JSON");
  if (!out->is_object()) return Status::InvalidArgument("patch must be a JSON object");
  return Status::OK();
}

Status CheckLimit(uint32_t limit) {
  if (limit < 1 || limit > 1000) return Status::InvalidArgument("limit must be 1..1000");
  return Status::OK();
}

std::string EncodeTimeCursor(const TimeKey& k) {
  return std::to_string(k.first) + ":" + k.second.ToString();
}

Status DecodeTimeCursor(std::string_view cursor, TimeKey* out) {
  size_t colon = cursor.find(':');
  auto bad = [] { return Status::InvalidArgument("malformed cursor"); };
  if (colon == std::string_view::npos || colon == 0 || colon > 20) return bad();
  int64_t t = 0;
  for (char c : cursor.substr(0, colon)) {
    if (c < '0' || c > '9') return bad();
    if (t > (INT64_MAX - 9) / 10) return bad();
    t = t * 10 + (c - '0');
  }
  auto id = Uuid::Parse(cursor.substr(colon + 1));
  if (!id) return bad();
  *out = {t, *id};
  return Status::OK();
}

}  // namespace internal

Engine::Engine(std::unique_ptr<EngineState> impl) : impl_(std::move(impl)) {}
Status Engine::Close() {
  if (!impl_ || !impl_->store) return Status::OK();
  auto t0 = std::chrono::steady_clock::now();
  auto trace = [&](const char* what) {
    if (getenv("AGENTSTORE_STOP_TRACE"))
      fprintf(stderr, "stop: %s at %.3fs\n", what,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  };
  if (impl_->feed) impl_->feed->Stop();
  impl_->StopMemoryThread();
  impl_->StopImageThread();
  trace("memory and image threads stopped");
  // A failed save leaves the previous saved graphs, which the next open checks anyway.
  if (impl_->memory.global) (void)impl_->SaveMemoryGraphs();
  trace("graphs saved");
  Status s = impl_->store->Flush();
  trace("flushed");
  if (s.ok() && impl_->options.table_image) {
    // After the flush, so the image covers everything; written when the next start
    // could not use the last one, or would read too much of RocksDB beside it.
    const uint64_t at = impl_->image.sequence.load();
    auto oldest = impl_->store->OldestLogSequence();
    if (at == 0 || !oldest.ok() || *oldest > at + 1 ||
        impl_->store->LatestSequence() - at >= impl_->options.image_min_changes) {
      // A failed write leaves the previous image (or none): the next start reads more of
      // RocksDB, nothing else.
      if (Status w = impl_->SaveTableImage(); !w.ok())
        std::fprintf(stderr, "agentstore: table image not written: %s\n", w.ToString().c_str());
      trace("table image written");
    }
  }
  impl_->store.reset();
  trace("rocksdb closed");
  return s;
}

Engine::~Engine() { (void)Close(); }

namespace {

// The data directory holds every tenant's records: it is created 0700, an existing one
// that group or others may write is refused (they could swap files under us), and one
// that others may read or enter is tightened to 0700. The directory is what keeps others
// out; RocksDB creates files with the process umask (agentstored sets 077), and every
// file is made 0600 at open (TightenFiles) and in backups.
Status SecureDataDir(const std::string& dir) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT)
      return Status::IoError("data directory " + dir + ": " + std::strerror(errno));
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return Status::IoError("cannot create data directory " + dir + ": " + ec.message());
    if (::chmod(dir.c_str(), 0700) != 0)
      return Status::IoError("cannot chmod 0700 data directory " + dir);
    return Status::OK();
  }
  if (!S_ISDIR(st.st_mode)) return Status::InvalidArgument(dir + " is not a directory");
  if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    char mode[8];
    snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return Status::InvalidArgument("data directory " + dir +
                                   " is writable by group or others (mode " + mode +
                                   "); chmod 0700 it");
  }
  if ((st.st_mode & 077) && ::chmod(dir.c_str(), 0700) != 0)
    return Status::IoError("cannot chmod 0700 data directory " + dir);
  return Status::OK();
}

// Files others may read become 0600 (directories 0700): those of older versions, and
// RocksDB's info LOG, which it opens with fopen (mode 0666 less the umask).
void TightenFiles(const std::string& dir) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    struct stat fst;
    if (::lstat(entry.path().c_str(), &fst) != 0) continue;
    if (S_ISREG(fst.st_mode) && (fst.st_mode & 077)) ::chmod(entry.path().c_str(), 0600);
    if (S_ISDIR(fst.st_mode) && (fst.st_mode & 077)) ::chmod(entry.path().c_str(), 0700);
  }
}

}  // namespace

Result<std::unique_ptr<Engine>> Engine::Open(const EngineOptions& options) {
  if (options.shards < 1 || options.shards > 1024)
    return Status::InvalidArgument("shards must be 1..1024");
  auto t0 = std::chrono::steady_clock::now();
  // AGENTSTORE_OPEN_TRACE=1: when each step of the open ended (stderr).
  auto trace = [&, on = getenv("AGENTSTORE_OPEN_TRACE") != nullptr](const char* what) {
    if (on)
      fprintf(stderr, "open: %s at %.3fs\n", what,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  };
  auto impl = std::make_unique<EngineState>();
  impl->options = options;
  impl->open_trace = trace;
  impl->id_seed =
      options.random_seed ? options.random_seed : std::random_device{}() * 0x100000001ull;
  for (int i = 0; i < options.shards; ++i) {
    auto& shard = *impl->shards.emplace_back(std::make_unique<Partition>());
    shard.user_agents.Attach(&impl->user_agent_dir, i);
    shard.chats.Attach(&impl->chat_dir, i);
    shard.messages.Attach(&impl->message_dir, i);
    shard.usage_logs.Attach(&impl->usage_log_dir, i);
    shard.memories.Attach(&impl->memory_dir, i);
  }
  AS_RETURN_IF_ERROR(SecureDataDir(options.data_dir));
  storage::StoreOptions so;
  so.path = options.data_dir;
  so.durability = options.durability;
  so.recover_damaged_wal = options.recover_damaged_wal;
  so.faults = options.faults;
  so.merge = MergeUsageRecord;
  so.log_retention_seconds = options.feed_retention_seconds;
  so.log_retention_mb = options.feed_retention_mb;
  AS_ASSIGN_OR_RETURN(impl->store, storage::KvStore::Open(so));
  if (!impl->store->OpenReport().empty())
    std::fprintf(stderr, "agentstore: %s: %s\n", options.data_dir.c_str(),
                 impl->store->OpenReport().c_str());
  TightenFiles(options.data_dir);
  trace("rocksdb opened");
  AS_RETURN_IF_ERROR(impl->OpenMemoryStore());
  impl->OpenTableImage();
  trace("table image mapped and checked");
  AS_RETURN_IF_ERROR(impl->Recover());
  AS_RETURN_IF_ERROR(impl->RecoverCollections());
  trace("collections recovered");
  // The changed keys' copies go; arenas and vectors keep the image's values mapped.
  impl->source.reset();
  if (impl->image.mapped) impl->image.mapped->ReleaseIndex();
  impl->StartMemoryThread();
  impl->StartImageThread();
  impl->StartFeed();
  return std::unique_ptr<Engine>(new Engine(std::move(impl)));
}

EngineStats Engine::Stats() const {
  EngineStats s;
  auto count = [&](RecordType t, uint64_t n) { s.records[static_cast<int>(t)] += n; };
  {
    std::shared_lock lock(impl_->global.mu);
    const Partition& g = impl_->global;
    count(RecordType::kTenant, g.tenants.size());
    count(RecordType::kAgent, g.agents.size());
    count(RecordType::kApiKey, g.api_keys.size());
    count(RecordType::kAdminConfig, g.admin_config.size());
    s.arena_live_bytes += g.arena.live_bytes();
    s.arena_dead_bytes += g.arena.dead_bytes();
  }
  for (const auto& shard : impl_->shards) {
    std::shared_lock lock(shard->mu);
    count(RecordType::kUser, shard->users.size());
    count(RecordType::kUserAgent, shard->user_agents.size());
    count(RecordType::kChat, shard->chats.size());
    count(RecordType::kMessage, shard->messages.size());
    count(RecordType::kUserMemory, shard->memories.size());
    for (const auto& [id, ci] : shard->chat_index) count(RecordType::kVote, ci.votes.size());
    count(RecordType::kUsageLog, shard->usage_logs.size());
    for (const auto& [user, m] : shard->user_rollups) count(RecordType::kUserUsageRollup, m.size());
    s.arena_live_bytes += shard->arena.live_bytes() - shard->memory_embedded_bytes;
    s.arena_dead_bytes += shard->arena.dead_bytes();
  }
  {
    // Tenant rollups: the union of what was on disk at open and the shards' parts.
    std::set<std::pair<Uuid, RollupKey>> tenant_rollups;
    {
      std::shared_lock lock(impl_->ledger.mu);
      count(RecordType::kQuota, impl_->ledger.quotas.size());
      for (const auto& [t, m] : impl_->ledger.tenant_rollups)
        for (const auto& [k, v] : m) tenant_rollups.insert({t, k});
    }
    for (const auto& shard : impl_->shards) {
      std::shared_lock lock(shard->mu);
      for (const auto& [t, m] : shard->tenant_rollup_parts)
        for (const auto& [k, v] : m) tenant_rollups.insert({t, k});
    }
    count(RecordType::kTenantUsageRollup, tenant_rollups.size());
  }
  {
    std::shared_lock lock(impl_->limiter.config_mu);
    count(RecordType::kRateLimitConfig, impl_->limiter.configs.size());
  }
  s.wal_syncs = impl_->store->SyncCount();
  s.writes = impl_->writes.load();
  return s;
}

DeferDurability::DeferDurability() {
  internal::deferred.active = true;
  internal::deferred.max_ticket = 0;
}
DeferDurability::~DeferDurability() { internal::deferred.active = false; }
uint64_t DeferDurability::ticket() const { return internal::deferred.max_ticket; }

void Engine::WhenDurable(uint64_t ticket, std::function<void(Status)> done) {
  if (ticket == 0) return done(Status::OK());
  impl_->store->AwaitDurableAsync(ticket, std::move(done));
}

Status Engine::Checkpoint(const std::string& dir) {
  AS_RETURN_IF_ERROR(impl_->store->Checkpoint(dir));
  // A backup holds everything the data directory does: owner-only too.
  ::chmod(dir.c_str(), 0700);
  TightenFiles(dir);
  return Status::OK();
}
Status Engine::SaveImage(const Scope& scope) {
  if (!scope.is_service() && !scope.is_admin())
    return Status::PermissionDenied("saving the table image needs a service or admin key");
  if (scope.confined())
    return Status::PermissionDenied("a tenant-scoped key may not save the store's image");
  if (!impl_->options.table_image)
    return Status::Unavailable("this server runs without a table image");
  AS_RETURN_IF_ERROR(impl_->SaveTableImage());
  return impl_->memory.global ? impl_->SaveMemoryGraphs() : Status::OK();
}

Engine::ImageStats Engine::Image() const {
  ImageStats s;
  s.used = impl_->image.used;
  s.changed_keys = impl_->image.changed_keys;
  s.rebuilt_because = impl_->image.rebuilt_because;
  s.mapped_bytes = impl_->image.mapped ? impl_->image.mapped->bytes() : 0;
  s.sequence = impl_->image.sequence.load();
  return s;
}

storage::Durability Engine::durability() const { return impl_->store->durability(); }
Status Engine::WriteHealth() const { return impl_->store->WriteHealth(); }

}  // namespace agentstore
