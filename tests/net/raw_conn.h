// A raw TCP connection to agentstored speaking frames with blocking POSIX sockets, for
// tests where the client library would hide a fault (tests/net/wire_test.cc,
// tests/net/feed_adversarial_test.cc).
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "agentstore/net/frame.h"
#include "protocol_generated.h"

namespace agentstore::testing {

using flatbuffers::FlatBufferBuilder;
using proto::ErrorCode;

// One decoded response frame.
struct Reply {
  std::vector<uint8_t> bytes;
  const proto::Response* r() const { return flatbuffers::GetRoot<proto::Response>(bytes.data()); }
  uint64_t id() const { return r()->id(); }
  ErrorCode code() const { return r()->code(); }
  std::string message() const { return r()->message() ? r()->message()->str() : ""; }
};

inline std::string CodeName(ErrorCode c) { return proto::EnumNameErrorCode(c); }

// A blocking TCP connection with send/receive timeouts.
class RawConn {
 public:
  explicit RawConn(uint16_t port, int timeout_ms = 5000) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) return;
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) Close();
  }
  ~RawConn() { Close(); }
  RawConn(const RawConn&) = delete;
  RawConn& operator=(const RawConn&) = delete;

  bool ok() const { return fd_ >= 0; }
  // Closes with a reset (SO_LINGER 0): the server's pending writes fail at once.
  void Abort() {
    linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    Close();
  }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  bool SendAll(const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    while (n > 0) {
      ssize_t k = ::send(fd_, p, n, MSG_NOSIGNAL);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) return false;
      p += k;
      n -= static_cast<size_t>(k);
    }
    return true;
  }
  bool SendBytes(const std::vector<uint8_t>& v) { return SendAll(v.data(), v.size()); }
  // A frame: the 4-byte length of `body`, then `body`.
  bool SendFrame(const void* body, size_t n) {
    uint8_t h[4];
    net::EncodeFrameLength(static_cast<uint32_t>(n), h);
    return SendAll(h, 4) && SendAll(body, n);
  }
  bool SendFrame(const FlatBufferBuilder& fbb) {
    return SendFrame(fbb.GetBufferPointer(), fbb.GetSize());
  }

  enum class Got { kData, kEof, kTimeout, kError };
  // Reads exactly n bytes.
  Got ReadExact(uint8_t* out, size_t n) {
    size_t got = 0;
    while (got < n) {
      ssize_t k = ::recv(fd_, out + got, n - got, 0);
      if (k == 0) return Got::kEof;
      if (k < 0) {
        if (errno == EINTR) continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? Got::kTimeout : Got::kError;
      }
      got += static_cast<size_t>(k);
    }
    return Got::kData;
  }

  // The next response frame, verified as a Response; nullopt on EOF, timeout or a
  // malformed frame (with a test failure for the latter two).
  std::optional<Reply> Read() {
    uint8_t h[4];
    Got g = ReadExact(h, 4);
    if (g != Got::kData) {
      last_ = g;
      return std::nullopt;
    }
    uint32_t n = net::DecodeFrameLength(h);
    if (n > (64u << 20)) {
      ADD_FAILURE() << "response frame of " << n << " bytes";
      return std::nullopt;
    }
    Reply r;
    r.bytes.resize(n);
    g = ReadExact(r.bytes.data(), n);
    if (g != Got::kData) {
      last_ = g;
      ADD_FAILURE() << "response frame cut short";
      return std::nullopt;
    }
    flatbuffers::Verifier v(r.bytes.data(), r.bytes.size(), 64, 10'000'000);
    if (!v.VerifyBuffer<proto::Response>(nullptr)) {
      ADD_FAILURE() << "server sent a frame that is not a valid Response";
      return std::nullopt;
    }
    last_ = Got::kData;
    return r;
  }
  Got last() const { return last_; }
  // The answer (kind response) to request `id`; push frames before it go to `pushes`.
  std::optional<Reply> Answer(uint64_t id, std::vector<Reply>* pushes = nullptr) {
    while (auto r = Read()) {
      if (r->r()->kind() == proto::FrameKind::response && r->r()->id() == id) return r;
      if (pushes) pushes->push_back(std::move(*r));
    }
    return std::nullopt;
  }

  // True when the peer closed the connection (recv returns 0, or a reset) within the
  // timeout, after any frames still buffered have been read.
  bool ReadsEof() {
    uint8_t b[4096];
    while (true) {
      ssize_t k = ::recv(fd_, b, sizeof b, 0);
      if (k == 0) return true;
      if (k > 0) continue;
      if (errno == EINTR) continue;
      return errno == ECONNRESET;
    }
  }

 private:
  int fd_ = -1;
  Got last_ = Got::kData;
};

}  // namespace agentstore::testing
