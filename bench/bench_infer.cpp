// Inference speed of one backbone as `arcface eval` and `verify` run it (eval mode, BatchNorm
// folded, no autograd): batch-1 latency (median and 90th percentile of single-image forwards)
// and batched throughput, with GFLOP/s and the fraction of the peak of its precision measured in
// the same run. The weights are random: the work does not depend on them. One line of JSON.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <iostream>

#include <spdlog/fmt/fmt.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "arcface/backbone.h"
#include "arcface/system.h"
#include "bench_util.h"

extern "C" {
const char* malloc_conf = "dirty_decay_ms:-1,muzzy_decay_ms:-1,oversize_threshold:0";
}

namespace {

double seconds_of(const std::function<void()>& f) {
  const auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"inference latency and throughput"};
  std::string backbone = "iresnet18";
  int64_t input_size = 112, channels = 3, batch = 64, singles = 30, batches = 3;
  int threads = 0;
  app.add_option("--backbone", backbone);
  app.add_option("--input-size", input_size);
  app.add_option("--channels", channels);
  app.add_option("--batch-size", batch);
  app.add_option("--singles", singles, "batch-1 forwards timed")->check(CLI::PositiveNumber);
  app.add_option("--batches", batches, "full batches timed")->check(CLI::PositiveNumber);
  app.add_option("--threads", threads);
  CLI11_PARSE(app, argc, argv);

  using namespace arcface;
  threads = configure_threads(threads);
  torch::manual_seed(0);
  auto net = make_backbone(
      BackboneOptions(backbone).input_size(input_size).channels(channels).embedding_dim(512));
  const double gflop = 2 * forward_macs(*net) / 1e9;
  net->eval();
  net->fold_batchnorm();
  torch::InferenceMode guard;

  const auto one = torch::randn({1, channels, input_size, input_size});
  const auto many = torch::randn({batch, channels, input_size, input_size});
  for (int i = 0; i < 3; ++i) net->forward(one);  // oneDNN picks its kernels on first use
  std::vector<double> latency;
  for (int64_t i = 0; i < singles; ++i) latency.push_back(seconds_of([&] { net->forward(one); }));
  std::sort(latency.begin(), latency.end());
  net->forward(many);
  double batched = 0;
  for (int64_t i = 0; i < batches; ++i) batched += seconds_of([&] { net->forward(many); });
  const double images_per_s = batch * batches / batched;

  const bench::Peak peak = bench::measure_peak(Precision::Fp32);
  const auto sys = system_info();
  nlohmann::json out = {{"backbone", net->options().name()},
                        {"input", fmt::format("{}x{}x{}", channels, input_size, input_size)},
                        {"threads", threads},
                        {"allocator", sys.allocator},
                        {"gflop_per_image", gflop},
                        {"latency_ms_median", 1e3 * latency[latency.size() / 2]},
                        {"latency_ms_p90", 1e3 * latency[latency.size() * 9 / 10]},
                        {"batch1_gflops", gflop / latency[latency.size() / 2]},
                        {"batch", batch},
                        {"images_per_s", images_per_s},
                        {"batched_gflops", images_per_s * gflop},
                        {"peak_gflops", peak.gflops},
                        {"peak_source", peak.source},
                        {"batched_fraction_of_peak", images_per_s * gflop / peak.gflops},
                        {"peak_rss_mib", peak_rss_mib()}};
  std::cout << out.dump() << std::endl;
}
