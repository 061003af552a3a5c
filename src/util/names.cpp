#include "arcface/names.h"

#include <algorithm>
#include <utility>

#include <spdlog/fmt/fmt.h>

#include "arcface/error.h"

namespace arcface {

namespace {

/// An enum's names: the first of each value is how it is written, the rest are aliases.
template <class E>
struct NameTable {
  const char* what;
  std::vector<std::pair<E, std::vector<std::string>>> values;
};

template <class E>
const NameTable<E>& table();

template <>
const NameTable<Color>& table() {
  static const NameTable<Color> t{
      "colour", {{Color::RGB, {"rgb"}}, {Color::BGR, {"bgr"}}, {Color::Gray, {"gray", "grey"}}}};
  return t;
}
template <>
const NameTable<FlipMode>& table() {
  static const NameTable<FlipMode> t{
      "flip mode",
      {{FlipMode::Concat, {"concat"}}, {FlipMode::Sum, {"sum"}}, {FlipMode::None, {"none"}}}};
  return t;
}
template <>
const NameTable<Precision>& table() {
  static const NameTable<Precision> t{"precision",
                                      {{Precision::Auto, {"auto"}},
                                       {Precision::Fp32, {"fp32"}},
                                       {Precision::Bf16, {"bf16"}},
                                       {Precision::Fp16, {"fp16"}}}};
  return t;
}
template <>
const NameTable<MarginType>& table() {
  static const NameTable<MarginType> t{"margin head",
                                       {{MarginType::Arc, {"arc_margin", "arcface", "arc"}},
                                        {MarginType::Cos, {"add_margin", "cosface", "cos"}},
                                        {MarginType::Softmax, {"softmax", "linear"}}}};
  return t;
}
template <>
const NameTable<LossType>& table() {
  static const NameTable<LossType> t{
      "loss",
      {{LossType::Focal, {"focal_loss", "focal"}},
       {LossType::CrossEntropy, {"cross_entropy", "ce", "softmax"}}}};
  return t;
}
template <>
const NameTable<HardRule>& table() {
  static const NameTable<HardRule> t{
      "hard-example rule",
      {{HardRule::Margin, {"margin"}}, {HardRule::Loss, {"loss"}}, {HardRule::None, {"none"}}}};
  return t;
}
template <>
const NameTable<PairsFormat>& table() {
  static const NameTable<PairsFormat> t{"pairs format",
                                        {{PairsFormat::Auto, {"auto"}},
                                         {PairsFormat::Lfw, {"lfw"}},
                                         {PairsFormat::List, {"list"}},
                                         {PairsFormat::Bin, {"bin"}},
                                         {PairsFormat::Cfp, {"cfp"}}}};
  return t;
}
template <>
const NameTable<SelectOrder>& table() {
  static const NameTable<SelectOrder> t{"selection order",
                                        {{SelectOrder::Name, {"name"}},
                                         {SelectOrder::Count, {"count"}},
                                         {SelectOrder::Random, {"random"}}}};
  return t;
}
template <>
const NameTable<LrScheduleType>& table() {
  static const NameTable<LrScheduleType> t{"learning-rate schedule",
                                           {{LrScheduleType::Step, {"step"}},
                                            {LrScheduleType::MultiStep, {"multistep"}},
                                            {LrScheduleType::Cosine, {"cosine"}}}};
  return t;
}
template <>
const NameTable<OptimizerType>& table() {
  static const NameTable<OptimizerType> t{
      "optimizer", {{OptimizerType::Sgd, {"sgd"}}, {OptimizerType::Adam, {"adam"}}}};
  return t;
}
template <>
const NameTable<BadImagePolicy>& table() {
  static const NameTable<BadImagePolicy> t{
      "bad-image policy", {{BadImagePolicy::Error, {"error"}}, {BadImagePolicy::Skip, {"skip"}}}};
  return t;
}

std::string or_list(const std::vector<std::string>& names) {
  if (names.size() < 2) return names.empty() ? "" : names[0];
  std::vector<std::string> head(names.begin(), names.end() - 1);
  return fmt::format("{} or {}", fmt::join(head, ", "), names.back());
}

}  // namespace

template <class E>
std::string expected_names() {
  std::vector<std::string> names;
  for (const auto& v : table<E>().values) names.push_back(v.second.front());
  return or_list(names);
}

template <class E>
E parse_name(const std::string& name) {
  for (const auto& [value, names] : table<E>().values) {
    if (std::find(names.begin(), names.end(), name) != names.end()) return value;
  }
  throw Error(
      fmt::format("unknown {} '{}' (expected {})", table<E>().what, name, expected_names<E>()));
}

template <class E>
std::string name_of(E value) {
  for (const auto& [v, names] : table<E>().values) {
    if (v == value) return names.front();
  }
  return "?";
}

#define ARCFACE_NAMES(E)                        \
  template E parse_name<E>(const std::string&); \
  template std::string name_of<E>(E);           \
  template std::string expected_names<E>();
ARCFACE_NAMES(Color)
ARCFACE_NAMES(FlipMode)
ARCFACE_NAMES(Precision)
ARCFACE_NAMES(MarginType)
ARCFACE_NAMES(LossType)
ARCFACE_NAMES(HardRule)
ARCFACE_NAMES(PairsFormat)
ARCFACE_NAMES(SelectOrder)
ARCFACE_NAMES(LrScheduleType)
ARCFACE_NAMES(OptimizerType)
ARCFACE_NAMES(BadImagePolicy)
#undef ARCFACE_NAMES

namespace {

const std::vector<BackboneEntry>& catalogue() {
  static const std::vector<BackboneEntry> entries{
      {"resnet_face18", "resnet_face", 18, 0.5, 32},
      {"resnet_face34", "resnet_face", 34, 0.5, 32},
      {"resnet_face50", "resnet_face", 50, 0.5, 32},
      {"iresnet18", "iresnet", 18, 0.0, 32},
      {"iresnet34", "iresnet", 34, 0.0, 32},
      {"iresnet50", "iresnet", 50, 0.0, 32},
      {"mobilefacenet", "mobilefacenet", 0, 0.0, 32},
      {"inception_resnet_v1", "inception_resnet_v1", 0, 0.6, 80},
  };
  return entries;
}

const std::vector<std::pair<std::string, std::string>>& aliases() {
  static const std::vector<std::pair<std::string, std::string>> a{
      {"resnet18", "resnet_face18"},
      {"resnet34", "resnet_face34"},
      {"resnet50", "resnet_face50"},
      {"ir_resnet18", "iresnet18"},
      {"ir_resnet34", "iresnet34"},
      {"ir_resnet50", "iresnet50"},
      {"ir18", "iresnet18"},
      {"mbf", "mobilefacenet"},
      {"inceptionresnetv1", "inception_resnet_v1"},
  };
  return a;
}

}  // namespace

const BackboneEntry& backbone_entry(const std::string& name) {
  std::string canonical = name;
  for (const auto& [alias, to] : aliases()) {
    if (alias == name) canonical = to;
  }
  for (const auto& e : catalogue()) {
    if (e.name == canonical) return e;
  }
  throw Error(
      fmt::format("unknown backbone '{}' (known: {})", name, fmt::join(backbone_names(), ", ")));
}

std::string canonical_backbone_name(const std::string& name) { return backbone_entry(name).name; }

std::vector<std::string> backbone_names() {
  std::vector<std::string> names;
  for (const auto& e : catalogue()) names.push_back(e.name);
  return names;
}

std::string backbone_input_problem(const std::string& name, int64_t input_size) {
  const auto& e = backbone_entry(name);
  if (input_size % 16 != 0 || input_size < e.min_input) {
    return fmt::format("{} takes an input size that is a multiple of 16 and >= {}, not {}", e.name,
                       e.min_input, input_size);
  }
  return "";
}

int64_t invalid_utf8_at(const std::string& text) {
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    // The lead byte says how many continuation bytes (10xxxxxx) follow; the ranges of the
    // second byte rule out overlong forms, surrogates and code points past U+10FFFF.
    int more = -1;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c < 0x80) {
      more = 0;
    } else if (c >= 0xC2 && c <= 0xDF) {
      more = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      more = 2;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      more = 3;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    }
    bool valid = more >= 0 && i + more < text.size();
    for (int k = 1; valid && k <= more; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      valid = k == 1 ? next >= lo && next <= hi : (next & 0xC0) == 0x80;
    }
    if (!valid) return static_cast<int64_t>(i);
    i += 1 + more;
  }
  return -1;
}

}  // namespace arcface
