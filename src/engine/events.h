// Events from every source (poller, post-receive hook, API, webhooks) are
// normalised into one EventRecord, written to the inbox, then applied to the
// pull request's desired state. The reconciler reads only the desired state.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "store/store.h"

namespace prevue {

// Actions of a normalised event.
inline constexpr const char* kEventOpened = "opened";
inline constexpr const char* kEventUpdated = "updated";
inline constexpr const char* kEventClosed = "closed";
inline constexpr const char* kEventMerged = "merged";

struct IngestResult {
  bool duplicate = false;  // the delivery id was seen before: nothing done
  std::string note;        // what became of it
};

// Records the event in the inbox (a redelivery is a no-op) and applies it to
// the pull request's desired state; a merge or close revokes the lease.
Result<IngestResult> ingest_event(Store& store, EventRecord event, std::int64_t now_ms);

// ingest_event's work inside a transaction the caller holds.
Result<IngestResult> apply_event(Store& store, EventRecord event, std::int64_t now_ms);

// Group commit for the inbox: threads recording deliveries at the same
// moment share one transaction (one WAL commit) instead of queueing for one
// each. write() returns once the caller's work is committed, or with the
// error that rolled the shared transaction back (nothing of it is kept).
// The writer keeps a connection of its own, used by one committing thread
// at a time: its page cache stays warm, where each thread's own connection
// would re-read the pages every other thread's commit changed.
class InboxWriter {
 public:
  using Work = std::function<Result<IngestResult>(Store&)>;
  explicit InboxWriter(std::unique_ptr<Store> store) : store_(std::move(store)) {}
  Result<IngestResult> write(const Work& work);

 private:
  enum Turn : int { kWaiting, kDone, kLead };
  // Shared by its writer and the queue: the leader may still be waking a
  // writer whose write() has already returned.
  struct Pending {
    const Work* work;
    std::optional<Result<IngestResult>> result;
    std::atomic<int> turn{kWaiting};
  };
  void commit(const std::vector<std::shared_ptr<Pending>>& batch);

  std::unique_ptr<Store> store_;  // used only by the leader
  std::mutex mutex_;              // guards queue_ and leading_, held only to change them
  std::vector<std::shared_ptr<Pending>> queue_;
  bool leading_ = false;  // some writer is committing; the next leader is the first queued
};

}  // namespace prevue
