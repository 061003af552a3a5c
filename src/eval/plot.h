#pragma once

// PNG plots of an evaluation, drawn with PLplot's cairo driver.
#include <filesystem>
#include <string>
#include <vector>

#include "arcface/metrics.h"

namespace arcface {

/// Whether this build draws plots (it has PLplot); the plot functions do nothing otherwise.
bool can_plot();

/// TAR against FAR on a logarithmic FAR axis, with the AUC in the title.
void plot_roc(const std::filesystem::path& png, const std::vector<RocPoint>& roc, double auc,
              const std::string& title);

/// Histograms of same-person and different-person scores and the chosen threshold.
void plot_score_histogram(const std::filesystem::path& png, const std::vector<double>& positive,
                          const std::vector<double>& negative, double threshold,
                          const std::string& title);

}  // namespace arcface
