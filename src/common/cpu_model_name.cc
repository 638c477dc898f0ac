#include "common/cpu_model_name.h"

#include <fstream>

namespace kiln {

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    const size_t colon = line.find(':');
    if (line.rfind("model name", 0) != 0 || colon == std::string::npos) continue;
    const size_t value = line.find_first_not_of(" \t", colon + 1);
    return value == std::string::npos ? "unknown CPU" : line.substr(value);
  }
  return "unknown CPU";
}

}  // namespace kiln
