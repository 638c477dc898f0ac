#include "ir/graph_check.h"

#include <gtest/gtest.h>

#include "common/error.h"

namespace kiln {
namespace {

ir::Node node(const std::string& name, const std::string& op, std::vector<std::string> in,
              std::vector<std::string> out) {
  ir::Node n;
  n.name = name;
  n.op_type = op;
  n.inputs = std::move(in);
  n.outputs = std::move(out);
  return n;
}

ir::Graph graph_with(std::vector<ir::Node> nodes, std::vector<std::string> outputs) {
  ir::Graph g;
  g.inputs.push_back({"x", ir::Type::tensor(ir::DType::kFloat32, ir::Shape::of({2})), ""});
  g.nodes = std::move(nodes);
  for (auto& o : outputs) g.outputs.push_back({o, ir::Type(), ""});
  return g;
}

std::string error_of(ir::Graph g) {
  try {
    ir::check_and_sort_graph(g, {}, "m.onnx");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(GraphCheck, SortsNodesTopologically) {
  ir::Graph g = graph_with({node("b", "Relu", {"a"}, {"y"}), node("a", "Neg", {"x"}, {"a"})}, {"y"});
  ir::check_and_sort_graph(g, {}, "m.onnx");
  ASSERT_EQ(g.nodes.size(), 2u);
  EXPECT_EQ(g.nodes[0].name, "a");
  EXPECT_EQ(g.nodes[1].name, "b");
}

TEST(GraphCheck, KeepsFileOrderWhereFree) {
  ir::Graph g = graph_with(
      {node("p", "Neg", {"x"}, {"p"}), node("q", "Abs", {"x"}, {"q"}), node("r", "Add", {"p", "q"}, {"y"})}, {"y"});
  ir::check_and_sort_graph(g, {}, "m.onnx");
  EXPECT_EQ(g.nodes[0].name, "p");
  EXPECT_EQ(g.nodes[1].name, "q");
}

TEST(GraphCheck, RefusesUndefinedInput) {
  std::string e = error_of(graph_with({node("n1", "Relu", {"nope"}, {"y"})}, {"y"}));
  EXPECT_NE(e.find("m.onnx: Relu node \"n1\" reads \"nope\", which no node, input or initializer defines"),
            std::string::npos)
      << e;
}

TEST(GraphCheck, RefusesTwoWritersOfOneValue) {
  std::string e = error_of(graph_with({node("n1", "Relu", {"x"}, {"y"}), node("n2", "Neg", {"x"}, {"y"})}, {"y"}));
  EXPECT_NE(e.find("value \"y\" is written by two nodes"), std::string::npos) << e;
  EXPECT_NE(e.find("n2"), std::string::npos) << e;
}

TEST(GraphCheck, RefusesCycle) {
  std::string e = error_of(graph_with({node("n1", "Add", {"x", "b"}, {"a"}), node("n2", "Neg", {"a"}, {"b"})}, {"a"}));
  EXPECT_NE(e.find("has a cycle through"), std::string::npos) << e;
}

TEST(GraphCheck, RefusesUndefinedGraphOutput) {
  std::string e = error_of(graph_with({node("n1", "Relu", {"x"}, {"y"})}, {"z"}));
  EXPECT_NE(e.find("output \"z\" is not produced"), std::string::npos) << e;
}

TEST(GraphCheck, SubgraphMaySeeOuterValues) {
  auto body = std::make_shared<ir::Graph>();
  body->nodes.push_back(node("inner", "Neg", {"a"}, {"c"}));
  body->outputs.push_back({"c", ir::Type(), ""});
  ir::Node if_node = node("if", "If", {"cond"}, {"y"});
  ir::Attribute then_branch;
  then_branch.name = "then_branch";
  then_branch.kind = ir::Attribute::Kind::kGraph;
  then_branch.g = body;
  if_node.attributes.push_back(then_branch);
  // `a` is produced after the If in file order: sorting must put its producer first.
  ir::Graph g = graph_with({if_node, node("mk", "Neg", {"x"}, {"a"}), node("c0", "Constant", {}, {"cond"})}, {"y"});
  ir::check_and_sort_graph(g, {}, "m.onnx");
  EXPECT_EQ(g.nodes.back().name, "if");
}

}  // namespace
}  // namespace kiln
