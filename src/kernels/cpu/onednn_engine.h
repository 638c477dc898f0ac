// The process-wide oneDNN CPU engine and a stream per calling thread. Only kernels/cpu/ includes this
// header (and <dnnl.hpp>): the runtime sees oneDNN through the kernels' own headers.
//
// One engine for the whole process: an engine owns oneDNN's primitive cache and memory bookkeeping, and
// every primitive and memory object must name the engine it was made for, so kernels share this one.
// The stream is per thread (thread_local) rather than one shared object: oneDNN documents engines and
// primitives as safe to use from several threads but makes no such promise for a stream, and a CPU
// stream costs a few hundred bytes, made once per thread on first use. Neither creates threads: Debian's
// oneDNN runs its parallel loops on OpenMP, the same pool as kiln's own loops (omp_set_num_threads).
#pragma once

#include <array>
#include <dnnl.hpp>
#include <string>

namespace kiln::kernels::cpu {

// Created on first call (thread-safe: a function-local static), lives until exit.
const dnnl::engine& onednn_engine();

// The calling thread's stream on onednn_engine(); CPU streams execute in order and synchronously.
dnnl::stream& onednn_stream();

// The argument list of one oneDNN call, built once beside the memory objects it names and handed as it
// is to dnnl_primitive_execute: the C++ primitive::execute() takes an std::unordered_map and copies it
// into a new vector on every call. (oneDNN 2.6 still converts the list into a map of its own inside
// dnnl_primitive_execute, which no public entry point avoids; see onednn_matmul.h.)
class OneDnnArgs {
 public:
  static constexpr int kMax = 8;

  // `m` must outlive the list. Throws kiln::Error past kMax arguments.
  void add(int arg, const dnnl::memory& m);
  const dnnl_exec_arg_t* data() const { return args_.data(); }
  int size() const { return count_; }

 private:
  std::array<dnnl_exec_arg_t, kMax> args_{};
  int count_ = 0;
};

// Runs `p` with `args` on the calling thread's stream (CPU streams run it before returning). Returns
// oneDNN's status rather than throwing, so that the caller can put back what it holds and say which
// call failed.
dnnl_status_t onednn_execute(const dnnl::primitive& p, const OneDnnArgs& args);

// Points `m` at `data`. Without a stream oneDNN 2.6 only stores the pointer: nothing is allocated and no
// padding is zeroed (a reorder into a padded blocked layout writes the padding itself).
dnnl_status_t onednn_rebind(const dnnl::memory& m, const void* data);

// A memory object of `md` on onednn_engine() that points nowhere yet (onednn_rebind gives it each call's
// data), and the same for a primitive's user-managed scratchpad of `bytes`.
dnnl::memory unbound_memory(const dnnl::memory::desc& md);
dnnl::memory unbound_scratchpad(size_t bytes);

// The instruction set oneDNN's JIT kernels use on this machine, e.g. "avx2" or "avx512_core_amx".
std::string onednn_isa_name();

}  // namespace kiln::kernels::cpu
