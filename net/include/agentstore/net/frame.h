// Framing of the wire protocol: a 4-byte little-endian length, then that many bytes of
// one FlatBuffers message (Request or Response in protocol.fbs).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace agentstore::net {

inline constexpr size_t kFrameHeaderBytes = 4;
inline constexpr uint32_t kDefaultMaxFrameBytes = 16u << 20;
inline constexpr uint16_t kDefaultPort = 7420;
// Subscriptions one connection may hold (docs/protocol.md, "Change feed"): an app server
// multiplexes its users' subscriptions over one connection, so one push write carries
// the events of many of them (the reason, measured: dispatch.cc).
inline constexpr size_t kMaxSubscriptionsPerConnection = 1024;

inline void EncodeFrameLength(uint32_t n, uint8_t out[4]) {
  out[0] = static_cast<uint8_t>(n);
  out[1] = static_cast<uint8_t>(n >> 8);
  out[2] = static_cast<uint8_t>(n >> 16);
  out[3] = static_cast<uint8_t>(n >> 24);
}

inline uint32_t DecodeFrameLength(const uint8_t in[4]) {
  return static_cast<uint32_t>(in[0]) | static_cast<uint32_t>(in[1]) << 8 |
         static_cast<uint32_t>(in[2]) << 16 | static_cast<uint32_t>(in[3]) << 24;
}

}  // namespace agentstore::net
