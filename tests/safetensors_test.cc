#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>

#include "common/error.h"
#include "test_util.h"

namespace kiln {
namespace {

using io::SafetensorsFile;

// A safetensors file assembled by hand, so that the reader is tested against the format rather than
// against our own writer.
std::string file_bytes(const std::string& header, const std::string& data = "", uint64_t header_len = UINT64_MAX) {
  if (header_len == UINT64_MAX) header_len = header.size();
  std::string out;
  for (int i = 0; i < 8; ++i) out += static_cast<char>((header_len >> (8 * i)) & 0xff);
  return out + header + data;
}

template <class T>
std::string bytes_of(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

template <class T>
ir::Tensor tensor_of(ir::DType dtype, const std::vector<T>& v, std::vector<int64_t> shape) {
  ir::Tensor t(dtype, std::move(shape));
  EXPECT_EQ(t.nbytes(), v.size() * sizeof(T));
  if (t.nbytes()) std::memcpy(t.raw(), v.data(), t.nbytes());
  return t;
}

// Writes `bytes` to a file, opens it, and returns the error message (empty when it opened).
std::string open_error(const std::string& bytes) {
  testing::TempDir dir("kiln_safetensors");
  std::string path = dir.file("bad.safetensors");
  testing::write_file(path, bytes);
  try {
    SafetensorsFile::open(path);
  } catch (const Error& e) {
    std::string message = e.what();
    EXPECT_NE(message.find(path), std::string::npos) << "message does not name the file: " << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << "message is not one line: " << message;
    return message;
  }
  return "";
}

#define EXPECT_OPEN_ERROR(bytes, substring)                                                      \
  do {                                                                                           \
    std::string message_ = open_error(bytes);                                                    \
    EXPECT_NE(message_.find(substring), std::string::npos) << "message: \"" << message_ << "\""; \
  } while (0)

std::string one_entry(const std::string& entry) { return R"({"x":)" + entry + "}"; }

TEST(SafetensorsRoundTrip, ManyDTypesBitForBit) {
  std::vector<std::pair<std::string, ir::Tensor>> tensors = {
      {"f32", tensor_of<float>(ir::DType::kFloat32,
                               {1.5f, -0.0f, std::numeric_limits<float>::quiet_NaN(),
                                std::numeric_limits<float>::denorm_min(), 3e38f, -7.25f},
                               {2, 3})},
      // Raw half bit patterns: infinity, a NaN with payload, a subnormal, negative zero.
      {"f16", tensor_of<uint16_t>(ir::DType::kFloat16, {0x3c00, 0x7c00, 0x7e01, 0x0001, 0x8000}, {5})},
      {"bf16", tensor_of<uint16_t>(ir::DType::kBFloat16, {0x3f80, 0xff80, 0x7fc1, 0x0001}, {2, 2})},
      {"i64",
       tensor_of<int64_t>(ir::DType::kInt64,
                          {std::numeric_limits<int64_t>::min(), -1, 0, std::numeric_limits<int64_t>::max()}, {4, 1})},
      {"empty", ir::Tensor(ir::DType::kFloat32, {3, 0, 2})},
      {"scalar", ir::Tensor::scalar<double>(-2.0 / 3.0)},
      {"i32", ir::Tensor::from_vector<int32_t>({7, -8, 9}, {3})},
      {"mask", ir::Tensor::from_vector<bool>({true, false, true}, {3})},
      {"u8", ir::Tensor::from_vector<uint8_t>({128, 255}, {2})},
      // After three odd-sized tensors this one is misaligned, so it reads back as a copy.
      {"after_odd", ir::Tensor::from_vector<float>({4.0f, 5.0f}, {2})},
  };
  std::map<std::string, std::string> metadata = {{"format", "pt"}, {"note", "h\xc3\xa9llo \"quoted\""}};
  testing::TempDir dir("kiln_safetensors");
  std::string path = dir.file("round_trip.safetensors");
  io::write_safetensors(path, tensors, metadata);

  // The header is padded with spaces so that the data buffer starts on a multiple of 8 bytes.
  std::string bytes = testing::read_file(path);
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  EXPECT_EQ(header_len % 8, 0u);
  EXPECT_EQ(bytes.substr(8, 1), "{");
  for (const auto& entry : std::filesystem::directory_iterator(dir.path()))
    EXPECT_EQ(entry.path().filename().string(), "round_trip.safetensors") << "temporary file left behind";

  SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_EQ(f.path(), path);
  EXPECT_EQ(f.metadata(), metadata);
  ASSERT_EQ(f.entries().size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, expected] = tensors[i];
    EXPECT_EQ(f.entries()[i].name, name) << "entries are not in data order";
    ir::Tensor got = f.tensor(name);
    EXPECT_EQ(got.dtype(), expected.dtype()) << name;
    EXPECT_EQ(got.shape(), expected.shape()) << name;
    EXPECT_TRUE(got.bitwise_equal(expected)) << name;
  }
  EXPECT_EQ(f.find("f16")->dtype_name, "F16");
  EXPECT_EQ(f.find("bf16")->dtype_name, "BF16");
  EXPECT_EQ(f.find("mask")->dtype_name, "BOOL");
  EXPECT_EQ(f.find("scalar")->shape, std::vector<int64_t>{});
  EXPECT_EQ(f.find("empty")->begin, f.find("empty")->end);
  EXPECT_TRUE(f.is_mapped(f.tensor("f32")));
  EXPECT_FALSE(f.is_mapped(f.tensor("after_odd")));
  EXPECT_EQ(f.find("nope"), nullptr);
}

TEST(SafetensorsRoundTrip, WriterRefusesWhatTheFormatCannotHold) {
  testing::TempDir dir("kiln_safetensors");
  std::string path = dir.file("bad.safetensors");
  ir::Tensor t = ir::Tensor::from_vector<float>({1.0f}, {1});
  EXPECT_THROW(io::write_safetensors(path, {{"a", t}, {"a", t}}), Error);
  EXPECT_THROW(io::write_safetensors(path, {{"__metadata__", t}}), Error);
  EXPECT_THROW(io::write_safetensors(path, {{"s", ir::Tensor(ir::DType::kString, {1})}}), Error);
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(SafetensorsRead, HandCraftedFileByteForByte) {
  // Keys deliberately out of data order, and no padding: the reader must not rely on either.
  std::string header = R"({"w":{"dtype":"I32","shape":[2],"data_offsets":[8,16]},)"
                       R"("__metadata__":{"format":"pt"},)"
                       R"("h":{"dtype":"F16","shape":[2,2],"data_offsets":[0,8]},)"
                       R"("z":{"dtype":"F64","shape":[0],"data_offsets":[16,16]}})";
  std::string data = bytes_of<uint16_t>({0x3c00, 0x4000, 0xc200, 0x0000}) + bytes_of<int32_t>({-5, 1 << 30});
  testing::TempDir dir("kiln_safetensors");
  std::string path = dir.file("hand.safetensors");
  testing::write_file(path, file_bytes(header, data));

  SafetensorsFile f = SafetensorsFile::open(path);
  ASSERT_EQ(f.entries().size(), 3u);
  EXPECT_EQ(f.entries()[0].name, "h");
  EXPECT_EQ(f.entries()[1].name, "w");
  EXPECT_EQ(f.entries()[2].name, "z");
  const io::SafetensorsEntry* w = f.find("w");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->dtype_name, "I32");
  EXPECT_EQ(w->dtype, ir::DType::kInt32);
  EXPECT_EQ(w->shape, std::vector<int64_t>{2});
  EXPECT_EQ(w->begin, 8u);
  EXPECT_EQ(w->end, 16u);
  EXPECT_EQ(f.metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));

  ir::Tensor h = f.tensor("h");
  EXPECT_EQ(h.dtype(), ir::DType::kFloat16);
  EXPECT_EQ(h.shape(), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(std::string(static_cast<const char*>(h.raw()), 8), data.substr(0, 8));
  EXPECT_EQ(static_cast<float>(h.data<Float16>()[1]), 2.0f);
  EXPECT_EQ(static_cast<float>(h.data<Float16>()[2]), -3.0f);
  ir::Tensor wt = f.tensor("w");
  EXPECT_EQ(wt.data<int32_t>()[0], -5);
  EXPECT_EQ(wt.data<int32_t>()[1], 1 << 30);
  EXPECT_EQ(f.tensor("z").numel(), 0);
}

TEST(SafetensorsRead, MisalignedTensorIsCopiedAlignedOneIsAView) {
  // The header is padded so that the data buffer starts on a multiple of 8; "odd" sits 1 byte past it.
  std::string header = R"({"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                       R"("odd":{"dtype":"F32","shape":[2],"data_offsets":[1,9]},)"
                       R"("even":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string data = "\x07" + bytes_of<float>({1.25f, -3.5f}) + std::string(3, '\0') + bytes_of<float>({6.0f, 7.0f});
  testing::TempDir dir("kiln_safetensors");
  std::string path = dir.file("misaligned.safetensors");
  testing::write_file(path, file_bytes(header, data));

  SafetensorsFile f = SafetensorsFile::open(path);
  ir::Tensor odd = f.tensor("odd");
  EXPECT_FALSE(f.is_mapped(odd));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(odd.raw()) % alignof(float), 0u);
  EXPECT_EQ(odd.data<float>()[0], 1.25f);
  EXPECT_EQ(odd.data<float>()[1], -3.5f);
  ir::Tensor even = f.tensor("even");
  EXPECT_TRUE(f.is_mapped(even));
  EXPECT_EQ(even.data<float>()[1], 7.0f);
  EXPECT_TRUE(f.is_mapped(f.tensor("b")));
  EXPECT_EQ(f.tensor("b").data<uint8_t>()[0], 7);
}

TEST(SafetensorsRead, ViewOutlivesTheFileObject) {
  testing::TempDir dir("kiln_safetensors");
  std::string path = dir.file("v.safetensors");
  io::write_safetensors(path, {{"a", ir::Tensor::from_vector<float>({1, 2, 3, 4}, {4})}});
  ir::Tensor a;
  {
    SafetensorsFile f = SafetensorsFile::open(path);
    a = f.tensor("a");
    ASSERT_TRUE(f.is_mapped(a));
  }
  EXPECT_EQ(a.data<float>()[3], 4.0f);  // the view's owner keeps the mapping alive
}

TEST(SafetensorsRead, EmptyHeaderAndEmptyDataAreFine) {
  testing::TempDir dir("kiln_safetensors");
  std::string path = dir.file("e.safetensors");
  testing::write_file(path, file_bytes("{}"));
  EXPECT_TRUE(SafetensorsFile::open(path).entries().empty());
  testing::write_file(path, file_bytes(R"({"e":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]}})"));
  SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_EQ(f.tensor("e").shape(), (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(f.tensor("e").numel(), 0);
}

TEST(SafetensorsRead, AbsentTensorAndBadBoolAreNamed) {
  testing::TempDir dir("kiln_safetensors");
  std::string path = dir.file("b.safetensors");
  testing::write_file(path, file_bytes(R"({"m":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}})", "\x01\x02"));
  SafetensorsFile f = SafetensorsFile::open(path);
  try {
    f.tensor("nope");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no tensor \"nope\""), std::string::npos) << e.what();
  }
  try {
    f.tensor("m");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tensor \"m\" has byte 2"), std::string::npos) << e.what();
  }
}

TEST(SafetensorsErrors, FileLevel) {
  testing::TempDir dir("kiln_safetensors");
  try {
    SafetensorsFile::open(dir.file("missing.safetensors"));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.safetensors: cannot open file"), std::string::npos) << e.what();
  }
  EXPECT_OPEN_ERROR(std::string("\x05\0\0", 3), "file is only 3 bytes, too short");
  EXPECT_OPEN_ERROR(file_bytes("{}  ", "", 100), "header of 100 bytes runs past the end of the file (12 bytes)");
  EXPECT_OPEN_ERROR(file_bytes("{}", "", 200'000'000), "header length 200000000 exceeds the limit of 100000000");
  EXPECT_OPEN_ERROR(file_bytes("{\"x\": "), "header is not valid JSON");
  EXPECT_OPEN_ERROR(file_bytes(""), "header is not valid JSON");
  EXPECT_OPEN_ERROR(file_bytes("{\"\xff\":1}"), "header is not valid JSON");
  EXPECT_OPEN_ERROR(file_bytes("[1, 2]"), "header must be a JSON object, got array");
  EXPECT_OPEN_ERROR(file_bytes(R"({"x":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"x":{}})"),
                    "header has the key \"x\" twice");
}

TEST(SafetensorsErrors, EntryStructure) {
  EXPECT_OPEN_ERROR(file_bytes(one_entry("3")), "tensor \"x\" must be an object with dtype, shape and data_offsets");
  EXPECT_OPEN_ERROR(file_bytes(one_entry(R"({"shape":[1],"data_offsets":[0,4]})")), "tensor \"x\" has no \"dtype\"");
  EXPECT_OPEN_ERROR(file_bytes(one_entry(R"({"dtype":"F32","data_offsets":[0,4]})")), "tensor \"x\" has no \"shape\"");
  EXPECT_OPEN_ERROR(file_bytes(one_entry(R"({"dtype":"F32","shape":[1]})")), "tensor \"x\" has no \"data_offsets\"");
  EXPECT_OPEN_ERROR(file_bytes(one_entry(R"({"dtype":32,"shape":[1],"data_offsets":[0,4]})")),
                    "tensor \"x\": dtype must be a string, got number");
  EXPECT_OPEN_ERROR(file_bytes(one_entry(R"({"dtype":"F32","shape":"1","data_offsets":[0,4]})")),
                    "tensor \"x\": shape must be an array of integers, got string");
  EXPECT_OPEN_ERROR(file_bytes(one_entry(R"({"dtype":"F32","shape":[1.5],"data_offsets":[0,4]})")),
                    "tensor \"x\": shape must be an array of integers, got [1.5]");
  EXPECT_OPEN_ERROR(file_bytes(one_entry(R"({"dtype":"F32","shape":[1],"data_offsets":[0]})")),
                    "tensor \"x\": data_offsets must be two non-negative integers, got [0]");
  EXPECT_OPEN_ERROR(file_bytes(one_entry(R"({"dtype":"F32","shape":[1],"data_offsets":[-4,0]})")),
                    "data_offsets must be two non-negative integers");
  EXPECT_OPEN_ERROR(file_bytes(one_entry(R"({"dtype":"F32","shape":[1],"data_offsets":{"a":1}})")),
                    "data_offsets must be two non-negative integers");
}

TEST(SafetensorsErrors, DTypeAndShape) {
  EXPECT_OPEN_ERROR(file_bytes(one_entry(R"({"dtype":"F7","shape":[1],"data_offsets":[0,4]})"), "abcd"),
                    "unsupported dtype \"F7\" for tensor \"x\"");
  EXPECT_OPEN_ERROR(file_bytes(one_entry(R"({"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]})"), "a"),
                    "unsupported dtype \"F8_E4M3\" for tensor \"x\"");
  EXPECT_OPEN_ERROR(file_bytes(one_entry(R"({"dtype":"F32","shape":[2,-1],"data_offsets":[0,0]})")),
                    "tensor \"x\" has shape [2,-1] with a negative dimension");
  EXPECT_OPEN_ERROR(file_bytes(one_entry(R"({"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,0]})")),
                    "tensor \"x\" has shape [4294967296,4294967296] whose element count overflows int64");
  EXPECT_OPEN_ERROR(file_bytes(one_entry(R"({"dtype":"U8","shape":[18446744073709551615],"data_offsets":[0,0]})")),
                    "dimension too large for int64");
  EXPECT_OPEN_ERROR(file_bytes(one_entry(R"({"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]})")),
                    "whose byte count overflows");
}

TEST(SafetensorsErrors, DataOffsets) {
  EXPECT_OPEN_ERROR(file_bytes(one_entry(R"({"dtype":"F32","shape":[1],"data_offsets":[8,4]})"), "12345678"),
                    "tensor \"x\" has data_offsets [8, 4] with begin after end");
  EXPECT_OPEN_ERROR(file_bytes(one_entry(R"({"dtype":"F32","shape":[2,3],"data_offsets":[0,24]})"), "12345678"),
                    "tensor \"x\" data [0, 24) runs past the end of the data (8 bytes) — the file is truncated?");
  EXPECT_OPEN_ERROR(
      file_bytes(one_entry(R"({"dtype":"F32","shape":[2,3],"data_offsets":[0,20]})"), std::string(24, '\0')),
      "tensor \"x\" has 20 bytes but F32[2,3] needs 24");
  EXPECT_OPEN_ERROR(file_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                               R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                               std::string(12, '\0')),
                    "tensors \"a\" [0, 8) and \"b\" [4, 12) overlap");
  // A tensor nested inside a larger one is an overlap too.
  EXPECT_OPEN_ERROR(file_bytes(R"({"big":{"dtype":"U8","shape":[16],"data_offsets":[0,16]},)"
                               R"("a":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})",
                               std::string(16, '\0')),
                    "tensors \"big\" [0, 16) and \"a\" [2, 4) overlap");
  // A zero-size tensor occupies no bytes, so sitting inside another is not an overlap.
  EXPECT_EQ(open_error(file_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                  R"("z":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})",
                                  std::string(8, '\0'))),
            "");
}

TEST(SafetensorsErrors, Metadata) {
  EXPECT_OPEN_ERROR(file_bytes(R"({"__metadata__":{"format":"pt","epoch":3}})"),
                    "__metadata__ must map strings to strings, but \"epoch\" is a number");
  EXPECT_OPEN_ERROR(file_bytes(R"({"__metadata__":["pt"]})"), "__metadata__ must be an object of strings, got array");
}

TEST(SafetensorsBertTiny, ReadsHuggingFaceCheckpoint) {
  SafetensorsFile f = SafetensorsFile::open(testing::source_path("tests/data/bert-tiny-hf/model.safetensors"));
  EXPECT_EQ(f.entries().size(), 39u);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.find("embeddings.position_ids"), nullptr);  // newer transformers no longer save it

  const io::SafetensorsEntry* words = f.find("embeddings.word_embeddings.weight");
  ASSERT_NE(words, nullptr);
  EXPECT_EQ(words->dtype_name, "F32");
  EXPECT_EQ(words->dtype, ir::DType::kFloat32);
  EXPECT_EQ(words->shape, (std::vector<int64_t>{30522, 128}));

  const io::SafetensorsEntry* largest = &f.entries()[0];
  for (const auto& e : f.entries()) {
    EXPECT_EQ(e.dtype, ir::DType::kFloat32) << e.name;
    if (e.end - e.begin > largest->end - largest->begin) largest = &e;
  }
  EXPECT_EQ(largest->name, "embeddings.word_embeddings.weight");
  ir::Tensor t = f.tensor(largest->name);
  EXPECT_TRUE(f.is_mapped(t)) << "the largest tensor was copied instead of viewed";
  EXPECT_EQ(t.shape(), (std::vector<int64_t>{30522, 128}));
  for (int64_t i = 0; i < t.numel(); i += 4099) EXPECT_TRUE(std::isfinite(t.data<float>()[i])) << i;

  ir::Tensor gamma = f.tensor("embeddings.LayerNorm.weight");
  EXPECT_EQ(gamma.shape(), std::vector<int64_t>{128});
  EXPECT_TRUE(f.is_mapped(gamma));
}

}  // namespace
}  // namespace kiln
