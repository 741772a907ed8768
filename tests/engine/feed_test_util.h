// Helpers of the in-process change-feed tests (feed_test.cc, feed_adversarial_test.cc).
#pragma once

#include <chrono>
#include <functional>
#include <vector>

#include "agentstore/engine/feed.h"

namespace agentstore::testing {

// Polls until `done(events)` holds or the subscription finishes or `ms` pass.
inline std::vector<Subscription::Event> Drain(
    Subscription& sub, const std::function<bool(const std::vector<Subscription::Event>&)>& done,
    int ms = 10000) {
  std::vector<Subscription::Event> out;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < deadline) {
    sub.Poll(&out, 100000);
    if (done(out) || sub.Finished()) break;
    sub.Wait(20);
  }
  sub.Poll(&out, 100000);
  return out;
}

}  // namespace agentstore::testing
