// EventRing: change events for the feed thread to fill, reused once every holder has let
// go of them.
//
// The feed thread builds every event; the connections' threads drop the last references
// once they have pushed them. Freed there, an event's heap blocks (the shared object, its
// key, its record bytes) went back to the feed thread's malloc arena under that arena's
// lock, against the feed's own allocations: with 1,000 subscribers malloc and free were
// the largest cost per event after the lookups (perf, feed_bench throughput). Reused, an
// event and its strings' capacity cost no allocation once the ring is warm.
//
// Hand-rolled because the events travel as shared_ptr<const ChangeEvent> (Subscription's
// queue is public API) and no pool in Debian's libraries recycles shared_ptr'd objects:
// here an event whose count is back to one (the ring's own reference) is free to refill.
// Feed thread only.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "agentstore/engine/feed.h"

namespace agentstore::internal {

class EventRing {
 public:
  // Events kept for reuse, and the size of change a kept event may carry. A kept event
  // holds its last change until it is refilled, so the ring keeps about kSlots × (the
  // record or its JSON, up to kKeptSize or a small multiple for JSON, plus its keys):
  // a few MiB at most, usually far less (log records are a few hundred bytes).
  static constexpr size_t kSlots = 1024;
  static constexpr size_t kKeptSize = 4096;

  // An event nobody else holds, its fields as they were (the caller resets them all), for
  // a change of `size` bytes. Fresh (not kept) for a change larger than kKeptSize, or
  // when the next few slots are all still held (e.g. by a slow subscriber's queue).
  std::shared_ptr<ChangeEvent> Take(size_t size) {
    if (size > kKeptSize) return std::make_shared<ChangeEvent>();
    if (slots_.size() < kSlots) return slots_.emplace_back(std::make_shared<ChangeEvent>());
    // Events are let go of roughly in the order they were built, so the next slot is
    // almost always free; a few probes get past a held one without walking the ring.
    for (int probe = 0; probe < 4; ++probe) {
      std::shared_ptr<ChangeEvent>& slot = slots_[next_];
      next_ = (next_ + 1) % kSlots;
      // Only this thread hands out references, so a count of one stays one. The last
      // other holder dropped its reference with a release; this fence orders its reads
      // of the event before the writes that refill it.
      if (slot.use_count() != 1) continue;
      std::atomic_thread_fence(std::memory_order_acquire);
      return slot;
    }
    return std::make_shared<ChangeEvent>();
  }

  // Resets `ev` to a default ChangeEvent whose strings keep their capacity, so a field
  // added to ChangeEvent is reset too without Build knowing of it.
  static void Reset(ChangeEvent& ev) {
    ChangeEvent fresh;
    for (auto field : {&ChangeEvent::key, &ChangeEvent::bytes, &ChangeEvent::collection,
                       &ChangeEvent::record_key, &ChangeEvent::json}) {
      (ev.*field).clear();
      (fresh.*field).swap(ev.*field);
    }
    ev = std::move(fresh);
  }

 private:
  std::vector<std::shared_ptr<ChangeEvent>> slots_;
  size_t next_ = 0;
};

}  // namespace agentstore::internal
