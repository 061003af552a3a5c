#include "arcface/embedder.h"

#include <torch/torch.h>

#ifdef ARCFACE_WITH_OPENCV
#include <opencv2/dnn.hpp>
#endif

#include <fstream>

#include <spdlog/fmt/fmt.h>

#include "arcface/checkpoint.h"
#include "arcface/error.h"
#include "arcface/weights.h"
#include "util/autocast.h"

namespace arcface {

c10::Device parse_device(const std::string& name) {
  // "auto": the GPU when this libtorch has CUDA and sees a device, else the CPU.
  if (name == "auto") return torch::cuda::is_available() ? c10::Device(c10::kCUDA) : c10::kCPU;
  c10::Device device(c10::kCPU);
  try {
    device = c10::Device(name);
  } catch (const std::exception&) {
    throw Error(fmt::format("unknown device '{}' (expected cpu, cuda, cuda:N or auto)", name));
  }
  if (device.is_cuda() && !torch::cuda::is_available()) {
    throw Error(fmt::format("device '{}' asked for, but this libtorch has no usable CUDA", name));
  }
  return device;
}

struct Embedder::Onnx {
#ifdef ARCFACE_WITH_OPENCV
  cv::dnn::Net net;
#endif
};

Embedder::~Embedder() = default;
Embedder::Embedder(Embedder&&) noexcept = default;
Embedder& Embedder::operator=(Embedder&&) noexcept = default;

Embedder::Embedder(Backbone backbone, Preprocess preprocess)
    : backbone_(std::move(backbone)), preprocess_(std::move(preprocess)) {
  device_ = backbone_->parameters().front().device();
  dim_ = backbone_->options().embedding_dim();
  description_ = network_ = backbone_->options().name();
}

Embedder Embedder::load(const fs::path& model, const std::string& device,
                        const ForeignModel& foreign) {
  Embedder e;
  if (model.extension() == ".onnx") {
    std::error_code ec;
    if (!fs::is_regular_file(model, ec)) {
      throw Error(fmt::format("model '{}' not found", model.string()));
    }
#ifndef ARCFACE_WITH_OPENCV
    throw Error(
        fmt::format("ONNX model '{}': this build has no OpenCV, whose dnn module runs "
                    "ONNX models (rebuild with -DARCFACE_WITH_OPENCV=ON)",
                    model.string()));
#else
    e.onnx_ = std::make_unique<Onnx>();
    e.preprocess_ = foreign.preprocess;
    const auto& p = e.preprocess_;
    try {
      e.onnx_->net = cv::dnn::readNetFromONNX(model.string());
    } catch (const cv::Exception& ex) {
      throw Error(fmt::format("cannot read ONNX model '{}': {}", model.string(), ex.what()));
    }
    // Run one image now, so an input that does not fit fails here with a clear message.
    auto probe = torch::zeros({1, p.channels(), p.input_size, p.input_size});
    try {
      e.dim_ = e.forward(probe).size(1);
    } catch (const std::exception& ex) {
      throw Error(
          fmt::format("ONNX model '{}' does not accept {}x{}x{} {} input (set "
                      "--input-size/--color to what it expects): {}",
                      model.string(), p.channels(), p.input_size, p.input_size, to_string(p.color),
                      std::string(ex.what()).substr(0, 300)));
    }
    e.description_ = fmt::format("ONNX model '{}'", model.string());
    e.network_ = "onnx";
    return e;
#endif
  }
  const BackboneWeights w = read_backbone_weights(model);
  e.preprocess_ = w.preprocess ? *w.preprocess : foreign.preprocess;
  e.backbone_ = make_backbone(backbone_for(w, foreign.backbone, e.preprocess_, model));
  load_state_dict(*e.backbone_, w.state, w.description);
  e.device_ = parse_device(device);
  e.backbone_->eval();
  e.backbone_->fold_batchnorm();  // inference only: fewer passes, same function
  e.backbone_->to(e.device_);
  e.dim_ = e.backbone_->options().embedding_dim();
  e.description_ = w.description;
  e.network_ = e.backbone_->options().name();
  return e;
}

void Embedder::precision(Precision precision) {
  if (onnx_ && (precision == Precision::Bf16 || precision == Precision::Fp16)) {
    throw Error(fmt::format("{}: {} needs a libtorch model; ONNX models run in fp32", description_,
                            to_string(precision)));
  }
  precision_ = onnx_ ? Precision::Fp32 : resolve_precision(precision, device_.is_cuda());
}

int64_t Embedder::dim(FlipMode flip) const { return flip == FlipMode::Concat ? 2 * dim_ : dim_; }

at::Tensor Embedder::forward(const at::Tensor& input) {
#ifdef ARCFACE_WITH_OPENCV
  if (onnx_) {
    auto x = input.contiguous().to(torch::kFloat32);
    std::vector<int> shape(x.sizes().begin(), x.sizes().end());
    cv::Mat blob(static_cast<int>(shape.size()), shape.data(), CV_32F, x.data_ptr<float>());
    onnx_->net.setInput(blob);
    cv::Mat out = onnx_->net.forward();
    out = out.reshape(1, static_cast<int>(x.size(0)));
    return torch::from_blob(out.ptr<float>(), {out.rows, out.cols}, torch::kFloat32).clone();
  }
#endif
  torch::InferenceMode guard;
  AutocastGuard autocast(precision_, device_);
  return backbone_->forward(input.to(device_)).to(torch::kCPU, torch::kFloat32);
}

at::Tensor Embedder::descriptors(const at::Tensor& input, FlipMode flip) {
  at::Tensor d;
  if (flip == FlipMode::None) {
    d = forward(input);
  } else {
    const int64_t n = input.size(0);
    auto both = forward(torch::cat({input, input.flip({3})}));
    auto plain = both.narrow(0, 0, n), mirrored = both.narrow(0, n, n);
    d = flip == FlipMode::Concat ? torch::cat({plain, mirrored}, 1) : plain + mirrored;
  }
  return torch::nn::functional::normalize(d, torch::nn::functional::NormalizeFuncOptions().dim(1));
}

at::Tensor Embedder::embed(const std::vector<Image>& faces, FlipMode flip) {
  const auto& p = preprocess_;
  const int64_t s = p.input_size, c = p.channels();
  auto input = torch::empty({static_cast<int64_t>(faces.size()), c, s, s});
  const int offset = static_cast<int>((p.load_size() - s) / 2);
  for (size_t i = 0; i < faces.size(); ++i) {
    // Faces come BGR or gray, as decoded.
    const Image image = prepare_image(faces[i], p, fmt::format("face {}", i));
    write_tensor(image, p, offset, offset, false, input.data_ptr<float>() + i * c * s * s);
  }
  return descriptors(input, flip);
}

at::Tensor Embedder::embed(const Image& face, FlipMode flip) {
  return embed(std::vector<Image>{face}, flip);
}

double Embedder::match(const at::Tensor& a, const at::Tensor& b) {
  return (a.flatten() * b.flatten()).sum().item<double>();
}

double Embedder::match(const float* a, const float* b, int64_t dim) {
  double dot = 0;
  for (int64_t k = 0; k < dim; ++k) dot += static_cast<double>(a[k]) * b[k];
  return dot;
}

}  // namespace arcface

namespace arcface {

nlohmann::json embedding_meta(const Embedder& embedder, FlipMode flip) {
  return {{"model", embedder.description()},
          {"input", describe(embedder.preprocess())},
          {"preprocess", embedder.preprocess().to_json()},
          {"precision", to_string(embedder.precision())},
          {"flip", to_string(flip)},
          {"dim", embedder.dim(flip)}};
}

void save_embeddings(const fs::path& out, const std::vector<std::string>& names,
                     const at::Tensor& embeddings, const nlohmann::json& meta) {
  auto e = embeddings.to(torch::kCPU, torch::kFloat32).contiguous();
  const int64_t n = e.size(0), d = e.size(1);
  if (static_cast<int64_t>(names.size()) != n) {
    throw Error(fmt::format("save_embeddings: {} names for {} embeddings", names.size(), n));
  }
  if (out.has_parent_path()) fs::create_directories(out.parent_path());
  const std::string ext = out.extension().string();
  const float* v = e.data_ptr<float>();
  if (ext == ".npy") {
    std::string header =
        fmt::format("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}", n, d);
    // The magic, version and header length take 10 bytes; pad the header to 64-byte alignment.
    header.append(63 - (10 + header.size()) % 64, ' ');
    header.push_back('\n');
    std::ofstream f(out, std::ios::binary);
    f.write("\x93NUMPY\x01\x00", 8);
    const uint16_t len = static_cast<uint16_t>(header.size());
    f.put(static_cast<char>(len & 0xFF)).put(static_cast<char>(len >> 8));
    f << header;
    f.write(reinterpret_cast<const char*>(v), static_cast<std::streamsize>(n * d * sizeof(float)));
    std::ofstream paths(out.string() + ".paths.txt");
    for (const auto& name : names) paths << name << '\n';
    if (!f || !paths) throw Error(fmt::format("cannot write '{}'", out.string()));
  } else if (ext == ".csv") {
    std::ofstream f(out);
    f << "path";
    for (int64_t k = 0; k < d; ++k) f << ",e" << k;
    f << '\n';
    for (int64_t i = 0; i < n; ++i) {
      f << names[i];
      for (int64_t k = 0; k < d; ++k) f << ',' << fmt::format("{:.7g}", v[i * d + k]);
      f << '\n';
    }
    if (!f) throw Error(fmt::format("cannot write '{}'", out.string()));
  } else if (ext == ".json") {
    nlohmann::json list = nlohmann::json::array();
    for (int64_t i = 0; i < n; ++i) {
      list.push_back(
          {{"path", names[i]}, {"embedding", std::vector<float>(v + i * d, v + (i + 1) * d)}});
    }
    const nlohmann::json j = {{"meta", meta}, {"embeddings", list}};
    std::ofstream f(out);
    f << j.dump() << '\n';
    if (!f) throw Error(fmt::format("cannot write '{}'", out.string()));
  } else {
    throw Error(fmt::format("embeddings file '{}': use a .npy, .csv or .json name", out.string()));
  }
  if (ext != ".json") {
    std::ofstream side(out.string() + ".meta.json");
    side << meta.dump(2) << '\n';
    if (!side) throw Error(fmt::format("cannot write '{}.meta.json'", out.string()));
  }
}

}  // namespace arcface
