#include "tools/parse_util.h"

#include "common/error.h"

namespace kiln::tools {

std::pair<std::string, std::string> split_assignment(const std::string& text, const std::string& option) {
  size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) fail(option, " expects NAME=VALUE, got \"", text, "\"");
  return {text.substr(0, eq), text.substr(eq + 1)};
}

std::map<std::string, int64_t> parse_dims(const std::vector<std::string>& items) {
  std::map<std::string, int64_t> dims;
  for (const auto& item : items) {
    auto [name, value] = split_assignment(item, "--dim");
    try {
      size_t used = 0;
      long long v = std::stoll(value, &used);
      if (used != value.size() || v < 0) throw std::invalid_argument("");
      dims[name] = v;
    } catch (const std::exception&) {
      fail("--dim ", name, ": \"", value, "\" is not a non-negative integer");
    }
  }
  return dims;
}

}  // namespace kiln::tools
