// Where the time of a training step (or an inference batch) goes: wall time of the outermost
// operators, forward ops and autograd nodes alike, summed over a few steps.
#include <ATen/record_function.h>
#include <torch/torch.h>

#include <chrono>
#include <iostream>
#include <map>

#include <spdlog/fmt/fmt.h>
#include <CLI/CLI.hpp>

#include "arcface/learner.h"
#include "arcface/system.h"

extern "C" {
const char* malloc_conf = "dirty_decay_ms:-1,muzzy_decay_ms:-1,oversize_threshold:0";
}

namespace {

using Clock = std::chrono::steady_clock;
thread_local int depth = 0;
thread_local Clock::time_point started;
std::map<std::string, std::pair<double, int64_t>> totals;  // name -> seconds, calls
bool recording = false;

std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction&) {
  if (depth++ == 0) started = Clock::now();
  return nullptr;
}

bool by_shape = false;

std::string key_of(const at::RecordFunction& fn) {
  std::string key = fn.name();
  if (by_shape && key == "aten::conv2d" && !fn.inputs().empty() && fn.inputs()[0].isTensor()) {
    const auto& x = fn.inputs()[0].toTensor();
    const auto& w = fn.inputs()[1].toTensor();
    key += fmt::format(" {}x{} {}->{} k{}", x.size(2), x.size(3), w.size(1), w.size(0), w.size(2));
  }
  return key;
}

void on_end(const at::RecordFunction& fn, at::ObserverContext*) {
  if (--depth == 0 && recording) {
    auto& t = totals[key_of(fn)];
    t.first += std::chrono::duration<double>(Clock::now() - started).count();
    ++t.second;
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"per-operator time of a training step"};
  std::string backbone = "resnet_face18";
  int64_t input_size = 128, channels = 1, batch = 32, classes = 1000, steps = 3;
  bool inference = false, no_fold = false;
  std::string precision = "fp32";
  app.add_option("--backbone", backbone);
  app.add_option("--input-size", input_size);
  app.add_option("--channels", channels);
  app.add_option("--batch-size", batch);
  app.add_option("--classes", classes);
  app.add_option("--steps", steps);
  app.add_flag("--inference", inference, "profile forward passes in inference mode instead");
  app.add_flag("--by-shape", by_shape, "split convolutions by their shapes");
  app.add_flag("--no-fold", no_fold, "keep BatchNorm unfolded at inference");
  app.add_option("--precision", precision, "fp32, bf16 or auto (training steps)");
  CLI11_PARSE(app, argc, argv);

  using namespace arcface;
  configure_threads(0);
  auto net = make_backbone(
      BackboneOptions(backbone).input_size(input_size).channels(channels).embedding_dim(512));
  Learner learner(net, MarginHead(MarginHeadOptions(512, classes)),
                  LossOptions().type(LossType::Focal), {"sgd", 0.01, 0.9, 5e-4}, torch::kCPU);
  learner.precision(parse_precision(precision));
  auto images = torch::randn({batch, channels, input_size, input_size});
  auto labels = torch::randint(classes, {batch}, torch::kLong);
  auto run = [&](int64_t i) {
    if (inference) {
      torch::InferenceMode guard;
      net->forward(images);
    } else {
      learner.step(images, labels, 0.01, i);
    }
  };
  learner.train(!inference);
  if (inference && !no_fold) net->fold_batchnorm();  // as the embedder runs it
  run(0);
  auto handle = at::addGlobalCallback(
      at::RecordFunctionCallback(on_start, on_end)
          .needsInputs(by_shape)
          .scopes({at::RecordScope::FUNCTION, at::RecordScope::BACKWARD_FUNCTION}));
  recording = true;
  const auto start = Clock::now();
  for (int64_t i = 1; i <= steps; ++i) run(i);
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  recording = false;
  at::removeCallback(handle);

  std::vector<std::pair<std::string, std::pair<double, int64_t>>> rows(totals.begin(),
                                                                       totals.end());
  std::sort(rows.begin(), rows.end(),
            [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
  double covered = 0;
  fmt::print("{} {}x{}x{} batch {}, {}, {} {}: {:.3f} s per step\n", backbone, channels, input_size,
             input_size, batch, to_string(learner.precision()), steps,
             inference ? "forward passes" : "training steps", wall / steps);
  fmt::print("{:<44} {:>9} {:>7} {:>7}\n", "operator", "s/step", "share", "calls");
  for (const auto& [name, t] : rows) {
    covered += t.first;
    if (t.first / wall < 0.003) continue;
    fmt::print("{:<44} {:>9.4f} {:>6.1f}% {:>7}\n", name, t.first / steps, 100 * t.first / wall,
               t.second / steps);
  }
  fmt::print("{:<44} {:>9.4f} {:>6.1f}%\n", "(outside operators)", (wall - covered) / steps,
             100 * (wall - covered) / wall);
}
