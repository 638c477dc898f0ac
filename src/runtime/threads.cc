#include "runtime/threads.h"

#include <omp.h>

#include <algorithm>
#include <thread>

namespace kiln::runtime {

int default_threads() { return std::max(1, static_cast<int>(std::thread::hardware_concurrency())); }

void set_intra_op_threads(int threads) { omp_set_num_threads(std::max(1, threads)); }

}  // namespace kiln::runtime
