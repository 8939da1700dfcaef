#include "docker_cli.h"

namespace prevue::compose {

const std::vector<std::string>& compose_binary() {
  static const std::vector<std::string> binary = [] {
    if (run({"docker", "compose", "version"}, Millis(20'000)).ok()) return std::vector<std::string>{"docker", "compose"};
    return std::vector<std::string>{"docker-compose"};
  }();
  return binary;
}

}  // namespace prevue::compose
