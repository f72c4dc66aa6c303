#pragma once
// Reading a whole file into memory: the one helper for configuration, keys, attestations,
// anchors, models and scenarios that are read at once.

#include <string>
#include <string_view>

#include "moat/status.h"

namespace moat {

// Returns the bytes of the file at `path`, unchanged (binary). NotFound "cannot read
// <what> <path>" when it cannot be opened (`what` names the kind of file, may be empty),
// Unavailable when reading fails part way.
StatusOr<std::string> ReadFileContents(const std::string& path, std::string_view what = "");

}  // namespace moat
