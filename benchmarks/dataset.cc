// Generates the datasets of dataset.h. Memories follow targets.md: 384-d unit vectors
// from ~1000 clusters, each spread inside its own low-dimensional subspace, clusters
// chosen with Zipf popularity; each memory user draws most memories from a handful of
// favourite clusters.
#include "dataset.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <random>

namespace agentstore::bench {

DatasetSpec DatasetSpec::ForScale(const std::string& scale, uint64_t seed) {
  DatasetSpec s;
  s.scale = scale;
  s.seed = seed;
  if (scale == "M") {
    s.tenants = 100;
    s.users = 100000;
    s.agents = 200;
    s.heavy_memory_users = 5;
    s.queries = 5000;
    s.messages_per_chat = 10;
  }
  return s;
}

namespace {

constexpr int64_t kDayUs = 86400LL * 1000000;

Uuid RandomUuid(std::mt19937_64& rng) {
  Uuid u;
  uint64_t a = rng(), b = rng();
  for (int i = 0; i < 8; ++i) u.bytes[i] = static_cast<uint8_t>(a >> (8 * i));
  for (int i = 0; i < 8; ++i) u.bytes[8 + i] = static_cast<uint8_t>(b >> (8 * i));
  u.bytes[6] = (u.bytes[6] & 0x0f) | 0x40;  // version 4
  u.bytes[8] = (u.bytes[8] & 0x3f) | 0x80;  // variant
  return u;
}

// Zipf(s = 1) sampler over [0, n) by inverse CDF.
class Zipf {
 public:
  explicit Zipf(int n) : cdf_(n) {
    double sum = 0;
    for (int i = 0; i < n; ++i) cdf_[i] = (sum += 1.0 / (i + 1));
    for (double& c : cdf_) c /= sum;
  }
  int operator()(std::mt19937_64& rng) {
    double u = std::uniform_real_distribution<double>(0, 1)(rng);
    return static_cast<int>(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin());
  }

 private:
  std::vector<double> cdf_;
};

void Normalize(float* v, int dim) {
  double n = 0;
  for (int i = 0; i < dim; ++i) n += double(v[i]) * v[i];
  float inv = static_cast<float>(1.0 / std::sqrt(std::max(n, 1e-30)));
  for (int i = 0; i < dim; ++i) v[i] *= inv;
}

struct Clusters {
  int dim, sub;
  std::vector<float> centers, bases;  // clusters x dim, clusters x sub x dim

  Clusters(const DatasetSpec& s, std::mt19937_64& rng) : dim(s.dim), sub(s.subspace_dim) {
    std::normal_distribution<float> g(0, 1);
    centers.resize(size_t(s.clusters) * dim);
    bases.resize(size_t(s.clusters) * sub * dim);
    for (int c = 0; c < s.clusters; ++c) {
      for (int i = 0; i < dim; ++i) centers[size_t(c) * dim + i] = g(rng);
      Normalize(&centers[size_t(c) * dim], dim);
      for (int b = 0; b < sub; ++b) {
        float* v = &bases[(size_t(c) * sub + b) * dim];
        for (int i = 0; i < dim; ++i) v[i] = g(rng);
        Normalize(v, dim);
      }
    }
  }
  // A point of cluster c: center + a spread inside the cluster's subspace + a little
  // isotropic noise, normalized.
  void Sample(int c, std::mt19937_64& rng, float* out) const {
    std::normal_distribution<float> g(0, 1);
    const float* ctr = &centers[size_t(c) * dim];
    for (int i = 0; i < dim; ++i) out[i] = ctr[i] + 0.02f * g(rng);
    for (int b = 0; b < sub; ++b) {
      float a = 0.35f * g(rng);
      const float* v = &bases[(size_t(c) * sub + b) * dim];
      for (int i = 0; i < dim; ++i) out[i] += a * v[i];
    }
    Normalize(out, dim);
  }
};

const char* kFirst[] = {"Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken"};
const char* kLast[] = {"Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen"};
const char* kJobs[] = {"Engineer", "Clinician", "Researcher", "Analyst", "Manager"};
const char* kDepts[] = {"R&D", "Regulatory", "Clinical", "Sales", "Operations"};
const char* kFolders[] = {"", "work", "research", "personal"};
const char* kTopics[] = {"launch plan", "FDA submission", "trial design",     "quarterly report",
                         "code review", "onboarding",     "literature search"};

}  // namespace

std::string MessageParts(uint64_t n) {
  return R"([{"type":"text","text":"This is message number )" + std::to_string(n) +
         R"( of a typical chat turn, about a hundred and fifty bytes of text content."}])";
}

int64_t Dataset::MonthStart() const {
  time_t t = static_cast<time_t>(spec.now_us / 1000000);
  tm g{};
  gmtime_r(&t, &g);
  g.tm_mday = 1;
  g.tm_hour = g.tm_min = g.tm_sec = 0;
  return static_cast<int64_t>(timegm(&g)) * 1000000;
}

int64_t Dataset::MonthEnd() const {
  time_t t = static_cast<time_t>(spec.now_us / 1000000);
  tm g{};
  gmtime_r(&t, &g);
  g.tm_mday = 1;
  g.tm_hour = g.tm_min = g.tm_sec = 0;
  g.tm_mon += 1;
  return static_cast<int64_t>(timegm(&g)) * 1000000;
}

Dataset GenerateDataset(const DatasetSpec& spec) {
  Dataset d;
  d.spec = spec;
  std::mt19937_64 rng(spec.seed);
  auto uni = [&](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  const int64_t start = spec.now_us - 90 * kDayUs;

  for (int t = 0; t < spec.tenants; ++t)
    d.tenants.push_back({RandomUuid(rng), "Tenant " + std::to_string(t),
                         "tenant-" + std::to_string(t) + "-" + std::to_string(spec.seed),
                         t % 3 ? "pro" : "enterprise"});
  for (int a = 0; a < spec.agents; ++a)
    d.agents.push_back({RandomUuid(rng), "Agent " + std::to_string(a),
                        "Helps with " + std::string(kTopics[a % 7]), kAgentTypes[a % 5],
                        "You are a careful assistant for " + std::string(kTopics[a % 7]) + ".",
                        kModels[a % 4]});
  for (int u = 0; u < spec.users; ++u) {
    UserRec r;
    r.id = RandomUuid(rng);
    r.tenant = static_cast<uint32_t>(u % spec.tenants);
    r.email = "user" + std::to_string(u) + "." + std::to_string(spec.seed) + "@example.com";
    r.full_name = std::string(kFirst[u % 8]) + " " + kLast[(u / 8) % 7];
    r.avatar_url = "https://cdn.example.com/avatars/" + std::to_string(u) + ".png";
    r.job_title = kJobs[u % 5];
    r.department = kDepts[(u / 5) % 5];
    r.organization = "Example Corp " + std::to_string(r.tenant);
    r.preferences = R"({"theme":"dark","language":"en","timezone":"UTC"})";
    r.created_at = start + uni(0, 30 * kDayUs);
    d.users.push_back(std::move(r));
  }

  // user_agents, chats, messages, usage logs: per user, contiguous.
  d.ua_begin.push_back(0);
  d.chat_begin.push_back(0);
  d.log_begin.push_back(0);
  d.message_begin.push_back(0);
  uint64_t msg_no = 0;
  for (uint32_t u = 0; u < d.users.size(); ++u) {
    std::vector<uint32_t> picked;
    while (picked.size() < size_t(std::min(spec.user_agents_per_user, spec.agents))) {
      uint32_t a = static_cast<uint32_t>(uni(0, spec.agents - 1));
      if (std::find(picked.begin(), picked.end(), a) == picked.end()) picked.push_back(a);
    }
    for (size_t i = 0; i < picked.size(); ++i)
      d.user_agents.push_back({RandomUuid(rng), u, picked[i], uni(0, 3) == 0, i == 0,
                               static_cast<int>(i), kFolders[uni(0, 3)],
                               d.users[u].created_at + int64_t(i) * 1000000});
    d.ua_begin.push_back(static_cast<uint32_t>(d.user_agents.size()));
    for (int c = 0; c < spec.chats_per_user; ++c) {
      uint32_t chat = static_cast<uint32_t>(d.chats.size());
      int64_t t0 = d.users[u].created_at + uni(0, 50 * kDayUs);
      d.chats.push_back({RandomUuid(rng), u, picked[uni(0, int64_t(picked.size()) - 1)],
                         "About the " + std::string(kTopics[uni(0, 6)]), t0});
      for (int m = 0; m < spec.messages_per_chat; ++m) {
        bool assistant = m % 2;
        uint8_t model = static_cast<uint8_t>(uni(0, 3));
        d.messages.push_back({RandomUuid(rng), chat, assistant, MessageParts(msg_no++), model,
                              uni(50, 400), assistant ? uni(100, 800) : 0, uni(100, 2000),
                              t0 + int64_t(m) * 20000000});
      }
      d.message_begin.push_back(static_cast<uint32_t>(d.messages.size()));
    }
    d.chat_begin.push_back(static_cast<uint32_t>(d.chats.size()));
    for (int l = 0; l < spec.usage_logs_per_user; ++l) {
      UsageLogRec r;
      r.id = RandomUuid(rng);
      r.user = u;
      r.agent = picked[uni(0, int64_t(picked.size()) - 1)];
      r.chat = spec.chats_per_user ? d.chat_begin[u] + uni(0, spec.chats_per_user - 1) : -1;
      r.agent_type = static_cast<uint8_t>(uni(0, 4));
      r.model = static_cast<uint8_t>(uni(0, 3));
      r.input_tokens = uni(50, 2000);
      r.output_tokens = uni(50, 1500);
      r.input_cost = r.input_tokens * 3;
      r.output_cost = r.output_tokens * 12;
      r.request_ts = start + uni(0, spec.now_us - start - 60000000);
      r.response_ts = r.request_ts + uni(200000, 8000000);
      r.success = uni(0, 49) != 0;
      d.usage_logs.push_back(r);
    }
    d.log_begin.push_back(static_cast<uint32_t>(d.usage_logs.size()));
  }

  // Memories.
  Clusters clusters(spec, rng);
  Zipf popularity(spec.clusters);
  const int memory_users =
      std::max(1, static_cast<int>(spec.users * spec.memory_user_fraction + 0.5));
  std::vector<int> count(spec.users, 0);
  // Memory users are spread over the id space; the first few are heavy.
  for (int i = 0; i < memory_users; ++i) {
    size_t u = static_cast<size_t>((uint64_t(i) * 2654435761ull) % spec.users);
    while (count[u]) u = (u + 1) % spec.users;
    std::lognormal_distribution<double> ln(std::log(55.0), 0.6);
    count[u] = i < spec.heavy_memory_users ? static_cast<int>(uni(5000, 10000))
                                           : std::clamp(static_cast<int>(ln(rng)), 1, 1000);
  }
  std::vector<std::vector<int>> favourites(spec.users);
  auto draw_cluster = [&](uint32_t u) {
    auto& fav = favourites[u];
    if (fav.empty()) {
      int n = static_cast<int>(uni(3, 6));
      for (int i = 0; i < n; ++i) fav.push_back(popularity(rng));
    }
    return uni(0, 9) < 8 ? fav[uni(0, int64_t(fav.size()) - 1)] : popularity(rng);
  };
  size_t total = 0;
  for (int c : count) total += c;
  d.embeddings.resize(total * spec.dim);
  d.memory_begin.push_back(0);
  for (uint32_t u = 0; u < d.users.size(); ++u) {
    for (int m = 0; m < count[u]; ++m) {
      size_t idx = d.memories.size();
      int c = draw_cluster(u);
      clusters.Sample(c, rng, &d.embeddings[idx * spec.dim]);
      uint8_t type = static_cast<uint8_t>(uni(0, 3));
      d.memories.push_back({RandomUuid(rng), u, type, "mem-" + std::to_string(m),
                            R"({"content":"Remembered detail )" + std::to_string(m) + " about " +
                                kTopics[c % 7] +
                                R"(","source":"conversation","confidence":0.9,"tags":["c)" +
                                std::to_string(c) + R"("]})",
                            std::uniform_real_distribution<double>(0, 1)(rng)});
    }
    d.memory_begin.push_back(static_cast<uint32_t>(d.memories.size()));
    if (count[u]) d.memory_users.push_back(u);
  }
  // Held-out queries: fresh draws from a memory user's own distribution.
  for (int q = 0; q < spec.queries && !d.memory_users.empty(); ++q) {
    uint32_t u = d.memory_users[uni(0, int64_t(d.memory_users.size()) - 1)];
    QueryRec r{u, std::vector<float>(spec.dim)};
    clusters.Sample(draw_cluster(u), rng, r.vector.data());
    (count[u] >= 5000 ? d.heavy_queries : d.light_queries)
        .push_back(static_cast<uint32_t>(d.queries.size()));
    d.queries.push_back(std::move(r));
  }
  return d;
}

std::vector<uint32_t> ExactTopK(const Dataset& d, uint32_t user, const float* query, int k) {
  std::vector<std::pair<float, uint32_t>> scored;
  for (uint32_t m = d.memory_begin[user]; m < d.memory_begin[user + 1]; ++m) {
    const float* v = d.Embedding(m);
    float s = 0;
    for (int i = 0; i < d.spec.dim; ++i) s += v[i] * query[i];
    scored.push_back({-s, m});
  }
  size_t n = std::min<size_t>(k, scored.size());
  std::partial_sort(scored.begin(), scored.begin() + n, scored.end());
  std::vector<uint32_t> out;
  for (size_t i = 0; i < n; ++i) out.push_back(scored[i].second);
  return out;
}

double RecallAtK(const Dataset& d, uint32_t user, const float* query, int k,
                 const std::vector<uint32_t>& got) {
  std::vector<uint32_t> want = ExactTopK(d, user, query, k);
  if (want.empty()) return got.empty() ? 1.0 : 0.0;
  size_t hit = 0;
  for (uint32_t w : want)
    if (std::find(got.begin(), got.end(), w) != got.end()) ++hit;
  return static_cast<double>(hit) / want.size();
}

}  // namespace agentstore::bench
