// prevue's own bare mirror of a repository, read straight from the object
// database with libgit2: no work tree, no `git` process.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"

namespace prevue {

struct ResolvedCommit {
  std::string sha;       // full 40-hex commit id
  std::string ref;       // the full ref it came from ("refs/heads/x"), empty for a bare sha
};

struct TreeFile {
  std::string path;      // relative to the repository root
  std::string blob_sha;
  bool executable = false;
  bool symlink = false;
};

class GitMirror {
 public:
  ~GitMirror();
  GitMirror(GitMirror&&) noexcept;
  GitMirror& operator=(GitMirror&&) noexcept;

  // Opens the bare mirror at `mirror_path`, creating it if absent; `source`
  // is a local path or a URL to fetch from.
  static Result<GitMirror> open(const std::filesystem::path& mirror_path, std::string source);

  // Fetches branches, tags and the hosts' pull/merge-request refs, pruning
  // refs that vanished at the source.
  Status fetch();

  // A branch, tag or full ref name.
  Result<ResolvedCommit> resolve_ref(const std::string& ref) const;
  // A full or abbreviated (>= 4 hex) commit id.
  Result<ResolvedCommit> resolve_sha(const std::string& sha) const;

  // The file's content at `commit`, or nullopt when no such file exists there.
  Result<std::optional<std::string>> read_file(const std::string& commit, const std::string& path) const;
  // Every file under `dir` ("." for the whole tree) at `commit`.
  Result<std::vector<TreeFile>> list_files(const std::string& commit, const std::string& dir) const;
  // Writes every file under `dir` at `commit` into `destination`, keeping
  // the repository-relative paths and the executable bit; returns the files.
  // A file whose blob id `unchanged` maps its path to, and which still
  // exists, is left as it is (a redeploy rewrites only what changed).
  Result<std::vector<TreeFile>> export_tree(const std::string& commit, const std::string& dir,
                                            const std::filesystem::path& destination,
                                            const std::map<std::string, std::string>* unchanged = nullptr) const;
  // The tree (or blob) id at `path` in `commit`; empty when absent.
  Result<std::string> entry_id(const std::string& commit, const std::string& path) const;
  // Whether `ancestor` is reachable from `descendant`.
  Result<bool> is_ancestor(const std::string& ancestor, const std::string& descendant) const;
  // Branch names (without refs/heads/) and their tips.
  Result<std::vector<std::pair<std::string, std::string>>> branches() const;
  // Full ref names matching `glob` ("refs/pull/*/head") and their commits.
  Result<std::vector<std::pair<std::string, std::string>>> refs(const std::string& glob) const;

  const std::string& source() const { return source_; }

 private:
  struct Impl;
  explicit GitMirror(std::unique_ptr<Impl> impl, std::string source);
  std::unique_ptr<Impl> impl_;
  std::string source_;
};

// Initialises libgit2 once per process. Debian's libgit2 parses the whole CA
// bundle here (its TLS backend), which costs tens of milliseconds: a fixed
// per-process cost that a long-running daemon pays once.
void init_git_library();

// Whether `name` is a plausible ref for the user to hand us (git's own rules).
bool is_valid_ref_name(const std::string& name);

}  // namespace prevue
