#include "arcface/head.h"

#include <torch/nn/functional/linear.h>
#include <torch/nn/functional/normalization.h>
#include <torch/nn/init.h>

#include <cmath>

#include <spdlog/fmt/fmt.h>

#include "arcface/error.h"

namespace arcface {

namespace F = torch::nn::functional;

MarginHeadImpl::MarginHeadImpl(MarginHeadOptions options) : options_(std::move(options)) {
  auto& o = options_;
  if (o.margin() < 0) o.margin(o.type() == MarginType::Cos ? 0.4 : 0.5);
  if (o.type() == MarginType::Arc && o.margin() >= M_PI / 2) {
    throw Error(fmt::format("ArcFace margin {} must be below pi/2", o.margin()));
  }
  weight = register_parameter("weight", torch::empty({o.num_classes(), o.embedding_dim()}));
  if (o.type() == MarginType::Softmax) {
    // Same initialisation as torch.nn.Linear.
    auto linear = torch::nn::Linear(o.embedding_dim(), o.num_classes());
    weight.set_data(linear->weight.detach().clone());
    bias = register_parameter("bias", linear->bias.detach().clone());
  } else {
    torch::nn::init::xavier_uniform_(weight);
  }
}

torch::Tensor MarginHeadImpl::logits(const torch::Tensor& embeddings) {
  if (options_.type() == MarginType::Softmax) return F::linear(embeddings, weight, bias);
  auto cosine = F::linear(F::normalize(embeddings, F::NormalizeFuncOptions().dim(1)),
                          F::normalize(weight, F::NormalizeFuncOptions().dim(1)));
  return cosine * options_.scale();
}

torch::Tensor MarginHeadImpl::forward(const torch::Tensor& embeddings,
                                      const torch::Tensor& labels) {
  const auto& o = options_;
  if (o.type() == MarginType::Softmax) return logits(embeddings);
  auto cosine = F::linear(F::normalize(embeddings, F::NormalizeFuncOptions().dim(1)),
                          F::normalize(weight, F::NormalizeFuncOptions().dim(1)));
  auto index = labels.view({-1, 1});
  // The margin only touches each sample's target logit, so compute it on that column alone.
  auto target = cosine.gather(1, index);
  torch::Tensor with_margin;
  if (o.type() == MarginType::Cos) {
    with_margin = target - o.margin();
  } else {
    const double cos_m = std::cos(o.margin()), sin_m = std::sin(o.margin());
    // Clamped away from zero: the derivative of sqrt is infinite at 0 (cos = +-1).
    auto sine = torch::sqrt((1.0 - target * target).clamp(1e-12, 1.0));
    auto phi = target * cos_m - sine * sin_m;  // cos(theta + m)
    if (o.easy_margin()) {
      with_margin = torch::where(target > 0, phi, target);
    } else {
      // Past theta = pi - m, cos(theta + m) stops decreasing; use the CosFace-like fallback
      // cos(theta) - m*sin(m) so the logit keeps falling as theta grows.
      const double threshold = std::cos(M_PI - o.margin());
      const double fallback = std::sin(M_PI - o.margin()) * o.margin();
      with_margin = torch::where(target > threshold, phi, target - fallback);
    }
  }
  return cosine.scatter(1, index, with_margin) * o.scale();
}

}  // namespace arcface
