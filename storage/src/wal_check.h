// Checks RocksDB's write-ahead log files before the store opens them. RocksDB's own
// point-in-time recovery stops at the first damaged record and silently drops every
// acknowledged write after it; this scan tells a torn tail (the last record cut by a
// crash: normal) from damage followed by valid records (refuse, name file and offset).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace agentstore::storage {

struct WalDamage {
  std::string file;      // path of the WAL file
  uint64_t offset = 0;   // byte offset of the first damaged record
  uint64_t dropped = 0;  // complete, checksummed records after it (in this and later WALs)
};

struct WalScan {
  uint64_t records = 0;           // complete records before any damage or torn tail
  bool torn_tail = false;         // the last WAL ends in a cut record (accepted)
  std::vector<WalDamage> damage;  // empty: the log is consistent up to its end
};

// Scans every *.log file of the RocksDB directory `dir` in file-number order.
WalScan ScanWal(const std::string& dir);

}  // namespace agentstore::storage
