// Every declared op must be exercised by a test: a conformance case in an expected-pass list (ONNX's
// suite, or kiln's extra cases in tests/conformance/extra), or a unit test named in
// tests/conformance/ops_tested_elsewhere.txt.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "onnx/model_io.h"
#include "ops/registry.h"

namespace kiln {
namespace {

const std::string kDataRoot = "/usr/share/libonnx-testdata/data";

void collect_ops(const ir::Graph& g, std::set<std::string>& ops) {
  for (const auto& n : g.nodes) {
    ops.insert((ir::is_default_domain(n.domain) ? "" : n.domain + ".") + n.op_type);
    for (const auto& a : n.attributes) {
      if (a.g) collect_ops(*a.g, ops);
      for (const auto& sg : a.graphs) collect_ops(*sg, ops);
    }
  }
}

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    line = line.substr(0, line.find('#'));
    size_t a = line.find_first_not_of(" \t"), b = line.find_last_not_of(" \t\r");
    if (a != std::string::npos) lines.push_back(line.substr(a, b - a + 1));
  }
  return lines;
}

TEST(OpCoverage, EveryDeclaredOpHasATest) {
  if (!std::filesystem::exists(kDataRoot)) GTEST_SKIP() << "libonnx-testdata is not installed";
  std::set<std::string> covered;
  std::vector<std::string> models;
  for (const auto& id : read_lines(std::string(KILN_SOURCE_DIR) + "/tests/conformance/expected_pass.txt"))
    models.push_back(kDataRoot + "/" + id + "/model.onnx");
  // kiln's own cases for what ONNX 1.12's suite lacks (newer opsets, rarely tested ops).
  for (const auto& id : read_lines(std::string(KILN_SOURCE_DIR) + "/tests/conformance/extra_expected_pass.txt"))
    models.push_back(std::string(KILN_SOURCE_DIR) + "/tests/conformance/" + id + "/model.onnx");
  for (const auto& path : models) {
    ir::Model m = onnx_io::load_model(path);
    collect_ops(m.graph, covered);
    for (const auto& f : m.functions)
      for (const auto& n : f.nodes) covered.insert((ir::is_default_domain(n.domain) ? "" : n.domain + ".") + n.op_type);
  }
  for (const auto& line : read_lines(std::string(KILN_SOURCE_DIR) + "/tests/conformance/ops_tested_elsewhere.txt"))
    covered.insert(line.substr(0, line.find_first_of(" \t")));
  std::set<std::string> missing;
  for (const auto& def : ops::OpRegistry::instance().all()) {
    std::string key = (def.domain.empty() ? "" : def.domain + ".") + def.name;
    if (!covered.count(key)) missing.insert(key);
  }
  std::string list;
  for (const auto& m : missing) list += " " + m;
  EXPECT_TRUE(missing.empty()) << "declared ops without a test:" << list;
}

}  // namespace
}  // namespace kiln
