#include "arcface/learner.h"

#include <torch/torch.h>

#include <spdlog/fmt/fmt.h>

#include "arcface/error.h"
#include "util/autocast.h"

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
  if (!freeze_bn_) return;
  for (const auto& m : backbone_->modules(/*include_self=*/false)) {
    if (m->as<torch::nn::BatchNorm2d>() || m->as<torch::nn::BatchNorm1d>()) m->eval();
  }
}

void Learner::data_parallel(std::shared_ptr<DataParallel> ranks) {
  ranks_ = std::move(ranks);
  ranks_->broadcast(*backbone_);
  ranks_->broadcast(*head_);
  // Frozen tensors (IR-ResNet's fixed feature-BN scale) have no gradient to average.
  std::vector<at::Tensor> parameters;
  for (const auto* module : {static_cast<torch::nn::Module*>(backbone_.get()),
                             static_cast<torch::nn::Module*>(head_.get())}) {
    for (const auto& p : module->parameters()) {
      if (p.requires_grad()) parameters.push_back(p);
    }
  }
  ranks_->attach(parameters);
}

void Learner::precision(Precision precision) {
  precision_ = resolve_precision(precision, device_.is_cuda());
  if (precision_ == Precision::Fp16 && !scaler_) scaler_.emplace();
}

void Learner::channels_last(bool on) {
  channels_last_ = on;
  const auto format = on ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  torch::NoGradGuard no_grad;
  for (auto& p : backbone_->parameters()) {
    if (p.dim() == 4) p.set_data(p.data().contiguous(format));
  }
}

void Learner::loss_scaling(std::optional<LossScalerOptions> options) {
  if (options) {
    scaler_.emplace(*options);
  } else {
    scaler_.reset();
  }
}

void Learner::distill(const DistillOptions& options, at::Tensor teacher_centres,
                      double teacher_scale) {
  if (options.logit_weight > 0 && !teacher_centres.defined()) {
    throw Error(
        "distill.logit_weight > 0 needs a teacher with a margin head (one of our "
        "checkpoints); this teacher gives embeddings only: set distill.logit_weight to 0");
  }
  if (options.logit_weight > 0 && teacher_centres.defined() &&
      teacher_centres.size(0) != head_->options().num_classes()) {
    throw Error(
        fmt::format("the teacher's head has {} classes, the student's {}: the KL term "
                    "needs the same classes (or set distill.logit_weight to 0)",
                    teacher_centres.size(0), head_->options().num_classes()));
  }
  distill_ = options;
  // Without the margin loss the head gets no gradient; data parallel then leaves it alone.
  if (options.margin_weight == 0) {
    for (auto& p : head_->parameters()) p.set_requires_grad(false);
  }
  teacher_centres_ = teacher_centres.defined() ? teacher_centres.to(device_) : teacher_centres;
  teacher_scale_ = teacher_scale;
}

Learner::Step Learner::step(const at::Tensor& images, const at::Tensor& labels, double lr,
                            uint64_t seed, const at::Tensor& teacher) {
  set_learning_rate(*optimizer_, lr);
  torch::manual_seed(seed);
  // Page-locked batches go to the GPU by DMA, without a staging copy; is_pinned() is asked
  // only then, as it would start CUDA on a CPU run of a CUDA libtorch.
  const bool pinned = device_.is_cuda() && images.is_pinned();
  auto x = images.to(device_, /*non_blocking=*/pinned);
  if (channels_last_) x = x.contiguous(at::MemoryFormat::ChannelsLast);
  auto y = labels.to(device_, /*non_blocking=*/pinned && labels.is_pinned());
  at::Tensor embeddings;
  {
    AutocastGuard autocast(precision_, device_);
    embeddings = backbone_->forward(x);
  }
  // The margin head and the loss in fp32: cosines near 1 need its precision.
  embeddings = embeddings.to(torch::kFloat);
  Step result;
  at::Tensor loss, logits;
  if (distill_ && !teacher.defined()) {
    throw Error("a distillation step needs the teacher's embeddings");
  }
  if (!distill_) {
    logits = head_->forward(embeddings, y);
    loss = classification_loss(logits, y, loss_);
  } else if (distill_->margin_weight == 0) {
    const auto terms =
        distillation_loss(embeddings, {}, {}, y, teacher.to(device_), {}, 0, *distill_);
    loss = terms.loss;
    result.distill_loss = terms.loss.item<double>();
  } else {
    const auto t = teacher.to(device_);
    logits = head_->forward(embeddings, y);
    const auto example_loss = example_losses(logits, y, loss_);
    at::Tensor teacher_logits;
    if (teacher_centres_.defined() && distill_->logit_weight > 0) {
      teacher_logits = teacher_scale_ * torch::mm(t, teacher_centres_.t());
    }
    const auto terms = distillation_loss(embeddings, head_->logits(embeddings), example_loss, y, t,
                                         teacher_logits, head_->options().scale(), *distill_);
    loss = distill_->margin_weight * example_loss.mean() + terms.loss;
    result.distill_loss = terms.loss.item<double>();
    result.hard_examples = terms.hard_examples;
  }
  result.loss = loss.item<double>();
  // A bad loss stops the step before any update; the caller decides. With several ranks all
  // of them must take that decision together, so it waits for the averaged loss.
  if (!ranks_ && !std::isfinite(result.loss)) return result;
  optimizer_->zero_grad();
  (scaler_ ? scaler_->scale(loss) : loss).backward();
  if (ranks_) {
    ranks_->finish_gradients();
    const auto sums = ranks_->sum({result.loss, result.distill_loss});
    result.loss = sums[0] / ranks_->world_size();
    result.distill_loss = sums[1] / ranks_->world_size();
    if (!std::isfinite(result.loss)) return result;
  }
  if (logits.defined()) result.correct = (logits.argmax(1) == y).sum().item<int64_t>();
  if (scaler_) {
    // After the all-reduce every rank holds the same gradients, so all of them skip together.
    std::vector<at::Tensor> parameters;
    for (const auto& group : optimizer_->param_groups()) {
      parameters.insert(parameters.end(), group.params().begin(), group.params().end());
    }
    const bool finite = scaler_->unscale(parameters);
    scaler_->update(finite);
    if (!finite) {
      result.skipped = true;
      return result;
    }
  }
  optimizer_->step();
  return result;
}

}  // namespace arcface
