#include "common/private_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace moat {
namespace {

constexpr mode_t kGroupOtherBits = 077;
constexpr mode_t kPermissionBits = 07777;

std::string Octal(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "%04o", static_cast<unsigned>(mode & kPermissionBits));
  return buf;
}

// Writes all of `data` to `fd`, retrying short writes and EINTR. False on error (errno set).
bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

Status EnsurePrivateDirectory(const std::string& dir, mode_t mode) {
  if (dir.empty()) return InvalidArgumentError("empty data directory path");
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT) {
      return UnavailableError("cannot stat " + dir + ": " + std::strerror(errno));
    }
    // Create each missing component with `mode` (create_directories would use 0777 & umask).
    std::filesystem::path built;
    for (const auto& part : std::filesystem::path(dir)) {
      built /= part;
      if (::mkdir(built.c_str(), mode) != 0 && errno != EEXIST) {
        return UnavailableError("cannot create directory " + built.string() + ": " +
                                std::strerror(errno));
      }
    }
    if (::stat(dir.c_str(), &st) != 0) {
      return UnavailableError("cannot stat " + dir + ": " + std::strerror(errno));
    }
    // mkdir applies the umask; the directory we created gets exactly `mode`.
    if ((st.st_mode & kPermissionBits) != mode && ::chmod(dir.c_str(), mode) != 0) {
      return UnavailableError("cannot chmod " + dir + ": " + std::strerror(errno));
    }
    return Status::Ok();
  }
  if (!S_ISDIR(st.st_mode)) return FailedPreconditionError(dir + " is not a directory");
  if ((st.st_mode & kGroupOtherBits & ~mode) != 0) {
    const mode_t narrowed = (st.st_mode & kPermissionBits) & (mode | ~kGroupOtherBits);
    if (::chmod(dir.c_str(), narrowed) != 0) {
      return UnavailableError("data directory " + dir + " has mode " + Octal(st.st_mode) +
                              " and cannot be narrowed to " + Octal(narrowed) + ": " +
                              std::strerror(errno));
    }
  }
  return Status::Ok();
}

Status EnsurePrivateFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, kPrivateFileMode);
  if (fd < 0) return UnavailableError("cannot open " + path + ": " + std::strerror(errno));
  struct stat st {};
  Status result = Status::Ok();
  if (::fstat(fd, &st) != 0) {
    result = UnavailableError("cannot stat " + path + ": " + std::strerror(errno));
  } else if ((st.st_mode & kGroupOtherBits) != 0 && ::fchmod(fd, kPrivateFileMode) != 0) {
    result = UnavailableError(path + " has mode " + Octal(st.st_mode) +
                              " and cannot be narrowed to 0600: " + std::strerror(errno));
  }
  ::close(fd);
  return result;
}

Status CheckSecretFilePermissions(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return NotFoundError("secret file " + path + " does not exist");
    return UnavailableError("cannot stat " + path + ": " + std::strerror(errno));
  }
  if ((st.st_mode & kGroupOtherBits) != 0) {
    return FailedPreconditionError("secret file " + path + " has mode " + Octal(st.st_mode) +
                                   ": other users could read or replace it; run `chmod 600 " +
                                   path + "`");
  }
  return Status::Ok();
}

Status CreateSecretFile(const std::string& path, std::string_view contents) {
  return CreateNewFile(path, contents, kPrivateFileMode);
}

Status CreateNewFile(const std::string& path, std::string_view contents, mode_t mode) {
  std::string tmp = path + ".tmp.XXXXXX";
  const int fd = ::mkstemp(tmp.data());  // mode 0600, a fresh name
  if (fd < 0) {
    return UnavailableError("cannot create a temporary file for " + path + ": " +
                            std::strerror(errno));
  }
  const bool written = ::fchmod(fd, mode) == 0 && WriteAll(fd, contents) &&
                       ::fsync(fd) == 0;
  const int write_errno = errno;
  const bool closed = ::close(fd) == 0;
  if (!written || !closed) {
    ::unlink(tmp.c_str());
    return UnavailableError("cannot write " + tmp + ": " +
                            std::strerror(written ? errno : write_errno));
  }
  // link() fails with EEXIST instead of replacing a file someone else created meanwhile.
  const int linked = ::link(tmp.c_str(), path.c_str());
  const int link_errno = errno;
  ::unlink(tmp.c_str());
  if (linked == 0) return Status::Ok();
  if (link_errno == EEXIST) return AlreadyExistsError(path + " exists");
  return UnavailableError("cannot create " + path + ": " + std::strerror(link_errno));
}

}  // namespace moat
