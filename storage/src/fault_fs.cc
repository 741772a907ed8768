// Fault-injecting wrapper over RocksDB's default file system (see fault_fs.h). RocksDB's
// own FaultInjectionTestFS is not part of its installed library, hence this small one.
#include "fault_fs.h"

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "agentstore/storage/fault_delay.h"

namespace agentstore::storage {
namespace {

std::atomic<uint32_t> g_fail_delay_ms{0};  // fault_delay.h

rocksdb::IOStatus NoSpace(StorageFaults& f) {
  f.CountFailure();
  if (uint32_t ms = g_fail_delay_ms.load(std::memory_order_acquire))
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return rocksdb::IOStatus::NoSpace("No space left on device (injected by StorageFaults)");
}

class FaultFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  FaultFile(std::unique_ptr<rocksdb::FSWritableFile>&& f, std::shared_ptr<StorageFaults> faults)
      : FSWritableFileOwnerWrapper(std::move(f)), faults_(std::move(faults)) {}

  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                           rocksdb::IODebugContext* dbg) override {
    if (faults_->disk_full()) return NoSpace(*faults_);
    return target()->Append(data, o, dbg);
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                           const rocksdb::DataVerificationInfo& v,
                           rocksdb::IODebugContext* dbg) override {
    if (faults_->disk_full()) return NoSpace(*faults_);
    return target()->Append(data, o, v, dbg);
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset,
                                     const rocksdb::IOOptions& o,
                                     rocksdb::IODebugContext* dbg) override {
    if (faults_->disk_full()) return NoSpace(*faults_);
    return target()->PositionedAppend(data, offset, o, dbg);
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset,
                                     const rocksdb::IOOptions& o,
                                     const rocksdb::DataVerificationInfo& v,
                                     rocksdb::IODebugContext* dbg) override {
    if (faults_->disk_full()) return NoSpace(*faults_);
    return target()->PositionedAppend(data, offset, o, v, dbg);
  }

 private:
  std::shared_ptr<StorageFaults> faults_;
};

class FaultFs : public rocksdb::FileSystemWrapper {
 public:
  explicit FaultFs(std::shared_ptr<StorageFaults> faults)
      : FileSystemWrapper(rocksdb::FileSystem::Default()), faults_(std::move(faults)) {}
  const char* Name() const override { return "AgentstoreFaultFs"; }

  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* dbg) override {
    if (faults_->disk_full()) return NoSpace(*faults_);
    std::unique_ptr<rocksdb::FSWritableFile> file;
    rocksdb::IOStatus s = target()->NewWritableFile(f, o, &file, dbg);
    if (s.ok()) r->reset(new FaultFile(std::move(file), faults_));
    return s;
  }
  // A full disk also says so to whoever asks (RocksDB's own recovery, and the store's).
  rocksdb::IOStatus GetFreeSpace(const std::string& path, const rocksdb::IOOptions& o,
                                 uint64_t* free, rocksdb::IODebugContext* dbg) override {
    if (faults_->disk_full()) {
      *free = 0;
      return rocksdb::IOStatus::OK();
    }
    return target()->GetFreeSpace(path, o, free, dbg);
  }
  rocksdb::IOStatus ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                       std::unique_ptr<rocksdb::FSWritableFile>* r,
                                       rocksdb::IODebugContext* dbg) override {
    if (faults_->disk_full()) return NoSpace(*faults_);
    std::unique_ptr<rocksdb::FSWritableFile> file;
    rocksdb::IOStatus s = target()->ReopenWritableFile(f, o, &file, dbg);
    if (s.ok()) r->reset(new FaultFile(std::move(file), faults_));
    return s;
  }

 private:
  std::shared_ptr<StorageFaults> faults_;
};

}  // namespace

void SetInjectedFailureDelayMs(uint32_t ms) {
  g_fail_delay_ms.store(ms, std::memory_order_release);
}

std::shared_ptr<rocksdb::FileSystem> NewFaultFileSystem(std::shared_ptr<StorageFaults> faults) {
  return std::make_shared<FaultFs>(std::move(faults));
}

}  // namespace agentstore::storage
