// A small pickle machine for torch.save files. torch::pickle_load only reads the zip format and
// only its TorchScript subset of Python types; state dicts saved by Python are OrderedDicts
// with a `_metadata` attribute, and legacy files are a sequence of pickles followed by raw
// storages. Both formats share the pickle: tensors refer to storages by persistent id
// ('storage', torch.FloatStorage, key, location, numel[, view]).
#include "arcface/torch_file.h"

#include <torch/torch.h>

#include <caffe2/serialize/inline_container.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <map>

#include <spdlog/fmt/fmt.h>

#include "arcface/error.h"

namespace arcface {

namespace {

Py make(PyValue::Kind kind) {
  auto v = std::make_shared<PyValue>();
  v->kind = kind;
  return v;
}

Py make_int(int64_t i) {
  auto v = make(PyValue::Kind::Int);
  v->integer = i;
  return v;
}

Py make_text(PyValue::Kind kind, std::string s) {
  auto v = make(kind);
  v->text = std::move(s);
  return v;
}

// torch.<Name>Storage → element type.
c10::ScalarType storage_type(const std::string& cls) {
  static const std::map<std::string, c10::ScalarType> types = {
      {"torch.FloatStorage", c10::kFloat},
      {"torch.DoubleStorage", c10::kDouble},
      {"torch.HalfStorage", c10::kHalf},
      {"torch.BFloat16Storage", c10::kBFloat16},
      {"torch.LongStorage", c10::kLong},
      {"torch.IntStorage", c10::kInt},
      {"torch.ShortStorage", c10::kShort},
      {"torch.CharStorage", c10::kChar},
      {"torch.ByteStorage", c10::kByte},
      {"torch.BoolStorage", c10::kBool},
      {"torch.ComplexFloatStorage", c10::kComplexFloat},
      {"torch.ComplexDoubleStorage", c10::kComplexDouble}};
  auto it = types.find(cls);
  if (it == types.end()) throw Error(fmt::format("unsupported storage type '{}'", cls));
  return it->second;
}

// Storages by key: a flat tensor each, allocated when first referenced. Legacy files store
// the data after the pickle, so tensors are views filled in afterwards.
using Storages = std::map<std::string, at::Tensor>;
using StorageSource =
    std::function<at::Tensor(const std::string& key, c10::ScalarType, int64_t numel)>;

class Unpickler {
 public:
  Unpickler(const char* data, size_t size, StorageSource storages)
      : data_(data), size_(size), storages_(std::move(storages)) {}

  /// Runs one pickle from `pos` to its STOP; returns the value and leaves pos after it.
  Py load(size_t& pos) {
    pos_ = pos;
    stack_.clear();
    marks_.clear();
    memo_.clear();
    for (;;) {
      const uint8_t op = byte();
      if (op == '.') break;
      step(op);
    }
    if (stack_.size() != 1) fail("pickle ends with an unbalanced stack");
    pos = pos_;
    return stack_.back();
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(fmt::format("{} (at byte {})", what, pos_));
  }
  const char* take(size_t n) {
    if (pos_ + n > size_) fail("file ends inside a pickle (truncated?)");
    const char* p = data_ + pos_;
    pos_ += n;
    return p;
  }
  uint8_t byte() { return static_cast<uint8_t>(*take(1)); }
  template <typename T>
  T little() {  // the pickle's integers are little-endian, like the machines we build for
    T v;
    std::memcpy(&v, take(sizeof(T)), sizeof(T));
    return v;
  }
  std::string line() {
    const size_t start = pos_;
    while (pos_ < size_ && data_[pos_] != '\n') ++pos_;
    if (pos_ >= size_) fail("file ends inside a pickle (truncated?)");
    return std::string(data_ + start, data_ + pos_++);
  }
  Py pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back()))
      fail("pickle stack underflow");
    Py v = stack_.back();
    stack_.pop_back();
    return v;
  }
  Py& top() {
    if (stack_.empty()) fail("pickle stack underflow");
    return stack_.back();
  }
  std::vector<Py> pop_mark() {
    if (marks_.empty()) fail("pickle has no mark to pop");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Py> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  void push_tuple(std::vector<Py> items) {
    auto t = make(PyValue::Kind::Tuple);
    t->items = std::move(items);
    stack_.push_back(t);
  }
  void set_items(const Py& dict, const std::vector<Py>& kv) {
    if (dict->kind != PyValue::Kind::Dict) fail("SETITEM on a " + dict->type_name());
    for (size_t i = 0; i + 1 < kv.size(); i += 2) {
      bool replaced = false;
      if (kv[i]->kind == PyValue::Kind::String) {
        for (auto& [k, v] : dict->entries) {
          if (k->kind == PyValue::Kind::String && k->text == kv[i]->text) {
            v = kv[i + 1];
            replaced = true;
          }
        }
      }
      if (!replaced) dict->entries.emplace_back(kv[i], kv[i + 1]);
    }
  }
  Py memo(uint64_t index) {
    auto it = memo_.find(index);
    if (it == memo_.end()) fail(fmt::format("pickle refers to unknown memo entry {}", index));
    return it->second;
  }

  static int64_t as_int(const Py& v, const char* what) {
    if (v->kind != PyValue::Kind::Int)
      throw Error(fmt::format("expected an int for {}, got {}", what, v->type_name()));
    return v->integer;
  }
  static std::vector<int64_t> int_tuple(const Py& v, const char* what) {
    std::vector<int64_t> out;
    for (const auto& item : v->items) out.push_back(as_int(item, what));
    return out;
  }

  // The callables torch.save files use; anything else becomes an inert Object record.
  Py call(const Py& callable, const Py& args) {
    const std::string& name = callable->text;
    const auto& a = args->items;
    if (name == "collections.OrderedDict" || name == "builtins.dict")
      return make(PyValue::Kind::Dict);
    if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor") {
      if (a.size() < 4 || a[0]->kind != PyValue::Kind::Tensor) fail("malformed tensor record");
      auto t = make(PyValue::Kind::Tensor);
      t->tensor =
          a[0]->tensor.as_strided(int_tuple(a[2], "tensor size"), int_tuple(a[3], "tensor stride"),
                                  as_int(a[1], "storage offset"));
      return t;
    }
    // What libtorch's own pickler (torch::pickle_save, our checkpoints) wraps values in.
    if (name.rfind("torch.jit._pickle.", 0) == 0) {
      if (a.empty()) fail("malformed " + name + " record");
      return a[0];
    }
    if (name == "torch._utils._rebuild_parameter") {
      if (a.empty() || a[0]->kind != PyValue::Kind::Tensor) fail("malformed parameter record");
      return a[0];
    }
    auto object = make_text(PyValue::Kind::Object, name);
    object->items = a;
    return object;
  }

  // ('storage', torch.FloatStorage, key, location, numel[, view_metadata]).
  Py persistent(const Py& id) {
    const auto& a = id->items;
    if (id->kind != PyValue::Kind::Tuple || a.size() < 5 || a[0]->text != "storage") {
      fail("unsupported persistent id (not a tensor storage)");
    }
    const auto type = storage_type(a[1]->text);
    const std::string& key = a[2]->text;
    at::Tensor storage = storages_(key, type, as_int(a[4], "storage size"));
    if (a.size() > 5 && a[5]->kind == PyValue::Kind::Tuple) {  // a view into a root storage
      const auto& view = a[5]->items;
      if (view.size() != 3) fail("malformed storage view");
      storage = storage.narrow(0, as_int(view[1], "view offset"), as_int(view[2], "view size"));
    }
    auto t = make(PyValue::Kind::Tensor);
    t->tensor = storage;
    return t;
  }

  void step(uint8_t op) {
    using K = PyValue::Kind;
    switch (op) {
      case 0x80:
        byte();
        break;  // PROTO
      case 0x95:
        take(8);
        break;  // FRAME
      case '(':
        marks_.push_back(stack_.size());
        break;  // MARK
      case ')':
        push_tuple({});
        break;
      case 't':
        push_tuple(pop_mark());
        break;
      case 0x85: {
        auto a = pop();
        push_tuple({a});
        break;
      }
      case 0x86: {
        auto b = pop(), a = pop();
        push_tuple({a, b});
        break;
      }
      case 0x87: {
        auto c = pop(), b = pop(), a = pop();
        push_tuple({a, b, c});
        break;
      }
      case ']':
        stack_.push_back(make(K::List));
        break;
      case 'l': {
        auto l = make(K::List);
        l->items = pop_mark();
        stack_.push_back(l);
        break;
      }
      case 'a': {
        auto v = pop();
        top()->items.push_back(v);
        break;
      }
      case 'e': {
        auto items = pop_mark();
        auto& l = top()->items;
        l.insert(l.end(), items.begin(), items.end());
        break;
      }
      case '}':
        stack_.push_back(make(K::Dict));
        break;
      case 'd': {
        auto d = make(K::Dict);
        set_items(d, pop_mark());
        stack_.push_back(d);
        break;
      }
      case 's': {
        auto v = pop(), k = pop();
        set_items(top(), {k, v});
        break;
      }
      case 'u': {
        auto kv = pop_mark();
        set_items(top(), kv);
        break;
      }
      case 0x8f:
        stack_.push_back(make(K::List));
        break;  // EMPTY_SET, kept as a list
      case 0x90: {
        auto items = pop_mark();
        auto& l = top()->items;
        l.insert(l.end(), items.begin(), items.end());
        break;
      }
      case 0x91: {
        auto l = make(K::List);
        l->items = pop_mark();
        stack_.push_back(l);
        break;
      }
      case 'N':
        stack_.push_back(make(K::None));
        break;
      case 0x88:
      case 0x89: {
        auto b = make(K::Bool);
        b->boolean = op == 0x88;
        stack_.push_back(b);
        break;
      }
      case 'J':
        stack_.push_back(make_int(little<int32_t>()));
        break;
      case 'K':
        stack_.push_back(make_int(byte()));
        break;
      case 'M':
        stack_.push_back(make_int(little<uint16_t>()));
        break;
      case 0x8a: {  // LONG1
        const uint8_t n = byte();
        if (n > 8) fail("integer wider than 64 bits");
        const char* p = take(n);
        uint64_t u = 0;
        for (int i = n - 1; i >= 0; --i) u = (u << 8) | static_cast<uint8_t>(p[i]);
        if (n > 0 && n < 8 && (static_cast<uint8_t>(p[n - 1]) & 0x80)) u |= ~uint64_t{0} << (8 * n);
        stack_.push_back(make_int(static_cast<int64_t>(u)));
        break;
      }
      case 'G': {  // BINFLOAT, big-endian
        const char* p = take(8);
        uint64_t u = 0;
        for (int i = 0; i < 8; ++i) u = (u << 8) | static_cast<uint8_t>(p[i]);
        auto f = make(K::Float);
        std::memcpy(&f->real, &u, 8);
        stack_.push_back(f);
        break;
      }
      case 'X': {
        const auto n = little<uint32_t>();
        stack_.push_back(make_text(K::String, std::string(take(n), n)));
        break;
      }
      case 0x8c: {
        const auto n = byte();
        stack_.push_back(make_text(K::String, std::string(take(n), n)));
        break;
      }
      case 0x8d: {
        const auto n = little<uint64_t>();
        stack_.push_back(make_text(K::String, std::string(take(n), n)));
        break;
      }
      case 'T': {
        const auto n = little<uint32_t>();
        stack_.push_back(make_text(K::String, std::string(take(n), n)));
        break;
      }
      case 'U': {
        const auto n = byte();
        stack_.push_back(make_text(K::String, std::string(take(n), n)));
        break;
      }
      case 'B': {
        const auto n = little<uint32_t>();
        stack_.push_back(make_text(K::Bytes, std::string(take(n), n)));
        break;
      }
      case 'C': {
        const auto n = byte();
        stack_.push_back(make_text(K::Bytes, std::string(take(n), n)));
        break;
      }
      case 'c': {
        auto module = line();
        auto name = line();
        stack_.push_back(make_text(K::Object, module + "." + name));
        break;
      }
      case 0x93: {
        auto name = pop(), module = pop();
        stack_.push_back(make_text(K::Object, module->text + "." + name->text));
        break;
      }
      case 'q':
        memo_[byte()] = top();
        break;
      case 'r':
        memo_[little<uint32_t>()] = top();
        break;
      case 0x94:
        memo_[memo_.size()] = top();
        break;
      case 'h':
        stack_.push_back(memo(byte()));
        break;
      case 'j':
        stack_.push_back(memo(little<uint32_t>()));
        break;
      case 'R':
      case 0x81: {
        auto args = pop(), callable = pop();
        stack_.push_back(call(callable, args));
        break;
      }
      case 'b': {  // BUILD: OrderedDict's _metadata and objects' __dict__ are not needed
        auto state = pop();
        auto& target = top();
        if (target->kind == K::Object) target->items.push_back(state);
        break;
      }
      case 'Q': {
        auto id = pop();
        stack_.push_back(persistent(id));
        break;
      }
      case '0':
        pop();
        break;
      case '1':
        pop_mark();
        break;
      case '2':
        stack_.push_back(top());
        break;
      default:
        fail(fmt::format("unsupported pickle opcode 0x{:02x}", op));
    }
  }

  const char* data_;
  size_t size_;
  size_t pos_ = 0;
  StorageSource storages_;
  std::vector<Py> stack_;
  std::vector<size_t> marks_;
  std::map<uint64_t, Py> memo_;
};

std::string read_all(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("cannot open '{}'", path.string()));
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

Py read_zip(const std::filesystem::path& path) {
  caffe2::serialize::PyTorchStreamReader reader(path.string());
  auto [pickle, size] = reader.getRecord("data.pkl");
  Unpickler unpickler(
      static_cast<const char*>(pickle.get()), size,
      [&](const std::string& key, c10::ScalarType type, int64_t numel) {
        auto t = torch::empty({numel}, torch::dtype(type));
        const size_t bytes = static_cast<size_t>(numel) * t.element_size();
        auto [data, n] = reader.getRecord("data/" + key);
        if (n != bytes) {
          throw Error(fmt::format("storage '{}' has {} bytes, expected {}", key, n, bytes));
        }
        std::memcpy(t.data_ptr(), data.get(), bytes);
        return t;
      });
  size_t pos = 0;
  return unpickler.load(pos);
}

// Legacy layout: magic, protocol and sys-info pickles, the object pickle, the list of storage
// keys, then per key an int64 element count and the raw little-endian data.
Py read_legacy(const std::string& bytes) {
  Storages storages;
  Unpickler unpickler(
      bytes.data(), bytes.size(), [&](const std::string& key, c10::ScalarType type, int64_t numel) {
        auto it = storages.find(key);
        if (it == storages.end())
          it = storages.emplace(key, torch::empty({numel}, torch::dtype(type))).first;
        return it->second;
      });
  // The magic number is a 10-byte LONG1: 0x1950a86a20f9469cfc6c.
  static const char kMagic[] = "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19\x2e";
  if (bytes.size() < 15 || std::memcmp(bytes.data(), kMagic, 15) != 0) {
    throw Error("not a torch.save file (neither a zip archive nor the legacy magic number)");
  }
  size_t pos = 15;
  const int64_t protocol = unpickler.load(pos)->integer;
  if (protocol != 1001)
    throw Error(fmt::format("legacy torch.save protocol {} is not supported", protocol));
  unpickler.load(pos);  // sys info: little-endian, type sizes
  Py object = unpickler.load(pos);
  Py keys = unpickler.load(pos);
  for (const auto& key : keys->items) {
    auto it = storages.find(key->text);
    if (it == storages.end())
      throw Error(fmt::format("storage '{}' is listed but never used", key->text));
    if (pos + 8 > bytes.size())
      throw Error("file ends before storage '" + key->text + "' (truncated?)");
    int64_t numel;
    std::memcpy(&numel, bytes.data() + pos, 8);
    pos += 8;
    at::Tensor& t = it->second;
    const size_t n = static_cast<size_t>(numel) * t.element_size();
    if (numel != t.numel() || pos + n > bytes.size()) {
      throw Error(fmt::format("storage '{}' is truncated or has the wrong size", key->text));
    }
    std::memcpy(t.data_ptr(), bytes.data() + pos, n);
    pos += n;
  }
  return object;
}

}  // namespace

Py PyValue::get(const std::string& key) const {
  for (const auto& [k, v] : entries) {
    if (k->kind == Kind::String && k->text == key) return v;
  }
  return nullptr;
}

std::string PyValue::type_name() const {
  switch (kind) {
    case Kind::None:
      return "None";
    case Kind::Bool:
      return "bool";
    case Kind::Int:
      return "int";
    case Kind::Float:
      return "float";
    case Kind::String:
      return "str";
    case Kind::Bytes:
      return "bytes";
    case Kind::Tuple:
      return "tuple";
    case Kind::List:
      return "list";
    case Kind::Dict:
      return "dict";
    case Kind::Tensor:
      return "tensor";
    case Kind::Object:
      return text;
  }
  return "?";
}

Py read_torch_file(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw Error(fmt::format("'{}' not found", path.string()));
  try {
    const std::string bytes = read_all(path);
    if (bytes.rfind("PK\x03\x04", 0) == 0) return read_zip(path);
    return read_legacy(bytes);
  } catch (const Error& e) {
    throw Error(fmt::format("cannot read '{}': {}", path.string(), e.what()));
  } catch (const c10::Error& e) {
    throw Error(fmt::format("cannot read '{}': {}", path.string(), e.what_without_backtrace()));
  }
}

StateDict to_state_dict(const Py& value, const std::string& what) {
  if (!value || value->kind != PyValue::Kind::Dict) {
    throw Error(
        fmt::format("{} is a {}, not a state dict", what, value ? value->type_name() : "null"));
  }
  StateDict out;
  for (const auto& [k, v] : value->entries) {
    if (k->kind != PyValue::Kind::String || v->kind != PyValue::Kind::Tensor) {
      throw Error(
          fmt::format("{} is not a state dict: entry '{}' is a {}", what, k->text, v->type_name()));
    }
    out.emplace_back(k->text, v->tensor);
  }
  return out;
}

StateDict read_state_dict_file(const std::filesystem::path& path) {
  return to_state_dict(read_torch_file(path), "'" + path.string() + "'");
}

}  // namespace arcface
