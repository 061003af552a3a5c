#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include <torch/optim/optimizer.h>

#include "arcface/backbone.h"
#include "arcface/distill.h"
#include "arcface/distributed.h"
#include "arcface/head.h"
#include "arcface/loss.h"
#include "arcface/loss_scaler.h"
#include "arcface/optim.h"
#include "arcface/system.h"

namespace arcface {

/// A backbone, its margin head, the loss and the optimizer: one optimisation step of
/// margin-loss training. The trainer drives it over epochs; the benchmarks time it alone.
class Learner {
 public:
  Learner(Backbone backbone, MarginHead head, LossOptions loss, const OptimizerOptions& optimizer,
          c10::Device device);

  /// Adds a distillation term to the loss of every step; each step then needs the teacher's
  /// embeddings of its images. `teacher_centres` [C, D] (unit, may be undefined) and
  /// `teacher_scale` give the teacher's logits for the KL term.
  void distill(const DistillOptions& options, at::Tensor teacher_centres, double teacher_scale);

  /// Trains as one rank of several: rank 0's weights are copied to every rank now, and each
  /// step's gradients and loss are averaged across the ranks.
  void data_parallel(std::shared_ptr<DataParallel> ranks);
  /// BatchNorm layers keep using and keeping their running statistics while training
  /// (fine-tuning on small batches); the rest of the network trains as usual.
  void freeze_batchnorm(bool on) { freeze_bn_ = on; }
  /// The backbone's forward pass in bf16 or fp16 (mixed precision) or fp32; Auto is resolved
  /// here. Fp16 (CUDA only) turns on loss scaling with the default options.
  void precision(Precision precision);
  Precision precision() const { return precision_; }
  /// Scales the loss before backward and skips steps whose gradients overflow (fp16 needs
  /// it; in fp32 it changes nothing but the time). nullopt turns it off.
  void loss_scaling(std::optional<LossScalerOptions> options);
  /// Convolution weights and each batch in NHWC (channels-last) memory: the layout cuDNN's
  /// tensor-core kernels run in. The CPU kernels take either.
  void channels_last(bool on);
  bool channels_last() const { return channels_last_; }
  /// The scaler in use, or null.
  LossScaler* loss_scaler() { return scaler_ ? &*scaler_ : nullptr; }

  struct Step {
    double loss = 0;          // batch mean, distillation included
    double distill_loss = 0;  // the distillation term alone
    int64_t hard_examples = 0;
    int64_t correct = 0;   // arg-max of the margin logits equal to the label (seed 000's accuracy)
    bool skipped = false;  // the scaled gradients overflowed: no update, a smaller scale
  };
  /// Forward, loss, backward and update on one batch at learning rate `lr`. `seed` seeds the
  /// random draws of the step (dropout), so a step can be replayed exactly. `teacher` [N, D]:
  /// the teacher's embeddings of the batch, when distilling.
  Step step(const at::Tensor& images, const at::Tensor& labels, double lr, uint64_t seed,
            const at::Tensor& teacher = {});

  Backbone& backbone() { return backbone_; }
  MarginHead& head() { return head_; }
  torch::optim::Optimizer& optimizer() { return *optimizer_; }
  const std::string& optimizer_type() const { return optimizer_type_; }
  c10::Device device() const { return device_; }
  void train(bool on = true);

 private:
  Backbone backbone_;
  MarginHead head_;
  LossOptions loss_;
  std::string optimizer_type_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  c10::Device device_;
  std::optional<DistillOptions> distill_;
  std::shared_ptr<DataParallel> ranks_;
  bool freeze_bn_ = false;
  bool channels_last_ = false;
  Precision precision_ = Precision::Fp32;
  std::optional<LossScaler> scaler_;
  at::Tensor teacher_centres_;
  double teacher_scale_ = 0;
};

}  // namespace arcface
