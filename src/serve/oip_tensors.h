// The Open Inference Protocol's (KServe v2) tensors: an inference request's JSON, with or without the binary
// tensor extension, into kiln tensors, and a response's outputs back.
//
// Request:  {"id": "...", "parameters": {"binary_data_output": true},
//            "inputs": [{"name": "input_ids", "shape": [1, 8], "datatype": "INT64", "data": [101, ...]}],
//            "outputs": [{"name": "logits", "parameters": {"binary_data": true}}]}
//   "data" is row-major, flat or nested. With the binary extension the HTTP header
//   Inference-Header-Content-Length: N says the JSON is the body's first N bytes; each input whose
//   "parameters" has "binary_data_size": n then takes the next n bytes of the rest, in the order of
//   "inputs" (BYTES elements each as a 4-byte little-endian length and the bytes), and every byte must be
//   taken.
// Response: {"model_name", "model_version", "id", "outputs": [{"name", "datatype", "shape", "data"}]}, an
//   output asked for in binary carrying "parameters": {"binary_data_size": n} instead of "data", its bytes
//   after the JSON (Inference-Header-Content-Length then set).
//
// Every fault in a request is a RequestError: one sentence naming the input and what is wrong, answered
// with 400.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "ir/dtype.h"
#include "ir/shape.h"
#include "ir/tensor.h"

namespace kiln::serve {

struct RequestError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// "FP32", "INT64", "BYTES", ...; nullopt for a dtype the protocol has no name for.
std::optional<std::string> oip_datatype(ir::DType dtype);
// The reverse; nullopt for an unknown name.
std::optional<ir::DType> dtype_of_oip(const std::string& datatype);

struct InferRequest {
  std::string id;
  std::vector<std::pair<std::string, ir::Tensor>> inputs;
  std::vector<std::string> outputs;         // asked for by name, in order; empty: every output
  std::vector<std::string> binary_outputs;  // of those (or of all), the ones wanted as binary data
  bool all_outputs_binary = false;          // "binary_data_output": true
};

// `header_length`: the Inference-Header-Content-Length header's value, or empty.
InferRequest parse_infer_request(const std::string& body, const std::string& header_length);

struct InferResponse {
  std::string body;
  std::string header_length;  // the Inference-Header-Content-Length to send, or empty (JSON only)
};

InferResponse encode_infer_response(const std::string& model, const std::string& version, const InferRequest& request,
                                    const std::vector<std::pair<std::string, const ir::Tensor*>>& outputs);

}  // namespace kiln::serve
