// A report a decision is read from (`verify --report`, `identify --report`, `serve --report`):
// eval's metrics.json or identify-eval's JSON, at a FAR picked by the first byte.
#include "arcface/decision.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace arcface;
  if (size == 0) return 0;
  static const double fars[] = {0, 1e-2, 1e-3, 1e-4};
  const auto path = fuzz::write_file(fuzz::scratch() / "metrics.json", data + 1, size - 1);
  fuzz::refusals_only(
      [&] { read_decision(path, fars[data[0] % 4], data[0] & 4 ? "best" : "mean"); });
  return 0;
}
