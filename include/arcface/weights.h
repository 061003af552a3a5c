#pragma once

// Backbone weights from any file a user is likely to bring: our checkpoints, and what Python
// projects save with torch.save (zip or legacy format).
#include <filesystem>
#include <optional>
#include <string>

#include "arcface/backbone.h"
#include "arcface/checkpoint.h"
#include "arcface/image.h"

namespace arcface {

struct BackboneWeights {
  StateDict state;
  /// The architecture, when the file names it (ours; seed 002's `backbone` key).
  std::optional<std::string> backbone;
  /// The preprocessing, when the file records it (ours only).
  std::optional<Preprocess> preprocess;
  /// Our checkpoint's full backbone options.
  std::optional<BackboneOptions> options;
  /// The margin head's weights, when the file has them (ours; seed 002's
  /// `arcface_state_dict`): fine-tuning on the same classes can start from them.
  StateDict head;
  /// "seed 002 checkpoint 'x.pth' (epoch 24)", for logs and reports.
  std::string description;
};

/// Reads backbone weights from one of our checkpoints; a seed 002-style checkpoint dictionary
/// (`backbone`, `backbone_state_dict`, `arcface_state_dict`, `epoch`, ...); a dictionary
/// holding the weights under `state_dict` or `model`; or a plain state dict (insightface
/// IR-ResNet, seed 000 resnet_face18, facenet-pytorch). A `module.` prefix (DataParallel) is
/// dropped. Errors name the file and what it holds instead.
BackboneWeights read_backbone_weights(const std::filesystem::path& path);

/// The backbone a file's weights are for: the file's own options if it is ours; otherwise
/// the architecture it names or, for a plain state dict, `backbone` (which must agree with a
/// name the file gives), with `input` for the input size and channels.
BackboneOptions backbone_for(const BackboneWeights& weights, const std::string& backbone,
                             const Preprocess& input, const std::filesystem::path& path);

}  // namespace arcface
