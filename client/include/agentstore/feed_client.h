// agentstore change feed, client side: follow the store's changes as they commit.
//
//   agentstore::SubscribeFilter f;
//   f.types = {agentstore::RecordType::kMessage};
//   auto sub = client->Subscribe(f, last_seen,                 // nullopt: from now
//       [](const agentstore::FeedChange& c) { ... });          // on its own thread
//   ... sub->last_sequence() is the resume point to keep
//
// Each subscription resumes by itself: after a dropped connection, a server restart, or
// the server cutting it off for falling behind, it subscribes again from the last sequence
// it delivered, so the callback sees every change once, in commit order. It stops for good
// (on_end) only when the server refuses: out_of_range (the sequence is older than what the
// store keeps; the message names the oldest), permission_denied (key revoked, user
// deleted), invalid_argument.
//
// Connections: Client::Subscribe gives a subscription a connection and thread of its own.
// An app server following many users (one subscription per open screen) multiplexes them
// instead: a FeedChannel carries up to 1024 subscriptions on one connection and one thread,
// which is what keeps a thousand subscribers cheap for the server and the host (one push
// frame write per connection per group commit, not one per subscriber).
//
//   auto channel = agentstore::FeedChannel::Open(options);      // dials, authenticates
//   auto sub = (*channel)->Subscribe(filter, std::nullopt, on_change);
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agentstore/common/query.h"
#include "agentstore/common/status.h"
#include "agentstore/common/uuid.h"

namespace agentstore {

struct ClientOptions;
class FeedChannel;
namespace internal {
struct FeedChannelCore;
}

enum class FeedOp : uint8_t { kCreate = 1, kUpdate = 2, kDelete = 3 };

// One change, as the server pushed it.
struct FeedChange {
  uint64_t sequence = 0;
  int64_t commit_time = 0;  // micros
  FeedOp op = FeedOp::kCreate;
  RecordType type = RecordType::kUser;  // kCollectionRecordType: a collection's record
  Uuid id, user, tenant;                // nil when the record has none
  std::string key;                      // storage key (type byte + key bytes)
  std::string record;  // FlatBuffers bytes rooted at the record type; empty for a delete
  // A collection's record (type kCollectionRecordType; `record` is empty): which
  // collection, the record's key as GetRecord / DeleteRecord take it (a JSON object), and
  // the record after the change as GetRecord answers it (JSON; empty for a hard delete).
  std::string collection;
  std::string record_key;
  std::string json;
};

// What to follow. A user key is narrowed by the server to what its user may read.
struct SubscribeFilter {
  // Built-in record types, and kCollectionRecordType for every collection's records.
  std::vector<RecordType> types;
  // Records of these collections (declared ones; an unknown name is refused, not_found).
  std::vector<std::string> collections;
  // types and collections both empty: everything the feed carries. Unset: any owner.
  std::optional<Uuid> user;
  std::optional<Uuid> tenant;
};

// One subscription: on a connection of its own (Start, Client::Subscribe) or on a
// FeedChannel's shared one.
class FeedSubscription {
 public:
  using Callback = std::function<void(const FeedChange&)>;
  using EndCallback = std::function<void(const Status&)>;

  // Dials, subscribes and waits for the server's answer; a refusal (out_of_range, ...) is
  // returned here. `act_as`: a service key following one user's records by its rules.
  static Result<std::unique_ptr<FeedSubscription>> Start(
      const ClientOptions& options, const SubscribeFilter& filter, std::optional<uint64_t> after,
      Callback on_change, EndCallback on_end = nullptr, std::optional<Uuid> act_as = {});
  // Stops: no callback runs once it returns. Not from inside a callback of its channel.
  ~FeedSubscription();
  void Stop();

  // The sequence of the last change delivered (or where it started): resume from here.
  uint64_t last_sequence() const;
  // How many times it re-subscribed after a drop or a cut-off.
  uint64_t resumes() const;
  // OK while running; the reason once it stopped for good.
  Status status() const;
  bool running() const;

  struct State;

 private:
  friend class FeedChannel;
  FeedSubscription() = default;
  std::shared_ptr<State> state_;
  std::weak_ptr<internal::FeedChannelCore> channel_;
  std::unique_ptr<FeedChannel> own_channel_;  // set when it has a connection of its own
};

// Up to kMaxSubscriptions subscriptions on one connection, their callbacks run one at a
// time on the channel's one thread (a slow callback delays the others on the channel).
// After a drop it re-dials with back-off and resubscribes each from its own last sequence.
class FeedChannel {
 public:
  static constexpr size_t kMaxSubscriptions = 1024;  // the server's limit per connection

  // Dials and authenticates; an unreachable server or a refused key is returned here.
  static Result<std::unique_ptr<FeedChannel>> Open(const ClientOptions& options);
  // Closes the connection: subscriptions still held stop (status unavailable).
  ~FeedChannel();

  // Subscribes and waits for the server's answer (up to the options' timeout); a refusal
  // is returned here, as is resource_exhausted past kMaxSubscriptions.
  Result<std::unique_ptr<FeedSubscription>> Subscribe(
      const SubscribeFilter& filter, std::optional<uint64_t> after,
      FeedSubscription::Callback on_change, FeedSubscription::EndCallback on_end = nullptr,
      std::optional<Uuid> act_as = {});
  // Subscriptions running on it.
  size_t size() const;

 private:
  FeedChannel() = default;
  std::shared_ptr<internal::FeedChannelCore> core_;
};

}  // namespace agentstore
