#pragma once

#include <stdexcept>
#include <string>

namespace arcface {

/// The one exception type of the library. Its message names the file, line, key or value
/// at fault, so a command can print it as it is and exit non-zero.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace arcface
