// Conversions between ONNX protobuf messages and ir:: types, shared by import and export. Internal to
// src/onnx/: nothing outside this folder includes protobuf headers.
#pragma once

#include <cstdint>
#include <string>

#include "ir/graph.h"
#include "onnx/onnx_pb.h"

namespace kiln::onnx_io::detail {

// Builds a tensor from a TensorProto. `what` names it in messages (`initializer "w"`); `base_dir` is where
// external data is looked up ("" refuses it). raw_data is released from `p` once copied, to keep the
// peak memory of a large model near one copy.
ir::Tensor tensor_from_proto(::onnx::TensorProto& p, const std::string& what, const std::string& base_dir);

// Writes a tensor inline: raw_data for numeric types, string_data for strings. Does not set the name.
void tensor_to_proto(const ir::Tensor& t, ::onnx::TensorProto* p);

ir::Type type_from_proto(const ::onnx::TypeProto& tp, const std::string& what);
void type_to_proto(const ir::Type& t, ::onnx::TypeProto* tp);

// Reads `nbytes` of external data for tensor `p` into `dst`; refuses locations that escape `base_dir`,
// symbolic links, and ranges past the end of the file.
void read_external_data(const ::onnx::TensorProto& p, const std::string& what, const std::string& base_dir, void* dst,
                        size_t nbytes);

// Byte size of a dense tensor of `numel` elements of `dtype` as TensorProto stores it (packed for the
// sub-byte types; strings: not applicable, returns 0);
// throws on overflow.
size_t checked_nbytes(ir::DType dtype, int64_t numel, const std::string& what);

}  // namespace kiln::onnx_io::detail
