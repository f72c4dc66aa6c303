#pragma once
// Reading a whole file into memory: the one helper for configuration, keys, attestations,
// anchors, models and scenarios that are read at once; and replacing one whole.

#include <string>
#include <string_view>

#include "moat/status.h"

namespace moat {

// Returns the bytes of the file at `path`, unchanged (binary). NotFound "cannot read
// <what> <path>" when it cannot be opened (`what` names the kind of file, may be empty),
// Unavailable when reading fails part way.
StatusOr<std::string> ReadFileContents(const std::string& path, std::string_view what = "");

// Replaces the file at `path` with `bytes`, mode 0600: they go to a temporary file of this
// process in the same directory (`path`.tmp.<pid>), are fsynced, and the file is renamed over
// `path`, so that a reader (or a crash) sees the old file or the new one, never a part. Returns
// Unavailable "cannot replace <what> <path>: <reason>" on failure (the temporary file is removed).
Status ReplaceFileContents(const std::string& path, std::string_view bytes, std::string_view what = "");

}  // namespace moat
