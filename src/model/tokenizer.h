#pragma once
// Tokenizer: the interface that turns text into token ids and back, and WordTokenizer, the
// lossless word-level tokenizer of the built-in model.
//
// WordTokenizer splits text into segments: a run of word characters (ASCII letters, digits,
// apostrophes inside a word, and any byte >= 0x80 so UTF-8 words stay whole) or a single
// punctuation character, each optionally preceded by ONE space that becomes part of the piece
// (" hello", " ,"); every other whitespace character is a segment of its own. Segments found in
// the vocabulary map to one token; unknown segments fall back to the space piece plus the word,
// or to one byte token per byte. Decode(Encode(s)) == s for every byte string s.
//
// Token id layout: 0 = <s> (beginning of document), 1 = </s> (end of document),
// 2..257 = the 256 single-byte tokens, 258.. = learned pieces in descending corpus frequency.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "moat/status.h"

namespace moat::model {

using TokenId = int32_t;

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Returns the token ids of `text` (no <s>/</s> added).
  virtual std::vector<TokenId> Encode(std::string_view text) const = 0;
  // Returns the concatenated text of `tokens`; special tokens decode to "".
  virtual std::string Decode(std::span<const TokenId> tokens) const = 0;
  // Returns the text of one token ("" for special tokens).
  virtual std::string_view Piece(TokenId id) const = 0;
  virtual int32_t vocab_size() const = 0;
  virtual TokenId bos() const = 0;
  virtual TokenId eos() const = 0;
};

class WordTokenizer final : public Tokenizer {
 public:
  static constexpr TokenId kBos = 0;
  static constexpr TokenId kEos = 1;
  static constexpr TokenId kFirstByte = 2;
  static constexpr TokenId kFirstPiece = kFirstByte + 256;

  // Learns up to `max_vocab` tokens (including the 258 fixed ones) from `documents`, keeping
  // pieces seen at least `min_count` times. InvalidArgument unless max_vocab is in [258, 65535].
  static StatusOr<WordTokenizer> Train(std::span<const std::string> documents, int32_t max_vocab,
                                       int64_t min_count = 2);
  // Builds a tokenizer from learned pieces (ids kFirstPiece, kFirstPiece+1, ...).
  explicit WordTokenizer(std::vector<std::string> pieces);

  std::vector<TokenId> Encode(std::string_view text) const override;
  std::string Decode(std::span<const TokenId> tokens) const override;
  std::string_view Piece(TokenId id) const override;
  int32_t vocab_size() const override { return kFirstPiece + static_cast<int32_t>(pieces_.size()); }
  TokenId bos() const override { return kBos; }
  TokenId eos() const override { return kEos; }

  // The learned pieces in id order (ids from kFirstPiece).
  const std::vector<std::string>& pieces() const { return pieces_; }

  // Splits `text` into the segments described above (exposed for training and tests).
  static std::vector<std::string_view> Segment(std::string_view text);

 private:
  void AppendSegment(std::string_view seg, std::vector<TokenId>* out) const;

  std::vector<std::string> pieces_;
  std::unordered_map<std::string_view, TokenId> index_;  // views into pieces_
  std::string byte_pieces_;                              // 256 chars, byte i at offset i
};

}  // namespace moat::model
