// TextIndex: a small inverted index for keyword ranking of one user's memories (BM25),
// and the fusion of a keyword ranking with a vector ranking for hybrid search.
//
// Tokens are maximal runs of ASCII letters and digits, lower-cased, plus any run of
// non-ASCII UTF-8 bytes kept whole (so non-Latin words still match exactly). Terms are
// stored as 64-bit hashes: a collision can only merge two terms' postings, which costs a
// little ranking precision, never correctness of the vector side.
//
// Not thread-safe: the owner's lock guards it (Search is const).
#pragma once

#include <absl/container/flat_hash_map.h>
#include <absl/container/inlined_vector.h>

#include <cstdint>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace agentstore::index {

// FNV-1a of a term or tag: stable across runs and platforms.
uint64_t HashTerm(std::string_view s);

// The distinct terms of `text` with their counts, in first-seen order.
std::vector<std::pair<uint64_t, uint32_t>> Terms(std::string_view text);

struct Scored {
  uint64_t label;
  double score;  // larger is better
};

class TextIndex {
 public:
  void Add(uint64_t label, std::string_view text);
  // `text` must be what was added under `label`.
  void Remove(uint64_t label, std::string_view text);

  // Labels matching any query term, ranked by BM25 (k1 = 1.2, b = 0.75), best first,
  // at most n. `keep(label)` filters candidates before ranking.
  template <typename Keep>
  std::vector<Scored> Search(std::string_view query, size_t n, Keep&& keep) const;

  size_t documents() const { return documents_; }
  // Returns the postings' growth slack (after recovery).
  void ShrinkToFit();

 private:
  // A document's length rides in each of its postings (in what would be the padding of
  // a (label, tf) pair), so no per-document map is needed: BM25 reads it where it reads
  // the term frequency.
  struct Posting {
    uint64_t label;
    uint32_t tf;
    uint32_t doc_len;
  };
  // Flat, and a term's first posting held in the map's slot: most terms of a user's
  // memories occur in one of them (names, numbers, rare words), and a node plus a heap
  // array for each such term was the keyword index's largest cost.
  absl::flat_hash_map<uint64_t, absl::InlinedVector<Posting, 1>> postings_;
  size_t documents_ = 0;
  uint64_t total_len_ = 0;
};

// Reciprocal rank fusion of two rankings (each best first):
//   score(d) = w_vector / (c + rank_vector(d)) + w_text / (c + rank_text(d)),
// ranks counted from 1, a list that lacks d contributing 0; c = 60 (Cormack et al.).
// Returns every label of either list, best first (ties: the better vector rank).
std::vector<Scored> FuseRankings(const std::vector<uint64_t>& by_vector,
                                 const std::vector<uint64_t>& by_text, double w_vector = 1.0,
                                 double w_text = 1.0, double c = 60.0);

}  // namespace agentstore::index

#include "agentstore/index/text_index_inl.h"
