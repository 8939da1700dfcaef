// Small filesystem helpers with the guarantees prevue relies on.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace prevue {

enum class Durability {
  kSynced,      // fsync before the rename: survives power loss (records prevue relies on)
  kAtomicOnly,  // no fsync: readers never see half a file; regenerated if lost (environment files)
};

enum class FileAccess {
  kShared,     // 0644
  kOwnerOnly,  // 0600 from its creation: a password, a connection string, a secret
};

// Writes via a temporary file in the same directory and a rename, so a
// reader (or a crash) sees the old content or the new, never half of it.
Status write_file_atomic(const std::filesystem::path& path, std::string_view content,
                         Durability durability = Durability::kSynced, FileAccess access = FileAccess::kShared);

Result<std::string> read_file(const std::filesystem::path& path);

// A secret kept in `file` (0600): the one there, else `make()` written there
// first. Two processes making it at once both end up with the one on disk.
Result<std::string> kept_secret(const std::filesystem::path& file, const std::function<std::string()>& make);

// An exclusive advisory lock on a file (created if missing), held from
// construction to destruction; the kernel releases it if the process dies,
// so a crashed holder never blocks the next one.
class FileLock {
 public:
  explicit FileLock(const std::filesystem::path& path);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  bool held() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// The last `max_lines` lines of `text` (for error messages quoting a log).
std::string tail_lines(std::string_view text, size_t max_lines);
// The lines of `text` that are not empty (a list as a text column or a command prints it).
std::vector<std::string> nonempty_lines(std::string_view text);

}  // namespace prevue
