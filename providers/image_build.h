// How the container providers (compose, kubernetes) build a service's image:
// once per build identity (what it is built from), tagged
// prevue-build/<service>:<identity>, so two environments at the same tree
// share it and a push that leaves a service's files alone rebuilds nothing.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/result.h"
#include "provider/protocol.h"

namespace prevue::providers {

inline constexpr const char* kImageRepository = "prevue-build";

// The identity of what an image is built from: every file of the build
// context (path, executable bit, content; as git's tree id would say),
// the Dockerfile's path and the build arguments.
std::string build_identity(const std::filesystem::path& context, const std::string& dockerfile,
                           const std::map<std::string, std::string>& args);

struct ImageBuild {
  std::string service, tag;
  std::vector<std::string> argv;  // docker build ...; empty when the engine already has the tag
};

// The image of `service` from `context`: its tag, and the build to run when
// the engine has no image of that tag yet.
ImageBuild plan_image(const std::string& service, const std::filesystem::path& context, const std::string& dockerfile,
                      const std::map<std::string, std::string>& args);

// Runs the builds that are needed (each tag once), as many at a time as there
// are cores; each image's line goes to `log` (built or reused). The first
// failure names its service.
Status build_all(const std::vector<ImageBuild>& images, std::string& log);

// Removes from the engine the images of environment `slug` that no other
// environment's record names (`images_of` reads a record directory under
// `records_root`); each image is a line of the receipt. `also_remove` runs
// for each image removed (a node's copy of it, say).
std::vector<ReceiptItem> remove_unshared_images(const std::string& records_root, const std::string& slug,
                                                const std::vector<std::string>& images,
                                                const std::function<std::vector<std::string>(const std::filesystem::path&)>& images_of,
                                                const std::function<void(const std::string&)>& also_remove = {});

}  // namespace prevue::providers
