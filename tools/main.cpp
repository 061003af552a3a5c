// The `arcface` command: parses options into config structs and calls the library. Exit
// status: 0 done, 1 the run failed (bad input, a runtime error), 2 the command line is wrong,
// 130 stopped by a signal with a resumable checkpoint.
#include <csignal>
#include <cstdio>
#include <iostream>

#include "arcface/error.h"
#include "commands.h"

// jemalloc (linked into this program) reads this at start-up: keep freed pages instead of
// returning them to the kernel, so the large activation buffers of each step are not faulted
// in again (up to half the training time with glibc's malloc on these machines).
extern "C" {
// NOLINTNEXTLINE: the name is jemalloc's.
const char* malloc_conf = "dirty_decay_ms:-1,muzzy_decay_ms:-1,oversize_threshold:0";
}

namespace arcface::cli {

// A command whose part this build lacks: listed, and refusing with what it needs.
void add_missing(CLI::App& app, const std::string& name, const std::string& needs) {
  auto* cmd = app.add_subcommand(name, "(not in this build: needs " + needs + ")");
  cmd->allow_extras();
  cmd->callback([name, needs] {
    throw Error("'arcface " + name + "' is not in this build: it needs " + needs +
                " (rebuild with them installed)");
  });
}

}  // namespace arcface::cli

int main(int argc, char** argv) {
  // Line-buffered, so step messages and the progress bar (stderr) keep their order in logs.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  CLI::App app{"arcface: face recognition with margin-loss embeddings"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("arcface 0.1.0"));
  arcface::cli::add_select(app);
  arcface::cli::add_pack(app);
  arcface::cli::add_train(app);
  arcface::cli::add_distill(app);
  arcface::cli::add_eval(app);
  arcface::cli::add_benchmark(app);
  arcface::cli::add_overlap(app);
  arcface::cli::add_embed(app);
  arcface::cli::add_verify(app);
  arcface::cli::add_export(app);
#ifdef ARCFACE_WITH_OPENCV
  arcface::cli::add_align(app);
#else
  arcface::cli::add_missing(app, "align", "OpenCV");
#endif
#ifdef ARCFACE_WITH_SERVICE
  arcface::cli::add_gallery(app);
  arcface::cli::add_identify(app);
  arcface::cli::add_identify_eval(app);
  arcface::cli::add_serve(app);
#else
  for (const char* name : {"gallery", "identify", "identify-eval", "serve"}) {
    arcface::cli::add_missing(app, name, "OpenCV, faiss, SQLite, cpp-httplib and prometheus-cpp");
  }
#endif
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version end parsing too, with status 0.
    if (e.get_exit_code() == 0) return app.exit(e);
    std::cerr << "error: " << e.what() << "\n(see arcface --help, or arcface COMMAND --help)"
              << std::endl;
    return 2;
  } catch (const arcface::cli::ExitStatus& e) {
    std::fflush(stdout);
    return e.code;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::cerr << "\nerror: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}
