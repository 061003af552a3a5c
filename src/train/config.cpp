#include "arcface/config.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <spdlog/fmt/fmt.h>
#include <spdlog/fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include "arcface/error.h"
#include "arcface/names.h"
#include "arcface/pairs.h"

namespace arcface {

namespace {

/// The one list of config keys. A visitor is called with each dotted key and its field.
template <class Visitor>
void visit_config(TrainConfig& c, Visitor&& v) {
  v("model.backbone", c.model.backbone);
  v("model.metric", c.model.metric);
  v("model.use_se", c.model.use_se);
  v("model.num_classes", c.model.num_classes);
  v("model.embedding_size", c.model.embedding_size);
  v("model.scale", c.model.scale);
  v("model.margin", c.model.margin);
  v("model.easy_margin", c.model.easy_margin);
  v("model.dropout", c.model.dropout);
  v("model.pretrained", c.model.pretrained);
  v("model.pretrained_head", c.model.pretrained_head);
  v("loss.type", c.loss.type);
  v("loss.gamma", c.loss.gamma);
  v("training.batch_size", c.training.batch_size);
  v("training.max_epoch", c.training.max_epoch);
  v("training.lr", c.training.lr);
  v("training.lr_schedule", c.training.lr_schedule);
  v("training.lr_step", c.training.lr_step);
  v("training.lr_milestones", c.training.lr_milestones);
  v("training.lr_decay", c.training.lr_decay);
  v("training.lr_min", c.training.lr_min);
  v("training.warmup_epochs", c.training.warmup_epochs);
  v("training.optimizer", c.training.optimizer);
  v("training.momentum", c.training.momentum);
  v("training.weight_decay", c.training.weight_decay);
  v("training.drop_last", c.training.drop_last);
  v("training.freeze_bn", c.training.freeze_bn);
  v("training.seed", c.training.seed);
  v("training.print_freq", c.training.print_freq);
  v("training.save_interval", c.training.save_interval);
  v("training.device", c.training.device);
  v("training.threads", c.training.threads);
  v("training.precision", c.training.precision);
  v("training.channels_last", c.training.channels_last);
  v("data.train_root", c.data.train_root);
  v("data.train_list", c.data.train_list);
  v("data.train_rec", c.data.train_rec);
  v("data.input_size", c.data.input_size);
  v("data.channels", c.data.channels);
  v("data.resize", c.data.resize);
  v("data.mean", c.data.mean);
  v("data.std", c.data.std);
  v("data.random_flip", c.data.random_flip);
  v("data.random_crop", c.data.random_crop);
  v("data.random_gray", c.data.random_gray);
  v("data.workers", c.data.workers);
  v("data.cache", c.data.cache);
  v("data.bad_images", c.data.bad_images);
  v("val.root", c.val.root);
  v("val.pairs", c.val.pairs);
  v("val.pairs_format", c.val.pairs_format);
  v("val.name", c.val.name);
  v("val.targets", c.val.targets);
  v("val.select", c.val.select);
  v("val.interval", c.val.interval);
  v("val.folds", c.val.folds);
  v("val.flip", c.val.flip);
  v("val.batch_size", c.val.batch_size);
  v("distill.teacher", c.distill.teacher);
  v("distill.teacher_backbone", c.distill.teacher_backbone);
  v("distill.teacher_input_size", c.distill.teacher_input_size);
  v("distill.teacher_color", c.distill.teacher_color);
  v("distill.teacher_mean", c.distill.teacher_mean);
  v("distill.teacher_std", c.distill.teacher_std);
  v("distill.embedding_weight", c.distill.embedding_weight);
  v("distill.logit_weight", c.distill.logit_weight);
  v("distill.margin_weight", c.distill.margin_weight);
  v("distill.temperature", c.distill.temperature);
  v("distill.hard_rule", c.distill.hard_rule);
  v("distill.hard_margin", c.distill.hard_margin);
  v("distill.hard_fraction", c.distill.hard_fraction);
  v("distill.hard_weight", c.distill.hard_weight);
  v("distill.teacher_flip", c.distill.teacher_flip);
  v("paths.checkpoints_path", c.paths.checkpoints_path);
}

template <class T>
const char* type_name() {
  if constexpr (std::is_same_v<T, bool>) return "true or false";
  if constexpr (std::is_integral_v<T>) return "an integer";
  if constexpr (std::is_floating_point_v<T>) return "a number";
  if constexpr (std::is_same_v<T, std::string>) return "a string";
  if constexpr (std::is_same_v<T, std::vector<std::string>>) return "a list of strings";
  return "a list of numbers";
}

std::vector<std::string> split_key(const std::string& key) {
  std::vector<std::string> parts;
  std::stringstream in(key);
  for (std::string part; std::getline(in, part, '.');) parts.push_back(part);
  return parts;
}

YAML::Node find(const YAML::Node& root, const std::string& key) {
  // reset() rebinds the handle; assignment would overwrite the node it points to.
  YAML::Node node;
  node.reset(root);
  for (const auto& part : split_key(key)) {
    if (!node.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
    const YAML::Node& parent = node;
    YAML::Node child = parent[part];
    if (!child.IsDefined()) return child;
    node.reset(child);
  }
  return node;
}

std::string where(const std::string& source, const YAML::Node& node) {
  if (node.Mark().is_null()) return source;
  return fmt::format("{}:{}", source, node.Mark().line + 1);
}

struct Reader {
  const YAML::Node& root;
  const std::string& source;

  template <class T>
  void operator()(const std::string& key, T& field) const {
    YAML::Node node = find(root, key);
    if (!node.IsDefined() || node.IsNull()) return;
    try {
      if constexpr (std::is_same_v<T, std::vector<double>> ||
                    std::is_same_v<T, std::vector<int64_t>> ||
                    std::is_same_v<T, std::vector<std::string>>) {
        // A single number is accepted where a list is expected: mean: 0.5.
        field = node.IsSequence() ? node.as<T>() : T{node.as<typename T::value_type>()};
      } else {
        if (!node.IsScalar()) throw YAML::BadConversion(node.Mark());
        field = node.as<T>();
      }
    } catch (const YAML::Exception&) {
      std::string text = YAML::Dump(node);
      throw Error(fmt::format("{}: config key '{}' expects {}, got '{}'", where(source, node), key,
                              type_name<T>(), text));
    }
    if constexpr (std::is_same_v<T, std::string>) {
      check_text(key, field, node);
    } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
      for (const auto& item : field) check_text(key, item, node);
    }
  }

  // Strings go into training_config.json and the checkpoints' metadata as JSON.
  void check_text(const std::string& key, const std::string& text, const YAML::Node& node) const {
    if (const int64_t bad = invalid_utf8_at(text); bad >= 0) {
      throw Error(fmt::format("{}: config key '{}' is not valid UTF-8 text (byte {})",
                              where(source, node), key, bad));
    }
  }
};

void check_known_keys(const YAML::Node& node, const std::string& prefix,
                      const std::set<std::string>& known, const std::string& source) {
  if (!node.IsMap()) {
    throw Error(fmt::format("{}: config {} must be a mapping of keys", where(source, node),
                            prefix.empty() ? std::string("file") : "section '" + prefix + "'"));
  }
  for (const auto& item : node) {
    if (!item.first.IsScalar()) {
      throw Error(fmt::format("{}: a config key must be a name, not '{}'",
                              where(source, item.first), YAML::Dump(item.first)));
    }
    const std::string key = (prefix.empty() ? "" : prefix + ".") + item.first.as<std::string>();
    if (known.count(key)) continue;
    const bool is_section = std::any_of(known.begin(), known.end(), [&](const std::string& k) {
      return k.rfind(key + ".", 0) == 0;
    });
    if (is_section && (item.second.IsMap() || item.second.IsNull())) {
      if (item.second.IsMap()) check_known_keys(item.second, key, known, source);
      continue;
    }
    std::vector<std::string> siblings;
    for (const auto& k : known) {
      if (k.rfind(prefix.empty() ? "" : prefix + ".", 0) == 0) siblings.push_back(k);
    }
    throw Error(fmt::format("{}: unknown config key '{}'{}", where(source, item.first), key,
                            prefix.empty()
                                ? " (sections: model, loss, training, data, val, distill, paths)"
                                : fmt::format(" (known: {})", fmt::join(siblings, ", "))));
  }
}

void set_override(YAML::Node& root, const std::string& assignment,
                  const std::set<std::string>& known) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw Error(fmt::format("override '{}' must look like key=value", assignment));
  }
  const std::string key = assignment.substr(0, eq);
  const std::string text = assignment.substr(eq + 1);
  if (!known.count(key)) {
    throw Error(fmt::format("unknown config key '{}' in override '{}'", key, assignment));
  }
  YAML::Node value;
  try {
    value = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw Error(fmt::format("override '{}': cannot parse the value: {}", assignment, e.msg));
  }
  // Walk down with fresh handles: assigning to a reused YAML::Node overwrites the node it
  // points to instead of descending, so each level gets its own variable.
  const auto parts = split_key(key);
  std::vector<YAML::Node> path{root};
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    YAML::Node child = path.back()[parts[i]];
    if (!child.IsMap()) {
      path.back()[parts[i]] = YAML::Node(YAML::NodeType::Map);
      child = path.back()[parts[i]];
    }
    path.push_back(child);
  }
  path.back()[parts.back()] = value;
}

template <class T>
void require(bool ok, const std::string& key, const T& value, const std::string& rule) {
  if (!ok) throw Error(fmt::format("config key '{}' = {} is invalid: {}", key, value, rule));
}

// A named choice, checked against its enum's one table of names.
template <class E>
void require_name(const std::string& key, const std::string& value) {
  try {
    parse_name<E>(value);
  } catch (const Error&) {
    throw Error(fmt::format("config key '{}' = {} is invalid: must be {}", key, value,
                            expected_names<E>()));
  }
}

}  // namespace

void check_config(const TrainConfig& c) {
  try {
    backbone_entry(c.model.backbone);
  } catch (const Error& e) {
    throw Error(fmt::format("config key 'model.backbone': {}", e.what()));
  }
  const std::string input = backbone_input_problem(c.model.backbone, c.data.input_size);
  require(input.empty(), "data.input_size", c.data.input_size, input);
  require_name<MarginType>("model.metric", c.model.metric);
  require_name<LossType>("loss.type", c.loss.type);
  require_name<LrScheduleType>("training.lr_schedule", c.training.lr_schedule);
  require_name<OptimizerType>("training.optimizer", c.training.optimizer);
  require_name<Precision>("training.precision", c.training.precision);
  require_name<BadImagePolicy>("data.bad_images", c.data.bad_images);
  require_name<FlipMode>("val.flip", c.val.flip);
  require_name<PairsFormat>("val.pairs_format", c.val.pairs_format);
  require_name<HardRule>("distill.hard_rule", c.distill.hard_rule);
  require_name<FlipMode>("distill.teacher_flip", c.distill.teacher_flip);
  require(c.distill.teacher_flip != "concat", "distill.teacher_flip", c.distill.teacher_flip,
          "must be sum or none (a target of the student's own length)");
  if (!c.distill.teacher_color.empty()) {
    require_name<Color>("distill.teacher_color", c.distill.teacher_color);
  }
  require(c.model.num_classes >= 2, "model.num_classes", c.model.num_classes, "must be >= 2");
  require(c.model.embedding_size >= 1, "model.embedding_size", c.model.embedding_size,
          "must be >= 1");
  require(c.model.scale > 0, "model.scale", c.model.scale, "must be > 0");
  require(c.model.dropout < 1, "model.dropout", c.model.dropout, "must be < 1");
  require(c.loss.gamma >= 0, "loss.gamma", c.loss.gamma, "must be >= 0");
  require(c.training.batch_size >= 2, "training.batch_size", c.training.batch_size,
          "must be >= 2 (BatchNorm needs two images)");
  require(c.training.max_epoch >= 1, "training.max_epoch", c.training.max_epoch, "must be >= 1");
  require(c.training.lr > 0, "training.lr", c.training.lr, "must be > 0");
  require(c.training.lr_step >= 1, "training.lr_step", c.training.lr_step, "must be >= 1");
  require(c.training.lr_decay > 0, "training.lr_decay", c.training.lr_decay, "must be > 0");
  require(c.training.warmup_epochs >= 0, "training.warmup_epochs", c.training.warmup_epochs,
          "must be >= 0");
  require(c.training.momentum >= 0, "training.momentum", c.training.momentum, "must be >= 0");
  require(c.training.weight_decay >= 0, "training.weight_decay", c.training.weight_decay,
          "must be >= 0");
  require(c.training.print_freq >= 1, "training.print_freq", c.training.print_freq, "must be >= 1");
  require(c.training.save_interval >= 1, "training.save_interval", c.training.save_interval,
          "must be >= 1");
  require(c.training.threads >= 0, "training.threads", c.training.threads, "must be >= 0");
  require(!c.model.pretrained_head || !c.model.pretrained.empty(), "model.pretrained_head", "true",
          "needs model.pretrained, the file to take the head from");
  require(c.data.channels == 1 || c.data.channels == 3, "data.channels", c.data.channels,
          "must be 1 (grayscale) or 3 (RGB)");
  require(c.data.resize == 0 || c.data.resize >= c.data.input_size, "data.resize", c.data.resize,
          "must be 0 or >= data.input_size");
  auto per_channel = [&](const std::vector<double>& v) {
    return v.size() == 1 || static_cast<int64_t>(v.size()) == c.data.channels;
  };
  require(per_channel(c.data.mean), "data.mean", fmt::format("{}", c.data.mean),
          "needs 1 or data.channels values");
  require(per_channel(c.data.std), "data.std", fmt::format("{}", c.data.std),
          "needs 1 or data.channels values");
  check_normalisation(c.data.mean, c.data.std, "config key 'data.mean'", "config key 'data.std'");
  require(c.data.random_gray >= 0 && c.data.random_gray <= 1, "data.random_gray",
          c.data.random_gray, "must be between 0 and 1");
  require(c.data.workers >= 1, "data.workers", c.data.workers, "must be >= 1");
  require(c.val.interval >= 1, "val.interval", c.val.interval, "must be >= 1");
  require(c.val.folds >= 1, "val.folds", c.val.folds, "must be >= 1");
  require(c.val.batch_size >= 1, "val.batch_size", c.val.batch_size, "must be >= 1");
  std::vector<std::string> names{c.val.name};
  for (const auto& spec : c.val.targets) {
    require(!c.val.pairs.empty(), "val.targets", spec, "needs val.root and val.pairs first");
    PairTarget t;
    try {
      t = parse_pair_target(spec);
    } catch (const Error& e) {
      throw Error(fmt::format("config key 'val.targets': {}", e.what()));
    }
    require(std::find(names.begin(), names.end(), t.name) == names.end(), "val.targets", spec,
            "names a target twice");
    names.push_back(t.name);
  }
  require(
      c.val.select.empty() || c.val.select == "mean" ||
          std::find(names.begin(), names.end(), c.val.select) != names.end(),
      "val.select", c.val.select,
      fmt::format("must be empty (the first target), mean, or one of: {}", fmt::join(names, ", ")));
  require(c.val.root.empty() == c.val.pairs.empty(), "val.pairs", c.val.pairs,
          "val.root and val.pairs are given together or not at all");
  const auto& d = c.distill;
  require(d.embedding_weight >= 0, "distill.embedding_weight", d.embedding_weight, "must be >= 0");
  require(d.logit_weight >= 0, "distill.logit_weight", d.logit_weight, "must be >= 0");
  require(d.margin_weight >= 0, "distill.margin_weight", d.margin_weight, "must be >= 0");
  require(d.temperature > 0, "distill.temperature", d.temperature, "must be > 0");
  // Without the margin loss nothing reads the labels, so nothing may depend on them.
  if (d.margin_weight == 0) {
    const std::string why = "distill.margin_weight 0 trains on the teacher alone";
    require(!d.teacher.empty(), "distill.teacher", d.teacher, why + ": set a teacher");
    require(d.embedding_weight > 0, "distill.embedding_weight", d.embedding_weight,
            why + ": it is the only term and must be > 0");
    require(d.logit_weight == 0, "distill.logit_weight", d.logit_weight,
            why + ", without the classes the KL term compares: set it to 0");
    require(parse_name<HardRule>(d.hard_rule) == HardRule::None, "distill.hard_rule", d.hard_rule,
            why + ", and hard examples are judged by their labels: set none");
  }
  require(d.hard_fraction > 0 && d.hard_fraction <= 1, "distill.hard_fraction", d.hard_fraction,
          "must be in (0, 1]");
  require(d.hard_weight >= 0, "distill.hard_weight", d.hard_weight, "must be >= 0");
  // A softmax head's logits are not cosines, so "close to another class" has no meaning.
  require(d.teacher.empty() || parse_name<HardRule>(d.hard_rule) != HardRule::Margin ||
              parse_name<MarginType>(c.model.metric) != MarginType::Softmax,
          "distill.hard_rule", d.hard_rule,
          "margin needs a margin head (model.metric arc_margin or add_margin); use loss or none "
          "with softmax");
  require(d.teacher_input_size >= 0, "distill.teacher_input_size", d.teacher_input_size,
          "must be >= 0 (0: data.input_size)");
  check_normalisation(d.teacher_mean, d.teacher_std, "config key 'distill.teacher_mean'",
                      "config key 'distill.teacher_std'");
}

namespace {

std::set<std::string> known_keys() {
  auto keys = config_keys();
  return {keys.begin(), keys.end()};
}

}  // namespace

void check_normalisation(const std::vector<double>& mean, const std::vector<double>& std,
                         const std::string& mean_name, const std::string& std_name) {
  auto on_unit_pixels = [](const std::vector<double>& v) {
    std::vector<std::string> out;
    for (double x : v) out.push_back(fmt::format("{:.5g}", x / 255));
    return fmt::format("{}", fmt::join(out, ","));
  };
  const bool mean_ok =
      std::all_of(mean.begin(), mean.end(), [](double m) { return m >= 0 && m <= 1; });
  if (!mean_ok) {
    throw Error(fmt::format(
        "{} = {} is outside [0, 1]: it applies to pixel values scaled to 0..1{}", mean_name,
        fmt::join(mean, ","),
        std::all_of(mean.begin(), mean.end(), [](double m) { return m > 1 && m <= 255; })
            ? fmt::format(" (on 0..255 pixels that is {})", on_unit_pixels(mean))
            : std::string()));
  }
  const bool std_ok = std::all_of(std.begin(), std.end(), [](double s) { return s > 0 && s <= 1; });
  if (!std_ok) {
    throw Error(
        fmt::format("{} = {} is outside (0, 1]: it applies to pixel values scaled to 0..1{}",
                    std_name, fmt::join(std, ","),
                    std::all_of(std.begin(), std.end(), [](double s) { return s > 1 && s <= 255; })
                        ? fmt::format(" (on 0..255 pixels that is {})", on_unit_pixels(std))
                        : std::string()));
  }
}

std::vector<std::string> config_keys() {
  TrainConfig c;
  std::vector<std::string> keys;
  visit_config(c, [&](const std::string& key, auto&) { keys.push_back(key); });
  return keys;
}

TrainConfig parse_config(const std::string& yaml, const std::string& source,
                         const std::vector<std::string>& overrides) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    throw Error(fmt::format("{}:{}: YAML syntax error: {}", source, e.mark.line + 1, e.msg));
  }
  if (root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  const auto known = known_keys();
  check_known_keys(root, "", known, source);
  for (const auto& assignment : overrides) set_override(root, assignment, known);

  TrainConfig config;
  visit_config(config, Reader{root, source});
  check_config(config);
  return config;
}

TrainConfig load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path);
  if (!in) throw Error(fmt::format("cannot open config file '{}'", path));
  std::stringstream text;
  text << in.rdbuf();
  return parse_config(text.str(), path, overrides);
}

nlohmann::json config_to_json(const TrainConfig& config) {
  TrainConfig copy = config;
  nlohmann::json out = nlohmann::json::object();
  visit_config(copy, [&](const std::string& key, const auto& value) {
    nlohmann::json* node = &out;
    for (const auto& part : split_key(key)) node = &(*node)[part];
    *node = value;
  });
  return out;
}

}  // namespace arcface
