// Helpers shared by the test suites: temporary data directories and engine setup.
#pragma once

#include <functional>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <future>
#include <random>
#include <stdexcept>
#include <string>

#include "agentstore/engine/engine.h"

namespace agentstore::testing {

// A fresh directory under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("agentstore-test-" + std::to_string(getpid()) + "-" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string path() const { return path_.string(); }
  std::string sub(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// Streamable checks of Status/Result: ASSERT_OK(x) << "context"; each copies the
// Status out of `expr` first, so a temporary Result can die safely.
#define ASSERT_OK(expr)                                                           \
  GTEST_AMBIGUOUS_ELSE_BLOCKER_                                                   \
  if (::agentstore::Status _s = ::agentstore::testing::StatusOf(expr); _s.ok()) { \
  } else                                                                          \
    FAIL() << #expr << ": " << _s.ToString()
#define EXPECT_OK(expr)                                                           \
  GTEST_AMBIGUOUS_ELSE_BLOCKER_                                                   \
  if (::agentstore::Status _s = ::agentstore::testing::StatusOf(expr); _s.ok()) { \
  } else                                                                          \
    ADD_FAILURE() << #expr << ": " << _s.ToString()
#define EXPECT_CODE(expr, code_name)                                   \
  GTEST_AMBIGUOUS_ELSE_BLOCKER_                                        \
  if (::agentstore::Status _s = ::agentstore::testing::StatusOf(expr); \
      _s.code() == ::agentstore::StatusCode::code_name) {              \
  } else                                                               \
    ADD_FAILURE() << #expr << " -> " << _s.ToString() << " (wanted " #code_name ") "

inline Status StatusOf(const Status& s) { return s; }
template <typename T>
Status StatusOf(const Result<T>& r) {
  return r.ok() ? Status::OK() : r.status();
}
inline StatusCode CodeOf(const Status& s) { return s.code(); }
template <typename T>
StatusCode CodeOf(const Result<T>& r) {
  return r.ok() ? StatusCode::kOk : r.status().code();
}
inline std::string TextOf(const Status& s) { return s.ToString(); }
template <typename T>
std::string TextOf(const Result<T>& r) {
  return r.ok() ? "ok" : r.status().ToString();
}

inline Uuid Id(const fb::Uuid* u) { return ToUuid(u); }

// The value of a Result that must be OK, by value (safe in a range-for initializer,
// unlike r->rows on a temporary Result).
template <typename T>
T Must(Result<T> r) {
  // GoogleTest reports an exception escaping a test as that test's failure.
  if (!r.ok()) throw std::runtime_error("Must: " + r.status().ToString());
  return std::move(r).value();
}

// Encodes an object-API record as a Row (what the engine would store).
template <typename NT>
Row<typename NT::TableType> PackRow(const NT& obj) {
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(NT::TableType::Pack(fbb, &obj));
  return Row<typename NT::TableType>(
      std::string_view(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize()));
}

inline std::unique_ptr<fb::Uuid> FbId(const Uuid& u) { return std::make_unique<fb::Uuid>(ToFb(u)); }

// A record or listing as comparable text: its bytes, or the error. Used to assert that
// a refused call changed nothing.
template <typename T>
std::string BytesOf(const Result<Row<T>>& r) {
  return r.ok() ? std::string(r.value().bytes()) : "<" + r.status().ToString() + ">";
}
template <typename T>
std::string BytesOf(const Result<std::vector<Row<T>>>& r) {
  if (!r.ok()) return "<" + r.status().ToString() + ">";
  std::string out = "[" + std::to_string(r.value().size()) + "]";
  for (const auto& row : r.value()) out += std::string(row.bytes()) + "|";
  return out;
}
template <typename T>
std::string BytesOf(const Result<Page<T>>& r) {
  if (!r.ok()) return "<" + r.status().ToString() + ">";
  std::string out = "[" + std::to_string(r.value().rows.size()) + "]";
  for (const auto& row : r.value().rows) out += std::string(row.bytes()) + "|";
  return out + "cursor=" + r.value().next_cursor;
}

// Record counts and the write counter, as text.
inline std::string Describe(const EngineStats& s) {
  std::string out;
  for (int t = 1; t <= static_cast<int>(kLastRecordType); ++t)
    out += std::string(RecordTypeName(static_cast<RecordType>(t))) + "=" +
           std::to_string(s.records[t]) + " ";
  return out + "writes=" + std::to_string(s.writes);
}

// An engine over a temp dir with a manual clock; reopen() simulates a restart.
class EngineFixture : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }
  void Open(storage::Durability d = storage::Durability::kNone) {
    EngineOptions o;
    o.data_dir = dir_.sub("data");
    o.durability = d;
    o.clock = &clock_;
    o.shards = 4;
    if (tweak_) tweak_(o);
    auto r = Engine::Open(o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    engine_ = std::move(r).value();
  }
  // Applied to the options of every Open (tests that need other settings).
  std::function<void(EngineOptions&)> tweak_;
  void Reopen() {
    engine_.reset();
    Open();
  }
  Engine& e() { return *engine_; }

  // Creates a user through the service scope.
  Row<fb::User> MakeUser(const std::string& email, std::optional<Uuid> tenant = std::nullopt) {
    fb::UserT u;
    u.email = email;
    u.full_name = "User " + email;
    if (tenant) u.tenant_id = std::make_unique<fb::Uuid>(ToFb(*tenant));
    auto r = e().CreateUser(Scope::Service(), u);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r.value() : Row<fb::User>();
  }
  Row<fb::Agent> MakeAgent(const std::string& name, bool is_public = true) {
    fb::AgentT a;
    a.name = name;
    a.is_public = is_public;
    a.model = "gpt-4o";
    auto r = e().CreateAgent(Scope::Admin(), a);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r.value() : Row<fb::Agent>();
  }
  Row<fb::Chat> MakeChat(const Uuid& user, const std::string& title = "a chat") {
    fb::ChatT c;
    c.user_id = std::make_unique<fb::Uuid>(ToFb(user));
    c.title = title;
    auto r = e().CreateChat(Scope::Service(), c);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r.value() : Row<fb::Chat>();
  }
  Result<Row<fb::Message>> Append(const Scope& s, const Uuid& chat, const std::string& text,
                                  int64_t in_tokens = 0, int64_t out_tokens = 0, int64_t cost = 0) {
    fb::MessageT m;
    m.chat_id = std::make_unique<fb::Uuid>(ToFb(chat));
    m.role = fb::MessageRole::user;
    m.parts = R"([{"type":"text","text":")" + text + R"("}])";
    m.input_tokens = in_tokens;
    m.output_tokens = out_tokens;
    m.cost = cost;
    return e().AppendMessage(s, m);
  }

  TempDir dir_;
  ManualClock clock_{1'700'000'000'000'000};
  std::unique_ptr<Engine> engine_;
};

}  // namespace agentstore::testing
