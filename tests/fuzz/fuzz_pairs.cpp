// Pair lists as `arcface eval --pairs` reads them: LFW's pairs.txt, arcface-pytorch's list,
// insightface's .bin, or the format guessed from the bytes. The first byte picks the format.
#include "arcface/pairs.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace arcface;
  if (size == 0) return 0;
  static const PairsFormat formats[] = {PairsFormat::Auto, PairsFormat::Lfw, PairsFormat::List,
                                        PairsFormat::Bin};
  const PairsFormat format = formats[data[0] % 4];
  const auto path = fuzz::write_file(fuzz::scratch() / "pairs.txt", data + 1, size - 1);
  fuzz::refusals_only([&] {
    PairList list = read_pairs(path, format);
    // What eval does next: every pair names images of the list, and folds split it.
    for (const auto& p : list.pairs) {
      if (p.a < 0 || p.b < 0 || static_cast<size_t>(p.a) >= list.images.size() ||
          static_cast<size_t>(p.b) >= list.images.size()) {
        std::abort();
      }
    }
    if (list.num_folds > 1) list.keep_folds(1);
  });
  return 0;
}
