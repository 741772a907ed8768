// WAL damage on the real server (issue 11): agentstored is killed with SIGKILL, its WAL
// is damaged, and a plain start must exit non-zero naming the file and byte offset
// without changing the data directory; --recover-damaged-wal starts, says how many
// writes it drops, keeps a prefix of the acknowledged writes, and a plain start after
// it works. A cut tail (the only damage a kill -9 itself leaves) starts plainly.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <vector>

#include "server_process.h"
#include "test_util.h"

namespace agentstore::testing {
namespace {

namespace fs = std::filesystem;

// Every file under `dir` with its contents.
std::map<std::string, std::string> Contents(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    out[fs::relative(e.path(), dir).string()].assign(std::istreambuf_iterator<char>(in),
                                                     std::istreambuf_iterator<char>());
  }
  return out;
}

fs::path BiggestWal(const std::string& dir) {
  fs::path found;
  uintmax_t biggest = 0;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".log" && e.file_size() > biggest) {
      biggest = e.file_size();
      found = e.path();
    }
  return found;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Starts a server, creates `n` users (each acknowledged), and kills it with SIGKILL.
std::vector<Uuid> WriteThenKill(const std::string& data, int n) {
  ServerProcess server;
  EXPECT_TRUE(server.Start(data));
  Client svc = server.Connect(server.Key("service"));
  std::vector<Uuid> ids;
  for (int i = 0; i < n; ++i) {
    fb::UserT u;
    u.email = "wal" + std::to_string(i) + "@example.com";
    ids.push_back(Id(Must(svc.CreateUser(u).get())->id()));
  }
  server.Kill();
  return ids;
}

// How many of `ids` exist, failing unless they are a prefix.
size_t PrefixOfUsers(Client& svc, const std::vector<Uuid>& ids) {
  size_t held = 0;
  while (held < ids.size() && svc.GetUser(ids[held]).get().ok()) ++held;
  for (size_t i = held; i < ids.size(); ++i)
    EXPECT_CODE(svc.GetUser(ids[i]).get(), kNotFound)
        << "user " << i << " kept after a dropped one";
  return held;
}

TEST(WalDamageE2E, DamagedWalRefusesThenRecoversThenStartsPlainly) {
  TempDir dir;
  const std::string data = dir.sub("data");
  auto ids = WriteThenKill(data, 300);
  fs::path wal = BiggestWal(data);
  ASSERT_FALSE(wal.empty());
  {
    // One flipped bit in a record's payload, with valid records after it.
    std::fstream f(wal, std::ios::in | std::ios::out | std::ios::binary);
    auto at = static_cast<std::streamoff>(fs::file_size(wal) / 3);
    f.seekg(at);
    char c = 0;
    f.get(c);
    f.seekp(at);
    f.put(static_cast<char>(c ^ 0x04));
  }
  auto before = Contents(data);
  std::string cmd = std::string(AGENTSTORED_PATH) + " --data-dir " + data +
                    " --port 0 --port-file " + dir.sub("port");
  CtlRun refused = RunCommand(cmd);
  EXPECT_NE(refused.code, 0) << refused.out;
  EXPECT_NE(refused.out.find(wal.string()), std::string::npos) << refused.out;
  EXPECT_NE(refused.out.find("byte offset"), std::string::npos) << refused.out;
  EXPECT_NE(refused.out.find("--recover-damaged-wal"), std::string::npos) << refused.out;
  EXPECT_TRUE(before == Contents(data)) << "a refused start changed the data directory";
  EXPECT_FALSE(fs::exists(dir.sub("port"))) << "a refused start listened";

  size_t held = 0;
  {
    ServerProcess server;
    ASSERT_TRUE(server.Start(data, {"--recover-damaged-wal"}));
    std::string log = ReadFile(data + ".log");
    EXPECT_NE(log.find("dropping those"), std::string::npos) << log;
    Client svc = server.Connect(server.Key("service"));
    held = PrefixOfUsers(svc, ids);
    EXPECT_GT(held, 0u);
    EXPECT_LT(held, ids.size());
    fb::UserT u;
    u.email = "after@example.com";
    EXPECT_OK(svc.CreateUser(u).get());
    EXPECT_EQ(server.Stop(), 0);
  }
  ServerProcess server;
  ASSERT_TRUE(server.Start(data)) << ReadFile(data + ".log");
  Client svc = server.Connect(server.Key("service"));
  EXPECT_EQ(PrefixOfUsers(svc, ids), held);
  EXPECT_EQ(server.Stop(), 0);
}

// What kill -9 itself can leave: the last record cut. The server starts plainly and
// keeps every acknowledged write before it.
TEST(WalDamageE2E, CutTailAfterKill9StartsPlainly) {
  TempDir dir;
  const std::string data = dir.sub("data");
  auto ids = WriteThenKill(data, 50);
  fs::path wal = BiggestWal(data);
  ASSERT_FALSE(wal.empty());
  fs::resize_file(wal, fs::file_size(wal) - 5);
  ServerProcess server;
  ASSERT_TRUE(server.Start(data)) << ReadFile(data + ".log");
  Client svc = server.Connect(server.Key("service"));
  EXPECT_GE(PrefixOfUsers(svc, ids), ids.size() - 1);
}

}  // namespace
}  // namespace agentstore::testing
