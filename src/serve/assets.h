#pragma once

// Files served as they are, compiled in from web/ (see CMakeLists.txt).
namespace arcface::assets {

extern const char* const index_html;
extern const char* const openapi_json;

}  // namespace arcface::assets
