// `import arcface`: the library from Python, with numpy arrays in and out. Images are uint8
// HxWx3 arrays (BGR as OpenCV gives them, or RGB with color="rgb") or file paths; descriptors
// are float32 rows of unit length. Errors are arcface.Error carrying the library's message.
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include <spdlog/fmt/fmt.h>

#include "arcface/align.h"
#include "arcface/decision.h"
#include "arcface/detector.h"
#include "arcface/embedder.h"
#include "arcface/error.h"
#include "arcface/evaluate.h"
#include "arcface/face_encoder.h"
#include "arcface/gallery_model.h"
#include "arcface/image.h"
#include "arcface/image_cv.h"
#include "arcface/model_source.h"
#include "arcface/pairs.h"
#include "arcface/report.h"

namespace py = pybind11;

namespace arcface::python {
namespace {

using Pixels = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>;
using Floats = py::array_t<float, py::array::c_style | py::array::forcecast>;

// ---- images ----

Image to_image(const Pixels& a, const std::string& color) {
  if (a.ndim() != 2 && !(a.ndim() == 3 && (a.shape(2) == 3 || a.shape(2) == 1))) {
    throw Error(
        fmt::format("an image must be a uint8 array HxWx3 or HxW; this one has {} axes{}", a.ndim(),
                    a.ndim() == 3 ? fmt::format(" and {} channels", a.shape(2)) : std::string()));
  }
  if (color != "bgr" && color != "rgb") {
    throw Error(fmt::format("color '{}': bgr (OpenCV) or rgb (PIL, matplotlib)", color));
  }
  const int rows = static_cast<int>(a.shape(0)), cols = static_cast<int>(a.shape(1));
  const int channels = a.ndim() == 3 ? static_cast<int>(a.shape(2)) : 1;
  if (rows == 0 || cols == 0) throw Error("an image must not be empty");
  Image image(rows, cols, 3);
  const uint8_t* in = a.data();
  uint8_t* out = image.pixels.data();
  for (int64_t i = 0; i < static_cast<int64_t>(rows) * cols; ++i) {
    if (channels == 1) {
      out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = in[i];
    } else if (color == "rgb") {
      out[3 * i] = in[3 * i + 2], out[3 * i + 1] = in[3 * i + 1], out[3 * i + 2] = in[3 * i];
    } else {
      out[3 * i] = in[3 * i], out[3 * i + 1] = in[3 * i + 1], out[3 * i + 2] = in[3 * i + 2];
    }
  }
  return image;
}

py::array_t<uint8_t> to_array(const Image& image) {
  py::array_t<uint8_t> a({image.rows, image.cols, image.channels});
  std::copy(image.pixels.begin(), image.pixels.end(), a.mutable_data());
  return a;
}

py::array_t<uint8_t> to_array(const cv::Mat& mat) { return to_array(from_mat(mat)); }

bool is_path(const py::handle& h) {
  return py::isinstance<py::str>(h) || py::hasattr(h, "__fspath__");  // pathlib.Path and friends
}

std::string path_of(const py::handle& h) {
  return py::str(py::module_::import("os").attr("fspath")(h));
}

/// One image or path, or a sequence of them, or an array N x H x W x 3: the BGR images.
std::vector<Image> images_of(const py::object& images, const std::string& color) {
  std::vector<Image> out;
  auto one = [&](const py::handle& h) {
    if (is_path(h)) {
      out.push_back(read_image(path_of(h), Color::BGR));
    } else {
      out.push_back(to_image(py::cast<Pixels>(h), color));
    }
  };
  if (py::isinstance<py::array>(images)) {
    auto a = py::cast<py::array>(images);
    if (a.ndim() == 4) {
      for (py::ssize_t i = 0; i < a.shape(0); ++i) one(a[py::int_(i)]);
    } else {
      one(images);
    }
  } else if (is_path(images)) {
    one(images);
  } else {
    for (const auto& h : images) one(h);
  }
  return out;
}

py::array_t<float> to_array(const at::Tensor& t) {
  const at::Tensor c = t.contiguous();
  py::array_t<float> a({c.size(0), c.size(1)});
  std::copy(c.data_ptr<float>(), c.data_ptr<float>() + c.numel(), a.mutable_data());
  return a;
}

py::object from_json(const nlohmann::json& j) {
  return py::module_::import("json").attr("loads")(j.dump());
}

// ---- faces ----

py::dict face_dict(const Face& f) {
  py::list landmarks;
  for (const auto& p : f.landmarks) landmarks.append(py::make_tuple(p.x, p.y));
  py::dict d;
  d["box"] = py::make_tuple(f.box.x, f.box.y, f.box.width, f.box.height);
  d["score"] = f.score;
  d["landmarks"] = landmarks;
  return d;
}

Face face_of(const py::dict& d) {
  Face f;
  const auto box = py::cast<std::vector<float>>(d["box"]);
  if (box.size() != 4) throw Error("a face's box is (x, y, width, height)");
  f.box = cv::Rect2f(box[0], box[1], box[2], box[3]);
  const auto marks = py::cast<std::vector<std::vector<float>>>(d["landmarks"]);
  if (marks.size() != 5) throw Error("a face has five landmarks (eyes, nose, mouth corners)");
  for (size_t i = 0; i < 5; ++i) {
    if (marks[i].size() != 2) throw Error("a landmark is (x, y)");
    f.landmarks[i] = cv::Point2f(marks[i][0], marks[i][1]);
  }
  f.score = d.contains("score") ? py::cast<float>(d["score"]) : 1.0f;
  return f;
}

class PyDetector {
 public:
  PyDetector(const std::string& type, const std::string& model, float score_threshold) {
    options_.type = type;
    options_.model = model;
    options_.score_threshold = score_threshold;
    detector_ = make_detector(options_);
  }
  py::list detect(const py::object& image, const std::string& color) {
    const cv::Mat bgr = to_mat(images_of(image, color).at(0));
    std::vector<Face> faces;
    {
      py::gil_scoped_release released;
      std::lock_guard<std::mutex> lock(mutex_);  // a detector keeps scratch state
      faces = detector_->detect(bgr);
    }
    py::list out;
    for (const auto& f : faces) out.append(face_dict(f));
    return out;
  }
  const DetectorOptions& options() const { return options_; }
  std::string name() const { return detector_->name(); }

 private:
  DetectorOptions options_;
  std::unique_ptr<FaceDetector> detector_;
  std::mutex mutex_;
};

// ---- models ----

std::vector<double> channel_values(const py::object& v, const std::string& name) {
  if (py::isinstance<py::str>(v)) return parse_channel_values(py::cast<std::string>(v), name);
  if (py::isinstance<py::float_>(v) || py::isinstance<py::int_>(v)) return {py::cast<double>(v)};
  return py::cast<std::vector<double>>(v);
}

struct Model {
  ModelSource source;
  std::shared_ptr<Embedder> embedder;

  py::array_t<float> embed(const py::object& images, const std::string& flip, int64_t batch_size,
                           const std::string& color) {
    const FlipMode mode = parse_flip_mode(flip);
    // Paths go through the command's loader (decoded in the model's colour, in threads), so
    // their descriptors are the CLI's `embed` output.
    bool all_paths = !py::isinstance<py::array>(images) && !is_path(images);
    ImageSource source;
    if (all_paths) {
      for (const auto& h : images) {
        if (!is_path(h)) {
          all_paths = false;
          break;
        }
        source.names.push_back(path_of(h));
      }
    }
    if (all_paths && !source.names.empty()) {
      EvalOptions o;
      o.flip = mode;
      o.batch_size = batch_size;
      o.progress = false;
      at::Tensor d;
      {
        py::gil_scoped_release released;
        d = embed_images(*embedder, std::move(source), o);
      }
      return to_array(d);
    }
    const std::vector<Image> faces = images_of(images, color);
    if (faces.empty()) throw Error("embed: no images given");
    std::vector<at::Tensor> parts;
    {
      py::gil_scoped_release released;
      const auto batch = static_cast<size_t>(std::max<int64_t>(1, batch_size));
      for (size_t b = 0; b < faces.size(); b += batch) {
        const std::vector<Image> part(faces.begin() + b,
                                      faces.begin() + std::min(faces.size(), b + batch));
        parts.push_back(embedder->embed(part, mode));
      }
    }
    return to_array(at::cat(parts));
  }
};

Model load_model(const py::object& path, const std::string& device, const std::string& precision,
                 int threads, const std::string& backbone, int64_t input_size, int64_t resize,
                 const std::string& color, const py::object& mean, const py::object& std) {
  Model m;
  m.source.model = path_of(path);
  m.source.device = device;
  m.source.precision = parse_precision(precision);
  m.source.threads = threads;
  m.source.foreign.backbone = backbone;
  auto& p = m.source.foreign.preprocess;
  p.input_size = input_size;
  p.resize = resize;
  p.color = parse_color(color);
  p.mean = channel_values(mean, "mean");
  p.std = channel_values(std, "std");
  py::gil_scoped_release released;
  m.embedder = std::make_shared<Embedder>(m.source.load());
  return m;
}

std::vector<float> descriptor_of(const py::object& v) {
  auto a = py::cast<Floats>(v);
  if (a.ndim() == 2 && a.shape(0) == 1) return {a.data(), a.data() + a.shape(1)};
  if (a.ndim() != 1) throw Error("a descriptor is one row of floats");
  return {a.data(), a.data() + a.shape(0)};
}

double match(const py::object& a, const py::object& b) {
  const auto x = descriptor_of(a), y = descriptor_of(b);
  if (x.size() != y.size()) {
    throw Error(
        fmt::format("descriptors of {} and {} values cannot be compared", x.size(), y.size()));
  }
  return Embedder::match(x.data(), y.data(), static_cast<int64_t>(x.size()));
}

py::dict decision_dict(const Decision& d) {
  py::dict out;
  out["threshold"] = d.threshold;
  out["far"] = d.far;
  out["flip"] = d.flip;
  out["meaning"] = d.meaning;
  out["one_to_one"] = d.one_to_one;
  return out;
}

py::object evaluate(Model& model, const py::object& pairs_path, const py::object& root,
                    const std::string& flip, const std::string& pairs_format, int folds,
                    int64_t batch_size, int64_t workers, bool skip_bad_images,
                    const py::object& out) {
  PairList pairs = read_pairs(path_of(pairs_path), parse_pairs_format(pairs_format));
  if (folds > 0 && folds < pairs.num_folds) pairs.keep_folds(folds);
  const std::string root_dir = root.is_none() ? std::string() : path_of(root);
  if (pairs.format != PairsFormat::Bin && root_dir.empty()) {
    throw Error("root is needed for a pairs file that names image paths");
  }
  EvalOptions o;
  o.flip = parse_flip_mode(flip);
  o.batch_size = batch_size;
  o.workers = workers;
  o.progress = false;
  const std::string out_dir = out.is_none() ? std::string() : path_of(out);
  nlohmann::json metrics;
  {
    py::gil_scoped_release released;
    const Verification run =
        verify_pair_list(*model.embedder, std::move(pairs), root_dir, o, skip_bad_images);
    const EvalSummary s = eval_summary(*model.embedder, run, root_dir, o.flip);
    metrics = metrics_json(run.result.metrics, run.pairs, s);
    if (!out_dir.empty()) {
      write_eval_report(out_dir, run.pairs, run.result.scores, run.result.metrics, s);
    }
  }
  return from_json(metrics);
}

// ---- galleries ----

struct PyGallery {
  std::shared_ptr<Embedder> embedder;
  std::optional<Gallery> gallery;
  FlipMode flip = FlipMode::Sum;
  std::unique_ptr<FaceEncoder> encoder;

  void use_faces(const std::optional<std::string>& detector, const std::string& detector_model,
                 bool all_faces) {
    FaceEncoderOptions o;
    o.flip = flip;
    o.all_faces = all_faces;
    if (detector) {
      DetectorOptions d;
      d.type = *detector;
      d.model = detector_model;
      o.detector = d;
    }
    encoder = std::make_unique<FaceEncoder>(*embedder, o);
  }

  Gallery& g() {
    if (!gallery) throw Error("the gallery is closed");
    return *gallery;
  }

  std::vector<cv::Mat> photos(const py::object& images, const std::string& color) {
    std::vector<cv::Mat> out;
    for (const auto& image : images_of(images, color)) out.push_back(to_mat(image));
    return out;
  }

  std::vector<int64_t> add(const std::string& name, const py::object& images,
                           const std::string& color) {
    std::vector<std::string> sources;
    if (is_path(images)) {
      sources.push_back(path_of(images));
    } else if (!py::isinstance<py::array>(images)) {
      for (const auto& h : images) {
        sources.push_back(is_path(h) ? path_of(h) : fmt::format("array {}", sources.size()));
      }
    }
    auto mats = photos(images, color);
    while (sources.size() < mats.size()) sources.push_back(fmt::format("array {}", sources.size()));
    py::gil_scoped_release released;
    std::vector<NewFace> faces;
    for (const auto& found : encoder->encode(mats, sources)) {
      faces.insert(faces.end(), found.begin(), found.end());
    }
    if (faces.empty()) throw Error(fmt::format("no face found in the images of '{}'", name));
    return g().add_faces(g().subject_id(name, true), faces);
  }

  py::list search(const py::object& probe, int64_t k, double threshold, const std::string& color) {
    std::vector<float> descriptor;
    if (py::isinstance<py::array>(probe) && py::cast<py::array>(probe).dtype().kind() == 'f') {
      descriptor = descriptor_of(probe);
    } else {
      const auto mats = photos(probe, color);
      if (mats.size() != 1) throw Error("search takes one photo or one descriptor");
      const std::string source = is_path(probe) ? path_of(probe) : std::string("probe");
      py::gil_scoped_release released;
      const auto faces = encoder->encode(mats[0], source);
      if (faces.empty()) return py::list();
      descriptor = faces[0].embedding;
    }
    std::vector<Match> matches;
    {
      py::gil_scoped_release released;
      matches = g().search(descriptor, k, threshold);
    }
    py::list out;
    for (const auto& m : matches) {
      py::dict d;
      d["name"] = m.name;
      d["score"] = m.score;
      d["subject"] = m.subject;
      out.append(d);
    }
    return out;
  }

  py::list subjects() {
    py::list out;
    for (const auto& s : g().subjects()) {
      py::dict d;
      d["id"] = s.id;
      d["name"] = s.name;
      d["faces"] = s.faces;
      d["created"] = s.created;
      d["metadata"] = from_json(s.metadata);
      out.append(d);
    }
    return out;
  }
};

std::unique_ptr<PyGallery> create_gallery(const py::object& path, Model& model,
                                          const std::string& flip,
                                          const std::optional<std::string>& detector,
                                          const std::string& detector_model, bool all_faces) {
  auto g = std::make_unique<PyGallery>();
  g->embedder = model.embedder;
  g->flip = parse_flip_mode(flip);
  g->gallery =
      Gallery::create(path_of(path), gallery_model(*model.embedder, model.source, g->flip));
  g->use_faces(detector, detector_model, all_faces);
  return g;
}

std::unique_ptr<PyGallery> open_py_gallery(const py::object& path, std::optional<Model> model,
                                           const std::string& device, const std::string& precision,
                                           const std::optional<std::string>& detector,
                                           const std::string& detector_model, bool all_faces) {
  auto g = std::make_unique<PyGallery>();
  const std::string file = path_of(path);
  if (model) {
    g->embedder = model->embedder;
    g->gallery = open_gallery_for(file, *model->embedder, model->source);
    g->flip = parse_flip_mode(g->gallery->model().flip);
  } else {
    ModelSource source;
    source.device = device;
    source.precision = parse_precision(precision);
    OpenedGallery opened = open_gallery(file, source);
    g->flip = opened.flip;
    g->embedder = std::make_shared<Embedder>(std::move(opened.embedder));
    g->gallery = std::move(opened.gallery);
  }
  g->use_faces(detector, detector_model, all_faces);
  return g;
}

}  // namespace
}  // namespace arcface::python

PYBIND11_MODULE(arcface, m) {
  using namespace arcface;
  using namespace arcface::python;
  m.doc() =
      "Face recognition with margin-loss embeddings: models, alignment, verification, "
      "evaluation and galleries.";
  m.attr("__version__") = ARCFACE_VERSION;
  static py::exception<Error> error(m, "Error", PyExc_RuntimeError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      error(e.what());
    } catch (const c10::Error& e) {
      error(e.what_without_backtrace());
    }
  });

  m.def(
      "read_image",
      [](const py::object& path, const std::string& color) {
        Image bgr = read_image(path_of(path), Color::BGR);
        if (color == "rgb") {
          for (size_t i = 0; i + 2 < bgr.pixels.size(); i += 3) {
            std::swap(bgr.pixels[i], bgr.pixels[i + 2]);
          }
        } else if (color != "bgr") {
          throw Error(fmt::format("color '{}': bgr or rgb", color));
        }
        return to_array(bgr);
      },
      py::arg("path"), py::arg("color") = "bgr",
      "A photo as a uint8 array HxWx3 (BGR, or RGB with color='rgb'); damaged files raise "
      "arcface.Error naming them.");

  py::class_<PyDetector>(m, "Detector", "Finds faces with five landmarks (dlib, yunet, mtcnn).")
      .def(py::init<const std::string&, const std::string&, float>(), py::arg("type") = "dlib",
           py::arg("model") = "", py::arg("score_threshold") = 0.5f)
      .def("detect", &PyDetector::detect, py::arg("image"), py::arg("color") = "bgr",
           "Faces as dicts: box (x, y, w, h), score, landmarks [(x, y)] x 5.")
      .def_property_readonly("name", &PyDetector::name);

  m.def(
      "align",
      [](const py::object& image, const py::dict& face, int size, const std::string& color) {
        const cv::Mat bgr = to_mat(images_of(image, color).at(0));
        return to_array(align_face(bgr, face_of(face), size, size));
      },
      py::arg("image"), py::arg("face"), py::arg("size") = 112, py::arg("color") = "bgr",
      "The face warped to the ArcFace 5-point template: a size x size BGR crop.");

  m.def(
      "main_face",
      [](const py::list& faces, const py::object& image) -> py::object {
        std::vector<Face> all;
        for (const auto& f : faces) all.push_back(face_of(py::cast<py::dict>(f)));
        auto a = py::cast<py::array>(image);
        const int i = arcface::main_face(
            all, cv::Size(static_cast<int>(a.shape(1)), static_cast<int>(a.shape(0))));
        if (i < 0) return py::none();
        return faces[static_cast<size_t>(i)];
      },
      py::arg("faces"), py::arg("image"),
      "The face the photo is about (large and central), or None.");

  py::class_<Model>(m, "Model", "A face-embedding model: our checkpoint, Python weights or ONNX.")
      .def(py::init(&load_model), py::arg("path"), py::arg("device") = "cpu",
           py::arg("precision") = "auto", py::arg("threads") = 0, py::arg("backbone") = "",
           py::arg("input_size") = 112, py::arg("resize") = 0, py::arg("color") = "rgb",
           py::arg("mean") = py::float_(0.5), py::arg("std") = py::float_(0.5),
           "Loads a model as `arcface --model` does; backbone, input_size, resize, color, mean "
           "and std describe ONNX models and Python weights (our checkpoints carry their own).")
      .def("embed", &Model::embed, py::arg("images"), py::arg("flip") = "none",
           py::arg("batch_size") = 64, py::arg("color") = "bgr",
           "Unit descriptors float32 [N, D] of aligned face crops: arrays HxWx3, paths, or a "
           "list of them.")
      .def_property_readonly("description",
                             [](const Model& m) { return m.embedder->description(); })
      .def_property_readonly("network", [](const Model& m) { return m.embedder->network(); })
      .def_property_readonly("precision",
                             [](const Model& m) { return to_string(m.embedder->precision()); })
      .def_property_readonly("input",
                             [](const Model& m) { return describe(m.embedder->preprocess()); })
      .def(
          "dim",
          [](const Model& m, const std::string& flip) {
            return m.embedder->dim(parse_flip_mode(flip));
          },
          py::arg("flip") = "none");

  m.def("match", &match, py::arg("a"), py::arg("b"), "Cosine similarity of two unit descriptors.");
  m.def(
      "read_decision",
      [](const py::object& report, double far, const std::string& aggregation) {
        return decision_dict(read_decision(path_of(report), far, aggregation));
      },
      py::arg("report"), py::arg("far") = 0.0, py::arg("aggregation") = "mean",
      "The threshold of an eval metrics.json (best accuracy, or at a FAR such as 1e-3) or of "
      "identify-eval's JSON, with what it stands for.");
  m.def(
      "verify",
      [](const py::object& a, const py::object& b, std::optional<double> threshold,
         const py::object& report, double far) {
        Decision d;
        if (!report.is_none()) {
          d = read_decision(path_of(report), far);
        } else if (threshold) {
          d.threshold = *threshold;
          d.meaning = "the threshold given";
        } else {
          throw Error("verify needs a threshold or a report (eval's metrics.json)");
        }
        const double score = match(a, b);
        py::dict out = decision_dict(d);
        out["score"] = score;
        out["same"] = score >= d.threshold;
        return out;
      },
      py::arg("a"), py::arg("b"), py::arg("threshold") = py::none(), py::arg("report") = py::none(),
      py::arg("far") = 0.0,
      "1:1 decision on two descriptors, at a threshold or at a report's threshold (for a FAR).");
  m.def("evaluate", &evaluate, py::arg("model"), py::arg("pairs"), py::arg("root") = py::none(),
        py::arg("flip") = "concat", py::arg("pairs_format") = "auto", py::arg("folds") = 0,
        py::arg("batch_size") = 64, py::arg("workers") = 1, py::arg("skip_bad_images") = false,
        py::arg("out") = py::none(),
        "Verification on a pair list (LFW, arcface-pytorch, .bin, CFP): the metrics.json dict; "
        "with out, the whole report is written there as `arcface eval` writes it.");

  py::class_<PyGallery>(m, "Gallery", "A persistent face gallery (SQLite + FAISS) for 1:N search.")
      .def_static("create", &create_gallery, py::arg("path"), py::arg("model"),
                  py::arg("flip") = "sum", py::arg("detector") = py::none(),
                  py::arg("detector_model") = "", py::arg("all_faces") = false)
      .def_static("open", &open_py_gallery, py::arg("path"), py::arg("model") = py::none(),
                  py::arg("device") = "cpu", py::arg("precision") = "auto",
                  py::arg("detector") = py::none(), py::arg("detector_model") = "",
                  py::arg("all_faces") = false,
                  "Opens a gallery with `model` (its fingerprint must match) or with the model "
                  "it was made with.")
      .def("add", &PyGallery::add, py::arg("name"), py::arg("images"), py::arg("color") = "bgr",
           "Enrols the faces of photos (paths or arrays) as `name`; returns the face ids.")
      .def("search", &PyGallery::search, py::arg("probe"), py::arg("k") = 5,
           py::arg("threshold") = -1.0, py::arg("color") = "bgr",
           "The k best subjects for a photo (its main face) or a float32 descriptor.")
      .def(
          "remove", [](PyGallery& g, const std::string& name) { g.g().remove_subject(name); },
          py::arg("name"))
      .def("subjects", &PyGallery::subjects)
      .def("__len__", [](PyGallery& g) { return g.g().face_count(); })
      .def_property_readonly("model",
                             [](PyGallery& g) { return from_json(g.g().model().to_json()); })
      .def("close", [](PyGallery& g) { g.gallery.reset(); })
      .def("__enter__", [](PyGallery& g) -> PyGallery& { return g; })
      .def("__exit__", [](PyGallery& g, const py::args&) { g.gallery.reset(); });
}
