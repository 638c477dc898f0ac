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

std::vector<int64_t> parse_positive_list(const std::string& text, const char* option) {
  std::vector<int64_t> out;
  size_t start = 0;
  for (;;) {
    size_t end = text.find(',', start);
    std::string item = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
    long long v = 0;
    size_t used = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size() || v < 1)
      fail(option, " \"", text, "\": \"", item, "\" is not a positive integer (give a list like 1,8)");
    out.push_back(v);
    if (end == std::string::npos) return out;
    start = end + 1;
  }
}

}  // namespace kiln::tools
