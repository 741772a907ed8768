// Encodes change events and subscription ends as push frames (see feed_push.h).
#include "feed_push.h"

#include <algorithm>

#include "agentstore/net/frame.h"
#include "protocol_generated.h"

namespace agentstore::net {
namespace {

// A push frame stays well under the client's default frame limit (16 MiB).
constexpr size_t kMaxEventsPerFrame = 512;
constexpr size_t kMaxFrameBytes = 1u << 20;

void EncodeChanges(uint64_t id, const std::vector<Subscription::Event>& events,
                   flatbuffers::FlatBufferBuilder& fbb) {
  fbb.Clear();
  thread_local std::vector<flatbuffers::Offset<proto::Change>> items;  // no allocation per frame
  items.clear();
  for (const auto& ev : events) {
    auto key = fbb.CreateVector(reinterpret_cast<const uint8_t*>(ev->key.data()), ev->key.size());
    flatbuffers::Offset<flatbuffers::Vector<uint8_t>> record;
    if (!ev->bytes.empty()) {
      // 8-aligned so a client may read the record in place.
      fbb.ForceVectorAlignment(ev->bytes.size(), 1, 8);
      record =
          fbb.CreateVector(reinterpret_cast<const uint8_t*>(ev->bytes.data()), ev->bytes.size());
    }
    flatbuffers::Offset<flatbuffers::String> collection, record_key, json;
    if (!ev->collection.empty()) {
      collection = fbb.CreateString(ev->collection);
      record_key = fbb.CreateString(ev->record_key);
      if (!ev->json.empty()) json = fbb.CreateString(ev->json);
    }
    fb::Uuid rid = ToFb(ev->id), user = ToFb(ev->user), tenant = ToFb(ev->tenant);
    proto::ChangeBuilder b(fbb);
    b.add_sequence(ev->sequence);
    b.add_commit_time(ev->commit_time);
    b.add_op(static_cast<proto::ChangeOp>(ev->op));
    b.add_type(static_cast<uint8_t>(ev->type));
    b.add_id(&rid);
    if (!ev->user.IsNil()) b.add_user_id(&user);
    if (!ev->tenant.IsNil()) b.add_tenant_id(&tenant);
    b.add_key(key);
    if (!ev->bytes.empty()) b.add_record(record);
    if (!ev->collection.empty()) {
      b.add_collection(collection);
      b.add_record_key(record_key);
      if (!ev->json.empty()) b.add_json(json);
    }
    items.push_back(b.Finish());
  }
  auto vec = fbb.CreateVector(items);
  auto changes = proto::CreateChanges(fbb, vec);
  proto::ResponseBuilder r(fbb);
  r.add_id(id);
  r.add_kind(proto::FrameKind::event);
  r.add_result_type(proto::Result::Changes);
  r.add_result(changes.Union());
  fbb.Finish(r.Finish());
}

void EncodeEnd(uint64_t id, const Status& why, uint64_t resume_point,
               flatbuffers::FlatBufferBuilder& fbb) {
  fbb.Clear();
  auto msg = why.ok() ? 0 : fbb.CreateString(why.message());
  auto pos = proto::CreateFeedPosition(fbb, resume_point);
  proto::ResponseBuilder r(fbb);
  r.add_id(id);
  r.add_kind(proto::FrameKind::end);
  r.add_code(static_cast<proto::ErrorCode>(why.code()));
  if (!why.ok()) r.add_message(msg);
  r.add_result_type(proto::Result::FeedPosition);
  r.add_result(pos.Union());
  fbb.Finish(r.Finish());
}

}  // namespace

size_t DrainSubscriptions(Session& session, size_t max_bytes,
                          const std::function<void(flatbuffers::FlatBufferBuilder&)>& emit) {
  thread_local flatbuffers::FlatBufferBuilder fbb(64 << 10);
  auto& todo = session.to_drain;
  {
    std::lock_guard lock(session.feed_ready->mu);
    todo.insert(todo.end(), session.feed_ready->ids.begin(), session.feed_ready->ids.end());
    session.feed_ready->ids.clear();
  }
  std::sort(todo.begin(), todo.end());
  todo.erase(std::unique(todo.begin(), todo.end()), todo.end());
  size_t emitted = 0, done = 0;  // todo[0, done) drained: empty, or ended and dropped
  thread_local std::vector<Subscription::Event> events;  // no allocation per drain
  for (; done < todo.size(); ++done) {
    auto it = session.subscriptions.find(todo[done]);
    if (it == session.subscriptions.end()) continue;  // ended before
    auto& [id, sub] = *it;
    bool drained = false;
    while (emitted < max_bytes) {
      events.clear();
      // One lock per frame: the frame stays under its byte budget (its events' sizes
      // plus ~96 bytes of framing each).
      auto got = sub->Drain(&events, kMaxEventsPerFrame, kMaxFrameBytes - kMaxEventsPerFrame * 96);
      if (got.events > 0) {
        EncodeChanges(id, events, fbb);
        emit(fbb);
        emitted += kFrameHeaderBytes + fbb.GetSize();
        if (got.more) continue;
      }
      // Empty now: the feed wakes the connection again with the next event or the end.
      if (got.finished) {
        EncodeEnd(id, sub->end_status(), sub->resume_point(), fbb);
        emit(fbb);
        emitted += kFrameHeaderBytes + fbb.GetSize();
        session.subscriptions.erase(it);
      }
      drained = true;
      break;
    }
    if (!drained) break;  // out of budget: it and the rest wait for the next call
  }
  todo.erase(todo.begin(), todo.begin() + static_cast<std::ptrdiff_t>(done));
  events.clear();  // the events' last references go now, not at the next drain
  return emitted;
}

void CancelSubscriptions(Session& session) {
  for (auto& [id, sub] : session.subscriptions) sub->Cancel();
  session.subscriptions.clear();
}

}  // namespace agentstore::net
