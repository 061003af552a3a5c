#include "arcface/distill.h"

#include <torch/torch.h>

#include <fstream>

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "arcface/checkpoint.h"
#include "arcface/error.h"
#include "arcface/torch_file.h"
#include "arcface/weights.h"

namespace arcface {

namespace {

// What the cached targets were made from: the same teacher (by its bytes: a copied or
// re-extracted file keeps its cache, an edited one loses it), fed the same way, and the same
// images in the same order, seen the same way.
nlohmann::json cache_key(const fs::path& teacher, const ForeignModel& foreign,
                         const ImageSource& source, FlipMode flip, Precision precision) {
  std::hash<std::string> hash;
  size_t names = 0;
  for (const auto& n : source.names) names = names * 31 + hash(n);
  return {{"teacher_hash", file_hash(teacher)},
          {"teacher_input", foreign.preprocess.to_json()},
          {"teacher_backbone", foreign.backbone},
          {"root", fs::absolute(source.root).string()},
          {"images", source.names.size()},
          {"names_hash", names},
          {"flip", to_string(flip)},
          {"precision", to_string(precision)}};
}

fs::path key_path(const fs::path& cache) { return fs::path(cache.string() + ".json"); }

std::optional<TeacherTargets> read_cache(const fs::path& cache, const nlohmann::json& key) {
  if (cache.empty() || !fs::exists(cache) || !fs::exists(key_path(cache))) return std::nullopt;
  std::ifstream in(key_path(cache));
  const auto stored = nlohmann::json::parse(in, nullptr, false);
  if (!stored.is_object() || stored.value("key", nlohmann::json()) != key) return std::nullopt;
  TeacherTargets t;
  try {
    for (auto& [name, tensor] : read_state_dict_file(cache)) {
      if (name == "embeddings") t.embeddings = tensor;
      if (name == "centres") t.centres = tensor;
    }
  } catch (const std::exception& e) {
    spdlog::warn("Teacher cache '{}' is unreadable ({}); embedding again", cache.string(),
                 e.what());
    return std::nullopt;
  }
  if (!t.embeddings.defined() || t.embeddings.size(0) != key.value("images", int64_t{-1})) {
    return std::nullopt;
  }
  t.scale = stored.value("scale", 0.0);
  t.description = stored.value("description", "") + " (cached in '" + cache.string() + "')";
  return t;
}

void write_cache(const fs::path& cache, const nlohmann::json& key, const TeacherTargets& t) {
  // The key goes last, so a write cut short never pairs an old key with new embeddings.
  fs::remove(key_path(cache));
  StateDict state{{"embeddings", t.embeddings}};
  if (t.centres.defined()) state.emplace_back("centres", t.centres);
  save_state_dict(state, cache);
  const nlohmann::json meta = {{"key", key}, {"scale", t.scale}, {"description", t.description}};
  write_file_atomic(key_path(cache), meta.dump(2) + "\n");
}

}  // namespace

TeacherTargets teacher_targets(const fs::path& teacher, const ForeignModel& foreign,
                               const ImageSource& source, const EvalOptions& options,
                               const std::string& device, const fs::path& cache,
                               Precision precision) {
  if (!fs::exists(teacher)) {
    throw Error(fmt::format("distill.teacher '{}' does not exist", teacher.string()));
  }
  if (teacher.extension() == ".onnx") precision = Precision::Fp32;
  const nlohmann::json key = cache_key(teacher, foreign, source, options.flip, precision);
  if (auto cached = read_cache(cache, key)) return *cached;

  Embedder embedder = Embedder::load(teacher, device, foreign);
  embedder.precision(precision);
  TeacherTargets t;
  t.description = embedder.description();
  t.embeddings = embed_images(embedder, source, options).cpu();
  // Our checkpoints carry the teacher's margin head: its class centres give teacher logits.
  if (teacher.extension() != ".onnx" && read_backbone_weights(teacher).options) {
    const Checkpoint ck = load_checkpoint(teacher);
    for (const auto& [name, tensor] : ck.head_state) {
      if (name == "weight" && ck.head.type() != MarginType::Softmax) {
        t.centres = torch::nn::functional::normalize(
            tensor.to(torch::kFloat), torch::nn::functional::NormalizeFuncOptions().dim(1));
      }
    }
    t.scale = ck.head.scale();
  }
  if (!cache.empty()) write_cache(cache, key, t);
  return t;
}

at::Tensor hard_examples(const at::Tensor& cosines, const at::Tensor& example_loss,
                         const at::Tensor& labels, const DistillOptions& options) {
  const int64_t n = labels.size(0);
  torch::NoGradGuard no_grad;
  at::Tensor hard;
  switch (options.hard_rule) {
    case HardRule::None:
      hard = torch::zeros({n}, torch::kBool);
      break;
    case HardRule::Margin: {
      const auto own = cosines.gather(1, labels.view({-1, 1})).squeeze(1);
      const auto others = cosines.scatter(1, labels.view({-1, 1}), -2.0);
      hard = (own - std::get<0>(others.max(1))) < options.hard_margin;
      break;
    }
    case HardRule::Loss: {
      const auto k = std::max<int64_t>(1, static_cast<int64_t>(options.hard_fraction * n + 0.5));
      const auto top = std::get<1>(example_loss.topk(std::min(k, n)));
      hard = torch::zeros({n}, torch::kBool).to(example_loss.device());
      hard.index_fill_(0, top, true);
      break;
    }
  }
  return hard.to(cosines.device());
}

at::Tensor hard_example_weights(const at::Tensor& cosines, const at::Tensor& example_loss,
                                const at::Tensor& labels, const DistillOptions& options) {
  const auto hard = hard_examples(cosines, example_loss, labels, options);
  return 1.0 + options.hard_weight * hard.to(torch::kFloat);
}

DistillTerms distillation_loss(const at::Tensor& student_embeddings,
                               const at::Tensor& student_logits, const at::Tensor& example_loss,
                               const at::Tensor& labels, const at::Tensor& teacher_embeddings,
                               const at::Tensor& teacher_logits, double student_scale,
                               const DistillOptions& options) {
  namespace F = torch::nn::functional;
  const auto hard =
      options.hard_rule == HardRule::None
          ? torch::zeros({labels.size(0)}, torch::kBool).to(student_embeddings.device())
          : hard_examples(student_logits.detach() / student_scale, example_loss.detach(), labels,
                          options);
  const auto weights = 1.0 + options.hard_weight * hard.to(torch::kFloat);
  auto per_example = torch::zeros_like(weights);
  if (options.embedding_weight > 0) {
    const auto s = F::normalize(student_embeddings, F::NormalizeFuncOptions().dim(1));
    const auto t = F::normalize(teacher_embeddings, F::NormalizeFuncOptions().dim(1));
    per_example = per_example + options.embedding_weight * (1 - (s * t).sum(1));
  }
  if (options.logit_weight > 0) {
    if (!teacher_logits.defined()) {
      throw Error(
          "distill.logit_weight > 0 needs a teacher with a margin head (one of our "
          "checkpoints); this teacher gives embeddings only");
    }
    const double T = options.temperature;
    const auto p_t = torch::softmax(teacher_logits / T, 1);
    const auto log_p_s = torch::log_softmax(student_logits / T, 1);
    const auto kl = (p_t * (torch::log(p_t.clamp_min(1e-12)) - log_p_s)).sum(1);
    per_example = per_example + options.logit_weight * T * T * kl;
  }
  DistillTerms terms;
  terms.loss = (weights * per_example).sum() / weights.sum();
  terms.hard_examples = hard.sum().item<int64_t>();
  return terms;
}

}  // namespace arcface
