// `arcface serve`: a gallery on HTTP, with the web page at /.
#include <cmath>
#include <csignal>
#include <cstdlib>

#include <spdlog/fmt/fmt.h>

#include "arcface/decision.h"
#include "arcface/error.h"
#include "arcface/server.h"
#include "commands.h"
#include "gallery_args.h"

namespace arcface::cli {

namespace {

void on_signal(int) { request_server_stop(); }

}  // namespace

void add_serve(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("serve", "Serve a gallery over HTTP: JSON API under /v1, a web page at /");
  struct Args {
    GalleryArgs gallery;
    ServerOptions server;
    ServiceOptions service;
    int64_t max_batch = 16;
    double max_wait_ms = 5, max_upload_mb = 10;
    std::string aggregation = "mean", images_root;
    std::vector<std::string> reports;
    double verify_threshold = std::nan(""), far = 0;
  };
  auto a = std::make_shared<Args>();
  add_gallery_options(cmd, a->gallery);
  add_face_options(cmd, a->gallery);
  cmd->add_option("--host", a->server.host, "address to listen on")->capture_default_str();
  cmd->add_option("--port", a->server.port, "port (0: any free one)")->capture_default_str();
  cmd->add_option("--api-key", a->server.api_key,
                  "clients send it as X-API-Key (default: $ARCFACE_API_KEY; none: open)");
  cmd->add_option("--connections", a->server.connections, "connections served at once")
      ->capture_default_str();
  cmd->add_option("--max-batch", a->max_batch, "photos per network run (1: no batching)")
      ->capture_default_str();
  cmd->add_option("--max-wait-ms", a->max_wait_ms, "how long a photo waits for a batch to fill")
      ->capture_default_str();
  cmd->add_option("--max-upload-mb", a->max_upload_mb, "largest photo accepted")
      ->capture_default_str();
  cmd->add_option("--max-pixels", a->service.max_pixels, "largest width x height accepted")
      ->capture_default_str();
  cmd->add_option("--images-root", a->images_root,
                  "faces may be added from server files below this folder (default: not at all)");
  cmd->add_option("--aggregation", a->aggregation,
                  "a person scores by mean descriptor or best face")
      ->capture_default_str();
  cmd->add_option("--verify-threshold", a->verify_threshold,
                  "/v1/verify says same person from this cosine score");
  cmd->add_option("--report", a->reports,
                  "eval's metrics.json: the verify threshold; identify-eval's JSON: the search "
                  "threshold (with --far); may be given twice");
  cmd->add_option("--far", a->far,
                  "decide at this false-accept rate of the reports (e.g. 1e-3) instead of "
                  "eval's best-accuracy threshold");
  cmd->callback([a] {
    if (a->server.api_key.empty()) {
      if (const char* key = std::getenv("ARCFACE_API_KEY")) a->server.api_key = key;
    }
    if (!std::isnan(a->verify_threshold)) {
      a->service.verify = Decision{a->verify_threshold, 0, "", "given by --verify-threshold"};
    }
    if (a->far > 0 && a->reports.empty()) throw Error("--far needs --report");
    for (const auto& report : a->reports) {
      Decision d = read_decision(report, a->far, a->aggregation);
      fmt::print("{} threshold {:.4f}: {}\n", d.one_to_one ? "verify" : "search", d.threshold,
                 d.meaning);
      (d.one_to_one ? a->service.verify : a->service.search) = std::move(d);
    }
    if (!a->images_root.empty() && !fs::is_directory(a->images_root)) {
      throw Error(fmt::format("--images-root '{}' is not a folder", a->images_root));
    }
    if (a->max_upload_mb <= 0 || a->service.max_pixels <= 0 || a->max_wait_ms < 0) {
      throw Error("--max-upload-mb and --max-pixels must be positive, --max-wait-ms not negative");
    }
    a->service.images_root = a->images_root;
    a->service.max_upload_bytes = static_cast<int64_t>(a->max_upload_mb * (1 << 20));
    a->gallery.options.aggregation = parse_aggregation(a->aggregation);

    OpenedGallery o = open_gallery(a->gallery);
    FaceEncoder encoder(o.embedder, encoder_options(a->gallery, o.flip));
    Metrics metrics;
    BatcherOptions batching;
    batching.max_batch = a->max_batch;
    batching.max_wait = std::chrono::microseconds(static_cast<int64_t>(a->max_wait_ms * 1000));
    Batcher batcher(encoder, batching, [&metrics](size_t n) { metrics.batch(n); });
    Service service(o.gallery, batcher, a->service);
    a->server.on_listening = [&](const std::string& host, int port) {
      fmt::print("Serving {} ({} faces, {}) on http://{}:{}/ {}\n", a->gallery.gallery,
                 o.gallery.face_count(), o.gallery.model().describe(), host, port,
                 a->server.api_key.empty() ? "(no API key)" : "(API key required)");
    };
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    serve(service, metrics, a->server);
    fmt::print("Stopped: the requests in progress were answered\n");
  });
}

}  // namespace arcface::cli
