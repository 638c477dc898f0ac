// Expands ai.onnx.preview.training Gradient nodes into the backward graph they stand for, built from
// ordinary ops, so that the executor needs no autodiff. Reverse mode through Add, Sub, Mul, Div, Neg
// and Identity with dY = 1; inputs must not broadcast against each other (no reduction back to shape).
//
//   a ─┐                      a ─┐
//      Add ─ c                   Add ─ c ──── Shape ─ Expand(1) = dc
//   b ─┘       Gradient(xs=[a,b], y=c)   ─►   dc_da = Identity(dc), dc_db = Identity(dc)
#pragma once

#include "ir/graph.h"

namespace kiln::analysis {

// Returns the number of Gradient nodes expanded. Fails naming the node when an op on the path from
// xs to y has no gradient rule here.
int expand_gradients(ir::Model& model);

}  // namespace kiln::analysis
