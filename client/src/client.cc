// Client internals: connections (the calling thread writes its request and, in get(),
// reads the answers; responses matched to calls by request id), dialing with back-off
// and re-authentication, request encoding and response decoding (every response and
// every record in it is verified before use).
#include "agentstore/client.h"

#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <boost/asio.hpp>
#include <cerrno>
#include <cstring>
#include <thread>
#include <unordered_map>

#include "agentstore/net/frame.h"
#include "json_call.h"
#include "protocol_generated.h"

namespace agentstore {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

Status FromResponse(const proto::Response* r) {
  if (r->code() == proto::ErrorCode::ok) return Status::OK();
  auto code = static_cast<uint8_t>(r->code());
  if (code >= kStatusCodeCount) return Status::Corruption("unknown error code from server");
  return Status(static_cast<StatusCode>(code), r->message() ? r->message()->string_view() : "");
}

}  // namespace

// One socket generation: its calls in flight and its output buffer. A reconnect makes
// a new Link; a dead Link fails only its own calls. There is no reader thread on the
// request path: a caller waiting in get() takes the reader role (one at a time) and
// reads whatever answers arrived, completing every call they answer; the others wait
// for it and take over if their own answer was not among them. Writes are made by the
// calling thread (or by whichever thread is already writing: calls issued meanwhile join
// its next write). A background thread reads only while then() callbacks are waiting
// and nobody else reads. Answers are decoded under the reader role and callbacks run
// after it is released, so a callback may make calls and wait for them.
struct Link : internal::CallWaiter {
  // Decodes and stores the answer (or failure); returns a callback to run, if any.
  using Done = std::function<std::function<void()>(Status, const proto::Response*)>;

  asio::io_context io;  // dialing only
  std::unique_ptr<tcp::socket> sock;
  int fd = -1;  // sock's descriptor, in blocking mode with a receive timeout
  uint32_t max_frame_bytes = 0;
  std::mutex mu;                      // guards everything below but the reader's buffer
  std::condition_variable cv;         // callers waiting for the reader role or an answer
  std::condition_variable helper_cv;  // the helper: a callback is due and nobody reads
  std::unordered_map<uint64_t, Done> pending;
  std::vector<uint8_t> out;  // requests not yet written
  bool flushing = false;     // a thread is writing `out`
  bool reading = false;      // a thread holds the reader role
  bool dead = false;         // the socket failed or was shut down; no new calls
  Status failure;            // why it died
  int64_t callbacks_wanted = 0;
  std::thread helper;  // reads for callbacks when nobody waits in get()
  // The reader role's own: bytes read, [rstart, rend) not yet handled.
  std::vector<uint8_t> rbuf = std::vector<uint8_t>(64 << 10);
  size_t rstart = 0, rend = 0;
  std::vector<uint64_t> aligned;  // 8-aligned copy for frames at odd offsets

  ~Link() override {
    if (sock) {
      boost::system::error_code ec;
      sock->close(ec);
    }
  }

  // Marks the link dead and fails every call still waiting on it. Caller holds `lock`;
  // it is released while the calls' callbacks run, and held again on return.
  void Die(std::unique_lock<std::mutex>& lock, const Status& why) {
    if (!dead) {
      dead = true;
      failure = why;
      if (fd >= 0) ::shutdown(fd, SHUT_RDWR);  // wakes a blocked reader; the fd stays valid
    }
    helper_cv.notify_all();
    if (pending.empty()) {
      cv.notify_all();
      return;
    }
    std::unordered_map<uint64_t, Done> orphans;
    orphans.swap(pending);
    Status s = failure.ok() ? Status::Unavailable("connection lost") : failure;
    lock.unlock();
    std::vector<std::function<void()>> run;
    for (auto& [id, d] : orphans)
      if (auto f = d(s, nullptr)) run.push_back(std::move(f));
    orphans.clear();
    for (auto& f : run) f();
    lock.lock();
    cv.notify_all();
  }

  // Holding the reader role (and not `mu`): one receive, then every complete answer in
  // the buffer is decoded and stored; callbacks to run are appended to `run`. Returns
  // the failure that kills the link, if one did.
  Status ReadBatch(std::vector<std::function<void()>>& run) {
    if (rstart > 0) {
      std::memmove(rbuf.data(), rbuf.data() + rstart, rend - rstart);
      rend -= rstart;
      rstart = 0;
    }
    if (rend == rbuf.size()) rbuf.resize(rbuf.size() * 2);
    ssize_t n = ::recv(fd, rbuf.data() + rend, rbuf.size() - rend, 0);
    if (n == 0) return Status::Unavailable("connection lost: closed by the server");
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return Status::OK();
      return Status::Unavailable(std::string("connection lost: ") + std::strerror(errno));
    }
    rend += static_cast<size_t>(n);
    while (rend - rstart >= net::kFrameHeaderBytes) {
      uint32_t len = net::DecodeFrameLength(rbuf.data() + rstart);
      if (len > max_frame_bytes) return Status::ResourceExhausted("response frame too large");
      if (rend - rstart < net::kFrameHeaderBytes + len) {
        if (rbuf.size() - rstart < net::kFrameHeaderBytes + len)
          rbuf.resize(rstart + net::kFrameHeaderBytes + len);
        break;
      }
      const uint8_t* data = rbuf.data() + rstart + net::kFrameHeaderBytes;
      if (reinterpret_cast<uintptr_t>(data) % 8) {
        aligned.resize((len + 7) / 8 + 1);
        if (len > 0) std::memcpy(aligned.data(), data, len);
        data = reinterpret_cast<const uint8_t*>(aligned.data());
      }
      rstart += net::kFrameHeaderBytes + len;
      flatbuffers::Verifier v(data, len, 32, 1'000'000);
      if (!v.VerifyBuffer<proto::Response>(nullptr))
        return Status::Corruption("malformed response from server");
      const auto* r = flatbuffers::GetRoot<proto::Response>(data);
      if (r->id() == 0)  // about the connection, not a call: it is unusable now
        return FromResponse(r);
      Done d;
      {
        std::lock_guard lock(mu);
        auto it = pending.find(r->id());
        if (it == pending.end()) continue;  // the caller gave up waiting
        d = std::move(it->second);
        pending.erase(it);
      }
      if (auto f = d(Status::OK(), r)) run.push_back(std::move(f));
    }
    if (rstart == rend) {
      rstart = rend = 0;
      if (rbuf.size() > (1u << 20)) std::vector<uint8_t>(64 << 10).swap(rbuf);
    }
    return Status::OK();
  }

  // Takes the reader role for one receive. Caller holds `lock` and saw !reading.
  void ReadOnce(std::unique_lock<std::mutex>& lock) {
    reading = true;
    lock.unlock();
    std::vector<std::function<void()>> run;  // allocates only when callbacks are due
    Status s = ReadBatch(run);
    lock.lock();
    reading = false;
    if (!s.ok()) Die(lock, s);
    callbacks_wanted -= static_cast<int64_t>(run.size());
    if (callbacks_wanted < 0) callbacks_wanted = 0;
    ReleasedRole();
    if (!run.empty()) {
      lock.unlock();
      for (auto& f : run) f();
      lock.lock();
    }
  }

  void Await(const std::atomic<bool>& ready,
             std::chrono::steady_clock::time_point deadline) override {
    std::unique_lock lock(mu);
    while (!ready.load(std::memory_order_acquire)) {
      if (dead) {
        Die(lock, failure);  // fails whatever is left (ours included)
        return;
      }
      auto now = std::chrono::steady_clock::now();
      if (now >= deadline) return;
      if (!reading) {
        ReadOnce(lock);
      } else {
        cv.wait_until(lock, std::min(deadline, now + std::chrono::milliseconds(100)));
      }
    }
  }

  void WantCallback() override {
    std::lock_guard lock(mu);
    ++callbacks_wanted;
    if (!reading) helper_cv.notify_one();
  }

  // The reader role is free: a waiting caller may take it, or the helper if a callback
  // is due. (Separate condition variables: waking the helper on every answer would cost
  // a futex call and a context switch per request.)
  void ReleasedRole() {
    cv.notify_all();
    if (callbacks_wanted > 0) helper_cv.notify_one();
  }

  void HelperLoop() {
    std::unique_lock lock(mu);
    while (!dead) {
      helper_cv.wait(
          lock, [&] { return dead || (callbacks_wanted > 0 && !reading && !pending.empty()); });
      if (dead) break;
      ReadOnce(lock);
    }
    Die(lock, failure);
  }

  // Writes `out` until empty; other threads append meanwhile. Holds `lock` on entry and
  // exit, not while writing. When the socket takes no more (the server stopped reading
  // until its answers are read) this thread reads answers meanwhile, so a caller that
  // pipelines many calls before reading cannot deadlock against the server.
  // Callbacks of answers read meanwhile are appended to `later`, for the caller to run
  // once it holds no lock (a callback's own calls must not wait behind this write).
  void Flush(std::unique_lock<std::mutex>& lock, std::vector<std::function<void()>>& later) {
    flushing = true;
    std::vector<uint8_t> buf;
    while (!out.empty() && !dead) {
      buf.swap(out);
      lock.unlock();
      size_t off = 0;
      Status err;
      while (off < buf.size()) {
        ssize_t n = ::send(fd, buf.data() + off, buf.size() - off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
          off += static_cast<size_t>(n);
          continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
          lock.lock();
          bool dead_now = dead, can_read = !reading && !dead;
          if (can_read) reading = true;
          lock.unlock();
          if (dead_now) break;
          pollfd p{fd, static_cast<short>(POLLOUT | (can_read ? POLLIN : 0)), 0};
          ::poll(&p, 1, 100);
          if (can_read) {
            size_t before = later.size();
            Status s = (p.revents & POLLIN) ? ReadBatch(later) : Status::OK();
            lock.lock();
            reading = false;
            callbacks_wanted -= static_cast<int64_t>(later.size() - before);
            if (callbacks_wanted < 0) callbacks_wanted = 0;
            if (!s.ok()) Die(lock, s);
            ReleasedRole();
            lock.unlock();
          }
          continue;
        }
        err = Status::Unavailable(std::string("connection lost: ") + std::strerror(errno));
        break;
      }
      lock.lock();
      if (!err.ok()) Die(lock, err);
      buf.clear();
      // Keep the larger buffer for the next batch: steady pipelining allocates nothing.
      if (out.empty() && buf.capacity() > out.capacity() && buf.capacity() <= (1u << 20))
        buf.swap(out);
    }
    flushing = false;
    cv.notify_all();
  }
};

// A connection to the server that re-dials (and re-authenticates) when its socket
// fails. Thread-safe: requests from any thread are appended to the link's output buffer
// and written by whichever thread finds no write in progress, so concurrent and
// pipelined calls share syscalls.
class Connection {
 public:
  using Done = Link::Done;

  explicit Connection(const ClientOptions& options) : options_(options) {}
  ~Connection() {
    std::vector<std::shared_ptr<Link>> links;
    {
      std::lock_guard lock(mu_);
      closed_ = true;
      links.swap(links_);
    }
    for (auto& l : links) {
      {
        std::unique_lock lock(l->mu);
        l->Die(lock, Status::Unavailable("client is closed"));
      }
      if (!l->helper.joinable()) continue;
      if (l->helper.get_id() == std::this_thread::get_id())
        l->helper.detach();  // destroyed from a callback on the helper thread
      else
        l->helper.join();
    }
  }

  // Dials and authenticates if there is no live link (with back-off until
  // connect_timeout). Only one thread dials at a time; the others wait for its result.
  Result<std::shared_ptr<Link>> LiveLink() {
    std::lock_guard lock(mu_);
    if (closed_) return Status::Unavailable("client is closed");
    if (!links_.empty()) {
      auto& l = links_.back();
      std::lock_guard llock(l->mu);
      if (!l->dead) return l;
    }
    auto deadline = std::chrono::steady_clock::now() + options_.connect_timeout;
    auto backoff = std::chrono::milliseconds(10);
    Status last;
    while (true) {
      auto link = Dial();
      if (link.ok()) {
        Reap();
        links_.push_back(*link);
        return link;
      }
      last = link.status();
      if (last.code() == StatusCode::kPermissionDenied) return last;  // retrying won't help
      if (std::chrono::steady_clock::now() + backoff > deadline) break;
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
    }
    return Status::Unavailable("cannot reach agentstored at " + options_.host + ":" +
                               std::to_string(options_.port) + ": " + last.message());
  }

  // Registers the call and writes its frame (now, or as part of the write in progress).
  // Returns the link that reads its answer; null if the call already failed.
  std::shared_ptr<Link> Send(uint64_t id, const uint8_t* frame, size_t size, Done done) {
    auto link = LiveLink();
    if (!link.ok()) {
      if (auto f = done(link.status(), nullptr)) f();
      return nullptr;
    }
    Link& l = **link;
    std::unique_lock lock(l.mu);
    if (l.dead) {
      lock.unlock();
      if (auto f = done(Status::Unavailable("connection lost"), nullptr)) f();
      return nullptr;
    }
    l.pending[id] = std::move(done);
    l.out.insert(l.out.end(), frame, frame + size);
    if (!l.flushing) {
      std::vector<std::function<void()>> later;
      l.Flush(lock, later);
      lock.unlock();
      for (auto& f : later) f();
    }
    return *link;
  }

  const std::string& role() const { return role_; }

 private:
  Result<std::shared_ptr<Link>> Dial() {
    try {
      auto link = std::make_shared<Link>();
      link->max_frame_bytes = options_.max_frame_bytes;
      link->sock = std::make_unique<tcp::socket>(link->io);
      tcp::socket& sock = *link->sock;
      tcp::resolver resolver(link->io);
      auto endpoints = resolver.resolve(options_.host, std::to_string(options_.port));
      // Connect and authenticate within connect_timeout: a server that accepts and
      // never answers must not hang the caller.
      auto deadline = std::chrono::steady_clock::now() + options_.connect_timeout;
      auto run_until_done = [&](bool& done) -> Status {
        link->io.restart();
        while (!done) {
          auto left = deadline - std::chrono::steady_clock::now();
          if (left <= std::chrono::steady_clock::duration::zero() ||
              link->io.run_one_for(left) == 0) {
            boost::system::error_code ec;
            sock.close(ec);
            link->io.restart();
            link->io.run();  // let the cancelled operation finish
            return Status::Unavailable("no answer within connect_timeout");
          }
        }
        return Status::OK();
      };
      boost::system::error_code ec;
      bool done = false;
      asio::async_connect(sock, endpoints, [&](boost::system::error_code e, const tcp::endpoint&) {
        ec = e;
        done = true;
      });
      AS_RETURN_IF_ERROR(run_until_done(done));
      if (ec) return Status::Unavailable(ec.message());
      sock.set_option(tcp::no_delay(true));
      // Authenticate before anything else.
      flatbuffers::FlatBufferBuilder fbb;
      auto key = fbb.CreateString(options_.key);
      auto args = proto::CreateAuthArgs(fbb, key);
      fbb.Finish(proto::CreateRequest(fbb, 1, proto::Op::authenticate, nullptr,
                                      proto::Args::AuthArgs, args.Union()));
      uint8_t len[4];
      net::EncodeFrameLength(fbb.GetSize(), len);
      asio::write(sock,
                  std::array<asio::const_buffer, 2>{
                      asio::buffer(len), asio::buffer(fbb.GetBufferPointer(), fbb.GetSize())});
      uint8_t header[4];
      done = false;
      asio::async_read(sock, asio::buffer(header), [&](boost::system::error_code e, size_t) {
        ec = e;
        done = true;
      });
      AS_RETURN_IF_ERROR(run_until_done(done));
      if (ec) return Status::Unavailable(ec.message());
      uint32_t n = net::DecodeFrameLength(header);
      if (n > options_.max_frame_bytes)
        return Status::ResourceExhausted("response frame too large");
      std::vector<uint64_t> body((n + 7) / 8);
      done = false;
      asio::async_read(sock, asio::buffer(body.data(), n),
                       [&](boost::system::error_code e, size_t) {
                         ec = e;
                         done = true;
                       });
      AS_RETURN_IF_ERROR(run_until_done(done));
      if (ec) return Status::Unavailable(ec.message());
      const auto* data = reinterpret_cast<const uint8_t*>(body.data());
      flatbuffers::Verifier v(data, n, 32, 1'000'000);
      if (!v.VerifyBuffer<proto::Response>(nullptr))
        return Status::Corruption("malformed response from server");
      const auto* r = flatbuffers::GetRoot<proto::Response>(data);
      AS_RETURN_IF_ERROR(FromResponse(r));
      // The role is the key's: it cannot change across reconnects, so it is set once.
      if (const auto* auth = r->result_as_Authenticated(); auth && auth->role() && role_.empty())
        role_ = auth->role()->str();
      // From here on the link is read and written with plain blocking calls on the
      // descriptor (the receive timeout lets a waiting reader check its deadline).
      sock.native_non_blocking(false);
      link->fd = sock.native_handle();
      timeval tv{0, 100'000};
      ::setsockopt(link->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      link->helper = std::thread([link] { link->HelperLoop(); });  // holds it: see ~Connection
      return link;
    } catch (const std::exception& e) {
      return Status::Unavailable(e.what());
    }
  }

  // Forgets dead links, joining their helper threads (a dead link's helper returns at
  // once; calls still holding the link keep it alive).
  void Reap() {
    for (auto it = links_.begin(); it != links_.end();) {
      Link& l = **it;
      {
        std::unique_lock lock(l.mu);
        if (!l.dead) {
          ++it;
          continue;
        }
        l.helper_cv.notify_all();
      }
      if (l.helper.joinable()) {
        if (l.helper.get_id() == std::this_thread::get_id())
          l.helper.detach();
        else
          l.helper.join();
      }
      it = links_.erase(it);
    }
  }

  ClientOptions options_;
  std::mutex mu_;                             // guards links_, closed_; held while dialing
  std::vector<std::shared_ptr<Link>> links_;  // the last one is the live one
  bool closed_ = false;
  std::string role_;  // written once, at the first successful dial (under mu_)
};

struct Client::Impl {
  ClientOptions options;
  std::vector<std::unique_ptr<Connection>> conns;
  std::atomic<uint64_t> next_id{1};

  using Build = std::function<std::pair<proto::Args, flatbuffers::Offset<void>>(
      flatbuffers::FlatBufferBuilder&)>;

  template <typename T>
  Pending<T> Call(const std::optional<Uuid>& act_as, proto::Op op, const Build& build,
                  Result<T> (*decode)(const proto::Response*)) {
    auto state = std::make_shared<typename Pending<T>::State>();
    state->timeout = options.timeout;
    uint64_t id = next_id.fetch_add(1);
    thread_local flatbuffers::FlatBufferBuilder fbb(1024);
    fbb.Clear();
    proto::Args type = proto::Args::NONE;
    flatbuffers::Offset<void> args;
    if (build) std::tie(type, args) = build(fbb);
    fb::Uuid as;
    if (act_as) as = ToFb(*act_as);
    fbb.Finish(proto::CreateRequest(fbb, id, op, act_as ? &as : nullptr, type, args));
    thread_local std::vector<uint8_t> frame;
    frame.resize(net::kFrameHeaderBytes + fbb.GetSize());
    net::EncodeFrameLength(fbb.GetSize(), frame.data());
    std::memcpy(frame.data() + net::kFrameHeaderBytes, fbb.GetBufferPointer(), fbb.GetSize());
    // The pool: each thread keeps to one connection, so app threads do not share one.
    static std::atomic<uint64_t> next_thread{0};
    thread_local uint64_t thread_slot = next_thread.fetch_add(1);
    Connection& c = *conns[thread_slot % conns.size()];
    auto link =
        c.Send(id, frame.data(), frame.size(), [state, decode](Status s, const proto::Response* r) {
          if (!s.ok()) return state->Settle(std::move(s));
          Status code = FromResponse(r);
          if (!code.ok()) return state->Settle(std::move(code));
          return state->Settle(decode(r));
        });
    // get() reads from this link. (Set after the write: an answer read meanwhile by
    // another thread just finds the call ready.)
    if (link) {
      std::lock_guard lock(state->mu);
      state->waiter = std::move(link);
    }
    return Pending<T>(state);
  }
};

namespace {

template <typename R>
Result<Row<R>> VerifiedRow(const proto::Blob* b) {
  if (!b || !b->data()) return Status::Corruption("empty record in response");
  flatbuffers::Verifier v(b->data()->data(), b->data()->size());
  if (!v.VerifyBuffer<R>(nullptr)) return Status::Corruption("malformed record in response");
  return Row<R>(
      std::string_view(reinterpret_cast<const char*>(b->data()->data()), b->data()->size()));
}

template <typename R>
Result<std::vector<Row<R>>> DecodeRows(const proto::Response* r) {
  const auto* recs = r->result_as_Records();
  if (!recs) return Status::Corruption("response holds no records");
  std::vector<Row<R>> out;
  if (recs->items()) {
    out.reserve(recs->items()->size());
    for (const auto* b : *recs->items()) {
      AS_ASSIGN_OR_RETURN(auto row, VerifiedRow<R>(b));
      out.push_back(std::move(row));
    }
  }
  return out;
}

template <typename R>
Result<Row<R>> DecodeRow(const proto::Response* r) {
  AS_ASSIGN_OR_RETURN(auto rows, DecodeRows<R>(r));
  if (rows.empty()) return Status::Corruption("response holds no record");
  return std::move(rows[0]);
}

template <typename R>
Result<Page<R>> DecodePage(const proto::Response* r) {
  Page<R> page;
  AS_ASSIGN_OR_RETURN(page.rows, DecodeRows<R>(r));
  if (const auto* c = r->result_as_Records()->next_cursor()) page.next_cursor = c->str();
  return page;
}

Result<Done> DecodeDone(const proto::Response*) { return Done{}; }

Result<AppendResult> DecodeAppend(const proto::Response* r) {
  const auto* recs = r->result_as_Records();
  if (!recs || !recs->items() || recs->items()->size() != 2)
    return Status::Corruption("append answered without message and chat");
  AppendResult out;
  AS_ASSIGN_OR_RETURN(out.message, VerifiedRow<fb::Message>(recs->items()->Get(0)));
  AS_ASSIGN_OR_RETURN(out.chat, VerifiedRow<fb::Chat>(recs->items()->Get(1)));
  return out;
}

Result<NewKey> DecodeNewKey(const proto::Response* r) {
  const auto* k = r->result_as_NewKey();
  if (!k || !k->secret()) return Status::Corruption("key_create answered without a key");
  NewKey out;
  AS_ASSIGN_OR_RETURN(out.key, VerifiedRow<fb::ApiKey>(k->key()));
  out.secret = k->secret()->str();
  return out;
}

Result<ExportChunk> DecodeExport(const proto::Response* r) {
  const auto* recs = r->result_as_Records();
  if (!recs) return Status::Corruption("response holds no records");
  ExportChunk out;
  if (recs->items())
    for (const auto* b : *recs->items())
      if (b->data())
        out.records.emplace_back(reinterpret_cast<const char*>(b->data()->data()),
                                 b->data()->size());
  if (recs->next_cursor()) out.next_cursor = recs->next_cursor()->str();
  return out;
}

Result<ServerStatus> DecodeStatus(const proto::Response* r) {
  const auto* s = r->result_as_StatusInfo();
  if (!s) return Status::Corruption("status answered without status");
  ServerStatus out;
  auto str = [](const flatbuffers::String* x) { return x ? x->str() : std::string(); };
  out.version = str(s->version());
  out.uptime_ms = s->uptime_ms();
  out.durability = str(s->durability());
  if (s->records())
    for (const auto* c : *s->records()) out.records.push_back({str(c->name()), c->value()});
  out.memory_rss_bytes = s->memory_rss_bytes();
  out.arena_live_bytes = s->arena_live_bytes();
  out.arena_dead_bytes = s->arena_dead_bytes();
  out.connections = s->connections();
  out.operations_served = s->operations_served();
  out.wal_syncs = s->wal_syncs();
  if (s->ops())
    for (const auto* o : *s->ops())
      out.ops.push_back(
          {str(o->name()), o->calls(), o->errors(), o->p50_us(), o->p99_us(), o->max_us()});
  out.memory_dim = s->memory_dim();
  out.memory_metric = str(s->memory_metric());
  out.memory_global_indexed = s->memory_global_indexed();
  out.memory_global_pending = s->memory_global_pending();
  out.memory_users_on_graph = s->memory_users_on_graph();
  return out;
}

Result<std::vector<MemoryHit>> DecodeHits(const proto::Response* r) {
  const auto* h = r->result_as_MemoryHits();
  if (!h) return Status::Corruption("search answered without hits");
  size_t n = h->items() ? h->items()->size() : 0;
  if ((h->distances() ? h->distances()->size() : 0) != n ||
      (h->scores() ? h->scores()->size() : 0) != n)
    return Status::Corruption("search answer's hits and scores disagree");
  std::vector<MemoryHit> out(n);
  for (size_t i = 0; i < n; ++i) {
    AS_ASSIGN_OR_RETURN(out[i].memory, VerifiedRow<fb::UserMemory>(h->items()->Get(i)));
    out[i].distance = h->distances()->Get(i);
    out[i].score = h->scores()->Get(i);
  }
  return out;
}

// usage_expire, memory_prune.
Result<uint64_t> DecodeCount(const proto::Response* r) {
  const auto* c = r->result_as_CountResult();
  if (!c) return Status::Corruption("answer without a count");
  return c->value();
}

using Fbb = flatbuffers::FlatBufferBuilder;
using ArgsPair = std::pair<proto::Args, flatbuffers::Offset<void>>;

ArgsPair IdArgs(Fbb& fbb, const Uuid& id, DeleteMode mode = DeleteMode::kSoft) {
  fb::Uuid u = ToFb(id);
  return {
      proto::Args::IdArgs,
      proto::CreateIdArgs(
          fbb, &u, mode == DeleteMode::kHard ? proto::DeleteMode::hard : proto::DeleteMode::soft)
          .Union()};
}
ArgsPair KeyArgs(Fbb& fbb, std::string_view key) {
  return {proto::Args::KeyArgs, proto::CreateKeyArgs(fbb, fbb.CreateString(key)).Union()};
}
ArgsPair PatchArgs(Fbb& fbb, const Uuid& id, std::string_view patch, JsonMode mode) {
  fb::Uuid u = ToFb(id);
  auto p = fbb.CreateString(patch);
  return {proto::Args::PatchArgs,
          proto::CreatePatchArgs(fbb, &u, p, mode == JsonMode::kReplace).Union()};
}
ArgsPair PageArgs(Fbb& fbb, const Uuid* owner, uint32_t limit, const std::string& cursor,
                  bool include_deleted, bool from_end) {
  fb::Uuid u;
  if (owner) u = ToFb(*owner);
  auto c = cursor.empty() ? 0 : fbb.CreateString(cursor);
  return {proto::Args::PageArgs,
          proto::CreatePageArgs(fbb, owner ? &u : nullptr, limit, c, include_deleted, from_end)
              .Union()};
}
ArgsPair SearchArgs(Fbb& fbb, const MemoryQuery& q) {
  auto vec = fbb.CreateVector(q.vector);
  auto text = q.text.empty() ? 0 : fbb.CreateString(q.text);
  auto tags = q.tags.empty() ? 0 : fbb.CreateVectorOfStrings(q.tags);
  fb::Uuid user = ToFb(q.user);
  proto::MemorySearchArgsBuilder b(fbb);
  b.add_user(&user);
  b.add_vector(vec);
  if (!q.text.empty()) b.add_text(text);
  b.add_k(q.k);
  if (q.memory_type) b.add_memory_type(*q.memory_type);
  if (q.min_importance) b.add_min_importance(*q.min_importance);
  if (!q.tags.empty()) b.add_tags(tags);
  b.add_touch(q.touch);
  b.add_with_vectors(q.with_vectors);
  b.add_breadth(q.breadth);
  return {proto::Args::MemorySearchArgs, b.Finish().Union()};
}
ArgsPair MemoryGetArgs(Fbb& fbb, const Uuid* id, const Uuid* user, std::string_view key,
                       bool with_vector) {
  fb::Uuid i, u;
  if (id) i = ToFb(*id);
  if (user) u = ToFb(*user);
  auto k = user ? fbb.CreateString(key) : 0;
  return {proto::Args::MemoryGetArgs,
          proto::CreateMemoryGetArgs(fbb, id ? &i : nullptr, user ? &u : nullptr, k, with_vector)
              .Union()};
}

template <typename NT>
ArgsPair RecordArgs(Fbb& fbb, const NT& record) {
  using R = typename NT::TableType;
  // Copied to a local: the generated constant has no out-of-line definition, so binding
  // it to a reference (std::pair's constructor) fails to link without optimization.
  proto::Args type = proto::ArgsTraits<R>::enum_value;
  return {type, R::Pack(fbb, &record).Union()};
}

}  // namespace

Client::Client(std::shared_ptr<Impl> impl, std::optional<Uuid> act_as)
    : impl_(std::move(impl)), act_as_(act_as) {}

Result<Client> Client::Connect(const ClientOptions& options) {
  if (options.connections < 1) return Status::InvalidArgument("connections must be >= 1");
  auto impl = std::make_shared<Impl>();
  impl->options = options;
  for (int i = 0; i < options.connections; ++i) {
    impl->conns.push_back(std::make_unique<Connection>(options));
    AS_RETURN_IF_ERROR(impl->conns.back()->LiveLink().status());
  }
  return Client(std::move(impl), std::nullopt);
}

Client Client::ActingAs(const Uuid& user) const { return Client(impl_, user); }
const std::string& Client::role() const { return impl_->conns[0]->role(); }

#define AS_CALL(T, op, decode, ...) \
  impl_->Call<T>(                   \
      act_as_, proto::Op::op, [&](Fbb& fbb) -> ArgsPair { __VA_ARGS__ }, decode)
#define AS_CALL_NOARGS(T, op, decode) impl_->Call<T>(act_as_, proto::Op::op, nullptr, decode)

Pending<ServerStatus> Client::GetStatus() {
  return AS_CALL_NOARGS(ServerStatus, status, DecodeStatus);
}

// tenants
Pending<Row<fb::Tenant>> Client::CreateTenant(const fb::TenantT& t) {
  return AS_CALL(Row<fb::Tenant>, tenant_create, DecodeRow<fb::Tenant>, return RecordArgs(fbb, t););
}
Pending<Row<fb::Tenant>> Client::GetTenant(const Uuid& id) {
  return AS_CALL(Row<fb::Tenant>, tenant_get, DecodeRow<fb::Tenant>, return IdArgs(fbb, id););
}
Pending<Row<fb::Tenant>> Client::GetTenantBySlug(std::string_view slug) {
  return AS_CALL(Row<fb::Tenant>, tenant_get, DecodeRow<fb::Tenant>, return KeyArgs(fbb, slug););
}
Pending<Row<fb::Tenant>> Client::UpdateTenant(const Uuid& id, std::string_view patch, JsonMode m) {
  return AS_CALL(Row<fb::Tenant>, tenant_update, DecodeRow<fb::Tenant>,
                 return PatchArgs(fbb, id, patch, m););
}
Pending<Done> Client::DeleteTenant(const Uuid& id, DeleteMode mode) {
  return AS_CALL(Done, tenant_delete, DecodeDone, return IdArgs(fbb, id, mode););
}
Pending<Page<fb::Tenant>> Client::ListTenants(const PageRequest& p) {
  return AS_CALL(Page<fb::Tenant>, tenant_list, DecodePage<fb::Tenant>,
                 return PageArgs(fbb, nullptr, p.limit, p.cursor, p.include_deleted, false););
}

// users
Pending<Row<fb::User>> Client::CreateUser(const fb::UserT& u) {
  return AS_CALL(Row<fb::User>, user_create, DecodeRow<fb::User>, return RecordArgs(fbb, u););
}
Pending<Row<fb::User>> Client::GetUser(const Uuid& id) {
  return AS_CALL(Row<fb::User>, user_get, DecodeRow<fb::User>, return IdArgs(fbb, id););
}
Pending<Row<fb::User>> Client::GetUserByEmail(std::string_view email) {
  return AS_CALL(Row<fb::User>, user_get, DecodeRow<fb::User>, return KeyArgs(fbb, email););
}
Pending<Row<fb::User>> Client::UpdateUser(const Uuid& id, std::string_view patch, JsonMode m) {
  return AS_CALL(Row<fb::User>, user_update, DecodeRow<fb::User>,
                 return PatchArgs(fbb, id, patch, m););
}
Pending<Done> Client::DeleteUser(const Uuid& id, DeleteMode mode) {
  return AS_CALL(Done, user_delete, DecodeDone, return IdArgs(fbb, id, mode););
}
Pending<Page<fb::User>> Client::ListUsers(const PageRequest& p) {
  return AS_CALL(Page<fb::User>, user_list, DecodePage<fb::User>,
                 return PageArgs(fbb, nullptr, p.limit, p.cursor, p.include_deleted, false););
}

// agents
Pending<Row<fb::Agent>> Client::CreateAgent(const fb::AgentT& a) {
  return AS_CALL(Row<fb::Agent>, agent_create, DecodeRow<fb::Agent>, return RecordArgs(fbb, a););
}
Pending<Row<fb::Agent>> Client::GetAgent(const Uuid& id) {
  return AS_CALL(Row<fb::Agent>, agent_get, DecodeRow<fb::Agent>, return IdArgs(fbb, id););
}
Pending<Row<fb::Agent>> Client::UpdateAgent(const Uuid& id, std::string_view patch, JsonMode m) {
  return AS_CALL(Row<fb::Agent>, agent_update, DecodeRow<fb::Agent>,
                 return PatchArgs(fbb, id, patch, m););
}
Pending<Done> Client::DeleteAgent(const Uuid& id, DeleteMode mode) {
  return AS_CALL(Done, agent_delete, DecodeDone, return IdArgs(fbb, id, mode););
}
Pending<Page<fb::Agent>> Client::ListAgents(const PageRequest& p) {
  return AS_CALL(Page<fb::Agent>, agent_list, DecodePage<fb::Agent>,
                 return PageArgs(fbb, nullptr, p.limit, p.cursor, p.include_deleted, false););
}

// user_agents
Pending<Row<fb::UserAgent>> Client::CreateUserAgent(const fb::UserAgentT& ua) {
  return AS_CALL(Row<fb::UserAgent>, user_agent_create, DecodeRow<fb::UserAgent>,
                 return RecordArgs(fbb, ua););
}
Pending<Row<fb::UserAgent>> Client::GetUserAgent(const Uuid& id) {
  return AS_CALL(Row<fb::UserAgent>, user_agent_get, DecodeRow<fb::UserAgent>,
                 return IdArgs(fbb, id););
}
Pending<Row<fb::UserAgent>> Client::GetUserAgentFor(const Uuid& user, const Uuid& agent) {
  return AS_CALL(Row<fb::UserAgent>, user_agent_get, DecodeRow<fb::UserAgent>, {
    fb::Uuid a = ToFb(user), b = ToFb(agent);
    return ArgsPair{proto::Args::PairArgs, proto::CreatePairArgs(fbb, &a, &b).Union()};
  });
}
Pending<Row<fb::UserAgent>> Client::UpdateUserAgent(const Uuid& id, std::string_view patch,
                                                    JsonMode m) {
  return AS_CALL(Row<fb::UserAgent>, user_agent_update, DecodeRow<fb::UserAgent>,
                 return PatchArgs(fbb, id, patch, m););
}
Pending<Done> Client::DeleteUserAgent(const Uuid& id, DeleteMode mode) {
  return AS_CALL(Done, user_agent_delete, DecodeDone, return IdArgs(fbb, id, mode););
}
Pending<std::vector<Row<fb::UserAgent>>> Client::ListUserAgents(const Uuid& user,
                                                                const UserAgentFilter& f) {
  return AS_CALL(std::vector<Row<fb::UserAgent>>, user_agent_list, DecodeRows<fb::UserAgent>, {
    fb::Uuid u = ToFb(user);
    auto folder = f.folder ? fbb.CreateString(*f.folder) : 0;
    auto tag = f.tag ? fbb.CreateString(*f.tag) : 0;
    proto::UserAgentListArgsBuilder b(fbb);
    b.add_user(&u);
    if (f.folder) b.add_folder(folder);
    if (f.tag) b.add_tag(tag);
    if (f.favorite) b.add_favorite(*f.favorite);
    b.add_archived(f.archived);
    return ArgsPair{proto::Args::UserAgentListArgs, b.Finish().Union()};
  });
}

// chats, messages, votes
Pending<Row<fb::Chat>> Client::CreateChat(const fb::ChatT& c) {
  return AS_CALL(Row<fb::Chat>, chat_create, DecodeRow<fb::Chat>, return RecordArgs(fbb, c););
}
Pending<Row<fb::Chat>> Client::GetChat(const Uuid& id) {
  return AS_CALL(Row<fb::Chat>, chat_get, DecodeRow<fb::Chat>, return IdArgs(fbb, id););
}
Pending<Row<fb::Chat>> Client::UpdateChat(const Uuid& id, std::string_view patch, JsonMode m) {
  return AS_CALL(Row<fb::Chat>, chat_update, DecodeRow<fb::Chat>,
                 return PatchArgs(fbb, id, patch, m););
}
Pending<Done> Client::DeleteChat(const Uuid& id, DeleteMode mode) {
  return AS_CALL(Done, chat_delete, DecodeDone, return IdArgs(fbb, id, mode););
}
Pending<Page<fb::Chat>> Client::ListChats(const Uuid& user, const PageRequest& p) {
  return AS_CALL(Page<fb::Chat>, chat_list, DecodePage<fb::Chat>,
                 return PageArgs(fbb, &user, p.limit, p.cursor, p.include_deleted, false););
}
Pending<AppendResult> Client::AppendMessage(const fb::MessageT& m) {
  return AS_CALL(AppendResult, message_append, DecodeAppend, return RecordArgs(fbb, m););
}
Pending<Row<fb::Message>> Client::GetMessage(const Uuid& id) {
  return AS_CALL(Row<fb::Message>, message_get, DecodeRow<fb::Message>, return IdArgs(fbb, id););
}
Pending<Page<fb::Message>> Client::ListMessages(const Uuid& chat, const MessagePageRequest& p) {
  return AS_CALL(Page<fb::Message>, message_list, DecodePage<fb::Message>,
                 return PageArgs(fbb, &chat, p.limit, p.cursor, false, p.from_end););
}
Pending<Row<fb::Vote>> Client::Vote(const Uuid& chat, const Uuid& message, bool up) {
  return AS_CALL(Row<fb::Vote>, vote_put, DecodeRow<fb::Vote>, {
    fb::Uuid a = ToFb(chat), b = ToFb(message);
    return ArgsPair{proto::Args::PairArgs, proto::CreatePairArgs(fbb, &a, &b, up).Union()};
  });
}
Pending<std::vector<Row<fb::Vote>>> Client::ListVotes(const Uuid& chat) {
  return AS_CALL(std::vector<Row<fb::Vote>>, vote_list, DecodeRows<fb::Vote>,
                 return IdArgs(fbb, chat););
}

// admin_config
Pending<Row<fb::AdminConfig>> Client::PutAdminConfig(std::string_view key, std::string_view json) {
  return AS_CALL(Row<fb::AdminConfig>, admin_config_put, DecodeRow<fb::AdminConfig>, {
    auto k = fbb.CreateString(key);
    auto d = fbb.CreateString(json);
    return ArgsPair{proto::Args::ConfigArgs, proto::CreateConfigArgs(fbb, k, d).Union()};
  });
}
Pending<Row<fb::AdminConfig>> Client::GetAdminConfig(std::string_view key) {
  return AS_CALL(Row<fb::AdminConfig>, admin_config_get, DecodeRow<fb::AdminConfig>,
                 return KeyArgs(fbb, key););
}
Pending<std::vector<Row<fb::AdminConfig>>> Client::ListAdminConfig() {
  return AS_CALL_NOARGS(std::vector<Row<fb::AdminConfig>>, admin_config_list,
                        DecodeRows<fb::AdminConfig>);
}
Pending<Done> Client::DeleteAdminConfig(std::string_view key) {
  return AS_CALL(Done, admin_config_delete, DecodeDone, return KeyArgs(fbb, key););
}

// api keys
Pending<NewKey> Client::CreateApiKey(const fb::ApiKeyT& k) {
  return AS_CALL(NewKey, key_create, DecodeNewKey, return RecordArgs(fbb, k););
}
Pending<std::vector<Row<fb::ApiKey>>> Client::ListApiKeys() {
  return AS_CALL_NOARGS(std::vector<Row<fb::ApiKey>>, key_list, DecodeRows<fb::ApiKey>);
}
Pending<Done> Client::RevokeApiKey(const Uuid& id) {
  return AS_CALL(Done, key_revoke, DecodeDone, return IdArgs(fbb, id););
}

// user_memory
Pending<Row<fb::UserMemory>> Client::UpsertMemory(const fb::UserMemoryT& m) {
  return AS_CALL(Row<fb::UserMemory>, memory_upsert, DecodeRow<fb::UserMemory>,
                 return RecordArgs(fbb, m););
}
Pending<Row<fb::UserMemory>> Client::GetMemory(const Uuid& id, bool with_vector) {
  return AS_CALL(Row<fb::UserMemory>, memory_get, DecodeRow<fb::UserMemory>,
                 return MemoryGetArgs(fbb, &id, nullptr, {}, with_vector););
}
Pending<Row<fb::UserMemory>> Client::GetMemoryByKey(const Uuid& user, std::string_view key,
                                                    bool with_vector) {
  return AS_CALL(Row<fb::UserMemory>, memory_get, DecodeRow<fb::UserMemory>,
                 return MemoryGetArgs(fbb, nullptr, &user, key, with_vector););
}
Pending<Done> Client::DeleteMemory(const Uuid& id) {
  return AS_CALL(Done, memory_delete, DecodeDone, return IdArgs(fbb, id););
}
Pending<std::vector<MemoryHit>> Client::SearchMemories(const MemoryQuery& q) {
  return AS_CALL(std::vector<MemoryHit>, memory_search, DecodeHits, return SearchArgs(fbb, q););
}
Pending<std::vector<MemoryHit>> Client::HybridSearchMemories(const MemoryQuery& q) {
  return AS_CALL(std::vector<MemoryHit>, memory_hybrid_search, DecodeHits,
                 return SearchArgs(fbb, q););
}
Pending<std::vector<MemoryHit>> Client::GlobalSearchMemories(const MemoryQuery& q) {
  return AS_CALL(std::vector<MemoryHit>, memory_global_search, DecodeHits,
                 return SearchArgs(fbb, q););
}
Pending<uint64_t> Client::PruneMemories(const Uuid& user, uint32_t keep) {
  return AS_CALL(uint64_t, memory_prune, DecodeCount, {
    fb::Uuid u = ToFb(user);
    return ArgsPair{proto::Args::MemoryPruneArgs,
                    proto::CreateMemoryPruneArgs(fbb, &u, keep).Union()};
  });
}

// operators
Pending<ExportChunk> Client::ExportRecords(RecordType type, std::string_view cursor,
                                           uint32_t limit) {
  return AS_CALL(ExportChunk, record_export, DecodeExport, {
    auto t = fbb.CreateString(RecordTypeName(type));
    auto c = cursor.empty() ? 0 : fbb.CreateString(cursor);
    return ArgsPair{proto::Args::ExportArgs, proto::CreateExportArgs(fbb, t, c, limit).Union()};
  });
}
Pending<Done> Client::ImportRecord(RecordType type, std::string_view json) {
  return AS_CALL(Done, record_import, DecodeDone, {
    auto t = fbb.CreateString(RecordTypeName(type));
    auto j = fbb.CreateString(json);
    return ArgsPair{proto::Args::ImportArgs, proto::CreateImportArgs(fbb, t, j).Union()};
  });
}
Pending<Done> Client::ImportRecords(RecordType type, std::span<const std::string> records,
                                    std::span<const uint64_t> lines) {
  return AS_CALL(Done, record_import, DecodeDone, {
    auto t = fbb.CreateString(RecordTypeName(type));
    auto r = fbb.CreateVectorOfStrings(records.begin(), records.end());
    auto l = lines.empty() ? 0 : fbb.CreateVector(lines.data(), lines.size());
    return ArgsPair{proto::Args::ImportArgs, proto::CreateImportArgs(fbb, t, 0, r, l).Union()};
  });
}
Pending<ExportChunk> Client::ExportCollectionRecords(std::string_view collection,
                                                     std::string_view cursor, uint32_t limit) {
  return AS_CALL(ExportChunk, record_export, DecodeExport, {
    auto n = fbb.CreateString(collection);
    auto c = cursor.empty() ? 0 : fbb.CreateString(cursor);
    return ArgsPair{proto::Args::ExportArgs, proto::CreateExportArgs(fbb, 0, c, limit, n).Union()};
  });
}
Pending<Done> Client::ImportCollectionRecords(std::string_view collection,
                                              std::span<const std::string> records,
                                              std::span<const uint64_t> lines) {
  return AS_CALL(Done, record_import, DecodeDone, {
    auto n = fbb.CreateString(collection);
    auto r = fbb.CreateVectorOfStrings(records.begin(), records.end());
    auto l = lines.empty() ? 0 : fbb.CreateVector(lines.data(), lines.size());
    return ArgsPair{proto::Args::ImportArgs, proto::CreateImportArgs(fbb, 0, 0, r, l, n).Union()};
  });
}
Pending<Done> Client::CreateBackup(std::string_view dir) {
  return AS_CALL(Done, backup_create, DecodeDone, {
    auto d = fbb.CreateString(dir);
    return ArgsPair{proto::Args::BackupArgs, proto::CreateBackupArgs(fbb, d).Union()};
  });
}

Pending<std::string> Client::CallJson(std::string_view op, std::string_view args_type,
                                      std::string_view args_json) {
  auto fail = [this](Status s) {
    auto state = std::make_shared<Pending<std::string>::State>();
    state->timeout = impl_->options.timeout;
    state->Complete(std::move(s));
    return Pending<std::string>(state);
  };
  auto code = internal::OpByName(op);
  if (!code.ok()) return fail(code.status());
  auto args = internal::ParseJsonArgs(args_type, args_json);
  if (!args.ok()) return fail(args.status());
  if (args->type == proto::Args::NONE)
    return impl_->Call<std::string>(act_as_, *code, nullptr, internal::ResponseJson);
  const internal::JsonArgs& a = *args;
  return impl_->Call<std::string>(
      act_as_, *code,
      [&a](Fbb& fbb) -> ArgsPair {
        return {a.type, internal::CopyJsonArgs(fbb, a)};
      },
      internal::ResponseJson);
}
std::string_view Client::ProtocolSchema() { return internal::ProtocolSchemaText(); }

// usage accounting, quotas, rate limits
namespace {

Result<TrackResult> DecodeTrack(const proto::Response* r) {
  const auto* recs = r->result_as_Records();
  if (!recs || !recs->items() || recs->items()->size() < 2)
    return Status::Corruption("track_agent_usage answered without user_agent and log");
  TrackResult out;
  AS_ASSIGN_OR_RETURN(out.user_agent, VerifiedRow<fb::UserAgent>(recs->items()->Get(0)));
  AS_ASSIGN_OR_RETURN(out.log, VerifiedRow<fb::UsageLog>(recs->items()->Get(1)));
  for (flatbuffers::uoffset_t i = 2; i < recs->items()->size(); ++i) {
    AS_ASSIGN_OR_RETURN(auto q, VerifiedRow<fb::Quota>(recs->items()->Get(i)));
    out.quotas.push_back(std::move(q));
  }
  return out;
}

Result<UsageSummary> DecodeSummary(const proto::Response* r) {
  const auto* s = r->result_as_UsageSummaryResult();
  if (!s) return Status::Corruption("usage_summary answered without a summary");
  UsageSummary out;
  if (s->rows())
    for (const auto* row : *s->rows())
      out.rows.push_back({row->period_start(), row->group() ? row->group()->str() : std::string(),
                          UsageTotals{row->requests(), row->success_count(), row->error_count(),
                                      row->input_tokens(), row->output_tokens(),
                                      row->total_tokens(), row->input_cost(), row->output_cost(),
                                      row->total_cost(), row->duration_ms()}});
  return out;
}

Result<LimitDecision> DecodeLimit(const proto::Response* r) {
  const auto* a = r->result_as_LimitAnswer();
  if (!a) return Status::Corruption("limit_check answered without a decision");
  LimitDecision d;
  d.allowed = a->allowed();
  d.remaining = a->remaining();
  d.reset_at = a->reset_at();
  if (a->denied_by()) d.denied_by = ToUuid(a->denied_by());
  if (a->denied_type()) d.denied_type = a->denied_type()->str();
  if (a->lease()) d.lease = ToUuid(a->lease());
  return d;
}

}  // namespace

Pending<TrackResult> Client::TrackAgentUsage(const fb::UsageLogT& call, int32_t messages) {
  return AS_CALL(TrackResult, track_agent_usage, DecodeTrack, {
    auto c = fb::UsageLog::Pack(fbb, &call);
    return ArgsPair{proto::Args::TrackUsageArgs,
                    proto::CreateTrackUsageArgs(fbb, c, messages).Union()};
  });
}
Pending<Row<fb::UserAgent>> Client::RateAgent(const Uuid& user, const Uuid& agent, double rating,
                                              std::string_view review) {
  return AS_CALL(Row<fb::UserAgent>, rate_agent, DecodeRow<fb::UserAgent>, {
    fb::Uuid u = ToFb(user), a = ToFb(agent);
    auto rv = review.empty() ? 0 : fbb.CreateString(review);
    return ArgsPair{proto::Args::RateAgentArgs,
                    proto::CreateRateAgentArgs(fbb, &u, &a, rating, rv).Union()};
  });
}
Pending<Page<fb::UsageLog>> Client::ListUsage(const UsageQuery& q) {
  return AS_CALL(Page<fb::UsageLog>, usage_list, DecodePage<fb::UsageLog>, {
    fb::Uuid u;
    if (q.user) u = ToFb(*q.user);
    auto c = q.cursor.empty() ? 0 : fbb.CreateString(q.cursor);
    int8_t type = q.agent_type ? static_cast<int8_t>(*q.agent_type) : int8_t{-1};
    return ArgsPair{
        proto::Args::UsageListArgs,
        proto::CreateUsageListArgs(fbb, q.user ? &u : nullptr, type, q.from, q.to, q.limit, c)
            .Union()};
  });
}
Pending<UsageSummary> Client::SummarizeUsage(const UsageSummaryRequest& req) {
  return AS_CALL(UsageSummary, usage_summary, DecodeSummary, {
    fb::Uuid id = ToFb(req.id);
    return ArgsPair{proto::Args::UsageSummaryArgs,
                    proto::CreateUsageSummaryArgs(
                        fbb, static_cast<proto::SummaryOwner>(req.owner),
                        req.owner == SummaryOwner::kEveryone ? nullptr : &id, req.from, req.to,
                        static_cast<proto::SummaryBucket>(req.bucket),
                        static_cast<proto::SummaryGroup>(req.group))
                        .Union()};
  });
}
Pending<uint64_t> Client::ExpireUsageLogs() {
  return AS_CALL_NOARGS(uint64_t, usage_expire, DecodeCount);
}
Pending<Done> Client::SaveMemoryGraphs() {
  return AS_CALL_NOARGS(Done, memory_graphs_save, DecodeDone);
}
Pending<Done> Client::SaveImage() { return AS_CALL_NOARGS(Done, image_save, DecodeDone); }
Pending<Row<fb::Quota>> Client::SetQuota(const fb::QuotaT& q) {
  return AS_CALL(Row<fb::Quota>, quota_set, DecodeRow<fb::Quota>, return RecordArgs(fbb, q););
}
Pending<std::vector<Row<fb::Quota>>> Client::GetQuotas(const Uuid& tenant,
                                                       std::optional<fb::QuotaType> type,
                                                       bool history) {
  return AS_CALL(std::vector<Row<fb::Quota>>, quota_get, DecodeRows<fb::Quota>, {
    fb::Uuid t = ToFb(tenant);
    int8_t qt = type ? static_cast<int8_t>(*type) : int8_t{-1};
    return ArgsPair{proto::Args::QuotaGetArgs,
                    proto::CreateQuotaGetArgs(fbb, &t, qt, history).Union()};
  });
}
Pending<Row<fb::RateLimitConfig>> Client::PutLimitConfig(const fb::RateLimitConfigT& c) {
  return AS_CALL(Row<fb::RateLimitConfig>, limit_config_put, DecodeRow<fb::RateLimitConfig>,
                 return RecordArgs(fbb, c););
}
Pending<std::vector<Row<fb::RateLimitConfig>>> Client::ListLimitConfigs() {
  return AS_CALL_NOARGS(std::vector<Row<fb::RateLimitConfig>>, limit_config_list,
                        DecodeRows<fb::RateLimitConfig>);
}
Pending<Done> Client::DeleteLimitConfig(const Uuid& id) {
  return AS_CALL(Done, limit_config_delete, DecodeDone, return IdArgs(fbb, id););
}
Pending<LimitDecision> Client::CheckLimits(const LimitCheckRequest& req) {
  return AS_CALL(LimitDecision, limit_check, DecodeLimit, {
    fb::Uuid u = ToFb(req.user), a, t;
    if (req.agent) a = ToFb(*req.agent);
    if (req.tenant) t = ToFb(*req.tenant);
    return ArgsPair{
        proto::Args::LimitCheckArgs,
        proto::CreateLimitCheckArgs(fbb, &u, req.agent ? &a : nullptr, req.tenant ? &t : nullptr)
            .Union()};
  });
}
Pending<Done> Client::ReleaseLimit(const Uuid& lease) {
  return AS_CALL(Done, limit_release, DecodeDone, return IdArgs(fbb, lease););
}

namespace {
Result<CollectionPage> DecodeJsonPage(const proto::Response* r) {
  const auto* j = r->result_as_JsonRecords();
  if (!j) return Status::Corruption("answer without JSON records");
  CollectionPage page;
  if (j->items())
    for (const auto* s : *j->items()) page.records.push_back(s->str());
  if (j->next_cursor()) page.next_cursor = j->next_cursor()->str();
  return page;
}
Result<std::vector<std::string>> DecodeJsonList(const proto::Response* r) {
  AS_ASSIGN_OR_RETURN(auto page, DecodeJsonPage(r));
  return std::move(page.records);
}
Result<std::string> DecodeJsonOne(const proto::Response* r) {
  AS_ASSIGN_OR_RETURN(auto page, DecodeJsonPage(r));
  if (page.records.size() != 1) return Status::Corruption("expected one JSON record");
  return std::move(page.records[0]);
}
ArgsPair CollArgs(Fbb& fbb, std::string_view collection, std::string_view json,
                  std::string_view key = {}, DeleteMode mode = DeleteMode::kSoft,
                  bool replace_json = false) {
  auto c = collection.empty() ? 0 : fbb.CreateString(collection);
  auto j = json.empty() ? 0 : fbb.CreateString(json);
  auto k = key.empty() ? 0 : fbb.CreateString(key);
  return {proto::Args::CollectionArgs,
          proto::CreateCollectionArgs(
              fbb, c, j, k,
              mode == DeleteMode::kHard ? proto::DeleteMode::hard : proto::DeleteMode::soft,
              replace_json)
              .Union()};
}
ArgsPair CollQueryArgs(Fbb& fbb, const CollectionQuery& q) {
  auto c = fbb.CreateString(q.collection);
  auto i = q.index.empty() ? 0 : fbb.CreateString(q.index);
  auto w = fbb.CreateString(q.where);
  auto cur = q.cursor.empty() ? 0 : fbb.CreateString(q.cursor);
  return {proto::Args::CollectionQueryArgs,
          proto::CreateCollectionQueryArgs(fbb, c, i, w, q.desc, q.limit, cur, q.include_deleted)
              .Union()};
}
}  // namespace

Pending<std::string> Client::DeclareCollection(std::string_view declaration) {
  return AS_CALL(std::string, coll_declare, DecodeJsonOne, return CollArgs(fbb, {}, declaration););
}
Pending<std::string> Client::AlterCollection(std::string_view name, std::string_view change) {
  return AS_CALL(std::string, coll_alter, DecodeJsonOne, return CollArgs(fbb, name, change););
}
Pending<std::string> Client::DescribeCollection(std::string_view name) {
  return AS_CALL(std::string, coll_describe, DecodeJsonOne, return CollArgs(fbb, name, {}););
}
Pending<std::vector<std::string>> Client::ListCollections() {
  return AS_CALL_NOARGS(std::vector<std::string>, coll_list, DecodeJsonList);
}
Pending<std::string> Client::PutRecord(std::string_view collection, std::string_view record) {
  return AS_CALL(std::string, coll_put, DecodeJsonOne, return CollArgs(fbb, collection, record););
}
Pending<std::string> Client::GetRecord(std::string_view collection, std::string_view key) {
  return AS_CALL(std::string, coll_get, DecodeJsonOne, return CollArgs(fbb, collection, {}, key););
}
Pending<std::string> Client::UpdateRecord(std::string_view collection, std::string_view key,
                                          std::string_view patch, JsonMode mode) {
  return AS_CALL(
      std::string, coll_update, DecodeJsonOne,
      return CollArgs(fbb, collection, patch, key, DeleteMode::kSoft, mode == JsonMode::kReplace););
}
Pending<Done> Client::DeleteRecord(std::string_view collection, std::string_view key,
                                   DeleteMode mode) {
  return AS_CALL(Done, coll_delete, DecodeDone, return CollArgs(fbb, collection, {}, key, mode););
}
Pending<CollectionPage> Client::QueryRecords(const CollectionQuery& q) {
  return AS_CALL(CollectionPage, coll_query, DecodeJsonPage, return CollQueryArgs(fbb, q););
}
Pending<uint64_t> Client::CountRecords(const CollectionQuery& q) {
  return AS_CALL(uint64_t, coll_count, DecodeCount, return CollQueryArgs(fbb, q););
}
Pending<uint64_t> Client::SweepExpiredRecords() {
  return AS_CALL_NOARGS(uint64_t, coll_sweep, DecodeCount);
}

#undef AS_CALL
#undef AS_CALL_NOARGS

Result<std::unique_ptr<FeedSubscription>> Client::Subscribe(const SubscribeFilter& filter,
                                                            std::optional<uint64_t> after,
                                                            FeedSubscription::Callback on_change,
                                                            FeedSubscription::EndCallback on_end) {
  return FeedSubscription::Start(impl_->options, filter, after, std::move(on_change),
                                 std::move(on_end), act_as_);
}

}  // namespace agentstore
