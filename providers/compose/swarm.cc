#include "swarm.h"

#include <chrono>
#include <thread>

#include "core/files.h"

namespace prevue::compose::swarm {

namespace {

constexpr const char* kNamespaceLabel = "com.docker.stack.namespace";

std::string service_name(const std::string& stack, const std::string& service) { return stack + "_" + service; }

std::vector<std::string> split(const std::string& line, char separator) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t at; (at = line.find(separator, start)) != std::string::npos; start = at + 1) parts.push_back(line.substr(start, at - start));
  parts.push_back(line.substr(start));
  return parts;
}

bool starts_with(const std::string& text, const char* prefix) { return text.rfind(prefix, 0) == 0; }

}  // namespace

std::string why_not_a_manager() {
  Command info = run({"docker", "info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}"}, Millis(30'000));
  if (!info.ok()) return "docker info: " + info.why();
  std::string state = info.first_line();
  if (state == "active true") return "";
  if (starts_with(state, "active")) return "this Docker Engine is a swarm worker; stacks are deployed from a manager";
  return "this Docker Engine is not part of a swarm (docker swarm init, or join one) and \"mode\": \"swarm\" deploys a stack to it";
}

std::set<std::string> task_ids(const std::string& stack) {
  Command ps = run({"docker", "stack", "ps", "--quiet", "--no-trunc", stack}, Millis(30'000));
  std::set<std::string> ids;
  if (ps.ok())
    for (const auto& id : nonempty_lines(ps.out)) ids.insert(id);
  return ids;
}

Command deploy(const std::string& stack, const std::string& stack_file, bool with_registry_auth) {
  std::vector<std::string> argv{"docker", "stack", "deploy", "--compose-file", stack_file, "--prune", "--detach=true"};
  // Images built here exist on this engine only, under a tag no registry
  // knows: asking one for their digest would only warn. With a registry the
  // digest is pinned, so every node runs the same image.
  if (with_registry_auth) argv.insert(argv.end(), {"--with-registry-auth", "--resolve-image", "always"});
  else argv.insert(argv.end(), {"--resolve-image", "never"});
  argv.push_back(stack);
  return run(argv, Millis(300'000));
}

std::string endpoint_of(const std::string& stack, const std::string& service, int target) {
  Command tasks = run({"docker", "service", "ps", "--quiet", "--no-trunc", "--filter", "desired-state=running", service_name(stack, service)},
                      Millis(30'000));
  for (const auto& task : nonempty_lines(tasks.out)) {
    Command inspect = run({"docker", "inspect", "--format",
                           "{{.Status.State}} {{.NodeID}}{{range .Status.PortStatus.Ports}} {{.TargetPort}}:{{.PublishedPort}}{{end}}", task},
                          Millis(30'000));
    auto fields = split(inspect.first_line(), ' ');
    if (fields.size() < 3 || fields[0] != "running") continue;
    for (size_t i = 2; i < fields.size(); ++i) {
      auto ports = split(fields[i], ':');
      if (ports.size() != 2 || ports[0] != std::to_string(target) || ports[1] == "0") continue;
      std::string address = run({"docker", "node", "inspect", "--format", "{{.Status.Addr}}", fields[1]}, Millis(30'000)).first_line();
      // A node that reports no address of its own is this engine.
      if (address.empty() || address == "0.0.0.0") address = "127.0.0.1";
      return address + ":" + ports[1];
    }
  }
  return "";
}

ServiceProbe probe(const std::string& stack, const std::string& service, const std::set<std::string>& earlier_tasks) {
  ServiceProbe result;
  const std::string name = service_name(stack, service);
  Command spec = run({"docker", "service", "inspect", "--format",
                      "{{if .Spec.Mode.Replicated}}{{.Spec.Mode.Replicated.Replicas}}{{else}}1{{end}}|"
                      "{{if .UpdateStatus}}{{.UpdateStatus.State}}|{{.UpdateStatus.Message}}{{end}}",
                      name},
                     Millis(30'000));
  if (!spec.ok()) {
    result.state = "no service yet";
    return result;
  }
  auto fields = split(spec.first_line(), '|');
  const int desired = std::atoi(fields[0].c_str());
  const std::string update = fields.size() > 1 ? fields[1] : "";
  // An update Swarm gave up on (its failure action pauses or rolls back).
  if (update == "paused" || starts_with(update, "rollback")) {
    result.failure = "the update of " + service + " stopped (" + update + ")" + (fields.size() > 2 && !fields[2].empty() ? ": " + fields[2] : "");
    return result;
  }
  // Swarm shows a task with a healthcheck as "Starting" until it is healthy,
  // and fails it (then starts another) when it turns unhealthy.
  Command tasks = run({"docker", "service", "ps", "--no-trunc", "--format", "{{.ID}}|{{.DesiredState}}|{{.CurrentState}}|{{.Error}}", name},
                      Millis(30'000));
  int running = 0;
  std::string latest;
  for (const auto& line : nonempty_lines(tasks.out)) {
    auto task = split(line, '|');
    if (task.size() < 4) continue;
    if (!earlier_tasks.count(task[0]) && (starts_with(task[2], "Failed") || starts_with(task[2], "Rejected"))) {
      result.failure = service + " " + task[2] + ": " + task[3];
      return result;
    }
    if (task[1] == "Running") {
      latest = task[2];
      if (starts_with(task[2], "Running")) ++running;
    }
  }
  result.ready = update != "updating" && desired > 0 && running >= desired;
  result.state = std::to_string(running) + "/" + std::to_string(desired) + " running" + (latest.empty() ? "" : ", " + latest) +
                 (update == "updating" ? ", updating" : "");
  return result;
}

std::string logs_tail(const std::string& stack, const std::string& service, int lines) {
  Command logs = run({"docker", "service", "logs", "--no-trunc", "--tail", std::to_string(lines), service_name(stack, service)}, Millis(30'000));
  return tail_lines(logs.out + logs.err, static_cast<size_t>(lines));
}

std::string running_container(const std::string& stack, const std::string& service) {
  Command ps = run({"docker", "ps", "--quiet", "--filter", "label=com.docker.swarm.service.name=" + service_name(stack, service)}, Millis(30'000));
  return ps.first_line();
}

std::vector<std::pair<std::string, bool>> service_states(const std::string& stack) {
  Command services = run({"docker", "stack", "services", "--format", "{{.Name}} {{.Replicas}}", stack}, Millis(30'000));
  std::vector<std::pair<std::string, bool>> states;
  for (const auto& line : nonempty_lines(services.out)) {
    auto parts = split(line, ' ');
    if (parts.size() < 2 || parts[0].size() <= stack.size() + 1) continue;
    auto counts = split(parts[1], '/');  // "1/1" (a global service too)
    bool all_running = counts.size() == 2 && counts[0] == counts[1] && counts[1] != "0";
    states.emplace_back(parts[0].substr(stack.size() + 1), all_running);
  }
  return states;
}

std::set<std::string> stacks_labelled(const std::string& label) {
  Command ids = run({"docker", "service", "ls", "--quiet", "--filter", "label=" + label}, Millis(30'000));
  std::set<std::string> stacks;
  auto services = nonempty_lines(ids.out);
  if (services.empty()) return stacks;
  std::vector<std::string> argv{"docker", "service", "inspect", "--format", std::string("{{index .Spec.Labels \"") + kNamespaceLabel + "\"}}"};
  argv.insert(argv.end(), services.begin(), services.end());
  for (const auto& stack : nonempty_lines(run(argv, Millis(30'000)).out)) stacks.insert(stack);
  return stacks;
}

Status scale_to_zero(const std::string& stack) {
  Command ids = run({"docker", "stack", "services", "--quiet", stack}, Millis(30'000));
  std::vector<std::string> argv{"docker", "service", "scale", "--detach"};
  for (const auto& id : nonempty_lines(ids.out)) argv.push_back(id + "=0");
  if (argv.size() == 4) return {};
  Command scale = run(argv, Millis(60'000));
  if (!scale.ok()) return make_error(ErrorCode::kProvider, "docker service scale: " + scale.why());
  return {};
}

std::vector<ReceiptItem> remove(const std::string& stack) {
  std::vector<ReceiptItem> receipt;
  const std::string label = std::string("label=") + kNamespaceLabel + "=" + stack;
  auto services = nonempty_lines(run({"docker", "stack", "services", "--format", "{{.Name}}", stack}, Millis(30'000)).out);
  if (!services.empty()) {
    Command rm = run({"docker", "stack", "rm", stack}, Millis(120'000));
    for (const auto& service : services) receipt.push_back({"service", service, rm.ok() ? "removed" : "not removed: " + rm.why()});
  }
  // Swarm stops the tasks after `stack rm` returns; networks and volumes
  // stay in use until their containers are gone.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!nonempty_lines(run({"docker", "ps", "--all", "--quiet", "--filter", label}, Millis(30'000)).out).empty() &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  for (const auto& id : nonempty_lines(run({"docker", "ps", "--all", "--quiet", "--filter", label}, Millis(30'000)).out)) {
    Command rm = run({"docker", "rm", "--force", "--volumes", id}, Millis(60'000));
    receipt.push_back({"container", id.substr(0, 12), rm.ok() ? "removed" : "not removed: " + rm.why()});
  }
  for (const auto& id : nonempty_lines(run({"docker", "network", "ls", "--quiet", "--filter", label}, Millis(30'000)).out)) {
    std::string name = run({"docker", "network", "inspect", "--format", "{{.Name}}", id}, Millis(30'000)).first_line();
    Command rm = run({"docker", "network", "rm", id}, Millis(60'000));
    receipt.push_back({"network", name.empty() ? id : name, rm.ok() ? "removed" : "not removed: " + rm.why()});
  }
  for (const auto& name : nonempty_lines(run({"docker", "volume", "ls", "--quiet", "--filter", label}, Millis(30'000)).out)) {
    Command rm = run({"docker", "volume", "rm", "--force", name}, Millis(60'000));
    receipt.push_back({"volume", name, rm.ok() ? "removed" : "not removed: " + rm.why()});
  }
  return receipt;
}

}  // namespace prevue::compose::swarm
