#include "arcface/learner.h"

#include <torch/torch.h>

namespace arcface {

Learner::Learner(Backbone backbone, MarginHead head, LossOptions loss,
                 const OptimizerOptions& optimizer, c10::Device device)
    : backbone_(std::move(backbone)),
      head_(std::move(head)),
      loss_(loss),
      optimizer_type_(optimizer.type),
      device_(device) {
  backbone_->to(device_);
  head_->to(device_);
  std::vector<at::Tensor> parameters = backbone_->parameters();
  for (const auto& p : head_->parameters()) parameters.push_back(p);
  optimizer_ = make_optimizer(parameters, optimizer);
}

void Learner::train(bool on) {
  backbone_->train(on);
  head_->train(on);
}

Learner::Step Learner::step(const at::Tensor& images, const at::Tensor& labels, double lr,
                            uint64_t seed) {
  set_learning_rate(*optimizer_, lr);
  torch::manual_seed(seed);
  auto x = images.to(device_);
  auto y = labels.to(device_);
  auto logits = head_->forward(backbone_->forward(x), y);
  auto loss = classification_loss(logits, y, loss_);
  Step result;
  result.loss = loss.item<double>();
  if (!std::isfinite(result.loss)) return result;  // the caller decides; nothing is updated
  optimizer_->zero_grad();
  loss.backward();
  optimizer_->step();
  result.correct = (logits.argmax(1) == y).sum().item<int64_t>();
  return result;
}

}  // namespace arcface
