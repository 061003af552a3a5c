#pragma once

// The named choices of configs and command lines, each with one table of names: parsing,
// printing and the config's checks all read it. Torch-free, so the config is checked at load.
#include <cstdint>
#include <string>
#include <vector>

namespace arcface {

/// Channel order of decoded images and network input.
enum class Color { Gray, RGB, BGR };
/// How a face's descriptor uses its mirror image.
enum class FlipMode {
  None,    // the face alone
  Concat,  // [f(x), f(mirror x)] (seed 000)
  Sum,     // f(x) + f(mirror x) (insightface)
};
/// The arithmetic of convolutions and matrix products. Weights, the margin head, the loss and
/// the optimizer stay fp32 either way (mixed precision, as torch.autocast does it).
enum class Precision {
  Auto,  // bf16 where the CPU or GPU computes it natively (checked at run time); fp16 on
         // older GPUs, fp32 on older CPUs
  Fp32,
  Bf16,
  Fp16,  // CUDA only; training scales the loss (fp16 gradients underflow otherwise)
};
enum class MarginType {
  Arc,      // ArcFace: s * cos(theta + m) for the target class (seed 000's arc_margin)
  Cos,      // CosFace: s * (cos(theta) - m) for the target class (add_margin)
  Softmax,  // a plain linear classifier with bias (seed 000's "softmax")
};
enum class LossType {
  CrossEntropy,
  Focal,  // mean over samples of (1 - p)^gamma * -log p, p the target-class probability
};
/// Which training images count as hard in distillation.
enum class HardRule {
  None,    // every example alike
  Margin,  // the student's cosine to its own class centre beats the best other one by little
  Loss,    // the batch's highest margin-loss fraction
};
enum class PairsFormat {
  Auto,  // detected from the file
  Lfw,   // official LFW View 2 pairs.txt: header "10 300", then folds of same/different lines
  List,  // seed 000's lfw_test_pair.txt: "a/a_0001.jpg b/b_0002.jpg 1|0"
  Bin,   // insightface .bin: pickled JPEG bytes and same/different flags
  Cfp,   // CFP's Protocol/Split/FF or FP folder: ten folds of same.txt and diff.txt "i,j" lines
};
enum class SelectOrder {
  Name,    // the first K qualified people in name order (reproduces seed 000's counts)
  Count,   // the K people with most images, ties by name
  Random,  // K people drawn by the seed; with one seed a smaller K draws a subset of a larger
};
enum class LrScheduleType { Step, MultiStep, Cosine };
enum class OptimizerType { Sgd, Adam };
/// A damaged training image: stop naming it, or train without it.
enum class BadImagePolicy { Error, Skip };

/// Parses a name of an enum above; an unknown name is an Error listing the known ones.
/// Aliases are accepted (grey, arcface, cosface, focal, ...).
template <class E>
E parse_name(const std::string& name);
/// The name of a value, as configs and reports write it.
template <class E>
std::string name_of(E value);
/// "rgb, bgr or gray": the names of every value, for messages.
template <class E>
std::string expected_names();

inline Color parse_color(const std::string& name) { return parse_name<Color>(name); }
inline FlipMode parse_flip_mode(const std::string& name) { return parse_name<FlipMode>(name); }
inline Precision parse_precision(const std::string& name) { return parse_name<Precision>(name); }
inline MarginType parse_margin_type(const std::string& name) {
  return parse_name<MarginType>(name);
}
inline LossType parse_loss_type(const std::string& name) { return parse_name<LossType>(name); }
inline HardRule parse_hard_rule(const std::string& name) { return parse_name<HardRule>(name); }
inline PairsFormat parse_pairs_format(const std::string& name) {
  return parse_name<PairsFormat>(name);
}
inline SelectOrder parse_select_order(const std::string& name) {
  return parse_name<SelectOrder>(name);
}

inline std::string to_string(Color v) { return name_of(v); }
inline std::string to_string(FlipMode v) { return name_of(v); }
inline std::string to_string(Precision v) { return name_of(v); }
inline std::string to_string(MarginType v) { return name_of(v); }
inline std::string to_string(LossType v) { return name_of(v); }
inline std::string to_string(HardRule v) { return name_of(v); }
inline std::string to_string(PairsFormat v) { return name_of(v); }
inline std::string to_string(SelectOrder v) { return name_of(v); }
inline std::string to_string(LrScheduleType v) { return name_of(v); }
inline std::string to_string(OptimizerType v) { return name_of(v); }
inline std::string to_string(BadImagePolicy v) { return name_of(v); }

/// What the toolkit knows of a backbone before building it.
struct BackboneEntry {
  std::string name;    // canonical: resnet_face18, iresnet18, mobilefacenet, ...
  std::string family;  // resnet_face, iresnet, mobilefacenet, inception_resnet_v1
  int depth = 0;
  double default_dropout = 0;
  int64_t min_input = 32;  // smallest input size; every size is a multiple of 16
};

/// The entry of a backbone name or alias (resnet18 = resnet_face18, ir_resnet18 = iresnet18,
/// mbf = mobilefacenet, ...); an unknown name is an Error listing the known ones.
const BackboneEntry& backbone_entry(const std::string& name);
std::string canonical_backbone_name(const std::string& name);
/// Every canonical backbone name.
std::vector<std::string> backbone_names();
/// Why `input_size` does not suit the backbone (a multiple of 16, at least its min_input), or
/// "" when it does.
std::string backbone_input_problem(const std::string& name, int64_t input_size);

/// The offset of the first byte of `text` that is not valid UTF-8 (overlong forms, surrogates
/// and code points past U+10FFFF included), or -1 when all of it is. Text that goes into JSON
/// (configs, reports, gallery names) must be valid UTF-8.
int64_t invalid_utf8_at(const std::string& text);

}  // namespace arcface
