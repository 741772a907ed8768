// Collections: run-time declared record types (engine/src/collections.h has the store).
// This header holds the request shapes the engine, the protocol and the client share.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace agentstore {

// A query over one collection through one of its indexes. `where` is a JSON object:
// equality on a prefix of the index's fields ({"user_id": "…"}), optionally followed by
// a range on the next field ({"created_at": {"gte": 1, "lt": 9}}). Results come in index
// order (descending with `desc`); a user scope only ever sees its own records.
struct CollectionQuery {
  std::string collection;
  std::string index;  // empty: the primary key
  std::string where = "{}";
  bool desc = false;
  uint32_t limit = 50;  // 1..1000 (ignored by count)
  std::string cursor;   // from the previous page's next_cursor
  bool include_deleted = false;
};

// Records as JSON objects (system fields id, created_at, updated_at, deleted_at included).
struct CollectionPage {
  std::vector<std::string> records;
  std::string next_cursor;  // empty on the last page
};

}  // namespace agentstore
