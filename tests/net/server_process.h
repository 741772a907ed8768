// Runs a real agentstored process for multi-process tests: on a free port, in a given
// data directory; reads its initial keys; stops it with SIGTERM or SIGKILL.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "agentstore/client.h"
#include "test_util.h"

namespace agentstore::testing {

class ServerProcess {
 public:
  // Starts agentstored and waits until it listens. Extra flags go after the defaults.
  // `port` 0 picks a free one.
  bool Start(const std::string& data_dir, std::vector<std::string> extra = {}, uint16_t port = 0) {
    data_dir_ = data_dir;
    port_file_ = data_dir + ".port";
    std::filesystem::remove(port_file_);
    std::vector<std::string> args = {AGENTSTORED_PATH,     "--data-dir",  data_dir,  "--port",
                                     std::to_string(port), "--port-file", port_file_};
    args.insert(args.end(), extra.begin(), extra.end());
    pid_ = fork();
    if (pid_ == 0) {
      std::string log = data_dir + ".log";
      freopen(log.c_str(), "a", stdout);
      freopen(log.c_str(), "a", stderr);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    for (int i = 0; i < 1000; ++i) {
      std::ifstream f(port_file_);
      if (f >> port_) return true;
      int status;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  // The key of `role` ("service" or "admin") from <data-dir>/initial-keys.
  std::string Key(const std::string& role) const {
    std::ifstream f(data_dir_ + "/initial-keys");
    std::string r, k;
    while (f >> r >> k)
      if (r == role) return k;
    return "";
  }

  ClientOptions Options(const std::string& key) const {
    ClientOptions o;
    o.port = port_;
    o.key = key;
    o.timeout = std::chrono::milliseconds(20000);
    return o;
  }
  Client Connect(const std::string& key, int connections = 1) const {
    ClientOptions o = Options(key);
    o.connections = connections;
    auto c = Client::Connect(o);
    if (!c.ok()) throw std::runtime_error(c.status().ToString());
    return std::move(c).value();
  }

  // SIGTERM and wait; returns the exit status (0 on a clean stop).
  int Stop() { return Signal(SIGTERM); }
  int Kill() { return Signal(SIGKILL); }
  ~ServerProcess() {
    if (pid_ > 0) Kill();
  }

  uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  const std::string& data_dir() const { return data_dir_; }
  std::string addr() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int Signal(int sig) {
    if (pid_ <= 0) return -1;
    kill(pid_, sig);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  std::string data_dir_, port_file_;
};

// A fresh agentstored per test, with a service and an admin client.
class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.Start(dir_.sub("data"))) << "agentstored did not start";
    svc_.emplace(server_.Connect(server_.Key("service")));
    admin_.emplace(server_.Connect(server_.Key("admin")));
  }
  Client& svc() { return *svc_; }
  Client& admin() { return *admin_; }
  Uuid NewUserId(const std::string& email) {
    fb::UserT u;
    u.email = email;
    return ToUuid(Must(svc().CreateUser(u).get())->id());
  }
  // A client holding a new user key of `user`.
  Client UserClient(const Uuid& user) {
    fb::ApiKeyT k;
    k.role = fb::KeyRole::user;
    k.user_id = std::make_unique<fb::Uuid>(ToFb(user));
    return server_.Connect(Must(svc().CreateApiKey(k).get()).secret);
  }

  TempDir dir_;
  ServerProcess server_;
  std::optional<Client> svc_, admin_;
};

// A shell command's exit code and its combined stdout and stderr.
struct CtlRun {
  int code;
  std::string out;
};
inline CtlRun RunCommand(const std::string& cmd) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int status = pclose(p);
  return {WEXITSTATUS(status), out};
}
#ifdef AGENTCTL_PATH
// agentctl against `s`, authenticated with `key`.
inline CtlRun Agentctl(const ServerProcess& s, const std::string& key, const std::string& args) {
  return RunCommand(std::string(AGENTCTL_PATH) + " --addr " + s.addr() + " --key " + key + " " +
                    args);
}
#endif

}  // namespace agentstore::testing
