#pragma once
// The verification URL of a step-up ([detection] step_up_url): a URL template whose
// placeholders {account}, {end_user} and {reference} are filled, percent-encoded, for each
// restriction (common/url_template.h). The config checks it at load; the analysis filter fills it
// into the step_up_required error and the webhook event.

#include <string>
#include <string_view>
#include <vector>

#include "common/url_template.h"

namespace moat::stepup {

// The placeholders a verification URL may use.
inline const std::vector<std::string>& VerificationUrlPlaceholders() {
  static const std::vector<std::string> names = {"account", "end_user", "reference"};
  return names;
}

// Parses a verification URL template (InvalidArgument naming an unknown placeholder or a URL
// that is not http(s)); "" gives the empty template (no URL).
inline StatusOr<UrlTemplate> ParseVerificationUrl(std::string_view text) {
  return UrlTemplate::Parse(text, VerificationUrlPlaceholders());
}

// The URL for one restriction; "" for the empty template.
inline std::string FillVerificationUrl(const UrlTemplate& url, std::string_view account, std::string_view end_user,
                                       std::string_view reference) {
  return url.Fill({{"account", account}, {"end_user", end_user}, {"reference", reference}});
}

}  // namespace moat::stepup
