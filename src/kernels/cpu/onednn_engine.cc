#include "kernels/cpu/onednn_engine.h"

#include "common/error.h"

namespace kiln::kernels::cpu {

const dnnl::engine& onednn_engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::stream& onednn_stream() {
  thread_local dnnl::stream stream(onednn_engine());
  return stream;
}

void OneDnnArgs::add(int arg, const dnnl::memory& m) {
  KILN_CHECK(count_ < kMax, "[OneDnnArgs] more than ", kMax, " arguments");
  args_[static_cast<size_t>(count_++)] = {arg, m.get()};
}

dnnl_status_t onednn_execute(const dnnl::primitive& p, const OneDnnArgs& args) {
  dnnl_stream_t stream = onednn_stream().get();
  dnnl_status_t status = dnnl_primitive_execute(p.get(), stream, args.size(), args.data());
  if (status == dnnl_success) status = dnnl_stream_wait(stream);
  return status;
}

dnnl_status_t onednn_rebind(const dnnl::memory& m, const void* data) {
  return dnnl_memory_set_data_handle_v2(m.get(), const_cast<void*>(data), nullptr);
}

dnnl::memory unbound_memory(const dnnl::memory::desc& md) { return dnnl::memory(md, onednn_engine(), DNNL_MEMORY_NONE); }

dnnl::memory unbound_scratchpad(size_t bytes) {
  return unbound_memory(
      dnnl::memory::desc({static_cast<dnnl::memory::dim>(bytes)}, dnnl::memory::data_type::u8, dnnl::memory::format_tag::a));
}

std::string onednn_isa_name() {
  using dnnl::cpu_isa;
  switch (dnnl::get_effective_cpu_isa()) {
    case cpu_isa::all:
      return "all";
    case cpu_isa::sse41:
      return "sse41";
    case cpu_isa::avx:
      return "avx";
    case cpu_isa::avx2:
      return "avx2";
    case cpu_isa::avx2_vnni:
      return "avx2_vnni";
    case cpu_isa::avx512_mic:
      return "avx512_mic";
    case cpu_isa::avx512_mic_4ops:
      return "avx512_mic_4ops";
    case cpu_isa::avx512_core:
      return "avx512_core";
    case cpu_isa::avx512_core_vnni:
      return "avx512_core_vnni";
    case cpu_isa::avx512_core_bf16:
      return "avx512_core_bf16";
    case cpu_isa::avx512_core_amx:
      return "avx512_core_amx";
  }
  return "unknown";
}

}  // namespace kiln::kernels::cpu
