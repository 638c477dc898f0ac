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

#include <dnnl.hpp>
#include <string>

namespace kiln::kernels::cpu {

// Created on first call (thread-safe: a function-local static), lives until exit.
const dnnl::engine& onednn_engine();

// The calling thread's stream on onednn_engine(); CPU streams execute in order and synchronously.
dnnl::stream& onednn_stream();

// The instruction set oneDNN's JIT kernels use on this machine, e.g. "avx2" or "avx512_core_amx".
std::string onednn_isa_name();

}  // namespace kiln::kernels::cpu
