// `arcface gallery ...` and `arcface identify`: enrol people in a persistent gallery and find
// them again in new photos; `arcface identify-eval` measures it on LFW.
#include <fstream>
#include <iostream>
#include <sstream>

#include <spdlog/fmt/fmt.h>
#include <nlohmann/json.hpp>

#include "arcface/dataset.h"
#include "arcface/decision.h"
#include "arcface/error.h"
#include "arcface/identify.h"
#include "arcface/image_cv.h"
#include "commands.h"
#include "gallery_args.h"

namespace arcface::cli {

namespace {

std::vector<std::string> image_files(const std::vector<std::string>& args) {
  std::vector<std::string> files;
  for (const auto& a : args) {
    if (fs::is_directory(a)) {
      std::vector<std::string> inside;
      for (const auto& e : fs::recursive_directory_iterator(a)) {
        if (e.is_regular_file() && is_image_file(e.path())) inside.push_back(e.path().string());
      }
      std::sort(inside.begin(), inside.end());
      files.insert(files.end(), inside.begin(), inside.end());
    } else {
      files.push_back(a);
    }
  }
  return files;
}

void add_create(CLI::App* group) {
  auto* cmd = group->add_subcommand("create", "Make an empty gallery for a model");
  auto a = std::make_shared<GalleryArgs>();
  add_gallery_options(cmd, *a, true);
  cmd->add_option("--flip", a->flip, "none, sum or concat: how faces are described")
      ->capture_default_str();
  cmd->callback([a] {
    const ModelSource source = a->model.source();
    Embedder embedder = source.load();
    const auto model = gallery_model(embedder, source, parse_flip_mode(a->flip));
    Gallery::create(a->gallery, model);
    fmt::print("Created gallery {} for {}\n", a->gallery, model.describe());
  });
}

void add_add(CLI::App* group) {
  auto* cmd = group->add_subcommand(
      "add", "Enrol faces: images of one --subject, or a folder per person with --root");
  auto a = std::make_shared<GalleryArgs>();
  auto subject = std::make_shared<std::string>();
  auto root = std::make_shared<std::string>();
  auto images = std::make_shared<std::vector<std::string>>();
  auto no_progress = std::make_shared<bool>(false);
  add_gallery_options(cmd, *a);
  add_face_options(cmd, *a);
  cmd->add_option("--subject", *subject, "the person the images show");
  cmd->add_option("--root", *root, "a folder per person: each folder's name is a subject");
  cmd->add_option("images", *images, "image files or folders (with --subject)");
  cmd->add_flag("--no-progress", *no_progress, "no progress bar");
  cmd->callback([=] {
    if (root->empty() == subject->empty()) {
      throw Error("gallery add: give --subject NAME with images, or --root FOLDER");
    }
    OpenedGallery o = open_gallery(*a);
    FaceEncoder encoder(o.embedder, encoder_options(*a, o.flip));
    if (!root->empty()) {
      const auto r = enrol_tree(o.gallery, encoder, *root, !*no_progress);
      fmt::print(
          "Enrolled {} faces of {} people from {} photos ({} without a face) in {:.1f}s "
          "({:.1f} photos/s); the gallery has {} faces\n",
          r.faces, r.subjects, r.photos, r.without_face, r.seconds,
          r.photos / std::max(1e-9, r.seconds), o.gallery.face_count());
      return;
    }
    const auto files = image_files(*images);
    if (files.empty()) throw Error("gallery add: no images given");
    std::vector<cv::Mat> photos;
    for (const auto& f : files) photos.push_back(to_mat(read_image(f, Color::BGR)));
    std::vector<NewFace> faces;
    for (const auto& found : encoder.encode(photos, files)) {
      faces.insert(faces.end(), found.begin(), found.end());
    }
    if (faces.empty()) throw Error("gallery add: no face found in the images given");
    const auto ids = o.gallery.add_faces(o.gallery.subject_id(*subject, true), faces);
    fmt::print("Added {} faces to '{}' ({} photos); the gallery has {} faces\n", ids.size(),
               *subject, files.size(), o.gallery.face_count());
  });
}

void add_remove(CLI::App* group) {
  auto* cmd = group->add_subcommand("remove", "Remove a subject (and its faces) or one face");
  auto path = std::make_shared<std::string>();
  auto subject = std::make_shared<std::string>();
  auto face = std::make_shared<int64_t>(-1);
  cmd->add_option("--gallery", *path, "the gallery file")->required();
  cmd->add_option("--subject", *subject, "the subject to remove");
  cmd->add_option("--face", *face, "the face id to remove (see gallery list --faces)");
  cmd->callback([=] {
    Gallery g = Gallery::open(*path);
    if (!subject->empty()) {
      g.remove_subject(*subject);
      fmt::print("Removed '{}'\n", *subject);
    } else if (*face >= 0) {
      g.remove_face(*face);
      fmt::print("Removed face {}\n", *face);
    } else {
      throw Error("gallery remove: give --subject NAME or --face ID");
    }
  });
}

void add_rename(CLI::App* group) {
  auto* cmd = group->add_subcommand("rename", "Rename a subject");
  auto path = std::make_shared<std::string>();
  auto from = std::make_shared<std::string>();
  auto to = std::make_shared<std::string>();
  cmd->add_option("--gallery", *path, "the gallery file")->required();
  cmd->add_option("old", *from, "the current name")->required();
  cmd->add_option("new", *to, "the new name")->required();
  cmd->callback([=] {
    Gallery::open(*path).rename_subject(*from, *to);
    fmt::print("Renamed '{}' to '{}'\n", *from, *to);
  });
}

void add_list(CLI::App* group) {
  auto* cmd = group->add_subcommand("list", "The subjects, their faces and the model");
  auto path = std::make_shared<std::string>();
  auto faces = std::make_shared<bool>(false);
  cmd->add_option("--gallery", *path, "the gallery file")->required();
  cmd->add_flag("--faces", *faces, "list every face too");
  cmd->callback([=] {
    Gallery g = Gallery::open(*path);
    const auto subjects = g.subjects();
    fmt::print("Gallery {}: {} subjects, {} faces, {} search\nModel: {}\n", *path, subjects.size(),
               g.face_count(), g.index_kind(), g.model().describe());
    for (const auto& s : subjects) {
      fmt::print("{:<32} {:>5} faces  (since {})\n", s.name, s.faces, s.created);
      if (!*faces) continue;
      for (const auto& f : g.faces(s.id)) {
        fmt::print("    face {:>6}  {}\n", f.id, f.source);
      }
    }
  });
}

void add_export(CLI::App* group) {
  auto* cmd = group->add_subcommand("export", "Write the gallery as JSON");
  auto path = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto embeddings = std::make_shared<bool>(false);
  cmd->add_option("--gallery", *path, "the gallery file")->required();
  cmd->add_option("--out", *out, "the JSON file")->required();
  cmd->add_flag("--embeddings", *embeddings, "include every face's descriptor");
  cmd->callback([=] {
    std::ofstream f(*out);
    f << Gallery::open(*path).export_json(*embeddings).dump(2) << '\n';
    if (!f) throw Error(fmt::format("cannot write '{}'", *out));
    fmt::print("Wrote {}\n", *out);
  });
}

void add_reembed(CLI::App* group) {
  auto* cmd =
      group->add_subcommand("reembed", "Describe every stored face crop again with another model");
  auto a = std::make_shared<GalleryArgs>();
  add_gallery_options(cmd, *a, true);
  cmd->add_option("--flip", a->flip, "none, sum or concat")->capture_default_str();
  cmd->callback([a] {
    const ModelSource source = a->model.source();
    Embedder embedder = source.load();
    Gallery g = Gallery::open(a->gallery);
    const int64_t faces =
        reembed_gallery(g, embedder, source, parse_flip_mode(a->flip), a->batch_size);
    fmt::print("Re-embedded {} faces: {}\n", faces, g.model().describe());
  });
}

}  // namespace

void add_gallery(CLI::App& app) {
  auto* group = app.add_subcommand("gallery", "A persistent face gallery for 1:N search");
  group->require_subcommand(1);
  add_create(group);
  add_add(group);
  add_remove(group);
  add_rename(group);
  add_list(group);
  add_export(group);
  add_reembed(group);
}

void add_identify(CLI::App& app) {
  auto* cmd = app.add_subcommand("identify", "Find the enrolled people in photos");
  auto a = std::make_shared<GalleryArgs>();
  auto photos = std::make_shared<std::vector<std::string>>();
  auto k = std::make_shared<int64_t>(5);
  auto threshold = std::make_shared<double>(-1);
  auto far = std::make_shared<double>(0);
  auto report = std::make_shared<std::string>();
  auto json = std::make_shared<std::string>();
  auto aggregation = std::make_shared<std::string>("mean");
  add_gallery_options(cmd, *a);
  add_face_options(cmd, *a);
  cmd->add_option("--k", *k, "best subjects per face")->capture_default_str();
  cmd->add_option("--aggregation", *aggregation,
                  "a subject scores by its mean descriptor or its best face (mean or best)")
      ->capture_default_str();
  cmd->add_option("--threshold", *threshold,
                  "only subjects scoring at least this (identify-eval gives it for a FAR)");
  cmd->add_option("--report", *report, "identify-eval's JSON: with --far, the threshold");
  cmd->add_option("--far", *far,
                  "with --report: only subjects passing the threshold of this false-accept rate "
                  "(1e-2 or 1e-3)");
  cmd->add_option("--json", *json, "also write the answers as JSON");
  cmd->add_option("photos", *photos, "image files or folders")->required();
  cmd->callback([=] {
    a->options.aggregation = parse_aggregation(*aggregation);
    if (!report->empty()) {
      if (*threshold >= 0) throw Error("give --threshold or --report, not both");
      const Decision d = read_decision(*report, *far, *aggregation);
      if (d.one_to_one) {
        throw Error(fmt::format(
            "--report '{}' is eval's 1:1 report; identify decides by identify-eval's (1:N)",
            *report));
      }
      *threshold = d.threshold;
      fmt::print("threshold {:.4f}: {}\n", d.threshold, d.meaning);
    } else if (*far > 0) {
      throw Error("--far needs --report (identify-eval's JSON)");
    }
    OpenedGallery o = open_gallery(*a);
    FaceEncoder encoder(o.embedder, encoder_options(*a, o.flip));
    nlohmann::json out = nlohmann::json::array();
    fmt::print("{:<40} {:<24} {:<28} {:>7}\n", "photo", "face box", "subject", "score");
    for (const auto& file : image_files(*photos)) {
      const auto faces = encoder.encode(to_mat(read_image(file, Color::BGR)), file);
      if (faces.empty()) fmt::print("{:<40} no face found\n", file);
      for (const auto& f : faces) {
        const auto matches = o.gallery.search(f.embedding, *k, *threshold);
        const std::string box = f.box.empty() ? "aligned crop"
                                              : fmt::format("{:.0f},{:.0f} {:.0f}x{:.0f}", f.box[0],
                                                            f.box[1], f.box[2], f.box[3]);
        nlohmann::json face = {{"photo", file},
                               {"box", f.box},
                               {"score", f.score},
                               {"matches", nlohmann::json::array()}};
        if (matches.empty()) fmt::print("{:<40} {:<24} {:<28}\n", file, box, "(nobody enrolled)");
        for (size_t i = 0; i < matches.size(); ++i) {
          const auto& m = matches[i];
          fmt::print("{:<40} {:<24} {:<28} {:>7.4f}\n", i == 0 ? file : "", i == 0 ? box : "",
                     m.name, m.score);
          face["matches"].push_back({{"subject", m.name}, {"score", m.score}, {"face", m.face}});
        }
        out.push_back(face);
      }
    }
    if (!json->empty()) {
      std::ofstream f(*json);
      f << out.dump(2) << '\n';
      if (!f) throw Error(fmt::format("cannot write '{}'", *json));
    }
  });
}

void add_identify_eval(CLI::App& app) {
  auto* cmd = app.add_subcommand("identify-eval",
                                 "Open-set identification on a folder per person (LFW's protocol)");
  auto m = std::make_shared<ModelArgs>();
  auto root = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto flip = std::make_shared<std::string>("sum");
  auto aggregation = std::make_shared<std::string>("mean");
  auto per_person = std::make_shared<int64_t>(1);
  auto workers = std::make_shared<int64_t>(2);
  auto no_progress = std::make_shared<bool>(false);
  m->add_to(cmd);
  cmd->add_option("--root", *root, "aligned crops, a folder per person")->required();
  cmd->add_option("--per-person", *per_person,
                  "images enrolled per person; people with no more are impostors")
      ->capture_default_str();
  cmd->add_option("--aggregation", *aggregation,
                  "best (face) or mean (descriptor) per person, or best,mean for both")
      ->capture_default_str();
  cmd->add_option("--flip", *flip, "none, sum or concat")->capture_default_str();
  cmd->add_option("--workers", *workers, "decoding threads")->capture_default_str();
  cmd->add_option("--out", *out, "metrics JSON");
  cmd->add_flag("--no-progress", *no_progress, "no progress bar");
  cmd->callback([=] {
    std::vector<Aggregation> aggregations;
    std::stringstream names(*aggregation);
    for (std::string name; std::getline(names, name, ',');) {
      aggregations.push_back(parse_aggregation(name));
    }
    Embedder embedder = m->load();
    const auto runs = evaluate_identification(embedder, *root, *per_person, parse_flip_mode(*flip),
                                              aggregations, *workers, !*no_progress);
    fmt::print("{} ({}, {})\n", embedder.description(), describe(embedder.preprocess()),
               to_string(embedder.precision()));
    nlohmann::json all = nlohmann::json::array();
    for (const auto& run : runs) {
      const auto& r = run.metrics;
      const std::string how = run.aggregation == Aggregation::Mean ? "mean" : "best";
      fmt::print(
          "Enrolled {} people ({} per person, {} per subject); {} genuine probes, {} "
          "impostor probes\n",
          r.enrolled, *per_person, how == "mean" ? "mean descriptor" : "best face", r.genuine,
          r.impostors);
      fmt::print("Rank-1 {:.2f}%  rank-5 {:.2f}%\n", 100 * r.rank1, 100 * r.rank5);
      for (const auto& f : r.at_far) {
        fmt::print("DIR at FAR {:g}: {:.2f}% (threshold {:.4f})\n", f.far, 100 * f.dir,
                   f.threshold);
      }
      fmt::print("Embedding {:.1f}s, {} search {:.2f}s\n", run.embed_seconds, run.index,
                 run.search_seconds);
      nlohmann::json j = r.to_json();
      j["aggregation"] = how;
      all.push_back(j);
    }
    if (!out->empty()) {
      const nlohmann::json j = {{"model", embedder.description()},
                                {"precision", to_string(embedder.precision())},
                                {"per_person", *per_person},
                                {"flip", *flip},
                                {"root", *root},
                                {"runs", all}};
      std::ofstream f(*out);
      f << j.dump(2) << '\n';
      if (!f) throw Error(fmt::format("cannot write '{}'", *out));
    }
  });
}

}  // namespace arcface::cli
