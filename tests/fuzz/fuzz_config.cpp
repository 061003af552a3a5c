// A training config as `arcface train --config` reads it: YAML, then every value checked.
#include <string>

#include "arcface/config.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace arcface;
  const std::string yaml(reinterpret_cast<const char*>(data), size);
  fuzz::refusals_only([&] {
    const TrainConfig config = parse_config(yaml, "fuzz.yaml");
    check_config(config);
    config_to_json(config).dump();
  });
  return 0;
}
