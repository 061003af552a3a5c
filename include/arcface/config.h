#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace arcface {

/// The training configuration. Its YAML form uses seed 000's keys (model.backbone,
/// model.metric, loss.type, training.lr, paths.checkpoints_path, ...) plus data and
/// validation sections; `config/default.yaml` reproduces seed 000. Every key is listed once,
/// in `visit_config` (config.cpp), which reads, checks and writes them all.
struct ModelConfig {
  std::string backbone = "resnet_face18";  // resnet_face18/34/50, iresnet18/34/50, mobilefacenet
  std::string metric = "arc_margin";       // arc_margin (ArcFace), add_margin (CosFace), softmax
  bool use_se = false;
  int64_t num_classes = 100;
  int64_t embedding_size = 512;
  double scale = 30.0;
  double margin = -1;  // < 0: the metric's default (ArcFace 0.5, CosFace 0.4)
  bool easy_margin = false;
  double dropout = -1;  // < 0: the backbone's default (resnet_face 0.5, others 0)
  /// Backbone weights to start from (fine-tuning): one of our checkpoints, a seed 002-style
  /// checkpoint or a plain PyTorch state dict of the same network; empty: random init.
  std::string pretrained;
  /// Also start the margin head from `pretrained` (same classes: fine-tuning, distillation).
  bool pretrained_head = false;
};

struct LossConfig {
  std::string type = "focal_loss";  // focal_loss or cross_entropy
  double gamma = 2.0;
};

struct TrainingConfig {
  int64_t batch_size = 32;  // per rank: data-parallel runs step on world_size x batch_size
  int64_t max_epoch = 100;
  double lr = 0.001;
  std::string lr_schedule = "step";    // step, multistep or cosine
  int64_t lr_step = 20;                // step: decay every lr_step epochs
  std::vector<int64_t> lr_milestones;  // multistep: decay at these epochs
  double lr_decay = 0.1;
  double lr_min = 0.0;            // cosine: the final learning rate
  double warmup_epochs = 0;       // linear warm-up from zero, in (fractional) epochs
  std::string optimizer = "sgd";  // sgd (with momentum) or adam
  double momentum = 0.9;
  double weight_decay = 5e-4;
  bool drop_last = true;   // a last batch of one image would break BatchNorm
  bool freeze_bn = false;  // BatchNorm keeps its running statistics (fine-tuning)
  uint64_t seed = 42;
  int64_t print_freq = 10;     // log every N batches
  int64_t save_interval = 10;  // keep epoch_NNN.pt every N epochs
  std::string device = "cpu";  // cpu or cuda
  int64_t threads = 0;         // intra-op threads; 0 = one per core
  // Convolutions and matrix products: auto (bf16 where the CPU or GPU has it natively, fp16 on
  // older GPUs), fp32, bf16, fp16 (CUDA, with loss scaling).
  std::string precision = "auto";
  // Activations and convolution weights in NHWC (channels-last): cuDNN's tensor-core kernels
  // want it; results equal the default layout's within rounding.
  bool channels_last = false;
};

struct DataConfig {
  std::string train_root;    // identity-per-folder image root
  std::string train_list;    // "path label" lines relative to train_root; empty: use the folders
  std::string train_rec;     // or an insightface train.rec (with its .idx and property)
  int64_t input_size = 128;  // network input, square
  int64_t channels = 1;      // 1 = grayscale, 3 = RGB
  int64_t resize = 0;        // images are resized to this before cropping; 0 = input_size
  std::vector<double> mean{0.5};  // per channel, on 0..1 pixel values
  std::vector<double> std{0.5};
  bool random_flip = true;
  bool random_crop = true;  // random input_size crop of the resized image (centre crop at test)
  double random_gray = 0;   // chance that a colour image is shown as a grayscale photo
  int64_t workers = 1;      // decoding threads
  bool cache = true;        // keep decoded images in memory (small sets: decode once)
  // A missing, truncated or corrupt training image: error (naming every one) or skip (train
  // without them; listed in the log and bad_images.txt, counted in history.json).
  std::string bad_images = "error";
};

struct ValConfig {
  std::string root;   // LFW image root; empty disables validation
  std::string pairs;  // pairs.txt, lfw_test_pair.txt, .bin or a CFP Split/FF|FP folder
  std::string pairs_format = "auto";
  std::string name = "LFW";  // what the log and history.json call root + pairs
  // More targets validated beside it, each "NAME=PAIRS[,ROOT]" (as `arcface benchmark
  // --target`), e.g. "CFP-FP=cfp/Protocol/Split/FP,cfp/cfp-align-112".
  std::vector<std::string> targets;
  // The accuracy that chooses best.pt: the first target's (empty), a target's name, or "mean".
  std::string select;
  int64_t interval = 1;  // validate every N epochs
  int64_t folds = 10;    // use only the first N folds (quicker checks)
  std::string flip = "concat";
  int64_t batch_size = 64;
};

/// Hard-example self-distillation (`arcface distill`): a teacher's embeddings of the training
/// images guide the student, most where the student finds an example hard.
struct DistillConfig {
  std::string teacher;           // our checkpoint, Python weights or ONNX; empty: no distillation
  std::string teacher_backbone;  // the architecture of a plain state dict teacher
  // The input of a teacher that does not describe itself (Python weights, ONNX); our
  // checkpoints carry their own. 0 or empty: the student's (data.*).
  int64_t teacher_input_size = 0;
  std::string teacher_color;  // rgb, bgr or gray
  std::vector<double> teacher_mean, teacher_std;
  double embedding_weight = 1.0;  // weight of 1 - cos(student, teacher) per example
  double logit_weight = 0.0;      // weight of T^2 KL(teacher || student) over the classes
  // Weight of the margin loss. 0: the student learns from the teacher alone, so the images
  // need no labels (a list of paths, or every image below data.train_root).
  double margin_weight = 1.0;
  double temperature = 4.0;
  std::string hard_rule = "margin";  // margin, loss or none
  double hard_margin = 0.1;     // margin rule: cos(own class) - max cos(other) below this is hard
  double hard_fraction = 0.25;  // loss rule: the batch's highest-loss fraction is hard
  double hard_weight = 2.0;     // a hard example's distillation term counts 1 + this times
  std::string teacher_flip = "sum";  // sum: the teacher's view of a face and its mirror; none
};

struct PathsConfig {
  std::string checkpoints_path = "checkpoints";
};

struct TrainConfig {
  ModelConfig model;
  LossConfig loss;
  TrainingConfig training;
  DataConfig data;
  ValConfig val;
  DistillConfig distill;
  PathsConfig paths;
};

/// Reads a YAML config and applies `key=value` overrides (dotted keys, YAML values). Unknown
/// keys, wrong types and out-of-range values are errors naming the file, line and key.
TrainConfig load_config(const std::string& path, const std::vector<std::string>& overrides = {});

/// The same from YAML text (`source` names it in errors).
TrainConfig parse_config(const std::string& yaml, const std::string& source,
                         const std::vector<std::string>& overrides = {});

/// Checks every value once, naming its key: ranges, named choices against their tables, the
/// backbone and its input size. load_config and train() both call it.
void check_config(const TrainConfig& config);

/// The resolved config, every key with its value.
nlohmann::json config_to_json(const TrainConfig& config);

/// Refuses a mean outside [0, 1] or a std outside (0, 1]: both apply to 0..1 pixel values, and
/// a 0..255 value (insightface's 127.5) would silently ruin every embedding. The message names
/// `mean_name` / `std_name` and gives the 0..1 equivalent.
void check_normalisation(const std::vector<double>& mean, const std::vector<double>& std,
                         const std::string& mean_name, const std::string& std_name);

/// Every dotted key the config knows.
std::vector<std::string> config_keys();

}  // namespace arcface
