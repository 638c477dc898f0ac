#include "passes/pattern_util.h"

#include "ops/node_view.h"

namespace kiln::passes {

const ir::Type* tensor_type_with_shape(const analysis::InferredTypes& types, const std::string& v) {
  auto it = types.types.find(v);
  return it == types.types.end() || !it->second.is_tensor() || !it->second.shape ? nullptr : &it->second;
}

bool known_and_equal(const ir::Shape& a, const ir::Shape& b) {
  if (a.rank() != b.rank()) return false;
  for (size_t i = 0; i < a.rank(); ++i)
    if (!(a[i].is_static() || a[i].is_symbolic()) || !(a[i] == b[i])) return false;
  return true;
}

std::string scope_of(const std::string& node_name) {
  size_t slash = node_name.rfind('/');
  return slash == std::string::npos ? std::string() : node_name.substr(0, slash + 1);
}

Int32Casts::Int32Casts(const ir::Graph& g, const analysis::InferredTypes& types, PassContext& ctx)
    : types_(types), ctx_(ctx) {
  for (const ir::Node& n : g.nodes)
    if (is_op(&n, "Cast") && !n.inputs.empty() &&
        ops::NodeView(n, ctx.opset()).attr_int("to", -1) == static_cast<int64_t>(ir::DType::kInt32) &&
        !cast_of_.count(n.inputs[0]))
      cast_of_[n.inputs[0]] = n.outputs[0];
}

std::string Int32Casts::of(const std::string& value, std::vector<ir::Node>& added) {
  auto it = types_.types.find(value);
  if (it != types_.types.end() && it->second.dtype == ir::DType::kInt32) return value;
  if (auto found = cast_of_.find(value); found != cast_of_.end()) return found->second;
  ir::Node cast;
  cast.name = ctx_.fresh_name(value + "/CastToInt32");
  cast.op_type = "Cast";
  cast.inputs = {value};
  cast.outputs = {ctx_.fresh_name(value + "_int32")};
  ir::Attribute to;
  to.name = "to";
  to.kind = ir::Attribute::Kind::kInt;
  to.i = static_cast<int64_t>(ir::DType::kInt32);
  cast.attributes.push_back(to);
  added.push_back(cast);
  return cast_of_[value] = cast.outputs[0];
}

}  // namespace kiln::passes
