#pragma once
// Test-only helpers shared by moat's integration tests: ChildProcess starts and stops a binary,
// HttpClient is a small synchronous HTTP/1.1 client (keep-alive, timeouts, streaming with
// per-chunk arrival times), and TestUpstream runs moat-test-upstream on a free port.

#include <sys/types.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "moat/status.h"

namespace moat::testing {

// A child process started with fork/exec. The child gets SIGKILL if the test process dies, and
// the destructor kills a child that is still running, so a failing test leaks no processes.
class ChildProcess {
 public:
  ChildProcess() = default;
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Starts argv[0] (a path; no PATH lookup) with argv. `env` holds extra "NAME=value" entries
  // that are added to (or override) this process's environment. When `output_path` is not empty
  // the child's stdout and stderr are appended to that file; otherwise they are inherited.
  // Returns once the exec succeeded. Returns FailedPrecondition if a child is already running,
  // Internal if fork, opening `output_path` or exec fails (e.g. the binary does not exist).
  Status Start(const std::vector<std::string>& argv, const std::vector<std::string>& env = {},
               const std::string& output_path = "");

  // Sends `sig` and waits up to `grace` for the child to exit, then sends SIGKILL. Returns the
  // wait status decoded as: exit code (>= 0), or -signal number if it died from a signal.
  // Returns FailedPrecondition if no child was started.
  StatusOr<int> Stop(int sig = SIGTERM,
                     std::chrono::milliseconds grace = std::chrono::milliseconds(5000));

  // Waits until `path` holds a port number written by the child (as "<port>\n") and returns it.
  // Returns DeadlineExceeded after `timeout`, Unavailable if the child exits first.
  StatusOr<std::uint16_t> WaitForPortFile(
      const std::string& path,
      std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));

  // True while the child has not exited (reaps it if it has).
  bool running();
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  int wait_status_ = 0;
};

// A temporary directory removed (recursively) by the destructor.
class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "moat-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  // path() + "/" + name.
  std::string File(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
};

// Header names are lower-cased in responses; request headers are sent as given.
using HttpHeaders = std::map<std::string, std::string>;

struct HttpResponse {
  int status = 0;
  HttpHeaders headers;  // keys lower-case; repeated headers are joined with ", "
  std::string body;     // for StreamRequest: the whole body, de-chunked
  // The header value for a lower-case `name`, or "" when absent.
  std::string Header(const std::string& name) const;
};

// One piece of a streamed body: the payload of one HTTP chunk (chunked encoding) or one read
// from the socket (otherwise), with the time it was parsed.
struct StreamChunk {
  std::string data;
  std::chrono::steady_clock::time_point arrival;
};

// A synchronous HTTP/1.1 client to one host:port. It keeps one connection alive across calls and
// reconnects when the server closed it. Every socket operation has `timeout`; a request that
// times out or whose connection breaks returns an error Status (DeadlineExceeded or Unavailable)
// and the connection is dropped. Not thread-safe: use one client per thread.
class HttpClient {
 public:
  HttpClient(std::string host, std::uint16_t port,
             std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends a request (Host and, when `body` is not empty, Content-Length are set automatically;
  // Content-Type defaults to application/json for a non-empty body) and reads the full response.
  StatusOr<HttpResponse> Request(std::string_view method, std::string_view target,
                                 std::string_view body = {}, const HttpHeaders& headers = {});

  // Like Request, but calls `on_chunk` for every body piece as it arrives (see StreamChunk). The
  // returned response also holds the whole body. Headers are available in the result only.
  StatusOr<HttpResponse> StreamRequest(std::string_view method, std::string_view target,
                                       std::string_view body, const HttpHeaders& headers,
                                       const std::function<void(const StreamChunk&)>& on_chunk);

  // Drops the kept-alive connection; the next request opens a new one.
  void Close();
  // How many TCP connections this client has opened so far.
  int connections_opened() const { return connections_opened_; }
  void set_timeout(std::chrono::milliseconds timeout) { timeout_ = timeout; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::chrono::milliseconds timeout_;
  int connections_opened_ = 0;
};

// The "data:" payloads of a text/event-stream body, in order (e.g. the JSON chunks and "[DONE]").
std::vector<std::string> SseDataPayloads(std::string_view body);

// The moat-test-upstream binary built with this tree (from the MOAT_TEST_UPSTREAM_BIN definition).
std::string TestUpstreamBinary();

// moat-test-upstream running on 127.0.0.1 and a free port, stopped by the destructor.
class TestUpstream {
 public:
  TestUpstream() = default;
  ~TestUpstream();
  // Starts the server with `extra_args` (e.g. {"--api-key", "k", "--threads", "2"}) and waits
  // until it is listening. Returns the error of ChildProcess::Start / WaitForPortFile.
  Status Start(const std::vector<std::string>& extra_args = {});
  // Stops the server with SIGTERM; returns its exit code.
  StatusOr<int> Stop();
  std::uint16_t port() const { return port_; }
  ChildProcess& process() { return process_; }

 private:
  TempDir dir_{"moat-upstream"};
  ChildProcess process_;
  std::uint16_t port_ = 0;
};

}  // namespace moat::testing
