// Events from every source (poller, post-receive hook, API, webhooks) are
// normalised into one EventRecord, written to the inbox, then applied to the
// pull request's desired state. The reconciler reads only the desired state.
#pragma once

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

}  // namespace prevue
