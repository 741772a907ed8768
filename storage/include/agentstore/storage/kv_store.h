// KvStore: agentstore's durable store, a thin adapter over RocksDB. The engine keeps
// every record in memory and uses this only to (1) log each operation's changes as one
// atomic batch and (2) read everything back on open. RocksDB types never leave this
// module; its failures come back as Status.
//
// Durability (the loss window on a machine crash; a process crash such as kill -9
// loses nothing that was acknowledged in any mode):
//   kNone   - WAL written to the OS by Write, never fsynced by us.
//   kBatch  - as kNone, and a background thread fsyncs every `batch_sync_interval_ms`;
//             a power loss may lose that last interval.
//   kAlways - group commit, in the style of a database log: Write only appends the
//             batch to the in-memory log buffer, in log order (cheap, no syscall); the
//             store's log thread writes and fsyncs everything appended so far in one
//             go while the next group forms, then releases the waiters in log order.
//             A write is acknowledged only after an fsync covers it.
//
// Faults: a failed log write (e.g. a full disk) stops writes with a clear error
// (resource_exhausted for no space, io_error otherwise) while reads keep working; the
// log thread retries RocksDB's Resume() until writes work again and says so on stderr.
// A WAL damaged in the middle (not just a torn tail) refuses to open unless
// `recover_damaged_wal` is set (see wal_check.h).
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
#include "agentstore/storage/faults.h"

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
  // Change-feed retention (RocksDB WAL_ttl_seconds / WAL_size_limit_MB): WAL files no
  // longer needed for recovery move to <path>/archive and stay readable by ReadLog until
  // older than this / until the archive passes this size (checked every 10 minutes when
  // both are set). Both 0: deleted at once, so ReadLog reaches back only to the oldest
  // live WAL file.
  uint64_t log_retention_seconds = 86400;
  uint64_t log_retention_mb = 4096;
  // Open a store whose WAL is damaged before its end anyway, from the last consistent
  // point (dropping the writes after the damage; OpenReport() says how many).
  bool recover_damaged_wal = false;
  // How often a store whose writes failed retries them (RocksDB's Resume()).
  int resume_interval_ms = 200;
  // Tests: fails file writes as a full disk does (faults.h).
  std::shared_ptr<StorageFaults> faults;
  // Combines the values written with WriteBatch::Merge under `key`: `existing` is the
  // current value (nullptr when the key has none), `operand` the merged one, both in the
  // value's own format. Must be associative; false only on malformed input. Required to
  // use Merge.
  std::function<bool(std::string_view key, const std::string_view* existing,
                     std::string_view operand, std::string* out)>
      merge;
};

// One change read back from the log (ReadLog): a Put or a Delete with its RocksDB
// sequence number, plus the notes (WriteBatch::Note) of its batch.
struct LogEntry {
  uint64_t sequence = 0;
  bool is_delete = false;
  std::string_view key;
  std::string_view value;  // empty for a delete
  // The last Note before this change in its batch (not counting notes of 'T').
  std::string_view note;
  // The first note whose first byte is 'T' after this change in its batch (or empty):
  // writers that tag their batches end each with one (a batch written alone or merged
  // by RocksDB with others into one log record reads the same).
  std::string_view batch_note;
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
  // Combines `operand` into the key's value with StoreOptions::merge (commutative
  // updates that concurrent writers need not order among themselves).
  void Merge(std::string_view key, std::string_view operand);
  int Count() const;
  void Clear();
  // Adds `blob` to the log record of this batch without storing it as data (RocksDB
  // PutLogData): ReadLog hands it back with the changes that follow it.
  void Note(std::string_view blob);

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
  // AwaitDurable before the write is acknowledged to anyone. A written batch is left
  // empty (the change feed's log tail may keep its contents without copying them); a
  // failed one keeps its contents.
  Result<uint64_t> Write(WriteBatch& batch);
  // Hands every write made so far to the OS without syncing, for a write nobody awaits
  // (e.g. memory touches): under kAlways Write only fills RocksDB's log buffer, and a
  // process crash would lose what the log thread had not flushed yet.
  Status HandToOs();
  // Blocks until the write with `ticket` is as durable as the store's mode promises.
  Status AwaitDurable(uint64_t ticket);
  // Calls `done` once the write with `ticket` is durable: at once (on this thread) when
  // it already is or the mode does not wait, else later from the store's sync thread,
  // which fsyncs for every waiter at once. `done` must not block.
  void AwaitDurableAsync(uint64_t ticket, std::function<void(Status)> done);

  // The change log (the WAL, kept per StoreOptions::log_retention_*). Every Put and
  // Delete has a sequence number, increasing in commit order across restarts.
  // The highest sequence that is durable per the mode: covered by the last completed
  // group sync under kAlways; the last written under kBatch and kNone (which acknowledge
  // once written).
  uint64_t DurableSequence() const;
  // The oldest sequence ReadLog can still return (LatestSequence() + 1 when none is kept).
  Result<uint64_t> OldestLogSequence();
  // Called whenever DurableSequence advances, from a writer or the log thread; must not
  // block. Set once, before concurrent use.
  void SetDurableListener(std::function<void(uint64_t durable_sequence)> listener);
  // Visits the changes with sequences in [from, to] in order, stopping after
  // `max_entries` or when `visit` returns non-OK; returns the last sequence visited
  // (from - 1 when none). kOutOfRange naming the oldest kept when `from` is older.
  Result<uint64_t> ReadLog(uint64_t from, uint64_t to, size_t max_entries,
                           const std::function<Status(const LogEntry&)>& visit);

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
  // OK while writes are accepted; else the error they get (until writes recover).
  Status WriteHealth() const;
  // What opening found in the WAL worth an operator's attention (a torn tail ignored,
  // damage skipped under recover_damaged_wal and how many writes that dropped); empty
  // when the log was clean.
  const std::string& OpenReport() const;
  // RocksDB's latest sequence number (stamped on derived state saved beside the store,
  // e.g. saved vector graphs, to say which writes it covers).
  uint64_t LatestSequence() const;

  // --- For state derived from the store and saved beside it (the table image) ---
  // Visits every key and value at one consistent point (a RocksDB snapshot; writers go
  // on), in key order, and returns that point's sequence number.
  Result<uint64_t> ScanAll(
      const std::function<Status(std::string_view key, std::string_view value)>& visit);
  // Visits the key of every change logged with a sequence >= `from` (puts, deletes and
  // merges, in log order, a key once per change); kOutOfRange when the log no longer
  // reaches back to `from`.
  Status VisitChangedKeys(uint64_t from, const std::function<void(std::string_view key)>& visit);
  // Writes and fsyncs everything logged so far, in any durability mode.
  Status SyncLog();
  // RocksDB's identity of this store (its IDENTITY file): tells one store from another.
  std::string Identity() const;

 private:
  struct Impl;
  explicit KvStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace agentstore::storage
