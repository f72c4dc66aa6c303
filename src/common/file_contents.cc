#include "common/file_contents.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace moat {

StatusOr<std::string> ReadFileContents(const std::string& path, std::string_view what) {
  const std::string name = what.empty() ? path : std::string(what) + " " + path;
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("cannot read " + name);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return UnavailableError("read error on " + name);
  return std::move(ss).str();
}

Status ReplaceFileContents(const std::string& path, std::string_view bytes, std::string_view what) {
  const std::string name = what.empty() ? path : std::string(what) + " " + path;
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return UnavailableError("cannot replace " + name + ": " + std::strerror(errno));
  bool ok = true;
  for (size_t done = 0; ok && done < bytes.size();) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<size_t>(n);
  }
  ok = ok && ::fsync(fd) == 0;
  const int saved_errno = errno;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = ok ? errno : saved_errno;
    ::unlink(tmp.c_str());
    return UnavailableError("cannot replace " + name + ": " + std::strerror(err));
  }
  return Status::Ok();
}

}  // namespace moat
