// The table image (engine/src/table_image.h): a start from it answers exactly as a
// start from RocksDB alone, also when the log changed keys after it (puts, deletes,
// counter merges); a missing, stale, truncated, corrupted or foreign image, or one the
// log no longer reaches, is not used and the store is rebuilt from RocksDB; kill -9
// while an image is being written loses nothing.
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "agentstore/common/record_json.h"
#include "test_util.h"

namespace agentstore::testing {
namespace {

namespace fs = std::filesystem;
constexpr uint32_t kDim = 8;

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

class TableImageTest : public EngineFixture {
 protected:
  void SetUp() override {
    tweak_ = [this](EngineOptions& o) {
      o.memory.dim = kDim;
      o.memory.background = false;
      o.table_image = use_image_;
      o.image_check_ms = 0;  // no background writer: the test decides when images are written
      if (no_log_kept_) o.feed_retention_seconds = o.feed_retention_mb = 0;
    };
    Open();
  }
  std::string image_file() const { return dir_.sub("data") + "/image/table.image"; }

  std::vector<float> Vec(int i) const {
    std::vector<float> v(kDim);
    for (uint32_t d = 0; d < kDim; ++d) v[d] = static_cast<float>((i * 7 + d * 3) % 11) - 5.0f;
    return v;
  }
  void Memory(const Uuid& user, const std::string& key, int i) {
    fb::UserMemoryT m;
    m.user_id = FbId(user);
    m.memory_key = key;
    m.embedding = Vec(i);
    m.memory_value = nlohmann::json{{"content", "note " + key}}.dump();
    ASSERT_OK(e().UpsertMemory(Scope::Service(), m));
  }
  void Track(const Uuid& user, const Uuid& agent, const Uuid& chat, int64_t tokens) {
    fb::UsageLogT l;
    l.user_id = FbId(user);
    l.agent_id = FbId(agent);
    l.chat_id = FbId(chat);
    l.input_tokens = tokens;
    l.output_tokens = tokens / 2;
    l.input_cost = tokens * 3;
    l.model = "gpt-4o";
    l.provider = "openai";
    l.request_ts = clock_.NowMicros() - 1000;
    l.response_ts = clock_.NowMicros();
    ASSERT_OK(e().TrackAgentUsage(Scope::Service(), l));
  }

  // Users with user_agents, chats, messages, votes, memories and tracked usage.
  void Populate(int users, int round) {
    if (agent_.IsNil()) agent_ = Id(MakeAgent("helper")->id());
    if (tenant_.IsNil()) {
      fb::TenantT t;
      t.name = "Acme";
      t.slug = "acme";
      tenant_ = Id(Must(e().CreateTenant(Scope::Admin(), t))->id());
    }
    for (int i = 0; i < users; ++i) {
      clock_.Advance(1000);
      std::string name = "r" + std::to_string(round) + "u" + std::to_string(i) + "@x.com";
      Uuid uid = Id(MakeUser(name, tenant_)->id());
      users_.push_back(uid);
      fb::UserAgentT ua;
      ua.user_id = FbId(uid);
      ua.agent_id = FbId(agent_);
      ASSERT_OK(e().CreateUserAgent(Scope::Service(), ua));
      Uuid chat = Id(MakeChat(uid)->id());
      for (int m = 0; m < 4; ++m) {
        clock_.Advance(1);
        auto msg = Append(Scope::Service(), chat, "m" + std::to_string(m), m, m, m);
        ASSERT_OK(msg);
        if (m == 1) {
          ASSERT_OK(e().Vote(Scope::Service(), chat, Id(msg->get()->id()), true));
        }
      }
      for (int k = 0; k < 3; ++k) Memory(uid, "k" + std::to_string(k), i * 3 + k + round * 100);
      Track(uid, agent_, chat, 10 + i);
    }
  }

  // Every record and index answer, as text, through public reads only.
  std::string Snapshot() {
    std::string out;
    Scope svc = Scope::Service();
    PageRequest all;
    all.limit = 1000;
    all.include_deleted = true;
    for (const auto& u : Must(e().ListUsers(svc, all)).rows) {
      Uuid uid = Id(u->id());
      out += RecordToJson(*u.get()) + "\n";
      auto by_email = e().GetUserByEmail(svc, Str(u->email()));
      out += by_email.ok() ? "email ok\n" : "email gone\n";
      auto uas = e().ListUserAgents(svc, uid, {});
      if (!uas.ok()) continue;  // a soft-deleted user's
      for (const auto& ua : *uas) out += RecordToJson(*ua.get());
      auto chats = e().ListChats(svc, uid, all);
      for (const auto& c : chats.ok() ? chats->rows : decltype(chats->rows){}) {
        out += RecordToJson(*c.get()) + "\n";
        MessagePageRequest m;
        m.limit = 1000;
        auto msgs = e().ListMessages(svc, Id(c->id()), m);
        if (msgs.ok())
          for (const auto& r : msgs->rows) out += RecordToJson(*r.get()) + "\n";
        auto votes = e().ListVotes(svc, Id(c->id()));
        if (votes.ok())
          for (const auto& v : *votes) out += RecordToJson(*v.get());
      }
      for (int k = 0; k < 3; ++k) {
        auto mem = e().GetMemoryByKey(svc, uid, "k" + std::to_string(k), true);
        out += mem.ok() ? RecordToJson(*mem->get()) + "\n" : "memory gone\n";
      }
      MemoryQuery q;
      q.user = uid;
      q.vector = Vec(1);
      q.k = 2;
      auto hits = e().SearchMemories(svc, q);
      for (const auto& h : hits.ok() ? *hits : std::vector<MemoryHit>{})
        out += std::string(Str(h.memory->memory_key())) + std::to_string(h.distance) + ",";
      UsageSummaryRequest r;
      r.owner = SummaryOwner::kUser;
      r.id = uid;
      r.bucket = SummaryBucket::kTotal;
      auto sum = e().SummarizeUsage(svc, r);
      for (const auto& row : sum.ok() ? sum->rows : std::vector<UsageSummaryRow>{})
        out += "usage " + std::to_string(row.totals.requests) + "/" +
               std::to_string(row.totals.total_tokens) + "\n";
    }
    for (SummaryOwner owner : {SummaryOwner::kTenant, SummaryOwner::kEveryone}) {
      UsageSummaryRequest r;
      r.owner = owner;
      r.id = tenant_;
      r.bucket = SummaryBucket::kDay;
      for (const auto& row : Must(e().SummarizeUsage(svc, r)).rows)
        out += "rollup " + std::to_string(row.totals.requests) + "/" +
               std::to_string(row.totals.total_cost) + "\n";
    }
    MemoryQuery g;
    g.vector = Vec(4);
    g.k = 10;
    for (const auto& h : Must(e().GlobalSearchMemories(svc, g)))
      out += std::string(Str(h.memory->memory_key())) + std::to_string(h.distance) + ",";
    for (const auto& a : Must(e().ListAgents(svc, all)).rows) out += RecordToJson(*a.get()) + "\n";
    for (const auto& t : Must(e().ListTenants(svc, all)).rows) out += RecordToJson(*t.get()) + "\n";
    auto s = e().Stats();
    for (uint64_t n : s.records) out += std::to_string(n) + ",";
    return out;
  }

  // What RocksDB alone holds: the same directory opened without the image.
  std::string Truth() {
    engine_.reset();
    use_image_ = false;
    Open();
    std::string t = Snapshot();
    engine_.reset();
    use_image_ = true;
    return t;
  }

  // Changes of every kind after an image, to users_[at..at+4]: updates, deletes, new
  // records, counter merges.
  void ChangeSome(size_t at) {
    ASSERT_GE(users_.size(), at + 5);
    ASSERT_OK(e().UpdateUser(Scope::Service(), users_[at], R"({"full_name":"Changed"})"));
    ASSERT_OK(e().DeleteUser(Scope::Service(), users_[at + 1], DeleteMode::kHard));
    ASSERT_OK(e().DeleteUser(Scope::Service(), users_[at + 2], DeleteMode::kSoft));
    auto m = Must(e().GetMemoryByKey(Scope::Service(), users_[at + 3], "k1"));
    ASSERT_OK(e().DeleteMemory(Scope::Service(), Id(m->id())));
    Memory(users_[at + 3], "k0", 999);  // a replaced vector
    auto chats = Must(e().ListChats(Scope::Service(), users_[at + 4], {}));
    Track(users_[at + 4], agent_, Id(chats.rows[0]->id()), 77);  // rollup and quota merges
    Populate(2, static_cast<int>(at) + 1);
  }

  Uuid agent_, tenant_;
  std::vector<Uuid> users_;
  bool use_image_ = true;
  bool no_log_kept_ = false;
};

TEST_F(TableImageTest, StartsFromTheImageAndAnswersAsRocksDbHoldsIt) {
  Populate(10, 0);
  std::string before = Snapshot();
  Reopen();  // the first clean stop wrote the image (there was none)
  ASSERT_TRUE(fs::exists(image_file()));
  auto img = e().Image();
  EXPECT_TRUE(img.used) << img.rebuilt_because;
  EXPECT_GT(img.mapped_bytes, 0u);
  EXPECT_EQ(Snapshot(), before);

  // Changed after the image: the start reads those keys from RocksDB.
  ChangeSome(0);
  std::string after = Snapshot();
  Reopen();  // fewer changes than image_min_changes: the stop keeps the old image
  img = e().Image();
  EXPECT_TRUE(img.used) << img.rebuilt_because;
  EXPECT_GT(img.changed_keys, 10u);
  EXPECT_EQ(Snapshot(), after);
  // Writes go on after a start from the image, and come back again.
  ChangeSome(5);
  after = Snapshot();
  Reopen();
  EXPECT_TRUE(e().Image().used);
  EXPECT_EQ(Snapshot(), after);
  EXPECT_EQ(Truth(), after);
}

// Memories started from the image are referred to in place, embedding included: their
// touch counters change in place (copy-on-write: the image file stays as written), a read
// without vectors leaves the embedding out, and the arena counts the bytes as a start
// from RocksDB does, embeddings apart.
TEST_F(TableImageTest, MemoriesInTheImageAreTouchedInPlaceAndReadWithoutTheirEmbedding) {
  Populate(4, 0);
  auto stored = Must(e().GetMemoryByKey(Scope::Service(), users_[1], "k2", true));
  const std::vector<float> vec(stored->embedding()->begin(), stored->embedding()->end());
  Reopen();
  ASSERT_TRUE(e().Image().used);
  const std::string image_before = ReadFile(image_file());
  const Uuid user = users_[1];
  auto plain = Must(e().GetMemoryByKey(Scope::Service(), user, "k2", false));
  EXPECT_EQ(plain->embedding(), nullptr);
  auto full = Must(e().GetMemoryByKey(Scope::Service(), user, "k2", true));
  ASSERT_NE(full->embedding(), nullptr);
  EXPECT_EQ(std::vector<float>(full->embedding()->begin(), full->embedding()->end()), vec);
  EXPECT_EQ(full->access_count(), 0);

  MemoryQuery q;
  q.user = user;
  q.vector = vec;
  q.k = 3;
  q.touch = true;
  for (int i = 0; i < 3; ++i) {
    clock_.Advance(1000);
    ASSERT_OK(e().SearchMemories(Scope::Service(), q));
  }
  auto touched = Must(e().GetMemoryByKey(Scope::Service(), user, "k2", false));
  EXPECT_EQ(touched->access_count(), 3);
  EXPECT_EQ(touched->last_accessed_at(), clock_.NowMicros());
  EXPECT_EQ(ReadFile(image_file()), image_before);  // only the mapping's pages changed

  const uint64_t arena_from_image = e().Stats().arena_live_bytes;
  const std::string after = Snapshot();
  Reopen();  // the old image again, the touches from RocksDB
  ASSERT_TRUE(e().Image().used);
  EXPECT_EQ(Must(e().GetMemoryByKey(Scope::Service(), user, "k2", false))->access_count(), 3);
  EXPECT_EQ(Snapshot(), after);
  engine_.reset();
  use_image_ = false;
  Open();
  const uint64_t arena_from_rocksdb = e().Stats().arena_live_bytes;
  // A referred record keeps a field slot and alignment that the arena's own copy drops.
  EXPECT_NEAR(static_cast<double>(arena_from_image), static_cast<double>(arena_from_rocksdb),
              16.0 * 4 * 3);
  EXPECT_EQ(Snapshot(), after);
}

TEST_F(TableImageTest, DamagedTruncatedMissingOrForeignImagesAreRebuiltFromRocksDb) {
  Populate(5, 0);
  Reopen();
  ChangeSome(0);
  std::string truth = Snapshot();
  engine_.reset();
  ASSERT_TRUE(fs::exists(image_file()));
  const std::string good = dir_.sub("good.image");
  fs::copy_file(image_file(), good);
  const auto size = fs::file_size(good);

  auto expect_rebuilt = [&](const std::string& why) {
    Open();
    auto img = e().Image();
    EXPECT_FALSE(img.used);
    EXPECT_NE(img.rebuilt_because.find(why), std::string::npos) << img.rebuilt_because;
    EXPECT_EQ(Snapshot(), truth);
    engine_.reset();
    fs::copy_file(good, image_file(), fs::copy_options::overwrite_existing);
  };
  {  // one flipped byte in the middle of the records
    std::fstream f(image_file(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(size / 2));
    char c;
    f.read(&c, 1);
    f.seekp(static_cast<std::streamoff>(size / 2));
    c = static_cast<char>(c ^ 0x5a);
    f.write(&c, 1);
  }
  expect_rebuilt("checksum");
  fs::resize_file(image_file(), size / 3);
  expect_rebuilt("truncated");
  {  // another format version
    std::fstream f(image_file(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(8);
    uint32_t v = 99;
    f.write(reinterpret_cast<const char*>(&v), 4);
  }
  expect_rebuilt("format version 99");
  {  // another store's image
    TempDir other;
    EngineOptions o;
    o.data_dir = other.sub("data");
    o.durability = storage::Durability::kNone;
    o.memory.dim = kDim;
    { auto e2 = Must(Engine::Open(o)); }
    fs::copy_file(other.sub("data") + "/image/table.image", image_file(),
                  fs::copy_options::overwrite_existing);
  }
  expect_rebuilt("another store");
  fs::remove(image_file());
  Open();
  EXPECT_FALSE(e().Image().used);
  EXPECT_EQ(Snapshot(), truth);
  engine_.reset();
  EXPECT_TRUE(fs::exists(image_file())) << "a stop without an image writes one";
  // The good image again, now stale by the stop's writes: still used, and exact.
  fs::copy_file(good, image_file(), fs::copy_options::overwrite_existing);
  Open();
  EXPECT_TRUE(e().Image().used);
  EXPECT_EQ(Snapshot(), truth);
}

// A copy of a stopped data directory (cp -a: a cold backup, a clone) has the same
// RocksDB identity, so an image written by one of the two passed every check in the
// other once its log had grown past the image's sequence: the copy then answered the
// other's records and lost some of its own. An image is the directory's it was written
// in: a copy's start rebuilds from RocksDB (once; its next image is its own).
TEST_F(TableImageTest, AnImageOfACopiedDataDirectoryIsNotUsedInTheOther) {
  Populate(3, 0);
  engine_.reset();  // the first stop writes an image
  const std::string data = dir_.sub("data"), copy = dir_.sub("copy"), orig = dir_.sub("orig");
  fs::copy(data, copy, fs::copy_options::recursive);
  // The original goes on and writes an image of its own.
  Open();
  Populate(2, 1);
  ASSERT_OK(e().SaveImage(Scope::Service()));
  engine_.reset();
  const std::string other_image = dir_.sub("other.image");
  fs::copy_file(image_file(), other_image);
  // The copy (moved into the fixture's place) writes more than the original did.
  fs::rename(data, orig);
  fs::rename(copy, data);
  Open();
  Populate(6, 2);
  std::string truth = Snapshot();
  engine_.reset();
  fs::copy_file(other_image, image_file(), fs::copy_options::overwrite_existing);
  Open();
  EXPECT_FALSE(e().Image().used);
  EXPECT_NE(e().Image().rebuilt_because.find("another"), std::string::npos)
      << e().Image().rebuilt_because;
  EXPECT_EQ(Snapshot(), truth);
  EXPECT_TRUE(e().GetUserByEmail(Scope::Service(), "r2u5@x.com").ok());
  EXPECT_FALSE(e().GetUserByEmail(Scope::Service(), "r1u0@x.com").ok());
  // A data directory moved (renamed) keeps its image.
  engine_.reset();
  Open();
  ASSERT_OK(e().SaveImage(Scope::Service()));
  engine_.reset();
  fs::rename(data, dir_.sub("moved"));
  fs::rename(dir_.sub("moved"), data);
  Open();
  EXPECT_TRUE(e().Image().used) << e().Image().rebuilt_because;
  EXPECT_EQ(Snapshot(), truth);
}

// An image older than the log kept (no retention: the log is deleted once flushed) can
// not be brought up to date: the start rebuilds, and says why.
TEST_F(TableImageTest, AnImageTheLogNoLongerReachesIsNotUsed) {
  engine_.reset();
  no_log_kept_ = true;
  Open();
  Populate(5, 0);
  Reopen();
  ASSERT_TRUE(e().Image().used) << e().Image().rebuilt_because;
  const std::string old_image = dir_.sub("old.image");
  fs::copy_file(image_file(), old_image);
  ChangeSome(0);
  std::string truth = Snapshot();
  engine_.reset();  // the stop sees the log would not reach the image: it writes a new one
  Open();
  EXPECT_TRUE(e().Image().used) << e().Image().rebuilt_because;
  EXPECT_EQ(Snapshot(), truth);
  engine_.reset();
  fs::copy_file(old_image, image_file(), fs::copy_options::overwrite_existing);  // left behind
  Open();
  auto img = e().Image();
  EXPECT_FALSE(img.used);
  EXPECT_NE(img.rebuilt_because.find("no longer kept"), std::string::npos) << img.rebuilt_because;
  EXPECT_EQ(Snapshot(), truth);
}

// A child writes users and writes images in a loop; the parent kills it with SIGKILL at
// several points, often mid-image. Every acknowledged user is there afterwards, and the
// store started from whatever image was left equals the store rebuilt from RocksDB.
// An image that cannot be put in place (here the name is taken by a directory) is
// reported and leaves no table.image.tmp behind: that file is as large as the store.
TEST_F(TableImageTest, AnImageThatCannotBeInstalledLeavesNoTemporaryFile) {
  Populate(3, 0);
  fs::create_directories(image_file() + "/blocked");
  EXPECT_FALSE(e().SaveImage(Scope::Service()).ok());
  EXPECT_FALSE(fs::exists(image_file() + ".tmp"));
  fs::remove_all(image_file());
  ASSERT_OK(e().SaveImage(Scope::Service()));
  EXPECT_TRUE(fs::exists(image_file()));
  EXPECT_FALSE(fs::exists(image_file() + ".tmp"));
}

// A kill -9 while an image was being written leaves table.image.tmp (as large as the
// store); nothing else would remove it until the next image, which may be 100,000
// changes away. The next start removes it and still uses the previous image.
TEST_F(TableImageTest, ATemporaryImageLeftByACrashIsRemovedAtStart) {
  Populate(3, 0);
  std::string before = Snapshot();
  Reopen();  // writes the image
  engine_.reset();
  std::ofstream(image_file() + ".tmp") << std::string(4096, 'x');  // a half-written image
  Open();
  EXPECT_FALSE(fs::exists(image_file() + ".tmp"));
  EXPECT_TRUE(e().Image().used) << e().Image().rebuilt_because;
  EXPECT_EQ(Snapshot(), before);
}

TEST_F(TableImageTest, Kill9WhileWritingTheImageLosesNothing) {
  Populate(3, 0);
  engine_.reset();
  std::mt19937_64 timing{11};
  int next = 0;
  for (int cycle = 0; cycle < 4; ++cycle) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      EngineOptions o;
      o.data_dir = dir_.sub("data");
      o.durability = storage::Durability::kAlways;
      o.memory.dim = kDim;
      o.image_check_ms = 2;  // the background writer too
      o.image_min_changes = 1;
      auto opened = Engine::Open(o);
      if (!opened.ok()) _exit(2);
      Engine& e = **opened;
      for (int j = next;; ++j) {
        fb::UserT u;
        u.email = "k" + std::to_string(j) + "@x.com";
        if (!e.CreateUser(Scope::Service(), u).ok()) _exit(3);
        int32_t acked = j;
        if (write(fds[1], &acked, sizeof acked) != sizeof acked) _exit(4);
        if (j % 8 == 0 && !e.SaveImage(Scope::Service()).ok()) _exit(5);
      }
    }
    close(fds[1]);
    std::this_thread::sleep_for(std::chrono::milliseconds(100 + timing() % 250));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
    int32_t acked, last = next - 1;
    while (read(fds[0], &acked, sizeof acked) == sizeof acked) last = acked;
    close(fds[0]);
    Open();
    for (int j = 0; j <= last; ++j)
      ASSERT_OK(e().GetUserByEmail(Scope::Service(), "k" + std::to_string(j) + "@x.com"));
    std::string started = Snapshot();
    EXPECT_EQ(Truth(), started);
    next = last + 1;
    while (true) {  // an unacknowledged write may have landed too
      Open();
      bool extra = e().GetUserByEmail(Scope::Service(), "k" + std::to_string(next) + "@x.com").ok();
      engine_.reset();
      if (!extra) break;
      ++next;
    }
  }
  EXPECT_GT(next, 0) << "the children wrote something";
}

}  // namespace
}  // namespace agentstore::testing
