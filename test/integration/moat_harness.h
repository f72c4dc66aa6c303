#pragma once
// Test-only harness for moat's end-to-end tests: MoatInstance runs the real `moat serve` binary
// from a TOML config in its own temporary directory and wraps the CLI (`moat account|key|audit`)
// against the same config; RunCommand runs any binary and captures its output; RawConnection is
// a plain TCP socket for slow-client tests that HttpClient cannot express.

#include <boost/json/object.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "moat/status.h"
#include "test/upstream/test_process.h"

namespace moat::integration {

// The moat binary built with this tree (from the MOAT_BIN definition).
std::string MoatBinary();

// The outcome of a finished command: exit code (or -signal), stdout and stderr.
struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs argv[0] (a path) to completion with stdout and stderr captured in files under /tmp.
// A command still running after `timeout` is killed and reported with exit_code -SIGKILL.
CommandResult RunCommand(const std::vector<std::string>& argv,
                         std::chrono::milliseconds timeout = std::chrono::milliseconds(30000));

// A port on 127.0.0.1 that nothing listens on (bound once, then closed).
std::uint16_t ClosedLoopbackPort();

// One `moat serve` process with its own data directory. The config is written by the test
// (WriteConfig) so every scenario states the exact keys it relies on; "{data_dir}" in the text
// is replaced by this instance's data directory.
class MoatInstance {
 public:
  MoatInstance();
  ~MoatInstance();
  MoatInstance(const MoatInstance&) = delete;
  MoatInstance& operator=(const MoatInstance&) = delete;

  // Writes moat.toml. Returns Internal when the file cannot be written.
  Status WriteConfig(std::string toml);
  // Starts `moat serve --config moat.toml --port-file ... --tls-port-file ...` and waits until
  // it listens. Returns the ChildProcess error, with the server's log appended, when it does not
  // come up.
  Status Start();
  // Sends `sig` (SIGTERM: graceful drain; SIGKILL: crash) and returns the exit code or -signal.
  StatusOr<int> Stop(int sig);

  // Runs `moat <args...> --config moat.toml`.
  CommandResult Cli(std::vector<std::string> args) const;
  // Creates an account in `tier` and one key for it with the CLI; returns the key's secret.
  StatusOr<std::string> CreateAccountAndKeyWithCli(const std::string& account,
                                                   const std::string& tier) const;
  // `moat audit export` parsed line by line (each line a JSON object).
  StatusOr<std::vector<boost::json::object>> ExportAudit() const;
  // The exported audit record with `request_id`, or NotFound.
  StatusOr<boost::json::object> AuditRecord(const std::string& request_id) const;

  std::uint16_t port() const { return port_; }
  // The HTTPS port (server.tls_listen), 0 when there is none.
  std::uint16_t tls_port() const { return tls_port_; }
  pid_t pid() const { return process_.pid(); }
  const std::string& config_path() const { return config_path_; }
  std::string data_dir() const { return dir_.File("var"); }
  // The server's stdout+stderr so far (for failure messages).
  std::string Log() const;
  moat::testing::ChildProcess& process() { return process_; }

 private:
  moat::testing::TempDir dir_{"moat-integ"};
  std::string config_path_;
  std::string port_file_;
  std::string tls_port_file_;
  std::string log_path_;
  moat::testing::ChildProcess process_;
  std::uint16_t port_ = 0;
  std::uint16_t tls_port_ = 0;
};

// A blocking TCP connection to 127.0.0.1:port for byte-level tests (partial headers, stalls).
class RawConnection {
 public:
  RawConnection() = default;
  ~RawConnection();
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  // Returns Unavailable when the connection cannot be made.
  Status Connect(std::uint16_t port);
  // Connects from the local address `source_ip` (e.g. "127.0.0.2": any 127/8 address works on
  // loopback), to test per-client limits.
  Status ConnectFrom(const std::string& source_ip, std::uint16_t port);
  // Writes all of `bytes`; returns Unavailable when the peer has gone.
  Status Send(std::string_view bytes);
  // Writes as much of `bytes` as the socket takes within `timeout` (the peer may not be
  // reading); returns how many bytes went.
  std::size_t SendSome(std::string_view bytes, std::chrono::milliseconds timeout);
  // Reads until `needle` has been received, the peer closes, or `timeout` passes; returns all
  // that was received.
  std::string ReadUntil(std::string_view needle, std::chrono::milliseconds timeout);
  void Close();

  struct ReadResult {
    std::string data;                   // everything received
    bool closed = false;                // the peer closed (FIN or RST) before the deadline
    std::chrono::milliseconds elapsed;  // from the call until close or the deadline
  };
  // Reads until the peer closes the connection or `timeout` passes.
  ReadResult ReadUntilClose(std::chrono::milliseconds timeout);

 private:
  int fd_ = -1;
};

// What /proc says about a running process (Linux).
std::int64_t ProcessCpuMillis(pid_t pid);    // user + system CPU time so far
std::int64_t ProcessRssKib(pid_t pid);       // resident set size
int ProcessOpenFiles(pid_t pid);             // open file descriptors
// Sets the soft limit of `resource` (RLIMIT_NOFILE, RLIMIT_FSIZE, ...) of a running process,
// keeping its hard limit.
Status SetProcessSoftLimit(pid_t pid, int resource, std::uint64_t soft);

// A throw-away PKI made with the openssl CLI for TLS tests: a CA, and certificates it signs.
// File names are under `dir`; keys are written with mode 0600.
class TestPki {
 public:
  explicit TestPki(std::string dir) : dir_(std::move(dir)) {}
  // Creates the CA ("ca.pem", "ca.key").
  Status MakeCa();
  // A server certificate "<name>.pem" / "<name>.key" for `common_name`, with the subject
  // alternative names DNS:localhost and IP:127.0.0.1.
  Status MakeServerCert(const std::string& name, const std::string& common_name);
  // A client certificate "<name>.pem" / "<name>.key".
  Status MakeClientCert(const std::string& name, const std::string& common_name);
  std::string File(const std::string& name) const { return dir_ + "/" + name; }

 private:
  Status Sign(const std::string& name, const std::string& common_name, const std::string& extensions);
  std::string dir_;
};

// Replaces every occurrence of `from` in `text` with `to`.
void ReplaceAll(std::string& text, std::string_view from, std::string_view to);

// `text` parsed as a JSON object; an empty object when it is not one.
boost::json::object ParseObject(std::string_view text);

// POSTs `body` to /v1/chat/completions with `Authorization: Bearer <key>`. A request that gets no
// answer comes back as status 0 with the transport error as its body.
moat::testing::HttpResponse PostChat(moat::testing::HttpClient& client, const std::string& key, std::string_view body);

// The status code of a raw HTTP/1.1 response ("HTTP/1.1 408 ..."), or 0 when there is none.
int RawStatus(std::string_view response);

}  // namespace moat::integration
