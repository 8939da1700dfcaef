// Secret values never reach a log line, a step log or an API response:
// every text that is stored or shown passes through a Redactor.
#pragma once

#include <map>
#include <string>

namespace prevue {

class Redactor {
 public:
  Redactor() = default;
  explicit Redactor(const std::map<std::string, std::string>& secrets);
  // Each occurrence of a secret's value becomes "[secret NAME]". Values
  // shorter than 4 characters are not worth hiding and would mangle text.
  std::string operator()(std::string text) const;
  // One more value to hide, shown as "[secret NAME]" (a sensitive provider output).
  void add(const std::string& name, const std::string& value);
  bool empty() const { return values_.empty(); }

 private:
  std::map<std::string, std::string, std::greater<>> values_;  // value -> name, longest-first by ordering below
};

// Text shown to anyone who can reach a preview (the proxy's failed page)
// names no path on the server: "/var/lib/prevue/envs/pr-1-x/web/app.py"
// becomes "…/web/app.py" when under `env_dir`, and any other absolute path
// keeps only its last component ("/usr/lib/python3/x.py" -> "…/x.py").
std::string without_server_paths(const std::string& text, const std::string& env_dir);

}  // namespace prevue
