// Row<T>: one record as returned by the engine: an owned copy of its FlatBuffers bytes
// (the same bytes as stored), read through the generated accessors at no decode cost.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "agentstore/common/uuid.h"
#include "agentstore/schema/records_generated.h"

namespace agentstore {

template <typename T>
class Row {
 public:
  Row() = default;
  explicit Row(std::string_view bytes) : bytes_(bytes) {}

  const T* get() const { return flatbuffers::GetRoot<T>(bytes_.data()); }
  const T* operator->() const { return get(); }
  const T& operator*() const { return *get(); }
  // The record's encoded bytes (a FlatBuffers buffer with T as root).
  std::string_view bytes() const { return bytes_; }
  // A mutable copy in the generated object form (e.g. fb::UserT).
  typename T::NativeTableType Unpack() const {
    typename T::NativeTableType out;
    get()->UnPackTo(&out);
    return out;
  }

 private:
  std::string bytes_;
};

// A page of an ordered listing. `next_cursor` is empty when there is nothing more;
// otherwise passing it back continues after the last row.
template <typename T>
struct Page {
  std::vector<Row<T>> rows;
  std::string next_cursor;
};

// Read helpers for generated accessors, which return nullptr for absent fields.
inline std::string_view Str(const flatbuffers::String* s) {
  return s ? std::string_view(s->data(), s->size()) : std::string_view();
}
inline Uuid ToUuid(const fb::Uuid* u) { return u ? Uuid::FromBytes(u->b()->data()) : Uuid(); }
inline fb::Uuid ToFb(const Uuid& u) {
  return fb::Uuid(flatbuffers::span<const uint8_t, 16>(u.bytes.data(), 16));
}

}  // namespace agentstore
