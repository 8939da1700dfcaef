// YAML written back out by the container providers after they change what
// they read (a merged compose file, rendered manifests).
#pragma once

#include <string>

#include <yaml-cpp/yaml.h>

namespace prevue::providers {

// Writes `node` out block-style; strings that were quoted (or are tagged "!"
// to be kept strings, whatever they look like) stay quoted.
void emit(YAML::Emitter& out, const YAML::Node& node);

std::string to_yaml(const YAML::Node& node);

}  // namespace prevue::providers
