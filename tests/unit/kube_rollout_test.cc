// The kubernetes provider's reading of a rollout (providers/kubernetes/workloads):
// `kubectl get ... -o json` lists shaped as the API server writes them.
#include "workloads.h"

#include <gtest/gtest.h>

namespace prevue::kubernetes {
namespace {

using json = nlohmann::json;

json deployment(const std::string& name, int replicas, int updated, int available, int total, int revision = 2) {
  return {{"kind", "Deployment"},
          {"metadata", {{"name", name}, {"generation", 3}, {"annotations", {{"deployment.kubernetes.io/revision", std::to_string(revision)}}}}},
          {"spec", {{"replicas", replicas}}},
          {"status", {{"observedGeneration", 3}, {"replicas", total}, {"updatedReplicas", updated}, {"availableReplicas", available}}}};
}

json replicaset(const std::string& name, const std::string& deployment, int revision) {
  return {{"kind", "ReplicaSet"},
          {"metadata", {{"name", name}, {"annotations", {{"deployment.kubernetes.io/revision", std::to_string(revision)}}},
                        {"ownerReferences", {{{"kind", "Deployment"}, {"name", deployment}, {"controller", true}}}}}}};
}

json pod(const std::string& name, const std::string& owner_kind, const std::string& owner, json container_status) {
  return {{"kind", "Pod"},
          {"metadata", {{"name", name}, {"ownerReferences", {{{"kind", owner_kind}, {"name", owner}, {"controller", true}}}}}},
          {"status", {{"containerStatuses", {container_status}}}}};
}

json list(std::initializer_list<json> items) {
  json all = json::array();
  for (const auto& item : items) all.push_back(item);
  return {{"kind", "List"}, {"items", all}};
}

TEST(KubeRollout, ADeploymentIsDoneWhenEveryReplicaIsUpdatedAndAvailable) {
  EXPECT_TRUE(evaluate_rollout(list({deployment("web", 2, 2, 2, 2)}), {"Deployment/web"}).done());
  auto half = evaluate_rollout(list({deployment("web", 2, 2, 1, 2)}), {"Deployment/web"});
  ASSERT_EQ(half.waiting.size(), 1u);
  EXPECT_EQ(half.waiting[0], "Deployment/web: 1 of 2 updated replicas available");
  // Old replicas still terminating keep it waiting, as `kubectl rollout status` does.
  EXPECT_FALSE(evaluate_rollout(list({deployment("web", 1, 1, 1, 2)}), {"Deployment/web"}).done());
  // A spec its controller has not seen yet is not done, whatever the status says.
  json stale = deployment("web", 1, 1, 1, 1);
  stale["metadata"]["generation"] = 4;
  EXPECT_FALSE(evaluate_rollout(list({stale}), {"Deployment/web"}).done());
}

TEST(KubeRollout, AWorkloadNotCreatedYetIsWaitedFor) {
  auto r = evaluate_rollout(list({}), {"StatefulSet/db"});
  ASSERT_EQ(r.waiting.size(), 1u);
  EXPECT_EQ(r.waiting[0], "StatefulSet/db: not created yet");
}

TEST(KubeRollout, AProgressDeadlineFailsTheRollout) {
  json d = deployment("web", 1, 1, 0, 1);
  d["status"]["conditions"] = {{{"type", "Progressing"}, {"status", "False"}, {"reason", "ProgressDeadlineExceeded"},
                                {"message", "ReplicaSet \"web-1\" has timed out progressing."}}};
  auto r = evaluate_rollout(list({d}), {"Deployment/web"});
  EXPECT_EQ(r.failure, "Deployment/web exceeded its progress deadline: ReplicaSet \"web-1\" has timed out progressing.");
}

TEST(KubeRollout, APodOfTheNewRevisionThatCannotRunFailsAtOnce) {
  json crashing = {{"name", "web"}, {"restartCount", 2},
                   {"state", {{"waiting", {{"reason", "CrashLoopBackOff"}, {"message", "back-off 20s"}}}}},
                   {"lastState", {{"terminated", {{"exitCode", 3}}}}}};
  auto r = evaluate_rollout(list({deployment("web", 1, 1, 0, 1), replicaset("web-new", "web", 2), pod("web-new-x", "ReplicaSet", "web-new", crashing)}),
                            {"Deployment/web"});
  ASSERT_EQ(r.problems.size(), 1u);
  EXPECT_EQ(r.problems[0].pod, "web-new-x");
  EXPECT_EQ(r.problems[0].reason, "CrashLoopBackOff");
  EXPECT_TRUE(r.problems[0].crashed);

  json unpullable = {{"name", "api"}, {"restartCount", 0}, {"state", {{"waiting", {{"reason", "ErrImagePull"}, {"message", "connection refused"}}}}}};
  auto pull = evaluate_rollout(list({deployment("api", 1, 1, 0, 1), replicaset("api-1", "api", 2), pod("api-1-y", "ReplicaSet", "api-1", unpullable)}),
                               {"Deployment/api"});
  ASSERT_EQ(pull.problems.size(), 1u);
  EXPECT_EQ(pull.problems[0].reason, "ErrImagePull");
  EXPECT_FALSE(pull.problems[0].crashed);
}

TEST(KubeRollout, TheFirstCrashCountsBeforeTheBackOffSaysSo) {
  json restarted = {{"name", "web"}, {"restartCount", 1}, {"state", {{"running", json::object()}}},
                    {"lastState", {{"terminated", {{"exitCode", 2}, {"reason", "Error"}}}}}};
  auto r = evaluate_rollout(list({deployment("web", 1, 1, 0, 1), replicaset("web-new", "web", 2), pod("p", "ReplicaSet", "web-new", restarted)}),
                            {"Deployment/web"});
  ASSERT_EQ(r.problems.size(), 1u);
  EXPECT_EQ(r.problems[0].reason, "exited 2");
}

TEST(KubeRollout, PodsOfAnEarlierRevisionAreNotThisRolloutsTrouble) {
  json crashing = {{"name", "web"}, {"restartCount", 5}, {"state", {{"waiting", {{"reason", "CrashLoopBackOff"}}}}}};
  // Revision 1 crash-looped; the push being rolled out is revision 2.
  auto r = evaluate_rollout(list({deployment("web", 1, 1, 0, 2), replicaset("web-old", "web", 1), replicaset("web-new", "web", 2),
                                  pod("old", "ReplicaSet", "web-old", crashing)}),
                            {"Deployment/web"});
  EXPECT_TRUE(r.problems.empty());
  EXPECT_FALSE(r.done());
}

TEST(KubeRollout, AJobIsDoneWhenCompleteAndFailsWhenFailed) {
  json job = {{"kind", "Job"}, {"metadata", {{"name", "migrate"}}}, {"spec", {{"completions", 1}}},
              {"status", {{"succeeded", 1}, {"conditions", {{{"type", "Complete"}, {"status", "True"}}}}}}};
  EXPECT_TRUE(evaluate_rollout(list({job}), {"Job/migrate"}).done());
  job["status"]["conditions"] = {{{"type", "Failed"}, {"status", "True"}, {"reason", "BackoffLimitExceeded"}, {"message", "Job has reached the specified backoff limit"}}};
  EXPECT_EQ(evaluate_rollout(list({job}), {"Job/migrate"}).failure,
            "Job/migrate failed (BackoffLimitExceeded): Job has reached the specified backoff limit");
  // A Job's own pod that exits non-zero is the Job's to retry, not a crash loop.
  json failed_run = {{"name", "migrate"}, {"restartCount", 1}, {"state", {{"waiting", {{"reason", "CrashLoopBackOff"}}}}},
                     {"lastState", {{"terminated", {{"exitCode", 1}}}}}};
  EXPECT_TRUE(evaluate_rollout(list({pod("migrate-x", "Job", "migrate", failed_run)}), {}).problems.empty());
}

TEST(KubeRollout, AStatefulSetWaitsForReadyReplicasAndItsNewRevision) {
  json s = {{"kind", "StatefulSet"}, {"metadata", {{"name", "db"}, {"generation", 1}}}, {"spec", {{"replicas", 1}}},
            {"status", {{"observedGeneration", 1}, {"readyReplicas", 1}, {"currentRevision", "db-1"}, {"updateRevision", "db-2"}}}};
  EXPECT_FALSE(evaluate_rollout(list({s}), {"StatefulSet/db"}).done());
  s["status"]["currentRevision"] = "db-2";
  EXPECT_TRUE(evaluate_rollout(list({s}), {"StatefulSet/db"}).done());
}

TEST(KubeRollout, GarbageIsNotACrash) {
  // Whatever kubectl printed, the reading says "waiting", it never throws.
  EXPECT_FALSE(evaluate_rollout(json::array(), {"Deployment/web"}).done());
  EXPECT_FALSE(evaluate_rollout(json{{"items", {1, "x", nullptr}}}, {"Deployment/web"}).done());
  EXPECT_FALSE(evaluate_rollout(json{{"items", {{{"kind", 3}, {"metadata", "no"}}}}}, {"Deployment/web"}).done());
}

}  // namespace
}  // namespace prevue::kubernetes
