#include "test/upstream/test_process.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace moat::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// ---------------------------------------------------------------------------------------------
// ChildProcess

namespace {

// Returns this process's environment with `overrides` ("NAME=value") added or replaced.
std::vector<std::string> MergedEnvironment(const std::vector<std::string>& overrides) {
  std::vector<std::string> env;
  auto name_of = [](std::string_view entry) { return entry.substr(0, entry.find('=')); };
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    bool overridden = false;
    for (const std::string& o : overrides) {
      if (name_of(o) == name_of(entry)) overridden = true;
    }
    if (!overridden) env.emplace_back(entry);
  }
  env.insert(env.end(), overrides.begin(), overrides.end());
  return env;
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

int DecodeWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return -1;
}

}  // namespace

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !reaped_) (void)Stop(SIGKILL, std::chrono::milliseconds(0));
}

Status ChildProcess::Start(const std::vector<std::string>& argv,
                           const std::vector<std::string>& env, const std::string& output_path) {
  if (pid_ > 0 && running()) return FailedPreconditionError("a child is already running");
  if (argv.empty()) return InvalidArgumentError("argv is empty");
  // Everything the child needs is prepared before fork: only async-signal-safe calls after it.
  std::vector<std::string> args = argv;
  std::vector<std::string> envs = MergedEnvironment(env);
  std::vector<char*> c_args = CStrings(args);
  std::vector<char*> c_env = CStrings(envs);
  const pid_t parent = getpid();
  // The child reports a failed setup or exec as an errno on this close-on-exec pipe; a successful
  // exec closes it, so the parent reads EOF.
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) {
    return InternalError(std::string("pipe failed: ") + std::strerror(errno));
  }

  pid_t pid = fork();
  if (pid < 0) {
    close(report[0]);
    close(report[1]);
    return InternalError(std::string("fork failed: ") + std::strerror(errno));
  }
  if (pid == 0) {
    close(report[0]);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(126);
    if (!output_path.empty()) {
      int fd = open(output_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (fd < 0) {
        int err = errno;
        (void)!write(report[1], &err, sizeof(err));
        _exit(126);
      }
      dup2(fd, STDOUT_FILENO);
      dup2(fd, STDERR_FILENO);
    }
    execve(c_args[0], c_args.data(), c_env.data());
    int err = errno;
    (void)!write(report[1], &err, sizeof(err));
    _exit(127);
  }
  close(report[1]);
  int child_errno = 0;
  ssize_t n;
  do {
    n = read(report[0], &child_errno, sizeof(child_errno));
  } while (n < 0 && errno == EINTR);
  close(report[0]);
  pid_ = pid;
  reaped_ = false;
  wait_status_ = 0;
  if (n > 0) {
    while (waitpid(pid, &wait_status_, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
    return InternalError("cannot start " + argv[0] + ": " + std::strerror(child_errno));
  }
  return Status::Ok();
}

bool ChildProcess::running() {
  if (pid_ <= 0 || reaped_) return false;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    reaped_ = true;
    wait_status_ = status;
    return false;
  }
  return r == 0;
}

StatusOr<int> ChildProcess::Stop(int sig, std::chrono::milliseconds grace) {
  if (pid_ <= 0) return FailedPreconditionError("no child was started");
  if (running()) {
    kill(pid_, sig);
    auto deadline = std::chrono::steady_clock::now() + grace;
    while (running() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (running()) {
      kill(pid_, SIGKILL);
      int status = 0;
      while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      reaped_ = true;
      wait_status_ = status;
    }
  }
  return DecodeWaitStatus(wait_status_);
}

StatusOr<std::uint16_t> ChildProcess::WaitForPortFile(const std::string& path,
                                                      std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    std::ifstream in(path);
    std::string line;
    if (in && std::getline(in, line) && in.good()) {  // good(): the line ended with '\n'
      unsigned port = 0;
      auto [ptr, ec] = std::from_chars(line.data(), line.data() + line.size(), port);
      if (ec == std::errc() && port > 0 && port < 65536) return static_cast<std::uint16_t>(port);
    }
    if (!running()) {
      return UnavailableError("child exited (status " +
                              std::to_string(DecodeWaitStatus(wait_status_)) + ") before writing " +
                              path);
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return DeadlineExceededError("no port in " + path);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// ---------------------------------------------------------------------------------------------
// TempDir

TempDir::TempDir(std::string_view prefix) {
  std::string tmpl = (std::filesystem::temp_directory_path() / std::string(prefix)).string();
  tmpl += "-XXXXXX";
  if (mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

// ---------------------------------------------------------------------------------------------
// HttpClient

std::string HttpResponse::Header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

struct HttpClient::Impl {
  std::string host;
  std::uint16_t port;
  asio::io_context ioc{1};
  beast::tcp_stream stream{ioc};
  beast::flat_buffer buffer;
  bool connected = false;

  // Runs one asynchronous operation to completion with `timeout`; returns its error code.
  template <class StartOp>
  boost::system::error_code Run(std::chrono::milliseconds timeout, StartOp&& start) {
    boost::system::error_code result = asio::error::would_block;
    stream.expires_after(timeout);
    start([&result](boost::system::error_code ec, auto&&...) { result = ec; });
    ioc.restart();
    ioc.run();
    return result;
  }

  void Drop() {
    boost::system::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream.close();
    buffer.clear();
    connected = false;
  }

  // True when the idle kept-alive connection has been closed (or written to) by the server.
  bool PeerClosed() {
    pollfd pfd{stream.socket().native_handle(), POLLIN | POLLRDHUP, 0};
    return ::poll(&pfd, 1, 0) != 0;
  }
};

namespace {

Status NetError(const boost::system::error_code& ec, std::string_view what) {
  std::string msg = std::string(what) + ": " + ec.message();
  if (ec == beast::error::timeout) return DeadlineExceededError(msg);
  return UnavailableError(msg);
}

HttpHeaders LowerCaseHeaders(const http::fields& fields) {
  HttpHeaders out;
  for (const auto& f : fields) {
    std::string name(f.name_string());
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto [it, inserted] = out.emplace(name, std::string(f.value()));
    if (!inserted) it->second += ", " + std::string(f.value());
  }
  return out;
}

}  // namespace

HttpClient::HttpClient(std::string host, std::uint16_t port, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>()), timeout_(timeout) {
  impl_->host = std::move(host);
  impl_->port = port;
}

HttpClient::~HttpClient() = default;

void HttpClient::Close() {
  if (impl_->connected) impl_->Drop();
}

StatusOr<HttpResponse> HttpClient::Request(std::string_view method, std::string_view target,
                                           std::string_view body, const HttpHeaders& headers) {
  return StreamRequest(method, target, body, headers, nullptr);
}

StatusOr<HttpResponse> HttpClient::StreamRequest(
    std::string_view method, std::string_view target, std::string_view body,
    const HttpHeaders& headers, const std::function<void(const StreamChunk&)>& on_chunk) {
  Impl& im = *impl_;
  if (im.connected && im.PeerClosed()) im.Drop();
  if (!im.connected) {
    boost::system::error_code ec;
    asio::ip::address address = asio::ip::make_address(im.host, ec);
    tcp::endpoint endpoint;
    if (!ec) {
      endpoint = tcp::endpoint(address, im.port);
    } else {
      tcp::resolver resolver(im.ioc);
      auto results = resolver.resolve(im.host, std::to_string(im.port), ec);
      if (ec || results.empty()) return NetError(ec, "resolve " + im.host);
      endpoint = *results.begin();
    }
    ec = im.Run(timeout_, [&](auto handler) { im.stream.async_connect(endpoint, handler); });
    if (ec) {
      im.Drop();
      return NetError(ec, "connect");
    }
    im.stream.socket().set_option(tcp::no_delay(true), ec);
    im.connected = true;
    ++connections_opened_;
  }

  http::request<http::string_body> req;
  req.method_string(method);
  req.target(target);
  req.version(11);
  req.set(http::field::host, im.host + ":" + std::to_string(im.port));
  if (!body.empty()) req.set(http::field::content_type, "application/json");
  for (const auto& [name, value] : headers) req.set(name, value);
  req.body() = std::string(body);
  req.prepare_payload();

  boost::system::error_code ec =
      im.Run(timeout_, [&](auto handler) { http::async_write(im.stream, req, handler); });
  if (ec) {
    im.Drop();
    return NetError(ec, "write request");
  }

  http::response_parser<http::string_body> parser;
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  if (method == "HEAD") parser.skip(true);
  ec = im.Run(timeout_, [&](auto handler) {
    http::async_read_header(im.stream, im.buffer, parser, handler);
  });
  if (ec) {
    im.Drop();
    return NetError(ec, "read response header");
  }

  // Chunked bodies go through the callbacks (one StreamChunk per HTTP chunk); other bodies land
  // in the parser's string body and are reported per read.
  std::string whole_body;
  std::string current_chunk;
  auto on_chunk_header = [](std::uint64_t, beast::string_view, boost::system::error_code&) {};
  auto on_chunk_body = [&](std::uint64_t remain, beast::string_view data,
                           boost::system::error_code&) -> std::size_t {
    current_chunk.append(data.data(), data.size());
    if (remain == data.size()) {
      whole_body += current_chunk;
      if (on_chunk)
        on_chunk(StreamChunk{std::move(current_chunk), std::chrono::steady_clock::now()});
      current_chunk.clear();
    }
    return data.size();
  };
  parser.on_chunk_header(on_chunk_header);
  parser.on_chunk_body(on_chunk_body);

  std::size_t reported = 0;
  while (!parser.is_done()) {
    ec = im.Run(timeout_, [&](auto handler) {
      http::async_read_some(im.stream, im.buffer, parser, handler);
    });
    if (ec) {
      im.Drop();
      return NetError(ec, "read response body");
    }
    const std::string& plain = parser.get().body();
    if (on_chunk && plain.size() > reported) {
      on_chunk(StreamChunk{plain.substr(reported), std::chrono::steady_clock::now()});
    }
    reported = plain.size();
  }

  http::response<http::string_body> res = parser.release();
  HttpResponse out;
  out.status = static_cast<int>(res.result_int());
  out.headers = LowerCaseHeaders(res.base());
  out.body = res.chunked() ? std::move(whole_body) : std::move(res.body());
  if (!res.keep_alive()) im.Drop();
  return out;
}

// ---------------------------------------------------------------------------------------------
// SSE, TestUpstream

std::vector<std::string> SseDataPayloads(std::string_view body) {
  std::vector<std::string> out;
  std::string data;
  bool has_data = false;
  std::size_t pos = 0;
  while (pos <= body.size()) {
    std::size_t end = body.find('\n', pos);
    if (end == std::string_view::npos) end = body.size();
    std::string_view line = body.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) {
      if (has_data) out.push_back(std::move(data));
      data.clear();
      has_data = false;
    } else if (line.substr(0, 5) == "data:") {
      std::string_view value = line.substr(5);
      if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      if (has_data) data += '\n';
      data += value;
      has_data = true;
    }
    pos = end + 1;
  }
  if (has_data) out.push_back(std::move(data));
  return out;
}

std::string TestUpstreamBinary() {
#ifdef MOAT_TEST_UPSTREAM_BIN
  return MOAT_TEST_UPSTREAM_BIN;
#else
  return "moat-test-upstream";
#endif
}

TestUpstream::~TestUpstream() {
  if (process_.running()) (void)process_.Stop(SIGKILL, std::chrono::milliseconds(0));
}

Status TestUpstream::Start(const std::vector<std::string>& extra_args) {
  if (dir_.path().empty()) return InternalError("cannot create a temporary directory");
  std::string port_file = dir_.File("port");
  std::error_code ignored;
  std::filesystem::remove(port_file, ignored);
  std::vector<std::string> argv = {TestUpstreamBinary(), "--host", "127.0.0.1", "--port", "0",
                                   "--port-file",        port_file};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  MOAT_RETURN_IF_ERROR(process_.Start(argv));
  MOAT_ASSIGN_OR_RETURN(port_, process_.WaitForPortFile(port_file));
  return Status::Ok();
}

StatusOr<int> TestUpstream::Stop() { return process_.Stop(SIGTERM); }

}  // namespace moat::testing
