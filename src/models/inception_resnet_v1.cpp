// Inception-ResNet-v1 (Szegedy et al. 2016) as facenet-pytorch names it, so its published
// state dicts load unchanged: a stem of BasicConv2d (conv without bias, BN eps 1e-3, ReLU),
// 5 x Block35, Mixed_6a, 10 x Block17, Mixed_7a, 5 x Block8 and a last Block8 without ReLU,
// then global average pooling, dropout, last_linear (no bias) and last_bn.
#include <functional>

#include "models/blocks.h"

namespace arcface {

namespace {

namespace nn = torch::nn;
using Pair = torch::ExpandingArray<2>;

struct BasicConv2dImpl : nn::Module {
  BasicConv2dImpl(int64_t in, int64_t out, Pair kernel, Pair stride, Pair padding = 0) {
    conv = register_module(
        "conv",
        nn::Conv2d(nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding).bias(false)));
    bn =
        register_module("bn", nn::BatchNorm2d(nn::BatchNorm2dOptions(out).eps(1e-3).momentum(0.1)));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return torch::relu(folded ? conv->forward(x) : bn->forward(conv->forward(x)));
  }
  void fold_batchnorm() {
    const auto [scale, shift] = batchnorm_affine(bn);
    fold_into_conv(*this, "conv", conv, scale, shift);
    folded = true;
  }
  nn::Conv2d conv{nullptr};
  nn::BatchNorm2d bn{nullptr};
  bool folded = false;
};
TORCH_MODULE(BasicConv2d);

BasicConv2d basic(int64_t in, int64_t out, Pair kernel, Pair stride = 1, Pair padding = 0) {
  return BasicConv2d(in, out, kernel, stride, padding);
}

// Every BasicConv2d below `module`, folded in place.
void fold_all(nn::Module& module) {
  for (auto& m : module.modules()) {
    if (auto* b = m->as<BasicConv2dImpl>()) b->fold_batchnorm();
  }
}

// One branch of an inception block: a BasicConv2d, a Sequential of them or a max-pool. Held
// with its forward, because the module types differ and the names must stay facenet-pytorch's.
struct Branch {
  std::shared_ptr<nn::Module> module;
  std::function<torch::Tensor(const torch::Tensor&)> forward;
};

Branch branch(BasicConv2d b) {
  return {b.ptr(), [b](const torch::Tensor& x) mutable { return b->forward(x); }};
}

template <class... Convs>
Branch branch(BasicConv2d first, Convs... rest) {
  nn::Sequential s(first, rest...);
  return {s.ptr(), [s](const torch::Tensor& x) mutable { return s->forward(x); }};
}

Branch max_pool() {
  nn::MaxPool2d p(nn::MaxPool2dOptions(3).stride(2));
  return {p.ptr(), [p](const torch::Tensor& x) mutable { return p->forward(x); }};
}

// Registers the branches as branch0, branch1, ... and runs them side by side.
struct Branches {
  void add(nn::Module& parent, std::vector<Branch> list) {
    for (size_t i = 0; i < list.size(); ++i) {
      parent.register_module("branch" + std::to_string(i), list[i].module);
      forwards.push_back(std::move(list[i].forward));
    }
  }
  torch::Tensor forward(const torch::Tensor& x) const {
    std::vector<torch::Tensor> outs;
    for (const auto& f : forwards) outs.push_back(f(x));
    return torch::cat(outs, 1);
  }
  std::vector<std::function<torch::Tensor(const torch::Tensor&)>> forwards;
};

// Block35, Block17 and Block8: parallel branches, concatenated, projected back by a 1x1
// convolution (with bias), scaled and added to the input, then ReLU unless it is the last.
struct InceptionResidualImpl : nn::Module {
  InceptionResidualImpl(std::vector<Branch> list, int64_t concat, int64_t channels, double scale,
                        bool relu)
      : scale(scale), relu(relu) {
    branches.add(*this, std::move(list));
    conv2d = register_module("conv2d", nn::Conv2d(nn::Conv2dOptions(concat, channels, 1)));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto out = torch::add(x, conv2d->forward(branches.forward(x)), scale);
    return relu ? torch::relu_(out) : out;
  }
  Branches branches;
  double scale;
  bool relu;
  nn::Conv2d conv2d{nullptr};
};
TORCH_MODULE(InceptionResidual);

InceptionResidual block35() {
  return InceptionResidual(
      std::vector<Branch>{
          branch(basic(256, 32, 1)), branch(basic(256, 32, 1), basic(32, 32, 3, 1, 1)),
          branch(basic(256, 32, 1), basic(32, 32, 3, 1, 1), basic(32, 32, 3, 1, 1))},
      96, 256, 0.17, true);
}

InceptionResidual block17() {
  return InceptionResidual(
      std::vector<Branch>{branch(basic(896, 128, 1)),
                          branch(basic(896, 128, 1), basic(128, 128, {1, 7}, 1, {0, 3}),
                                 basic(128, 128, {7, 1}, 1, {3, 0}))},
      256, 896, 0.10, true);
}

InceptionResidual block8(double scale, bool relu) {
  return InceptionResidual(
      std::vector<Branch>{branch(basic(1792, 192, 1)),
                          branch(basic(1792, 192, 1), basic(192, 192, {1, 3}, 1, {0, 1}),
                                 basic(192, 192, {3, 1}, 1, {1, 0}))},
      384, 1792, scale, relu);
}

// Mixed_6a and Mixed_7a: strided branches and a max-pool, concatenated (reduction blocks).
struct ReductionImpl : nn::Module {
  explicit ReductionImpl(std::vector<Branch> list) { branches.add(*this, std::move(list)); }
  torch::Tensor forward(const torch::Tensor& x) { return branches.forward(x); }
  Branches branches;
};
TORCH_MODULE(Reduction);

class InceptionResnetV1Impl : public BackboneImpl {
 public:
  explicit InceptionResnetV1Impl(BackboneOptions options) : BackboneImpl(std::move(options)) {
    const auto& o = options_;
    conv2d_1a = register_module("conv2d_1a", basic(o.channels(), 32, 3, 2));
    conv2d_2a = register_module("conv2d_2a", basic(32, 32, 3));
    conv2d_2b = register_module("conv2d_2b", basic(32, 64, 3, 1, 1));
    conv2d_3b = register_module("conv2d_3b", basic(64, 80, 1));
    conv2d_4a = register_module("conv2d_4a", basic(80, 192, 3));
    conv2d_4b = register_module("conv2d_4b", basic(192, 256, 3, 2));
    for (int i = 0; i < 5; ++i) repeat_1->push_back(block35());
    register_module("repeat_1", repeat_1);
    mixed_6a = register_module(
        "mixed_6a", Reduction(std::vector<Branch>{
                        branch(basic(256, 384, 3, 2)),
                        branch(basic(256, 192, 1), basic(192, 192, 3, 1, 1), basic(192, 256, 3, 2)),
                        max_pool()}));
    for (int i = 0; i < 10; ++i) repeat_2->push_back(block17());
    register_module("repeat_2", repeat_2);
    mixed_7a = register_module(
        "mixed_7a", Reduction(std::vector<Branch>{
                        branch(basic(896, 256, 1), basic(256, 384, 3, 2)),
                        branch(basic(896, 256, 1), basic(256, 256, 3, 2)),
                        branch(basic(896, 256, 1), basic(256, 256, 3, 1, 1), basic(256, 256, 3, 2)),
                        max_pool()}));
    for (int i = 0; i < 5; ++i) repeat_3->push_back(block8(0.20, true));
    register_module("repeat_3", repeat_3);
    block8_ = register_module("block8", block8(1.0, false));
    dropout = register_module("dropout", nn::Dropout(o.dropout()));
    last_linear = register_module(
        "last_linear", nn::Linear(nn::LinearOptions(1792, o.embedding_dim()).bias(false)));
    last_bn = register_module(
        "last_bn",
        nn::BatchNorm1d(nn::BatchNorm1dOptions(o.embedding_dim()).eps(1e-3).momentum(0.1)));
  }

  torch::Tensor forward(torch::Tensor x) override {
    x = conv2d_2b->forward(conv2d_2a->forward(conv2d_1a->forward(x)));
    x = torch::max_pool2d(x, 3, 2);
    x = conv2d_4b->forward(conv2d_4a->forward(conv2d_3b->forward(x)));
    x = repeat_2->forward(mixed_6a->forward(repeat_1->forward(x)));
    x = block8_->forward(repeat_3->forward(mixed_7a->forward(x)));
    x = dropout->forward(x.mean({2, 3}));
    x = last_linear->forward(x);
    return folded_ ? x : last_bn->forward(x);
  }

  void fold_batchnorm() override {
    if (folded_) return;
    fold_all(*this);
    // last_bn into last_linear, which has no bias of its own.
    const auto [scale, shift] = batchnorm_affine(last_bn);
    torch::NoGradGuard no_grad;
    nn::Linear fused(
        nn::LinearOptions(last_linear->options.in_features(), last_linear->options.out_features()));
    fused->weight.copy_(last_linear->weight * scale.view({-1, 1}));
    fused->bias.copy_(shift);
    last_linear = replace_module("last_linear", fused);
    folded_ = true;
  }

 private:
  BasicConv2d conv2d_1a{nullptr}, conv2d_2a{nullptr}, conv2d_2b{nullptr}, conv2d_3b{nullptr},
      conv2d_4a{nullptr}, conv2d_4b{nullptr};
  nn::Sequential repeat_1, repeat_2, repeat_3;
  Reduction mixed_6a{nullptr}, mixed_7a{nullptr};
  InceptionResidual block8_{nullptr};
  nn::Dropout dropout{nullptr};
  nn::Linear last_linear{nullptr};
  nn::BatchNorm1d last_bn{nullptr};
  bool folded_ = false;
};

}  // namespace

Backbone make_inception_resnet_v1(const BackboneOptions& options) {
  return std::make_shared<InceptionResnetV1Impl>(options);
}

}  // namespace arcface
