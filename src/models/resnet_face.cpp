// Seed 000's resnet_face18 (arcface-pytorch models/resnet.py): a 3x3 stem with PReLU and
// max-pool, IR blocks (BN-conv-BN-PReLU-conv-BN, optional SE, one shared PReLU), then BN,
// dropout, a fully connected layer to the embedding and a BatchNorm1d. Parameter names follow
// the Python module so state dicts line up.
#include "models/blocks.h"

namespace arcface {

namespace {

namespace nn = torch::nn;

struct SEBlockImpl : nn::Module {
  explicit SEBlockImpl(int64_t channels, int64_t reduction = 16) {
    fc = register_module("fc",
                         nn::Sequential(nn::Linear(channels, channels / reduction), PReLU(),
                                        nn::Linear(channels / reduction, channels), nn::Sigmoid()));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto w = fc->forward(x.mean({2, 3}));
    return x * w.view({x.size(0), x.size(1), 1, 1});
  }
  nn::Sequential fc{nullptr};
};
TORCH_MODULE(SEBlock);

struct IRBlockImpl : nn::Module {
  IRBlockImpl(int64_t inplanes, int64_t planes, int64_t stride, bool use_se) {
    bn0 = register_module("bn0", nn::BatchNorm2d(inplanes));
    conv1 = register_module("conv1", conv3x3(inplanes, inplanes));
    bn1 = register_module("bn1", nn::BatchNorm2d(inplanes));
    prelu = register_module("prelu", PReLU());
    conv2 = register_module("conv2", conv3x3(inplanes, planes, stride));
    bn2 = register_module("bn2", nn::BatchNorm2d(planes));
    if (stride != 1 || inplanes != planes) {
      downsample = register_module(
          "downsample", nn::Sequential(conv1x1(inplanes, planes, stride), nn::BatchNorm2d(planes)));
    }
    if (use_se) se = register_module("se", SEBlock(planes));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto out = conv2d(*conv1, batch_norm_prelu(*bn0, x));
    out = conv2d(*conv2, folded ? prelu->forward(out) : batch_norm_prelu(*bn1, out, prelu->weight));
    if (!folded) out = batch_norm_prelu(*bn2, out);
    if (se) out = se->forward(out);
    out = out + (downsample ? downsample->forward(x) : x);
    return prelu->forward(out);
  }
  void fold_batchnorm() {
    // bn0 stays: it precedes a zero-padded convolution, where folding would change the border.
    const auto [s1, t1] = batchnorm_affine(bn1);
    fold_into_conv(*this, "conv1", conv1, s1, t1);
    const auto [s2, t2] = batchnorm_affine(bn2);
    fold_into_conv(*this, "conv2", conv2, s2, t2);
    if (downsample) downsample = replace_module("downsample", fold_downsample(downsample));
    folded = true;
  }
  nn::BatchNorm2d bn0{nullptr}, bn1{nullptr}, bn2{nullptr};
  nn::Conv2d conv1{nullptr}, conv2{nullptr};
  PReLU prelu{nullptr};
  nn::Sequential downsample{nullptr};
  SEBlock se{nullptr};
  bool folded = false;
};
TORCH_MODULE(IRBlock);

class ResNetFaceImpl : public BackboneImpl {
 public:
  ResNetFaceImpl(BackboneOptions options, std::vector<int64_t> layers)
      : BackboneImpl(std::move(options)) {
    const auto& o = options_;
    TORCH_CHECK(o.input_size() % 16 == 0, "resnet_face needs an input size divisible by 16, got ",
                o.input_size());
    conv1 = register_module(
        "conv1", nn::Conv2d(nn::Conv2dOptions(o.channels(), 64, 3).padding(1).bias(false)));
    bn1 = register_module("bn1", nn::BatchNorm2d(64));
    prelu = register_module("prelu", PReLU());
    const int64_t planes[] = {64, 128, 256, 512};
    int64_t inplanes = 64;
    for (int i = 0; i < 4; ++i) {
      nn::Sequential stage;
      for (int64_t b = 0; b < layers[i]; ++b) {
        stage->push_back(IRBlock(inplanes, planes[i], b == 0 && i > 0 ? 2 : 1, o.use_se()));
        inplanes = planes[i];
      }
      stages.push_back(register_module("layer" + std::to_string(i + 1), stage));
    }
    bn4 = register_module("bn4", nn::BatchNorm2d(512));
    dropout = register_module("dropout", nn::Dropout(o.dropout()));
    const int64_t side = o.input_size() / 16;
    fc5 = register_module("fc5", nn::Linear(512 * side * side, o.embedding_dim()));
    bn5 = register_module("bn5", nn::BatchNorm1d(o.embedding_dim()));
    init_xavier(*this);
  }

  torch::Tensor forward(torch::Tensor x) override {
    x = conv2d(*conv1, x);
    x = fused_max_pool_2x2(folded_ ? prelu->forward(x) : batch_norm_prelu(*bn1, x, prelu->weight));
    for (auto& stage : stages) x = stage->forward(x);
    if (folded_) return fc5->forward(x.flatten(1));
    x = dropout->forward(batch_norm_prelu(*bn4, x));
    return bn5->forward(fc5->forward(x.flatten(1)));
  }

  void fold_batchnorm() override {
    if (folded_) return;
    const auto [s, t] = batchnorm_affine(bn1);
    fold_into_conv(*this, "conv1", conv1, s, t);
    for (auto& stage : stages) {
      for (size_t i = 0; i < stage->size(); ++i) stage->ptr<IRBlockImpl>(i)->fold_batchnorm();
    }
    fold_into_linear(fc5, batchnorm_affine(bn4), batchnorm_affine(bn5));
    folded_ = true;
  }

 private:
  nn::Conv2d conv1{nullptr};
  nn::BatchNorm2d bn1{nullptr}, bn4{nullptr};
  PReLU prelu{nullptr};
  std::vector<nn::Sequential> stages;
  nn::Dropout dropout{nullptr};
  nn::Linear fc5{nullptr};
  nn::BatchNorm1d bn5{nullptr};
  bool folded_ = false;
};

}  // namespace

Backbone make_resnet_face(const BackboneOptions& options, int depth) {
  std::vector<int64_t> layers = depth == 18   ? std::vector<int64_t>{2, 2, 2, 2}
                                : depth == 34 ? std::vector<int64_t>{3, 4, 6, 3}
                                              : std::vector<int64_t>{3, 4, 14, 3};
  return std::make_shared<ResNetFaceImpl>(options, layers);
}

}  // namespace arcface
