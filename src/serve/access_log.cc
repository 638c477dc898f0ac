#include "serve/access_log.h"

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>

#include "common/error.h"

namespace kiln::serve {

AccessLog::AccessLog(const std::string& where) {
  if (where.empty() || where == "off") return;
  if (where == "-") {
    out_ = stderr;
    return;
  }
  out_ = std::fopen(where.c_str(), "a");
  if (out_ == nullptr) fail("--access-log ", where, ": cannot open it for writing (", std::strerror(errno), ")");
  owned_ = true;
}

AccessLog::~AccessLog() {
  if (owned_) std::fclose(out_);
}

std::string AccessLog::format(const HttpExchangeRecord& r) {
  const auto now = std::chrono::system_clock::now();
  const std::time_t secs = std::chrono::system_clock::to_time_t(now);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm utc{};
  gmtime_r(&secs, &utc);
  char time[96];
  std::snprintf(time, sizeof time, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900, utc.tm_mon + 1,
                utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<int>(ms));
  // The fixed fields through the JSON library (a path or method can hold anything a client sent).
  nlohmann::ordered_json line = {{"time", time},
                         {"remote", r.remote},
                         {"method", r.method},
                         {"path", r.target},
                         {"status", r.status},
                         {"bytes_in", r.bytes_in},
                         {"bytes_out", r.bytes_out},
                         {"ms", std::round(r.seconds * 1e5) / 100}};
  std::string text = line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  if (!r.log_fields.empty()) text.insert(text.size() - 1, "," + r.log_fields);
  return text;
}

void AccessLog::write(const HttpExchangeRecord& record) {
  if (out_ == nullptr) return;
  const std::string line = format(record) + "\n";
  std::lock_guard lock(mutex_);
  std::fwrite(line.data(), 1, line.size(), out_);
  std::fflush(out_);
}

}  // namespace kiln::serve
