#include "serve/inference_service.h"

#include <nlohmann/json.hpp>
#include <sstream>

#include "bench/bench_inputs.h"
#include "common/error.h"
#include "onnx/model_io.h"
#include "serve/oip_tensors.h"

namespace kiln::serve {

using nlohmann::json;

// Named, not anonymous: the sanitizer build compiles kiln_core as a unity build.
namespace inference_service_detail {

constexpr const char* kServerVersion = "0.1.0";

std::vector<std::string> split_path(const std::string& target) {
  std::vector<std::string> parts;
  std::stringstream in(target);
  for (std::string part; std::getline(in, part, '/');)
    if (!part.empty()) parts.push_back(part);
  return parts;
}

HttpResponse json_ok(const json& body) {
  HttpResponse r;
  r.body = body.dump();
  return r;
}

json tensor_metadata(const ir::ValueInfo& v) {
  json shape = json::array();
  if (v.type.shape)
    for (const ir::Dim& d : v.type.shape->dims) shape.push_back(d.is_static() ? d.value : -1);
  return {{"name", v.name}, {"datatype", oip_datatype(v.type.dtype).value_or("")}, {"shape", shape}};
}

// One run on generated inputs (batch 1, a short sequence), so that the first request pays no first-call cost.
// The plan comes from the model as read: the session's copy no longer holds the packed weights, whose
// embedding table gives the token ids' range.
void warm_up(const runtime::Session& session, const bench::InputPlan& plan) {
  const std::vector<ir::Tensor> inputs = bench::generate_inputs(plan, 1, 16);
  std::unordered_map<std::string, ir::Datum> feeds;
  for (size_t i = 0; i < plan.inputs.size(); ++i) feeds.emplace(plan.inputs[i].info.name, inputs[i]);
  (void)session.run(feeds);
}

// The request's tensors against the model's inputs, so that a client reads what is wrong in the protocol's
// terms (and no server path): an unknown or missing input, a datatype or a rank or a fixed dim that differs.
void check_inputs(const runtime::Session& session, const InferRequest& req) {
  std::string names;
  for (const ir::ValueInfo& in : session.inputs()) names += (names.empty() ? "" : ", ") + in.name;
  for (const auto& [name, t] : req.inputs) {
    const ir::ValueInfo* in = nullptr;
    for (const ir::ValueInfo& i : session.inputs())
      if (i.name == name) in = &i;
    if (in == nullptr) throw RequestError(str("unknown input \"", name, "\" (the model's inputs: ", names, ")"));
    const std::string want = oip_datatype(in->type.dtype).value_or(std::string(ir::dtype_name(in->type.dtype)));
    if (t.dtype() != in->type.dtype)
      throw RequestError(
          str("input \"", name, "\": datatype ", oip_datatype(t.dtype()).value_or("?"), ", the model takes ", want));
    if (!in->type.shape) continue;
    const std::vector<ir::Dim>& dims = in->type.shape->dims;
    bool fits = dims.size() == t.rank();
    for (size_t d = 0; fits && d < dims.size(); ++d) fits = !dims[d].is_static() || dims[d].value == t.dim(d);
    if (!fits)
      throw RequestError(str("input \"", name, "\": shape ", ir::to_string(t.shape()), ", the model takes ",
                             ir::to_string(*in->type.shape)));
  }
  for (const ir::ValueInfo& in : session.inputs()) {
    bool given = false;
    for (const auto& [name, t] : req.inputs) given |= name == in.name;
    if (!given) throw RequestError(str("missing input \"", in.name, "\" (the model's inputs: ", names, ")"));
  }
}

}  // namespace inference_service_detail

using namespace inference_service_detail;

InferenceService::InferenceService(std::vector<ModelEntry> models, const Progress& progress) {
  for (ModelEntry& e : models) {
    Model m;
    m.entry = e;
    for (const ModelVersion& v : e.versions) {
      if (progress) progress("loading " + e.name + " version " + v.version + " from " + v.path);
      runtime::SessionOptions so;
      so.optimization = e.config.level;
      so.precision = e.config.precision;
      ir::Model model = onnx_io::load_model(v.path);
      const bench::InputPlan plan = bench::plan_inputs(model.graph);
      auto session = std::make_unique<runtime::Session>(std::move(model), so);
      try {
        warm_up(*session, plan);
      } catch (const Error& err) {
        fail(v.path, ": the warm-up run failed: ", err.what());
      }
      m.versions.push_back({v.version, std::move(session)});
    }
    models_.emplace(e.name, std::move(m));
  }
}

std::vector<std::string> InferenceService::describe() const {
  std::vector<std::string> out;
  for (const auto& [name, m] : models_) {
    std::string versions;
    for (const Loaded& v : m.versions) versions += (versions.empty() ? "" : ", ") + v.version;
    out.push_back(name + " (version" + (m.versions.size() > 1 ? "s " : " ") + versions + ")");
  }
  return out;
}

const InferenceService::Model* InferenceService::find_model(const std::string& name) const {
  auto it = models_.find(name);
  return it == models_.end() ? nullptr : &it->second;
}

HttpResponse InferenceService::model_metadata(const Model& m, const Loaded& v) const {
  json versions = json::array();
  for (const Loaded& l : m.versions) versions.push_back(l.version);
  json inputs = json::array(), outputs = json::array();
  for (const ir::ValueInfo& i : v.session->inputs()) inputs.push_back(tensor_metadata(i));
  for (const ir::ValueInfo& o : v.session->outputs()) outputs.push_back(tensor_metadata(o));
  return json_ok(
      {{"name", m.entry.name}, {"versions", versions}, {"platform", "onnx"}, {"inputs", inputs}, {"outputs", outputs}});
}

HttpResponse InferenceService::infer(const Model& m, const Loaded& v, const HttpRequest& request) const {
  InferRequest req;
  std::vector<ir::Datum> results;
  try {
    req = parse_infer_request(request.body, request.header("inference-header-content-length"));
    check_inputs(*v.session, req);
    std::unordered_map<std::string, ir::Datum> feeds;
    for (auto& [name, t] : req.inputs) feeds.emplace(name, std::move(t));
    results = v.session->run(feeds);
  } catch (const RequestError& e) {
    return json_error(400, e.what());
  } catch (const Error& e) {
    // The session refuses missing, unknown or mistyped inputs with a message naming the input.
    return json_error(400, e.what());
  }
  const std::vector<ir::ValueInfo>& outs = v.session->outputs();
  std::vector<std::pair<std::string, const ir::Tensor*>> chosen;
  auto add = [&](size_t i) {
    if (!results[i].is_tensor()) return false;
    chosen.emplace_back(outs[i].name, &results[i].tensor);
    return true;
  };
  if (req.outputs.empty()) {
    for (size_t i = 0; i < outs.size(); ++i) add(i);
  } else {
    for (const std::string& name : req.outputs) {
      size_t i = 0;
      while (i < outs.size() && outs[i].name != name) ++i;
      if (i == outs.size()) return json_error(400, "unknown output \"" + name + "\" of model " + m.entry.name);
      if (!add(i)) return json_error(400, "output \"" + name + "\" is not a tensor");
    }
  }
  const InferResponse encoded = encode_infer_response(m.entry.name, v.version, req, chosen);
  HttpResponse r;
  r.body = encoded.body;
  if (!encoded.header_length.empty()) {
    r.content_type = "application/octet-stream";
    r.headers.emplace_back("Inference-Header-Content-Length", encoded.header_length);
  }
  return r;
}

HttpResponse InferenceService::handle(const HttpRequest& request) const {
  const std::vector<std::string> p = split_path(request.target);
  const bool get = request.method == "GET" || request.method == "HEAD";
  auto wrong_method = [&] { return json_error(405, request.method + " is not allowed on " + request.target); };
  if (p.empty() || p[0] != "v2") return json_error(404, "no route " + request.target + " (the API is under /v2)");
  if (p.size() == 1) {
    if (!get) return wrong_method();
    return json_ok(
        {{"name", "kiln"}, {"version", kServerVersion}, {"extensions", json::array({"binary_tensor_data"})}});
  }
  if (p[1] == "health" && p.size() == 3 && (p[2] == "live" || p[2] == "ready")) {
    if (!get) return wrong_method();
    return json_ok(json::object({{p[2], true}}));
  }
  if (p[1] != "models" || p.size() < 3) return json_error(404, "no route " + request.target);
  const Model* m = find_model(p[2]);
  if (m == nullptr) return json_error(404, "unknown model \"" + p[2] + "\"");
  size_t at = 3;
  const Loaded* v = &m->versions.back();
  if (p.size() > at && p[at] == "versions") {
    if (p.size() == at + 1) return json_error(404, "no route " + request.target);
    v = nullptr;
    for (const Loaded& l : m->versions)
      if (l.version == p[at + 1]) v = &l;
    if (v == nullptr) return json_error(404, "model \"" + p[2] + "\" has no version \"" + p[at + 1] + "\"");
    at += 2;
  }
  if (p.size() == at) return get ? model_metadata(*m, *v) : wrong_method();
  if (p.size() == at + 1 && p[at] == "ready")
    return get ? json_ok({{"name", m->entry.name}, {"version", v->version}, {"ready", true}}) : wrong_method();
  if (p.size() == at + 1 && p[at] == "infer") return request.method == "POST" ? infer(*m, *v, request) : wrong_method();
  return json_error(404, "no route " + request.target);
}

}  // namespace kiln::serve
