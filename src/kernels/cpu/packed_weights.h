// Which packed copy of a constant weight tensor a oneDNN primitive runs on, shared by PackedMatMul and
// PackedInt8MatMul. The weights are packed once, in the layout oneDNN prefers for one M; a primitive for
// another M may prefer another layout. Then the first copy is kept if oneDNN runs the same kernel on it
// (it usually does: the layout depends on the K and N blocking), and only otherwise is the one it wants
// packed (reordered from the first) and kept beside it. Only kernels/cpu/ includes this (it is oneDNN's).
#pragma once

#include <dnnl.hpp>
#include <string>
#include <vector>

#include "kernels/cpu/onednn_engine.h"

namespace kiln::kernels::cpu {

// `pd` was made with weights of format_tag::any; make_pd(desc) makes the same primitive on weights of
// that layout (throwing dnnl::error where none takes it). Returns the copy to run on, having set `pd` to
// the primitive that runs on it and appended a new copy to `weights` if one was packed. weights[0] must
// exist. Throws dnnl::error when oneDNN cannot reorder.
template <class PrimitiveDesc, class MakePd>
dnnl::memory pick_packed_weights(std::vector<dnnl::memory>& weights, PrimitiveDesc& pd, const MakePd& make_pd) {
  for (const dnnl::memory& w : weights)
    if (w.get_desc() == pd.weights_desc()) return w;
  PrimitiveDesc fixed;
  try {
    fixed = make_pd(weights[0].get_desc());
  } catch (const dnnl::error&) {
    // no kernel takes the first layout at this geometry: pack the one it wants
  }
  if (fixed && std::string(fixed.impl_info_str()) == pd.impl_info_str()) {
    pd = fixed;
    return weights[0];
  }
  dnnl::memory packed(pd.weights_desc(), onednn_engine());
  dnnl::reorder(weights[0], packed).execute(onednn_stream(), weights[0], packed);
  onednn_stream().wait();
  weights.push_back(packed);
  return packed;
}

}  // namespace kiln::kernels::cpu
