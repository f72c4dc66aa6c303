// HTTP replay against a minimal in-test HTTP responder that plays the gateway's side of the
// protocol: it blocks one account via x-moat-action and rate-limits another with a bare 429.

#include "traffic/http_replay.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "traffic/event_io.h"

namespace moat::traffic {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
namespace fs = std::filesystem;

TEST(HttpReplayTest, ActionFromResponse) {
  EXPECT_EQ(ActionFromResponse(200, "degrade"), detect::Action::kDegrade);
  EXPECT_EQ(ActionFromResponse(200, "step_up"), detect::Action::kStepUp);
  EXPECT_EQ(ActionFromResponse(200, ""), detect::Action::kAllow);
  EXPECT_EQ(ActionFromResponse(429, ""), detect::Action::kThrottle);
  EXPECT_EQ(ActionFromResponse(403, ""), detect::Action::kBlock);
  EXPECT_EQ(ActionFromResponse(502, ""), detect::Action::kAllow);
}

TEST(HttpReplayTest, ScoresTheGatewaysVerdicts) {
  asio::io_context ioc;
  tcp::acceptor acceptor(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const int port = acceptor.local_endpoint().port();
  std::atomic<int> served{0};
  std::thread server([&] {
    beast::error_code ec;
    tcp::socket socket(ioc);
    acceptor.accept(socket, ec);
    beast::flat_buffer buf;
    while (!ec) {
      http::request<http::string_body> req;
      http::read(socket, buf, req, ec);
      if (ec) break;
      http::response<http::string_body> res{http::status::ok, 11};
      std::string auth(req[http::field::authorization]);
      if (auth == "Bearer sk-x") res.set("x-moat-action", "block");
      if (auth == "Bearer sk-y") res.result(http::status::too_many_requests);
      res.keep_alive(true);
      res.body() = req.body();  // echo
      res.prepare_payload();
      http::write(socket, res, ec);
      ++served;
    }
  });

  fs::path dir = fs::temp_directory_path() / ("moat_http_replay_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  {
    std::ofstream labels(dir / "labels.jsonl");
    labels << LabelToJson({"o", "", false, "", "", "user", 0}) << "\n"
           << LabelToJson({"x", "", true, "bulk", "c", "sybil", 0}) << "\n"
           << LabelToJson({"y", "", true, "bulk", "c", "sybil", 0}) << "\n";
    std::ofstream events(dir / "events.jsonl");
    int64_t t = 1;
    for (const char* a : {"o", "x", "o", "y", "x", "nokey"}) {
      detect::RequestEvent e;
      e.time_ns = t++;
      e.account_id = a;
      e.endpoint = "/v1/chat/completions";
      e.body_json = R"({"model":"m","messages":[]})";
      events << EventToJson(e) << "\n";
    }
  }
  std::unordered_map<std::string, std::string> keys = {{"o", "sk-o"}, {"x", "sk-x"}, {"y", "sk-y"}};
  HttpReplayOptions opts;
  opts.gateway_url = "http://127.0.0.1:" + std::to_string(port);
  opts.rate = 0;
  auto r = ReplayOverHttp((dir / "events.jsonl").string(), (dir / "labels.jsonl").string(), keys,
                          opts);
  acceptor.close();
  ioc.stop();
  // The server thread ends when the client's connection closes with the client object.
  server.join();
  fs::remove_all(dir);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(served.load(), 5);
  EXPECT_EQ(r->events, 5);
  EXPECT_EQ(r->organic.restricted_subjects, 0);
  ASSERT_EQ(r->variants.size(), 1u);
  EXPECT_DOUBLE_EQ(r->variants[0].recall, 1.0);
  EXPECT_DOUBLE_EQ(r->variants[0].leakage, 0.0);
  EXPECT_EQ(r->actions.at("block"), 2);
  EXPECT_EQ(r->actions.at("throttle"), 1);
}

TEST(HttpReplayTest, KeysFileRoundTripIsPrivate) {
  fs::path path = fs::temp_directory_path() / ("moat_keys_" + std::to_string(::getpid()) + ".tsv");
  std::unordered_map<std::string, std::string> keys = {{"acct_b", "sk-2"}, {"acct_a", "sk-1"}};
  ASSERT_TRUE(WriteKeysFile(path.string(), keys).ok());
  EXPECT_EQ(fs::status(path).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  auto loaded = LoadKeysFile(path.string());
  fs::remove(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(*loaded, keys);
  EXPECT_EQ(GatewayAccountName("acct_1234"), "bench-acct_1234");
}

// What the gateway receives: the account's key, the event's client IP, user agent and headers,
// the extra headers, and the event's end user in the body's `user` field.
TEST(HttpReplayTest, SendsIdentityHeadersAndEndUser) {
  asio::io_context ioc;
  tcp::acceptor acceptor(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const int port = acceptor.local_endpoint().port();
  std::vector<http::request<http::string_body>> received;
  std::thread server([&] {
    beast::error_code ec;
    tcp::socket socket(ioc);
    acceptor.accept(socket, ec);
    beast::flat_buffer buf;
    while (!ec) {
      http::request<http::string_body> req;
      http::read(socket, buf, req, ec);
      if (ec) break;
      received.push_back(req);
      http::response<http::string_body> res{http::status::ok, 11};
      res.set("x-moat-action", received.size() == 2 ? "degrade" : "allow");
      res.keep_alive(true);
      res.prepare_payload();
      http::write(socket, res, ec);
    }
  });
  fs::path dir = fs::temp_directory_path() / ("moat_http_ident_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  {
    std::ofstream labels(dir / "labels.jsonl");
    labels << LabelToJson({"r", "", false, "", "", "reseller", 0}) << "\n"
           << LabelToJson({"r", "u1", false, "", "", "reseller-customer", 0}) << "\n"
           << LabelToJson({"r", "u2", true, "hydra", "c", "sybil", 0}) << "\n";
    std::ofstream events(dir / "events.jsonl");
    for (const char* user : {"u1", "u2"}) {
      detect::RequestEvent e;
      e.time_ns = 1;
      e.account_id = "r";
      e.end_user = user;
      e.client_ip = "203.0.113.7";
      e.user_agent = "OpenAI/Python 1.30.1";
      e.headers = {{"user-agent", e.user_agent}, {"x-stainless-lang", "python"}};
      e.endpoint = "/v1/chat/completions";
      e.body_json = R"({"model":"m","messages":[]})";
      events << EventToJson(e) << "\n";
    }
  }
  HttpReplayOptions opts;
  opts.gateway_url = "http://127.0.0.1:" + std::to_string(port);
  opts.rate = 0;
  opts.extra_headers = {{"x-test-tokens", "4"}};
  std::vector<std::string> seen_actions;
  opts.on_answer = [&](const detect::RequestEvent&, const GatewayAnswer& a) {
    seen_actions.push_back(a.moat_action);
  };
  auto r = ReplayOverHttp((dir / "events.jsonl").string(), (dir / "labels.jsonl").string(),
                          {{"r", "sk-r"}}, opts);
  acceptor.close();
  ioc.stop();
  server.join();
  fs::remove_all(dir);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(received.size(), 2u);
  for (size_t i = 0; i < received.size(); ++i) {
    const auto& req = received[i];
    EXPECT_EQ(req[http::field::authorization], "Bearer sk-r");
    EXPECT_EQ(req["x-forwarded-for"], "203.0.113.7");
    EXPECT_EQ(req[http::field::user_agent], "OpenAI/Python 1.30.1");
    EXPECT_EQ(req["x-stainless-lang"], "python");
    EXPECT_EQ(req["x-test-tokens"], "4");
    EXPECT_EQ(req.target(), "/v1/chat/completions");
    boost::json::value body = boost::json::parse(req.body());
    EXPECT_EQ(body.at("user").as_string(), i == 0 ? "u1" : "u2");
  }
  EXPECT_EQ(seen_actions, (std::vector<std::string>{"allow", "degrade"}));
  // Scored per end user: the hydra end user was flagged, the real customer was not.
  ASSERT_EQ(r->variants.size(), 1u);
  EXPECT_DOUBLE_EQ(r->variants[0].recall, 1.0);
  EXPECT_EQ(r->organic.restricted_subjects, 0);
}

}  // namespace
}  // namespace moat::traffic
