// Image classifiers for benchmarks and tests, built with seeded random weights: a ResNet-50 and a
// MobileNetV3-Small, shaped and named as torchvision's models are when torch.onnx.export writes them
// with their BatchNormalization layers kept (training=TrainingMode.PRESERVE), so kiln's optimizer has the
// Conv+BatchNormalization folding and the Conv+activation fusions to do that a real export needs.
//
//   ResNet-50      Conv 7x7/2, BN, Relu, MaxPool 3x3/2, 16 bottleneck blocks (1x1, 3x3, 1x1 convs, each
//                  with BN; Add with the identity or a strided 1x1 downsample; Relu), GlobalAveragePool,
//                  Flatten, Gemm to the classes
//   MobileNetV3    Conv 3x3/2, BN, HardSwish, 11 inverted residual blocks (1x1 expand, depthwise 3x3 or
//   (Small)        5x5, squeeze-excite with Relu and HardSigmoid, 1x1 project; Relu or HardSwish), 1x1 conv
//                  to 576, GlobalAveragePool, Flatten, Gemm, HardSwish, Gemm
//
// Input "input" [batch, 3, H, W] (batch symbolic), output "output" [batch, classes]. Weights are drawn
// so that activations stay in a realistic range through every layer: convolutions He-normal over their
// fan-in, BatchNormalization with running statistics near what a trained net holds (mean ~ 0, variance
// ~ 1, scale ~ 1, shift ~ 0, each spread per channel), fully connected layers as torch initializes
// them. A parameter's values depend only on the seed and its name.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace kiln::exporter {

enum class CnnFamily { kResNet50, kMobileNetV3 };

struct CnnOptions {
  int64_t opset = 17;  // 14..21 (HardSwish is opset 14)
  uint64_t seed = 0;
  int64_t image_size = 224;  // H = W; at least 32 (five stride-2 stages)
  int64_t num_classes = 1000;
  // ResNet only: bottleneck blocks per stage. {3, 4, 6, 3} is ResNet-50; fewer makes a quick test model.
  std::vector<int64_t> resnet_blocks = {3, 4, 6, 3};
};

// "resnet50" and "mobilenetv3"; nullopt for any other name.
std::optional<CnnFamily> cnn_family_of(const std::string& name);
const char* cnn_family_name(CnnFamily family);

// The model with seeded random weights. Throws kiln::Error on bad options.
ir::Model export_cnn(CnnFamily family, const CnnOptions& options = {});

}  // namespace kiln::exporter
