#include "git/git_mirror.h"

#include <fcntl.h>
#include <git2.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

#include <mutex>

#include "core/files.h"
#include "core/slug.h"

namespace prevue {

void init_git_library() {
  static std::once_flag once;
  std::call_once(once, [] {
    git_libgit2_init();
    // The mirror is ours; repositories handed to us as paths may belong to
    // another user (a CI checkout), which is not a reason to refuse them.
    git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, 0);
  });
}

namespace {

Error git_failure(const std::string& what) {
  const ::git_error* e = git_error_last();
  return make_error(ErrorCode::kGit, what + (e && e->message ? std::string(": ") + e->message : std::string()));
}

template <class T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const {
    if (p) Free(p);
  }
};
using RepoPtr = std::unique_ptr<git_repository, Deleter<git_repository, git_repository_free>>;
using RemotePtr = std::unique_ptr<git_remote, Deleter<git_remote, git_remote_free>>;
using ObjectPtr = std::unique_ptr<git_object, Deleter<git_object, git_object_free>>;
using CommitPtr = std::unique_ptr<git_commit, Deleter<git_commit, git_commit_free>>;
using TreePtr = std::unique_ptr<git_tree, Deleter<git_tree, git_tree_free>>;
using EntryPtr = std::unique_ptr<git_tree_entry, Deleter<git_tree_entry, git_tree_entry_free>>;
using BlobPtr = std::unique_ptr<git_blob, Deleter<git_blob, git_blob_free>>;
using RefPtr = std::unique_ptr<git_reference, Deleter<git_reference, git_reference_free>>;
using RefIterPtr = std::unique_ptr<git_reference_iterator, Deleter<git_reference_iterator, git_reference_iterator_free>>;

std::string oid_hex(const git_oid* oid) {
  char buf[GIT_OID_HEXSZ + 1];
  git_oid_tostr(buf, sizeof buf, oid);
  return buf;
}


std::string normalize_dir(std::string dir) {
  while (!dir.empty() && dir.back() == '/') dir.pop_back();
  if (dir.rfind("./", 0) == 0) dir = dir.substr(2);
  if (dir == ".") dir.clear();
  return dir;
}

}  // namespace

bool is_valid_ref_name(const std::string& name) {
  init_git_library();
  if (name.empty() || name.size() > 1024) return false;
  int valid = 0;
  std::string full = name.rfind("refs/", 0) == 0 ? name : "refs/heads/" + name;
  return git_reference_name_is_valid(&valid, full.c_str()) == 0 && valid;
}

struct GitMirror::Impl {
  RepoPtr repo;
  std::filesystem::path lock_path;  // beside the mirror: creating and fetching take it (threads and processes)

  Result<CommitPtr> commit(const std::string& sha) const {
    git_oid oid;
    if (git_oid_fromstr(&oid, sha.c_str()) != 0) return make_error(ErrorCode::kInvalidArgument, "not a commit id: " + sha);
    git_commit* c = nullptr;
    if (git_commit_lookup(&c, repo.get(), &oid) != 0) return git_failure("commit " + sha + " not found");
    return CommitPtr(c);
  }

  Result<TreePtr> tree_of(const std::string& sha) const {
    auto c = commit(sha);
    if (!c.ok()) return c.error();
    git_tree* t = nullptr;
    if (git_commit_tree(&t, c->get()) != 0) return git_failure("cannot read the tree of " + sha);
    return TreePtr(t);
  }

  // The subtree at `dir` (the root tree for ""), or nullptr when absent or not a tree.
  Result<TreePtr> subtree(const std::string& sha, const std::string& dir) const {
    auto root = tree_of(sha);
    if (!root.ok() || dir.empty()) return root;
    git_tree_entry* e = nullptr;
    if (git_tree_entry_bypath(&e, root->get(), dir.c_str()) != 0) return TreePtr();
    EntryPtr entry(e);
    if (git_tree_entry_type(e) != GIT_OBJECT_TREE) return TreePtr();
    git_tree* t = nullptr;
    if (git_tree_lookup(&t, repo.get(), git_tree_entry_id(e)) != 0) return git_failure("cannot read tree " + dir);
    return TreePtr(t);
  }
};

GitMirror::GitMirror(std::unique_ptr<Impl> impl, std::string source) : impl_(std::move(impl)), source_(std::move(source)) {}
GitMirror::~GitMirror() = default;
GitMirror::GitMirror(GitMirror&&) noexcept = default;
GitMirror& GitMirror::operator=(GitMirror&&) noexcept = default;

Result<GitMirror> GitMirror::open(const std::filesystem::path& mirror_path, std::string source) {
  init_git_library();
  git_repository* raw = nullptr;
  std::filesystem::path lock_path = mirror_path.string() + ".lock";
  {
    // Two builds of one repository may start at once: one creates the mirror,
    // and no one opens it half made.
    FileLock lock(lock_path);
    if (git_repository_open_bare(&raw, mirror_path.c_str()) != 0) {
      std::error_code ec;
      std::filesystem::create_directories(mirror_path.parent_path(), ec);
      if (git_repository_init(&raw, mirror_path.c_str(), /*is_bare=*/1) != 0)
        return git_failure("cannot create mirror at " + mirror_path.string());
    }
  }
  auto impl = std::make_unique<Impl>();
  impl->repo.reset(raw);
  impl->lock_path = std::move(lock_path);
  return GitMirror(std::move(impl), std::move(source));
}

Status GitMirror::fetch() {
  // One fetch into a mirror at a time: concurrent ones fail on git's ref locks.
  FileLock lock(impl_->lock_path);
  git_remote* raw = nullptr;
  // Anonymous, and without git's url.<base>.insteadOf rewriting: libgit2 1.5
  // looks those up with a regular expression whose PCRE2 match data it never
  // frees when nothing matches (about 20 KB lost per config entry per
  // fetch, hundreds of MB a day at a 30 s poll). prevue fetches the URL
  // exactly as its config names it.
  git_remote_create_options create = GIT_REMOTE_CREATE_OPTIONS_INIT;
  create.repository = impl_->repo.get();
  create.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
  if (git_remote_create_with_opts(&raw, source_.c_str(), &create) != 0)
    return git_failure("cannot use '" + source_ + "' as a git remote");
  RemotePtr remote(raw);
  const char* specs[] = {"+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*", "+refs/pull/*:refs/pull/*",
                         "+refs/merge-requests/*:refs/merge-requests/*"};
  git_strarray refspecs{const_cast<char**>(specs), 4};
  git_fetch_options options = GIT_FETCH_OPTIONS_INIT;
  options.prune = GIT_FETCH_PRUNE;
  options.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;  // the refspec already takes them all
  if (git_remote_fetch(remote.get(), &refspecs, &options, "prevue fetch") != 0)
    return git_failure("fetch from '" + source_ + "' failed");
  return {};
}

Result<ResolvedCommit> GitMirror::resolve_ref(const std::string& ref) const {
  if (!is_valid_ref_name(ref)) return make_error(ErrorCode::kInvalidArgument, "'" + ref + "' is not a valid git ref name");
  std::vector<std::string> candidates;
  if (ref.rfind("refs/", 0) == 0) candidates.push_back(ref);
  candidates.push_back("refs/heads/" + ref);
  candidates.push_back("refs/tags/" + ref);
  for (const auto& name : candidates) {
    git_reference* raw = nullptr;
    if (git_reference_lookup(&raw, impl_->repo.get(), name.c_str()) != 0) continue;
    RefPtr reference(raw);
    git_object* peeled = nullptr;
    if (git_reference_peel(&peeled, reference.get(), GIT_OBJECT_COMMIT) != 0)
      return git_failure("ref " + name + " does not point at a commit");
    ObjectPtr object(peeled);
    return ResolvedCommit{oid_hex(git_object_id(peeled)), name};
  }
  return make_error(ErrorCode::kNotFound, "unknown ref '" + ref + "' in " + source_ + " (no such branch or tag)");
}

Result<ResolvedCommit> GitMirror::resolve_sha(const std::string& sha) const {
  if (sha.size() < 4 || sha.size() > GIT_OID_HEXSZ || !is_hex(sha))
    return make_error(ErrorCode::kInvalidArgument, "'" + sha + "' is not a commit id (4 to 40 hex digits)");
  git_oid oid;
  if (git_oid_fromstrn(&oid, sha.c_str(), sha.size()) != 0) return git_failure("bad commit id " + sha);
  git_object* raw = nullptr;
  int rc = git_object_lookup_prefix(&raw, impl_->repo.get(), &oid, sha.size(), GIT_OBJECT_ANY);
  if (rc == GIT_EAMBIGUOUS) return make_error(ErrorCode::kInvalidArgument, "commit id '" + sha + "' is ambiguous");
  if (rc != 0) return make_error(ErrorCode::kNotFound, "unknown commit '" + sha + "' in " + source_);
  ObjectPtr object(raw);
  git_object* peeled = nullptr;
  if (git_object_peel(&peeled, raw, GIT_OBJECT_COMMIT) != 0) return git_failure("'" + sha + "' is not a commit");
  ObjectPtr commit(peeled);
  return ResolvedCommit{oid_hex(git_object_id(peeled)), ""};
}

Result<std::optional<std::string>> GitMirror::read_file(const std::string& commit, const std::string& path) const {
  auto tree = impl_->tree_of(commit);
  if (!tree.ok()) return tree.error();
  git_tree_entry* e = nullptr;
  if (git_tree_entry_bypath(&e, tree->get(), path.c_str()) != 0) return std::optional<std::string>();
  EntryPtr entry(e);
  if (git_tree_entry_type(e) != GIT_OBJECT_BLOB) return std::optional<std::string>();
  git_blob* b = nullptr;
  if (git_blob_lookup(&b, impl_->repo.get(), git_tree_entry_id(e)) != 0) return git_failure("cannot read " + path);
  BlobPtr blob(b);
  const char* data = static_cast<const char*>(git_blob_rawcontent(b));
  return std::optional<std::string>(std::string(data, static_cast<size_t>(git_blob_rawsize(b))));
}

namespace {
struct WalkState {
  std::string prefix;
  std::vector<TreeFile>* files;
};

int collect_entry(const char* root, const git_tree_entry* entry, void* payload) {
  auto* state = static_cast<WalkState*>(payload);
  if (git_tree_entry_type(entry) != GIT_OBJECT_BLOB) return 0;  // trees are walked; submodules skipped
  git_filemode_t mode = git_tree_entry_filemode(entry);
  TreeFile file;
  file.path = state->prefix + root + git_tree_entry_name(entry);
  file.blob_sha = oid_hex(git_tree_entry_id(entry));
  file.executable = mode == GIT_FILEMODE_BLOB_EXECUTABLE;
  file.symlink = mode == GIT_FILEMODE_LINK;
  state->files->push_back(std::move(file));
  return 0;
}
}  // namespace

Result<std::vector<TreeFile>> GitMirror::list_files(const std::string& commit, const std::string& dir) const {
  std::string clean = normalize_dir(dir);
  std::vector<TreeFile> files;
  auto tree = impl_->subtree(commit, clean);
  if (!tree.ok()) return tree.error();
  if (!*tree) {
    // `dir` may name a single file.
    auto content = read_file(commit, clean);
    if (!content.ok()) return content.error();
    if (!content->has_value()) return make_error(ErrorCode::kNotFound, "no '" + dir + "' at commit " + commit.substr(0, 12));
    auto id = entry_id(commit, clean);
    if (!id.ok()) return id.error();
    files.push_back(TreeFile{clean, *id, false, false});
    return files;
  }
  WalkState state{clean.empty() ? "" : clean + "/", &files};
  if (git_tree_walk(tree->get(), GIT_TREEWALK_PRE, collect_entry, &state) != 0) return git_failure("cannot walk " + dir);
  return files;
}

Result<std::vector<TreeFile>> GitMirror::export_tree(const std::string& commit, const std::string& dir,
                                                     const std::filesystem::path& destination,
                                                     const std::map<std::string, std::string>* unchanged) const {
  auto files = list_files(commit, dir);
  if (!files.ok()) return files.error();
  std::set<std::filesystem::path> made_dirs;
  for (const auto& file : *files) {
    if (unchanged) {
      auto it = unchanged->find(file.path);
      struct stat st {};
      if (it != unchanged->end() && it->second == file.blob_sha && ::lstat((destination / file.path).c_str(), &st) == 0 &&
          (S_ISREG(st.st_mode) || (file.symlink && S_ISLNK(st.st_mode))))
        continue;
    }
    git_oid oid;
    git_oid_fromstr(&oid, file.blob_sha.c_str());
    git_blob* b = nullptr;
    if (git_blob_lookup(&b, impl_->repo.get(), &oid) != 0) return git_failure("cannot read " + file.path);
    BlobPtr blob(b);
    std::string_view content(static_cast<const char*>(git_blob_rawcontent(b)), static_cast<size_t>(git_blob_rawsize(b)));
    std::filesystem::path target = destination / file.path;
    std::error_code ec;
    if (made_dirs.insert(target.parent_path()).second) {
      std::filesystem::create_directories(target.parent_path(), ec);
      if (ec) return make_error(ErrorCode::kIo, "cannot create " + target.parent_path().string() + ": " + ec.message());
    }
    if (file.symlink) {
      // A link target from the repository is data: never follow it out of the environment.
      std::filesystem::remove(target, ec);
      std::filesystem::create_symlink(std::string(content), target, ec);
      if (ec) return make_error(ErrorCode::kIo, "cannot create link " + target.string() + ": " + ec.message());
      continue;
    }
    // Plain writes (not atomic): the environment directory is being assembled.
    // O_NOFOLLOW: a symlink left by an earlier commit is not written through.
    mode_t mode = file.executable ? 0755 : 0644;
    int fd = ::open(target.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0 && errno == ELOOP) {
      std::filesystem::remove(target, ec);
      fd = ::open(target.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    }
    if (fd < 0) return make_error(ErrorCode::kIo, "cannot write " + target.string() + ": " + std::strerror(errno));
    const char* data = content.data();
    size_t left = content.size();
    bool written = true;
    while (left > 0 && written) {
      ssize_t n = ::write(fd, data, left);
      if (n < 0 && errno == EINTR) continue;
      written = n > 0;
      if (written) {
        data += n;
        left -= static_cast<size_t>(n);
      }
    }
    written = ::fchmod(fd, mode) == 0 && written;
    written = ::close(fd) == 0 && written;
    if (!written) return make_error(ErrorCode::kIo, "cannot write " + target.string() + ": " + std::strerror(errno));
  }
  return files;
}

Result<std::string> GitMirror::entry_id(const std::string& commit, const std::string& path) const {
  auto tree = impl_->tree_of(commit);
  if (!tree.ok()) return tree.error();
  std::string clean = normalize_dir(path);
  if (clean.empty()) return oid_hex(git_tree_id(tree->get()));
  git_tree_entry* e = nullptr;
  if (git_tree_entry_bypath(&e, tree->get(), clean.c_str()) != 0) return std::string();
  EntryPtr entry(e);
  return oid_hex(git_tree_entry_id(e));
}

Result<bool> GitMirror::is_ancestor(const std::string& ancestor, const std::string& descendant) const {
  git_oid a, d;
  if (git_oid_fromstr(&a, ancestor.c_str()) != 0 || git_oid_fromstr(&d, descendant.c_str()) != 0)
    return make_error(ErrorCode::kInvalidArgument, "bad commit id");
  if (git_oid_equal(&a, &d)) return true;
  int rc = git_graph_descendant_of(impl_->repo.get(), &d, &a);
  if (rc < 0) return git_failure("cannot compare " + ancestor + " and " + descendant);
  return rc == 1;
}

Result<std::vector<std::pair<std::string, std::string>>> GitMirror::branches() const {
  auto all = refs("refs/heads/*");
  if (!all.ok()) return all.error();
  for (auto& [name, sha] : *all) name = name.substr(11);
  return all;
}

Result<std::vector<std::pair<std::string, std::string>>> GitMirror::refs(const std::string& glob) const {
  git_reference_iterator* raw = nullptr;
  if (git_reference_iterator_glob_new(&raw, impl_->repo.get(), glob.c_str()) != 0) return git_failure("cannot list " + glob);
  RefIterPtr iter(raw);
  std::vector<std::pair<std::string, std::string>> out;
  git_reference* ref = nullptr;
  while (git_reference_next(&ref, iter.get()) == 0) {
    RefPtr owned(ref);
    git_object* peeled = nullptr;
    if (git_reference_peel(&peeled, ref, GIT_OBJECT_COMMIT) != 0) continue;
    ObjectPtr object(peeled);
    out.emplace_back(std::string(git_reference_name(ref)), oid_hex(git_object_id(peeled)));
  }
  return out;
}

}  // namespace prevue
