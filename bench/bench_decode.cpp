// Decoding and preprocessing rate of aligned crops, one thread: our pipeline (TurboJPEG, our
// conversion and resampling) against OpenCV's imdecode + cvtColor + resize, in the same run.
//   bench_decode --root ../shared/data/lfw/lfw-align-112 --images 3000 --size 72
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "arcface/image.h"

using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  CLI::App app{"decode + preprocess rate: ours against OpenCV"};
  std::string root;
  size_t images = 3000;
  int size = 72, rounds = 3;
  app.add_option("--root", root, "folder of JPEG crops")->required();
  app.add_option("--images", images, "how many")->capture_default_str();
  app.add_option("--size", size, "resized side (RGB)")->capture_default_str();
  app.add_option("--rounds", rounds, "alternating rounds")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  std::vector<std::vector<uint8_t>> bytes;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
    if (e.path().extension() != ".jpg") continue;
    bytes.push_back(arcface::read_file_bytes(e.path()));
    if (bytes.size() == images) break;
  }
  arcface::Preprocess pre;
  pre.input_size = size;
  pre.color = arcface::Color::RGB;
  auto seconds = [](Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  };
  for (int r = 0; r < rounds; ++r) {
    size_t check = 0;
    const auto t0 = Clock::now();
    for (const auto& b : bytes) check += arcface::decode_image(b, pre, "crop").pixels[0];
    const auto t1 = Clock::now();
    for (const auto& b : bytes) {
      cv::Mat m = cv::imdecode(
          cv::Mat(1, static_cast<int>(b.size()), CV_8U, const_cast<uint8_t*>(b.data())),
          cv::IMREAD_COLOR);
      cv::Mat rgb, out;
      cv::cvtColor(m, rgb, cv::COLOR_BGR2RGB);
      cv::resize(rgb, out, {size, size}, 0, 0, size < rgb.rows ? cv::INTER_AREA : cv::INTER_LINEAR);
      check -= out.data[0];
    }
    const auto t2 = Clock::now();
    const double ours = bytes.size() / seconds(t0, t1), theirs = bytes.size() / seconds(t1, t2);
    std::printf("round %d: ours %.0f img/s, OpenCV %.0f img/s, ours/OpenCV %.2f%s\n", r + 1, ours,
                theirs, ours / theirs, check == 0 ? "" : " (pixels differ!)");
  }
  return 0;
}
