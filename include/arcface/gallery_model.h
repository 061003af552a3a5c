#pragma once

// A gallery together with the model that reads it: the fingerprint a gallery keeps of its
// model, opening a gallery with its model, and moving a gallery to another model.
#include <filesystem>

#include "arcface/embedder.h"
#include "arcface/gallery.h"
#include "arcface/model_source.h"

namespace arcface {

namespace fs = std::filesystem;

/// The fingerprint a gallery keeps of `embedder`, loaded from `source`, describing faces with
/// `flip`; the source's load arguments are kept to load it again.
GalleryModel gallery_model(const Embedder& embedder, const ModelSource& source, FlipMode flip);

struct OpenedGallery {
  Embedder embedder;
  Gallery gallery;
  FlipMode flip;  // the gallery's
};

/// Opens a gallery for `embedder`, already loaded from `source`, whose fingerprint must be the
/// gallery's (an Error says how they differ); faces are described with the gallery's flip.
Gallery open_gallery_for(const fs::path& path, const Embedder& embedder, const ModelSource& source,
                         GalleryOptions options = {});

/// Opens a gallery with the model of `source`, which must have the gallery's fingerprint, or
/// with the model the gallery was made with when `source.model` is empty (its stored path and
/// load arguments; device, precision and threads still come from `source`).
OpenedGallery open_gallery(const fs::path& path, ModelSource source, GalleryOptions options = {});

/// Describes every stored face crop again with `embedder` (loaded from `source`), in batches,
/// and makes it the gallery's model in one transaction. Returns the faces described.
int64_t reembed_gallery(Gallery& gallery, Embedder& embedder, const ModelSource& source,
                        FlipMode flip, int64_t batch_size = 32);

}  // namespace arcface
