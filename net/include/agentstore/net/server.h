// Server: agentstored's network front end. Accepts TCP connections, reads length-
// prefixed FlatBuffers requests (pipelined: many in flight per connection, answered as
// they complete, tagged with their ids), checks each with the FlatBuffers verifier,
// authenticates, dispatches to the Engine through the operation table, and writes
// responses. Each I/O thread owns its connections (one event loop per thread): a read is
// answered on the thread that read it, straight into the connection's output buffer.
// Writes are acknowledged only once durable; their fsyncs are shared (group commit)
// without parking an I/O thread.
//
// Thread-safety: Start and Stop from one thread. Counters are reported by the status
// operation.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "agentstore/common/status.h"
#include "agentstore/engine/engine.h"

namespace agentstore::net {

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 7420;  // 0: pick a free port (see Server::port)
  int io_threads = 2;
  uint32_t max_frame_bytes = 16u << 20;  // a larger frame gets an error, then the connection closes
  uint32_t max_connections = 1024;       // further connections get an error and are closed
  uint32_t max_inflight_per_connection = 256;  // reading pauses at this many unanswered requests
  uint32_t idle_timeout_ms = 300'000;          // a silent connection is closed after this
  uint32_t slow_op_us = 10'000;                // operations slower than this are logged
  // Bytes of answers a connection may have queued (not yet taken by the kernel) before
  // the server stops reading it; a client that never reads cannot grow the server.
  uint32_t max_queued_bytes = 8u << 20;
  // Bytes one answer's records may hold: a longer page is cut short with a cursor.
  uint32_t max_response_bytes = 4u << 20;
  // A connection must authenticate within this, and a frame, once begun, must arrive
  // whole within frame_timeout_ms; otherwise it is closed.
  uint32_t auth_timeout_ms = 10'000;
  uint32_t frame_timeout_ms = 10'000;
  // Connections not yet authenticated beyond this many (or beyond max_connections) make
  // room by closing the oldest unauthenticated one, so they never hold the slots of
  // authenticated clients.
  uint32_t max_unauthenticated = 128;
  // Failed authenticate requests (or frames that are no request) on a connection not
  // yet authenticated; the last is answered, then the connection is closed.
  uint32_t max_auth_failures = 5;
};

class Server {
 public:
  // Binds, starts the I/O threads and begins accepting.
  static Result<std::unique_ptr<Server>> Start(Engine* engine, const ServerOptions& options);
  // Stops (see Stop).
  ~Server();

  // The bound port (useful with port 0).
  uint16_t port() const;
  // Stops accepting, lets in-flight requests finish and their responses go out (up to
  // a few seconds), then closes every connection and joins the I/O threads.
  void Stop();

  struct Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace agentstore::net
