// PackedPointwiseConv (pointwise_conv.h): the weights packed once, the work cut into tasks of a chunk of
// pixels by one block of 64 output channels, the tasks split across the OpenMP team.
#include "kernels/cpu/pointwise_conv.h"

#include <omp.h>

#include <algorithm>

#include "common/error.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/fast_kernel_util.h"
#include "kernels/cpu/thread_buffer.h"

namespace kiln::kernels::cpu {
namespace {

// The worker buffer of a task's scaled weights.
struct ScaledWeights;

// Output channels per task: the kernel's widest block.
constexpr int64_t kTaskChannels = 64;
// Pixels per task: its rows of x (at most 96 x C floats; 120 KiB at C = 320) stay in L2 while each
// channel block reads them.
constexpr int64_t kTaskPixels = 96;
// Tasks a thread should have to even out: 2 threads on 3 tasks would be 2:1.
constexpr int64_t kMinTasksPerThread = 4;
// Below this many multiply-adds a second thread costs more than it gives back.
constexpr int64_t kPointwiseParallelMacs = 1 << 18;

// Pixels [p0, p1) by output channels [c0, c1).
struct Task {
  int64_t p0, p1, c0, c1;
  // Proportional to its time: pixels by channel vectors.
  double cost() const { return static_cast<double>((p1 - p0) * ((c1 - c0 + 15) / 16)); }
  void run(const PointwiseConvArgs& a) const { pointwise_conv_avx512(a, p0, p1, c0, c1); }
};

}  // namespace

bool pointwise_conv_supported(const ConvSpec& s) {
  if (selected_isa() != Isa::kAvx512) return false;
  if (!s.channels_last || s.transposed || s.group != 1 || s.in_channels < 1 || s.out_channels < 1) return false;
  for (int i = 0; i < s.spatial_dims; ++i) {
    if (s.kernel[i] != 1 || s.strides[i] != 1) return false;
    if (s.padding == ConvPadding::kExplicit && (s.pads_begin[i] != 0 || s.pads_end[i] != 0)) return false;
  }
  switch (s.activation) {
    case ConvActivation::kNone:
    case ConvActivation::kRelu:
    case ConvActivation::kSigmoid:
    case ConvActivation::kSilu:
      return true;
    default:
      return false;
  }
}

PackedPointwiseConv::PackedPointwiseConv(const ConvSpec& spec, const float* w, const float* bias) : spec_(spec) {
  KILN_CHECK(pointwise_conv_supported(spec), "[PackedPointwiseConv] not a 1x1 convolution it computes here");
  const int64_t k = spec.in_channels, m = spec.out_channels;
  packed_channels_ = (m + kPointwiseChannelBlock - 1) / kPointwiseChannelBlock * kPointwiseChannelBlock;
  w_.assign(static_cast<size_t>(k * packed_channels_), 0.0f);
  for (int64_t o = 0; o < m; ++o)
    for (int64_t c = 0; c < k; ++c) w_[c * packed_channels_ + o] = w[o * k + c];
  bias_.assign(static_cast<size_t>(packed_channels_), 0.0f);
  if (spec.has_bias) std::copy(bias, bias + m, bias_.begin());
}

void PackedPointwiseConv::run(int64_t images, int64_t plane, const float* x, float* y, const float* z,
                              const float* s) const {
  PointwiseConvArgs a;
  a.in_channels = spec_.in_channels;
  a.out_channels = spec_.out_channels;
  a.packed_channels = packed_channels_;
  a.x = x;
  a.w = w_.data();
  a.w_stride = packed_channels_;
  a.bias = bias_.data();
  a.z = spec_.add_sum ? z : nullptr;
  a.y = y;
  a.activation = spec_.activation;
  if (s == nullptr) return run_pixels(a, images * plane, nullptr);
  // Scaled: image by image, each with its own scales.
  for (int64_t n = 0; n < images; ++n) {
    PointwiseConvArgs image = a;
    image.x = x + n * plane * a.in_channels;
    image.y = y + n * plane * a.out_channels;
    image.z = a.z ? a.z + n * plane * a.out_channels : nullptr;
    run_pixels(image, plane, s + n * a.in_channels);
  }
}

void PackedPointwiseConv::run_pixels(PointwiseConvArgs a, int64_t pixels, const float* s) const {
  // Chunks of near-equal size (at most kTaskPixels, whole blocks of pixels but the last), so that equal
  // numbers of tasks are near-equal work; on small planes (7x7) at least kMinTasksPerThread tasks a thread
  // where the plane has the pixels, as there may be one chunk but few channel blocks.
  const int64_t blocks = (a.out_channels + kTaskChannels - 1) / kTaskChannels;
  const int64_t wanted_tasks = kMinTasksPerThread * omp_get_max_threads();
  int64_t chunks = std::max((pixels + kTaskPixels - 1) / kTaskPixels, (wanted_tasks + blocks - 1) / blocks);
  chunks = std::min(chunks, (pixels + kPointwiseBlockPixels - 1) / kPointwiseBlockPixels);
  int64_t chunk_pixels = (pixels + chunks - 1) / chunks;
  chunk_pixels = (chunk_pixels + kPointwiseBlockPixels - 1) / kPointwiseBlockPixels * kPointwiseBlockPixels;
  chunks = (pixels + chunk_pixels - 1) / chunk_pixels;
  const int64_t macs = pixels * a.in_channels * a.out_channels;
  // Consecutive tasks share what is larger: a chunk's rows of x (chunk_pixels x K), taken chunk by chunk,
  // or a block's weights (K x 64), taken block by block (small planes: on 7x7 at K = 1152, both threads
  // reading every block cost 30 % more than one thread reading them once).
  const bool by_chunk = chunk_pixels >= kTaskChannels;
  auto task = [&](int64_t t) {
    const int64_t chunk = by_chunk ? t / blocks : t % chunks, block = by_chunk ? t % blocks : t / chunks;
    const int64_t p0 = chunk * chunk_pixels, c0 = block * kTaskChannels;
    return Task{p0, std::min(pixels, p0 + chunk_pixels), c0, std::min(a.out_channels, c0 + kTaskChannels)};
  };
  // A task's weights: the packed ones, or, scaled, its block of them times s into the worker's buffer (made
  // once per block a thread runs in a row).
  const size_t scaled_bytes = static_cast<size_t>(a.in_channels * kTaskChannels) * sizeof(float);
  auto run_tasks = [&](auto&& mine) {
    float* scaled = s ? reinterpret_cast<float*>(worker_thread_buffer<ScaledWeights>(scaled_bytes)) : nullptr;
    int64_t scaled_block = -1;
    for (int64_t t = 0; t < chunks * blocks; ++t) {
      if (!mine(t)) continue;
      const Task k = task(t);
      if (s == nullptr) {
        k.run(a);
        continue;
      }
      if (k.c0 != scaled_block) {
        const int64_t width = std::min(kTaskChannels, a.packed_channels - k.c0);
        for (int64_t c = 0; c < a.in_channels; ++c) {
          const float* from = a.w + c * a.packed_channels + k.c0;
          float* to = scaled + c * kTaskChannels;
          for (int64_t j = 0; j < width; ++j) to[j] = from[j] * s[c];
        }
        scaled_block = k.c0;
      }
      PointwiseConvArgs block = a;
      block.w = scaled;
      block.w_stride = kTaskChannels;
      block.w_column = k.c0;
      k.run(block);
    }
  };
  if (!worth_threads(macs, kPointwiseParallelMacs)) {
    run_tasks([](int64_t) { return true; });
    return;
  }
  // Tasks differ in cost (the last chunk and the last block are narrower): each thread takes the tasks
  // whose middle falls in its share of the total cost, in order.
  double total = 0;
  for (int64_t t = 0; t < chunks * blocks; ++t) total += task(t).cost();
#pragma omp parallel
  {
    const int64_t id = omp_get_thread_num(), threads = omp_get_num_threads();
    double done = 0;
    run_tasks([&](int64_t t) {
      const double cost = task(t).cost();
      const int64_t owner = std::min<int64_t>(threads - 1, static_cast<int64_t>((done + cost / 2) * threads / total));
      done += cost;
      return owner == id;
    });
  }
}

}  // namespace kiln::kernels::cpu
