// Einsum with numpy's equation language: explicit ("ij,jk->ik") or implicit output ("ij,jk"),
// ellipsis broadcasting, and repeated labels within a term (diagonals). Computed by explicit index
// loops over every label: each operand gets one stride per label (repeated labels add their
// strides, which walks the diagonal), so the work is the product of all label sizes.
#include <algorithm>
#include <map>
#include <type_traits>

#include "kernels/reference/common.h"
#include "kernels/reference/nn_common.h"

namespace kiln::ops::nn {
namespace {

using ir::DType;

// A term's labels; kEllipsis stands for the dims of "...".
constexpr int kEllipsis = -1;

struct Equation {
  std::vector<std::vector<int>> inputs;  // per operand: letters (as chars) or kEllipsis
  std::vector<int> output;               // letters or kEllipsis
  bool has_ellipsis = false;
};

std::vector<int> parse_term(const NodeView& node, const std::string& term, const std::string& eq) {
  std::vector<int> labels;
  bool ellipsis = false;
  for (size_t i = 0; i < term.size(); ++i) {
    char ch = term[i];
    if (ch == '.') {
      if (term.compare(i, 3, "...") != 0 || ellipsis) node.fail("malformed ellipsis in equation \"", eq, "\"");
      ellipsis = true;
      labels.push_back(kEllipsis);
      i += 2;
    } else if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')) {
      labels.push_back(ch);
    } else {
      node.fail("unexpected character '", ch, "' in equation \"", eq, "\"");
    }
  }
  return labels;
}

Equation parse_equation(const NodeView& node, size_t num_inputs) {
  std::string raw = node.attr_string("equation");
  std::string eq;
  for (char ch : raw)
    if (ch != ' ' && ch != '\t' && ch != '\n') eq += ch;
  Equation e;
  size_t arrow = eq.find("->");
  std::string lhs = arrow == std::string::npos ? eq : eq.substr(0, arrow);
  size_t start = 0;
  while (true) {
    size_t comma = lhs.find(',', start);
    e.inputs.push_back(
        parse_term(node, lhs.substr(start, comma == std::string::npos ? std::string::npos : comma - start), raw));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (e.inputs.size() != num_inputs)
    node.fail("equation \"", raw, "\" has ", e.inputs.size(), " operand terms but the node has ", num_inputs,
              " inputs");
  for (const auto& t : e.inputs)
    if (std::find(t.begin(), t.end(), kEllipsis) != t.end()) e.has_ellipsis = true;
  if (arrow != std::string::npos) {
    std::string rhs = eq.substr(arrow + 2);
    if (rhs.find("->") != std::string::npos || rhs.find(',') != std::string::npos)
      node.fail("malformed output in equation \"", raw, "\"");
    e.output = parse_term(node, rhs, raw);
    std::vector<int> seen;
    for (int l : e.output) {
      if (std::find(seen.begin(), seen.end(), l) != seen.end())
        node.fail("output label '", static_cast<char>(l), "' repeats in equation \"", raw, "\"");
      seen.push_back(l);
      if (l == kEllipsis) continue;
      bool found = false;
      for (const auto& t : e.inputs) found = found || std::find(t.begin(), t.end(), l) != t.end();
      if (!found) node.fail("output label '", static_cast<char>(l), "' does not appear in any input of \"", raw, "\"");
    }
  } else {
    // Implicit output: the broadcast dims, then the labels used exactly once, in alphabetical order.
    std::map<int, int> count;
    for (const auto& t : e.inputs)
      for (int l : t)
        if (l != kEllipsis) ++count[l];
    if (e.has_ellipsis) e.output.push_back(kEllipsis);
    for (const auto& [l, n] : count)
      if (n == 1) e.output.push_back(l);
  }
  return e;
}

// The sizes of every label and of the ellipsis dims, from concrete input shapes (-1 where unknown in
// inference). Labels are numbered: letters first (in order of first appearance), then one per
// broadcast dim of the ellipsis.
struct LabelSpace {
  std::vector<int> letters;          // label number -> letter
  std::vector<int64_t> sizes;        // label number -> size (-1 unknown)
  std::vector<std::string> symbols;  // label number -> symbol name when symbolic (inference only)
  size_t ellipsis_rank = 0;
  size_t ellipsis_first = 0;  // label number of the first ellipsis dim
  // Per input and dim: the label number.
  std::vector<std::vector<size_t>> dim_labels;
};

LabelSpace build_labels(const NodeView& node, const Equation& e, const std::vector<std::vector<ir::Dim>>& shapes) {
  LabelSpace s;
  std::map<int, size_t> index;
  for (const auto& t : e.inputs)
    for (int l : t)
      if (l != kEllipsis && !index.count(l)) {
        index[l] = s.letters.size();
        s.letters.push_back(l);
      }
  size_t nletters = s.letters.size();
  // Ellipsis ranks per input.
  std::vector<size_t> ell_rank(shapes.size(), 0);
  for (size_t k = 0; k < shapes.size(); ++k) {
    const auto& t = e.inputs[k];
    size_t named = static_cast<size_t>(std::count_if(t.begin(), t.end(), [](int l) { return l != kEllipsis; }));
    bool has_ell = named != t.size();
    if (shapes[k].size() < named || (!has_ell && shapes[k].size() != named))
      node.fail("input ", k, " has rank ", shapes[k].size(), " but its equation term has ", named, " labels",
                has_ell ? " and an ellipsis" : "");
    ell_rank[k] = shapes[k].size() - named;
    s.ellipsis_rank = std::max(s.ellipsis_rank, ell_rank[k]);
  }
  s.ellipsis_first = nletters;
  s.sizes.assign(nletters + s.ellipsis_rank, -2);  // -2: not seen yet
  s.symbols.assign(s.sizes.size(), "");
  auto merge = [&](size_t label, const ir::Dim& d, bool broadcast, size_t input) {
    int64_t& cur = s.sizes[label];
    int64_t v = d.is_static() ? d.value : -1;
    if (cur == -2) {
      cur = v;
      s.symbols[label] = d.is_symbolic() ? d.symbol : "";
      return;
    }
    if (v == -1) {
      if (broadcast && cur == 1) {  // an unknown dim may be larger than 1: it decides
        cur = -1;
        s.symbols[label] = d.is_symbolic() ? d.symbol : "";
      } else if (cur == -1 && s.symbols[label] != d.symbol) {
        s.symbols[label].clear();
      }
      return;
    }
    if (cur == -1 || (broadcast && cur == 1)) {
      cur = v;
      return;
    }
    if (cur == v || (broadcast && v == 1)) return;
    std::string what = label < nletters ? std::string("label '") + static_cast<char>(s.letters[label]) + "'"
                                        : std::string("an ellipsis dim");
    node.fail(what, " has size ", cur, " in one place and ", v, " in input ", input);
  };
  s.dim_labels.resize(shapes.size());
  for (size_t k = 0; k < shapes.size(); ++k) {
    size_t dim = 0;
    for (int l : e.inputs[k]) {
      if (l == kEllipsis) {
        for (size_t j = 0; j < ell_rank[k]; ++j, ++dim) {
          size_t label = nletters + (s.ellipsis_rank - ell_rank[k]) + j;
          merge(label, shapes[k][dim], true, k);
          s.dim_labels[k].push_back(label);
        }
      } else {
        merge(index[l], shapes[k][dim], false, k);
        s.dim_labels[k].push_back(index[l]);
        ++dim;
      }
    }
  }
  for (auto& v : s.sizes)
    if (v == -2) v = 1;
  return s;
}

// Output labels (numbers) in output order; broadcast dims of the ellipsis that are not in the output
// are summed over like any other missing label.
std::vector<size_t> output_labels(const Equation& e, const LabelSpace& s) {
  std::vector<size_t> out;
  for (int l : e.output) {
    if (l == kEllipsis) {
      for (size_t j = 0; j < s.ellipsis_rank; ++j) out.push_back(s.ellipsis_first + j);
    } else {
      out.push_back(static_cast<size_t>(std::find(s.letters.begin(), s.letters.end(), l) - s.letters.begin()));
    }
  }
  return out;
}

void infer_einsum(InferenceContext& ctx) {
  Equation e = parse_equation(ctx, ctx.num_inputs());
  ir::DType dtype = ctx.input_type(0).dtype;
  std::vector<std::vector<ir::Dim>> shapes;
  for (size_t k = 0; k < ctx.num_inputs(); ++k) {
    const ir::Type& t = ctx.input_type(k);
    if (!t.shape) {
      // The output rank is still known when no ellipsis is involved.
      if (!e.has_ellipsis) return ctx.set_output(0, dtype, ir::Shape(std::vector<ir::Dim>(e.output.size())));
      return ctx.set_output(0, dtype, std::nullopt);
    }
    shapes.push_back(t.shape->dims);
  }
  LabelSpace s = build_labels(ctx, e, shapes);
  ir::Shape out;
  for (size_t l : output_labels(e, s)) {
    if (s.sizes[l] >= 0)
      out.dims.emplace_back(s.sizes[l]);
    else if (!s.symbols[l].empty())
      out.dims.push_back(ir::Dim::symbolic(s.symbols[l]));
    else
      out.dims.emplace_back();
  }
  ctx.set_output(0, dtype, out);
}

template <class T>
using EinsumAcc = std::conditional_t<std::is_integral_v<T>, uint64_t, double>;

void run_einsum(KernelContext& ctx) {
  size_t n = ctx.num_inputs();
  if (n == 0) ctx.fail("Einsum needs at least one input");
  Equation e = parse_equation(ctx, n);
  DType dtype = ctx.input(0).dtype();
  require_dtype(ctx, dtype, kNumericTypes, "input 0");
  std::vector<std::vector<ir::Dim>> shapes;
  for (size_t k = 0; k < n; ++k) {
    const ir::Tensor& t = ctx.input(k);
    if (t.dtype() != dtype) ctx.fail("input ", k, " has element type ", t.dtype(), ", input 0 has ", dtype);
    std::vector<ir::Dim> d;
    for (int64_t v : t.shape()) d.emplace_back(v);
    shapes.push_back(std::move(d));
  }
  LabelSpace s = build_labels(ctx, e, shapes);
  std::vector<size_t> out_labels = output_labels(e, s);
  std::vector<size_t> sum_labels;
  for (size_t l = 0; l < s.sizes.size(); ++l)
    if (std::find(out_labels.begin(), out_labels.end(), l) == out_labels.end()) sum_labels.push_back(l);
  std::vector<int64_t> out_shape, sum_shape;
  for (size_t l : out_labels) out_shape.push_back(s.sizes[l]);
  for (size_t l : sum_labels) sum_shape.push_back(s.sizes[l]);
  ir::Tensor y = ctx.make_tensor(dtype, out_shape);
  if (y.numel() == 0) return ctx.set_output(0, y);
  bool empty_sum = std::find(sum_shape.begin(), sum_shape.end(), 0) != sum_shape.end();

  // Per input, its stride along each output label and each summed label (0 where it lacks the label
  // or broadcasts it).
  std::vector<std::vector<int64_t>> out_strides(n, std::vector<int64_t>(out_labels.size(), 0));
  std::vector<std::vector<int64_t>> sum_strides(n, std::vector<int64_t>(sum_labels.size(), 0));
  for (size_t k = 0; k < n; ++k) {
    std::vector<int64_t> st = ir::strides_of(ctx.input(k).shape());
    for (size_t d = 0; d < st.size(); ++d) {
      if (ctx.input(k).dim(d) == 1 && s.sizes[s.dim_labels[k][d]] != 1) continue;  // broadcast
      size_t l = s.dim_labels[k][d];
      auto oi = std::find(out_labels.begin(), out_labels.end(), l);
      if (oi != out_labels.end())
        out_strides[k][static_cast<size_t>(oi - out_labels.begin())] += st[d];
      else
        sum_strides[k][static_cast<size_t>(std::find(sum_labels.begin(), sum_labels.end(), l) - sum_labels.begin())] +=
            st[d];
    }
  }

  ir::visit_numeric_dtype(dtype, [&]<class T>() {
    if constexpr (!std::is_same_v<T, bool>) {
      using Acc = EinsumAcc<T>;
      auto to_acc = [](T v) -> Acc {
        if constexpr (std::is_integral_v<T>)
          return static_cast<uint64_t>(static_cast<int64_t>(v));
        else
          return static_cast<double>(v);
      };
      std::vector<const T*> in(n);
      for (size_t k = 0; k < n; ++k) in[k] = ctx.input(k).data<T>();
      T* yp = y.data<T>();
      std::vector<int64_t> o(out_shape.size(), 0), r(sum_shape.size(), 0), base(n, 0), off(n);
      int64_t yi = 0;
      do {
        for (size_t k = 0; k < n; ++k) {
          base[k] = 0;
          for (size_t i = 0; i < o.size(); ++i) base[k] += o[i] * out_strides[k][i];
        }
        Acc acc = Acc(0);
        if (!empty_sum) {
          std::fill(r.begin(), r.end(), 0);
          std::copy(base.begin(), base.end(), off.begin());
          do {
            Acc prod = Acc(1);
            for (size_t k = 0; k < n; ++k) prod *= to_acc(in[k][off[k]]);
            acc += prod;
            // Advance the summed odometer and each operand's offset with it.
            size_t i = r.size();
            while (i-- > 0) {
              for (size_t k = 0; k < n; ++k) off[k] += sum_strides[k][i];
              if (++r[i] < sum_shape[i]) break;
              for (size_t k = 0; k < n; ++k) off[k] -= sum_strides[k][i] * r[i];
              r[i] = 0;
            }
            if (i == static_cast<size_t>(-1)) break;
          } while (true);
        }
        yp[yi++] = static_cast<T>(acc);
      } while (next_index(o, out_shape));
    }
  });
  ctx.set_output(0, y);
}

}  // namespace

void register_einsum_ops(OpRegistry& r) { r.add(OpDef{"", "Einsum", 12, kNoMaxOpset, infer_einsum, run_einsum}); }

}  // namespace kiln::ops::nn
