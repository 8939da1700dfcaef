#include "operator_settings.h"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/files.h"

namespace prevue::providers {

RememberedSettings remembered_operator_settings(const ProviderRequest& request) {
  namespace fs = std::filesystem;
  using json = nlohmann::json;
  RememberedSettings out;
  const fs::path kept = fs::path(request.records_root) / "operator.json";
  json given = json::parse(request.operator_settings, nullptr, false);
  if (!given.is_object() || given.empty()) {
    out.text = "{}";
    if (!request.records_root.empty())
      if (auto text = read_file(kept); text.ok() && json::parse(*text, nullptr, false).is_object()) out.text = *text;
    return out;
  }
  out.text = given.dump();
  out.given = true;
  if (!request.records_root.empty()) {
    auto known = read_file(kept);
    if (!known.ok() || json::parse(*known, nullptr, false) != given) {
      out.changed = true;
      std::error_code ec;
      fs::create_directories(request.records_root, ec);
      (void)write_file_atomic(kept, given.dump(2) + "\n", Durability::kAtomicOnly, FileAccess::kOwnerOnly);  // it may hold a password
    }
  }
  return out;
}

}  // namespace prevue::providers
