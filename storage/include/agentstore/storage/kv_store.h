// KvStore: agentstore's durable store, a thin adapter over RocksDB. The engine keeps
// every record in memory and uses this only to (1) log each operation's changes as one
// atomic batch and (2) read everything back on open. RocksDB types never leave this
// module; its failures come back as Status.
//
// Durability (the loss window on a machine crash; a process crash such as kill -9
// loses nothing that was acknowledged in any mode, because every batch has reached
// the OS before Write returns):
//   kNone   - WAL written, never fsynced by us; the OS flushes when it likes.
//   kBatch  - WAL fsynced by a background thread every `batch_sync_interval_ms`;
//             a power loss may lose that last interval.
//   kAlways - AwaitDurable returns only after an fsync covers the write; concurrent
//             writers share fsyncs (group commit). Nothing acknowledged is ever lost.
//
// Thread-safety: all methods may be called concurrently.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "agentstore/common/status.h"

namespace agentstore::storage {

enum class Durability : uint8_t { kNone = 0, kBatch = 1, kAlways = 2 };
std::string_view DurabilityName(Durability d);
std::optional<Durability> ParseDurability(std::string_view name);

struct StoreOptions {
  std::string path;
  Durability durability = Durability::kAlways;
  int batch_sync_interval_ms = 10;
  // Written on creation, compared on every open; a mismatch refuses to open.
  std::string format_version = "agentstore-format-1";
  bool create_if_missing = true;
};

// A set of changes applied atomically by KvStore::Write.
class WriteBatch {
 public:
  WriteBatch();
  ~WriteBatch();
  WriteBatch(const WriteBatch&) = delete;
  WriteBatch& operator=(const WriteBatch&) = delete;

  void Put(std::string_view key, std::string_view value);
  void Delete(std::string_view key);
  int Count() const;
  void Clear();

 private:
  friend class KvStore;
  struct Rep;
  std::unique_ptr<Rep> rep_;
};

class KvStore {
 public:
  // Opens (or creates) the store at options.path. Fails with kUnavailable when another
  // process has it open, kCorruption on damaged files, kInvalidArgument on a format
  // version mismatch or a directory that is not an agentstore store.
  static Result<std::unique_ptr<KvStore>> Open(const StoreOptions& options);
  ~KvStore();

  // Appends `batch` atomically to the WAL and memtable. The returned ticket is passed to
  // AwaitDurable before the write is acknowledged to anyone.
  Result<uint64_t> Write(WriteBatch& batch);
  // Blocks until the write with `ticket` is as durable as the store's mode promises.
  Status AwaitDurable(uint64_t ticket);
  // Calls `done` once the write with `ticket` is durable: at once (on this thread) when
  // it already is or the mode does not wait, else later from the store's sync thread,
  // which fsyncs for every waiter at once. `done` must not block.
  void AwaitDurableAsync(uint64_t ticket, std::function<void(Status)> done);

  // Point read; kNotFound when absent.
  Status Get(std::string_view key, std::string* value);
  // Calls `visit` for every key starting with `prefix`, in key order, until it returns
  // non-OK (which Scan then returns).
  // With `after`, starts just past that key.
  Status Scan(std::string_view prefix,
              const std::function<Status(std::string_view key, std::string_view value)>& visit,
              std::string_view after = {});

  // A consistent, online copy of the store in `dir` (which must not exist), made of
  // hard links where possible.
  Status Checkpoint(const std::string& dir);
  // Flushes memtables and syncs the WAL (used on clean shutdown).
  Status Flush();

  Durability durability() const;
  const std::string& path() const;
  // Number of WAL fsyncs issued so far (observes group commit).
  uint64_t SyncCount() const;
  // RocksDB's latest sequence number (stamped on derived state saved beside the store,
  // e.g. saved vector graphs, to say which writes it covers).
  uint64_t LatestSequence() const;

 private:
  struct Impl;
  explicit KvStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace agentstore::storage
