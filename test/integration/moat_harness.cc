#include "test/integration/moat_harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <random>
#include <fstream>
#include <sstream>
#include <thread>

namespace moat::integration {

namespace json = boost::json;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

std::string MoatBinary() { return MOAT_BIN; }

namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A file descriptor for a new empty temporary file; `path` receives its name.
int MakeTempFile(std::string* path) {
  std::string tmpl = "/tmp/moat-integ-cmd-XXXXXX";
  int fd = mkstemp(tmpl.data());
  *path = tmpl;
  return fd;
}

int DecodeWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return -1;
}

}  // namespace

CommandResult RunCommand(const std::vector<std::string>& argv, milliseconds timeout) {
  CommandResult result;
  std::string out_path, err_path;
  int out_fd = MakeTempFile(&out_path);
  int err_fd = MakeTempFile(&err_path);
  std::vector<char*> c_args;
  for (const auto& a : argv) c_args.push_back(const_cast<char*>(a.c_str()));
  c_args.push_back(nullptr);

  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(out_fd, STDOUT_FILENO);
    dup2(err_fd, STDERR_FILENO);
    execv(c_args[0], c_args.data());
    _exit(127);
  }
  close(out_fd);
  close(err_fd);
  if (pid > 0) {
    auto deadline = steady_clock::now() + timeout;
    int status = 0;
    for (;;) {
      pid_t r = waitpid(pid, &status, WNOHANG);
      if (r == pid) break;
      if (r < 0 && errno != EINTR) break;
      if (steady_clock::now() > deadline) {
        kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        break;
      }
      std::this_thread::sleep_for(milliseconds(2));
    }
    result.exit_code = DecodeWaitStatus(status);
  }
  result.out = ReadFile(out_path);
  result.err = ReadFile(err_path);
  unlink(out_path.c_str());
  unlink(err_path.c_str());
  return result;
}

std::uint16_t ClosedLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  std::uint16_t port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    socklen_t len = sizeof(addr);
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
  }
  close(fd);  // never listened: connecting to it is refused
  return port;
}

// ---------------------------------------------------------------------------------------------
// MoatInstance

MoatInstance::MoatInstance()
    : config_path_(dir_.File("moat.toml")),
      port_file_(dir_.File("port")),
      tls_port_file_(dir_.File("tls_port")),
      log_path_(dir_.File("moat.log")) {}

MoatInstance::~MoatInstance() {
  if (process_.running()) (void)process_.Stop(SIGKILL, milliseconds(2000));
}

Status MoatInstance::WriteConfig(std::string toml) {
  ReplaceAll(toml, "{data_dir}", data_dir());
  std::ofstream out(config_path_, std::ios::trunc);
  out << toml;
  out.close();
  if (!out) return InternalError("cannot write " + config_path_);
  return Status::Ok();
}

Status MoatInstance::Start() {
  ::unlink(port_file_.c_str());
  ::unlink(tls_port_file_.c_str());
  Status started = process_.Start({MoatBinary(), "serve", "--config", config_path_, "--port-file",
                                   port_file_, "--tls-port-file", tls_port_file_},
                                  {}, log_path_);
  if (!started.ok()) return started;
  StatusOr<std::uint16_t> port = process_.WaitForPortFile(port_file_, milliseconds(15000));
  if (!port.ok()) {
    return Status(port.status().code(), port.status().message() + "\nmoat log:\n" + Log());
  }
  port_ = *port;
  // Written before the plain port file: present now.
  std::ifstream tls(tls_port_file_);
  int tls_port = 0;
  tls >> tls_port;
  tls_port_ = static_cast<std::uint16_t>(tls_port);
  return Status::Ok();
}

StatusOr<int> MoatInstance::Stop(int sig) { return process_.Stop(sig, milliseconds(15000)); }

CommandResult MoatInstance::Cli(std::vector<std::string> args) const {
  args.insert(args.begin(), MoatBinary());
  args.push_back("--config");
  args.push_back(config_path_);
  return RunCommand(args);
}

StatusOr<std::string> MoatInstance::CreateAccountAndKeyWithCli(const std::string& account,
                                                               const std::string& tier) const {
  CommandResult created = Cli({"account", "create", account, "--tier", tier});
  if (created.exit_code != 0) {
    return InternalError("moat account create failed: " + created.out + created.err);
  }
  CommandResult key = Cli({"key", "create", "--account", account});
  if (key.exit_code != 0) return InternalError("moat key create failed: " + key.out + key.err);
  std::string secret = key.out;
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
  if (secret.empty() || secret.find('\n') != std::string::npos) {
    return InternalError("moat key create printed no single secret line: " + key.out);
  }
  return secret;
}

StatusOr<std::vector<json::object>> MoatInstance::ExportAudit() const {
  CommandResult exported = Cli({"audit", "export"});
  if (exported.exit_code != 0) {
    return InternalError("moat audit export exited " + std::to_string(exported.exit_code) + ": " +
                         exported.err);
  }
  std::vector<json::object> records;
  std::istringstream lines(exported.out);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    json::error_code ec;
    json::value v = json::parse(line, ec);
    if (ec || !v.is_object())
      return InternalError("audit export line is not a JSON object: " + line);
    records.push_back(std::move(v.as_object()));
  }
  return records;
}

StatusOr<json::object> MoatInstance::AuditRecord(const std::string& request_id) const {
  MOAT_ASSIGN_OR_RETURN(std::vector<json::object> records, ExportAudit());
  for (auto& r : records) {
    const json::value* id = r.if_contains("request_id");
    if (id != nullptr && id->is_string() && id->as_string() == request_id) return std::move(r);
  }
  return NotFoundError("no audit record for " + request_id + " among " +
                       std::to_string(records.size()));
}

std::string MoatInstance::Log() const { return ReadFile(log_path_); }

// ---------------------------------------------------------------------------------------------
// RawConnection

RawConnection::~RawConnection() {
  if (fd_ >= 0) close(fd_);
}

Status RawConnection::Connect(std::uint16_t port) {
  fd_ = socket(AF_INET, SOCK_STREAM, 0);
  if (fd_ < 0) return UnavailableError("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return UnavailableError("connect failed: " + std::string(strerror(errno)));
  }
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return Status::Ok();
}

Status RawConnection::ConnectFrom(const std::string& source_ip, std::uint16_t port) {
  fd_ = socket(AF_INET, SOCK_STREAM, 0);
  if (fd_ < 0) return UnavailableError("socket() failed");
  sockaddr_in local{};
  local.sin_family = AF_INET;
  local.sin_port = 0;
  if (inet_pton(AF_INET, source_ip.c_str(), &local.sin_addr) != 1) {
    return InvalidArgumentError("not an IPv4 address: " + source_ip);
  }
  if (bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0) {
    return UnavailableError("bind to " + source_ip + " failed: " + std::string(strerror(errno)));
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return UnavailableError("connect failed: " + std::string(strerror(errno)));
  }
  return Status::Ok();
}

std::size_t RawConnection::SendSome(std::string_view bytes, milliseconds timeout) {
  std::size_t sent = 0;
  auto deadline = steady_clock::now() + timeout;
  while (sent < bytes.size()) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - steady_clock::now());
    if (left.count() <= 0) break;
    pollfd pfd{fd_, POLLOUT, 0};
    int r = poll(&pfd, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0 || (pfd.revents & (POLLERR | POLLHUP)) != 0) break;
    ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) break;
    sent += static_cast<std::size_t>(n);
  }
  return sent;
}

std::string RawConnection::ReadUntil(std::string_view needle, milliseconds timeout) {
  std::string data;
  auto deadline = steady_clock::now() + timeout;
  char buf[4096];
  while (data.find(needle) == std::string::npos) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - steady_clock::now());
    if (left.count() <= 0) break;
    pollfd pfd{fd_, POLLIN, 0};
    int r = poll(&pfd, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    data.append(buf, static_cast<std::size_t>(n));
  }
  return data;
}

void RawConnection::Close() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

Status RawConnection::Send(std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return UnavailableError("send failed: " + std::string(strerror(errno)));
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return Status::Ok();
}

RawConnection::ReadResult RawConnection::ReadUntilClose(milliseconds timeout) {
  ReadResult result;
  auto start = steady_clock::now();
  auto deadline = start + timeout;
  char buf[4096];
  for (;;) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - steady_clock::now());
    if (left.count() <= 0) break;
    pollfd pfd{fd_, POLLIN, 0};
    int r = poll(&pfd, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      result.closed = true;
      break;
    }
    result.data.append(buf, static_cast<std::size_t>(n));
  }
  result.elapsed = std::chrono::duration_cast<milliseconds>(steady_clock::now() - start);
  return result;
}

std::int64_t ProcessCpuMillis(pid_t pid) {
  // /proc/<pid>/stat: fields 14 and 15 (utime, stime) in clock ticks, after the ")" of comm.
  std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  std::size_t close_paren = stat.rfind(')');
  if (close_paren == std::string::npos) return -1;
  std::istringstream in(stat.substr(close_paren + 2));
  std::string field;
  std::int64_t utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::stoll(field);
    if (i == 15) stime = std::stoll(field);
  }
  const long ticks = sysconf(_SC_CLK_TCK);
  return (utime + stime) * 1000 / (ticks > 0 ? ticks : 100);
}

std::int64_t ProcessRssKib(pid_t pid) {
  std::istringstream in(ReadFile("/proc/" + std::to_string(pid) + "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

int ProcessOpenFiles(pid_t pid) {
  int n = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return n;
}

Status SetProcessSoftLimit(pid_t pid, int resource, std::uint64_t soft) {
  rlimit old{};
  if (prlimit(pid, static_cast<__rlimit_resource>(resource), nullptr, &old) != 0) {
    return InternalError("prlimit read failed: " + std::string(strerror(errno)));
  }
  rlimit limit{static_cast<rlim_t>(soft), old.rlim_max};
  if (prlimit(pid, static_cast<__rlimit_resource>(resource), &limit, nullptr) != 0) {
    return InternalError("prlimit failed: " + std::string(strerror(errno)));
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// TestPki

namespace {

constexpr char kOpenssl[] = "/usr/bin/openssl";
constexpr char kValidDays[] = "2";

Status RunOpenssl(const std::vector<std::string>& args) {
  std::vector<std::string> argv{kOpenssl};
  argv.insert(argv.end(), args.begin(), args.end());
  CommandResult r = RunCommand(argv);
  if (r.exit_code != 0) return InternalError("openssl " + args.front() + " failed: " + r.err);
  return Status::Ok();
}

// A random serial number, so that certificates of one test run never collide.
std::string RandomSerial() {
  std::random_device rd;
  char buf[32];
  std::snprintf(buf, sizeof(buf), "0x%08x%08x", rd(), rd());
  return buf;
}

}  // namespace

Status TestPki::MakeCa() {
  MOAT_RETURN_IF_ERROR(RunOpenssl({"req", "-x509", "-newkey", "ec", "-pkeyopt",
                                   "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", File("ca.key"),
                                   "-out", File("ca.pem"), "-days", kValidDays, "-subj", "/CN=moat test CA",
                                   "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
                                   "keyUsage=critical,keyCertSign,cRLSign"}));
  ::chmod(File("ca.key").c_str(), 0600);
  return Status::Ok();
}

Status TestPki::Sign(const std::string& name, const std::string& common_name,
                     const std::string& extensions) {
  const std::string ext_file = File(name + ".ext");
  {
    std::ofstream ext(ext_file);
    ext << extensions;
  }
  MOAT_RETURN_IF_ERROR(RunOpenssl({"req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                                   "-nodes", "-keyout", File(name + ".key"), "-out", File(name + ".csr"),
                                   "-subj", "/CN=" + common_name}));
  ::chmod(File(name + ".key").c_str(), 0600);
  return RunOpenssl({"x509", "-req", "-in", File(name + ".csr"), "-CA", File("ca.pem"), "-CAkey",
                     File("ca.key"), "-set_serial", RandomSerial(), "-out", File(name + ".pem"), "-days",
                     kValidDays, "-extfile", ext_file});
}

Status TestPki::MakeServerCert(const std::string& name, const std::string& common_name) {
  return Sign(name, common_name,
              "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n"
              "extendedKeyUsage=serverAuth\n");
}

Status TestPki::MakeClientCert(const std::string& name, const std::string& common_name) {
  return Sign(name, common_name, "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n");
}

void ReplaceAll(std::string& text, std::string_view from, std::string_view to) {
  for (std::size_t pos = text.find(from); pos != std::string::npos;
       pos = text.find(from, pos + to.size())) {
    text.replace(pos, from.size(), to);
  }
}

json::object ParseObject(std::string_view text) {
  json::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return {};
  return std::move(v.as_object());
}

moat::testing::HttpResponse PostChat(moat::testing::HttpClient& client, const std::string& key, std::string_view body) {
  auto res = client.Request("POST", "/v1/chat/completions", body, {{"authorization", "Bearer " + key}});
  if (res.ok()) return *res;
  moat::testing::HttpResponse failed;
  failed.body = res.status().ToString();
  return failed;
}

int RawStatus(std::string_view response) {
  if (response.substr(0, 9) != "HTTP/1.1 " || response.size() < 12) return 0;
  int status = 0;
  for (char c : response.substr(9, 3)) {
    if (c < '0' || c > '9') return 0;
    status = status * 10 + (c - '0');
  }
  return status;
}

}  // namespace moat::integration
