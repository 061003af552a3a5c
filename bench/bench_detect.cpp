// Detector accuracy and speed on the raw LFW images with reference landmarks
// (shared/data/lfw/raw/landmarks.txt): for each detector, how often the main face is found,
// the mean landmark error normalised by the inter-ocular distance of the reference, and
// images/s (one thread, decoding excluded). Prints one JSON line per detector.
#include <CLI/CLI.hpp>

#include <array>
#include <chrono>
#include <cmath>
#include <fstream>
#include <sstream>

#include <torch/torch.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "arcface/detector.h"

namespace {

struct Reference {
  std::string path;
  std::array<cv::Point2f, 5> landmarks;
};

std::vector<Reference> read_references(const std::string& file) {
  std::vector<Reference> out;
  std::ifstream in(file);
  if (!in) throw std::runtime_error("cannot open " + file);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream f(line);
    Reference r;
    float skip;
    f >> r.path >> skip >> skip >> skip >> skip >> skip;
    for (auto& p : r.landmarks) f >> p.x >> p.y;
    out.push_back(r);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("detector accuracy and speed on raw LFW");
  std::string root = "../shared/data/lfw/raw", yunet, mtcnn;
  std::vector<std::string> detectors{"dlib", "yunet", "mtcnn"};
  int limit = 0;
  app.add_option("--root", root)->capture_default_str();
  app.add_option("--detectors", detectors)->capture_default_str();
  app.add_option("--yunet", yunet, "YuNet .onnx (default: <data>/models/yunet/...)");
  app.add_option("--mtcnn", mtcnn, "MTCNN weights folder (default: <data>/models/mtcnn)");
  app.add_option("--limit", limit, "only the first N images");
  CLI11_PARSE(app, argc, argv);
  const std::string models = root + "/../../models";
  if (yunet.empty()) yunet = models + "/yunet/face_detection_yunet_2023mar.onnx";
  if (mtcnn.empty()) mtcnn = models + "/mtcnn";
  torch::set_num_threads(1);  // one detector per thread, as align and eval run them
  cv::setNumThreads(1);

  auto refs = read_references(root + "/landmarks.txt");
  if (limit > 0 && static_cast<size_t>(limit) < refs.size()) refs.resize(limit);
  std::vector<cv::Mat> images;
  for (const auto& r : refs) images.push_back(cv::imread(root + "/" + r.path));

  for (const auto& type : detectors) {
    arcface::DetectorOptions o;
    o.type = type;
    o.model = type == "yunet" ? yunet : type == "mtcnn" ? mtcnn : "";
    auto detector = arcface::make_detector(o);
    detector->detect(images[0]);  // warm-up
    int found = 0;
    double error_sum = 0, worst = 0;
    int over_10 = 0;
    // Per point: mean error and mean signed offset, in inter-ocular units, to tell a
    // different landmark definition (a steady offset) from scatter.
    std::array<double, 5> point_error{}, dx{}, dy{};
    const auto start = std::chrono::steady_clock::now();
    for (size_t i = 0; i < refs.size(); ++i) {
      const auto faces = detector->detect(images[i]);
      const int main = arcface::main_face(faces, images[i].size());
      if (main < 0) continue;
      ++found;
      const auto& ref = refs[i].landmarks;
      const double eyes = cv::norm(ref[0] - ref[1]);
      double e = 0;
      for (int k = 0; k < 5; ++k) {
        const cv::Point2f d = faces[main].landmarks[k] - ref[k];
        e += cv::norm(d) / eyes / 5;
        point_error[k] += cv::norm(d) / eyes;
        dx[k] += d.x / eyes;
        dy[k] += d.y / eyes;
      }
      error_sum += e;
      worst = std::max(worst, e);
      over_10 += e > 0.10;
    }
    auto per_found = [&](const std::array<double, 5>& v) {
      std::vector<double> out;
      for (double x : v) out.push_back(std::round(1000 * x / std::max(found, 1)) / 1000);
      return out;
    };
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    nlohmann::json j{{"detector", type},
                     {"images", refs.size()},
                     {"found", found},
                     {"detection_rate", double(found) / refs.size()},
                     {"mean_nme", found ? error_sum / found : 0.0},
                     {"max_nme", worst},
                     {"nme_over_0.10", over_10},
                     {"seconds", s},
                     {"point_nme", per_found(point_error)},
                     {"point_dx", per_found(dx)},
                     {"point_dy", per_found(dy)},
                     {"images_per_s", refs.size() / s}};
    std::cout << j.dump() << std::endl;
  }
}
