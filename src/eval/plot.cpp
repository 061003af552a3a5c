#include "eval/plot.h"

#ifdef ARCFACE_WITH_PLPLOT
#include <plplot.h>
#endif

#include <algorithm>
#include <cmath>
#include <mutex>

#include <spdlog/fmt/fmt.h>

#include "arcface/error.h"

namespace arcface {

#ifdef ARCFACE_WITH_PLPLOT
bool can_plot() { return true; }

namespace {

enum Colour { kWhite = 0, kBlack = 1, kBlue = 2, kRed = 3, kGrey = 4 };

// PLplot keeps global state; one plot at a time.
std::mutex plot_mutex;

class Page {
 public:
  explicit Page(const std::filesystem::path& png) {
    plsdev("pngcairo");
    plsfnam(png.string().c_str());
    plsetopt("geometry", "900x640");
    plscol0(kWhite, 255, 255, 255);
    plscol0(kBlack, 0, 0, 0);
    plscol0(kBlue, 31, 119, 180);
    plscol0(kRed, 214, 39, 40);
    plscol0(kGrey, 190, 190, 190);
    plinit();
    plcol0(kBlack);
  }
  ~Page() { plend(); }
};

void line(const std::vector<double>& x, const std::vector<double>& y, int colour, double width) {
  plcol0(colour);
  plwidth(width);
  plline(static_cast<PLINT>(x.size()), x.data(), y.data());
  plwidth(1);
  plcol0(kBlack);
}

}  // namespace

void plot_roc(const std::filesystem::path& png, const std::vector<RocPoint>& roc, double auc,
              const std::string& title) {
  std::lock_guard<std::mutex> lock(plot_mutex);
  double min_far = 1;
  for (const auto& p : roc) {
    if (p.far > 0) min_far = std::min(min_far, p.far);
  }
  const double left = std::floor(std::log10(min_far));
  std::vector<double> x, y;
  for (const auto& p : roc) {
    if (p.far <= 0) continue;
    x.push_back(std::log10(p.far));
    y.push_back(p.tar);
  }
  Page page(png);
  plenv(left, 0.0, 0.0, 1.0, 0, 12);  // 12: logarithmic x with grid
  pllab("false accept rate (FAR)", "true accept rate (TAR)",
        fmt::format("{} (AUC {:.4f})", title, auc).c_str());
  std::vector<double> cx, cy;  // chance: TAR = FAR
  for (int i = 0; i <= 50; ++i) {
    cx.push_back(left * (1 - i / 50.0));
    cy.push_back(std::pow(10.0, cx.back()));
  }
  line(cx, cy, kGrey, 1);
  line(x, y, kBlue, 2.5);
}

void plot_score_histogram(const std::filesystem::path& png, const std::vector<double>& positive,
                          const std::vector<double>& negative, double threshold,
                          const std::string& title) {
  std::lock_guard<std::mutex> lock(plot_mutex);
  double lo = threshold, hi = threshold;
  for (const auto* v : {&positive, &negative}) {
    for (double s : *v) {
      lo = std::min(lo, s);
      hi = std::max(hi, s);
    }
  }
  const double pad = 0.02 * std::max(1e-6, hi - lo);
  lo -= pad;
  hi += pad;
  const int bins =
      std::clamp(static_cast<int>(std::sqrt(positive.size() + negative.size())), 10, 50);
  const double width = (hi - lo) / bins;
  auto outline = [&](const std::vector<double>& scores, std::vector<double>& x,
                     std::vector<double>& y) {
    std::vector<double> count(bins, 0);
    for (double s : scores) count[std::min(bins - 1, static_cast<int>((s - lo) / width))] += 1;
    double peak = 0;
    for (int b = 0; b < bins; ++b) {
      const double density = scores.empty() ? 0 : count[b] / (scores.size() * width);
      x.insert(x.end(), {lo + b * width, lo + (b + 1) * width});
      y.insert(y.end(), {density, density});
      peak = std::max(peak, density);
    }
    return peak;
  };
  std::vector<double> px, py, nx, ny;
  const double top = 1.1 * std::max({outline(positive, px, py), outline(negative, nx, ny), 1e-6});
  Page page(png);
  plenv(lo, hi, 0.0, top, 0, 0);
  pllab("cosine similarity", "density", title.c_str());
  line(nx, ny, kRed, 2);
  line(px, py, kBlue, 2);
  line({threshold, threshold}, {0.0, top}, kBlack, 1.5);
  plcol0(kBlue);
  plmtex("t", -2.0, 0.02, 0.0, fmt::format("same person ({})", positive.size()).c_str());
  plcol0(kRed);
  plmtex("t", -3.5, 0.02, 0.0, fmt::format("different people ({})", negative.size()).c_str());
  plcol0(kBlack);
  plmtex("t", -5.0, 0.02, 0.0, fmt::format("threshold {:.4f}", threshold).c_str());
}

#else
bool can_plot() { return false; }

void plot_roc(const std::filesystem::path&, const std::vector<RocPoint>&, double,
              const std::string&) {}

void plot_score_histogram(const std::filesystem::path&, const std::vector<double>&,
                          const std::vector<double>&, double, const std::string&) {}
#endif

}  // namespace arcface
