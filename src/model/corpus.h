#pragma once
// Training-corpus reader: turns a directory of text files (the `fortunes` format, JSONL with a
// "text" field, or plain text) into a list of documents for NGramModel::Train.

#include <string>
#include <vector>

#include "moat/status.h"

namespace moat::model {

// Where Debian's `fortunes` packages install their text files.
inline constexpr char kDefaultCorpusDir[] = "/usr/share/games/fortunes";

// Splits fortune-file text into entries (separated by lines holding a single '%'); empty
// entries are dropped.
std::vector<std::string> SplitFortunes(const std::string& text);

// Reads every regular file directly inside `dir` (or `dir` itself when it is a file), sorted by
// name: *.jsonl files give one document per line (its "text" field), *.dat / *.u8 files are
// skipped (fortune indexes and duplicate UTF-8 copies), any other file is split like a fortune
// file. Returns kNotFound when nothing could be read. `max_bytes` > 0 caps the total text.
StatusOr<std::vector<std::string>> ReadCorpus(const std::string& dir, size_t max_bytes = 0);

}  // namespace moat::model
