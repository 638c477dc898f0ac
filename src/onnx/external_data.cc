// Reading a tensor's external data safely: the location must stay inside the model's folder, may not
// pass through a symbolic link, and the byte range must lie inside the file.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>

#include "onnx/proto_convert.h"

namespace kiln::onnx_io::detail {

namespace fs = std::filesystem;

namespace {

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

int64_t parse_offset(const std::string& prefix, const std::string& key, const std::string& text) {
  int64_t v = -1;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  KILN_CHECK(ec == std::errc() && ptr == text.data() + text.size() && v >= 0, prefix, key, " \"", text,
             "\" is not a non-negative integer");
  return v;
}

}  // namespace

void read_external_data(const ::onnx::TensorProto& p, const std::string& what, const std::string& base_dir, void* dst,
                        size_t nbytes) {
  const std::string prefix = "external data for " + what + ": ";
  std::string location;
  int64_t offset = 0, length = -1;
  bool has_location = false;
  for (const auto& e : p.external_data()) {
    if (e.key() == "location") {
      location = e.value();
      has_location = true;
    } else if (e.key() == "offset") {
      offset = parse_offset(prefix, "offset", e.value());
    } else if (e.key() == "length") {
      length = parse_offset(prefix, "length", e.value());
    }
    // "checksum" and "basepath" are informational.
  }
  KILN_CHECK(has_location && !location.empty(), prefix, "no location given");
  const std::string loc_q = "location \"" + location + "\"";
  KILN_CHECK(!base_dir.empty(), prefix, loc_q, " cannot be read: the model was not read from a file");
  KILN_CHECK(location.find('\0') == std::string::npos, prefix, loc_q, " contains a NUL byte");

  fs::path rel(location);
  KILN_CHECK(!rel.is_absolute() && !rel.has_root_name() && !rel.has_root_directory(), prefix, loc_q,
             " is an absolute path");
  for (const auto& comp : rel) KILN_CHECK(comp != "..", prefix, loc_q, " escapes the model folder");

  // Walk the components with lstat so that no symbolic link is followed, not even a folder one.
  fs::path cur(base_dir);
  for (const auto& comp : rel) {
    if (comp.empty() || comp == ".") continue;
    cur /= comp;
    struct stat st {};
    if (::lstat(cur.c_str(), &st) != 0)
      fail(prefix, loc_q, " cannot be read: ", cur.string(), ": ", std::strerror(errno));
    KILN_CHECK(!S_ISLNK(st.st_mode), prefix, loc_q, " is a symbolic link (", cur.string(), "); refused");
  }
  std::error_code ec;
  fs::path root = fs::canonical(base_dir, ec);
  KILN_CHECK(!ec, prefix, "model folder \"", base_dir, "\" cannot be resolved: ", ec.message());
  fs::path full = fs::weakly_canonical(cur, ec);
  KILN_CHECK(!ec, prefix, loc_q, " cannot be resolved: ", ec.message());
  auto [root_end, full_it] = std::mismatch(root.begin(), root.end(), full.begin(), full.end());
  KILN_CHECK(root_end == root.end(), prefix, loc_q, " escapes the model folder");

  Fd f;
  f.fd = ::open(full.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (f.fd < 0) fail(prefix, loc_q, " cannot be opened: ", std::strerror(errno));
  struct stat st {};
  KILN_CHECK(::fstat(f.fd, &st) == 0, prefix, loc_q, " cannot be read: ", std::strerror(errno));
  KILN_CHECK(S_ISREG(st.st_mode), prefix, loc_q, " is not a regular file");
  const int64_t size = st.st_size;

  KILN_CHECK(length < 0 || static_cast<uint64_t>(length) == nbytes, prefix, loc_q, ": length ", length,
             " does not match the tensor's ", nbytes, " bytes");
  KILN_CHECK(offset <= size, prefix, loc_q, ": offset ", offset, " is past the end of the file (", size, " bytes)");
  KILN_CHECK(nbytes <= static_cast<uint64_t>(size - offset), prefix, loc_q, ": ", nbytes, " bytes at offset ", offset,
             " run past the end of the file (", size, " bytes)");

  auto* out = static_cast<char*>(dst);
  size_t done = 0;
  while (done < nbytes) {
    ssize_t n = ::pread(f.fd, out + done, nbytes - done, static_cast<off_t>(offset + static_cast<int64_t>(done)));
    if (n < 0 && errno == EINTR) continue;
    KILN_CHECK(n > 0, prefix, loc_q, ": read failed at offset ", offset + static_cast<int64_t>(done), ": ",
               n < 0 ? std::strerror(errno) : "unexpected end of file");
    done += static_cast<size_t>(n);
  }
}

}  // namespace kiln::onnx_io::detail
