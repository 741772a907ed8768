// TextIndex: tokenizing, postings maintenance and rank fusion.
#include "agentstore/index/text_index.h"

#include <algorithm>
#include <string>

namespace agentstore::index {
namespace {

bool IsAsciiWord(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

}  // namespace

uint64_t HashTerm(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::vector<std::pair<uint64_t, uint32_t>> Terms(std::string_view text) {
  std::vector<std::pair<uint64_t, uint32_t>> out;
  std::unordered_map<uint64_t, size_t> at;
  std::string token;
  auto flush = [&] {
    if (token.empty()) return;
    uint64_t h = HashTerm(token);
    auto [it, fresh] = at.try_emplace(h, out.size());
    if (fresh)
      out.push_back({h, 1});
    else
      ++out[it->second].second;
    token.clear();
  };
  bool in_utf8 = false;
  for (unsigned char c : text) {
    if (IsAsciiWord(c)) {
      if (in_utf8) flush();
      in_utf8 = false;
      token.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c));
    } else if (c >= 0x80) {
      if (!in_utf8) flush();
      in_utf8 = true;
      token.push_back(static_cast<char>(c));
    } else {
      flush();
      in_utf8 = false;
    }
  }
  flush();
  return out;
}

void TextIndex::Add(uint64_t label, std::string_view text) {
  auto terms = Terms(text);
  uint32_t len = 0;
  for (const auto& [term, tf] : terms) len += tf;
  for (const auto& [term, tf] : terms) postings_[term].push_back({label, tf, len});
  ++documents_;
  total_len_ += len;
}

void TextIndex::Remove(uint64_t label, std::string_view text) {
  // `text` is what was added under `label` (the caller's contract), so its terms name
  // every posting of the document.
  // A label with terms but no posting was never added (or is gone): a no-op.
  uint32_t len = 0;
  size_t removed = 0;
  for (const auto& [term, tf] : Terms(text)) {
    len += tf;
    auto p = postings_.find(term);
    if (p == postings_.end()) continue;
    auto& list = p->second;
    auto gone = std::remove_if(list.begin(), list.end(),
                               [&](const Posting& e) { return e.label == label; });
    removed += static_cast<size_t>(list.end() - gone);
    list.erase(gone, list.end());
    if (p->second.empty()) postings_.erase(p);
  }
  if (documents_ == 0 || (len > 0 && removed == 0)) return;
  --documents_;
  total_len_ -= std::min<uint64_t>(total_len_, len);
}

void TextIndex::ShrinkToFit() {
  for (auto& [term, list] : postings_) list.shrink_to_fit();
}

std::vector<Scored> FuseRankings(const std::vector<uint64_t>& by_vector,
                                 const std::vector<uint64_t>& by_text, double w_vector,
                                 double w_text, double c) {
  std::unordered_map<uint64_t, std::pair<double, size_t>> acc;  // score, vector rank
  for (size_t i = 0; i < by_vector.size(); ++i)
    acc[by_vector[i]] = {w_vector / (c + static_cast<double>(i + 1)), i};
  for (size_t i = 0; i < by_text.size(); ++i) {
    auto [it, fresh] = acc.try_emplace(by_text[i], 0.0, by_vector.size());
    it->second.first += w_text / (c + static_cast<double>(i + 1));
  }
  std::vector<std::pair<Scored, size_t>> all;
  all.reserve(acc.size());
  for (const auto& [label, sv] : acc) all.push_back({{label, sv.first}, sv.second});
  std::sort(all.begin(), all.end(), [](const auto& x, const auto& y) {
    if (x.first.score != y.first.score) return x.first.score > y.first.score;
    if (x.second != y.second) return x.second < y.second;
    return x.first.label < y.first.label;
  });
  std::vector<Scored> out;
  out.reserve(all.size());
  for (const auto& [s, rank] : all) out.push_back(s);
  return out;
}

}  // namespace agentstore::index
