#pragma once
// HttpServer: accepts HTTP/1.1 connections (plain, and HTTPS when server.tls_listen is set) and
// hands each request to its RequestHandler (the Gateway). One io_context per worker thread, each
// with its own acceptors on the same ports (SO_REUSEPORT), so a connection and everything it
// touches (upstream pools included) stays on one thread. Each connection is a C++20 coroutine.
//
// What the server bounds, whatever clients do:
//  - connections: at most max_connections in all (lowered to what the descriptor limit allows)
//    and max_connections_per_ip per client address (IPv6: per /64; trusted proxies are exempt,
//    they carry many clients); beyond that a connection is
//    answered 503 and closed at once. When accept() fails (out of descriptors or memory) the
//    acceptor backs off instead of retrying in a busy loop.
//  - memory: request heads up to max_header_bytes; bodies are read only once the gateway's
//    header-phase filters admitted the request, up to max_body_bytes each,
//    max_buffered_body_bytes over all connections and max_buffered_body_bytes_per_ip per client
//    address (beyond: 503); a connection's read buffer holds at most one request head and body
//    and a little framing (chunk-size lines and their extensions, trailers: beyond, 413).
//  - time: header, body and idle timeouts (408 for a half-sent request), write timeouts.
//  - framing: request heads whose body length cannot be trusted are refused and the connection
//    closed (request_framing.h); a request answered without its body being read is answered
//    with "Connection: close" and the connection closed after a bounded drain.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>

#include "common/metrics.h"
#include "moat/status.h"
#include "server/config.h"
#include "server/request_handler.h"

namespace moat::server {

class HttpServer {
 public:
  // `handler` and `metrics` must outlive the server.
  HttpServer(const ServerConfig& config, RequestHandler* handler, MetricsRegistry* metrics);
  ~HttpServer();

  // Loads the TLS certificate (when configured), binds and starts the worker threads. With port
  // 0 the kernel picks one (see port() / tls_port()).
  moat::Status Start();
  uint16_t port() const { return port_; }
  uint16_t tls_port() const { return tls_port_; }  // 0 when there is no TLS listener
  int workers() const { return static_cast<int>(workers_.size()); }
  // The connection cap in force (server.max_connections, lowered to fit the descriptor limit).
  int64_t max_connections() const { return max_connections_; }
  // Re-reads server.tls_cert_file and tls_key_file (SIGHUP) for connections accepted from now
  // on; connections already open keep their certificate. On error (unreadable, mismatched or
  // world-readable files) the previous certificate stays in use and the error is returned.
  moat::Status ReloadTls();
  // Stops accepting, lets requests in flight finish for up to `grace_ms`, then stops.
  void Stop(int64_t grace_ms = 5000);
  // Blocks until all worker threads have exited.
  void Wait();

  // Number of worker threads Start() will create for this config.
  static int WorkerCount(const ServerConfig& config);

 private:
  class SessionBody;
  friend class SessionBody;
  struct Listener {
    std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor;
    bool tls = false;
  };
  struct Worker {
    boost::asio::io_context io{1};
    std::vector<Listener> listeners;
    std::thread thread;
  };
  // Admission of a new connection from `ip_key`: false (with the reason for the metrics) when a
  // cap is reached. Every admitted connection must be released exactly once.
  bool AdmitConnection(const std::string& ip_key, const char** refusal);
  void ReleaseConnection(const std::string& ip_key);
  // Reserves `bytes` of the body memory budget, over all connections and for the client
  // address `ip_key`; false (with the reason for the metrics) when either would be exceeded.
  bool ReserveBodyBytes(const std::string& ip_key, int64_t bytes, const char** refusal);
  void ReleaseBodyBytes(const std::string& ip_key, int64_t bytes);
  bool TrustedProxy(const std::string& ip_key) const;
  std::shared_ptr<boost::asio::ssl::context> tls_context() const;
  moat::Status Listen(const std::string& host, uint16_t port, bool tls, uint16_t* bound_port);

  boost::asio::awaitable<void> AcceptLoop(Worker& w, int index, Listener& listener);
  boost::asio::awaitable<void> Session(boost::asio::ip::tcp::socket socket, int index, bool tls);

  const ServerConfig config_;
  RequestHandler* handler_;
  std::vector<std::unique_ptr<Worker>> workers_;
  uint16_t port_ = 0;
  uint16_t tls_port_ = 0;
  int64_t max_connections_ = 0;
  std::atomic<int64_t> in_flight_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> connections_{0};
  std::atomic<int64_t> buffered_body_bytes_{0};
  std::mutex ip_mu_;
  std::unordered_map<std::string, int64_t> connections_per_ip_;  // GUARDED_BY(ip_mu_)
  std::unordered_map<std::string, int64_t> body_bytes_per_ip_;   // GUARDED_BY(ip_mu_)
  mutable std::mutex tls_mu_;
  std::shared_ptr<boost::asio::ssl::context> tls_context_;  // GUARDED_BY(tls_mu_)
  Family<Gauge>* open_connections_;
  Family<Counter>* protocol_errors_;
  Family<Counter>* connections_refused_;
};

// A TLS server context from PEM files: the certificate chain and its private key (which must not
// be readable by group or others). InvalidArgument when they cannot be loaded or do not match.
moat::StatusOr<std::shared_ptr<boost::asio::ssl::context>> MakeServerTlsContext(
    const std::string& cert_file, const std::string& key_file);

}  // namespace moat::server
