#include "core/result.h"

namespace prevue {

const char* to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "invalid_argument";
    case ErrorCode::kNotFound: return "not_found";
    case ErrorCode::kParse: return "parse";
    case ErrorCode::kIo: return "io";
    case ErrorCode::kGit: return "git";
    case ErrorCode::kProvider: return "provider";
    case ErrorCode::kTimeout: return "timeout";
    case ErrorCode::kConflict: return "conflict";
    case ErrorCode::kCancelled: return "cancelled";
    case ErrorCode::kInternal: return "internal";
  }
  return "unknown";
}

}  // namespace prevue
