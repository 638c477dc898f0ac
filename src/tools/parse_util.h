// Small parsers shared by the subcommands.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace kiln::tools {

// "NAME=VALUE" -> {NAME, VALUE}; fails naming the option when there is no '='.
std::pair<std::string, std::string> split_assignment(const std::string& text, const std::string& option);
// {"batch=1", "sequence=128"} -> {{"batch",1},{"sequence",128}}
std::map<std::string, int64_t> parse_dims(const std::vector<std::string>& items);
// "1,8" -> {1, 8}; one clear sentence, naming `option`, for anything else.
std::vector<int64_t> parse_positive_list(const std::string& text, const char* option);

}  // namespace kiln::tools
