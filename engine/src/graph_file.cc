// Saved HNSW graphs: the .meta format, CRC checks and atomic replacement (graph_file.h).
#include "graph_file.h"

#include <xxhash.h>
#include <zlib.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace agentstore::internal {
namespace {

constexpr char kMagic[8] = {'A', 'S', 'G', 'R', 'A', 'P', 'H', '\0'};
// 2: graphs borrow their vectors (the .hnsw holds none) and elements carry a vector hash.
// 3: that hash is XXH3-64 (checking every element of a 250k-vector graph with zlib's
//    CRC-32 + Adler-32 took ~1 s of each start). Version 2 files are still read, with
//    their hash, and rewritten as version 3 by the next save.
constexpr uint32_t kVersion = 3;
constexpr uint32_t kOldestVersion = 2;
constexpr size_t kKeyBytes = 40;

// Fixed-size head of the .meta file (host byte order: the file never leaves the
// machine's data directory; a foreign byte order fails the magic/version/CRC checks).
struct MetaHead {
  char magic[8];
  uint32_t version;
  uint32_t dim;
  uint32_t metric;
  uint32_t hnsw_crc;
  uint64_t M;
  uint64_t ef_construction;
  uint64_t sequence;
  uint64_t hnsw_bytes;
  uint64_t elements;
};
static_assert(sizeof(MetaHead) == 64);

uint32_t Crc(uint32_t crc, const void* data, size_t n) {
  return static_cast<uint32_t>(crc32_z(crc, static_cast<const Bytef*>(data), n));
}

// CRC-32 and size of a whole file, read in 1 MiB pieces.
Status FileCrc(const std::string& path, uint32_t* crc, uint64_t* bytes) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return Status::NotFound("cannot open " + path);
  std::vector<char> buf(1 << 20);
  uint32_t c = Crc(0, nullptr, 0);
  uint64_t total = 0;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) {
    c = Crc(c, buf.data(), n);
    total += n;
  }
  bool err = std::ferror(f);
  std::fclose(f);
  if (err) return Status::IoError("reading " + path);
  *crc = c;
  *bytes = total;
  return Status::OK();
}

}  // namespace

uint64_t VectorHash(const float* v, uint32_t dim) {
  return XXH3_64bits(v, size_t{dim} * sizeof(float));
}

uint64_t VectorHashV2(const float* v, uint32_t dim) {
  const auto* p = reinterpret_cast<const Bytef*>(v);
  const size_t n = size_t{dim} * sizeof(float);
  return (uint64_t{static_cast<uint32_t>(crc32_z(0, p, n))} << 32) |
         static_cast<uint32_t>(adler32_z(1, p, n));
}

Status SaveGraphFile(const std::string& base, const index::HnswGraph& graph,
                     const std::vector<GraphElementKey>& keys, uint64_t sequence) {
  if (keys.size() != graph.elements())
    return Status::InvalidArgument("graph keys do not match the graph's elements");
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(base).parent_path(), ec);
  if (ec) return Status::IoError("creating graph directory: " + ec.message());
  const std::string hnsw_tmp = base + ".hnsw.tmp", meta_tmp = base + ".meta.tmp";
  // A failed save leaves no temporary file: the .hnsw.tmp is as large as the graph, and
  // on a full disk it would keep the space the store needs to resume writing.
  struct RemoveTmps {
    const std::string &hnsw, &meta;
    bool installed = false;
    ~RemoveTmps() {
      if (installed) return;
      std::error_code ignored;
      std::filesystem::remove(hnsw, ignored);
      std::filesystem::remove(meta, ignored);
    }
  } cleanup{hnsw_tmp, meta_tmp};
  AS_RETURN_IF_ERROR(graph.Save(hnsw_tmp));
  MetaHead head{};
  std::memcpy(head.magic, kMagic, sizeof kMagic);
  head.version = kVersion;
  head.dim = graph.space().dim();
  head.metric = static_cast<uint32_t>(graph.space().metric());
  head.M = graph.params().M;
  head.ef_construction = graph.params().ef_construction;
  head.sequence = sequence;
  head.elements = keys.size();
  AS_RETURN_IF_ERROR(FileCrc(hnsw_tmp, &head.hnsw_crc, &head.hnsw_bytes));
  {
    std::ofstream out(meta_tmp, std::ios::binary | std::ios::trunc);
    uint32_t crc = Crc(0, nullptr, 0);
    auto put = [&](const void* p, size_t n) {
      out.write(static_cast<const char*>(p), static_cast<std::streamsize>(n));
      crc = Crc(crc, p, n);
    };
    put(&head, sizeof head);
    for (const auto& k : keys) {
      put(k.user.bytes.data(), 16);
      put(k.id.bytes.data(), 16);
      put(&k.vector_hash, 8);
    }
    out.write(reinterpret_cast<const char*>(&crc), sizeof crc);
    out.close();
    if (!out) return Status::IoError("writing " + meta_tmp);
  }
  std::filesystem::rename(hnsw_tmp, base + ".hnsw", ec);
  if (!ec) std::filesystem::rename(meta_tmp, base + ".meta", ec);
  if (ec) return Status::IoError("installing saved graph " + base + ": " + ec.message());
  cleanup.installed = true;
  return Status::OK();
}

Result<SavedGraph> LoadGraphFile(const std::string& base, std::shared_ptr<const index::Space> space,
                                 const index::GraphParams& params) {
  const std::string meta_path = base + ".meta", hnsw_path = base + ".hnsw";
  std::error_code ec;
  if (!std::filesystem::exists(meta_path, ec)) return Status::NotFound("no saved graph at " + base);
  std::string meta;
  {
    std::ifstream in(meta_path, std::ios::binary);
    meta.assign(std::istreambuf_iterator<char>(in), {});
    if (in.bad()) return Status::IoError("reading " + meta_path);
  }
  auto bad = [&](const std::string& why) {
    return Status::Corruption("saved graph " + base + ": " + why);
  };
  if (meta.size() < sizeof(MetaHead) + 4) return bad("meta file is truncated");
  MetaHead head;
  std::memcpy(&head, meta.data(), sizeof head);
  if (std::memcmp(head.magic, kMagic, sizeof kMagic) != 0) return bad("not a saved graph");
  if (head.version < kOldestVersion || head.version > kVersion)
    return bad("format version " + std::to_string(head.version) + ", expected " +
               std::to_string(kOldestVersion) + ".." + std::to_string(kVersion));
  if (meta.size() != sizeof head + head.elements * kKeyBytes + 4)
    return bad("meta file has a bad size");
  uint32_t stored_crc;
  std::memcpy(&stored_crc, meta.data() + meta.size() - 4, 4);
  if (Crc(Crc(0, nullptr, 0), meta.data(), meta.size() - 4) != stored_crc)
    return bad("meta checksum mismatch");
  if (head.dim != space->dim() || head.metric != static_cast<uint32_t>(space->metric()))
    return bad("saved for another vector space");
  if (head.M != params.M || head.ef_construction != params.ef_construction)
    return bad("saved with other graph parameters");
  uint32_t crc;
  uint64_t bytes;
  Status s = FileCrc(hnsw_path, &crc, &bytes);
  if (s.code() == StatusCode::kNotFound) return bad("graph file is missing");
  AS_RETURN_IF_ERROR(s);
  if (bytes != head.hnsw_bytes || crc != head.hnsw_crc) return bad("graph checksum mismatch");
  SavedGraph out;
  AS_ASSIGN_OR_RETURN(out.graph, index::HnswGraph::Load(std::move(space), params, hnsw_path,
                                                        index::VectorStorage::kBorrow));
  if (out.graph->elements() != head.elements) return bad("element count mismatch");
  out.sequence = head.sequence;
  out.hash = head.version == kVersion ? VectorHash : VectorHashV2;
  out.current_format = head.version == kVersion;
  out.keys.resize(head.elements);
  const char* p = meta.data() + sizeof head;
  for (auto& k : out.keys) {
    k.user = Uuid::FromBytes(reinterpret_cast<const uint8_t*>(p));
    k.id = Uuid::FromBytes(reinterpret_cast<const uint8_t*>(p + 16));
    std::memcpy(&k.vector_hash, p + 32, 8);
    p += kKeyBytes;
  }
  return out;
}

void RemoveGraphFile(const std::string& base) {
  std::error_code ec;
  for (const char* ext : {".hnsw", ".meta", ".hnsw.tmp", ".meta.tmp"})
    std::filesystem::remove(base + ext, ec);
}

}  // namespace agentstore::internal
