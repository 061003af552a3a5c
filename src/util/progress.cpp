#include "util/progress.h"

#include <unistd.h>

#include <cstdio>

#include <spdlog/fmt/fmt.h>

namespace arcface {

std::string format_duration(double seconds) {
  if (seconds < 60) return fmt::format("{:.1f}s", seconds);
  auto s = static_cast<int64_t>(seconds + 0.5);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
}

Progress::Progress(std::string label, int64_t total, std::string unit, int64_t done_before)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      done_(done_before),
      done_before_(done_before),
      tty_(isatty(fileno(stderr)) != 0),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

void Progress::update(int64_t done, const std::string& note) {
  done_ = done;
  auto now = std::chrono::steady_clock::now();
  if (tty_) {
    if (now - last_draw_ < std::chrono::milliseconds(100) && done_ < total_) return;
    last_draw_ = now;
    draw(note, false);
    return;
  }
  int decile = total_ > 0 ? static_cast<int>(10 * done_ / total_) : 10;
  if (decile != last_decile_ && decile < 10) {
    last_decile_ = decile;
    draw(note, true);
  }
}

void Progress::finish(const std::string& note) {
  draw(note, true);
  last_decile_ = 10;
}

void Progress::clear() {
  if (!tty_) return;
  std::fprintf(stderr, "\r\033[K");
  std::fflush(stderr);
  last_draw_ = {};
}

void Progress::draw(const std::string& note, bool final_line) {
  double elapsed = since(start_);
  double rate = elapsed > 0 ? (done_ - done_before_) / elapsed : 0.0;
  double eta = rate > 0 ? (total_ - done_) / rate : 0.0;
  constexpr int kWidth = 28;
  int filled = total_ > 0 ? static_cast<int>(kWidth * done_ / total_) : kWidth;
  std::string bar = std::string(filled, '#') + std::string(kWidth - filled, '.');
  std::string line = fmt::format("{} [{}] {}/{} {:.1f} {}/s elapsed {} eta {}{}{}", label_, bar,
                                 done_, total_, rate, unit_, format_duration(elapsed),
                                 format_duration(eta), note.empty() ? "" : "  ", note);
  if (tty_) {
    std::fprintf(stderr, "\r\033[K%s%s", line.c_str(), final_line ? "\n" : "");
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  std::fflush(stderr);
}

}  // namespace arcface
