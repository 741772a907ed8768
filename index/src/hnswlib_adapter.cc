// Everything that includes hnswlib: the Space (its distance kernels) and HnswGraph.
// hnswlib 0.6.2's headers define non-inline globals (its SIMD function pointers), so
// exactly one translation unit of agentstore may include them: this one.
#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>

#include "agentstore/index/hnsw_graph.h"
#include "agentstore/index/space.h"
namespace agentstore::index {

std::string_view MetricName(Metric m) { return m == Metric::kCosine ? "cosine" : "l2"; }

std::optional<Metric> MetricFromName(std::string_view name) {
  if (name == "cosine") return Metric::kCosine;
  if (name == "l2") return Metric::kL2;
  return std::nullopt;
}

Space::Space(uint32_t dim, Metric metric, std::shared_ptr<void> space, DistFn fn, const void* param)
    : dim_(dim), metric_(metric), space_(std::move(space)), fn_(fn), param_(param) {}
Space::~Space() = default;

Result<std::shared_ptr<const Space>> Space::Make(uint32_t dim, Metric metric) {
  if (dim < 1 || dim > 4096) return Status::InvalidArgument("vector dimension must be 1..4096");
  std::shared_ptr<hnswlib::SpaceInterface<float>> space;
  if (metric == Metric::kCosine)
    space = std::make_shared<hnswlib::InnerProductSpace>(dim);
  else
    space = std::make_shared<hnswlib::L2Space>(dim);
  DistFn fn = space->get_dist_func();
  const void* param = space->get_dist_func_param();
  return std::shared_ptr<const Space>(
      new Space(dim, metric, std::static_pointer_cast<void>(space), fn, param));
}

Status Space::Prepare(std::vector<float>& v) const {
  if (v.size() != dim_) {
    return Status::InvalidArgument("embedding has " + std::to_string(v.size()) +
                                   " dimensions; this store's vectors have " +
                                   std::to_string(dim_));
  }
  double norm2 = 0;
  for (float x : v) {
    if (!std::isfinite(x)) return Status::InvalidArgument("embedding holds NaN or infinity");
    norm2 += static_cast<double>(x) * x;
  }
  if (metric_ == Metric::kCosine) {
    if (!(norm2 > 0) || !std::isfinite(norm2))
      return Status::InvalidArgument("embedding has zero length; cosine needs a direction");
    float inv = static_cast<float>(1.0 / std::sqrt(norm2));
    for (float& x : v) x *= inv;
  }
  return Status::OK();
}

}  // namespace agentstore::index

namespace agentstore::index {

namespace {

// A space whose stored "vector" is a pointer to the vector: distances dereference both
// sides and run the real space's kernel. hnswlib copies get_data_size() bytes per
// element, so a borrowing graph stores 8 bytes instead of dim * 4.
class BorrowedSpace final : public hnswlib::SpaceInterface<float> {
 public:
  explicit BorrowedSpace(hnswlib::SpaceInterface<float>* real)
      : param_{real->get_dist_func(), real->get_dist_func_param()} {}
  size_t get_data_size() override { return sizeof(const float*); }
  hnswlib::DISTFUNC<float> get_dist_func() override { return &Distance; }
  void* get_dist_func_param() override { return &param_; }

 private:
  struct Param {
    hnswlib::DISTFUNC<float> fn;
    void* param;
  };
  // hnswlib keeps an element's data right after its level-0 links (4 + 8M bytes in), so
  // a stored pointer is only 4-byte aligned: copy it out instead of loading it in place
  // (a misaligned load is undefined behaviour; UBSan reports it).
  static float Distance(const void* a, const void* b, const void* p) {
    const auto* param = static_cast<const Param*>(p);
    const float* va;
    const float* vb;
    std::memcpy(&va, a, sizeof va);
    std::memcpy(&vb, b, sizeof vb);
    return param->fn(va, vb, param->param);
  }
  Param param_;
};

}  // namespace

struct HnswGraph::Impl {
  std::shared_ptr<const Space> space;
  VectorStorage storage = VectorStorage::kCopy;
  std::unique_ptr<BorrowedSpace> borrowed;  // kBorrow
  std::vector<float> zero;                  // kBorrow: what tombstones without a vector see
  std::unique_ptr<hnswlib::HierarchicalNSW<float>> hnsw;

  void Init(std::shared_ptr<const Space> s, VectorStorage st) {
    space = std::move(s);
    storage = st;
    if (storage == VectorStorage::kBorrow) {
      borrowed = std::make_unique<BorrowedSpace>(real());
      zero.assign(space->dim(), 0.0f);
    }
  }
  hnswlib::SpaceInterface<float>* real() const {
    return static_cast<hnswlib::SpaceInterface<float>*>(space->hnswlib_space());
  }
  hnswlib::SpaceInterface<float>* iface() const {
    return borrowed ? static_cast<hnswlib::SpaceInterface<float>*>(borrowed.get()) : real();
  }
  const float* At(hnswlib::tableint i) const {
    const char* d = hnsw->getDataByInternalId(i);
    if (!borrowed) return reinterpret_cast<const float*>(d);
    const float* p;
    std::memcpy(&p, d, sizeof p);
    return p;
  }
  void SetBorrowed(hnswlib::tableint i, const float* p) {
    std::memcpy(hnsw->getDataByInternalId(i), &p, sizeof p);
  }
};

HnswGraph::HnswGraph(std::unique_ptr<Impl> impl, const GraphParams& params)
    : impl_(std::move(impl)), params_(params) {}

HnswGraph::HnswGraph(std::shared_ptr<const Space> space, const GraphParams& params, size_t capacity,
                     VectorStorage storage)
    : impl_(std::make_unique<Impl>()), params_(params) {
  impl_->Init(std::move(space), storage);
  impl_->hnsw = std::make_unique<hnswlib::HierarchicalNSW<float>>(
      impl_->iface(), std::max<size_t>(capacity, 16), params.M, params.ef_construction,
      params.seed);
  impl_->hnsw->setEf(params.ef_search);
}

HnswGraph::~HnswGraph() = default;

Status HnswGraph::Add(uint64_t label, const float* vector) {
  auto& h = *impl_->hnsw;
  try {
    if (h.cur_element_count >= h.max_elements_) h.resizeIndex(h.max_elements_ * 2);
    // kBorrow: hnswlib copies the pointer, not the vector.
    const void* data = impl_->borrowed ? static_cast<const void*>(&vector) : vector;
    h.addPoint(data, static_cast<hnswlib::labeltype>(label));
  } catch (const std::exception& e) {
    return Status::ResourceExhausted(std::string("vector graph insert failed: ") + e.what());
  }
  return Status::OK();
}

Result<size_t> HnswGraph::AddMany(const std::vector<uint64_t>& labels,
                                  const std::vector<const float*>& vectors, unsigned threads,
                                  std::chrono::steady_clock::time_point deadline) {
  auto& h = *impl_->hnsw;
  const size_t n = std::min(labels.size(), vectors.size());
  try {
    // Room for all first: hnswlib inserts concurrently, but not while it resizes.
    if (h.cur_element_count + n > h.max_elements_) h.resizeIndex(h.cur_element_count + n);
  } catch (const std::exception& e) {
    return Status::ResourceExhausted(std::string("vector graph resize failed: ") + e.what());
  }
  std::atomic<size_t> next{0};
  std::mutex error_mu;
  std::string error;
  auto work = [&] {
    while (std::chrono::steady_clock::now() < deadline) {
      const size_t i = next.fetch_add(1);
      if (i >= n) return;
      const float* v = vectors[i];
      try {
        h.addPoint(impl_->borrowed ? static_cast<const void*>(&v) : v,
                   static_cast<hnswlib::labeltype>(labels[i]));
      } catch (const std::exception& e) {
        std::lock_guard lock(error_mu);
        error = e.what();
        next = n;  // the others stop at their next element
        return;
      }
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < std::max(threads, 1u); ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (!error.empty()) return Status::ResourceExhausted("vector graph insert failed: " + error);
  return std::min(next.load(), n);
}

void HnswGraph::Remove(uint64_t label) {
  try {
    impl_->hnsw->markDelete(label);
  } catch (const std::exception&) {
    // Unknown or already deleted: nothing to do.
  }
}

std::vector<Hit> HnswGraph::Search(const float* query, size_t k, size_t breadth) const {
  std::vector<Hit> out;
  if (k == 0 || live() == 0) return out;
  // hnswlib searches with ef = max(ef_search, asked); asking for more and keeping k
  // widens one search without changing the graph's shared ef. Within ef_search, ask for
  // exactly k so nothing beyond the answer is copied out of hnswlib's heap.
  size_t ask = breadth > params_.ef_search ? std::max(k, breadth) : k;
  try {
    const void* q = impl_->borrowed ? static_cast<const void*>(&query) : query;
    auto pq = impl_->hnsw->searchKnn(q, ask);
    out.resize(pq.size());
    for (size_t i = pq.size(); i-- > 0;) {
      out[i] = Hit{pq.top().second, pq.top().first};
      pq.pop();
    }
  } catch (const std::exception&) {
    out.clear();
  }
  if (out.size() > k) out.resize(k);
  return out;
}

bool HnswGraph::Contains(uint64_t label) const {
  const auto& h = *impl_->hnsw;
  auto it = h.label_lookup_.find(label);
  return it != h.label_lookup_.end() && !h.isMarkedDeleted(it->second);
}

size_t HnswGraph::live() const {
  return impl_->hnsw->cur_element_count - impl_->hnsw->num_deleted_;
}
size_t HnswGraph::tombstones() const { return impl_->hnsw->num_deleted_; }

std::vector<uint64_t> HnswGraph::Labels() const {
  std::vector<uint64_t> out;
  const auto& h = *impl_->hnsw;
  out.reserve(h.label_lookup_.size());
  for (const auto& [label, internal] : h.label_lookup_)
    if (!h.isMarkedDeleted(internal)) out.push_back(label);
  return out;
}

std::vector<float> HnswGraph::VectorOf(uint64_t label) const {
  const auto& h = *impl_->hnsw;
  auto it = h.label_lookup_.find(label);
  if (it == h.label_lookup_.end() || h.isMarkedDeleted(it->second)) return {};
  const float* v = impl_->At(it->second);
  return std::vector<float>(v, v + impl_->space->dim());
}

VectorStorage HnswGraph::storage() const { return impl_->storage; }

const Space& HnswGraph::space() const { return *impl_->space; }
size_t HnswGraph::elements() const { return impl_->hnsw->cur_element_count; }
uint64_t HnswGraph::LabelAt(size_t i) const {
  return impl_->hnsw->getExternalLabel(static_cast<hnswlib::tableint>(i));
}
bool HnswGraph::DeletedAt(size_t i) const {
  return impl_->hnsw->isMarkedDeleted(static_cast<hnswlib::tableint>(i));
}
const float* HnswGraph::VectorAt(size_t i) const {
  return impl_->At(static_cast<hnswlib::tableint>(i));
}

void HnswGraph::Relabel(const std::function<std::optional<Relabelled>(size_t)>& relabel) {
  auto& h = *impl_->hnsw;
  h.label_lookup_.clear();
  for (size_t i = 0; i < h.cur_element_count; ++i) {
    auto id = static_cast<hnswlib::tableint>(i);
    std::optional<Relabelled> r;
    if (!h.isMarkedDeleted(id)) r = relabel(i);
    if (r && impl_->borrowed && !r->vector) r.reset();
    if (!r) {
      if (!h.isMarkedDeleted(id)) h.markDeletedInternal(id);
      // A label no caller uses (they stay below 2^63), unique per element.
      r = Relabelled{(uint64_t{1} << 63) | i, impl_->zero.data()};
    }
    if (impl_->borrowed) impl_->SetBorrowed(id, r->vector);
    h.setExternalLabel(id, r->label);
    h.label_lookup_[r->label] = id;
  }
}

Status HnswGraph::Save(const std::string& path) const {
  try {
    impl_->hnsw->saveIndex(path);
  } catch (const std::exception& e) {
    return Status::IoError(std::string("saving vector graph: ") + e.what());
  }
  return Status::OK();
}

Result<std::unique_ptr<HnswGraph>> HnswGraph::Load(std::shared_ptr<const Space> space,
                                                   const GraphParams& params,
                                                   const std::string& path, VectorStorage storage) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return Status::NotFound("no graph snapshot at " + path);
  auto impl = std::make_unique<Impl>();
  impl->Init(std::move(space), storage);
  try {
    impl->hnsw = std::make_unique<hnswlib::HierarchicalNSW<float>>(impl->iface(), path);
  } catch (const std::exception& e) {
    return Status::Corruption(std::string("vector graph snapshot unreadable: ") + e.what());
  }
  auto& h = *impl->hnsw;
  // data_size_ comes from our space, the offsets from the file: a snapshot of another
  // dimension or storage kind has a different element layout.
  if (h.label_offset_ != h.offsetData_ + h.data_size_ ||
      h.size_data_per_element_ != h.label_offset_ + sizeof(hnswlib::labeltype))
    return Status::Corruption("vector graph snapshot has another dimension or storage");
  // The pointers a borrowing snapshot holds are the saving process's: point every
  // element at the zero vector until the owner relabels.
  if (impl->borrowed)
    for (size_t i = 0; i < h.cur_element_count; ++i)
      impl->SetBorrowed(static_cast<hnswlib::tableint>(i), impl->zero.data());
  // hnswlib 0.6.2's loading constructor counts tombstones into an uninitialized
  // num_deleted_; recount them.
  h.num_deleted_ = 0;
  for (size_t i = 0; i < h.cur_element_count; ++i) h.num_deleted_ += h.isMarkedDeleted(i);
  impl->hnsw->setEf(params.ef_search);
  // The snapshot's own construction parameters (the caller's search breadth).
  GraphParams actual = params;
  actual.M = h.M_;
  actual.ef_construction = h.ef_construction_;
  return std::unique_ptr<HnswGraph>(new HnswGraph(std::move(impl), actual));
}

}  // namespace agentstore::index
