#include "runtime/threads.h"

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <thread>

namespace kiln::runtime {

int default_threads() { return std::max(1, static_cast<int>(std::thread::hardware_concurrency())); }

void set_intra_op_threads(int threads) { omp_set_num_threads(std::max(1, threads)); }

bool wants_default_spin_count() {
  if (std::getenv("GOMP_SPINCOUNT") != nullptr || std::getenv("OMP_WAIT_POLICY") != nullptr) return false;
  // valgrind runs a program through its preloaded vgpreload_*.so; a restarted process would run without it.
  const char* preload = std::getenv("LD_PRELOAD");
  return preload == nullptr || std::strstr(preload, "vgpreload") == nullptr;
}

std::string omp_wait_policy() {
  // GOMP_SPINCOUNT wins over OMP_WAIT_POLICY in libgomp when both are set.
  if (const char* spin = std::getenv("GOMP_SPINCOUNT")) return std::string("GOMP_SPINCOUNT=") + spin;
  if (const char* policy = std::getenv("OMP_WAIT_POLICY")) return std::string("OMP_WAIT_POLICY=") + policy;
  return "libgomp default";
}

}  // namespace kiln::runtime
