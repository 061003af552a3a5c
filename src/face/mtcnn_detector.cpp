// MTCNN (Zhang et al. 2016) as facenet-pytorch runs it, which seed 002 used to crop LFW: the
// P-Net proposes boxes on an image pyramid, the R-Net and O-Net refine them, the O-Net also
// gives the five landmarks. The three networks read facenet-pytorch's weight files as they are
// distributed (legacy torch.save state dicts); the module names match theirs.
#include <torch/torch.h>

#include <filesystem>
#include <numeric>

#include <spdlog/fmt/fmt.h>
#include <opencv2/imgproc.hpp>

#include "arcface/checkpoint.h"
#include "arcface/error.h"
#include "arcface/torch_file.h"
#include "face/detectors.h"
#include "models/kernels.h"

namespace arcface {

namespace {

namespace nn = torch::nn;
namespace F = torch::nn::functional;

nn::MaxPool2d pool(int64_t kernel, int64_t stride) {
  return nn::MaxPool2d(nn::MaxPool2dOptions(kernel).stride(stride).ceil_mode(true));
}

struct PNetImpl : nn::Module {
  PNetImpl() {
    conv1 = register_module("conv1", nn::Conv2d(3, 10, 3));
    prelu1 = register_module("prelu1", PReLU(10));
    conv2 = register_module("conv2", nn::Conv2d(10, 16, 3));
    prelu2 = register_module("prelu2", PReLU(16));
    conv3 = register_module("conv3", nn::Conv2d(16, 32, 3));
    prelu3 = register_module("prelu3", PReLU(32));
    conv4_1 = register_module("conv4_1", nn::Conv2d(32, 2, 1));
    conv4_2 = register_module("conv4_2", nn::Conv2d(32, 4, 1));
  }
  /// Box regression [N, 4, h, w] and face probability [N, h, w].
  std::pair<at::Tensor, at::Tensor> forward(at::Tensor x) {
    x = pool1->forward(prelu1->forward(conv1->forward(x)));
    x = prelu3->forward(conv3->forward(prelu2->forward(conv2->forward(x))));
    return {conv4_2->forward(x), torch::softmax(conv4_1->forward(x), 1).select(1, 1)};
  }
  nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr}, conv4_1{nullptr}, conv4_2{nullptr};
  PReLU prelu1{nullptr}, prelu2{nullptr}, prelu3{nullptr};
  nn::MaxPool2d pool1 = pool(2, 2);
};
TORCH_MODULE(PNet);

struct RNetImpl : nn::Module {
  RNetImpl() {
    conv1 = register_module("conv1", nn::Conv2d(3, 28, 3));
    prelu1 = register_module("prelu1", PReLU(28));
    conv2 = register_module("conv2", nn::Conv2d(28, 48, 3));
    prelu2 = register_module("prelu2", PReLU(48));
    conv3 = register_module("conv3", nn::Conv2d(48, 64, 2));
    prelu3 = register_module("prelu3", PReLU(64));
    dense4 = register_module("dense4", nn::Linear(576, 128));
    prelu4 = register_module("prelu4", PReLU(128));
    dense5_1 = register_module("dense5_1", nn::Linear(128, 2));
    dense5_2 = register_module("dense5_2", nn::Linear(128, 4));
  }
  std::pair<at::Tensor, at::Tensor> forward(at::Tensor x) {
    x = pool1->forward(prelu1->forward(conv1->forward(x)));
    x = pool2->forward(prelu2->forward(conv2->forward(x)));
    x = prelu3->forward(conv3->forward(x));
    // The weights were trained (in Caffe) on a width-major flattening.
    x = prelu4->forward(dense4->forward(x.permute({0, 3, 2, 1}).flatten(1)));
    return {dense5_2->forward(x), torch::softmax(dense5_1->forward(x), 1).select(1, 1)};
  }
  nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  nn::Linear dense4{nullptr}, dense5_1{nullptr}, dense5_2{nullptr};
  PReLU prelu1{nullptr}, prelu2{nullptr}, prelu3{nullptr}, prelu4{nullptr};
  nn::MaxPool2d pool1 = pool(3, 2), pool2 = pool(3, 2);
};
TORCH_MODULE(RNet);

struct ONetImpl : nn::Module {
  ONetImpl() {
    conv1 = register_module("conv1", nn::Conv2d(3, 32, 3));
    prelu1 = register_module("prelu1", PReLU(32));
    conv2 = register_module("conv2", nn::Conv2d(32, 64, 3));
    prelu2 = register_module("prelu2", PReLU(64));
    conv3 = register_module("conv3", nn::Conv2d(64, 64, 3));
    prelu3 = register_module("prelu3", PReLU(64));
    conv4 = register_module("conv4", nn::Conv2d(64, 128, 2));
    prelu4 = register_module("prelu4", PReLU(128));
    dense5 = register_module("dense5", nn::Linear(1152, 256));
    prelu5 = register_module("prelu5", PReLU(256));
    dense6_1 = register_module("dense6_1", nn::Linear(256, 2));
    dense6_2 = register_module("dense6_2", nn::Linear(256, 4));
    dense6_3 = register_module("dense6_3", nn::Linear(256, 10));
  }
  /// Box regression [N, 4], landmarks [N, 10] (x1..x5, y1..y5 relative to the box), probability.
  std::tuple<at::Tensor, at::Tensor, at::Tensor> forward(at::Tensor x) {
    x = pool1->forward(prelu1->forward(conv1->forward(x)));
    x = pool2->forward(prelu2->forward(conv2->forward(x)));
    x = pool3->forward(prelu3->forward(conv3->forward(x)));
    x = prelu4->forward(conv4->forward(x));
    x = prelu5->forward(dense5->forward(x.permute({0, 3, 2, 1}).flatten(1)));
    return {dense6_2->forward(x), dense6_3->forward(x),
            torch::softmax(dense6_1->forward(x), 1).select(1, 1)};
  }
  nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr}, conv4{nullptr};
  nn::Linear dense5{nullptr}, dense6_1{nullptr}, dense6_2{nullptr}, dense6_3{nullptr};
  PReLU prelu1{nullptr}, prelu2{nullptr}, prelu3{nullptr}, prelu4{nullptr}, prelu5{nullptr};
  nn::MaxPool2d pool1 = pool(3, 2), pool2 = pool(3, 2), pool3 = pool(2, 2);
};
TORCH_MODULE(ONet);

// Boxes are rows [x1, y1, x2, y2, score] of a float tensor.
at::Tensor nms(const at::Tensor& boxes, double threshold, bool min_overlap) {
  if (boxes.size(0) == 0) return boxes;
  auto b = boxes.contiguous();
  const int64_t n = b.size(0);
  const float* p = b.data_ptr<float>();
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t i, int64_t j) { return p[5 * i + 4] > p[5 * j + 4]; });
  auto area = [&](int64_t i) {
    return (p[5 * i + 2] - p[5 * i] + 1) * (p[5 * i + 3] - p[5 * i + 1] + 1);
  };
  std::vector<bool> dropped(n, false);
  std::vector<int64_t> keep;
  for (int64_t a = 0; a < n; ++a) {
    const int64_t i = order[a];
    if (dropped[i]) continue;
    keep.push_back(i);
    for (int64_t c = a + 1; c < n; ++c) {
      const int64_t j = order[c];
      if (dropped[j]) continue;
      const float w =
          std::max(0.0f, std::min(p[5 * i + 2], p[5 * j + 2]) - std::max(p[5 * i], p[5 * j]) + 1);
      const float h = std::max(
          0.0f, std::min(p[5 * i + 3], p[5 * j + 3]) - std::max(p[5 * i + 1], p[5 * j + 1]) + 1);
      const float inter = w * h;
      const float overlap =
          min_overlap ? inter / std::min(area(i), area(j)) : inter / (area(i) + area(j) - inter);
      if (overlap > threshold) dropped[j] = true;
    }
  }
  return torch::tensor(keep, torch::kLong);
}

// Makes boxes square around their centres.
at::Tensor square_boxes(at::Tensor b) {
  b = b.clone();
  auto w = b.select(1, 2) - b.select(1, 0), h = b.select(1, 3) - b.select(1, 1);
  auto l = torch::max(w, h);
  b.select(1, 0) += w * 0.5 - l * 0.5;
  b.select(1, 1) += h * 0.5 - l * 0.5;
  b.select(1, 2).copy_(b.select(1, 0) + l);
  b.select(1, 3).copy_(b.select(1, 1) + l);
  return b;
}

// Applies box regression offsets (relative to the box size).
at::Tensor regress(at::Tensor b, const at::Tensor& reg) {
  b = b.clone();
  auto w = b.select(1, 2) - b.select(1, 0) + 1, h = b.select(1, 3) - b.select(1, 1) + 1;
  b.select(1, 0) += reg.select(1, 0) * w;
  b.select(1, 1) += reg.select(1, 1) * h;
  b.select(1, 2) += reg.select(1, 2) * w;
  b.select(1, 3) += reg.select(1, 3) * h;
  return b;
}

// The image regions of the boxes (clipped as facenet-pytorch does), resized by area averaging
// to size x size and normalised.
at::Tensor crops(const at::Tensor& image, const at::Tensor& boxes, int64_t size) {
  const int64_t h = image.size(2), w = image.size(3);
  std::vector<at::Tensor> out;
  auto b = boxes.contiguous();
  for (int64_t k = 0; k < b.size(0); ++k) {
    const int64_t x = std::max<int64_t>(1, static_cast<int64_t>(b[k][0].item<float>()));
    const int64_t y = std::max<int64_t>(1, static_cast<int64_t>(b[k][1].item<float>()));
    const int64_t ex = std::min<int64_t>(w, static_cast<int64_t>(b[k][2].item<float>()));
    const int64_t ey = std::min<int64_t>(h, static_cast<int64_t>(b[k][3].item<float>()));
    if (ey > y - 1 && ex > x - 1) {
      auto region = image.slice(2, y - 1, ey).slice(3, x - 1, ex);
      out.push_back(F::adaptive_avg_pool2d(region, F::AdaptiveAvgPool2dFuncOptions({size, size})));
    } else {
      out.push_back(torch::full({1, 3, size, size}, 127.5));
    }
  }
  return (torch::cat(out) - 127.5) * 0.0078125;
}

class MtcnnDetector : public FaceDetector {
 public:
  MtcnnDetector(const std::string& folder, float threshold) : final_threshold_(threshold) {
    load(*pnet_, folder, "pnet.pt");
    load(*rnet_, folder, "rnet.pt");
    load(*onet_, folder, "onet.pt");
    pnet_->eval();
    rnet_->eval();
    onet_->eval();
  }

  std::vector<Face> detect(const cv::Mat& bgr) override {
    torch::InferenceMode guard;
    cv::Mat rgb;
    cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
    auto image = torch::from_blob(rgb.data, {rgb.rows, rgb.cols, 3}, torch::kUInt8)
                     .permute({2, 0, 1})
                     .unsqueeze(0)
                     .to(torch::kFloat32);
    const int64_t h = image.size(2), w = image.size(3);

    // Stage 1: P-Net over a pyramid from 12/min_size down to 12 pixels.
    std::vector<at::Tensor> proposals;
    double scale = 12.0 / kMinSize;
    for (double side = std::min(h, w) * scale; side >= 12; side *= kFactor, scale *= kFactor) {
      const int64_t sh = static_cast<int64_t>(h * scale + 1),
                    sw = static_cast<int64_t>(w * scale + 1);
      auto scaled = F::adaptive_avg_pool2d(image, F::AdaptiveAvgPool2dFuncOptions({sh, sw}));
      auto [reg, prob] = pnet_->forward((scaled - 127.5) * 0.0078125);
      auto cells = (prob[0] >= kThresholds[0]).nonzero();  // [k, 2] rows (y, x)
      if (cells.size(0) == 0) continue;
      auto yx = cells.to(torch::kFloat32);
      auto xy = yx.flip(1);
      auto score = prob[0].index({cells.select(1, 0), cells.select(1, 1)});
      auto offsets =
          reg[0].index({torch::indexing::Slice(), cells.select(1, 0), cells.select(1, 1)}).t();
      auto q1 = ((2 * xy + 1) / scale).floor(), q2 = ((2 * xy + 12) / scale).floor();
      auto boxes = torch::cat({q1, q2, score.unsqueeze(1), offsets}, 1);
      proposals.push_back(boxes.index_select(0, nms(boxes.slice(1, 0, 5), 0.5, false)));
    }
    if (proposals.empty()) return {};
    auto boxes = torch::cat(proposals);
    boxes = boxes.index_select(0, nms(boxes.slice(1, 0, 5), 0.7, false));
    // The first regression uses the box size without the +1 of the later ones.
    auto bw1 = (boxes.select(1, 2) - boxes.select(1, 0)).unsqueeze(1);
    auto bh1 = (boxes.select(1, 3) - boxes.select(1, 1)).unsqueeze(1);
    auto size = torch::cat({bw1, bh1, bw1, bh1}, 1);
    auto refined = boxes.slice(1, 0, 4) + boxes.slice(1, 5, 9) * size;
    boxes = square_boxes(torch::cat({refined, boxes.slice(1, 4, 5)}, 1));

    // Stage 2: R-Net on 24x24 crops.
    {
      auto [reg, prob] = rnet_->forward(crops(image, boxes, 24));
      auto pass = (prob > kThresholds[1]).nonzero().squeeze(1);
      if (pass.size(0) == 0) return {};
      boxes = torch::cat(
          {boxes.index_select(0, pass).slice(1, 0, 4), prob.index_select(0, pass).unsqueeze(1)}, 1);
      reg = reg.index_select(0, pass);
      auto keep = nms(boxes, 0.7, false);
      boxes = boxes.index_select(0, keep);
      reg = reg.index_select(0, keep);
      boxes =
          square_boxes(torch::cat({regress(boxes.slice(1, 0, 4), reg), boxes.slice(1, 4, 5)}, 1));
    }

    // Stage 3: O-Net on 48x48 crops, with landmarks.
    auto [reg, points, prob] = onet_->forward(crops(image, boxes, 48));
    auto pass = (prob > kThresholds[2]).nonzero().squeeze(1);
    if (pass.size(0) == 0) return {};
    boxes = torch::cat(
        {boxes.index_select(0, pass).slice(1, 0, 4), prob.index_select(0, pass).unsqueeze(1)}, 1);
    reg = reg.index_select(0, pass);
    points = points.index_select(0, pass);
    auto bw = (boxes.select(1, 2) - boxes.select(1, 0) + 1).unsqueeze(1);
    auto bh = (boxes.select(1, 3) - boxes.select(1, 1) + 1).unsqueeze(1);
    auto px = bw * points.slice(1, 0, 5) + boxes.select(1, 0).unsqueeze(1) - 1;
    auto py = bh * points.slice(1, 5, 10) + boxes.select(1, 1).unsqueeze(1) - 1;
    boxes = torch::cat({regress(boxes.slice(1, 0, 4), reg), boxes.slice(1, 4, 5)}, 1);
    auto keep = nms(boxes, 0.7, true);

    std::vector<Face> faces;
    for (int64_t i = 0; i < keep.size(0); ++i) {
      const int64_t k = keep[i].item<int64_t>();
      Face f;
      const float x1 = boxes[k][0].item<float>(), y1 = boxes[k][1].item<float>();
      f.box = cv::Rect2f(x1, y1, boxes[k][2].item<float>() - x1, boxes[k][3].item<float>() - y1);
      for (int p = 0; p < 5; ++p) f.landmarks[p] = {px[k][p].item<float>(), py[k][p].item<float>()};
      f.score = boxes[k][4].item<float>();
      if (f.score >= final_threshold_) faces.push_back(f);
    }
    return faces;
  }

  std::string name() const override { return "mtcnn"; }

 private:
  static void load(nn::Module& net, const std::string& folder, const std::string& file) {
    const auto path = std::filesystem::path(folder) / file;
    load_state_dict(net, read_state_dict_file(path), "MTCNN weights '" + path.string() + "'");
  }

  // facenet-pytorch's defaults.
  static constexpr double kMinSize = 20, kFactor = 0.709;
  static constexpr double kThresholds[3] = {0.6, 0.7, 0.7};
  float final_threshold_;
  PNet pnet_;
  RNet rnet_;
  ONet onet_;
};

}  // namespace

std::unique_ptr<FaceDetector> make_mtcnn_detector(const std::string& folder, float threshold) {
  std::error_code ec;
  if (!std::filesystem::is_directory(folder, ec)) {
    throw Error(fmt::format("MTCNN weights folder '{}' not found (--detector-model)", folder));
  }
  return std::make_unique<MtcnnDetector>(folder, threshold);
}

}  // namespace arcface
