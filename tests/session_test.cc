#include "runtime/session.h"

#include <gtest/gtest.h>

#include <cmath>

#include "common/error.h"
#include "io/npy.h"

namespace kiln {
namespace {

const std::string kBertDir = std::string(KILN_SOURCE_DIR) + "/tests/data/bert-tiny";

std::unordered_map<std::string, ir::Datum> bert_inputs() {
  std::unordered_map<std::string, ir::Datum> feeds;
  for (const char* name : {"input_ids", "attention_mask", "token_type_ids"})
    feeds[name] = io::read_npy(kBertDir + "/inputs/" + name + ".npy");
  return feeds;
}

// The bundled torch-exported BERT reproduces the outputs PyTorch computed, within rtol 1e-4, atol 1e-5.
TEST(Session, BertTinyMatchesTorchReference) {
  runtime::Session s = runtime::Session::load(kBertDir + "/model.onnx");
  std::vector<ir::Datum> outs = s.run(bert_inputs());
  const auto& names = s.model().graph.outputs;
  ASSERT_EQ(outs.size(), 2u);
  for (size_t i = 0; i < outs.size(); ++i) {
    ir::Tensor expected = io::read_npy(kBertDir + "/outputs/" + names[i].name + ".npy");
    const ir::Tensor& got = outs[i].tensor;
    ASSERT_EQ(got.shape(), expected.shape()) << names[i].name;
    double max_diff = 0;
    for (int64_t k = 0; k < expected.numel(); ++k) {
      double e = expected.data<float>()[k], a = got.data<float>()[k];
      max_diff = std::max(max_diff, std::fabs(a - e));
      ASSERT_LE(std::fabs(a - e), 1e-5 + 1e-4 * std::fabs(e)) << names[i].name << " element " << k;
    }
    std::printf("%s: max |diff| %.3g\n", names[i].name.c_str(), max_diff);
  }
}

TEST(Session, InfersSymbolicOutputShapes) {
  runtime::Session s = runtime::Session::load(kBertDir + "/model.onnx");
  const ir::Type& t = s.outputs()[0].type;
  ASSERT_TRUE(t.shape.has_value());
  EXPECT_EQ(ir::to_string(t), "float32[batch,sequence,128]");
}

std::string run_error(const std::unordered_map<std::string, ir::Datum>& feeds) {
  runtime::Session s = runtime::Session::load(kBertDir + "/model.onnx");
  try {
    s.run(feeds);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Session, RefusesMissingInput) {
  auto feeds = bert_inputs();
  feeds.erase("token_type_ids");
  EXPECT_NE(run_error(feeds).find("missing input \"token_type_ids\""), std::string::npos);
}

TEST(Session, RefusesUnknownInput) {
  auto feeds = bert_inputs();
  feeds["pixel_values"] = ir::Tensor(ir::DType::kFloat32, {1});
  std::string e = run_error(feeds);
  EXPECT_NE(e.find("unknown input \"pixel_values\""), std::string::npos) << e;
  EXPECT_NE(e.find("input_ids, attention_mask, token_type_ids"), std::string::npos) << e;
}

TEST(Session, RefusesWrongDtype) {
  auto feeds = bert_inputs();
  feeds["input_ids"] = ir::Tensor(ir::DType::kFloat32, {1, 8});
  EXPECT_NE(run_error(feeds).find("input \"input_ids\" must be int64, got float32"), std::string::npos);
}

TEST(Session, RefusesWrongRank) {
  auto feeds = bert_inputs();
  feeds["input_ids"] = ir::Tensor(ir::DType::kInt64, {8});
  EXPECT_NE(run_error(feeds).find("input \"input_ids\" must have rank 2"), std::string::npos);
}

TEST(Session, RefusesInconsistentSymbolicDims) {
  auto feeds = bert_inputs();
  const auto& ids = feeds["input_ids"].tensor;
  feeds["attention_mask"] = ir::Tensor(ir::DType::kInt64, {ids.dim(0), ids.dim(1) + 1});
  std::string e = run_error(feeds);
  EXPECT_NE(e.find("sequence"), std::string::npos) << e;
}

}  // namespace
}  // namespace kiln
