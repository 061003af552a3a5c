// Gallery search at scale: enrolment rate into SQLite, index build time and memory, search
// latency p50/p99 of the exact index and of HNSW, and HNSW's recall@10 against exact search,
// on random unit descriptors (each its own subject). One line of JSON per gallery size.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <random>
#include <sstream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "arcface/gallery.h"
#include "arcface/system.h"

extern "C" {
const char* malloc_conf = "dirty_decay_ms:-1,muzzy_decay_ms:-1,oversize_threshold:0";
}

namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::vector<float> unit(std::mt19937& rng, int dim) {
  std::normal_distribution<float> normal;
  std::vector<float> v(dim);
  double norm = 0;
  for (auto& x : v) norm += (x = normal(rng)) * x;
  for (auto& x : v) x /= static_cast<float>(std::sqrt(norm));
  return v;
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"gallery search at scale"};
  std::string sizes_text = "10000,100000", dir = "/tmp/arcface_bench_gallery";
  int dim = 512, queries = 500;
  int64_t hnsw_up_to = 100000;
  app.add_option("--sizes", sizes_text, "gallery sizes, comma-separated");
  app.add_option("--dim", dim);
  app.add_option("--queries", queries);
  app.add_option("--dir", dir, "where the gallery files go (removed after)");
  app.add_option("--hnsw-up-to", hnsw_up_to,
                 "build HNSW for galleries up to this size only (about 260 faces/s to build)");
  CLI11_PARSE(app, argc, argv);
  using namespace arcface;
  configure_threads(0);
  std::vector<int64_t> sizes;
  std::stringstream in(sizes_text);
  for (std::string s; std::getline(in, s, ',');) sizes.push_back(std::stoll(s));

  for (const int64_t n : sizes) {
    fs::remove_all(dir);
    fs::create_directories(dir);
    const fs::path file = fs::path(dir) / "g.db";
    GalleryModel model;
    model.network = "random";
    model.input = "-";
    model.weights_hash = "-";
    model.dim = dim;
    model.flip = "none";
    std::mt19937 rng(7);
    std::vector<std::vector<float>> probes;
    double enrol_seconds = 0;
    {
      GalleryOptions exact;
      exact.hnsw_from = n + 1;
      Gallery g = Gallery::create(file, model, exact);
      const int64_t batch = 1000;
      for (int64_t begin = 0; begin < n; begin += batch) {
        std::vector<std::pair<std::string, NewFace>> faces;
        for (int64_t i = begin; i < std::min(n, begin + batch); ++i) {
          NewFace f;
          f.embedding = unit(rng, dim);
          f.source = std::to_string(i);
          if (static_cast<int64_t>(probes.size()) < queries && i % (n / queries + 1) == 0) {
            probes.push_back(f.embedding);
          }
          faces.emplace_back(std::to_string(i), std::move(f));
        }
        const auto t = Clock::now();
        for (auto& [name, f] : faces) g.add_faces(g.add_subject(name), {f});
        enrol_seconds += since(t);
      }
    }
    // Probes: enrolled faces seen again with noise (cosine about 0.7 to the original).
    for (auto& p : probes) {
      const auto noise = unit(rng, dim);
      double norm = 0;
      for (int k = 0; k < dim; ++k) norm += (p[k] = p[k] + noise[k]) * p[k];
      for (auto& x : p) x /= static_cast<float>(std::sqrt(norm));
    }
    nlohmann::json row = {{"faces", n},
                          {"dim", dim},
                          {"enrol_faces_per_s", n / enrol_seconds},
                          {"sqlite_mib", fs::file_size(file) / double(1 << 20)}};
    std::vector<std::vector<int64_t>> exact_top;
    for (const bool hnsw : {false, true}) {
      if (hnsw && n > hnsw_up_to) {
        row["hnsw"] = "not built (--hnsw-up-to)";
        continue;
      }
      GalleryOptions o;
      o.hnsw_from = hnsw ? 0 : n + 1;
      o.aggregation = Aggregation::BestFace;  // face by face, through the index
      const double before = rss_mib();
      const auto t = Clock::now();
      Gallery g = Gallery::open(file, {}, o);
      const double open_seconds = since(t);
      const double index_mib = rss_mib() - before;
      std::vector<double> latency;
      double recall = 0;
      for (size_t q = 0; q < probes.size(); ++q) {
        const auto t0 = Clock::now();
        const auto found = g.search(probes[q], 10);
        latency.push_back(since(t0) * 1e3);
        std::vector<int64_t> ids;
        for (const auto& m : found) ids.push_back(m.subject);
        if (!hnsw) {
          exact_top.push_back(ids);
        } else {
          int hit = 0;
          for (auto id : ids) hit += std::count(exact_top[q].begin(), exact_top[q].end(), id);
          recall += hit / 10.0;
        }
      }
      const std::string key = hnsw ? "hnsw" : "exact";
      row[key] = {{"index", g.index_kind()},
                  {"open_seconds", open_seconds},
                  {"index_mib", index_mib},
                  {"p50_ms", percentile(latency, 0.5)},
                  {"p99_ms", percentile(latency, 0.99)}};
      if (hnsw) row[key]["recall_at_10"] = recall / probes.size();
    }
    std::cout << row.dump() << std::endl;
  }
  fs::remove_all(dir);
}
