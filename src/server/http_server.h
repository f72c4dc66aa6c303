#pragma once
// HttpServer: accepts HTTP/1.1 connections and hands each request to the Gateway.
// One io_context per worker thread, each with its own acceptor on the same port
// (SO_REUSEPORT), so a connection and everything it touches (upstream pools included) stays on
// one thread. Each connection is a C++20 coroutine; header, body and idle timeouts and the
// body size limit are enforced here.

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "moat/status.h"
#include "server/config.h"
#include "server/gateway.h"

namespace moat::server {

class HttpServer {
 public:
  HttpServer(const ServerConfig& config, Gateway* gateway);
  ~HttpServer();

  // Binds and starts the worker threads. With port 0 the kernel picks one (see port()).
  moat::Status Start();
  uint16_t port() const { return port_; }
  int workers() const { return static_cast<int>(workers_.size()); }
  // Stops accepting, lets requests in flight finish for up to `grace_ms`, then stops.
  void Stop(int64_t grace_ms = 5000);
  // Blocks until all worker threads have exited.
  void Wait();

  // Number of worker threads Start() will create for this config.
  static int WorkerCount(const ServerConfig& config);

 private:
  struct Worker {
    boost::asio::io_context io{1};
    std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor;
    std::thread thread;
  };
  boost::asio::awaitable<void> AcceptLoop(Worker& w, int index);
  boost::asio::awaitable<void> Session(boost::asio::ip::tcp::socket socket, int index);

  const ServerConfig config_;
  Gateway* gateway_;
  std::vector<std::unique_ptr<Worker>> workers_;
  uint16_t port_ = 0;
  std::atomic<int64_t> in_flight_{0};
  std::atomic<bool> stopping_{false};
  Family<Gauge>* open_connections_;
  Family<Counter>* protocol_errors_;
};

}  // namespace moat::server
