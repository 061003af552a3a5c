#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "arcface/backbone.h"
#include "arcface/image.h"
#include "arcface/names.h"
#include "arcface/system.h"

namespace arcface {

namespace fs = std::filesystem;

/// What a model file that does not describe itself needs: an ONNX model, or a PyTorch file
/// without our metadata (seed 002's dictionary, a plain state dict).
struct ForeignModel {
  Preprocess preprocess;
  /// Plain state dicts: the architecture ("iresnet18", "resnet_face18", ...).
  std::string backbone;
};

/// Turns aligned face crops into unit-length descriptors, with one of our checkpoints or an
/// ONNX face-embedding model behind it. Shaped like OpenCV's FaceRecognizerSF:
///
///   auto embedder = arcface::Embedder::load("runs/demo/best.pt");
///   at::Tensor a = embedder.embed(arcface::read_image("a.jpg", Color::BGR));  // [1, 512]
///   at::Tensor b = embedder.embed(arcface::read_image("b.jpg", Color::BGR));  // unit norm
///   double score = arcface::Embedder::match(a, b);         // cosine similarity
///   bool same = score >= threshold;                        // threshold from `arcface eval`
class Embedder {
 public:
  /// One of our checkpoints; a PyTorch checkpoint or state dict saved by Python (see
  /// read_backbone_weights); or an ONNX model (.onnx). `foreign` describes the input of the
  /// last two, and the architecture of a plain state dict.
  static Embedder load(const fs::path& model, const std::string& device = "cpu",
                       const ForeignModel& foreign = {});
  /// Wraps a live backbone (validation during training).
  Embedder(Backbone backbone, Preprocess preprocess);
  ~Embedder();
  Embedder(Embedder&&) noexcept;
  Embedder& operator=(Embedder&&) noexcept;

  const Preprocess& preprocess() const { return preprocess_; }
  /// Descriptor length for a flip mode (Concat doubles it).
  int64_t dim(FlipMode flip = FlipMode::None) const;
  /// A short description: "resnet_face18 checkpoint 'x.pt'" or "ONNX model 'y.onnx'".
  const std::string& description() const { return description_; }
  /// The network: a backbone name, or "onnx".
  const std::string& network() const { return network_; }
  /// The network in bf16 or fp16 (mixed precision, fp16 on CUDA only) or fp32 (the default);
  /// Auto is resolved here.
  /// ONNX models always run in fp32.
  void precision(Precision precision);
  Precision precision() const { return precision_; }

  /// Raw embeddings of preprocessed input [N, C, H, W] -> [N, D] (not normalised).
  at::Tensor forward(const at::Tensor& input);
  /// Unit descriptors of preprocessed input, combined with the mirror images as asked.
  at::Tensor descriptors(const at::Tensor& input, FlipMode flip);
  /// Unit descriptors of aligned faces (BGR or gray, any size: resized as trained).
  at::Tensor embed(const std::vector<Image>& faces, FlipMode flip = FlipMode::None);
  at::Tensor embed(const Image& face, FlipMode flip = FlipMode::None);
  /// Cosine similarity of two unit descriptors [1, D] or [D].
  static double match(const at::Tensor& a, const at::Tensor& b);
  /// The same for two unit descriptors of `dim` values, summed in double precision.
  static double match(const float* a, const float* b, int64_t dim);

 private:
  Embedder() = default;
  struct Onnx;
  Backbone backbone_;
  std::unique_ptr<Onnx> onnx_;
  Preprocess preprocess_;
  c10::Device device_{c10::kCPU};
  std::string description_, network_;
  Precision precision_ = Precision::Fp32;
  int64_t dim_ = 0;
};

/// What made a set of descriptors: model, input, precision, flip. Two runs in another
/// precision differ by up to about 5e-3, so every embeddings file carries it.
nlohmann::json embedding_meta(const Embedder& embedder, FlipMode flip);

/// Writes unit descriptors [N, D] with their image names: `.npy` (float32, plus the names in
/// `<out>.paths.txt`), `.csv` (name, then D values), each with `meta` in `<out>.meta.json`, or
/// `.json` ({"meta", "embeddings": [{"path", "embedding"}]}).
void save_embeddings(const fs::path& out, const std::vector<std::string>& names,
                     const at::Tensor& embeddings, const nlohmann::json& meta);

/// Parses "cpu" or "cuda[:N]"; throws when CUDA is asked for and this libtorch has none.
c10::Device parse_device(const std::string& name);

}  // namespace arcface
