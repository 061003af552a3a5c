#include "arcface/server.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <optional>
#include <regex>
#include <sstream>
#include <thread>
#include <type_traits>

#include <httplib.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include "arcface/error.h"
#include "assets.h"

namespace arcface {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

std::atomic<bool> stop_requested{false};

const char* status_code(int status) {
  switch (status) {
    case 400:
      return "bad_request";
    case 401:
      return "unauthorized";
    case 403:
      return "forbidden";
    case 404:
      return "not_found";
    case 405:
      return "method_not_allowed";
    case 413:
      return "too_large";
    case 415:
      return "unsupported_media_type";
    case 422:
      return "unprocessable";
    default:
      return status >= 500 ? "internal" : "error";
  }
}

void send_error(httplib::Response& res, int status, const std::string& code,
                const std::string& message) {
  res.status = status;
  res.set_content(
      json{{"error", {{"status", status}, {"code", code}, {"message", message}}}}.dump(),
      "application/json");
}

void send_json(httplib::Response& res, const json& body, int status = 200) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

// "application/json", with or without a charset.
bool is_json(const httplib::Request& req) {
  return req.get_header_value("Content-Type").rfind("application/json", 0) == 0;
}

json body_json(const httplib::Request& req) {
  if (req.body.empty()) return json::object();
  json body;
  try {
    body = json::parse(req.body);
  } catch (const json::parse_error& e) {
    throw ApiError(400, "malformed_json",
                   fmt::format("the request body is not JSON: {}", e.what()));
  }
  if (!body.is_object()) {
    throw ApiError(400, "malformed_json", "the request body is not a JSON object");
  }
  return body;
}

template <typename T>
T body_field(const json& body, const std::string& key, T fallback) {
  if (!body.contains(key)) return fallback;
  try {
    if constexpr (std::is_integral_v<T>) {
      // A whole number, not a float cast (1e300 would be undefined behaviour).
      if (!body.at(key).is_number_integer()) {
        throw ApiError(400, "bad_request", fmt::format("\"{}\" must be a whole number", key));
      }
    }
    return body.at(key).get<T>();
  } catch (const json::exception&) {
    throw ApiError(400, "bad_request", fmt::format("\"{}\" has the wrong type", key));
  }
}

double number_param(const httplib::Request& req, const std::string& key, double fallback) {
  if (!req.has_param(key.c_str())) return fallback;
  const std::string text = req.get_param_value(key.c_str());
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || !std::isfinite(v)) {
    throw ApiError(400, "bad_request", fmt::format("{}={} is not a number", key, text));
  }
  return v;
}

int64_t integer_param(const httplib::Request& req, const std::string& key, int64_t fallback) {
  const double v = number_param(req, key, static_cast<double>(fallback));
  if (v != std::floor(v) || std::abs(v) > 1e15) {
    throw ApiError(400, "bad_request", fmt::format("{}={} is not a whole number in range", key, v));
  }
  return static_cast<int64_t>(v);
}

/// The photos of a request: multipart files (any field), or the body itself when it is not
/// JSON.
std::vector<Upload> uploads(const httplib::Request& req, const std::string& field = "") {
  std::vector<Upload> out;
  if (req.is_multipart_form_data()) {
    for (const auto& [name, file] : req.files) {
      if (!field.empty() && name != field) continue;
      if (file.filename.empty() && field.empty() && name != "image") continue;
      out.push_back({file.filename.empty() ? name : file.filename, file.content});
    }
  } else if (!req.body.empty() && !is_json(req)) {
    out.push_back({"upload", req.body});
  }
  return out;
}

Upload one_upload(const httplib::Request& req, const std::string& field = "") {
  auto all = uploads(req, field);
  if (all.size() != 1) {
    throw ApiError(400, "no_image",
                   field.empty() ? fmt::format("send one photo (got {})", all.size())
                                 : fmt::format("send one photo in the form field '{}' (got {})",
                                               field, all.size()));
  }
  return all.front();
}

// The name a request is counted under in the metrics: its route's pattern.
struct Route {
  std::string method, pattern;
  std::regex regex;
};

// Set by the pre-routing handler and read by the logger, on the same thread; empty for
// requests httplib refused before routing (they are counted, not timed).
thread_local std::optional<Clock::time_point> request_started;

}  // namespace

struct Metrics::Impl {
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  prometheus::Family<prometheus::Counter>& requests = prometheus::BuildCounter()
                                                          .Name("arcface_requests_total")
                                                          .Help("HTTP requests by route and status")
                                                          .Register(*registry);
  prometheus::Family<prometheus::Histogram>& latency = prometheus::BuildHistogram()
                                                           .Name("arcface_request_seconds")
                                                           .Help("HTTP request latency by route")
                                                           .Register(*registry);
  prometheus::Family<prometheus::Histogram>& batches = prometheus::BuildHistogram()
                                                           .Name("arcface_batch_size")
                                                           .Help("photos per network run")
                                                           .Register(*registry);
  prometheus::Histogram& batch_size =
      batches.Add({}, prometheus::Histogram::BucketBoundaries{1, 2, 4, 8, 16, 32, 64});
  prometheus::Gauge& faces = prometheus::BuildGauge()
                                 .Name("arcface_gallery_faces")
                                 .Help("faces in the gallery's index")
                                 .Register(*registry)
                                 .Add({});
};

Metrics::Metrics() : impl_(std::make_unique<Impl>()) {}
Metrics::~Metrics() = default;

void Metrics::request(const std::string& route, int status, double seconds) {
  impl_->requests.Add({{"route", route}, {"status", std::to_string(status)}}).Increment();
  if (seconds < 0) return;  // not timed
  impl_->latency
      .Add({{"route", route}},
           prometheus::Histogram::BucketBoundaries{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                   0.25, 0.5, 1, 2.5, 5, 10})
      .Observe(seconds);
}

void Metrics::batch(size_t size) { impl_->batch_size.Observe(static_cast<double>(size)); }
void Metrics::gallery_faces(int64_t faces) { impl_->faces.Set(static_cast<double>(faces)); }

std::string Metrics::text() const {
  return prometheus::TextSerializer().Serialize(impl_->registry->Collect());
}

bool same_key(const std::string& given, const std::string& expected) {
  unsigned char differ = given.size() != expected.size();
  for (size_t i = 0; i < expected.size(); ++i) {
    differ |= static_cast<unsigned char>(expected[i] ^ (i < given.size() ? given[i] : 0));
  }
  return differ == 0;
}

void request_server_stop() { stop_requested = true; }

void serve(Service& service, Metrics& metrics, const ServerOptions& options) {
  httplib::Server server;
  std::vector<Route> routes;
  const int connections = std::max(1, options.connections);
  server.new_task_queue = [connections] { return new httplib::ThreadPool(connections); };

  // Every handler answers JSON; ApiErrors carry their status, anything else is a 500.
  using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;
  auto add = [&](const std::string& method, const std::string& pattern, Handler handler) {
    auto guarded = [handler](const httplib::Request& req, httplib::Response& res) {
      try {
        handler(req, res);
      } catch (const ApiError& e) {
        send_error(res, e.status, e.code, e.what());
      } catch (const std::exception& e) {
        spdlog::error("{} {}: {}", req.method, req.path, e.what());
        send_error(res, 500, "internal", "the service failed on this request (see its log)");
      }
    };
    // "/v1/subjects/{name}" as OpenAPI writes it names the route; httplib matches a regex.
    const std::string regex = std::regex_replace(pattern, std::regex(R"(\{[a-z]+\})"), "([^/]+)");
    routes.push_back({method, pattern, std::regex(regex)});
    if (method == "GET") server.Get(regex, guarded);
    if (method == "POST") server.Post(regex, guarded);
    if (method == "PATCH") server.Patch(regex, guarded);
    if (method == "DELETE") server.Delete(regex, guarded);
  };

  add("GET", "/", [](const auto&, auto& res) { res.set_content(assets::index_html, "text/html"); });
  add("GET", "/health", [&](const auto&, auto& res) { send_json(res, service.health()); });
  add("GET", "/metrics", [&](const auto&, auto& res) {
    metrics.gallery_faces(service.health().at("indexed").get<int64_t>());
    res.set_content(metrics.text(), "text/plain; version=0.0.4");
  });
  add("GET", "/v1/openapi.json",
      [](const auto&, auto& res) { res.set_content(assets::openapi_json, "application/json"); });
  add("POST", "/v1/embed", [&](const auto& req, auto& res) {
    const auto photos = uploads(req);
    if (photos.empty()) throw ApiError(400, "no_image", "send one or more photos");
    send_json(res, service.embed(photos));
  });
  add("POST", "/v1/verify", [&](const auto& req, auto& res) {
    send_json(res, service.verify(one_upload(req, "a"), one_upload(req, "b")));
  });
  add("GET", "/v1/subjects", [&](const auto&, auto& res) { send_json(res, service.subjects()); });
  add("POST", "/v1/subjects", [&](const auto& req, auto& res) {
    const json body = body_json(req);
    send_json(res,
              service.create_subject(body_field<std::string>(body, "name", ""),
                                     body_field<json>(body, "metadata", json::object())),
              201);
  });
  add("PATCH", "/v1/subjects/{name}", [&](const auto& req, auto& res) {
    const json body = body_json(req);
    send_json(res,
              service.rename_subject(req.matches[1], body_field<std::string>(body, "name", "")));
  });
  add("DELETE", "/v1/subjects/{name}",
      [&](const auto& req, auto& res) { send_json(res, service.delete_subject(req.matches[1])); });
  add("GET", "/v1/subjects/{name}/faces",
      [&](const auto& req, auto& res) { send_json(res, service.faces(req.matches[1])); });
  add("POST", "/v1/subjects/{name}/faces", [&](const auto& req, auto& res) {
    std::vector<std::string> paths;
    if (is_json(req)) {
      const json body = body_json(req);
      if (body.contains("path")) paths.push_back(body_field<std::string>(body, "path", ""));
      const auto more = body_field<std::vector<std::string>>(body, "paths", {});
      paths.insert(paths.end(), more.begin(), more.end());
    }
    const bool create = integer_param(req, "create", 1) != 0;
    send_json(res, service.add_faces(req.matches[1], uploads(req), paths, create), 201);
  });
  add("DELETE", "/v1/faces/{id}", [&](const auto& req, auto& res) {
    const std::string id = req.matches[1];
    if (id.empty() || id.size() > 18 || id.find_first_not_of("0123456789") != std::string::npos) {
      throw ApiError(400, "bad_request", fmt::format("face id '{}' is not a number", id));
    }
    send_json(res, service.delete_face(std::stoll(id)));
  });
  add("POST", "/v1/search", [&](const auto& req, auto& res) {
    int64_t k = integer_param(req, "k", 5);
    double threshold = number_param(req, "threshold", std::nan(""));
    if (is_json(req)) {
      const json body = body_json(req);
      k = body_field<int64_t>(body, "k", k);
      threshold = body_field<double>(body, "threshold", threshold);
      if (!body.contains("embedding")) {
        throw ApiError(400, "bad_request", "a JSON search needs an \"embedding\" array");
      }
      send_json(
          res, service.search(body_field<std::vector<float>>(body, "embedding", {}), k, threshold));
      return;
    }
    send_json(res, service.search(one_upload(req), k, threshold));
  });

  // The key is checked before any route runs, and every request is timed.
  server.set_pre_routing_handler([&](const httplib::Request& req, httplib::Response& res) {
    request_started = Clock::now();
    // Only bodies whose length is declared are read, and only as sent: httplib would read a
    // chunked body, or inflate a compressed one, past the payload limit.
    if (req.has_header("Transfer-Encoding") ||
        (req.has_header("Content-Encoding") &&
         req.get_header_value("Content-Encoding") != "identity")) {
      send_error(res, 411, "length_required",
                 "send the body whole and uncompressed, with a Content-Length");
      return httplib::Server::HandlerResponse::Handled;
    }
    const bool open = req.path == "/" || req.path == "/health" || req.path == "/v1/openapi.json";
    if (options.api_key.empty() || open) return httplib::Server::HandlerResponse::Unhandled;
    std::string given = req.get_header_value("X-API-Key");
    if (given.empty()) {
      const std::string auth = req.get_header_value("Authorization");
      if (auth.rfind("Bearer ", 0) == 0) given = auth.substr(7);
    }
    if (same_key(given, options.api_key)) return httplib::Server::HandlerResponse::Unhandled;
    send_error(res, 401, "unauthorized",
               given.empty() ? "this service needs an API key (X-API-Key header)"
                             : "the API key is wrong");
    return httplib::Server::HandlerResponse::Handled;
  });
  // Refusals httplib makes itself (no route, a body over the limit) answer JSON too.
  server.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    const std::string message =
        res.status == 404   ? fmt::format("no route {} {}", req.method, req.path)
        : res.status == 413 ? "the request body is larger than the service accepts"
                            : fmt::format("HTTP {}", res.status);
    send_error(res, res.status, status_code(res.status), message);
  });
  server.set_logger([&](const httplib::Request& req, const httplib::Response& res) {
    std::string route = "unmatched";
    for (const auto& r : routes) {
      if (r.method == req.method && std::regex_match(req.path, r.regex)) {
        route = r.method + " " + r.pattern;
        break;
      }
    }
    const double seconds =
        request_started ? std::chrono::duration<double>(Clock::now() - *request_started).count()
                        : -1;
    request_started.reset();
    metrics.request(route, res.status, seconds);
  });
  // Bodies a little over the largest photo (multipart framing); the service checks each photo.
  server.set_payload_max_length(static_cast<size_t>(service.max_upload_bytes()) * 2 + (1 << 20));

  int port = options.port;
  if (port == 0) {
    port = server.bind_to_any_port(options.host);
  } else if (!server.bind_to_port(options.host, port)) {
    port = -1;
  }
  if (port < 0) {
    throw Error(fmt::format("cannot listen on {}:{} (in use, or not an address of this machine)",
                            options.host, options.port));
  }
  // stop() acts only once the server runs: the watcher waits for both. It stops accepting;
  // the requests being handled are answered before listen_after_bind returns.
  std::atomic<bool> listening_ended{false};
  std::thread watcher([&] {
    while (!listening_ended && !(stop_requested && server.is_running())) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    server.stop();
  });
  struct Join {
    std::atomic<bool>& ended;
    std::thread& thread;
    ~Join() {
      ended = true;
      thread.join();
    }
  } join{listening_ended, watcher};
  if (options.on_listening) options.on_listening(options.host, port);
  const bool ok = server.listen_after_bind();
  stop_requested = false;  // a later serve() in this process starts afresh
  if (!ok) throw Error(fmt::format("the server on {}:{} failed", options.host, port));
}

}  // namespace arcface
