// The Asio front end. Each connection runs on its own strand: it reads frames one after
// another (pipelining), hands each to the Dispatcher, and queues the response; a write
// response waits for its durability ticket off the I/O threads and is queued when the
// store's sync thread reports it. Responses are written in batches (one gathered write
// for everything queued). Reading pauses while max_inflight requests are unanswered, so
// a client that never reads cannot make the server buffer without bound.
#include "agentstore/net/server.h"

#include <spdlog/spdlog.h>

#include <boost/asio.hpp>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "agentstore/net/frame.h"
#include "dispatch.h"
#include "feed_push.h"
#include "protocol_generated.h"

namespace agentstore::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

class Connection;

struct Server::Impl {
  Engine* engine = nullptr;
  ServerOptions options;
  ServerCounters counters;
  std::unique_ptr<Dispatcher> dispatcher;
  asio::io_context ioc;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::unique_ptr<tcp::acceptor> acceptor;
  std::vector<std::thread> threads;
  std::mutex conns_mu;
  std::unordered_map<Connection*, std::weak_ptr<Connection>> conns;  // guarded by conns_mu
  std::atomic<bool> stopping{false};
  bool stopped = false;
  // Writes whose durability callback has not run yet; it posts to the io_context, so
  // Stop must not let the io_context go before they are done.
  std::atomic<uint64_t> durable_waits{0};

  void Accept();
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Server::Impl* server, tcp::socket socket)
      : server_(server),
        socket_(std::move(socket)),
        strand_(asio::make_strand(server->ioc)),
        idle_timer_(strand_) {}

  void Start() {
    boost::system::error_code ec;
    socket_.set_option(tcp::no_delay(true), ec);
    auto self = shared_from_this();
    // The change feed wakes the connection (from its thread) to push events.
    session_.feed_wake = [weak = weak_from_this(), strand = strand_] {
      asio::post(strand, [weak] {
        if (auto c = weak.lock()) c->PushFeeds();
      });
    };
    asio::post(strand_, [self] {
      self->ArmIdleTimer();
      self->ReadMore();
    });
  }

  // Stop reading; close once every accepted request is answered.
  void Drain() {
    auto self = shared_from_this();
    asio::post(strand_, [self] {
      self->draining_ = true;
      boost::system::error_code ec;
      self->socket_.shutdown(tcp::socket::shutdown_receive, ec);
      self->MaybeClose();
    });
  }

  ~Connection() { server_->counters.connections_open.fetch_sub(1); }

 private:
  using Buffer = std::vector<uint8_t>;

  // Reads whatever the socket has into rbuf_ and handles every complete frame in it, so a
  // pipelining client costs one read per batch of requests, not two per request.
  void ReadMore() {
    if (draining_ || closing_ || read_done_ || reading_) return;
    if (rstart_ > 0) {  // keep the partial frame, drop what was handled
      std::memmove(rbuf_.data(), rbuf_.data() + rstart_, rend_ - rstart_);
      rend_ -= rstart_;
      rstart_ = 0;
    }
    if (rend_ == rbuf_.size()) rbuf_.resize(rbuf_.size() * 2);
    reading_ = true;
    auto self = shared_from_this();
    socket_.async_read_some(
        asio::buffer(rbuf_.data() + rend_, rbuf_.size() - rend_),
        asio::bind_executor(strand_, [self](boost::system::error_code ec, size_t n) {
          self->reading_ = false;
          if (ec) return self->OnReadEnd();
          self->rend_ += n;
          self->last_activity_ = std::chrono::steady_clock::now();
          self->HandleFrames();
        }));
  }

  void HandleFrames() {
    while (!draining_ && !closing_ && !read_done_) {
      if (inflight_ >= server_->options.max_inflight_per_connection) {
        read_paused_ = true;  // resumed by OnWritten
        return;
      }
      size_t avail = rend_ - rstart_;
      if (avail < kFrameHeaderBytes) break;
      uint32_t len = DecodeFrameLength(rbuf_.data() + rstart_);
      if (len > server_->options.max_frame_bytes) {
        // The rest of the stream cannot be trusted to be framed: answer and close.
        return Reject(Status::ResourceExhausted("frame of " + std::to_string(len) +
                                                " bytes exceeds the limit of " +
                                                std::to_string(server_->options.max_frame_bytes)));
      }
      if (avail < kFrameHeaderBytes + len) {
        if (rbuf_.size() - rstart_ < kFrameHeaderBytes + len)
          rbuf_.resize(std::max(rbuf_.size() * 2, rend_ - rstart_ + kFrameHeaderBytes + len));
        break;
      }
      HandleFrame(rbuf_.data() + rstart_ + kFrameHeaderBytes, len);
      rstart_ += kFrameHeaderBytes + len;
    }
    if (rstart_ == rend_) rstart_ = rend_ = 0;
    ReadMore();
    MaybeClose();  // draining with nothing owed: nobody else would close it
  }

  void HandleFrame(const uint8_t* data, uint32_t len) {
    // FlatBuffers reads scalars in place; give it an 8-aligned copy when needed.
    if (reinterpret_cast<uintptr_t>(data) % 8 != 0) {
      aligned_.resize((len + 7) / 8);
      std::memcpy(aligned_.data(), data, len);
      data = reinterpret_cast<const uint8_t*>(aligned_.data());
    }
    ++inflight_;
    // The engine call runs here, on the strand: reads take microseconds, and writes do
    // not wait for fsync (the response waits instead, below).
    uint64_t ticket = server_->dispatcher->Handle(session_, data, len, fbb_);
    Buffer frame = Frame(fbb_);
    if (ticket == 0) return Enqueue(std::move(frame));
    uint64_t id = RequestIdOf(frame);
    auto self = shared_from_this();
    server_->durable_waits.fetch_add(1);
    server_->engine->WhenDurable(ticket, [self, id, frame = std::move(frame)](Status s) mutable {
      Server::Impl* server = self->server_;
      asio::post(self->strand_, [self, id, s, frame = std::move(frame)]() mutable {
        if (!s.ok()) {
          // Applied in memory but not durable: the client must not take it as done.
          flatbuffers::FlatBufferBuilder fbb;
          Dispatcher::EncodeError(id, Status::IoError("write not durable: " + s.message()), fbb);
          frame = Frame(fbb);
        }
        self->Enqueue(std::move(frame));
      });
      self.reset();
      server->durable_waits.fetch_sub(1);  // Stop waits for this before the io_context goes
    });
  }

  // Change-feed pushes (feed_push.cc), on the strand. At most a few frames wait in the
  // write queue: a subscriber that does not read leaves its events in its bounded
  // subscription buffer, which ends the subscription when full, never here.
  void PushFeeds() {
    if (closing_ || session_.subscriptions.empty()) return;
    constexpr size_t kMaxQueuedPushes = 8;
    if (pushes_queued_ >= kMaxQueuedPushes) return;  // OnWritten calls again
    DrainSubscriptions(session_, kMaxQueuedPushes - pushes_queued_,
                       [&](flatbuffers::FlatBufferBuilder& fbb) {
                         queue_.push_back(Frame(fbb));
                         ++pushes_queued_;
                       });
    if (!writing_) WriteQueued();
  }

  void OnReadEnd() {
    read_done_ = true;
    MaybeClose();
  }

  void Reject(const Status& status) {
    flatbuffers::FlatBufferBuilder fbb;
    Dispatcher::EncodeError(0, status, fbb);
    ++inflight_;
    // Read nothing more, but close only once every earlier request is answered too:
    // a write waiting for its fsync must still get its acknowledgement.
    read_done_ = true;
    Enqueue(Frame(fbb));
  }

  static Buffer Frame(const flatbuffers::FlatBufferBuilder& fbb) {
    Buffer out(kFrameHeaderBytes + fbb.GetSize());
    EncodeFrameLength(static_cast<uint32_t>(fbb.GetSize()), out.data());
    std::memcpy(out.data() + kFrameHeaderBytes, fbb.GetBufferPointer(), fbb.GetSize());
    return out;
  }

  static uint64_t RequestIdOf(const Buffer& frame) {
    return flatbuffers::GetRoot<proto::Response>(frame.data() + kFrameHeaderBytes)->id();
  }

  void Enqueue(Buffer frame) {
    queue_.push_back(std::move(frame));
    if (!writing_) WriteQueued();
  }

  void WriteQueued() {
    if (queue_.empty() || closing_) return;
    writing_ = true;
    batch_.clear();
    std::swap(batch_, queue_);
    pushes_in_batch_ = pushes_queued_;
    pushes_queued_ = 0;
    std::vector<asio::const_buffer> bufs;
    bufs.reserve(batch_.size());
    for (const auto& b : batch_) bufs.emplace_back(asio::buffer(b));
    write_started_ = std::chrono::steady_clock::now();
    auto self = shared_from_this();
    asio::async_write(socket_, bufs,
                      asio::bind_executor(strand_, [self](boost::system::error_code ec, size_t) {
                        self->OnWritten(ec);
                      }));
  }

  void OnWritten(boost::system::error_code ec) {
    writing_ = false;
    inflight_ -= batch_.size() - pushes_in_batch_;  // pushes answer no request
    pushes_in_batch_ = 0;
    batch_.clear();
    if (ec) {
      closing_ = true;
      return Close();
    }
    PushFeeds();
    WriteQueued();
    if (read_paused_ && inflight_ < server_->options.max_inflight_per_connection) {
      read_paused_ = false;
      HandleFrames();
    }
    MaybeClose();
  }

  // Closes once the peer stopped sending (or we are draining) and nothing is owed.
  void MaybeClose() {
    if ((read_done_ || draining_) && inflight_ == 0 && !writing_ && !reading_) Close();
  }

  void Close() {
    if (closed_) return;
    closed_ = true;
    closing_ = true;
    boost::system::error_code ec;
    CancelSubscriptions(session_);
    idle_timer_.cancel();
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
    std::lock_guard lock(server_->conns_mu);
    server_->conns.erase(this);
  }

  void ArmIdleTimer() {
    auto self = shared_from_this();
    idle_timer_.expires_after(std::chrono::milliseconds(server_->options.idle_timeout_ms));
    idle_timer_.async_wait([self](boost::system::error_code ec) {
      if (ec || self->closed_) return;
      auto idle = std::chrono::steady_clock::now() - self->last_activity_;
      auto limit = std::chrono::milliseconds(self->server_->options.idle_timeout_ms);
      if (self->inflight_ == 0 && idle >= limit && self->session_.subscriptions.empty()) {
        spdlog::info("closing a connection idle for {} ms", self->server_->options.idle_timeout_ms);
        return self->Close();
      }
      // A client that stopped reading holds its responses (and a connection slot)
      // forever; one write outstanding this long means it is gone or stuck.
      if (self->writing_ && std::chrono::steady_clock::now() - self->write_started_ >= limit) {
        spdlog::warn("closing a connection that has not read its responses for {} ms",
                     self->server_->options.idle_timeout_ms);
        return self->Close();
      }
      self->ArmIdleTimer();
    });
  }

  Server::Impl* server_;
  tcp::socket socket_;
  asio::strand<asio::io_context::executor_type> strand_;
  asio::steady_timer idle_timer_;
  Session session_;
  Buffer rbuf_ = Buffer(64 << 10);  // bytes read, [rstart_, rend_) not yet handled
  size_t rstart_ = 0, rend_ = 0;
  std::vector<uint64_t> aligned_;  // 8-aligned scratch for misaligned frames
  flatbuffers::FlatBufferBuilder fbb_{4096};
  std::vector<Buffer> queue_, batch_;
  uint64_t inflight_ = 0;  // requests read whose response is not yet written
  size_t pushes_queued_ = 0, pushes_in_batch_ = 0;  // push frames in queue_ / batch_
  bool reading_ = false, writing_ = false, read_paused_ = false, read_done_ = false;
  bool draining_ = false, closing_ = false, closed_ = false;
  std::chrono::steady_clock::time_point last_activity_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point write_started_;
};

void Server::Impl::Accept() {
  acceptor->async_accept([this](boost::system::error_code ec, tcp::socket socket) {
    if (stopping) return;
    if (!ec) {
      counters.connections_total.fetch_add(1);
      if (counters.connections_open.load() >= options.max_connections) {
        // Over the limit: say why, then close.
        flatbuffers::FlatBufferBuilder fbb;
        Dispatcher::EncodeError(0, Status::ResourceExhausted("too many connections"), fbb);
        uint8_t len[4];
        EncodeFrameLength(static_cast<uint32_t>(fbb.GetSize()), len);
        boost::system::error_code wec;
        asio::write(socket,
                    std::array<asio::const_buffer, 2>{
                        asio::buffer(len), asio::buffer(fbb.GetBufferPointer(), fbb.GetSize())},
                    wec);
        socket.close(wec);
      } else {
        counters.connections_open.fetch_add(1);
        auto conn = std::make_shared<Connection>(this, std::move(socket));
        bool late;
        {
          std::lock_guard lock(conns_mu);
          late = stopping;  // Stop already took its list of connections to drain
          conns[conn.get()] = conn;
        }
        conn->Start();
        if (late) conn->Drain();
      }
    } else if (ec != asio::error::operation_aborted) {
      spdlog::warn("accept failed: {}", ec.message());
    }
    if (!stopping) Accept();
  });
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() { Stop(); }

Result<std::unique_ptr<Server>> Server::Start(Engine* engine, const ServerOptions& options) {
  if (options.io_threads < 1) return Status::InvalidArgument("io_threads must be >= 1");
  auto impl = std::make_unique<Impl>();
  impl->engine = engine;
  impl->options = options;
  impl->dispatcher = std::make_unique<Dispatcher>(engine, &impl->counters, options.slow_op_us);
  try {
    tcp::endpoint ep(asio::ip::make_address(options.host), options.port);
    impl->acceptor = std::make_unique<tcp::acceptor>(impl->ioc);
    impl->acceptor->open(ep.protocol());
    impl->acceptor->set_option(tcp::acceptor::reuse_address(true));
    impl->acceptor->bind(ep);
    impl->acceptor->listen(asio::socket_base::max_listen_connections);
  } catch (const boost::system::system_error& e) {
    return Status::Unavailable("cannot listen on " + options.host + ":" +
                               std::to_string(options.port) + ": " + e.what());
  }
  impl->work.emplace(asio::make_work_guard(impl->ioc));
  impl->Accept();
  Impl* p = impl.get();
  for (int i = 0; i < options.io_threads; ++i) {
    impl->threads.emplace_back([p] {
      try {
        p->ioc.run();
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
  {
    std::lock_guard lock(impl_->conns_mu);
    impl_->stopping = true;
  }
  asio::post(impl_->ioc, [p = impl_.get()] {
    boost::system::error_code ec;
    p->acceptor->close(ec);
  });
  std::vector<std::shared_ptr<Connection>> conns;
  {
    std::lock_guard lock(impl_->conns_mu);
    for (auto& [ptr, weak] : impl_->conns)
      if (auto c = weak.lock()) conns.push_back(std::move(c));
  }
  for (auto& c : conns) c->Drain();
  conns.clear();
  // In-flight requests finish and their responses go out (durable writes included).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    {
      std::lock_guard lock(impl_->conns_mu);
      if (impl_->conns.empty()) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  // A write still waiting for its fsync will post its answer; let it, then stop.
  for (int i = 0; i < 60'000 && impl_->durable_waits.load() > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  impl_->work.reset();
  impl_->ioc.stop();
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
}

}  // namespace agentstore::net
