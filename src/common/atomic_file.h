// Writing a whole file or nothing: the bytes go to a temporary name beside the target, which is renamed
// over it once they are all written, so that a failed or interrupted write never leaves a partial file
// (DESIGN.md, Errors). One writer for every report kiln writes; the older ones (bench's JSON, .npy,
// safetensors, profile traces) are to move onto it.
#pragma once

#include <string>

namespace kiln {

// Writes `bytes` to `path`, creating missing parent folders. Fails (kiln::Error) with a message that
// starts with `what` (the option or file the path came from, e.g. "--json") and names the path.
void write_file_atomically(const std::string& path, const std::string& bytes, const std::string& what);

}  // namespace kiln
