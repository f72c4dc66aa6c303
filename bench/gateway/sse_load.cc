// sse_load: an open-loop HTTP/1.1 load client for the gateway benchmark. It sends POST requests
// at a fixed rate over a pool of keep-alive connections and reports total latency and, for
// streamed (SSE) responses, time to first body byte (first token), as percentiles.
//
// Open loop: request i is due at start + i / rate whatever happened to earlier requests, and its
// latency is measured from that due time, so a stalled target is charged for the queueing it
// causes (no coordinated omission). Each of --connections workers takes the next due request in
// turn; when all are busy, requests wait and their latency grows accordingly.
//
// Output: one JSON object on stdout, for example
//   {"label":"moat","stream":true,"rate":1000,"sent":10000,"ok":10000,"errors":0,
//    "achieved_rps":999.8,"total_p50_ms":0.41,"total_p99_ms":0.93,"ttft_p50_ms":0.30,...}
// Requests due during --warmup seconds are sent but not measured.

#include <CLI/CLI.hpp>
#include <algorithm>
#include <boost/asio.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace moat::bench {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

struct LoadOptions {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string path = "/v1/chat/completions";
  std::string body_file;
  std::vector<std::string> headers;  // "Name: value"
  double rate = 1000;                // requests per second
  double duration_s = 10;            // measured seconds
  double warmup_s = 1;               // unmeasured seconds before
  double overrun_s = 5;              // stop starting requests this long after the schedule ends
  int connections = 32;
  bool stream = false;
  std::string label;
};

// Shared by every worker of the single-threaded run; no locking needed.
struct LoadState {
  const LoadOptions* opts = nullptr;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  Clock::time_point start;
  Clock::time_point measure_from;
  Clock::time_point stop_starting;  // a target that fell this far behind gets no more requests
  uint64_t total_requests = 0;  // due within warmup + duration
  uint64_t next_ticket = 0;
  uint64_t sent = 0, ok = 0, errors = 0, bad_status = 0, bad_body = 0;
  std::string first_error;
  std::vector<double> total_ms, ttft_ms;
  Clock::time_point last_done;
};

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

void NoteError(LoadState& st, const std::string& what) {
  ++st.errors;
  if (st.first_error.empty()) st.first_error = what;
}

// One keep-alive connection that serves due requests until the schedule is exhausted.
asio::awaitable<void> Worker(LoadState& st, tcp::endpoint endpoint) {
  auto executor = co_await asio::this_coro::executor;
  tcp::socket socket(executor);
  asio::steady_timer timer(executor);
  beast::flat_buffer buffer;
  const LoadOptions& o = *st.opts;
  while (st.next_ticket < st.total_requests) {
    if (Clock::now() > st.stop_starting) break;
    const uint64_t ticket = st.next_ticket++;
    const Clock::time_point due =
        st.start + std::chrono::duration_cast<Clock::duration>(
                       std::chrono::duration<double>(static_cast<double>(ticket) / o.rate));
    timer.expires_at(due);
    co_await timer.async_wait(kNoThrow);
    if (!socket.is_open()) {
      buffer.clear();
      auto [ec] = co_await socket.async_connect(endpoint, kNoThrow);
      if (ec) {
        NoteError(st, "connect: " + ec.message());
        socket = tcp::socket(executor);
        continue;
      }
      socket.set_option(tcp::no_delay(true));
    }
    http::request<http::string_body> req{http::verb::post, o.path, 11};
    req.set(http::field::host, o.host);
    req.set(http::field::content_type, "application/json");
    for (const auto& [name, value] : st.headers) req.set(name, value);
    req.body() = st.body;
    req.prepare_payload();
    ++st.sent;
    auto [wec, wn] = co_await http::async_write(socket, req, kNoThrow);
    if (wec) {
      NoteError(st, "write: " + wec.message());
      socket.close();
      continue;
    }
    http::response_parser<http::string_body> parser;
    parser.body_limit(boost::none);
    auto [hec, hn] = co_await http::async_read_header(socket, buffer, parser, kNoThrow);
    if (hec) {
      NoteError(st, "read header: " + hec.message());
      socket.close();
      continue;
    }
    std::optional<Clock::time_point> first_byte;
    if (!parser.get().body().empty()) first_byte = Clock::now();
    beast::error_code rec;
    while (!parser.is_done()) {
      auto [ec, n] = co_await http::async_read_some(socket, buffer, parser, kNoThrow);
      if (ec) {
        rec = ec;
        break;
      }
      if (!first_byte && !parser.get().body().empty()) first_byte = Clock::now();
    }
    const Clock::time_point done = Clock::now();
    if (rec) {
      NoteError(st, "read body: " + rec.message());
      socket.close();
      continue;
    }
    const auto& res = parser.get();
    bool good = true;
    if (res.result() != http::status::ok) {
      ++st.bad_status;
      good = false;
      if (st.first_error.empty())
        st.first_error = "status " + std::to_string(res.result_int()) + ": " + res.body().substr(0, 300);
    } else if (o.stream ? res.body().find("[DONE]") == std::string::npos
                        : res.body().find("\"choices\"") == std::string::npos) {
      ++st.bad_body;
      good = false;
      if (st.first_error.empty()) st.first_error = "unexpected body: " + res.body().substr(0, 300);
    }
    if (good) {
      ++st.ok;
      if (due >= st.measure_from) {
        st.total_ms.push_back(Ms(done - due));
        if (first_byte) st.ttft_ms.push_back(Ms(*first_byte - due));
      }
    }
    st.last_done = done;
    if (!parser.keep_alive()) {
      beast::error_code ignored;
      socket.shutdown(tcp::socket::shutdown_both, ignored);
      socket.close();
    }
  }
  if (socket.is_open()) {
    beast::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
  }
}

// The p-th percentile (0..100) of sorted samples by nearest rank; 0 for no samples.
double Percentile(const std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  rank = std::clamp<size_t>(rank, 1, v.size());
  return v[rank - 1];
}

std::string JsonEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

int Run(const LoadOptions& o) {
  LoadState st;
  st.opts = &o;
  {
    std::ifstream in(o.body_file, std::ios::binary);
    if (!in) {
      std::cerr << "sse_load: cannot read --body-file " << o.body_file << "\n";
      return 2;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    st.body = ss.str();
  }
  for (const auto& h : o.headers) {
    auto colon = h.find(':');
    if (colon == std::string::npos) {
      std::cerr << "sse_load: --header wants \"Name: value\", got " << h << "\n";
      return 2;
    }
    std::string value = h.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    st.headers.emplace_back(h.substr(0, colon), value);
  }
  if (o.rate <= 0 || o.duration_s <= 0 || o.connections <= 0) {
    std::cerr << "sse_load: --rate, --duration and --connections must be positive\n";
    return 2;
  }
  st.total_requests = static_cast<uint64_t>((o.warmup_s + o.duration_s) * o.rate);
  st.total_ms.reserve(static_cast<size_t>(o.duration_s * o.rate) + 16);
  st.ttft_ms.reserve(st.total_ms.capacity());

  asio::io_context io(1);
  const tcp::endpoint endpoint(asio::ip::make_address(o.host), static_cast<uint16_t>(o.port));
  // Start slightly in the future so every worker is waiting on its timer at time zero.
  st.start = Clock::now() + std::chrono::milliseconds(20);
  st.measure_from = st.start + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>(o.warmup_s));
  st.stop_starting = st.measure_from + std::chrono::duration_cast<Clock::duration>(
                                          std::chrono::duration<double>(o.duration_s + o.overrun_s));
  for (int i = 0; i < o.connections; ++i) asio::co_spawn(io, Worker(st, endpoint), asio::detached);
  io.run();

  const uint64_t measured = st.total_ms.size();
  const double span_s = std::chrono::duration<double>(st.last_done - st.measure_from).count();
  std::vector<double> total = st.total_ms, ttft = st.ttft_ms;
  std::sort(total.begin(), total.end());
  std::sort(ttft.begin(), ttft.end());
  const uint64_t unsent = st.total_requests - st.sent;
  std::printf(
      "{\"label\":\"%s\",\"stream\":%s,\"rate\":%.0f,\"connections\":%d,\"sent\":%llu,\"ok\":%llu,"
      "\"unsent\":%llu,\"errors\":%llu,\"bad_status\":%llu,\"bad_body\":%llu,\"measured\":%llu,"
      "\"achieved_rps\":%.1f,\"total_p50_ms\":%.3f,\"total_p90_ms\":%.3f,\"total_p99_ms\":%.3f,"
      "\"total_max_ms\":%.3f,\"ttft_p50_ms\":%.3f,\"ttft_p99_ms\":%.3f,\"first_error\":\"%s\"}\n",
      JsonEscape(o.label).c_str(), o.stream ? "true" : "false", o.rate, o.connections,
      static_cast<unsigned long long>(st.sent), static_cast<unsigned long long>(st.ok),
      static_cast<unsigned long long>(unsent),
      static_cast<unsigned long long>(st.errors), static_cast<unsigned long long>(st.bad_status),
      static_cast<unsigned long long>(st.bad_body), static_cast<unsigned long long>(measured),
      span_s > 0 ? static_cast<double>(measured) / span_s : 0.0, Percentile(total, 50),
      Percentile(total, 90), Percentile(total, 99), total.empty() ? 0.0 : total.back(),
      Percentile(ttft, 50), Percentile(ttft, 99), JsonEscape(st.first_error).c_str());
  return st.ok == st.sent && st.errors == 0 && unsent == 0 ? 0 : 1;
}

}  // namespace
}  // namespace moat::bench

int main(int argc, char** argv) {
  moat::bench::LoadOptions o;
  CLI::App app{"Open-loop HTTP/SSE load client for the gateway benchmark"};
  app.add_option("--host", o.host, "Target IPv4/IPv6 address")->capture_default_str();
  app.add_option("--port", o.port, "Target port")->required();
  app.add_option("--path", o.path, "Request path")->capture_default_str();
  app.add_option("--body-file", o.body_file, "File holding the JSON request body")->required();
  app.add_option("--header", o.headers, "Extra request header \"Name: value\" (repeatable)");
  app.add_option("--rate", o.rate, "Requests per second")->capture_default_str();
  app.add_option("--duration", o.duration_s, "Measured seconds")->capture_default_str();
  app.add_option("--warmup", o.warmup_s, "Unmeasured seconds first")->capture_default_str();
  app.add_option("--overrun", o.overrun_s,
                 "Seconds past the schedule's end after which no new request starts (a target "
                 "that cannot keep up then reports unsent requests)")
      ->capture_default_str();
  app.add_option("--connections", o.connections, "Keep-alive connections")->capture_default_str();
  app.add_flag("--stream", o.stream, "Expect an SSE response ending in data: [DONE]");
  app.add_option("--label", o.label, "Name printed in the result");
  CLI11_PARSE(app, argc, argv);
  return moat::bench::Run(o);
}
