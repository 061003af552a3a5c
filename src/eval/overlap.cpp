#include "arcface/overlap.h"

#include <algorithm>
#include <chrono>
#include <map>

#include <torch/torch.h>

#include <spdlog/fmt/fmt.h>
#include <nlohmann/json.hpp>

#include "arcface/checkpoint.h"
#include "arcface/dataset.h"
#include "arcface/error.h"
#include "util/progress.h"

namespace arcface {

namespace {

// A person's two halves measure how close two means of the same face come: with fewer than two
// photos a half (LFW's many two-photo people) compares single photos, far noisier than the means
// the overlap compares, and would pull the threshold down.
constexpr size_t kHalvesFrom = 4;

// Unit mean descriptors of the people, and of two halves (alternate images) of those with
// kHalvesFrom or more: the genuine scores.
struct Means {
  at::Tensor people;          // [P, D]
  at::Tensor half_a, half_b;  // [Q, D]
};

Means mean_descriptors(Embedder& embedder, const People& set, const EvalOptions& options) {
  ImageSource source;
  source.root = set.root;
  std::vector<int64_t> owner, half;
  for (size_t p = 0; p < set.images.size(); ++p) {
    for (size_t i = 0; i < set.images[p].size(); ++i) {
      source.names.push_back(set.images[p][i]);
      owner.push_back(static_cast<int64_t>(p));
      half.push_back(static_cast<int64_t>(i % 2));
    }
  }
  const at::Tensor d = embed_images(embedder, source, options).to(torch::kFloat32);
  const auto people = static_cast<int64_t>(set.names.size());
  const at::Tensor who = torch::tensor(owner, torch::kLong);
  const at::Tensor which = torch::tensor(half, torch::kLong);
  auto mean = [&](const at::Tensor& rows) {
    at::Tensor sum = torch::zeros({people, d.size(1)});
    sum.index_add_(0, who.index({rows}), d.index({rows}));
    return sum;
  };
  Means m;
  m.people = torch::nn::functional::normalize(mean(torch::ones_like(who, torch::kBool)),
                                              torch::nn::functional::NormalizeFuncOptions().dim(1));
  std::vector<int64_t> paired;
  for (int64_t p = 0; p < people; ++p) {
    if (set.images[p].size() >= kHalvesFrom) paired.push_back(p);
  }
  const at::Tensor keep = torch::tensor(paired, torch::kLong);
  const auto unit = torch::nn::functional::NormalizeFuncOptions().dim(1);
  m.half_a = torch::nn::functional::normalize(mean(which == 0).index_select(0, keep), unit);
  m.half_b = torch::nn::functional::normalize(mean(which == 1).index_select(0, keep), unit);
  return m;
}

// The scores of every pair of different people of one set.
at::Tensor different_people(const at::Tensor& means) {
  const at::Tensor s = means.matmul(means.t());
  const auto n = means.size(0);
  const at::Tensor upper = torch::triu(torch::ones({n, n}, torch::kBool), 1);
  return s.masked_select(upper);
}

std::vector<double> to_vector(const at::Tensor& t) {
  const at::Tensor c = t.to(torch::kFloat64).contiguous();
  return {c.data_ptr<double>(), c.data_ptr<double>() + c.numel()};
}

// The value at quantile q of sorted values (the lower of two neighbours).
double quantile(const std::vector<double>& sorted, double q) {
  return sorted.empty() ? 0 : sorted[static_cast<size_t>(q * (sorted.size() - 1))];
}

std::vector<double> percentiles(const std::vector<double>& sorted) {
  std::vector<double> out;
  for (double q : {0.01, 0.05, 0.5, 0.95, 0.99, 0.999}) out.push_back(quantile(sorted, q));
  return out;
}

double share_at_least(const std::vector<double>& sorted, double threshold) {
  if (sorted.empty()) return 0;
  const auto below = std::lower_bound(sorted.begin(), sorted.end(), threshold) - sorted.begin();
  return static_cast<double>(sorted.size() - below) / sorted.size();
}

}  // namespace

People people_in_folders(const fs::path& root) {
  People set;
  set.root = root;
  for (const auto& person : scan_identities(root)) {
    std::vector<std::string> images;
    for (const auto& file : fs::recursive_directory_iterator(root / person.name)) {
      if (file.is_regular_file() && is_image_file(file.path())) {
        images.push_back(fs::relative(file.path(), root).generic_string());
      }
    }
    if (images.empty()) continue;
    std::sort(images.begin(), images.end());
    set.names.push_back(person.name);
    set.images.push_back(std::move(images));
  }
  if (set.names.empty()) throw Error(fmt::format("'{}' holds no images", root.string()));
  return set;
}

People people_in_list(const fs::path& list, const fs::path& root) {
  const Dataset data = read_train_list(list, root);
  std::map<int64_t, std::vector<std::string>> by_label;
  for (const auto& s : data.samples) by_label[s.label].push_back(s.path);
  People set;
  set.root = root;
  for (auto& [label, images] : by_label) {
    set.names.push_back(fs::path(images.front()).parent_path().generic_string());
    set.images.push_back(std::move(images));
  }
  return set;
}

OverlapResult find_overlap(Embedder& embedder, const People& train, const People& test,
                           const OverlapOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  torch::NoGradGuard no_grad;
  const Means a = mean_descriptors(embedder, train, options.eval);
  const Means b = mean_descriptors(embedder, test, options.eval);

  OverlapResult r;
  auto genuine =
      to_vector(torch::cat({(a.half_a * a.half_b).sum(1), (b.half_a * b.half_b).sum(1)}));
  auto impostor = to_vector(torch::cat({different_people(a.people), different_people(b.people)}));
  std::sort(genuine.begin(), genuine.end());
  std::sort(impostor.begin(), impostor.end());
  if (genuine.empty()) {
    throw Error(fmt::format(
        "overlap: nobody has {} images to measure one person against themself; give --threshold",
        kHalvesFrom));
  }
  r.genuine = score_stats(genuine);
  r.impostor = score_stats(impostor);
  r.genuine_percentiles = percentiles(genuine);
  r.impostor_percentiles = percentiles(impostor);
  if (options.threshold > -1) {
    r.threshold = options.threshold;
  } else {
    if (!(options.recall > 0 && options.recall < 1)) {
      throw Error(fmt::format("overlap: recall {} is not in (0, 1)", options.recall));
    }
    r.threshold = quantile(genuine, 1 - options.recall);
  }
  r.genuine_above = share_at_least(genuine, r.threshold);
  r.impostor_above = share_at_least(impostor, r.threshold);

  const at::Tensor cross = a.people.matmul(b.people.t());  // [train, test]
  const auto [best, best_test] = cross.max(1);
  for (int64_t i = 0; i < cross.size(0); ++i) {
    const double s = best[i].item<double>();
    if (s >= r.threshold) r.matches.push_back({i, best_test[i].item<int64_t>(), s});
  }
  std::sort(r.matches.begin(), r.matches.end(),
            [](const OverlapPair& x, const OverlapPair& y) { return x.score > y.score; });
  const int64_t k = std::min<int64_t>(options.closest, cross.numel());
  const auto [top, where] = cross.flatten().topk(k);
  for (int64_t i = 0; i < k; ++i) {
    const int64_t at = where[i].item<int64_t>();
    r.closest.push_back({at / cross.size(1), at % cross.size(1), top[i].item<double>()});
  }
  r.seconds = since(start);
  return r;
}

void write_overlap(const fs::path& dir, const People& train, const People& test,
                   const OverlapResult& r) {
  fs::create_directories(dir);
  auto rows = [&](const std::vector<OverlapPair>& pairs) {
    std::string tsv = "train_person\timages\ttest_person\tcosine\n";
    for (const auto& p : pairs) {
      tsv += fmt::format("{}\t{}\t{}\t{:.4f}\n", train.names[p.train], train.images[p.train].size(),
                         test.names[p.test], p.score);
    }
    return tsv;
  };
  write_file_atomic(dir / "overlap.tsv", rows(r.matches));
  write_file_atomic(dir / "closest.tsv", rows(r.closest));
  std::string exclude = fmt::format(
      "# training people whose mean descriptor reaches cosine {:.4f} with a person of {}\n",
      r.threshold, test.root.string());
  for (const auto& p : r.matches) {
    exclude += fmt::format("# {} ~ {} {:.4f}\n", train.names[p.train], test.names[p.test], p.score);
    for (const auto& image : train.images[p.train]) exclude += image + "\n";
  }
  write_file_atomic(dir / "exclude.txt", exclude);
  auto stats = [](const ScoreStats& s, const std::vector<double>& q) {
    return nlohmann::json{{"count", s.count}, {"mean", s.mean}, {"std", s.std}, {"min", s.min},
                          {"max", s.max},     {"p1", q[0]},     {"p5", q[1]},   {"median", q[2]},
                          {"p95", q[3]},      {"p99", q[4]},    {"p99.9", q[5]}};
  };
  const nlohmann::json j = {{"train_root", train.root.string()},
                            {"train_people", train.names.size()},
                            {"test_root", test.root.string()},
                            {"test_people", test.names.size()},
                            {"threshold", r.threshold},
                            {"genuine", stats(r.genuine, r.genuine_percentiles)},
                            {"impostor", stats(r.impostor, r.impostor_percentiles)},
                            {"genuine_at_or_above", r.genuine_above},
                            {"impostor_at_or_above", r.impostor_above},
                            {"matched_train_people", r.matches.size()},
                            {"seconds", r.seconds}};
  write_file_atomic(dir / "overlap.json", j.dump(2) + "\n");
}

}  // namespace arcface
