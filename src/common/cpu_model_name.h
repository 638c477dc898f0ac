// The CPU's name as the kernel reports it, for reports: every figure kiln prints names its CPU.
#pragma once

#include <string>

namespace kiln {

// "model name" from /proc/cpuinfo ("AMD EPYC 9R45"), or "unknown CPU" where there is none.
std::string cpu_model_name();

}  // namespace kiln
