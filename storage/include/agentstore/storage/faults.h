// StorageFaults: a switch that makes the store's file writes fail as a full disk does
// (ENOSPC), so tests can drive the disk-full and recovery paths in CI without root or a
// tmpfs. Hand it to StoreOptions::faults; the store then wraps RocksDB's file system.
#pragma once

#include <atomic>
#include <cstdint>

namespace agentstore::storage {

class StorageFaults {
 public:
  // While set, every append to or creation of a store file fails with "no space".
  void SetDiskFull(bool full) { disk_full_.store(full, std::memory_order_release); }
  bool disk_full() const { return disk_full_.load(std::memory_order_acquire); }
  // How many file operations failed because of the switch.
  uint64_t failed_ops() const { return failed_ops_.load(std::memory_order_relaxed); }
  void CountFailure() { failed_ops_.fetch_add(1, std::memory_order_relaxed); }

 private:
  std::atomic<bool> disk_full_{false};
  std::atomic<uint64_t> failed_ops_{0};
};

}  // namespace agentstore::storage
