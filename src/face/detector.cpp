#include <spdlog/fmt/fmt.h>

#include "arcface/error.h"
#include "face/detectors.h"

namespace arcface {

std::string default_dlib_shape_predictor() {
  return "/usr/share/dlib/shape_predictor_68_face_landmarks.dat";
}

std::unique_ptr<FaceDetector> make_detector(const DetectorOptions& o) {
  if (o.type == "dlib") {
#ifdef ARCFACE_WITH_DLIB
    return make_dlib_detector(o.model.empty() ? default_dlib_shape_predictor() : o.model,
                              o.score_threshold);
#else
    throw Error(
        "the dlib detector is not in this build (it was built without dlib): use yunet "
        "or mtcnn, or rebuild with dlib installed");
#endif
  }
  if (o.type == "yunet") {
    if (o.model.empty()) throw Error("the yunet detector needs its .onnx model file");
    return make_yunet_detector(o.model, o.score_threshold);
  }
  if (o.type == "mtcnn") {
    if (o.model.empty())
      throw Error("the mtcnn detector needs the folder of pnet.pt, rnet.pt, onet.pt");
    return make_mtcnn_detector(o.model, o.score_threshold);
  }
  throw Error(fmt::format("unknown detector '{}' (expected dlib, yunet or mtcnn)", o.type));
}

}  // namespace arcface
