// TextIndex::Search, a template so the caller's filter inlines.
#pragma once

#include <algorithm>
#include <cmath>

namespace agentstore::index {

template <typename Keep>
std::vector<Scored> TextIndex::Search(std::string_view query, size_t n, Keep&& keep) const {
  std::vector<Scored> out;
  if (documents_ == 0 || n == 0) return out;
  constexpr double k1 = 1.2, b = 0.75;
  const double docs = static_cast<double>(documents_);
  const double avg_len = static_cast<double>(total_len_) / docs;
  std::unordered_map<uint64_t, double> score;
  for (const auto& [term, qtf] : Terms(query)) {
    auto p = postings_.find(term);
    if (p == postings_.end()) continue;
    double df = static_cast<double>(p->second.size());
    double idf = std::log(1.0 + (docs - df + 0.5) / (df + 0.5));
    for (const auto& [label, tf, doc_len] : p->second) {
      if (!keep(label)) continue;
      double len = doc_len;
      double f = tf;
      score[label] += idf * f * (k1 + 1) / (f + k1 * (1 - b + b * len / avg_len));
    }
  }
  out.reserve(score.size());
  for (const auto& [label, s] : score) out.push_back({label, s});
  auto better = [](const Scored& x, const Scored& y) {
    return x.score > y.score || (x.score == y.score && x.label < y.label);
  };
  if (out.size() > n) {
    std::partial_sort(out.begin(), out.begin() + n, out.end(), better);
    out.resize(n);
  } else {
    std::sort(out.begin(), out.end(), better);
  }
  return out;
}

}  // namespace agentstore::index
