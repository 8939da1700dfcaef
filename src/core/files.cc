#include "core/files.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

namespace prevue {

namespace {
Error io_error(const std::string& what, const std::filesystem::path& path) {
  return make_error(ErrorCode::kIo, what + " " + path.string() + ": " + std::strerror(errno));
}
}  // namespace

Status write_file_atomic(const std::filesystem::path& path, std::string_view content, Durability durability,
                         FileAccess access) {
  std::error_code ec;
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), ec);
  if (ec) return make_error(ErrorCode::kIo, "cannot create " + path.parent_path().string() + ": " + ec.message());
  std::random_device entropy;
  std::filesystem::path tmp = path;
  tmp += ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(entropy());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, access == FileAccess::kOwnerOnly ? 0600 : 0644);
  if (fd < 0) return io_error("cannot create", tmp);
  const char* data = content.data();
  size_t left = content.size();
  while (left > 0) {
    ssize_t n = ::write(fd, data, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      auto err = io_error("cannot write", tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      return err;
    }
    data += n;
    left -= static_cast<size_t>(n);
  }
  bool synced = durability == Durability::kAtomicOnly || ::fsync(fd) == 0;
  if (!synced || ::close(fd) != 0) {
    auto err = io_error("cannot flush", tmp);
    ::unlink(tmp.c_str());
    return err;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    auto err = io_error("cannot rename onto", path);
    ::unlink(tmp.c_str());
    return err;
  }
  return {};
}

Result<std::string> kept_secret(const std::filesystem::path& file, const std::function<std::string()>& make) {
  constexpr size_t kShortest = 32;  // anything shorter is a truncated or foreign file: made anew
  if (auto text = read_file(file); text.ok() && text->size() >= kShortest) return *text;
  PREVUE_TRY(write_file_atomic(file, make(), Durability::kSynced, FileAccess::kOwnerOnly));
  return read_file(file);
}

Result<std::string> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(ErrorCode::kNotFound, "cannot read " + path.string() + ": " + std::strerror(errno));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

FileLock::FileLock(const std::filesystem::path& path) {
  std::error_code ec;
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), ec);
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) return;
  while (::flock(fd_, LOCK_EX) != 0) {
    if (errno != EINTR) {
      ::close(fd_);
      fd_ = -1;
      return;
    }
  }
}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);
}

std::string tail_lines(std::string_view text, size_t max_lines) {
  if (text.empty() || max_lines == 0) return {};
  size_t end = text.size();
  if (text.back() == '\n') --end;
  size_t pos = end;
  size_t lines = 0;
  while (pos > 0) {
    if (text[pos - 1] == '\n' && ++lines == max_lines) break;
    --pos;
  }
  return std::string(text.substr(pos));
}

std::vector<std::string> nonempty_lines(std::string_view text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    if (end > start) out.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

}  // namespace prevue
