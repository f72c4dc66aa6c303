#pragma once
// TestHttpServer: a small HTTP/1.1 server on 127.0.0.1 for tests that need something to call
// the gateway's outgoing requests into (a webhook receiver, a test identity service). Each
// request is handed to the test's handler on the server's own thread; the handler's reply is
// written back, keep-alive as the client asks.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

namespace moat::testing {

class TestHttpServer {
 public:
  struct Request {
    std::string method;
    std::string target;
    std::map<std::string, std::string> headers;  // names lower-case
    std::string body;
    // The header value for a lower-case `name`, or "" when absent.
    std::string Header(const std::string& name) const;
  };
  struct Reply {
    int status = 200;
    std::string body;
    std::string content_type = "application/json";
  };
  using Handler = std::function<Reply(const Request&)>;

  // Listens on 127.0.0.1 on a free port and serves with `handler` (called on the server's one
  // thread, one request at a time) until destroyed.
  explicit TestHttpServer(Handler handler);
  ~TestHttpServer();
  TestHttpServer(const TestHttpServer&) = delete;
  TestHttpServer& operator=(const TestHttpServer&) = delete;

  std::uint16_t port() const { return port_; }
  // "http://127.0.0.1:<port>"
  std::string url() const;
  // Connections accepted so far.
  int connections() const { return connections_.load(); }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::uint16_t port_ = 0;
  std::atomic<int> connections_{0};
};

}  // namespace moat::testing
