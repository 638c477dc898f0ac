// kiln serve's dynamic batcher, queue limits, metrics, access log, model control and raw-text input,
// black-box over loopback (serve_util.h). Timing enters only through the config: a batch delay of many
// seconds shows that a full batch does not wait for it, and a short timeout that a queued request gets 504.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>

#include "serve_util.h"
#include "test_util.h"
#include "text/wordpiece_tokenizer.h"

namespace kiln::serve_batching_test {

using nlohmann::json;
using serve_test::http_exchange;
using serve_test::json_inputs;
using serve_test::kModelDir;
using serve_test::Reply;
using serve_test::request;
using serve_test::Server;

// REPO/bert/1/model.onnx (bert-tiny) with this config.json.
std::string make_repository(const testing::TempDir& dir, const json& config) {
  std::filesystem::create_directories(dir.file("repo/bert/1"));
  std::filesystem::copy_file(testing::source_path(kModelDir + "/model.onnx"), dir.file("repo/bert/1/model.onnx"));
  testing::write_file(dir.file("repo/bert/config.json"), config.dump());
  return dir.file("repo");
}

// The test inputs with one token changed, so that every request of a batch has rows of its own.
json distinct_request(int i) {
  json inputs = json_inputs();
  inputs[0]["data"][1] = 1000 + 37 * i;
  return {{"id", "r" + std::to_string(i)}, {"inputs", inputs}};
}

std::vector<Reply> concurrently(int port, const std::vector<std::string>& raws) {
  std::vector<Reply> replies(raws.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < raws.size(); ++i)
    threads.emplace_back([&, i] { replies[i] = http_exchange(port, raws[i]); });
  for (auto& t : threads) t.join();
  return replies;
}

std::vector<json> log_lines(const std::string& path) {
  std::vector<json> lines;
  std::stringstream in(testing::read_file(path));
  for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
  return lines;
}

double max_difference(const json& a, const json& b) {
  const auto x = a.get<std::vector<double>>(), y = b.get<std::vector<double>>();
  EXPECT_EQ(x.size(), y.size());
  double worst = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) worst = std::max(worst, std::fabs(x[i] - y[i]));
  return worst;
}

const std::string kInfer = "/v2/models/bert/infer";

TEST(ServeBatching, ConcurrentRequestsRunAsOneBatchAndEachGetsItsOwnRows) {
  testing::TempDir dir("kiln_serve_batch");
  const int64_t rows = json_inputs()[0]["shape"][0].get<int64_t>();
  // A 30 s delay: the batch can only go at once because it is full.
  const std::string repo = make_repository(
      dir, {{"max_batch_size", 4 * rows}, {"dynamic_batching", {{"max_queue_delay_microseconds", 30000000}}}});
  const std::string log = dir.file("access.log");
  Server server = Server::with_args({repo, "--threads", "1", "-q", "--access-log", log});
  ASSERT_GT(server.port(), 0);
  std::vector<std::string> raws;
  for (int i = 0; i < 4; ++i) raws.push_back(request("POST", kInfer, distinct_request(i).dump()));
  const auto start = std::chrono::steady_clock::now();
  const std::vector<Reply> replies = concurrently(server.port(), raws);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20)) << "the full batch waited";

  // Each request alone on a server without batching gives the same rows.
  Server alone;
  ASSERT_GT(alone.port(), 0);
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(replies[i].status, 200) << replies[i].body;
    const json got = json::parse(replies[i].body);
    EXPECT_EQ(got["id"], "r" + std::to_string(i));
    const Reply ref = http_exchange(alone.port(), request("POST", "/v2/models/model/infer", distinct_request(i).dump()));
    ASSERT_EQ(ref.status, 200) << ref.body;
    const json want = json::parse(ref.body);
    ASSERT_EQ(got["outputs"].size(), want["outputs"].size());
    for (size_t o = 0; o < got["outputs"].size(); ++o) {
      EXPECT_EQ(got["outputs"][o]["shape"], want["outputs"][o]["shape"]);
      EXPECT_LT(max_difference(got["outputs"][o]["data"], want["outputs"][o]["data"]), 1e-4)
          << "request " << i << " output " << got["outputs"][o]["name"];
    }
  }
  // The metrics count them, and saw one batch of every row.
  const Reply metrics = http_exchange(server.port(), request("GET", "/metrics"));
  ASSERT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.headers.find("content-type: text/plain; version=0.0.4"), std::string::npos) << metrics.headers;
  EXPECT_NE(metrics.body.find("# TYPE kiln_inference_batch_size histogram"), std::string::npos) << metrics.body;
  EXPECT_NE(metrics.body.find("kiln_inference_batch_size_count{model=\"bert\",version=\"1\"} 1\n"), std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("kiln_inference_requests_total{code=\"200\",model=\"bert\",version=\"1\"} 4\n"),
            std::string::npos)
      << metrics.body;
  EXPECT_EQ(server.stop(), 0);

  // One access-log line per request; the inferences name the model and their batch.
  const std::vector<json> lines = log_lines(log);
  ASSERT_EQ(lines.size(), 5u) << testing::read_file(log);
  int batched = 0;
  for (const json& l : lines) {
    EXPECT_EQ(l["status"], 200) << l;
    if (l["path"] != kInfer) continue;
    EXPECT_EQ(l["method"], "POST");
    EXPECT_EQ(l["model"], "bert");
    EXPECT_EQ(l["version"], "1");
    EXPECT_EQ(l["batch"], 4 * rows) << l;
    EXPECT_GT(l["bytes_in"].get<int64_t>(), 0);
    EXPECT_GT(l["bytes_out"].get<int64_t>(), 0);
    ++batched;
  }
  EXPECT_EQ(batched, 4);
}

TEST(ServeBatching, OneModelFileBatchesWithTheCommandsFlags) {
  const int64_t rows = json_inputs()[0]["shape"][0].get<int64_t>();
  Server server({"--max-batch-size", std::to_string(2 * rows), "--batch-delay-us", "30000000"});
  ASSERT_GT(server.port(), 0);
  const auto start = std::chrono::steady_clock::now();
  const std::vector<Reply> replies =
      concurrently(server.port(), {request("POST", "/v2/models/model/infer", distinct_request(0).dump()),
                                   request("POST", "/v2/models/model/infer", distinct_request(1).dump())});
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20)) << "the full batch waited";
  for (const Reply& r : replies) EXPECT_EQ(r.status, 200) << r.body;
  const json meta = json::parse(http_exchange(server.port(), request("GET", "/v2/models/model")).body);
  EXPECT_EQ(meta["max_batch_size"], 2 * rows);
  EXPECT_EQ(server.stop(), 0);

  // A repository's models take theirs from config.json.
  testing::TempDir dir("kiln_serve_flags");
  const testing::RunResult r =
      testing::run_kiln({"serve", make_repository(dir, json::object()), "--max-batch-size", "8"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("set them in NAME/config.json"), std::string::npos) << r.err;
}

// The test inputs cut to their first `length` tokens.
json truncated_request(int64_t length) {
  json inputs = json_inputs();
  for (json& in : inputs) {
    const int64_t rows = in["shape"][0].get<int64_t>(), full = in["shape"][1].get<int64_t>();
    json data = json::array();
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < length; ++c) data.push_back(in["data"][r * full + c]);
    in["shape"] = {rows, length};
    in["data"] = data;
  }
  return {{"inputs", inputs}};
}

TEST(ServeBatching, RequestsOfDifferentLengthsShareABatchAndGetTheirOwnLengthBack) {
  testing::TempDir dir("kiln_serve_bucket");
  const int64_t rows = json_inputs()[0]["shape"][0].get<int64_t>();
  // Two requests fill the batch; with a 30 s delay both are answered at once only if they share it.
  const std::string repo = make_repository(
      dir, {{"max_batch_size", 2 * rows},
            {"dynamic_batching", {{"max_queue_delay_microseconds", 30000000}, {"sequence_bucket", 16}}}});
  Server server = Server::with_args({repo, "--threads", "1", "-q"});
  ASSERT_GT(server.port(), 0);
  const std::vector<int64_t> lengths = {9, 13};
  const auto start = std::chrono::steady_clock::now();
  const std::vector<Reply> replies =
      concurrently(server.port(), {request("POST", kInfer, truncated_request(lengths[0]).dump()),
                                   request("POST", kInfer, truncated_request(lengths[1]).dump())});
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20)) << "they did not share a batch";
  Server alone;
  ASSERT_GT(alone.port(), 0);
  for (size_t i = 0; i < lengths.size(); ++i) {
    ASSERT_EQ(replies[i].status, 200) << replies[i].body;
    const json got = json::parse(replies[i].body)["outputs"];
    const Reply ref =
        http_exchange(alone.port(), request("POST", "/v2/models/model/infer", truncated_request(lengths[i]).dump()));
    ASSERT_EQ(ref.status, 200) << ref.body;
    const json want = json::parse(ref.body)["outputs"];
    ASSERT_EQ(got.size(), want.size());
    for (size_t o = 0; o < got.size(); ++o) {
      EXPECT_EQ(got[o]["shape"], want[o]["shape"]) << got[o]["name"];
      EXPECT_LT(max_difference(got[o]["data"], want[o]["data"]), 1e-4) << "length " << lengths[i] << " " << got[o]["name"];
    }
    EXPECT_EQ(got[0]["name"], "last_hidden_state");
    EXPECT_EQ(got[0]["shape"][1], lengths[i]) << "the padding is cut off";
  }
  EXPECT_EQ(server.stop(), 0);
}

TEST(ServeBatching, AFullQueueAnswers503WithRetryAfterAndAWaitPastTheTimeout504) {
  testing::TempDir dir("kiln_serve_queue");
  const std::string repo = make_repository(
      dir, {{"max_batch_size", 64},
            {"dynamic_batching",
             {{"max_queue_delay_microseconds", 30000000}, {"max_queue_size", 2}, {"timeout_ms", 3000}}}});
  Server server = Server::with_args({repo, "--threads", "1", "-q"});
  ASSERT_GT(server.port(), 0);
  const std::string body = distinct_request(0).dump();
  std::vector<Reply> waiting(2);
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i)
    threads.emplace_back([&, i] { waiting[i] = http_exchange(server.port(), request("POST", kInfer, body)); });
  // Both are queued once the queue-depth gauge says so.
  for (int tries = 0; tries < 1000; ++tries) {
    if (http_exchange(server.port(), request("GET", "/metrics")).body.find("kiln_inference_queue_depth{model=\"bert\",version=\"1\"} 2") != std::string::npos)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const Reply full = http_exchange(server.port(), request("POST", kInfer, body));
  EXPECT_EQ(full.status, 503) << full.body;
  EXPECT_NE(full.headers.find("retry-after: 1"), std::string::npos) << full.headers;
  EXPECT_NE(full.error()["error"].get<std::string>().find("max_queue_size"), std::string::npos) << full.body;
  for (auto& t : threads) t.join();
  for (const Reply& r : waiting) {
    EXPECT_EQ(r.status, 504) << r.body;
    EXPECT_NE(r.error()["error"].get<std::string>().find("past its timeout_ms of 3000"), std::string::npos) << r.body;
  }
  EXPECT_EQ(server.stop(), 0);
}

TEST(ServeBatching, AClientThatLeavesFreesItsQueueSlot) {
  testing::TempDir dir("kiln_serve_leave");
  const std::string repo = make_repository(
      dir, {{"max_batch_size", 64},
            {"dynamic_batching", {{"max_queue_delay_microseconds", 1000000}, {"max_queue_size", 1}}}});
  Server server = Server::with_args({repo, "--threads", "1", "-q"});
  ASSERT_GT(server.port(), 0);
  const std::string raw = request("POST", kInfer, distinct_request(0).dump());
  {
    // Sends its request and hangs up without waiting for the answer.
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(server.port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(send(fd, raw.data(), raw.size(), MSG_NOSIGNAL), static_cast<ssize_t>(raw.size()));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    close(fd);
  }
  std::string metrics;
  for (int tries = 0; tries < 1000; ++tries) {
    metrics = http_exchange(server.port(), request("GET", "/metrics")).body;
    if (metrics.find("code=\"499\"") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_NE(metrics.find("kiln_inference_requests_total{code=\"499\",model=\"bert\",version=\"1\"} 1\n"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("kiln_inference_queue_depth{model=\"bert\",version=\"1\"} 0\n"), std::string::npos)
      << metrics;
  // The one slot is free: the next request is queued, not refused, and answered after the delay.
  EXPECT_EQ(http_exchange(server.port(), raw).status, 200);
  EXPECT_EQ(server.stop(), 0);
}

TEST(ServeBatching, SigtermAnswersTheQueuedRequestsBeforeExiting) {
  testing::TempDir dir("kiln_serve_drain");
  const std::string repo =
      make_repository(dir, {{"max_batch_size", 64}, {"dynamic_batching", {{"max_queue_delay_microseconds", 30000000}}}});
  Server server = Server::with_args({repo, "--threads", "1", "-q"});
  ASSERT_GT(server.port(), 0);
  std::vector<Reply> replies(3);
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i)
    threads.emplace_back([&, i] {
      replies[i] = http_exchange(server.port(), request("POST", kInfer, distinct_request(i).dump()));
    });
  for (int tries = 0; tries < 1000; ++tries) {
    if (http_exchange(server.port(), request("GET", "/metrics")).body.find("kiln_inference_queue_depth{model=\"bert\",version=\"1\"} 3") != std::string::npos)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(server.stop(), 0);
  for (auto& t : threads) t.join();
  for (const Reply& r : replies) EXPECT_EQ(r.status, 200) << r.body;
}

TEST(ServeBatching, LoadAndUnloadSwapModelsAndAFailedLoadKeepsTheOldOne) {
  testing::TempDir dir("kiln_serve_load");
  const std::string repo = make_repository(dir, json::object());
  Server server = Server::with_args({repo, "--threads", "1", "-q"});
  ASSERT_GT(server.port(), 0);
  const int port = server.port();
  const std::string body = distinct_request(0).dump();
  auto versions = [&] { return json::parse(http_exchange(port, request("GET", "/v2/models/bert")).body)["versions"]; };

  EXPECT_EQ(http_exchange(port, request("POST", "/v2/repository/models/bert/unload")).status, 200);
  EXPECT_EQ(http_exchange(port, request("POST", kInfer, body)).status, 404);
  const json index = json::parse(http_exchange(port, request("POST", "/v2/repository/index")).body);
  EXPECT_EQ(index, json::parse(R"([{"name": "bert", "state": "UNAVAILABLE", "reason": "not loaded"}])"));
  EXPECT_EQ(http_exchange(port, request("POST", "/v2/repository/models/bert/unload")).status, 404);

  EXPECT_EQ(http_exchange(port, request("POST", "/v2/repository/models/bert/load")).status, 200);
  EXPECT_EQ(http_exchange(port, request("POST", kInfer, body)).status, 200);

  std::filesystem::create_directories(dir.file("repo/bert/2"));
  std::filesystem::copy_file(testing::source_path(kModelDir + "/model.onnx"), dir.file("repo/bert/2/model.onnx"));
  EXPECT_EQ(http_exchange(port, request("POST", "/v2/repository/models/bert/load")).status, 200);
  EXPECT_EQ(versions(), json::array({"1", "2"}));

  std::filesystem::create_directories(dir.file("repo/bert/3"));
  testing::write_file(dir.file("repo/bert/3/model.onnx"), "not a model");
  const Reply failed = http_exchange(port, request("POST", "/v2/repository/models/bert/load"));
  EXPECT_EQ(failed.status, 400) << failed.body;
  EXPECT_NE(failed.error()["error"].get<std::string>().find("failed to load model \"bert\""), std::string::npos)
      << failed.body;
  EXPECT_NE(failed.error()["error"].get<std::string>().find("still serves"), std::string::npos) << failed.body;
  EXPECT_EQ(versions(), json::array({"1", "2"}));
  EXPECT_EQ(http_exchange(port, request("POST", kInfer, body)).status, 200);
  EXPECT_EQ(http_exchange(port, request("POST", "/v2/repository/models/gpt/load")).status, 400);
  EXPECT_EQ(server.stop(), 0);
}

TEST(ServeBatching, RawTextIsTokenizedWithTheModelsVocabulary) {
  testing::TempDir dir("kiln_serve_text");
  const std::string repo = make_repository(dir, {{"text", {{"vocab", "vocab.json"}}}});
  std::filesystem::copy_file(testing::source_path("tests/data/tokenizer/vocab.json"), dir.file("repo/bert/vocab.json"));
  Server server = Server::with_args({repo, "--threads", "1", "-q"});
  ASSERT_GT(server.port(), 0);
  const int port = server.port();
  const json meta = json::parse(http_exchange(port, request("GET", "/v2/models/bert")).body);
  EXPECT_EQ(meta["inputs"].back(), json::parse(R"({"name": "text", "datatype": "BYTES", "shape": [-1]})"));

  const std::vector<std::string> texts = {"Where is the dog?", "The quick brown fox jumps over the lazy dog."};
  const json text_req = {
      {"inputs", {{{"name", "text"}, {"datatype", "BYTES"}, {"shape", {2}}, {"data", texts}}}},
      {"outputs", {{{"name", "pooler_output"}}}}};
  const Reply r = http_exchange(port, request("POST", kInfer, text_req.dump()));
  ASSERT_EQ(r.status, 200) << r.body;
  const json got = json::parse(r.body)["outputs"][0];

  // The same texts tokenized here, unpadded, one at a time: the same pooled rows (padding is masked).
  const text::WordPieceTokenizer tok =
      text::WordPieceTokenizer::from_file(testing::source_path("tests/data/tokenizer/vocab.json"));
  const std::vector<double> rows = got["data"].get<std::vector<double>>();
  const int64_t width = got["shape"][1].get<int64_t>();
  ASSERT_EQ(got["shape"][0], 2);
  for (size_t t = 0; t < texts.size(); ++t) {
    const text::Encoding e = tok.encode(texts[t]);
    const int64_t n = static_cast<int64_t>(e.ids.size());
    const json ids_req = {{"inputs",
                           {{{"name", "input_ids"}, {"datatype", "INT64"}, {"shape", {1, n}}, {"data", e.ids}},
                            {{"name", "attention_mask"}, {"datatype", "INT64"}, {"shape", {1, n}}, {"data", e.attention_mask}},
                            {{"name", "token_type_ids"}, {"datatype", "INT64"}, {"shape", {1, n}}, {"data", e.token_type_ids}}}},
                          {"outputs", {{{"name", "pooler_output"}}}}};
    const Reply ref = http_exchange(port, request("POST", kInfer, ids_req.dump()));
    ASSERT_EQ(ref.status, 200) << ref.body;
    const json want = json::parse(ref.body)["outputs"][0]["data"];
    const json row(std::vector<double>(rows.begin() + static_cast<std::ptrdiff_t>(t * width),
                                       rows.begin() + static_cast<std::ptrdiff_t>((t + 1) * width)));
    EXPECT_LT(max_difference(row, want), 1e-4) << texts[t];
  }

  const json wrong = {{"inputs", {{{"name", "text"}, {"datatype", "INT64"}, {"shape", {1}}, {"data", {7}}}}}};
  const Reply bad = http_exchange(port, request("POST", kInfer, wrong.dump()));
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.error()["error"].get<std::string>().find("raw text is BYTES"), std::string::npos) << bad.body;
  EXPECT_EQ(server.stop(), 0);
}

}  // namespace kiln::serve_batching_test
