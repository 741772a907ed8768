// Wall-clock implementation of Clock.
#include "agentstore/common/clock.h"

#include <chrono>

namespace agentstore {

int64_t SystemClock::NowMicros() const {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

SystemClock* SystemClock::Default() {
  static SystemClock clock;
  return &clock;
}

}  // namespace agentstore
