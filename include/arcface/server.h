#pragma once

// `arcface serve`: the Service on HTTP (cpp-httplib), with an API key, request limits,
// Prometheus metrics, an OpenAPI document and the web page.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "arcface/service.h"

namespace arcface {

/// Request counts, latencies and batch sizes, in Prometheus' text format.
class Metrics {
 public:
  Metrics();
  ~Metrics();
  /// `seconds` < 0: counted, not timed.
  void request(const std::string& route, int status, double seconds);
  void batch(size_t size);
  void gallery_faces(int64_t faces);
  std::string text() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (on_listening says which)
  /// Every /v1 route and /metrics need it in an X-API-Key header when set.
  std::string api_key;
  /// Connections served at once (each holds a thread while it is open).
  int connections = 64;
  std::function<void(const std::string& host, int port)> on_listening;
};

/// Serves until request_server_stop(), then finishes the requests in flight and returns.
/// Acknowledged changes are committed before their response is sent.
void serve(Service& service, Metrics& metrics, const ServerOptions& options);

/// Asks serve() to stop; safe to call from a signal handler.
void request_server_stop();

/// The same key, compared in a time that depends on the expected key's length only.
bool same_key(const std::string& given, const std::string& expected);

}  // namespace arcface
