#pragma once
// Permissions of the gateway's data at rest. Audit records hold full prompts and the data
// directory holds the keys that sign and watermark: nothing in it may be readable by other
// users. These helpers create what is missing with owner-only permissions, tighten the gateway's
// own data files, and refuse secret files that others can read.

#include <string>
#include <string_view>
#include <sys/types.h>

#include "moat/status.h"

namespace moat {

// Owner-only modes: directories rwx------, files rw-------.
inline constexpr mode_t kPrivateDirectoryMode = 0700;
inline constexpr mode_t kPrivateFileMode = 0600;

// Creates `dir` (and missing parents, with `mode`) when it does not exist; when it exists with
// group/other permission bits beyond `mode`, narrows it to `mode`. Returns Unavailable when the
// directory cannot be created or changed, FailedPrecondition when `path` is not a directory.
Status EnsurePrivateDirectory(const std::string& dir, mode_t mode = kPrivateDirectoryMode);

// For a data file the gateway owns (a SQLite database): creates it empty with mode 0600 when it
// does not exist (SQLite then gives its -wal and -shm files the same mode); when it exists and
// group/others have any permission, narrows it to 0600. Unavailable on failure.
Status EnsurePrivateFile(const std::string& path);

// For a secret file (signing key, key pepper, watermark master secret, TLS private key): OK when
// it exists and neither group nor others can read or write it; FailedPrecondition with the fix
// ("chmod 600 <path>") otherwise; NotFound when it does not exist.
Status CheckSecretFilePermissions(const std::string& path);

// Creates the secret file `path` holding exactly `contents`, mode 0600 whatever the umask. The
// bytes go to a temporary file in the same directory, are fsynced, and the file is then linked
// into place: `path` appears complete or not at all, and an existing file is never replaced.
// Returns AlreadyExists when `path` exists (e.g. another process created it first: read that
// one), Unavailable when the file cannot be written. The parent directory must exist.
Status CreateSecretFile(const std::string& path, std::string_view contents);

// CreateSecretFile with another mode, for a file that may be shared (e.g. a public key, 0644).
Status CreateNewFile(const std::string& path, std::string_view contents, mode_t mode);

}  // namespace moat
