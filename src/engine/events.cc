#include "engine/events.h"

#include "core/duration.h"

#include <optional>

namespace prevue {

namespace {

// The event row is written once, with what became of it: a redelivery is
// found first, then the effect is applied, then the row goes in.
Result<IngestResult> ingest(Store& store, EventRecord event, std::int64_t now_ms) {
  IngestResult result;
  auto seen = store.has_event(event.delivery_id);
  if (!seen.ok()) return seen.error();
  if (*seen) {
    result.duplicate = true;
    result.note = "duplicate delivery " + event.delivery_id;
    return result;
  }
  auto record = [&](const std::string& status) -> Status {
    event.status = status;
    event.note = result.note;
    event.processed_at = now_ms;
    auto inserted = store.insert_event(event);
    if (!inserted.ok()) return inserted.error();
    return {};
  };
  auto existing = store.find_pull_request(event.repo_id, event.pr);
  if (!existing.ok()) return existing.error();
  PullRequestRecord pr = existing->value_or(PullRequestRecord{});
  pr.repo_id = event.repo_id;
  pr.pr = event.pr;
  pr.updated_at = now_ms;
  const std::string& a = event.action;
  if (a == kEventOpened || a == kEventUpdated) {
    bool reopened = pr.status != PrStatus::kOpen;
    pr.status = PrStatus::kOpen;
    pr.closed_at = 0;
    if (!event.head_sha.empty()) pr.head_sha = event.head_sha;
    if (!event.head_ref.empty()) pr.head_ref = event.head_ref;
    if (!event.base_ref.empty()) pr.base_ref = event.base_ref;
    if (!event.author.empty()) pr.author = event.author;
    pr.fork = event.fork;
    pr.labels = event.labels;
    result.note = std::string(reopened && existing->has_value() ? "reopened" : a) + " PR " + std::to_string(pr.pr) + " at " +
                  pr.head_sha.substr(0, 12);
    // A lease revoked by an earlier close no longer applies.
    if (auto env = store.find_environment(pr.repo_id, pr.pr); env.ok() && env->has_value()) {
      if (auto lease = store.lease_of((*env)->id); lease.ok() && lease->has_value() && (*lease)->revoked_at != 0) {
        LeaseRecord l = **lease;
        l.revoked_at = 0;
        (void)store.upsert_lease(l);
      }
    }
  } else if (a == kEventClosed || a == kEventMerged) {
    pr.status = a == kEventMerged ? PrStatus::kMerged : PrStatus::kClosed;
    pr.closed_at = now_ms;
    if (!event.head_sha.empty()) pr.head_sha = event.head_sha;
    result.note = std::string(a) + " PR " + std::to_string(pr.pr);
    if (auto env = store.find_environment(pr.repo_id, pr.pr); env.ok() && env->has_value()) {
      if (auto lease = store.lease_of((*env)->id); lease.ok() && lease->has_value()) {
        LeaseRecord l = **lease;
        if (l.revoked_at == 0) l.revoked_at = now_ms;
        PREVUE_TRY(store.upsert_lease(l));
        result.note += ", lease revoked (grace " + format_duration(Millis(l.grace_ms)) + ")";
      }
      (void)store.append_timeline((*env)->id, "received", a + " (" + event.source + ")", 0);
    }
  } else {
    result.note = "ignored: unknown action '" + a + "'";
    PREVUE_TRY(record("ignored"));
    return result;
  }
  PREVUE_TRY(store.upsert_pull_request(pr));
  PREVUE_TRY(record("processed"));
  return result;
}

}  // namespace

// One transaction: the event is in the inbox exactly when its effect on the
// pull request's desired state is, and it costs one commit, not six.
Result<IngestResult> ingest_event(Store& store, EventRecord event, std::int64_t now_ms) {
  std::optional<Result<IngestResult>> outcome;
  Status s = store.in_transaction([&]() -> Status {
    outcome.emplace(ingest(store, event, now_ms));
    if (!outcome->ok()) return outcome->error();
    return {};
  });
  if (!s.ok()) return s.error();
  return std::move(*outcome);
}

Result<IngestResult> apply_event(Store& store, EventRecord event, std::int64_t now_ms) { return ingest(store, std::move(event), now_ms); }

// Each waiting writer sleeps on its own word and is woken once, when its
// result is in or it is its turn to lead: no broadcast wakes every waiter to
// queue again on one mutex.
Result<IngestResult> InboxWriter::write(const Work& work) {
  auto mine = std::make_shared<Pending>();
  mine->work = &work;
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(mine);
    if (!leading_) {
      leading_ = true;
      mine->turn.store(kLead, std::memory_order_relaxed);
    }
  }
  int turn;
  while ((turn = mine->turn.load(std::memory_order_acquire)) == kWaiting) mine->turn.wait(kWaiting, std::memory_order_acquire);
  if (turn == kDone) return std::move(*mine->result);

  // Leader: commits everything queued so far, its own work included, then
  // hands the lead to the first writer that queued meanwhile.
  std::vector<std::shared_ptr<Pending>> batch;
  {
    std::lock_guard lock(mutex_);
    batch.swap(queue_);
  }
  commit(batch);
  std::shared_ptr<Pending> next;
  {
    std::lock_guard lock(mutex_);
    if (queue_.empty())
      leading_ = false;
    else
      next = queue_.front();
  }
  for (const auto& p : batch) {
    if (p == mine) continue;
    p->turn.store(kDone, std::memory_order_release);
    p->turn.notify_one();
  }
  if (next) {
    next->turn.store(kLead, std::memory_order_release);
    next->turn.notify_one();
  }
  return std::move(*mine->result);
}

void InboxWriter::commit(const std::vector<std::shared_ptr<Pending>>& batch) {
  std::vector<Result<IngestResult>> results;
  Status s;
  try {
    s = store_->in_transaction([&]() -> Status {
      results.clear();
      for (const auto& p : batch) {
        auto r = (*p->work)(*store_);
        if (!r.ok()) return r.error();
        results.push_back(std::move(r));
      }
      return {};
    });
  } catch (const std::exception& e) {
    // Rolled back by in_transaction; every writer of the batch gets the error,
    // and the lead still passes on.
    s = make_error(ErrorCode::kIo, std::string("the inbox transaction failed: ") + e.what());
  } catch (...) {
    s = make_error(ErrorCode::kIo, "the inbox transaction failed");
  }
  for (size_t i = 0; i < batch.size(); ++i) batch[i]->result.emplace(s.ok() ? std::move(results[i]) : Result<IngestResult>(s.error()));
}

}  // namespace prevue
