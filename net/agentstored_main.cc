// agentstored: opens the data directory (rebuilding memory from RocksDB), serves the
// binary protocol, and on SIGTERM/SIGINT stops accepting, finishes in-flight requests,
// flushes and closes the store. On first start of an empty store it creates a service
// key and an admin key and writes them to <data-dir>/initial-keys (mode 0600).
#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "agentstore/engine/engine.h"
#include "agentstore/net/frame.h"
#include "agentstore/net/server.h"

namespace {

// Writes the first keys where only the owner can read them. Refuses to overwrite.
agentstore::Status WriteInitialKeys(agentstore::Engine& engine, const std::string& path) {
  using namespace agentstore;  // NOLINT
  fb::ApiKeyT service;
  service.role = fb::KeyRole::service;
  service.name = "initial service key";
  auto s = engine.CreateApiKey(Scope::Service(), service);
  if (!s.ok()) return s.status();
  fb::ApiKeyT admin;
  admin.role = fb::KeyRole::admin;
  admin.name = "initial admin key";
  auto a = engine.CreateApiKey(Scope::Service(), admin);
  if (!a.ok()) return a.status();
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0) return Status::IoError("cannot create " + path + ": " + strerror(errno));
  std::string text = "service " + s->secret + "\nadmin " + a->secret + "\n";
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::fsync(fd);
  ::close(fd);
  if (!ok) return Status::IoError("cannot write " + path);
  return Status::OK();
}

// The closed store at exit (see the end of main): reachable, so leak checkers do not
// report it; volatile, so the store to it is not optimized away.
agentstore::Engine* volatile g_closed_engine = nullptr;

}  // namespace

int main(int argc, char** argv) {
  // Everything the server creates (store files, RocksDB's LOG, backups, the port file) is
  // owner-only: the data is every user's.
  ::umask(077);
  CLI::App app{"agentstored - the agentstore server"};
  app.set_config("--config", "", "read options from a TOML/INI file");
  std::string data_dir = "./data";
  std::string durability = "always";
  int shards = 16;
  agentstore::net::ServerOptions net;
  std::string port_file;
  app.add_option("--data-dir", data_dir, "data directory (created if missing)")
      ->capture_default_str();
  app.add_option("--durability", durability, "none | batch | always")->capture_default_str();
  app.add_option("--shards", shards, "in-memory partitions")->capture_default_str();
  app.add_option("--host", net.host, "listen address")->capture_default_str();
  app.add_option("--port", net.port, "listen port (0: any free port)")->capture_default_str();
  app.add_option("--port-file", port_file, "write the bound port here once listening");
  app.add_option("--io-threads", net.io_threads, "I/O threads")->capture_default_str();
  app.add_option("--max-frame-bytes", net.max_frame_bytes)->capture_default_str();
  app.add_option("--max-connections", net.max_connections)->capture_default_str();
  app.add_option("--max-inflight", net.max_inflight_per_connection,
                 "unanswered requests per connection before reading pauses")
      ->capture_default_str();
  app.add_option("--idle-timeout-ms", net.idle_timeout_ms)->capture_default_str();
  app.add_option("--max-queued-bytes", net.max_queued_bytes,
                 "bytes of unsent answers per connection before reading pauses")
      ->capture_default_str();
  app.add_option("--max-response-bytes", net.max_response_bytes,
                 "bytes of records one answer may hold; a longer page is cut short with a cursor")
      ->capture_default_str();
  app.add_option("--auth-timeout-ms", net.auth_timeout_ms,
                 "a connection must authenticate within this")
      ->capture_default_str();
  app.add_option("--frame-timeout-ms", net.frame_timeout_ms,
                 "a frame, once begun, must arrive whole within this")
      ->capture_default_str();
  app.add_option("--max-unauthenticated", net.max_unauthenticated,
                 "connections not yet authenticated; beyond it the oldest is closed")
      ->capture_default_str();
  app.add_option("--max-auth-failures", net.max_auth_failures,
                 "failed authenticate requests before the connection closes")
      ->capture_default_str();
  app.add_option("--slow-op-us", net.slow_op_us, "log operations slower than this")
      ->capture_default_str();
  agentstore::MemoryOptions memory;
  app.add_option("--memory-dim", memory.dim,
                 "user_memory vector dimension, fixed when the store is created (default 384)");
  app.add_option("--memory-metric", memory.metric,
                 "cosine | l2, fixed when the store is created (default cosine)");
  app.add_option("--memory-exact-threshold", memory.exact_threshold,
                 "a user's memories are scanned exactly up to this many, then use HNSW")
      ->capture_default_str();
  app.add_option("--memory-ef", memory.user_graph.ef_search, "per-user HNSW search breadth")
      ->capture_default_str();
  app.add_option("--memory-global-ef", memory.global_graph.ef_search, "global HNSW search breadth")
      ->capture_default_str();
  app.add_option("--memory-sweep-ms", memory.sweep_interval_ms,
                 "how often expired memories and collection records are removed (0: never)")
      ->capture_default_str();
  app.add_option("--memory-graph-save-ms", memory.graph_save_interval_ms,
                 "how often changed HNSW graphs are saved to the data directory (0: only on a "
                 "clean stop and memory_graphs_save)")
      ->capture_default_str();
  int64_t retention_days = 0, lease_ttl_ms = 300000;
  bool retention_purge = false;
  app.add_option("--usage-retention-days", retention_days,
                 "usage logs older than this leave memory at open and on usage_expire "
                 "(0: keep; rollups always stay)")
      ->capture_default_str();
  app.add_flag("--usage-retention-purge", retention_purge,
               "also delete expired usage logs from disk");
  app.add_option("--lease-ttl-ms", lease_ttl_ms, "an unreleased concurrent-limit lease expires")
      ->capture_default_str();
  bool recover_damaged_wal = false;
  app.add_flag("--recover-damaged-wal", recover_damaged_wal,
               "start even if the WAL is damaged before its end, from the last consistent "
               "point, dropping the logged writes after the damage (the log says how many)");
  uint64_t feed_retention_s = 86400, feed_retention_mb = 4096;
  size_t feed_buffer = 100000;
  size_t feed_max_subscriptions = agentstore::FeedOptions{}.max_subscriptions;
  app.add_option("--feed-retention-seconds", feed_retention_s,
                 "change feed: keep the log this long for subscribers to resume from "
                 "(0 and --feed-retention-mb 0: only what recovery still needs)")
      ->capture_default_str();
  app.add_option("--feed-retention-mb", feed_retention_mb,
                 "change feed: at most this much kept log (checked every 10 minutes)")
      ->capture_default_str();
  app.add_option("--feed-buffer-events", feed_buffer,
                 "change feed: events a subscriber may have waiting before it is cut off "
                 "(it resumes from its resume point)")
      ->capture_default_str();
  app.add_option("--feed-max-subscriptions", feed_max_subscriptions,
                 "change feed: open subscriptions at most, over all connections (1024 per "
                 "connection); past it subscribe answers resource_exhausted")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  agentstore::EngineOptions image_defaults;
  bool no_image = false;
  uint64_t image_min_changes = image_defaults.image_min_changes;
  int image_check_ms = image_defaults.image_check_ms;
  app.add_flag("--no-table-image", no_image,
               "start by scanning RocksDB; never read or write <data-dir>/image");
  app.add_option("--image-min-changes", image_min_changes,
                 "write a new table image once this many changes were logged since the last "
                 "(checked every --image-check-ms, and at a clean stop)")
      ->capture_default_str();
  app.add_option("--image-check-ms", image_check_ms,
                 "how often the background writer checks (0: only at a clean stop and image_save)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (retention_days < 0 || lease_ttl_ms <= 0) {
    spdlog::error("--usage-retention-days must be >= 0 and --lease-ttl-ms > 0");
    return 2;
  }

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
  signal(SIGPIPE, SIG_IGN);

  agentstore::EngineOptions options;
  options.data_dir = data_dir;
  options.durability = *mode;
  options.shards = shards;
  options.memory = memory;
  options.usage_log_retention_micros = retention_days * 86'400'000'000;
  options.usage_log_retention_purge_store = retention_purge;
  options.lease_ttl_micros = lease_ttl_ms * 1000;
  options.recover_damaged_wal = recover_damaged_wal;
  options.feed_retention_seconds = feed_retention_s;
  options.feed_retention_mb = feed_retention_mb;
  options.feed.max_queued_events = std::max<size_t>(feed_buffer, 1);
  options.feed.max_subscriptions = feed_max_subscriptions;
  options.table_image = !no_image;
  options.image_min_changes = image_min_changes;
  options.image_check_ms = image_check_ms;
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
  if (stats.records[static_cast<int>(agentstore::RecordType::kApiKey)] == 0) {
    std::string keys = (std::filesystem::path(data_dir) / "initial-keys").string();
    auto s = WriteInitialKeys(**engine, keys);
    if (!s.ok()) {
      spdlog::error("cannot create the initial keys: {}", s.ToString());
      return 1;
    }
    spdlog::info("new store: a service key and an admin key are in {} (readable by this user only)",
                 keys);
  }
  auto server = agentstore::net::Server::Start(engine->get(), net);
  if (!server.ok()) {
    spdlog::error("{}", server.status().ToString());
    return 1;
  }
  uint64_t total = 0;
  for (uint64_t n : (*engine)->Stats().records) total += n;
  if (!port_file.empty()) {
    std::ofstream(port_file + ".tmp") << (*server)->port() << "\n";
    std::filesystem::rename(port_file + ".tmp", port_file);
  }
  auto image = (*engine)->Image();
  spdlog::info(
      "agentstored ready: listening on {}:{} data_dir={} durability={} records={} opened_in={}ms "
      "({})",
      net.host, (*server)->port(), data_dir, durability, total, ms,
      image.used ? "from the table image, " + std::to_string(image.changed_keys) +
                       " changed keys read from RocksDB"
                 : "scanned RocksDB");
  int sig = 0;
  sigwait(&stop, &sig);
  spdlog::info("signal {} received: finishing in-flight requests", sig);
  (*server)->Stop();
  server->reset();
  agentstore::Status closed = (*engine)->Close();
  if (!closed.ok()) {
    spdlog::error("closing the store: {}", closed.ToString());
    return 1;
  }
  spdlog::info("store closed cleanly");
  // Everything is on disk and RocksDB is closed; freeing the in-memory store object by
  // object (millions of small allocations: seconds for a large store) would only delay
  // the exit, and the OS takes the address space back at once. Kept reachable for leak
  // checkers through a volatile global: a function-local static that is never read was
  // optimized away, and LeakSanitizer reported the whole store at every exit.
  g_closed_engine = engine->release();
  return 0;
}
