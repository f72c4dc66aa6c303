#include "model/corpus.h"

#include <algorithm>
#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace moat::model {
namespace fs = std::filesystem;

std::vector<std::string> SplitFortunes(const std::string& text) {
  std::vector<std::string> docs;
  std::string cur;
  std::istringstream in(text);
  std::string line;
  auto flush = [&] {
    while (!cur.empty() && (cur.back() == '\n' || cur.back() == ' ')) cur.pop_back();
    if (!cur.empty()) docs.push_back(std::move(cur));
    cur.clear();
  };
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line == "%") {
      flush();
    } else {
      cur += line;
      cur += '\n';
    }
  }
  flush();
  return docs;
}

namespace {

void ReadJsonl(const std::string& text, std::vector<std::string>* docs) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(line, ec);
    if (ec || !v.is_object()) continue;
    const auto* t = v.as_object().if_contains("text");
    if (t != nullptr && t->is_string() && !t->as_string().empty()) {
      docs->emplace_back(t->as_string().c_str(), t->as_string().size());
    }
  }
}

}  // namespace

StatusOr<std::vector<std::string>> ReadCorpus(const std::string& dir, size_t max_bytes) {
  std::error_code ec;
  std::vector<fs::path> files;
  if (fs::is_regular_file(dir, ec)) {
    files.emplace_back(dir);
  } else {
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      if (!e.is_regular_file()) continue;  // also skips the .u8 symlinks
      const std::string ext = e.path().extension().string();
      if (ext == ".dat" || ext == ".u8") continue;
      files.push_back(e.path());
    }
    if (ec) return NotFoundError("cannot read corpus directory " + dir + ": " + ec.message());
  }
  std::sort(files.begin(), files.end());
  std::vector<std::string> docs;
  size_t total = 0;
  for (const fs::path& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) continue;
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    const size_t before = docs.size();
    if (f.extension() == ".jsonl") {
      ReadJsonl(text, &docs);
    } else {
      auto split = SplitFortunes(text);
      docs.insert(docs.end(), std::make_move_iterator(split.begin()),
                  std::make_move_iterator(split.end()));
    }
    for (size_t i = before; i < docs.size(); ++i) {
      total += docs[i].size();
      if (max_bytes > 0 && total >= max_bytes) {
        docs.resize(i + 1);
        return docs;
      }
    }
  }
  if (docs.empty()) return NotFoundError("no training text found in " + dir);
  return docs;
}

}  // namespace moat::model
