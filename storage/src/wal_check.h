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
  // Empty: the bytes at `offset` are damaged. Else why the file, intact itself, cannot
  // follow on from the one before (a gap in the sequences; `offset` is 0).
  std::string gap;
};

struct WalScan {
  uint64_t records = 0;           // complete records before any damage or torn tail
  bool torn_tail = false;         // the last WAL ends in a cut record (accepted)
  std::vector<WalDamage> damage;  // empty: the log is consistent up to its end
};

// Scans every *.log file of the RocksDB directory `dir` in file-number order, checking
// that each file's sequences go on from the file before. Limit: a lost oldest file, or
// one emptied, is not seen when no earlier file with records is left to compare with.
WalScan ScanWal(const std::string& dir);

struct WalFile {
  uint64_t number = 0;  // RocksDB's file number (its name: <number>.log)
  std::string path;
};
// The *.log files of `dir`, oldest (lowest number) first.
std::vector<WalFile> ListWals(const std::string& dir);

}  // namespace agentstore::storage
