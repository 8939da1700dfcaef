// The compose provider's "mode": "swarm": the same merged compose file,
// deployed as a stack (`docker stack deploy`) on the swarm the engine
// belongs to. The stack is the environment's slug; services, networks and
// volumes carry Swarm's namespace label (com.docker.stack.namespace).
#pragma once

#include <set>
#include <string>
#include <vector>

#include "docker_cli.h"
#include "provider/protocol.h"

namespace prevue::compose::swarm {

// Whether the engine is a manager of an active swarm; why not otherwise.
std::string why_not_a_manager();

// The stack's task ids now: a deploy's failures are the tasks it made.
std::set<std::string> task_ids(const std::string& stack);

Command deploy(const std::string& stack, const std::string& stack_file, bool with_registry_auth);

// Where `service`'s container port `target` answers: the port published in
// host mode on the node running its task, at that node's address ("" while
// no running task has one). Routed services publish in host mode, not
// through the ingress routing mesh: the proxy reaches the task directly,
// with no IPVS hop, and on engines where the mesh does not work.
std::string endpoint_of(const std::string& stack, const std::string& service, int target);

// How one service of the stack is doing after a deploy: ready when all its
// desired tasks run (Swarm counts one with a healthcheck as running once
// healthy); failed when a task this deploy made failed or was rejected.
ServiceProbe probe(const std::string& stack, const std::string& service, const std::set<std::string>& earlier_tasks);

std::string logs_tail(const std::string& stack, const std::string& service, int lines);

// A running container of the service on this engine (empty when none).
std::string running_container(const std::string& stack, const std::string& service);

// Each service of the stack and whether all its desired tasks run.
std::vector<std::pair<std::string, bool>> service_states(const std::string& stack);

// Stacks on the swarm whose services carry `label` (key=value).
std::set<std::string> stacks_labelled(const std::string& label);

// Scales every service of the stack to 0 (sleep); a later deploy restores them.
Status scale_to_zero(const std::string& stack);

// Removes the stack, waits for its containers to go, then removes its
// networks and volumes; each one a line of the receipt.
std::vector<ReceiptItem> remove(const std::string& stack);

}  // namespace prevue::compose::swarm
