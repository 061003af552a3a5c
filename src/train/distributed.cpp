#include "arcface/distributed.h"

#include <torch/torch.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <cstdlib>
#include <mutex>

#include <spdlog/fmt/fmt.h>

#include "arcface/error.h"
#include "util/progress.h"

namespace arcface {

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

int parse_int(const std::string& text, const std::string& what) {
  try {
    size_t used = 0;
    const int v = std::stoi(text, &used);
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  throw Error(fmt::format("{} = '{}' is not an integer", what, text));
}

std::pair<std::string, uint16_t> split_master(const std::string& master) {
  const auto colon = master.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    throw Error(fmt::format("--master '{}' must look like HOST:PORT", master));
  }
  const int port = parse_int(master.substr(colon + 1), "the port of --master " + master);
  if (port < 1 || port > 65535) throw Error(fmt::format("--master '{}': bad port", master));
  return {master.substr(0, colon), static_cast<uint16_t>(port)};
}

std::string message(const std::exception& e) {
  // c10's errors carry a C++ backtrace the user does not need.
  if (const auto* c = dynamic_cast<const c10::Error*>(&e)) return c->what_without_backtrace();
  return e.what();
}

using Clock = std::chrono::steady_clock;

}  // namespace

DistributedOptions DistributedOptions::from_env() {
  DistributedOptions o;
  if (auto v = env("WORLD_SIZE"); !v.empty()) o.world_size = parse_int(v, "WORLD_SIZE");
  if (auto v = env("RANK"); !v.empty()) o.rank = parse_int(v, "RANK");
  const auto addr = env("MASTER_ADDR"), port = env("MASTER_PORT");
  if (!addr.empty() || !port.empty()) {
    o.master = (addr.empty() ? "127.0.0.1" : addr) + ":" + (port.empty() ? "29500" : port);
  }
  return o;
}

void DistributedOptions::check() const {
  if (world_size < 1) throw Error(fmt::format("world size {} must be >= 1", world_size));
  if (rank < 0 || rank >= world_size) {
    throw Error(fmt::format("rank {} must be in 0..{} for world size {}", rank, world_size - 1,
                            world_size));
  }
  split_master(master);
}

struct DataParallel::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;

  struct Bucket {
    std::vector<size_t> members;  // parameter indices
    std::vector<int64_t> offsets;
    at::Tensor flat;
    size_t filled = 0;
    c10::intrusive_ptr<c10d::Work> work;
  };
  std::vector<at::Tensor> parameters;
  std::vector<size_t> bucket_of, slot_of;
  std::vector<bool> ready;
  std::vector<Bucket> buckets;
  std::mutex mutex;
};

template <class F>
auto DataParallel::collective(const char* what, F&& f) {
  try {
    return f();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(fmt::format(
        "rank {} of {}: {} failed: another rank stopped, died or did not answer within {} s "
        "({})",
        options_.rank, options_.world_size, what, options_.timeout.count(), message(e)));
  }
}

DataParallel::DataParallel(const DistributedOptions& options)
    : options_(options), impl_(std::make_unique<Impl>()) {
  options_.check();
  const auto [host, port] = split_master(options_.master);
  c10d::TCPStoreOptions so;
  so.port = port;
  so.isServer = options_.rank == 0;
  so.numWorkers = options_.world_size;
  so.waitWorkers = true;
  so.timeout = options_.timeout;
  try {
    impl_->store = c10::make_intrusive<c10d::TCPStore>(host, so);
    auto go = c10d::ProcessGroupGloo::Options::create(options_.timeout);
    // The address the ranks reach each other on: GLOO_SOCKET_IFNAME as in PyTorch, loopback
    // for a local run, otherwise this host's own address.
    if (const auto ifname = env("GLOO_SOCKET_IFNAME"); !ifname.empty()) {
      go->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    } else if (host == "localhost" || host.rfind("127.", 0) == 0) {
      go->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    } else {
      go->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    go->threads = 1;
    impl_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, options_.rank,
                                                               options_.world_size, go);
  } catch (const std::exception& e) {
    throw Error(fmt::format(
        "rank {} of {}: the rendezvous at {} failed: not all {} ranks joined within {} s ({})",
        options_.rank, options_.world_size, options_.master, options_.world_size,
        options_.timeout.count(), message(e)));
  }
}

DataParallel::~DataParallel() = default;

void DataParallel::broadcast(torch::nn::Module& module) {
  std::vector<at::Tensor> tensors;
  for (const auto& p : module.parameters()) tensors.push_back(p);
  for (const auto& b : module.buffers()) tensors.push_back(b);
  torch::NoGradGuard no_grad;
  collective("broadcasting rank 0's weights", [&] {
    for (auto& t : tensors) {
      // Gloo reduces dense contiguous tensors; copy through one where a tensor is not.
      std::vector<at::Tensor> one{t.is_contiguous() ? t : t.contiguous()};
      impl_->group->broadcast(one)->wait();
      if (!one[0].is_same(t)) t.copy_(one[0]);
    }
    return 0;
  });
}

void DataParallel::attach(const std::vector<at::Tensor>& parameters, int64_t bucket_bytes) {
  auto& m = *impl_;
  m.parameters = parameters;
  m.bucket_of.assign(parameters.size(), 0);
  m.slot_of.assign(parameters.size(), 0);
  m.ready.assign(parameters.size(), false);
  m.buckets.clear();
  // Backward produces the last layers' gradients first: buckets follow reverse order.
  int64_t bytes = bucket_bytes;
  for (size_t k = parameters.size(); k-- > 0;) {
    const auto& p = parameters[k];
    const int64_t size = p.numel() * static_cast<int64_t>(p.element_size());
    if (m.buckets.empty() || bytes + size > bucket_bytes) {
      m.buckets.emplace_back();
      bytes = 0;
    }
    auto& b = m.buckets.back();
    m.bucket_of[k] = m.buckets.size() - 1;
    m.slot_of[k] = b.members.size();
    b.offsets.push_back(
        b.offsets.empty() ? 0 : b.offsets.back() + m.parameters[b.members.back()].numel());
    b.members.push_back(k);
    bytes += size;
  }
  for (auto& b : m.buckets) {
    const int64_t n = b.offsets.back() + m.parameters[b.members.back()].numel();
    b.flat = torch::zeros({n}, m.parameters[b.members.front()].options());
  }
  for (size_t k = 0; k < parameters.size(); ++k) {
    // Called with the gradient as backward produces it, before it is accumulated.
    m.parameters[k].register_hook([this, k](const at::Tensor& grad) {
      auto& m = *impl_;
      std::lock_guard<std::mutex> lock(m.mutex);
      auto& b = m.buckets[m.bucket_of[k]];
      const auto slot = m.slot_of[k];
      b.flat.narrow(0, b.offsets[slot], grad.numel()).copy_(grad.reshape(-1));
      if (!m.ready[k]) {
        m.ready[k] = true;
        if (++b.filled == b.members.size()) launch(m.bucket_of[k]);
      }
    });
  }
}

void DataParallel::launch(size_t bucket) {
  auto& b = impl_->buckets[bucket];
  std::vector<at::Tensor> one{b.flat};
  b.work = impl_->group->allreduce(one);
}

void DataParallel::finish_gradients() {
  auto& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mutex);
  // Parameters that took no part in this step contribute zeros, in a fixed order on all ranks.
  for (size_t i = 0; i < m.buckets.size(); ++i) {
    auto& b = m.buckets[i];
    if (b.work) continue;
    for (size_t s = 0; s < b.members.size(); ++s) {
      if (!m.ready[b.members[s]]) {
        b.flat.narrow(0, b.offsets[s], m.parameters[b.members[s]].numel()).zero_();
      }
    }
    collective("averaging gradients", [&] {
      launch(i);
      return 0;
    });
  }
  const auto start = Clock::now();
  collective("averaging gradients", [&] {
    for (auto& b : m.buckets) b.work->wait();
    return 0;
  });
  wait_seconds_ += since(start);
  torch::NoGradGuard no_grad;
  for (auto& b : m.buckets) {
    b.flat.div_(options_.world_size);
    for (size_t s = 0; s < b.members.size(); ++s) {
      auto& p = m.parameters[b.members[s]];
      auto average = b.flat.narrow(0, b.offsets[s], p.numel()).view_as(p);
      if (p.grad().defined()) {
        p.mutable_grad().copy_(average);
      } else {
        p.mutable_grad() = average.clone();
      }
    }
    b.filled = 0;
    b.work.reset();
  }
  std::fill(m.ready.begin(), m.ready.end(), false);
}

std::vector<double> DataParallel::sum(const std::vector<double>& values) {
  std::vector<at::Tensor> one{torch::tensor(values, torch::kFloat64)};
  collective("summing step statistics", [&] {
    impl_->group->allreduce(one)->wait();
    return 0;
  });
  const auto t = one[0].contiguous();
  return {t.data_ptr<double>(), t.data_ptr<double>() + t.numel()};
}

}  // namespace arcface
