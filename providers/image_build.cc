#include "image_build.h"

#include <algorithm>
#include <atomic>
#include <set>
#include <thread>

#include "command.h"
#include "core/files.h"
#include "core/slug.h"

namespace prevue::providers {

namespace fs = std::filesystem;

namespace {

// BuildKit (and its layer cache) where the engine has the buildx component.
bool buildkit_available() {
  static const bool available = run({"docker", "buildx", "version"}, Millis(20'000)).ok();
  return available;
}

}  // namespace

std::string build_identity(const fs::path& context, const std::string& dockerfile, const std::map<std::string, std::string>& args) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(context, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->path().filename() == ".git") {
      it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file(ec)) files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());
  std::string material = "dockerfile " + dockerfile + "\n";
  for (const auto& [k, v] : args) material += "arg " + k + "=" + v + "\n";
  for (const auto& f : files) {
    auto content = read_file(f);
    bool executable = (fs::status(f, ec).permissions() & fs::perms::owner_exec) != fs::perms::none;
    material += "file " + f.lexically_relative(context).string() + (executable ? " x " : " - ") +
                sha256_hex(content.ok() ? *content : std::string()) + "\n";
  }
  return sha256_hex(material).substr(0, 20);
}

ImageBuild plan_image(const std::string& service, const fs::path& context, const std::string& dockerfile,
                      const std::map<std::string, std::string>& args) {
  ImageBuild image{service, std::string(kImageRepository) + "/" + dns_words(service, 60) + ":" + build_identity(context, dockerfile, args), {}};
  if (run({"docker", "image", "inspect", "--format", "{{.Id}}", image.tag}, Millis(30'000)).ok()) return image;
  // --force-rm: the classic builder otherwise keeps a failed step's container, with no label to find it by.
  image.argv = {"docker", "build", "--force-rm", "--tag", image.tag, "--file", (context / dockerfile).string()};
  for (const auto& [k, v] : args) image.argv.insert(image.argv.end(), {"--build-arg", k + "=" + v});
  // No --label: the classic builder would add a step (a container and a
  // commit, a second or more) to every build. prevue-build/ names them.
  image.argv.push_back(context.string());
  return image;
}

Status build_all(const std::vector<ImageBuild>& images, std::string& log) {
  std::vector<const ImageBuild*> builds;
  std::set<std::string> planned;
  for (const auto& image : images)
    if (!image.argv.empty() && planned.insert(image.tag).second) builds.push_back(&image);
  const size_t parallel = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 4);
  auto build = [&](size_t i) { return run(builds[i]->argv, Millis(1'800'000), {}, {{"DOCKER_BUILDKIT", buildkit_available() ? "1" : "0"}}); };
  std::vector<Command> results(builds.size());
  std::atomic<size_t> next{0};
  std::vector<std::thread> workers;
  for (size_t w = 0; w < std::min(parallel, builds.size()); ++w)
    workers.emplace_back([&] {
      for (size_t i; (i = next++) < builds.size();) results[i] = build(i);
    });
  for (auto& worker : workers) worker.join();
  for (size_t i = 0; i < builds.size(); ++i) {
    // The classic builder's cache is a chain of untagged images; another
    // image's removal (`docker image rm` of a preview built from the same
    // steps) can take a link of it from under a running build. Once more
    // finds the chain as it is now.
    const std::string said = results[i].out + results[i].err;
    if (!results[i].ok() && (said.find("unknown parent image ID") != std::string::npos || said.find("No such image") != std::string::npos))
      results[i] = build(i);
  }
  for (size_t i = 0; i < builds.size(); ++i)
    if (!results[i].ok())
      return make_error(ErrorCode::kProvider, "building the image of " + builds[i]->service + " failed:\n" + results[i].why());
  for (const auto& image : images)
    log += image.service + ": image " + image.tag + (image.argv.empty() ? " (reused: its build context is unchanged)\n" : " (built)\n");
  return {};
}

std::vector<ReceiptItem> remove_unshared_images(const std::string& records_root, const std::string& slug,
                                                const std::vector<std::string>& images,
                                                const std::function<std::vector<std::string>(const fs::path&)>& images_of,
                                                const std::function<void(const std::string&)>& also_remove) {
  std::set<std::string> shared;
  std::error_code ec;
  for (const auto& other : fs::directory_iterator(records_root, ec))
    if (other.path().filename() != slug)
      for (const auto& image : images_of(other.path())) shared.insert(image);
  std::vector<ReceiptItem> receipt;
  for (const auto& image : images) {
    if (shared.count(image)) {
      receipt.push_back({"image", image, "kept: another preview uses it"});
      continue;
    }
    Command rmi = run({"docker", "image", "rm", image});
    if (also_remove) also_remove(image);
    receipt.push_back({"image", image, rmi.ok() ? "removed" : "already gone"});
  }
  return receipt;
}

}  // namespace prevue::providers
