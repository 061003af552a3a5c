#include "arcface/backbone.h"

#include <ATen/record_function.h>
#include <torch/nn/init.h>

#include <spdlog/fmt/fmt.h>
#include <spdlog/fmt/ranges.h>

#include "arcface/error.h"
#include "models/blocks.h"

namespace arcface {

Backbone make_backbone(const BackboneOptions& requested) {
  BackboneOptions options = requested;
  const BackboneEntry& entry = backbone_entry(requested.name());
  options.name(entry.name);
  if (options.dropout() < 0) options.dropout(entry.default_dropout);
  if (options.channels() != 1 && options.channels() != 3) {
    throw Error(fmt::format("backbone '{}': channels must be 1 or 3, got {}", options.name(),
                            options.channels()));
  }
  const std::string input = backbone_input_problem(entry.name, options.input_size());
  if (!input.empty()) throw Error("backbone " + input);
  if (options.use_se() && entry.family != "resnet_face") {
    throw Error(
        fmt::format("backbone '{}' has no SE option (only resnet_face has)", options.name()));
  }
  if (entry.family == "resnet_face") return make_resnet_face(options, entry.depth);
  if (entry.family == "iresnet") return make_iresnet(options, entry.depth);
  if (entry.family == "inception_resnet_v1") return make_inception_resnet_v1(options);
  return make_mobilefacenet(options);
}

void init_xavier(torch::nn::Module& module) {
  for (auto& m : module.modules(false)) {
    if (auto* conv = m->as<torch::nn::Conv2d>()) {
      torch::nn::init::xavier_normal_(conv->weight);
    } else if (auto* linear = m->as<torch::nn::Linear>()) {
      torch::nn::init::xavier_normal_(linear->weight);
    }
  }
}

torch::nn::Conv2d folded_conv(const torch::nn::Conv2d& conv, const at::Tensor& scale,
                              const at::Tensor& shift) {
  torch::NoGradGuard no_grad;
  const auto& o = conv->options;
  torch::nn::Conv2d fused(
      torch::nn::Conv2dOptions(o.in_channels(), o.out_channels(), o.kernel_size())
          .stride(o.stride())
          .padding(o.padding())
          .dilation(o.dilation())
          .groups(o.groups())
          .bias(true));
  fused->weight.copy_(conv->weight * scale.view({-1, 1, 1, 1}));
  fused->bias.copy_(conv->bias.defined() ? conv->bias * scale + shift : shift);
  return fused;
}

void fold_into_conv(torch::nn::Module& parent, const std::string& name, torch::nn::Conv2d& conv,
                    const at::Tensor& scale, const at::Tensor& shift) {
  conv = parent.replace_module(name, folded_conv(conv, scale, shift));
}

void fold_into_linear(torch::nn::Linear& fc, const std::pair<at::Tensor, at::Tensor>& input_affine,
                      const std::pair<at::Tensor, at::Tensor>& output_affine) {
  torch::NoGradGuard no_grad;
  const int64_t repeat = fc->weight.size(1) / input_affine.first.numel();
  const auto in_scale = input_affine.first.repeat_interleave(repeat);
  const auto in_shift = input_affine.second.repeat_interleave(repeat);
  // W (a x + b) + c = (W a) x + (W b + c); then s (.) + t.
  auto bias = torch::mv(fc->weight, in_shift) + fc->bias;
  fc->weight.mul_(in_scale.view({1, -1}));
  fc->weight.mul_(output_affine.first.view({-1, 1}));
  fc->bias.copy_(bias * output_affine.first + output_affine.second);
}

torch::nn::Sequential fold_downsample(const torch::nn::Sequential& downsample) {
  auto conv =
      torch::nn::Conv2d(std::dynamic_pointer_cast<torch::nn::Conv2dImpl>(downsample->ptr(0)));
  auto bn = torch::nn::BatchNorm2d(
      std::dynamic_pointer_cast<torch::nn::BatchNorm2dImpl>(downsample->ptr(1)));
  const auto [scale, shift] = batchnorm_affine(bn);
  return torch::nn::Sequential(folded_conv(conv, scale, shift));
}

namespace {

// Counts convolution and matrix-product MACs of the operators run on this thread.
thread_local double counted_macs = 0;

std::unique_ptr<at::ObserverContext> count_macs(const at::RecordFunction& fn) {
  const std::string name = fn.name();
  const auto inputs = fn.inputs();
  if (name == "aten::convolution" && inputs.size() >= 9) {
    const auto in = inputs[0].toTensor().sizes();
    const auto w = inputs[1].toTensor().sizes();
    const auto stride = inputs[3].toIntVector(), padding = inputs[4].toIntVector(),
               dilation = inputs[5].toIntVector();
    double out_pixels = 1;
    for (size_t d = 0; d < 2; ++d) {
      out_pixels *= (in[2 + d] + 2 * padding[d] - dilation[d] * (w[2 + d] - 1) - 1) / stride[d] + 1;
    }
    counted_macs += static_cast<double>(in[0]) * out_pixels * w[0] * w[1] * w[2] * w[3];
  } else if ((name == "aten::addmm" || name == "aten::mm") && inputs.size() >= 2) {
    const int64_t at = name == "aten::addmm" ? 1 : 0;
    const auto a = inputs[at].toTensor().sizes(), b = inputs[at + 1].toTensor().sizes();
    counted_macs += static_cast<double>(a[0]) * a[1] * b[1];
  }
  return nullptr;
}

}  // namespace

double forward_macs(BackboneImpl& backbone) {
  const bool was_training = backbone.is_training();
  backbone.eval();
  const auto& o = backbone.options();
  const auto param = backbone.parameters().front();
  auto x = torch::zeros({1, o.channels(), o.input_size(), o.input_size()}, param.options());
  counted_macs = 0;
  {
    torch::NoGradGuard no_grad;
    auto handle = at::addThreadLocalCallback(at::RecordFunctionCallback(count_macs)
                                                 .needsInputs(true)
                                                 .scopes({at::RecordScope::FUNCTION}));
    backbone.forward(x);
    at::removeCallback(handle);
  }
  backbone.train(was_training);
  return counted_macs;
}

}  // namespace arcface
