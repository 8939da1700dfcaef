// POST /hooks/{github,gitlab,gitea,bitbucket}: a git host's delivery is
// verified on its raw body before anything parses it (each host's own
// signature scheme), normalised, and recorded through the inbox (group
// commit) before any 2xx goes out; a redelivery is recognised and changes
// nothing; a delivery for no watched repository is kept as "ignored", so
// `prevue events` shows every delivery and what became of it. It runs on
// the webhook threads: everything it reads is fixed once it is built.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "daemon/config.h"
#include "daemon/metrics.h"
#include "engine/events.h"
#include "http/http.h"

namespace prevue {

class WebhookIntake {
 public:
  // A watched repository and every name a webhook may give it ("owner/name", clone or web URLs).
  struct Repository {
    std::int64_t id = 0;
    std::vector<std::string> names;
  };
  // Told of each recorded delivery (any thread): the PR, and whether its labels changed where it is reported.
  using OnDelivery = std::function<void(std::int64_t repo_id, long pr, bool labels_changed)>;

  WebhookIntake(std::map<std::string, WebhookSettings> hosts, const std::vector<Repository>& repositories, InboxWriter& inbox,
                const Clock& clock, Metrics& metrics, OnDelivery on_delivery);

  HttpResponse handle(const HttpRequest& request) const;

  // "https://host/owner/name.git/" and "https://host/owner/name" are one repository.
  static std::string comparable_name(std::string text);

 private:
  std::optional<std::int64_t> watched_repository(const std::vector<std::string>& names) const;

  const std::map<std::string, WebhookSettings> hosts_;
  std::vector<Repository> repositories_;  // names comparable
  InboxWriter& inbox_;
  const Clock& clock_;
  Metrics& metrics_;
  OnDelivery on_delivery_;
};

}  // namespace prevue
