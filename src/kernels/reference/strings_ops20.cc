// String ops added in opset 20: StringConcat, StringSplit and RegexFullMatch.
//
// RegexFullMatch: ONNX specifies RE2 syntax; kiln evaluates patterns with std::regex (ECMAScript),
// which agrees with RE2 on the common subset (classes, quantifiers, groups, alternation, anchors).
// A pattern std::regex cannot compile is refused as "not supported" rather than guessed at.
#include <pthread.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "kernels/reference/common.h"
#include "ops/registry.h"

namespace kiln::ops {

void register_string_ops_opset20(OpRegistry& r);

namespace {

using ir::DType;

void require_string(const NodeView& node, DType t, const char* what) {
  if (t != DType::kString) node.fail(what, " must be a string tensor, got ", ir::dtype_name(t));
}

// ---- StringConcat: Z = X + Y elementwise, with numpy broadcasting ---------------------------------

void infer_string_concat(InferenceContext& ctx) {
  for (size_t i = 0; i < 2; ++i) {
    const ir::Type& t = ctx.input_type(i);
    if (t.is_tensor() && t.dtype != DType::kUndefined) require_string(ctx, t.dtype, i == 0 ? "input X" : "input Y");
  }
  std::optional<ir::Shape> out =
      broadcast_shapes(ctx, std::vector<std::optional<ir::Shape>>{ctx.input_type(0).shape, ctx.input_type(1).shape});
  ctx.set_output(0, DType::kString, out);
}

void run_string_concat(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  const ir::Tensor& y = ctx.input(1);
  require_string(ctx, x.dtype(), "input X");
  require_string(ctx, y.dtype(), "input Y");
  std::vector<int64_t> shape = broadcast_shapes(ctx, {x.shape(), y.shape()});
  ir::Tensor z = ctx.make_tensor(DType::kString, shape);
  std::vector<int64_t> xo = broadcast_offsets(x.shape(), shape), yo = broadcast_offsets(y.shape(), shape);
  const std::string* xp = x.data<std::string>();
  const std::string* yp = y.data<std::string>();
  std::string* zp = z.data<std::string>();
  for (int64_t i = 0; i < z.numel(); ++i) {
    auto k = static_cast<size_t>(i);
    zp[i] = xp[xo[k]] + yp[yo[k]];
  }
  ctx.set_output(0, std::move(z));
}

// ---- StringSplit: Python's str.split(delimiter, maxsplit) per element ----------------------------

// Python's str.split(None) whitespace for single bytes (ASCII and the \x1c-\x1f separators).
// Multi-byte Unicode spaces (U+00A0, U+3000 ...) are not treated as separators.
bool is_split_space(char c) {
  auto u = static_cast<unsigned char>(c);
  return u == ' ' || (u >= '\t' && u <= '\r') || (u >= 0x1c && u <= 0x1f);
}

// maxsplit < 0 means unlimited, as in Python.
std::vector<std::string> split_whitespace(const std::string& s, int64_t maxsplit) {
  std::vector<std::string> parts;
  size_t i = 0, n = s.size();
  while (true) {
    while (i < n && is_split_space(s[i])) ++i;
    if (i == n) break;
    if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
      parts.push_back(s.substr(i));  // the remainder keeps its trailing whitespace
      break;
    }
    size_t j = i;
    while (j < n && !is_split_space(s[j])) ++j;
    parts.push_back(s.substr(i, j - i));
    i = j;
  }
  return parts;
}

std::vector<std::string> split_delimiter(const std::string& s, const std::string& delim, int64_t maxsplit) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
    size_t pos = s.find(delim, start);
    if (pos == std::string::npos) break;
    parts.push_back(s.substr(start, pos - start));
    start = pos + delim.size();
  }
  parts.push_back(s.substr(start));
  return parts;
}

int64_t read_maxsplit(const NodeView& node) {
  // Absent means unlimited; ONNX gives no meaning to negative values, Python reads them as unlimited.
  return node.has_attr("maxsplit") ? node.attr_int("maxsplit") : -1;
}

void infer_string_split(InferenceContext& ctx) {
  const ir::Type& x = ctx.input_type(0);
  if (x.is_tensor() && x.dtype != DType::kUndefined) require_string(ctx, x.dtype, "input X");
  (void)read_maxsplit(ctx);
  (void)ctx.attr_string("delimiter", "");
  std::optional<ir::Shape> y_shape;
  if (x.shape) {
    y_shape = *x.shape;
    y_shape->dims.emplace_back();  // the longest split count, known only from the data
  }
  ctx.set_output(0, DType::kString, y_shape);
  ctx.set_output(1, DType::kInt64, x.shape);
}

void run_string_split(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  require_string(ctx, x.dtype(), "input X");
  std::string delim = ctx.attr_string("delimiter", "");
  int64_t maxsplit = read_maxsplit(ctx);
  const std::string* xp = x.data<std::string>();
  std::vector<std::vector<std::string>> parts(static_cast<size_t>(x.numel()));
  int64_t widest = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    auto& p = parts[static_cast<size_t>(i)];
    p = delim.empty() ? split_whitespace(xp[i], maxsplit) : split_delimiter(xp[i], delim, maxsplit);
    widest = std::max(widest, static_cast<int64_t>(p.size()));
  }
  std::vector<int64_t> y_shape = x.shape();
  y_shape.push_back(widest);
  ir::Tensor y = ctx.make_tensor(DType::kString, y_shape);
  ir::Tensor z = ctx.make_tensor(DType::kInt64, x.shape());
  std::string* yp = y.data<std::string>();
  int64_t* zp = z.data<int64_t>();
  for (int64_t i = 0; i < x.numel(); ++i) {
    auto& p = parts[static_cast<size_t>(i)];
    zp[i] = static_cast<int64_t>(p.size());
    for (size_t k = 0; k < p.size(); ++k) yp[i * widest + static_cast<int64_t>(k)] = std::move(p[k]);
  }
  ctx.set_output(0, std::move(y));
  ctx.set_output(1, std::move(z));
}

// ---- RegexFullMatch: Y[i] = whether the whole of X[i] matches the pattern ------------------------

// libstdc++'s std::regex matcher recurses about once per input character, a few KiB of stack each
// (more under sanitizers), so matching runs on a thread of its own with a large stack, and strings
// longer than the stack can surely hold are refused with a message instead of crashing.
constexpr size_t kMaxRegexInput = 16384;
constexpr size_t kRegexStackBytes = size_t{256} << 20;

// Runs fn on a new thread with a kRegexStackBytes stack; exceptions come back to the caller.
void run_with_large_stack(const NodeView& node, const std::function<void()>& fn) {
  struct Job {
    const std::function<void()>* fn;
    std::exception_ptr error;
  } job{&fn, nullptr};
  auto entry = [](void* arg) -> void* {
    auto* j = static_cast<Job*>(arg);
    try {
      (*j->fn)();
    } catch (...) {
      j->error = std::current_exception();
    }
    return nullptr;
  };
  pthread_attr_t attr;
  if (pthread_attr_init(&attr) != 0) node.fail("cannot start the regex matching thread");
  pthread_t thread;
  int rc = pthread_attr_setstacksize(&attr, kRegexStackBytes);
  if (rc == 0) rc = pthread_create(&thread, &attr, entry, &job);
  pthread_attr_destroy(&attr);
  if (rc != 0) node.fail("cannot start the regex matching thread (error ", rc, ")");
  pthread_join(thread, nullptr);
  if (job.error) std::rethrow_exception(job.error);
}

std::regex compile_pattern(const NodeView& node) {
  if (!node.has_attr("pattern")) node.fail("attribute pattern is required");
  std::string pattern = node.attr_string("pattern");
  std::regex re;
  run_with_large_stack(node, [&] {  // the regex compiler recurses too, per nesting level
    try {
      re = std::regex(pattern, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      node.fail("pattern \"", pattern, "\" is not supported: kiln evaluates ECMAScript regular expressions (", e.what(),
                ") and the pattern does not compile as one; ONNX specifies RE2 syntax");
    }
  });
  return re;
}

void infer_regex_full_match(InferenceContext& ctx) {
  const ir::Type& x = ctx.input_type(0);
  if (x.is_tensor() && x.dtype != DType::kUndefined) require_string(ctx, x.dtype, "input X");
  (void)compile_pattern(ctx);
  ctx.set_output(0, DType::kBool, x.shape);
}

void run_regex_full_match(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  require_string(ctx, x.dtype(), "input X");
  std::regex re = compile_pattern(ctx);
  ir::Tensor y = ctx.make_tensor(DType::kBool, x.shape());
  const std::string* xp = x.data<std::string>();
  bool* yp = y.data<bool>();
  for (int64_t i = 0; i < x.numel(); ++i)
    if (xp[i].size() > kMaxRegexInput)
      ctx.fail("element ", i, " is ", xp[i].size(), " bytes long; matching strings longer than ", kMaxRegexInput,
               " bytes is not supported");
  run_with_large_stack(ctx, [&] {
    for (int64_t i = 0; i < x.numel(); ++i) {
      try {
        yp[i] = std::regex_match(xp[i], re);
      } catch (const std::regex_error& e) {
        ctx.fail("matching element ", i, " failed: ", e.what());
      }
    }
  });
  ctx.set_output(0, std::move(y));
}

}  // namespace

void register_string_ops_opset20(OpRegistry& r) {
  r.add(OpDef{"", "StringConcat", 20, kMaxOnnxOpset, infer_string_concat, run_string_concat});
  r.add(OpDef{"", "StringSplit", 20, kMaxOnnxOpset, infer_string_split, run_string_split});
  r.add(OpDef{"", "RegexFullMatch", 20, kMaxOnnxOpset, infer_regex_full_match, run_regex_full_match});
}

}  // namespace kiln::ops
