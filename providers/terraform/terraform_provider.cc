#include "terraform_provider.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "command.h"
#include "core/files.h"
#include "core/slug.h"
#include "manifest/manifest.h"
#include "operator_settings.h"
#include "provider/process_runner.h"

namespace prevue::terraform {

std::atomic<bool> stop_requested{false};

namespace fs = std::filesystem;
using json = nlohmann::json;
using providers::Command;
using providers::Millis;

namespace {

// In the environment's records directory.
constexpr const char* kRecordFile = "terraform.json";
constexpr const char* kConfigDir = "config";          // the repository's files as last applied: destroy needs the module
constexpr const char* kDataDir = "data";  // a TF_DATA_DIR of its own (plan, the backend probe); environments share theirs (initialize)
constexpr const char* kVarFile = "prevue.tfvars.json";  // the manifest's variables, rendered
// Written into the module's copy: the state goes where the operator says, whatever the module declares.
constexpr const char* kBackendOverride = "prevue_backend_override.tf";
constexpr const char* kWorkspacePrefix = "prevue-";
constexpr Millis kInitTimeout{900'000};
constexpr Millis kRunTimeout{4 * 3'600'000};  // prevue's provider timeout is the real bound
constexpr Millis kQuickTimeout{120'000};

void fail(ProviderResponse& response, const std::string& message) {
  response.ok = false;
  response.error_code = stop_requested ? "stopped" : "failed";
  response.error_message = message;
}

// ---- settings -----------------------------------------------------------------

struct Settings {
  std::string dir = ".";                 // the root module, in the repository
  json variables = json::object();       // name -> value (strings already rendered by prevue)
  std::vector<std::string> var_files;    // more -var-files, relative to the module
};

Settings read_settings(const std::string& text, std::vector<SettingsProblem>& problems) {
  Settings s;
  json block = json::parse(text, nullptr, false);
  if (!block.is_object()) {
    problems.push_back({"$.terraform", "must be an object"});
    return s;
  }
  for (const auto& [key, value] : block.items())
    if (key != "dir" && key != "variables" && key != "var_files") problems.push_back({"$.terraform." + key, "unknown field"});
  if (block.contains("dir")) {
    s.dir = block["dir"].is_string() ? block["dir"].get<std::string>() : "";
    if (s.dir.empty() || !is_safe_relative_path(s.dir))
      problems.push_back({"$.terraform.dir", "must be a directory of the repository (a relative path, without '..')"});
  }
  if (block.contains("variables")) {
    if (!block["variables"].is_object()) {
      problems.push_back({"$.terraform.variables", "must map variable names to values"});
    } else {
      s.variables = block["variables"];
      for (const auto& [name, value] : s.variables.items())
        if (name.empty() || !(std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_') ||
            name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != std::string::npos)
          problems.push_back({"$.terraform.variables." + name, "is not a Terraform variable name"});
    }
  }
  if (block.contains("var_files")) {
    if (!block["var_files"].is_array()) problems.push_back({"$.terraform.var_files", "must be a list of files"});
    else
      for (size_t i = 0; i < block["var_files"].size(); ++i) {
        const json& f = block["var_files"][i];
        if (!f.is_string() || !is_safe_relative_path(f.get<std::string>()))
          problems.push_back({"$.terraform.var_files[" + std::to_string(i) + "]", "must be a file of the module (a relative path, without '..')"});
        else s.var_files.push_back(f.get<std::string>());
      }
  }
  return s;
}

// ---- the operator's side: binary, backend, plugin cache ---------------------------

struct Operator {
  std::string binary;               // absolute, or empty when none was found
  std::string backend_type;         // empty: local state under the records root
  json backend_config = json::object();
  fs::path plugin_cache;
  std::string lock_timeout = "5m";
};

// An executable by name (on the PATH) or path; empty when there is none.
std::string on_path(const std::string& name) {
  std::string found = find_in_path(name);
  return !found.empty() && access(found.c_str(), X_OK) == 0 ? found : "";
}

Result<Operator> operator_of(const ProviderRequest& request) {
  Operator op;
  json given = json::parse(providers::remembered_operator_settings(request).text, nullptr, false);
  if (!given.is_object()) given = json::object();
  for (const auto& [key, value] : given.items())
    if (key != "binary" && key != "backend" && key != "plugin_cache_dir" && key != "lock_timeout")
      return make_error(ErrorCode::kInvalidArgument, "providers.terraform." + key + " in prevue's config: unknown field");
  if (given.contains("binary")) {
    if (!given["binary"].is_string()) return make_error(ErrorCode::kInvalidArgument, "providers.terraform.binary must be a string");
    op.binary = on_path(given["binary"].get<std::string>());
    if (op.binary.empty())
      return make_error(ErrorCode::kNotFound, "providers.terraform.binary: '" + given["binary"].get<std::string>() + "' is not an executable");
  } else {
    op.binary = on_path("tofu");
    if (op.binary.empty()) op.binary = on_path("terraform");
  }
  if (given.contains("backend")) {
    const json& b = given["backend"];
    if (!b.is_object() || !b.value("type", json()).is_string() || b["type"].get<std::string>().empty())
      return make_error(ErrorCode::kInvalidArgument, "providers.terraform.backend must be {\"type\": \"pg\", \"config\": {…}}");
    op.backend_type = b["type"].get<std::string>();
    if (op.backend_type.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") != std::string::npos)
      return make_error(ErrorCode::kInvalidArgument, "providers.terraform.backend.type: '" + op.backend_type + "' is not a backend name");
    if (b.contains("config")) {
      if (!b["config"].is_object()) return make_error(ErrorCode::kInvalidArgument, "providers.terraform.backend.config must be an object");
      op.backend_config = b["config"];
    }
  }
  op.plugin_cache = given.value("plugin_cache_dir", json()).is_string() ? fs::path(given["plugin_cache_dir"].get<std::string>())
                                                                         : fs::path(request.records_root) / "plugin-cache";
  if (given.contains("lock_timeout")) {
    if (!given["lock_timeout"].is_string() || given["lock_timeout"].get<std::string>().empty() ||
        given["lock_timeout"].get<std::string>().find_first_not_of("0123456789hms") != std::string::npos)
      return make_error(ErrorCode::kInvalidArgument, "providers.terraform.lock_timeout must be a duration such as \"5m\"");
    op.lock_timeout = given["lock_timeout"].get<std::string>();
  }
  return op;
}

// An HCL string literal: quoted, with what HCL would read as escapes or
// template sequences escaped.
std::string hcl_string(const std::string& text) {
  std::string out = "\"";
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if ((c == '$' || c == '%') && i + 1 < text.size() && text[i + 1] == '{') out += c;  // "${" is written "$${"
        out += c;
    }
  }
  return out + "\"";
}

std::string hcl_value(const json& value) {
  if (value.is_string()) return hcl_string(value.get<std::string>());
  if (value.is_boolean() || value.is_number()) return value.dump();
  return hcl_string(value.dump());
}

// The backend block every copy of a module gets, and the file with the
// backend's settings (a connection string with a password stays off argv).
struct Backend {
  std::string override_text;
  std::vector<std::string> init_args;
};

Result<Backend> backend_of(const ProviderRequest& request, const Operator& op) {
  const fs::path root = request.records_root;
  Backend b;
  if (op.backend_type.empty() || op.backend_type == "local") {
    const fs::path state = root / "state";  // terraform makes it when a workspace first needs it
    b.override_text = "terraform {\n  backend \"local\" {\n    path          = " + hcl_string((state / "default.tfstate").string()) +
                      "\n    workspace_dir = " + hcl_string(state.string()) + "\n  }\n}\n";
    return b;
  }
  b.override_text = "terraform {\n  backend \"" + op.backend_type + "\" {}\n}\n";
  std::string settings;
  for (const auto& [key, value] : op.backend_config.items()) {
    if (key.empty() || key.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") != std::string::npos)
      return make_error(ErrorCode::kInvalidArgument, "providers.terraform.backend.config: '" + key + "' is not a setting name");
    settings += key + " = " + hcl_value(value) + "\n";
  }
  const fs::path file = root / "backend.tfbackend";
  PREVUE_TRY(write_file_atomic(file, settings, Durability::kAtomicOnly, FileAccess::kOwnerOnly));
  b.init_args.push_back("-backend-config=" + file.string());
  return b;
}

// ---- running terraform ----------------------------------------------------------

constexpr const char* kDefaultWorkspace = "default";

// One environment's working place: the module's copy and how terraform is
// run there. Every command names its workspace (TF_WORKSPACE), so nothing
// depends on which one a shared data directory last selected.
struct Workspace {
  Operator op;
  Backend backend;
  fs::path root;     // the provider's records root
  fs::path records;  // the environment's records
  fs::path module;   // records/config/<dir>
  std::string name;  // prevue-<slug>
  std::map<std::string, std::string> env;

  Command tf(std::vector<std::string> args, Millis timeout, const std::string& in_workspace) const {
    args.insert(args.begin(), {op.binary, "-chdir=" + module.string()});
    auto with = env;
    with["TF_WORKSPACE"] = in_workspace;
    return providers::run(args, timeout, {}, with);
  }
  std::vector<std::string> lock_args() const { return {"-input=false", "-no-color", "-lock-timeout=" + op.lock_timeout}; }
};

std::string stopped_or(const Command& c, const std::string& what) {
  if (c.stopped) return what + " was interrupted (the run was stopped or superseded); terraform released its state lock:\n" + c.why();
  return what + " failed:\n" + c.why();
}

Result<Workspace> workspace_of(const ProviderRequest& request, const fs::path& records, const std::string& module_dir) {
  Workspace w;
  PREVUE_ASSIGN_OR_RETURN(w.op, operator_of(request));
  if (w.op.binary.empty())
    return make_error(ErrorCode::kNotFound,
                      "neither tofu nor terraform is on the PATH: run scripts/setup-terraform.sh (it builds OpenTofu), or name the "
                      "binary in prevue's config (providers.terraform.binary)");
  PREVUE_ASSIGN_OR_RETURN(w.backend, backend_of(request, w.op));
  w.root = request.records_root;
  w.records = records;
  w.module = (records / kConfigDir / module_dir).lexically_normal();
  w.name = kWorkspacePrefix + request.environment.slug;
  std::error_code ec;
  fs::create_directories(w.op.plugin_cache, ec);
  const fs::path cli_config = w.root / "terraformrc";
  PREVUE_TRY(write_file_atomic(cli_config, "plugin_cache_dir = " + hcl_string(w.op.plugin_cache.string()) + "\ndisable_checkpoint = true\n",
                               Durability::kAtomicOnly));
  w.env = {{"TF_DATA_DIR", (records / kDataDir).string()},
           {"TF_CLI_CONFIG_FILE", cli_config.string()},
           {"TF_IN_AUTOMATION", "1"},
           {"TF_INPUT", "0"},
           {"CHECKPOINT_DISABLE", "1"}};
  return w;
}

// The environment's own values as TF_VAR_*: a module that declares
// `variable "pr"` gets it, one that does not is not warned about it (a
// -var-file value for an undeclared variable would be).
void add_builtin_variables(Workspace& w, const json& record) {
  const json builtins = record.value("builtins", json::object());  // held: items() of a temporary would dangle
  for (const auto& [name, value] : builtins.items())
    if (value.is_string()) w.env["TF_VAR_" + name] = value.get<std::string>();
}

json builtins_of(const ProviderRequest& request) {
  return json{{"pr", std::to_string(request.environment.pr)},
              {"slug", request.environment.slug},
              {"commit", request.environment.commit},
              {"branch", request.environment.ref},
              {"preview_url", request.environment.url},
              {"ENV_NAME", "preview"}};
}

// The repository's files at the commit, copied whole (a root module may use
// `../modules`), replacing the previous copy.
Status copy_configuration(const fs::path& from, const fs::path& records) {
  std::error_code ec;
  if (!fs::is_directory(from, ec)) return make_error(ErrorCode::kNotFound, "the environment's files are missing: " + from.string());
  const fs::path next = records / (std::string(kConfigDir) + ".new");
  fs::remove_all(next, ec);
  fs::create_directories(next, ec);
  fs::copy(from, next, fs::copy_options::recursive | fs::copy_options::copy_symlinks, ec);
  if (ec) return make_error(ErrorCode::kIo, "copying the module from " + from.string() + ": " + ec.message());
  fs::remove_all(records / kConfigDir, ec);
  fs::rename(next, records / kConfigDir, ec);
  if (ec) return make_error(ErrorCode::kIo, "placing the module's copy: " + ec.message());
  return {};
}

Status run_init(const Workspace& w) {
  std::vector<std::string> args{"init", "-input=false", "-no-color", "-reconfigure"};
  args.insert(args.end(), w.backend.init_args.begin(), w.backend.init_args.end());
  Command c = w.tf(args, kInitTimeout, kDefaultWorkspace);
  std::cerr << c.out << c.err;
  if (!c.ok()) return make_error(ErrorCode::kProvider, stopped_or(c, "terraform init"));
  return {};
}

// What `init` depends on: the configuration's Terraform files (module
// blocks, required providers, the lock file), the backend and the binary.
std::string init_identity(const Workspace& w) {
  std::string material = w.op.binary + "\n" + w.backend.override_text;
  std::error_code ec;
  if (fs::exists(w.op.binary, ec))
    material += std::to_string(fs::file_size(w.op.binary, ec)) + " " +
                std::to_string(fs::last_write_time(w.op.binary, ec).time_since_epoch().count()) + "\n";
  for (const auto& arg : w.backend.init_args)
    if (auto text = read_file(arg.substr(arg.find('=') + 1)); text.ok()) material += *text;
  const fs::path config = w.records / kConfigDir;
  std::vector<fs::path> files;
  for (auto it = fs::recursive_directory_iterator(config, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    auto ends = [&](const char* suffix) { return name.size() >= strlen(suffix) && name.compare(name.size() - strlen(suffix), std::string::npos, suffix) == 0; };
    if (it->is_regular_file() && (ends(".tf") || ends(".tf.json") || ends(".tofu") || ends(".tofu.json") || name == ".terraform.lock.hcl"))
      files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());
  material += "module " + fs::relative(w.module, config, ec).string() + "\n";
  for (const auto& f : files)
    if (auto text = read_file(f); text.ok()) material += fs::relative(f, config, ec).string() + "\n" + providers::sha256_hex(*text) + "\n";
  return providers::sha256_hex(material).substr(0, 20);
}

// `init` once per configuration, not once per environment: the data
// directory (providers, modules, the backend's settings) is shared by every
// environment at the same Terraform files and backend, made under a lock,
// complete once `done` exists; a new pull request at an already-initialised
// configuration runs no `init`. Unused for a week, one is removed.
Status initialize(Workspace& w) {
  std::error_code ec;
  if (!fs::is_directory(w.module, ec)) return make_error(ErrorCode::kNotFound, "the root module " + w.module.string() + " is not a directory");
  PREVUE_TRY(write_file_atomic(w.module / kBackendOverride, w.backend.override_text, Durability::kAtomicOnly));
  const std::string identity = init_identity(w);
  const fs::path shared = w.root / "init" / identity;
  w.env["TF_DATA_DIR"] = (shared / "data").string();
  FileLock lock(w.root / "init" / (identity + ".lock"));
  const fs::path done = shared / "done", lock_file = shared / "terraform.lock.hcl", module_lock = w.module / ".terraform.lock.hcl";
  if (fs::exists(done, ec)) {
    if (!fs::exists(module_lock, ec) && fs::exists(lock_file, ec)) fs::copy_file(lock_file, module_lock, ec);
    fs::last_write_time(done, fs::file_time_type::clock::now(), ec);  // used: kept
    std::cerr << "terraform init: done before for this configuration (" << identity << ")\n";
    return {};
  }
  fs::remove_all(shared, ec);
  fs::create_directories(shared, ec);
  PREVUE_TRY(run_init(w));
  if (fs::exists(module_lock, ec)) fs::copy_file(module_lock, lock_file, fs::copy_options::overwrite_existing, ec);
  PREVUE_TRY(write_file_atomic(done, identity + "\n", Durability::kAtomicOnly));
  const auto stale = fs::file_time_type::clock::now() - std::chrono::hours(24 * 7);
  for (const auto& entry : fs::directory_iterator(w.root / "init", ec))
    if (entry.is_directory() && entry.path() != shared && fs::last_write_time(entry.path() / "done", ec) < stale && !ec)
      fs::remove_all(entry.path(), ec);
  return {};
}

std::set<std::string> workspaces(const Workspace& w) {
  std::set<std::string> out;
  Command c = w.tf({"workspace", "list", "-no-color"}, kQuickTimeout, kDefaultWorkspace);
  for (auto line : nonempty_lines(c.out)) {
    line.erase(0, line.find_first_not_of("* "));
    while (!line.empty() && line.back() == ' ') line.pop_back();
    if (!line.empty()) out.insert(line);
  }
  return out;
}

Status create_workspace(const Workspace& w) {
  // The pg backend takes one lock for every workspace it creates, and gives
  // up at once when another prevue run holds it (no -lock-timeout there):
  // tried again for a while, as two pull requests opened together do.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  for (int attempt = 0;; ++attempt) {
    Command c = w.tf({"workspace", "new", "-no-color", "-lock-timeout=" + w.op.lock_timeout, w.name}, kQuickTimeout, w.name);
    std::cerr << c.out << c.err;
    const std::string said = c.out + c.err;
    if (c.ok() || said.find("already exists") != std::string::npos) return {};
    bool contended = said.find("Already locked") != std::string::npos || said.find("acquiring the state lock") != std::string::npos;
    if (!contended || c.stopped || stop_requested || std::chrono::steady_clock::now() > deadline)
      return make_error(ErrorCode::kProvider, stopped_or(c, "terraform workspace new " + w.name));
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(100 * (attempt + 1), 1000)));
  }
}

Status delete_workspace(const Workspace& w) {
  Command c = w.tf({"workspace", "delete", "-no-color", "-lock-timeout=" + w.op.lock_timeout, w.name}, kQuickTimeout, kDefaultWorkspace);
  std::cerr << c.out << c.err;
  if (!c.ok()) return make_error(ErrorCode::kProvider, stopped_or(c, "terraform workspace delete " + w.name));
  return {};
}

std::vector<std::string> var_file_args(const Workspace& w, const json& record) {
  std::vector<std::string> args{"-var-file=" + (w.records / kVarFile).string()};
  for (const auto& f : record.value("var_files", json::array())) args.push_back("-var-file=" + (w.module / f.get<std::string>()).string());
  return args;
}

json load_record(const fs::path& records) {
  auto text = read_file(records / kRecordFile);
  json j = text.ok() ? json::parse(*text, nullptr, false) : json();
  return j.is_object() ? j : json();
}

std::vector<std::string> resources(const Workspace& w) {
  Command c = w.tf({"state", "list"}, kQuickTimeout, w.name);
  return c.ok() ? nonempty_lines(c.out) : std::vector<std::string>{};
}

// ---- verbs --------------------------------------------------------------------------

// The settings (validated) and the workspace apply or plan works in.
Result<std::pair<Settings, Workspace>> settings_and_workspace(const ProviderRequest& request) {
  std::vector<SettingsProblem> problems;
  Settings settings = read_settings(request.settings, problems);
  if (!problems.empty()) return make_error(ErrorCode::kInvalidArgument, problems.front().path + " " + problems.front().message);
  PREVUE_ASSIGN_OR_RETURN(Workspace w, workspace_of(request, request.environment.records_dir, settings.dir));
  return std::pair{std::move(settings), std::move(w)};
}

int apply(const ProviderRequest& request, ProviderResponse& response) {
  const fs::path records = request.environment.records_dir;
  // One run per environment at a time: a run a crashed daemon left going
  // finishes before this one touches the module's copy.
  FileLock lock(records / "lock");
  auto prepared = settings_and_workspace(request);
  if (!prepared.ok()) {
    fail(response, prepared.error().message);
    return kProviderExitFailed;
  }
  auto& [settings, w] = *prepared;
  const json before = load_record(records);
  json record{{"workspace", w.name}, {"dir", settings.dir}, {"var_files", settings.var_files}, {"builtins", builtins_of(request)},
              {"workspace_made", !before.is_null() && before.value("workspace_made", false)}};
  add_builtin_variables(w, record);
  Status ready = copy_configuration(request.environment.dir, records);
  if (ready.ok())  // a variable may be a secret
    ready = write_file_atomic(records / kVarFile, settings.variables.dump(2) + "\n", Durability::kAtomicOnly, FileAccess::kOwnerOnly);
  // Recorded before the apply: a teardown after a crash here still finds the workspace.
  if (ready.ok()) ready = write_file_atomic(records / kRecordFile, record.dump(2) + "\n");
  if (ready.ok()) ready = initialize(w);
  if (ready.ok() && !record["workspace_made"].get<bool>()) {
    ready = create_workspace(w);
    record["workspace_made"] = ready.ok();
    if (ready.ok()) ready = write_file_atomic(records / kRecordFile, record.dump(2) + "\n");
  }
  if (!ready.ok()) {
    fail(response, ready.error().message);
    return kProviderExitFailed;
  }
  std::vector<std::string> args{"apply", "-auto-approve"};
  for (auto& a : w.lock_args()) args.push_back(a);
  for (auto& a : var_file_args(w, record)) args.push_back(a);
  Command applied = w.tf(args, kRunTimeout, w.name);
  std::cerr << applied.out << applied.err;
  if (!applied.ok()) {
    fail(response, stopped_or(applied, "terraform apply in workspace " + w.name));
    return kProviderExitFailed;
  }
  Command outputs = w.tf({"output", "-json", "-no-color"}, kQuickTimeout, w.name);
  json values = json::parse(outputs.out, nullptr, false);
  if (!outputs.ok() || !values.is_object()) {
    fail(response, "terraform output -json failed: " + outputs.why());
    return kProviderExitFailed;
  }
  for (const auto& [name, output] : values.items()) {
    const json& value = output.value("value", json());
    response.outputs[name] = ProviderOutput{value.is_string() ? value.get<std::string>() : value.dump(), output.value("sensitive", false)};
  }
  response.ok = true;
  return kProviderExitOk;
}

// A module of the backend alone (records_root/backend-probe, a data
// directory of its own): the workspaces are listed, and an empty orphan
// deleted, from there.
Status init_probe(const Workspace& probe) {
  std::error_code ec;
  fs::create_directories(probe.module, ec);
  PREVUE_TRY(write_file_atomic(probe.module / "main.tf", "# The backend alone: prevue lists and deletes workspaces from here.\n",
                               Durability::kAtomicOnly));
  PREVUE_TRY(write_file_atomic(probe.module / kBackendOverride, probe.backend.override_text, Durability::kAtomicOnly));
  return run_init(probe);
}

// A workspace whose records are gone (its configuration with them): without
// the module, terraform cannot destroy what it holds; an empty one is deleted.
int destroy_without_records(const ProviderRequest& request, ProviderResponse& response) {
  auto probe = workspace_of(request, fs::path(request.records_root) / "backend-probe", ".");
  if (!probe.ok()) {  // no terraform here: nothing prevue made with it can be left either
    response.ok = true;
    return kProviderExitOk;
  }
  Workspace& w = *probe;
  FileLock lock(fs::path(request.records_root) / "backend-probe.lock");
  if (Status s = init_probe(w); !s.ok()) {
    fail(response, s.error().message);
    return kProviderExitFailed;
  }
  if (!workspaces(w).count(w.name)) {
    response.ok = true;
    return kProviderExitOk;
  }
  auto held = resources(w);
  if (!held.empty()) {
    fail(response, "workspace " + w.name + " still holds " + std::to_string(held.size()) +
                       " resources but prevue's records of it (and the module) are gone; destroy them by hand from the module: " +
                       held.front() + (held.size() > 1 ? ", …" : ""));
    return kProviderExitFailed;
  }
  if (Status s = delete_workspace(w); !s.ok()) {
    fail(response, s.error().message);
    return kProviderExitFailed;
  }
  response.removed.push_back({"workspace", w.name, "deleted (it held nothing)"});
  response.ok = true;
  return kProviderExitOk;
}

int destroy(const ProviderRequest& request, ProviderResponse& response) {
  if (!is_valid_dns_label(request.environment.slug)) {
    fail(response, "no valid environment slug in the request");
    return kProviderExitBadRequest;
  }
  const fs::path records = request.environment.records_dir;
  std::error_code ec;
  if (!fs::exists(records, ec)) return destroy_without_records(request, response);
  FileLock lock(records / "lock");
  json record = load_record(records);
  if (record.is_null() || !fs::is_directory(records / kConfigDir, ec)) {
    int code = destroy_without_records(request, response);
    if (code == kProviderExitOk) fs::remove_all(records, ec);
    return code;
  }
  auto workspace = workspace_of(request, records, record.value("dir", "."));
  if (!workspace.ok()) {
    fail(response, workspace.error().message);
    return kProviderExitFailed;
  }
  Workspace& w = *workspace;
  add_builtin_variables(w, record);
  if (Status s = initialize(w); !s.ok()) {
    fail(response, s.error().message);
    return kProviderExitFailed;
  }
  if (workspaces(w).count(w.name)) {
    auto held = resources(w);
    std::vector<std::string> args{"destroy", "-auto-approve"};
    for (auto& a : w.lock_args()) args.push_back(a);
    for (auto& a : var_file_args(w, record)) args.push_back(a);
    Command destroyed = w.tf(args, kRunTimeout, w.name);
    std::cerr << destroyed.out << destroyed.err;
    if (!destroyed.ok()) {
      fail(response, stopped_or(destroyed, "terraform destroy in workspace " + w.name) +
                         "\nThe workspace and prevue's records of it are kept: the next teardown or `prevue gc` tries again.");
      return kProviderExitFailed;
    }
    for (const auto& address : held) response.removed.push_back({"resource", address, "destroyed"});
    if (Status s = delete_workspace(w); !s.ok()) {
      fail(response, s.error().message);
      return kProviderExitFailed;
    }
    response.removed.push_back({"workspace", w.name, "deleted"});
  }
  fs::remove_all(records, ec);
  response.ok = true;
  return kProviderExitOk;
}

int list(const ProviderRequest& request, ProviderResponse& response) {
  std::set<std::string> slugs;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(request.records_root, ec))
    if (entry.is_directory() && fs::exists(entry.path() / kRecordFile) && is_valid_dns_label(entry.path().filename().string()))
      slugs.insert(entry.path().filename().string());
  // Workspaces whose records are gone are orphans too, once a backend is known.
  if (providers::remembered_operator_settings(request).text != "{}") {
    ProviderRequest probe_request = request;
    probe_request.environment.slug = "probe";
    if (auto probe = workspace_of(probe_request, fs::path(request.records_root) / "backend-probe", "."); probe.ok()) {
      FileLock lock(fs::path(request.records_root) / "backend-probe.lock");
      if (init_probe(*probe).ok())
        for (const auto& name : workspaces(*probe))
          if (name.rfind(kWorkspacePrefix, 0) == 0 && is_valid_dns_label(name.substr(std::string(kWorkspacePrefix).size())))
            slugs.insert(name.substr(std::string(kWorkspacePrefix).size()));
    }
  }
  for (const auto& slug : slugs) response.environments.push_back(EnvironmentListing{slug, {}, {}});
  response.ok = true;
  return kProviderExitOk;
}

int status(const ProviderRequest& request, ProviderResponse& response) {
  const fs::path records = request.environment.records_dir;
  json record = load_record(records);
  if (record.is_null()) {
    response.ok = true;
    response.log = "no workspace";
    return kProviderExitOk;
  }
  auto workspace = workspace_of(request, records, record.value("dir", "."));
  if (!workspace.ok()) {
    fail(response, workspace.error().message);
    return kProviderExitFailed;
  }
  Workspace& w = *workspace;
  if (Status s = initialize(w); !s.ok()) {
    fail(response, s.error().message);
    return kProviderExitFailed;
  }
  Command shown = w.tf({"state", "list"}, kQuickTimeout, w.name);
  if (!shown.ok() && shown.err.find("No state file") == std::string::npos) {  // an empty workspace has none yet
    fail(response, "terraform state list failed: " + shown.why());
    return kProviderExitFailed;
  }
  auto held = nonempty_lines(shown.out);
  response.log = "workspace " + w.name + " holds " + std::to_string(held.size()) + " resources";
  for (const auto& r : held) response.log += "\n  " + r;
  response.ok = true;
  return kProviderExitOk;
}

// `prevue render`: what apply would do for a new environment, against a
// state of its own in the records directory prevue gave (a scratch one):
// no workspace, no shared state, nothing created.
int plan(const ProviderRequest& request, ProviderResponse& response) {
  const fs::path records = request.environment.records_dir;
  auto prepared = settings_and_workspace(request);
  if (!prepared.ok()) {
    fail(response, prepared.error().message);
    return kProviderExitFailed;
  }
  auto& [settings, w] = *prepared;
  w.backend.init_args.clear();
  w.backend.override_text = "terraform {\n  backend \"local\" {\n    path = " + hcl_string((records / "plan.tfstate").string()) + "\n  }\n}\n";
  json record{{"var_files", settings.var_files}, {"builtins", builtins_of(request)}};
  add_builtin_variables(w, record);
  Status ready = copy_configuration(request.environment.dir, records);
  if (ready.ok())
    ready = write_file_atomic(records / kVarFile, settings.variables.dump(2) + "\n", Durability::kAtomicOnly, FileAccess::kOwnerOnly);
  if (ready.ok()) ready = write_file_atomic(w.module / kBackendOverride, w.backend.override_text, Durability::kAtomicOnly);
  if (ready.ok()) ready = run_init(w);  // a data directory of its own, in the scratch records: nothing shared is touched
  if (!ready.ok()) {
    fail(response, ready.error().message);
    return kProviderExitFailed;
  }
  const fs::path plan_file = records / "plan.out";
  std::vector<std::string> args{"plan", "-input=false", "-no-color", "-lock=false", "-out=" + plan_file.string()};
  for (auto& a : var_file_args(w, record)) args.push_back(a);
  Command planned = w.tf(args, kRunTimeout, kDefaultWorkspace);
  std::cerr << planned.out << planned.err;
  if (!planned.ok()) {
    fail(response, stopped_or(planned, "terraform plan"));
    return kProviderExitFailed;
  }
  Command shown = w.tf({"show", "-json", "-no-color", plan_file.string()}, kQuickTimeout, kDefaultWorkspace);
  json plan_json = json::parse(shown.out, nullptr, false);
  if (!shown.ok() || !plan_json.is_object()) {
    fail(response, "terraform show -json failed: " + shown.why());
    return kProviderExitFailed;
  }
  int add = 0, change = 0, destroy_count = 0;
  std::string lines;
  for (const auto& rc : plan_json.value("resource_changes", json::array())) {
    std::vector<std::string> actions = rc.value("change", json::object()).value("actions", std::vector<std::string>{});
    bool creates = std::count(actions.begin(), actions.end(), "create") > 0;
    bool deletes = std::count(actions.begin(), actions.end(), "delete") > 0;
    bool updates = std::count(actions.begin(), actions.end(), "update") > 0;
    if (!creates && !deletes && !updates) continue;  // no-op, read
    std::string sign = creates && deletes ? "-/+" : creates ? "+" : deletes ? "-" : "~";
    add += creates;
    destroy_count += deletes;
    change += updates;
    lines += "  " + sign + " " + rc.value("address", std::string("?")) + "\n";
  }
  std::string outputs;
  const json output_changes = plan_json.value("output_changes", json::object());
  for (const auto& [name, change_of] : output_changes.items())
    outputs += std::string(outputs.empty() ? "" : ", ") + name + (change_of.value("after_sensitive", false) ? " (sensitive)" : "");
  response.log = "Plan: " + std::to_string(add) + " to add, " + std::to_string(change) + " to change, " + std::to_string(destroy_count) +
                 " to destroy (" + fs::path(w.op.binary).filename().string() + ", for a new workspace " + w.name + ")\n" + lines +
                 (outputs.empty() ? "" : "Outputs: " + outputs + "\n");
  response.ok = true;
  return kProviderExitOk;
}

}  // namespace

int handle(const ProviderRequest& request, ProviderResponse& response) {
  try {
    switch (request.verb) {
      case ProviderVerb::kDescribe:
        response.ok = true;
        response.name = "terraform";
        response.protocol = kProviderProtocolVersion;
        response.capabilities = {"validate", "apply", "destroy", "status", "list", "plan"};
        response.stop_signal = SIGINT;     // terraform releases its state lock on SIGINT
        response.stop_grace_ms = 90'000;   // more than the provider gives terraform after passing SIGINT on
        response.settings_schema = R"({"type": "object", "additionalProperties": false, "properties": {
          "dir": {"type": "string"},
          "variables": {"type": "object"},
          "var_files": {"type": "array", "items": {"type": "string"}}}})";
        return kProviderExitOk;
      case ProviderVerb::kValidate: {
        read_settings(request.settings, response.problems);
        for (const auto& s : request.services)
          response.problems.push_back({"$.services." + s.name, "a terraform layer runs no services: its outputs feed the layers after it"});
        response.ok = response.problems.empty();
        if (!response.ok) response.error_message = "invalid terraform settings";
        return response.ok ? kProviderExitOk : kProviderExitFailed;
      }
      case ProviderVerb::kApply: return apply(request, response);
      case ProviderVerb::kDestroy: return destroy(request, response);
      case ProviderVerb::kList: return list(request, response);
      case ProviderVerb::kStatus: return status(request, response);
      case ProviderVerb::kPlan: return plan(request, response);
      default: break;
    }
    fail(response, std::string("verb ") + to_string(request.verb) + " is not implemented by the terraform provider");
    return kProviderExitBadRequest;
  } catch (const std::exception& e) {
    fail(response, std::string("terraform provider: ") + e.what());
    return kProviderExitFailed;
  }
}

}  // namespace prevue::terraform
