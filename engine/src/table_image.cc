// The table image's file format, writer, mapping and the recovery source (table_image.h).
#include "table_image.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>

namespace agentstore::internal {
namespace {

constexpr char kMagic[8] = {'A', 'S', 'I', 'M', 'A', 'G', 'E', '\0'};
constexpr char kEndMagic[8] = {'A', 'S', 'I', 'M', 'G', 'E', 'N', 'D'};
constexpr uint32_t kVersion = 1;
constexpr char kFile[] = "/table.image";
constexpr char kTmpFile[] = "/table.image.tmp";

// Host byte order: the file never leaves the machine's data directory (a foreign one
// fails the magic, version or checksum).
//
// File: Head | values | keys | index | Tail.
// - values: per entry, uint32 value length, uint32 0, the value (padded to 8): laid out
//   as an Arena record, so arenas refer to it in place;
// - keys: every key, back to back (padded to 8 at the end);
// - index: per entry in key order, where its value is and where its key is in `keys`.
// Keys and index are read only while the store opens, then given back to the kernel
// (ReleaseIndex), so they cost no resident memory afterwards.
// What is known only after the pass (the snapshot's sequence, the counts) is in the
// tail, so the file is written and hashed in one streaming pass.
struct Head {
  char magic[8];
  uint32_t version;
  uint32_t head_bytes;
  uint32_t identity_len;
  uint32_t reserved;
  char identity[104];
};
static_assert(sizeof(Head) == 128);
struct IndexEntry {
  uint64_t value_at;  // the value's first byte (its 8-byte arena header is just before)
  uint32_t key_at;    // in the keys region
  uint32_t key_len;
};
static_assert(sizeof(IndexEntry) == 16);
struct Tail {
  uint64_t sequence;
  uint64_t entries;
  uint64_t keys_at;
  uint64_t index_at;
  uint64_t checksum;  // XXH3-64 of everything before it
  char magic[8];
};
static_assert(sizeof(Tail) == 48);
constexpr size_t kHashedTail = offsetof(Tail, checksum);

size_t Pad8(size_t n) { return (n + 7) & ~size_t{7}; }

// Buffered, checksummed writes to a file descriptor.
class Writer {
 public:
  explicit Writer(int fd) : fd_(fd), state_(XXH3_createState()) {
    XXH3_64bits_reset(state_);
    buf_.reserve(kBuf);
  }
  ~Writer() { XXH3_freeState(state_); }
  void Put(const void* p, size_t n) {
    XXH3_64bits_update(state_, p, n);
    const char* c = static_cast<const char*>(p);
    while (n > 0) {
      size_t take = std::min(n, kBuf - buf_.size());
      buf_.insert(buf_.end(), c, c + take);
      c += take;
      n -= take;
      offset_ += take;
      if (buf_.size() == kBuf && !Drain()) return;
    }
  }
  void Zeros(size_t n) {
    static const char kZero[8] = {};
    Put(kZero, n);
  }
  // Writes the unhashed tail bytes directly.
  bool Finish(const void* p, size_t n) {
    if (!Drain()) return false;
    return WriteAll(static_cast<const char*>(p), n);
  }
  uint64_t offset() const { return offset_; }
  uint64_t digest() const { return XXH3_64bits_digest(state_); }
  bool ok() const { return ok_; }

 private:
  static constexpr size_t kBuf = 1 << 20;
  bool Drain() {
    if (ok_ && !buf_.empty()) ok_ = WriteAll(buf_.data(), buf_.size());
    buf_.clear();
    return ok_;
  }
  bool WriteAll(const char* p, size_t n) {
    while (n > 0) {
      ssize_t w = ::write(fd_, p, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return ok_ = false;
      p += w;
      n -= static_cast<size_t>(w);
    }
    return true;
  }
  int fd_;
  XXH3_state_t* state_;
  std::vector<char> buf_;
  uint64_t offset_ = 0;
  bool ok_ = true;
};

}  // namespace

TableImage::~TableImage() {
  if (base_) ::munmap(const_cast<char*>(base_), size_);
}

std::string_view TableImage::Key(uint64_t i) const {
  const auto* e = reinterpret_cast<const IndexEntry*>(index_) + i;
  return std::string_view(base_ + keys_at_ + e->key_at, e->key_len);
}

std::string_view TableImage::Value(uint64_t i) const {
  const auto* e = reinterpret_cast<const IndexEntry*>(index_) + i;
  uint32_t vlen;
  std::memcpy(&vlen, base_ + e->value_at - 8, 4);
  return std::string_view(base_ + e->value_at, vlen);
}

void TableImage::ReleaseIndex() const {
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  const size_t from = (keys_at_ + page - 1) / page * page;
  if (from < size_) ::madvise(const_cast<char*>(base_) + from, size_ - from, MADV_DONTNEED);
}

uint64_t TableImage::LowerBound(std::string_view key) const {
  uint64_t lo = 0, hi = entries_;
  while (lo < hi) {
    uint64_t mid = lo + (hi - lo) / 2;
    if (Key(mid) < key)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

Result<std::shared_ptr<const TableImage>> TableImage::Map(const std::string& dir,
                                                          const std::string& identity) {
  const std::string path = dir + kFile;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Status::NotFound("no table image");
    return Status::IoError("opening " + path + ": " + std::strerror(errno));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return Status::IoError("stat " + path);
  }
  auto bad = [&](const std::string& why) { return Status::Corruption("table image: " + why); };
  const size_t size = static_cast<size_t>(st.st_size);
  if (size < sizeof(Head) + sizeof(Tail)) {
    ::close(fd);
    return bad("truncated");
  }
  // Populated at once: the checksum reads every page anyway, and faulting them one by
  // one costs more than reading the file in one go.
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) return Status::IoError("mapping " + path + ": " + std::strerror(errno));
  std::shared_ptr<TableImage> img(new TableImage());
  img->base_ = static_cast<const char*>(p);
  img->size_ = size;
  Head head;
  std::memcpy(&head, img->base_, sizeof head);
  if (std::memcmp(head.magic, kMagic, sizeof kMagic) != 0) return bad("not a table image");
  if (head.version != kVersion)
    return bad("format version " + std::to_string(head.version) + ", expected " +
               std::to_string(kVersion));
  if (head.head_bytes != sizeof(Head) || head.identity_len > sizeof head.identity)
    return bad("malformed header");
  if (std::string_view(head.identity, head.identity_len) != identity)
    return bad("written for another store or data directory");
  Tail tail;
  std::memcpy(&tail, img->base_ + size - sizeof tail, sizeof tail);
  if (std::memcmp(tail.magic, kEndMagic, sizeof kEndMagic) != 0) return bad("truncated");
  if (tail.keys_at % 8 != 0 || tail.index_at % 8 != 0 || tail.keys_at < sizeof(Head) ||
      tail.index_at < tail.keys_at || tail.index_at - tail.keys_at > UINT32_MAX ||
      tail.entries > size / sizeof(IndexEntry) ||
      tail.index_at + tail.entries * sizeof(IndexEntry) + sizeof(Tail) != size)
    return bad("truncated or of the wrong size");
  if (XXH3_64bits(img->base_, size - sizeof tail + kHashedTail) != tail.checksum)
    return bad("checksum mismatch");
  img->sequence_ = tail.sequence;
  img->entries_ = tail.entries;
  img->keys_at_ = tail.keys_at;
  img->index_ = img->base_ + tail.index_at;
  // The checksum proves the bytes are the writer's; these bounds make a writer's bug
  // fail here rather than as a read past the mapping later.
  const auto* index = reinterpret_cast<const IndexEntry*>(img->index_);
  const uint64_t keys_len = tail.index_at - tail.keys_at;
  for (uint64_t i = 0; i < tail.entries; ++i) {
    const IndexEntry& e = index[i];
    if (e.value_at % 8 != 0 || e.value_at < sizeof(Head) + 8 || e.value_at > tail.keys_at ||
        uint64_t{e.key_at} + e.key_len > keys_len)
      return bad("bad index entry");
    uint32_t head_words[2];
    std::memcpy(head_words, img->base_ + e.value_at - 8, 8);
    if (head_words[1] != 0 || e.value_at + head_words[0] > tail.keys_at)
      return bad("bad value header");
  }
  // The values become writable, copy-on-write (MAP_PRIVATE: the file never changes): a
  // memory's touch counters are updated in place in its record. A written page turns into
  // an anonymous page in place of the file's, so resident memory stays the same. Done
  // after MAP_POPULATE, which would otherwise copy every page of a writable mapping.
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  const size_t writable = (tail.keys_at + page - 1) / page * page;
  if (::mprotect(p, std::min(writable, size), PROT_READ | PROT_WRITE) != 0)
    return Status::IoError(std::string("making the table image's values writable: ") +
                           std::strerror(errno));
  ::madvise(p, size, MADV_RANDOM);
  return std::shared_ptr<const TableImage>(std::move(img));
}

std::string ImageIdentity(const std::string& store_identity, const std::string& data_dir) {
  struct stat st;
  if (::stat(data_dir.c_str(), &st) != 0) return store_identity;
  return store_identity + " dir " + std::to_string(static_cast<uint64_t>(st.st_ino));
}

Result<WrittenImage> WriteTableImage(storage::KvStore& store, const std::string& dir,
                                     const std::string& identity) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::IoError("creating " + dir + ": " + ec.message());
  const std::string tmp = dir + kTmpFile;
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::IoError("creating " + tmp + ": " + std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  Writer w(fd);
  Head head{};
  std::memcpy(head.magic, kMagic, sizeof kMagic);
  head.version = kVersion;
  head.head_bytes = sizeof(Head);
  head.identity_len = static_cast<uint32_t>(std::min(identity.size(), sizeof head.identity));
  std::memcpy(head.identity, identity.data(), head.identity_len);
  w.Put(&head, sizeof head);
  std::vector<IndexEntry> index;
  std::string keys;
  auto scanned = store.ScanAll([&](std::string_view k, std::string_view v) -> Status {
    if (v.size() > UINT32_MAX || keys.size() + k.size() > UINT32_MAX)
      return Status::InvalidArgument("a store too large for the table image");
    uint32_t arena_head[2] = {static_cast<uint32_t>(v.size()), 0};
    w.Put(arena_head, 8);
    index.push_back(IndexEntry{w.offset(), static_cast<uint32_t>(keys.size()),
                               static_cast<uint32_t>(k.size())});
    keys.append(k);
    w.Put(v.data(), v.size());
    w.Zeros(Pad8(v.size()) - v.size());
    return w.ok() ? Status::OK() : Status::IoError("writing " + tmp + ": " + std::strerror(errno));
  });
  if (!scanned.ok()) {
    std::filesystem::remove(tmp, ec);
    return scanned.status();
  }
  Tail tail{};
  tail.sequence = *scanned;
  tail.entries = index.size();
  tail.keys_at = w.offset();
  keys.resize(Pad8(keys.size()), '\0');
  w.Put(keys.data(), keys.size());
  tail.index_at = w.offset();
  w.Put(index.data(), index.size() * sizeof(IndexEntry));
  w.Put(&tail, kHashedTail);
  tail.checksum = w.digest();
  std::memcpy(tail.magic, kEndMagic, sizeof kEndMagic);
  if (!w.ok() ||
      !w.Finish(reinterpret_cast<const char*>(&tail) + kHashedTail, sizeof tail - kHashedTail)) {
    Status s = Status::IoError("writing " + tmp + ": " + std::strerror(errno));
    std::filesystem::remove(tmp, ec);
    return s;
  }
  const uint64_t sequence = tail.sequence;
  // Everything the image holds must be in the synced log before the image can be used:
  // else a crash could take back a write the image has, and the log would then reuse
  // its sequence numbers for other writes.
  if (Status s = store.SyncLog(); !s.ok()) {
    std::filesystem::remove(tmp, ec);
    return s;
  }
  std::filesystem::rename(tmp, dir + kFile, ec);
  if (ec) {
    Status s = Status::IoError("installing the table image: " + ec.message());
    std::filesystem::remove(tmp, ec);  // as large as the store: never left behind
    return s;
  }
  return WrittenImage{sequence, tail.entries};
}

void RemoveTableImage(const std::string& dir) {
  std::error_code ec;
  std::filesystem::remove(dir + kFile, ec);
  std::filesystem::remove(dir + kTmpFile, ec);
}

Result<std::unique_ptr<RecordSource>> RecordSource::WithImage(
    storage::KvStore* store, std::shared_ptr<const TableImage> image) {
  AS_RETURN_IF_ERROR(store->SyncLog());  // the log file then holds every sequence
  const uint64_t latest = store->LatestSequence();
  if (image->sequence() > latest)
    return Status::Corruption("table image at sequence " + std::to_string(image->sequence()) +
                              " is ahead of the store (" + std::to_string(latest) + ")");
  std::unique_ptr<RecordSource> src(new RecordSource(store));
  std::vector<std::string> keys;
  AS_RETURN_IF_ERROR(store->VisitChangedKeys(image->sequence() + 1,
                                             [&](std::string_view k) { keys.emplace_back(k); }));
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  src->changed_.reserve(keys.size());
  for (auto& k : keys) {
    Changed c;
    std::string value;
    Status s = store->Get(k, &value);
    if (s.ok()) {
      c.present = true;
      c.value = std::move(value);
    } else if (s.code() != StatusCode::kNotFound) {
      return s;
    }
    c.key = std::move(k);
    src->changed_.push_back(std::move(c));
  }
  src->image_ = std::move(image);
  return src;
}

size_t RecordSource::CountHint(std::string_view prefix) const {
  if (!image_ || prefix.empty()) return 0;
  std::string end(prefix);
  while (!end.empty() && static_cast<unsigned char>(end.back()) == 0xff) end.pop_back();
  if (end.empty()) return image_->entries();
  end.back() = static_cast<char>(end.back() + 1);
  return image_->LowerBound(end) - image_->LowerBound(prefix);
}

Status RecordSource::Scan(std::string_view prefix, const Visit& visit) const {
  if (!image_) return store_->Scan(prefix, visit);
  auto in = [&](std::string_view k) { return k.substr(0, prefix.size()) == prefix; };
  uint64_t i = image_->LowerBound(prefix);
  auto j = std::lower_bound(changed_.begin(), changed_.end(), prefix,
                            [](const Changed& c, std::string_view p) { return c.key < p; });
  while (true) {
    bool from_image = i < image_->entries() && in(image_->Key(i));
    bool from_log = j != changed_.end() && in(j->key);
    if (!from_image && !from_log) return Status::OK();
    if (from_log && (!from_image || j->key <= image_->Key(i))) {
      if (from_image && image_->Key(i) == j->key) ++i;  // superseded
      if (j->present) AS_RETURN_IF_ERROR(visit(j->key, j->value));
      ++j;
    } else {
      AS_RETURN_IF_ERROR(visit(image_->Key(i), image_->Value(i)));
      ++i;
    }
  }
}

}  // namespace agentstore::internal
