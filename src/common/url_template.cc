#include "common/url_template.h"

#include <algorithm>

#include "common/http_url.h"

namespace moat {

std::string PercentEncode(std::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(value.size());
  for (unsigned char c : value) {
    const bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                            c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    }
  }
  return out;
}

StatusOr<UrlTemplate> UrlTemplate::Parse(std::string_view text, const std::vector<std::string>& placeholders) {
  UrlTemplate t;
  if (text.empty()) return t;
  std::string known;
  for (const std::string& p : placeholders) known += (known.empty() ? "{" : ", {") + p + "}";
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t open = text.find_first_of("{}", pos);
    if (open == std::string_view::npos) {
      t.pieces_.push_back({false, std::string(text.substr(pos))});
      break;
    }
    if (text[open] == '}') return InvalidArgumentError("unmatched '}' in URL template " + std::string(text));
    if (open > pos) t.pieces_.push_back({false, std::string(text.substr(pos, open - pos))});
    const size_t close = text.find_first_of("{}", open + 1);
    if (close == std::string_view::npos || text[close] != '}')
      return InvalidArgumentError("unmatched '{' in URL template " + std::string(text));
    std::string name(text.substr(open + 1, close - open - 1));
    if (std::find(placeholders.begin(), placeholders.end(), name) == placeholders.end()) {
      return InvalidArgumentError("unknown placeholder {" + name + "} in URL template " + std::string(text) +
                                  " (known: " + known + ")");
    }
    t.pieces_.push_back({true, std::move(name)});
    pos = close + 1;
  }
  // The URL's shape, with every placeholder filled by a harmless value.
  std::string sample;
  for (const Piece& p : t.pieces_) sample += p.placeholder ? "x" : p.text;
  const std::string_view base = std::string_view(sample).substr(0, sample.find_first_of("?#"));
  StatusOr<HttpUrl> url = ParseHttpUrl(base, UrlSchemes::kHttpOrHttps);
  if (!url.ok()) return InvalidArgumentError("URL template " + std::string(text) + ": " + url.status().message());
  return t;
}

std::string UrlTemplate::Fill(const std::vector<std::pair<std::string_view, std::string_view>>& values) const {
  std::string out;
  for (const Piece& p : pieces_) {
    if (!p.placeholder) {
      out += p.text;
      continue;
    }
    for (const auto& [name, value] : values) {
      if (name == p.text) {
        out += PercentEncode(value);
        break;
      }
    }
  }
  return out;
}

}  // namespace moat
