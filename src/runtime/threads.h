// The intra-op thread count and the OpenMP wait policy, set in one place. kiln's parallel loops and oneDNN
// share one OpenMP runtime (libgomp), so these are the only knobs.
#pragma once

#include <string>

namespace kiln::runtime {

// std::thread::hardware_concurrency(), at least 1.
int default_threads();

// Sets the number of OpenMP threads used by parallel regions that the calling thread starts. libgomp
// keeps this setting per thread: a thread that runs inference (a --concurrency worker) calls it itself.
void set_intra_op_threads(int threads);

// How many times (`pause` instructions: ~26 ns each on AMD Zen 4, ~40 on recent Intel) a libgomp thread
// that ran out of work checks for more before it sleeps: libgomp's GOMP_SPINCOUNT, which the kiln program
// sets to this unless the user chose a policy. libgomp's own default, 300,000 (~8 ms), makes kiln collapse
// when the CPUs are shared: a thread that finished its half of a convolution spins on a core that the other
// half needs. Measured on 2 cores with one busy process beside kiln (AMD EPYC Zen 4, avx512, 2 threads),
// p99 ms with libgomp's default -> with 1,000: ssdlite320 148 -> 36, mobilenetv3-large 197 -> 15,
// resnet50 229 -> 102 (ONNX Runtime: 39, 19, 150). On an idle machine ~26 us of spinning still covers
// the gap between two parallel regions: no change measured (OMP_WAIT_POLICY=passive, which never spins,
// costs mobilenetv3-large 4.0 -> 7.0 ms).
inline constexpr const char* kDefaultSpinCount = "1000";

// Whether the program should restart itself with GOMP_SPINCOUNT=kDefaultSpinCount: neither it nor
// OMP_WAIT_POLICY is set, and the process is not under valgrind (which would not follow the restart).
// libgomp reads its environment once, when it is loaded, so a restart is the only way to set it.
bool wants_default_spin_count();

// The wait policy that libgomp took from this process's environment, for reports: "GOMP_SPINCOUNT=1000",
// "OMP_WAIT_POLICY=passive", or "libgomp default".
std::string omp_wait_policy();

}  // namespace kiln::runtime
