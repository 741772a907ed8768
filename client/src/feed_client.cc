// The change feed's client side (feed_client.h). A FeedChannel owns one connection and a
// reader thread; each FeedSubscription on it is a State the thread routes push frames to by
// the request id of its current subscribe. A subscription of its own (Start) is a channel
// carrying just it.
//
// Threads: the reader thread connects, reads and runs callbacks; callers' threads write
// subscribe / unsubscribe frames. Writes go through the socket's descriptor under
// `write_mu` (the reader never writes through asio), and the reader closes a socket only
// while holding `mu` and `write_mu`, so a writer never sends on a descriptor being reused.
// Lock order: mu, then write_mu, then a State's cb_mu is never taken under either.
#include "agentstore/feed_client.h"

#include <sys/socket.h>

#include <atomic>
#include <boost/asio.hpp>
#include <condition_variable>
#include <cstring>
#include <future>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "agentstore/client.h"
#include "agentstore/common/row.h"
#include "agentstore/net/frame.h"
#include "protocol_generated.h"

namespace agentstore {

static_assert(FeedChannel::kMaxSubscriptions == net::kMaxSubscriptionsPerConnection,
              "a FeedChannel holds what the server allows one connection");

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

constexpr uint64_t kAuthId = 1;
constexpr size_t kReadBufferBytes = 64 << 10;

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

// Appends one length-prefixed frame to `out`.
void AppendFrame(const flatbuffers::FlatBufferBuilder& fbb, std::string* out) {
  uint8_t len[4];
  net::EncodeFrameLength(static_cast<uint32_t>(fbb.GetSize()), len);
  out->append(reinterpret_cast<const char*>(len), 4);
  out->append(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
}

bool SendAll(int fd, const std::string& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;  // the reader sees the drop and resubscribes everything
    off += static_cast<size_t>(n);
  }
  return true;
}

void FillChange(const proto::Change* c, FeedChange* change) {
  change->sequence = c->sequence();
  change->commit_time = c->commit_time();
  change->op = static_cast<FeedOp>(c->op());
  change->type = static_cast<RecordType>(c->type());
  change->id = ToUuid(c->id());
  change->user = ToUuid(c->user_id());
  change->tenant = ToUuid(c->tenant_id());
  change->key.assign(c->key() ? reinterpret_cast<const char*>(c->key()->data()) : "",
                     c->key() ? c->key()->size() : 0);
  change->record.assign(c->record() ? reinterpret_cast<const char*>(c->record()->data()) : "",
                        c->record() ? c->record()->size() : 0);
  auto text = [](const flatbuffers::String* t, std::string* out) {
    if (t)
      out->assign(t->data(), t->size());
    else
      out->clear();
  };
  text(c->collection(), &change->collection);
  text(c->record_key(), &change->record_key);
  text(c->json(), &change->json);
}

}  // namespace

struct FeedSubscription::State {
  SubscribeFilter filter;
  std::optional<Uuid> act_as;
  Callback on_change;
  EndCallback on_end;

  std::atomic<uint64_t> last{0};
  std::atomic<uint64_t> resumes{0};
  std::atomic<bool> running{true};

  // Guarded by the channel's mu.
  bool from_now = false;    // the first subscribe only: start at the latest durable change
  bool answered = false;    // the server accepted a subscribe of it once
  uint64_t request_id = 0;  // of its current subscribe on the current connection; 0: none
  std::optional<std::promise<Status>> started;  // the first subscribe's answer
  mutable std::mutex status_mu;
  Status status;  // guarded by status_mu: why it stopped

  // Held while its callbacks run; Stop takes it to wait out a running callback.
  std::mutex cb_mu;
  bool active = true;  // guarded by cb_mu
};

namespace internal {

struct FeedChannelCore {
  using State = FeedSubscription::State;

  ClientOptions options;

  mutable std::mutex mu;
  std::condition_variable cv;  // Close wakes the back-off sleep
  bool stopping = false;
  int fd = -1;  // the live connection's descriptor, for writers and shutdown; -1: none
  uint64_t next_id = kAuthId + 1;  // request ids are never reused on a channel
  // Hashed: every pushed frame looks its subscription up (a tree walk of a thousand was
  // most of OnFrame's time in perf).
  std::unordered_map<uint64_t, std::shared_ptr<State>> by_request;
  std::vector<std::shared_ptr<State>> subs;    // running subscriptions
  std::optional<std::promise<Status>> opened;  // the first connection's authentication
  std::mutex write_mu;
  std::thread thread;

  ~FeedChannelCore() { Close(Status::Unavailable("feed channel closed")); }

  // ---- frames ----

  static void EncodeSubscribe(const State& s, uint64_t id, std::optional<uint64_t> after,
                              flatbuffers::FlatBufferBuilder& fbb) {
    fbb.Clear();
    std::vector<uint8_t> types;
    for (RecordType t : s.filter.types) types.push_back(static_cast<uint8_t>(t));
    auto types_off = types.empty() ? 0 : fbb.CreateVector(types);
    auto colls_off =
        s.filter.collections.empty() ? 0 : fbb.CreateVectorOfStrings(s.filter.collections);
    fb::Uuid user = ToFb(s.filter.user.value_or(Uuid())),
             tenant = ToFb(s.filter.tenant.value_or(Uuid()));
    auto args = proto::CreateSubscribeArgs(fbb, types_off, s.filter.user ? &user : nullptr,
                                           s.filter.tenant ? &tenant : nullptr, after.value_or(0),
                                           !after.has_value(), colls_off);
    fb::Uuid as = ToFb(s.act_as.value_or(Uuid()));
    fbb.Finish(proto::CreateRequest(fbb, id, proto::Op::subscribe, s.act_as ? &as : nullptr,
                                    proto::Args::SubscribeArgs, args.Union()));
  }

  // Gives `s` a fresh request id and appends its subscribe to `out`. Under mu.
  void QueueSubscribe(const std::shared_ptr<State>& s, std::string* out) {
    if (s->request_id) by_request.erase(s->request_id);
    s->request_id = next_id++;
    by_request[s->request_id] = s;
    std::optional<uint64_t> after;
    if (s->answered || !s->from_now) after = s->last.load();
    flatbuffers::FlatBufferBuilder fbb(256);
    EncodeSubscribe(*s, s->request_id, after, fbb);
    AppendFrame(fbb, out);
  }

  // Sends `bytes` on the live connection, if any. Called with `lock` (on mu) held; it is
  // released once write_mu is taken, so the reader keeps routing frames meanwhile.
  void Send(std::unique_lock<std::mutex>& lock, const std::string& bytes) {
    if (bytes.empty() || fd < 0) return;
    std::lock_guard w(write_mu);
    int target = fd;
    lock.unlock();
    SendAll(target, bytes);
    lock.lock();
  }

  // ---- subscriptions ----

  Result<std::shared_ptr<State>> Add(std::shared_ptr<State> s, std::optional<uint64_t> after) {
    if (after) s->last.store(*after);
    s->from_now = !after.has_value();
    s->started.emplace();
    auto answer = s->started->get_future();
    {
      std::unique_lock lock(mu);
      if (stopping) return Status::Unavailable("feed channel closed");
      if (subs.size() >= FeedChannel::kMaxSubscriptions)
        return Status::ResourceExhausted("at most " +
                                         std::to_string(FeedChannel::kMaxSubscriptions) +
                                         " subscriptions on a feed channel");
      subs.push_back(s);
      // Not connected: the reader sends it with the others once it is.
      if (fd >= 0) {
        std::string frame;
        QueueSubscribe(s, &frame);
        Send(lock, frame);
      }
    }
    if (answer.wait_for(options.timeout) != std::future_status::ready) {
      Remove(s, Status::Unavailable("no answer to subscribe in time"));
      return Status::Unavailable("no answer to subscribe in time");
    }
    Status st = answer.get();
    if (!st.ok()) return st;
    return s;
  }

  // Takes `s` off the channel (no callback of it runs once this returns) and unsubscribes
  // it on the server. Not from the reader thread's callbacks.
  void Remove(const std::shared_ptr<State>& s, const Status& why) {
    {
      std::lock_guard cb(s->cb_mu);
      s->active = false;
    }
    std::unique_lock lock(mu);
    // Detach forgets the request id, which the unsubscribe names: without it the
    // subscription would stay open on the server until the connection closed.
    uint64_t request_id = s->request_id;
    Detach(s, why);
    if (request_id && fd >= 0) {
      flatbuffers::FlatBufferBuilder fbb(128);
      auto args = proto::CreateUnsubscribeArgs(fbb, request_id);
      fbb.Finish(proto::CreateRequest(fbb, next_id++, proto::Op::unsubscribe, nullptr,
                                      proto::Args::UnsubscribeArgs, args.Union()));
      std::string frame;
      AppendFrame(fbb, &frame);
      Send(lock, frame);
    }
  }

  // Marks `s` stopped and forgets it (its later frames are ignored). Under mu.
  void Detach(const std::shared_ptr<State>& s, const Status& why) {
    {
      std::lock_guard st(s->status_mu);
      if (s->running.load()) s->status = why;
      s->running.store(false);
    }
    std::erase(subs, s);
    if (s->request_id) by_request.erase(s->request_id);
    s->request_id = 0;
    if (s->started) {
      s->started->set_value(why);
      s->started.reset();
    }
  }

  // Ends `s` for good on the server's refusal and tells its on_end. Reader thread.
  void End(const std::shared_ptr<State>& s, const Status& why) {
    bool told;
    {
      std::lock_guard lock(mu);
      told = s->started.has_value();  // its Subscribe call returns the refusal instead
      Detach(s, why);
    }
    std::lock_guard cb(s->cb_mu);
    if (!s->active) return;
    s->active = false;
    if (!told && s->on_end) s->on_end(why);
  }

  // ---- the reader thread ----

  std::shared_ptr<State> Lookup(uint64_t id) {
    std::lock_guard lock(mu);
    auto it = by_request.find(id);
    return it == by_request.end() ? nullptr : it->second;
  }

  void Deliver(const std::shared_ptr<State>& s, const proto::Changes* changes, FeedChange* change) {
    if (!changes || !changes->items()) return;
    std::lock_guard cb(s->cb_mu);
    if (!s->active) return;
    for (const auto* c : *changes->items()) {
      // Never twice, even if a server resent what we had.
      if (c->sequence() <= s->last.load()) continue;
      FillChange(c, change);
      if (s->on_change) s->on_change(*change);
      s->last.store(c->sequence());
    }
  }

  // One frame from the server: routes it to its subscription. Returns why the connection
  // should end, or nothing to go on reading.
  std::optional<Status> OnFrame(const uint8_t* data, uint32_t n, FeedChange* change_buf) {
    FeedChange& change = *change_buf;
    flatbuffers::Verifier v(data, n, 32, 10'000'000);
    if (!v.VerifyBuffer<proto::Response>(nullptr))
      return Status::Corruption("malformed frame from server");
    const auto* r = flatbuffers::GetRoot<proto::Response>(data);
    if (r->id() == 0) return StatusOf(r);  // about the connection
    if (r->id() == kAuthId) {
      Status s = StatusOf(r);
      std::lock_guard lock(mu);
      if (opened) {
        opened->set_value(s);
        opened.reset();
      }
      if (!s.ok()) return s;
      return std::nullopt;
    }
    auto s = Lookup(r->id());
    if (!s) return std::nullopt;  // unsubscribed, or an unsubscribe's answer
    switch (r->kind()) {
      case proto::FrameKind::response: {
        Status st = StatusOf(r);
        if (!st.ok()) {
          // resource_exhausted here is the server refusing one more subscription (it holds
          // its most): this one ends (a Subscribe call returns it, a resubscription's
          // on_end says it), never the connection and the others it carries.
          if (Terminal(st) || st.code() == StatusCode::kResourceExhausted) {
            End(s, st);
            break;
          }
          return st;  // e.g. unavailable: a new connection resubscribes it
        }
        std::lock_guard lock(mu);
        if (const auto* pos = r->result_as_FeedPosition(); pos && !s->answered && s->from_now)
          s->last.store(pos->sequence());
        s->answered = true;
        if (s->started) {
          s->started->set_value(Status::OK());
          s->started.reset();
        }
        break;
      }
      case proto::FrameKind::event:
        Deliver(s, r->result_as_Changes(), &change);
        break;
      case proto::FrameKind::end: {
        Status st = StatusOf(r);
        // Everything up to the resume point that passes the filter came before this
        // frame, so the next subscription may start there.
        if (const auto* pos = r->result_as_FeedPosition(); pos && pos->sequence() > s->last.load())
          s->last.store(pos->sequence());
        if (Terminal(st)) {
          End(s, st);
          break;
        }
        if (st.code() == StatusCode::kUnavailable) return st;  // the server is stopping
        // Cut off for falling behind (or ended unasked): straight back in.
        std::unique_lock lock(mu);
        if (!s->running.load()) break;
        s->resumes.fetch_add(1);
        std::string frame;
        QueueSubscribe(s, &frame);
        Send(lock, frame);
        break;
      }
    }
    return std::nullopt;
  }

  // One connection: authenticate, (re)subscribe everything, route frames until it drops.
  Status RunOnce() {
    asio::io_context io;
    tcp::socket sock(io);
    // Close may shut the socket down from another thread; it must be forgotten (under mu
    // and write_mu) before it closes.
    struct Forget {
      FeedChannelCore* core;
      ~Forget() {
        std::lock_guard lock(core->mu);
        std::lock_guard w(core->write_mu);
        core->fd = -1;
        for (const auto& s : core->subs) s->request_id = 0;
        core->by_request.clear();
      }
    } forget{this};
    try {
      tcp::resolver resolver(io);
      asio::connect(sock, resolver.resolve(options.host, std::to_string(options.port)));
      sock.set_option(tcp::no_delay(true));
      std::string frames;
      flatbuffers::FlatBufferBuilder fbb(256);
      auto key = fbb.CreateString(options.key);
      fbb.Finish(proto::CreateRequest(fbb, kAuthId, proto::Op::authenticate, nullptr,
                                      proto::Args::AuthArgs,
                                      proto::CreateAuthArgs(fbb, key).Union()));
      AppendFrame(fbb, &frames);
      {
        std::unique_lock lock(mu);
        if (stopping) return Status::OK();
        fd = sock.native_handle();
        for (const auto& s : subs) {
          if (s->answered) s->resumes.fetch_add(1);
          QueueSubscribe(s, &frames);
        }
        Send(lock, frames);
      }

      // Frames are read into one buffer, many per read (pushes for several subscriptions
      // come in one write); a frame not 8-aligned there is copied out for FlatBuffers.
      std::vector<uint64_t> buf(kReadBufferBytes / 8), scratch;
      size_t begin = 0, end = 0;
      FeedChange change;
      while (true) {
        auto* base = reinterpret_cast<uint8_t*>(buf.data());
        while (end - begin >= 4) {
          uint32_t n = net::DecodeFrameLength(base + begin);
          if (n > options.max_frame_bytes) return Status::ResourceExhausted("push frame too large");
          if (end - begin - 4 < n) break;
          const uint8_t* data = base + begin + 4;
          if (reinterpret_cast<uintptr_t>(data) % 8) {
            scratch.resize((n + 7) / 8);
            std::memcpy(scratch.data(), data, n);
            data = reinterpret_cast<const uint8_t*>(scratch.data());
          }
          begin += 4 + n;
          if (auto done = OnFrame(data, n, &change)) return *done;
        }
        std::memmove(base, base + begin, end - begin);
        end -= begin;
        begin = 0;
        size_t need = end >= 4 ? 4 + size_t{net::DecodeFrameLength(base)} : 4;
        if (need > buf.size() * 8) {
          buf.resize((need + 7) / 8);
          base = reinterpret_cast<uint8_t*>(buf.data());
        }
        end += sock.read_some(asio::buffer(base + end, buf.size() * 8 - end));
      }
    } catch (const std::exception& e) {
      return Status::Unavailable(std::string("connection lost: ") + e.what());
    }
  }

  void Run() {
    auto backoff = std::chrono::milliseconds(20);
    while (true) {
      Status s = RunOnce();
      std::unique_lock lock(mu);
      if (stopping) return;
      if (opened) {  // the first connection failed: Open returns why
        opened->set_value(s.ok() ? Status::Unavailable("connection closed") : s);
        opened.reset();
        stopping = true;
        return;
      }
      if (Terminal(s)) {  // e.g. the key was revoked: every subscription ends
        auto all = subs;
        lock.unlock();
        for (const auto& sub : all) End(sub, s);
        lock.lock();
        stopping = true;
        return;
      }
      cv.wait_for(lock, backoff, [&] { return stopping; });
      if (stopping) return;
      backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
    }
  }

  void Close(const Status& why) {
    {
      std::lock_guard lock(mu);
      stopping = true;
      // The reader is blocked in a read on this socket: shut the descriptor down (a
      // system call, no asio state touched) to wake it.
      if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
      cv.notify_all();
    }
    if (thread.joinable() && thread.get_id() != std::this_thread::get_id()) thread.join();
    std::lock_guard lock(mu);
    for (const auto& s : std::vector(subs)) Detach(s, why);
  }
};

}  // namespace internal

// ---- FeedChannel ----

Result<std::unique_ptr<FeedChannel>> FeedChannel::Open(const ClientOptions& options) {
  std::unique_ptr<FeedChannel> ch(new FeedChannel());
  ch->core_ = std::make_shared<internal::FeedChannelCore>();
  internal::FeedChannelCore& core = *ch->core_;
  core.options = options;
  core.opened.emplace();
  auto answer = core.opened->get_future();
  core.thread = std::thread([&core] { core.Run(); });
  Status s = answer.get();
  if (!s.ok()) return s;
  return ch;
}

FeedChannel::~FeedChannel() {
  if (core_) core_->Close(Status::Unavailable("feed channel closed"));
}

Result<std::unique_ptr<FeedSubscription>> FeedChannel::Subscribe(
    const SubscribeFilter& filter, std::optional<uint64_t> after,
    FeedSubscription::Callback on_change, FeedSubscription::EndCallback on_end,
    std::optional<Uuid> act_as) {
  auto state = std::make_shared<FeedSubscription::State>();
  state->filter = filter;
  state->act_as = act_as;
  state->on_change = std::move(on_change);
  state->on_end = std::move(on_end);
  auto added = core_->Add(std::move(state), after);
  if (!added.ok()) return added.status();
  std::unique_ptr<FeedSubscription> sub(new FeedSubscription());
  sub->state_ = std::move(added).value();
  sub->channel_ = core_;
  return sub;
}

size_t FeedChannel::size() const {
  std::lock_guard lock(core_->mu);
  return core_->subs.size();
}

// ---- FeedSubscription ----

Result<std::unique_ptr<FeedSubscription>> FeedSubscription::Start(
    const ClientOptions& options, const SubscribeFilter& filter, std::optional<uint64_t> after,
    Callback on_change, EndCallback on_end, std::optional<Uuid> act_as) {
  AS_ASSIGN_OR_RETURN(auto channel, FeedChannel::Open(options));
  AS_ASSIGN_OR_RETURN(
      auto sub, channel->Subscribe(filter, after, std::move(on_change), std::move(on_end), act_as));
  sub->own_channel_ = std::move(channel);
  return sub;
}

FeedSubscription::~FeedSubscription() { Stop(); }

void FeedSubscription::Stop() {
  if (!state_) return;
  {
    std::lock_guard st(state_->status_mu);  // stopped by its holder: status stays OK
    state_->running.store(false);
  }
  if (own_channel_) {
    {
      std::lock_guard cb(state_->cb_mu);
      state_->active = false;
    }
    own_channel_.reset();  // closes the connection and joins its thread
  } else if (auto core = channel_.lock()) {
    core->Remove(state_, Status::OK());
  }
}

uint64_t FeedSubscription::last_sequence() const { return state_->last.load(); }
uint64_t FeedSubscription::resumes() const { return state_->resumes.load(); }
bool FeedSubscription::running() const { return state_->running.load(); }

Status FeedSubscription::status() const {
  std::lock_guard st(state_->status_mu);
  return state_->status;
}

}  // namespace agentstore
