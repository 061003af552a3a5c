#include "arcface/weights.h"

#include <algorithm>

#include <spdlog/fmt/fmt.h>
#include <spdlog/fmt/ranges.h>

#include "arcface/error.h"
#include "arcface/torch_file.h"

namespace arcface {

namespace {

// Drops the "module." that torch.nn.DataParallel puts before every name.
StateDict without_module_prefix(StateDict state) {
  const std::string prefix = "module.";
  bool all = !state.empty();
  for (const auto& [name, t] : state) all = all && name.rfind(prefix, 0) == 0;
  if (all) {
    for (auto& entry : state) entry.first = entry.first.substr(prefix.size());
  }
  return state;
}

// facenet-pytorch's weights carry the classifier they were trained with (`logits`); it is not
// part of the embedding network.
void drop_classifier(BackboneWeights& w) {
  const auto before = w.state.size();
  w.state.erase(std::remove_if(w.state.begin(), w.state.end(),
                               [](const auto& e) { return e.first.rfind("logits.", 0) == 0; }),
                w.state.end());
  if (w.state.size() != before) w.description += " (its classifier 'logits' left out)";
}

BackboneWeights read_weights_file(const std::filesystem::path& path) {
  const Py file = read_torch_file(path);
  const std::string quoted = "'" + path.string() + "'";
  BackboneWeights w;
  if (file->kind != PyValue::Kind::Dict) {
    throw Error(fmt::format("{} holds a {}, not model weights", quoted, file->type_name()));
  }
  if (file->get("format") && file->get("backbone_options")) {  // ours: read it fully
    const Checkpoint c = load_checkpoint(path);
    w.state = c.backbone_state;
    w.head = c.head_state;
    w.backbone = c.backbone.name();
    w.options = c.backbone;
    w.preprocess = c.preprocess;
    w.description = fmt::format("{} checkpoint {} (epoch {})", c.backbone.name(), quoted, c.epoch);
    return w;
  }
  for (const std::string key : {"backbone_state_dict", "state_dict", "model"}) {
    const Py inner = file->get(key);
    if (!inner || inner->kind != PyValue::Kind::Dict) continue;
    w.state =
        without_module_prefix(to_state_dict(inner, fmt::format("{} entry '{}'", quoted, key)));
    if (const Py head = file->get("arcface_state_dict")) {
      if (head->kind != PyValue::Kind::Dict) {
        throw Error(fmt::format("{} entry 'arcface_state_dict' holds a {}, not a state dict",
                                quoted, head->type_name()));
      }
      w.head = without_module_prefix(to_state_dict(head, quoted + " entry 'arcface_state_dict'"));
    }
    const Py name = file->get("backbone");
    if (name && name->kind == PyValue::Kind::String) w.backbone = name->text;
    std::vector<std::string> facts;
    if (w.backbone) facts.push_back(*w.backbone);
    const Py epoch = file->get("epoch");
    if (epoch && epoch->kind == PyValue::Kind::Int)
      facts.push_back(fmt::format("epoch {}", epoch->integer));
    w.description = fmt::format(
        "{} {}{}", key == "backbone_state_dict" ? "seed 002-style checkpoint" : "checkpoint",
        quoted, facts.empty() ? "" : fmt::format(" ({})", fmt::join(facts, ", ")));
    return w;
  }
  for (const auto& [key, value] : file->entries) {
    if (value->kind != PyValue::Kind::Tensor) {
      std::vector<std::string> keys;
      for (const auto& entry : file->entries) keys.push_back(entry.first->text);
      throw Error(fmt::format(
          "{} is neither a state dict nor a checkpoint with 'backbone_state_dict', 'state_dict' "
          "or 'model' (its keys: {})",
          quoted, fmt::format("{}", fmt::join(keys, ", ")).substr(0, 300)));
    }
  }
  w.state = without_module_prefix(to_state_dict(file, quoted));
  w.description = fmt::format("state dict {}", quoted);
  return w;
}

}  // namespace

BackboneWeights read_backbone_weights(const std::filesystem::path& path) {
  BackboneWeights w = read_weights_file(path);
  drop_classifier(w);
  return w;
}

BackboneOptions backbone_for(const BackboneWeights& weights, const std::string& backbone,
                             const Preprocess& input, const std::filesystem::path& path) {
  if (weights.options) return *weights.options;
  std::string name;
  if (weights.backbone) {
    name = canonical_backbone_name(*weights.backbone);
    if (!backbone.empty() && canonical_backbone_name(backbone) != name) {
      throw Error(fmt::format("'{}' holds weights for {} but --backbone says {}", path.string(),
                              name, backbone));
    }
  } else if (backbone.empty()) {
    throw Error(fmt::format(
        "'{}' is a plain state dict that does not name its network: give it with --backbone "
        "(one of {})",
        path.string(), fmt::join(backbone_names(), ", ")));
  } else {
    name = canonical_backbone_name(backbone);
  }
  return BackboneOptions(name).input_size(input.input_size).channels(input.channels());
}

}  // namespace arcface
