// agentstore change feed, client side: follow the store's changes as they commit.
//
//   agentstore::SubscribeFilter f;
//   f.types = {agentstore::RecordType::kMessage};
//   auto sub = client->Subscribe(f, last_seen,                 // nullopt: from now
//       [](const agentstore::FeedChange& c) { ... });          // on its own thread
//   ... sub->last_sequence() is the resume point to keep
//
// A FeedSubscription holds its own connection (pushes never mix with calls) and a thread
// that runs the callback. It resumes by itself: after a dropped connection, a server
// restart, or the server cutting it off for falling behind, it re-dials and subscribes
// again from the last sequence it delivered, so the callback sees every change once, in
// commit order. It stops for good (on_end) only when the server refuses: out_of_range
// (the sequence is older than what the store keeps; the message names the oldest),
// permission_denied (key revoked, user deleted), invalid_argument.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agentstore/common/query.h"
#include "agentstore/common/status.h"
#include "agentstore/common/uuid.h"

namespace agentstore {

struct ClientOptions;

enum class FeedOp : uint8_t { kCreate = 1, kUpdate = 2, kDelete = 3 };

// One change, as the server pushed it.
struct FeedChange {
  uint64_t sequence = 0;
  int64_t commit_time = 0;  // micros
  FeedOp op = FeedOp::kCreate;
  RecordType type = RecordType::kUser;
  Uuid id, user, tenant;  // nil when the record has none
  std::string key;        // storage key (type byte + key bytes)
  std::string record;     // FlatBuffers bytes rooted at the record type; empty for a delete
};

// Unset means any. A user key is narrowed to its own records by the server.
struct SubscribeFilter {
  std::vector<RecordType> types;
  std::optional<Uuid> user;
  std::optional<Uuid> tenant;
};

class FeedSubscription {
 public:
  using Callback = std::function<void(const FeedChange&)>;
  using EndCallback = std::function<void(const Status&)>;

  // Dials, subscribes and waits for the server's answer; a refusal (out_of_range, ...) is
  // returned here. `act_as`: a service key following one user's records by its rules.
  static Result<std::unique_ptr<FeedSubscription>> Start(
      const ClientOptions& options, const SubscribeFilter& filter, std::optional<uint64_t> after,
      Callback on_change, EndCallback on_end = nullptr, std::optional<Uuid> act_as = {});
  // Stops (unsubscribes, closes, joins). Not from inside the callback.
  ~FeedSubscription();
  void Stop();

  // The sequence of the last change delivered (or where it started): resume from here.
  uint64_t last_sequence() const { return last_.load(); }
  // How many times it re-subscribed after a drop or a cut-off.
  uint64_t resumes() const { return resumes_.load(); }
  // OK while running; the reason once it stopped for good.
  Status status() const;
  bool running() const { return running_.load(); }

  struct Impl;

 private:
  FeedSubscription() = default;
  std::atomic<uint64_t> last_{0};
  std::atomic<uint64_t> resumes_{0};
  std::atomic<bool> running_{false};
  std::unique_ptr<Impl> impl_;
};

}  // namespace agentstore
