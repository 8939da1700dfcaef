// prevue's `terraform` provider executable (docs/providers.md#the-terraform-provider).
#include <csignal>

#include "command.h"
#include "provider_main.h"
#include "terraform_provider.h"

namespace {
extern "C" void on_stop(int) { prevue::terraform::stop_requested.store(true); }
}  // namespace

int main(int argc, char** argv) {
  // A handler, not SIG_IGN: an ignored signal stays ignored in terraform
  // too, and terraform must see its SIGINT to release its state lock.
  struct sigaction action {};
  action.sa_handler = on_stop;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  prevue::providers::stop_commands_when(&prevue::terraform::stop_requested, SIGINT, prevue::providers::Millis(75'000));
  return prevue::run_provider(argc, argv, prevue::terraform::handle);
}
