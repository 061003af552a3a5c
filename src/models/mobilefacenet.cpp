// MobileFaceNet as insightface builds it (arcface_torch backbones/mobilefacenet.py, scale 2,
// blocks 1-4-6-2): depthwise-separable bottlenecks and a global depthwise convolution (GDC)
// instead of global pooling.
#include <cmath>

#include "models/blocks.h"

namespace arcface {

namespace {

namespace nn = torch::nn;

nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding,
                int64_t groups) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, kernel)
                        .stride(stride)
                        .padding(padding)
                        .groups(groups)
                        .bias(false));
}

/// conv - BN - PReLU, registered as `layers.{0,1,2}`.
nn::Sequential conv_block(int64_t in, int64_t out, int64_t kernel = 1, int64_t stride = 1,
                          int64_t padding = 0, int64_t groups = 1) {
  nn::Sequential layers(conv(in, out, kernel, stride, padding, groups), nn::BatchNorm2d(out),
                        PReLU(out));
  return layers;
}

/// conv - BN without activation.
nn::Sequential linear_block(int64_t in, int64_t out, int64_t kernel = 1, int64_t stride = 1,
                            int64_t padding = 0, int64_t groups = 1) {
  return nn::Sequential(conv(in, out, kernel, stride, padding, groups), nn::BatchNorm2d(out));
}

/// A module holding one Sequential called `layers`, as every insightface block does.
struct LayersImpl : nn::Module {
  explicit LayersImpl(nn::Sequential seq, bool residual = false) : residual(residual) {
    layers = register_module("layers", std::move(seq));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto y = conv_bn_prelu(x);
    return residual ? x + y : y;
  }
  // conv - BN [- PReLU] with the BN and PReLU as one fused kernel; other contents in order.
  torch::Tensor conv_bn_prelu(const torch::Tensor& x) {
    const size_t n = layers->size();
    auto* conv = n == 2 || n == 3 ? layers[0]->as<nn::Conv2d>() : nullptr;
    auto* bn = conv ? layers[1]->as<nn::BatchNorm2d>() : nullptr;
    auto* prelu = bn && n == 3 ? layers[2]->as<PReLU>() : nullptr;
    if (!bn || (n == 3 && !prelu)) return layers->forward(x);
    return batch_norm_prelu(*bn, conv2d(*conv, x), prelu ? prelu->weight : at::Tensor());
  }
  nn::Sequential layers{nullptr};
  bool residual;
};
TORCH_MODULE(Layers);

Layers depth_wise(int64_t in, int64_t out, bool residual, int64_t stride, int64_t groups) {
  return Layers(nn::Sequential(Layers(conv_block(in, groups)),
                               Layers(conv_block(groups, groups, 3, stride, 1, groups)),
                               Layers(linear_block(groups, out))),
                residual);
}

Layers residual(int64_t c, int64_t blocks, int64_t groups) {
  nn::Sequential seq;
  for (int64_t i = 0; i < blocks; ++i) seq->push_back(depth_wise(c, c, true, 1, groups));
  return Layers(seq);
}

class MobileFaceNetImpl : public BackboneImpl {
 public:
  explicit MobileFaceNetImpl(BackboneOptions options) : BackboneImpl(std::move(options)) {
    const auto& o = options_;
    TORCH_CHECK(o.input_size() % 16 == 0, "mobilefacenet needs an input size divisible by 16, got ",
                o.input_size());
    layers = register_module("layers", nn::ModuleList());
    layers->push_back(Layers(conv_block(o.channels(), 128, 3, 2, 1)));
    layers->push_back(Layers(conv_block(128, 128, 3, 1, 1, 64)));
    layers->push_back(depth_wise(128, 128, false, 2, 128));
    layers->push_back(residual(128, 4, 128));
    layers->push_back(depth_wise(128, 256, false, 2, 256));
    layers->push_back(residual(256, 6, 256));
    layers->push_back(depth_wise(256, 256, false, 2, 512));
    layers->push_back(residual(256, 2, 256));
    conv_sep = register_module("conv_sep", Layers(conv_block(256, 512)));
    const int64_t side = o.input_size() / 16;
    features = register_module(
        "features",
        Layers(nn::Sequential(Layers(linear_block(512, 512, side, 1, 0, 512)), nn::Flatten(),
                              nn::Linear(nn::LinearOptions(512, o.embedding_dim()).bias(false)),
                              nn::BatchNorm1d(o.embedding_dim()))));
    dropout = register_module("dropout", nn::Dropout(o.dropout()));
    for (auto& m : modules(false)) {
      if (auto* c = m->as<nn::Conv2d>()) {
        nn::init::kaiming_normal_(c->weight, 0, torch::kFanOut, torch::kReLU);
      } else if (auto* l = m->as<nn::Linear>()) {
        nn::init::kaiming_normal_(l->weight, 0, torch::kFanOut, torch::kReLU);
      }
    }
  }

  torch::Tensor forward(torch::Tensor x) override {
    for (auto& layer : *layers) x = layer->as<LayersImpl>()->forward(x);
    x = dropout->forward(conv_sep->forward(x));
    return features->forward(x);
  }

 private:
  nn::ModuleList layers{nullptr};
  Layers conv_sep{nullptr}, features{nullptr};
  nn::Dropout dropout{nullptr};
};

}  // namespace

Backbone make_mobilefacenet(const BackboneOptions& options) {
  return std::make_shared<MobileFaceNetImpl>(options);
}

}  // namespace arcface
