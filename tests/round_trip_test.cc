// import -> export -> import preserves outputs bit for bit, inline and with external data.
#include <gtest/gtest.h>

#include <filesystem>

#include "io/npy.h"
#include "onnx/model_io.h"
#include "runtime/session.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
const std::string kBertDir = std::string(KILN_SOURCE_DIR) + "/tests/data/bert-tiny";

std::vector<ir::Datum> run_bert(ir::Model model) {
  runtime::Session s(std::move(model));
  std::unordered_map<std::string, ir::Datum> feeds;
  for (const char* name : {"input_ids", "attention_mask", "token_type_ids"})
    feeds[name] = io::read_npy(kBertDir + "/inputs/" + name + ".npy");
  return s.run(feeds);
}

void expect_bitwise_equal(const std::vector<ir::Datum>& a, const std::vector<ir::Datum>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(a[i].tensor.bitwise_equal(b[i].tensor)) << "output " << i;
}

TEST(RoundTrip, BertTinyInlineKeepsOutputsBitForBit) {
  ir::Model original = onnx_io::load_model(kBertDir + "/model.onnx");
  std::string bytes = onnx_io::serialize_model(original);
  ir::Model again = onnx_io::parse_model(bytes.data(), bytes.size(), "", "round-trip");
  expect_bitwise_equal(run_bert(std::move(original)), run_bert(std::move(again)));
}

TEST(RoundTrip, BertTinyExternalDataKeepsOutputsBitForBit) {
  fs::path dir = fs::temp_directory_path() / ("kiln-round-trip-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  ir::Model original = onnx_io::load_model(kBertDir + "/model.onnx");
  onnx_io::SaveOptions options;
  options.force_external_data = true;
  onnx_io::save_model(original, (dir / "bert.onnx").string(), options);
  EXPECT_TRUE(fs::exists(dir / "bert.onnx.data"));
  EXPECT_LT(fs::file_size(dir / "bert.onnx"), 1u << 20);  // the weights went to the data file
  ir::Model again = onnx_io::load_model((dir / "bert.onnx").string());
  expect_bitwise_equal(run_bert(std::move(original)), run_bert(std::move(again)));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace kiln
