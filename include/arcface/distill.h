#pragma once

#include <filesystem>
#include <string>

#include <ATen/core/Tensor.h>

#include "arcface/embedder.h"
#include "arcface/evaluate.h"
#include "arcface/image.h"
#include "arcface/names.h"

namespace arcface {

namespace fs = std::filesystem;

struct DistillOptions {
  double embedding_weight = 1.0;  // 1 - cos(student, teacher)
  double logit_weight = 0.0;      // T^2 KL(teacher || student) over the classes
  double margin_weight = 1.0;     // the margin loss; 0: the teacher alone, labels unused
  double temperature = 4.0;
  HardRule hard_rule = HardRule::Margin;
  double hard_margin = 0.1;
  double hard_fraction = 0.25;
  double hard_weight = 2.0;  // a hard example counts 1 + hard_weight times
};

/// What the teacher says about each training image, computed once before training.
struct TeacherTargets {
  at::Tensor embeddings;  // [N, D] unit descriptors, in the order of the training list
  at::Tensor centres;     // [C, D] unit class centres of the teacher's margin head, if it has one
  double scale = 0;       // the teacher head's logit scale
  std::string description;
};

/// Embeds every image of `source` with the teacher (its own preprocessing; `foreign`
/// describes one that does not describe itself). With a `cache` path, the targets are read
/// from it when it was made from the same teacher file and image list, and written otherwise.
/// The teacher runs in `precision` (ONNX teachers in fp32).
TeacherTargets teacher_targets(const fs::path& teacher, const ForeignModel& foreign,
                               const ImageSource& source, const EvalOptions& options,
                               const std::string& device = "cpu", const fs::path& cache = {},
                               Precision precision = Precision::Fp32);

/// Which examples [N] are hard by options.hard_rule (bool).
/// `cosines` [N, C] are the student's cosines to the class centres (no margin),
/// `example_loss` [N] its margin loss per example.
at::Tensor hard_examples(const at::Tensor& cosines, const at::Tensor& example_loss,
                         const at::Tensor& labels, const DistillOptions& options);

/// Per-example weights [N]: 1 + hard_weight for the hard examples, 1 for the rest.
/// `cosines` [N, C] are the student's cosines to the class centres (no margin),
/// `example_loss` [N] its margin loss per example.
at::Tensor hard_example_weights(const at::Tensor& cosines, const at::Tensor& example_loss,
                                const at::Tensor& labels, const DistillOptions& options);

struct DistillTerms {
  at::Tensor loss;  // the weighted distillation term, a scalar with gradient
  int64_t hard_examples = 0;
};

/// The distillation term for a batch: per example, embedding_weight * (1 - cos(s, t)) plus
/// logit_weight * T^2 * KL(softmax(teacher_logits / T) || softmax(student_logits / T)),
/// averaged with the hard-example weights. `student_logits` are the head's logits without the
/// margin; `teacher_logits` may be undefined when logit_weight is 0, `student_logits` and
/// `example_loss` when hard_rule is none.
DistillTerms distillation_loss(const at::Tensor& student_embeddings,
                               const at::Tensor& student_logits, const at::Tensor& example_loss,
                               const at::Tensor& labels, const at::Tensor& teacher_embeddings,
                               const at::Tensor& teacher_logits, double student_scale,
                               const DistillOptions& options);

}  // namespace arcface
