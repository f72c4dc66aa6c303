#pragma once
// UrlTemplate: an http(s) URL with named placeholders ("https://id.example/verify?account=
// {account}&ref={reference}"), checked once when it is configured and filled per use with
// percent-encoded values. The step-up verification URL is one ([detection] step_up_url).

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "moat/status.h"

namespace moat {

class UrlTemplate {
 public:
  // An empty template: Fill returns "".
  UrlTemplate() = default;

  // Parses `text`. Every "{name}" must name one of `placeholders`; "{" and "}" appear only
  // around a placeholder. With the placeholders filled, the text must be an http:// or https://
  // URL with a host (common/http_url.h; the query and fragment are not checked). InvalidArgument
  // naming the problem otherwise. An empty `text` gives the empty template.
  static StatusOr<UrlTemplate> Parse(std::string_view text, const std::vector<std::string>& placeholders);

  // The URL with each placeholder replaced by its value in `values` (name -> value),
  // percent-encoded (every byte but A-Z a-z 0-9 - . _ ~); a placeholder without a value becomes
  // "". "" for the empty template.
  std::string Fill(const std::vector<std::pair<std::string_view, std::string_view>>& values) const;

  bool empty() const { return pieces_.empty(); }

 private:
  struct Piece {
    bool placeholder = false;
    std::string text;  // literal text, or the placeholder's name
  };
  std::vector<Piece> pieces_;
};

// `value` percent-encoded for a URL query or path segment (every byte but A-Z a-z 0-9 - . _ ~).
std::string PercentEncode(std::string_view value);

}  // namespace moat
