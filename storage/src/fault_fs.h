// The RocksDB file system that StorageFaults switches: RocksDB's own, except that while
// the switch says "disk full" appends and file creations fail with NoSpace, as on a
// real full disk. Private to the storage module.
#pragma once

#include <rocksdb/file_system.h>

#include <memory>

#include "agentstore/storage/faults.h"

namespace agentstore::storage {

std::shared_ptr<rocksdb::FileSystem> NewFaultFileSystem(std::shared_ptr<StorageFaults> faults);

}  // namespace agentstore::storage
