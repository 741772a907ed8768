// The Asio front end, one event loop per I/O thread. A connection is bound to one
// thread at accept and everything about it (reads, dispatch, writes, deadlines) runs on
// that thread, so the read -> engine -> write path of a read has no lock, no strand and
// no cross-thread hop. A read hands every complete frame it got to the Dispatcher, which
// encodes each answer into the connection's own builder; the answer is appended to the
// connection's output buffer, and once the batch is handled the buffer goes out in one
// non-blocking write (an asynchronous write only for what the socket did not take).
// Buffers are reused, so a read costs no heap allocation in steady state. A write's
// answer is parked until Engine::WhenDurable reports, whose callback posts it back to the
// owning thread. Reading pauses while too many answers or too many bytes are owed, so a
// client that never reads cannot grow the server; a per-thread sweep enforces the
// authentication, frame, idle and write-stall deadlines. Change-feed push frames
// (feed_push.cc) are produced on the owning thread too: the feed wakes the connection by
// posting to its executor, and at most a few push frames wait in the output at a time.
#include "agentstore/net/server.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <boost/asio.hpp>
#include <deque>
#include <list>
#include <mutex>
#include <thread>

#include "agentstore/net/frame.h"
#include "dispatch.h"
#include "feed_push.h"
#include "protocol_generated.h"

namespace agentstore::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

class Connection;

// A durable write's answer, ready to go out on its connection's thread.
struct DurableAnswer {
  std::shared_ptr<Connection> conn;
  uint64_t id;
  Status status;
  std::shared_ptr<std::vector<uint8_t>> frame;
};

// One I/O thread: its event loop and the connections it owns (touched only on it).
struct Worker {
  asio::io_context ioc{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  asio::steady_timer sweep{ioc};
  // Set by Stop on this thread: a sweep whose timer had already fired (its handler queued
  // with success, so cancel() cannot stop it) must not arm the timer again, or the loop
  // never runs out of work and Stop's join waits forever.
  bool sweep_stopped = false;
  std::list<std::shared_ptr<Connection>> conns;  // in accept order
  uint32_t unauthenticated = 0;
  std::thread thread;
  // Durable answers released by the log thread, collected here so that one group commit
  // costs this thread one wake-up and each connection one write (not one of each per
  // answer: with 16 appends in flight on a connection that was 16 sends per fsync, and
  // the client, answered one by one, spread its next requests over more fsyncs).
  std::mutex inbox_mu;
  std::vector<DurableAnswer> inbox;       // guarded by inbox_mu
  bool inbox_posted = false;              // guarded by inbox_mu: a drain is queued
  std::vector<DurableAnswer> inbox_work;  // this thread only: the batch being delivered
  void Deliver(DurableAnswer answer);     // from any thread
  void DrainInbox();                      // on this thread
};

struct Server::Impl {
  Engine* engine = nullptr;
  ServerOptions options;
  ServerCounters counters;
  std::unique_ptr<Dispatcher> dispatcher;
  std::vector<std::unique_ptr<Worker>> workers;
  std::unique_ptr<tcp::acceptor> acceptor;           // on workers[0]
  std::unique_ptr<asio::steady_timer> accept_retry;  // on workers[0]
  size_t next_worker = 0;                            // acceptor's thread only
  std::atomic<bool> stopping{false};
  bool stopped = false;
  // Writes whose durability callback has not run yet; it posts to an io_context, so
  // Stop must not let the io_contexts go before they are done.
  std::atomic<uint64_t> durable_waits{0};
  std::atomic<uint64_t> unauthenticated{0};

  void Accept();
  void Sweep(Worker* w);
  Clock::duration SweepInterval() const;
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Server::Impl* server, Worker* worker, tcp::socket socket)
      : server_(server), worker_(worker), socket_(std::move(socket)) {
    fbb_.Clear();
  }

  // On the owning thread.
  void Start(std::list<std::shared_ptr<Connection>>::iterator self_in_list) {
    self_in_list_ = self_in_list;
    boost::system::error_code ec;
    socket_.set_option(tcp::no_delay(true), ec);
    socket_.non_blocking(true, ec);  // inline writes must never park the thread
    ++worker_->unauthenticated;
    // The change feed wakes the connection from any thread; the push runs on its own.
    // Wakes coalesce: a group commit that brings events to many subscriptions of this
    // connection posts one PushFeeds, not one per subscription (PushFeeds clears the flag
    // before it drains, so an event arriving during the drain posts again).
    session_.feed_wake = [weak = weak_from_this(), ex = executor(), pending = feed_pending_] {
      if (pending->exchange(true, std::memory_order_acq_rel)) return;
      asio::post(ex, [weak] {
        if (auto c = weak.lock()) c->PushFeeds();
      });
    };
    ReadMore();
  }

  // Stop reading; close once every accepted request is answered. On the owning thread.
  void Drain() {
    draining_ = true;
    boost::system::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_receive, ec);
    MaybeClose();
  }

  // Server-initiated frames (the change feed): appends one finished Response and sends
  // it with whatever else is queued. Must run on the owning thread (post to executor()).
  void Push(const flatbuffers::FlatBufferBuilder& fbb) {
    if (closing_) return;
    Append(fbb);
    Flush();
  }
  asio::io_context::executor_type executor() { return worker_->ioc.get_executor(); }

  // Change-feed pushes, on the owning thread. At most about kMaxQueuedPushBytes of push
  // frames wait in the output (written without blocking, Flush): a subscriber that does
  // not read leaves its events in its bounded subscription buffer, which ends the
  // subscription when full, never here. The budget is in bytes, not frames, so the small
  // frames of many subscriptions on one connection (one event each, live) go out in one
  // write. Push frames answer no request, so they do not count as owed answers.
  void PushFeeds() {
    feed_pending_->store(false, std::memory_order_release);
    if (closing_ || session_.subscriptions.empty()) return;
    constexpr size_t kMaxQueuedPushBytes = 1u << 20;
    size_t queued = pushes_out_ + pushes_wbuf_;
    if (queued >= kMaxQueuedPushBytes) return;  // OnWritten calls again
    size_t budget = kMaxQueuedPushBytes - queued;
    size_t pushed = DrainSubscriptions(session_, budget, [&](flatbuffers::FlatBufferBuilder& fbb) {
      Append(fbb);
      --queued_count_;
      pushes_out_ += kFrameHeaderBytes + fbb.GetSize();
    });
    Flush();
    // The socket took it all and more may wait: go on after the thread's other work (a
    // long backlog must not hold the thread); a write still pending resumes in OnWritten.
    if (pushed >= budget && !writing_ && !closing_) {
      asio::post(executor(), [weak = weak_from_this()] {
        if (auto c = weak.lock()) c->PushFeeds();
      });
    }
  }

  // Deadlines, from the owning worker's sweep. Returns false if it closed.
  bool CheckDeadlines(Clock::time_point now) {
    const ServerOptions& o = server_->options;
    auto ms = [](uint32_t v) { return std::chrono::milliseconds(v); };
    const char* why = nullptr;
    if (!authenticated_ && now - accepted_at_ >= ms(o.auth_timeout_ms))
      why = "did not authenticate in time";
    else if (rend_ > rstart_ && !paused_ && now - frame_started_ >= ms(o.frame_timeout_ms))
      why = "did not send a whole frame in time";
    else if (parked_ == 0 && out_.empty() && !writing_ && session_.subscriptions.empty() &&
             now - last_activity_ >= ms(o.idle_timeout_ms))
      why = "idle";
    else if (writing_ && now - write_started_ >= ms(o.idle_timeout_ms))
      why = "not reading its answers";  // a stuck client holds its answers and a slot
    if (!why) return true;
    // Debug level: under an attack these come by the thousand.
    spdlog::debug("closing a connection: {}", why);
    Close();
    return false;
  }

  bool authenticated() const { return authenticated_; }
  Clock::time_point accepted_at() const { return accepted_at_; }
  void Evict(const char* why) {
    spdlog::debug("closing a connection: {}", why);
    Close();
  }

 private:
  using Buffer = std::vector<uint8_t>;

  // Reads whatever the socket has into rbuf_ and handles every complete frame in it, so a
  // pipelining client costs one read per batch of requests, not two per request.
  void ReadMore() {
    if (draining_ || closing_ || read_done_ || reading_ || paused_) return;
    if (rstart_ > 0) {  // keep the partial frame, drop what was handled
      std::memmove(rbuf_.data(), rbuf_.data() + rstart_, rend_ - rstart_);
      rend_ -= rstart_;
      rstart_ = 0;
    }
    if (rend_ == rbuf_.size()) rbuf_.resize(rbuf_.size() * 2);
    reading_ = true;
    socket_.async_read_some(asio::buffer(rbuf_.data() + rend_, rbuf_.size() - rend_),
                            [self = shared_from_this()](boost::system::error_code ec, size_t n) {
                              self->reading_ = false;
                              if (ec) return self->OnReadEnd();
                              if (self->rend_ == self->rstart_) self->frame_started_ = Clock::now();
                              self->rend_ += n;
                              self->last_activity_ = Clock::now();
                              self->HandleFrames();
                            });
  }

  bool OverLimits() const {
    const ServerOptions& o = server_->options;
    return parked_ + queued_count_ >= o.max_inflight_per_connection ||
           QueuedBytes() >= o.max_queued_bytes;
  }
  size_t QueuedBytes() const { return out_.size() + wbuf_.size(); }

  void HandleFrames() {
    while (!draining_ && !closing_ && !read_done_) {
      if (OverLimits()) {
        Flush();
        if (OverLimits()) {
          paused_ = true;  // resumed by OnWritten / a parked answer leaving
          break;
        }
      }
      size_t avail = rend_ - rstart_;
      if (avail < kFrameHeaderBytes) break;
      uint32_t len = DecodeFrameLength(rbuf_.data() + rstart_);
      if (len > server_->options.max_frame_bytes) {
        // The rest of the stream cannot be trusted to be framed: answer and close.
        Reject(Status::ResourceExhausted("frame of " + std::to_string(len) +
                                         " bytes exceeds the limit of " +
                                         std::to_string(server_->options.max_frame_bytes)));
        break;
      }
      if (avail < kFrameHeaderBytes + len) {
        if (rbuf_.size() - rstart_ < kFrameHeaderBytes + len)
          rbuf_.resize(std::max(rbuf_.size() * 2, rend_ - rstart_ + kFrameHeaderBytes + len));
        break;
      }
      HandleFrame(rbuf_.data() + rstart_ + kFrameHeaderBytes, len);
      rstart_ += kFrameHeaderBytes + len;
      if (rend_ > rstart_) frame_started_ = last_activity_;
    }
    if (rstart_ == rend_) {
      rstart_ = rend_ = 0;
      // A huge frame grew the buffer; an idle connection should not keep it.
      if (rbuf_.size() > kReadBufferBytes * 4) Buffer(kReadBufferBytes).swap(rbuf_);
    }
    Flush();  // one write for every answer of the batch
    ReadMore();
    MaybeClose();  // draining with nothing owed: nobody else would close it
  }

  void HandleFrame(const uint8_t* data, uint32_t len) {
    // FlatBuffers reads scalars in place; give it an 8-aligned copy when needed. (An
    // empty frame is handed over as is: the verifier rejects it without reading.)
    if (len > 0 && reinterpret_cast<uintptr_t>(data) % 8 != 0) {
      aligned_.resize((len + 7) / 8);
      std::memcpy(aligned_.data(), data, len);
      data = reinterpret_cast<const uint8_t*>(aligned_.data());
    }
    // The engine call runs here, on this connection's thread: reads take microseconds,
    // and writes do not wait for fsync (the answer waits instead, below).
    uint64_t ticket = server_->dispatcher->Handle(session_, data, len, fbb_);
    if (!authenticated_) {
      if (session_.scope) {
        authenticated_ = true;
        --worker_->unauthenticated;
        server_->unauthenticated.fetch_sub(1);
      } else if (IsAuthAttemptOrGarbage(data, len) &&
                 ++auth_failures_ >= server_->options.max_auth_failures) {
        // A key-guessing or flooding client: answer this one, then close.
        read_done_ = true;
      }
    }
    if (ticket == 0) {
      Append(fbb_);
    } else {
      Park(ticket);
    }
    if (fbb_.GetSize() > kBuilderKeepBytes) fbb_.Reset();  // let a huge answer's memory go
  }

  // A failed authenticate, or a frame that is no Request at all (checked again only for
  // connections not yet authenticated). Other requests before authenticate are merely
  // refused: they cost no key check, and the auth deadline bounds them.
  static bool IsAuthAttemptOrGarbage(const uint8_t* data, uint32_t len) {
    if (len == 0) return true;
    flatbuffers::Verifier v(data, len, 32, 1000);
    if (!v.VerifyBuffer<proto::Request>(nullptr)) return true;
    return flatbuffers::GetRoot<proto::Request>(data)->op() == proto::Op::authenticate;
  }

  // Encodes one finished Response as a frame at the end of the output buffer.
  void Append(const flatbuffers::FlatBufferBuilder& fbb) {
    size_t at = out_.size();
    out_.resize(at + kFrameHeaderBytes + fbb.GetSize());
    EncodeFrameLength(static_cast<uint32_t>(fbb.GetSize()), out_.data() + at);
    std::memcpy(out_.data() + at + kFrameHeaderBytes, fbb.GetBufferPointer(), fbb.GetSize());
    ++queued_count_;
  }

  // A write's answer waits for durability; the engine's callback hands it to this
  // thread's inbox (Worker::Deliver), which brings it back here through Answer().
  void Park(uint64_t ticket) {
    ++parked_;
    auto frame =
        std::make_shared<Buffer>(fbb_.GetBufferPointer(), fbb_.GetBufferPointer() + fbb_.GetSize());
    uint64_t id = flatbuffers::GetRoot<proto::Response>(frame->data())->id();
    Server::Impl* server = server_;
    server->durable_waits.fetch_add(1);
    server->engine->WhenDurable(
        ticket, [self = shared_from_this(), id, frame, server](Status s) mutable {
          Worker* worker = self->worker_;
          worker->Deliver(DurableAnswer{std::move(self), id, std::move(s), std::move(frame)});
          server->durable_waits.fetch_sub(1);  // Stop waits for this before the loops go
        });
  }

 public:
  // A parked answer is back (on the owning thread); once the batch is in, Settle() sends
  // what each answered connection has queued.
  void Answer(uint64_t id, const Status& s, const Buffer& frame) {
    --parked_;
    unsettled_ = true;
    if (closing_) return;
    if (!s.ok()) {
      // Applied in memory but not durable: the client must not take it as done.
      flatbuffers::FlatBufferBuilder fbb;
      Dispatcher::EncodeError(id, Status::IoError("write not durable: " + s.message()), fbb);
      Append(fbb);
      return;
    }
    size_t at = out_.size();
    out_.resize(at + kFrameHeaderBytes + frame.size());
    EncodeFrameLength(static_cast<uint32_t>(frame.size()), out_.data() + at);
    std::memcpy(out_.data() + at + kFrameHeaderBytes, frame.data(), frame.size());
    ++queued_count_;
  }
  // Once per batch: returns false when already settled (a connection answered twice).
  bool Settle() {
    if (!unsettled_) return false;
    unsettled_ = false;
    Flush();
    MaybeResume();
    MaybeClose();
    return true;
  }

 private:
  // Writes the output buffer now if the socket takes it; what it does not take goes out
  // asynchronously (the buffer keeps collecting meanwhile).
  void Flush() {
    if (writing_ || out_.empty() || closing_) return;
    boost::system::error_code ec;
    size_t n = socket_.write_some(asio::buffer(out_), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      n = 0;
    } else if (ec) {
      return Close();
    }
    if (n == out_.size()) {
      out_.clear();
      queued_count_ = 0;
      pushes_out_ = 0;
      return;
    }
    wbuf_.assign(out_.begin() + static_cast<ptrdiff_t>(n), out_.end());
    out_.clear();
    wbuf_count_ = queued_count_;
    queued_count_ = 0;
    pushes_wbuf_ = pushes_out_;
    pushes_out_ = 0;
    writing_ = true;
    write_started_ = Clock::now();
    asio::async_write(
        socket_, asio::buffer(wbuf_),
        [self = shared_from_this()](boost::system::error_code ec, size_t) { self->OnWritten(ec); });
  }

  void OnWritten(boost::system::error_code ec) {
    writing_ = false;
    wbuf_.clear();
    wbuf_count_ = 0;
    pushes_wbuf_ = 0;
    if (wbuf_.capacity() > server_->options.max_queued_bytes) Buffer().swap(wbuf_);
    if (ec) return Close();
    Flush();
    PushFeeds();
    MaybeResume();
    MaybeClose();
  }

  void MaybeResume() {
    if (paused_ && !OverLimits() && !closing_) {
      paused_ = false;
      frame_started_ = Clock::now();  // the frame waited for us, not for the client
      HandleFrames();
    }
  }

  void OnReadEnd() {
    read_done_ = true;
    MaybeClose();
  }

  void Reject(const Status& status) {
    flatbuffers::FlatBufferBuilder fbb;
    Dispatcher::EncodeError(0, status, fbb);
    // Read nothing more, but close only once every earlier request is answered too:
    // a write waiting for its fsync must still get its acknowledgement.
    read_done_ = true;
    Append(fbb);
  }

  // Closes once the peer stopped sending (or we are draining) and nothing is owed.
  void MaybeClose() {
    if ((read_done_ || draining_) && parked_ == 0 && out_.empty() && !writing_ && !reading_)
      Close();
  }

  void Close() {
    if (closed_) return;
    closed_ = true;
    closing_ = true;
    boost::system::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);  // the descriptor goes now, not when the last handler lets go
    CancelSubscriptions(session_);
    // The slot is free now (handlers still queued may hold the object a little longer).
    server_->counters.connections_open.fetch_sub(1);
    if (!authenticated_) {
      --worker_->unauthenticated;
      server_->unauthenticated.fetch_sub(1);
    }
    worker_->conns.erase(self_in_list_);  // may drop the last reference but one (ours)
  }

  static constexpr size_t kReadBufferBytes = 64 << 10;
  static constexpr size_t kBuilderKeepBytes = 1 << 20;

  Server::Impl* server_;
  Worker* worker_;
  tcp::socket socket_;
  std::list<std::shared_ptr<Connection>>::iterator self_in_list_;
  Session session_;
  Buffer rbuf_ = Buffer(kReadBufferBytes);  // bytes read, [rstart_, rend_) not yet handled
  size_t rstart_ = 0, rend_ = 0;
  std::vector<uint64_t> aligned_;  // 8-aligned scratch for misaligned frames
  flatbuffers::FlatBufferBuilder fbb_{4096};
  Buffer out_;   // answers not yet handed to the socket (queued_count_ of them)
  Buffer wbuf_;  // answers being written asynchronously (wbuf_count_ of them)
  uint64_t queued_count_ = 0, wbuf_count_ = 0;
  uint64_t parked_ = 0;  // writes waiting for durability
  // Set while a PushFeeds is posted and not yet begun (see feed_wake in Start).
  std::shared_ptr<std::atomic<bool>> feed_pending_ = std::make_shared<std::atomic<bool>>(false);
  bool unsettled_ = false;                   // answered from the inbox, not yet flushed
  size_t pushes_out_ = 0, pushes_wbuf_ = 0;  // bytes of change-feed push frames in out_ / wbuf_
  uint32_t auth_failures_ = 0;
  bool authenticated_ = false;
  bool reading_ = false, writing_ = false, paused_ = false, read_done_ = false;
  bool draining_ = false, closing_ = false, closed_ = false;
  Clock::time_point accepted_at_ = Clock::now();
  Clock::time_point last_activity_ = accepted_at_;
  Clock::time_point frame_started_ = accepted_at_;
  Clock::time_point write_started_;
};

void Worker::Deliver(DurableAnswer answer) {
  bool post;
  {
    std::lock_guard lock(inbox_mu);
    inbox.push_back(std::move(answer));
    post = !inbox_posted;
    inbox_posted = true;
  }
  if (post) asio::post(ioc, [this] { DrainInbox(); });
}

void Worker::DrainInbox() {
  {
    std::lock_guard lock(inbox_mu);
    inbox_work.swap(inbox);
    inbox_posted = false;
  }
  for (auto& a : inbox_work) a.conn->Answer(a.id, a.status, *a.frame);
  for (auto& a : inbox_work) a.conn->Settle();  // one write per answered connection
  inbox_work.clear();  // drops the references (a closed connection may go now)
}

Clock::duration Server::Impl::SweepInterval() const {
  uint32_t shortest =
      std::min({options.auth_timeout_ms, options.frame_timeout_ms, options.idle_timeout_ms});
  return std::chrono::milliseconds(std::clamp<uint32_t>(shortest / 4, 5, 1000));
}

void Server::Impl::Sweep(Worker* w) {
  w->sweep.expires_after(SweepInterval());
  w->sweep.async_wait([this, w](boost::system::error_code ec) {
    if (ec || w->sweep_stopped) return;
    auto now = Clock::now();
    for (auto it = w->conns.begin(); it != w->conns.end();) {
      auto conn = *it++;  // CheckDeadlines may erase it from the list
      conn->CheckDeadlines(now);
    }
    Sweep(w);
  });
}

void Server::Impl::Accept() {
  Worker* w = workers[next_worker++ % workers.size()].get();
  acceptor->async_accept(w->ioc, [this, w](boost::system::error_code ec, tcp::socket socket) {
    if (stopping) return;
    if (!ec) {
      counters.connections_total.fetch_add(1);
      if (counters.connections_open.load() >= options.max_connections &&
          unauthenticated.load() == 0) {
        // Every slot is held by an authenticated client: say why, then close.
        flatbuffers::FlatBufferBuilder fbb;
        Dispatcher::EncodeError(0, Status::ResourceExhausted("too many connections"), fbb);
        uint8_t len[4];
        EncodeFrameLength(static_cast<uint32_t>(fbb.GetSize()), len);
        boost::system::error_code wec;
        socket.non_blocking(true, wec);
        asio::write(socket,
                    std::array<asio::const_buffer, 2>{
                        asio::buffer(len), asio::buffer(fbb.GetBufferPointer(), fbb.GetSize())},
                    wec);
        socket.close(wec);
      } else {
        counters.connections_open.fetch_add(1);
        unauthenticated.fetch_add(1);
        auto conn = std::make_shared<Connection>(this, w, std::move(socket));
        asio::post(w->ioc, [this, w, conn] {
          w->conns.push_back(conn);
          conn->Start(std::prev(w->conns.end()));
          if (stopping) return conn->Drain();
          // Over a cap: the oldest unauthenticated connection of this thread makes room
          // (possibly this one). Authenticated clients are never closed for this.
          size_t per_worker = std::max<size_t>(1, options.max_unauthenticated / workers.size());
          while (w->unauthenticated > per_worker ||
                 (counters.connections_open.load() > options.max_connections &&
                  w->unauthenticated > 0)) {
            std::shared_ptr<Connection> oldest;
            for (auto& c : w->conns)
              if (!c->authenticated() && (!oldest || c->accepted_at() < oldest->accepted_at()))
                oldest = c;
            if (!oldest) break;
            oldest->Evict("unauthenticated, making room");
          }
        });
      }
    } else if (ec != asio::error::operation_aborted) {
      spdlog::warn("accept failed: {}", ec.message());
      if (ec == asio::error::no_descriptors && !stopping) {
        // Out of descriptors: the pending connection stays queued and accept would fail
        // again at once; retry shortly instead of spinning (this thread serves clients).
        accept_retry->expires_after(std::chrono::milliseconds(10));
        accept_retry->async_wait([this](boost::system::error_code e) {
          if (!e && !stopping) Accept();
        });
        return;
      }
    }
    if (!stopping) Accept();
  });
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() { Stop(); }

Result<std::unique_ptr<Server>> Server::Start(Engine* engine, const ServerOptions& options) {
  if (options.io_threads < 1) return Status::InvalidArgument("io_threads must be >= 1");
  if (options.max_response_bytes < 4096 || options.max_response_bytes > options.max_frame_bytes)
    return Status::InvalidArgument("max_response_bytes must be in [4096, max_frame_bytes]");
  auto impl = std::make_unique<Impl>();
  impl->engine = engine;
  impl->options = options;
  impl->dispatcher = std::make_unique<Dispatcher>(engine, &impl->counters, options.slow_op_us);
  impl->dispatcher->set_max_response_bytes(options.max_response_bytes);
  for (int i = 0; i < options.io_threads; ++i) impl->workers.push_back(std::make_unique<Worker>());
  try {
    tcp::endpoint ep(asio::ip::make_address(options.host), options.port);
    impl->acceptor = std::make_unique<tcp::acceptor>(impl->workers[0]->ioc);
    impl->accept_retry = std::make_unique<asio::steady_timer>(impl->workers[0]->ioc);
    impl->acceptor->open(ep.protocol());
    impl->acceptor->set_option(tcp::acceptor::reuse_address(true));
    impl->acceptor->bind(ep);
    impl->acceptor->listen(asio::socket_base::max_listen_connections);
  } catch (const boost::system::system_error& e) {
    return Status::Unavailable("cannot listen on " + options.host + ":" +
                               std::to_string(options.port) + ": " + e.what());
  }
  impl->Accept();
  Impl* p = impl.get();
  for (auto& w : impl->workers) {
    w->work.emplace(asio::make_work_guard(w->ioc));
    p->Sweep(w.get());
    w->thread = std::thread([w = w.get()] {
      pthread_setname_np(pthread_self(), "io-worker");  // for top -H and perf
      try {
        w->ioc.run();
      } catch (const std::exception& e) {
        spdlog::critical("I/O thread stopped: {}", e.what());
      }
    });
  }
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

uint16_t Server::port() const { return impl_->acceptor->local_endpoint().port(); }

void Server::Stop() {
  if (!impl_ || impl_->stopped) return;
  impl_->stopped = true;
  impl_->stopping = true;
  asio::post(impl_->workers[0]->ioc, [p = impl_.get()] {
    boost::system::error_code ec;
    p->acceptor->close(ec);
    p->accept_retry->cancel();
  });
  for (auto& w : impl_->workers)
    asio::post(w->ioc, [w = w.get()] {
      for (auto it = w->conns.begin(); it != w->conns.end();) {
        auto conn = *it++;  // Drain may close it, erasing it from the list
        conn->Drain();
      }
    });
  // In-flight requests finish and their responses go out (durable writes included).
  auto deadline = Clock::now() + std::chrono::seconds(5);
  while (Clock::now() < deadline && impl_->counters.connections_open.load() > 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  // A write still waiting for its fsync will post its answer; let it, then stop.
  for (int i = 0; i < 60'000 && impl_->durable_waits.load() > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  for (auto& w : impl_->workers) {
    asio::post(w->ioc, [w = w.get()] {
      w->sweep_stopped = true;
      w->sweep.cancel();
      // Whatever is left (a stuck client) is closed now.
      for (auto it = w->conns.begin(); it != w->conns.end();) {
        auto conn = *it++;
        conn->Evict("server stopping");
      }
    });
    w->work.reset();
  }
  for (auto& w : impl_->workers) {
    w->thread.join();
  }
  // Handlers still queued (their connections closed) go with the loops.
  for (auto& w : impl_->workers) {
    w->ioc.restart();
    w->ioc.poll();
  }
}

}  // namespace agentstore::net
