// prevue's `local` provider executable (docs/providers.md).
#include "local_provider.h"
#include "provider_main.h"

int main(int argc, char** argv) { return prevue::run_provider(argc, argv, prevue::local::handle); }
