#include "server/request_framing.h"

#include <string>
#include <string_view>

namespace moat::server {

namespace http = boost::beast::http;

namespace {

constexpr std::string_view kChunked = "chunked";
constexpr std::string_view kContinue = "100-continue";

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

LocalReply Refusal(int status, std::string code, std::string message) {
  return LocalReply{status, "invalid_request_error", std::move(code), std::move(message), {}, "", {}};
}

}  // namespace

std::optional<LocalReply> CheckRequestFraming(const http::request_header<>& head) {
  bool has_encoding = false;
  int chunked = 0;
  bool chunked_last = false;
  bool other_coding = false;
  // Every Transfer-Encoding line, every comma-separated coding, in order.
  for (auto [it, end] = head.equal_range(http::field::transfer_encoding); it != end; ++it) {
    std::string_view list = it->value();
    size_t start = 0;
    while (start <= list.size()) {
      size_t comma = list.find(',', start);
      std::string_view coding =
          Trim(list.substr(start, comma == std::string_view::npos ? std::string_view::npos
                                                                  : comma - start));
      if (const size_t semi = coding.find(';'); semi != std::string_view::npos) {
        coding = Trim(coding.substr(0, semi));
      }
      if (!coding.empty()) {
        has_encoding = true;
        const bool is_chunked = EqualsIgnoreCase(coding, kChunked);
        chunked += is_chunked ? 1 : 0;
        other_coding = other_coding || !is_chunked;
        chunked_last = is_chunked;
      }
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
  }
  if (head.count(http::field::transfer_encoding) > 0 && !has_encoding) {
    return Refusal(400, "bad_transfer_encoding", "Transfer-Encoding names no coding.");
  }
  if (has_encoding) {
    if (head.version() < 11) {
      return Refusal(400, "bad_transfer_encoding",
                     "Transfer-Encoding is not allowed in an HTTP/1.0 request.");
    }
    if (!chunked_last || chunked > 1) {
      return Refusal(400, "bad_transfer_encoding",
                     "The final transfer coding must be chunked, applied once; the length of "
                     "this body cannot be determined.");
    }
    if (head.count(http::field::content_length) > 0) {
      return Refusal(400, "bad_transfer_encoding",
                     "A request must not carry both Transfer-Encoding and Content-Length.");
    }
    if (other_coding) {
      auto reply = Refusal(501, "unsupported_transfer_encoding",
                           "Only the chunked transfer coding is supported.");
      reply.type = "server_error";
      return reply;
    }
  }
  for (auto [it, end] = head.equal_range(http::field::expect); it != end; ++it) {
    if (!EqualsIgnoreCase(Trim(it->value()), kContinue)) {
      return Refusal(417, "expectation_failed", "Only 'Expect: 100-continue' is supported.");
    }
  }
  return std::nullopt;
}

bool ExpectsContinue(const http::request_header<>& head) {
  if (head.version() < 11) return false;
  auto it = head.find(http::field::expect);
  return it != head.end() && EqualsIgnoreCase(Trim(it->value()), kContinue);
}

}  // namespace moat::server
