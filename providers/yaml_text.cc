#include "yaml_text.h"

namespace prevue::providers {

void emit(YAML::Emitter& out, const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      out << YAML::BeginMap;
      for (const auto& item : node) {
        out << YAML::Key;
        emit(out, item.first);
        out << YAML::Value;
        emit(out, item.second);
      }
      out << YAML::EndMap;
      break;
    case YAML::NodeType::Sequence:
      out << YAML::BeginSeq;
      for (const auto& item : node) emit(out, item);
      out << YAML::EndSeq;
      break;
    case YAML::NodeType::Scalar:
      if (node.Tag() == "!") out << YAML::DoubleQuoted << node.Scalar();
      else out << node.Scalar();
      break;
    default:
      out << YAML::Null;
  }
}

std::string to_yaml(const YAML::Node& node) {
  YAML::Emitter out;
  emit(out, node);
  return out.c_str();
}

}  // namespace prevue::providers
