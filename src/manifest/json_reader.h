// Reads a JSON document field by field, failing with the JSON path of the
// offending value ("$.services.web.run[1] must be a string"). Shared by the
// manifest and the daemon's config; the error is thrown only to the parse
// function of the reader's user, which turns it into a Result.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "core/duration.h"
#include "manifest/manifest.h"

namespace prevue {
namespace json_reader {

using json = nlohmann::json;

// Validation reads much more clearly without a Result check after every
// field; the parse function that uses a Reader catches this.
struct ReadError {
  std::string path;
  std::string message;
};

inline bool is_name(std::string_view s) {
  static const std::regex kName("[a-z][a-z0-9_-]{0,39}");
  return std::regex_match(s.begin(), s.end(), kName);
}

class Reader {
 public:
  Reader(const json& value, std::string path) : value_(value), path_(std::move(path)) {}

  [[noreturn]] void fail(const std::string& message) const { throw ReadError{path_, message}; }

  const json& value() const { return value_; }
  const std::string& path() const { return path_; }

  void expect_object(std::initializer_list<std::string_view> allowed) const {
    if (!value_.is_object()) fail("must be an object");
    for (const auto& item : value_.items()) {
      bool known = false;
      for (auto key : allowed) known = known || item.key() == key;
      if (!known) Reader(item.value(), child_path(item.key())).fail("unknown field '" + item.key() + "'");
    }
  }

  bool has(std::string_view key) const { return value_.contains(key); }

  Reader at(std::string_view key) const { return Reader(value_.at(std::string(key)), child_path(key)); }

  std::string child_path(std::string_view key) const { return path_ + "." + std::string(key); }

  std::string string() const {
    if (!value_.is_string()) fail("must be a string");
    return value_.get<std::string>();
  }
  std::string string_or(std::string_view key, std::string fallback) const {
    return has(key) ? at(key).string() : fallback;
  }
  std::string required_string(std::string_view key) const {
    if (!has(key)) fail("missing required field '" + std::string(key) + "'");
    std::string s = at(key).string();
    if (s.empty()) at(key).fail("must not be empty");
    return s;
  }
  std::string path_value() const {
    std::string s = string();
    if (!is_safe_relative_path(s)) fail("must be a relative path without '..' (got '" + s + "')");
    return s;
  }
  bool boolean() const {
    if (!value_.is_boolean()) fail("must be true or false");
    return value_.get<bool>();
  }
  // A JSON integer within [low, high]; a float, however whole, is refused
  // (its conversion to an integer is undefined past the range).
  std::int64_t integer(std::int64_t low, std::int64_t high) const {
    if (!value_.is_number_integer()) fail("must be an integer");
    std::int64_t v = 0;
    if (value_.is_number_unsigned()) {
      auto u = value_.get<std::uint64_t>();
      if (u > static_cast<std::uint64_t>(high)) fail("must be between " + std::to_string(low) + " and " + std::to_string(high));
      v = static_cast<std::int64_t>(u);
    } else {
      v = value_.get<std::int64_t>();
    }
    if (v < low || v > high) fail("must be between " + std::to_string(low) + " and " + std::to_string(high));
    return v;
  }
  Millis duration() const {
    auto parsed = parse_duration(string());
    if (!parsed.ok()) fail(parsed.error().message);
    return *parsed;
  }
  std::vector<std::string> argv() const {
    if (!value_.is_array()) fail("must be an array of strings (an argv; no shell is involved)");
    if (value_.empty()) fail("must not be empty");
    std::vector<std::string> out;
    for (size_t i = 0; i < value_.size(); ++i) {
      Reader item(value_[i], path_ + "[" + std::to_string(i) + "]");
      out.push_back(item.string());
    }
    return out;
  }
  std::vector<std::string> strings() const {
    if (!value_.is_array()) fail("must be an array of strings");
    std::vector<std::string> out;
    for (size_t i = 0; i < value_.size(); ++i) out.push_back(Reader(value_[i], path_ + "[" + std::to_string(i) + "]").string());
    return out;
  }
  std::vector<std::string> paths() const {
    if (!value_.is_array()) fail("must be an array of repository paths");
    std::vector<std::string> out;
    for (size_t i = 0; i < value_.size(); ++i) out.push_back(Reader(value_[i], path_ + "[" + std::to_string(i) + "]").path_value());
    return out;
  }
  std::map<std::string, std::string> string_map() const {
    if (!value_.is_object()) fail("must be an object of strings");
    std::map<std::string, std::string> out;
    for (const auto& item : value_.items()) out[item.key()] = Reader(item.value(), child_path(item.key())).string();
    return out;
  }

 private:
  const json& value_;
  std::string path_;
};


// "line 3, column 7" of a byte offset.
std::string line_and_column(std::string_view text, size_t byte);

// Parses a JSON document; every failure (syntax, a number past the double
// range) is an error value naming `origin` and where, never an exception.
Result<json> parse_document(std::string_view text, std::string_view origin);

// A lease block ("ttl", "idle", "end", "grace"), read the same way in a
// manifest and in the daemon's config; what it leaves out stays unset.
ManifestLease read_lease(const Reader& r);

}  // namespace json_reader
}  // namespace prevue
