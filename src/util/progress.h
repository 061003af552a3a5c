#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace arcface {

/// A one-line progress bar with rate and ETA on stderr. On a terminal it redraws in place;
/// otherwise (logs, CI) it prints a line every tenth of the way, so logs stay short.
class Progress {
 public:
  /// `done_before` is work finished by an earlier process (a resumed epoch): it fills the bar
  /// but not the rate.
  Progress(std::string label, int64_t total, std::string unit = "it", int64_t done_before = 0);
  /// Sets the count done so far; `note` is appended (e.g. "loss 3.21").
  void update(int64_t done, const std::string& note = "");
  /// Draws the final state and ends the line.
  void finish(const std::string& note = "");
  /// Erases the bar (on a terminal) so a log line can be printed; the next update redraws it.
  void clear();

 private:
  void draw(const std::string& note, bool final_line);

  std::string label_, unit_;
  int64_t total_, done_, done_before_;
  int last_decile_ = -1;
  bool tty_;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

/// Seconds since `start` on the steady clock.
inline double since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// "1m23s", "2h05m", "0.4s".
std::string format_duration(double seconds);

}  // namespace arcface
