#include "kernels/cpu/cpu_features.h"

#include <algorithm>
#include <cstdlib>
#include <string>

#include "common/error.h"

namespace kiln::kernels::cpu {

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = [] {
    CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
    // GCC's and Clang's checks read CPUID and XGETBV, so a feature the OS does not enable reads as absent.
    __builtin_cpu_init();
    f.avx2 = __builtin_cpu_supports("avx2");
    f.fma = __builtin_cpu_supports("fma");
    f.avx512f = __builtin_cpu_supports("avx512f");
    f.avx512bw = __builtin_cpu_supports("avx512bw");
    f.avx512dq = __builtin_cpu_supports("avx512dq");
    f.avx512vl = __builtin_cpu_supports("avx512vl");
#endif
    return f;
  }();
  return features;
}

bool isa_supported(Isa isa) {
  const CpuFeatures& f = cpu_features();
  switch (isa) {
    case Isa::kScalar:
      return true;
    case Isa::kAvx2:
      return f.avx2 && f.fma;
    case Isa::kAvx512:
      return f.avx512f && f.avx512bw && f.avx512dq && f.avx512vl && f.fma;
  }
  return false;
}

Isa best_supported_isa() {
  for (Isa isa : {Isa::kAvx512, Isa::kAvx2})
    if (isa_supported(isa)) return isa;
  return Isa::kScalar;
}

Isa isa_from_env(const char* value, Isa best) {
  if (!value || !*value) return best;
  std::optional<Isa> asked = parse_isa(value);
  if (!asked) fail("KILN_CPU_ISA=", value, " is not one of avx512, avx2, scalar");
  return std::min(*asked, best);
}

Isa selected_isa() {
  static const Isa isa = isa_from_env(std::getenv("KILN_CPU_ISA"), best_supported_isa());
  return isa;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar:
      return "scalar";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx512:
      return "avx512";
  }
  return "?";
}

std::optional<Isa> parse_isa(std::string_view name) {
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512})
    if (name == isa_name(isa)) return isa;
  return std::nullopt;
}

}  // namespace kiln::kernels::cpu
