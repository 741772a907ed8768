// FeedSubscription: a connection of its own that subscribes, reads push frames, runs the
// callback, and re-subscribes from the last delivered sequence whenever the connection
// drops or the server cuts it off (see feed_client.h).
#include "agentstore/feed_client.h"

#include <sys/socket.h>

#include <boost/asio.hpp>
#include <condition_variable>
#include <future>
#include <mutex>

#include "agentstore/client.h"
#include "agentstore/common/row.h"
#include "agentstore/net/frame.h"
#include "protocol_generated.h"

namespace agentstore {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

constexpr uint64_t kAuthId = 1, kSubscribeId = 2;

Status StatusOf(const proto::Response* r) {
  if (r->code() == proto::ErrorCode::ok) return Status::OK();
  auto code = static_cast<uint8_t>(r->code());
  if (code >= kStatusCodeCount) return Status::Corruption("unknown error code from server");
  return Status(static_cast<StatusCode>(code), r->message() ? r->message()->string_view() : "");
}

// Refusals that a retry cannot fix.
bool Terminal(const Status& s) {
  switch (s.code()) {
    case StatusCode::kOutOfRange:
    case StatusCode::kPermissionDenied:
    case StatusCode::kInvalidArgument:
    case StatusCode::kNotFound:
    case StatusCode::kNotImplemented:
      return true;
    default:
      return false;
  }
}

}  // namespace

struct FeedSubscription::Impl {
  FeedSubscription* owner = nullptr;
  ClientOptions options;
  SubscribeFilter filter;
  std::optional<Uuid> act_as;
  Callback on_change;
  EndCallback on_end;

  std::mutex mu;
  bool stopping = false;              // guarded by mu
  std::shared_ptr<tcp::socket> sock;  // guarded by mu: the live connection, to shut down
  Status final_status;                // guarded by mu
  std::thread thread;

  std::optional<std::promise<Status>> started;  // the first subscribe's answer

  void Report(const Status& s) {
    if (started) {
      started->set_value(s);
      started.reset();
    }
  }

  static void WriteFrame(tcp::socket& sock, flatbuffers::FlatBufferBuilder& fbb) {
    uint8_t len[4];
    net::EncodeFrameLength(static_cast<uint32_t>(fbb.GetSize()), len);
    asio::write(sock, std::array<asio::const_buffer, 2>{
                          asio::buffer(len), asio::buffer(fbb.GetBufferPointer(), fbb.GetSize())});
  }

  // One connection: authenticate, subscribe after `after`, deliver until it ends.
  Status RunOnce(std::optional<uint64_t> after) {
    asio::io_context io;
    auto sock = std::make_shared<tcp::socket>(io);
    // Stop may shut the socket down from another thread until this returns; the socket
    // must go before its io_context does.
    struct Forget {
      Impl* impl;
      ~Forget() {
        std::lock_guard lock(impl->mu);
        impl->sock.reset();
      }
    } forget{this};
    try {
      tcp::resolver resolver(io);
      asio::connect(*sock, resolver.resolve(options.host, std::to_string(options.port)));
      sock->set_option(tcp::no_delay(true));
      {
        std::lock_guard lock(mu);
        if (stopping) return Status::OK();
        this->sock = sock;
      }
      flatbuffers::FlatBufferBuilder fbb;
      auto key = fbb.CreateString(options.key);
      fbb.Finish(proto::CreateRequest(fbb, kAuthId, proto::Op::authenticate, nullptr,
                                      proto::Args::AuthArgs,
                                      proto::CreateAuthArgs(fbb, key).Union()));
      WriteFrame(*sock, fbb);
      fbb.Clear();
      std::vector<uint8_t> types;
      for (RecordType t : filter.types) types.push_back(static_cast<uint8_t>(t));
      auto types_off = types.empty() ? 0 : fbb.CreateVector(types);
      fb::Uuid user = ToFb(filter.user.value_or(Uuid())),
               tenant = ToFb(filter.tenant.value_or(Uuid()));
      auto args = proto::CreateSubscribeArgs(fbb, types_off, filter.user ? &user : nullptr,
                                             filter.tenant ? &tenant : nullptr, after.value_or(0),
                                             !after.has_value());
      fb::Uuid as = ToFb(act_as.value_or(Uuid()));
      fbb.Finish(proto::CreateRequest(fbb, kSubscribeId, proto::Op::subscribe,
                                      act_as ? &as : nullptr, proto::Args::SubscribeArgs,
                                      args.Union()));
      WriteFrame(*sock, fbb);

      std::vector<uint64_t> body;
      FeedChange change;
      while (true) {
        uint8_t header[4];
        asio::read(*sock, asio::buffer(header));
        uint32_t n = net::DecodeFrameLength(header);
        if (n > options.max_frame_bytes) return Status::ResourceExhausted("push frame too large");
        body.resize((n + 7) / 8);
        asio::read(*sock, asio::buffer(body.data(), n));
        const auto* data = reinterpret_cast<const uint8_t*>(body.data());
        flatbuffers::Verifier v(data, n, 32, 10'000'000);
        if (!v.VerifyBuffer<proto::Response>(nullptr))
          return Status::Corruption("malformed frame from server");
        const auto* r = flatbuffers::GetRoot<proto::Response>(data);
        if (r->id() == 0) return StatusOf(r);  // about the connection
        if (r->id() == kAuthId) {
          AS_RETURN_IF_ERROR(StatusOf(r));
          continue;
        }
        if (r->id() != kSubscribeId) continue;
        switch (r->kind()) {
          case proto::FrameKind::response: {
            Status s = StatusOf(r);
            if (!s.ok()) return s;
            if (const auto* pos = r->result_as_FeedPosition(); pos && !after)
              owner->last_.store(pos->sequence());
            Report(Status::OK());
            break;
          }
          case proto::FrameKind::event: {
            const auto* changes = r->result_as_Changes();
            if (!changes || !changes->items()) break;
            for (const auto* c : *changes->items()) {
              // Never twice, even if a server resent what we had.
              if (c->sequence() <= owner->last_.load()) continue;
              change.sequence = c->sequence();
              change.commit_time = c->commit_time();
              change.op = static_cast<FeedOp>(c->op());
              change.type = static_cast<RecordType>(c->type());
              change.id = ToUuid(c->id());
              change.user = ToUuid(c->user_id());
              change.tenant = ToUuid(c->tenant_id());
              change.key.assign(c->key() ? reinterpret_cast<const char*>(c->key()->data()) : "",
                                c->key() ? c->key()->size() : 0);
              change.record.assign(
                  c->record() ? reinterpret_cast<const char*>(c->record()->data()) : "",
                  c->record() ? c->record()->size() : 0);
              if (on_change) on_change(change);
              owner->last_.store(c->sequence());
            }
            break;
          }
          case proto::FrameKind::end: {
            Status s = StatusOf(r);
            // Everything up to the resume point that passes the filter came before this
            // frame, so the next subscription may start there.
            if (const auto* pos = r->result_as_FeedPosition();
                pos && pos->sequence() > owner->last_.load())
              owner->last_.store(pos->sequence());
            if (s.ok()) return Status::Unavailable("subscription ended by the server");
            return s;
          }
        }
      }
    } catch (const std::exception& e) {
      return Status::Unavailable(std::string("connection lost: ") + e.what());
    }
  }

  void Run(std::optional<uint64_t> after) {
    bool first = true;
    auto backoff = std::chrono::milliseconds(20);
    while (true) {
      Status s = RunOnce(first ? after : std::optional<uint64_t>(owner->last_.load()));
      {
        std::lock_guard lock(mu);
        if (stopping) break;
      }
      if (Terminal(s) || (first && started)) {
        // A refusal, or the first subscription never got going: stop for good.
        {
          std::lock_guard lock(mu);
          final_status = s.ok() ? Status::Unavailable("subscription ended") : s;
        }
        bool told = started.has_value();
        Report(final_status);
        owner->running_.store(false);
        if (!told && on_end) on_end(final_status);
        return;
      }
      first = false;
      owner->resumes_.fetch_add(1);
      // Cut off for falling behind: straight back. Connection trouble: back off.
      if (s.code() != StatusCode::kResourceExhausted) {
        std::unique_lock lock(mu);
        if (stopping) break;
        lock.unlock();
        std::this_thread::sleep_for(backoff);
        backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
      } else {
        backoff = std::chrono::milliseconds(20);
      }
    }
    owner->running_.store(false);
  }
};

Result<std::unique_ptr<FeedSubscription>> FeedSubscription::Start(
    const ClientOptions& options, const SubscribeFilter& filter, std::optional<uint64_t> after,
    Callback on_change, EndCallback on_end, std::optional<Uuid> act_as) {
  std::unique_ptr<FeedSubscription> sub(new FeedSubscription());
  sub->impl_ = std::make_unique<Impl>();
  Impl& impl = *sub->impl_;
  impl.owner = sub.get();
  impl.options = options;
  impl.filter = filter;
  impl.act_as = act_as;
  impl.on_change = std::move(on_change);
  impl.on_end = std::move(on_end);
  impl.started.emplace();
  auto answer = impl.started->get_future();
  if (after) sub->last_.store(*after);
  sub->running_.store(true);
  impl.thread = std::thread([&impl, after] { impl.Run(after); });
  Status s = answer.get();
  if (!s.ok()) {
    sub->Stop();
    return s;
  }
  return sub;
}

FeedSubscription::~FeedSubscription() { Stop(); }

void FeedSubscription::Stop() {
  if (!impl_) return;
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
    // The reader is blocked in a read on this socket: shut the descriptor down (a
    // system call, no asio state touched) to wake it.
    if (impl_->sock) ::shutdown(impl_->sock->native_handle(), SHUT_RDWR);
  }
  if (impl_->thread.joinable()) impl_->thread.join();
  running_.store(false);
}

Status FeedSubscription::status() const {
  std::lock_guard lock(impl_->mu);
  return impl_->final_status;
}

}  // namespace agentstore
