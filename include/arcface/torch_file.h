#pragma once

// Reading what Python's torch.save writes, without Python: the zip format (PyTorch >= 1.6) and
// the legacy format before it, in which facenet-pytorch and many older projects distribute
// their weights. Only the data is read: no Python code is run, classes other than tensors and
// plain containers are kept as inert records.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/Tensor.h>

#include "arcface/checkpoint.h"

namespace arcface {

struct PyValue;
using Py = std::shared_ptr<PyValue>;

/// One unpickled Python value. Containers hold shared references, as in Python, so a value
/// memoised by the pickle and mutated later is seen the same everywhere.
struct PyValue {
  enum class Kind { None, Bool, Int, Float, String, Bytes, Tuple, List, Dict, Tensor, Object };
  Kind kind = Kind::None;
  bool boolean = false;
  int64_t integer = 0;
  double real = 0;
  std::string text;                        // String, Bytes; Object: its class, "module.name"
  std::vector<Py> items;                   // Tuple, List; Object: constructor arguments
  std::vector<std::pair<Py, Py>> entries;  // Dict, in insertion order
  at::Tensor tensor;

  /// The entry of a dict under a string key, or null.
  Py get(const std::string& key) const;
  /// "dict", "tensor", "int", ... for messages.
  std::string type_name() const;
};

/// Reads a torch.save file of either format. Errors name the file and what is wrong.
Py read_torch_file(const std::filesystem::path& path);

/// The tensors of a dict of tensors (an `OrderedDict` state dict), in order; `what` names the
/// source in errors. Entries that are not tensors are an error.
StateDict to_state_dict(const Py& value, const std::string& what);

/// read_torch_file + to_state_dict, for a file that holds one state dict.
StateDict read_state_dict_file(const std::filesystem::path& path);

}  // namespace arcface
