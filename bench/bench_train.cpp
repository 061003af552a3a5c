// Training throughput of one backbone with an ArcFace head: steady-state images/s, achieved
// GFLOP/s and the fraction of the peak of its precision measured in the same run. One line of JSON.
#include <torch/torch.h>

#include <chrono>
#include <iostream>

#include <spdlog/fmt/fmt.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "arcface/embedder.h"
#include "arcface/learner.h"
#include "arcface/system.h"
#include "bench_util.h"

extern "C" {
const char* malloc_conf = "dirty_decay_ms:-1,muzzy_decay_ms:-1,oversize_threshold:0";
}

int main(int argc, char** argv) {
  CLI::App app{"training step throughput"};
  std::string backbone = "iresnet18";
  int64_t input_size = 112, channels = 3, batch = 64, classes = 1000, steps = 8, warmup = 2;
  int threads = 0;
  std::string precision = "fp32", device_name = "cpu";
  bool channels_last = false, no_mkldnn = false;
  app.add_flag("--channels-last", channels_last);
  app.add_flag("--no-mkldnn", no_mkldnn, "convolutions through im2col + BLAS instead of oneDNN");
  app.add_option("--backbone", backbone);
  app.add_option("--input-size", input_size);
  app.add_option("--channels", channels);
  app.add_option("--batch-size", batch);
  app.add_option("--classes", classes);
  app.add_option("--steps", steps);
  app.add_option("--warmup", warmup);
  app.add_option("--threads", threads);
  app.add_option("--precision", precision, "fp32, bf16, fp16 (CUDA) or auto")
      ->capture_default_str();
  app.add_option("--device", device_name, "cpu, cuda, cuda:N or auto")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  using namespace arcface;
  threads = configure_threads(threads);
  const c10::Device device = parse_device(device_name);
  if (no_mkldnn) at::globalContext().setUserEnabledMkldnn(false);
  torch::manual_seed(0);
  auto net = make_backbone(
      BackboneOptions(backbone).input_size(input_size).channels(channels).embedding_dim(512));
  const double macs = forward_macs(*net);
  Learner learner(net, MarginHead(MarginHeadOptions(512, classes)),
                  LossOptions().type(LossType::Focal), {"sgd", 0.01, 0.9, 5e-4}, device);
  learner.precision(parse_precision(precision));
  learner.channels_last(channels_last);
  learner.train();
  // On the device already: this measures the step, not the copy (bench_loader measures input).
  auto images = torch::randn({batch, channels, input_size, input_size}).to(device);
  if (channels_last) images = images.contiguous(at::MemoryFormat::ChannelsLast);
  auto labels = torch::randint(classes, {batch}, torch::kLong).to(device);
  for (int64_t i = 0; i < warmup; ++i) learner.step(images, labels, 0.01, i);
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < steps; ++i) learner.step(images, labels, 0.01, warmup + i);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // Training work per image: forward, and backward at twice the forward, of the backbone and
  // the head's class matrix.
  const double gflop_per_image = 3 * 2 * (macs + 512.0 * classes) / 1e9;
  const double images_per_s = batch * steps / seconds;
  // Each step reads its loss back, so on a GPU the timed steps have finished.
  const bench::Peak peak = bench::measure_peak(learner.precision(), device);
  const auto sys = system_info();
  nlohmann::json out = {{"side", "C++ libtorch"},
                        {"backbone", net->options().name()},
                        {"input", fmt::format("{}x{}x{}", channels, input_size, input_size)},
                        {"batch", batch},
                        {"classes", classes},
                        {"channels_last", channels_last},
                        {"precision", to_string(learner.precision())},
                        {"device", device.str()},
                        {"mkldnn", !no_mkldnn},
                        {"threads", threads},
                        {"allocator", sys.allocator},
                        {"images_per_s", images_per_s},
                        {"gflop_per_image", gflop_per_image},
                        {"gflops", images_per_s * gflop_per_image},
                        {"peak_gflops", peak.gflops},
                        {"peak_source", peak.source},
                        {"fraction_of_peak", images_per_s * gflop_per_image / peak.gflops},
                        {"peak_rss_mib", peak_rss_mib()}};
  std::cout << out.dump() << std::endl;
}
