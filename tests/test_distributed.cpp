// Data-parallel training with real processes on loopback, as users start them.
#include <torch/torch.h>

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <thread>

#include <spdlog/fmt/fmt.h>

#include "arcface/checkpoint.h"
#include "arcface/distributed.h"
#include "arcface/error.h"
#include "arcface/learner.h"
#include "fixture_model.h"
#include "test_util.h"

namespace arcface {
namespace {

namespace fs = std::filesystem;

// A port per test process, so parallel test runs do not meet at the same rendezvous.
int free_port(int offset) { return 20000 + (getpid() * 7 + offset) % 30000; }

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs a bash script; its exit code.
int run(const std::string& script) {
  const auto path = fs::temp_directory_path() / fmt::format("arcface_dist_{}.sh", getpid());
  std::ofstream(path) << script << "\n";
  const int status = std::system(("bash '" + path.string() + "'").c_str());
  fs::remove(path);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The fixture model's training images, its weights as the start, no dropout and frozen
// BatchNorm: each image's gradient then depends on that image alone, so splitting a batch
// across ranks must not change the result (in fp32: bf16 rounds each rank's sums its own way).
std::string train_command(const fs::path& dir, int64_t batch, const std::string& extra) {
  const auto model = test::fixture_model();
  return fmt::format(
      "'{}' train --config '{}' --no-progress --set model.pretrained='{}' "
      "--set model.dropout=0 --set training.freeze_bn=true --set training.lr=0.02 "
      "--set training.precision=fp32 "
      "--set data.train_root='{}' --set data.train_list='{}' --set training.batch_size={} "
      "--set paths.checkpoints_path='{}' {}",
      ARCFACE_BINARY, (test::source_dir() / "tests" / "fixture_model.yaml").string(),
      model.string(), (test::sample_dir() / "train").string(),
      (model.parent_path() / "train_list.txt").string(), batch, dir.string(), extra);
}

double max_difference(const StateDict& a, const StateDict& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    if (!a[i].second.is_floating_point()) continue;
    worst = std::max(worst, (a[i].second - b[i].second).abs().max().item<double>());
  }
  return worst;
}

TEST(Distributed, TwoRanksEqualOneProcessWithTheDoubledBatch) {
  const auto dir = test::temp_dir("distributed_equal");
  const std::string steps = "--max-steps 4";
  ASSERT_EQ(run(train_command(dir / "single", 16, steps) + " > '" + (dir / "single.log").string() +
                "' 2>&1"),
            0)
      << read_text(dir / "single.log");
  const auto master = fmt::format("127.0.0.1:{}", free_port(0));
  std::string both;
  for (int rank = 0; rank < 2; ++rank) {
    both += fmt::format(
        "{} > '{}' 2>&1 & p{}=$!\n",
        train_command(dir / "ranks", 8,
                      fmt::format("{} --world-size 2 --rank {} --master {}", steps, rank, master)),
        (dir / fmt::format("rank{}.log", rank)).string(), rank);
  }
  ASSERT_EQ(run(both + "wait $p0 && wait $p1"), 0)
      << read_text(dir / "rank0.log") << read_text(dir / "rank1.log");
  EXPECT_NE(read_text(dir / "rank0.log").find("Rank 0 of 2"), std::string::npos);
  // Only rank 0 writes the run directory.
  EXPECT_FALSE(fs::exists(dir / "ranks" / "last.pt.tmp"));

  const auto single = load_checkpoint(dir / "single" / "last.pt");
  const auto ranks = load_checkpoint(dir / "ranks" / "last.pt");
  EXPECT_EQ(single.global_step, 4);
  EXPECT_EQ(ranks.global_step, 4);
  const auto start = load_checkpoint(test::fixture_model());
  const double moved = max_difference(start.backbone_state, single.backbone_state);
  const double apart = max_difference(single.backbone_state, ranks.backbone_state);
  const double head_apart = max_difference(single.head_state, ranks.head_state);
  std::cout << "max |weight change| " << moved << ", max |1 process - 2 ranks| backbone " << apart
            << ", head " << head_apart << "\n";
  EXPECT_GT(moved, 1e-3) << "training did not change the weights";
  EXPECT_LT(apart, 1e-5) << "moved " << moved;
  EXPECT_LT(head_apart, 1e-5);
}

TEST(Distributed, ResumesWithAnotherWorldSize) {
  // 2 steps on 2 ranks x 8, then one more in one process x 16 from that checkpoint: the same
  // weights as 3 steps in one process. (Float rounding differs between the two ways of
  // summing a batch; a few more steps of this steep loss can grow it past any tight bound.)
  const auto dir = test::temp_dir("distributed_resume");
  ASSERT_EQ(run(train_command(dir / "single", 16, "--max-steps 3") + " > /dev/null 2>&1"), 0);
  const auto master = fmt::format("127.0.0.1:{}", free_port(3));
  std::string both;
  for (int rank = 0; rank < 2; ++rank) {
    both += fmt::format(
        "{} > '{}' 2>&1 & p{}=$!\n",
        train_command(
            dir / "mixed", 8,
            fmt::format("--max-steps 2 --world-size 2 --rank {} --master {}", rank, master)),
        (dir / fmt::format("rank{}.log", rank)).string(), rank);
  }
  ASSERT_EQ(run(both + "wait $p0 && wait $p1"), 0) << read_text(dir / "rank0.log");
  const auto resume =
      fmt::format("--max-steps 1 --resume '{}'", (dir / "mixed" / "last.pt").string());
  ASSERT_EQ(run(train_command(dir / "mixed", 16, resume) + " > '" + (dir / "resume.log").string() +
                "' 2>&1"),
            0)
      << read_text(dir / "resume.log");
  const auto single = load_checkpoint(dir / "single" / "last.pt");
  const auto mixed = load_checkpoint(dir / "mixed" / "last.pt");
  EXPECT_EQ(mixed.global_step, 3);
  EXPECT_EQ(mixed.batch_in_epoch, single.batch_in_epoch);
  EXPECT_LT(max_difference(single.backbone_state, mixed.backbone_state), 1e-5);
  EXPECT_LT(max_difference(single.head_state, mixed.head_state), 1e-5);
}

TEST(Distributed, ADeadRankMakesTheOthersFailClearly) {
  const auto dir = test::temp_dir("distributed_dead");
  const auto master = fmt::format("127.0.0.1:{}", free_port(1));
  const std::string common = "--set training.max_epoch=1000 --world-size 2 --dist-timeout 60";
  // Rank 1 is killed mid-training; rank 0 must stop with a message, well before its timeout.
  const auto rank0 =
      fmt::format("timeout 120 {} > '{}' 2>&1",
                  train_command(dir / "run", 8, common + " --rank 0 --master " + master),
                  (dir / "rank0.log").string());
  const auto rank1 =
      fmt::format("timeout -s KILL 8 {} > /dev/null 2>&1",
                  train_command(dir / "run", 8, common + " --rank 1 --master " + master));
  const int code = run(fmt::format("{} & p0=$!\n{}\nwait $p0", rank0, rank1));
  const auto log = read_text(dir / "rank0.log");
  EXPECT_EQ(code, 1) << log;  // an error, not the 124 of timeout
  EXPECT_NE(log.find("error: rank 0 of 2:"), std::string::npos) << log;
  EXPECT_NE(log.find("failed: another rank stopped, died or did not answer"), std::string::npos)
      << log;
}

TEST(Distributed, AMissingRankIsNamedAtTheRendezvous) {
  const auto dir = test::temp_dir("distributed_alone");
  const auto master = fmt::format("127.0.0.1:{}", free_port(2));
  const int code = run(fmt::format(
      "{} > '{}' 2>&1",
      train_command(dir / "run", 8, "--world-size 2 --rank 0 --dist-timeout 3 --master " + master),
      (dir / "log").string()));
  const auto log = read_text(dir / "log");
  EXPECT_EQ(code, 1) << log;
  EXPECT_NE(log.find("the rendezvous at " + master + " failed: not all 2 ranks joined within 3 s"),
            std::string::npos)
      << log;
}

// IR-ResNet keeps a frozen tensor (the feature BatchNorm's scale): only what trains is
// averaged. Two ranks as two threads of this process, one step each on half the batch.
TEST(Distributed, FrozenParametersStayOutOfTheAllReduce) {
  const auto learner = [] {
    torch::manual_seed(0);
    auto net = make_backbone(BackboneOptions("iresnet18").input_size(32).embedding_dim(64));
    Learner l(net, MarginHead(MarginHeadOptions(64, 6)), LossOptions(), {"sgd", 0.05, 0.9, 0},
              torch::kCPU);
    l.freeze_batchnorm(true);
    l.train();
    return l;
  };
  torch::manual_seed(1);
  const auto images = torch::randn({8, 3, 32, 32});
  const auto labels = torch::randint(6, {8}, torch::kLong);
  auto single = learner();
  single.step(images, labels, 0.05, 0);

  const auto master = fmt::format("127.0.0.1:{}", free_port(3));
  std::vector<std::optional<Learner>> ranks(2);
  std::vector<std::string> errors(2);
  std::vector<std::thread> threads;
  for (int rank = 0; rank < 2; ++rank) {
    ranks[rank].emplace(learner());
    threads.emplace_back([&, rank] {
      try {
        DistributedOptions o;
        o.world_size = 2;
        o.rank = rank;
        o.master = master;
        o.timeout = std::chrono::seconds(60);
        ranks[rank]->data_parallel(std::make_shared<DataParallel>(o));
        ranks[rank]->step(images.narrow(0, 4 * rank, 4), labels.narrow(0, 4 * rank, 4), 0.05, 0);
      } catch (const std::exception& e) {
        errors[rank] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(errors[0] + errors[1], "");
  const auto expected = single.backbone()->parameters();
  for (int rank = 0; rank < 2; ++rank) {
    const auto got = ranks[rank]->backbone()->parameters();
    ASSERT_EQ(got.size(), expected.size());
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_LT((got[i] - expected[i]).abs().max().item<double>(), 1e-5) << "parameter " << i;
    }
  }
}

TEST(Distributed, OptionsComeFromTorchrunsEnvironment) {
  setenv("WORLD_SIZE", "4", 1);
  setenv("RANK", "3", 1);
  setenv("MASTER_ADDR", "10.0.0.7", 1);
  setenv("MASTER_PORT", "29400", 1);
  const auto o = DistributedOptions::from_env();
  EXPECT_EQ(o.world_size, 4);
  EXPECT_EQ(o.rank, 3);
  EXPECT_EQ(o.master, "10.0.0.7:29400");
  setenv("RANK", "4", 1);
  EXPECT_THROW(DistributedOptions::from_env().check(), Error);
  setenv("RANK", "x", 1);
  EXPECT_THROW(DistributedOptions::from_env(), Error);
  for (const char* v : {"WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT"}) unsetenv(v);
}

}  // namespace
}  // namespace arcface
