#include "common/file_contents.h"

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

}  // namespace moat
