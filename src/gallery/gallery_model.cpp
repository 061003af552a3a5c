#include "arcface/gallery_model.h"

#include <spdlog/fmt/fmt.h>

#include "arcface/checkpoint.h"
#include "arcface/face_encoder.h"
#include "arcface/image.h"
#include "arcface/image_cv.h"

namespace arcface {

GalleryModel gallery_model(const Embedder& embedder, const ModelSource& source, FlipMode flip) {
  GalleryModel m;
  m.network = embedder.network();
  m.input = describe(embedder.preprocess());
  m.weights_hash = file_hash(source.model);
  m.dim = embedder.dim(flip);
  m.flip = to_string(flip);
  m.path = fs::absolute(source.model).string();
  m.load_args = source.load_args();
  return m;
}

Gallery open_gallery_for(const fs::path& path, const Embedder& embedder, const ModelSource& source,
                         GalleryOptions options) {
  const FlipMode flip = parse_flip_mode(Gallery::stored_model(path).flip);
  return Gallery::open(path, gallery_model(embedder, source, flip), options);
}

OpenedGallery open_gallery(const fs::path& path, ModelSource source, GalleryOptions options) {
  if (source.model.empty()) {
    const GalleryModel stored = Gallery::stored_model(path);
    source.model = stored.path;
    source.take_load_args(stored.load_args);
  }
  Embedder embedder = source.load();
  Gallery gallery = open_gallery_for(path, embedder, source, options);
  const FlipMode flip = parse_flip_mode(gallery.model().flip);
  return {std::move(embedder), std::move(gallery), flip};
}

int64_t reembed_gallery(Gallery& gallery, Embedder& embedder, const ModelSource& source,
                        FlipMode flip, int64_t batch_size) {
  FaceEncoderOptions eo;
  eo.flip = flip;
  eo.batch_size = batch_size;
  FaceEncoder encoder(embedder, eo);
  const auto crops = gallery.crops();
  std::vector<cv::Mat> images;
  for (const auto& [id, jpeg] : crops) {
    images.push_back(
        to_mat(decode_bytes(jpeg.data(), jpeg.size(), Color::BGR, fmt::format("face {}", id))));
  }
  const auto described = encoder.describe(images);
  std::vector<std::pair<int64_t, std::vector<float>>> embeddings;
  for (size_t i = 0; i < crops.size(); ++i) embeddings.emplace_back(crops[i].first, described[i]);
  gallery.reembed(gallery_model(embedder, source, flip), embeddings);
  return static_cast<int64_t>(crops.size());
}

}  // namespace arcface
