// The WAL scan of wal_check.h. It reads RocksDB's documented log format (32 KiB blocks of
// records: masked CRC32C, 16-bit length, type; recyclable types add a 32-bit log
// number). Hand-written because RocksDB installs neither its log reader nor its CRC32C
// in public headers, and its recovery does not report where damage is.
#include "wal_check.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace agentstore::storage {
namespace {

constexpr size_t kBlockSize = 32768;
constexpr size_t kHeaderSize = 7;
constexpr size_t kRecyclableHeaderSize = 11;
enum : uint8_t {
  kZeroType = 0,
  kFullType = 1,
  kFirstType = 2,
  kMiddleType = 3,
  kLastType = 4,
  kRecyclableFullType = 5,
  kRecyclableLastType = 8,
  kSetCompressionType = 9,
};

// CRC32C (Castagnoli), byte-wise table.
const std::array<uint32_t, 256>& CrcTable() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  return table;
}

uint32_t Crc32c(uint32_t crc, const uint8_t* p, size_t n) {
  const auto& t = CrcTable();
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = t[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

uint32_t Unmask(uint32_t masked) {
  uint32_t rot = masked - 0xa282ead8u;
  return (rot >> 17) | (rot << 15);
}

uint32_t Fixed32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

enum class Rec { kOk, kBad, kZero, kTruncated };

struct Physical {
  Rec state;
  uint8_t type = 0;
  size_t size = 0;  // header + payload
};

// The physical record at `pos` (which is inside a block with room for a header).
Physical ReadAt(const std::vector<uint8_t>& data, size_t pos) {
  size_t left_in_block = kBlockSize - pos % kBlockSize;
  const uint8_t* h = data.data() + pos;
  if (data.size() - pos < kHeaderSize) return {Rec::kTruncated};
  uint8_t type = h[6];
  size_t len = size_t(h[4]) | size_t(h[5]) << 8;
  if (type == kZeroType && len == 0) return {Rec::kZero};
  bool recyclable = type >= kRecyclableFullType && type <= kRecyclableLastType;
  size_t header = recyclable ? kRecyclableHeaderSize : kHeaderSize;
  if (type > kSetCompressionType) return {Rec::kBad};
  if (header + len > left_in_block) return {Rec::kBad};
  if (data.size() - pos < header + len) return {Rec::kTruncated, type, header + len};
  uint32_t crc = Crc32c(0, h + 6, 1);
  crc = Crc32c(crc, h + kHeaderSize, header - kHeaderSize + len);
  if (crc != Unmask(Fixed32(h))) return {Rec::kBad, type, header + len};
  return {Rec::kOk, type, header + len};
}

uint8_t Kind(uint8_t type) {  // recyclable types map onto the legacy ones
  return type >= kRecyclableFullType && type <= kRecyclableLastType ? type - 4 : type;
}

// Complete logical records (write batches) in `data` from `pos`, skipping damage and
// resynchronising at block boundaries. Counts only records whose every fragment checks.
uint64_t CountValidFrom(const std::vector<uint8_t>& data, size_t pos) {
  uint64_t n = 0;
  bool in_fragmented = false;
  while (pos < data.size()) {
    if (kBlockSize - pos % kBlockSize < kHeaderSize) {
      pos += kBlockSize - pos % kBlockSize;
      continue;
    }
    Physical r = ReadAt(data, pos);
    if (r.state != Rec::kOk) {
      // Resynchronise byte by byte: a record's header and checksum tell where the next
      // intact one starts (a false match needs a 32-bit checksum collision).
      in_fragmented = false;
      ++pos;
      continue;
    }
    switch (Kind(r.type)) {
      case kFullType:
        ++n;
        in_fragmented = false;
        break;
      case kFirstType:
        in_fragmented = true;
        break;
      case kMiddleType:
        break;
      case kLastType:
        if (in_fragmented) ++n;
        in_fragmented = false;
        break;
      default:
        break;
    }
    pos += r.size;
  }
  return n;
}

struct FileScan {
  uint64_t records = 0;
  bool clean = true;         // no damage, no torn tail
  size_t bad_offset = 0;     // where the first problem starts
  uint64_t valid_after = 0;  // complete records after that point
  // The sequence of the first complete record and the one after the last (each record
  // is a write batch: 8-byte sequence, 4-byte count), over the records before any problem.
  uint64_t first_seq = 0;
  uint64_t next_seq = 0;
};

uint64_t Fixed64(const uint8_t* p) { return uint64_t(Fixed32(p)) | uint64_t(Fixed32(p + 4)) << 32; }

FileScan ScanFile(const std::vector<uint8_t>& data) {
  FileScan out;
  size_t pos = 0;
  size_t record_start = 0;
  bool in_fragmented = false;
  std::string head;  // the current record's first payload bytes (its batch header)
  auto take = [&](const Physical& r, bool first) {
    if (first) head.clear();
    size_t header = r.size - (size_t(data[pos + 4]) | size_t(data[pos + 5]) << 8);
    size_t want = std::min<size_t>(12 - std::min<size_t>(head.size(), 12), r.size - header);
    head.append(reinterpret_cast<const char*>(data.data() + pos + header), want);
  };
  auto complete = [&] {
    ++out.records;
    if (head.size() < 12) return;
    const auto* h = reinterpret_cast<const uint8_t*>(head.data());
    if (out.records == 1) out.first_seq = Fixed64(h);
    out.next_seq = Fixed64(h) + Fixed32(h + 8);
  };
  auto problem = [&](size_t at) {
    out.clean = false;
    out.bad_offset = at;
    // Resume after the damaged record when its length is believable, else at the next block.
    out.valid_after = CountValidFrom(data, pos + 1);
  };
  while (pos < data.size()) {
    if (kBlockSize - pos % kBlockSize < kHeaderSize) {
      pos += kBlockSize - pos % kBlockSize;  // block trailer (zero filled)
      continue;
    }
    Physical r = ReadAt(data, pos);
    if (r.state == Rec::kZero) {
      // Preallocated or never written: the end of the log, unless records follow.
      uint64_t later = CountValidFrom(data, pos + 1);
      if (later > 0 || in_fragmented) {
        problem(in_fragmented ? record_start : pos);
      }
      return out;
    }
    if (r.state != Rec::kOk) {
      problem(in_fragmented ? record_start : pos);
      return out;
    }
    switch (Kind(r.type)) {
      case kFullType:
      case kSetCompressionType:
        if (in_fragmented) {
          problem(record_start);
          return out;
        }
        if (Kind(r.type) == kFullType) {
          take(r, true);
          complete();
        }
        break;
      case kFirstType:
        if (in_fragmented) {
          problem(record_start);
          return out;
        }
        in_fragmented = true;
        record_start = pos;
        take(r, true);
        break;
      case kMiddleType:
      case kLastType:
        if (!in_fragmented) {
          problem(pos);
          return out;
        }
        take(r, false);
        if (Kind(r.type) == kLastType) {
          in_fragmented = false;
          complete();
        }
        break;
      default:
        problem(pos);
        return out;
    }
    pos += r.size;
  }
  if (in_fragmented) {  // the file ends inside a record: cut
    out.clean = false;
    out.bad_offset = record_start;
  }
  return out;
}

}  // namespace

std::vector<WalFile> ListWals(const std::string& dir) {
  namespace fs = std::filesystem;
  std::vector<WalFile> logs;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const auto name = e.path().filename().string();
    if (e.path().extension() != ".log" || name.size() <= 4) continue;
    std::string stem = name.substr(0, name.size() - 4);
    if (!std::all_of(stem.begin(), stem.end(), [](char c) { return c >= '0' && c <= '9'; }))
      continue;
    logs.push_back({std::stoull(stem), e.path().string()});
  }
  std::sort(logs.begin(), logs.end(),
            [](const WalFile& a, const WalFile& b) { return a.number < b.number; });
  return logs;
}

WalScan ScanWal(const std::string& dir) {
  const std::vector<WalFile> logs = ListWals(dir);
  WalScan out;
  uint64_t expected_seq = 0;  // where the records read so far end (0: none yet)
  for (size_t i = 0; i < logs.size(); ++i) {
    std::ifstream in(logs[i].path, std::ios::binary);
    std::vector<uint8_t> data((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
    FileScan f = ScanFile(data);
    if (!out.damage.empty()) {  // everything after the first damage is dropped
      out.damage.front().dropped += f.records + f.valid_after;
      continue;
    }
    // Each file must go on from the sequence the one before ended at. A WAL file removed
    // from the middle, or one cut exactly at a record's end, leaves every file intact but
    // a gap in the sequences, and RocksDB would replay the later writes without the lost
    // ones. (A lost first file has no predecessor to tell; see wal_check.h.)
    if (f.first_seq != 0 && expected_seq != 0 && f.first_seq != expected_seq) {
      out.damage.push_back({logs[i].path, 0, f.records + f.valid_after,
                            "starts at sequence " + std::to_string(f.first_seq) +
                                " but the WAL before it ends before sequence " +
                                std::to_string(expected_seq) +
                                " (a WAL file is missing or was cut short)"});
      continue;
    }
    if (f.next_seq != 0) expected_seq = f.next_seq;
    out.records += f.records;
    if (f.clean) continue;
    // Later WAL files hold writes that came after this one: any record in them means
    // the problem is not a torn tail.
    uint64_t later = 0;
    for (size_t j = i + 1; j < logs.size(); ++j) {
      std::ifstream lin(logs[j].path, std::ios::binary);
      std::vector<uint8_t> ld((std::istreambuf_iterator<char>(lin)),
                              std::istreambuf_iterator<char>());
      later += CountValidFrom(ld, 0);
    }
    if (f.valid_after == 0 && later == 0) {
      out.torn_tail = true;
      continue;
    }
    out.damage.push_back({logs[i].path, f.bad_offset, f.valid_after, ""});
  }
  return out;
}

}  // namespace agentstore::storage
