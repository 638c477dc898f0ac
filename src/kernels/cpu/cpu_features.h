// The x86 instruction sets kiln's own kernels are built for, detected once at run time (the default build
// has no -march=native: one binary runs on any x86-64 and picks its fastest path on the machine it runs on).
//
// KILN_CPU_ISA=avx512|avx2|scalar lowers the choice, to test or compare a slower path on a fast machine; a
// level above what the CPU (and OS) supports falls back to the best one it does support.
#pragma once

#include <optional>
#include <string_view>

namespace kiln::kernels::cpu {

// Ordered: a higher level implies the CPU runs everything a lower one needs.
enum class Isa {
  kScalar = 0,  // portable C++
  kAvx2 = 1,    // AVX2 + FMA
  kAvx512 = 2,  // AVX-512 F, BW, DQ and VL (Skylake-SP, Ice Lake, Sapphire Rapids, Zen 4, Zen 5)
};

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512dq = false;
  bool avx512vl = false;
};

// What this CPU and OS support (the OS must save the wider registers; the compiler's check includes that).
const CpuFeatures& cpu_features();

// Whether this machine can run code built for `isa`.
bool isa_supported(Isa isa);

// The highest level this machine supports.
Isa best_supported_isa();

// The level kiln's kernels use: best_supported_isa(), lowered by KILN_CPU_ISA when set. Read once.
// Throws kiln::Error when KILN_CPU_ISA holds an unknown name.
Isa selected_isa();

// The level for a KILN_CPU_ISA value (null or empty: unset) on a machine whose best level is `best`: the
// one asked for, or `best` when that is lower. Throws kiln::Error for an unknown name.
Isa isa_from_env(const char* value, Isa best);

// "avx512", "avx2", "scalar", the names KILN_CPU_ISA takes.
const char* isa_name(Isa isa);
std::optional<Isa> parse_isa(std::string_view name);

}  // namespace kiln::kernels::cpu
