#include "core/redact.h"

#include <algorithm>
#include <vector>

namespace prevue {

Redactor::Redactor(const std::map<std::string, std::string>& secrets) {
  for (const auto& [name, value] : secrets) add(name, value);
}

void Redactor::add(const std::string& name, const std::string& value) {
  if (value.size() >= 4) values_[value] = name;
}

std::string Redactor::operator()(std::string text) const {
  if (values_.empty()) return text;
  // Longer values first, so a secret that contains another is hidden whole.
  std::vector<std::pair<std::string, std::string>> ordered(values_.begin(), values_.end());
  std::sort(ordered.begin(), ordered.end(), [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  for (const auto& [value, name] : ordered) {
    std::string replacement = "[secret " + name + "]";
    size_t at = 0;
    while ((at = text.find(value, at)) != std::string::npos) {
      text.replace(at, value.size(), replacement);
      at += replacement.size();
    }
  }
  return text;
}

std::string without_server_paths(const std::string& text, const std::string& env_dir) {
  const std::string root = env_dir.empty() || env_dir.back() == '/' ? env_dir : env_dir + "/";
  std::string out;
  out.reserve(text.size());
  auto is_path_char = [](char c) {
    return c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\'' && c != '"' && c != '(' && c != ')' && c != ',' && c != ';' &&
           c != '<' && c != '>' && c != '`';
  };
  size_t i = 0;
  while (i < text.size()) {
    // A path starts at a '/' after a separator or '=' (not inside a word, not "//" of a URL).
    bool starts_path = text[i] == '/' && (i == 0 || !is_path_char(text[i - 1]) || text[i - 1] == '=') &&
                       (i + 1 >= text.size() || text[i + 1] != '/');
    if (!starts_path) {
      out += text[i++];
      continue;
    }
    size_t end = i;
    while (end < text.size() && is_path_char(text[end]) && !(text[end] == ':' && end > i)) ++end;
    std::string path = text.substr(i, end - i);
    if (!root.empty() && path.rfind(root, 0) == 0) {
      out += "…/" + path.substr(root.size());
    } else if (path == env_dir) {
      out += "…";
    } else {
      // One component ("/healthz") says nothing of the server: kept. Else the last one.
      std::string trimmed = path;
      while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
      auto slash = trimmed.rfind('/');
      out += slash == 0 ? path : "…/" + trimmed.substr(slash + 1);
    }
    i = end;
  }
  return out;
}

}  // namespace prevue
