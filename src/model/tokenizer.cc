#include "model/tokenizer.h"

#include <algorithm>
#include <string>

namespace moat::model {
namespace {

bool IsWordByte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}
bool IsSpaceByte(unsigned char c) {
  return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

}  // namespace

std::vector<std::string_view> WordTokenizer::Segment(std::string_view text) {
  std::vector<std::string_view> segs;
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const size_t start = i;
    auto c = static_cast<unsigned char>(text[i]);
    // One space directly before a non-space character becomes part of that piece.
    if (c == ' ' && i + 1 < n && !IsSpaceByte(static_cast<unsigned char>(text[i + 1]))) {
      ++i;
      c = static_cast<unsigned char>(text[i]);
    } else if (IsSpaceByte(c)) {
      segs.push_back(text.substr(i, 1));
      ++i;
      continue;
    }
    if (IsWordByte(c)) {
      while (i < n) {
        auto d = static_cast<unsigned char>(text[i]);
        if (IsWordByte(d)) {
          ++i;
        } else if (d == '\'' && i + 1 < n && i > start &&
                   IsWordByte(static_cast<unsigned char>(text[i + 1]))) {
          ++i;  // apostrophe inside a word: don't, it's
        } else {
          break;
        }
      }
    } else {
      ++i;  // a single punctuation / control byte
    }
    segs.push_back(text.substr(start, i - start));
  }
  return segs;
}

StatusOr<WordTokenizer> WordTokenizer::Train(std::span<const std::string> documents,
                                             int32_t max_vocab, int64_t min_count) {
  if (max_vocab < kFirstPiece || max_vocab > 65535) {
    return InvalidArgumentError("max_vocab must be in [258, 65535], got " +
                                std::to_string(max_vocab));
  }
  std::unordered_map<std::string_view, int64_t> counts;
  for (const std::string& doc : documents) {
    for (std::string_view seg : Segment(doc)) {
      if (seg.size() > 1) ++counts[seg];  // single bytes are covered by byte tokens
    }
  }
  std::vector<std::pair<std::string_view, int64_t>> sorted;
  for (const auto& [piece, count] : counts) {
    if (count >= min_count && piece.size() <= 64) sorted.emplace_back(piece, count);
  }
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  const size_t keep = std::min(sorted.size(), static_cast<size_t>(max_vocab - kFirstPiece));
  std::vector<std::string> pieces;
  pieces.reserve(keep);
  for (size_t i = 0; i < keep; ++i) pieces.emplace_back(sorted[i].first);
  return WordTokenizer(std::move(pieces));
}

WordTokenizer::WordTokenizer(std::vector<std::string> pieces) : pieces_(std::move(pieces)) {
  byte_pieces_.resize(256);
  for (int b = 0; b < 256; ++b) byte_pieces_[b] = static_cast<char>(b);
  index_.reserve(pieces_.size() * 2);
  for (size_t i = 0; i < pieces_.size(); ++i) {
    index_.emplace(std::string_view(pieces_[i]), kFirstPiece + static_cast<TokenId>(i));
  }
}

void WordTokenizer::AppendSegment(std::string_view seg, std::vector<TokenId>* out) const {
  if (seg.size() == 1) {
    out->push_back(kFirstByte + static_cast<unsigned char>(seg[0]));
    return;
  }
  if (auto it = index_.find(seg); it != index_.end()) {
    out->push_back(it->second);
    return;
  }
  if (seg[0] == ' ') {
    out->push_back(kFirstByte + ' ');
    AppendSegment(seg.substr(1), out);
    return;
  }
  for (char c : seg) out->push_back(kFirstByte + static_cast<unsigned char>(c));
}

std::vector<TokenId> WordTokenizer::Encode(std::string_view text) const {
  std::vector<TokenId> out;
  out.reserve(text.size() / 4 + 1);
  for (std::string_view seg : Segment(text)) AppendSegment(seg, &out);
  return out;
}

std::string_view WordTokenizer::Piece(TokenId id) const {
  if (id >= kFirstPiece && id < vocab_size()) return pieces_[id - kFirstPiece];
  if (id >= kFirstByte && id < kFirstPiece) {
    return std::string_view(byte_pieces_).substr(id - kFirstByte, 1);
  }
  return {};
}

std::string WordTokenizer::Decode(std::span<const TokenId> tokens) const {
  std::string out;
  for (TokenId t : tokens) out.append(Piece(t));
  return out;
}

}  // namespace moat::model
