// agentstored: opens the data directory (rebuilding memory from RocksDB), reports that
// it is ready, and runs until SIGTERM/SIGINT, then closes the store cleanly. The network
// protocol is not served yet (see net/CMakeLists.txt).
#include <signal.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <chrono>

#include "agentstore/engine/engine.h"

int main(int argc, char** argv) {
  CLI::App app{"agentstored - the agentstore server"};
  std::string data_dir = "./data";
  std::string durability = "always";
  int shards = 16;
  app.add_option("--data-dir", data_dir, "data directory (created if missing)")
      ->capture_default_str();
  app.add_option("--durability", durability, "none | batch | always")->capture_default_str();
  app.add_option("--shards", shards, "in-memory partitions")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  auto mode = agentstore::storage::ParseDurability(durability);
  if (!mode) {
    spdlog::error("unknown durability '{}': use none, batch or always", durability);
    return 2;
  }
  // Block the stop signals before any thread starts, then wait for them synchronously.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  agentstore::EngineOptions options;
  options.data_dir = data_dir;
  options.durability = *mode;
  options.shards = shards;
  auto start = std::chrono::steady_clock::now();
  auto engine = agentstore::Engine::Open(options);
  if (!engine.ok()) {
    spdlog::error("cannot open {}: {}", data_dir, engine.status().ToString());
    return 1;
  }
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  start)
                .count();
  auto stats = (*engine)->Stats();
  uint64_t total = 0;
  for (uint64_t n : stats.records) total += n;
  spdlog::info("agentstored ready: data_dir={} durability={} records={} opened_in={}ms", data_dir,
               durability, total, ms);
  spdlog::warn("the network protocol is not implemented yet; this server only holds the store");
  int sig = 0;
  sigwait(&stop, &sig);
  spdlog::info("signal {} received: closing the store", sig);
  engine->reset();
  spdlog::info("store closed cleanly");
  return 0;
}
