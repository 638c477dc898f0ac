// kiln serve's access log: one JSON object per line per request, written when its answer has gone out, e.g.
//   {"time":"2026-12-07T21:04:05.123Z","remote":"127.0.0.1:51234","method":"POST",
//    "path":"/v2/models/bert/infer","status":200,"bytes_in":812,"bytes_out":1450,"ms":3.21,
//    "model":"bert","version":"1","batch":4,"queue_ms":1.02,"compute_ms":2.11}
// (the inference fields come from the service: serve/inference_service.h). Status 499: the client closed
// its connection before the answer.
#pragma once

#include <cstdio>
#include <mutex>
#include <string>

#include "serve/http_server.h"

namespace kiln::serve {

class AccessLog {
 public:
  // "-": stderr; "off" or empty: nothing; else a file, appended to (fails naming it if it cannot be opened).
  explicit AccessLog(const std::string& where);
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  bool enabled() const { return out_ != nullptr; }
  void write(const HttpExchangeRecord& record);

  // The line for a record, without the newline.
  static std::string format(const HttpExchangeRecord& record);

 private:
  std::mutex mutex_;
  std::FILE* out_ = nullptr;
  bool owned_ = false;
};

}  // namespace kiln::serve
