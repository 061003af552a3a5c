// CFP's protocol folder: Pair_list_F.txt, Pair_list_P.txt and Split/FP/01/same.txt, diff.txt
// cut from the input at lines holding only "%%".
#include <string>
#include <vector>

#include "arcface/pairs.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace arcface;
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t cut; parts.size() < 3 && (cut = text.find("\n%%\n", start)) != std::string::npos;
       start = cut + 4) {
    parts.push_back(text.substr(start, cut - start));
  }
  parts.push_back(text.substr(start));
  parts.resize(4);
  const auto root = fuzz::scratch() / "cfp" / "Protocol";
  const char* names[] = {"Pair_list_F.txt", "Pair_list_P.txt", "Split/FP/01/same.txt",
                         "Split/FP/01/diff.txt"};
  for (int i = 0; i < 4; ++i) {
    fuzz::write_file(root / names[i], reinterpret_cast<const uint8_t*>(parts[i].data()),
                     parts[i].size());
  }
  fuzz::refusals_only([&] {
    PairList list = read_pairs(root / "Split" / "FP", PairsFormat::Cfp);
    for (const auto& p : list.pairs) {
      if (static_cast<size_t>(p.a) >= list.images.size() ||
          static_cast<size_t>(p.b) >= list.images.size()) {
        std::abort();
      }
    }
  });
  return 0;
}
