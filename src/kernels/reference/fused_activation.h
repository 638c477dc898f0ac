// The activations FusedConv names (kernels/reference/contrib_fused_conv.cc, and the fast convolution in
// kernels/cpu/conv_kernel.cc, which must accept exactly what the reference accepts): each name's kind
// and how many activation_params it takes.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

namespace kiln::ops {

enum class FusedActivationKind {
  kIdentity,
  kRelu,
  kTanh,
  kSigmoid,
  kLeakyRelu,
  kClip,
  kHardSigmoid,
  kHardSwish,
  kSilu
};

struct FusedActivationName {
  FusedActivationKind kind;
  size_t params;  // activation_params it takes
};

// The activation `name` stands for; nullopt for a name the node's domain does not take (HardSwish and
// Silu are ai.kiln.FusedConv's only; com.microsoft.FusedConv has ONNX Runtime's six).
inline std::optional<FusedActivationName> fused_activation_by_name(const std::string& name, bool kiln_domain) {
  using K = FusedActivationKind;
  if (name == "Relu") return FusedActivationName{K::kRelu, 0};
  if (name == "Tanh") return FusedActivationName{K::kTanh, 0};
  if (name == "Sigmoid") return FusedActivationName{K::kSigmoid, 0};
  if (name == "LeakyRelu") return FusedActivationName{K::kLeakyRelu, 1};
  if (name == "Clip") return FusedActivationName{K::kClip, 2};
  if (name == "HardSigmoid") return FusedActivationName{K::kHardSigmoid, 2};
  if (name == "HardSwish" && kiln_domain) return FusedActivationName{K::kHardSwish, 0};
  if (name == "Silu" && kiln_domain) return FusedActivationName{K::kSilu, 0};
  return std::nullopt;
}

}  // namespace kiln::ops
