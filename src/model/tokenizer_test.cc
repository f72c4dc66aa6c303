#include "model/tokenizer.h"

#include <gtest/gtest.h>

#include <random>

namespace moat::model {
namespace {

TEST(WordTokenizerTest, SegmentsWordsPunctuationAndSpaces) {
  auto segs = WordTokenizer::Segment("Hello, world!\n  don't x");
  std::vector<std::string> got(segs.begin(), segs.end());
  std::vector<std::string> want = {"Hello", ",", " world", "!", "\n", " ", " don't", " x"};
  EXPECT_EQ(got, want);
}

TEST(WordTokenizerTest, KnownWordsAreOneTokenUnknownFallBackToBytes) {
  std::vector<std::string> docs = {"the cat sat on the mat", "the cat ran", "the dog sat"};
  WordTokenizer tok = WordTokenizer::Train(docs, 1000, 2).value();
  // " cat", " sat", " the"(1x: only "the" at start twice) ...
  auto ids = tok.Encode(" cat");
  ASSERT_EQ(ids.size(), 1u);
  EXPECT_GE(ids[0], WordTokenizer::kFirstPiece);
  auto unk = tok.Encode("zq");
  EXPECT_EQ(unk, (std::vector<TokenId>{WordTokenizer::kFirstByte + 'z', WordTokenizer::kFirstByte + 'q'}));
  // Unknown word after a space: the space byte, then the word's bytes.
  auto unk2 = tok.Encode(" zq");
  EXPECT_EQ(unk2.size(), 3u);
  EXPECT_EQ(tok.Decode(unk2), " zq");
}

TEST(WordTokenizerTest, RoundTripsArbitraryBytes) {
  std::vector<std::string> docs = {"A fortune: the best is yet to come.\n\t-- Someone",
                                   "Ünïcödé wörds and \"quotes\" and it's fine"};
  WordTokenizer tok = WordTokenizer::Train(docs, 500, 1).value();
  for (const auto& d : docs) EXPECT_EQ(tok.Decode(tok.Encode(d)), d);
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    std::string s(rng() % 64, '\0');
    for (char& c : s) c = static_cast<char>(rng() % 256);
    EXPECT_EQ(tok.Decode(tok.Encode(s)), s);
  }
}

TEST(WordTokenizerTest, VocabularyIsCappedAndOrderedByFrequency) {
  std::vector<std::string> docs;
  for (int i = 0; i < 50; ++i) docs.push_back("alpha alpha alpha beta beta gamma");
  WordTokenizer tok = WordTokenizer::Train(docs, WordTokenizer::kFirstPiece + 2, 1).value();
  EXPECT_EQ(tok.vocab_size(), WordTokenizer::kFirstPiece + 2);
  EXPECT_EQ(tok.Piece(WordTokenizer::kFirstPiece), " alpha");
  EXPECT_EQ(tok.Piece(WordTokenizer::kBos), "");
  EXPECT_EQ(tok.Piece(WordTokenizer::kFirstByte + 'a'), "a");
}

TEST(WordTokenizerTest, AVocabularyOutOfRangeIsInvalidArgument) {
  std::vector<std::string> docs = {"alpha beta"};
  for (int32_t max_vocab : {0, WordTokenizer::kFirstPiece - 1, 65536}) {
    StatusOr<WordTokenizer> tok = WordTokenizer::Train(docs, max_vocab, 1);
    ASSERT_FALSE(tok.ok()) << max_vocab;
    EXPECT_EQ(tok.status().code(), StatusCode::kInvalidArgument) << max_vocab;
  }
}

}  // namespace
}  // namespace moat::model
