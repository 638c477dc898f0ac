// ONNX LSTM and GRU (opset 7 on; the layout attribute from 14) in float32, with constant W, R, B and
// peepholes P packed once and absorbed: the session releases the initializers, and every call is answered
// here, an invalid one failing with the reference kernel's message (kernels/reference/recurrent.cc, whose
// conventions it follows: gates i, o, f, c and z, r, h in the spec's order, clip on every pre-activation,
// Y zero past a row's sequence length, Y_h / Y_c the state after the row's last step). Every direction,
// sequence_lens, initial_h / initial_c, peepholes, input_forget, clip and GRU's linear_before_reset are
// covered; activations other than the defaults (Sigmoid, Tanh, Tanh) go to the reference.
//
// A call, in two parts:
//   1. XW = X W^T + biases for every time step of every direction: ONE product, [seq * batch, input] x
//      [input, directions * gates * hidden], through PackedMatMul (W packed once; oneDNN's brgemm on
//      AVX-512, kiln's panel GEMM on AVX2). Rb is folded into the bias with Wb for every gate it is simply
//      added to: all but GRU's h gate with linear_before_reset, where r multiplies it.
//   2. The time steps, per direction: h x R^T fused with the cell's gates (vector_kernels.h
//      recurrent_step). R is packed once in blocks of 16 hidden units, the gates of a block side by side,
//      so that one pass over a block's weights gives every gate of its units and the cell update follows
//      while they are in L1. GRU without linear_before_reset needs r * h for every unit before the
//      candidate gate's product: two passes per step. The blocks are walked forward on even steps and
//      backward on odd ones, so that a pass starts on the weights the last one ended on: one direction's
//      R is 4 MiB for 512 LSTM units, twice a 2 MiB L2, and a scan in one order would miss on every line.
//      The steps are memory-bound: h x R^T reads all of R per step for a few FMAs per weight.
// Threads: the directions of a bidirectional op run side by side, one thread each, without any barrier
// (ddddocr's CRNN: two directions on a 2-core machine). Where threads remain and a step is large, a
// direction's hidden units are split between threads, with a barrier after each step (each pass: all of
// h, or of r * h, must be written before any thread reads it).
//
// Measured (Intel Xeon with AVX-512 and AMX, 2 cores, on a shared machine under load), ddddocr-crnn's
// bidirectional LSTM alone (32 steps, 512 inputs and units), one thread, CPU time per call: 11-24 ms,
// against ~115 ms for the reference kernel and 16-27 ms for ONNX Runtime 1.31 in the same minutes.
#include <omp.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/fast_kernel_table.h"
#include "kernels/cpu/fast_kernel_util.h"
#include "kernels/cpu/onednn_matmul.h"
#include "kernels/cpu/thread_buffer.h"
#include "kernels/cpu/vector_kernels.h"
#include "ops/node_view.h"

namespace kiln::kernels::cpu {

namespace {

enum class RecurrentOp { kLstm, kGru };

// A direction's hidden units are split between threads only when a step has at least this many
// multiply-adds per thread: below it, a barrier per step costs more than the split saves.
constexpr int64_t kRecurrentSplitWork = 64 * 1024;

// Optional inputs: 4 sequence_lens, 5 initial_h, 6 initial_c (LSTM), 7 P (LSTM).
constexpr size_t kRecurrentSeqLens = 4, kRecurrentInitialH = 5, kRecurrentInitialC = 6, kRecurrentPeepholes = 7;

struct RecurrentAlignedDelete {
  void operator()(float* p) const { ::operator delete[](p, std::align_val_t(64)); }
};
using RecurrentFloats = std::unique_ptr<float[], RecurrentAlignedDelete>;

RecurrentFloats recurrent_alloc(int64_t count) {
  return RecurrentFloats(
      static_cast<float*>(::operator new[](static_cast<size_t>(count) * sizeof(float), std::align_val_t(64))));
}

// Gates [first, first + gates) of one direction's R ([op_gates * hidden, hidden]) in recurrent_step's
// layout (vector_kernels.h): per block of 16 units, hidden rows of gates * 16 floats.
RecurrentFloats pack_recurrent_weights(const float* r, int64_t hidden, int64_t first, int64_t gates) {
  const int64_t blocks = (hidden + kRecurrentBlock - 1) / kRecurrentBlock, width = gates * kRecurrentBlock;
  RecurrentFloats packed = recurrent_alloc(blocks * hidden * width);
  for (int64_t j = 0; j < blocks; ++j)
    for (int64_t k = 0; k < hidden; ++k) {
      float* row = packed.get() + (j * hidden + k) * width;
      for (int64_t g = 0; g < gates; ++g)
        for (int64_t i = 0; i < kRecurrentBlock; ++i) {
          const int64_t unit = j * kRecurrentBlock + i;
          row[g * kRecurrentBlock + i] = unit < hidden ? r[((first + g) * hidden + unit) * hidden + k] : 0.0f;
        }
    }
  return packed;
}

// What make_recurrent_kernel read from the node and its constants.
struct RecurrentConfig {
  RecurrentOp op = RecurrentOp::kLstm;
  int64_t dirs = 1;
  bool reverse = false;  // direction "reverse" (bidirectional: direction 1 runs backward)
  int64_t layout = 0;
  int64_t hidden = 0, input = 0;
  bool linear_before_reset = false, input_forget = false, has_clip = false;
  float clip = 0;
  std::vector<int64_t> w_shape;  // for messages
  bool has_bias = false, has_peepholes = false;
};

class RecurrentKernel : public FastKernel {
 public:
  RecurrentKernel(const RecurrentConfig& cfg, const float* w, const float* r, const float* b, const float* p)
      : cfg_(cfg), projection_(projection_spec(cfg), w, projection_bias(cfg, b).data()) {
    const int64_t h = cfg.hidden, g = gates();
    if (cfg.op == RecurrentOp::kGru && cfg.linear_before_reset) h_bias_.assign(static_cast<size_t>(cfg.dirs * h), 0.0f);
    for (int64_t d = 0; d < cfg.dirs; ++d) {
      const float* rd = r + d * g * h * h;
      if (cfg.op == RecurrentOp::kLstm) {
        packed_.push_back(pack_recurrent_weights(rd, h, 0, 4));
      } else if (cfg.linear_before_reset) {
        packed_.push_back(pack_recurrent_weights(rd, h, 0, 3));
        if (b) std::copy_n(b + d * 2 * g * h + g * h + 2 * h, h, h_bias_.begin() + d * h);  // Rb_h
      } else {
        packed_.push_back(pack_recurrent_weights(rd, h, 0, 2));
        candidate_.push_back(pack_recurrent_weights(rd, h, 2, 1));
      }
    }
    if (p) peepholes_.assign(p, p + cfg.dirs * 3 * h);
  }

  std::vector<size_t> absorbed_inputs() const override {
    std::vector<size_t> in = {1, 2};
    if (cfg_.has_bias) in.push_back(3);
    if (cfg_.has_peepholes) in.push_back(kRecurrentPeepholes);
    return in;
  }

  std::string implementation() const override {
    return std::string(isa_name(selected_isa())) + " + " + gemm_engine_implementation(projection_.engine());
  }

  bool run(ops::KernelContext& ctx) const override;

 private:
  // Everything a call's time steps read and write.
  struct Call {
    int64_t seq = 0, batch = 0, steps = 0;
    const int64_t* lens = nullptr;  // [batch]
    const float* xw = nullptr;      // [seq * batch, dirs * gates * hidden], X's row order
    float* y = nullptr;             // or null
    float* h = nullptr;             // [2][dirs * batch, hidden]: step s reads half s % 2, writes the other
    float* c = nullptr;             // [dirs * batch, hidden]
    float* z = nullptr;             // GRU, linear_before_reset = 0: [dirs * batch, hidden]
    float* reset_h = nullptr;       // the same
    RecurrentRow* rows = nullptr;   // [dirs * parts][batch]: each worker's
  };

  int64_t gates() const { return cfg_.op == RecurrentOp::kLstm ? 4 : 3; }

  static MatMulSpec projection_spec(const RecurrentConfig& cfg) {
    MatMulSpec spec;
    spec.k = cfg.input;
    spec.n = cfg.dirs * (cfg.op == RecurrentOp::kLstm ? 4 : 3) * cfg.hidden;
    spec.has_bias = true;
    spec.trans_b = true;  // W [dirs, gates * hidden, input] is [N, K]
    return spec;
  }

  // Wb + Rb per gate, but Wb alone for GRU's h gate with linear_before_reset (r multiplies its Rb).
  static std::vector<float> projection_bias(const RecurrentConfig& cfg, const float* b) {
    const int64_t gh = (cfg.op == RecurrentOp::kLstm ? 4 : 3) * cfg.hidden;
    std::vector<float> bias(static_cast<size_t>(cfg.dirs * gh), 0.0f);
    if (!b) return bias;
    for (int64_t d = 0; d < cfg.dirs; ++d)
      for (int64_t j = 0; j < gh; ++j) {
        const bool rb_apart = cfg.op == RecurrentOp::kGru && cfg.linear_before_reset && j >= 2 * cfg.hidden;
        bias[d * gh + j] = b[d * 2 * gh + j] + (rb_apart ? 0.0f : b[d * 2 * gh + gh + j]);
      }
    return bias;
  }

  int64_t y_offset(const Call& call, int64_t t, int64_t d, int64_t b) const {
    return (cfg_.layout == 0 ? (t * cfg_.dirs + d) * call.batch + b : (b * call.seq + t) * cfg_.dirs + d) * cfg_.hidden;
  }
  int64_t state_offset(const Call& call, int64_t d, int64_t b) const {
    return (cfg_.layout == 0 ? d * call.batch + b : b * cfg_.dirs + d) * cfg_.hidden;
  }

  void check_state(const ops::KernelContext& ctx, size_t i, const char* name, const ir::Dims& shape) const;
  void run_direction(const Call& call, int64_t d, int64_t part, int64_t parts) const;

  RecurrentConfig cfg_;
  PackedMatMul projection_;
  std::vector<RecurrentFloats> packed_;     // per direction: every gate, or GRU's z and r
  std::vector<RecurrentFloats> candidate_;  // per direction: GRU's h gate (linear_before_reset = 0)
  std::vector<float> h_bias_;               // GRU with linear_before_reset: Rb_h, [dirs, hidden]
  std::vector<float> peepholes_;            // LSTM: P, [dirs, 3 * hidden], or empty
};

// The reference's checks of initial_h / initial_c, in its words.
void RecurrentKernel::check_state(const ops::KernelContext& ctx, size_t i, const char* name,
                                  const ir::Dims& shape) const {
  if (!ctx.has_input(i)) return;
  const ir::Tensor& t = ctx.input(i);
  if (t.dtype() != ir::DType::kFloat32)
    ctx.fail(name, " has type ", ir::dtype_name(t.dtype()), " but X has ", ir::dtype_name(ir::DType::kFloat32));
  if (t.shape() != shape) ctx.fail(name, " has shape ", ir::to_string(t.shape()), ", expected ", ir::to_string(shape));
}

bool RecurrentKernel::run(ops::KernelContext& ctx) const {
  const RecurrentConfig& cfg = cfg_;
  const int64_t dirs = cfg.dirs, hidden = cfg.hidden, g = gates();
  // The reference's checks of the inputs it reads per call, in its order (W, R, B, P are checked and
  // absorbed; X's type is checked against W's, after W's shape against X).
  const ir::Tensor& x = ctx.input(0);
  if (x.rank() != 3) ctx.fail("X must have rank 3, got ", ir::to_string(x.shape()));
  Call call;
  call.seq = x.dim(cfg.layout == 0 ? 0 : 1);
  call.batch = x.dim(cfg.layout == 0 ? 1 : 0);
  const int64_t seq = call.seq, batch = call.batch;
  if (x.dim(2) != cfg.input)
    ctx.fail("W has shape ", ir::to_string(cfg.w_shape), ", expected ",
             ir::to_string(ir::Dims{dirs, g * hidden, x.dim(2)}));
  if (x.dtype() != ir::DType::kFloat32)
    ctx.fail("W has type ", ir::dtype_name(ir::DType::kFloat32), " but X has ", ir::dtype_name(x.dtype()));

  // Lengths, then the workers' row lists, in the calling thread's scratch (no allocation once grown).
  const int64_t threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  const int64_t blocks = (hidden + kRecurrentBlock - 1) / kRecurrentBlock;
  int64_t parts = std::max<int64_t>(1, dirs == 2 ? threads / 2 : threads);
  parts = std::min({parts, blocks, std::max<int64_t>(1, batch * g * hidden * hidden / kRecurrentSplitWork)});
  std::byte* scratch = thread_buffer<RecurrentKernel>(static_cast<size_t>(batch) * sizeof(int64_t) +
                                                      static_cast<size_t>(dirs * parts * batch) * sizeof(RecurrentRow));
  int64_t* lens = reinterpret_cast<int64_t*>(scratch);
  call.rows = reinterpret_cast<RecurrentRow*>(scratch + static_cast<size_t>(batch) * sizeof(int64_t));
  call.lens = lens;
  std::fill(lens, lens + batch, seq);
  if (ctx.has_input(kRecurrentSeqLens)) {
    const ir::Tensor& st = ctx.input(kRecurrentSeqLens);
    if (!ir::is_integer(st.dtype())) ctx.fail("sequence_lens must be int32, got ", ir::dtype_name(st.dtype()));
    if (st.shape() != ir::Dims{batch})
      ctx.fail("sequence_lens has shape ", ir::to_string(st.shape()), ", expected ", ir::to_string(ir::Dims{batch}));
    for (int64_t b = 0; b < batch; ++b) {
      int64_t l = st.dtype() == ir::DType::kInt32   ? st.data<int32_t>()[b]
                  : st.dtype() == ir::DType::kInt64 ? st.data<int64_t>()[b]
                                                    : static_cast<int64_t>(st.as_double(b));
      if (l < 0 || l > seq) ctx.fail("sequence_lens value ", l, " is outside [0, ", seq, "]");
      lens[b] = l;
    }
  }
  const ir::Dims state_shape = cfg.layout == 0 ? ir::Dims{dirs, batch, hidden} : ir::Dims{batch, dirs, hidden};
  check_state(ctx, kRecurrentInitialH, "initial_h", state_shape);
  const bool lstm = cfg.op == RecurrentOp::kLstm;
  if (lstm) check_state(ctx, kRecurrentInitialC, "initial_c", state_shape);

  // Scratch: XW, then h (two halves), c, z and r * h.
  const int64_t states = dirs * batch * hidden, n = dirs * g * hidden;
  const bool two_pass = !lstm && !cfg.linear_before_reset;
  const int64_t scratch_floats = seq * batch * n + 2 * states + (lstm ? states : 0) + (two_pass ? 2 * states : 0);
  ir::Tensor work = ctx.make_tensor(ir::DType::kFloat32, {scratch_floats});
  float* next = work.data<float>();
  auto take = [&](int64_t count) {
    float* p = next;
    next += count;
    return p;
  };
  float* xw = take(seq * batch * n);
  call.xw = xw;
  call.h = take(2 * states);
  if (lstm) call.c = take(states);
  if (two_pass) {
    call.z = take(states);
    call.reset_h = take(states);
  }
  ir::Tensor y;
  if (ctx.has_output(0)) {
    y = ctx.make_tensor(ir::DType::kFloat32,
                        cfg.layout == 0 ? ir::Dims{seq, dirs, batch, hidden} : ir::Dims{batch, seq, dirs, hidden});
    call.y = y.data<float>();
  }

  // 1. The input projection of every step and direction.
  projection_.run(seq * batch, x.data<float>(), cfg.input, xw, n);

  // 2. The time steps, from the initial state.
  auto initial = [&](size_t i, float* dst) {
    const float* src = ctx.has_input(i) ? ctx.input(i).data<float>() : nullptr;
    for (int64_t d = 0; d < dirs; ++d)
      for (int64_t b = 0; b < batch; ++b) {
        float* row = dst + (d * batch + b) * hidden;
        if (src)
          std::memcpy(row, src + state_offset(call, d, b), static_cast<size_t>(hidden) * sizeof(float));
        else
          std::fill(row, row + hidden, 0.0f);
      }
  };
  initial(kRecurrentInitialH, call.h);
  if (lstm) initial(kRecurrentInitialC, call.c);
  call.steps = batch > 0 ? *std::max_element(lens, lens + batch) : 0;
  if (call.steps > 0) {
    if (dirs * parts == 1 || threads == 1) {
      for (int64_t d = 0; d < dirs; ++d) run_direction(call, d, 0, 1);
    } else {
#pragma omp parallel num_threads(static_cast <int>(dirs * parts))
      {
        const int64_t team = omp_get_num_threads(), id = omp_get_thread_num();
        if (team == dirs * parts) {
          run_direction(call, id / parts, id % parts, parts);
        } else if (id == 0) {  // fewer threads than asked for: one does it all
          for (int64_t d = 0; d < dirs; ++d) run_direction(call, d, 0, 1);
        }
      }
    }
  }

  // Y is 0 past each row's length; Y_h and Y_c hold the state after its last step (in h's half len % 2).
  if (call.y)
    for (int64_t d = 0; d < dirs; ++d)
      for (int64_t b = 0; b < batch; ++b)
        for (int64_t t = lens[b]; t < seq; ++t) std::fill_n(call.y + y_offset(call, t, d, b), hidden, 0.0f);
  auto final_state = [&](size_t i, const float* src, bool halves) {
    if (!ctx.has_output(i)) return;
    ir::Tensor t = ctx.make_tensor(ir::DType::kFloat32, state_shape);
    for (int64_t d = 0; d < dirs; ++d)
      for (int64_t b = 0; b < batch; ++b) {
        const float* row = src + (halves ? (lens[b] % 2) * states : 0) + (d * batch + b) * hidden;
        std::memcpy(t.data<float>() + state_offset(call, d, b), row, static_cast<size_t>(hidden) * sizeof(float));
      }
    ctx.set_output(i, std::move(t));
  };
  if (call.y) ctx.set_output(0, std::move(y));
  final_state(1, call.h, true);
  if (lstm) final_state(2, call.c, false);
  return true;
}

// Direction d's steps for blocks of hidden units [part, part + 1) / parts; with parts > 1, called by every
// thread of a team of dirs * parts, which meet at a barrier after each pass.
void RecurrentKernel::run_direction(const Call& call, int64_t d, int64_t part, int64_t parts) const {
  const RecurrentConfig& cfg = cfg_;
  const int64_t hidden = cfg.hidden, batch = call.batch, n = cfg.dirs * gates() * hidden;
  const int64_t blocks = (hidden + kRecurrentBlock - 1) / kRecurrentBlock;
  const int64_t block_begin = blocks * part / parts, block_end = blocks * (part + 1) / parts;
  const bool backward = cfg.reverse || d == 1;
  const int64_t states = cfg.dirs * batch * hidden;
  const VectorKernelTable& kernels = vector_kernels();
  RecurrentRow* rows = call.rows + (d * parts + part) * batch;
  RecurrentStepArgs a;
  a.hidden = hidden;
  a.rows = rows;
  a.c = call.c;
  a.z = call.z;
  a.reset_h = call.reset_h;
  a.peepholes = peepholes_.empty() ? nullptr : peepholes_.data() + d * 3 * hidden;
  a.h_bias = h_bias_.empty() ? nullptr : h_bias_.data() + d * hidden;
  a.input_forget = cfg.input_forget;
  a.has_clip = cfg.has_clip;
  a.clip = cfg.clip;
  const bool two_pass = cfg.op == RecurrentOp::kGru && !cfg.linear_before_reset;
  for (int64_t s = 0; s < call.steps; ++s) {
    // The rows still running, each at its own time step (a reverse pass starts at the row's last one).
    int64_t count = 0;
    for (int64_t b = 0; b < batch; ++b) {
      const int64_t len = call.lens[b];
      if (s >= len) continue;
      const int64_t t = backward ? len - 1 - s : s;
      const int64_t x_row = cfg.layout == 0 ? t * batch + b : b * call.seq + t;
      rows[count++] = {call.xw + x_row * n + d * gates() * hidden, call.y ? call.y + y_offset(call, t, d, b) : nullptr,
                       d * batch + b};
    }
    a.row_count = count;
    a.reverse_blocks = s % 2 == 1;
    a.h = call.h + (s % 2) * states;
    a.h_out = call.h + ((s + 1) % 2) * states;
    if (two_pass) {
      a.cell = RecurrentCell::kGruGates;
      a.weights = packed_[static_cast<size_t>(d)].get();
      if (count > 0) kernels.recurrent_step(a, block_begin, block_end);
      if (parts > 1) {
#pragma omp barrier
      }
      a.cell = RecurrentCell::kGruCandidate;
      a.weights = candidate_[static_cast<size_t>(d)].get();
    } else {
      a.cell = cfg.op == RecurrentOp::kLstm ? RecurrentCell::kLstm : RecurrentCell::kGruLinearBeforeReset;
      a.weights = packed_[static_cast<size_t>(d)].get();
    }
    if (count > 0) kernels.recurrent_step(a, block_begin, block_end);
    if (parts > 1) {
#pragma omp barrier
    }
  }
}

// The reference's reading of the activations attribute, accepting only the defaults (in any case).
bool recurrent_default_activations(const ops::NodeView& v, RecurrentOp op, int64_t dirs) {
  const std::vector<std::string> given = v.attr_strings("activations");
  if (given.empty()) return true;
  const std::vector<std::string> defaults = op == RecurrentOp::kLstm
                                                ? std::vector<std::string>{"sigmoid", "tanh", "tanh"}
                                                : std::vector<std::string>{"sigmoid", "tanh"};
  if (given.size() != defaults.size() * static_cast<size_t>(dirs) && !(given.size() == defaults.size() && dirs == 2))
    return false;
  for (size_t i = 0; i < given.size(); ++i) {
    std::string lower = given[i];
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower != defaults[i % defaults.size()]) return false;
  }
  return true;
}

template <RecurrentOp kOp>
std::unique_ptr<FastKernel> make_recurrent_kernel(const ir::Node& n, const ir::Graph& g, int64_t opset) {
  RecurrentConfig cfg;
  cfg.op = kOp;
  const int64_t gates = kOp == RecurrentOp::kLstm ? 4 : 3;
  const size_t max_inputs = kOp == RecurrentOp::kLstm ? 8 : 6;
  if (n.inputs.size() > max_inputs) return nullptr;
  int64_t hidden_attr = 0;
  try {
    ops::NodeView v(n, opset);
    const std::string direction = v.attr_string("direction", "forward");
    if (direction != "forward" && direction != "reverse" && direction != "bidirectional") return nullptr;
    cfg.dirs = direction == "bidirectional" ? 2 : 1;
    cfg.reverse = direction == "reverse";
    cfg.layout = opset >= 14 ? v.attr_int("layout", 0) : 0;
    if (cfg.layout != 0 && cfg.layout != 1) return nullptr;
    if (!recurrent_default_activations(v, kOp, cfg.dirs)) return nullptr;
    cfg.has_clip = v.has_attr("clip");
    cfg.clip = v.attr_float("clip", 0);
    if (cfg.has_clip && !(cfg.clip > 0)) return nullptr;
    cfg.linear_before_reset = kOp == RecurrentOp::kGru && v.attr_int("linear_before_reset", 0) != 0;
    cfg.input_forget = kOp == RecurrentOp::kLstm && v.attr_int("input_forget", 0) != 0;
    hidden_attr = v.has_attr("hidden_size") ? v.attr_int("hidden_size") : 0;
    if (v.has_attr("hidden_size") && hidden_attr <= 0) return nullptr;
  } catch (const Error&) {
    return nullptr;  // attributes the reference refuses, with its own message
  }
  const ir::Tensor* w = float_constant(g, n, 1);
  const ir::Tensor* r = float_constant(g, n, 2);
  if (!w || !r || w->rank() != 3 || r->rank() != 3) return nullptr;
  cfg.hidden = r->dim(2);
  cfg.input = w->dim(2);
  const int64_t gh = gates * cfg.hidden;
  if (cfg.hidden <= 0 || cfg.input <= 0 || (hidden_attr != 0 && hidden_attr != cfg.hidden)) return nullptr;
  if (w->shape() != ir::Dims{cfg.dirs, gh, cfg.input} || r->shape() != ir::Dims{cfg.dirs, gh, cfg.hidden})
    return nullptr;
  cfg.w_shape = w->shape();
  const ir::Tensor* b = nullptr;
  if (n.inputs.size() > 3 && !n.inputs[3].empty()) {
    b = float_constant(g, n, 3);
    if (!b || b->shape() != ir::Dims{cfg.dirs, 2 * gh}) return nullptr;
  }
  const ir::Tensor* p = nullptr;
  if (kOp == RecurrentOp::kLstm && n.inputs.size() > kRecurrentPeepholes && !n.inputs[kRecurrentPeepholes].empty()) {
    p = float_constant(g, n, kRecurrentPeepholes);
    if (!p || p->shape() != ir::Dims{cfg.dirs, 3 * cfg.hidden}) return nullptr;
  }
  cfg.has_bias = b != nullptr;
  cfg.has_peepholes = p != nullptr;
  return std::make_unique<RecurrentKernel>(cfg, w->data<float>(), r->data<float>(), b ? b->data<float>() : nullptr,
                                           p ? p->data<float>() : nullptr);
}

}  // namespace

std::span<const FastKernelEntry> recurrent_kernel_entries() {
  constexpr uint64_t kF32 = dtype_set({ir::DType::kFloat32});
  // LSTM and GRU 7, 14 (the layout attribute) and 22 (more element types); 1 and 3 had output_sequence.
  static const FastKernelEntry kEntries[] = {
      {"", "LSTM", 7, kLatestOpset, kF32, make_recurrent_kernel<RecurrentOp::kLstm>},
      {"", "GRU", 7, kLatestOpset, kF32, make_recurrent_kernel<RecurrentOp::kGru>},
  };
  return kEntries;
}

}  // namespace kiln::kernels::cpu
