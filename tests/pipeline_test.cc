// kiln pipeline (pipeline/pipeline.h) on the torch-exported bert-tiny: every variant made, measured and
// validated against the baseline, the choice, the report's three files and the chosen model in the output
// folder; and bad input failing in one sentence with nothing left behind. Which variant is fastest is the
// machine's business (speed is never asserted): the test checks the rule and the figures' consistency.
#include "pipeline/pipeline.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "common/error.h"
#include "kernels/cpu/onednn_int8_matmul.h"
#include "kernels/cpu/onednn_matmul.h"
#include "test_util.h"

// Named, so that in a unity build its helpers meet no other test file's.
namespace kiln::pipeline_test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kBertTiny = "tests/data/bert-tiny/model.onnx";

// Small and quick: bert-tiny at sequence 16, a few calls per variant.
pipeline::PipelineOptions tiny_options(const std::string& out_dir) {
  pipeline::PipelineOptions o;
  o.model = testing::source_path(kBertTiny);
  o.seqs = {16};
  o.warmup = 1;
  o.iterations = 3;
  o.rounds = 1;
  o.samples = 2;
  o.out_dir = out_dir;
  o.command_line = "kiln pipeline " + kBertTiny + " -o " + out_dir;
  return o;
}

std::string error_of(const pipeline::PipelineOptions& o) {
  try {
    pipeline::run_pipeline(o);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Pipeline, MeasuresEveryVariantValidatesItAndWritesTheChosenOneWithTheReport) {
  testing::TempDir dir("kiln_pipeline");
  pipeline::PipelineOptions o = tiny_options(dir.file("out"));
  // Every precision asked for by name, so that each runs on any CPU (where one is not faster here, it
  // runs anyway with a note).
  o.precisions = {"fp32", "bf16", "int8-dynamic", "int8-static"};
  o.calibration_random = 2;
  const pipeline::PipelineResult r = pipeline::run_pipeline(o);
  const json& j = r.report;

  EXPECT_EQ(j["schema"], "kiln.pipeline.report/1");
  EXPECT_EQ(j["machine"]["threads"], 1);
  EXPECT_EQ(j["settings"]["seqs"], json::array({16}));
  ASSERT_EQ(j["variants"].size(), 5u);
  const std::vector<std::string> names = {"baseline", "optimized", "bf16", "int8-dynamic", "int8-static"};
  for (size_t i = 0; i < names.size(); ++i) {
    const json& v = j["variants"][i];
    EXPECT_EQ(v["name"], names[i]);
    ASSERT_TRUE(v["skipped"].is_null()) << v["skipped"];
    ASSERT_EQ(v["results"].size(), 1u);
    const json& res = v["results"][0];
    EXPECT_EQ(res["batch"], 1);
    EXPECT_EQ(res["seq"], 16);
    EXPECT_EQ(res["latencies_ms"].size(), 3u) << names[i];
    EXPECT_GT(res["p50_ms"].get<double>(), 0);
    EXPECT_LE(res["min_ms"].get<double>(), res["p50_ms"].get<double>());
    EXPECT_LE(res["p50_ms"].get<double>(), res["max_ms"].get<double>());
    // speed-up = the baseline's p50 / this one's.
    const double baseline_p50 = j["variants"][0]["results"][0]["p50_ms"].get<double>();
    EXPECT_NEAR(res["speedup"].get<double>(), baseline_p50 / res["p50_ms"].get<double>(),
                1e-3 * res["speedup"].get<double>());
    if (i == 0) {
      EXPECT_TRUE(v["accuracy"].is_null());  // the reference itself
      continue;
    }
    const json& a = v["accuracy"];
    ASSERT_FALSE(a.is_null()) << names[i];
    EXPECT_EQ(a["bound"], "cosine=0.01");
    ASSERT_FALSE(a["outputs"].empty());
    for (const json& out : a["outputs"]) {
      ASSERT_TRUE(out["cosine"].is_number()) << out;
      // float32 variants match the baseline to rounding; bf16 and int8 on bert-tiny: ~0.9999.
      EXPECT_GT(out["min_cosine"].get<double>(), i == 1 ? 0.99999 : 0.99) << names[i] << " " << out["name"];
    }
    EXPECT_TRUE(a["holds"].get<bool>()) << a["summary"];
  }
  // int8 files are a quarter of the float32 one, bar the float32 parts (bert-tiny's are relatively large).
  EXPECT_LT(j["variants"][3]["size_mb"].get<double>(), 0.5 * j["variants"][0]["size_mb"].get<double>());
  // The fusion summary: bert-tiny's 2 attention layers fused.
  bool attention = false;
  for (const json& c : j["optimization"]["changes"]) attention |= c["kind"] == "Attention" && c["count"] == 2;
  EXPECT_TRUE(attention) << j["optimization"]["changes"];
  EXPECT_LT(j["optimization"]["nodes_after"].get<int>(), j["optimization"]["nodes_before"].get<int>());

  // The choice: within the bound, and no other variant within it kMinGain faster than the chosen one.
  ASSERT_FALSE(j["chosen"].is_null());
  const std::string chosen = j["chosen"]["variant"];
  double chosen_p50 = 0;
  for (const json& v : j["variants"])
    if (v["name"] == chosen) chosen_p50 = v["results"][0]["p50_ms"].get<double>();
  for (const json& v : j["variants"]) {
    const bool within = v["accuracy"].is_null() || v["accuracy"]["holds"].get<bool>();
    if (within) {
      EXPECT_GE(v["results"][0]["p50_ms"].get<double>(), chosen_p50 * 0.9699) << v["name"];
    }
  }
  EXPECT_EQ(r.chosen_file, (fs::path(o.out_dir) / ("model." + chosen + ".onnx")).string());
  // Files: the baseline's is the input; the chosen one's is in the output folder; the others were not kept.
  for (const json& v : j["variants"]) {
    if (v["name"] == chosen) {
      EXPECT_EQ(v["file"], r.chosen_file);
    } else if (v["name"] == "baseline") {
      EXPECT_EQ(v["file"], o.model);
    } else {
      EXPECT_TRUE(v["file"].is_null()) << v;
    }
  }
  EXPECT_EQ(j["chosen"]["file"], r.chosen_file);
  EXPECT_EQ(j["headline"], r.headline);
  EXPECT_NE(r.headline.find(chosen), std::string::npos) << r.headline;

  // The output folder: the chosen model and the three reports, nothing else (the staging folder is gone).
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(o.out_dir)) files.push_back(e.path().filename().string());
  std::sort(files.begin(), files.end());
  const std::vector<std::string> expected = {"model." + chosen + ".onnx", "report.html", "report.json", "report.md"};
  std::vector<std::string> want = expected;
  std::sort(want.begin(), want.end());
  EXPECT_EQ(files, want);
  EXPECT_EQ(json::parse(testing::read_file(dir.file("out/report.json"))), j);
  EXPECT_NE(testing::read_file(dir.file("out/report.html")).find("<svg"), std::string::npos);
  EXPECT_NE(testing::read_file(dir.file("out/report.md")).find(r.headline), std::string::npos);
}

TEST(Pipeline, AutoLeavesOutWhatThisCpuDoesNotSpeedUpAndSaysWhy) {
  testing::TempDir dir("kiln_pipeline");
  const pipeline::PipelineResult r = pipeline::run_pipeline(tiny_options(dir.file("out")));
  const json& variants = r.report["variants"];
  ASSERT_EQ(variants.size(), 5u);
  EXPECT_EQ(variants[2]["skipped"].is_null(), kernels::cpu::bf16_products_run()) << variants[2]["skipped"];
  EXPECT_EQ(variants[3]["skipped"].is_null(), kernels::cpu::int8_matmul_is_fast()) << variants[3]["skipped"];
  // int8-static: where int8 is fast, it still needs calibration samples, which auto does not invent.
  if (kernels::cpu::int8_matmul_is_fast()) {
    EXPECT_EQ(variants[4]["skipped"], "no calibration samples (--calibration DIR, or --calibration-random N)");
  } else {
    EXPECT_EQ(variants[4]["skipped"], variants[3]["skipped"]);
  }
  for (const json& v : variants)
    if (!v["skipped"].is_null()) {
      EXPECT_TRUE(v["results"].empty());
      EXPECT_TRUE(v["file"].is_null());
    }
}

TEST(Pipeline, BadInputFailsInOneSentenceAndLeavesNothingBehind) {
  testing::TempDir dir("kiln_pipeline");
  const std::string out = dir.file("out");
  pipeline::PipelineOptions o = tiny_options(out);

  o.model = dir.file("missing.onnx");
  EXPECT_EQ(error_of(o), dir.file("missing.onnx") + ": no such model file");
  EXPECT_FALSE(fs::exists(out));  // made for the run, removed with it

  o = tiny_options(out);
  o.calibration_dir = dir.file("no-such-folder");
  EXPECT_EQ(error_of(o), "--calibration " + dir.file("no-such-folder") + ": no such folder");

  o = tiny_options(out);
  o.precisions = {"int8-static"};
  EXPECT_EQ(error_of(o),
            "--precision int8-static needs calibration samples: --calibration DIR (or --calibration-random N)");

  o = tiny_options(out);
  o.max_drop = "speed=2";
  EXPECT_NE(error_of(o).find("speed"), std::string::npos);

  o = tiny_options(out);
  o.export_family = "bert";
  o.model.clear();
  EXPECT_EQ(error_of(o), "--export bert needs --config config.json and --weights model.safetensors");

  // A missing checkpoint: named, before anything is exported.
  o.export_config = dir.file("config.json");
  o.export_weights = dir.file("model.safetensors");
  EXPECT_EQ(error_of(o), dir.file("config.json") + ": no such file (--export bert)");
  EXPECT_FALSE(fs::exists(out));

  o = tiny_options(out);
  o.model.clear();
  o.preset = "bert-huge";
  EXPECT_NE(error_of(o).find("unknown preset \"bert-huge\""), std::string::npos);
  EXPECT_FALSE(fs::exists(out));

  // An existing output folder keeps what it held, and gets no staging folder or half report.
  fs::create_directories(out);
  testing::write_file(dir.file("out/keep.txt"), "mine");
  o = tiny_options(out);
  o.model = dir.file("missing.onnx");
  EXPECT_NE(error_of(o), "(no error)");
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(out)) left.push_back(e.path().filename().string());
  EXPECT_EQ(left, std::vector<std::string>{"keep.txt"});

  EXPECT_EQ(pipeline::parse_precisions("auto"), std::vector<std::string>{});
  EXPECT_EQ(pipeline::parse_precisions("fp32,int8-dynamic"), (std::vector<std::string>{"fp32", "int8-dynamic"}));
  try {
    pipeline::parse_precisions("int4");
    ADD_FAILURE() << "int4 accepted";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "--precision: unknown precision \"int4\" (auto, or a list of fp32, bf16, int8-dynamic, int8-static)");
  }
}

TEST(Pipeline, TheCommandPrintsTheTableAndTheReportsPath) {
  testing::TempDir dir("kiln_pipeline");
  const testing::RunResult r =
      testing::run_kiln({"pipeline", testing::source_path(kBertTiny), "--seq", "16", "--iterations", "2", "--rounds",
                         "1", "--samples", "2", "--threads", "1", "--precision", "fp32", "-o", dir.file("out"), "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("batch 1, sequence 16"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("baseline"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("optimized"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("report: " + dir.file("out") + "/report.html"), std::string::npos) << r.out;
  EXPECT_EQ(r.err, "");  // -q
  const json j = json::parse(testing::read_file(dir.file("out/report.json")));
  EXPECT_EQ(j["variants"].size(), 2u);  // fp32 only: baseline and optimized
  EXPECT_EQ(j["commands"][0].get<std::string>().rfind("kiln pipeline ", 0), 0u) << j["commands"];

  const testing::RunResult bad = testing::run_kiln({"pipeline", dir.file("nope.onnx"), "-o", dir.file("out2")});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_EQ(bad.err, "kiln: error: " + dir.file("nope.onnx") + ": no such model file\n");
  EXPECT_FALSE(fs::exists(dir.file("out2")));

  const testing::RunResult help = testing::run_kiln({"pipeline", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("--max-drop"), std::string::npos);
}

}  // namespace
}  // namespace kiln::pipeline_test
