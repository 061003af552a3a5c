#include "arcface/checkpoint.h"

#include <torch/serialize.h>
#include <torch/torch.h>

#include <fstream>
#include <set>

#include <spdlog/fmt/fmt.h>
#include <spdlog/fmt/ranges.h>

#include "arcface/error.h"

namespace arcface {

namespace {

constexpr const char* kFormat = "arcface.checkpoint";

c10::IValue json_to_ivalue(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null:
      return c10::IValue();
    case nlohmann::json::value_t::boolean:
      return j.get<bool>();
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
      return j.get<int64_t>();
    case nlohmann::json::value_t::number_float:
      return j.get<double>();
    case nlohmann::json::value_t::string:
      return j.get<std::string>();
    case nlohmann::json::value_t::array: {
      c10::impl::GenericList list(c10::AnyType::get());
      for (const auto& item : j) list.push_back(json_to_ivalue(item));
      return list;
    }
    default: {
      c10::impl::GenericDict dict(c10::StringType::get(), c10::AnyType::get());
      for (const auto& [key, value] : j.items()) dict.insert(key, json_to_ivalue(value));
      return dict;
    }
  }
}

nlohmann::json ivalue_to_json(const c10::IValue& v) {
  if (v.isNone()) return nullptr;
  if (v.isBool()) return v.toBool();
  if (v.isInt()) return v.toInt();
  if (v.isDouble()) return v.toDouble();
  if (v.isString()) return v.toStringRef();
  if (v.isList() || v.isTuple()) {
    nlohmann::json out = nlohmann::json::array();
    if (v.isList()) {
      for (const auto& item : v.toListRef()) out.push_back(ivalue_to_json(item));
    } else {
      for (const auto& item : v.toTupleRef().elements()) out.push_back(ivalue_to_json(item));
    }
    return out;
  }
  if (v.isGenericDict()) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& item : v.toGenericDict()) {
      out[item.key().isString() ? item.key().toStringRef() : item.key().tagKind()] =
          ivalue_to_json(item.value());
    }
    return out;
  }
  throw Error(fmt::format("checkpoint holds a value of type {} where plain data was expected",
                          v.tagKind()));
}

c10::impl::GenericDict tensor_dict(const StateDict& state) {
  c10::impl::GenericDict dict(c10::StringType::get(), c10::TensorType::get());
  for (const auto& [name, tensor] : state) dict.insert(name, tensor.detach().cpu().contiguous());
  return dict;
}

StateDict read_tensor_dict(const c10::IValue& value, const std::string& what) {
  if (!value.isGenericDict()) throw Error(fmt::format("{} is not a dictionary of tensors", what));
  StateDict state;
  for (const auto& item : value.toGenericDict()) {
    if (!item.key().isString() || !item.value().isTensor()) {
      throw Error(fmt::format("{} holds a non-tensor entry", what));
    }
    state.emplace_back(item.key().toStringRef(), item.value().toTensor());
  }
  return state;
}

const c10::IValue& field(const c10::impl::GenericDict& dict, const std::string& key,
                         const fs::path& path) {
  auto it = dict.find(key);
  if (it == dict.end()) {
    throw Error(fmt::format("checkpoint '{}' has no '{}' entry", path.string(), key));
  }
  return it->value();
}

}  // namespace

StateDict state_dict(const torch::nn::Module& module) {
  StateDict state;
  for (const auto& item : module.named_parameters()) {
    state.emplace_back(item.key(), item.value().detach().cpu().clone());
  }
  for (const auto& item : module.named_buffers()) {
    state.emplace_back(item.key(), item.value().detach().cpu().clone());
  }
  return state;
}

void load_state_dict(torch::nn::Module& module, const StateDict& state, const std::string& what) {
  std::map<std::string, at::Tensor> targets;
  for (const auto& item : module.named_parameters()) targets[item.key()] = item.value();
  for (const auto& item : module.named_buffers()) targets[item.key()] = item.value();

  std::vector<std::string> missing, unexpected, mismatched;
  std::set<std::string> given;
  for (const auto& [name, tensor] : state) {
    given.insert(name);
    auto it = targets.find(name);
    if (it == targets.end()) {
      unexpected.push_back(name);
    } else if (it->second.sizes() != tensor.sizes()) {
      mismatched.push_back(fmt::format("{} (file {}, model {})", name, c10::str(tensor.sizes()),
                                       c10::str(it->second.sizes())));
    }
  }
  for (const auto& [name, tensor] : targets) {
    if (!given.count(name)) missing.push_back(name);
  }
  if (!missing.empty() || !unexpected.empty() || !mismatched.empty()) {
    auto list = [](const std::vector<std::string>& names) {
      const size_t shown = std::min<size_t>(names.size(), 8);
      std::vector<std::string> head(names.begin(), names.begin() + shown);
      return fmt::format(
          "{}{}", fmt::join(head, ", "),
          names.size() > shown ? fmt::format(", ... ({} in all)", names.size()) : "");
    };
    std::string message = fmt::format("{} does not match the model:", what);
    if (!missing.empty()) message += fmt::format("\n  missing: {}", list(missing));
    if (!unexpected.empty()) message += fmt::format("\n  unexpected: {}", list(unexpected));
    if (!mismatched.empty()) message += fmt::format("\n  wrong shape: {}", list(mismatched));
    throw Error(message);
  }
  torch::NoGradGuard no_grad;
  for (const auto& [name, tensor] : state) {
    auto& target = targets.at(name);
    target.copy_(tensor.to(target.device(), target.scalar_type()));
  }
}

void write_file_atomic(const fs::path& path, const std::string& text) {
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.close();  // flushes: a full disk shows here, before the old file is replaced
    if (out.fail()) {
      std::error_code ignored;
      fs::remove(tmp, ignored);
      throw Error(fmt::format("cannot write '{}'", tmp.string()));
    }
  }
  fs::rename(tmp, path);
}

std::string file_hash(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("cannot read '{}'", path.string()));
  uint64_t h = 1469598103934665603ULL;
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    for (std::streamsize i = 0; i < in.gcount(); ++i) {
      h = (h ^ static_cast<uint8_t>(buffer[i])) * 1099511628211ULL;
    }
  }
  return fmt::format("{:016x}", h);
}

void save_state_dict(const StateDict& state, const fs::path& path) {
  const auto bytes = torch::pickle_save(tensor_dict(state));
  write_file_atomic(path, std::string(bytes.begin(), bytes.end()));
}

void save_checkpoint(const Checkpoint& c, const fs::path& path) {
  c10::impl::GenericDict d(c10::StringType::get(), c10::AnyType::get());
  d.insert("format", std::string(kFormat));
  d.insert("format_version", Checkpoint::kFormatVersion);
  d.insert("backbone", c.backbone.name());
  d.insert("backbone_options", json_to_ivalue({{"name", c.backbone.name()},
                                               {"input_size", c.backbone.input_size()},
                                               {"channels", c.backbone.channels()},
                                               {"embedding_dim", c.backbone.embedding_dim()},
                                               {"use_se", c.backbone.use_se()},
                                               {"dropout", c.backbone.dropout()}}));
  d.insert("preprocess", json_to_ivalue(c.preprocess.to_json()));
  d.insert("head", json_to_ivalue({{"type", to_string(c.head.type())},
                                   {"embedding_dim", c.head.embedding_dim()},
                                   {"num_classes", c.head.num_classes()},
                                   {"scale", c.head.scale()},
                                   {"margin", c.head.margin()},
                                   {"easy_margin", c.head.easy_margin()}}));
  d.insert("num_classes", c.head.num_classes());
  d.insert("backbone_state_dict", tensor_dict(c.backbone_state));
  d.insert("head_state_dict", tensor_dict(c.head_state));

  c10::impl::GenericDict state(c10::IntType::get(), c10::AnyType::get());
  for (const auto& [index, entry] : c.optimizer_state) {
    c10::impl::GenericDict tensors(c10::StringType::get(), c10::TensorType::get());
    for (const auto& [name, t] : entry) tensors.insert(name, t.detach().cpu().contiguous());
    state.insert(index, tensors);
  }
  c10::impl::GenericDict optimizer(c10::StringType::get(), c10::AnyType::get());
  optimizer.insert("type", c.optimizer_type);
  optimizer.insert("state", state);
  d.insert("optimizer_state_dict", optimizer);
  d.insert("scheduler_state_dict", json_to_ivalue(c.scheduler));
  d.insert("epoch", c.epoch);
  d.insert("batch_in_epoch", c.batch_in_epoch);
  d.insert("global_step", c.global_step);
  d.insert("config", json_to_ivalue(c.config));
  d.insert("metrics", json_to_ivalue(c.metrics));

  const auto bytes = torch::pickle_save(d);
  write_file_atomic(path, std::string(bytes.begin(), bytes.end()));
}

Checkpoint load_checkpoint(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("cannot open checkpoint '{}'", path.string()));
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), {});
  c10::IValue value;
  try {
    value = torch::pickle_load(bytes);
  } catch (const std::exception& e) {
    throw Error(
        fmt::format("'{}' is not a readable checkpoint (expected torch.save zip format): {}",
                    path.string(), std::string(e.what()).substr(0, 200)));
  }
  if (!value.isGenericDict()) {
    throw Error(fmt::format("'{}' does not hold a checkpoint dictionary", path.string()));
  }
  const auto d = value.toGenericDict();
  auto format = d.find("format");
  if (format == d.end() || !format->value().isString() ||
      format->value().toStringRef() != kFormat) {
    throw Error(
        fmt::format("'{}' is not an arcface checkpoint (no format '{}')", path.string(), kFormat));
  }
  const auto& version_value = field(d, "format_version", path);
  if (!version_value.isInt()) {
    throw Error(fmt::format("checkpoint '{}': format_version is not an integer", path.string()));
  }
  const int64_t version = version_value.toInt();
  if (version != Checkpoint::kFormatVersion) {
    throw Error(fmt::format("checkpoint '{}' has format version {}; this build reads version {}",
                            path.string(), version, Checkpoint::kFormatVersion));
  }
  try {
    Checkpoint c;
    const auto bo = ivalue_to_json(field(d, "backbone_options", path));
    c.backbone = BackboneOptions(bo.at("name").get<std::string>())
                     .input_size(bo.at("input_size").get<int64_t>())
                     .channels(bo.at("channels").get<int64_t>())
                     .embedding_dim(bo.at("embedding_dim").get<int64_t>())
                     .use_se(bo.at("use_se").get<bool>())
                     .dropout(bo.at("dropout").get<double>());
    c.preprocess = Preprocess::from_json(ivalue_to_json(field(d, "preprocess", path)));
    const auto ho = ivalue_to_json(field(d, "head", path));
    c.head = MarginHeadOptions(ho.at("embedding_dim").get<int64_t>(),
                               ho.at("num_classes").get<int64_t>())
                 .type(parse_margin_type(ho.at("type").get<std::string>()))
                 .scale(ho.at("scale").get<double>())
                 .margin(ho.at("margin").get<double>())
                 .easy_margin(ho.at("easy_margin").get<bool>());
    c.backbone_state = read_tensor_dict(field(d, "backbone_state_dict", path),
                                        "'" + path.string() + "' backbone_state_dict");
    c.head_state = read_tensor_dict(field(d, "head_state_dict", path),
                                    "'" + path.string() + "' head_state_dict");
    const auto optimizer = field(d, "optimizer_state_dict", path).toGenericDict();
    c.optimizer_type = optimizer.at("type").toStringRef();
    for (const auto& item : optimizer.at("state").toGenericDict()) {
      auto& entry = c.optimizer_state[item.key().toInt()];
      for (const auto& t : item.value().toGenericDict()) {
        entry[t.key().toStringRef()] = t.value().toTensor();
      }
    }
    c.scheduler = ivalue_to_json(field(d, "scheduler_state_dict", path));
    c.epoch = field(d, "epoch", path).toInt();
    c.batch_in_epoch = field(d, "batch_in_epoch", path).toInt();
    c.global_step = field(d, "global_step", path).toInt();
    c.config = ivalue_to_json(field(d, "config", path));
    c.metrics = ivalue_to_json(field(d, "metrics", path));
    return c;
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(fmt::format("checkpoint '{}' is malformed: {}", path.string(), e.what()));
  }
}

}  // namespace arcface
