// kiln serve, black-box over loopback: the real program started on a free port with the torch-exported
// bert-tiny, talked to with raw HTTP/1.1 (so that bad requests can be as bad as a client can make them).
// Inference must give the reference outputs through JSON and binary tensors; every bad request gets its
// status and a JSON error while the server stays live; SIGTERM ends it with exit code 0.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "io/npy.h"
#include "serve_util.h"
#include "test_util.h"

// Named, so that in a unity build its helpers meet no other test file's.
namespace kiln::serve_test {
namespace {

using nlohmann::json;

double max_abs_difference(const ir::Tensor& want, const std::vector<float>& got) {
  EXPECT_EQ(static_cast<size_t>(want.numel()), got.size());
  double worst = 0;
  for (size_t i = 0; i < got.size() && i < static_cast<size_t>(want.numel()); ++i)
    worst = std::max(worst, std::fabs(static_cast<double>(want.data<float>()[i]) - got[i]));
  return worst;
}

TEST(Serve, AnswersHealthMetadataAndInferenceWithTheReferenceOutputs) {
  Server server;
  ASSERT_GT(server.port(), 0) << "kiln serve did not say it was ready";
  const int port = server.port();

  EXPECT_EQ(http_exchange(port, request("GET", "/v2/health/live")).status, 200);
  EXPECT_EQ(http_exchange(port, request("GET", "/v2/health/ready")).status, 200);
  const Reply meta = http_exchange(port, request("GET", "/v2"));
  EXPECT_EQ(json::parse(meta.body)["name"], "kiln");

  const Reply model = http_exchange(port, request("GET", "/v2/models/model"));
  ASSERT_EQ(model.status, 200) << model.body;
  const json m = json::parse(model.body);
  EXPECT_EQ(m["versions"], json::array({"1"}));
  EXPECT_EQ(m["inputs"][0]["name"], "input_ids");
  EXPECT_EQ(m["inputs"][0]["datatype"], "INT64");
  EXPECT_EQ(m["inputs"][0]["shape"], json::array({-1, -1}));
  EXPECT_EQ(http_exchange(port, request("GET", "/v2/models/model/versions/1/ready")).status, 200);

  // JSON tensors in and out: the reference outputs.
  const json req = {{"id", "q1"}, {"inputs", json_inputs()}};
  const Reply r = http_exchange(port, request("POST", "/v2/models/model/infer", req.dump()));
  ASSERT_EQ(r.status, 200) << r.body;
  const json out = json::parse(r.body);
  EXPECT_EQ(out["id"], "q1");
  EXPECT_EQ(out["model_name"], "model");
  EXPECT_EQ(out["model_version"], "1");
  ASSERT_EQ(out["outputs"].size(), 2u);
  for (const json& o : out["outputs"]) {
    const ir::Tensor want =
        io::read_npy(testing::source_path(kModelDir + "/outputs/" + o["name"].get<std::string>() + ".npy"));
    EXPECT_EQ(o["datatype"], "FP32");
    EXPECT_LT(max_abs_difference(want, o["data"].get<std::vector<float>>()), 1e-4) << o["name"];
  }

  // Binary tensors in (the binary extension) and one output asked for in binary: the same numbers.
  json breq = {{"inputs", json::array()},
               {"outputs", json::array({{{"name", "pooler_output"}, {"parameters", {{"binary_data", true}}}}})}};
  std::string bytes;
  for (const char* name : {"input_ids", "attention_mask", "token_type_ids"}) {
    const ir::Tensor t = io::read_npy(testing::source_path(kModelDir + "/inputs/" + name + ".npy"));
    breq["inputs"].push_back({{"name", name},
                              {"datatype", "INT64"},
                              {"shape", {t.dim(0), t.dim(1)}},
                              {"parameters", {{"binary_data_size", t.nbytes()}}}});
    bytes.append(static_cast<const char*>(t.raw()), t.nbytes());
  }
  const std::string header = breq.dump();
  const Reply b =
      http_exchange(port, request("POST", "/v2/models/model/infer", header + bytes,
                                  "Inference-Header-Content-Length: " + std::to_string(header.size()) + "\r\n"));
  ASSERT_EQ(b.status, 200) << b.body;
  const size_t at = b.headers.find("inference-header-content-length: ");
  ASSERT_NE(at, std::string::npos) << b.headers;
  const size_t json_size = std::stoul(b.headers.substr(at + 33));
  const json bout = json::parse(b.body.substr(0, json_size));
  ASSERT_EQ(bout["outputs"].size(), 1u);
  EXPECT_EQ(bout["outputs"][0]["name"], "pooler_output");
  const std::string raw = b.body.substr(json_size);
  ASSERT_EQ(raw.size(), bout["outputs"][0]["parameters"]["binary_data_size"].get<size_t>());
  std::vector<float> pooled(raw.size() / 4);
  std::memcpy(pooled.data(), raw.data(), raw.size());
  EXPECT_LT(max_abs_difference(io::read_npy(testing::source_path(kModelDir + "/outputs/pooler_output.npy")), pooled),
            1e-4);

  EXPECT_EQ(server.stop(), 0);
}

TEST(Serve, BadRequestsGetTheirStatusAndAJsonErrorAndTheServerStaysLive) {
  Server server({"--max-body-mb", "1", "--read-timeout-s", "0.5"});
  ASSERT_GT(server.port(), 0);
  const int port = server.port();
  const std::string infer = "/v2/models/model/infer";
  json inputs = json_inputs();
  auto with = [&](const std::function<void(json&)>& change) {
    json req = {{"inputs", inputs}};
    change(req);
    return req.dump();
  };
  const std::string big(2 << 20, 'x');
  struct Case {
    const char* what;
    std::string raw;
    int status;
    const char* message;  // part of the JSON error
  };
  const std::vector<Case> cases = {
      {"malformed JSON", request("POST", infer, "{\"inputs\": [1,"), 400, "malformed JSON"},
      {"not an object", request("POST", infer, "[1, 2]"), 400, "JSON object"},
      {"no inputs", request("POST", infer, "{}"), 400, "no \"inputs\""},
      {"unknown datatype", request("POST", infer, with([](json& r) { r["inputs"][0]["datatype"] = "FP128"; })), 400,
       "unknown datatype"},
      {"wrong datatype", request("POST", infer, with([](json& r) { r["inputs"][0]["datatype"] = "FP32"; })), 400,
       "input_ids"},
      {"too few values", request("POST", infer, with([](json& r) { r["inputs"][0]["data"].erase(0); })), 400,
       "values for shape"},
      {"a string for an integer", request("POST", infer, with([](json& r) { r["inputs"][0]["data"][0] = "seven"; })),
       400, "not an integer"},
      {"a shape of 10^10 elements with one value", request("POST", infer, with([](json& r) {
                                                             r["inputs"][0]["shape"] = {100000, 100000};
                                                             r["inputs"][0]["data"] = {1};
                                                           })),
       400, "values for shape"},
      {"a binary shape of 10^10 elements",
       [&] {
         const std::string h = with([](json& r) {
           r["inputs"][0].erase("data");
           r["inputs"][0]["shape"] = {100000, 100000};
           r["inputs"][0]["parameters"] = {{"binary_data_size", 8}};
         });
         return request("POST", infer, h + std::string(8, '\0'),
                        "Inference-Header-Content-Length: " + std::to_string(h.size()) + "\r\n");
       }(),
       400, "takes at least"},
      {"negative dim", request("POST", infer, with([](json& r) { r["inputs"][0]["shape"][0] = -1; })), 400,
       "non-negative"},
      {"wrong rank", request("POST", infer, with([](json& r) {
                               r["inputs"][0]["shape"] = json::array({r["inputs"][0]["data"].size()});
                             })),
       400, "input_ids"},
      {"missing input", request("POST", infer, with([](json& r) { r["inputs"].erase(1); })), 400, "attention_mask"},
      {"unknown input", request("POST", infer, with([](json& r) { r["inputs"][0]["name"] = "pixels"; })), 400,
       "pixels"},
      {"input given twice", request("POST", infer, with([](json& r) { r["inputs"].push_back(r["inputs"][0]); })), 400,
       "twice"},
      {"unknown output", request("POST", infer, with([](json& r) {
                                   r["outputs"] = {{{"name", "logits"}}};
                                 })),
       400, "logits"},
      {"binary size without its header", request("POST", infer, with([](json& r) {
                                                   r["inputs"][0].erase("data");
                                                   r["inputs"][0]["parameters"] = {{"binary_data_size", 8}};
                                                 })),
       400, "Inference-Header-Content-Length"},
      {"binary size that lies",
       [&] {
         const std::string h = with([](json& r) {
           r["inputs"][0].erase("data");
           r["inputs"][0]["parameters"] = {{"binary_data_size", 24}};
         });
         return request("POST", infer, h + std::string(24, '\0'),
                        "Inference-Header-Content-Length: " + std::to_string(h.size()) + "\r\n");
       }(),
       400, "takes"},
      {"header length past the body", request("POST", infer, "{}", "Inference-Header-Content-Length: 99\r\n"), 400,
       "Inference-Header-Content-Length"},
      {"bytes nothing accounts for",
       [&] {
         const std::string h = with([](json&) {});
         return request("POST", infer, h + "junk",
                        "Inference-Header-Content-Length: " + std::to_string(h.size()) + "\r\n");
       }(),
       400, "after the JSON"},
      {"unknown model", request("POST", "/v2/models/gpt/infer", with([](json&) {})), 404, "unknown model"},
      {"unknown version", request("GET", "/v2/models/model/versions/7"), 404, "no version"},
      {"unknown route", request("GET", "/v1/models"), 404, "/v2"},
      {"wrong method", request("GET", infer), 405, "not allowed"},
      {"body too large", request("POST", infer, big), 413, "exceeds"},
      {"chunked body too large",
       "POST " + infer + " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n200000\r\n" +
           big.substr(0, 0x200000) + "\r\n0\r\n\r\n",
       413, "exceeds"},
      {"headers too large", request("GET", "/v2/health/live", "", "X-Big: " + std::string(20000, 'a') + "\r\n"), 431,
       "headers"},
      {"garbage", "HELLO THERE\r\n\r\n", 400, "malformed HTTP"},
      {"slow headers (the last line never comes)", "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n", 408,
       "not received within 500 ms"},
      {"slow body (10 of 100 bytes)",
       "POST " + infer + " HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"inputs\":", 408,
       "not received within"},
  };
  for (const Case& c : cases) {
    const Reply r = http_exchange(port, c.raw);
    EXPECT_EQ(r.status, c.status) << c.what << ": " << r.body;
    const json e = r.error();
    ASSERT_TRUE(e.is_object() && e.contains("error")) << c.what << ": " << r.body;
    EXPECT_NE(e["error"].get<std::string>().find(c.message), std::string::npos) << c.what << ": " << e;
    // Still live after each.
    ASSERT_EQ(http_exchange(port, request("GET", "/v2/health/live")).status, 200) << "after " << c.what;
  }
  EXPECT_GE(cases.size(), 20u);
  EXPECT_EQ(server.stop(), 0);
}

TEST(Serve, RefusesABadRepositoryInOneLine) {
  testing::TempDir dir("kiln_serve");
  const testing::RunResult missing = testing::run_kiln({"serve", dir.file("nope")});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_EQ(missing.err, "kiln: error: " + dir.file("nope") + ": no such model file or repository folder\n");

  std::filesystem::create_directories(dir.file("repo/bert/v1"));
  const testing::RunResult version = testing::run_kiln({"serve", dir.file("repo")});
  EXPECT_EQ(version.exit_code, 2);
  EXPECT_NE(version.err.find("named 1, 2, ..."), std::string::npos) << version.err;

  std::filesystem::create_directories(dir.file("repo2/bert/1"));
  std::filesystem::copy_file(testing::source_path(kModelDir + "/model.onnx"), dir.file("repo2/bert/1/model.onnx"));
  testing::write_file(dir.file("repo2/bert/config.json"), "{\"max_batch_sise\": 8}");
  const testing::RunResult config = testing::run_kiln({"serve", dir.file("repo2")});
  EXPECT_EQ(config.exit_code, 2);
  EXPECT_NE(config.err.find("unknown field \"max_batch_sise\""), std::string::npos) << config.err;
}

}  // namespace
}  // namespace kiln::serve_test
