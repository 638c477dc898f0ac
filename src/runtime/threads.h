// The intra-op thread count, set in one place. kiln's parallel loops and oneDNN share one OpenMP
// runtime (libgomp), so this is the only knob.
#pragma once

namespace kiln::runtime {

// std::thread::hardware_concurrency(), at least 1.
int default_threads();

// Sets the number of OpenMP threads used by parallel regions that the calling thread starts. libgomp
// keeps this setting per thread: a thread that runs inference (a --concurrency worker) calls it itself.
void set_intra_op_threads(int threads);

}  // namespace kiln::runtime
