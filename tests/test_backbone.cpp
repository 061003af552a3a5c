#include <torch/torch.h>

#include "arcface/backbone.h"
#include "arcface/error.h"
#include "test_util.h"

namespace arcface {
namespace {

std::map<std::string, torch::Tensor> named(const BackboneImpl& b) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : b.named_parameters()) out[p.key()] = p.value();
  for (const auto& p : b.named_buffers()) out[p.key()] = p.value();
  return out;
}

int64_t parameter_count(const BackboneImpl& b) {
  int64_t n = 0;
  for (const auto& p : b.parameters()) n += p.numel();
  return n;
}

TEST(Backbone, ResNetFace18HasSeed000NamesAndShapes) {
  auto b = make_backbone(BackboneOptions("resnet18").input_size(128).channels(1));
  EXPECT_EQ(b->options().name(), "resnet_face18");
  EXPECT_DOUBLE_EQ(b->options().dropout(), 0.5);
  auto p = named(*b);
  EXPECT_EQ(p.at("conv1.weight").sizes(), (std::vector<int64_t>{64, 1, 3, 3}));
  EXPECT_EQ(p.at("layer1.0.bn0.weight").sizes(), (std::vector<int64_t>{64}));
  EXPECT_EQ(p.at("layer2.0.conv2.weight").sizes(), (std::vector<int64_t>{128, 64, 3, 3}));
  EXPECT_EQ(p.at("layer2.0.downsample.0.weight").sizes(), (std::vector<int64_t>{128, 64, 1, 1}));
  EXPECT_EQ(p.at("layer1.0.prelu.weight").sizes(), (std::vector<int64_t>{1}));
  EXPECT_EQ(p.at("fc5.weight").sizes(), (std::vector<int64_t>{512, 512 * 8 * 8}));
  EXPECT_TRUE(p.count("bn5.running_mean"));
  EXPECT_TRUE(p.count("layer4.1.bn2.num_batches_tracked"));
  EXPECT_FALSE(p.count("layer1.0.se.fc.0.weight"));
  // Seed 000's model is 25.6 M parameters at 128x128 gray.
  EXPECT_NEAR(parameter_count(*b) / 1e6, 25.6, 0.1);
  b->eval();
  EXPECT_EQ(b->forward(torch::randn({2, 1, 128, 128})).sizes(), (std::vector<int64_t>{2, 512}));
}

TEST(Backbone, SqueezeExcitationBlocks) {
  auto b = make_backbone(BackboneOptions("resnet_face18").input_size(64).channels(1).use_se(true));
  auto p = named(*b);
  EXPECT_EQ(p.at("layer1.0.se.fc.0.weight").sizes(), (std::vector<int64_t>{4, 64}));
  EXPECT_EQ(p.at("layer4.1.se.fc.2.weight").sizes(), (std::vector<int64_t>{512, 32}));
  b->eval();
  EXPECT_EQ(b->forward(torch::randn({2, 1, 64, 64})).sizes(), (std::vector<int64_t>{2, 512}));
}

TEST(Backbone, IResNet18HasInsightfaceNames) {
  auto b = make_backbone(BackboneOptions("iresnet18"));
  auto p = named(*b);
  EXPECT_EQ(p.at("layer1.0.prelu.weight").sizes(), (std::vector<int64_t>{64}));
  EXPECT_EQ(p.at("layer1.0.bn3.weight").sizes(), (std::vector<int64_t>{64}));
  EXPECT_EQ(p.at("fc.weight").sizes(), (std::vector<int64_t>{512, 512 * 7 * 7}));
  EXPECT_FALSE(p.at("features.weight").requires_grad());
  EXPECT_NEAR(parameter_count(*b) / 1e6, 24.0, 0.1);
  b->eval();
  EXPECT_EQ(b->forward(torch::randn({1, 3, 112, 112})).sizes(), (std::vector<int64_t>{1, 512}));
}

TEST(Backbone, MobileFaceNetHasInsightfaceNames) {
  auto b = make_backbone(BackboneOptions("mobilefacenet"));
  auto p = named(*b);
  EXPECT_EQ(p.at("layers.0.layers.0.weight").sizes(), (std::vector<int64_t>{128, 3, 3, 3}));
  EXPECT_EQ(p.at("layers.3.layers.0.layers.1.layers.0.weight").sizes(),
            (std::vector<int64_t>{128, 1, 3, 3}));
  EXPECT_EQ(p.at("conv_sep.layers.0.weight").sizes(), (std::vector<int64_t>{512, 256, 1, 1}));
  EXPECT_EQ(p.at("features.layers.0.layers.0.weight").sizes(),
            (std::vector<int64_t>{512, 1, 7, 7}));
  EXPECT_EQ(p.at("features.layers.2.weight").sizes(), (std::vector<int64_t>{512, 512}));
  EXPECT_TRUE(p.count("features.layers.3.running_var"));
  b->eval();
  EXPECT_EQ(b->forward(torch::randn({2, 3, 112, 112})).sizes(), (std::vector<int64_t>{2, 512}));
}

TEST(Backbone, InceptionResnetV1HasFacenetNames) {
  auto b = make_backbone(BackboneOptions("inception_resnet_v1").input_size(160));
  EXPECT_DOUBLE_EQ(b->options().dropout(), 0.6);
  auto p = named(*b);
  EXPECT_EQ(p.at("conv2d_1a.conv.weight").sizes(), (std::vector<int64_t>{32, 3, 3, 3}));
  EXPECT_FALSE(p.count("conv2d_1a.conv.bias"));
  EXPECT_TRUE(p.count("conv2d_4b.bn.running_var"));
  EXPECT_EQ(p.at("repeat_1.4.branch2.2.conv.weight").sizes(), (std::vector<int64_t>{32, 32, 3, 3}));
  EXPECT_EQ(p.at("repeat_2.9.branch1.1.conv.weight").sizes(),
            (std::vector<int64_t>{128, 128, 1, 7}));
  EXPECT_EQ(p.at("mixed_6a.branch1.2.conv.weight").sizes(), (std::vector<int64_t>{256, 192, 3, 3}));
  EXPECT_EQ(p.at("mixed_7a.branch2.2.conv.weight").sizes(), (std::vector<int64_t>{256, 256, 3, 3}));
  EXPECT_EQ(p.at("block8.conv2d.bias").sizes(), (std::vector<int64_t>{1792}));
  EXPECT_EQ(p.at("last_linear.weight").sizes(), (std::vector<int64_t>{512, 1792}));
  EXPECT_FALSE(p.count("last_linear.bias"));
  EXPECT_TRUE(p.count("last_bn.running_mean"));
  // facenet-pytorch's network without its classifier: 23,482,624 parameters.
  EXPECT_EQ(parameter_count(*b), 23482624);
  b->eval();
  EXPECT_EQ(b->forward(torch::randn({2, 3, 160, 160})).sizes(), (std::vector<int64_t>{2, 512}));
  auto small = make_backbone(BackboneOptions("inception_resnet_v1").input_size(112));
  small->eval();
  EXPECT_EQ(small->forward(torch::randn({1, 3, 112, 112})).sizes(), (std::vector<int64_t>{1, 512}));
  EXPECT_THROW(make_backbone(BackboneOptions("inception_resnet_v1").input_size(64)), Error);
}

TEST(Backbone, ForwardWorkMatchesTheArchitecture) {
  // GFLOP per forward image (2 x MACs), counted by hand in PERFORMANCE.md.
  auto gflops = [](const BackboneOptions& o) { return 2 * forward_macs(*make_backbone(o)) / 1e9; };
  EXPECT_NEAR(gflops(BackboneOptions("resnet_face18").input_size(128).channels(1)), 4.48, 0.05);
  EXPECT_NEAR(gflops(BackboneOptions("iresnet18")), 5.22, 0.05);
  EXPECT_NEAR(gflops(BackboneOptions("mobilefacenet")), 0.88, 0.05);
  // Counted with forward hooks in PyTorch (bench/bench_train.py's forward_macs).
  EXPECT_NEAR(gflops(BackboneOptions("inception_resnet_v1").input_size(112)), 1.19, 0.02);
  EXPECT_NEAR(gflops(BackboneOptions("inception_resnet_v1").input_size(160)), 2.84, 0.02);
}

// Folding BatchNorm for inference keeps the function of the eval-mode network.
void check_fold(const BackboneOptions& o) {
  torch::manual_seed(5);
  auto b = make_backbone(o);
  {
    torch::NoGradGuard no_grad;
    for (const auto& item : b->named_buffers()) {
      if (item.key().find("running_mean") != std::string::npos) item.value().uniform_(-0.3, 0.3);
      if (item.key().find("running_var") != std::string::npos) item.value().uniform_(0.5, 2.0);
    }
    for (const auto& item : b->named_parameters()) {
      if (item.key().find("bn") != std::string::npos && item.value().dim() == 1) {
        item.value().uniform_(0.5, 1.5);
      }
    }
  }
  b->eval();
  auto x = torch::randn({3, o.channels(), o.input_size(), o.input_size()});
  torch::NoGradGuard no_grad;
  auto before = b->forward(x);
  b->fold_batchnorm();
  auto after = b->forward(x);
  EXPECT_LT((before - after).abs().max().item<double>(), 1e-3 * before.abs().max().item<double>());
}

TEST(Backbone, FoldingBatchNormKeepsTheFunction) {
  check_fold(BackboneOptions("resnet_face18").input_size(64).channels(1));
  check_fold(BackboneOptions("resnet_face18").input_size(64).channels(1).use_se(true));
  check_fold(BackboneOptions("iresnet18").input_size(64));
  check_fold(BackboneOptions("mobilefacenet").input_size(64));
  check_fold(BackboneOptions("inception_resnet_v1").input_size(96));
}

TEST(Backbone, BadOptionsAreClearErrors) {
  EXPECT_THROW(make_backbone(BackboneOptions("vgg16")), Error);
  EXPECT_THROW(make_backbone(BackboneOptions("iresnet18").use_se(true)), Error);
  EXPECT_THROW(make_backbone(BackboneOptions("iresnet18").input_size(100)), Error);
  EXPECT_THROW(make_backbone(BackboneOptions("iresnet18").channels(2)), Error);
}

}  // namespace
}  // namespace arcface
