#include "common/atomic_file.h"

#include <filesystem>
#include <fstream>

#include "common/error.h"

namespace kiln {

namespace fs = std::filesystem;

void write_file_atomically(const std::string& path, const std::string& bytes, const std::string& what) {
  std::error_code ec;
  if (const fs::path parent = fs::path(path).parent_path(); !parent.empty()) {
    fs::create_directories(parent, ec);
    if (ec) fail(what, ": cannot create the folder ", parent.string(), ": ", ec.message());
  }
  // Beside the target: a rename within one file system is atomic.
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) {
      fs::remove(tmp, ec);
      fail(what, ": cannot write ", path);
    }
  }
  fs::rename(tmp, path, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    fail(what, ": cannot write ", path, ": ", ec.message());
  }
}

}  // namespace kiln
