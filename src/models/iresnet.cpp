// insightface's IR-ResNet (arcface_torch backbones/iresnet.py): a stride-1 3x3 stem, improved
// residual blocks (BN-conv-BN-PReLU-conv(stride)-BN, per-channel PReLU, no activation after
// the sum), then BN, dropout, a fully connected layer and a BatchNorm1d with a fixed scale.
#include "models/blocks.h"

namespace arcface {

namespace {

namespace nn = torch::nn;

struct IBasicBlockImpl : nn::Module {
  IBasicBlockImpl(int64_t inplanes, int64_t planes, int64_t stride) {
    bn1 = register_module("bn1", nn::BatchNorm2d(inplanes));
    conv1 = register_module("conv1", conv3x3(inplanes, planes));
    bn2 = register_module("bn2", nn::BatchNorm2d(planes));
    prelu = register_module("prelu", PReLU(planes));
    conv2 = register_module("conv2", conv3x3(planes, planes, stride));
    bn3 = register_module("bn3", nn::BatchNorm2d(planes));
    if (stride != 1 || inplanes != planes) {
      downsample = register_module(
          "downsample", nn::Sequential(conv1x1(inplanes, planes, stride), nn::BatchNorm2d(planes)));
    }
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto out = conv2d(*conv1, batch_norm_prelu(*bn1, x));
    out = conv2d(*conv2, folded ? prelu->forward(out) : batch_norm_prelu(*bn2, out, prelu->weight));
    if (!folded) out = batch_norm_prelu(*bn3, out);
    return out + (downsample ? downsample->forward(x) : x);
  }
  void fold_batchnorm() {
    // bn1 stays: it precedes a zero-padded convolution, where folding would change the border.
    const auto [s2, t2] = batchnorm_affine(bn2);
    fold_into_conv(*this, "conv1", conv1, s2, t2);
    const auto [s3, t3] = batchnorm_affine(bn3);
    fold_into_conv(*this, "conv2", conv2, s3, t3);
    if (downsample) downsample = replace_module("downsample", fold_downsample(downsample));
    folded = true;
  }
  bool folded = false;
  nn::BatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr};
  nn::Conv2d conv1{nullptr}, conv2{nullptr};
  PReLU prelu{nullptr};
  nn::Sequential downsample{nullptr};
};
TORCH_MODULE(IBasicBlock);

class IResNetImpl : public BackboneImpl {
 public:
  IResNetImpl(BackboneOptions options, std::vector<int64_t> layers)
      : BackboneImpl(std::move(options)) {
    const auto& o = options_;
    TORCH_CHECK(o.input_size() % 16 == 0, "iresnet needs an input size divisible by 16, got ",
                o.input_size());
    conv1 = register_module("conv1", conv3x3(o.channels(), 64));
    bn1 = register_module("bn1", nn::BatchNorm2d(64));
    prelu = register_module("prelu", PReLU(64));
    const int64_t planes[] = {64, 128, 256, 512};
    int64_t inplanes = 64;
    for (int i = 0; i < 4; ++i) {
      nn::Sequential stage;
      for (int64_t b = 0; b < layers[i]; ++b) {
        stage->push_back(IBasicBlock(inplanes, planes[i], b == 0 ? 2 : 1));
        inplanes = planes[i];
      }
      stages.push_back(register_module("layer" + std::to_string(i + 1), stage));
    }
    bn2 = register_module("bn2", nn::BatchNorm2d(512));
    dropout = register_module("dropout", nn::Dropout(o.dropout()));
    const int64_t side = o.input_size() / 16;
    fc = register_module("fc", nn::Linear(512 * side * side, o.embedding_dim()));
    features = register_module("features", nn::BatchNorm1d(o.embedding_dim()));
    for (auto& m : modules(false)) {
      if (auto* conv = m->as<nn::Conv2d>()) torch::nn::init::normal_(conv->weight, 0, 0.1);
    }
    // insightface keeps the embedding BN's scale at one.
    features->weight.set_requires_grad(false);
  }

  torch::Tensor forward(torch::Tensor x) override {
    x = conv2d(*conv1, x);
    x = folded_ ? prelu->forward(x) : batch_norm_prelu(*bn1, x, prelu->weight);
    for (auto& stage : stages) x = stage->forward(x);
    if (folded_) return fc->forward(x.flatten(1));
    x = dropout->forward(batch_norm_prelu(*bn2, x).flatten(1));
    return features->forward(fc->forward(x));
  }

  void fold_batchnorm() override {
    if (folded_) return;
    const auto [s, t] = batchnorm_affine(bn1);
    fold_into_conv(*this, "conv1", conv1, s, t);
    for (auto& stage : stages) {
      for (size_t i = 0; i < stage->size(); ++i) stage->ptr<IBasicBlockImpl>(i)->fold_batchnorm();
    }
    fold_into_linear(fc, batchnorm_affine(bn2), batchnorm_affine(features));
    folded_ = true;
  }

 private:
  nn::Conv2d conv1{nullptr};
  nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
  PReLU prelu{nullptr};
  std::vector<nn::Sequential> stages;
  nn::Dropout dropout{nullptr};
  nn::Linear fc{nullptr};
  nn::BatchNorm1d features{nullptr};
  bool folded_ = false;
};

}  // namespace

Backbone make_iresnet(const BackboneOptions& options, int depth) {
  std::vector<int64_t> layers = depth == 18   ? std::vector<int64_t>{2, 2, 2, 2}
                                : depth == 34 ? std::vector<int64_t>{3, 4, 6, 3}
                                              : std::vector<int64_t>{3, 4, 14, 3};
  return std::make_shared<IResNetImpl>(options, layers);
}

}  // namespace arcface
